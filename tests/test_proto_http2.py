"""HTTP/2 (h2c) frame walker and DNS over HTTP/2 (inspector/protocols/http2.py).

* frames built here from annotated bytes: the client preface, SETTINGS,
  HEADERS, DATA (split, padded, oversized), RST_STREAM; DoH POST and GET
  exchanges, concurrent streams answered out of order (all with DNS id 0);
* the dispatcher: prior-knowledge h2c on port 80, and an HTTP/1.1
  ``Upgrade: h2c`` / 101 exchange handed to HTTP/2 (captures built in
  tmp_path and run through ``run_scan``);
* hostile input never raises;
* corpus: suricata-verify's dns-over-http2 tests (their test.yaml names)
  and tshark's DNS-in-HTTP/2 dissection.
"""
from __future__ import annotations

import random
import shutil
import struct
import subprocess

import pytest

from helpers.pkt import ACK, FIN, PSH, SYN, pcap_bytes, tcp_frame
from inspector.protocols import http2
from test_proto_tls import make_ctx

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# ===========================================================================
# Byte builders
# ===========================================================================

def frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    """RFC 9113 §4.1: Length (24), Type (8), Flags (8), R (1) + Stream Identifier (31), payload."""
    return struct.pack("!I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack("!I", sid) + payload


def settings(*pairs: tuple[int, int], ack: bool = False) -> bytes:
    return frame(http2.SETTINGS, 0x1 if ack else 0, 0,
                 b"".join(struct.pack("!HI", i, v) for i, v in pairs))   # Identifier (16), Value (32)


def headers(sid: int, end_stream: bool = False, block: bytes = b"\x82\x86\x84") -> bytes:
    # HPACK block: indexed :method GET, :scheme http, :path / (static table 2, 6, 4); END_HEADERS (0x4)
    return frame(http2.HEADERS, 0x4 | (0x1 if end_stream else 0), sid, block)


def data(sid: int, body: bytes, end_stream: bool = True, pad: int | None = None) -> bytes:
    if pad is None:
        return frame(http2.DATA, 0x1 if end_stream else 0, sid, body)
    return frame(http2.DATA, (0x1 if end_stream else 0) | 0x8, sid,
                 bytes([pad]) + body + bytes(pad))              # Pad Length (8), Data, Padding


def rst(sid: int, code: int = 8) -> bytes:
    return frame(http2.RST_STREAM, 0, sid, struct.pack("!I", code))     # Error Code (32): CANCEL


def qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(name: str, qtype: int = 1, tid: int = 0) -> bytes:
    return (struct.pack("!HHHHHH", tid, 0x0100, 1, 0, 0, 0)   # ID, flags RD, QD=1, AN, NS, AR
            + qname(name) + struct.pack("!HH", qtype, 1))     # QNAME, QTYPE, QCLASS IN


def dns_reply(name: str, addr: str, tid: int = 0) -> bytes:
    return (struct.pack("!HHHHHH", tid, 0x8180, 1, 1, 0, 0)   # QR RD RA, QD=1, AN=1
            + qname(name) + struct.pack("!HH", 1, 1)
            + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4)   # pointer to QNAME, A, IN, TTL, RDLENGTH
            + bytes(int(x) for x in addr.split(".")))


def run(events, chunk: int | None = None):
    ctx, sink = make_ctx("tcp")
    a = http2.Analyzer(ctx)
    t = 1000.0
    for is_orig, b in events:
        t += 0.01
        if chunk:
            for i in range(0, len(b), chunk):
                a.data(is_orig, b[i:i + chunk], t)
        else:
            a.data(is_orig, b, t)
    a.done(t + 1)
    return a, sink, ctx


def dns_rows(sink):
    return [(r["query"], r["qtype_name"], r["answers"]) for r in sink.logs("dns")]


CLIENT_START = PREFACE + settings((3, 100), (4, 65535))
SERVER_START = settings((3, 128)) + settings(ack=True)


# ===========================================================================
# Probe
# ===========================================================================

@pytest.mark.parametrize("payload,is_orig,ok", [
    (PREFACE + settings(), True, True),
    (PREFACE[:10], True, True),                             # the start of the preface
    (PREFACE, False, False),                                # the preface is the client's
    (settings((3, 100)), False, True),                      # server SETTINGS first (after a 101)
    (settings((3, 100)), True, True),
    (settings(ack=True), False, False),                     # an ACK does not start a connection
    (frame(http2.SETTINGS, 0, 1, bytes(6)), False, False),  # SETTINGS on a stream
    (frame(http2.SETTINGS, 0, 0, bytes(5)), False, False),  # length not a multiple of 6
    (b"GET / HTTP/1.1\r\n\r\n", True, False),
    (b"PRI", True, False),
    (b"", True, False),
])
def test_probe(payload, is_orig, ok):
    assert http2.probe(payload, is_orig) is ok


def test_http_probe_leaves_the_preface_alone():
    from inspector.protocols import http
    assert not http.probe(PREFACE, True)


# ===========================================================================
# DNS over HTTP/2
# ===========================================================================

def test_post_query_and_reply():
    a, sink, ctx = run([
        (True, CLIENT_START + headers(1) + data(1, dns_query("example.com", 2))),
        (False, SERVER_START + headers(1) + data(1, dns_reply("example.com", "192.0.2.7"))),
    ])
    (r,) = sink.logs("dns")
    assert (r["query"], r["qtype_name"], r["answers"]) == ("example.com", "NS", ["192.0.2.7"])
    assert r["proto"] == "tcp" and r["trans_id"] == 0 and r["rtt"] == pytest.approx(0.01)
    assert ctx.service == ["http2", "dns"]
    assert sink.weirds == []


def test_get_reply_logged_with_its_question():
    # GET: the query is in the HPACK-coded :path (not decoded); the reply carries the question.
    a, sink, _ = run([
        (True, CLIENT_START + headers(1, end_stream=True)),
        (False, SERVER_START + headers(1) + data(1, dns_reply("www.gstatic.com", "142.250.185.227"))),
    ])
    assert dns_rows(sink) == [("www.gstatic.com", None, ["142.250.185.227"])]


def test_concurrent_streams_answered_out_of_order():
    names = ["a.example", "b.example", "c.example"]
    client = CLIENT_START + b"".join(headers(s) + data(s, dns_query(n)) for s, n in zip((1, 3, 5), names))
    server = SERVER_START + b"".join(headers(s) + data(s, dns_reply(n, f"192.0.2.{s}"))
                                     for s, n in zip((5, 1, 3), [names[2], names[0], names[1]]))
    a, sink, _ = run([(True, client), (False, server)])
    got = {r["query"]: r["answers"] for r in sink.logs("dns")}
    assert got == {"a.example": ["192.0.2.1"], "b.example": ["192.0.2.3"], "c.example": ["192.0.2.5"]}
    assert a.dns_messages == 6


def test_body_split_over_frames_padded_and_byte_by_byte():
    q = dns_query("split.example")
    a, sink, _ = run([
        (True, CLIENT_START + headers(1) + data(1, q[:7], end_stream=False, pad=3) + data(1, q[7:], pad=0)),
        (False, SERVER_START + headers(1) + data(1, dns_reply("split.example", "198.51.100.1"), pad=9)),
    ], chunk=1)
    assert dns_rows(sink) == [("split.example", "A", ["198.51.100.1"])]


def test_reset_stream_flushes_the_query():
    a, sink, _ = run([
        (True, CLIENT_START + headers(1) + data(1, dns_query("gone.example")) + rst(1)),
        (False, SERVER_START),
    ])
    assert dns_rows(sink) == [("gone.example", "A", None)]


def test_non_dns_bodies_are_ignored():
    a, sink, ctx = run([
        (True, CLIENT_START + headers(1) + data(1, b'{"nfInstanceId": "abc"}')),
        (False, SERVER_START + headers(1) + data(1, b"<html>hello</html>" * 3)),
    ])
    assert sink.logs("dns") == [] and ctx.service == ["http2"]


def test_oversized_frame_is_skipped_not_buffered():
    big = frame(http2.DATA, 0, 1, b"x" * (http2.MAX_FRAME + 10))
    ctx, sink = make_ctx("tcp")
    a = http2.Analyzer(ctx)
    a.data(True, CLIENT_START + headers(1), 1.0)
    a.data(False, SERVER_START + headers(1) + big[:5000], 1.1)
    assert len(a._dirs[False].buf) < 100                      # header consumed, payload skipped
    a.data(False, big[5000:] + headers(3) + data(3, dns_reply("after.example", "192.0.2.9")), 1.2)
    a.data(True, headers(3) + data(3, dns_query("after.example")), 1.3)
    a.done(2.0)
    assert [r["query"] for r in sink.logs("dns")] == ["after.example"]


def test_body_beyond_max_body_is_not_dns():
    q = dns_query("x.example")
    chunks = [data(1, b"\x00" * 16000, end_stream=False) for _ in range(5)]
    a, sink, _ = run([(True, CLIENT_START + headers(1) + b"".join(chunks) + data(1, q))])
    assert sink.logs("dns") == []


def test_not_settings_first_gives_up():
    a, sink, ctx = run([(True, PREFACE + headers(1) + data(1, dns_query("x.example")))])
    assert "http2.no_settings_first" in sink.weird_names()
    assert sink.logs("dns") == []


def test_gap_stops_the_direction():
    ctx, sink = make_ctx("tcp")
    a = http2.Analyzer(ctx)
    a.data(True, CLIENT_START, 1.0)
    a.gap(True, 100, 1.1)
    a.data(True, headers(1) + data(1, dns_query("x.example")), 1.2)
    assert a.wants_more()
    a.gap(False, 5, 1.3)
    assert not a.wants_more()                   # both directions lost: flushed, done
    assert sink.logs("dns") == [] and "http2.content_gap" in sink.weird_names()


def test_gap_flushes_what_was_collected():
    ctx, sink = make_ctx("tcp")
    a = http2.Analyzer(ctx)
    a.data(True, CLIENT_START + headers(1) + data(1, dns_query("kept.example")), 1.0)
    a.gap(True, 100, 1.1)
    a.gap(False, 100, 1.2)
    assert not a.wants_more()
    assert [r["query"] for r in sink.logs("dns")] == ["kept.example"]


def test_gives_up_on_connections_without_dns():
    ctx, sink = make_ctx("tcp")
    a = http2.Analyzer(ctx)
    a.data(True, CLIENT_START, 1.0)
    a.data(False, SERVER_START, 1.0)
    grpc = b"".join(headers(s) + data(s, b"\x00\x00\x00\x00\x05hello") for s in range(1, 500, 2))
    a.data(True, grpc, 1.1)
    assert not a.wants_more()                  # flushed and done: the dispatcher may drop it
    assert sink.logs("dns") == []


def test_dns_connection_is_followed_past_the_budget():
    ctx, sink = make_ctx("tcp")
    a = http2.Analyzer(ctx)
    a.data(True, CLIENT_START + headers(1) + data(1, dns_query("first.example")), 1.0)
    a.data(True, b"".join(headers(s) + data(s, b"x" * 20) for s in range(3, 1000, 2)), 1.1)
    assert a.wants_more()


def test_too_many_streams_are_bounded():
    client = CLIENT_START + b"".join(headers(s) + data(s, dns_query(f"n{s}.example"))
                                     for s in range(1, 2 * (http2.MAX_STREAMS + 20), 2))
    a, sink, _ = run([(True, client)])
    assert len(a._streams) == 0
    assert len(sink.logs("dns")) == http2.MAX_STREAMS + 20      # every query logged, none lost
    assert "http2.too_many_streams" in sink.weird_names()


def test_hostile_inputs_never_raise():
    rnd = random.Random(5)
    good = CLIENT_START + headers(1) + data(1, dns_query("example.com"), pad=4) + rst(1)
    for _ in range(300):
        b = bytearray(good)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.getrandbits(8)
        run([(True, bytes(b)), (False, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 80))))],
            chunk=rnd.choice([None, 1, 7]))
    for _ in range(100):
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
        http2.probe(junk, True)
        run([(True, PREFACE + junk), (False, junk)])


# ===========================================================================
# Through the dispatcher (run_scan on captures built here)
# ===========================================================================

def _session(segments, cport=40000, sport=80):
    """TCP handshake, then (from_client, payload) segments with consistent seq/ack, then FIN."""
    c, s = "10.0.0.1", "10.0.0.2"
    cs, ss = 1000, 5000
    t = 1_764_000_000_000_000_000
    out = []

    def add(src, dst, sp, dp, flags, seq, ack, pl=b""):
        out.append((t + len(out) * 1_000_000, tcp_frame(src, dst, sp, dp, pl, flags, seq, ack, ident=len(out) + 1)))

    add(c, s, cport, sport, SYN, cs, 0)
    add(s, c, sport, cport, SYN | ACK, ss, cs + 1)
    cs += 1
    ss += 1
    add(c, s, cport, sport, ACK, cs, ss)
    for from_client, pl in segments:
        if from_client:
            add(c, s, cport, sport, PSH | ACK, cs, ss, pl)
            cs += len(pl)
        else:
            add(s, c, sport, cport, PSH | ACK, ss, cs, pl)
            ss += len(pl)
    add(c, s, cport, sport, FIN | ACK, cs, ss)
    add(s, c, sport, cport, FIN | ACK, ss, cs + 1)
    add(c, s, cport, sport, ACK, cs + 1, ss + 1)
    return out


def _scan(tmp_path, segments):
    from inspector.pipeline import run_scan
    p = tmp_path / "h2.pcap"
    p.write_bytes(pcap_bytes(_session(segments)))
    return run_scan([str(p)])


def test_prior_knowledge_h2c_on_port_80(tmp_path):
    res = _scan(tmp_path, [
        (True, CLIENT_START + headers(1) + data(1, dns_query("doh.example"))),
        (False, SERVER_START + headers(1) + data(1, dns_reply("doh.example", "203.0.113.5"))),
    ])
    (f,) = res.flows
    assert f["service"].split(",") == ["http2", "dns"]
    assert [(r["query"], r["answers"]) for r in res.logs["dns"]] == [("doh.example", ["203.0.113.5"])]
    assert "http" not in res.logs


def test_upgrade_h2c_after_101(tmp_path):
    upgrade = (b"GET /dns-query?dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAABAAE HTTP/1.1\r\n"
               b"Host: doh.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    switching = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    res = _scan(tmp_path, [
        (True, upgrade),
        (False, switching + SERVER_START),                     # SETTINGS in the same segment as the 101
        (True, CLIENT_START),
        (False, headers(1) + data(1, dns_reply("example.com", "93.184.216.34"))),   # the upgraded request
        (True, headers(3) + data(3, dns_query("www.example.org"))),
        (False, headers(3) + data(3, dns_reply("www.example.org", "93.184.216.35"))),
    ])
    (f,) = res.flows
    assert f["service"].split(",") == ["http", "http2", "dns"]
    (h,) = res.logs["http"]
    assert h["status_code"] == 101 and h["host"] == "doh.example"
    assert sorted((r["query"], r["answers"][0]) for r in res.logs["dns"]) == [
        ("example.com", "93.184.216.34"), ("www.example.org", "93.184.216.35")]


# ===========================================================================
# Corpus: suricata-verify dns-over-http2 tests
# ===========================================================================

DOH_TESTS = {
    "suricata-verify/tests/dns-over-http2/dns_over_https.pcap":
        {"www.gstatic.com", "nav-edge.smartscreen.microsoft.com"},
    "suricata-verify/tests/dns-over-http2-post/dns_over_https_POST.pcap": {"example.com"},
}


@pytest.mark.corpus
@pytest.mark.parametrize("trace", sorted(DOH_TESTS))
def test_suricata_verify_doh(corpus, trace):
    from inspector.pipeline import run_scan
    path = corpus / trace
    if not path.exists():
        pytest.skip("not in corpus")
    res = run_scan([str(path)])
    queries = {r["query"] for r in res.logs.get("dns", [])}
    assert DOH_TESTS[trace] <= queries
    assert all("http2" in f["service"].split(",") and "dns" in f["service"].split(",")
               for f in res.flows if f.get("service"))
    if "POST" in trace:
        (r,) = [r for r in res.logs["dns"] if r["query"] == "example.com"]
        assert r["qtype_name"] == "NS" and r["answers"][0] == "b.iana-servers.net"
    if shutil.which("tshark"):
        # tshark dissects DNS inside HTTP/2 DATA (DoH): the same question names, reply for reply.
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "dns.flags.response == 1",
                              "-T", "fields", "-e", "dns.qry.name"],
                             capture_output=True, text=True, timeout=120).stdout
        replies = [ln for line in out.splitlines() for ln in line.split(",") if ln]
        ours = [r["query"] for r in res.logs["dns"] if r["answers"] is not None or r["rcode"] is not None]
        assert sorted(ours) == sorted(replies)
