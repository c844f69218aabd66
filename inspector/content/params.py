"""Where a payload hides in an HTTP request outside its body: query string, cookies, custom headers.

``request_pairs(target, headers)`` gathers ``(name, value)`` pairs from the request target's query
string (and a ``;``-parameter or ``#`` fragment the client sent), the ``Cookie`` headers, and the
headers that are not part of HTTP or of a cloud API's control vocabulary (``X-User-Email``,
``x-amz-meta-*``, a tracking pixel's ``X-Payload``...).  ``decode_pairs(pairs)`` undoes the encodings
a beacon uses, value by value, to a bounded depth (``MAX_DEPTH``):

* percent-encoding (``%40``, ``+`` for space), repeated when the value was encoded twice;
* base64 / base64url / base32 / hex of a whole value (``decoding.decode_token``: canonical encodings
  only, words and identifiers are not decoded), kept only when the result is text;
* a value that decodes to a JSON document or to a form-urlencoded string is flattened into pairs
  named ``outer.inner``, so the inner keys still label their values (``d=eyJwaG9uZSI6...`` becomes
  ``d.phone=...``).

``mask_query(uri)`` is what protocol logs write instead of a URI whose query values carry
identifiers (plainly or encoded): those values become ``[masked email,phone]``.

``render(pairs)`` writes the decoded pairs as ``application/x-www-form-urlencoded`` text, which the
record counter (``records.count_records(.., "form")``) reads with each key as its value's field
context: encoded PII counts as PII.  Nothing here logs or keeps a value; bounded in pairs
(``MAX_PAIRS``), value length (``MAX_VALUE``) and depth; never raises on hostile input.
"""
from __future__ import annotations

import json
from urllib.parse import unquote, unquote_plus, urlencode

from .decoding import decode_token

__all__ = ["request_pairs", "decode_pairs", "render", "form_pairs", "parse_form", "mask_query", "MAX_DEPTH",
           "MAX_PAIRS"]

MAX_DEPTH = 4
MAX_PAIRS = 1000
MAX_VALUE = 64 << 10
MAX_TARGET = 64 << 10

#: request headers of HTTP itself, of browsers and proxies, and cloud APIs' control headers: their
#: values are protocol, not payload
STANDARD_HEADERS = frozenset((
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "accept-charset", "accept-ranges",
    "connection", "keep-alive", "content-type", "content-length", "content-encoding", "content-md5",
    "content-disposition", "content-language", "content-range", "content-location", "transfer-encoding",
    "te", "trailer", "upgrade", "via", "cache-control", "pragma", "expect", "date", "referer", "origin",
    "authorization", "proxy-authorization", "proxy-connection", "cookie", "if-match", "if-none-match",
    "if-modified-since", "if-unmodified-since", "if-range", "range", "dnt", "upgrade-insecure-requests",
    "x-requested-with", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port",
    "x-real-ip", "forwarded", "x-csrf-token", "x-xsrf-token", "priority", "purpose", "save-data",
    "max-forwards", "from", "alt-used", "x-http-method-override", "content-crc32", "grpc-encoding",
    "grpc-accept-encoding", "grpc-timeout", "x-request-id", "x-correlation-id", "traceparent",
    "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-amzn-trace-id",
    "x-api-key", "x-auth-token", "x-client-data", "sec-gpc", "service-worker",
    "x-acs-signature-nonce", "x-acs-signature-method", "x-acs-signature-version", "x-acs-version",
))
_CONTROL_PREFIXES = ("sec-", "x-amz-", "x-oss-", "x-log-", "x-ms-", "x-goog-", "x-acs-", "x-sls-")
_METADATA_PREFIXES = ("x-amz-meta-", "x-oss-meta-", "x-ms-meta-", "x-goog-meta-")


def _header_value(v) -> str:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    return v if isinstance(v, str) else ""


def form_pairs(text: str) -> list[tuple[str, str]]:
    """``k=v&k2=v2`` pairs, raw (still percent-encoded), ``;`` accepted as a separator too."""
    out = []
    for piece in text.replace(";", "&").split("&"):
        if not piece:
            continue
        k, eq, v = piece.partition("=")
        if eq:
            out.append((k.strip(), v.strip()))
        elif len(piece) >= 16:
            out.append(("", piece.strip()))   # a bare token (``?eyJ...``): a value without a name
        if len(out) >= MAX_PAIRS:
            break
    return out


def request_pairs(target, headers) -> list[tuple[str, str]]:
    """The named values a request carries outside its body (see the module docstring)."""
    pairs: list[tuple[str, str]] = []
    try:
        t = _header_value(target)[:MAX_TARGET]
        _path, q, rest = t.partition("?")
        if q:
            query, _h, frag = rest.partition("#")
            pairs += form_pairs(query)
            if frag:
                pairs += form_pairs(frag)
        for name, value in headers or ():
            if len(pairs) >= MAX_PAIRS:
                break
            name = (name or "").lower()
            value = _header_value(value)
            if name == "cookie":
                pairs += [(f"cookie.{k}", v) for k, v in form_pairs(value.replace("; ", ";"))]
            elif name.startswith(_METADATA_PREFIXES):
                pairs.append((name.split("-meta-", 1)[1], value))
            elif name not in STANDARD_HEADERS and not name.startswith(_CONTROL_PREFIXES) and value:
                pairs.append((name[2:] if name.startswith("x-") else name, value))
    except Exception:
        return pairs[:MAX_PAIRS]
    return pairs[:MAX_PAIRS]


def _text(b: bytes) -> str | None:
    try:
        s = b.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in s if c >= " " or c in "\t\r\n")
    return s if s and printable >= 0.95 * len(s) else None


def _flatten_json(doc, prefix: str, out: list, depth: int) -> None:
    if len(out) >= MAX_PAIRS or depth > 16:
        return
    if isinstance(doc, dict):
        for k, v in doc.items():
            _flatten_json(v, f"{prefix}.{k}" if prefix else str(k), out, depth + 1)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            _flatten_json(v, f"{prefix}[{i}]" if isinstance(v, dict) else prefix, out, depth + 1)
    elif doc is not None and not isinstance(doc, bool):
        out.append((prefix or "value", str(doc)))


def _decode_value(key: str, value: str, depth: int, out: list, encodings: set, form: bool = True,
                  documents: list | None = None) -> None:
    """Append the decoded form(s) of one value to ``out``.  ``form``: the value comes from a
    form-urlencoded string (``+`` is a space); a value decoded from JSON or base64 is plain text, where
    only ``%XX`` sequences are undone."""
    if len(out) >= MAX_PAIRS:
        return
    value = value[:MAX_VALUE]
    for _ in range(3):              # percent-encoding, possibly applied more than once
        if "%" not in value and not (form and "+" in value):
            break
        nxt = unquote_plus(value) if form else unquote(value)
        if nxt == value:
            break
        if "%" in value:
            encodings.add("url")
        value = nxt
        form = False                # a second round: only %XX left to undo
    s = value.strip()
    if depth < MAX_DEPTH and len(s) >= 2:
        if s[0] in "{[" and s[-1] in "}]":
            try:
                doc = json.loads(s)
            except ValueError:
                doc = None
            if isinstance(doc, (dict, list)):
                encodings.add("json")
                inner: list = []
                _flatten_json(doc, key, inner, 0)
                for k, v in inner:
                    _decode_value(k, v, depth + 1, out, encodings, False, documents)
                return
        if "=" in s and ("&" in s or s.count("=") == 1) and not s.endswith("=") and " " not in s:
            inner = form_pairs(s)
            if inner and all(k and len(k) <= 64 for k, _v in inner):
                for k, v in inner:
                    _decode_value(f"{key}.{k}" if key else k, v, depth + 1, out, encodings, True, documents)
                return
        got = decode_token(s.encode("utf-8", "surrogatepass"), min_len=8) if len(s) >= 8 else None
        if got is not None:
            text = _text(got[1])
            if text is not None:
                encodings.add(got[0])
                if documents is not None and text.count("\n") >= 2:
                    documents.append(text.encode("utf-8"))   # a whole document (CSV, EDI...): a body
                    return
                _decode_value(key, text, depth + 1, out, encodings, False, documents)
                return
    out.append((key, value))


def decode_pairs(pairs, documents: list | None = None) -> tuple[list[tuple[str, str]], set]:
    """``(decoded pairs, encodings undone)``; see the module docstring.  With ``documents`` (a list),
    a value that decodes to a multi-line text (a CSV, an EDI interchange, NDJSON) is appended there
    as bytes instead of being kept as one value: the caller inspects it as a body of its own."""
    out: list[tuple[str, str]] = []
    encodings: set = set()
    try:
        for k, v in pairs:
            key = unquote_plus(k)[:256] if k else ""
            _decode_value(key, v, 0, out, encodings, True, documents)
            if len(out) >= MAX_PAIRS:
                break
    except Exception:
        pass
    return out[:MAX_PAIRS], encodings


def render(pairs) -> bytes:
    """Decoded pairs as form-urlencoded text (``records`` reads it as one record, per-index groups)."""
    return urlencode([(k or "value", v) for k, v in pairs if v]).encode("ascii")


def mask_query(uri: str) -> str:
    """``uri`` (as a protocol log writes it) with every query or fragment value that carries an
    identifier, in the clear or encoded (percent, base64, hex, JSON inside...), replaced by
    ``[masked CLASS,...]``: the log keeps the parameter names and the harmless values."""
    if not isinstance(uri, str) or "=" not in uri or ("?" not in uri and "#" not in uri):
        return uri
    try:
        from .identifiers import scan_fields
        cut = min(i for i in (uri.find("?"), uri.find("#")) if i >= 0) + 1
        out = []
        changed = False
        for piece in uri[cut:cut + MAX_TARGET].split("&")[:MAX_PAIRS]:
            k, eq, v = piece.partition("=")
            if eq and len(v) >= 5:
                decoded, _enc = decode_pairs([(k, v)])
                classes = set()
                for dk, dv in decoded:
                    classes.update(c for c, vals in scan_fields({dk or "value": dv}).items() if vals)
                if classes:
                    piece = f"{k}=[masked {','.join(sorted(classes))}]"
                    changed = True
            out.append(piece)
        return uri[:cut] + "&".join(out) if changed else uri
    except Exception:
        return uri


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The raw pairs of a form-urlencoded body (values still percent-encoded)."""
    try:
        return form_pairs(body[:MAX_TARGET * 16].decode("utf-8", "replace"))
    except Exception:
        return []
