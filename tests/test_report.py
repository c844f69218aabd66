"""Reports: aggregation (bounded, streaming), the terminal summary, the progress bar, and the
self-contained HTML report, rendered in headless Chromium.

The Chromium tests need Debian's ``chromium`` at /usr/bin/chromium (``apt-get install chromium``)
and are skipped without it.  Set INSPECTOR_REPORT_SCREENSHOT=/some/path.png to keep the
screenshot the test takes.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from inspector.cli.terminal import Progress, print_summary
from inspector.report import Aggregates, write_report, write_report_from_dir
from inspector.report.format import clean, esc, fmt_bytes
from inspector.report.html import fmt_bucket, render_report
from inspector.report.summary import BYTES, CUST, FLOWS, Timeline, TopTable

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"

XSS = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
XSS_ATTR = "\"><svg onload=alert(2)>"


def flow(**kw) -> dict:
    """A flow record with the flows.jsonl fields the reports read."""
    f = {"ts": 1764000000.0, "uid": "C1", "id.orig_h": "172.20.1.10", "id.orig_p": 40000, "id.resp_h": "203.0.113.5",
         "id.resp_p": 443, "proto": "tcp", "duration": 1.0, "orig_bytes": 1000, "resp_bytes": 100,
         "direction": "outbound", "dst_name": "api.example.com", "dst_country": "DE", "dst_asn": 64500,
         "dst_org": "Example GmbH", "dst_group": None, "dst_category": None, "dst_allowed": False,
         "payload_type": "json", "payload_types": ["json"], "app_bytes_out": 1000, "data": {},
         "records": {"customer": 0, "shipment": 0}, "edm": {}}
    f.update(kw)
    return f


def alert(sev=1, **kw) -> dict:
    a = {"timestamp": "2025-11-24T16:00:05.000000+0000", "event_type": "alert", "src_ip": "172.20.1.10",
         "src_port": 40000, "dest_ip": "203.0.113.5", "dest_port": 443, "proto": "TCP", "app_proto": "http",
         "community_id": "1:abc=", "uids": ["C1"],
         "alert": {"signature_id": 9000000 + sev if isinstance(sev, int) else None,
                   "signature": f"Test signature {sev}", "category": "data-leak", "severity": sev},
         "destination": {"name": "api.example.com", "country": "DE", "asn": 64500, "org": "Example GmbH",
                         "group": None},
         "data": {"email": 3}, "records": {"customer": 3, "shipment": 1}, "bytes_out": 1000, "bytes_in": 100,
         "evidence": {"email": ["a***@e***.com", "b***@e***.org"]}}
    a.update(kw)
    return a


STATS = {"packets_read": 1234, "bytes_read": 567890, "outcomes": {"decoded": 1234}, "flows": 5, "weirds": {},
         "files": [{"path": "captures/x.pcap", "format": "pcap", "packets_read": 1234, "bytes_read": 567890}]}


# --------------------------------------------------------------------------------------------
# Aggregation


def test_aggregates_outbound_inbound_internal():
    agg = Aggregates()
    agg.add([
        flow(orig_bytes=1000, records={"customer": 5, "shipment": 2}, data={"email": 5}),
        flow(ts=1764000010.0, orig_bytes=500, dst_allowed=True, dst_name="api.ups.com", dst_org="UPS",
             dst_country="US"),
        # active-mode FTP data: the remote side opened it, the local side uploaded (resp_bytes)
        flow(ts=1764000020.0, direction="inbound", **{"id.orig_h": "198.51.100.7", "id.resp_h": "172.20.1.11"},
             orig_bytes=0, resp_bytes=2000, dst_name=None, dst_org=None, dst_country=None, dst_asn=None,
             records={"customer": 7, "shipment": 0}, payload_type="csv"),
        flow(ts=1764000030.0, direction="internal", orig_bytes=99999, **{"id.resp_h": "172.20.0.5"}),
        flow(ts=1764000040.0, orig_bytes=None, resp_bytes=None, duration=None, records=None, data=None),
    ])
    assert agg.flows == 5
    assert dict(agg.directions) == {"outbound": 3, "inbound": 1, "internal": 1}
    assert agg.out_flows == 4
    assert agg.out_bytes == 1000 + 500 + 2000
    assert agg.out_allowed_bytes == 500 and agg.out_other_bytes == 3000
    assert (agg.out_customer, agg.out_shipment) == (12, 2)
    assert agg.data == {"email": 5}
    assert agg.first_ts == 1764000000.0 and agg.last_ts == 1764000040.0   # the latest end, ts + duration
    dst = dict(agg.top_destinations(10))
    assert dst["api.example.com"][BYTES] == 1000 and dst["api.example.com"][FLOWS] == 2
    assert dst["198.51.100.7"][BYTES] == 2000 and dst["198.51.100.7"][CUST] == 7   # address when no name
    hosts = dict(agg.top_hosts(10))
    assert hosts["172.20.1.11"][BYTES] == 2000                                      # the local side of inbound
    assert dict(agg.top_orgs(10))["Example GmbH"][CUST] == 5
    assert {k for k, _ in agg.top_countries(10)} == {"DE", "US", "??"}
    assert agg.payload.items["csv"][BYTES] == 2000


def test_org_table_uses_the_destination_label():
    """The organisation table is keyed on inspector.enrich.label, the label alerts group by."""
    agg = Aggregates()
    agg.add([flow(), flow(dst_org=None, dst_group="alibaba-cloud"),
             flow(dst_org=None, dst_name="upload.files.example.co.uk"),
             flow(dst_org=None, dst_name=None, dst_asn=64501),
             flow(dst_org=None, dst_name=None, dst_asn=None, **{"id.resp_h": "198.51.100.9"})])
    kinds = {org: agg.org.meta[org]["kind"] for org, _ in agg.top_orgs(10)}
    assert kinds == {"Example GmbH": "org", "alibaba-cloud": "group", "example.co.uk": "domain",
                     "AS64501": "asn", "198.51.100.9": "address"}


def test_roles_and_sankey_folding():
    roles = {"172.20.1.10": "wms", "172.20.1.11": "wms"}
    agg = Aggregates(role_of=roles.get)
    for i in range(15):
        agg.add_one(flow(**{"id.orig_h": f"172.20.9.{i}"}, dst_org=f"Org {i}", orig_bytes=100 + i))
    agg.add_one(flow(orig_bytes=5000, dst_allowed=True))
    agg.add_one(flow(**{"id.orig_h": "172.20.1.11"}, orig_bytes=3000))
    left, right, edges = agg.sankey(left=5, right=4)
    assert left[0] == "wms" and len(left) == 5 and left[-1] == "other hosts (12)"
    assert len(right) == 4 and right[0] == "Example GmbH" and right[-1].startswith("other organisations")
    wms = [e for e in edges if e[0] == "wms"]
    assert len(wms) == 1 and wms[0][2] == 8000 and wms[0][5] == {True, False}
    assert sum(e[2] for e in edges) == agg.out_bytes


def test_toptable_is_bounded_and_keeps_heavy_hitters():
    t = TopTable(6, cap=50, rank=(BYTES, CUST))
    for i in range(20000):
        r = t.row(f"k{i}")
        r[BYTES] += 1
    t.row("big")[BYTES] += 10 ** 6
    t.row("records")[CUST] += 500
    for i in range(20000, 25000):
        t.row(f"k{i}")[BYTES] += 1
    assert len(t) <= 100 and t.dropped > 0
    assert "big" in t.items and "records" in t.items
    assert t.top(BYTES, 1)[0][0] == "big"


def test_aggregates_stream_bounded_memory():
    """30k flows to distinct destinations: tables stay bounded, totals exact, flows never kept."""
    agg = Aggregates(cap=100, pending=1000)
    n = 30_000

    def gen():
        for i in range(n):
            yield flow(ts=1764000000.0 + i, uid=f"C{i}", dst_name=f"h{i}.example.net", dst_org=f"Org {i % 5000}",
                       **{"id.orig_h": f"172.20.{i % 200}.{i % 250}"}, orig_bytes=10,
                       records={"customer": 1, "shipment": 0})
    agg.add(gen())
    assert agg.flows == n and agg.out_bytes == 10 * n and agg.out_customer == n
    assert len(agg.dst) <= 200 and len(agg.org) <= 200 and len(agg.host) <= 200 and len(agg.edges) <= 400
    assert len(agg._pending) == 0 and agg.dst.dropped > 0
    assert len(agg.timeline.buckets) <= 4096
    assert agg.truncated
    _, series = agg.timeline.series()
    assert len(series) <= 96
    assert sum(a + b for _, a, b in series) == pytest.approx(10 * n)


def test_timeline_spreads_over_duration_and_coarsens():
    tl = Timeline(max_buckets=64)
    tl.add(1000.0, 10.0, 1000.0, 1)          # 1 s buckets: 100 per bucket
    assert tl.width == 1 and len(tl.buckets) == 10
    assert all(v[1] == pytest.approx(100.0) for v in tl.buckets.values())
    for i in range(200):                     # many separate seconds: buckets coarsen, sums stay
        tl.add(5000.0 + 997 * i, 0, 5.0, 0)
    assert tl.width > 1 and len(tl.buckets) <= 64
    total = sum(a + b for a, b in tl.buckets.values())
    assert total == pytest.approx(2000.0)
    width, series = tl.series(max_bars=48)
    assert len(series) <= 48 and sum(a + b for _, a, b in series) == pytest.approx(2000.0)
    assert sum(b for _, _, b in series) == pytest.approx(1000.0)   # the series stay apart
    assert fmt_bucket(900) == "15 min" and fmt_bucket(3600) == "1 h" and fmt_bucket(86400 * 2) == "2 days"


def test_clean_makes_controls_and_bidi_visible():
    assert clean("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert clean("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert clean("x" * 50, 10) == "x" * 9 + "\u2026"
    assert clean(None) == ""
    assert esc(XSS) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert fmt_bytes(457 * 1024) == "457.0 KB" and fmt_bytes(12) == "12 B"


# --------------------------------------------------------------------------------------------
# Terminal summary and progress


def _console(width=120, terminal=False):
    from rich.console import Console
    buf = io.StringIO()
    return Console(file=buf, width=width, force_terminal=terminal, color_system=None if not terminal else "standard",
                   highlight=False), buf


def test_print_summary(tmp_path):
    (tmp_path / "flows.jsonl").write_text("")
    agg = Aggregates()
    agg.add([flow(orig_bytes=400 * 1024, records={"customer": 120, "shipment": 3}),
             flow(dst_name="[bold red]evil[/]\x1b[2J.example", dst_org="Org [link=x]y[/link]", orig_bytes=10)])
    alerts = [alert(2), alert(1, alert={"signature": "Boom [blink]x[/blink]", "severity": 1, "signature_id": 1}),
              alert(3), alert("bogus")]
    console, buf = _console()
    print_summary(console, STATS, agg, alerts, "dc-north", str(tmp_path), 1.25)
    out = buf.getvalue()
    assert "site dc-north" in out and "1,234 packets" in out
    assert "api.example.com" in out and "400.0 KB" in out and "120 / 3" in out
    assert "Example GmbH" in out
    assert "[bold red]evil[/]\\x1b[2J.example" in out      # literal text, no markup, escape made visible
    assert "\x1b" not in out
    assert "Org [link=x]y[/link]" in out
    # the policy's scale: 1 critical, 2 high, 3 medium, 4 low; anything else "info"
    assert "1 critical" in out and "1 high" in out and "1 medium" in out and "1 info" in out
    assert "Boom [blink]x[/blink]" in out
    assert out.index("Boom") < out.index("Test signature 2")  # most severe first
    assert "flows.jsonl" in out


def test_print_summary_no_traffic_no_alerts(tmp_path):
    console, buf = _console(width=80)
    print_summary(console, {"packets_read": 0, "bytes_read": 0}, Aggregates(), [], "x", str(tmp_path), 0.1)
    out = buf.getvalue()
    assert "alerts: none" in out and "flows 0" in out


class _FakeReader:
    def __init__(self, path):
        self.stream = open(path, "rb")


def test_progress_only_after_delay_and_on_tty(tmp_path):
    cap = tmp_path / "a.pcap"
    cap.write_bytes(b"\0" * 100_000)
    now = [0.0]
    console, buf = _console(terminal=True)
    p = Progress(enabled=True, console=console, delay=2.0, clock=lambda: now[0])
    r = _FakeReader(cap)
    p(str(cap), 10, r)
    assert not p.shown                      # short scans print nothing
    now[0] = 2.5
    r.stream.seek(50_000)
    p(str(cap), 20, r)
    assert p.shown and p._total == 100_000
    assert p._bar.tasks[0].completed == 50_000 and p._bar.tasks[0].fields["packets"] == 20
    p.done()
    r.stream.close()
    off = Progress(enabled=False)
    off("x", 1, None)
    assert not off.shown
    assert Progress().enabled is False      # pytest's stderr is not a terminal


# --------------------------------------------------------------------------------------------
# HTML


def _hostile_inputs():
    flows = [
        flow(),
        flow(ts=1764000100.0, dst_name=XSS, dst_org=XSS_IMG, dst_country=XSS_ATTR, dst_group=XSS,
             dst_category=XSS_ATTR, payload_type=XSS, data={XSS: 3, "email": 2},
             records={"customer": 4, "shipment": 1}, **{"id.orig_h": XSS_IMG}),
        flow(ts=1764003600.0, direction="inbound", **{"id.orig_h": "198.51.100.7", "id.resp_h": "172.20.1.11"},
             orig_bytes=0, resp_bytes=20000, dst_name=None, dst_org=None, dst_country=None, dst_asn=None,
             records={"customer": 200, "shipment": 0}, payload_type="csv", dst_allowed=False),
        flow(ts=1764007200.0, dst_name="api.ups.com", dst_org="UNITED PARCEL SERVICE", dst_country="US",
             dst_allowed=True, orig_bytes=3000, payload_type="tls-encrypted"),
    ]
    alerts = [
        alert(1),
        alert(2, alert={"signature": XSS, "category": XSS_IMG, "severity": 2, "signature_id": XSS_ATTR},
              destination={"name": XSS_IMG, "country": XSS, "org": XSS_ATTR, "asn": XSS, "group": XSS},
              src_ip=XSS, uids=[XSS], data={XSS: 1}, evidence={XSS: [XSS_IMG, {"k": XSS}], "x": XSS_ATTR}),
        alert(3, evidence=[XSS, XSS_IMG], timestamp=XSS),
        alert(1, evidence=XSS_IMG, timestamp=1764000000.5),
    ]
    content = [{"uid": "C1", "data": {"email": 2}, "samples": {"email": ["a***@e***.com", XSS]},
                "edi_counts": {XSS: 1, "edifact:IFTMIN": 3}, "edm": {XSS_IMG: 2}, "payload_encoding": "base64"}]
    stats = dict(STATS, files=[{"path": XSS, "format": "pcap", "packets_read": 1, "bytes_read": 2}],
                 weirds={XSS: 1}, outcomes={"decoded": 10, XSS_IMG: 1}, inputs_failed=[XSS])
    return flows, alerts, content, stats


def test_html_escapes_everything(tmp_path):
    flows, alerts, content, stats = _hostile_inputs()
    out = write_report(str(tmp_path / "r.html"), iter(flows), alerts, stats, XSS, content=content, title=XSS_IMG)
    doc = Path(out).read_text(encoding="utf-8")
    assert "<script>alert" not in doc and "<img" not in doc and "<svg onload" not in doc
    assert "onerror=" not in doc.replace("onerror=&quot;", "")   # only as escaped text
    assert doc.count("<script") == 1 and doc.count("</script>") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "&lt;img src=x onerror=&quot;document.body" in doc
    assert "&quot;&gt;&lt;svg onload=alert(2)&gt;" in doc
    assert not os.path.exists(out + ".tmp")


def test_html_is_self_contained_with_matching_csp():
    flows, _, _, _ = _hostile_inputs()
    clean_flows = [f for i, f in enumerate(flows) if i != 1]
    doc = render_report(Aggregates().add(clean_flows), [alert(1), alert(2)], STATS, "dc-north")
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", doc, re.I)
    assert "@import" not in doc and "url(" not in doc and "http://" not in doc and "https://" not in doc
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', doc).group(1)
    script = re.search(r"<script>(.*?)</script>", doc, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", doc, re.S).group(1)

    def h(s):
        return "sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
    assert f"script-src '{h(script)}'" in csp and f"style-src '{h(style)}'" in csp
    assert "default-src 'none'" in csp
    # no inline handlers or style attributes: the CSP would block them
    assert not re.search(r"<[a-zA-Z][^>]*\s(?:on[a-z]+|style)\s*=", doc)


def test_html_sections_and_charts(tmp_path):
    flows, alerts, content, stats = _hostile_inputs()
    doc = render_report(Aggregates().add(flows), alerts, STATS, "dc-north", content=content)
    for sid in ("chart-sankey", "chart-timeline", "chart-dst-bytes", "chart-dst-records", "chart-orgs",
                "chart-countries", "chart-payload", "chart-data", "alerts-table", "records-table", "orgs-table",
                "alert-filter"):
        assert f'id="{sid}"' in doc, sid
    assert doc.count('<tr data-sev="') == len(alerts)
    assert doc.index('data-sev="1"') < doc.index('data-sev="2"') < doc.index('data-sev="3"')
    assert "a***@e***.com" in doc and "edifact:IFTMIN" in doc
    assert "200" in doc and "198.51.100.7" in doc       # inbound upload counted as leaving


def test_html_empty_inputs(tmp_path):
    out = write_report(str(tmp_path / "e.html"), [], [], {}, "empty")
    doc = Path(out).read_text(encoding="utf-8")
    assert "No alerts." in doc and "No outbound traffic." in doc and doc.count("<script") == 1


def test_write_report_from_dir(tmp_path):
    flows, alerts, content, stats = _hostile_inputs()
    (tmp_path / "flows.jsonl").write_text("".join(json.dumps(f) + "\n" for f in flows) + "not json\n\n")
    (tmp_path / "alerts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in alerts))
    (tmp_path / "content.jsonl").write_text("".join(json.dumps(c) + "\n" for c in content))
    (tmp_path / "stats.json").write_text(json.dumps(dict(STATS, site="dc-north")))
    out = write_report_from_dir(str(tmp_path))
    doc = Path(out).read_text(encoding="utf-8")
    assert out.endswith("report.html") and "site dc-north" in doc and doc.count('<tr data-sev="') == 4


# --------------------------------------------------------------------------------------------
# Headless Chromium


needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"{CHROMIUM} not found (Debian: apt-get install chromium)")


def _chromium(args, url, tmp_path, timeout=60):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, url]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish in {timeout}s")
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    return p, console


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """The report of a real scan of the bundled dc-north captures, with made-up alerts and hostile names."""
    from inspector import cli
    from inspector.site import load_site
    out = tmp_path_factory.mktemp("scan-report")
    captures = sorted((REPO / "captures").glob("dc-north-*.pcap"))
    site_file = REPO / "captures" / "site-dc-north.yaml"
    assert cli.main(["scan", *map(str, captures), "--site", str(site_file), "--out", str(out), "-q"]) == 0
    site = load_site(str(site_file))
    hostile, alerts, content, _ = _hostile_inputs()
    agg = Aggregates(role_of=site.role)
    with open(out / "flows.jsonl", "rb") as fh:
        agg.add(json.loads(line) for line in fh)
    agg.add(hostile[1:2])
    with open(out / "stats.json", encoding="utf-8") as fh:
        stats = json.load(fh)
    with open(out / "content.jsonl", encoding="utf-8") as fh:
        content = [json.loads(line) for line in fh] + content
    alerts = alerts + [alert(1, **{"destination": {"name": "dc-sync-7f3a.oss-ap-southeast-1.aliyuncs.com",
                                                   "country": "SG", "asn": 45102, "org": "Alibaba", "group":
                                                   "alibaba-cloud"}, "bytes_out": 457000, "data": {},
                                   "records": {}, "evidence": {"tls.sni": "dc-sync-7f3a.oss-***.aliyuncs.com"}})]
    path = out / "report.html"
    write_report(str(path), agg, alerts, stats, site.name, content=content)
    return path, alerts


@needs_chromium
def test_report_in_headless_chromium(real_report, tmp_path):
    path, alerts = real_report
    t0 = time.monotonic()
    p, console = _chromium(["--dump-dom"], path.as_uri(), tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert console == [], "console messages (script errors or CSP violations):\n" + "\n".join(console)
    dom = p.stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-report-ready="1"' in body, body                     # the inline script ran to the end
    assert f'data-alerts-shown="{len(alerts)}"' in body
    assert "data-pwned" not in body                                   # injected handlers never ran
    assert f"{len(alerts)} of {len(alerts)} alerts" in dom           # set by the filter code
    table = re.search(r'<table[^>]*id="alerts-table".*?</table>', dom, re.S).group(0)
    assert len(re.findall(r'<tr data-sev="\d"', table)) == len(alerts)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert dom.count("<script") == 1
    for cid in ("chart-sankey", "chart-timeline", "chart-dst-bytes", "chart-dst-records", "chart-orgs",
                "chart-countries", "chart-payload"):
        m = re.search(rf'<svg[^>]*id="{cid}".*?</svg>', dom, re.S)
        assert m, cid
        assert "<rect" in m.group(0) or "<path" in m.group(0), cid
    sankey = re.search(r'<svg[^>]*id="chart-sankey".*?</svg>', dom, re.S).group(0)
    assert sankey.count('class="band') >= 5 and "wms" in sankey and "Zhejiang Taobao" in sankey
    assert time.monotonic() - t0 < 30


@needs_chromium
def test_report_screenshot(real_report, tmp_path):
    path, _ = real_report
    shot = tmp_path / "report.png"
    p, console = _chromium(["--screenshot=" + str(shot), "--window-size=1400,2400", "--hide-scrollbars"],
                           path.as_uri(), tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert console == [], "\n".join(console)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (1400, 2400)
    assert len(data) > 50_000          # a rendered page, not a blank one
    keep = os.environ.get("INSPECTOR_REPORT_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)
