"""Drill-down end to end: carve (tshark reads the slice back), explain, evidence packs.

The bundled captures are scanned once per module; slices are checked against flows.jsonl
(every packet of a connection, no other) by tshark, an independent reader.  A capture built
here with scapy adds what the bundled ones lack: a VXLAN tunnel, a VLAN tag and a connection
that runs on from one capture file into the next.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.evidence.wireshark import display_filter

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
SITE = str(CAPTURES / "site-dc-north.yaml")
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not on PATH")
SCANNED = ("content-f-ftp.pcap", "dc-north-ipv6-vlan.pcap", "dc-north-exfil.pcap", "content-a-http-json.pcap")


def _scan(inputs, out: Path, cwd: Path | None = None) -> None:
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        rc = main(["scan", *map(str, inputs), "--site", SITE, "--out", str(out), "--hash-salt", "evidence-test",
                   "-q"], env={})
    finally:
        os.chdir(old)
    assert rc == 0


def _flows(out: Path) -> list:
    return [json.loads(line) for line in (out / "flows.jsonl").read_text().splitlines()]


def _tshark(path: Path, *fields: str, display_filter: str | None = None) -> list:
    cmd = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    if display_filter:
        cmd += ["-Y", display_filter]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "out"
    _scan([CAPTURES / p for p in SCANNED], out)
    return out


def _carve(scanned, tmp_path, *args, rc=0, capsys=None):
    got = main(["carve", "--from", str(scanned), *args, "-q"], env={})
    assert got == rc
    return got


# --------------------------------------------------------------------------------------------
# capture field
# --------------------------------------------------------------------------------------------

def test_every_record_names_its_capture(scanned):
    names = {str(CAPTURES / p) for p in SCANNED}
    flows = _flows(scanned)
    assert flows and all(f["capture"] in names for f in flows)
    for log in ("ftp", "http", "dns", "tls", "content"):
        recs = [json.loads(x) for x in (scanned / f"{log}.jsonl").read_text().splitlines()]
        assert recs and all(r["capture"] in names for r in recs), log
    by_uid = {f["uid"]: f for f in flows}
    for r in (json.loads(x) for x in (scanned / "content.jsonl").read_text().splitlines()):
        f = by_uid[r["uid"]]
        assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], r["proto"]) == \
            (f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"], f["proto"])
        assert r["capture"] == f["capture"]
    alerts = [json.loads(x) for x in (scanned / "alerts.jsonl").read_text().splitlines()]
    assert alerts
    for a in alerts:
        assert a["capture"] in names and a["capture"] in a["captures"] and a["captures"] == sorted(a["captures"])
        assert set(a["captures"]) <= {by_uid[u]["capture"] for u in a["uids"] if u in by_uid} | set(a["captures"])


# --------------------------------------------------------------------------------------------
# carve
# --------------------------------------------------------------------------------------------

@needs_tshark
def test_carve_every_connection_matches_flows_jsonl(scanned, tmp_path):
    """Each connection carved on its own: tshark counts exactly orig_pkts + resp_pkts packets,
    all of them between the connection's endpoints, the first one commented with the uid."""
    flows = [f for f in _flows(scanned) if f["capture"].endswith(("content-f-ftp.pcap", "dc-north-ipv6-vlan.pcap",
                                                                  "dc-north-exfil.pcap"))]
    assert len(flows) >= 25
    for f in flows:
        out = tmp_path / f"{f['uid']}.pcapng"
        if "ftp" == f["service"]:
            continue      # carries its data channels too: checked below
        _carve(scanned, tmp_path, "--uid", f["uid"], "-o", str(out))
        rows = _tshark(out, "ipv6.addr", "ip.addr", "frame.comment")
        assert len(rows) == f["orig_pkts"] + f["resp_pkts"], f["uid"]
        for v6, v4, _c in rows:
            addrs = set((v6 or v4).split(","))
            assert {f["id.orig_h"], f["id.resp_h"]} <= addrs or addrs == {f["id.orig_h"]}, (f["uid"], addrs)
        assert f"inspector uid {f['uid']}" in rows[0][2]
        assert not any(r[2] for r in rows[1:])


@needs_tshark
def test_carve_ftp_brings_its_data_channels(scanned, tmp_path):
    flows = _flows(scanned)
    ctl = next(f for f in flows if f["service"] == "ftp")
    data = [f for f in flows if f["service"] == "ftp-data" and f["capture"] == ctl["capture"]
            and f["id.resp_h"] == ctl["id.orig_h"]]
    out = tmp_path / "ftp.pcapng"
    _carve(scanned, tmp_path, "--uid", ctl["uid"], "-o", str(out))
    rows = _tshark(out, "frame.comment", "tcp.port")
    comments = [r[0] for r in rows if r[0]]
    assert any(f"inspector uid {ctl['uid']}" in c for c in comments)
    linked = [f for f in data if any(f"inspector uid {f['uid']}" in c and f"ftp-data channel of {ctl['uid']}" in c
                                     for c in comments)]
    assert len(linked) == 1
    want = ctl["orig_pkts"] + ctl["resp_pkts"] + linked[0]["orig_pkts"] + linked[0]["resp_pkts"]
    assert len(rows) == want


@needs_tshark
def test_carve_keeps_timestamps_link_type_and_bytes(scanned, tmp_path):
    f = next(f for f in _flows(scanned) if f["vlan"] is not None)
    out = tmp_path / "v.pcapng"
    _carve(scanned, tmp_path, "--uid", f["uid"], "-o", str(out))
    src = f["capture"]
    got = _tshark(out, "frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols")
    filt = display_filter(f, span=(float(got[0][0]), float(got[-1][0])))
    assert f"vlan.id=={f['vlan']}" in filt
    want = _tshark(Path(src), "frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols", display_filter=filt)
    assert got == want and len(got) == f["orig_pkts"] + f["resp_pkts"]
    assert all(r[3].startswith("eth:ethertype:vlan") for r in got)
    assert {r[0] for r in _tshark(out, "frame.interface_name")} == {src}   # the interface names the capture


@needs_tshark
def test_carve_with_dns_adds_the_answer_that_named_the_destination(scanned, tmp_path):
    flows = _flows(scanned)
    dns = [json.loads(x) for x in (scanned / "dns.jsonl").read_text().splitlines()]
    f = next(f for f in flows if f["dst_name"] and f["dst_name_source"] in ("sni", "http", "dns")
             and any(f["id.resp_h"] in (d.get("answers") or ()) for d in dns))
    out = tmp_path / "dns.pcapng"
    _carve(scanned, tmp_path, "--uid", f["uid"], "--with-dns", "-o", str(out))
    rows = _tshark(out, "dns.flags.response", "dns.a", "dns.aaaa", "frame.comment")
    dns_rows = [r for r in rows if r[0]]
    assert dns_rows, "no DNS packet carved"
    assert any(f["id.resp_h"] in (r[1] + "," + r[2]).split(",") for r in dns_rows)
    assert len(rows) == f["orig_pkts"] + f["resp_pkts"] + len(dns_rows)
    assert any(f"DNS answer naming the destination of {f['uid']}" in r[3] for r in rows)


@needs_tshark
def test_carve_incident_and_alert_from_their_uids(scanned, tmp_path):
    """incidents.jsonl/alerts.jsonl name uids; carving them gives those uids' packets."""
    work = tmp_path / "out"
    shutil.copytree(scanned, work)
    flows = _flows(work)
    alerts = [json.loads(x) for x in (work / "alerts.jsonl").read_text().splitlines()]
    a = next(a for a in alerts if a["uids"])
    if "alert_id" not in a:        # a scan without alert ids: give them, as the incident stage does
        for k, al in enumerate(alerts):
            al["alert_id"] = f"A{k + 1}"
        (work / "alerts.jsonl").write_text("".join(json.dumps(al) + "\n" for al in alerts))
        a = alerts[alerts.index(a)]
    uids = list(a["uids"])
    if not (work / "incidents.jsonl").exists():
        (work / "incidents.jsonl").write_text(json.dumps({"incident_id": "INC-T1", "uids": uids,
                                                          "alert_ids": [a["alert_id"]]}) + "\n")
        iid = "INC-T1"
    else:
        iid = json.loads((work / "incidents.jsonl").read_text().splitlines()[0])["incident_id"]
        uids = json.loads((work / "incidents.jsonl").read_text().splitlines()[0])["uids"]
    by = {f["uid"]: f for f in flows}
    out = tmp_path / "inc.pcapng"
    assert main(["carve", "--from", str(work), "--incident", iid, "-o", str(out), "-q"], env={}) == 0
    rows = _tshark(out, "frame.comment")
    extra_ftp = [f for f in flows if f["service"] == "ftp-data" and f["uid"] not in uids
                 and any(by[u]["service"] == "ftp" for u in uids)]
    assert len(rows) >= sum(by[u]["orig_pkts"] + by[u]["resp_pkts"] for u in uids)
    if not extra_ftp:
        assert len(rows) == sum(by[u]["orig_pkts"] + by[u]["resp_pkts"] for u in uids)
    assert all(any(f"inspector uid {u}" in r[0] and f"incident {iid}" in r[0] for r in rows) for u in uids)
    out2 = tmp_path / "al.pcapng"
    assert main(["carve", "--from", str(work), "--alert", a["alert_id"], "-o", str(out2), "-q"], env={}) == 0
    rows = _tshark(out2, "frame.comment")
    assert len(rows) == sum(by[u]["orig_pkts"] + by[u]["resp_pkts"] for u in a["uids"])
    assert any(f"alert {a['alert_id']}" in r[0] for r in rows)


def test_carve_is_deterministic(scanned, tmp_path):
    f = _flows(scanned)[0]
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    _carve(scanned, tmp_path, "--uid", f["uid"], "-o", str(a))
    _carve(scanned, tmp_path, "--uid", f["uid"], "-o", str(b))
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------------------------
# tunnels, VLANs and connections that span capture files (built here with scapy)
# --------------------------------------------------------------------------------------------

def _tcp_session(src, dst, sport, dport, t0, payload=b"x" * 300, n=3):
    from scapy.layers.inet import IP, TCP
    s, d = 1000, 5000
    pk = [(t0, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=s)),
          (t0 + 0.01, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="SA", seq=d, ack=s + 1)),
          (t0 + 0.02, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=s + 1, ack=d + 1))]
    seq = s + 1
    for k in range(n):
        pk.append((t0 + 0.03 + k * 0.01, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=seq,
                                                                      ack=d + 1) / payload))
        seq += len(payload)
        pk.append((t0 + 0.035 + k * 0.01, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="A",
                                                                       seq=d + 1, ack=seq)))
    return pk


def _write(path, frames):
    from scapy.utils import wrpcap
    pkts = []
    for ts, p in frames:
        p.time = ts
        pkts.append(p)
    wrpcap(str(path), pkts)


@needs_tshark
def test_carve_tunnel_vlan_and_a_connection_spanning_two_files(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN
    t0 = 1764064800.0
    inner = _tcp_session("10.9.0.1", "10.9.0.2", 40000, 8080, t0)
    frames = [(ts, Ether() / IP(src="172.20.9.1", dst="172.20.9.2") / UDP(sport=49152, dport=4789) /
               VXLAN(vni=42) / Ether() / p) for ts, p in inner]
    plain = _tcp_session("172.20.1.50", "203.0.113.9", 41000, 443, t0 + 0.001)
    frames += [(ts, Ether() / Dot1Q(vlan=30) / p) for ts, p in plain]
    frames.sort(key=lambda x: x[0])
    span = [(ts, Ether() / p) for ts, p in _tcp_session("172.20.1.51", "203.0.113.10", 42000, 443, t0 + 1.0, n=4)]
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    _write(a, frames + span[:5])
    _write(b, span[5:])
    out = tmp_path / "out"
    _scan([a, b], out)
    flows = _flows(out)
    inn = next(f for f in flows if f["id.orig_h"] == "10.9.0.1")
    outer = next(f for f in flows if f["id.resp_p"] == 4789)
    assert inn["tunnel_parents"] == [outer["uid"]]
    vl = next(f for f in flows if f["id.orig_h"] == "172.20.1.50")
    sp = next(f for f in flows if f["id.orig_h"] == "172.20.1.51")
    assert sp["capture"] == str(a) and sp["orig_pkts"] + sp["resp_pkts"] == len(span)
    for f, proto in ((inn, "vxlan"), (vl, "vlan"), (sp, None)):
        p = tmp_path / f"{f['uid']}.pcapng"
        assert main(["carve", "--from", str(out), "--uid", f["uid"], "-o", str(p), "-q"], env={}) == 0
        rows = _tshark(p, "frame.protocols", "frame.interface_name")
        assert len(rows) == f["orig_pkts"] + f["resp_pkts"], f
        if proto:
            assert all(proto in r[0].split(":") for r in rows)
    rows = _tshark(tmp_path / f"{sp['uid']}.pcapng", "frame.interface_name")
    assert {r[0] for r in rows} == {str(a), str(b)}     # one interface per source capture


# --------------------------------------------------------------------------------------------
# hostile
# --------------------------------------------------------------------------------------------

def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("args,needle", [
    (["--uid", "CnotAUid000000000"], "unknown uid CnotAUid000000000"),
    (["--incident", "INC-nope"], "incidents.jsonl"),
    (["--alert", "A-nope"], "alert"),
])
def test_carve_unknown_ids(scanned, tmp_path, capsys, args, needle):
    capsys.readouterr()
    assert main(["carve", "--from", str(scanned), *args, "-o", str(tmp_path / "x.pcapng")], env={}) == 2
    assert needle in _one_error_line(capsys)
    assert not (tmp_path / "x.pcapng").exists()


def test_carve_unknown_incident_in_an_incident_file(scanned, tmp_path, capsys):
    work = tmp_path / "out"
    shutil.copytree(scanned, work)
    (work / "incidents.jsonl").write_text(json.dumps({"incident_id": "INC-1", "uids": []}) + "\n")
    capsys.readouterr()
    assert main(["carve", "--from", str(work), "--incident", "INC-2", "-o", str(tmp_path / "x.pcapng")], env={}) == 2
    assert "unknown incident INC-2" in _one_error_line(capsys)


def test_carve_capture_moved_or_changed(tmp_path, capsys):
    src = tmp_path / "caps"
    src.mkdir()
    shutil.copy(CAPTURES / "content-f-ftp.pcap", src / "ftp.pcap")
    out = tmp_path / "out"
    _scan(["caps/ftp.pcap"], out, cwd=tmp_path)            # named relative to the scan's directory
    uid = _flows(out)[0]["uid"]
    target = tmp_path / "s.pcapng"
    # relative names are found next to the output folder (scans run beside their captures)
    assert main(["carve", "--from", str(out), "--uid", uid, "-o", str(target), "-q"], env={}) == 0
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(src / "ftp.pcap"), moved / "ftp.pcap")
    capsys.readouterr()
    assert main(["carve", "--from", str(out), "--uid", uid, "-o", str(tmp_path / "m.pcapng")], env={}) == 2
    line = _one_error_line(capsys)
    assert "caps/ftp.pcap not found" in line and "--capture-root" in line
    assert main(["carve", "--from", str(out), "--uid", uid, "-o", str(tmp_path / "m.pcapng"), "-q",
                 "--capture-root", str(moved)], env={}) == 0
    assert (tmp_path / "m.pcapng").read_bytes() == target.read_bytes()
    # a capture that changed since the scan (cut short) is refused, not silently carved
    data = (moved / "ftp.pcap").read_bytes()
    (moved / "ftp.pcap").write_bytes(data[:len(data) // 2])
    capsys.readouterr()
    assert main(["carve", "--from", str(out), "--uid", uid, "-o", str(tmp_path / "c.pcapng"),
                 "--capture-root", str(moved)], env={}) == 2
    assert "changed since the scan" in _one_error_line(capsys)
    # not a scan folder
    assert main(["carve", "--from", str(tmp_path / "nothing"), "--uid", uid, "-o", str(tmp_path / "c.pcapng")],
                env={}) == 2
    assert "no such output directory" in _one_error_line(capsys)


# --------------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------------

def _explain(scanned, uid, *extra, capsys):
    capsys.readouterr()
    assert main(["explain", uid, "--from", str(scanned), *extra], env={}) == 0
    return capsys.readouterr().out


def _sni_flow(scanned):
    flows = _flows(scanned)
    dns = [json.loads(x) for x in (scanned / "dns.jsonl").read_text().splitlines()]
    return next(f for f in flows if f["dst_name_source"] == "sni" and f["direction"] == "outbound"
                and f["dst_asn"] and any(f["id.resp_h"] in (d.get("answers") or ()) for d in dns))


@needs_tshark
def test_explain_tells_the_attribution_chain_and_the_handshake(scanned, capsys, monkeypatch):
    import pyshark
    opened = []
    real = pyshark.FileCapture

    def spy(path, *a, **kw):                    # tshark through pyshark really dissects the slice
        opened.append(str(path))
        return real(path, *a, **kw)
    monkeypatch.setattr(pyshark, "FileCapture", spy)
    f = _sni_flow(scanned)
    text = _explain(scanned, f["uid"], capsys=capsys)
    assert len(opened) == 1 and opened[0].endswith(".pcapng")
    assert f"Connection {f['uid']}" in text
    assert f"{f['id.resp_h']} is {f['dst_name']} (named by sni)" in text
    assert "<- DNS:" in text and f"-> {f['id.resp_h']}" in text
    assert f"AS{f['dst_asn']}" in text and f["dst_org"] in text and f["dst_country"] in text
    assert f"destination group '{f['dst_group']}'" in text
    assert f"TLS Client Hello for {f['dst_name']}" in text and "TLS Server Hello" in text
    assert "via pyshark" in text
    assert f"tshark -r {f['capture']} -Y '" in text
    # the printed display filter shows exactly the connection's packets in the original capture
    filt = text.split("display filter: ", 1)[1].splitlines()[0]
    assert len(_tshark(Path(f["capture"]), "frame.number", display_filter=filt)) == f["orig_pkts"] + f["resp_pkts"]


@needs_tshark
def test_explain_json(scanned, capsys):
    f = next(f for f in _flows(scanned) if f["service"] == "http" and f["direction"] == "outbound")
    story = json.loads(_explain(scanned, f["uid"], "--json", capsys=capsys))
    assert story["uid"] == f["uid"] and story["capture"] == f["capture"]
    assert story["packets_carved"] == f["orig_pkts"] + f["resp_pkts"]
    d = story["dissection"]
    assert d["packets"] == story["packets_carved"] and "pyshark" in d["dissector"]
    whats = [w for s in d["steps"] if s["kind"] == "event" for w in s["what"]]
    assert any(w.startswith("HTTP POST ") for w in whats) and any(w.startswith("HTTP 20") for w in whats)
    assert whats[0] == "TCP SYN"
    assert story["payload"]["records"]["customer"] > 0
    assert story["attribution"]["address"] == f["id.resp_h"]
    assert story["wireshark"]["display_filter"].startswith("((ip.src==")


@needs_tshark
def test_explain_shows_no_raw_personal_data(tmp_path, capsys):
    """A scan with --show-raw writes raw samples to content.jsonl; explain still masks them."""
    out = tmp_path / "raw"
    rc = main(["scan", str(CAPTURES / "content-j-smtp-attachment.pcap"), str(CAPTURES / "content-a-http-json.pcap"),
               "--site", SITE, "--out", str(out), "--show-raw", "-q"], env={})
    assert rc == 0
    content = [json.loads(x) for x in (out / "content.jsonl").read_text().splitlines()]
    raw = {v for r in content for vals in r["samples"].values() for v in vals if len(v) >= 6}
    assert raw
    for r in content:
        text = _explain(out, r["uid"], capsys=capsys) + _explain(out, r["uid"], "--json", capsys=capsys)
        leaked = [v for v in raw if v in text]
        assert not leaked, leaked[:3]
        assert "***" in text


def test_explain_unknown_uid(scanned, capsys):
    capsys.readouterr()
    assert main(["explain", "Cnope", "--from", str(scanned)], env={}) == 2
    assert "unknown uid Cnope" in _one_error_line(capsys)


# --------------------------------------------------------------------------------------------
# evidence packs
# --------------------------------------------------------------------------------------------

def _with_incident(scanned, tmp_path) -> tuple:
    """A copy of the scan with an incident: the real incidents.jsonl when the scan wrote one,
    else one made of the first alert with customer records (as the incident stage would)."""
    work = tmp_path / "out"
    shutil.copytree(scanned, work)
    if (work / "incidents.jsonl").exists():
        inc = json.loads((work / "incidents.jsonl").read_text().splitlines()[0])
        return work, inc
    alerts = [json.loads(x) for x in (work / "alerts.jsonl").read_text().splitlines()]
    for k, al in enumerate(alerts):
        al.setdefault("alert_id", f"A{k + 1}")
    (work / "alerts.jsonl").write_text("".join(json.dumps(al) + "\n" for al in alerts))
    a = next(a for a in alerts if a["records"]["customer"] and a["app_proto"] == "http")
    inc = {"incident_id": "INC-E1", "uids": a["uids"], "alert_ids": [a["alert_id"]], "captures": a["captures"]}
    (work / "incidents.jsonl").write_text(json.dumps(inc) + "\n")
    return work, inc


def _signature_hash(d: Path) -> str:
    import hashlib
    lines = sorted((p.relative_to(d).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
                   for p in d.rglob("*") if p.is_file() and not any(x.startswith(".") or x == "__pycache__"
                                                                    for x in p.relative_to(d).parts))
    return hashlib.sha256("".join(f"{r}\0{h}\n" for r, h in lines).encode()).hexdigest()


@needs_tshark
def test_evidence_pack_verifies_and_is_reproducible(scanned, tmp_path, capsys):
    import hashlib
    import zipfile
    import inspector
    work, inc = _with_incident(scanned, tmp_path)
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    sig = REPO / "signatures"
    for z in (a, b):
        assert main(["evidence", "--incident", inc["incident_id"], "--from", str(work), "-o", str(z),
                     "--signatures", str(sig), "-q"], env={}) == 0
    assert a.read_bytes() == b.read_bytes()            # same input, same bytes (manifest included)
    with zipfile.ZipFile(a) as z:
        names = z.namelist()
        assert names == sorted(names)
        assert {"packets.pcapng", "incident.json", "alerts.jsonl", "flows.jsonl", "content.jsonl",
                "attribution.json", "manifest.json", "README.txt"} <= set(names)
        assert any(n.startswith("logs/") for n in names)
        man = json.loads(z.read("manifest.json"))
        # every file's sha256 recomputed
        assert set(man["files"]) == set(names) - {"manifest.json"}
        for n in man["files"]:
            data = z.read(n)
            assert hashlib.sha256(data).hexdigest() == man["files"][n]["sha256"] and len(data) == man["files"][n]["bytes"]
        # each source capture's sha256 recomputed
        assert man["captures"] and {c["capture"] for c in man["captures"]} >= set(inc.get("captures") or ())
        for c in man["captures"]:
            assert hashlib.sha256(Path(c["capture"]).read_bytes()).hexdigest() == c["sha256"]
        assert man["inspector_version"] == inspector.__version__
        assert man["signatures"]["sha256"] == _signature_hash(sig)
        assert json.loads(z.read("incident.json"))["incident_id"] == inc["incident_id"]
        assert all(i["date_time"] == (1980, 1, 1, 0, 0, 0) for i in
                   ({"date_time": zi.date_time} for zi in z.infolist()))
        flows = [json.loads(x) for x in z.read("flows.jsonl").decode().splitlines()]
        assert set(inc["uids"]) <= {f["uid"] for f in flows}
        content = [json.loads(x) for x in z.read("content.jsonl").decode().splitlines()]
        assert content and all(r["hashes"] for r in content)
        assert all("***" in v for r in content for vals in r["samples"].values() for v in vals)
        chain = json.loads(z.read("attribution.json"))
        assert chain and all("address" in c and "uids" in c for c in chain)
        pcap = tmp_path / "p.pcapng"
        pcap.write_bytes(z.read("packets.pcapng"))
    rows = _tshark(pcap, "frame.comment", "dns.id")
    dns_uids = {r[0].split(";")[0].split()[-1] for r in rows if "DNS answer naming the destination of" in r[0]}
    conn = [f for f in flows if f["uid"] not in dns_uids]
    assert {f["uid"] for f in conn} >= set(inc["uids"])
    assert len([r for r in rows if not r[1]]) == sum(f["orig_pkts"] + f["resp_pkts"] for f in conn)
    assert man["packets"] == len(rows)


def test_evidence_unknown_incident(scanned, tmp_path, capsys):
    work, _inc = _with_incident(scanned, tmp_path)
    capsys.readouterr()
    assert main(["evidence", "--incident", "INC-none", "--from", str(work), "-o", str(tmp_path / "x.zip")],
                env={}) == 2
    assert "unknown incident INC-none" in _one_error_line(capsys)
    assert not (tmp_path / "x.zip").exists()


@needs_tshark
def test_carve_brings_every_fragment_of_a_reassembled_datagram(tmp_path):
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import Ether
    t0 = 1764064800.0
    big = IP(src="172.20.1.60", dst="203.0.113.20", id=4242) / UDP(sport=40500, dport=5000) / (b"A" * 3000)
    frags = fragment(big, fragsize=1000)
    assert len(frags) == 4
    frames = [(t0 + k * 0.001, Ether() / f) for k, f in enumerate(frags)]
    frames.append((t0 + 0.01, Ether() / IP(src="203.0.113.20", dst="172.20.1.60") / UDP(sport=5000, dport=40500) /
                   b"ok"))
    frames.append((t0 + 0.02, Ether() / IP(src="172.20.1.70", dst="203.0.113.20") / UDP(sport=40600, dport=5000) /
                   b"other"))
    pcap = tmp_path / "frag.pcap"
    _write(pcap, frames)
    out = tmp_path / "out"
    _scan([pcap], out)
    f = next(f for f in _flows(out) if f["id.orig_p"] == 40500)
    assert f["orig_pkts"] == 1 and f["resp_pkts"] == 1      # the datagram counts once, as in Zeek
    slice_ = tmp_path / "s.pcapng"
    assert main(["carve", "--from", str(out), "--uid", f["uid"], "-o", str(slice_), "-q"], env={}) == 0
    rows = _tshark(slice_, "ip.id", "ip.frag_offset", "udp.srcport")
    assert len(rows) == 5                                    # all four fragments and the reply
    assert sorted(int(r[1] or 0) for r in rows if r[0] == "0x1092") == [0, 125, 250, 375]
    assert not any(r[2] == "40600" for r in rows)
