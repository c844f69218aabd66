"""Incidents from alerts: grouping into stories, DISTINCT counting by salted hash, ids, words, the file.

Built from hand-made alert, flow and content records (the shapes of alerts.jsonl, flows.jsonl and
content.jsonl), so each rule of ``inspector.incidents`` is tested on its own; ``test_incidents_e2e.py``
runs the real scan over the scenario captures.
"""
from __future__ import annotations

import json

import pytest

from inspector.content.records import count_records
from inspector.content.stage import ContentStage
from inspector.incidents import INCIDENT_FIELDS, build_incidents, destination_label, story_key, write_incidents
from inspector.policy.alerts import alert_id

T0 = 1764000000.0
ALIBABA = {"name": "dc-sync.oss-ap-southeast-1.aliyuncs.com", "address": "47.246.23.17", "country": "SG",
           "asn": 45102, "org": "Alibaba (US) Technology Co., Ltd.", "group": "alibaba-cloud",
           "category": "foreign-cloud", "allowed": False}


def flow(uid, src="172.20.1.12", dst="47.246.23.17", dport=443, ts=T0, service="ssl", out=1000, back=100,
         proto="tcp", name="dc-sync.oss-ap-southeast-1.aliyuncs.com", org="Alibaba (US) Technology Co., Ltd.",
         records=None, data=None, capture=None, **kw):
    rec = {"ts": ts, "uid": uid, "id.orig_h": src, "id.orig_p": 40000 + len(uid), "id.resp_h": dst,
           "id.resp_p": dport, "proto": proto, "service": service, "duration": 10.0, "orig_bytes": out,
           "resp_bytes": back, "direction": "outbound", "dst_name": name, "dst_org": org, "dst_country": "SG",
           "dst_asn": 45102 if org else None, "dst_group": "alibaba-cloud" if org else None,
           "dst_category": "foreign-cloud" if org else None, "dst_allowed": False,
           "payload_types": ["tls-encrypted"] if service == "ssl" else ["json"],
           "records": records or {"customer": 0, "shipment": 0}, "data": data or {}}
    if capture:
        rec["capture"] = capture
    rec.update(kw)
    return rec


def alert(sid, uids, src="172.20.1.12", dest=None, app="tls", proto="TCP", severity=2, ts="2025-11-24T16:00:00",
          window=None, records=None, evidence=None):
    a = {"timestamp": ts, "event_type": "alert", "src_ip": src, "src_port": 40000,
         "dest_ip": (dest or ALIBABA)["address"], "dest_port": 443, "proto": proto, "app_proto": app,
         "uids": list(uids), "alert": {"signature_id": sid, "signature": f"rule {sid}", "severity": severity},
         "destination": dict(dest or ALIBABA), "records": records or {"customer": 0, "shipment": 0},
         "bytes_out": 1000, "bytes_in": 100, "flows": len(uids), "evidence": evidence or {}}
    if window is not None:
        a["window"] = window
    a["alert_id"] = alert_id(a)
    return a


def content(uid, records=None, record_hashes=None, more=None, data=None, hashes=None, samples=None):
    return {"ts": T0, "uid": uid, "direction": "outbound", "records": records or {"customer": 0, "shipment": 0},
            "record_hashes": record_hashes or {}, "record_hashes_more": more or {}, "data": data or {},
            "hashes": hashes or {}, "samples": samples or {}}


# ------------------------------------------------------------------------------------------------
# grouping
# ------------------------------------------------------------------------------------------------

def test_rules_and_windows_of_one_story_are_one_incident():
    flows = [flow(f"C{i}", ts=T0 + 900 * i) for i in range(6)]
    alerts = [alert(1000030, ["C0"]), alert(1000030, ["C3"], ts="2025-11-24T16:45:00"),
              alert(1000040, [f"C{i}" for i in range(6)], severity=3,
                    window={"start": "x", "group": {"src_host": "172.20.1.12", "dst_org": "Alibaba"}})]
    (inc,) = build_incidents(alerts, flows)
    assert inc["uids"] == [f"C{i}" for i in range(6)] and inc["flows"] == 6
    assert inc["signature_ids"] == [1000030, 1000040]
    assert inc["alert_ids"] == [a["alert_id"] for a in alerts]
    assert inc["severity"] == 2                       # the highest of its alerts
    assert inc["first_ts"] == T0 and inc["last_ts"] == T0 + 900 * 5 + 10
    assert inc["bytes_out"] == 6000 and inc["bytes_in"] == 600
    assert inc["src_hosts"] == ["172.20.1.12"] and inc["app_protos"] == ["tls"]
    assert inc["destinations"] == [{"name": ALIBABA["name"], "addresses": ["47.246.23.17"], "org": ALIBABA["org"],
                                    "asn": 45102, "country": "SG", "group": "alibaba-cloud",
                                    "category": "foreign-cloud"}]
    assert all(a["incident_id"] == inc["incident_id"] for a in alerts)


def test_another_host_channel_or_organisation_is_another_incident():
    other = dict(ALIBABA, name="files.example.org", address="198.51.100.9", org="Example Hosting", group=None)
    flows = [flow("C1"), flow("C2", src="172.20.1.11"), flow("C3", service="http", dport=80),
             flow("C4", dst="198.51.100.9", name="files.example.org", org="Example Hosting")]
    alerts = [alert(1, ["C1"]), alert(1, ["C2"], src="172.20.1.11"), alert(1, ["C3"], app="http"),
              alert(1, ["C4"], dest=other)]
    incs = build_incidents(alerts, flows)
    assert len(incs) == 4
    assert sorted(tuple(i["uids"]) for i in incs) == [("C1",), ("C2",), ("C3",), ("C4",)]
    assert len({a["incident_id"] for a in alerts}) == 4


def test_alerts_over_the_same_flows_join_even_with_different_keys():
    # a DNS-tunnel finding names the registered domain, the identifier rule the resolver's address
    tunnel_dest = {"name": "example.net", "address": "203.0.113.53", "org": None, "group": None}
    id_dest = {"name": None, "address": "203.0.113.53", "org": None, "group": None}
    flows = [flow("D1", dst="203.0.113.53", dport=53, service="dns", proto="udp", name=None, org=None)]
    alerts = [alert(1000002, ["D1"], dest=id_dest, app="dns", proto="UDP", severity=3),
              alert(1000050, ["D1"], dest=tunnel_dest, app="dns", proto="UDP",
                    window={"start": "x", "group": {"src_host": "172.20.1.12", "registered_domain": "example.net"}})]
    assert story_key(alerts[0]) != story_key(alerts[1])
    (inc,) = build_incidents(alerts, flows)
    assert inc["signature_ids"] == [1000002, 1000050] and inc["severity"] == 2
    assert any("joined" in w for w in inc["why"])


def test_site_wide_aggregate_attaches_to_the_incidents_it_sums():
    cust = {"customer": 600, "shipment": 0}
    flows = [flow("A1", service="http", dport=80, records=cust), flow("B1", src="172.20.1.11", service="http",
                                                                      dport=80, records=cust),
             flow("B2", src="172.20.1.11", service="http", dport=80, ts=T0 + 60, records={"customer": 5,
                                                                                           "shipment": 0}),
             flow("Z1", src="172.20.1.13", dst="192.0.2.7", service="http", dport=80, name=None, org=None,
                  records={"customer": 3, "shipment": 0})]
    site_wide = alert(1000004, ["A1", "B1", "B2", "Z1"], app="http", severity=1,
                      window={"start": "x", "group": {"site": "dc", "dst_country": "SG"}})
    alerts = [alert(1000001, ["A1"], app="http"), alert(1000001, ["B1"], src="172.20.1.11", app="http"), site_wide]
    incs = build_incidents(alerts, flows)
    by_uid = {u: i for i in incs for u in i["uids"]}
    # it does not stand alone: A1's and B1's incidents carry it, B2 joined B1's story (same host, org,
    # channel), and Z1 (no alert of its own, another story) became an incident of the aggregate
    assert len(incs) == 3
    assert by_uid["B1"] is by_uid["B2"]
    assert {i["incident_id"] for i in incs} == set(site_wide["incident_ids"])
    for i in incs:
        assert site_wide["alert_id"] in i["alert_ids"] and i["severity"] == 1
        assert any("site-wide" in w for w in i["why"])
    assert by_uid["Z1"]["alert_ids"] == [site_wide["alert_id"]]
    assert site_wide["incident_id"] == incs[0]["incident_id"]
    assert [a["incident_id"] for a in alerts[:2]] == [by_uid["A1"]["incident_id"], by_uid["B1"]["incident_id"]]


def test_no_alert_no_incident_and_bad_records_are_skipped(tmp_path):
    assert build_incidents([], [flow("C1")]) == []
    a = alert(1, ["C1", "C9"])          # C9: no flow record at hand
    (inc,) = build_incidents([a, None, "x"], [flow("C1"), {"no": "uid"}, "junk"], [None])
    assert inc["uids"] == ["C1", "C9"] and inc["flows"] == 2


def test_ids_are_stable_and_independent_of_alert_order():
    flows = [flow("C1"), flow("C2", ts=T0 + 5), flow("C3", src="172.20.1.11")]
    def run(order):
        alerts = [alert(1, ["C1"]), alert(2, ["C2"]), alert(1, ["C3"], src="172.20.1.11")]
        return sorted(i["incident_id"] for i in build_incidents([alerts[k] for k in order], flows))
    assert run([0, 1, 2]) == run([2, 1, 0]) == run([1, 2, 0])
    assert len(run([0, 1, 2])) == 2


def test_destination_label_falls_back():
    assert destination_label({"org": "O", "group": "g", "name": "a.b.example.com", "address": "1.2.3.4"}) == "O"
    assert destination_label({"group": "g", "name": "a.b.example.com"}) == "g"
    assert destination_label({"name": "a.b.example.com", "address": "1.2.3.4"}) == "example.com"
    assert destination_label({"asn": 64500, "address": "1.2.3.4"}) == "AS64500"
    assert destination_label({"address": "1.2.3.4"}) == "1.2.3.4"
    assert destination_label(None) == "unknown"


# ------------------------------------------------------------------------------------------------
# DISTINCT counting
# ------------------------------------------------------------------------------------------------

def test_records_and_identifiers_are_distinct_across_the_incident():
    flows = [flow(u, service="http", dport=80, records={"customer": 3, "shipment": 3}) for u in ("H1", "H2", "H3")]
    contents = [
        content("H1", {"customer": 3, "shipment": 3}, {"customer": ["r1", "r2", "r3"], "shipment": ["r1", "r2", "r3"]},
                data={"email": 3}, hashes={"email": ["e1", "e2", "e3"]}),
        # the same three records sent again (a retry): they count once
        content("H2", {"customer": 3, "shipment": 3}, {"customer": ["r1", "r2", "r3"], "shipment": ["r1", "r2", "r3"]},
                data={"email": 3}, hashes={"email": ["e1", "e2", "e3"]}),
        # two new records, one old; 2 more identities past the connection's hash bound; 5 e-mails, 2 listed
        content("H3", {"customer": 5, "shipment": 0}, {"customer": ["r3", "r4", "r5"]}, more={"customer": 2},
                data={"email": 5}, hashes={"email": ["e3", "e4"]}),
    ]
    (inc,) = build_incidents([alert(1000001, ["H1", "H2", "H3"], app="http")], flows, contents)
    assert inc["records"] == {"customer": 5 + 2, "shipment": 3}
    assert inc["data"] == {"email": 4 + 3}


def test_counts_without_hashes_fall_back_to_what_each_connection_counted():
    flows = [flow("H1", records={"customer": 4, "shipment": 1}, data={"phone": 4}), flow("H2")]
    old = {"ts": T0, "uid": "H2", "records": {"customer": 2, "shipment": 0}, "data": {"email": 2}}
    (inc,) = build_incidents([alert(1, ["H1", "H2"])], flows, [old])
    assert inc["records"] == {"customer": 6, "shipment": 1}
    assert inc["data"] == {"email": 2, "phone": 4}


def test_record_identities_from_the_content_stage():
    body = json.dumps([{"name": "Jane Example", "email": "jane.example@example.com", "tracking": "1Z999AA10123456784"},
                       {"name": "John Example", "email": "john.example@example.com", "tracking": "1Z999AA10123456793"}])
    rc = count_records(body.encode(), "json")
    assert rc.customer == 2 and len(rc.keys["customer"]) == 2
    twice = count_records(json.dumps(json.loads(body) * 2).encode(), "json")
    assert twice.customer == 4 and twice.keys["customer"] == rc.keys["customer"]   # the same two records
    stage = ContentStage(salt=b"s1")
    recs = []
    for uid in ("U1", "U2"):
        cf = stage.new_flow()
        stage.body(cf, {"content_type": "application/json", "source": "http"}, body.encode(), uid)
        _fields, rec = stage.finish(cf, uid, T0, "outbound", len(body))
        recs.append(rec)
    assert recs[0]["record_hashes"] == recs[1]["record_hashes"]
    assert len(recs[0]["record_hashes"]["customer"]) == 2 and recs[0]["record_hashes_more"] == {}
    raw = json.dumps(recs[0])
    assert "jane" not in raw.lower() and "1Z999AA10123456784" not in raw     # hashes and masks only
    other = ContentStage(salt=b"s2")
    cf = other.new_flow()
    other.body(cf, {"content_type": "application/json", "source": "http"}, body.encode(), "U3")
    assert other.finish(cf, "U3", T0, "outbound", 1)[1]["record_hashes"] != recs[0]["record_hashes"]  # salted
    (inc,) = build_incidents([alert(1000001, ["U1", "U2"], app="http")],
                             [flow("U1", service="http", records={"customer": 2, "shipment": 2}),
                              flow("U2", service="http", records={"customer": 2, "shipment": 2})], recs)
    assert inc["records"]["customer"] == 2


# ------------------------------------------------------------------------------------------------
# words, evidence, commands, the file
# ------------------------------------------------------------------------------------------------

def test_title_why_evidence_and_next_steps():
    flows = [flow(f"P{i}", service="http", dport=80, ts=T0 + 80 * i, records={"customer": 0, "shipment": 6},
                  capture=f"night-{i % 2}.pcap") for i in range(46)]
    http = [{"uid": f"P{i}", "method": "POST"} for i in range(46)]
    contents = [content(f"P{i}", {"customer": 0, "shipment": 6},
                        {"shipment": [f"s{i}-{k}" for k in range(6)]}, data={"tracking_s10": 6, "sscc": 6},
                        samples={"tracking_s10": ["RR123456785CN"]}) for i in range(46)]
    a = alert(1000010, [f"P{i}" for i in range(46)], app="http",
              evidence={"samples": {"sscc": ["00******0001"]}, "thresholds": {"records.shipment": 1}})
    (inc,) = build_incidents([a], flows, contents, http=http, from_dir="out dir")
    assert inc["title"] == ("172.20.1.12 sent 276 shipment records (S10, SSCC) to "
                            "dc-sync.oss-ap-southeast-1.aliyuncs.com (Alibaba (US) Technology Co., Ltd., SG) in "
                            "46 HTTP POSTs over 60 minutes")
    assert inc["captures"] == ["night-0.pcap", "night-1.pcap"]
    assert inc["evidence"]["samples"]["sscc"] == ["00******0001"]
    assert "RR123456785CN" not in json.dumps(inc)                  # samples are masked again
    assert any("1000010" in w and "records.shipment 1" in w for w in inc["why"])
    iid = inc["incident_id"]
    assert inc["next_steps"][0] == f"inspector carve --from 'out dir' --incident {iid} -o {iid}.pcapng"
    assert inc["next_steps"][1].startswith("inspector explain P") and inc["next_steps"][1].endswith("--from 'out dir'")
    assert inc["next_steps"][2] == f"inspector evidence --incident {iid} --from 'out dir' -o {iid}.zip"


def test_incidents_sorted_by_severity_then_records():
    flows = [flow("L"), flow("M", src="172.20.1.11", records={"customer": 10, "shipment": 0}),
             flow("N", src="172.20.1.13", records={"customer": 50, "shipment": 0}),
             flow("O", src="172.20.1.14")]
    alerts = [alert(1, ["L"], severity=4), alert(1, ["M"], src="172.20.1.11"), alert(1, ["N"], src="172.20.1.13"),
              alert(1, ["O"], src="172.20.1.14", severity=1)]
    assert [i["uids"][0] for i in build_incidents(alerts, flows)] == ["O", "N", "M", "L"]


def test_write_incidents_has_exactly_the_fields(tmp_path):
    incs = build_incidents([alert(1, ["C1"])], [flow("C1")])
    path = tmp_path / "incidents.jsonl"
    assert write_incidents(str(path), incs) == 1
    (rec,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert tuple(rec) == INCIDENT_FIELDS
    assert write_incidents(str(path), []) == 0 and path.read_text() == ""


@pytest.mark.parametrize("n", [1, 3])
def test_alert_endpoints_list_every_pair(n):
    flows = [flow(f"E{i}", dst=f"47.246.23.{i}") for i in range(n)] + [flow("E9", dst="47.246.23.0")]
    a = alert(1, [f"E{i}" for i in range(n)] + ["E9"])
    a["endpoints"] = []                  # as an engine that no longer held the flows would leave it
    build_incidents([a], flows)
    got = {(e["dest_ip"], e["flows"]) for e in a["endpoints"]}
    assert got == {(f"47.246.23.{i}", 2 if i == 0 else 1) for i in range(n)}
    assert all(e["src_ip"] == "172.20.1.12" and e["dest_port"] == 443 and e["proto"] == "TCP" for e in a["endpoints"])
