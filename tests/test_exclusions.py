"""Exclusions in the site file: scope (source host or role, destination domain/CIDR/ASN/group, data
classes), expiry (applied up to the end of the day, reported after it), one file:line error per bad
entry, and the shipped os-telemetry group."""
from __future__ import annotations

import json
import textwrap

import pytest

from inspector.enrich.groups import load_groups
from inspector.errors import ConfigError
from inspector.policy import PolicyEngine
from inspector.site import loads_site
from test_policy import CUSTOMERS, T0, _b32_queries, dns, flow, flows_only, rules, sids  # noqa: F401

DAY = 86400.0
#: 2025-11-24 (T0's day) and the day after
TODAY, TOMORROW = "2025-11-24", "2025-11-25"


def site(entries: str):
    return loads_site(textwrap.dedent("""\
        site: test
        local_nets: [172.20.0.0/16]
        roles: {172.20.10.0/24: office, 172.20.1.0/24: wms}
        exclusions:
        """) + textwrap.indent(textwrap.dedent(entries), "  "), "site.yaml")


def telemetry(i: int, **kw) -> dict:
    """A small upload of Windows diagnostic data from an office PC, every 5 minutes."""
    base = dict(src="172.20.10.31", dst="20.42.65.92", name="v10.events.data.microsoft.com", group="os-telemetry",
                category="telemetry", org="MICROSOFT-CORP-MSN-AS-BLOCK", asn=8075, ts=T0 + 300 * i, ob=2400 + i,
                rb=420, payload_type="tls-encrypted")
    base.update(kw)
    return flow(**base)


def engine_run(rules, s, events):
    eng = PolicyEngine(rules, s)
    out = []
    for kind, rec in events:
        out += eng.observe_flow(rec) if kind == "flow" else eng.observe_log(kind, rec)
    return out + eng.flush(final=True), eng


OS_TELEMETRY = f"""\
    - source: {{role: office}}
      destination: {{group: os-telemetry}}
      expires: {TOMORROW}
      owner: it-ops@example.com
      reason: Windows diagnostic data of the office PCs
    """


def test_telemetry_alerts_without_an_exclusion(rules):
    a, _ = engine_run(rules, site("[]"), flows_only(*(telemetry(i) for i in range(30))))
    assert 1000070 in sids(a) or 1000040 in sids(a)


def test_exclusion_by_group_and_role_keeps_telemetry_quiet(rules):
    a, eng = engine_run(rules, site(OS_TELEMETRY), flows_only(*(telemetry(i) for i in range(30))))
    assert a == []
    (st,) = eng.exclusion_stats()
    assert st == {"entry": "site.yaml:5", "owner": "it-ops@example.com", "expires": TOMORROW,
                  "reason": "Windows diagnostic data of the office PCs", "excused": 30, "after_expiry": 0}


def test_exclusion_scope_source(rules):
    # the same telemetry from a warehouse server (role wms) is not covered by an office-only entry
    fs = [telemetry(i, src="172.20.1.12") for i in range(30)]
    a, eng = engine_run(rules, site(OS_TELEMETRY), flows_only(*fs))
    assert a and eng.exclusion_stats()[0]["excused"] == 0
    by_host = OS_TELEMETRY.replace("{role: office}", "{host: [172.20.1.12, 172.20.10.0/24]}")
    a, _ = engine_run(rules, site(by_host), flows_only(*fs))
    assert a == []


@pytest.mark.parametrize("dest", ["{domain: events.data.microsoft.com}", "{cidr: 20.42.64.0/22}",
                                  "{asn: AS8075}", "{group: [other, os-telemetry]}"])
def test_exclusion_destination_kinds(rules, dest):
    a, _ = engine_run(rules, site(OS_TELEMETRY.replace("{group: os-telemetry}", dest)),
                      flows_only(*(telemetry(i) for i in range(30))))
    assert a == []


def test_exclusion_destination_mismatch(rules):
    entry = OS_TELEMETRY.replace("{group: os-telemetry}", "{domain: data.microsoft.example}")
    a, _ = engine_run(rules, site(entry), flows_only(*(telemetry(i) for i in range(30))))
    assert a


def test_exclusion_data_classes(rules):
    """Customer data to an excluded destination still alerts unless the entry names its classes."""
    leak = telemetry(0, data=dict(CUSTOMERS), records={"customer": 50, "shipment": 0})
    a, eng = engine_run(rules, site(OS_TELEMETRY), flows_only(leak))
    assert 1000001 in sids(a) and eng.exclusion_stats()[0]["excused"] == 0
    named = OS_TELEMETRY.replace("    expires:", "    data: [customer]\n      expires:")
    a, _ = engine_run(rules, site(named), flows_only(leak))
    assert a == []
    partial = OS_TELEMETRY.replace("    expires:", "    data: [email, phone]\n      expires:")
    a, _ = engine_run(rules, site(partial), flows_only(leak))
    assert 1000001 in sids(a)


def test_expired_exclusion_stops_applying_and_is_reported(rules):
    """Valid through the end of its day (UTC): flows of T0's day are excused, flows of the next day not."""
    entry = OS_TELEMETRY.replace(TOMORROW, TODAY)
    late = [telemetry(i, ts=T0 + DAY + 300 * i) for i in range(30)]
    early = [telemetry(i, ts=T0 - 8 * 3600 + 60 * i) for i in range(3)]
    a, eng = engine_run(rules, site(entry), flows_only(*early, *late))
    assert a and all(x["src_ip"] == "172.20.10.31" for x in a)
    st = eng.exclusion_stats()[0]
    assert st["excused"] == 3 and st["after_expiry"] == 30
    assert eng.stats()["exclusions"] == [st]


def test_dns_exclusion(rules):
    entry = """\
        - source: {host: 172.20.1.12}
          destination: {domain: tunnel.example.net}
          expires: 2030-01-01
          owner: secops
          reason: sanctioned DNS-over-DNS test channel
        """
    evs = [("dns", dns(q, dst="203.0.113.53", ts=T0 + i)) for i, q in enumerate(_b32_queries(40))]
    assert sids(engine_run(rules, site("[]"), evs)[0]) == [1000050]
    a, eng = engine_run(rules, site(entry), evs)
    assert a == [] and eng.exclusion_stats()[0]["excused"] == 40


@pytest.mark.parametrize("entry, line, message", [
    ("- destination: {group: x}\n  owner: a\n  reason: b\n", 5, "needs 'expires'"),
    ("- destination: {group: x}\n  expires: 2026-02-30\n  owner: a\n  reason: b\n", 6, "invalid date '2026-02-30'"),
    ("- destination: {grop: x}\n  expires: 2026-02-01\n  owner: a\n  reason: b\n", 5, "did you mean 'group'"),
    ("- destination: {group: x}\n  expires: 2026-02-01\n  owner: ''\n  reason: b\n", 7, "'owner' of an exclusion must not be empty"),
    ("- destination: {cidr: 10.1.2.3/8}\n  expires: 2026-02-01\n  owner: a\n  reason: b\n", 5, "did you mean 10.0.0.0/8"),
    ("- destination: {asn: AS99999999999}\n  expires: 2026-02-01\n  owner: a\n  reason: b\n", 5, "invalid asn"),
    ("- destination: {group: x}\n  data: [emails]\n  expires: 2026-02-01\n  owner: a\n  reason: b\n", 6,
     "unknown data class 'emails' in an exclusion (did you mean 'email'?)"),
    ("- source: {team: ops}\n  destination: {group: x}\n  expires: 2026-02-01\n  owner: a\n  reason: b\n", 5,
     "unknown key 'team'"),
    ("- destination: {group: x}\n  expires: 2026-02-01\n  owner: a\n  reason: b\n  ticket: 12\n", 9, "unknown key 'ticket'"),
    ("{group: x}\n", 5, "'exclusions' must be a list"),
])
def test_bad_entries_give_one_file_line_error(entry, line, message):
    with pytest.raises(ConfigError) as e:
        site(entry)
    text = str(e.value)
    assert text.startswith(f"site.yaml:{line}: ") and message in text and "\n" not in text, text


def test_shipped_os_telemetry_group():
    groups = load_groups()
    for name in ("v10.events.data.microsoft.com", "watson.telemetry.microsoft.com", "xp.apple.com",
                 "firebaselogging-pa.googleapis.com", "daisy.ubuntu.com", "incoming.telemetry.mozilla.org"):
        g = groups.match_domain(name)
        assert g is not None and g.id == "os-telemetry" and g.category == "telemetry", name
    # the vendors' other services stay in their own groups
    assert groups.match_domain("login.microsoftonline.com").id == "microsoft"
    assert groups.match_domain("www.apple.com").id != "os-telemetry"


def test_scan_reports_an_expired_exclusion(tmp_path):
    """End to end: the CLI writes the entry's figures to stats.json and warns on stderr."""
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    cap = repo / "captures" / "policy-beacon.pcap"
    s = (repo / "captures" / "site-dc-north.yaml").read_text() + textwrap.dedent("""\
        exclusions:
          - source: {host: 172.20.10.31}
            destination: {domain: telemetry-sync.example}
            expires: 2020-01-31
            owner: it-ops
            reason: vendor agent, approved until January 2020
        """)
    (tmp_path / "site.yaml").write_text(s)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "inspector", "scan", str(cap), "--site", str(tmp_path / "site.yaml"),
                        "--out", str(out), "--quiet"], capture_output=True, text=True, cwd=repo)
    assert r.returncode == 0, r.stderr
    st = json.loads((out / "stats.json").read_text())["exclusions"]
    # 125 beacon connections and the DNS queries that named the host, all after the expiry
    assert st[0]["entry"].endswith("site.yaml:6") and st[0]["excused"] == 0 and st[0]["after_expiry"] > 125
    assert f"exclusion expired on 2020-01-31 (owner it-ops): {st[0]['after_expiry']} flows" in r.stderr
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert any(a["alert"]["signature_id"] == 1000070 for a in alerts)
