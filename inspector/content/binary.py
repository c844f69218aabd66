"""Binary encodings opened for inspection: compression codecs and schema-less structured formats.

Decoders run only when a payload's magic or structure calls for them (or the protocol declares the
format: a Content-Type, ``grpc-encoding``, a cloud API's compression header), never on every body:

* ``codec_of(data)``: the compression whose magic starts ``data`` (``zstd``, ``lz4`` frame, framed
  ``snappy``, ``xz``, ``bzip2``) or None; ``decompress(data, codec, raw_size, cap)`` undoes one codec
  (``lz4``/``lz4-block``, ``snappy``/``snappy-raw``, ``zstd``, ``xz``, ``bzip2``, ``deflate``, ``gzip``),
  never past ``cap`` output bytes (a raw LZ4 or Snappy block declares its size: a declared size over
  the cap is a bomb, reported, and nothing is expanded);
* ``structured(data, declared)``: protobuf wire format (no schema), MessagePack or CBOR turned into
  a JSON document the record counter reads (``(format, json_bytes)`` or None);
* ``grpc_messages(data)``: the messages of a gRPC body (5-byte length prefixes) when the whole body is
  made of them; ``h2c_bodies(stream)``: the DATA of each stream of a cleartext HTTP/2 connection (the
  client's leaving bytes), so gRPC over h2c is read message by message.

Protobuf without a schema is read by structure: a length-delimited field is a nested message when its
bytes parse completely as one (and are not readable text), a string when they are UTF-8 text; a
nested message of exactly a key string (field 1) and a scalar (field 2) is a map entry (protobuf
encodes ``map<string, V>`` that way, and so do key/value schemas such as Alibaba Cloud Log Service's
``Content``, Prometheus labels and OpenTelemetry attributes): entries of one field become one JSON object, so the key gives the value its field
context (``phone``, ``email``...).  Other fields are keyed by number.  A repeated nested message becomes
a JSON array, whose objects the record counter counts as records (one SLS ``Log`` = one record).

Everything is bounded (``MAX_INPUT`` bytes read, ``MAX_DEPTH`` levels, ``MAX_FIELDS`` fields, output
caps) and nothing raises on hostile input: a decoder error means "not this format".
"""
from __future__ import annotations

import bz2
import json
from collections.abc import Mapping

from ..sniff import varint
import lzma
import re
import struct

__all__ = ["codec_of", "decompress", "structured", "grpc_messages", "h2c_bodies", "protobuf_fields",
           "MAX_INPUT", "H2_PREFACE"]

MAX_INPUT = 16 << 20          # bytes of one payload decoded here
MAX_DEPTH = 16                # nesting levels of protobuf / MessagePack / CBOR documents
MAX_FIELDS = 200_000          # protobuf fields walked per payload
MAX_GRPC_MESSAGES = 10_000
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_MAGICS = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy"),
    (b"\xfd7zXZ\x00", "xz"),
)
_KEY = re.compile(r"[A-Za-z_@$][\w.\-:@$]{0,63}\Z")


_STREAMS = {"xz": lzma.LZMADecompressor, "bzip2": bz2.BZ2Decompressor}   # stdlib, bounded by max_length


class Bomb(Exception):
    """A declared or produced size over the cap: not expanded."""


def codec_of(data: bytes) -> str | None:
    """The compression format whose magic starts ``data``, or None."""
    for magic, name in _MAGICS:
        if data.startswith(magic):
            return name
    if data[:3] == b"BZh" and len(data) > 10 and data[3:4] in b"123456789" and data[4:10] == b"1AY&SY":
        return "bzip2"
    return None


def decompress(data: bytes, codec: str, raw_size: int | None = None, cap: int = 64 << 20) -> bytes:
    """``data`` with ``codec`` undone, at most ``cap`` bytes.  Raises ``Bomb`` when the output would pass
    ``cap``, ValueError (or a library error) when the data is not of that codec."""
    codec = codec.lower()
    if codec in ("lz4", "lz4-frame", "lz4-block"):
        import lz4.block
        import lz4.frame
        if data[:4] == b"\x04\x22\x4d\x18":
            d = lz4.frame.LZ4FrameDecompressor()
            out = d.decompress(data, max_length=cap + 1)
            if len(out) > cap:
                raise Bomb(f"lz4 frame expands past {cap} bytes")
            return out
        if raw_size is None:
            raise ValueError("lz4 block without its uncompressed size")
        if raw_size > cap:
            raise Bomb(f"lz4 block declares {raw_size} bytes (cap {cap})")
        return lz4.block.decompress(data, uncompressed_size=int(raw_size))
    if codec in ("snappy", "snappy-raw", "x-snappy-framed", "snappy-framed"):
        import cramjam
        if data[:10] == b"\xff\x06\x00\x00sNaPpY":
            return _snappy_framed(data, cap)
        n = cramjam.snappy.decompress_raw_len(data)
        if n > cap:
            raise Bomb(f"snappy block declares {n} bytes (cap {cap})")
        return bytes(cramjam.snappy.decompress_raw(data))
    if codec in ("zstd", "x-zstd"):
        from .decoding import decompress as _dec
        out, note = _dec(data, "zstd", limit=cap, max_ratio=0)
        if note and "exceeded" in note:
            raise Bomb(f"zstd expands past {cap} bytes")
        if not out and note:
            raise ValueError(note)
        return out
    if codec in ("deflate", "gzip", "x-gzip"):
        from .decoding import decompress as _dec
        out, note = _dec(data, codec, limit=cap, max_ratio=0)
        if note and "exceeded" in note:
            raise Bomb(f"{codec} expands past {cap} bytes")
        if note and "left as is" in note:
            raise ValueError(note)
        return out
    if codec in _STREAMS:
        out = _STREAMS[codec]().decompress(data, max_length=cap + 1)
        if len(out) > cap:
            raise Bomb(f"{codec} expands past {cap} bytes")
        return out
    raise ValueError(f"unknown codec {codec[:20]!r}")


def _snappy_framed(data: bytes, cap: int) -> bytes:
    """The framing format (chunks of at most 64 KiB out each), chunk by chunk within ``cap``."""
    import cramjam
    out = bytearray()
    pos = 0
    n = len(data)
    while pos + 4 <= n:
        kind = data[pos]
        ln = int.from_bytes(data[pos + 1:pos + 4], "little")
        chunk = data[pos + 4:pos + 4 + ln]
        pos += 4 + ln
        if len(chunk) < ln:
            break                       # truncated: what decoded so far
        if kind == 0x00 and ln > 4:
            if cramjam.snappy.decompress_raw_len(chunk[4:]) + len(out) > cap:
                raise Bomb(f"snappy stream expands past {cap} bytes")
            out += bytes(cramjam.snappy.decompress_raw(chunk[4:]))
        elif kind == 0x01 and ln > 4:
            if len(out) + ln - 4 > cap:
                raise Bomb(f"snappy stream expands past {cap} bytes")
            out += chunk[4:]
        elif 0x02 <= kind <= 0x7F:
            raise ValueError("reserved unskippable snappy chunk")
    return bytes(out)


# ------------------------------------------------------------------------------------------------
# protobuf wire format, no schema

class _Walk:
    __slots__ = ("fields",)

    def __init__(self):
        self.fields = 0


def _text(raw: bytes) -> str | None:
    """``raw`` as text when it is UTF-8 without control characters (tabs and newlines allowed)."""
    if not raw:
        return ""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(c < " " and c not in "\t\r\n" or c == "\x7f" for c in s):
        return None
    return s


def protobuf_fields(b: bytes, depth: int = 0, walk: _Walk | None = None):
    """The fields of one protobuf message as ``[(number, value)]`` (value: int, str, bytes or a nested
    field list), or None when ``b`` is not a whole, well-formed message."""
    walk = walk or _Walk()
    n = len(b)
    pos = 0
    out = []
    while pos < n:
        tag, pos = varint(b, pos, n, 10)
        if tag is None:
            return None
        fn, wt = tag >> 3, tag & 7
        if fn == 0 or fn > 536_870_911:
            return None
        walk.fields += 1
        if walk.fields > MAX_FIELDS:
            return None
        if wt == 0:
            v, pos = varint(b, pos, n, 10)
            if v is None:
                return None
        elif wt == 1:
            if pos + 8 > n:
                return None
            v = struct.unpack_from("<Q", b, pos)[0]
            pos += 8
        elif wt == 5:
            if pos + 4 > n:
                return None
            v = struct.unpack_from("<I", b, pos)[0]
            pos += 4
        elif wt == 2:
            ln, pos = varint(b, pos, n, 10)
            if ln is None or pos + ln > n:
                return None
            raw = b[pos:pos + ln]
            pos += ln
            v = _length_delimited(raw, depth, walk)
        else:
            return None                 # groups (3, 4) are deprecated; 6, 7 are invalid
        out.append((fn, v))
    return out


def _length_delimited(raw: bytes, depth: int, walk: _Walk):
    s = _text(raw)
    if s is not None and (len(raw) < 2 or not _could_be_message(raw)):
        return s
    if depth < MAX_DEPTH and raw:
        sub = protobuf_fields(raw, depth + 1, walk)
        if sub:
            return sub
    return s if s is not None else bytes(raw)


def _could_be_message(raw: bytes) -> bool:
    """Printable text that is also a valid message is rare but possible ("\\n\\x05hello" is not
    printable; "2\\x01a" is): text wins unless the first byte is a plausible tag of a low field."""
    return raw[0] < 0x20 or raw[0] in (0x22, 0x2A, 0x32, 0x3A, 0x42, 0x4A, 0x52, 0x5A)


def _entry(v) -> tuple[str, object] | None:
    """A map entry / key-value message: exactly field 1 = key string, field 2 = a scalar, or a
    wrapper message holding one scalar (OpenTelemetry's ``KeyValue{key, AnyValue{string_value}}``,
    ``google.protobuf.StringValue``)."""
    if not isinstance(v, list) or len(v) != 2:
        return None
    (f1, k), (f2, val) = v
    if f1 != 1 or f2 != 2 or not isinstance(k, str) or not _KEY.match(k):
        return None
    if isinstance(val, list) and len(val) == 1:
        val = val[0][1]
    if isinstance(val, (str, int)):
        return k, val
    return None


def _pb_json(fields: list):
    """A field list as JSON-ready data: numbers as keys, repeated fields as arrays, map entries as
    objects keyed by their key strings."""
    grouped: dict = {}
    for fn, v in fields:
        grouped.setdefault(fn, []).append(v)
    obj: dict = {}
    for fn, vals in grouped.items():
        entries = [_entry(v) for v in vals]
        if entries and all(e is not None for e in entries):
            m = obj.setdefault(str(fn), {}) if isinstance(obj.get(str(fn)), dict) or str(fn) not in obj else {}
            for k, val in entries:
                m[k] = val if k not in m else f"{m[k]}\n{val}"
            obj[str(fn)] = m
            continue
        conv = [_pb_value(v) for v in vals]
        conv = [c for c in conv if c is not None]
        if not conv:
            continue
        if len(conv) == 1 and not isinstance(conv[0], dict):
            obj[str(fn)] = conv[0]
        else:
            obj[str(fn)] = conv
    return obj


def _pb_value(v):
    if isinstance(v, list):
        return _pb_json(v)
    if isinstance(v, bytes):
        return None                     # opaque bytes carry no readable text
    return v


def _protobuf(data: bytes, declared: bool):
    fields = protobuf_fields(data)
    if not fields:
        return None
    texts = _count_text(fields)
    if not texts:
        return None                     # numbers only: nothing to read, and random bytes parse so
    if not declared and texts < 2:
        return None
    return _pb_json(fields)


def _count_text(fields, depth: int = 0) -> int:
    n = 0
    for _fn, v in fields:
        if isinstance(v, str) and v:
            n += 1
        elif isinstance(v, list) and depth < MAX_DEPTH:
            n += _count_text(v, depth + 1)
    return n


# ------------------------------------------------------------------------------------------------
# MessagePack and CBOR

def _plain(node, depth: int = 0):
    """A decoded MessagePack/CBOR document as JSON-ready data (bytes as text when they are text)."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(node, Mapping):            # dict, and cbor2's frozendict (maps used as keys)
        return {_key(k): _plain(v, depth + 1) for k, v in list(node.items())[:MAX_FIELDS]}
    if isinstance(node, (list, tuple)):
        return [_plain(v, depth + 1) for v in node[:MAX_FIELDS]]
    if isinstance(node, (bytes, bytearray, memoryview)):
        return _text(bytes(node))
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    value = getattr(node, "value", None)     # CBOR tags, MessagePack ext types
    if value is not None and depth < MAX_DEPTH:
        return _plain(value, depth + 1)
    return str(node)[:256]


def _key(k) -> str:
    if isinstance(k, (bytes, bytearray)):
        return _text(bytes(k)) or bytes(k).hex()
    return str(k)


def _msgpack(data: bytes):
    import msgpack
    n = len(data)
    # every length bounded by the input size: a header announcing more fails at once
    return msgpack.unpackb(data, raw=False, strict_map_key=False, max_str_len=n, max_bin_len=n,
                           max_array_len=n, max_map_len=n, max_ext_len=n, unicode_errors="surrogateescape")


def _cbor(data: bytes):
    import io

    import cbor2
    fp = io.BytesIO(data)
    out = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != len(data):
        raise ValueError("trailing bytes")
    return out


def _container_with_text(doc) -> bool:
    if isinstance(doc, dict):
        return any(isinstance(k, str) and k for k in doc) or any(isinstance(v, (str, dict, list)) for v in doc.values())
    if isinstance(doc, list):
        return any(isinstance(v, (dict, list, str)) for v in doc[:64])
    return False


_MSGPACK_TYPES = ("msgpack", "x-msgpack", "vnd.msgpack")
_CBOR_TYPES = ("cbor",)


def structured(data: bytes, declared: str | None = None) -> tuple[str, bytes] | None:
    """``(format, JSON bytes)`` when ``data`` is a whole protobuf message, MessagePack or CBOR document
    with readable content; None otherwise.  ``declared`` (a Content-Type) picks the format to try
    first and relaxes the structural demands (a declared format needs one text field, not two)."""
    if not data or len(data) > MAX_INPUT:
        return None
    mime = (declared or "").lower()
    order = []
    if any(t in mime for t in _MSGPACK_TYPES):
        order.append(("msgpack", True))
    elif any(t in mime for t in _CBOR_TYPES):
        order.append(("cbor", True))
    elif "protobuf" in mime or "grpc" in mime or "x-google-protobuf" in mime:
        order.append(("protobuf", True))
    first = data[0]
    if first == 0xD9 and data[1:3] == b"\xd9\xf7":
        order.append(("cbor", True))            # CBOR self-describe tag
    if 0x80 <= first <= 0x9F or first in (0xDC, 0xDD, 0xDE, 0xDF):
        order.append(("msgpack", False))       # fixmap, fixarray, array 16/32, map 16/32
    if 0x80 <= first <= 0xBF or first in (0x98, 0x99, 0xB8, 0xB9, 0xBA):
        order.append(("cbor", False))          # arrays and maps
    if first & 7 in (0, 1, 2, 5) and first >> 3:
        order.append(("protobuf", False))
    seen = set()
    for fmt, declared_fmt in order:
        if fmt in seen:
            continue
        seen.add(fmt)
        try:
            if fmt == "protobuf":
                doc = _protobuf(data, declared_fmt)
            else:
                doc = _plain(_msgpack(data) if fmt == "msgpack" else _cbor(data))
                if not _container_with_text(doc):
                    doc = None
        except RecursionError:
            doc = None
        except Exception:
            doc = None
        if doc:
            try:
                return fmt, json.dumps(doc, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
            except (TypeError, ValueError):
                return None
    return None


# ------------------------------------------------------------------------------------------------
# gRPC and cleartext HTTP/2

def grpc_messages(data: bytes) -> list[tuple[bool, bytes]] | None:
    """``[(compressed, message)]`` when ``data`` is wholly gRPC length-prefixed messages (flag byte 0 or
    1, 4-byte big-endian length), else None.  gRPC-Web trailer frames (flag bit 0x80, HTTP-style
    header lines) are allowed and skipped."""
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        if pos + 5 > n or data[pos] not in (0, 1, 0x80, 0x81) or len(out) >= MAX_GRPC_MESSAGES:
            return None
        ln = int.from_bytes(data[pos + 1:pos + 5], "big")
        if pos + 5 + ln > n:
            return None
        if not data[pos] & 0x80:
            out.append((data[pos] == 1, data[pos + 5:pos + 5 + ln]))
        pos += 5 + ln
    return out or None


def h2c_bodies(stream: bytes, max_bytes: int = MAX_INPUT) -> list[bytes]:
    """The DATA bytes of each stream of one direction of a cleartext HTTP/2 connection (starting with
    the client preface or a frame header), in stream order; padding removed.  Frames past a truncated
    one are not read."""
    pos = len(H2_PREFACE) if stream.startswith(H2_PREFACE) else 0
    n = len(stream)
    bodies: dict[int, bytearray] = {}
    total = 0
    while pos + 9 <= n:
        ln = int.from_bytes(stream[pos:pos + 3], "big")
        ftype, flags = stream[pos + 3], stream[pos + 4]
        sid = int.from_bytes(stream[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        payload = stream[pos + 9:pos + 9 + ln]
        pos += 9 + ln
        if ftype != 0 or not sid:
            continue
        if flags & 0x8 and payload:
            pad = payload[0]
            payload = payload[1:len(payload) - pad] if pad < len(payload) else b""
        if total + len(payload) > max_bytes:
            break
        total += len(payload)
        bodies.setdefault(sid, bytearray()).extend(payload)
    return [bytes(bodies[s]) for s in sorted(bodies) if bodies[s]]
