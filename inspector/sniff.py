"""Payload sniffing: what the first bytes of a payload are.  The one module that looks at bytes to
say so, used by protocol detection, the protocol logs and the content stage alike.

* :func:`classify` ``(data, declared=None) -> (payload_type, note)``: the content stage's payload type
  (one of :data:`PAYLOAD_TYPES`), described below.
* :func:`sniff_mime` ``(data) -> str``: a MIME type for the ``*_mime_types`` fields of the HTTP and
  SMTP logs (Zeek's vocabulary: ``application/json``, ``image/png``...).
* :func:`tls_records`, :func:`client_hello`: TLS on the wire, for protocol detection and for
  ``tls-encrypted`` payloads.
* :func:`printable_ascii`: mostly printable ASCII, the mark of a text protocol (commands, banners).

Payload typing
--------------
The type comes from the bytes (magic numbers, structure, entropy), never from the declared
Content-Type alone; ``note`` says so when the two disagree ("declared application/json, content is
gzip"), and is None otherwise (also when the declaration is missing, generic or unknown).

Only the first ``HEAD`` bytes are examined, plus a few cheap whole-buffer checks: a full JSON parse
of small bodies, the zip central directory at the end of the buffer, a multipart closing delimiter,
and a walk of the protobuf wire format.  Every check is bounded and none raises on hostile input.

Decision order::

    magic bytes    pdf, office (OLE2; zip with [Content_Types].xml / word/ xl/ ppt/, ODF), zip, gzip,
                   other compressors and archives (zstd, bzip2, xz, 7z, rar, lz4, lzip, .Z) ->
                   encrypted-or-compressed, image (PNG JPEG GIF WEBP BMP TIFF HEIF/AVIF),
                   TLS records (0x14-0x17 0x03 0x00-0x04 + plausible length) -> tls-encrypted
    structure      multipart (--boundary, part headers), edifact (UNA/UNB/UNH), x12 (ISA fixed header)
    text           (mostly printable UTF-8 / Latin-1 / UTF-16 with BOM): json (parses, a valid
                   truncated prefix, or NDJSON), html, xml (<?xml or one balanced root element),
                   form (k=v&k=v), csv / tsv (consistent delimiter counts over >= 2 lines), text
    binary         protobuf (varint-tag wire format over the whole buffer), encrypted-or-compressed
                   (entropy >= 7.5 bits/byte over >= 256 bytes), binary
"""
from __future__ import annotations

import csv
import math
import re

try:  # fast full parse of small JSON bodies; the prefix validator below works without it
    import orjson as _orjson
except Exception:  # pragma: no cover
    _orjson = None
import json as _json

import numpy as np

from .mime import boundary_of

__all__ = ["classify", "shannon_entropy", "HEAD", "PAYLOAD_TYPES", "TEXTUAL", "sniff_mime", "looks_text",
           "SNIFF_BYTES", "tls_records", "client_hello", "printable_ascii"]

#: The payload types :func:`classify` returns (the content stage's ``payload_type`` values).
PAYLOAD_TYPES = ("json", "xml", "csv", "tsv", "edifact", "x12", "form", "multipart", "protobuf", "pdf", "office",
                 "zip", "gzip", "image", "text", "html", "tls-encrypted", "encrypted-or-compressed", "binary")

HEAD = 8192                       # bytes examined for structure
FULL_JSON_MAX = 256 * 1024        # bodies up to this size get a full JSON parse
ENTROPY_MIN_BYTES = 256
ENTROPY_THRESHOLD = 7.5
PROTOBUF_MAX_FIELDS = 4096        # top-level fields walked before the buffer is taken as protobuf
ZIP_MAX_ENTRIES = 2048

TEXTUAL = frozenset(("json", "xml", "csv", "tsv", "edifact", "x12", "form", "html", "text"))

# --------------------------------------------------------------------------------------------
# magic numbers

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_COMPRESSED_MAGIC = (
    b"\x28\xb5\x2f\xfd",            # zstd
    b"\xfd7zXZ\x00",                # xz
    b"7z\xbc\xaf\x27\x1c",          # 7z
    b"Rar!\x1a\x07",                # rar 4/5
    b"\x04\x22\x4d\x18",            # lz4 frame
    b"LZIP",                        # lzip
    b"\x5d\x00\x00",                # lzma alone (props 0x5d, dict size LE)
    b"MSCF\x00\x00\x00\x00",        # cab
)
_PDF_LATE = re.compile(rb"%PDF-[12]\.[0-9][\r\n]")
_OFFICE_PREFIXES = ("word/", "xl/", "ppt/", "visio/")
_ODF_MIME = b"application/vnd.oasis.opendocument"


def _is_bzip2(h: bytes) -> bool:
    return len(h) >= 10 and h[:3] == b"BZh" and 0x31 <= h[3] <= 0x39 and h[4:10] in (
        b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")


def _image(h: bytes) -> bool:
    if h[:8] == b"\x89PNG\r\n\x1a\n" or h[:3] == b"\xff\xd8\xff" or h[:6] in (b"GIF87a", b"GIF89a"):
        return True
    if len(h) >= 12 and h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return True
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return True
    if len(h) >= 18 and h[:2] == b"BM":  # BMP: DIB header size must be one of the known ones
        dib = int.from_bytes(h[14:18], "little")
        reserved = h[6:10]
        if dib in (12, 16, 40, 52, 56, 64, 108, 124) and reserved == b"\x00\x00\x00\x00":
            return True
    if len(h) >= 12 and h[4:8] == b"ftyp" and h[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis",
                                                          b"mif1", b"msf1", b"avif", b"avis"):
        return True
    if h[:4] == b"\x00\x00\x01\x00" and len(h) >= 6 and 0 < int.from_bytes(h[4:6], "little") <= 64:
        return True  # .ico
    return False


TLS_MAX_RECORD = 16384 + 2048      # a TLSCiphertext fragment: 2^14 plus the expansion allowed


def tls_records(data: bytes, need: int = 1, whole: bool = True) -> bool:
    """At least ``need`` plausible TLS record headers in a row at the start of ``data``: content
    type 20-23 (change_cipher_spec, alert, handshake, application_data), version 3.0-3.4, length
    1..2^14+2048.  With ``whole`` (protocol detection on mid-session traffic), every header found
    among the first four must be plausible; otherwise only the first ``need`` are looked at (a
    payload that starts with TLS records and was cut anywhere)."""
    n = p = 0
    end = len(data)
    limit = max(need, 4) if whole else need
    while p + 5 <= end and n < limit:
        ct, major, minor = data[p], data[p + 1], data[p + 2]
        ln = (data[p + 3] << 8) | data[p + 4]
        if not (20 <= ct <= 23 and major == 3 and minor <= 4 and 0 < ln <= TLS_MAX_RECORD):
            return False if whole else n >= need
        n += 1
        p += 5 + ln
    return n >= need


def client_hello(data: bytes) -> bool:
    """A chunk that starts with a TLS handshake record carrying a ClientHello."""
    return len(data) >= 6 and data[0] == 0x16 and data[1] == 3 and data[2] <= 4 and data[5] == 1


_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def printable_ascii(data: bytes, sample: int = 512, share: float = 0.85) -> bool:
    """At least ``share`` of the first ``sample`` bytes are printable ASCII (or tab, CR, LF): a text
    protocol (commands, banners, headers)."""
    if not data:
        return False
    head = bytes(data[:sample])
    printable = len(head) - len(head.translate(None, _PRINTABLE))
    return printable >= share * len(head)


def _zip_names(data: bytes):
    """Entry names of a zip: local headers from the start, then the central directory at the end."""
    names = []
    n = len(data)
    pos = 0
    for _ in range(64):
        if pos + 30 > n or data[pos:pos + 4] != b"PK\x03\x04":
            break
        flags = int.from_bytes(data[pos + 6:pos + 8], "little")
        csize = int.from_bytes(data[pos + 18:pos + 22], "little")
        nlen = int.from_bytes(data[pos + 26:pos + 28], "little")
        elen = int.from_bytes(data[pos + 28:pos + 30], "little")
        names.append(data[pos + 30:pos + 30 + nlen])
        if len(names) == 1 and data[pos + 30:pos + 30 + nlen] == b"mimetype":
            names.append(b"\x00" + data[pos + 30 + nlen + elen:pos + 30 + nlen + elen + 80])
        if flags & 0x08 and csize == 0:
            break  # sizes are in a data descriptor after the data: cannot skip
        pos += 30 + nlen + elen + csize
    # central directory: end-of-central-directory record in the last 64 KiB + 22 bytes
    tail_start = max(0, n - 65557)
    eocd = data.rfind(b"PK\x05\x06", tail_start)
    if eocd >= 0 and eocd + 22 <= n:
        count = int.from_bytes(data[eocd + 10:eocd + 12], "little")
        cd_size = int.from_bytes(data[eocd + 12:eocd + 16], "little")
        cd_off = int.from_bytes(data[eocd + 16:eocd + 20], "little")
        if cd_off + cd_size > eocd:                 # prepended data (self-extractors, our slicing)
            cd_off = max(0, eocd - cd_size)
        pos = cd_off
        for _ in range(min(count, ZIP_MAX_ENTRIES)):
            if pos + 46 > n or data[pos:pos + 4] != b"PK\x01\x02":
                break
            nlen = int.from_bytes(data[pos + 28:pos + 30], "little")
            elen = int.from_bytes(data[pos + 30:pos + 32], "little")
            clen = int.from_bytes(data[pos + 32:pos + 34], "little")
            names.append(data[pos + 46:pos + 46 + nlen])
            pos += 46 + nlen + elen + clen
    return names


def _zip_is_office(data: bytes) -> bool:
    for name in _zip_names(data):
        if name.startswith(b"\x00"):
            if name[1:].startswith(_ODF_MIME):
                return True
            continue
        if name == b"[Content_Types].xml":
            return True
        s = name.decode("latin-1")
        if s.startswith(_OFFICE_PREFIXES):
            return True
    head = data[:HEAD]
    return b"[Content_Types].xml" in head and b"PK\x03\x04" in head[4:] or _ODF_MIME in head[:200]


def _magic(data: bytes, head: bytes):
    if head.startswith(b"%PDF-") or (_PDF_LATE.search(head, 0, 1040) and b" obj" in head):
        return "pdf"
    if head.startswith(_OLE2):
        return "office"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "office" if _zip_is_office(data) else "zip"
    if head[:2] == b"\x1f\x8b" and len(head) >= 10 and head[2] == 8:
        return "gzip"
    if head.startswith(_COMPRESSED_MAGIC) or _is_bzip2(head) or (head[:2] == b"\x1f\x9d" and len(head) > 3):
        return "encrypted-or-compressed"
    if _image(head):
        return "image"
    if tls_records(head, 1, whole=False):
        return "tls-encrypted"
    return None


# --------------------------------------------------------------------------------------------
# structure on bytes: multipart, EDI

_BCHARS = rb"[0-9A-Za-z'()+_,\-./:=?]"
_MP_FIRST = re.compile(rb"(?:\r?\n)*--(" + _BCHARS + rb"(?:" + _BCHARS + rb"| ){0,68}" + _BCHARS
                       + rb"|" + _BCHARS + rb")[ \t]*\r?\n")
_HEADER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z\-]{1,64}[ \t]*:")


def _multipart(data: bytes, head: bytes, boundary: bytes | None) -> bool:
    m = _MP_FIRST.match(head)
    if m is None:
        if boundary and (b"--" + boundary) in head[:1024]:  # a preamble before the first delimiter
            start = head.find(b"--" + boundary)
            if start > 0 and head[start - 1:start] != b"\n":
                return False
            m = _MP_FIRST.match(head, start)
        if m is None:
            return False
    found = m.group(1)
    if boundary and found != boundary:
        return False
    rest = head[m.end():]
    if not (_HEADER_LINE.match(rest) or rest.startswith((b"\r\n", b"\n"))):
        return False
    return data.find(b"\n--" + found, m.end()) >= 0 or len(data) > len(head)


_UNA = re.compile(rb"\AUNA[^A-Za-z0-9\s][^A-Za-z0-9\s][^A-Za-z0-9][^A-Za-z0-9\s][^A-Za-z0-9][^A-Za-z0-9\s]")
_UNB = re.compile(rb"\AUN[BH][+\x1d][A-Z0-9]")
_ISA_POS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)


def _edi(head: bytes):
    h = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if h.startswith(b"UNA"):
        if _UNA.match(h):
            sep = h[4:5]
            rest = h[9:].lstrip()
            if not rest or rest.startswith((b"UNB" + sep, b"UNH" + sep, b"UNG" + sep)):
                return "edifact"
        return None
    if _UNB.match(h):
        seg = h[:200]
        if b"'" in seg or b"\x1c" in seg or b"\n" in seg or len(h) < 200:
            return "edifact"
        return None
    if h.startswith(b"ISA") and len(h) >= 4:
        sep = h[3]
        if chr(sep).isalnum() or chr(sep).isspace():
            return None
        if len(h) >= 106 and all(h[p] == sep for p in _ISA_POS):
            return "x12"
        seg = h[:160].split(bytes((sep,)))
        if len(seg) >= 16 and (b"GS" + bytes((sep,))) in h[:1024]:
            return "x12"
    return None


# --------------------------------------------------------------------------------------------
# text

_PRINTABLE_ASCII = bytes(range(0x20, 0x7f)) + b"\t\n\r\x0b\x0c"
_BAD_CHARS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f\ufffd]")
_C0 = bytes(b for b in range(0x20) if b not in b"\t\n\r\x0b\x0c\x1b") + b"\x7f"
_ASCII = bytes(range(0x80))


def _text_of(head: bytes, truncated: bool) -> str | None:
    """The head decoded as text when it is mostly printable, else None."""
    if not head:
        return ""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        enc = "utf-16-le" if head[:2] == b"\xff\xfe" else "utf-16-be"
        body = head[2:]
        body = body[:len(body) & ~1]
        t = body.decode(enc, "replace")
        bad = len(_BAD_CHARS.findall(t))
        return t if bad <= 0.02 * max(1, len(t)) else None
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    rest = head.translate(None, _PRINTABLE_ASCII)
    if not rest:
        return head.decode("ascii")
    if len(rest) > 0.5 * len(head):
        return None
    h = head
    if truncated:  # do not count a multibyte character cut by the head as an error
        for k in range(1, min(4, len(h)) + 1):
            b = h[-k]
            if b & 0xC0 == 0x80:
                continue
            if b >= 0xC0:
                need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
                if k < need:
                    h = h[:-k]
            break
    t = h.decode("utf-8", "replace")
    bad = len(_BAD_CHARS.findall(t))
    if bad <= 0.02 * max(1, len(t)):
        return t
    # Latin-1 / cp1252 text: few control characters, mostly ASCII
    ctrl = len(head) - len(head.translate(None, _C0))
    high = len(rest.translate(None, _ASCII))
    if ctrl <= 0.01 * len(head) and high <= 0.3 * len(head):
        return head.decode("latin-1")
    return None


# ---- JSON: full parse when small, else a validator that accepts a valid (truncated) prefix / NDJSON

_WS = re.compile(r"[ \t\r\n]*")
_STR = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_STR_PREFIX = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*(?:\\(?:u[0-9a-fA-F]{0,3})?)?\Z')
_NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUM_PREFIX = re.compile(r"-?[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]*)?\Z")
_LITERALS = ("true", "false", "null")

_V, _VC, _K, _KC, _COLON, _SEP, _TOP = range(7)  # expected next: value, value or ], key, key or }, :, , or close


def _json_prefix(s: str, complete: bool) -> bool:
    """True when ``s`` is one or more JSON containers separated by whitespace (JSON / NDJSON), or
    (``complete`` False) a valid prefix of such a text."""
    pos, n = 0, len(s)
    stack: list[str] = []
    state = _TOP
    tops = 0
    tokens = 0
    while True:
        pos = _WS.match(s, pos).end()
        if pos >= n:
            break
        tokens += 1
        c = s[pos]
        if state in (_TOP, _V, _VC):
            if c == "{":
                stack.append("}")
                state = _KC
                pos += 1
                continue
            if c == "[":
                stack.append("]")
                state = _VC
                pos += 1
                continue
            if state == _TOP:
                return False
            if c == "]" and state == _VC:
                stack.pop()
            elif c == '"':
                m = _STR.match(s, pos)
                if m is None:
                    return not complete and _STR_PREFIX.match(s, pos) is not None
                pos = m.end()
            elif c in "-0123456789":
                m = _NUM.match(s, pos)
                if m is None or m.end() == n:
                    return not complete and _NUM_PREFIX.match(s, pos) is not None
                pos = m.end()
            elif c in "tfn":
                for lit in _LITERALS:
                    if s.startswith(lit, pos):
                        pos += len(lit)
                        break
                else:
                    tail = s[pos:]
                    return not complete and any(lit.startswith(tail) for lit in _LITERALS)
            else:
                return False
            if c == "]":
                pos += 1
            # a value (or an empty array) is done
        elif state in (_K, _KC):
            if c == "}" and state == _KC:
                stack.pop()
                pos += 1
            elif c == '"':
                m = _STR.match(s, pos)
                if m is None:
                    return not complete and _STR_PREFIX.match(s, pos) is not None
                pos = m.end()
                state = _COLON
                continue
            else:
                return False
        elif state == _COLON:
            if c != ":":
                return False
            pos += 1
            state = _V
            continue
        else:  # _SEP: ',' or the closing bracket of the innermost container
            if c == ",":
                pos += 1
                state = _K if stack[-1] == "}" else _V
                continue
            if c != stack[-1]:
                return False
            stack.pop()
            pos += 1
        # after a complete value
        if not stack:
            tops += 1
            state = _TOP
        else:
            state = _SEP
    if complete:
        return tops >= 1 and not stack and state == _TOP
    return tokens >= 2 or tops >= 1


def _is_json(data: bytes, text: str, truncated: bool) -> bool:
    t = text.lstrip("\ufeff \t\r\n")
    if not t or t[0] not in "{[":
        return False
    if len(data) <= FULL_JSON_MAX:
        try:
            if _orjson is not None:
                _orjson.loads(data.lstrip(b"\xef\xbb\xbf"))
            else:
                _json.loads(text)
            return True
        except Exception:
            pass
    return _json_prefix(t, complete=not truncated)


# ---- XML / HTML

_HTML_ROOTS = frozenset(("html", "head", "body", "div", "p", "span", "table", "script", "style", "meta", "link",
                         "title", "form", "a", "img", "ul", "ol", "li", "br", "hr", "h1", "h2", "h3", "iframe",
                         "section", "article", "header", "footer", "nav", "main", "center", "font", "b", "i",
                         "input", "button", "noscript", "svg", "tr", "td", "th", "pre", "strong", "em"))
_HTML_HINT = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.I)
_XML_TOKEN = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<!DOCTYPE(?:[^<>\[]|\[.*?\])*>"
    r"|<(/?)([A-Za-z_][\w.\-:]*)((?:\s+[^\s<>=/\"']+\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'|[^\s<>\"']+)|\s+[^\s<>=/\"']+)*)\s*(/?)>"
    r"|<|&(?!(?:[A-Za-z][\w.\-]*|#[0-9]+|#x[0-9A-Fa-f]+);)",
    re.S)
_VOID_HTML = frozenset(("br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source",
                        "track", "wbr", "param"))


def _xml_or_html(text: str, truncated: bool):
    t = text.lstrip("\ufeff \t\r\n")
    if not t.startswith("<"):
        return "html" if _HTML_HINT.search(text[:1024]) else None
    low = t[:1024].lower()
    if re.match(r"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<!doctype\s+html", low, re.S):
        return "html"
    stack: list[str] = []
    root = None
    closed_root = False
    html_like = False
    bad = False
    n = len(t)
    for m in _XML_TOKEN.finditer(t):
        tok = m.group(0)
        if tok == "<":
            if truncated and n - m.start() < 512:
                break  # a tag cut by the head
            bad = True
            break
        if tok.startswith("&"):
            html_like = True
            continue
        name = m.group(2)
        if name is None:
            if tok.startswith("<!--") or tok.startswith("<![CDATA[") or tok.startswith("<?") or tok[:9].upper() == "<!DOCTYPE":
                continue
            continue
        lname = name.lower()
        if root is None:
            root = lname
        elif not stack and not m.group(1):
            if closed_root:
                bad = True  # a second root element
                break
        if m.group(1):  # closing tag
            if not stack or stack[-1] != name:
                bad = True
                break
            stack.pop()
            if not stack:
                closed_root = True
        elif not m.group(4):
            if lname in _VOID_HTML and root in _HTML_ROOTS:
                continue
            stack.append(name)
    if root is None:
        return "html" if _HTML_HINT.search(low) else None
    if root in ("html", "head", "body"):
        return "html"
    if t.startswith("<?xml") and (not bad or root not in _HTML_ROOTS):
        return "xml"
    if not bad and (closed_root or (truncated and stack)) and not html_like:
        return "html" if root in _HTML_ROOTS and "xmlns" not in t[:512] else "xml"
    if root in _HTML_ROOTS or _HTML_HINT.search(low):
        return "html"
    return None


# ---- form, csv/tsv

_FORM = re.compile(r"[^&=\s]+=[^&=\s]*(?:&[^&=\s]+=[^&=\s]*)*")


def _is_form(text: str, truncated: bool, declared_form: bool) -> bool:
    t = text.strip()
    if truncated and "&" in t:
        t = t[:t.rfind("&")]
    if not t or "=" not in t or _FORM.fullmatch(t) is None:
        return False
    pairs = t.count("&") + 1
    if pairs >= 2 or declared_form:
        return True
    # one pair: only when it is clearly urlencoded
    return "%" in t or "+" in t


def _delimited(text: str, truncated: bool):
    lines = text.splitlines()
    if truncated and len(lines) > 1:
        lines = lines[:-1]
    lines = [ln for ln in lines[:400] if ln.strip()]
    if len(lines) < 2:
        return None
    best = None
    for delim, kind in ((",", "csv"), ("\t", "tsv"), (";", "csv"), ("|", "csv")):
        if not any(delim in ln for ln in lines[:3]):
            continue
        try:
            counts = [len(r) for r in csv.reader(lines, delimiter=delim, strict=False) if r]
        except (csv.Error, ValueError):
            continue
        if len(counts) < 2:
            continue
        modal = max(set(counts), key=counts.count)
        if modal < 2:
            continue
        agree = counts.count(modal)
        if len(counts) <= 4:
            ok = agree == len(counts) or (agree == len(counts) - 1 and counts[-1] < modal and truncated)
        else:
            ok = agree >= 0.9 * len(counts)
        if ok and delim in ",;|":  # prose with a comma per line is not a table
            fields = sum(counts[:50])
            spaces = sum(ln.count(" ") for ln in lines[:50])
            if spaces > 3 * fields:
                ok = False
        if ok and (best is None or modal > best[0]):
            best = (modal, kind)
    return best[1] if best else None


# --------------------------------------------------------------------------------------------
# binary: protobuf, entropy

def _varint(b: bytes, pos: int, n: int, maxlen: int):
    result = 0
    shift = 0
    for i in range(maxlen):
        if pos >= n:
            return None, pos
        x = b[pos]
        pos += 1
        result |= (x & 0x7F) << shift
        if not x & 0x80:
            return result, pos
        shift += 7
    return None, pos


varint = _varint     # (value, next position) or (None, position): protobuf varints, for content.binary


def _protobuf(b: bytes) -> bool:
    """Valid protobuf wire format over the whole buffer (top level walked; field numbers sane)."""
    n = len(b)
    if n < 2:
        return False
    # gRPC length-prefixed message
    if n >= 6 and b[0] in (0, 1) and int.from_bytes(b[1:5], "big") == n - 5:
        if b[0] == 1:
            return True
        b = b[5:]
        n -= 5
    pos = 0
    fields = 0
    big_fields = 0
    while pos < n:
        tag, pos = _varint(b, pos, n, 5)
        if tag is None:
            return False
        fn, wt = tag >> 3, tag & 7
        if fn == 0 or fn > 536870911:
            return False
        if fn > 4096:
            big_fields += 1
        if wt == 0:
            v, pos = _varint(b, pos, n, 10)
            if v is None:
                return False
        elif wt == 1:
            pos += 8
        elif wt == 2:
            ln, pos = _varint(b, pos, n, 10)
            if ln is None:
                return False
            pos += ln
        elif wt == 5:
            pos += 4
        else:
            return False
        if pos > n:
            return False
        fields += 1
        if fields >= PROTOBUF_MAX_FIELDS:
            break
    if big_fields * 2 > fields:
        return False
    return fields >= 2 or (fields == 1 and n >= 3 and (b[0] & 7) == 2)


def shannon_entropy(data: bytes, corrected: bool = True) -> float:
    """Bits per byte.  ``corrected`` adds the Miller-Madow bias correction (K-1)/(2N ln 2), without
    which 256 random bytes measure only ~7.2 bits/byte."""
    n = len(data)
    if n == 0:
        return 0.0
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    nz = counts[counts > 0].astype(np.float64)
    p = nz / n
    h = float(-(p * np.log2(p)).sum())
    if corrected:
        h += (len(nz) - 1) / (2.0 * n * math.log(2))
    return min(h, 8.0)


# --------------------------------------------------------------------------------------------
# declared Content-Type

_TEXT_FAMILY = frozenset(("text", "json", "xml", "csv", "tsv", "html", "form", "edifact", "x12"))
_ANY_BINARY = frozenset(("binary", "encrypted-or-compressed", "protobuf"))


def _expected(mime: str):
    """Payload types consistent with a declared media type; None = no opinion."""
    if not mime or "/" not in mime:
        return None
    top, _, sub = mime.partition("/")
    if mime in ("application/octet-stream", "binary/octet-stream", "application/unknown", "application/binary",
                "application/x-binary", "application/download", "application/force-download"):
        return None
    if sub in ("json", "x-json", "ndjson", "x-ndjson", "jsonl", "x-jsonlines", "json-seq", "x-json-stream") \
            or sub.endswith("+json"):
        return {"json"}
    if mime == "application/xhtml+xml" or mime == "text/html":
        return {"html", "xml"} if mime == "application/xhtml+xml" else {"html"}
    if mime == "image/svg+xml":
        return {"xml", "image"}
    if sub in ("xml",) or sub.endswith("+xml"):
        return {"xml"}
    if sub in ("csv", "x-csv", "comma-separated-values"):
        return {"csv", "tsv"}
    if sub in ("tab-separated-values", "tsv"):
        return {"tsv", "csv"}
    if sub == "edifact":
        return {"edifact"}
    if sub == "edi-x12":
        return {"x12"}
    if sub == "edi-consent":
        return {"edifact", "x12", "text"}
    if mime == "application/x-www-form-urlencoded":
        return {"form"}
    if top == "multipart":
        return {"multipart"}
    if sub in ("x-protobuf", "protobuf", "vnd.google.protobuf", "x-google-protobuf", "grpc", "grpc+proto",
               "x-protobuffer"):
        return {"protobuf", "binary", "encrypted-or-compressed"}
    if mime == "application/pdf":
        return {"pdf"}
    if sub == "vnd.ms-excel":
        return {"office", "csv", "tsv", "html", "xml"}
    if sub == "msword" or sub.startswith(("vnd.ms-", "vnd.openxmlformats-", "vnd.oasis.opendocument")):
        return {"office", "zip"}
    if sub in ("zip", "x-zip-compressed", "x-zip"):
        return {"zip", "office"}
    if sub in ("gzip", "x-gzip", "x-gunzip", "x-tgz", "x-compressed-tar"):
        return {"gzip"}
    if sub in ("zstd", "x-bzip2", "x-bzip", "x-xz", "x-7z-compressed", "x-rar-compressed", "vnd.rar", "x-rar",
               "x-lzma", "x-lz4", "x-compress", "x-tar", "x-lzip", "vnd.ms-cab-compressed"):
        return {"encrypted-or-compressed", "binary"}
    if top == "image":
        return {"image"}
    if top in ("audio", "video", "font"):
        return {"binary", "encrypted-or-compressed", "image"}
    if top == "text" or sub in ("javascript", "x-javascript", "ecmascript", "x-sh", "x-yaml", "yaml", "toml",
                                "sql", "graphql"):
        return _TEXT_FAMILY
    return None


def _clean_declared(declared) -> str | None:
    if declared is None:
        return None
    if isinstance(declared, (bytes, bytearray, memoryview)):
        declared = bytes(declared).decode("latin-1")
    if not isinstance(declared, str):
        return None
    mime = declared.split(";", 1)[0].strip().lower()[:100]
    mime = "".join(ch for ch in mime if ch.isprintable() and not ch.isspace())
    return mime or None


def _boundary(declared) -> bytes | None:
    """The declared boundary as bytes (RFC 2046: at most 70), or None."""
    b = boundary_of(declared) if isinstance(declared, str) else None
    if not b:
        return None
    try:
        return b.encode("latin-1")[:70]
    except UnicodeEncodeError:
        return None


# --------------------------------------------------------------------------------------------

def _classify(data: bytes, declared_raw) -> str:
    head = data[:HEAD]
    truncated = len(data) > HEAD
    kind = _magic(data, head)
    if kind:
        return kind
    mime = _clean_declared(declared_raw)
    if head[:2] in (b"--", b"\r\n", b"\n-") or (mime or "").startswith("multipart/"):
        if _multipart(data, head, _boundary(declared_raw)):
            return "multipart"
    kind = _edi(head)
    if kind:
        return kind
    text = _text_of(head, truncated)
    if text is not None:
        if _is_json(data, text, truncated):
            return "json"
        kind = _xml_or_html(text, truncated)
        if kind:
            return kind
        if _is_form(text, truncated, mime == "application/x-www-form-urlencoded"):
            return "form"
        kind = _delimited(text, truncated)
        if kind:
            return kind
        if mime and "protobuf" in mime and _protobuf(data):
            return "protobuf"
        return "text"
    if _protobuf(data):
        # random bytes rarely parse; demand more of high-entropy buffers
        if len(data) < ENTROPY_MIN_BYTES or shannon_entropy(head) < ENTROPY_THRESHOLD:
            return "protobuf"
    if len(data) >= ENTROPY_MIN_BYTES and shannon_entropy(head) >= ENTROPY_THRESHOLD:
        return "encrypted-or-compressed"
    return "binary"


def classify(data: bytes, declared: str | None = None) -> tuple[str, str | None]:
    """``(payload_type, note)``; ``payload_type`` is one of ``PAYLOAD_TYPES``."""
    try:
        if not isinstance(data, bytes):
            data = bytes(data) if isinstance(data, (bytearray, memoryview)) else (
                data.encode("utf-8", "surrogatepass") if isinstance(data, str) else b"")
    except Exception:
        data = b""
    if not data:
        return "text", None
    try:
        ptype = _classify(data, declared)
    except Exception:  # hostile input must never escape as an exception
        ptype = "binary"
    note = None
    try:
        mime = _clean_declared(declared)
        expected = _expected(mime) if mime else None
        if expected is not None and ptype not in expected:
            note = f"declared {mime}, content is {ptype}"
    except Exception:
        note = None
    return ptype, note


# --------------------------------------------------------------------------------------------
# MIME types for protocol logs (magic numbers first, then text heuristics)

SNIFF_BYTES = 4096               # bytes examined by sniff_mime (protocols keep this much of a body)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"(\xb5/\xfd", "application/zstd"),
    (b"\x04\x22\x4d\x18", "application/x-lz4"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/x-rar"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xca\xfe\xba\xbe", "application/x-java-applet"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-o-executable"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-o-executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/vnd.ms-office"),
    (b"SQLite format 3\x00", "application/x-sqlite3"),
    (b"\xd4\xc3\xb2\xa1", "application/vnd.tcpdump.pcap"),
    (b"\xa1\xb2\xc3\xd4", "application/vnd.tcpdump.pcap"),
    (b"\x4d\x3c\xb2\xa1", "application/vnd.tcpdump.pcap"),
    (b"\x0a\x0d\x0d\x0a", "application/x-pcapng"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x00asm", "application/wasm"),
    (b"{\\rtf", "text/rtf"),
    (b"%!PS", "application/postscript"),
    (b"-----BEGIN ", "application/x-pem-file"),
    (b"MZ", "application/x-dosexec"),
)
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<script", b"<h1",
                b"<div", b"<p>", b"<meta", b"<table", b"<iframe", b"<style", b"<br", b"<a ",
                b"<link", b"<form", b"<center", b"<frameset")
_JSON_START = re.compile(rb'^(?:\{\s*(?:"|\}|$)|\[\s*(?:[\[\{"\]\-0-9]|true|false|null|$))')
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {9, 10, 12, 13, 27}


def _zip_kind(head: bytes) -> str:
    if b"word/" in head:
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if b"xl/" in head:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if b"ppt/" in head:
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    if head[30:38] == b"mimetype":
        mt = head[38:38 + 80].split(b"PK", 1)[0]
        if mt.startswith(b"application/") and mt.isascii():
            return mt.decode("ascii", "replace")
    if b"AndroidManifest.xml" in head:
        return "application/vnd.android.package-archive"
    if b"META-INF/" in head:
        return "application/java-archive"
    return "application/zip"


def looks_text(b: bytes) -> bool:
    """Text by its bytes: no NUL, at most 5% of the first KiB neither printable ASCII nor (in valid
    UTF-8) part of a character."""
    if b"\x00" in b:
        return False
    sample = b[:1024]
    try:
        sample.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError as e:
        utf8 = e.start >= len(sample) - 3          # a character cut at the sample's end
    bad = sum(1 for c in sample if c not in _TEXT_BYTES and (c < 0x80 or not utf8))
    return bad * 20 <= len(sample)                 # at most 5% odd bytes


def sniff_mime(b: bytes) -> str | None:
    """A MIME type from the first bytes of a body; None for an empty body."""
    if not b:
        return None
    b = b[:SNIFF_BYTES]
    for magic, mt in _MAGIC:
        if b.startswith(magic):
            if mt == "application/x-dosexec" and len(b) >= 64 and b"PE\x00\x00" not in b[:1024] \
                    and b"This program" not in b[:512]:
                break                               # "MZ..." text, not a DOS/PE header
            return mt
    if b.startswith(b"PK\x03\x04"):
        return _zip_kind(b[:SNIFF_BYTES])
    if b[:4] == b"RIFF" and len(b) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            b[8:12], "application/octet-stream")
    if b[4:8] == b"ftyp":
        brand = b[8:12]
        if brand in (b"heic", b"heix", b"mif1"):
            return "image/heic"
        if brand == b"avif":
            return "image/avif"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if b[:2] == b"BM" and len(b) >= 14 and b[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if not looks_text(b):
        return "application/octet-stream"
    s = b.lstrip(b"\xef\xbb\xbf").lstrip()[:1024].lower()
    if s.startswith(b"<?xml"):
        if b"<svg" in s:
            return "image/svg+xml"
        if b"<!doctype html" in s or b"<html" in s:
            return "text/html"
        return "application/xml"
    if s.startswith(b"<svg"):
        return "image/svg+xml"
    if s.startswith(_HTML_STARTS) or (s.startswith(b"<!--") and (b"<html" in s or b"<head" in s)):
        return "text/html"
    if s[:1] in (b"{", b"["):
        if _JSON_START.match(s):
            return "application/json"
        try:
            _json.loads(b)
            return "application/json"
        except ValueError:
            pass
    if s.startswith(b"#!"):
        return "text/x-shellscript"
    return "text/plain"
