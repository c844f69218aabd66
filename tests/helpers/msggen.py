"""Generated TCP conversations of message protocols: WebSocket (RFC 6455, RFC 7692) and MQTT.

Frames are packed by hand (annotated) and carried by ``helpers.pkt`` TCP segments: a handshake,
the messages in the given order (each segment at most ``mss`` bytes, so frames and packets cross
segment boundaries), a FIN close.  Addresses follow the bundled site file (172.20.0.0/16 local).
"""
from __future__ import annotations

import json
import struct
import zlib

from helpers.pkt import ACK, FIN, PSH, SYN, pcap_bytes, tcp_frame
from inspector.protocols import mqtt

T0_NS = 1_764_200_000_000_000_000


def tcp_conversation(messages, client="172.20.1.50", server="8.210.10.80", cport=41000, sport=80,
                     mss: int = 1400, t0_ns: int = T0_NS) -> list:
    """(ts_ns, frame) pairs of one TCP connection carrying ``messages``: [(from_client, bytes)]."""
    seq = {True: 1000, False: 9000}
    out = []
    t = t0_ns

    def seg(from_client, flags, payload=b""):
        nonlocal t
        s, d, sp, dp = (client, server, cport, sport) if from_client else (server, client, sport, cport)
        out.append((t, tcp_frame(s, d, sp, dp, payload, flags, seq[from_client], seq[not from_client],
                                 ident=len(out) + 1)))
        seq[from_client] = (seq[from_client] + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        t += 1_000_000

    seg(True, SYN)
    seg(False, SYN | ACK)
    seg(True, ACK)
    for from_client, data in messages:
        for k in range(0, len(data), mss):
            seg(from_client, PSH | ACK, data[k:k + mss])
    seg(True, FIN | ACK)
    seg(False, FIN | ACK)
    seg(True, ACK)
    return out


def write(path, frames) -> str:
    with open(path, "wb") as f:
        f.write(pcap_bytes(frames))
    return str(path)


# ---------------------------------------------------------------------------------------------
# WebSocket
# ---------------------------------------------------------------------------------------------

def ws_frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None, rsv1: bool = False) -> bytes:
    """One frame: FIN|RSV1|opcode, MASK|length (7, 7+16 or 7+64 bits), masking key, (masked) payload."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def deflate_message(data: bytes, compressor) -> bytes:
    """RFC 7692 7.2.1: DEFLATE with a sync flush, the trailing 00 00 ff ff removed."""
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def websocket_session(messages, deflate: bool = False, fragment: int = 0, subprotocol: str = "",
                      opcode: int = 1, **kw) -> list:
    """A WebSocket connection: the HTTP/1.1 Upgrade handshake, then each client message (text, or
    ``opcode``) masked, fragmented into ``fragment``-byte frames when given, compressed
    (permessage-deflate, context kept across messages) when ``deflate``; a server text message
    answers each.  ``subprotocol``: the Sec-WebSocket-Protocol both sides name (``mqtt``)."""
    ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    if subprotocol:
        ext += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    req = ("GET /socket HTTP/1.1\r\nHost: push.example-saas.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + ext + "\r\n").encode()
    resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" + ext + "\r\n").encode()
    out = [(True, req), (False, resp)]
    comp = zlib.compressobj(9, zlib.DEFLATED, -15) if deflate else None
    for k, msg in enumerate(messages):
        body = deflate_message(msg, comp) if deflate else msg
        mask = struct.pack("!I", 0x37FA213D ^ k)              # a masking key per message
        if fragment and len(body) > fragment:
            parts = [body[i:i + fragment] for i in range(0, len(body), fragment)]
            frames = b""
            for i, part in enumerate(parts):
                frames += ws_frame(part, opcode=opcode if i == 0 else 0, fin=i == len(parts) - 1, mask=mask,
                                   rsv1=deflate and i == 0)
                if i == 0:
                    frames += ws_frame(b"keepalive", opcode=9, mask=mask)     # a ping between fragments
        else:
            frames = ws_frame(body, opcode=opcode, mask=mask, rsv1=deflate)
        out.append((True, frames))
        out.append((False, ws_frame(b'{"ok":true}' if opcode == 1 else mqtt_packet(0xD0, b""), opcode=opcode)))
    out.append((True, ws_frame(struct.pack("!H", 1000), opcode=8, mask=b"\x01\x02\x03\x04")))
    return tcp_conversation(out, **kw)


# ---------------------------------------------------------------------------------------------
# MQTT
# ---------------------------------------------------------------------------------------------

_varint = mqtt.encode_varint       # MQTT's variable byte integer (3.1.1 section 2.2.3)


def mqtt_str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s                  # 2-byte length, UTF-8 bytes


def mqtt_packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body     # type|flags, remaining length, body


def mqtt_connect(client_id: bytes, level: int = 4) -> bytes:
    body = mqtt_str(b"MQTT") + bytes([level, 0x02]) + struct.pack("!H", 60)   # name, level, clean session, keep-alive
    if level == 5:
        body += b"\x00"                                   # properties: none
    return mqtt_packet(0x10, body + mqtt_str(client_id))


def mqtt_publish(topic: bytes, payload: bytes, qos: int = 0, pid: int = 1, level: int = 4) -> bytes:
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", pid)                    # packet identifier
    if level == 5:
        props = b"\x01\x01" + b"\x03" + mqtt_str(b"application/json")   # payload format: UTF-8, content type
        body += _varint(len(props)) + props
    return mqtt_packet(0x30 | (qos << 1), body + payload)


def mqtt_session(publishes, level: int = 4, **kw) -> list:
    """A client connects (CONNACK back) and publishes [(topic, payload, qos)]; PUBACK for QoS 1."""
    out = [(True, mqtt_connect(b"wms-bridge-7", level)), (False, mqtt_packet(0x20, b"\x00\x00" +
                                                                             (b"\x00" if level == 5 else b"")))]
    for k, (topic, payload, qos) in enumerate(publishes, 1):
        out.append((True, mqtt_publish(topic, payload, qos, k, level)))
        if qos == 1:
            out.append((False, mqtt_packet(0x40, struct.pack("!H", k))))
    out.append((True, mqtt_packet(0xE0, b"")))            # DISCONNECT
    return tcp_conversation(out, sport=1883, **kw)


def customer_json(i: int) -> bytes:
    return json.dumps({"customer_id": f"C{20000 + i}", "name": f"Paula Berger{i}",
                       "email": f"paula.berger{i}@mail-example.de", "city": "Bremen"}).encode()
