"""Capture ingest: inspector.ingest (CaptureReader, read_all, expand_inputs) and run_scan/CLI on top.

Every capture is built in tmp_path from annotated bytes (tests/helpers/pkt.py).
"""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import tracemalloc
from pathlib import Path

import pytest

from helpers.pkt import (custom_block, epb, eth, idb, ipv4, legacy_pb, pcap_bytes, pcap_header, pcap_record,
                         raw_block, shb, sll_header, spb, tcp_session, udp, udp_frame)
from inspector import cli
from inspector.ingest import CaptureReader, NotACapture, expand_inputs, read_all
from inspector.pipeline import run_scan

REPO = Path(__file__).resolve().parents[1]
INSPECTOR_BIN = REPO / ".venv" / "bin" / "inspector"
T0_NS = 1_764_000_000_000_000_000          # 2025-11-24T16:00:00Z


def packets_of(path, **kw):
    """[(ts, captured bytes, wirelen, linktype)] of every packet, and the reader stats."""
    batches, stats = read_all(str(path), **kw)
    out = []
    for b in batches:
        for i in range(len(b)):
            o, c = int(b.offset[i]), int(b.caplen[i])
            out.append((float(b.ts[i]), bytes(b.buf[o:o + c]), int(b.wirelen[i]), int(b.linktype[i])))
    return out, stats


def outcomes_consistent(stats: dict) -> None:
    assert sum(stats["outcomes"].values()) == stats["packets_read"], stats


def weird_names(res) -> list:
    return [w["name"] for w in res.weirds]


def session_frames():
    """A TCP session (µs timestamps) plus a snaplen-cut UDP frame (caplen < wire length)."""
    frames = tcp_session(t0_ns=T0_NS + 123_456_000)
    big = udp_frame(payload=b"D" * 300)
    frames.append((T0_NS + 2_000_001_000, big[:100], len(big)))   # cut at 100 bytes, 342 on the wire
    return frames


# ---------------------------------------------------------------------------
# classic pcap: four variants
# ---------------------------------------------------------------------------

VARIANTS = [("<", False), (">", False), ("<", True), (">", True)]


def _magic_expected(endian, nano):
    return {("<", False): "d4c3b2a1", (">", False): "a1b2c3d4",
            ("<", True): "4d3cb2a1", (">", True): "a1b23c4d"}[(endian, nano)]


def test_pcap_four_variants_identical(tmp_path):
    frames = session_frames()
    results = []
    for endian, nano in VARIANTS:
        p = tmp_path / f"v{endian == '<'}{nano}.pcap"
        p.write_bytes(pcap_bytes(frames, endian=endian, nano=nano))
        assert p.read_bytes()[:4].hex() == _magic_expected(endian, nano)
        pk, st = packets_of(p)
        assert st.packets_read == len(frames) and not st.events
        results.append(pk)
    ref = results[0]
    assert len(ref) == len(frames)
    for (ts_ns, data, *orig), got in zip(frames, ref):
        assert got[0] == pytest.approx(ts_ns / 1e9, abs=1e-6)
        assert got[1] == data
        assert got[2] == (orig[0] if orig else len(data))
        assert got[3] == 1
    for other in results[1:]:
        assert len(other) == len(ref)
        for a, b in zip(ref, other):
            assert a[0] == pytest.approx(b[0], abs=1e-6)
            assert a[1:] == b[1:]


def test_pcap_variants_same_flows(tmp_path):
    frames = session_frames()
    flows = []
    for endian, nano in VARIANTS:
        p = tmp_path / f"f{endian == '<'}{nano}.pcap"
        p.write_bytes(pcap_bytes(frames, endian=endian, nano=nano))
        res = run_scan([str(p)])
        outcomes_consistent(res.stats)
        assert res.stats["outcomes"] == {"decoded": len(frames)}
        flows.append(res.flows)
    drop = ("uid", "ts", "duration", "capture")   # capture: each variant is its own file
    ref = [{k: v for k, v in f.items() if k not in drop} for f in flows[0]]
    assert len(ref) == 2
    for fl in flows[1:]:
        assert [{k: v for k, v in f.items() if k not in drop} for f in fl] == ref
        for a, b in zip(flows[0], fl):
            assert a["ts"] == pytest.approx(b["ts"], abs=1e-6)
            assert (a["duration"] or 0) == pytest.approx(b["duration"] or 0, abs=1e-6)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcap_nanosecond_precision(tmp_path, endian):
    ts_ns = [T0_NS + 123_456_789, T0_NS + 123_456_790, T0_NS + 999_999_999]
    frames = [(t, udp_frame(ident=i)) for i, t in enumerate(ts_ns)]
    p = tmp_path / "ns.pcap"
    p.write_bytes(pcap_bytes(frames, endian=endian, nano=True))
    pk, _ = packets_of(p)
    for t, got in zip(ts_ns, pk):
        assert got[0] == pytest.approx(t / 1e9, abs=1e-6)
    assert pk[0][0] < pk[2][0]


# ---------------------------------------------------------------------------
# pcapng
# ---------------------------------------------------------------------------

def _raw_ipv4_udp(i):
    return ipv4("10.1.0.1", "10.1.0.2", 17, udp(5000 + i, 53, b"raw%d" % i), ident=100 + i)


def build_pcapng():
    """Two sections (LE then BE), three interfaces in the first with different link types and
    timestamp resolutions/offsets, EPB/SPB/legacy PB, and blocks the reader must skip.
    Returns (file bytes, [(ts, data, linktype)] expected in order)."""
    exp = []
    b = b""
    # --- section 1: little-endian
    b += shb("<")
    b += idb(1, "<", tsresol=9)                                  # if 0: Ethernet, 10^-9 s units
    b += idb(101, "<", tsresol=0x80 | 10, tsoffset=1_700_000_000)  # if 1: raw IP, 2^-10 s units, +offset
    b += idb(113, "<")                                           # if 2: Linux SLL, default 10^-6
    f0 = udp_frame(sport=1111, payload=b"eth-epb")
    b += epb(0, T0_NS + 5, f0, "<")                              # ns units
    exp.append((T0_NS / 1e9 + 5e-9, f0, 1))
    b += raw_block(0x00000B00, b"an unknown block type: skipped", "<")
    b += custom_block("<", copyable=True)                        # custom block (0x00000BAD)
    b += custom_block("<", copyable=False)                       # custom block (0x40000BAD)
    r1 = _raw_ipv4_udp(1)
    b += epb(1, 64 * 1024 + 512, r1, "<")                        # 64.5 s in 2^-10 units
    exp.append((1_700_000_000 + 64.5, r1, 101))
    f_spb = udp_frame(sport=2222, payload=b"simple-packet-block")
    b += spb(f_spb, "<")                                          # SPB: interface 0, no timestamp
    exp.append(("prev", f_spb, 1))
    b += raw_block(5, struct.pack("<IIII", 0, 0, 0, 0), "<")      # ISB (interface statistics): skipped
    s1 = sll_header(0x0800) + _raw_ipv4_udp(2)
    b += legacy_pb(2, 1_764_000_010_250_000, s1, "<")             # legacy PB, µs units
    exp.append((1_764_000_010.25, s1, 113))
    s2 = sll_header(0x0800) + _raw_ipv4_udp(3)
    b += epb(2, 1_764_000_011_000_001, s2, "<")
    exp.append((1_764_000_011.000001, s2, 113))
    # --- section 2: big-endian; interface numbering starts again
    b += shb(">")
    b += idb(101, ">")                                           # if 0 of section 2: raw IP, µs
    r4 = _raw_ipv4_udp(4)
    b += epb(0, 1_764_000_020_000_000, r4, ">")
    exp.append((1_764_000_020.0, r4, 101))
    b += raw_block(0x00000B00, b"skipped in BE too", ">")
    b += custom_block(">")
    r5 = _raw_ipv4_udp(5)
    b += epb(0, 1_764_000_021_500_000, r5, ">")
    exp.append((1_764_000_021.5, r5, 101))
    return b, exp


def test_pcapng_sections_interfaces_blocks(tmp_path):
    data, exp = build_pcapng()
    p = tmp_path / "multi.pcapng"
    p.write_bytes(data)
    pk, st = packets_of(p)
    assert [e.name for e in st.events] == []
    assert st.packets_read == len(exp)
    assert len(pk) == len(exp)
    for (ets, edata, elt), (ts, got, wire, lt) in zip(exp, pk):
        assert got == edata
        assert wire == len(edata)
        assert lt == elt
        if ets != "prev":
            assert ts == pytest.approx(ets, abs=1e-6)


def test_pcapng_spb_takes_previous_timestamp(tmp_path):
    """An SPB has no timestamp: it must get the previous packet's time, whatever the batch
    boundaries are (not 0.0 = 1970, which would also make the result depend on batching)."""
    data, exp = build_pcapng()
    p = tmp_path / "spb.pcapng"
    p.write_bytes(data)
    i = [k for k, e in enumerate(exp) if e[0] == "prev"][0]
    for batch_packets in (65536, 1, 2):
        pk, _ = packets_of(p, batch_packets=batch_packets)
        assert pk[i][0] == pytest.approx(pk[i - 1][0], abs=1e-6), f"batch_packets={batch_packets}"


def test_pcapng_scans(tmp_path):
    data, exp = build_pcapng()
    p = tmp_path / "multi.pcapng"
    p.write_bytes(data)
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["outcomes"] == {"decoded": len(exp)}
    assert res.stats["files"][0]["format"] == "pcapng"


def test_pcapng_unknown_interface_is_an_event(tmp_path):
    f = udp_frame()
    data = shb() + idb(1) + epb(0, 1, f) + epb(7, 2, f) + epb(0, 3, f)   # interface 7 does not exist
    p = tmp_path / "badif.pcapng"
    p.write_bytes(data)
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["packets_read"] == 3
    assert res.stats["outcomes"].get("ingest.bad_packet_block") == 1
    assert "ingest.bad_packet_block" in weird_names(res)


# ---------------------------------------------------------------------------
# compression, found by magic number
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("comp", ["gzip", "zstd"])
def test_compressed_detected_by_magic(tmp_path, kind, comp):
    zstandard = pytest.importorskip("zstandard")
    raw = pcap_bytes(session_frames()) if kind == "pcap" else build_pcapng()[0]
    plain = tmp_path / f"plain.{kind}"
    plain.write_bytes(raw)
    packed = gzip.compress(raw) if comp == "gzip" else zstandard.ZstdCompressor().compress(raw)
    p = tmp_path / "capture-notes.txt"        # the name says nothing
    p.write_bytes(packed)
    want, _ = packets_of(plain)
    got, st = packets_of(p)
    assert got == want and not st.events
    r = CaptureReader(str(p))
    assert r.kind == kind
    r.close()
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["outcomes"].get("decoded") == len(want)


def _compress(comp, raw):
    if comp == "gzip":
        return gzip.compress(raw)
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(raw)


@pytest.mark.parametrize("comp", ["gzip", "zstd"])
def test_truncated_compressed_keeps_intact_prefix(tmp_path, comp):
    """A compressed capture cut at 2/3 (a download cut short, a file still being written):
    the packets in the intact part are read, the cut is an ingest.* weird."""
    import random
    rng = random.Random(1)
    n = 3000
    raw = pcap_bytes([(T0_NS + i * 1000, udp_frame(sport=1000 + i % 500, payload=rng.randbytes(400)))
                      for i in range(n)])                    # ~1.3 MB, incompressible payloads
    packed = _compress(comp, raw)
    p = tmp_path / "cut.bin"
    p.write_bytes(packed[: len(packed) * 2 // 3])
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.errors == []
    assert any(n_.startswith("ingest.") for n_ in weird_names(res))
    assert res.stats["outcomes"].get("decoded", 0) >= n // 2, res.stats["outcomes"]


CORRUPT_STREAMS = {
    "gzip-header-only": lambda raw: gzip.compress(raw)[:10],               # 10-byte gzip member header
    "gzip-cut-in-first-block": lambda raw: gzip.compress(raw)[:15],
    "gzip-bad-deflate": lambda raw: gzip.compress(raw)[:10] + b"\xff" * 50 + gzip.compress(raw)[60:],
    "zstd-bad-block": lambda raw: _compress("zstd", raw)[:8] + b"\xff" * 40 + _compress("zstd", raw)[48:],
}


@pytest.mark.parametrize("kind", list(CORRUPT_STREAMS))
def test_corrupt_compressed_stream_no_exception(tmp_path, kind, capsys):
    raw = pcap_bytes([(T0_NS + i * 1000, udp_frame(sport=1000 + i)) for i in range(50)])
    p = tmp_path / f"{kind}.pcap.z"
    p.write_bytes(CORRUPT_STREAMS[kind](raw))
    res = run_scan([str(p)])                                   # must not raise
    outcomes_consistent(res.stats)
    named = [e for e in res.errors if str(p) in e] + [w for w in res.weirds if w["name"].startswith("ingest.")]
    assert named, "the damage must be reported (an error line or an ingest.* weird)"
    rc = cli.main(["scan", str(p), str(_good(tmp_path)), "--out", str(tmp_path / "out"), "-q"])
    assert rc == 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
@pytest.mark.parametrize("comp", ["none", "gzip", "zstd"])
def test_finished_reader_keeps_no_file_open(tmp_path, comp):
    raw = pcap_bytes(session_frames())
    data = raw if comp == "none" else _compress(comp, raw)
    paths = []
    for i in range(20):
        p = tmp_path / f"c{i}.cap"
        p.write_bytes(data)
        paths.append(p)
    before = len(os.listdir("/proc/self/fd"))
    readers = []
    for p in paths:
        r = CaptureReader(str(p))
        for _ in r:
            pass
        readers.append(r)                       # still referenced: nothing closes it but the reader
    after = len(os.listdir("/proc/self/fd"))
    assert after - before < 5, f"{after - before} descriptors left open by 20 finished readers"


# ---------------------------------------------------------------------------
# stdin, directories, globs
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not INSPECTOR_BIN.exists(), reason="console script not installed in .venv")
@pytest.mark.parametrize("compress", [False, True])
def test_stdin_dash(tmp_path, compress):
    raw = pcap_bytes(session_frames() + tcp_session(cport=40001, t0_ns=T0_NS + 3_000_000_000))
    f = tmp_path / ("in.pcap.gz" if compress else "in.pcap")
    f.write_bytes(gzip.compress(raw) if compress else raw)
    out_stdin = tmp_path / "o1"
    out_file = tmp_path / "o2"
    r = subprocess.run(f"cat '{f}' | '{INSPECTOR_BIN}' scan - --out '{out_stdin}' -q", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert cli.main(["scan", str(f), "--out", str(out_file), "-q"]) == 0
    a = [json.loads(x) for x in (out_stdin / "flows.jsonl").read_bytes().splitlines()]
    b = [json.loads(x) for x in (out_file / "flows.jsonl").read_bytes().splitlines()]
    # The same records, each naming its input as given: "-" for stdin, the path for the file.
    assert [r.pop("capture") for r in a] == ["-"] * 3
    assert [r.pop("capture") for r in b] == [str(f)] * 3
    assert a == b


def _tree(tmp_path):
    d = tmp_path / "caps"
    files = ["b.pcap", "a.pcap", "aa/e.pcap", "sub/c.pcap", "sub/z/d.pcap", ".hidden.pcap"]
    for i, rel in enumerate(files):
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pcap_bytes([(T0_NS + i * 1_000_000_000, udp_frame(sport=1000 + i, ident=i))]))
    return d


def test_directory_recursive_sorted(tmp_path):
    d = _tree(tmp_path)
    inputs, errors = expand_inputs([str(d)])
    assert errors == []
    rel = [os.path.relpath(p, d) for p in inputs]
    # files of a directory first (sorted by name, dot files skipped), then its subdirectories (sorted), recursively
    assert rel == ["a.pcap", "b.pcap", "aa/e.pcap", "sub/c.pcap", "sub/z/d.pcap"]
    res = run_scan([str(d)])
    assert [os.path.relpath(f["path"], d) for f in res.stats["files"]] == rel
    assert res.stats["packets_read"] == 5
    outcomes_consistent(res.stats)
    # order is stable run to run
    assert expand_inputs([str(d)]) == (inputs, errors)


def test_globs(tmp_path):
    d = _tree(tmp_path)
    inputs, errors = expand_inputs([str(d / "*.pcap")])
    assert [os.path.basename(p) for p in inputs] == ["a.pcap", "b.pcap"] and errors == []
    inputs, errors = expand_inputs([str(d / "**" / "*.pcap")])
    assert sorted(os.path.relpath(p, d) for p in inputs) == ["a.pcap", "aa/e.pcap", "b.pcap", "sub/c.pcap",
                                                            "sub/z/d.pcap"]
    assert inputs == sorted(inputs)
    inputs, errors = expand_inputs([str(d / "s*")])              # a glob matching a directory
    assert [os.path.relpath(p, d) for p in inputs] == ["sub/c.pcap", "sub/z/d.pcap"]
    inputs, errors = expand_inputs([str(d / "*.nothing"), str(d / "missing.pcap")])
    assert inputs == [] and len(errors) == 2
    assert "no file matches" in errors[0] and "no such file" in errors[1]


# ---------------------------------------------------------------------------
# damaged files
# ---------------------------------------------------------------------------

def _five_frames():
    return [(T0_NS + i * 10_000_000, udp_frame(sport=3000 + i, payload=bytes([65 + i]) * 40, ident=i))
            for i in range(5)]


@pytest.mark.parametrize("cut", ["mid-record-header", "mid-packet"])
def test_truncated_last_record(tmp_path, cut):
    good = pcap_bytes(_five_frames())
    last = pcap_record(T0_NS + 10**9, udp_frame(payload=b"Z" * 100))
    tail = last[:10] if cut == "mid-record-header" else last[:16 + 30]
    p = tmp_path / "trunc.pcap"
    p.write_bytes(good + tail)
    res = run_scan([str(p)])
    st = res.stats
    outcomes_consistent(st)
    assert st["packets_read"] == 6
    assert st["outcomes"] == {"decoded": 5, "ingest.truncated_record": 1}
    names = weird_names(res)
    assert names.count("ingest.truncated_record") == 1
    w = [w for w in res.weirds if w["name"] == "ingest.truncated_record"][0]
    assert cut in w["detail"] and str(p) in w["detail"]


def test_bogus_record_length_resynchronises(tmp_path):
    frames = [(T0_NS + i * 10_000_000, udp_frame(sport=3000 + i, payload=bytes([65 + i]) * 60, ident=i))
              for i in range(10)]
    recs = [pcap_record(t, f) for t, f in frames]
    # record 4: incl_len 0x00FFFFFF (16 MiB, more than any snaplen): its 76 data bytes stay in the file
    recs[4] = pcap_record(frames[4][0], frames[4][1], incl_len=0x00FFFFFF)
    p = tmp_path / "bogus.pcap"
    p.write_bytes(pcap_header() + b"".join(recs))
    res = run_scan([str(p)])
    st = res.stats
    outcomes_consistent(st)
    assert st["packets_read"] == 10
    assert st["outcomes"] == {"decoded": 9, "ingest.bogus_record_length": 1}
    names = weird_names(res)
    assert "ingest.bogus_record_length" in names and "ingest.resynchronised" in names
    sports = sorted(f["id.orig_p"] for f in res.flows)
    assert sports == [3000 + i for i in range(10) if i != 4]


def test_bogus_record_length_before_a_short_last_record(tmp_path):
    """Resynchronisation must also find a small final record (here 16 + 14 bytes)."""
    frames = [(T0_NS + i * 10_000_000, udp_frame(sport=3000 + i, payload=b"x" * 60, ident=i)) for i in range(3)]
    recs = [pcap_record(t, f) for t, f in frames]
    recs[1] = pcap_record(frames[1][0], frames[1][1], incl_len=0x00FFFFFF)
    last = pcap_record(T0_NS + 50_000_000, eth(0x0806, b""))   # a bare 14-byte Ethernet header (non-IP)
    p = tmp_path / "bogus-short.pcap"
    p.write_bytes(pcap_header() + b"".join(recs) + last)
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["packets_read"] == 4
    assert res.stats["outcomes"].get("decoded") == 2


def _ng_with_corrupt_block(tail_epbs=3):
    f = [udp_frame(sport=4000 + i, ident=i) for i in range(4 + tail_epbs)]
    b = shb() + idb(1)
    b += b"".join(epb(0, T0_NS // 1000 + i * 1000, f[i]) for i in range(3))
    good = epb(0, T0_NS // 1000 + 3000, f[3])
    # an EPB whose block total length (bytes 4..8) is 0x7FFFFFF0 instead of 56: impossible
    b += good[:4] + struct.pack("<I", 0x7FFFFFF0) + good[8:]
    b += b"".join(epb(0, T0_NS // 1000 + i * 1000, f[i]) for i in range(4, 3 + tail_epbs + 1))
    return b


def test_pcapng_corrupt_block_length(tmp_path):
    p = tmp_path / "corrupt.pcapng"
    p.write_bytes(_ng_with_corrupt_block())
    res = run_scan([str(p)])
    st = res.stats
    outcomes_consistent(st)
    assert st["outcomes"].get("decoded", 0) >= 3
    names = weird_names(res)
    assert "ingest.corrupt_block" in names
    # the damaged packet block is accounted for in outcomes, as a bogus pcap record is
    assert any(k.startswith("ingest.") for k in st["outcomes"]), st["outcomes"]


def test_pcapng_corrupt_block_rest_still_processed(tmp_path):
    """README: 'corrupt pcapng blocks ... become weird records and stats.json outcomes; the rest
    of the file is still processed.'"""
    p = tmp_path / "corrupt2.pcapng"
    p.write_bytes(_ng_with_corrupt_block())
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["outcomes"].get("decoded", 0) >= 5, res.stats["outcomes"]


def test_pcapng_corrupt_block_does_not_buffer_rest_of_file(tmp_path):
    """After a corrupt block the reader must not pull the whole remainder into memory."""
    p = tmp_path / "corrupt-big.pcapng"
    filler = raw_block(0x00000B00, b"\0" * ((1 << 20) - 12))      # 1 MiB skippable blocks
    with open(p, "wb") as fh:
        fh.write(_ng_with_corrupt_block(tail_epbs=1))
        for _ in range(96):
            fh.write(filler)
    size = p.stat().st_size
    tracemalloc.start()
    try:
        r = CaptureReader(str(p))
        for _ in r:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < size * 0.6, f"peak {peak >> 20} MiB while reading a {size >> 20} MiB file"


def test_pcapng_truncated_last_block(tmp_path):
    f = udp_frame()
    data = shb() + idb(1) + epb(0, 1, f) + epb(0, 2, f)
    p = tmp_path / "ngtrunc.pcapng"
    p.write_bytes(data[:-20])
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["packets_read"] == 2
    assert res.stats["outcomes"] == {"decoded": 1, "ingest.truncated_record": 1}


@pytest.mark.parametrize("btype", [1, 6, 3])
def test_pcapng_minimal_block_at_end_of_file(tmp_path, btype):
    """A 12-byte (empty-body) IDB/EPB/SPB as the last block must not make the reader read past
    the buffer (struct.error)."""
    f = udp_frame()
    data = shb() + idb(1) + epb(0, 1, f) + raw_block(btype, b"")
    p = tmp_path / "tiny.pcapng"
    p.write_bytes(data)
    res = run_scan([str(p)])
    outcomes_consistent(res.stats)
    assert res.stats["outcomes"].get("decoded") == 1


def test_pcap_header_only_and_short_header(tmp_path):
    p1 = tmp_path / "hdr.pcap"
    p1.write_bytes(pcap_header())
    p2 = tmp_path / "short.pcap"
    p2.write_bytes(pcap_header()[:12])
    res = run_scan([str(p1), str(p2)])
    assert res.errors == []
    assert res.stats["packets_read"] == 0
    assert "ingest.truncated_file_header" in weird_names(res)


# ---------------------------------------------------------------------------
# non-captures, empty and unreadable files (CLI in-process)
# ---------------------------------------------------------------------------

def _good(tmp_path, name="good.pcap"):
    p = tmp_path / name
    p.write_bytes(pcap_bytes(session_frames()))
    return p


def _err_lines(capsys):
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def test_non_capture_one_line_others_continue(tmp_path, capsys):
    txt = tmp_path / "notes.pcap"
    txt.write_text("this is not a capture\n" * 10)
    good = _good(tmp_path)
    out = tmp_path / "out"
    rc = cli.main(["scan", str(txt), str(good), "--out", str(out), "-q"])
    lines = _err_lines(capsys)
    assert rc == 0
    assert len(lines) == 1, lines
    assert str(txt) in lines[0] and "Traceback" not in lines[0]
    assert len((out / "flows.jsonl").read_text().splitlines()) == 2


def test_only_non_captures_exit_2(tmp_path, capsys):
    txt = tmp_path / "a.txt"
    txt.write_text("hello")
    rc = cli.main(["scan", str(txt), "--out", str(tmp_path / "out"), "-q"])
    lines = _err_lines(capsys)
    assert rc == 2
    assert any(str(txt) in ln for ln in lines)
    assert not any("Traceback" in ln for ln in lines)


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(NotACapture):
        CaptureReader(str(empty))
    rc = cli.main(["scan", str(empty), "--out", str(tmp_path / "o1"), "-q"])
    lines = _err_lines(capsys)
    assert rc == 2 and any(str(empty) in ln for ln in lines)
    rc = cli.main(["scan", str(empty), str(_good(tmp_path)), "--out", str(tmp_path / "o2"), "-q"])
    lines = _err_lines(capsys)
    assert rc == 0 and len(lines) == 1 and str(empty) in lines[0]


def test_unreadable_file(tmp_path, capsys):
    bad = _good(tmp_path, "secret.pcap")
    good = _good(tmp_path)
    os.chmod(bad, 0)
    try:
        if os.access(bad, os.R_OK):
            pytest.skip("running with privileges that read a mode-000 file (root)")
        rc = cli.main(["scan", str(bad), str(good), "--out", str(tmp_path / "out"), "-q"])
        lines = _err_lines(capsys)
        assert rc == 0 and len(lines) == 1 and str(bad) in lines[0]
        rc = cli.main(["scan", str(bad), "--out", str(tmp_path / "out2"), "-q"])
        assert rc == 2
    finally:
        os.chmod(bad, 0o644)


def test_unreadable_file_simulated(tmp_path, capsys, monkeypatch):
    """Same as above but works as root: open() of that one path raises PermissionError."""
    import builtins

    import inspector.ingest as ingest_mod
    bad = _good(tmp_path, "secret.pcap")
    good = _good(tmp_path)
    real_open = builtins.open

    def fake_open(path, *a, **kw):
        if str(path) == str(bad):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(ingest_mod, "open", fake_open, raising=False)
    rc = cli.main(["scan", str(bad), str(good), "--out", str(tmp_path / "out"), "-q"])
    lines = _err_lines(capsys)
    assert rc == 0 and len(lines) == 1 and str(bad) in lines[0] and "permission" in lines[0].lower()
    rc = cli.main(["scan", str(bad), "--out", str(tmp_path / "out2"), "-q"])
    assert rc == 2


# ---------------------------------------------------------------------------
# memory stays bounded
# ---------------------------------------------------------------------------

def test_memory_bounded_on_150mb_pcap(tmp_path):
    frame = udp_frame(payload=b"M" * 1400)                       # 1442-byte frame
    block = b"".join(pcap_record(T0_NS + i * 1000, frame) for i in range(1000))
    reps = (150 << 20) // len(block) + 1
    p = tmp_path / "big.pcap"
    with open(p, "wb") as fh:
        fh.write(pcap_header())
        for _ in range(reps):
            fh.write(block)
    size = p.stat().st_size
    assert size >= 150 << 20
    max_buf = 0
    max_current = 0
    packets = 0
    tracemalloc.start()
    try:
        r = CaptureReader(str(p))
        for batch in r:
            max_buf = max(max_buf, len(batch.buf))
            packets += len(batch)
            max_current = max(max_current, tracemalloc.get_traced_memory()[0])
            del batch
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert packets == reps * 1000
    assert r.stats.packets_read == packets and not r.stats.events
    assert max_buf <= 32 << 20
    # while a batch is out, at most two buffers (the batch's and the reader's next one) are alive
    assert max_current <= 2 * max_buf + (8 << 20), (max_current >> 20, max_buf >> 20)
    # and the peak does not grow with the file (150 MiB here)
    assert peak <= 3 * max_buf + (8 << 20), (peak >> 20, max_buf >> 20)
    assert peak < size / 2
