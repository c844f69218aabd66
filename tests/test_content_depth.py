"""Content depth end to end: data leaving in archives, documents, binary encodings, cloud upload APIs and
request metadata is counted exactly (tests/content_depth_gen.py plants it), benign look-alikes count
nothing, bombs and encrypted archives are weirds, archive members are files with ``parent_fuid``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from inspector.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import content_depth_gen as gen  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SITE = str(REPO / "captures" / "site-dc-north.yaml")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    d = tmp_path_factory.mktemp("depth")
    pcap = d / "depth.pcap"
    expect = gen.build(pcap)
    out = d / "out"
    assert main(["scan", str(pcap), "--site", SITE, "--out", str(out), "-q"], env={}) == 0
    flows = _jsonl(out / "flows.jsonl")
    by_uid = {f["uid"]: f["id.resp_h"] for f in flows}
    content = {r["id.resp_h"]: r for r in _jsonl(out / "content.jsonl")}
    weirds: dict = {}
    for w in _jsonl(out / "weird.jsonl"):
        weirds.setdefault(by_uid.get(w.get("uid")), set()).add(w["name"])
    return expect, content, weirds, _jsonl(out / "files.jsonl"), {f["id.resp_h"]: f for f in flows}, out


SERVERS = [f"203.0.113.{i}" for i in range(1, 19)] + [f"198.51.100.{i}" for i in range(201, 205)]


@pytest.mark.parametrize("server", SERVERS)
def test_planted_counts_exact(scanned, server):
    expect, content, _weirds, _files, flows, _out = scanned
    e = expect[server]
    rec = content.get(server)
    want = {cls: len(vals) for cls, vals in e.data.items()}
    got = dict(rec["data"]) if rec else {}
    assert got == want, e.name
    assert (rec["records"]["customer"] if rec else 0) == e.customer, e.name
    assert flows[server]["data"] == want and flows[server]["records"]["customer"] == e.customer, e.name
    if e.apis:
        assert rec["upload_apis"] == sorted(e.apis), e.name
    if e.encodings:
        assert e.encodings <= set((flows[server]["payload_encoding"] or "").split(",")), e.name


@pytest.mark.parametrize("server", SERVERS)
def test_weirds(scanned, server):
    expect, _content, weirds, *_ = scanned
    content_weirds = {w for w in weirds.get(server, set()) if w.startswith("content.")}
    assert content_weirds == expect[server].weirds, expect[server].name


def test_samples_and_hashes_never_raw(scanned):
    """Encoded PII is PII: nothing written holds a planted value in the clear."""
    expect, _content, _w, _f, _fl, out = scanned
    planted = set()
    for e in expect.values():
        for vals in e.data.values():
            planted |= vals
    for name in ("content.jsonl", "files.jsonl", "weird.jsonl", "alerts.jsonl", "incidents.jsonl"):
        text = (out / name).read_text() if (out / name).exists() else ""
        leaked = [v for v in planted if v in text]
        assert not leaked, (name, leaked[:3])


def test_archive_members_are_files(scanned):
    expect, _content, _w, files, _fl, _out = scanned
    by_fuid = {f["fuid"]: f for f in files}
    for server, e in expect.items():
        members = [f for f in files if f["id.resp_h"] == server and f["parent_fuid"]]
        assert sorted(f["filename"] for f in members) == sorted(e.members), e.name
        for m in members:
            parent = by_fuid[m["parent_fuid"]]
            assert parent["uid"] == m["uid"] and parent["leaving"] and m["leaving"]
            assert m["sha256"] and m["seen_bytes"] > 0 and m["mime_type"] == "text/plain"
            assert m["extracted"] is None


def test_csv_member_hash_is_the_member(scanned):
    """The member record hashes the member's bytes (the CSV inside the zip), not its container."""
    import hashlib
    _e, _c, _w, files, _fl, _out = scanned
    member = next(f for f in files if f["filename"] == "export/customers.csv")
    want = hashlib.sha256(gen.csv_bytes(gen.customers(100, 25))).hexdigest()
    assert member["sha256"] == want


def test_http_log_masks_encoded_query_values(scanned):
    """http.jsonl keeps the beacons' parameter names and harmless values; the values that carry an
    identifier, base64/hex/percent-encoded or plain, are masked there too."""
    *_rest, out = scanned
    beacons = [r for r in _jsonl(out / "http.jsonl") if r["id.resp_h"] == "203.0.113.7"]
    assert len(beacons) == 5
    for r in beacons:
        assert r["uri"].startswith("/px.gif?v=2&d=[masked email,phone]&e=[masked email]&ref=")
    benign = next(r for r in _jsonl(out / "http.jsonl") if r["id.resp_h"] == "198.51.100.202")
    assert "[masked" not in benign["uri"]


def test_mask_query_plain_values():
    from inspector.content.params import mask_query
    assert mask_query("/t?phone=%2B44%2020%207946%200123&page=2") == "/t?phone=[masked phone]&page=2"
    assert mask_query("/a/b?x=1#frag") == "/a/b?x=1#frag"
    assert mask_query("/no/query") == "/no/query"
