"""MQTT 3.1 / 3.1.1 / 5 (TCP): detection, PUBLISH messages to the content stage, ``mqtt.jsonl``.

The probe wants a CONNECT packet from the client: type 0x10, a remaining
length varint, the protocol name ``MQTT`` (level 4/5) or ``MQIsdp`` (level 3)
and sane connect flags; or, for captures that start after the CONNECT
(long-lived IoT sessions), a run of well-formed control packets with a
plausible PUBLISH/SUBSCRIBE topic.  The analyzer confirms ``mqtt`` (on
CONNECT, or on a second well-formed packet run mid-stream) and, within a byte
budget, keeps the client id, whether a user name was sent, the CONNACK
return code and a bounded count of PUBLISH topics per direction
(``topics``: {(is_orig, topic): count}).

PUBLISH (MQTT 3.1.1 section 3.3, 5.0 section 3.3): fixed-header flags DUP, QoS (2 bits) and
RETAIN; the topic name (2-byte length + UTF-8); a packet identifier when QoS > 0; in MQTT 5 the
properties (a variable byte integer length, then the properties); the rest is the payload.  Each
PUBLISH is one ``mqtt.jsonl`` record (direction, QoS, retain, topic, payload length; never the
payload) and its payload goes to the content stage (``ctx.sink.body``, ``source: mqtt``), the topic
as context: a payload that is a bare value (``21.5``, ``anna@example.org``) is inspected as
``{"<last topic level>": value}``, so ``crm/customer/17/email`` names what the value is; JSON, CSV
or XML payloads are inspected as they are.  The protocol level comes from the CONNECT; a session
joined after its CONNECT is read as 3.1.1.
"""
from __future__ import annotations

import json
import re

from ..outputs.schema import BOOL, CONN_ID, INT, STRING, TIME, Field, Stream
from .base import PROBE_BYTES, Analyzer as _BaseAnalyzer, FlowContext

NAME = "mqtt"
TRANSPORTS = ("tcp",)
PORTS = (1883, 8883)
LOG = "mqtt"
# ---- outputs (read by inspector.outputs): the mqtt log's schema and this module's weird names ----
LOG_SCHEMA = Stream("mqtt", "MQTT PUBLISH messages, one record each (as Zeek's mqtt_publish.log, without the "
                            "payload)", (
    Field("ts", TIME, "time of the PUBLISH packet"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("from_client", BOOL, "sent by the client (the connection's originator)"),
    Field("client_id", STRING, "the client identifier of the CONNECT, when seen"),
    Field("protocol_level", INT, "MQTT protocol level of the CONNECT (3: 3.1, 4: 3.1.1, 5: 5.0)"),
    Field("qos", INT, "quality of service (0, 1 or 2)"),
    Field("retain", BOOL, "the retain flag"),
    Field("topic", STRING, "the topic name (e-mail addresses in it masked)"),
    Field("payload_len", INT, "payload bytes (the payload itself is inspected, never written)"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "mqtt.bad_packet": "an MQTT control packet that cannot be parsed",
}
# ---- end of outputs declarations ----

BYTE_BUDGET = 64 << 20             # per direction, then the analyzer stops
MAX_TOPICS = 256
MAX_PACKET = 8 << 20               # larger packets are skipped, not buffered
MAX_LOGGED = 100_000               # PUBLISH records written per connection
SCALAR_MAX = 1024                  # a payload up to this size on one line may be a bare value
_NUMERIC_LEVEL = re.compile(r"(?:[0-9]+|[0-9a-fA-F-]{16,}|[a-fA-F]*[0-9][0-9a-fA-F]*)\Z")    # ids: 17, uuids, a1f3

CONNECT, CONNACK, PUBLISH = 1, 2, 3


def varint(b: bytes, p: int) -> tuple[int, int] | None:
    """MQTT remaining length at p -> (value, offset after); None if incomplete/invalid."""
    v, mult = 0, 1
    for i in range(4):
        if p + i >= len(b):
            return None
        c = b[p + i]
        v += (c & 0x7F) * mult
        if not c & 0x80:
            return v, p + i + 1
        mult <<= 7
    raise ValueError("varint longer than 4 bytes")


def _str(b: bytes, p: int, end: int) -> tuple[bytes, int]:
    if p + 2 > end:
        raise ValueError("short string")
    n = (b[p] << 8) | b[p + 1]
    if p + 2 + n > end:
        raise ValueError("string overrun")
    return b[p + 2:p + 2 + n], p + 2 + n


def parse_connect(b: bytes) -> dict | None:
    """A CONNECT packet at the start of ``b`` (may be cut after the client id) -> dict, else None."""
    try:
        if len(b) < 12 or b[0] != 0x10:
            return None
        r = varint(b, 1)
        if r is None:
            return None
        rl, p = r
        if rl < 10:
            return None
        end = min(len(b), p + rl)
        name, p = _str(b, p, end)
        if p + 4 > end:
            return None
        level, flags = b[p], b[p + 1]
        if not ((name == b"MQTT" and level in (4, 5)) or (name == b"MQIsdp" and level == 3)):
            return None
        if flags & 0x01:                                   # reserved bit
            return None
        if (flags >> 3) & 3 == 3 or (not flags & 0x04 and flags & 0x38):   # will QoS 3 / will bits w/o will
            return None
        if flags & 0x40 and not flags & 0x80 and level < 5:  # password without user name (3.1.1)
            return None
        p += 4                                              # level, flags, keep-alive
        out = {"protocol": name.decode(), "level": level, "username": bool(flags & 0x80),
               "password": bool(flags & 0x40), "will": bool(flags & 0x04), "clean": bool(flags & 0x02),
               "client_id": None}
        if level == 5:
            pr = varint(b, p)
            if pr is None:
                return out
            plen, p = pr
            p += plen
        try:
            cid, p = _str(b, p, end)
            out["client_id"] = cid.decode("utf-8", "backslashreplace")
        except ValueError:
            pass
        return out
    except ValueError:
        return None


# Fixed-header flags each packet type must carry (None: PUBLISH, checked separately).
_FLAGS = {1: 0, 2: 0, 3: None, 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 9: 0, 10: 2, 11: 0, 12: 0, 13: 0, 14: 0, 15: 0}


def _topic_ok(t: bytes, wildcards: bool) -> bool:
    if not t or len(t) > 1024 or b"\x00" in t:
        return False
    if not wildcards and (b"+" in t or b"#" in t):
        return False
    try:
        s = t.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return s.isprintable()


def _midstream(b: bytes, truncated: bool) -> bool:
    """A capture that starts after CONNECT: the data must be a run of well-formed control
    packets (all complete, unless the data was cut by the probe window), with at least one
    PUBLISH/SUBSCRIBE carrying a plausible topic, or at least three packets."""
    p, n, packets, topics = 0, len(b), 0, 0
    while p < n:
        first = b[p]
        ptype, flags = first >> 4, first & 0x0F
        if ptype not in _FLAGS:
            return False
        want = _FLAGS[ptype]
        if want is not None and flags != want:
            return False
        r = varint(b, p + 1)
        if r is None:
            return truncated and packets > 0
        rl, q = r
        end = q + rl
        if ptype in (12, 13) and rl != 0:
            return False
        if ptype in (4, 5, 6, 7, 11) and rl < 2:
            return False
        if ptype == 2 and rl < 2:
            return False
        if ptype == 3:
            qos = (flags >> 1) & 3
            if qos == 3 or q + 2 > n:
                return False
            tl = (b[q] << 8) | b[q + 1]
            if tl + 2 + (2 if qos else 0) > rl or q + 2 + tl > n or not _topic_ok(b[q + 2:q + 2 + tl], False):
                return False
            topics += 1
        elif ptype in (8, 10):
            if q + 4 > n:
                return False
            tl = (b[q + 2] << 8) | b[q + 3]
            if tl + 4 > rl or q + 4 + tl > n or not _topic_ok(b[q + 4:q + 4 + tl], True):
                return False
            topics += 1
        if ptype == 1:
            return False                 # a CONNECT is handled by parse_connect
        packets += 1
        if end > n:
            return truncated and (topics > 0 or packets >= 3)
        p = end
    return topics > 0 or packets >= 3


def probe(data: bytes, is_orig: bool) -> bool:
    """CONNECT from the client, or (capture started mid-connection) a run of MQTT packets."""
    try:
        return _probe(bytes(data[:PROBE_BYTES]), len(data) >= PROBE_BYTES)
    except Exception:
        return False


def _probe(b: bytes, truncated: bool) -> bool:
    if parse_connect(b[:512]) is not None:
        return True
    try:
        return len(b) >= 4 and _midstream(b, truncated)
    except ValueError:                   # over-long varint
        return False


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self.connect = None
        self.confirmed = False
        self.connack_code = None
        self.topics: dict = {}
        self.packets = 0
        self._buf = {True: bytearray(), False: bytearray()}
        self._skip = {True: 0, False: 0}
        self._seen = {True: 0, False: 0}
        self._dead = {True: False, False: False}
        self.published = 0

    def wants_more(self) -> bool:
        return not (self._dead[True] and self._dead[False])

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        self._dead[is_orig] = True          # packet boundaries lost
        self._buf[is_orig].clear()

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._dead[is_orig]:
            return
        self._seen[is_orig] += len(data)
        if self._seen[is_orig] > BYTE_BUDGET:
            self._dead[is_orig] = True
            self._buf[is_orig].clear()
            return
        if self._skip[is_orig]:
            k = min(self._skip[is_orig], len(data))
            self._skip[is_orig] -= k
            data = data[k:]
        buf = self._buf[is_orig]
        buf += data
        try:
            self._drain(is_orig, buf, ts)
        except ValueError as e:
            self.ctx.weird("mqtt.bad_packet", str(e), ts)
            self._dead[is_orig] = True
            buf.clear()

    def _drain(self, is_orig: bool, buf: bytearray, ts: float) -> None:
        while len(buf) >= 2:
            r = varint(buf, 1)
            if r is None:
                return
            rl, p = r
            ptype = buf[0] >> 4
            if ptype == 0:
                raise ValueError("packet type 0")
            if p + rl > MAX_PACKET:
                self._skip[is_orig] = p + rl - len(buf)
                buf.clear()
                self.packets += 1
                return
            if len(buf) < p + rl:
                return
            body = bytes(buf[p:p + rl])
            first = buf[0]
            del buf[:p + rl]
            self.packets += 1
            self._packet(is_orig, first, body, ts)

    def _packet(self, is_orig: bool, first: int, body: bytes, ts: float) -> None:
        ptype = first >> 4
        if ptype == CONNECT and self.connect is None:
            m = parse_connect(bytes([first]) + encode_varint(len(body)) + body)
            if m is not None:
                self.connect = m
                self._confirm()
        elif ptype == CONNACK and len(body) >= 2:
            self.connack_code = body[1]
        elif ptype == PUBLISH and len(body) >= 2:
            topic, p = _str(body, 0, len(body))
            if _topic_ok(topic, False):
                self._confirm()
            key = (is_orig, topic.decode("utf-8", "backslashreplace"))
            if key in self.topics:
                self.topics[key] += 1
            elif len(self.topics) < MAX_TOPICS:
                self.topics[key] = 1
            self._publish(is_orig, first, key[1], body, p, ts)
        if not self.confirmed and self.packets >= 3:
            self._confirm()

    def _publish(self, is_orig: bool, first: int, topic: str, body: bytes, p: int, ts: float) -> None:
        """One PUBLISH (topic already read up to ``p``): its record, and its payload to the content stage."""
        qos = (first >> 1) & 3
        if qos == 3:
            raise ValueError("PUBLISH with QoS 3")
        if qos:
            p += 2                                          # packet identifier
        level = self.connect["level"] if self.connect else 4
        if level == 5:
            r = varint(body, p)
            if r is None:
                raise ValueError("PUBLISH properties cut short")
            plen, p = r
            p += plen
        if p > len(body):
            raise ValueError("PUBLISH header longer than the packet")
        payload = body[p:]
        self.published += 1
        if self.published <= MAX_LOGGED:
            c = self.ctx
            self.ctx.emit(LOG, {
                "ts": ts, "uid": c.uid, "id.orig_h": c.orig_h, "id.orig_p": c.orig_p, "id.resp_h": c.resp_h,
                "id.resp_p": c.resp_p, "from_client": is_orig,
                "client_id": self.connect.get("client_id") if self.connect else None,
                "protocol_level": self.connect["level"] if self.connect else None,
                "qos": qos, "retain": bool(first & 1), "topic": topic, "payload_len": len(payload)})
        sink = self.ctx.sink
        if payload and sink is not None and hasattr(sink, "body"):
            sink.body(self.ctx, is_orig, {"source": "mqtt", "file": False}, with_topic(topic, payload))

    def _confirm(self) -> None:
        if not self.confirmed:
            self.confirmed = True
            self.ctx.confirm(NAME)


def topic_key(topic: str) -> str | None:
    """The field name a topic gives its value: its last level that is not an id (a number, a
    UUID, a hex token), e.g. ``crm/customer/17/email`` -> ``email``; None when there is none."""
    for level in reversed(topic.split("/")):
        level = level.strip()
        if level and level not in ("+", "#") and not _NUMERIC_LEVEL.match(level):
            return level[:100]
    return None


def with_topic(topic: str, payload: bytes) -> bytes:
    """What the content stage reads of a PUBLISH: a bare value (one short line that is not JSON,
    XML or CSV) becomes ``{"<topic key>": value}`` so the topic names it; anything else as sent."""
    if len(payload) > SCALAR_MAX or b"\n" in payload.rstrip(b"\r\n"):
        return payload
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return payload
    key = topic_key(topic)
    if not text or key is None or text[0] in "{[<\"" or not text.isprintable():
        return payload
    return json.dumps({key: text}, ensure_ascii=False).encode("utf-8")


def encode_varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property lengths): 7 bits a byte, low first."""
    out = bytearray()
    while True:
        c = n & 0x7F
        n >>= 7
        out.append(c | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "mqtt"}
PII_FIELDS = {"mqtt": ("topic", "client_id")}
CONTENT = "bodies"                 # PUBLISH payloads go to ctx.sink.body; the packet framing is not content
