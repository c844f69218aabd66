"""Google QUIC analyzer (inspector/protocols/gquic.py).

* the null-encryption hash: FNV-1a 128 known answers, the 96-bit truncation,
  the "Client"/"Server" label (Q037+) and none before;
* packets built here from annotated bytes: Q043 (big-endian public header),
  Q035 (little-endian), Q025 (private flags byte), Q046 (invariant long
  header), Q050 (CHLO in CRYPTO frames of an Initial protected with the Q050
  salt), T051 (TLS ClientHello, user agent in the transport parameters), a
  server-only REJ, version negotiation, a CHLO over two packets;
* the hand-over from quic.py (443/udp is given to the QUIC analyzer by port);
* hostile input never raises;
* corpus: nDPI's Hostname/SNI, User-Agent and QUIC version for every gQUIC
  flow of its captures.
"""
from __future__ import annotations

import random
import re

import pytest

from inspector.protocols import base, gquic, quic, tls
from test_proto_tls import (RecordingSink, assert_ja4_matches_ndpi, client_hello, conversations, ext,
                            ext_alpn, ext_key_share_client, ext_key_share_server, ext_sni,
                            ext_supported_versions_client, ext_supported_versions_server, handshake,
                            make_ctx, ndpi_ja4, server_hello, u8)

CID = bytes.fromhex("e83c77bd8f8915f9")


def le16(v: int) -> bytes:
    return v.to_bytes(2, "little")


def le32(v: int) -> bytes:
    return v.to_bytes(4, "little")


# ===========================================================================
# Byte builders
# ===========================================================================

def handshake_message(tag: bytes, entries: list[tuple[bytes, bytes]]) -> bytes:
    """A QUIC-crypto handshake message: tag, u16 LE entry count, u16 padding,
    per entry tag + u32 LE end offset of its value, then the values."""
    out = tag + le16(len(entries)) + le16(0)
    end = 0
    for t, v in entries:
        end += len(v)
        out += t + le32(end)                          # tag, end offset
    return out + b"".join(v for _, v in entries)


def chlo(sni="www.example.com", uaid="Chrome/99.0 Linux", ver=b"Q043", pad=400) -> bytes:
    entries = [(b"PAD\x00", b"-" * pad)]              # tags sorted by value as Chrome does
    if sni is not None:
        entries.append((b"SNI\x00", sni.encode()))
    entries.append((b"VER\x00", ver))
    entries.append((b"AEAD", b"AESG"))
    if uaid is not None:
        entries.append((b"UAID", uaid.encode()))
    return handshake_message(b"CHLO", entries)


def stream_frame(sid: int, data: bytes, offset: int = 0, big: bool = True, fin: bool = False) -> bytes:
    """gQUIC STREAM frame 1fdooossB: data length present, 1-byte stream ID, 8-byte offset when non-zero."""
    order = "big" if big else "little"
    t = 0x80 | 0x20 | (0x40 if fin else 0) | ((7 << 2) if offset else 0)
    return (u8(t) + u8(sid)
            + (offset.to_bytes(8, order) if offset else b"")
            + len(data).to_bytes(2, order) + data)


def public_packet(frames: bytes, *, version: bytes | None = b"Q043", cid: bytes = CID, pn: int = 1,
                  pn_len: int = 1, big: bool = True, is_orig: bool = True, label: bool = True,
                  private_flags: bool = False, nonce: bytes = b"") -> bytes:
    """Public header (flags, CID, version, nonce, packet number), null hash, payload."""
    flags = (0x01 if version else 0) | (0x08 if cid else 0) | (0x04 if nonce else 0) \
        | ({1: 0, 2: 1, 4: 2, 6: 3}[pn_len] << 4)
    header = (u8(flags) + cid + (version or b"") + nonce
              + pn.to_bytes(pn_len, "big" if big else "little"))
    body = (b"\x00" if private_flags else b"") + frames
    lab = (b"Client" if is_orig else b"Server") if label else b""
    return header + gquic.null_hash(header, body, lab) + body


def q046_packet(frames: bytes, *, dcid: bytes = CID, scid: bytes = b"", pn: int = 1,
                is_orig: bool = True, kind: int = 0) -> bytes:
    """Q046 long header: 0b11TTRRPP, version, DCIL/SCIL nibbles (len-3), DCID, SCID, 4-byte PN."""
    nib = lambda c: (len(c) - 3) if c else 0       # noqa: E731
    header = (u8(0xC0 | (kind << 4) | 3) + b"Q046" + u8((nib(dcid) << 4) | nib(scid)) + dcid + scid
              + pn.to_bytes(4, "big"))
    return header + gquic.null_hash(header, frames, b"Client" if is_orig else b"Server") + frames


def gq_crypto_frame(offset: int, data: bytes) -> bytes:
    """Q050/T05x CRYPTO frame: type 0x08 (gQUIC numbering), varint offset, varint length."""
    return u8(0x08) + quic.encode_varint(offset) + quic.encode_varint(len(data)) + data


def initial_keys(tag: bytes, client_dcid: bytes, is_client: bool) -> quic.InitialKeys:
    secret = quic.hkdf_extract(gquic.IETF_SALTS[tag], client_dcid)
    return quic.InitialKeys(quic.hkdf_expand_label(secret, b"client in" if is_client else b"server in", 32),
                            b"quic ")


def ietf_initial(tag: bytes, payload: bytes, *, dcid: bytes, scid: bytes = b"", pn: int = 1,
                 key_dcid: bytes | None = None, is_client: bool = True, pn_len: int = 4) -> bytes:
    """A protected Initial of Q050/T050/T051 (RFC 9001 protection, the version's salt)."""
    keys = initial_keys(tag, key_dcid or dcid, is_client)
    head = (u8(0xC0 | (pn_len - 1)) + tag + u8(len(dcid)) + dcid + u8(len(scid)) + scid
            + quic.encode_varint(0)                                   # token length
            + quic.encode_varint(pn_len + len(payload) + 16))         # Length
    pn_bytes = pn.to_bytes(pn_len, "big")
    ct = keys.seal(pn, head + pn_bytes, payload)
    mask = keys.mask(ct[4 - pn_len:20 - pn_len])
    return (bytes([head[0] ^ (mask[0] & 0x0F)]) + head[1:]
            + bytes(b ^ m for b, m in zip(pn_bytes, mask[1:])) + ct)


def padded(b: bytes, size: int = 1200) -> bytes:
    return b + bytes(max(0, size - len(b)))


def run(datagrams, analyzer=gquic.Analyzer):
    ctx, sink = make_ctx("udp")
    a = analyzer(ctx)
    t = 1000.0
    for is_orig, dg in datagrams:
        t += 0.01
        if a.wants_more():
            a.datagram(is_orig, dg, t)
    a.done(t + 1)
    return a, sink, ctx


# ===========================================================================
# Null encryption hash
# ===========================================================================

class TestNullHash:
    def test_fnv1a_128_known_answers(self):
        assert gquic.fnv1a_128(b"") == 0x6C62272E07BB014262B821756295C58D      # offset basis
        assert gquic.fnv1a_128(b"a") == 0xD228CB696F1A8CAF78912B704E4A8964     # FNV test vector

    def test_truncated_to_96_bits_little_endian(self):
        h = gquic.fnv1a_128(b"head" + b"body" + b"Client")
        assert gquic.null_hash(b"head", b"body", b"Client") == (h & ((1 << 96) - 1)).to_bytes(12, "little")

    @pytest.mark.parametrize("label", [True, False])
    def test_checks_with_and_without_perspective_label(self, label):
        pkt = public_packet(stream_frame(1, chlo()), label=label)
        assert gquic.null_hash_ok(pkt, 1 + 8 + 4 + 1, True)
        bad = bytearray(pkt)
        bad[-1] ^= 1
        assert not gquic.null_hash_ok(bytes(bad), 1 + 8 + 4 + 1, True)

    def test_either_label_checks(self):
        # A capture that starts with the server's packets makes the server the originator.
        pkt = public_packet(stream_frame(1, b"REJ\x00" + bytes(4)), version=None, is_orig=False)
        assert gquic.null_hash_ok(pkt, 1 + 8 + 1, False)
        assert gquic.null_hash_ok(pkt, 1 + 8 + 1, True)
        assert not gquic.null_hash_ok(pkt[:-1] + b"\x01", 1 + 8 + 1, True)


# ===========================================================================
# Handshake messages
# ===========================================================================

class TestHandshakeMessage:
    def test_parse_tags(self):
        m = gquic.parse_message(chlo(sni="s.youtube.com", uaid="Cronet/63"))
        assert m.tag == b"CHLO"
        assert m.text(b"SNI\x00") == "s.youtube.com"
        assert m.text(b"UAID") == "Cronet/63"
        assert m.values[b"VER\x00"] == b"Q043"
        assert list(m.values)[0] == b"PAD\x00"

    def test_incomplete_is_none_until_complete(self):
        msg = chlo()
        for cut in (0, 7, 8 + 8 * 2, len(msg) - 1):
            assert gquic.parse_message(msg[:cut]) is None
        assert gquic.message_length(msg) == len(msg)

    def test_offsets_out_of_order(self):
        msg = bytearray(handshake_message(b"CHLO", [(b"SNI\x00", b"abc"), (b"UAID", b"de")]))
        msg[8 + 8 + 4:8 + 8 + 8] = le32(1)         # second end offset < first
        with pytest.raises(gquic.Malformed):
            gquic.parse_message(bytes(msg))

    def test_too_many_entries(self):
        with pytest.raises(gquic.Malformed):
            gquic.message_length(b"CHLO" + le16(5000) + le16(0))


# ===========================================================================
# Versions Q024-Q043: public header
# ===========================================================================

class TestPublicHeader:
    def test_q043_client_hello(self):
        a, sink, ctx = run([(True, public_packet(padded(stream_frame(1, chlo("dns.google.com")))))])
        rec, = sink.logs("quic")
        assert list(rec) == list(quic.FIELDS)
        assert rec["version"] == "Q043"
        assert rec["server_name"] == "dns.google.com"
        assert rec["client_initial_dcid"] == CID.hex()
        assert rec["history"] == "IS"
        assert a.user_agent == "Chrome/99.0 Linux"
        assert sink.names == [("quic_sni", "dns.google.com")]
        assert ctx.service == ["quic"]
        assert sink.logs("tls") == []

    def test_q035_little_endian(self):
        # Before Q039 the packet number and the STREAM frame's length are little-endian.
        pkt = public_packet(stream_frame(1, chlo(ver=b"Q035"), big=False), version=b"Q035", pn=0x0201,
                            pn_len=2, big=False, label=False)
        a, sink, _ = run([(True, pkt)])
        assert sink.logs("quic")[0]["version"] == "Q035"
        assert a.server_name == "www.example.com"

    def test_q025_private_flags(self):
        pkt = public_packet(stream_frame(1, chlo(ver=b"Q025"), big=False), version=b"Q025", big=False,
                            label=False, private_flags=True)
        a, sink, _ = run([(True, pkt)])
        assert a.server_name == "www.example.com"

    def test_chlo_over_two_packets_out_of_order(self):
        msg = chlo(pad=1500)
        p1 = public_packet(stream_frame(1, msg[:1000]), pn=1)
        p2 = public_packet(stream_frame(1, msg[1000:], offset=1000), pn=2)
        a, sink, _ = run([(True, p2), (True, p1)])
        assert a.server_name == "www.example.com"
        assert sink.logs("quic")[0]["history"] == "IIS"

    def test_repeated_chlo_without_the_first_one(self):
        # The capture starts after a REJ: the client's second CHLO sits at stream offset 1024.
        a, sink, _ = run([(True, public_packet(stream_frame(1, chlo("late.example"), offset=1024), pn=3))])
        assert a.server_name == "late.example"
        assert sink.logs("quic")[0]["history"] == "IS"

    def test_frames_before_the_stream_frame(self):
        # PING, then ACK (01ntllmm: 1-byte largest, 1-byte block, no blocks, no timestamps), then STREAM.
        ack = u8(0x40) + u8(1) + b"\x00\x00" + u8(1) + u8(0)
        pkt = public_packet(u8(0x07) + ack + stream_frame(1, chlo()) + bytes(20))
        a, _, _ = run([(True, pkt)])
        assert a.server_name == "www.example.com"

    def test_server_reject_and_encrypted_packets(self):
        rej = handshake_message(b"REJ\x00", [(b"STK\x00", b"t" * 20), (b"SNO\x00", b"n" * 10)])
        datagrams = [
            (True, public_packet(stream_frame(1, chlo()))),
            (False, public_packet(stream_frame(1, rej), version=None, is_orig=False)),
            (True, public_packet(b"\x99" * 50, version=None)[:20] + b"\x55" * 60),   # encrypted
            (False, bytes([0x08]) + CID + b"\x02" + b"\x77" * 60),                    # encrypted
        ]
        a, sink, _ = run(datagrams)
        assert a.server_message.tag == b"REJ\x00"
        assert sink.logs("quic")[0]["history"] == "ISisOo"

    def test_server_only_capture(self):
        rej = handshake_message(b"REJ\x00", [(b"STK\x00", b"t" * 20)])
        pkt = public_packet(stream_frame(1, rej), version=None, is_orig=False)
        assert gquic.detect(pkt, False)
        a, sink, ctx = run([(False, pkt)])
        rec, = sink.logs("quic")
        assert rec["version"] is None and rec["history"] == "is"
        assert ctx.service == ["quic"]

    def test_version_negotiation(self):
        vn = u8(0x09) + CID + b"Q043Q046Q050"
        assert gquic.detect(vn, False)
        a, sink, _ = run([(True, public_packet(stream_frame(1, chlo(ver=b"Q099")), version=b"Q049")),
                          (False, vn)])
        assert "u" in sink.logs("quic")[0]["history"]

    def test_connection_close(self):
        close = u8(0x02) + (25).to_bytes(4, "big") + (3).to_bytes(2, "big") + b"bye"
        a, sink, _ = run([(True, public_packet(close))])
        assert sink.logs("quic")[0]["history"] == "IC"


# ===========================================================================
# Q046: invariant long header
# ===========================================================================

class TestQ046:
    def test_client_hello(self):
        pkt = q046_packet(padded(stream_frame(1, chlo("i.ytimg.com", ver=b"Q046"))))
        assert pkt[5] == 0x50                          # DCIL nibble 5 = 8 bytes, no SCID
        a, sink, _ = run([(True, pkt),
                          (False, q046_packet(stream_frame(1, handshake_message(b"REJ\x00", [])),
                                              dcid=b"", scid=CID, is_orig=False)),
                          (True, u8(0x43) + CID + b"\x00" * 40)])                     # short header
        rec, = sink.logs("quic")
        assert rec["version"] == "Q046" and rec["server_name"] == "i.ytimg.com"
        assert rec["client_initial_dcid"] == CID.hex() and rec["server_scid"] == CID.hex()
        assert rec["history"] == "ISisO"

    def test_0rtt_packets_are_not_parsed(self):
        pkt = q046_packet(stream_frame(1, chlo()), kind=1)
        bad = pkt[:30] + bytes(len(pkt) - 30)          # encrypted: the hash does not check
        a, sink, _ = run([(True, pkt), (True, bad)])
        assert sink.logs("quic")[0]["history"] == "ZSZ"


# ===========================================================================
# Q050 / T050 / T051: protected Initial packets
# ===========================================================================

DCID = bytes.fromhex("df4a089e4eff5e7a")


def t05x_client_hello(ua: bytes = b"dev Chrome/86.0 Windows", varint_tp: bool = True) -> bytes:
    if varint_tp:                                   # RFC 9000 transport parameters
        tp = (quic.encode_varint(0x01) + quic.encode_varint(4) + b"\x80\x00\x75\x30"   # max_idle_timeout
              + quic.encode_varint(0x3129) + quic.encode_varint(len(ua)) + ua)        # google user agent
    else:                                           # T050: u16 total, then u16 id / u16 length
        body = (0x01).to_bytes(2, "big") + (4).to_bytes(2, "big") + b"\x80\x00\x75\x30" \
            + (0x3129).to_bytes(2, "big") + len(ua).to_bytes(2, "big") + ua
        tp = len(body).to_bytes(2, "big") + body
    return handshake(tls.HS_CLIENT_HELLO, client_hello(
        ciphers=(0x1301, 0x1302, 0x1303),
        extensions=(ext_sni("www.google.com"), ext_alpn(b"h3-T051"),
                    ext_supported_versions_client(0x0304), ext_key_share_client(0x001D),
                    ext(0xFFA5, tp))))


class TestProtectedInitial:
    def test_salts_are_the_published_ones(self):
        assert gquic.IETF_SALTS[b"Q050"].hex() == "504574efd066fe2f9d945cfcdbd3a7f0d3b56b45"
        assert gquic.IETF_SALTS[b"T050"].hex() == "7ff579e5acd072915580304c43a2367c60488310"
        assert gquic.IETF_SALTS[b"T051"].hex() == "7a4edef4e7ccee5fa4506c19124fc8ccda6e033d"

    def test_q050_chlo_in_crypto_frames(self):
        msg = chlo("www.googletagmanager.com", uaid="Chrome/83.0 Android", ver=b"Q050")
        pkt = ietf_initial(b"Q050", padded(gq_crypto_frame(0, msg)), dcid=DCID)
        assert gquic.detect(pkt, True) and not quic.probe(pkt, True)
        a, sink, ctx = run([(True, pkt)])
        rec, = sink.logs("quic")
        assert rec["version"] == "Q050" and rec["server_name"] == "www.googletagmanager.com"
        assert rec["client_initial_dcid"] == DCID.hex() and rec["client_scid"] == ""
        assert a.user_agent == "Chrome/83.0 Android"
        assert ctx.service == ["quic"]

    def test_t051_tls_client_hello_and_server_hello(self):
        ch = t05x_client_hello()
        sh = handshake(tls.HS_SERVER_HELLO, server_hello(
            cipher=0x1301, extensions=(ext_supported_versions_server(0x0304), ext_key_share_server(0x001D))))
        ack = u8(0x40) + u8(1) + b"\x00\x00" + u8(1) + u8(0)
        datagrams = [
            (True, ietf_initial(b"T051", padded(gq_crypto_frame(0, ch[:100])), dcid=DCID, pn=1)),
            (True, ietf_initial(b"T051", padded(gq_crypto_frame(100, ch[100:])), dcid=DCID, pn=2)),
            (False, ietf_initial(b"T051", ack + gq_crypto_frame(0, sh), dcid=b"", scid=DCID,
                                 key_dcid=DCID, is_client=False)),
        ]
        a, sink, ctx = run(datagrams)
        rec, = sink.logs("quic")
        assert rec["version"] == "T051" and rec["server_name"] == "www.google.com"
        assert rec["client_protocol"] == "h3-T051" and rec["ja4"].startswith("q13d")
        assert rec["server_scid"] == DCID.hex()
        assert rec["history"] == "IISis"
        assert a.user_agent == "dev Chrome/86.0 Windows"
        t, = sink.logs("tls")
        assert t["server_name"] == "www.google.com" and t["version"] == "TLSv13"
        assert t["cipher"] == "TLS_AES_128_GCM_SHA256" and t["ssl_history"] == "Cs"
        assert ctx.service == ["quic", "ssl"]

    def test_t050_old_transport_parameter_layout(self):
        pkt = ietf_initial(b"T050", padded(gq_crypto_frame(0, t05x_client_hello(b"Chrome/85", False))),
                           dcid=DCID)
        a, _, _ = run([(True, pkt)])
        assert a.user_agent == "Chrome/85" and a.server_name == "www.google.com"

    def test_wrong_key_is_a_weird_not_garbage(self):
        pkt = ietf_initial(b"Q050", padded(gq_crypto_frame(0, chlo())), dcid=DCID, key_dcid=b"\x00" * 8)
        a, sink, _ = run([(True, pkt)])
        assert a.server_name is None
        assert "quic.gquic_decryption_failed" in sink.weird_names()


# ===========================================================================
# Detection and the hand-over from quic.py
# ===========================================================================

class TestDetection:
    def test_detect(self):
        assert gquic.detect(public_packet(stream_frame(1, chlo())), True)
        assert gquic.detect(q046_packet(stream_frame(1, chlo())), True)
        # IETF QUIC v1 Initial, DNS, junk: not gQUIC
        v1 = u8(0xC3) + (1).to_bytes(4, "big") + u8(8) + DCID + u8(0) + bytes(1200)
        assert not gquic.detect(v1, True)
        dns = bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001")
        assert not gquic.detect(dns, True)
        assert not gquic.detect(b"\x08" + bytes(60), False)            # server packet, hash wrong
        assert not gquic.detect(u8(0x09) + CID + b"HTTP" + bytes(40), True)
        assert not gquic.probe(b"", True) and not gquic.probe(b"\x0d", True)

    def test_registered_after_quic(self):
        from inspector.protocols import MODULES
        assert MODULES.index("gquic") == MODULES.index("quic") + 1
        assert gquic.PORTS == ()                      # 443/udp stays quic.py's (hands gQUIC over)

    def test_quic_analyzer_hands_gquic_over(self):
        pkt = public_packet(padded(stream_frame(1, chlo("s.youtube.com"))), version=b"Q039")
        a, sink, ctx = run([(True, pkt)], analyzer=quic.Analyzer)
        rec, = sink.logs("quic")
        assert rec["version"] == "Q039" and rec["server_name"] == "s.youtube.com"
        assert ctx.service == ["quic"]
        assert sink.weirds == []

    def test_quic_analyzer_keeps_ietf_quic(self):
        ctx, sink = make_ctx("udp")
        a = quic.Analyzer(ctx)
        a.datagram(True, u8(0xC3) + (1).to_bytes(4, "big") + u8(8) + DCID + u8(0) + bytes(1200), 1.0)
        assert a._gquic is None


# ===========================================================================
# Hostile input
# ===========================================================================

class TestHostile:
    def test_random_datagrams(self):
        rnd = random.Random(7)
        for _ in range(300):
            dg = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
            a, _, _ = run([(rnd.random() < 0.5, dg), (True, dg[::-1])])
            gquic.detect(dg, True)

    def test_truncations_and_bit_flips(self):
        rnd = random.Random(11)
        good = [public_packet(stream_frame(1, chlo())), q046_packet(stream_frame(1, chlo())),
                ietf_initial(b"T051", padded(gq_crypto_frame(0, t05x_client_hello())), dcid=DCID)]
        for pkt in good:
            for cut in range(0, len(pkt), 37):
                run([(True, pkt[:cut])])
            for _ in range(60):
                b = bytearray(pkt)
                b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
                run([(True, bytes(b))])

    def test_parse_frames_never_raises(self):
        rnd = random.Random(3)
        for _ in range(500):
            buf = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64)))
            gquic.parse_frames(buf, rnd.random() < 0.5, 1, rnd.choice([None, 25, 43]), rnd.random() < 0.5)


# ===========================================================================
# Corpus: nDPI's view of the gQUIC captures
# ===========================================================================

NDPI_LINE = re.compile(r"^\s*\d+\s+UDP\s+(\S+):(\d+)\s+<?->\s+(\S+):(\d+)\s.*\[proto: [\d.]+/QUIC")
GQUIC_CAPTURES = ("gquic.pcap", "gquic_only_from_server.pcap", "quic046.pcap", "quic_q39.pcap",
                  "quic_q43.pcap", "quic_q46_b.pcap", "quic_q50.pcap", "quic_t50.pcap", "quic_t51.pcap",
                  "youtube_quic.pcap", "youtubeupload.pcap", "http_ipv6.pcap")


def _ndpi_quic_flows(corpus, name):
    out = corpus / "ndpi/tests/cfgs/default/result" / (name + ".out")
    flows = {}
    for line in open(out, encoding="latin-1"):
        m = NDPI_LINE.match(line)
        if not m:
            continue
        ver = re.search(r"\[QUIC ver: ([^\]]+)\]", line)
        host = re.search(r"\[Hostname/SNI: ([^\]]+)\]", line)
        ua = re.search(r"\[User-Agent: ([^\]]+)\]", line)
        flows[frozenset({int(m.group(2)), int(m.group(4))})] = (
            ver and ver.group(1), host and host.group(1), ua and ua.group(1))
    return flows


@pytest.mark.corpus
@pytest.mark.parametrize("name", GQUIC_CAPTURES)
def test_matches_ndpi(corpus, name):
    path = corpus / "ndpi/tests/cfgs/default/pcap" / name
    if not path.exists():
        pytest.skip("not in corpus")
    expected = _ndpi_quic_flows(corpus, name)
    ja4s = ndpi_ja4(corpus, "ndpi/tests/cfgs/default/pcap/" + name)
    checked = 0
    for key, events in conversations(path, "udp").items():
        exp = expected.get(frozenset({key[0][1], key[1][1]}))
        if exp is None or not any(gquic.detect(p, o) for _, o, p, _ in events[:3]):
            continue
        ver, host, ua = exp
        ctx = base.FlowContext(uid="C1", ts=events[0][0], orig_h=key[0][0], orig_p=key[0][1],
                               resp_h=key[1][0], resp_p=key[1][1], transport="udp", sink=RecordingSink())
        a = quic.Analyzer(ctx)                        # 443/udp: through the hand-over
        for ts, is_orig, payload, _ in events:
            if a.wants_more():
                a.datagram(is_orig, payload, ts)
        a.done(events[-1][0])
        g = a._gquic
        assert g is not None, key
        assert "quic" in ctx.service
        if ver and ver.startswith(("Q", "T")):
            assert g.version.decode() == ver, key
        if host:
            assert g.server_name == host, key
        if ua:
            assert g.user_agent == ua, key
        ja4 = ja4s.get(("UDP", key[0][1], key[1][1]))
        if ja4 and g.client_hello is not None:
            assert_ja4_matches_ndpi(g.client_hello.ja4("q"), ja4)
        checked += 1
    assert checked


@pytest.mark.corpus
def test_corpus_gquic_hashes_check(corpus):
    """The first client packet of every Q0xx capture authenticates with the null hash."""
    n = 0
    for name in ("quic_q39.pcap", "quic_q43.pcap", "youtube_quic.pcap", "http_ipv6.pcap"):
        path = corpus / "ndpi/tests/cfgs/default/pcap" / name
        for key, events in conversations(path, "udp").items():
            first = next((p for _, o, p, _ in events if o and p and p[0] & 0x01), None)
            if first is not None and gquic.tag_version(first[9:13]):
                hdr = gquic.parse_public_header(first, True)
                assert gquic.null_hash_ok(first, hdr.hash_at, True), (name, key)
                n += 1
    assert n >= 4


@pytest.mark.corpus
def test_sni_matches_tshark(corpus):
    """tshark's gQUIC dissector (Q0xx public and Q046 headers): the CHLO's SNI tag."""
    import shutil
    import subprocess
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    paths = [corpus / "tcpdump/tests/gquic.pcap"] + [corpus / "ndpi/tests/cfgs/default/pcap" / n
                                                    for n in GQUIC_CAPTURES]
    compared = 0
    for path in paths:
        if not path.exists():
            continue
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "gquic.tag.sni", "-T", "fields",
                              "-e", "udp.srcport", "-e", "udp.dstport", "-e", "gquic.tag.sni"],
                             capture_output=True, text=True, timeout=120).stdout
        expected = {}
        for line in out.splitlines():
            f = line.split("\t")
            if len(f) == 3 and f[2]:
                expected.setdefault(frozenset({int(f[0]), int(f[1])}), f[2])
        for key, events in conversations(path, "udp").items():
            exp = expected.get(frozenset({key[0][1], key[1][1]}))
            if exp is None:
                continue
            a, _, _ = run([(o, p) for _, o, p, _ in events])
            assert a.server_name == exp, (path.name, key)
            compared += 1
    assert compared >= 8
