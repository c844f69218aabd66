"""Golden content tests: planted records at known counts (captures/content-*.pcap, manifests in
captures/expected/content-*.json) must come out of `inspector scan` exactly.

For every manifest entry: the flow with that 5-tuple exists; when the payload leaves the site, its
`data` equals the planted distinct identifier counts class by class, `records` equals the planted
record counts and `payload_type` the planted type; when it does not leave (inbound page, internal
copy) or cannot be read (TLS), `data` and `records` are empty.
"""
from __future__ import annotations

import glob
import json
import os
import re

import pytest

from inspector.pipeline import run_scan
from inspector.settings import build_content, build_enricher
from inspector.site import load_site

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFESTS = sorted(glob.glob(os.path.join(REPO, "captures", "expected", "content-*.json")))


@pytest.fixture(scope="module")
def site():
    return load_site(os.path.join(REPO, "captures", "site-dc-north.yaml"))


def _scan(path, site, **kw):
    return run_scan([path], site=site, content=build_content(site, **kw), enricher=build_enricher(site))


def _key(rec):
    return (rec["proto"], rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_h"], rec["id.resp_p"])


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[os.path.basename(m)[8:-5] for m in MANIFESTS])
def test_planted_counts(manifest, site):
    m = json.load(open(manifest))
    res = _scan(os.path.join(REPO, "captures", m["capture"]), site)
    flows = {_key(f): f for f in res.flows}
    for entry in m["content"]:
        key = (entry["proto"], entry["orig_h"], entry["orig_p"], entry["resp_h"], entry["resp_p"])
        assert key in flows, f"{entry['id']}: no flow {key}"
        f = flows[key]
        planted = {k: v for k, v in entry["identifiers"].items() if v}
        if entry["leaves_site"]:
            assert f["data"] == planted, entry["id"]
            assert f["records"] == entry["records"], entry["id"]
            if entry.get("payload_type"):
                assert f["payload_type"] == entry["payload_type"], entry["id"]
        else:
            assert f["data"] == {}, entry["id"]
            assert f["records"] == {"customer": 0, "shipment": 0}, entry["id"]


def test_evidence_is_masked_and_hashed_by_default(site):
    res = _scan(os.path.join(REPO, "captures", "content-a-http-json.pcap"), site)
    content = res.logs["content"]
    assert len(content) == 1
    rec = content[0]
    for sample in rec["samples"]["email"]:
        assert "***" in sample
    assert all(len(h) == 32 for h in rec["hashes"]["email"])
    # no raw e-mail address anywhere in the content log, the flows or the weirds
    text = json.dumps(res.logs["content"]) + json.dumps(res.flows) + json.dumps(res.weirds)
    for addr in re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text):
        assert "*" in addr, addr


def test_show_raw_gives_values(site):
    res = _scan(os.path.join(REPO, "captures", "content-a-http-json.pcap"), site, show_raw=True)
    sample = res.logs["content"][0]["samples"]["email"][0]
    assert "@" in sample and "*" not in sample


def test_edi_messages_with_parties(site):
    res = _scan(os.path.join(REPO, "captures", "content-g-edifact-http.pcap"), site)
    rec = res.logs["content"][0]
    types = sorted(m["type"] for m in rec["edi"])
    assert types == ["IFTMIN", "IFTMIN", "IFTMIN", "IFTSTA"]
    assert {m["sender"] for m in rec["edi"]} == {"DCNORTH"}
    assert {m["recipient"] for m in rec["edi"]} == {"FWDEXAMPLE"}


def test_edm_rows_leaving(site, tmp_path):
    """Fingerprint the organisation's customer master, then count its rows leaving in each flow."""
    import subprocess
    import sys
    master = tmp_path / "customers.csv"
    subprocess.run([sys.executable, os.path.join(REPO, "captures", "generate_content.py"), "--customers-csv",
                    str(master), "--out", str(tmp_path / "regenerated")], check=True, capture_output=True)
    sig = tmp_path / "signatures"
    (sig / "edm").mkdir(parents=True)
    from inspector.cli import main
    rc = main(["fingerprint", str(master), "--columns", "email,phone,name", "--classes",
               "email=email,phone=phone,name=person_name", "--region", "US", "--out", str(sig / "edm" / "customers.edm"),
               "-q"])
    assert rc == 0
    raw = (sig / "edm" / "customers.edm").read_bytes()
    first = open(master, encoding="utf-8").read().splitlines()[1].split(",")
    assert not any(v.encode() in raw for v in first if len(v) > 5), "raw values in the fingerprint file"
    checked = 0
    for manifest in MANIFESTS:
        m = json.load(open(manifest))
        res = run_scan([os.path.join(REPO, "captures", m["capture"])], site=site,
                       content=build_content(site, signatures=str(sig)), enricher=build_enricher(site))
        flows = {_key(f): f for f in res.flows}
        for entry in m["content"]:
            if not entry["leaves_site"]:
                continue
            key = (entry["proto"], entry["orig_h"], entry["orig_p"], entry["resp_h"], entry["resp_p"])
            got = flows[key]["edm"].get("customers", 0)
            assert got == entry["edm_rows"], (m["capture"], entry["id"], got, entry["edm_rows"])
            checked += 1
    assert checked >= 8
