"""Fuzz targets: one function per attack surface, each taking the fuzzer's bytes.

A target must never raise: inspector's contract is that bad input becomes counted weirds and
errors, not exceptions.  The same functions serve three callers:

* ``tests/fuzz/run.py``: coverage-guided fuzzing with atheris (libFuzzer) for a fixed time budget
  per target (``make fuzz``);
* ``tests/test_fuzz_regressions.py``: every input in ``tests/fuzz/crashes/<target>-*`` (inputs
  that once broke a target) replayed in ``make test``;
* ``seeds(name)``: seed inputs derived from the bundled captures.

Targets: ``ingest`` (capture file bytes -> reader, every record accounted), ``decode`` (a link
type byte + one frame -> every decode path, which must agree), ``proto_<module>`` for every module
of the protocol registry (both directions' stream chunks -> its probe and analyzer), ``content``
(a content-type selector + a body -> the content stage: typing, decoding, identifiers, records,
EDI), ``signatures`` (YAML text -> rule, destination-group and site loaders, which may only raise
ConfigError with a file:line message).
"""
from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

CAPTURES = _REPO / "captures"
LINKTYPES = (1, 0, 101, 113, 276, 9, 51, 104, 105, 127, 192, 239, 228, 229, 108, 12, 14, 50)
_TMP = Path(os.environ.get("INSPECTOR_FUZZ_TMP") or tempfile.gettempdir())


# ------------------------------------------------------------------------------------------
# ingest
# ------------------------------------------------------------------------------------------

def fuzz_ingest(data: bytes) -> None:
    """Any bytes as a capture file: either NotACapture (one message) or batches whose records,
    plus the events' packet counts, add up to packets_read."""
    from inspector.ingest import CaptureReader, NotACapture
    path = _TMP / f"inspector-fuzz-{os.getpid()}.pcap"
    path.write_bytes(data)
    try:
        reader = CaptureReader(str(path), batch_packets=64, batch_bytes=1 << 16)
    except NotACapture as e:
        assert str(e)
        return
    n = sum(len(b) for b in reader)
    st = reader.stats
    assert n + sum(ev.packets for ev in st.events) >= 0
    assert st.packets_read >= n, (st.packets_read, n)


# ------------------------------------------------------------------------------------------
# decode
# ------------------------------------------------------------------------------------------

_DECODERS = {}


def _decoders():
    if not _DECODERS:
        from inspector.decode import Decoder
        _DECODERS["fast"] = Decoder(fast=True)
        _DECODERS["slow"] = Decoder(fast=False)
    return _DECODERS


def fuzz_decode(data: bytes) -> None:
    """First byte picks the link type; the rest is one frame.  Every path decodes it without
    raising, and the compiled fast path and the per-packet path produce the same rows."""
    import numpy as np

    from inspector.ingest import PacketBatch
    if not data:
        return
    lt = LINKTYPES[data[0] % len(LINKTYPES)]
    frame = data[1:]
    batch = PacketBatch(buf=frame, ts=np.array([1.0]), caplen=np.array([len(frame)], dtype=np.int64),
                        wirelen=np.array([len(frame)], dtype=np.int64), offset=np.array([0], dtype=np.int64),
                        linktype=np.array([lt], dtype=np.int32))
    d = _decoders()
    fast = d["fast"].decode(batch)
    slow = d["slow"].decode(batch)
    assert sum(fast.outcomes.values()) == 1 and sum(slow.outcomes.values()) == 1
    assert len(fast) == len(slow), (lt, len(fast), len(slow))
    for c in ("src_lo", "dst_lo", "proto", "sport", "dport", "pay_len"):
        assert np.array_equal(fast.cols[c], slow.cols[c]), c


# ------------------------------------------------------------------------------------------
# protocols
# ------------------------------------------------------------------------------------------

class _Sink:
    """Takes whatever an analyzer hands the dispatcher; checks records are JSON-serialisable."""

    def __init__(self):
        self.n = 0

    def emit(self, log, record):
        import orjson
        orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS, default=lambda o: list(o) if isinstance(
            o, (set, frozenset, tuple)) else o.hex() if isinstance(o, (bytes, bytearray)) else str(o))
        self.n += 1

    def weird(self, ctx, name, detail, ts):
        assert "." in name and name == name.lower(), name

    def __getattr__(self, name):          # hostname, dns_answer, expect, body ... : accepted, ignored
        return lambda *a, **k: None


def _modules():
    from inspector.protocols import load
    return load()


def _protocol_target(name: str):
    def fuzz_protocol(data: bytes) -> None:
        """Byte 0 picks the transport; the rest, split at 0xFF 0x00 markers, is fed as alternating
        originator/responder chunks (TCP stream data, a chunk 0xFE + 2 bytes being a gap of that
        length, or UDP datagrams).  probe() never raises; the analyzer never raises and only
        emits JSON-serialisable records and well-formed weird names."""
        from inspector.protocols.base import FlowContext
        if not data:
            return
        mod = next(m for m in _modules() if m.__name__.rsplit(".", 1)[1] == name)
        transports = mod.TRANSPORTS
        transport = transports[data[0] % len(transports)]
        chunks = data[1:].split(b"\xff\x00")[:64]
        for i, c in enumerate(chunks[:4]):
            mod.probe(c, i % 2 == 0)
        ctx = FlowContext(uid="CFUZZ", ts=1.0, orig_h="10.0.0.1", orig_p=40000, resp_h="192.0.2.1",
                          resp_p=(mod.PORTS[0] if getattr(mod, "PORTS", ()) else 1), transport=transport,
                          sink=_Sink())
        an = mod.Analyzer(ctx)
        ts = 1.0
        for i, c in enumerate(chunks):
            ts += 0.01
            if transport == "udp":
                an.datagram(i % 2 == 0, c, ts)
            elif c[:1] == b"\xfe" and len(c) >= 3:
                an.gap(i % 2 == 0, struct.unpack("!H", c[1:3])[0], ts)
            else:
                an.data(i % 2 == 0, c, ts)
        an.done(ts + 1)
    fuzz_protocol.__name__ = f"fuzz_proto_{name}"
    return fuzz_protocol


# ------------------------------------------------------------------------------------------
# content
# ------------------------------------------------------------------------------------------

_CONTENT = {}
_CTYPES = (None, "application/json", "text/csv", "application/xml", "text/plain", "application/edifact",
           "application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ", "application/octet-stream",
           "application/zip", "application/gzip")
_CENC = (None, None, "gzip", "deflate", "br")


def fuzz_content(data: bytes) -> None:
    """Byte 0 picks content type and encoding; the rest is one leaving body (then also offered as
    a raw stream).  The content stage types, decodes and counts it without raising, and the
    record it writes holds no raw identifier (samples are masked)."""
    if not data:
        return
    st = _CONTENT.get("stage")
    if st is None:
        from inspector.content.stage import ContentStage
        st = _CONTENT["stage"] = ContentStage(salt=b"fuzz", show_raw=False, edm=[])
    ct = _CTYPES[data[0] % len(_CTYPES)]
    enc = _CENC[(data[0] >> 4) % len(_CENC)]
    body = data[1:]
    cf = st.new_flow()
    st.body(cf, {"source": "http", "content_type": ct, "content_encoding": enc}, body, "CFUZZ")
    st.stream(cf, body)
    st.finish(cf, "CFUZZ", 1.0, "outbound", len(body) * 2)


# ------------------------------------------------------------------------------------------
# signatures (rules, destination groups, site files)
# ------------------------------------------------------------------------------------------

def fuzz_signatures(data: bytes) -> None:
    """Byte 0 picks the loader; the rest is the file's text.  Loaders accept it or raise
    ConfigError naming file and line; nothing else."""
    from inspector.errors import ConfigError
    if not data:
        return
    which = data[0] % 3
    text = data[1:]
    try:
        if which == 0:
            from inspector.policy.rules import loads_rules
            loads_rules(text, "fuzz.yaml")
        elif which == 1:
            from inspector.enrich.groups import loads_groups
            loads_groups(text, "fuzz.yaml")
        else:
            from inspector.site import loads_site
            loads_site(text, "fuzz.yaml")
    except ConfigError as e:
        msg = str(e)
        assert "fuzz.yaml" in msg and "\n" not in msg.strip(), msg


def _protocol_names() -> tuple:
    from inspector.protocols import MODULES
    return tuple(MODULES)


TARGETS = {
    "ingest": fuzz_ingest,
    "decode": fuzz_decode,
    **{f"proto_{m}": _protocol_target(m) for m in _protocol_names()},    # one per protocol module
    "content": fuzz_content,
    "signatures": fuzz_signatures,
}


# ------------------------------------------------------------------------------------------
# seeds from the bundled captures
# ------------------------------------------------------------------------------------------

def _frames(limit_files: int = 40):
    import dpkt
    for p in sorted(CAPTURES.glob("*.pcap"))[:limit_files]:
        with open(p, "rb") as fh:
            try:
                for _ts, frame in dpkt.pcap.Reader(fh):
                    yield frame
            except (ValueError, dpkt.dpkt.NeedData):
                continue


def seeds(name: str, cap: int = 400) -> list:
    """Seed inputs for a target, made from the bundled captures and signature files."""
    out: list = []
    if name == "ingest":
        for p in sorted(CAPTURES.glob("*.pcap")):
            b = p.read_bytes()
            out.append(b[:4096])
            out.append(b[:24] + b[-2048:])
    elif name == "decode":
        for i, fr in enumerate(_frames()):
            out.append(bytes([0]) + fr)
            if len(out) >= cap:
                break
    elif name.startswith("proto_"):
        import dpkt
        mod = next(m for m in _modules() if m.__name__.rsplit(".", 1)[1] == name[6:])
        ports = set(getattr(mod, "PORTS", ()))
        hits, others = [], []
        for fr in _frames():
            try:
                l4 = dpkt.ethernet.Ethernet(fr).data.data
                if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)) and len(l4.data) > 0:
                    t = 1 if isinstance(l4, dpkt.udp.UDP) and len(mod.TRANSPORTS) > 1 else 0
                    (hits if {l4.sport, l4.dport} & ports else others).append(bytes([t]) + bytes(l4.data[:1500]))
            except Exception:   # a frame we cannot parse is just not a seed
                continue
        out = hits[:cap - 20] + others[:20]
    elif name == "content":
        for i, fr in enumerate(_frames()):
            k = fr.find(b"\r\n\r\n")
            if k > 0 and len(fr) - k > 16:
                out.append(bytes([i % 11]) + fr[k + 4:])
            if len(out) >= cap:
                break
    elif name == "signatures":
        sig = _REPO / "signatures"
        for i, p in enumerate(sorted(sig.glob("rules/*.yaml"))):
            out.append(b"\x00" + p.read_bytes())
        for p in sorted(sig.glob("destinations/*.yaml"))[:30]:
            out.append(b"\x01" + p.read_bytes())
        out.append(b"\x02" + (CAPTURES / "site-dc-north.yaml").read_bytes())
    return out[:cap]


def regression_inputs(crash_dir: Path) -> list:
    """(target, path) for every stored input, named ``<target>-<anything>``."""
    out = []
    for p in sorted(crash_dir.iterdir()) if crash_dir.is_dir() else []:
        t = p.name.split("-", 1)[0]
        if t in TARGETS and p.is_file():
            out.append((t, p))
    return out


if __name__ == "__main__":   # python tests/fuzz/targets.py TARGET FILE: replay one input
    TARGETS[sys.argv[1]](Path(sys.argv[2]).read_bytes())
    print("ok")
