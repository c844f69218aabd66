"""HTTP/1.x: one ``http.jsonl`` record per request/response pair (Zeek's http.log).

Each direction is a state machine over its in-order byte stream::

    START --start line--> HEADERS --blank line--> body? --> START
                                                   |
            Content-Length: BODY_LEN   chunked: CHUNK_SIZE -> CHUNK_DATA -> CHUNK_CRLF ... -> TRAILERS
            response without length: BODY_EOF (until the connection closes)
            CONNECT + 2xx, 101 Switching Protocols: TUNNEL (parsing stops, both ways)
            gap we cannot skip, oversized header block, bad start line: RESYNC
            (wait for the next line that is a plausible request / status line)

Requests queue up as transactions; each response is matched to the oldest
transaction still waiting for its final (non-1xx) response (pipelining).  A
record is written once a transaction has both its request and its final
response complete (or when the connection ends).

Field semantics follow Zeek: ``uri`` is %XX-unescaped, ``host`` is the Host
header as sent (port included), ``version`` is the response's (the request's
when there is no response), body lengths are the entity body's transfer size
after de-chunking and before content decoding, a missing reason phrase is
``<empty>``, an HTTP/0.9 reply is ``status_code`` 0.  Differences: mime types are
sniffed here from the first body bytes (``application/json`` where Zeek writes
``text/json``) and the declared Content-Type is kept too (``req_content_type``,
``resp_content_type``).

Content hook: when ``ctx.sink`` has a ``body`` attribute, every non-empty
message body (de-chunked, still content-encoded, at most ``max_request_body`` bytes of a request,
``max_body`` of a response) is
passed to ``sink.body(ctx, is_orig, info, body)``; ``info`` describes it (see
``Analyzer._deliver_body``).
"""
from __future__ import annotations

import base64
import re
import zlib

from ..mime import boundary_of, header_param, parts, split_entity
from ..sniff import SNIFF_BYTES, sniff_mime
from ..outputs.schema import CONN_ID, INT, ListOf, STRING, TIME, Field, Stream
from .base import Analyzer as _Base
from . import ja4plus

NAME = "http"
TRANSPORTS = ("tcp",)
PORTS = (80, 81, 591, 631, 1080, 3128, 8000, 8008, 8080, 8081, 8088, 8888)
LOG = "http"
# ---- outputs (read by inspector.outputs): the http log's schema and this module's weird names ----
LOG_SCHEMA = Stream("http", "HTTP/1.x requests and responses, one record per transaction (Zeek http.log)", (
    Field("ts", TIME, "time of the request"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("trans_depth", INT, "position of the transaction in the connection (1, 2...)"),
    Field("method", STRING, "request method (GET, POST...)"),
    Field("host", STRING, "Host header"),
    Field("uri", STRING, "request target (e-mail addresses masked unless --show-raw)"),
    Field("referrer", STRING, "Referer header (e-mail addresses masked unless --show-raw)"),
    Field("version", STRING, "HTTP version (1.0, 1.1)"),
    Field("user_agent", STRING, "User-Agent header"),
    Field("origin", STRING, "Origin header"),
    Field("request_body_len", INT, "request body bytes (after transfer decoding)"),
    Field("response_body_len", INT, "response body bytes (after transfer decoding)"),
    Field("status_code", INT, "response status code"),
    Field("status_msg", STRING, "response reason phrase"),
    Field("info_code", INT, "last 1xx informational status code"),
    Field("info_msg", STRING, "last 1xx reason phrase"),
    Field("username", STRING, "user name from Basic authorization"),
    Field("proxied", ListOf(STRING), "proxy headers seen (Via, X-Forwarded-For...) as NAME -> value"),
    Field("orig_filenames", ListOf(STRING), "file names the client sent (Content-Disposition)"),
    Field("orig_mime_types", ListOf(STRING), "sniffed MIME types of the request bodies"),
    Field("resp_filenames", ListOf(STRING), "file names the server sent (Content-Disposition)"),
    Field("resp_mime_types", ListOf(STRING), "sniffed MIME types of the response bodies"),
    Field("req_content_type", STRING, "request Content-Type header"),
    Field("resp_content_type", STRING, "response Content-Type header"),
    Field("ja4h", STRING, "JA4H fingerprint of the request (header names as sent, cookies hashed; FoxIO "
                          "License 1.1)"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "http.bad_chunk_size": "a chunk size line that is not hexadecimal or too long",
    "http.bad_content_length": "a Content-Length that is not a number, or several that disagree",
    "http.bad_header_line": "a header line without a colon",
    "http.bad_request_line": "a request line that is not METHOD TARGET VERSION",
    "http.bad_status_line": "a status line that is not VERSION CODE REASON",
    "http.bad_transfer_encoding": "a Transfer-Encoding other than chunked (body read to close)",
    "http.chunk_missing_crlf": "a chunk not followed by CRLF",
    "http.content_gap": "bytes missing from a message (capture loss); the transaction is cut there",
    "http.excessive_pipelining": "more pipelined requests waiting for responses than the limit",
    "http.oversized_headers": "a header block or trailers over the size limit",
    "http.unmatched_response": "a response with no request waiting for it",
}
# ---- end of outputs declarations ----

METHODS = frozenset((
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    # WebDAV (RFC 4918, 3253, 3648, 3744, 5323, 5842) and friends seen in the wild
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
    "REPORT", "MKACTIVITY", "CHECKOUT", "CHECKIN", "UNCHECKOUT", "MERGE", "MKWORKSPACE",
    "VERSION-CONTROL", "LABEL", "UPDATE", "BASELINE-CONTROL", "MKCALENDAR", "ORDERPATCH",
    "ACL", "BIND", "UNBIND", "REBIND", "POLL", "BMOVE", "BCOPY", "BDELETE", "BPROPFIND",
    "BPROPPATCH", "SUBSCRIBE", "UNSUBSCRIBE", "NOTIFY", "M-SEARCH", "PURGE", "LINK", "UNLINK",
))

PROXY_HEADERS = frozenset(("forwarded", "x-forwarded-for", "x-forwarded-from", "client-ip",
                           "via", "xroxy-connection", "proxy-connection"))

MAX_HEADER_BLOCK = 64 * 1024     # start line + headers (and, separately, trailers)
MAX_CHUNK_LINE = 4096
MAX_RESYNC_LINE = 16 * 1024
MAX_PENDING = 100                # transactions waiting for a response

# direction states
S_START, S_HEADERS, S_BODY_LEN, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILERS, \
    S_BODY_EOF, S_RESYNC, S_TUNNEL = range(10)
_LINE_STATES = frozenset((S_START, S_HEADERS, S_CHUNK_SIZE, S_CHUNK_CRLF, S_TRAILERS, S_RESYNC))
_BODY_STATES = frozenset((S_BODY_LEN, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_CRLF, S_TRAILERS, S_BODY_EOF))

_TOKEN_RE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")
_VERSION_RE = re.compile(rb"^\d\.\d{1,2}$")
_AUTHORITY_RE = re.compile(rb"^[A-Za-z0-9.-]{1,253}:\d{1,5}$|^\[[0-9A-Fa-f:.]{2,45}\]:\d{1,5}$")  # CONNECT host:port
_PCT_RE = re.compile(rb"%([0-9A-Fa-f]{2})")
_HEX_RE = re.compile(rb"^[0-9A-Fa-f]+$")


def _s(b: bytes) -> str:
    """Bytes from the wire -> str for the log (undecodable bytes as \\xNN, like Zeek)."""
    return b.decode("utf-8", "backslashreplace")


def unescape_uri(raw: bytes) -> str:
    """Zeek's URI unescaping: every valid %XX is decoded; anything else is kept."""
    if b"%" in raw:
        raw = _PCT_RE.sub(lambda m: bytes((int(m.group(1), 16),)), raw)
    return _s(raw)


def _headers(m) -> list:
    """A message's header lines as ``[(name lower-case, value str)]``."""
    return [(name, _s(raw)) for name, raw in m.headers]


def host_without_port(host: str) -> str:
    """``example.com:8080`` -> ``example.com``; ``[2001:db8::1]:80`` -> ``2001:db8::1``."""
    h = host.strip()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else h[1:]
    if h.count(":") == 1:
        name, _, port = h.partition(":")
        if port.isdigit() or port == "":
            h = name
    return h.rstrip(".").lower()


MAX_MIME_DEPTH = 40
MAX_MIME_LEAVES = 100


def mime_leaf_types(content_type: str | None, body: bytes, depth: int = 0, out: list | None = None) -> list:
    """Sniffed types of the leaf entities of a body: multipart/* parts and message/rfc822
    contents are walked (like Zeek's MIME analyzer), anything else is sniffed."""
    out = [] if out is None else out
    ct = (content_type or "").strip().lower()
    if depth < MAX_MIME_DEPTH and len(out) < MAX_MIME_LEAVES:
        if ct.startswith("multipart/"):
            boundary = boundary_of(content_type)
            if boundary:
                for hdrs, pbody in parts(body, boundary.encode("utf-8", "replace"), decode=False, nested=False,
                                         max_parts=MAX_MIME_LEAVES):
                    mime_leaf_types(hdrs.get("content-type", "text/plain"), pbody, depth + 1, out)
                return out
        elif ct.startswith("message/rfc822"):
            hdrs, inner = split_entity(body, need_blank_line=True)
            if hdrs is not None:
                return mime_leaf_types(hdrs.get("content-type", "text/plain"), inner, depth + 1, out)
    mt = sniff_mime(body)
    if mt and len(out) < MAX_MIME_LEAVES:
        out.append(mt)
    return out


def decode_prefix(data: bytes, encoding: str | None, limit: int = SNIFF_BYTES) -> bytes:
    """The first ``limit`` decoded bytes of a gzip/deflate-encoded body prefix (for sniffing only)."""
    enc = (encoding or "").strip().lower()
    if enc in ("gzip", "x-gzip"):
        modes = (31, 47)
    elif enc == "deflate":
        modes = (15, -15)                   # zlib wrapper, or raw deflate as some servers send
    else:
        return data
    for wbits in modes:
        try:
            out = zlib.decompressobj(wbits).decompress(data, limit)
            if out:
                return out
        except zlib.error:
            continue
    return data


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

class _Txn:
    """One request/response pair (a future http.log record)."""
    __slots__ = ("ts", "depth", "method", "uri", "target", "host", "referrer", "req_version", "user_agent",
                 "origin", "req_len", "resp_len", "status_code", "status_msg", "info_code", "info_msg",
                 "resp_version", "username", "proxied", "orig_fn", "orig_mime", "resp_fn", "resp_mime",
                 "req_ct", "resp_ct", "req_done", "resp_state", "emitted", "ja4h")

    def __init__(self, ts: float, depth: int):
        self.ts, self.depth = ts, depth
        self.method = self.uri = self.target = self.host = self.referrer = self.req_version = None
        self.user_agent = self.origin = self.username = self.proxied = None
        self.req_len = self.resp_len = 0
        self.status_code = self.status_msg = self.info_code = self.info_msg = self.resp_version = None
        self.orig_fn = self.orig_mime = self.resp_fn = self.resp_mime = None
        self.req_ct = self.resp_ct = None
        self.ja4h = None
        self.req_done = False
        self.resp_state = 0            # 0 nothing, 1 informational (1xx) seen, 2 final in progress, 3 done
        self.emitted = False


class _Msg:
    """The message being parsed on one direction."""
    __slots__ = ("txn", "ts", "headers", "hdr_bytes", "body_len", "head", "keep", "truncated",
                 "incomplete", "code", "chunked", "content_type", "content_encoding", "transfer_encoding",
                 "headers_done", "names")

    def __init__(self, txn: _Txn, ts: float):
        self.txn, self.ts = txn, ts
        self.headers: list = []        # [name_lower: str, value: bytes]
        self.names: list = []          # the header block's names as sent (JA4H), aligned with headers
        self.hdr_bytes = 0
        self.body_len = 0
        self.head = bytearray()
        self.keep = None               # bytearray when a body sink exists
        self.truncated = self.incomplete = self.chunked = self.headers_done = False
        self.code = None
        self.content_type = self.content_encoding = self.transfer_encoding = None


class _Dir:
    __slots__ = ("is_orig", "state", "buf", "msg", "remaining", "tainted")

    def __init__(self, is_orig: bool):
        self.is_orig = is_orig
        self.state = S_START
        self.buf = bytearray()
        self.msg: _Msg | None = None
        self.remaining = 0
        self.tainted = False           # the next line starts mid-line (after a gap): never a start line


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------

def _parse_request_line(line: bytes):
    """(method, target, version|None) or None.  Linear time on hostile lines."""
    line = line.strip()
    i = 0
    n = len(line)
    while i < n and line[i] not in b" \t":
        i += 1
    method = line[:i]
    if not method or not _TOKEN_RE.match(method):
        return None
    rest = line[i:].strip()
    version = None
    k = max(rest.rfind(b" "), rest.rfind(b"\t"))
    tail = rest[k + 1:]
    if tail.startswith(b"HTTP/"):
        version = tail[5:]
        rest = rest[:max(k, 0)].strip()
        if not _VERSION_RE.match(version):
            return None
    elif not rest:
        return None
    return method, rest, version


def _parse_status_line(line: bytes):
    """(version, code, reason) of ``HTTP/x.y NNN reason`` or None.  Linear time."""
    if not line.startswith(b"HTTP/"):
        return None
    parts = line.split(None, 2)
    if len(parts) < 2:
        return None
    version, code = parts[0][5:], parts[1]
    if not _VERSION_RE.match(version) or len(code) != 3 or not code.isdigit():
        return None
    return version, int(code), parts[2].strip() if len(parts) > 2 else b""


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        d = bytes(data).lstrip(b"\r\n")
        if not is_orig:
            return bool(re.match(rb"HTTP/1\.\d(?:[ \t]+\d{3}|\s*$)", d[:32]))
        nl = d.find(b"\n")
        line = d if nl < 0 else d[:nl]
        r = _parse_request_line(line)
        if r is None:
            return False
        method, target, version = r
        if method.decode("ascii") not in METHODS:
            # Any RFC 9110 token is a method (WebDAV, vendor methods such as CCM_POST): Zeek's
            # parser takes them all.  Without a registered name, ask for the whole request line
            # with an HTTP/1.x version and a target in one of the four RFC 9112 forms.
            return (version is not None and version.startswith(b"1.") and b" " not in target
                    and (target.startswith((b"/", b"http://", b"https://")) or target == b"*"
                         or _AUTHORITY_RE.match(target) is not None))
        if version is not None:
            return version.startswith(b"1.")
        if nl >= 0:                         # HTTP/0.9 simple request: "GET /path"
            return target.startswith(b"/") and b" " not in target
        return target.startswith((b"/", b"http://", b"https://", b"*")) or method == b"CONNECT"
    except Exception:                       # probes never raise
        return False


# ---------------------------------------------------------------------------
# Analyzer
# ---------------------------------------------------------------------------

class Analyzer(_Base):
    NAME = NAME
    max_body = 1 << 20                  # bytes of each response body kept for sink.body()
    # bytes of each request body kept: uploads are what leaves a site, and an archive or a document
    # is unreadable without its end (a zip's central directory), so more of a request is kept
    max_request_body = 8 << 20

    def __init__(self, ctx):
        super().__init__(ctx)
        self._dirs = (_Dir(False), _Dir(True))   # index by is_orig
        self._txns: list[_Txn] = []              # not yet written, in request order
        self._depth = 0
        self._confirmed = False
        self._last_host = None
        self._body_cb = getattr(ctx.sink, "body", None) if ctx.sink is not None else None
        # every body byte / hole as it passes, whatever max_body keeps (files: whole-file hashes)
        self._data_cb = getattr(ctx.sink, "body_data", None) if ctx.sink is not None else None
        self._gap_cb = getattr(ctx.sink, "body_gap", None) if ctx.sink is not None else None
        # every request, body or not: its query string, cookies and custom headers carry data too
        self._request_cb = getattr(ctx.sink, "request", None) if ctx.sink is not None else None
        self._ts = ctx.ts
        # After CONNECT + 2xx or 101 Switching Protocols: True, and the bytes of each direction
        # that arrived past the HTTP exchange (already handed to us), for a dispatcher that
        # wants to run another analyzer on the tunnelled stream.
        self.tunnel = False
        self.tunnel_leftover = {True: b"", False: b""}
        self.tunnel_info = {}           # 101: the Upgrade token, Sec-WebSocket-Extensions and -Protocol answered

    # -- stream input --------------------------------------------------------------
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        d = self._dirs[1 if is_orig else 0]
        if d.state == S_TUNNEL or not data:
            return
        self._ts = ts
        self._feed(d, bytes(data), ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        d = self._dirs[1 if is_orig else 0]
        if d.state == S_TUNNEL or length <= 0:
            return
        self._ts = ts
        st, m = d.state, d.msg
        if st == S_BODY_LEN and length < d.remaining:
            self._skip_body(d, length)
            d.remaining -= length
            return
        if st == S_BODY_LEN and length == d.remaining:
            self._skip_body(d, length)
            self._end_message(d, ts)
            return
        if st == S_CHUNK_DATA and length <= d.remaining:
            self._skip_body(d, length)
            d.remaining -= length
            if d.remaining == 0:
                d.state = S_CHUNK_CRLF
            return
        if st == S_BODY_EOF:
            self._skip_body(d, length)
            return
        # lost sync: close what we had, then look for the next start line
        if m is not None:
            self._weird("http.content_gap", f"{'orig' if d.is_orig else 'resp'} {length} bytes", ts)
            m.incomplete = True
            if st in (S_BODY_LEN, S_CHUNK_DATA):
                m.body_len += d.remaining
            self._end_message(d, ts)
        d.buf.clear()
        d.state = S_RESYNC
        d.tainted = True

    def done(self, ts: float) -> None:
        self._ts = ts
        for d in self._dirs:
            st = d.state
            if d.msg is not None:
                if st == S_HEADERS or (st in _BODY_STATES and st != S_BODY_EOF):
                    d.msg.incomplete = True
                self._end_message(d, ts)
        for t in list(self._txns):
            self._emit(t)
        self._txns.clear()

    def wants_more(self) -> bool:
        return not (self._dirs[0].state == S_TUNNEL and self._dirs[1].state == S_TUNNEL)

    # -- the byte loop ---------------------------------------------------------------
    def _feed(self, d: _Dir, data: bytes, ts: float) -> None:
        off, n = 0, len(data)
        while off < n:
            st = d.state
            if st in _LINE_STATES:
                if st == S_START and not d.is_orig and self._http09_reply(d, data, off, ts):
                    continue
                nl = data.find(b"\n", off)
                if nl < 0:
                    d.buf += data[off:]
                    self._check_partial(d, ts)
                    return
                if d.buf:
                    d.buf += data[off:nl]
                    line = bytes(d.buf)
                    d.buf.clear()
                else:
                    line = data[off:nl]
                off = nl + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                self._line(d, line, ts)
            elif st == S_BODY_LEN:
                take = min(d.remaining, n - off)
                self._body(d, data[off:off + take])
                off += take
                d.remaining -= take
                if d.remaining == 0:
                    self._end_message(d, ts)
            elif st == S_CHUNK_DATA:
                take = min(d.remaining, n - off)
                self._body(d, data[off:off + take])
                off += take
                d.remaining -= take
                if d.remaining == 0:
                    d.state = S_CHUNK_CRLF
            elif st == S_BODY_EOF:
                self._body(d, data[off:] if off else data)
                return
            else:                               # tunnel: keep what followed the HTTP exchange
                if len(self.tunnel_leftover[d.is_orig]) < 65536:
                    self.tunnel_leftover[d.is_orig] += data[off:off + 65536]
                return

    def _http09_reply(self, d: _Dir, data: bytes, off: int, ts: float) -> bool:
        """At a response start: a reply to an HTTP/0.9 request has no status line."""
        t = self._next_response_txn()
        if t is None or t.req_version != "0.9" or len(d.buf) >= 5:
            return False
        head = (bytes(d.buf) + data[off:off + 5])[:5]
        if b"HTTP/".startswith(head.lstrip(b"\r\n")):
            return False                        # a status line (or may still become one)
        t.resp_state = 2
        t.status_code, t.status_msg, t.resp_version = 0, "<empty>", "0.9"
        m = d.msg = self._new_msg(t, ts)
        m.headers_done = True
        d.state = S_BODY_EOF
        self._confirm()
        if d.buf:
            early = bytes(d.buf)
            d.buf.clear()
            self._body(d, early)
        return True

    def _check_partial(self, d: _Dir, ts: float) -> None:
        """Caps on a line still waiting for its end."""
        st, blen = d.state, len(d.buf)
        if st in (S_START, S_HEADERS):
            used = blen + (d.msg.hdr_bytes if (st == S_HEADERS and d.msg) else 0)
            if used > MAX_HEADER_BLOCK:
                self._weird("http.oversized_headers", f"header block over {MAX_HEADER_BLOCK} bytes", ts)
                self._lose_sync(d, ts)
        elif st in (S_CHUNK_SIZE, S_CHUNK_CRLF):
            if blen > MAX_CHUNK_LINE:
                self._weird("http.bad_chunk_size", "chunk size line too long", ts)
                self._lose_sync(d, ts)
        elif st == S_TRAILERS:
            if blen + d.msg.hdr_bytes > MAX_HEADER_BLOCK:
                self._weird("http.oversized_headers", "trailers too long", ts)
                self._lose_sync(d, ts)
        elif st == S_RESYNC and blen > MAX_RESYNC_LINE:
            d.buf.clear()
            d.tainted = True

    def _lose_sync(self, d: _Dir, ts: float) -> None:
        m = d.msg
        if m is not None:
            m.incomplete = True
            self._end_message(d, ts)
        d.buf.clear()
        d.state = S_RESYNC
        d.tainted = True

    # -- lines -------------------------------------------------------------------------
    def _line(self, d: _Dir, line: bytes, ts: float) -> None:
        st = d.state
        if st == S_HEADERS:
            m = d.msg
            m.hdr_bytes += len(line) + 2
            if not line.strip():
                self._headers_complete(d, ts)
                return
            if m.hdr_bytes > MAX_HEADER_BLOCK:
                self._weird("http.oversized_headers", f"header block over {MAX_HEADER_BLOCK} bytes", ts)
                self._lose_sync(d, ts)
                return
            self._header_line(m.headers, line, ts, m.names)
        elif st == S_START:
            if not line.strip():
                return                          # stray CRLF between messages (RFC 9112 2.2)
            if d.is_orig:
                self._request_line(d, line, ts)
            else:
                self._status_line(d, line, ts)
        elif st == S_CHUNK_SIZE:
            self._chunk_size(d, line, ts)
        elif st == S_CHUNK_CRLF:
            if line.strip():
                self._weird("http.chunk_missing_crlf", "", ts)
                d.state = S_CHUNK_SIZE
                self._chunk_size(d, line, ts)
            else:
                d.state = S_CHUNK_SIZE
        elif st == S_TRAILERS:
            m = d.msg
            m.hdr_bytes += len(line) + 2
            if not line.strip():
                self._end_message(d, ts)
            elif m.hdr_bytes > MAX_HEADER_BLOCK:
                self._weird("http.oversized_headers", "trailers too long", ts)
                self._lose_sync(d, ts)
            else:
                self._header_line(m.headers, line, ts)
        elif st == S_RESYNC:
            d.tainted = False               # a cut line is only accepted if it is a whole start line
            if d.is_orig:
                r = _parse_request_line(line)
                if r and r[2] is not None and r[2].startswith(b"1."):   # any token method, HTTP/1.x
                    d.state = S_START
                    self._request_line(d, line, ts)
            elif _parse_status_line(line) is not None:
                d.state = S_START
                self._status_line(d, line, ts)

    def _header_line(self, headers: list, line: bytes, ts: float, names: list | None = None) -> None:
        if line[:1] in (b" ", b"\t"):
            if headers:                         # obsolete line folding
                headers[-1][1] = headers[-1][1] + b" " + line.strip()
            return
        name, colon, value = line.partition(b":")
        name = name.strip()
        if not colon or not name or not _TOKEN_RE.match(name[:32]) or len(name) > 256:
            self._weird("http.bad_header_line", _s(line[:64]), ts)
            return
        text = name.decode("latin-1")
        headers.append([text.lower(), value.strip()])
        if names is not None:
            names.append(text)

    def _request_line(self, d: _Dir, line: bytes, ts: float) -> None:
        r = _parse_request_line(line)
        if r is None:
            self._weird("http.bad_request_line", _s(line[:80]), ts)
            d.state = S_RESYNC
            return
        method_b, target, version = r
        method = method_b.decode("ascii", "replace")
        # Any token is a method (RFC 9110 section 9.1; _parse_request_line checked the token grammar).
        self._confirm()
        if len(self._txns) >= MAX_PENDING:
            self._weird("http.excessive_pipelining", f"{len(self._txns)} pending", ts)
            for t in self._txns[:len(self._txns) // 2]:
                self._emit(t)
        self._depth += 1
        t = _Txn(ts, self._depth)
        t.method = method
        t.uri = unescape_uri(target)
        t.target = target               # as sent (percent-encoding kept): the content stage splits it
        t.req_version = version.decode("ascii") if version is not None else "0.9"
        self._txns.append(t)
        m = d.msg = self._new_msg(t, ts)
        m.hdr_bytes = len(line) + 2
        if version is None:                     # HTTP/0.9: no headers, no body
            m.headers_done = True
            self._end_message(d, ts)
            return
        d.state = S_HEADERS

    def _next_response_txn(self) -> _Txn | None:
        for t in self._txns:
            if t.resp_state < 2:
                return t
        return None

    def _status_line(self, d: _Dir, line: bytes, ts: float) -> None:
        mm = _parse_status_line(line)
        if mm is None:
            self._weird("http.bad_status_line", _s(line[:80]), ts)
            d.state = S_RESYNC
            return
        self._confirm()
        t = self._next_response_txn()
        if t is None:
            self._weird("http.unmatched_response", _s(line[:80]), ts)
            self._depth += 1
            t = _Txn(ts, self._depth)
            t.req_done = True
            self._txns.append(t)
        version, code, reason_b = mm
        reason = _s(reason_b) or "<empty>"
        t.status_code, t.status_msg, t.resp_version = code, reason, version.decode("ascii")
        if 100 <= code <= 199:
            t.info_code, t.info_msg = code, reason
            t.resp_state = 1
        else:
            t.resp_state = 2
        m = d.msg = self._new_msg(t, ts)
        m.code = code
        m.hdr_bytes = len(line) + 2
        d.state = S_HEADERS

    def _new_msg(self, t: _Txn, ts: float) -> _Msg:
        m = _Msg(t, ts)
        if self._body_cb is not None and self.max_body > 0:
            m.keep = bytearray()
        return m

    # -- headers -> body framing -----------------------------------------------------
    def _apply_headers(self, d: _Dir, m: _Msg, ts: float) -> None:
        """Copy what the log needs from the header block into the transaction."""
        t = m.txn
        m.headers_done = True
        filenames = []
        te = None
        for name, raw in m.headers:
            if name == "transfer-encoding":
                te = raw if te is None else te + b", " + raw
            elif name == "content-type":
                m.content_type = _s(raw)
            elif name == "content-encoding":
                m.content_encoding = _s(raw)
            elif name == "content-disposition":
                fn = header_param(_s(raw), "filename")
                if fn:
                    filenames.append(fn)
            if d.is_orig:
                if name == "host":
                    t.host = _s(raw)
                elif name == "referer":
                    t.referrer = _s(raw)
                elif name == "user-agent":
                    t.user_agent = _s(raw)
                elif name == "origin":
                    t.origin = _s(raw)
                elif name in ("authorization", "proxy-authorization"):
                    self._basic_auth(t, raw)
                elif name in PROXY_HEADERS:
                    t.proxied = (t.proxied or []) + [f"{name.upper()} -> {_s(raw)}"]
        if te is not None:
            m.transfer_encoding = _s(te)
        if d.is_orig:
            t.req_ct = m.content_type
            if t.method is not None:
                t.ja4h = ja4plus.ja4h(t.method, t.req_version,
                                      ((n, raw.decode("latin-1")) for n, (_low, raw) in zip(m.names, m.headers)))
            if filenames:
                t.orig_fn = filenames
            if t.host:
                h = host_without_port(t.host)
                if h and h != self._last_host:
                    self._last_host = h
                    self.ctx.hostname("http_host", h, ts)
        elif m.code is not None and m.code >= 200:
            t.resp_ct = m.content_type
            if filenames:
                t.resp_fn = filenames

    def _headers_complete(self, d: _Dir, ts: float) -> None:
        """The blank line after the headers: apply them, then frame the body."""
        m, t = d.msg, d.msg.txn
        self._apply_headers(d, m, ts)
        cl_values = [raw for name, raw in m.headers if name == "content-length"]
        te = m.transfer_encoding.encode("latin-1", "replace") if m.transfer_encoding is not None else None

        # framing (RFC 9112 section 6.3)
        if d.is_orig:
            if t.method == "CONNECT":
                self._end_message(d, ts)
                return
        else:
            code = m.code
            req_method = t.method
            if code == 101:
                hdr = {name: raw for name, raw in m.headers
                       if name in ("upgrade", "sec-websocket-extensions", "sec-websocket-protocol")}
                self.tunnel_info = {"upgrade": _s(hdr.get("upgrade", b"")).strip().lower(),
                                    "extensions": _s(hdr.get("sec-websocket-extensions", b"")),
                                    "subprotocol": _s(hdr.get("sec-websocket-protocol", b"")).strip().lower()}
                self._end_message(d, ts)
                self._tunnel(ts)
                return
            if 100 <= code <= 199 or code in (204, 304) or req_method == "HEAD":
                self._end_message(d, ts)
                return
            if req_method == "CONNECT" and 200 <= code <= 299:
                self._end_message(d, ts)
                self._tunnel(ts)
                return
        if te is not None:
            last = te.split(b",")[-1].strip().lower()
            if last == b"chunked":
                m.chunked = True
                d.state = S_CHUNK_SIZE
                return
            if d.is_orig:                       # request with a non-chunked coding: unframed
                self._weird("http.bad_transfer_encoding", _s(te[:64]), ts)
                self._end_message(d, ts)
                d.state = S_RESYNC
                return
            d.state = S_BODY_EOF
            return
        if cl_values:
            vals = set()
            for raw in cl_values:
                for part in raw.split(b","):
                    part = part.strip()
                    vals.add(int(part) if part.isdigit() and len(part) <= 18 else -1)
            if len(vals) == 1 and -1 not in vals:
                n = vals.pop()
                if n == 0:
                    self._end_message(d, ts)
                else:
                    d.remaining = n
                    d.state = S_BODY_LEN
                return
            self._weird("http.bad_content_length", _s(b",".join(cl_values)[:64]), ts)
        if d.is_orig:
            self._end_message(d, ts)
        else:
            d.state = S_BODY_EOF

    def _basic_auth(self, t: _Txn, raw: bytes) -> None:
        parts = raw.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != b"basic":
            return
        try:
            userpass = base64.b64decode(parts[1].strip() + b"==", validate=False)
        except Exception:
            userpass = b""
        user, colon, _pw = userpass.partition(b":")
        t.username = _s(user) if colon else f"<problem-decoding> ({_s(raw[:64])})"   # never the password

    def _chunk_size(self, d: _Dir, line: bytes, ts: float) -> None:
        size = line.split(b";", 1)[0].strip()
        if not size or not _HEX_RE.match(size) or len(size) > 15:
            self._weird("http.bad_chunk_size", _s(line[:32]), ts)
            d.msg.incomplete = True
            self._end_message(d, ts)
            d.state = S_RESYNC
            d.tainted = False
            return
        n = int(size, 16)
        if n == 0:
            d.state = S_TRAILERS
        else:
            d.remaining = n
            d.state = S_CHUNK_DATA

    def _tunnel(self, ts: float) -> None:
        self.tunnel = True
        for d in self._dirs:
            if d.msg is not None:
                self._end_message(d, ts)
            d.state = S_TUNNEL
            if d.buf:
                self.tunnel_leftover[d.is_orig] += bytes(d.buf)
            d.buf = bytearray()
        for t in list(self._txns):          # nothing more will come: write everything now
            self._emit(t)

    # -- bodies ------------------------------------------------------------------------
    def _body(self, d: _Dir, chunk: bytes) -> None:
        m = d.msg
        if m is None or not chunk:
            return
        m.body_len += len(chunk)
        if self._data_cb is not None:
            self._data_cb(self.ctx, d.is_orig, chunk)
        if len(m.head) < SNIFF_BYTES:
            m.head += chunk[:SNIFF_BYTES - len(m.head)]
        if m.keep is not None and not m.truncated:
            room = (self.max_request_body if d.is_orig else self.max_body) - len(m.keep)
            if len(chunk) > room:
                m.keep += chunk[:room]
                m.truncated = True
            else:
                m.keep += chunk

    def _skip_body(self, d: _Dir, length: int) -> None:
        m = d.msg
        if m is None:
            return
        if not m.incomplete:
            self._weird("http.content_gap", f"{length} bytes missing in {'request' if d.is_orig else 'response'} body", self._ts)
        m.incomplete = True
        m.body_len += length
        if self._gap_cb is not None:
            self._gap_cb(self.ctx, d.is_orig, length)
        if m.keep is not None:
            m.truncated = True              # the kept prefix stops at the hole

    def _end_message(self, d: _Dir, ts: float) -> None:
        m = d.msg
        d.msg = None
        if d.state != S_TUNNEL:
            d.state = S_START
        d.remaining = 0
        if m is None:
            return
        t = m.txn
        if not m.headers_done:
            self._apply_headers(d, m, ts)
        if d.is_orig:
            t.req_len = m.body_len
            if m.body_len:
                t.orig_mime = self._mime_types(m)
            t.req_done = True
            if self._request_cb is not None and t.method is not None:
                self._request_cb(self.ctx, {"protocol": "http", "direction": "request", "ts": m.ts,
                                            "method": t.method, "target": _s(t.target or b""), "host": t.host,
                                            "content_type": m.content_type, "headers": _headers(m)})
        else:
            if m.code is not None and 100 <= m.code <= 199 and m.code != 101:
                t.resp_state = 1
            else:
                t.resp_len = m.body_len
                if m.body_len:
                    t.resp_mime = self._mime_types(m)
                t.resp_state = 3
        if m.body_len and self._body_cb is not None:
            self._deliver_body(d.is_orig, m, ts)
        if t.req_done and t.resp_state == 3:
            self._emit(t)

    def _mime_types(self, m: _Msg) -> list | None:
        src = bytes(m.keep) if m.keep is not None and len(m.keep) > len(m.head) else bytes(m.head)
        src = decode_prefix(src, m.content_encoding, max(len(src), SNIFF_BYTES))
        return mime_leaf_types(m.content_type, src) or None

    def _deliver_body(self, is_orig: bool, m: _Msg, ts: float) -> None:
        """sink.body(ctx, is_orig, info, body): the de-chunked body (content coding left as is)."""
        t = m.txn
        ct = m.content_type
        cl = [raw.strip() for name, raw in m.headers if name == "content-length"]
        info = {
            "protocol": "http",
            "direction": "request" if is_orig else "response",
            "ts": m.ts,
            "trans_depth": t.depth,
            "method": t.method,
            "uri": t.uri,
            "host": t.host,
            "status_code": None if is_orig else m.code,
            "content_type": ct,
            "content_encoding": m.content_encoding,
            "transfer_encoding": m.transfer_encoding,
            "boundary": boundary_of(ct) if ct and ct.lower().startswith("multipart/") else None,
            "filenames": t.orig_fn if is_orig else t.resp_fn,
            "mime_type": sniff_mime(decode_prefix(bytes(m.head), m.content_encoding)),
            "body_len": m.body_len,             # bytes on the wire (gaps included)
            "content_length": int(cl[0]) if len(cl) == 1 and cl[0].isdigit() and len(cl[0]) <= 18 and
            m.transfer_encoding is None else None,   # the framing length, when it framed the body
            "target": _s(t.target or b"") if is_orig else None,   # the request target as sent
            "headers": _headers(m),             # [(name lower-case, value)] (cloud upload APIs, gRPC)
            "truncated": m.truncated,           # body below is a prefix (budget or gap)
            "incomplete": m.incomplete,         # part of the body was never seen
        }
        body = bytes(m.keep) if m.keep is not None else b""
        m.keep = None
        self._body_cb(self.ctx, is_orig, info, body)

    # -- output ------------------------------------------------------------------------
    def _confirm(self) -> None:
        if not self._confirmed:
            self._confirmed = True
            self.ctx.confirm("http")

    def _weird(self, name: str, detail: str, ts: float) -> None:
        self.ctx.weird(name, detail, ts)

    def _emit(self, t: _Txn) -> None:
        if t.emitted:
            return
        t.emitted = True
        try:
            self._txns.remove(t)
        except ValueError:
            pass
        c = self.ctx
        self.ctx.emit(LOG, {
            "ts": t.ts,
            "uid": c.uid,
            "id.orig_h": c.orig_h,
            "id.orig_p": c.orig_p,
            "id.resp_h": c.resp_h,
            "id.resp_p": c.resp_p,
            "trans_depth": t.depth,
            "method": t.method,
            "host": t.host,
            "uri": t.uri,
            "referrer": t.referrer,
            "version": t.resp_version or t.req_version,
            "user_agent": t.user_agent,
            "origin": t.origin,
            "request_body_len": t.req_len,
            "response_body_len": t.resp_len,
            "status_code": t.status_code,
            "status_msg": t.status_msg,
            "info_code": t.info_code,
            "info_msg": t.info_msg,
            "username": t.username,
            "proxied": t.proxied,
            "orig_filenames": t.orig_fn,
            "orig_mime_types": t.orig_mime,
            "resp_filenames": t.resp_fn,
            "resp_mime_types": t.resp_mime,
            "req_content_type": t.req_ct,
            "resp_content_type": t.resp_ct,
            "ja4h": t.ja4h,
        })


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "http"}
PII_FIELDS = {"http": ("uri", "referrer")}
NAME_SOURCES = ("http_host",)      # the request's Host header
CONTENT = "bodies"                 # request bodies go to ctx.sink.body
