"""Bounded decoders for payload content.

* ``decompress(data, encoding, limit, max_ratio)``: Content-Encoding gzip (multi-member), x-gzip,
  deflate (zlib-wrapped or raw), br (brotli), zstd; lists like "gzip, br" are undone in reverse.
  Output stops at ``limit`` bytes or ``max_ratio`` x the input size (decompression bombs); damaged
  or truncated streams give what decoded.  The note explains any of that, else None.
* ``encoded_runs(data, min_len)``: base64 (standard and URL-safe, padded or not), base32 and hex
  runs inside text, decoded when they decode cleanly (canonically).
* ``decode_token(value, min_len)``: one whole value (a query parameter, a cookie) as base64, base32
  or hex, with the same canonical-encoding and not-a-word checks as ``encoded_runs``.
* ``dns_labels_payload(qname)``: the labels left of the registered domain, joined, for decoding
  data tunnelled in DNS names.

None of these raises on hostile input; all are bounded in output size and in work.
"""
from __future__ import annotations

import base64
import binascii
import functools
import io
import re
import zlib

from ..domain import registered_domain

__all__ = ["decompress", "encoded_runs", "decode_token", "dns_labels_payload",
           "DEFAULT_LIMIT", "DEFAULT_MAX_RATIO"]

DEFAULT_LIMIT = 64 * 1024 * 1024
DEFAULT_MAX_RATIO = 200
_CHUNK = 64 * 1024
_MAX_MEMBERS = 4096

try:
    import brotli as _brotli
except Exception:  # pragma: no cover - optional
    _brotli = None
try:
    import zstandard as _zstd
except Exception:  # pragma: no cover - optional
    _zstd = None


def _as_bytes(data) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return b""


# --------------------------------------------------------------------------------------------
# decompression

class _Stop(Exception):
    pass


def _looks_zlib(d: bytes) -> bool:
    return len(d) >= 2 and (d[0] & 0x0F) == 8 and (d[0] >> 4) <= 7 and ((d[0] << 8) | d[1]) % 31 == 0


def _zlib_stream(data: bytes, wbits: int, cap: int, multi: bool, what: str):
    """Inflate ``data`` with at most ``cap`` bytes out.  Returns (out, notes, over_cap)."""
    out = bytearray()
    notes = []
    i = 0
    members = 0
    d = zlib.decompressobj(wbits)
    tail = b""
    while True:
        if tail:
            chunk = tail
        else:
            chunk = data[i:i + _CHUNK]
            i += len(chunk)
        if not chunk:
            if not d.eof:
                try:
                    out += d.flush()
                except zlib.error:
                    pass
                notes.append(f"truncated {what} stream ({len(out)} bytes decoded)")
            break
        try:
            piece = d.decompress(chunk, cap - len(out) + 1)
        except zlib.error as e:
            notes.append(f"damaged {what} data after {len(out)} decoded bytes ({e})")
            break
        out += piece
        if len(out) > cap:
            del out[cap:]
            return bytes(out), notes, True
        new_tail = d.unconsumed_tail
        if new_tail and not piece and len(new_tail) == len(chunk):
            notes.append(f"damaged {what} data after {len(out)} decoded bytes (no progress)")
            break
        tail = new_tail
        if d.eof:
            members += 1
            start = i - len(d.unused_data) - len(tail)
            rest_head = data[start:start + 2]
            if multi and rest_head == b"\x1f\x8b" and members < _MAX_MEMBERS:
                i = start
                tail = b""
                d = zlib.decompressobj(wbits)
                continue
            rest = data[start:]
            if rest.strip(b"\x00\r\n \t"):
                notes.append(f"{len(rest)} trailing bytes after the {what} stream ignored")
            break
    return bytes(out), notes, False


def _brotli_stream(data: bytes, cap: int):
    out = bytearray()
    notes = []
    if _brotli is None:
        return b"", ["brotli not installed: br not decoded"], False
    d = _brotli.Decompressor()
    try:
        for i in range(0, len(data), _CHUNK):
            chunk = data[i:i + _CHUNK]
            try:
                out += d.process(chunk, output_buffer_limit=cap - len(out) + 1)
                while len(out) <= cap and not d.can_accept_more_data():
                    piece = d.process(b"", output_buffer_limit=cap - len(out) + 1)
                    if not piece:
                        break
                    out += piece
            except TypeError:  # brotli < 1.2: no output limit, feed small pieces instead
                for j in range(0, len(chunk), 256):
                    out += d.process(chunk[j:j + 256])
                    if len(out) > cap:
                        break
            if len(out) > cap:
                del out[cap:]
                return bytes(out), notes, True
            if d.is_finished():
                rest = data[i + len(chunk):]
                if rest.strip(b"\x00\r\n \t"):
                    notes.append("trailing bytes after the brotli stream ignored")
                break
        else:
            if not d.is_finished():
                notes.append(f"truncated br stream ({len(out)} bytes decoded)")
    except Exception as e:  # brotli.error and friends
        if len(out) > cap:
            del out[cap:]
        notes.append(f"damaged br data after {len(out)} decoded bytes ({e})")
    return bytes(out), notes, False


def _zstd_stream(data: bytes, cap: int):
    if _zstd is None:
        return b"", ["zstandard not installed: zstd not decoded"], False
    out = bytearray()
    notes = []
    try:
        reader = _zstd.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
        while len(out) <= cap:
            piece = reader.read(min(_CHUNK * 4, cap - len(out) + 1))
            if not piece:
                break
            out += piece
    except Exception as e:
        notes.append(f"damaged zstd data after {len(out)} decoded bytes ({e})")
    if len(out) > cap:
        del out[cap:]
        return bytes(out), notes, True
    return bytes(out), notes, False


def _one(data: bytes, coding: str, cap: int):
    """(out, notes, over_cap, passed_through)"""
    if coding in ("gzip", "x-gzip"):
        if data[:2] == b"\x1f\x8b":
            out, notes, over = _zlib_stream(data, 31, cap, True, "gzip")
            return out, notes, over, False
        if _looks_zlib(data):
            out, notes, over = _zlib_stream(data, 15, cap, False, "zlib")
            return out, ["gzip declared, zlib data"] + notes, over, False
        return data, [f"content-encoding {coding} but the data is not gzip; left as is"], False, True
    if coding in ("deflate", "x-deflate"):
        if data[:2] == b"\x1f\x8b":
            out, notes, over = _zlib_stream(data, 31, cap, True, "gzip")
            return out, ["deflate declared, gzip data"] + notes, over, False
        if _looks_zlib(data):
            out, notes, over = _zlib_stream(data, 15, cap, False, "deflate")
            if out or over or not notes:
                return out, notes, over, False
        out, notes, over = _zlib_stream(data, -15, cap, False, "deflate")
        if not out and not over and notes and notes[0].startswith("damaged"):
            return data, [f"content-encoding {coding} but the data does not inflate; left as is"], False, True
        return out, notes, over, False
    if coding == "br":
        out, notes, over = _brotli_stream(data, cap)
        if not out and not over and notes and notes[0].startswith("damaged"):
            return data, ["content-encoding br but the data is not brotli; left as is"], False, True
        return out, notes, over, False
    if coding in ("zstd", "x-zstd"):
        out, notes, over = _zstd_stream(data, cap)
        return out, notes, over, False
    return data, [f"unsupported content-encoding {coding[:40]!r}; left as is"], False, True


def decompress(data: bytes, encoding: str | None, limit: int = DEFAULT_LIMIT,
               max_ratio: float = DEFAULT_MAX_RATIO) -> tuple[bytes, str | None]:
    """Undo a Content-Encoding.  Returns (decoded bytes, note or None)."""
    try:
        data = _as_bytes(data)
        if isinstance(encoding, (bytes, bytearray)):
            encoding = bytes(encoding).decode("latin-1")
        if not isinstance(encoding, str):
            return data, None
        codings = [c.strip().lower() for c in encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"][:8]
        if not codings:
            return data, None
        limit = max(0, int(limit))
        cap, why = limit, f"size limit {limit} bytes"
        if max_ratio and max_ratio > 0 and len(data) * max_ratio < cap:
            cap, why = int(len(data) * max_ratio), f"ratio limit {max_ratio:g}x"
        notes = []
        cur = data
        for coding in reversed(codings):
            cur, n, over, _passed = _one(cur, coding, cap)
            notes.extend(n)
            if over:
                notes.append(f"stopped at {len(cur)} bytes: {why} exceeded (possible decompression bomb)")
                break
        return cur, "; ".join(notes) if notes else None
    except Exception as e:  # never raise on hostile input
        return b"", f"decompression failed ({type(e).__name__})"


# --------------------------------------------------------------------------------------------
# encoded runs

MAX_RUNS = 256
MAX_SCAN = 16 * 1024 * 1024
MAX_DECODED = 1024 * 1024

_HEX = frozenset(b"0123456789abcdefABCDEF")
_B32U = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_B32L = frozenset(b"abcdefghijklmnopqrstuvwxyz234567")
_TOKENS = re.compile(rb"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


@functools.lru_cache(maxsize=16)
def _run_re(min_len: int):
    return re.compile(rb"[A-Za-z0-9+/_\-]{%d,}(?:\r?\n[A-Za-z0-9+/_\-]{4,})*={0,6}" % max(4, min_len))


def _wordy(run: bytes) -> bool:
    """Identifiers and prose glued together (CamelCase, snake_case, kebab-case) are not encodings."""
    toks = _TOKENS.findall(run)
    if not toks:
        return True
    letters = [t for t in toks if not t.isdigit()]
    if not letters:
        return False
    avg = sum(len(t) for t in letters) / len(letters)
    return avg >= 4.0


def _decode_hex(run: bytes):
    if len(run) % 2:
        run = run[:-1]
    letters = bytes(c for c in run if c > 0x39)
    if letters and not (letters.islower() or letters.isupper()):
        return None
    try:
        return bytes.fromhex(run.decode("ascii"))
    except ValueError:
        return None


def _decode_b32(run: bytes):
    body = run.rstrip(b"=")
    if len(body) % 8 not in (0, 2, 4, 5, 7):
        return None
    upper = body.upper()
    padded = upper + b"=" * (-len(upper) % 8)
    try:
        out = base64.b32decode(padded)
    except (binascii.Error, ValueError):
        return None
    if base64.b32encode(out).rstrip(b"=") != upper:
        return None  # non-canonical trailing bits
    return out


def _decode_b64(run: bytes, urlsafe: bool):
    body = run.rstrip(b"=")
    if len(body) % 4 == 1:
        return None
    padded = body + b"=" * (-len(body) % 4)
    try:
        if urlsafe:
            out = base64.b64decode(padded, altchars=b"-_", validate=True)
        else:
            out = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    enc = base64.urlsafe_b64encode(out) if urlsafe else base64.b64encode(out)
    if enc.rstrip(b"=") != body:
        return None  # non-canonical trailing bits: not an encoder's output
    return out


def _classify_run(run: bytes, min_len: int):
    """(encoding, decoded) or None.  An unpadded run that does not decode is retried without its last
    1-3 characters (a tag label glued to DNS data, a word glued to a value)."""
    r = _classify_exact(run, min_len)
    if r is not None or run.endswith(b"="):
        return r
    for k in (1, 2, 3):
        if len(run) - k < min_len:
            break
        r = _classify_exact(run[:-k], min_len)
        if r is not None:
            return r
    return None


def _classify_exact(run: bytes, min_len: int):
    body = run.rstrip(b"=")
    if len(body) < min_len or body.isdigit():
        return None
    chars = set(body)
    if len(chars) < 4:  # "AAAA...", "abab...": filler, not data
        return None
    if chars <= _HEX:
        if len(body) >= min_len:
            out = _decode_hex(body)
            if out is not None:
                return "hex", out
    if (chars <= _B32U or chars <= _B32L) and any(c > 0x39 for c in body):
        out = _decode_b32(run if chars <= _B32U else run.upper())
        if out is not None:
            if any(0x32 <= c <= 0x37 for c in body):
                return "base32", out
            # No digit at all: accept only when it decodes to mostly printable text (not a shouted word).
            if len(body) >= min_len and sum(32 <= c < 127 for c in out) >= 0.9 * len(out):
                return "base32", out
    has_std = b"+" in body or b"/" in body
    has_url = b"-" in body or b"_" in body
    if has_std and has_url:
        return None
    has_upper = any(0x41 <= c <= 0x5A for c in body)
    has_lower = any(0x61 <= c <= 0x7A for c in body)
    has_digit = any(0x30 <= c <= 0x39 for c in body)
    if not (has_upper and has_lower and (has_digit or has_std or has_url)):
        return None
    if _wordy(body):
        return None
    out = _decode_b64(run, urlsafe=has_url)
    if out is None:
        return None
    return ("base64url" if has_url else "base64"), out


def _split_lines(run: bytes) -> list[bytes]:
    """A run spanning lines is one MIME-style block when its full lines have one length (a multiple of
    4); otherwise each line is a run of its own."""
    if b"\n" not in run:
        return [run]
    lines = [ln.rstrip(b"\r") for ln in run.split(b"\n")]
    full = lines[:-1]
    width = len(full[0])
    if width % 4 == 0 and all(len(ln) == width for ln in full) and len(lines[-1].rstrip(b"=")) <= width:
        return [b"".join(lines)]
    return lines


def encoded_runs(data: bytes, min_len: int = 24, max_runs: int = MAX_RUNS) -> list[tuple[str, bytes]]:
    """base64 / base64url / base32 / hex runs in ``data`` that decode cleanly, in order, decoded.

    Skipped: all-digit runs, runs that read as words or identifiers, runs whose decoding is not
    canonical.  Bounded: the first ``MAX_SCAN`` bytes, ``max_runs`` results, ``MAX_DECODED`` bytes
    per result."""
    out: list[tuple[str, bytes]] = []
    try:
        data = _as_bytes(data)[:MAX_SCAN]
        if b"\\/" in data:  # JSON-escaped slashes inside base64 values
            data = data.replace(b"\\/", b"/")
        min_len = max(8, int(min_len))
        tried = 0
        for m in _run_re(min_len).finditer(data):
            for run in _split_lines(m.group(0)):
                pieces = [run]
                body = run.rstrip(b"=")
                if (b"+" in body or b"/" in body) and (b"-" in body or b"_" in body):
                    pieces = [p for p in re.split(rb"[-_]", run) if len(p) >= min_len]
                for piece in pieces:
                    tried += 1
                    r = _classify_run(piece[:MAX_DECODED * 2], min_len)
                    if r is not None:
                        out.append(r)
                        if len(out) >= max_runs:
                            return out
            if tried > 20 * max_runs:
                break
    except Exception:
        pass
    return out


def decode_token(value, min_len: int = 8) -> tuple[str, bytes] | None:
    """``(encoding, decoded)`` when the whole of ``value`` is a clean base64, base64url, base32 or hex
    encoding (see ``encoded_runs`` for what is refused), else None."""
    try:
        run = _as_bytes(value).strip()
        if not run or len(run) > MAX_DECODED * 2 or not _run_re(max(4, min_len)).fullmatch(run):
            return None
        return _classify_exact(run, max(4, int(min_len)))
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# DNS

def dns_labels_payload(qname) -> bytes:
    """The labels left of the registered domain of a DNS query name, joined without dots.

    "mzxw6ytb.orsxg5a.t.example.co.uk" -> b"mzxw6ytborsxg5at"; a name that is only a registered
    domain (or a public suffix) gives b""."""
    try:
        if isinstance(qname, (bytes, bytearray, memoryview)):
            qname = bytes(qname).decode("latin-1")
        if not isinstance(qname, str):
            return b""
        labels = [lab for lab in qname.strip()[:1024].split(".") if lab]
        if not labels:
            return b""
        name = ".".join(labels)
        reg = registered_domain(name.lower())
        keep = len(labels) - (reg.count(".") + 1 if reg else len(labels))
        if keep <= 0:
            return b""
        return "".join(labels[:keep]).encode("utf-8", "surrogatepass")
    except Exception:
        return b""
