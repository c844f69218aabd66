"""WebSocket (RFC 6455) after an HTTP/1.1 Upgrade, with permessage-deflate (RFC 7692).

There is no probe of its own: frames carry no magic, so a connection becomes WebSocket only when
the HTTP analyzer saw the handshake (a request with ``Upgrade: websocket`` answered by 101
Switching Protocols).  The dispatcher then starts this analyzer on the rest of the connection
(``HTTP_UPGRADE``) and hands it the handshake's negotiated extensions (``upgraded(info)``).

Frames (RFC 6455 section 5.2)::

    byte 0: FIN, RSV1, RSV2, RSV3, opcode (4 bits)      0 continuation, 1 text, 2 binary,
                                                          8 close, 9 ping, 10 pong
    byte 1: MASK, payload length (7 bits)               126: 16-bit length follows,
                                                          127: 64-bit length follows
    [masking key, 4 bytes, when MASK]                   client frames are masked (5.3),
    payload                                             server frames are not

A message is one text/binary frame, or a first frame without FIN followed by continuation
frames up to one with FIN; control frames may come between them (5.4).  With permessage-deflate
negotiated (``Sec-WebSocket-Extensions`` of the 101 response), RSV1 on a message's first frame
says it is compressed: the payloads joined, plus ``00 00 ff ff``, inflate as raw DEFLATE (RFC 7692
section 7.2.2); unless ``client_no_context_takeover`` / ``server_no_context_takeover`` was
agreed, the sliding window carries over from one message to the next, per direction.

Every complete message goes to the content stage (``ctx.sink.body``, ``source: websocket``) in
both directions; the dispatcher inspects the one that leaves the site.  When the 101 agreed the
``mqtt`` subprotocol (``Sec-WebSocket-Protocol: mqtt``, MQTT over WebSockets), the messages are
MQTT packets: they go to an MQTT analyzer on the same connection (service ``mqtt`` too,
``mqtt.jsonl`` records, PUBLISH payloads inspected with their topic).  Messages are not files
(files.jsonl).  Bounded: a message over ``MAX_MESSAGE`` bytes is inspected up to that size, an
inflated message stops at ``MAX_INFLATED`` bytes, frames are buffered up to ``MAX_MESSAGE``.
"""
from __future__ import annotations

import zlib

from . import mqtt
from .base import Analyzer as _BaseAnalyzer
from .base import FlowContext

NAME = "websocket"
TRANSPORTS = ("tcp",)
PORTS = ()
LOG = None
FIELDS = ()
# ---- outputs (read by inspector.outputs): no log of its own; this module's weird names ----
WEIRDS = {
    "websocket.bad_frame": "a frame against RFC 6455 (reserved opcode or RSV bit, bad control frame, stray continuation)",
    "websocket.unmasked_client_frame": "a client-to-server frame without a masking key (RFC 6455 5.1)",
    "websocket.masked_server_frame": "a server-to-client frame with a masking key (RFC 6455 5.1)",
    "websocket.inflate_error": "a permessage-deflate message that does not inflate",
    "websocket.content_gap": "bytes missing from the connection (capture loss); frame parsing stops",
}
# ---- end of outputs declarations ----

MAX_MESSAGE = 16 << 20          # bytes of one message kept for inspection
MAX_INFLATED = 64 << 20         # bytes one compressed message may inflate to
MAX_MESSAGES = 100_000          # messages per direction handed to the content stage

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
_DATA = (CONT, TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)
_TAIL = b"\x00\x00\xff\xff"


def probe(data: bytes, is_orig: bool) -> bool:
    """Never: a WebSocket connection is recognised by its HTTP handshake (``HTTP_UPGRADE``)."""
    return False


def unmask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` repeated (RFC 6455 5.3)."""
    if not key or not payload:
        return bytes(payload)
    n = len(payload)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def parse_frame(buf, p: int = 0):
    """One frame at ``buf[p:]`` -> (fin, rsv, opcode, masked, key, payload start, payload end) or None
    when incomplete.  ``payload end`` may lie past the buffer when the caller only wants the header."""
    n = len(buf)
    if n - p < 2:
        return None
    b0, b1 = buf[p], buf[p + 1]
    fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
    masked, ln = bool(b1 & 0x80), b1 & 0x7F
    q = p + 2
    if ln == 126:
        if n - q < 2:
            return None
        ln = int.from_bytes(buf[q:q + 2], "big")
        q += 2
    elif ln == 127:
        if n - q < 8:
            return None
        ln = int.from_bytes(buf[q:q + 8], "big") & 0x7FFF_FFFF_FFFF_FFFF
        q += 8
    key = b""
    if masked:
        if n - q < 4:
            return None
        key = bytes(buf[q:q + 4])
        q += 4
    return fin, rsv, opcode, masked, key, q, q + ln


def deflate_params(extensions: str | None) -> dict | None:
    """The permessage-deflate parameters of a ``Sec-WebSocket-Extensions`` value (the server's
    answer), or None when it was not agreed."""
    if not extensions:
        return None
    for ext in extensions.split(","):
        parts = [x.strip().lower() for x in ext.split(";")]
        if parts and parts[0] == "permessage-deflate":
            params = {}
            for x in parts[1:]:
                k, _, v = x.partition("=")
                params[k.strip()] = v.strip().strip('"')
            return params
    return None


class _Dir:
    __slots__ = ("buf", "opcode", "parts", "size", "compressed", "inflater", "messages", "dead", "skip",
                 "frame")

    def __init__(self):
        self.buf = bytearray()
        self.opcode = None          # opcode of the message being reassembled
        self.parts: list = []
        self.size = 0
        self.compressed = False
        self.inflater = None
        self.messages = 0
        self.dead = False
        self.skip = 0               # payload bytes of an oversized frame still to pass
        self.frame = None           # (fin, opcode) of that frame


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._dirs = {True: _Dir(), False: _Dir()}
        self.deflate = None                 # permessage-deflate parameters, when agreed
        self.inner = None                   # the MQTT analyzer of an "mqtt" subprotocol
        self.confirmed = False
        self._weirded: set = set()

    # -- the handshake, from the HTTP analyzer -------------------------------------------------
    def upgraded(self, info: dict) -> None:
        """``info``: the 101 response's ``extensions`` (Sec-WebSocket-Extensions)."""
        self.deflate = deflate_params(info.get("extensions"))
        if "mqtt" in (info.get("subprotocol") or "").replace(" ", "").split(","):
            self.inner = mqtt.Analyzer(self.ctx)
        if not self.confirmed:
            self.confirmed = True
            self.ctx.confirm(NAME)

    # -- input -------------------------------------------------------------------------------
    def wants_more(self) -> bool:
        return not (self._dirs[True].dead and self._dirs[False].dead)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        d = self._dirs[is_orig]
        if not d.dead:
            self._weird("websocket.content_gap", f"{length} bytes", ts)
        d.dead = True
        d.buf = bytearray()
        d.parts = []

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        d = self._dirs[is_orig]
        if d.dead or not data:
            return
        if d.skip:
            data = self._skip(d, is_orig, data, ts)
            if not data:
                return
        d.buf += data
        self._frames(d, is_orig, ts)

    def done(self, ts: float) -> None:
        for is_orig, d in self._dirs.items():
            if d.parts and not d.dead:      # a message cut by the end of the connection
                self._message(d, is_orig, ts, complete=False)
        if self.inner is not None:
            self.inner.done(ts)

    # -- frames ------------------------------------------------------------------------------
    def _frames(self, d: _Dir, is_orig: bool, ts: float) -> None:
        buf = d.buf
        p = 0
        while not d.dead:
            fr = parse_frame(buf, p)
            if fr is None:
                break
            fin, rsv, opcode, masked, key, start, end = fr
            if not self._check(d, is_orig, fin, rsv, opcode, masked, end - start, ts):
                d.dead = True
                break
            if end - start > MAX_MESSAGE or (opcode in _DATA and d.size + end - start > MAX_MESSAGE):
                # too large to keep whole: inspect what fits, let the rest pass by
                stop = min(end, len(buf))
                have = bytes(buf[start:stop])
                room = max(0, MAX_MESSAGE - d.size)
                self._payload(d, is_orig, opcode, rsv, unmask(have[:room], key) if masked else have[:room])
                d.frame = (fin, opcode)
                d.skip = end - stop
                p = stop
                if d.skip:
                    break
                self._end_frame(d, is_orig, fin, opcode, ts)
                continue
            if end > len(buf):
                break
            payload = bytes(buf[start:end])
            if masked:
                payload = unmask(payload, key)
            p = end
            if opcode in _CONTROL:
                continue                     # close, ping, pong: nothing that leaves as data
            self._payload(d, is_orig, opcode, rsv, payload)
            self._end_frame(d, is_orig, fin, opcode, ts)
        if d.dead:                          # frame boundaries lost: nothing more is read this way
            d.buf = bytearray()
            d.parts = []
            return
        del buf[:p]

    def _skip(self, d: _Dir, is_orig: bool, data: bytes, ts: float) -> bytes:
        k = min(d.skip, len(data))
        d.skip -= k
        if not d.skip:
            fin, opcode = d.frame
            self._end_frame(d, is_orig, fin, opcode, ts)
        return data[k:]

    def _check(self, d: _Dir, is_orig: bool, fin, rsv, opcode, masked, length, ts) -> bool:
        if opcode not in _DATA and opcode not in _CONTROL:
            self._weird("websocket.bad_frame", f"reserved opcode {opcode}", ts)
            return False
        if opcode in _CONTROL and (not fin or length > 125):
            self._weird("websocket.bad_frame", "fragmented or long control frame", ts)
            return False
        if opcode == CONT and d.opcode is None:
            self._weird("websocket.bad_frame", "continuation without a message", ts)
            return False
        if opcode in (TEXT, BINARY) and d.opcode is not None:
            self._weird("websocket.bad_frame", "new message inside a fragmented one", ts)
            return False
        if rsv & 0x3 or (rsv & 0x4 and (self.deflate is None or opcode in _CONTROL or opcode == CONT)):
            self._weird("websocket.bad_frame", f"RSV bits {rsv:03b} not negotiated", ts)
            return False
        if is_orig and not masked:
            self._weird("websocket.unmasked_client_frame", "", ts)
        elif not is_orig and masked:
            self._weird("websocket.masked_server_frame", "", ts)
        if not self.confirmed:
            self.confirmed = True
            self.ctx.confirm(NAME)
        return True

    def _payload(self, d: _Dir, is_orig: bool, opcode: int, rsv: int, payload: bytes) -> None:
        if opcode in (TEXT, BINARY):
            d.opcode = opcode
            d.compressed = bool(rsv & 0x4)
            d.parts = []
            d.size = 0
        if payload and d.size < MAX_MESSAGE:
            payload = payload[:MAX_MESSAGE - d.size]
            d.parts.append(payload)
            d.size += len(payload)

    def _end_frame(self, d: _Dir, is_orig: bool, fin: bool, opcode: int, ts: float) -> None:
        if fin and opcode in _DATA:
            self._message(d, is_orig, ts, complete=True)

    def _message(self, d: _Dir, is_orig: bool, ts: float, complete: bool) -> None:
        data = b"".join(d.parts)
        opcode, compressed = d.opcode, d.compressed
        d.opcode, d.parts, d.size, d.compressed = None, [], 0, False
        if compressed:
            data = self._inflate(d, is_orig, data, complete, ts)
            if data is None:
                return
        d.messages += 1
        if not data or d.messages > MAX_MESSAGES:
            return
        if self.inner is not None:
            self.inner.data(is_orig, data, ts)      # MQTT packets: PUBLISH payloads reach the sink
            return
        info = {"source": "websocket", "file": False,
                "content_type": "text/plain; charset=utf-8" if opcode == TEXT else None}
        self.ctx.sink.body(self.ctx, is_orig, info, data)

    def _inflate(self, d: _Dir, is_orig: bool, data: bytes, complete: bool, ts: float) -> bytes | None:
        side = "client" if is_orig else "server"
        reset = self.deflate is not None and f"{side}_no_context_takeover" in self.deflate
        if d.inflater is None or reset:
            d.inflater = zlib.decompressobj(-15)
        try:
            out = d.inflater.decompress(data + (_TAIL if complete else b""), MAX_INFLATED)
        except zlib.error as e:
            self._weird("websocket.inflate_error", str(e), ts)
            d.inflater = None
            return None
        if d.inflater.unconsumed_tail or d.inflater.eof:
            d.inflater = None   # past MAX_INFLATED (the rest is not read), or a final block: start afresh
        return out

    def _weird(self, name: str, detail: str, ts: float) -> None:
        if name not in self._weirded:
            self._weirded.add(name)
            self.ctx.weird(name, detail, ts)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "websocket"}
CONTENT = "bodies"                 # messages go to ctx.sink.body; frame bytes are not content
HTTP_UPGRADE = ("websocket",)      # the HTTP Upgrade token that hands a connection to this module
