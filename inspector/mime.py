"""MIME entities (RFC 2045/2046): header parameters, header blocks and multipart bodies.

The one MIME parser, used by the HTTP and SMTP analyzers (the ``boundary`` and file name of a
message, the leaf types of ``*_mime_types``), by payload sniffing (is this a multipart body?) and by
the content stage (each part of a multipart upload inspected on its own).

Bodies come from the network: everything here is bounded (header bytes, header lines, parts,
nesting) and none of it raises on hostile input.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Dict, List, Optional, Tuple, Union

__all__ = ["header_param", "boundary_of", "parse_headers", "split_entity", "parts", "multipart",
           "decode_transfer_encoding", "MAX_PARTS", "MAX_HEADER_BYTES", "MAX_BOUNDARY"]

MAX_PARTS = 1000
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_LINES = 100
MAX_BOUNDARY = 200          # RFC 2046 allows 70; longer ones are kept up to this, then cut


def header_param(value, name: str) -> Optional[str]:
    """A parameter of a header value: ``boundary`` of ``multipart/form-data; boundary=x``, ``filename``
    of a Content-Disposition.  Quoted values are unquoted; an RFC 5987 ``filename*=utf-8''x`` gives
    ``x``; None when absent or empty.  ``value`` may be bytes (read as Latin-1)."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        return None
    m = re.search(r'(?i)(?:^|;)\s*' + re.escape(name) + r'\*?\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))', value)
    if not m:
        return None
    v = m.group(1) if m.group(1) is not None else m.group(2)
    if v and "''" in v and name == "filename":       # RFC 5987 filename*=utf-8''x
        v = v.split("''", 1)[1]
    return v or None


def boundary_of(content_type) -> Optional[str]:
    """The ``boundary`` parameter of a multipart Content-Type (at most :data:`MAX_BOUNDARY`
    characters, surrounding blanks removed), or None."""
    b = header_param(content_type, "boundary")
    b = b.strip()[:MAX_BOUNDARY].strip() if b else None
    return b or None


def parse_headers(block: bytes) -> Dict[str, str]:
    """A header block -> ``{lower-case name: value}`` (Latin-1 text).  Folded lines are joined; a
    repeated header's values are joined with ``, ``; at most :data:`MAX_HEADER_BYTES` bytes and
    :data:`MAX_HEADER_LINES` lines are read."""
    headers: Dict[str, str] = {}
    last = None
    for raw in re.split(rb"\r?\n", block[:MAX_HEADER_BYTES])[:MAX_HEADER_LINES]:
        if not raw:
            continue
        if raw[:1] in (b" ", b"\t") and last is not None:
            headers[last] += " " + raw.strip().decode("latin-1")
            continue
        name, sep, value = raw.partition(b":")
        if not sep:
            continue
        key = name.strip().decode("latin-1").lower()
        if not key:
            continue
        val = value.strip().decode("latin-1")
        if key in headers:
            headers[key] += ", " + val
        else:
            headers[key] = val
        last = key
    return headers


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def split_entity(data: bytes, need_blank_line: bool = False) -> Tuple[Optional[Dict[str, str]], bytes]:
    """``(headers, body)`` of a MIME entity: a header block, a blank line, the body.  An entity that
    starts with a blank line has no headers (``{}``); one without a blank line within
    :data:`MAX_HEADER_BYTES` is all headers (``(headers, b"")``), or not an entity at all
    (``(None, b"")``) with ``need_blank_line``."""
    if data.startswith(b"\r\n") or data.startswith(b"\n"):
        return {}, data[2 if data.startswith(b"\r\n") else 1:]
    m = _BLANK_LINE.search(data[:MAX_HEADER_BYTES + 4])
    if m is None:
        return (None, b"") if need_blank_line else (parse_headers(data), b"")
    return parse_headers(data[:m.start()]), data[m.end():]


_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _b64_lenient(body: bytes) -> bytes:
    s = _B64_JUNK.sub(b"", body)
    s = s[:len(s) - (len(s) % 4 == 1)]
    s += b"=" * (-len(s) % 4)
    try:
        return base64.b64decode(s)
    except (binascii.Error, ValueError):
        return b""


def decode_transfer_encoding(cte, body: bytes) -> bytes:
    """A MIME entity's body with its Content-Transfer-Encoding ``cte`` (base64, quoted-printable)
    undone; other encodings (7bit, 8bit, binary, unknown, None) leave it as is."""
    cte = cte.strip().lower() if isinstance(cte, str) else ""
    if cte == "base64":
        return _b64_lenient(body)
    if cte == "quoted-printable":
        try:
            return binascii.a2b_qp(body)
        except (binascii.Error, ValueError):
            return body
    return body


def parts(data: bytes, boundary: bytes, *, decode: bool = True, nested: bool = True,
          max_parts: int = MAX_PARTS) -> List[Tuple[Dict[str, str], bytes]]:
    """The parts of a multipart body as ``(headers, body)``.

    Delimiters count at the start of the data or of a line (RFC 2046); the close delimiter ends the
    body, and a missing one (a truncated body) ends the last part at the end of the data.  With
    ``decode``, base64 and quoted-printable bodies are decoded; with ``nested``, a multipart part is
    replaced by its own parts (one level).  At most ``max_parts`` parts."""
    return _parts(data, boundary, decode, 0 if nested else 1, [max_parts])


def _parts(data: bytes, boundary: bytes, decode: bool, depth: int, budget: list) -> list:
    delim = b"--" + boundary
    n = len(data)
    # first delimiter: at the start or at the start of a line
    pos = 0 if data.startswith(delim) else -1
    if pos < 0:
        m = re.search(rb"\r?\n" + re.escape(delim), data)
        if not m:
            return []
        pos = m.end() - len(delim)
    out = []
    line_delim = re.compile(rb"\r?\n" + re.escape(delim))
    while pos < n and budget[0] > 0:
        after = pos + len(delim)
        if data[after:after + 2] == b"--":
            break  # close delimiter
        eol = data.find(b"\n", after)
        if eol < 0:
            break
        start = eol + 1
        m = line_delim.search(data, start)
        end = m.start() if m else n
        headers, body = split_entity(data[start:end])
        if decode:
            body = decode_transfer_encoding(headers.get("content-transfer-encoding"), body)
        budget[0] -= 1
        sub_parts = None
        if depth == 0:
            ctype = headers.get("content-type", "")
            if ctype.lower().lstrip().startswith("multipart/"):
                sub = boundary_of(ctype)
                if sub:
                    sub_parts = _parts(body, sub.encode("latin-1", "replace"), decode, depth + 1, budget)
        if sub_parts:
            out.extend(sub_parts)
        else:
            out.append((headers, body))
        if not m:
            break
        pos = m.end() - len(delim)
    return out


_FIRST_DELIMITER = re.compile(rb"(?:\r?\n)*--([^\r\n]{1,70}?)[ \t]*\r?\n")


def multipart(data, boundary: Union[str, bytes, None] = None) -> List[Tuple[Dict[str, str], bytes]]:
    """Parts of a multipart body (form-data, mixed, related, alternative...) as ``(headers, body)``,
    bodies decoded, nested multipart expanded one level (:func:`parts`).  Without ``boundary`` it is
    taken from the body's first line.  ``[]`` for anything that is not a multipart body."""
    try:
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        elif not isinstance(data, bytes):
            return []
        if isinstance(boundary, str):
            boundary = boundary.strip().strip('"').encode("latin-1", "replace")
        elif isinstance(boundary, (bytearray, memoryview)):
            boundary = bytes(boundary)
        if not boundary:
            m = _FIRST_DELIMITER.match(data)
            if not m:
                return []
            boundary = m.group(1)
        return parts(data, boundary[:MAX_BOUNDARY])
    except Exception:
        return []
