"""HTTP/2 in clear text (h2c), for DNS over HTTPS (RFC 8484) seen without TLS.

A minimal frame walker (RFC 9113 §4): the client connection preface
``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``, then frames of a 9-byte header --
24-bit length, type, flags, 31-bit stream identifier -- and a payload.  Only
what DoH needs is looked at:

* DATA (type 0): the payload (without padding, flag PADDED 0x8) is collected
  per stream and direction up to END_STREAM (flag 0x1); a body that parses as
  a DNS message goes to a ``dns.Analyzer`` of that stream (``datagram``), so
  ``dns.jsonl`` gets the query (POST) and the reply with its answers.  One DNS
  analyzer per stream: DoH uses transaction id 0, the stream pairs query and
  reply (a GET carries the query in the ``:path``, HPACK-coded -- usually
  Huffman -- which is not decoded: its reply is logged alone, with the
  question section as ``query``).
* HEADERS / RST_STREAM: END_STREAM flags and resets close a stream's DNS
  analyzer (its records are written then).
* everything else (SETTINGS, PING, WINDOW_UPDATE, PRIORITY, GOAWAY,
  CONTINUATION, PUSH_PROMISE, extensions) is skipped by its length.

Buffers are bounded: a frame is buffered only up to ``MAX_FRAME`` bytes (a
larger one is skipped as it streams by), a stream body up to ``MAX_BODY``,
and at most ``MAX_STREAMS`` streams are tracked at once.  A connection that
carried no DNS message within ``MAX_FRAMES_WITHOUT_DNS`` frames (gRPC, web
traffic) is no longer followed.

The service is ``http2`` (confirmed after the preface or a first SETTINGS
frame), plus ``dns`` from the DNS analyzers.  There is no log of its own.

Detection (``probe``): the client preface (or the start of it), or -- for a
stream joined after an HTTP/1.1 ``Upgrade: h2c`` / 101 exchange, where the
HTTP analyzer hands the rest of the connection back to detection -- a
SETTINGS frame on stream 0 as the first bytes.
"""
from __future__ import annotations

from collections import OrderedDict

from . import dns
from .base import Analyzer as _BaseAnalyzer
from .base import FlowContext

NAME = "http2"
LOG = None
# ---- outputs (read by inspector.outputs): no log of its own; this module's weird names ----
WEIRDS = {
    "http2.bad_padding": "a padded frame whose pad length exceeds the frame",
    "http2.content_gap": "bytes missing from the connection (capture loss); parsing stops",
    "http2.data_on_stream_0": "a DATA frame on stream 0",
    "http2.no_settings_first": "the connection preface is not followed by a SETTINGS frame",
    "http2.too_many_streams": "more open streams than the tracking limit",
}
# ---- end of outputs declarations ----
TRANSPORTS = ("tcp",)
PORTS = ()                      # content decides; 80 and friends stay http's hint

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_PADDED = 0x8

MAX_FRAME = 65536 + 1024        # frames buffered whole (a DNS message is at most 65535 bytes)
MAX_BODY = 65535                # DATA bytes kept per stream and direction
MAX_STREAMS = 128               # streams with a DNS analyzer or a body being collected
MAX_SETTINGS = 64 * 6           # a first SETTINGS frame larger than this is not believed
MAX_FRAMES_WITHOUT_DNS = 400    # frames (both directions) before giving up on a connection without DoH


def _settings_header(data: bytes) -> bool:
    """A SETTINGS frame header (not an ACK) on stream 0 at the start of ``data``."""
    if len(data) < 9:
        return False
    ln = (data[0] << 16) | (data[1] << 8) | data[2]
    return (data[3] == SETTINGS and data[4] == 0 and ln % 6 == 0 and ln <= MAX_SETTINGS
            and data[5:9] == b"\x00\x00\x00\x00")


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        data = bytes(data[:64])
        if is_orig and len(data) >= 8 and (data.startswith(PREFACE) or PREFACE.startswith(data)):
            return True
        return _settings_header(data)
    except Exception:
        return False


class _Stream:
    __slots__ = ("body", "ended", "big", "dns")

    def __init__(self):
        self.body = {True: bytearray(), False: bytearray()}
        self.ended = {True: False, False: False}
        self.big = {True: False, False: False}     # body beyond MAX_BODY: not DNS
        self.dns = None                            # dns.Analyzer once a body was DNS


class _Dir:
    __slots__ = ("buf", "preface", "skip", "frames", "lost")

    def __init__(self, is_orig: bool):
        self.buf = bytearray()
        self.preface = is_orig      # the client may (must) start with the preface
        self.skip = 0               # payload bytes of an oversized frame still to skip
        self.frames = 0
        self.lost = False           # a gap: frame boundaries are gone for good


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._dirs = {True: _Dir(True), False: _Dir(False)}
        self._streams: OrderedDict[int, _Stream] = OrderedDict()
        self._confirmed = False
        self._weirded: set[str] = set()
        self._dns_weirded: set = set()             # shared by the streams' DNS analyzers
        self._done = False
        self.dns_messages = 0

    # -- input ---------------------------------------------------------------
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        d = self._dirs[is_orig]
        if self._done or d.lost or not data:
            return
        data = bytes(data)
        if d.skip:
            n = min(d.skip, len(data))
            d.skip -= n
            data = data[n:]
            if not data:
                return
        d.buf += data
        if d.preface:
            if len(d.buf) < len(PREFACE) and PREFACE.startswith(bytes(d.buf)):
                return
            d.preface = False
            if d.buf.startswith(PREFACE):
                del d.buf[:len(PREFACE)]
                self._confirm()
        self._frames(is_orig, d, ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        d = self._dirs[is_orig]
        if not d.lost:
            d.lost = True
            d.buf = bytearray()
            self._weird("http2.content_gap", "%s: %d bytes missing" % ("orig" if is_orig else "resp", length),
                        ts)
            if self._dirs[not is_orig].lost:
                self.done(ts)

    def wants_more(self) -> bool:
        # The dispatcher drops a TCP analyzer that wants no more without calling done():
        # everything is flushed before this turns False.
        return not self._done

    def done(self, ts: float) -> None:
        if self._done:
            return
        self._done = True
        for sid in list(self._streams):
            self._close(sid, ts, flush=True)

    # -- frames ----------------------------------------------------------------
    def _frames(self, is_orig: bool, d: _Dir, ts: float) -> None:
        buf = d.buf
        while len(buf) >= 9:
            ln = (buf[0] << 16) | (buf[1] << 8) | buf[2]
            ftype, flags = buf[3], buf[4]
            sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            if d.frames == 0 and ftype != SETTINGS:
                # Both endpoints start with SETTINGS (RFC 9113 §3.4): anything else is not HTTP/2.
                self._weird("http2.no_settings_first", "frame type %d first from the %s" %
                            (ftype, "client" if is_orig else "server"), ts)
                d.lost = True
                d.buf = bytearray()
                if self._dirs[not is_orig].lost:
                    self.done(ts)
                return
            if ln > MAX_FRAME:
                # Too large to buffer: skip it as it streams by (a body this large is not DNS).
                if ftype == DATA:
                    st = self._stream(sid)
                    if st is not None:
                        st.big[is_orig] = True
                        if flags & FLAG_END_STREAM:
                            self._end(sid, is_orig, ts)
                d.frames += 1
                have = len(buf) - 9
                if have >= ln:
                    del buf[:9 + ln]
                    continue
                d.skip = ln - have
                buf.clear()
                return
            if len(buf) < 9 + ln:
                return
            payload = bytes(buf[9:9 + ln])
            del buf[:9 + ln]
            d.frames += 1
            self._frame(is_orig, ftype, flags, sid, payload, ts)
            if self._done:
                return
            if not self.dns_messages and d.frames + self._dirs[not is_orig].frames > MAX_FRAMES_WITHOUT_DNS:
                self.done(ts)                      # not DoH: stop following it
                return

    def _frame(self, is_orig: bool, ftype: int, flags: int, sid: int, payload: bytes, ts: float) -> None:
        if ftype == SETTINGS:
            if sid == 0 and len(payload) % 6 == 0:
                self._confirm()
            return
        if ftype == DATA:
            if sid == 0:
                self._weird("http2.data_on_stream_0", "", ts)
                return
            if flags & FLAG_PADDED:
                if not payload or payload[0] > len(payload) - 1:
                    self._weird("http2.bad_padding", "", ts)
                    return
                payload = payload[1:len(payload) - payload[0]]
            st = self._stream(sid)
            if st is None:
                return
            if not st.big[is_orig]:
                body = st.body[is_orig]
                if len(body) + len(payload) > MAX_BODY:
                    st.big[is_orig] = True
                    st.body[is_orig] = bytearray()
                else:
                    body += payload
            if flags & FLAG_END_STREAM:
                self._end(sid, is_orig, ts)
        elif ftype == HEADERS:
            if sid and flags & FLAG_END_STREAM:
                self._stream(sid)
                self._end(sid, is_orig, ts)
        elif ftype == RST_STREAM:
            if sid in self._streams:
                self._close(sid, ts, flush=True)

    # -- streams ---------------------------------------------------------------
    def _stream(self, sid: int) -> _Stream | None:
        st = self._streams.get(sid)
        if st is None:
            if len(self._streams) >= MAX_STREAMS:
                old = next(iter(self._streams))
                self._weird("http2.too_many_streams", "more than %d open streams" % MAX_STREAMS, None)
                self._close(old, None, flush=True)
            st = self._streams[sid] = _Stream()
        return st

    def _end(self, sid: int, is_orig: bool, ts: float) -> None:
        """END_STREAM from one side: its body is complete."""
        st = self._streams.get(sid)
        if st is None or st.ended[is_orig]:
            return
        st.ended[is_orig] = True
        self._body(st, is_orig, ts)
        if st.ended[True] and st.ended[False]:
            self._close(sid, ts, flush=False)

    def _body(self, st: _Stream, is_orig: bool, ts: float | None) -> None:
        body = bytes(st.body[is_orig])
        st.body[is_orig] = bytearray()
        if st.big[is_orig] or len(body) < 12 or not dns.probe_message(body, True):
            return
        if st.dns is None:
            st.dns = dns.Analyzer(self.ctx)
            st.dns._weirded = self._dns_weirded    # one weird of a kind per connection
        self.dns_messages += 1
        st.dns.datagram(is_orig, body, ts if ts is not None else self.ctx.ts)

    def _close(self, sid: int, ts: float | None, flush: bool) -> None:
        st = self._streams.pop(sid, None)
        if st is None:
            return
        if flush:                                  # reset or connection end: what was collected
            for is_orig in (True, False):
                if not st.ended[is_orig] and st.body[is_orig]:
                    self._body(st, is_orig, ts)
        if st.dns is not None:
            st.dns.done(ts if ts is not None else self.ctx.ts)

    # -- misc ------------------------------------------------------------------
    def _confirm(self) -> None:
        if not self._confirmed:
            self._confirmed = True
            self.ctx.confirm(NAME)

    def _weird(self, name: str, detail: str, ts: float | None) -> None:
        if name not in self._weirded:
            self._weirded.add(name)
            self.ctx.weird(name, detail, ts)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "http2", "doh": "http2"}
CONTENT = "raw"                    # frames are not parsed for bodies: the leaving stream is read as is
