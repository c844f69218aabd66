"""``scan --workers N`` gives the outputs of one process (inspector/parallel.py).

Every bundled capture scanned together (with the site file, so content, files, policy and
incidents all run), and corpus captures with tunnels, fragments, ICMP errors, FTP data channels
and DNS, by 1, 2 and 3 workers: ``flows.jsonl`` (order included), ``weird.jsonl``, ``alerts.jsonl``
and the report are byte-identical, ``stats.json`` holds the same values, every other stream the
same records (the lines of a protocol log come worker by worker within a batch); incidents name
their output folder in their commands, which is compared as ``$OUT``.
"""
from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

from inspector.cli import main
from inspector.flows.table import pair_owner
from inspector.parallel import AUTO_MIN_BYTES, auto_workers, merge_stats

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
CORPUS = REPO.parent / "shared" / "corpus"
EXACT = ("flows.jsonl", "weird.jsonl", "alerts.jsonl")
CORPUS_SETS = {
    "tunnels-fragments": ["tcpdump/tests/vxlan.pcap", "tcpdump/tests/various_gre.pcap",
                          "suricata-verify/tests/vxlan-decoder-03/vxlan.pcap",
                          "suricata-verify/tests/ipv6-evasion/ipv6-malformed-fragments-1/frag-1.pcap",
                          "zeek/Traces/ipv6-http-atomic-frag.pcap"],
    "icmp-ftp-dns": ["zeek/Traces/icmp", "zeek/Traces/ftp", "zeek/Traces/dns"],
}


def _scan(inputs, out: Path, workers: int, *extra) -> None:
    with redirect_stderr(io.StringIO()):
        rc = main(["scan", *map(str, inputs), "--out", str(out), "-q", "--hash-salt", "parallel-test",
                   "--workers", str(workers), *extra], env={})
    assert rc in (0, 1)


def _files(d: Path) -> dict:
    return {p.name: p.read_text(encoding="utf-8").replace(str(d), "$OUT") for p in sorted(d.iterdir())
            if p.is_file() and p.suffix in (".jsonl", ".json", ".html")}


def _same_outputs(one: dict, many: dict, label: str) -> None:
    assert one.keys() == many.keys(), label
    for name, text in one.items():
        if name in EXACT or name.endswith(".html"):
            assert many[name] == text, f"{label}: {name} differs"
        elif name.endswith(".json"):     # stats.json: the same values (its logs are listed as they first came)
            assert json.loads(many[name]) == json.loads(text), f"{label}: {name} differs"
        else:
            want = sorted(json.dumps(json.loads(l), sort_keys=True) for l in text.splitlines())
            got = sorted(json.dumps(json.loads(l), sort_keys=True) for l in many[name].splitlines())
            assert got == want, f"{label}: {name} holds other records"


def _compare(inputs, tmp_path: Path, *extra) -> dict:
    _scan(inputs, tmp_path / "w1", 1, *extra)
    one = _files(tmp_path / "w1")
    assert "flows.jsonl" in one and one["flows.jsonl"]
    for n in (2, 3):
        _scan(inputs, tmp_path / f"w{n}", n, *extra)
        _same_outputs(one, _files(tmp_path / f"w{n}"), f"{n} workers")
    return one


def test_bundled_captures_one_and_many_workers(tmp_path):
    one = _compare(sorted(CAPTURES.glob("*.pcap")), tmp_path, "--site", str(CAPTURES / "site-dc-north.yaml"))
    # the comparison covered the streams that cross flows: passive DNS names, FTP data channels, alerts
    assert '"dst_name_source":"dns"' in one["flows.jsonl"]
    assert "ftp-data" in one["flows.jsonl"]
    assert one["alerts.jsonl"].strip() and "incidents.jsonl" in one


@pytest.mark.parametrize("name", sorted(CORPUS_SETS))
def test_corpus_one_and_many_workers(name, tmp_path):
    inputs = [CORPUS / p for p in CORPUS_SETS[name] if (CORPUS / p).exists()]
    if not inputs:
        pytest.skip("corpus not available")
    _compare(inputs, tmp_path)


def test_owner_is_symmetric_and_spreads():
    rng = np.random.default_rng(3)
    addr = rng.integers(0, 2**63, size=(5000, 4), dtype=np.int64).astype(np.uint64)
    swapped = addr[:, [2, 3, 0, 1]]
    for n in (2, 3, 8):
        own = pair_owner(addr, n)
        assert (own == pair_owner(swapped, n)).all()
        assert own.min() >= 0 and own.max() < n
        counts = np.bincount(own, minlength=n)
        assert counts.min() > 5000 / n * 0.8        # no worker starves
    same = addr.copy()
    same[:, 2:] = same[:, :2]                         # a host talking to itself
    assert (pair_owner(same, 4) >= 0).all()


def test_auto_workers(tmp_path):
    small = tmp_path / "small.pcap"
    small.write_bytes(b"\0" * 100)
    assert auto_workers([str(small)], cpus=4) == 1
    big = tmp_path / "big.pcap"
    with open(big, "wb") as fh:
        fh.truncate(AUTO_MIN_BYTES)
    assert auto_workers([str(big)], cpus=4) == 4
    assert auto_workers([str(big)], cpus=1) == 1
    assert auto_workers(["-", str(big)], cpus=4) == 1
    assert auto_workers([str(tmp_path / "missing.pcap")], cpus=4) == 1


def test_workers_argument_rejected(tmp_path, capsys):
    for bad in ("0", "-2", "many"):
        assert main(["scan", str(CAPTURES / "policy-benign.pcap"), "--out", str(tmp_path / "o"), "--workers", bad],
                    env={}) == 2
        assert "--workers" in capsys.readouterr().err


def test_merge_stats_counts_each_flow_and_weird_once():
    a = {"packets_read": 10, "bytes_read": 100, "outcomes": {"decoded": 10}, "flows": 3,
         "weirds": {"x": 1, "y": 2}, "flows_evicted": 0, "files": [{"path": "p"}]}
    b = dict(a, flows=4, weirds={"y": 1, "z": 5})
    m = merge_stats([a, b])
    assert m["flows"] == 7 and m["weirds"] == {"x": 1, "y": 3, "z": 5}
    assert m["packets_read"] == 10 and m["files"] == [{"path": "p"}]


def test_unreadable_input_reported_once(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["scan", str(CAPTURES / "policy-benign.pcap"), str(tmp_path / "nope.pcap"), "--out", str(out),
               "-q", "--workers", "2"], env={})
    assert rc == 0
    assert capsys.readouterr().err.count("nope.pcap") == 1
    stats = json.loads((out / "stats.json").read_text())
    assert len(stats["inputs_failed"]) == 1 and stats["flows"] > 0
