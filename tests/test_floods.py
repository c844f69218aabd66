"""Floods: new-flow floods (SYN and UDP), a reassembly flood (connections with holes) and a
fragment flood.  Each scan runs in a child process whose peak memory (ru_maxrss) is measured; the
bounds configured (``--max-flows``, reassembly and fragment caps) must hold, with every packet
accounted for and the evictions counted in stats.json and weird.jsonl.

The sizes here keep ``make test`` quick; ``make stress`` runs the same checks with millions of
packets (``INSPECTOR_STRESS_SCALE``).  Memory is compared between two flood sizes rather than
against an absolute figure: a bounded structure does not grow with the flood.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import floodgen

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "captures" / "site-dc-north.yaml"
SCALE = float(os.environ.get("INSPECTOR_STRESS_SCALE", "1"))

_CHILD = r"""
import json, resource, sys
from inspector.cli import main
rc = main(sys.argv[1:], env={})
print(json.dumps({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def scan(tmp_path: Path, name: str, data: bytes, *extra) -> tuple[dict, int]:
    pcap = tmp_path / f"{name}.pcap"
    pcap.write_bytes(data)
    out = tmp_path / f"out-{name}"
    p = subprocess.run([sys.executable, "-c", _CHILD, "scan", str(pcap), "--site", str(SITE), "--out", str(out),
                        "-q", *map(str, extra)], capture_output=True, text=True, timeout=1200, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["rc"] == 0, p.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["outcomes"].values()) == stats["packets_read"]
    return stats, res["maxrss_kb"]


def test_flow_table_never_exceeds_its_bound():
    """In-process: after every batch of a SYN flood the active flows are within --max-flows and the
    flow arrays within max_flows plus one batch of new flows; every flow is still written."""
    from inspector.scan import Scanner
    import numpy as np
    pkts = n(60_000)
    data = floodgen.syn_flood(pkts)
    emitted = []
    sc = Scanner(max_flows=5_000, app=False, on_flows=lambda recs: emitted.append(len(recs)))
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"syn-flood-{os.getpid()}.pcap"
    path.write_bytes(data)
    try:
        from inspector.ingest import CaptureReader
        reader = CaptureReader(str(path), batch_packets=20_000)
        for batch in reader:
            sc.feed(batch)
            assert sc.table.active_flows() <= 5_000
            assert sc.table.cap <= 1 << int(np.ceil(np.log2(5_000 + 20_000)))
        sc.finish()
    finally:
        path.unlink()
    assert sum(emitted) == pkts and sc.table.evicted > 0


def n(base: int) -> int:
    return max(1000, int(base * SCALE))


def flood_pair(tmp_path, label: str, make, small: int, large: int, slack_mib: int, *extra):
    """Scan a flood of ``small`` and of ``large`` (4x) units; peak memory of the large one must stay
    within 1.5x the small one's plus ``slack_mib``: a bounded structure does not grow with the flood.
    Returns the large scan's stats and the small one's."""
    st_s, rss_s = scan(tmp_path, "small", make(small), *extra)
    st_l, rss_l = scan(tmp_path, "large", make(large), *extra)
    print(f"{label}: {small:,} -> {rss_s / 1024:.0f} MiB, {large:,} -> {rss_l / 1024:.0f} MiB")
    assert rss_l < rss_s * 1.5 + slack_mib * 1024
    return st_l, st_s


@pytest.mark.parametrize("gen", ["syn_flood", "udp_flood"])
def test_new_flow_flood_stays_within_the_flow_bound(tmp_path, gen):
    large = n(40_000)
    st_l, st_s = flood_pair(tmp_path, gen, getattr(floodgen, gen), n(10_000), large, 64, "--max-flows", 5_000)
    assert st_l["packets_read"] == large
    assert st_l["flows"] == large                   # every flow is written, evicted ones included
    assert st_l["flows_evicted"] > st_s["flows_evicted"] > 0   # the bound was hit, and counted
    assert st_l["weirds"].get("flow.table_full", 0) >= 1


def test_reassembly_flood_is_bounded(tmp_path):
    large = n(4_000)
    st_l, _ = flood_pair(tmp_path, "reassembly", floodgen.hole_flood, n(1_000), large, 96)
    assert st_l["packets_read"] == large * 11 and st_l["flows"] == large


def test_fragment_flood_is_bounded(tmp_path):
    large = n(20_000)
    st_l, _ = flood_pair(tmp_path, "fragments", floodgen.fragment_flood, n(5_000), large, 64)
    assert st_l["packets_read"] == large
    assert st_l["outcomes"].get("ip.fragment", 0) == large          # every fragment accounted
    dropped = sum(v for k, v in st_l["weirds"].items() if k.startswith("ip.fragment"))
    assert dropped >= 1                                              # the held ones expire or are dropped
