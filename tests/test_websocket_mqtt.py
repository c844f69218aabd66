"""WebSocket (inspector/protocols/websocket.py) and MQTT PUBLISH payloads (inspector/protocols/mqtt.py).

Unit tests feed the analyzers the annotated examples of RFC 6455 section 5.7 and RFC 7692 section
7.2.3 and hand-packed MQTT 3.1.1 / 5.0 PUBLISH packets; capture tests (tests/helpers/msggen.py)
plant customer records in WebSocket messages (masked, fragmented, permessage-deflate) and MQTT
publishes and count them exactly, beside telemetry that counts nothing.
"""
from __future__ import annotations

import os
import zlib

import pytest

from helpers import msggen as gen
from inspector.protocols import mqtt, websocket
from inspector.protocols.base import FlowContext

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = os.path.join(REPO, "captures", "site-dc-north.yaml")


class Sink:
    """What an analyzer hands the dispatcher: records, weirds, bodies (messages)."""

    def __init__(self):
        self.records, self.weirds, self.bodies = {}, [], []

    def emit(self, log, record):
        self.records.setdefault(log, []).append(record)

    def weird(self, ctx, name, detail, ts):
        self.weirds.append(name)

    def body(self, ctx, is_orig, info, data):
        self.bodies.append((is_orig, info, data))


def _ctx(sink, port=80):
    return FlowContext(uid="Cws1", ts=1.0, orig_h="172.20.1.50", orig_p=41000, resp_h="8.210.10.80", resp_p=port,
                       transport="tcp", sink=sink)


def _ws(extensions=None):
    sink = Sink()
    an = websocket.Analyzer(_ctx(sink))
    an.upgraded({"upgrade": "websocket", "extensions": extensions})
    return an, sink


# ---------------------------------------------------------------------------------------------
# RFC 6455 section 5.7
# ---------------------------------------------------------------------------------------------

def test_rfc6455_single_frame_unmasked_and_masked():
    an, sink = _ws()
    an.data(False, bytes([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]), 1.0)          # FIN text, 5, "Hello"
    an.data(True, bytes([0x81, 0x85,                                                 # FIN text, MASK 5
                         0x37, 0xfa, 0x21, 0x3d,                                     # masking key
                         0x7f, 0x9f, 0x4d, 0x51, 0x58]), 1.1)                        # "Hello" masked
    assert [(o, d) for o, _, d in sink.bodies] == [(False, b"Hello"), (True, b"Hello")]
    assert not sink.weirds and an.ctx.service == ["websocket"]


def test_rfc6455_fragmented_with_ping_between():
    an, sink = _ws()
    msg = bytes([0x01, 0x03, 0x48, 0x65, 0x6c]) + \
        bytes([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]) + \
        bytes([0x80, 0x02, 0x6c, 0x6f])                    # text "Hel" no FIN, ping "Hello", cont FIN "lo"
    for cut in range(len(msg) + 1):                        # any split across segments
        an2, sink2 = _ws()
        an2.data(False, msg[:cut], 1.0)
        an2.data(False, msg[cut:], 1.1)
        assert [d for _, _, d in sink2.bodies] == [b"Hello"], cut


def test_rfc6455_extended_lengths():
    an, sink = _ws()
    body256 = bytes(range(256))
    an.data(False, bytes([0x82, 0x7E, 0x01, 0x00]) + body256, 1.0)                 # 16-bit length 256
    big = b"x" * 65536
    an.data(False, bytes([0x82, 0x7F]) + (65536).to_bytes(8, "big") + big, 1.1)     # 64-bit length 65536
    assert [d for _, _, d in sink.bodies] == [body256, big]


def test_client_frame_without_mask_and_bad_opcode_are_weirds():
    an, sink = _ws()
    an.data(True, bytes([0x81, 0x02]) + b"hi", 1.0)
    assert "websocket.unmasked_client_frame" in sink.weirds and sink.bodies
    an.data(False, bytes([0x83, 0x00]), 1.1)                                         # opcode 3: reserved
    assert "websocket.bad_frame" in sink.weirds and not an._dirs[False].buf


# ---------------------------------------------------------------------------------------------
# RFC 7692 section 7.2.3
# ---------------------------------------------------------------------------------------------

def test_rfc7692_compressed_messages_sharing_the_window():
    an, sink = _ws("permessage-deflate")
    an.data(False, bytes([0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), 1.0)   # "Hello"
    an.data(False, bytes([0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]), 1.1)               # "Hello" again (window)
    an.data(False, bytes([0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]),
            1.2)                                                                          # a stored block
    an.data(False, bytes([0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]), 1.3)  # BFINAL set
    an.data(False, bytes([0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                          0x00]), 1.4)                                                    # two blocks
    an.data(False, bytes([0x41, 0x03, 0xf2, 0x48, 0xcd]) + bytes([0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]), 1.5)
    assert [d for _, _, d in sink.bodies] == [b"Hello"] * 6
    assert not sink.weirds


def test_rsv1_without_negotiation_is_a_weird():
    an, sink = _ws()
    an.data(False, bytes([0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]), 1.0)
    assert "websocket.bad_frame" in sink.weirds and not sink.bodies


def test_no_context_takeover_resets_the_window():
    comp_msgs = []
    for _ in range(2):
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        comp_msgs.append(gen.deflate_message(b"Hello Hello", c))
    an, sink = _ws("permessage-deflate; client_no_context_takeover")
    for m in comp_msgs:
        an.data(True, gen.ws_frame(m, mask=b"\x01\x02\x03\x04", rsv1=True), 1.0)
    assert [d for _, _, d in sink.bodies] == [b"Hello Hello"] * 2


def test_deflate_params():
    assert websocket.deflate_params("permessage-deflate; client_max_window_bits=10") == \
        {"client_max_window_bits": "10"}
    assert websocket.deflate_params("x-webkit-deflate-frame") is None
    assert websocket.deflate_params(None) is None


# ---------------------------------------------------------------------------------------------
# MQTT PUBLISH (3.1.1 section 3.3, 5.0 section 3.3)
# ---------------------------------------------------------------------------------------------

def _mqtt(level=4):
    sink = Sink()
    an = mqtt.Analyzer(_ctx(sink, 1883))
    an.data(True, gen.mqtt_connect(b"wms-bridge-7", level), 1.0)
    return an, sink


@pytest.mark.parametrize("level", [4, 5])
def test_publish_payload_and_record(level):
    an, sink = _mqtt(level)
    pkt = gen.mqtt_publish(b"crm/customers", b'{"email": "a@b.de"}', qos=1, pid=7, level=level)
    # 0x32: PUBLISH, QoS 1; remaining length; topic; packet id 7; [v5: properties]; payload
    assert pkt[0] == 0x32 and pkt[4:17] == b"crm/customers" and pkt[17:19] == b"\x00\x07"
    an.data(True, pkt, 1.1)
    assert [(o, d) for o, _, d in sink.bodies] == [(True, b'{"email": "a@b.de"}')]
    rec = sink.records["mqtt"][0]
    assert (rec["qos"], rec["topic"], rec["payload_len"], rec["protocol_level"], rec["client_id"]) == \
        (1, "crm/customers", 19, level, "wms-bridge-7")
    assert not mqtt.LOG_SCHEMA.problems(rec)


def test_bare_value_takes_the_topic_as_its_name():
    assert mqtt.with_topic("crm/customer/17/email", b"anna@example.org") == b'{"email": "anna@example.org"}'
    assert mqtt.with_topic("fleet/a1f3/phone", b"+49 30 1234567") == b'{"phone": "+49 30 1234567"}'
    assert mqtt.with_topic("dc/dock3/temp", b"21.5") == b'{"temp": "21.5"}'
    assert mqtt.with_topic("a/b", b'{"x": 1}') == b'{"x": 1}'
    assert mqtt.with_topic("a/b", b"r1\nr2\n") == b"r1\nr2\n"
    assert mqtt.with_topic("17/42", b"x") == b"x"


def test_bad_publish_is_a_weird():
    an, sink = _mqtt()
    an.data(True, gen.mqtt_packet(0x36, gen.mqtt_str(b"t") + b"x"), 1.0)      # QoS 3
    assert "mqtt.bad_packet" in sink.weirds


# ---------------------------------------------------------------------------------------------
# generated captures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    from inspector.site import load_site
    return load_site(SITE)


def _scan(tmp_path, name, frames, site):
    from inspector.pipeline import run_scan
    from inspector.settings import build_content, build_enricher
    path = gen.write(tmp_path / f"{name}.pcap", frames)
    return run_scan([path], site=site, content=build_content(site), enricher=build_enricher(site))


CUSTOMERS = [gen.customer_json(i) for i in range(25)]


@pytest.mark.parametrize("deflate,fragment", [(False, 0), (True, 0), (True, 40), (False, 50)])
def test_websocket_messages_leaving(deflate, fragment, tmp_path, site):
    frames = gen.websocket_session(CUSTOMERS, deflate=deflate, fragment=fragment, mss=97)
    res = _scan(tmp_path, "ws", frames, site)
    (f,) = [f for f in res.flows if f["proto"] == "tcp"]
    assert f["service"] == "http,websocket"
    assert f["records"] == {"customer": 25, "shipment": 0} and f["data"]["email"] == 25
    assert not [w for w in res.weirds if w["name"].startswith("websocket.")]
    assert not [r for r in res.logs.get("files", ()) if r.get("source") == "websocket"]


def test_mqtt_over_websocket(tmp_path, site):
    """Sec-WebSocket-Protocol: mqtt: the binary messages are MQTT packets (one split over two messages)."""
    pkts = [gen.mqtt_connect(b"browser-42")] + [gen.mqtt_publish(b"crm/customers", c, 1, k + 1)
                                                  for k, c in enumerate(CUSTOMERS)]
    stream = b"".join(pkts)
    messages = [stream[:700], stream[700:1500], stream[1500:]]
    res = _scan(tmp_path, "mqtt-ws", gen.websocket_session(messages, subprotocol="mqtt", opcode=2), site)
    (f,) = [f for f in res.flows if f["proto"] == "tcp"]
    assert set(f["service"].split(",")) == {"http", "websocket", "mqtt"}
    assert f["records"] == {"customer": 25, "shipment": 0} and f["data"]["email"] == 25
    assert len(res.logs["mqtt"]) == 25 and res.logs["mqtt"][0]["client_id"] == "browser-42"


def test_websocket_inbound_messages_count_nothing(tmp_path, site):
    frames = gen.websocket_session(CUSTOMERS, client="8.210.10.81", server="172.20.1.51")
    res = _scan(tmp_path, "ws-in", frames, site)
    (f,) = [f for f in res.flows if f["proto"] == "tcp"]
    assert f["records"]["customer"] == 0 and f["data"] == {}     # the responder (local) sent only {"ok":true}


@pytest.mark.parametrize("level", [4, 5])
def test_mqtt_publishes_leaving(level, tmp_path, site):
    pubs = [(b"crm/customers/upsert", c, k % 2) for k, c in enumerate(CUSTOMERS)]
    pubs += [(f"crm/customer/{k}/email".encode(), f"late.buyer{k}@mail-example.de".encode(), 0) for k in range(5)]
    pubs += [(b"dc/dock3/temp", b"21.5", 0), (b"dc/dock3/humidity", b"48", 0)]
    res = _scan(tmp_path, f"mqtt{level}", gen.mqtt_session(pubs, level=level, mss=113), site)
    (f,) = [f for f in res.flows if f["proto"] == "tcp"]
    assert f["service"] == "mqtt"
    assert f["records"] == {"customer": 30, "shipment": 0} and f["data"]["email"] == 30
    recs = res.logs["mqtt"]
    assert len(recs) == len(pubs)
    from inspector.outputs.schema import protocol_streams
    assert all(not protocol_streams()["mqtt"].problems(r) for r in recs)
    assert all("@" not in r["topic"] or "***" in r["topic"] for r in recs)


def test_mqtt_telemetry_counts_nothing(tmp_path, site):
    pubs = [(f"fleet/truck{k % 7}/{m}".encode(), v, 0) for k in range(60)
            for m, v in ((("gps"), b'{"lat": 53.55, "lon": 9.99, "speed": 62}'), ("temp", b"4.5"),
                         ("door", b"closed"), ("fw", b"2.14.1"))]
    res = _scan(tmp_path, "telemetry", gen.mqtt_session(pubs), site)
    (f,) = [f for f in res.flows if f["proto"] == "tcp"]
    assert f["service"] == "mqtt" and f["data"] == {} and f["records"]["customer"] == 0
    assert not res.logs.get("content")
