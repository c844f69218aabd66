"""Hostile input: truncated and bit-flipped copies of real captures, random bytes, odd link types.

Every scan must return (no exception), within 30 s (SIGALRM guard per scan), with
``sum(stats['outcomes'].values()) == stats['packets_read']``.  All randomness is seeded.
"""
from __future__ import annotations

import os
import random
import signal
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from helpers.pkt import pcap_bytes, pcap_header, shb, udp_frame
from inspector.decode.batch import Decoder
from inspector.ingest import PacketBatch
from inspector.pipeline import run_scan

REPO = Path(__file__).resolve().parents[1]
T0_NS = 1_764_000_000_000_000_000
GUARD_S = 30
N_TRUNCATIONS = 20
N_FLIPPED = 10
N_CORPUS = 40


class ScanTimeout(Exception):
    pass


@contextmanager
def alarm(seconds: int):
    def on_alarm(signum, frame):
        raise ScanTimeout(f"scan did not finish within {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def guarded_scan(path) -> dict:
    with alarm(GUARD_S):
        res = run_scan([str(path)])
    st = res.stats
    assert sum(st["outcomes"].values()) == st["packets_read"], (str(path), st["outcomes"], st["packets_read"])
    assert all(v > 0 for v in st["outcomes"].values()), st["outcomes"]
    return st


def mutants(data: bytes, seed: int):
    """(label, bytes) copies: N_TRUNCATIONS truncations and N_FLIPPED copies with random byte flips."""
    rng = random.Random(seed)
    n = len(data)
    for off in sorted(rng.sample(range(1, n), min(N_TRUNCATIONS, n - 1))):
        yield f"trunc@{off}", data[:off]
    for k in range(N_FLIPPED):
        buf = bytearray(data)
        nflips = rng.choice([1, 2, 4, 16, 64])
        where = []
        for _ in range(nflips):
            # half of the flips land in the first 256 bytes, where the file/record headers are
            i = rng.randrange(min(n, 256)) if rng.random() < 0.5 else rng.randrange(n)
            buf[i] ^= rng.randrange(1, 256)
            where.append(i)
        yield f"flip{k}@{','.join(map(str, where[:4]))}", bytes(buf)


def check_mutants(src: Path, tmp_path: Path):
    data = src.read_bytes()
    seed = zlib.crc32(src.name.encode())
    failures = []
    for label, blob in mutants(data, seed):
        p = tmp_path / "mutant"
        p.write_bytes(blob)
        try:
            guarded_scan(p)
        except AssertionError as e:
            failures.append(f"{label}: {e}")
        except Exception as e:  # noqa: BLE001 - we report every crash with its mutation
            failures.append(f"{label}: {type(e).__name__}: {e}")
    assert not failures, f"{src}:\n" + "\n".join(failures[:10])


# ---------------------------------------------------------------------------
# bundled captures
# ---------------------------------------------------------------------------

BUNDLED = sorted((REPO / "captures").glob("*.pcap"))


@pytest.mark.parametrize("src", BUNDLED, ids=[p.name for p in BUNDLED])
def test_bundled_capture_mutants(src, tmp_path):
    check_mutants(src, tmp_path)


# ---------------------------------------------------------------------------
# corpus: ~40 small files of varied formats and link types
# ---------------------------------------------------------------------------

def corpus_root() -> Path:
    env = os.environ.get("INSPECTOR_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def corpus_selection(limit=N_CORPUS, max_bytes=48_000) -> list:
    """Round-robin over (format, link type, compressed, truncated) groups, smallest first."""
    root = corpus_root()
    index = root / "INDEX.jsonl"
    if not index.is_file():
        return []
    import json
    rows = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    groups: dict = {}
    for r in rows:
        if r["bytes"] > max_bytes or r["bytes"] < 64:
            continue
        key = (r["format"], r["linktype"], r["dest"].endswith(".gz"), bool(r.get("truncated")))
        groups.setdefault(key, []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: (r["bytes"], r["dest"]))
    picked = []
    depth = 0
    while len(picked) < limit and any(len(g) > depth for g in groups.values()):
        for key in sorted(groups, key=repr):
            g = groups[key]
            if depth < len(g) and len(picked) < limit:
                picked.append(g[depth]["dest"])
        depth += 1
    return sorted(picked)


CORPUS = corpus_selection()


@pytest.mark.corpus
@pytest.mark.parametrize("rel", CORPUS or ["<no corpus>"], ids=CORPUS or ["no-corpus"])
def test_corpus_mutants(rel, tmp_path):
    if not CORPUS:
        pytest.skip(f"corpus not found at {corpus_root()}")
    check_mutants(corpus_root() / rel, tmp_path)


def test_corpus_selection_is_varied():
    if not CORPUS:
        pytest.skip("no corpus")
    assert len(CORPUS) >= 30
    heads = {(corpus_root() / r).read_bytes()[:4] for r in CORPUS}
    assert len(heads) >= 3, heads      # pcap LE, pcapng, and at least one more (BE, ns or gzip)


# ---------------------------------------------------------------------------
# synthetic hostile files
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_after_pcap_header(tmp_path, seed):
    rng = random.Random(1000 + seed)
    p = tmp_path / "noise.pcap"
    p.write_bytes(pcap_header() + rng.randbytes(256 << 10))
    guarded_scan(p)


def test_random_records_after_valid_packets(tmp_path):
    rng = random.Random(7)
    good = pcap_bytes([(T0_NS + i * 1000, udp_frame(sport=2000 + i)) for i in range(20)])
    p = tmp_path / "tail-noise.pcap"
    p.write_bytes(good + rng.randbytes(64 << 10))
    st = guarded_scan(p)
    assert st["outcomes"].get("decoded", 0) >= 20


@pytest.mark.parametrize("seed", range(2))
def test_random_bytes_after_pcapng_shb(tmp_path, seed):
    rng = random.Random(2000 + seed)
    p = tmp_path / "noise.pcapng"
    p.write_bytes(shb() + rng.randbytes(64 << 10))
    guarded_scan(p)


def test_pcap_linktype_147(tmp_path):
    p = tmp_path / "user0.pcap"
    p.write_bytes(pcap_bytes([(T0_NS + i * 1000, udp_frame(sport=2000 + i)) for i in range(5)], linktype=147))
    st = guarded_scan(p)
    assert st["outcomes"] == {"linktype.USER0(147)": 5}


def test_linktype_with_fcs_bits(tmp_path):
    # upper 16 bits of the pcap 'network' field carry FCS information: link type is the low 16
    p = tmp_path / "fcs.pcap"
    p.write_bytes(pcap_bytes([(T0_NS, udp_frame())], linktype=(1 << 28) | (4 << 16) | 1))
    st = guarded_scan(p)
    assert st["outcomes"] == {"decoded": 1}


def test_all_frames_zero_length(tmp_path):
    p = tmp_path / "zero.pcap"
    p.write_bytes(pcap_bytes([(T0_NS + i, b"") for i in range(10)]))
    st = guarded_scan(p)
    assert st["packets_read"] == 10


# ---------------------------------------------------------------------------
# decoder fuzz: mutated frames of every link type, both paths, no exception, same rows
# ---------------------------------------------------------------------------

def test_decoder_fuzz_fast_equals_slow():
    from test_decode import FAST_IMPLS, LINK_CASES, compare_paths, fast_decoder
    rng = random.Random(99)
    frames = []
    for _id, lt, frame, *_ in LINK_CASES:
        for _ in range(40):
            b = bytearray(frame)
            for _ in range(rng.choice([1, 2, 3, 8])):
                b[rng.randrange(len(b))] = rng.randrange(256)
            cut = rng.choice([len(b), len(b), rng.randrange(len(b) + 1)])
            frames.append((lt, bytes(b[:cut])))
    buf = b""
    offs, caps = [], []
    for lt, data in frames:
        offs.append(len(buf))
        buf += data
        caps.append(len(data))
    n = len(frames)
    wire = np.array(caps, dtype=np.int64) + np.array([rng.choice([0, 0, 0, 20]) for _ in range(n)], dtype=np.int64)
    batch = PacketBatch(buf=buf, ts=1.7e9 + np.arange(n, dtype=np.float64) * 1e-3,
                        caplen=np.array(caps, dtype=np.int64), wirelen=wire,
                        offset=np.array(offs, dtype=np.int64), linktype=np.array([f[0] for f in frames], dtype=np.int32))
    with alarm(GUARD_S):
        slow = Decoder(fast=False).decode(batch)
        fasts = {impl: fast_decoder(impl).decode(batch) for impl in FAST_IMPLS}
    assert sum(slow.outcomes.values()) == n
    for impl, fast in fasts.items():
        assert compare_paths(fast, slow) == [], f"fast path {impl}"
