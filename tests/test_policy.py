"""Policy stage: rule validation, the default policy on synthetic flows and logs, windows, detectors,
alerts and --fail-on semantics.  Records are plain dicts shaped like flows.jsonl / dns.jsonl /
content.jsonl records."""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import textwrap

import pytest

from inspector.errors import ConfigError
from inspector.cli import signatures as signatures_cli
from inspector.cli.options import severity_arg
from inspector.policy import SEVERITIES, PolicyEngine, check, exit_status, load_rules, loads_rules
from inspector.policy.detectors import beacon_score, label_entropy, mask_qname
from inspector.policy.rules import check_rules, default_rules_dir, parse_duration, parse_size
from inspector.scan import FLOW_FIELDS
from inspector.site import loads_site

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGS = os.path.join(REPO, "signatures")
T0 = 1_764_000_000.0

SITE = loads_site(textwrap.dedent("""\
    site: dc-test
    local_nets: [172.20.0.0/16]
    roles: {172.20.1.0/24: wms, 172.20.50.0/24: scanner, 172.20.2.0/24: backup}
    allowed_destinations: [ups.com, dhl.com, 198.51.100.0/24]
"""), "site.yaml")

_uid = iter(range(1, 10**9))


def uid() -> str:
    return f"C{next(_uid):017d}"


def flow(*, src="172.20.1.10", dst="203.0.113.10", sport=50000, dport=443, ts=T0, direction="outbound",
         proto="tcp", service="ssl", ob=1000, rb=1000, op=10, rp=10, duration=1.0, name=None, country=None,
         asn=None, org=None, group=None, category=None, allowed=False, payload_type=None, payload_types=None,
         data=None, records=None, edm=None, u=None) -> dict:
    """A flows.jsonl-shaped record."""
    rec = {k: None for k in FLOW_FIELDS}
    local_orig = direction in ("outbound", "internal")
    local_resp = direction in ("inbound", "internal")
    rec.update({
        "ts": ts, "uid": u or uid(), "id.orig_h": src, "id.orig_p": sport, "id.resp_h": dst, "id.resp_p": dport,
        "proto": proto, "service": service, "duration": duration, "orig_bytes": ob, "resp_bytes": rb,
        "conn_state": "SF", "local_orig": local_orig, "local_resp": local_resp, "missed_bytes": 0,
        "orig_pkts": op, "resp_pkts": rp, "orig_ip_bytes": ob + 40 * op, "resp_ip_bytes": rb + 40 * rp,
        "tunnel_parents": [], "ip_proto": {"tcp": 6, "udp": 17, "icmp": 1}[proto],
        "community_id": "1:" + base64.b64encode(os.urandom(20)).decode(), "direction": direction,
        "dst_name": name, "dst_name_source": "sni" if name else None, "dst_country": country, "dst_asn": asn,
        "dst_org": org, "dst_group": group, "dst_category": category, "dst_allowed": allowed,
        "payload_type": payload_type, "payload_types": payload_types or ([payload_type] if payload_type else []),
        "payload_encoding": None, "app_bytes_out": ob if local_orig else rb,
        "data": data or {}, "records": records or {"customer": 0, "shipment": 0}, "edm": edm or {},
    })
    return rec


def content(f: dict, samples: dict) -> dict:
    """The content.jsonl record of a flow (written before the flow record)."""
    return {"ts": f["ts"], "uid": f["uid"], "direction": f["direction"], "payload_type": f["payload_type"],
            "payload_types": f["payload_types"], "payload_encoding": None, "app_bytes_out": f["app_bytes_out"],
            "data": f["data"], "records": f["records"], "samples": samples, "hashes": {}, "edi": [],
            "edi_counts": {}, "edm": f["edm"]}


def dns(query, *, src="172.20.1.12", dst="172.20.0.53", ts=T0, u=None, sport=53000) -> dict:
    return {"ts": ts, "uid": u or uid(), "id.orig_h": src, "id.orig_p": sport, "id.resp_h": dst, "id.resp_p": 53,
            "proto": "udp", "trans_id": 1, "query": query.lower(), "qclass": 1, "qtype": 1, "qtype_name": "A",
            "rcode": 0, "rcode_name": "NOERROR", "answers": None, "original_query": query}


FOREIGN = dict(dst="47.246.23.17", name="dc-sync.oss-ap-southeast-1.aliyuncs.com", country="SG", asn=45102,
               org="Alibaba US Technology Co., Ltd.", group="alibaba-cloud", category="foreign-cloud")
UNKNOWN = dict(dst="203.0.113.80", name="api.freight-hub.example")
UPS = dict(dst="153.2.238.50", name="api.ups.com", country="US", asn=12217, org="UNITED PARCEL SERVICE",
           group="ups", category="carrier", allowed=True)
CUSTOMERS = {"email": 50, "person_name": 50, "phone": 50, "postal_address": 50}
SHIPMENTS = {"sscc": 40, "tracking_ups": 40}


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def run(rules, events, site=SITE, **kw):
    """Feed ("flow"|"dns"|"content", record) events; returns every alert including the final flush."""
    eng = PolicyEngine(rules, site, **kw)
    out = []
    for kind, rec in events:
        if kind == "flow":
            out += eng.observe_flow(rec)
        else:
            out += eng.observe_log(kind, rec)
    out += eng.flush(final=True)
    return out


def sids(alerts) -> list:
    return sorted(a["alert"]["signature_id"] for a in alerts)


def flows_only(*recs):
    return [("flow", r) for r in recs]


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------

def write(tmp_path, name, text) -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_shipped_signatures_are_valid(rules):
    assert check(SIGS) == []
    assert check_rules(default_rules_dir()) == []
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids)) and all(1_000_000 <= i <= 1_099_999 for i in ids)
    for r in rules:
        assert r.message and r.references and r.severity in (1, 2, 3, 4)


def test_validation_problems_have_exact_file_and_line(tmp_path):
    p = write(tmp_path, "site.yaml", """\
        - id: 2000001
          message: ok
          severity: high
          treshold: {bytes_out: 1MB}
        - id: 1234
          message: out of range
          severity: high
          match: {direction: outbound}
        - id: 2000002
          message: bad values
          severity: urgent
          match:
            direction: outgoing
            data: [emails]
            destination: {category: foreign_cloud, country: [CHN], asn: [ASX], host: [10.0.0.1/8]}
          threshold:
            bytes_out: 10XB
            byte_in: 5
            flows: 3
            duration: {min: 2h, max: 1h}
        - id: 2000001
          message: duplicate
          severity: low
          match: {proto: tcp}
        - id: 2000003
          message: nothing to match
          severity: low
        - id: 2000004
          message: aggregate problems
          severity: 3
          aggregate:
            window: soon
            group_by: [src_host, dst_organisation]
            threshold: {flows: 3}
        - id: 2000005
          message: detector problems
          severity: medium
          detector: dns-tunnel
        - id: 2000006
          message: params problems
          severity: medium
          detector: beacon
          params: {min_score: high, windw: 1h}
    """)
    problems = check_rules(p)
    assert problems == [
        f"{p}:4: unknown key 'treshold' in a rule (did you mean 'threshold'?)",
        f"{p}:5: id 1234 is out of range: use 2000000-2999999 for site rules (1000000-1099999 is the default policy)",
        f"{p}:11: invalid severity 'urgent': use critical, high, medium, low (or 1-4, 1 = critical)",
        f"{p}:13: unknown direction 'outgoing' (did you mean 'outbound'?)",
        f"{p}:14: unknown data class 'emails' (did you mean 'email'?)",
        f"{p}:15: unknown category 'foreign_cloud' (did you mean 'foreign-cloud'?)",
        f"{p}:15: invalid country 'CHN': use a two-letter ISO 3166-1 code like 'CN'",
        f"{p}:15: invalid AS number 'ASX' (must be AS1..AS4294967295)",
        f"{p}:15: invalid CIDR '10.0.0.1/8' in 'destination.host': host bits set (did you mean 10.0.0.0/8?)",
        f"{p}:17: invalid size '10XB' for 'bytes_out': use a number of bytes or a size like 64KB, 10MB (K = 1024)",
        f"{p}:18: unknown metric 'byte_in' in 'threshold' (did you mean 'bytes_in'?) "
        "(or data.<class>, records.customer, records.shipment)",
        f"{p}:19: metric 'flows' exists only over several flows: put it in 'aggregate.threshold'",
        f"{p}:20: threshold of 'duration': min is greater than max",
        f"{p}:21: duplicate rule id 2000001 (first defined at line 1)",
        f"{p}:25: rule 2000003 has no 'match', 'threshold', 'aggregate' or 'detector': it would fire on every flow",
        f"{p}:32: invalid duration 'soon' for 'aggregate.window': use seconds or a duration like 90s, 15m, 6h, 1d",
        f"{p}:33: unknown group_by key 'dst_organisation' (did you mean 'dst_org'?)",
        f"{p}:38: unknown detector 'dns-tunnel' (did you mean 'dns_tunnel'?)",
        f"{p}:43: unknown key 'windw' in the params of detector beacon (did you mean 'window'?)",
        f"{p}:43: parameter 'min_score' of detector beacon must be a number, got a string",
    ]
    with pytest.raises(ConfigError) as e:
        load_rules(p)
    assert str(e.value) == problems[0]


def test_validation_across_files_and_yaml_errors(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    a = write(d, "a.yaml", """\
        - id: 2000010
          message: first
          severity: low
          match: {direction: outbound}
    """)
    b = write(d, "b.yaml", """\
        # comment
        - id: 2000010
          message: again
          severity: low
          match: {direction: outbound}
    """)
    c = write(d, "c.yaml", "- id: 2000011\n  message: [unclosed\n")
    e = write(d, "e.yaml", "id: 2000012\n")
    assert check_rules(str(d)) == [
        f"{b}:2: duplicate rule id 2000010 (first defined at {a}:1)",
        f"{c}:3: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)",
        f"{e}:1: a rule file must be a list of rules, got a mapping",
    ]
    assert check_rules(str(tmp_path / "missing")) == [f"{tmp_path / 'missing'}: no such rule file or directory"]


def test_valid_site_rule_forms():
    rules = loads_rules(textwrap.dedent("""\
        - id: 2000020
          name: to-norway
          message: Norway
          severity: 2
          match:
            direction: outbound
            destination: {country: [NO, se], asn: [AS64500, 64501], org: "*alibaba*", name: "*.aliyuncs.com"}
          threshold: {bytes_out: 1.5MiB, duration: 1h30m, data.customer: 1, out_in_ratio: {min: 2, max: 1000}}
          enabled: false
    """))
    r = rules[0]
    assert r.severity == 2 and r.severity_name == "high" and not r.enabled
    assert r.match.destination.countries == {"NO", "SE"} and r.match.destination.asns == {64500, 64501}
    assert r.threshold["bytes_out"] == (1.5 * 1024 * 1024, None)
    assert r.threshold["duration"] == (5400.0, None)
    assert r.threshold["out_in_ratio"] == (2.0, 1000.0)
    assert parse_size("64KB") == 65536 and parse_size(10) == 10
    assert parse_duration("15m") == 900 and parse_duration("1d") == 86400
    with pytest.raises(ValueError):
        parse_duration("1h 30x")


def test_check_covers_destinations_and_cli(tmp_path, capsys):
    sig = tmp_path / "sig"
    shutil.copytree(SIGS, sig, ignore=shutil.ignore_patterns("README.md"))
    bad_rule = write(sig / "rules", "site.yaml", """\
        - id: 2000030
          message: typo
          severity: low
          match: {directon: outbound}
    """)
    bad_group = write(sig / "destinations", "zz-site.yaml", """\
        - group: acme
          category: carier
          domains: [acme.example]
    """)
    expected = [
        f"{bad_rule}:4: unknown key 'directon' in 'match' (did you mean 'direction'?)",
        f"{bad_group}:2: unknown category 'carier' (did you mean 'carrier'?)",
    ]
    assert check(str(sig)) == expected

    parser = argparse.ArgumentParser(prog="inspector")
    sub = parser.add_subparsers(dest="command")
    signatures_cli.add_parser(sub)
    args = parser.parse_args(["signatures", "check", str(sig)])
    assert signatures_cli.run(args, {}) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == expected
    assert signatures_cli.run(parser.parse_args(["signatures", "check", SIGS]), {}) == 0
    assert "OK" in capsys.readouterr().out
    assert signatures_cli.run(parser.parse_args(["signatures"]), {}) == 2


# ----------------------------------------------------------------------------------------------
# every default rule fires ...
# ----------------------------------------------------------------------------------------------

def test_1000001_customer_records_with_masked_evidence(rules):
    f = flow(**UNKNOWN, dport=80, service="http", payload_type="json", ob=60000, rb=200, data=CUSTOMERS,
             records={"customer": 50, "shipment": 0})
    raw = {"email": ["alice.smith@example.org", "bob@example.com"], "phone": ["+33612345678"]}   # --show-raw
    eng = PolicyEngine(rules, SITE)
    eng.observe_log("content", content(f, raw))
    alerts = eng.observe_flow(f)             # per-flow rules fire at once
    assert sids(alerts) == [1000001]
    a = alerts[0]
    assert a["evidence"]["samples"]["email"] == ["a***@e***.org", "b***@e***.com"]
    text = json.dumps(a)
    assert "alice.smith" not in text and "12345678" not in text
    assert a["uids"] == [f["uid"]] and a["community_id"] == f["community_id"]
    assert a["src_ip"] == "172.20.1.10" and a["dest_ip"] == UNKNOWN["dst"] and a["proto"] == "TCP"
    assert a["app_proto"] == "http" and a["event_type"] == "alert"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000", a["timestamp"])
    assert a["alert"]["severity"] == SEVERITIES["high"] and a["alert"]["signature_id"] == 1000001
    assert a["destination"]["name"] == UNKNOWN["name"] and a["destination"]["allowed"] is False
    assert a["records"] == {"customer": 50, "shipment": 0} and a["data"] == CUSTOMERS
    assert a["bytes_out"] == 60000 and a["bytes_in"] == 200
    assert eng.flush(final=True) == []


def test_1000001_active_ftp_data_inbound_connection(rules):
    # active-mode FTP: the server connects to us, we send the file
    f = flow(src="192.0.2.21", sport=20, dst="172.20.1.12", dport=54191, direction="inbound", service="ftp-data",
             ob=0, rb=20904, payload_type="csv", data=CUSTOMERS, records={"customer": 200, "shipment": 0})
    a = run(rules, flows_only(f))
    assert sids(a) == [1000001]
    assert (a[0]["src_ip"], a[0]["dest_ip"], a[0]["bytes_out"]) == ("172.20.1.12", "192.0.2.21", 20904)


def test_1000002_customer_identifiers_without_records(rules):
    f = flow(**UNKNOWN, dport=53, proto="udp", service="dns", payload_type="text", data={"email": 40})
    assert sids(run(rules, flows_only(f))) == [1000002]


def test_1000003_edm_rows(rules):
    f = flow(**UNKNOWN, service="http", payload_type="csv", data={"email": 12}, edm={"customers.edm": 12})
    assert sids(run(rules, flows_only(f))) == [1000002, 1000003]


def test_1000004_bulk_customer_records_per_country_window(rules):
    evs = []
    for i in range(11):
        evs.append(("flow", flow(src=f"172.20.1.{10 + i}", dst=f"203.0.113.{i + 1}", ts=T0 + i * 3600,
                                 country="CN", payload_type="csv", service="http", data={"email": 100},
                                 records={"customer": 100, "shipment": 0})))
    a = run(rules, evs)
    bulk = [x for x in a if x["alert"]["signature_id"] == 1000004]
    assert len(bulk) == 1 and sids(a).count(1000001) == 11
    assert bulk[0]["flows"] == 11 and len(bulk[0]["uids"]) == 11 and bulk[0]["records"]["customer"] == 1100
    assert bulk[0]["window"]["group"] == {"site": "dc-test", "dst_country": "CN"}
    # the same volume split over two countries stays under the threshold of each group
    for i, (_k, r) in enumerate(evs):
        r["dst_country"] = "CN" if i % 2 else "RU"
    assert 1000004 not in sids(run(rules, evs))


def test_1000010_shipment_records_to_foreign_cloud(rules):
    f = flow(**FOREIGN, payload_type="json", data=SHIPMENTS, records={"customer": 0, "shipment": 40})
    assert sids(run(rules, flows_only(f))) == [1000010]


def test_1000011_shipment_identifiers_to_unknown(rules):
    f = flow(**UNKNOWN, payload_type="text", service="http", data={"sscc": 25})
    assert sids(run(rules, flows_only(f))) == [1000011]


def test_1000020_edi_to_unlisted(rules):
    f = flow(dst="192.0.2.56", dport=5000, service=None, payload_type="x12", data={"x12_transaction": 2})
    assert sids(run(rules, flows_only(f))) == [1000020]


def test_1000030_encrypted_upload_with_asymmetry(rules):
    f = flow(**FOREIGN, payload_type="tls-encrypted", ob=401515, rb=5221, op=300, rp=40)
    a = run(rules, flows_only(f))
    assert sids(a) == [1000030]
    assert a[0]["app_proto"] == "tls" and a[0]["destination"]["group"] == "alibaba-cloud"
    assert a[0]["evidence"]["thresholds"] == {"bytes_out": 401515, "out_in_ratio": 76.904}


def test_1000033_hidden_name_upload_to_foreign_cloud(rules):
    f = flow(**FOREIGN, payload_type="tls-encrypted", ob=100 << 10, rb=2000, op=80, rp=20)
    assert sids(run(rules, flows_only(f))) == []                    # below 1000030's 256 KB, no ECH
    f["ech"], f["facts"] = True, ["tls.ech"]
    a = run(rules, flows_only(f))
    assert sids(a) == [1000033] and a[0]["alert"]["severity"] == 4
    small = dict(f, orig_bytes=4000, uid=uid())                     # ECH by itself is not a finding
    assert sids(run(rules, flows_only(small))) == []


def test_1000031_encrypted_uploads_per_org(rules):
    fs = [flow(**UNKNOWN, ts=T0 + i * 300, payload_type="tls-encrypted", ob=3 << 20, rb=100 << 10)
          for i in range(4)]
    a = run(rules, flows_only(*fs))
    assert sids(a) == [1000030] * 4 + [1000031]


def test_1000032_upload_volume_per_registered_domain(rules):
    fs = [flow(dst=f"203.0.113.{20 + i}", name=f"node{i}.files.example.com", service="http", payload_type="binary",
               ob=60 << 20, rb=10 << 10, ts=T0 + i * 600) for i in range(2)]
    a = run(rules, flows_only(*fs))
    assert sids(a) == [1000032]
    assert a[0]["window"]["group"] == {"src_host": "172.20.1.10", "registered_domain": "example.com"}
    assert a[0]["uids"] == [f["uid"] for f in fs]


def test_1000040_slow_drip(rules):
    rnd = random.Random(4)
    fs = [flow(**FOREIGN, ts=T0 + i * 900 + rnd.uniform(-60, 60), payload_type="tls-encrypted",
               ob=6500 + rnd.randint(0, 700), rb=800) for i in range(6)]
    a = run(rules, flows_only(*fs))
    assert sids(a) == [1000040]
    assert a[0]["evidence"]["slow_drip"]["uploads"] == 6 and a[0]["flows"] == 6


def _b32_queries(n, domain="t.tunnel.example.net"):
    rnd = random.Random(7)
    out = []
    for i in range(n):
        payload = bytes(rnd.randrange(256) for _ in range(24))
        out.append(f"{base64.b32encode(payload).decode().rstrip('=').lower()}.{i:04x}.{domain}")
    return out


def test_1000050_dns_tunnel_through_the_site_resolver(rules):
    evs = []
    for i, q in enumerate(_b32_queries(40)):
        t = T0 + i * 0.5
        evs.append(("dns", dns(q, src="172.20.1.12", dst="172.20.0.53", ts=t)))        # client -> resolver
        evs.append(("dns", dns(q, src="172.20.0.53", dst="9.9.9.9", ts=t + 0.001)))    # the resolver forwards
    a = run(rules, evs)
    assert sids(a) == [1000050]
    d = a[0]
    assert d["src_ip"] == "172.20.1.12" and d["dest_ip"] == "172.20.0.53" and d["app_proto"] == "dns"
    assert d["destination"]["name"] == "example.net"
    ev = d["evidence"]["dns"]
    assert ev["unique_subdomains"] == 40 and ev["encoded_subdomains"] == 40 and ev["via_resolver"]
    # the client's 40 queries, and the resolver's 40 outbound legs that carried the same names out
    assert "encoded_labels" in ev["reasons"] and len(d["uids"]) == 80 and ev["resolver_legs"] == 40
    assert d["flows"] == 0                     # no flow records in this test: the legs add no bytes
    assert all("***" in x for x in ev["examples"])


def test_1000050_dns_tunnel_direct_with_content_evidence(rules):
    u = uid()
    evs = [("dns", dns(q, src="172.20.1.12", dst="203.0.113.53", ts=T0 + i, u=u))
           for i, q in enumerate(_b32_queries(30))]
    f = flow(src="172.20.1.12", dst="203.0.113.53", dport=53, proto="udp", service="dns", ts=T0, duration=30,
             payload_type="text", data={"email": 30}, u=u)
    evs += [("content", content(f, {"email": ["carol@example.com"]})), ("flow", f)]
    a = run(rules, evs)
    assert sids(a) == [1000002, 1000050]
    d = [x for x in a if x["alert"]["signature_id"] == 1000050][0]
    assert d["community_id"] == f["community_id"] and d["data"] == {"email": 30}
    assert d["evidence"]["samples"] == {"email": ["c***@e***.com"]}


def test_1000060_icmp_tunnel(rules):
    big = flow(dst="203.0.113.99", proto="icmp", service=None, sport=8, dport=0, ob=50 * 900, rb=50 * 64,
               op=50, rp=50, duration=50)
    assert sids(run(rules, flows_only(big))) == [1000060]
    variable = flow(dst="203.0.113.99", proto="icmp", service=None, sport=8, dport=0, ob=20 * 56 + 13,
                    rb=20 * 56 + 13, op=20, rp=20)
    a = run(rules, flows_only(variable))
    assert sids(a) == [1000060] and a[0]["evidence"]["icmp"]["reasons"] == ["variable_payload"]
    mismatch = flow(dst="203.0.113.99", proto="icmp", service=None, sport=8, dport=0, ob=20 * 64, rb=20 * 120,
                    op=20, rp=20)
    assert sids(run(rules, flows_only(mismatch))) == [1000060]


def test_1000070_beacon(rules):
    fs = [flow(**UNKNOWN, ts=T0 + i * 300, ob=512, rb=2048, payload_type="tls-encrypted") for i in range(30)]
    a = run(rules, flows_only(*fs))
    assert sids(a) == [1000070]
    assert a[0]["evidence"]["beacon"]["score"] >= 0.9 and len(a[0]["uids"]) == 30


def test_1000080_long_connection(rules):
    f = flow(**UNKNOWN, duration=2 * 3600, ob=40000, rb=40000, payload_type="tls-encrypted")
    a = run(rules, flows_only(f))
    assert sids(a) == [1000080] and a[0]["alert"]["severity"] == 4


def test_every_default_rule_is_exercised(rules):
    here = open(__file__).read()
    for r in rules:
        assert f"def test_{r.id}_" in here, f"no test fires rule {r.id}"


# ----------------------------------------------------------------------------------------------
# ... and benign look-alikes do not
# ----------------------------------------------------------------------------------------------

def test_benign_look_alikes_raise_nothing(rules):
    rnd = random.Random(1)
    evs = []
    # internal transfer of customer data (WMS -> backup host) and internal backups
    evs.append(("flow", flow(dst="172.20.2.20", dport=80, direction="internal", service="http", ob=300 << 20, rb=200,
                             payload_type="csv", data=CUSTOMERS, records={"customer": 5000, "shipment": 0},
                             duration=4000)))
    evs.append(("flow", flow(dst="172.20.2.20", dport=873, direction="internal", service=None, ob=900 << 20,
                             rb=5000, duration=3 * 3600)))
    # allow-listed carrier: labels with customer and shipment data
    for i in range(12):
        evs.append(("flow", flow(**UPS, ts=T0 + i * 300, ob=3000, rb=20000, payload_type="json", data={
            **CUSTOMERS, **SHIPMENTS}, records={"customer": 40, "shipment": 40})))
    # web pages with e-mail addresses come in: nothing leaves (outbound browsing, and an inbound connection)
    evs.append(("flow", flow(dst="203.0.113.120", dport=80, service="http", ob=205, rb=400_000,
                             name="www.parts-supplier.example")))
    evs.append(("flow", flow(src="198.18.0.7", dst="172.20.1.30", dport=443, direction="inbound", ob=600,
                             rb=80_000, data={})))
    # software downloads
    evs.append(("flow", flow(dst="13.107.4.50", name="download.windowsupdate.com", group="windows-update",
                             category="software-update", ob=2000, rb=300 << 20, payload_type="tls-encrypted",
                             duration=900)))
    evs.append(("flow", flow(dst="203.0.113.40", name="dl.wmsvendor.example", dport=80, service="http", ob=197,
                             rb=205_050)))
    # ordinary TLS browsing with small uploads
    t = T0
    for i in range(60):
        t += rnd.uniform(5, 400)
        evs.append(("flow", flow(dst=f"203.0.113.{150 + i % 20}", name=f"www{i % 20}.shop{i % 7}.example",
                                 ts=t, ob=rnd.randint(600, 3000), rb=rnd.randint(8000, 90000),
                                 payload_type="tls-encrypted")))
    # a few e-mails with a signature block to a mail server that is not allow-listed
    evs.append(("flow", flow(dst="192.0.2.25", dport=25, service="smtp", ob=9000, rb=300, payload_type="text",
                             data={"email": 3, "phone": 1, "person_name": 1})))
    # NTP every 64 s and pings
    for i in range(40):
        evs.append(("flow", flow(dst="162.159.200.123", name="time.cloudflare.com", group="public-ntp",
                                 category="time", proto="udp", service="ntp", dport=123, ts=T0 + 64 * i,
                                 ob=48, rb=48, op=1, rp=1)))
    evs.append(("flow", flow(dst="8.8.8.8", proto="icmp", service=None, sport=8, dport=0, ob=3 * 56, rb=3 * 56,
                             op=3, rp=3)))
    evs.append(("flow", flow(dst="8.8.8.8", proto="icmp", service=None, sport=8, dport=0, ob=100 * 56,
                             rb=100 * 56, op=100, rp=100, ts=T0 + 700)))
    # normal DNS through the site resolver: CDN names, reverse lookups
    names = ["e1234.dscb.akamaiedge.net", "e9876.a.akamaiedge.net", "d111111abcdef8.cloudfront.net",
             "r3---sn-4g5e6nz7.googlevideo.com", "www.google.com", "fonts.gstatic.com", "api.ups.com",
             "internal-my-elb-1234567890.eu-west-1.elb.amazonaws.com"]
    names += [f"a{i}.dscg{i % 5}.akamaiedge.net" for i in range(40)]
    names += [f"{i}.2.0.192.in-addr.arpa" for i in range(60)]
    for i, n in enumerate(names * 3):
        evs.append(("dns", dns(n, src=f"172.20.1.{10 + i % 3}", ts=T0 + i)))
        evs.append(("dns", dns(n, src="172.20.0.53", dst="9.9.9.9", ts=T0 + i + 0.001)))
    alerts = run(rules, evs)
    assert alerts == [], [(a["alert"]["signature_id"], a["dest_ip"]) for a in alerts]


def test_flow_records_without_destination_fields_use_the_site_allow_list(rules):
    # --flows-only records carry no destination enrichment: dst_allowed is null
    f = flow(dst="198.51.100.7", duration=3 * 3600, ob=10_000, rb=10_000)
    f["dst_allowed"] = None
    assert run(rules, flows_only(f)) == []
    f2 = flow(dst="203.0.113.7", duration=3 * 3600, ob=10_000, rb=10_000)
    f2["dst_allowed"] = None
    assert sids(run(rules, flows_only(f2))) == [1000080]


def test_evaluate_and_the_live_callable(rules):
    from inspector.policy import evaluate
    f = flow(**FOREIGN, payload_type="tls-encrypted", ob=401515, rb=5221)
    assert sids(evaluate(rules, [f], {"content": [], "dns": []}, SITE)) == [1000030]
    eng = PolicyEngine(rules, SITE)
    assert sids(eng([f])) == [1000030]          # LiveSession(policy=engine): callable(flow_records) -> alerts
    assert eng.stats()["alerts_by_signature"] == {"1000030": 1}


def test_disabled_rules_do_not_run():
    rules = loads_rules("- {id: 2000040, message: m, severity: low, match: {direction: outbound}, enabled: false}")
    assert run(rules, flows_only(flow())) == []


# ----------------------------------------------------------------------------------------------
# windows and grouping keys
# ----------------------------------------------------------------------------------------------

AGG = """\
- id: 2000050
  message: three flows per host and org within an hour
  severity: medium
  match: {{direction: outbound}}
  aggregate:
    window: 1h
    group_by: [{keys}]
    threshold: {{flows: 3}}
"""


def agg_rules(keys="src_host, dst_org"):
    return loads_rules(AGG.format(keys=keys))


def test_window_aggregation_and_grouping_keys():
    rules = agg_rules()
    x = [flow(org="ORG-X", ts=T0 + m * 60) for m in (0, 10, 20)]
    a = run(rules, flows_only(*x))
    assert sids(a) == [2000050] and a[0]["uids"] == [f["uid"] for f in x] and a[0]["flows"] == 3
    assert a[0]["window"]["group"] == {"src_host": "172.20.1.10", "dst_org": "ORG-X"}
    # three flows, but not within one window: [0, 60 min) has two
    split = [flow(org="ORG-X", ts=T0 + m * 60) for m in (0, 50, 70)]
    assert run(rules, flows_only(*split)) == []
    # two hosts, two flows each: separate groups ...
    two = [flow(src=s, org="ORG-X", ts=T0 + i) for s in ("172.20.1.10", "172.20.1.11") for i in range(2)]
    assert run(rules, flows_only(*two)) == []
    # ... one group when grouped by organisation only
    a = run(agg_rules("dst_org"), flows_only(*two))
    assert sids(a) == [2000050] and a[0]["window"]["group"] == {"dst_org": "ORG-X"}
    # dst_org falls back to the group, then the registered domain
    reg = [flow(name=f"n{i}.files.example.co.uk", dst=f"203.0.113.{i}", ts=T0 + i) for i in range(3)]
    a = run(agg_rules("src_host, dst_org"), flows_only(*reg))
    assert a[0]["window"]["group"]["dst_org"] == "example.co.uk"
    a = run(agg_rules("site, dst_country"), flows_only(*[flow(country="CN", src=f"172.20.1.{i}") for i in range(3)]))
    assert a[0]["window"]["group"] == {"site": "dc-test", "dst_country": "CN"}


def test_windows_close_by_time_and_by_later_events():
    rules = agg_rules()
    eng = PolicyEngine(rules, SITE, grace=360)
    for m in (0, 10, 20):
        assert eng.observe_flow(flow(org="ORG-Y", ts=T0 + m * 60)) == []
    assert eng.flush(now=T0 + 3600 + 359) == []            # the window waits for late flows
    a = eng.flush(now=T0 + 3600 + 361)
    assert sids(a) == [2000050]
    assert eng.flush(final=True) == []
    # a flow after the window's end closes it; the alert comes with the next flush
    eng = PolicyEngine(rules, SITE)
    for m in (0, 10, 20, 90):
        eng.observe_flow(flow(org="ORG-Z", ts=T0 + m * 60, duration=0.5))
    a = eng.flush()
    assert sids(a) == [2000050] and a[0]["flows"] == 3
    assert eng.flush(final=True) == []                     # the second window has one flow


def test_state_is_bounded_oldest_group_closes_early():
    rules = agg_rules("dst_org")
    eng = PolicyEngine(rules, SITE, max_groups=2)
    for org in ("A", "B"):
        for i in range(3):
            eng.observe_flow(flow(org=org, ts=T0 + i))
    eng.observe_flow(flow(org="C", ts=T0 + 5))                  # evicts A, the least recently updated
    a = eng.flush()
    assert len(a) == 1 and a[0]["window"]["group"] == {"dst_org": "A"} and a[0]["window"]["closed_early"]
    assert len(eng.aggregators[0].store) == 2
    rest = eng.flush(final=True)
    assert [x["window"]["group"]["dst_org"] for x in rest] == ["B"]


# ----------------------------------------------------------------------------------------------
# detectors
# ----------------------------------------------------------------------------------------------

def test_beacon_score_regular_vs_jittered():
    rnd = random.Random(3)
    regular = beacon_score([T0 + 300 * i for i in range(50)], [512] * 50)
    assert regular["score"] >= 0.99 and regular["parts"]["timing"] == 1.0
    small_jitter = beacon_score([T0 + 300 * i + rnd.uniform(-3, 3) for i in range(50)],
                                [512 + rnd.randint(-4, 4) for _ in range(50)])
    assert small_jitter["score"] >= 0.8
    t, ts, sizes = T0, [], []
    for _ in range(50):
        t += rnd.uniform(30, 900)
        ts.append(t)
        sizes.append(rnd.randint(200, 5000))
    jittered = beacon_score(ts, sizes)
    assert jittered["score"] < 0.8 and jittered["parts"]["timing"] < 0.7        # below min_score 0.85
    assert beacon_score([T0, T0 + 1], [1, 1])["score"] == 0.0      # too few to score


def test_beacon_detector_regular_vs_jittered(rules):
    rnd = random.Random(5)
    t, fs = T0, []
    for _ in range(40):
        t += rnd.uniform(30, 900)
        fs.append(flow(**UNKNOWN, ts=t, ob=rnd.randint(300, 3000), rb=rnd.randint(5000, 90000)))
    assert run(rules, flows_only(*fs)) == []
    few = [flow(**UNKNOWN, ts=T0 + 300 * i, ob=512, rb=2048) for i in range(5)]
    assert run(rules, flows_only(*few)) == []                  # under min_connections


def test_dns_tunnel_encoded_labels_vs_cdn_names():
    assert label_entropy("ozqw4zdbnuxgg2dmn5stqqdfpbqw24dmmuxgg33n") > 3.9
    assert label_entropy("e1234") < 3.3
    assert mask_qname("ozqw4zdbnuxgg2dmn5stqqdfpbqw24dmmuxgg33n.0000.t.tunnel.example.net", "example.net") == \
        "oz***(40).0000.t.tu***(6).example.net"
    rules = [r for r in load_rules() if r.id == 1000050]
    cdn = [f"e{i}.dscb.akamaiedge.net" for i in range(60)]
    assert run(rules, [("dns", dns(q, ts=T0 + i)) for i, q in enumerate(cdn)]) == []
    enc = _b32_queries(25, "x.badcdn.example.com")
    a = run(rules, [("dns", dns(q, ts=T0 + i)) for i, q in enumerate(enc)])
    assert sids(a) == [1000050] and a[0]["evidence"]["dns"]["registered_domain"] == "example.com"
    # many unique short subdomains alone fire on volume
    many = [f"w{i}.q.example.org" for i in range(320)]
    a = run(rules, [("dns", dns(q, ts=T0 + i)) for i, q in enumerate(many)])
    assert sids(a) == [1000050] and a[0]["evidence"]["dns"]["reasons"] == ["unique_subdomains"]
    # data in the first label under a private suffix (<data>.ngrok.io) groups by the ICANN domain
    priv = [q.split(".")[0] + ".ngrok.io" for q in _b32_queries(25)]
    a = run(rules, [("dns", dns(q, ts=T0 + i)) for i, q in enumerate(priv)])
    assert sids(a) == [1000050] and a[0]["evidence"]["dns"]["registered_domain"] == "ngrok.io"
    # queries from outside the site (to our own authoritative server) are not ours
    outside = [("dns", dns(q, src="198.18.0.9", dst="172.20.0.53", ts=T0 + i)) for i, q in enumerate(enc)]
    assert run(rules, outside) == []


def test_dns_tunnel_window_per_client_and_domain():
    rules = [r for r in load_rules() if r.id == 1000050]
    qs = _b32_queries(30)
    # 30 encoded queries spread over two clients: 15 each, under min_unique_subdomains
    evs = [("dns", dns(q, src=f"172.20.1.{10 + i % 2}", ts=T0 + i)) for i, q in enumerate(qs)]
    assert run(rules, evs) == []
    # the same 30 from one client, but 2 hours apart in two halves: two windows of 15
    evs = [("dns", dns(q, ts=T0 + (0 if i < 15 else 7200) + i)) for i, q in enumerate(qs)]
    assert run(rules, evs) == []


def test_icmp_tunnel_vs_ping():
    rules = [r for r in load_rules() if r.id == 1000060]
    ping = [flow(dst="8.8.4.4", proto="icmp", service=None, sport=8, dport=0, ob=60 * 56, rb=60 * 56, op=60, rp=60,
                 ts=T0 + 60 * i) for i in range(5)]
    assert run(rules, flows_only(*ping)) == []
    windows_ping = flow(dst="8.8.4.4", proto="icmp", service=None, sport=8, dport=0, ob=4 * 32, rb=4 * 32, op=4, rp=4)
    assert run(rules, flows_only(windows_ping)) == []
    # several flows of one pair with different constant sizes: variable across flows
    sizes = [300, 1000, 120, 700]
    tun = [flow(dst="203.0.113.66", proto="icmp", service=None, sport=8, dport=0, ob=5 * s, rb=5 * s, op=5, rp=5,
                ts=T0 + 30 * i) for i, s in enumerate(sizes)]
    a = run(rules, flows_only(*tun))
    assert sids(a) == [1000060] and a[0]["flows"] == 4 and "variable_payload" in a[0]["evidence"]["icmp"]["reasons"]
    internal = flow(dst="172.20.60.21", direction="internal", proto="icmp", service=None, sport=8, dport=0,
                    ob=50 * 1000, rb=50 * 1000, op=50, rp=50)
    assert run(rules, flows_only(internal)) == []


# ----------------------------------------------------------------------------------------------
# --fail-on
# ----------------------------------------------------------------------------------------------

def _alert(sev):
    return {"alert": {"severity": sev, "signature_id": 1000001}}


def test_exit_status_fail_on():
    alerts = [_alert(3), _alert(4)]
    assert exit_status(alerts, None) == 0
    assert exit_status(alerts, "high") == 0
    assert exit_status(alerts, "medium") == 1
    assert exit_status(alerts, "low") == 1
    assert exit_status(alerts, "CRITICAL") == 0
    assert exit_status(alerts, 3) == 1 and exit_status(alerts, 2) == 0
    assert exit_status([_alert(1)], "critical") == 1
    assert exit_status([], "low") == 0
    with pytest.raises(ValueError):
        exit_status(alerts, "urgent")
    assert severity_arg("High") == 2 and severity_arg("4") == 4
    with pytest.raises(argparse.ArgumentTypeError):
        severity_arg("urgent")
    assert SEVERITIES == {"critical": 1, "high": 2, "medium": 3, "low": 4}


# ----------------------------------------------------------------------------------------------
# the wiring on a real capture: scan's log sink and flow callback feed the engine
# ----------------------------------------------------------------------------------------------

def test_engine_fed_by_the_scanner_on_bundled_captures(rules):
    from inspector.pipeline import run_scan
    from inspector.settings import build_content, build_enricher
    from inspector.site import load_site
    site = load_site(os.path.join(REPO, "captures", "site-dc-north.yaml"))
    eng = PolicyEngine(rules, site)
    alerts = []

    def on_flows(recs):
        for r in recs:
            alerts.extend(eng.observe_flow(r))
        alerts.extend(eng.flush())

    caps = [os.path.join(REPO, "captures", n) for n in ("dc-north-exfil.pcap", "content-i-dns-exfil.pcap")]
    run_scan(caps, site=site, on_flows=on_flows, log_sink=eng.observe_log,
             enricher=build_enricher(site, signatures=SIGS), content=build_content(site, SIGS))
    alerts.extend(eng.flush(final=True))
    got = sids(alerts)
    assert {1000030, 1000040, 1000050, 1000002} <= set(got), got
    for a in alerts:
        assert "@example" not in json.dumps(a)
