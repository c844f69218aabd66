"""Batch, scan and live on inputs that are valid for the scan but awkward for the commands around
it: zero-length files, captures with a header and no packet, files rewritten, cut or appended to
while they are read, and (live) packet times at 0, at the 32-bit limit and jumping backwards.
Nothing crashes; what was read is counted; a batch capture that changed under it is retried."""
from __future__ import annotations

import io
import json
from pathlib import Path

import duckdb
import pytest

from helpers.pkt import pcap_bytes, pcap_header, tcp_session
from inspector import ingest
from inspector.batch import run_batch
from inspector.batch.discover import file_sha256
from inspector.batch.worker import WorkerSettings, process_capture
from inspector.cli import live as live_cli
from inspector.cli import main
from test_live import FileSource, live_args, read_jsonl, read_rotated

T0 = 1_765_000_000 * 10**9


def sessions(n: int, t0: int = T0, step_s: float = 1.0) -> list:
    frames = []
    for k in range(n):
        frames += tcp_session(client=f"10.3.{k // 250}.{k % 250 + 1}", server="203.0.113.9",
                              t0_ns=t0 + int(k * step_s * 10**9), req=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"p" * 200)
    return frames


def captures_rows(db: Path) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {rel: (status, flows) for rel, status, flows in
                con.execute("SELECT rel, status, flows FROM captures").fetchall()}
    finally:
        con.close()


# -- zero-length files and captures without packets --------------------------------------------------

def test_batch_zero_length_and_header_only_captures(tmp_path):
    host = tmp_path / "caps" / "h1"
    host.mkdir(parents=True)
    (host / "zero.pcap").write_bytes(b"")
    (host / "header-only.pcap").write_bytes(pcap_header())
    (host / "good.pcap").write_bytes(pcap_bytes(sessions(2)))
    db = tmp_path / "b.duckdb"
    out = io.StringIO()
    assert run_batch([str(tmp_path / "caps")], str(db), workers=0, out=out, err=out) == 0, out.getvalue()
    assert "Traceback" not in out.getvalue()
    rows = captures_rows(db)
    assert rows["h1/good.pcap"] == ("done", 2)
    assert rows["h1/header-only.pcap"] == ("done", 0)
    assert rows.get("h1/zero.pcap", ("error", 0))[0] == "error"      # recorded as not a capture, or not listed


def test_scan_zero_length_and_header_only(tmp_path, capsys):
    zero, hdr = tmp_path / "zero.pcap", tmp_path / "hdr.pcap"
    zero.write_bytes(b"")
    hdr.write_bytes(pcap_header())
    assert main(["scan", str(zero), "--out", str(tmp_path / "a"), "-q"], env={}) == 2
    err = capsys.readouterr().err
    assert "empty or too short" in err and "Traceback" not in err
    assert main(["scan", str(zero), str(hdr), "--out", str(tmp_path / "b"), "-q"], env={}) == 0
    st = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert st["packets_read"] == 0 and st["flows"] == 0


# -- files that change while they are read ----------------------------------------------------------

def _mutating_open(monkeypatch, path: Path, mutate):
    """Make the next open of ``path`` run ``mutate(path)`` right after the reader's first read."""
    real = ingest.open_capture

    class Raw:
        def __init__(self, f):
            self.f, self.done = f, False

        def _after(self):
            if not self.done:
                self.done = True
                mutate(path)

        def read(self, n=-1):
            data = self.f.read(n)
            self._after()
            return data

        def readinto(self, view):
            k = self.f.readinto(view)
            self._after()
            return k

        def close(self):
            self.f.close()

    def opener(p, errors=None):
        stream = real(p, errors)
        if Path(p) == path and not isinstance(stream.raw, Raw):
            stream.raw = Raw(stream.raw)
        return stream
    monkeypatch.setattr(ingest, "open_capture", opener)


@pytest.mark.parametrize("how", ["cut", "appended", "rewritten"])
def test_scan_file_changing_while_read(tmp_path, monkeypatch, how):
    cap = tmp_path / "moving.pcap"
    frames = sessions(600)
    data = pcap_bytes(frames)                              # > 256 KiB: the reader reads it in several chunks
    assert len(data) > 3 * (1 << 18) // 2
    cap.write_bytes(data)
    more = pcap_bytes(sessions(50, t0=T0 + 3600 * 10**9))[24:]

    def mutate(p: Path):
        if how == "cut":
            with open(p, "r+b") as f:
                f.truncate(300_001)                        # mid-record
        elif how == "appended":
            with open(p, "ab") as f:
                f.write(more)
        else:
            p.write_bytes(b"\0" * len(data))               # same size, other bytes
    _mutating_open(monkeypatch, cap, mutate)
    out = tmp_path / "out"
    assert main(["scan", str(cap), "--out", str(out), "-q"], env={}) == 0
    st = json.loads((out / "stats.json").read_text())
    assert st["packets_read"] > 0 and sum(st["outcomes"].values()) == st["packets_read"]
    if how == "cut":
        assert st["packets_read"] < len(frames)           # what was there when it was read
    elif how == "appended":
        assert st["packets_read"] >= len(frames)
    flows = read_jsonl(out / "flows.jsonl")
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in flows) == st["outcomes"].get("decoded", 0)


def test_batch_capture_changed_while_read_is_retried(tmp_path, monkeypatch):
    host = tmp_path / "caps" / "h1"
    host.mkdir(parents=True)
    cap = host / "growing.pcap"
    cap.write_bytes(pcap_bytes(sessions(3)))
    task = {"sha256": file_sha256(str(cap)), "path": str(cap), "host": "h1", "rel": "h1/growing.pcap",
            "size": cap.stat().st_size}

    def append(p: Path):
        with open(p, "ab") as f:
            f.write(pcap_bytes(sessions(1, t0=T0 + 60 * 10**9))[24:])
    _mutating_open(monkeypatch, cap, append)
    res = process_capture(task, WorkerSettings())
    assert res.status == "failed" and "changed while it was read" in res.error
    # through the batch: the first run leaves it for the next one, which reads it whole
    monkeypatch.undo()
    cap.write_bytes(pcap_bytes(sessions(3)))
    _mutating_open(monkeypatch, cap, append)
    db = tmp_path / "b.duckdb"
    out = io.StringIO()
    assert run_batch([str(tmp_path / "caps")], str(db), workers=0, out=out, err=out) == 1
    assert "changed while it was read" in out.getvalue()
    monkeypatch.undo()
    assert run_batch([str(tmp_path / "caps")], str(db), workers=0, out=out, err=out) == 0
    assert captures_rows(db) == {"h1/growing.pcap": ("done", 4)}


# -- live: packet times the clock cannot show --------------------------------------------------------

@pytest.mark.parametrize("times", [
    [0, 1, 2, 3],                                        # the epoch
    [2**32 - 5, 2**32 - 4, 2**32 - 3, 2**32 - 2],        # the last seconds a classic pcap header holds (2106)
    [1_765_000_000, 1_764_990_000, 1_765_000_100, 1_700_000_000],   # jumping backwards by hours, then months
], ids=["epoch", "year-2106", "backwards"])
def test_live_any_packet_time(tmp_path, times):
    frames = []
    for k, t in enumerate(times):
        frames += tcp_session(client=f"10.4.0.{k + 1}", server="203.0.113.10", t0_ns=t * 10**9, req=b"x" * 300)
    cap = tmp_path / "t.pcap"
    cap.write_bytes(pcap_bytes(frames))
    out = tmp_path / "out"
    args = live_args(["-i", "fake0", "--out", out, "--duration", "3", "--rotate-mb", "0.002", "-q",
                      "--batch-packets", "8"])
    assert live_cli.run(args, {}, capture=FileSource(cap, per_dispatch=5)) == 0
    flows = read_rotated(out, "flows")
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in flows) == len(frames)
    st = json.loads((out / "stats.json").read_text())
    assert st["packets_read"] == len(frames)
    assert (out / "report.html").stat().st_size > 0
