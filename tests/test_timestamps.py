"""Timestamps a capture may hold: before 1970, at 0, past the year 9999, jumping backwards.

pcapng timestamps are 64-bit counts of interface units plus a signed ``if_tsoffset`` in seconds
(RFC draft-ietf-opsawg-pcapng), so a valid file can place packets anywhere from long before 1970 to
hundreds of thousands of years ahead.  ``datetime`` covers only the years 1 to 9999.  Every
command that turns packet time into dates (scan's report, batch's nights, the nightly report,
live's file names) must keep going: the packets are processed and counted, and times that cannot
be written as dates are shown as numbers.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.pkt import epb, idb, shb, tcp_session
from inspector.cli import main

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "captures" / "site-dc-north.yaml"
PY = sys.executable
CSV = b"name,email,phone\n" + b"".join(b"A B,ab%d@example.com,+4915112345%03d\n" % (i, i) for i in range(3))
BODY = (b"POST /upload HTTP/1.1\r\nHost: api.example.net\r\nContent-Type: text/csv\r\n"
        b"Content-Length: %d\r\n\r\n" % len(CSV) + CSV)

# (label, if_tsoffset seconds, first packet's seconds since the offset)
CASES = {
    "before-1970": (-400_000_000, 0),                 # 1957
    "epoch-zero": (None, 0),
    "year-151991": (None, 4_734_000_000_000),         # past datetime's year 9999
    "backwards": (None, None),                        # a later session written before an earlier one
}


def _capture(path: Path, tsoffset, first_s) -> int:
    frames = []
    if first_s is None:   # two sessions, the second 6 hours before the first
        t0 = 1_764_000_000_000_000_000
        frames += tcp_session(client="172.20.1.10", server="203.0.113.5", t0_ns=t0, req=BODY)
        frames += tcp_session(client="172.20.1.11", server="203.0.113.5", t0_ns=t0 - 6 * 3600 * 10**9, req=BODY)
    else:
        frames += tcp_session(client="172.20.1.10", server="203.0.113.5", t0_ns=first_s * 10**9, req=BODY)
    blocks = shb() + idb(1, tsoffset=tsoffset)
    for ts_ns, data in frames:
        blocks += epb(0, ts_ns // 1000, data)          # default resolution: microseconds
    path.write_bytes(blocks)
    return len(frames)


@pytest.mark.parametrize("case", sorted(CASES))
def test_scan_any_timestamp(tmp_path, case):
    pcap = tmp_path / f"{case}.pcapng"
    n = _capture(pcap, *CASES[case])
    out = tmp_path / "out"
    assert main(["scan", str(pcap), "--site", str(SITE), "--out", str(out), "-q"], env={}) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["packets_read"] == n and sum(stats["outcomes"].values()) == n
    flows = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in flows) == n
    assert (out / "report.html").stat().st_size > 0


def test_batch_and_nightly_report_any_timestamp(tmp_path):
    caps = tmp_path / "caps" / "host01"
    caps.mkdir(parents=True)
    total = sum(_capture(caps / f"{case}.pcapng", *CASES[case]) for case in sorted(CASES))
    db = tmp_path / "batch.duckdb"
    p = subprocess.run([PY, "-m", "inspector", "batch", str(caps.parent), "--db", str(db), "--site", str(SITE),
                        "--workers", "1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        status = con.execute("SELECT status, count(*) FROM captures GROUP BY status").fetchall()
        packets = con.execute("SELECT sum(orig_pkts + resp_pkts) FROM flows").fetchone()[0]
        nights = [r[0] for r in con.execute("SELECT DISTINCT night FROM daily ORDER BY 1").fetchall()]
    finally:
        con.close()
    assert status == [("done", len(CASES))], status
    assert packets == total
    assert nights                                       # the in-range nights are kept
    for night in nights:
        r = subprocess.run([PY, "-m", "inspector", "report", "--db", str(db), "--night", str(night), "--out",
                            str(tmp_path / f"r-{night}.html")], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
