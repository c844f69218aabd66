"""Incidents end to end: the real scan over the project's scenario captures (``captures/``).

* every planted exfiltration channel (the manifests' expected alerts grouped by local and remote host;
  for the content captures the conversations that leave the site towards a destination that alerts)
  yields exactly ONE incident, which holds all of the channel's leaving flows and nothing else, with the
  records (and identifiers) that were planted;
* the benign look-alikes (``policy-benign``, ``dc-north-day``, ``content-g``, ``content-k``) yield none;
* every alert carries ``alert_id``, ``incident_id`` and its endpoint pairs;
* in one scan of every capture, the site-wide "bulk customer records per country" alert (1000004) joins
  the incidents whose flows it sums and stands alone nowhere, and the same 120 records sent three times
  (content a, b and c) count 120 once.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_policy_e2e import BASELINE_ALERTS, CAPTURES, POLICY, _flow_key, _manifest, _row_key, _scan

#: captures whose planted channels are the manifests' expected alerts
POLICY_CHANNELS = [n for n in POLICY]
CONTENT_CHANNELS = sorted(n for n in BASELINE_ALERTS if n.startswith("content-"))
QUIET = ["policy-benign", "dc-north-day", "dc-north-ipv6-vlan", "content-g-edifact-http", "content-k-negative"]


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class Run:
    def __init__(self, out: Path):
        self.flows = {f["uid"]: f for f in _jsonl(out / "flows.jsonl")}
        self.by_key = {_flow_key(f): u for u, f in self.flows.items()}
        self.alerts = _jsonl(out / "alerts.jsonl")
        self.incidents = _jsonl(out / "incidents.jsonl")
        self.stats = json.loads((out / "stats.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = {}
    for name in sorted(set(POLICY_CHANNELS) | set(CONTENT_CHANNELS) | set(QUIET)):
        d = tmp_path_factory.mktemp(name)
        _scan([CAPTURES / f"{name}.pcap"], d)
        out[name] = Run(d)
    return out


def _policy_channels(name: str) -> dict:
    """(local host, remote host) -> {conversation ids} of the expected alerts."""
    ch: dict = {}
    for exp in _manifest(name)["expected_alerts"]:
        ch.setdefault((exp["src_ip"], exp["dest_ip"]), set()).update(exp["flows"])
    return ch


def _content_channels(name: str) -> dict:
    """(local host, remote host) -> [content rows that leave the site] for the hosts the capture alerts on."""
    alerting = {(src, dst) for _sid, src, dst in BASELINE_ALERTS.get(name, ())}
    ch: dict = {}
    for c in _manifest(name)["content"]:
        if not c["leaves_site"]:
            continue
        local, remote = (c["resp_h"], c["orig_h"]) if c["direction"] == "inbound" else (c["orig_h"], c["resp_h"])
        if (local, remote) in alerting:
            ch.setdefault((local, remote), []).append(c)
    return ch


def _uids(run: Run, name: str, ids) -> set:
    rows = {r["id"]: r for r in _manifest(name)["conversations"]}
    return {run.by_key[_row_key(rows[i])] for i in ids}


def _holding(run: Run, uids: set) -> list:
    return [i for i in run.incidents if uids & set(i["uids"])]


@pytest.mark.parametrize("name", POLICY_CHANNELS)
def test_each_planted_policy_channel_is_one_incident(runs, name):
    run = runs[name]
    channels = _policy_channels(name)
    assert len(run.incidents) == len(channels)
    for (src, dst), ids in channels.items():
        uids = _uids(run, name, ids)
        (inc,) = _holding(run, uids)
        assert set(inc["uids"]) == uids, (src, dst)
        assert inc["src_hosts"] == [src]
        assert {a for d in inc["destinations"] for a in d["addresses"]} == {dst}
        assert inc["captures"] == [str(CAPTURES / f"{name}.pcap")]
        sids = {e["signature_id"] for e in _manifest(name)["expected_alerts"]
                if (e["src_ip"], e["dest_ip"]) == (src, dst)}
        assert set(inc["signature_ids"]) == sids
        whys = " ".join(e["why"] for e in _manifest(name)["expected_alerts"]
                        if (e["src_ip"], e["dest_ip"]) == (src, dst))
        m = re.search(r"(\d+) customer records", whys)
        if m:                       # the records planted, as the manifest tells them
            assert inc["records"]["customer"] == int(m.group(1))


@pytest.mark.parametrize("name", CONTENT_CHANNELS)
def test_each_planted_content_channel_is_one_incident_with_the_planted_records(runs, name):
    run = runs[name]
    channels = _content_channels(name)
    assert channels and len(run.incidents) == len(channels)
    for (src, dst), rows in channels.items():
        uids = _uids(run, name, [c["id"] for c in rows])
        (inc,) = _holding(run, uids)
        assert set(inc["uids"]) == uids, (src, dst)
        assert inc["src_hosts"] == [src]
        planted = {k: sum(c["leaving"]["records"][k] for c in rows) for k in ("customer", "shipment")}
        assert inc["records"] == planted
        for cls in ("email", "phone", "person_name", "sscc", "tracking_ups"):
            n = sum(c["leaving"]["identifiers"].get(cls, 0) for c in rows)
            if n:
                assert inc["data"].get(cls) == n, cls


def test_the_exfil_night_is_one_incident(tmp_path):
    name = "dc-north-exfil"
    out = tmp_path / name
    _scan([CAPTURES / f"{name}.pcap"], out)
    run = Run(out)
    leaving = {r["id"] for r in _manifest(name)["conversations"] if r["resp_h"] == "47.246.23.17"}
    assert len(leaving) == 7
    (inc,) = run.incidents
    assert set(inc["uids"]) == _uids(run, name, leaving)
    assert inc["signature_ids"] == [1000030, 1000040] and inc["severity"] == 2
    assert inc["title"].startswith("172.20.1.12 sent ") and "dc-sync-7f3a.oss-ap-southeast-1.aliyuncs.com" in \
        inc["title"] and "7 TLS connections" in inc["title"]


@pytest.mark.parametrize("name", QUIET)
def test_benign_look_alikes_yield_no_incident(runs, name):
    run = runs[name]
    assert run.alerts == [] and run.incidents == [] and run.stats["incidents"] == 0


@pytest.mark.parametrize("name", POLICY_CHANNELS + CONTENT_CHANNELS)
def test_every_alert_names_its_incident_and_endpoints(runs, name):
    run = runs[name]
    ids = {i["incident_id"] for i in run.incidents}
    listed = {a for i in run.incidents for a in i["alert_ids"]}
    for a in run.alerts:
        assert a["alert_id"] in listed and a["incident_id"] in ids
        pairs = {(e["src_ip"], e["dest_ip"], e["dest_port"]) for e in a["endpoints"]}
        covered = [run.flows[u] for u in a["uids"]]
        assert sum(e["flows"] for e in a["endpoints"]) == len(covered)
        for f in covered:
            inbound = f["direction"] == "inbound"
            local, remote, port = ((f["id.resp_h"], f["id.orig_h"], f["id.orig_p"]) if inbound else
                                   (f["id.orig_h"], f["id.resp_h"], f["id.resp_p"]))
            assert (local, remote, port) in pairs
    assert len({a["alert_id"] for a in run.alerts}) == len(run.alerts)


# ------------------------------------------------------------------------------------------------
# every capture in one scan
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def combined(tmp_path_factory) -> Run:
    d = tmp_path_factory.mktemp("all")
    _scan(sorted(CAPTURES.glob("*.pcap")), d)
    return Run(d)


def test_per_country_aggregate_joins_the_incidents_it_sums(combined):
    (agg,) = [a for a in combined.alerts if a["alert"]["signature_id"] == 1000004]
    holding = [i for i in combined.incidents if set(agg["uids"]) & set(i["uids"])]
    assert len(holding) > 1
    assert set(agg["incident_ids"]) == {i["incident_id"] for i in holding}
    assert agg["incident_id"] == holding[0]["incident_id"]
    for i in holding:
        assert agg["alert_id"] in i["alert_ids"] and i["severity"] == 1
        assert len(i["alert_ids"]) > 1          # never standing alone: each has an alert of its own
    assert {u for i in holding for u in i["uids"]} >= set(agg["uids"])
    # it lists every endpoint pair it sums, not only its representative flow's
    assert len(agg["endpoints"]) == len({(i["src_hosts"][0], a) for i in holding
                                         for d in i["destinations"] for a in d["addresses"]})


def test_records_sent_three_times_count_once(combined):
    rows = {}
    for name in ("content-a-http-json", "content-b-http-json-reordered", "content-c-http-gzip"):
        (c,) = [c for c in _manifest(name)["content"] if c["leaves_site"]]
        rows[name] = c
    assert {json.dumps(c["leaving"], sort_keys=True) for c in rows.values()} == {json.dumps(
        rows["content-a-http-json"]["leaving"], sort_keys=True)}           # the same 120 objects each time
    (inc,) = [i for i in combined.incidents if i["src_hosts"] == ["172.20.1.10"]
              and any("192.0.2.80" in d["addresses"] for d in i["destinations"])]
    assert inc["flows"] == 3 and len(inc["captures"]) >= 1
    assert inc["records"] == {"customer": 120, "shipment": 120}
    assert inc["data"]["email"] == 120


def test_incident_counts_against_alert_counts(combined):
    assert combined.stats["alerts"] == len(combined.alerts)
    assert combined.stats["incidents"] == len(combined.incidents)
    assert len(combined.incidents) < len(combined.alerts)
    sev = [i["severity"] for i in combined.incidents]
    assert sev == sorted(sev)
