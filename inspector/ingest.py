"""Capture ingest: files, stdin, directories and globs -> bounded packet batches.

Formats are recognised by magic number, never by name: classic pcap in its four
variants (micro/nanosecond, either byte order), pcapng (any number of sections and
interfaces, EPB/SPB/legacy PB, unknown blocks skipped), each optionally wrapped in
gzip or zstd.  Records are located with a plain Python loop over the headers (the
one step numpy does badly, see PERFORMANCE.md) and handed on as a ``PacketBatch``:
numpy columns over one ``bytes`` buffer.  Memory is bounded by ``batch_bytes``
whatever the file size.

Damaged files never stop the scan: a truncated last record, a record whose length
is impossible, or an I/O error mid-file become weird records plus counters, and
the reader resynchronises on the next plausible record where it can.
"""
from __future__ import annotations

import glob
import zlib
import io
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np

from .jit import njit

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

MAX_RECORD = 262144 * 4      # larger than any real snaplen: a bigger incl_len is bogus
MAX_BLOCK = 64 << 20         # pcapng blocks larger than this are treated as corrupt
_MIN_BLOCK = {1: 20, 2: 32, 3: 16, 6: 32}   # smallest valid total length per block type
_KNOWN_BLOCKS = {1, 2, 3, 4, 5, 6, 9, 10, 0xBAD, 0x40000BAD}
READ_CHUNK = 16 << 20


@njit(cache=True, nogil=True)
def walk_pcap(buf, pos, end, limit, max_n, big, max_len, sec, frac, incl, orig, off):
    """Find classic-pcap record boundaries.  Returns (records, new position, stop reason):
    0 batch full, 1 need more data, 2 impossible record length at the position."""
    n = 0
    while n < max_n and pos < limit:
        if pos + 16 > end:
            return n, pos, 1
        if big:
            s = (np.int64(buf[pos]) << 24) | (np.int64(buf[pos + 1]) << 16) | (np.int64(buf[pos + 2]) << 8) | buf[pos + 3]
            fr = (np.int64(buf[pos + 4]) << 24) | (np.int64(buf[pos + 5]) << 16) | (np.int64(buf[pos + 6]) << 8) | buf[pos + 7]
            il = (np.int64(buf[pos + 8]) << 24) | (np.int64(buf[pos + 9]) << 16) | (np.int64(buf[pos + 10]) << 8) | buf[pos + 11]
            ol = (np.int64(buf[pos + 12]) << 24) | (np.int64(buf[pos + 13]) << 16) | (np.int64(buf[pos + 14]) << 8) | buf[pos + 15]
        else:
            s = (np.int64(buf[pos + 3]) << 24) | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 1]) << 8) | buf[pos]
            fr = (np.int64(buf[pos + 7]) << 24) | (np.int64(buf[pos + 6]) << 16) | (np.int64(buf[pos + 5]) << 8) | buf[pos + 4]
            il = (np.int64(buf[pos + 11]) << 24) | (np.int64(buf[pos + 10]) << 16) | (np.int64(buf[pos + 9]) << 8) | buf[pos + 8]
            ol = (np.int64(buf[pos + 15]) << 24) | (np.int64(buf[pos + 14]) << 16) | (np.int64(buf[pos + 13]) << 8) | buf[pos + 12]
        if il > max_len:
            return n, pos, 2
        if pos + 16 + il > end:
            return n, pos, 1
        sec[n] = s
        frac[n] = fr
        incl[n] = il
        # A wire length below the captured length, or beyond any real frame, is not trusted.
        orig[n] = ol if (ol >= il and ol <= max_len) else il
        off[n] = pos + 16
        pos += 16 + il
        n += 1
    return n, pos, 0


class NotACapture(Exception):
    """The input is readable but is not a capture file (one clear line for the user)."""


@dataclass
class PacketBatch:
    """A batch of captured packets as columns over one buffer."""
    buf: bytes
    ts: np.ndarray          # float64 epoch seconds
    caplen: np.ndarray      # int64 captured length
    wirelen: np.ndarray     # int64 original length on the wire
    offset: np.ndarray      # int64 start of the packet in buf
    linktype: np.ndarray    # int32 link-layer type (DLT) of each packet
    source: str = ""

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class IngestEvent:
    """A problem found while reading: becomes a weird record and a stats counter."""
    ts: float | None
    name: str
    detail: str
    packets: int = 0        # records this event accounts for (they were read but not decoded)


@dataclass
class ReaderStats:
    packets_read: int = 0
    bytes_read: int = 0
    events: list = field(default_factory=list)


def expand_inputs(paths: list[str]) -> tuple[list[str], list[str]]:
    """Expand directories (recursively, sorted) and globs.  Returns (inputs, errors)."""
    out: list[str] = []
    errors: list[str] = []
    for p in paths:
        if p == "-":
            out.append(p)
        elif os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if not f.startswith("."):
                        found.append(os.path.join(root, f))
            out.extend(found)
        elif os.path.exists(p):
            out.append(p)
        elif any(c in p for c in "*?["):
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                errors.append(f"{p}: no file matches this pattern")
            for m in matches:
                if os.path.isdir(m):
                    sub, err = expand_inputs([m])
                    out.extend(sub)
                    errors.extend(err)
                else:
                    out.append(m)
        else:
            errors.append(f"{p}: no such file or directory")
    return out, errors


class _Peekable:
    """A binary stream with a small push-back buffer (stdin cannot seek)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.head = b""

    def peek(self, n: int) -> bytes:
        while len(self.head) < n:
            chunk = self.raw.read(n - len(self.head))
            if not chunk:
                break
            self.head += chunk
        return self.head[:n]

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data = self.head + self.raw.read()
                self.head = b""
                return data
            data = self.head[:n]
            self.head = self.head[n:]
            if len(data) < n:
                more = self.raw.read(n - len(data))
                if more:
                    data += more
            return data
        return self.raw.read(n)

    def readinto(self, view) -> int:
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        if hasattr(self.raw, "readinto"):
            return self.raw.readinto(view)
        data = self.raw.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:
            pass


class _Decompressor:
    """Incremental gzip/zstd decompression that never raises on damaged input.

    Everything decompressed before the damage is delivered; the problem is
    recorded in ``errors`` (the reader turns it into a weird) and the stream ends.
    Multi-member gzip and multi-frame zstd files are followed through.
    """

    def __init__(self, raw, kind: str, errors: list):
        self.raw = raw
        self.kind = kind
        self.errors = errors
        self.out = bytearray()
        self.done = False
        self._new()

    def _new(self):
        if self.kind == "gzip":
            self.obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            import zstandard
            self.obj = zstandard.ZstdDecompressor().decompressobj()

    def _more(self) -> None:
        chunk = self.raw.read(1 << 20)
        if not chunk:
            eof = getattr(self.obj, "eof", True)
            if self.kind == "gzip" and not eof:
                self.errors.append(f"{self.kind} stream ends before its end marker (truncated file)")
            self.done = True
            return
        try:
            while chunk:
                self.out += self.obj.decompress(chunk)
                unused = getattr(self.obj, "unused_data", b"")
                if getattr(self.obj, "eof", False) and unused:
                    chunk = bytes(unused)
                    if self.kind == "gzip" and chunk[:2] != GZIP_MAGIC:
                        self.done = True  # trailing garbage after the last member
                        return
                    self._new()
                else:
                    chunk = b""
        except Exception as e:  # zlib.error, ZstdError: keep what we have, stop here
            self.errors.append(f"{self.kind} data is corrupt: {e}")
            self.done = True

    def read(self, n: int = -1) -> bytes:
        while not self.done and (n < 0 or len(self.out) < n):
            self._more()
        if n < 0:
            n = len(self.out)
        data = bytes(self.out[:n])
        del self.out[:n]
        return data

    def readinto(self, view) -> int:
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:
            pass


def open_capture(path: str, errors: list | None = None) -> _Peekable:
    """Open a path (or '-') and unwrap gzip/zstd layers found by magic number."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        raw = open(path, "rb")
    stream = _Peekable(raw)
    errors = [] if errors is None else errors
    for _ in range(3):  # nested compression, bounded
        magic = stream.peek(4)
        if magic[:2] == GZIP_MAGIC:
            stream = _Peekable(_Decompressor(stream, "gzip", errors))
        elif magic == ZSTD_MAGIC:
            stream = _Peekable(_Decompressor(stream, "zstd", errors))
        else:
            break
    return stream


class CaptureReader:
    """Iterate bounded ``PacketBatch`` es from one capture source.

    ``events`` collects IngestEvents (truncation, bogus lengths, unknown blocks...);
    ``packets_read``/``bytes_read`` count every record read, decoded or not.
    """

    def __init__(self, path: str, batch_packets: int = 65536, batch_bytes: int = 16 << 20):
        self.path = path
        self.batch_packets = batch_packets
        self.batch_bytes = batch_bytes
        self.stats = ReaderStats()
        self._stream_errors: list = []
        self.stream = open_capture(path, self._stream_errors)
        magic = self.stream.peek(4)
        if len(magic) < 4:
            self.stream.close()
            if self._stream_errors:
                raise NotACapture(f"{path}: {self._stream_errors[0]}")
            raise NotACapture(f"{path}: empty or too short to be a capture file")
        if magic in PCAP_MAGICS:
            self.kind = "pcap"
        elif magic == PCAPNG_MAGIC:
            self.kind = "pcapng"
        else:
            self.stream.close()
            raise NotACapture(f"{path}: not a pcap or pcapng capture (magic {magic.hex()})")
        self._buf = b""
        self._base = 0
        self._chunk = 1 << 18
        self._pos = 0
        self._eof = False
        self._last_ts: float | None = None
        self.interfaces: list = []   # pcapng: (linktype, tsres, snaplen, tsoffset) per interface
        self.endian = "<"             # pcapng: the current section's byte order

    # -- buffered access ---------------------------------------------------
    def _fill(self, need: int) -> bool:
        """Make at least ``need`` bytes available from _pos; False at EOF.

        Each fill reads into a new buffer (batches already handed out keep theirs),
        copying only the unread tail of the old one.
        """
        avail = len(self._buf) - self._pos
        if avail >= need:
            return True
        if self._eof:
            return False
        want = max(need, self._chunk)
        self._chunk = min(self._chunk * 4, READ_CHUNK)  # small files stay cheap, big ones get big reads
        buf = bytearray(want)
        buf[:avail] = memoryview(self._buf)[self._pos:]
        total = avail
        view = memoryview(buf)
        while total < want:
            try:
                got = self.stream.readinto(view[total:])
            except (OSError, EOFError, ValueError) as e:  # gzip CRC/EOF errors, I/O errors
                self._event("ingest.read_error", f"{type(e).__name__}: {e}")
                got = 0
            except Exception as e:  # zstd errors and the like: never crash on input
                self._event("ingest.read_error", f"{type(e).__name__}: {e}")
                got = 0
            if not got:
                self._eof = True
                for err in self._stream_errors:
                    self._event("ingest.decompression_error", err)
                self._stream_errors.clear()
                break
            total += got
        view.release()
        if total < want:
            del buf[total:]
        self._base += self._pos    # file offset of the new buffer's first byte
        self._buf = buf
        self._pos = 0
        return total >= need

    def _event(self, name: str, detail: str, packets: int = 0) -> None:
        self.stats.events.append(IngestEvent(self._last_ts, name, detail, packets))

    def close(self) -> None:
        self.stream.close()

    def __iter__(self) -> Iterator[PacketBatch]:
        try:
            if self.kind == "pcap":
                yield from self._iter_pcap()
            else:
                yield from self._iter_pcapng()
        finally:
            self.close()

    # -- classic pcap --------------------------------------------------------
    def _iter_pcap(self) -> Iterator[PacketBatch]:
        if not self._fill(24):
            self._event("ingest.truncated_file_header", "file ends inside the pcap header")
            return
        hdr = self._buf[self._pos:self._pos + 24]
        endian, tsres = PCAP_MAGICS[bytes(hdr[:4])]
        _, _vmaj, _vmin, _tz, _sig, snaplen, network = struct.unpack(endian + "4sHHiIII", hdr)
        # Upper 16 bits may carry FCS info (pcap LINKTYPE_*); the link type is the low 16.
        linktype = network & 0xFFFF
        self._pos += 24
        rec = struct.Struct(endian + "IIII")
        unpack = rec.unpack_from
        max_len = max(MAX_RECORD, snaplen if snaplen < (1 << 26) else 0)
        big = endian == ">"
        cap = self.batch_packets
        sec = np.empty(cap, dtype=np.int64)
        frac = np.empty(cap, dtype=np.int64)
        incl = np.empty(cap, dtype=np.int64)
        orig = np.empty(cap, dtype=np.int64)
        off = np.empty(cap, dtype=np.int64)
        while True:
            buf = self._buf
            arr = np.frombuffer(buf, dtype=np.uint8)
            start = self._pos
            if start + 16 > len(buf):   # not one record header in the buffer: read more (no kernel call)
                n, pos, stop = 0, start, 1
            else:
                n, pos, stop = walk_pcap(arr, start, len(buf), start + self.batch_bytes, cap, big, max_len,
                                          sec, frac, incl, orig, off)
            self._pos = pos
            if n:
                caplen = incl[:n].copy()
                self.stats.packets_read += n
                self.stats.bytes_read += int(caplen.sum())
                ts = sec[:n] + frac[:n] * tsres
                self._last_ts = float(ts[-1])
                yield PacketBatch(buf=buf, ts=ts, caplen=caplen, wirelen=orig[:n].copy(), offset=off[:n].copy(),
                                  linktype=np.full(n, linktype, dtype=np.int32), source=self.path)
            if stop == 2:
                _s, _f, bad, _o = unpack(buf, pos)
                self.stats.packets_read += 1
                self._event("ingest.bogus_record_length",
                            f"record at file offset {self._base + pos} claims {bad} captured bytes", packets=1)
                if not self._resync_pcap(rec, tsres, max_len):
                    return
            elif stop == 1:
                need = 16
                if len(self._buf) - self._pos >= 16:
                    need = 16 + unpack(self._buf, self._pos)[2]
                if not self._fill(need):
                    rem = len(self._buf) - self._pos
                    if rem > 0:
                        where = "mid-record-header" if rem < 16 else "mid-packet"
                        self.stats.packets_read += 1
                        self.stats.bytes_read += max(0, rem - 16)
                        self._event("ingest.truncated_record",
                                    f"file ends {where}: {rem} of {need} bytes present", packets=1)
                    return

    def _resync_pcap(self, rec: struct.Struct, tsres: float, max_len: int) -> bool:
        """After a bogus record header, find the next plausible one (bounded scan)."""
        scanned = 0
        self._pos += 1
        while scanned < (8 << 20):
            if not self._fill(48):
                return False
            buf = self._buf
            pos = self._pos
            end = len(buf) - 32
            while pos < end:
                sec, frac, incl, orig = rec.unpack_from(buf, pos)
                if 0 < incl <= max_len and orig >= incl and orig <= 262144 and (tsres < 1e-6 or frac < 1_000_000) \
                        and (self._last_ts is None or abs(sec - self._last_ts) < 86400 * 7):
                    nxt = pos + 16 + incl
                    if nxt + 16 <= len(buf):
                        s2, f2, i2, o2 = rec.unpack_from(buf, nxt)
                        if not (0 < i2 <= max_len and o2 >= i2 and abs(s2 - sec) < 86400 * 7):
                            pos += 1
                            continue
                    self._event("ingest.resynchronised", f"skipped {scanned + pos - self._pos} bytes")
                    self._pos = pos
                    return True
                pos += 1
            scanned += pos - self._pos
            self._pos = pos
        self._event("ingest.resync_failed", "no plausible record within 8 MiB; rest of file skipped")
        return False

    def _make_batch(self, buf, ts_l, cap_l, wire_l, off_l, linktype) -> PacketBatch:
        n = len(ts_l)
        caplen = np.array(cap_l, dtype=np.int64)
        self.stats.packets_read += n
        self.stats.bytes_read += int(caplen.sum())
        ts = np.array(ts_l, dtype=np.float64)
        self._last_ts = float(ts[-1]) if n else self._last_ts
        if isinstance(linktype, int):
            lt = np.full(n, linktype, dtype=np.int32)
        else:
            lt = np.array(linktype, dtype=np.int32)
        return PacketBatch(buf=buf, ts=ts, caplen=caplen, wirelen=np.array(wire_l, dtype=np.int64),
                           offset=np.array(off_l, dtype=np.int64), linktype=lt, source=self.path)

    # -- pcapng ---------------------------------------------------------------
    def _iter_pcapng(self) -> Iterator[PacketBatch]:
        endian = "<"
        ifaces: list[tuple[int, float, int, float]] = []  # (linktype, tsres, snaplen, tsoffset)
        self.interfaces = ifaces   # the current section's interfaces (carving reads exact timestamps)
        while True:
            buf = self._buf
            ts_l: list[float] = []
            cap_l: list[int] = []
            wire_l: list[int] = []
            off_l: list[int] = []
            lt_l: list[int] = []
            pos = self._pos
            end = len(buf)
            limit = pos + self.batch_bytes
            stop = None
            while len(ts_l) < self.batch_packets and pos < limit:
                if pos + 12 > end:
                    stop = "need"
                    break
                if bytes(buf[pos:pos + 4]) == PCAPNG_MAGIC:
                    bom = bytes(buf[pos + 8:pos + 12])
                    if bom == b"\x4d\x3c\x2b\x1a":
                        endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        endian = ">"
                    else:
                        stop = "corrupt"
                        break
                btype, blen = struct.unpack_from(endian + "II", buf, pos)
                if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                    stop = "corrupt"
                    break
                if pos + blen > end:
                    stop = "need"
                    break
                if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] != blen:
                    stop = "corrupt"  # the trailing copy of the length disagrees
                    break
                body = pos + 8
                if blen < _MIN_BLOCK.get(btype, 12):
                    packets = 1 if btype in (2, 3, 6) else 0
                    self.stats.packets_read += packets
                    self._event("ingest.bad_block", f"block type {btype} at file offset {self._base + pos} is only {blen} bytes",
                                packets=packets)
                elif btype == 0x0A0D0D0A:        # SHB: a new section resets interfaces
                    ifaces = []
                    self.interfaces = ifaces
                    self.endian = endian
                elif btype == 1:                  # IDB
                    lt, _res, snap = struct.unpack_from(endian + "HHI", buf, body)
                    tsres, tsoff = self._idb_options(buf, body + 8, pos + blen - 4, endian)
                    ifaces.append((lt, tsres, snap, tsoff))
                elif btype == 6 or btype == 2:    # EPB, legacy PB
                    if btype == 6:
                        ifid, tsh, tsl, cap, orig = struct.unpack_from(endian + "IIIII", buf, body)
                    else:
                        ifid, _drops, tsh, tsl, cap, orig = struct.unpack_from(endian + "HHIIII", buf, body)
                    data = body + 20
                    if ifid >= len(ifaces) or data + cap > pos + blen - 4:
                        self.stats.packets_read += 1
                        self._event("ingest.bad_packet_block",
                                    f"block at file offset {self._base + pos}: interface {ifid} of {len(ifaces)}, caplen {cap}",
                                    packets=1)
                    else:
                        lt, tsres, _snap, tsoff = ifaces[ifid]
                        ts_l.append(((tsh << 32) | tsl) * tsres + tsoff)
                        cap_l.append(cap)
                        wire_l.append(orig if cap <= orig <= MAX_RECORD else cap)
                        off_l.append(data)
                        lt_l.append(lt)
                elif btype == 3:                  # SPB: interface 0, no timestamp of its own
                    (orig,) = struct.unpack_from(endian + "I", buf, body)
                    if not ifaces:
                        self.stats.packets_read += 1
                        self._event("ingest.bad_packet_block", f"simple packet block at file offset {self._base + pos} before any interface",
                                    packets=1)
                    else:
                        lt, _tsres, snap, _off = ifaces[0]
                        cap = min(orig, blen - 16, snap if snap else orig)
                        prev = ts_l[-1] if ts_l else self._last_ts
                        ts_l.append(prev if prev is not None else 0.0)
                        cap_l.append(cap)
                        wire_l.append(orig if cap <= orig <= MAX_RECORD else cap)
                        off_l.append(body + 4)
                        lt_l.append(lt)
                # other blocks (NRB, ISB, DSB, custom...) are skipped
                pos += blen
            self._pos = pos
            if ts_l:
                yield self._make_batch(buf, ts_l, cap_l, wire_l, off_l, lt_l)
            if stop == "corrupt":
                btype = struct.unpack_from(endian + "I", self._buf, self._pos)[0]
                packets = 1 if btype in (2, 3, 6) else 0
                self.stats.packets_read += packets
                self._event("ingest.corrupt_block", f"unparseable block (type {btype}) at file offset {self._base + self._pos}",
                            packets=packets)
                if not self._resync_pcapng(endian):
                    return
                continue
            if stop == "need" or (not ts_l and pos >= end):
                need = 12
                if len(self._buf) - self._pos >= 8:
                    blen = struct.unpack_from(endian + "I", self._buf, self._pos + 4)[0]
                    if 12 <= blen <= MAX_BLOCK:
                        need = blen
                if not self._fill(need):
                    rem = len(self._buf) - self._pos
                    if rem > 0:
                        btype = struct.unpack_from(endian + "I", self._buf, self._pos)[0] if rem >= 4 else -1
                        packets = 1 if btype in (2, 3, 6) else 0
                        self.stats.packets_read += packets
                        self._event("ingest.truncated_record",
                                    f"file ends inside a block: {rem} of {need} bytes present", packets=packets)
                    return

    def _resync_pcapng(self, endian: str) -> bool:
        """After a corrupt block, find the next block whose leading and trailing lengths agree
        (4-byte steps, at most 8 MiB); False when none is found."""
        scanned = 0
        self._pos += 4
        while scanned < (8 << 20):
            if not self._fill(12):
                return False
            buf = self._buf
            pos = self._pos
            end = len(buf) - 12
            while pos <= end:
                btype, blen = struct.unpack_from(endian + "II", buf, pos)
                if (btype in _KNOWN_BLOCKS or btype == 0x0A0D0D0A) and 12 <= blen <= MAX_BLOCK and blen % 4 == 0:
                    if pos + blen > len(buf):
                        scanned += pos - self._pos
                        self._pos = pos
                        filled = self._fill(blen)
                        buf = self._buf
                        pos = self._pos
                        end = len(buf) - 12
                        if not filled:  # a false candidate running past the end of the file
                            pos += 4
                            continue
                    if struct.unpack_from(endian + "I", buf, pos + blen - 4)[0] == blen:
                        self._event("ingest.resynchronised", f"skipped {scanned + pos - self._pos} bytes")
                        self._pos = pos
                        return True
                pos += 4
            scanned += pos - self._pos
            self._pos = pos
            if self._eof and len(self._buf) - self._pos < 12:
                break
        self._event("ingest.resync_failed", "no plausible block found; rest of file skipped")
        return False

    @staticmethod
    def _idb_options(buf: bytes, p: int, end: int, endian: str) -> tuple[float, float]:
        tsres = 1e-6
        tsoff = 0.0
        while p + 4 <= end:
            code, olen = struct.unpack_from(endian + "HH", buf, p)
            if code == 0:
                break
            val = buf[p + 4:p + 4 + olen]
            if code == 9 and olen >= 1:
                v = val[0]
                tsres = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
            elif code == 14 and olen >= 8:
                tsoff = float(struct.unpack_from(endian + "q", val)[0])
            p += 4 + ((olen + 3) & ~3)
        return tsres, tsoff


def read_all(path: str, **kw) -> tuple[list[PacketBatch], ReaderStats]:
    """Convenience for tests: every batch of one file."""
    r = CaptureReader(path, **kw)
    batches = list(r)
    return batches, r.stats


def stream_from_bytes(data: bytes) -> BinaryIO:
    return io.BytesIO(data)
