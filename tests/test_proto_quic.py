"""QUIC analyzer (inspector/protocols/quic.py).

* RFC 9001 Appendix A and RFC 9369 Appendix A: the published keys, the
  published protected client Initial decrypts to the published ClientHello
  (and protecting that payload again gives the published bytes), the server
  Initial decrypts to the published ServerHello;
* packets built here with the derived keys: a ClientHello split over two
  Initial packets in two datagrams (out of order, with a retransmission),
  coalesced packets, Retry, CONNECTION_CLOSE, version negotiation, short
  headers -- checked against Zeek's quic.log ``history`` letters;
* hostile input: random datagrams, truncations, bit flips never raise;
* corpus: Zeek quic.log / ssl.log baselines and tshark's SNI.
"""
from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from inspector.protocols import quic, tls
from test_proto_tls import (RecordingSink, client_hello, conversations, ext, ext_alpn,
                            ext_key_share_client, ext_key_share_server, ext_sni,
                            ext_supported_versions_client, ext_supported_versions_server,
                            handshake, make_ctx, ndpi_ja4, assert_ja4_matches_ndpi,
                            server_hello, u16, u8)


def h(text: str) -> bytes:
    """Hex as printed in the RFCs (whitespace ignored)."""
    return bytes.fromhex("".join(text.split()))


# ===========================================================================
# RFC 9001 Appendix A (QUIC v1)
# ===========================================================================

DCID = h("8394c8f03e515708")

RFC9001_CRYPTO_FRAME = h("""
060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868
04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578
616d706c652e636f6dff01000100000a 00080006001d00170018001000070005
04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
0d0010000e0403050306030203080408 050806002d00020101001c0002400100
3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
75300901100f088394c8f03e51570806 048000ffff""")

RFC9001_CLIENT_INITIAL = h("""
c000000001088394c8f03e5157080000 449e7b9aec34d1b1c98dd7689fb8ec11
d242b123dc9bd8bab936b47d92ec356c 0bab7df5976d27cd449f63300099f399
1c260ec4c60d17b31f8429157bb35a12 82a643a8d2262cad67500cadb8e7378c
8eb7539ec4d4905fed1bee1fc8aafba1 7c750e2c7ace01e6005f80fcb7df6212
30c83711b39343fa028cea7f7fb5ff89 eac2308249a02252155e2347b63d58c5
457afd84d05dfffdb20392844ae81215 4682e9cf012f9021a6f0be17ddd0c208
4dce25ff9b06cde535d0f920a2db1bf3 62c23e596d11a4f5a6cf3948838a3aec
4e15daf8500a6ef69ec4e3feb6b1d98e 610ac8b7ec3faf6ad760b7bad1db4ba3
485e8a94dc250ae3fdb41ed15fb6a8e5 eba0fc3dd60bc8e30c5c4287e53805db
059ae0648db2f64264ed5e39be2e20d8 2df566da8dd5998ccabdae053060ae6c
7b4378e846d29f37ed7b4ea9ec5d82e7 961b7f25a9323851f681d582363aa5f8
9937f5a67258bf63ad6f1a0b1d96dbd4 faddfcefc5266ba6611722395c906556
be52afe3f565636ad1b17d508b73d874 3eeb524be22b3dcbc2c7468d54119c74
68449a13d8e3b95811a198f3491de3e7 fe942b330407abf82a4ed7c1b311663a
c69890f4157015853d91e923037c227a 33cdd5ec281ca3f79c44546b9d90ca00
f064c99e3dd97911d39fe9c5d0b23a22 9a234cb36186c4819e8b9c5927726632
291d6a418211cc2962e20fe47feb3edf 330f2c603a9d48c0fcb5699dbfe58964
25c5bac4aee82e57a85aaf4e2513e4f0 5796b07ba2ee47d80506f8d2c25e50fd
14de71e6c418559302f939b0e1abd576 f279c4b2e0feb85c1f28ff18f58891ff
ef132eef2fa09346aee33c28eb130ff2 8f5b766953334113211996d20011a198
e3fc433f9f2541010ae17c1bf202580f 6047472fb36857fe843b19f5984009dd
c324044e847a4f4a0ab34f719595de37 252d6235365e9b84392b061085349d73
203a4a13e96f5432ec0fd4a1ee65accd d5e3904df54c1da510b0ff20dcc0c77f
cb2c0e0eb605cb0504db87632cf3d8b4 dae6e705769d1de354270123cb11450e
fc60ac47683d7b8d0f811365565fd98c 4c8eb936bcab8d069fc33bd801b03ade
a2e1fbc5aa463d08ca19896d2bf59a07 1b851e6c239052172f296bfb5e724047
90a2181014f3b94a4e97d117b4381303 68cc39dbb2d198065ae3986547926cd2
162f40a29f0c3c8745c0f50fba3852e5 66d44575c29d39a03f0cda721984b6f4
40591f355e12d439ff150aab7613499d bd49adabc8676eef023b15b65bfc5ca0
6948109f23f350db82123535eb8a7433 bdabcb909271a6ecbcb58b936a88cd4e
8f2e6ff5800175f113253d8fa9ca8885 c2f552e657dc603f252e1a8e308f76f0
be79e2fb8f5d5fbbe2e30ecadd220723 c8c0aea8078cdfcb3868263ff8f09400
54da48781893a7e49ad5aff4af300cd8 04a6b6279ab3ff3afb64491c85194aab
760d58a606654f9f4400e8b38591356f bf6425aca26dc85244259ff2b19c41b9
f96f3ca9ec1dde434da7d2d392b905dd f3d1f9af93d1af5950bd493f5aa731b4
056df31bd267b6b90a079831aaf579be 0a39013137aac6d404f518cfd4684064
7e78bfe706ca4cf5e9c5453e9f7cfd2b 8b4c8d169a44e55c88d4a9a7f9474241
e221af44860018ab0856972e194cd934""")

RFC9001_SERVER_PAYLOAD = h("""
02000000000600405a020000560303ee fce7f7b37ba1d1632e96677825ddf739
88cfc79825df566dc5430b9a045a1200 130100002e00330024001d00209d3c94
0d89690b84d08a60993c144eca684d10 81287c834d5311bcf32bb9da1a002b00
020304""")

RFC9001_SERVER_INITIAL = h("""
cf000000010008f067a5502a4262b500 4075c0d95a482cd0991cd25b0aac406a
5816b6394100f37a1c69797554780bb3 8cc5a99f5ede4cf73c3ec2493a1839b3
dbcba3f6ea46c5b7684df3548e7ddeb9 c3bf9c73cc3f3bded74b562bfb19fb84
022f8ef4cdd93795d77d06edbb7aaf2f 58891850abbdca3d20398c276456cbc4
2158407dd074ee""")

# ===========================================================================
# RFC 9369 Appendix A (QUIC v2): same payloads, other keys and packet types
# ===========================================================================

RFC9369_CLIENT_INITIAL = h("""
d76b3343cf088394c8f03e5157080000 449ea0c95e82ffe67b6abcdb4298b485
dd04de806071bf03dceebfa162e75d6c 96058bdbfb127cdfcbf903388e99ad04
9f9a3dd4425ae4d0992cfff18ecf0fdb 5a842d09747052f17ac2053d21f57c5d
250f2c4f0e0202b70785b7946e992e58 a59ac52dea6774d4f03b55545243cf1a
12834e3f249a78d395e0d18f4d766004 f1a2674802a747eaa901c3f10cda5500
cb9122faa9f1df66c392079a1b40f0de 1c6054196a11cbea40afb6ef5253cd68
18f6625efce3b6def6ba7e4b37a40f77 32e093daa7d52190935b8da58976ff33
12ae50b187c1433c0f028edcc4c2838b 6a9bfc226ca4b4530e7a4ccee1bfa2a3
d396ae5a3fb512384b2fdd851f784a65 e03f2c4fbe11a53c7777c023462239dd
6f7521a3f6c7d5dd3ec9b3f233773d4b 46d23cc375eb198c63301c21801f6520
bcfb7966fc49b393f0061d974a2706df 8c4a9449f11d7f3d2dcbb90c6b877045
636e7c0c0fe4eb0f697545460c806910 d2c355f1d253bc9d2452aaa549e27a1f
ac7cf4ed77f322e8fa894b6a83810a34 b361901751a6f5eb65a0326e07de7c12
16ccce2d0193f958bb3850a833f7ae43 2b65bc5a53975c155aa4bcb4f7b2c4e5
4df16efaf6ddea94e2c50b4cd1dfe060 17e0e9d02900cffe1935e0491d77ffb4
fdf85290fdd893d577b1131a610ef6a5 c32b2ee0293617a37cbb08b847741c3b
8017c25ca9052ca1079d8b78aebd4787 6d330a30f6a8c6d61dd1ab5589329de7
14d19d61370f8149748c72f132f0fc99 f34d766c6938597040d8f9e2bb522ff9
9c63a344d6a2ae8aa8e51b7b90a4a806 105fcbca31506c446151adfeceb51b91
abfe43960977c87471cf9ad4074d30e1 0d6a7f03c63bd5d4317f68ff325ba3bd
80bf4dc8b52a0ba031758022eb025cdd 770b44d6d6cf0670f4e990b22347a7db
848265e3e5eb72dfe8299ad7481a4083 22cac55786e52f633b2fb6b614eaed18
d703dd84045a274ae8bfa73379661388 d6991fe39b0d93debb41700b41f90a15
c4d526250235ddcd6776fc77bc97e7a4 17ebcb31600d01e57f32162a8560cacc
7e27a096d37a1a86952ec71bd89a3e9a 30a2a26162984d7740f81193e8238e61
f6b5b984d4d3dfa033c1bb7e4f0037fe bf406d91c0dccf32acf423cfa1e70710
10d3f270121b493ce85054ef58bada42 310138fe081adb04e2bd901f2f13458b
3d6758158197107c14ebb193230cd115 7380aa79cae1374a7c1e5bbcb80ee23e
06ebfde206bfb0fcbc0edc4ebec30966 1bdd908d532eb0c6adc38b7ca7331dce
8dfce39ab71e7c32d318d136b6100671 a1ae6a6600e3899f31f0eed19e3417d1
34b90c9058f8632c798d4490da498730 7cba922d61c39805d072b589bd52fdf1
e86215c2d54e6670e07383a27bbffb5a ddf47d66aa85a0c6f9f32e59d85a44dd
5d3b22dc2be80919b490437ae4f36a0a e55edf1d0b5cb4e9a3ecabee93dfc6e3
8d209d0fa6536d27a5d6fbb17641cde2 7525d61093f1b28072d111b2b4ae5f89
d5974ee12e5cf7d5da4d6a31123041f3 3e61407e76cffcdcfd7e19ba58cf4b53
6f4c4938ae79324dc402894b44faf8af bab35282ab659d13c93f70412e85cb19
9a37ddec600545473cfb5a05e08d0b20 9973b2172b4d21fb69745a262ccde96b
a18b2faa745b6fe189cf772a9f84cbfc""")

RFC9369_SERVER_INITIAL = h("""
dc6b3343cf0008f067a5502a4262b500 4075d92faaf16f05d8a4398c47089698
baeea26b91eb761d9b89237bbf872630 17915358230035f7fd3945d88965cf17
f9af6e16886c61bfc703106fbaf3cb4c fa52382dd16a393e42757507698075b2
c984c707f0a0812d8cd5a6881eaf21ce da98f4bd23f6fe1a3e2c43edd9ce7ca8
4bed8521e2e140""")

KEYS = {
    # version: (initial_secret, client (secret, key, iv, hp), server (secret, key, iv, hp))
    quic.VERSION_1: (
        "7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44",
        ("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
         "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
         "9f50449e04a0e810283a1e9933adedd2"),
        ("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b",
         "cf3a5331653c364c88f0f379b6067e37", "0ac1493ca1905853b0bba03e",
         "c206b8d9b9f0f37644430b490eeaa314")),
    quic.VERSION_2: (
        "2062e8b3cd8d52092614b8071d0aa1fb7c2e3ac193f78b280e72d8f5751f6aba",
        ("14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
         "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
         "45b95e15235d6f45a6b19cbcb0294ba9"),
        ("0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1",
         "82db637861d55e1d011f19ea71d5d2a7", "dd13c276499c0249d3310652",
         "edf6d05c83121201b436e16877593c3a")),
}
CLIENT_INITIAL = {quic.VERSION_1: RFC9001_CLIENT_INITIAL, quic.VERSION_2: RFC9369_CLIENT_INITIAL}
SERVER_INITIAL = {quic.VERSION_1: RFC9001_SERVER_INITIAL, quic.VERSION_2: RFC9369_SERVER_INITIAL}
VERSIONS = [quic.VERSION_1, quic.VERSION_2]


class TestKeySchedule:
    def test_hkdf_labels(self):
        # RFC 9001 A.1 and RFC 9369 A.1 label encodings
        assert quic.hkdf_label(b"client in", 32) == h("00200f746c73313320636c69656e7420696e00")
        assert quic.hkdf_label(b"server in", 32) == h("00200f746c7331332073657276657220696e00")
        assert quic.hkdf_label(b"quic key", 16) == h("00100e746c7331332071756963206b657900")
        assert quic.hkdf_label(b"quic iv", 12) == h("000c0d746c733133207175696320697600")
        assert quic.hkdf_label(b"quic hp", 16) == h("00100d746c733133207175696320687000")
        assert quic.hkdf_label(b"quicv2 key", 16) == h("001010746c73313320717569637632206b657900")
        assert quic.hkdf_label(b"quicv2 iv", 12) == h("000c0f746c7331332071756963763220697600")
        assert quic.hkdf_label(b"quicv2 hp", 16) == h("00100f746c7331332071756963763220687000")

    @pytest.mark.parametrize("version", VERSIONS)
    def test_published_keys(self, version):
        initial, client, server = KEYS[version]
        assert quic.hkdf_extract(quic.VERSIONS[version].salt, DCID).hex() == initial
        for is_client, expected in ((True, client), (False, server)):
            k = quic.initial_keys(version, DCID, is_client)
            assert (k.secret.hex(), k.key.hex(), k.iv.hex(), k.hp.hex()) == expected

    def test_header_protection_mask(self):
        # RFC 9001 A.2 / A.3 and RFC 9369 A.2 / A.3 samples and masks
        k1c = quic.initial_keys(quic.VERSION_1, DCID, True)
        assert k1c.mask(h("d1b1c98dd7689fb8ec11d242b123dc9b")) == h("437b9aec36")
        k1s = quic.initial_keys(quic.VERSION_1, DCID, False)
        assert k1s.mask(h("2cd0991cd25b0aac406a5816b6394100")) == h("2ec0d8356a")
        k2c = quic.initial_keys(quic.VERSION_2, DCID, True)
        assert k2c.mask(h("ffe67b6abcdb4298b485dd04de806071")) == h("94a0c95e80")
        k2s = quic.initial_keys(quic.VERSION_2, DCID, False)
        assert k2s.mask(h("6f05d8a4398c47089698baeea26b91eb")) == h("4dd92e91ea")


class TestPublishedPackets:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_client_initial_decrypts_to_published_client_hello(self, version):
        pkt = CLIENT_INITIAL[version]
        assert len(pkt) == 1200
        hdr = quic.parse_long_header(pkt, 0)
        assert (hdr.kind, hdr.version, hdr.dcid, hdr.scid, hdr.token) == ("initial", version, DCID, b"", b"")
        assert hdr.end == 1200
        pn, payload = quic.unprotect(pkt, hdr, quic.initial_keys(version, DCID, True), -1)
        assert pn == 2
        assert len(payload) == 1162
        assert payload == RFC9001_CRYPTO_FRAME + bytes(1162 - len(RFC9001_CRYPTO_FRAME))
        frames = quic.parse_frames(payload)
        assert frames.bad is None and frames.close is None
        [(off, data)] = frames.crypto
        assert off == 0 and data == RFC9001_CRYPTO_FRAME[4:]
        ch = tls.parse_client_hello(data[4:])
        assert ch.server_name == "example.com"
        assert ch.alpn == [b"alpn"]
        assert ch.supported_versions == [0x0304]
        assert ch.ciphers == [0x1301, 0x1302]

    @pytest.mark.parametrize("version", VERSIONS)
    def test_protecting_the_published_payload_gives_the_published_packet(self, version):
        payload = RFC9001_CRYPTO_FRAME + bytes(1162 - len(RFC9001_CRYPTO_FRAME))
        pkt = protect(version, "initial", DCID, b"", 2, payload, quic.initial_keys(version, DCID, True))
        assert pkt == CLIENT_INITIAL[version]

    @pytest.mark.parametrize("version", VERSIONS)
    def test_server_initial_decrypts_to_published_server_hello(self, version):
        pkt = SERVER_INITIAL[version]
        hdr = quic.parse_long_header(pkt, 0)
        assert hdr.kind == "initial" and hdr.dcid == b"" and hdr.scid == h("f067a5502a4262b5")
        pn, payload = quic.unprotect(pkt, hdr, quic.initial_keys(version, DCID, False), -1)
        assert pn == 1 and payload == RFC9001_SERVER_PAYLOAD
        frames = quic.parse_frames(payload)
        [(off, data)] = frames.crypto
        sh = tls.parse_server_hello(data[4:])
        assert sh.version == 0x0304 and sh.cipher == 0x1301 and sh.key_share_group == 0x001D

    @pytest.mark.parametrize("version", VERSIONS)
    def test_analyzer_on_published_packets(self, version):
        a, sink, ctx = run([(True, CLIENT_INITIAL[version]), (False, SERVER_INITIAL[version])])
        [rec] = sink.logs("quic")
        assert list(rec) == list(quic.FIELDS)
        assert rec["version"] == ("1" if version == quic.VERSION_1 else "quicv2")
        assert rec["client_initial_dcid"] == "8394c8f03e515708"
        assert rec["client_scid"] == "" and rec["server_scid"] == "f067a5502a4262b5"
        assert rec["server_name"] == "example.com"
        assert rec["client_protocol"] == "alpn"
        assert rec["history"] == "ISis"
        assert rec["ja4"] == a.client_hello.ja4("q") and rec["ja4"].startswith("q13d0211an_")
        [t] = sink.logs("tls")
        assert list(t) == list(tls.FIELDS)
        assert (t["version"], t["cipher"], t["curve"], t["server_name"], t["ssl_history"],
                t["established"]) == ("TLSv13", "TLS_AES_128_GCM_SHA256", "x25519", "example.com",
                                       "Cs", False)
        assert ctx.service == ["quic", "ssl"]
        assert sink.names == [("quic_sni", "example.com")]
        assert sink.weirds == []

    def test_tampered_packet_fails_authentication(self):
        bad = bytearray(RFC9001_CLIENT_INITIAL)
        bad[600] ^= 0x01
        _, sink, ctx = run([(True, bytes(bad))])
        assert sink.weird_names() == ["quic.decryption_failed"]
        assert sink.logs("quic")[0]["history"] == "I" and ctx.service == []


# ===========================================================================
# Building packets with derived keys
# ===========================================================================

def protect(version, kind, dcid, scid, pn, payload, keys, pn_len=4, token=b"", first_bits=0):
    """A protected long-header packet (RFC 9001 §5.3-5.4)."""
    types = quic.VERSIONS[version].types
    first = 0xC0 | (types.index(kind) << 4) | first_bits | (pn_len - 1)
    head = (u8(first) + version.to_bytes(4, "big")
            + u8(len(dcid)) + dcid + u8(len(scid)) + scid)
    if kind == "initial":
        head += quic.encode_varint(len(token)) + token
    head += quic.encode_varint(pn_len + len(payload) + 16)       # Length
    pn_bytes = (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    ciphertext = keys.seal(pn, head + pn_bytes, payload)
    mask = keys.mask(ciphertext[4 - pn_len:20 - pn_len])           # sample at pn_offset + 4
    masked_first = bytes([head[0] ^ (mask[0] & 0x0F)])
    masked_pn = bytes(b ^ m for b, m in zip(pn_bytes, mask[1:]))
    return masked_first + head[1:] + masked_pn + ciphertext


def unprotected(version, kind, dcid, scid, body=b"\x00" * 40):
    """A long-header packet we do not decrypt (Handshake, 0-RTT)."""
    types = quic.VERSIONS[version].types
    first = 0xC0 | (types.index(kind) << 4) | 3
    return (u8(first) + version.to_bytes(4, "big") + u8(len(dcid)) + dcid + u8(len(scid)) + scid
            + quic.encode_varint(len(body)) + body)


def crypto_frame(offset: int, data: bytes) -> bytes:
    return u8(0x06) + quic.encode_varint(offset) + quic.encode_varint(len(data)) + data


def padded(frames: bytes, size: int = 1100) -> bytes:
    return frames + bytes(max(0, size - len(frames)))


def run(datagrams, ctx_sink=None):
    ctx, sink = ctx_sink or make_ctx("udp")
    a = quic.Analyzer(ctx)
    t = 1000.0
    for is_orig, dg in datagrams:
        t += 0.01
        if a.wants_more():
            a.datagram(is_orig, dg, t)
    a.done(t + 1)
    return a, sink, ctx


CLIENT_DCID = h("1122334455667788")
CLIENT_SCID = h("c1c2c3c4")
SERVER_SCID = h("5e5e5e5e5e5e5e5e")


def big_client_hello() -> bytes:
    """A Chrome-like ClientHello too large for one Initial (post-quantum key share)."""
    body = client_hello(ciphers=(0x1301, 0x1302, 0x1303), extensions=(
        ext_sni("split.example.org"), ext_alpn(b"h3"),
        ext_supported_versions_client(0x0304),
        ext(0x0033, u16(1220) + u16(0x11EC) + u16(1216) + b"\x99" * 1216),   # key_share X25519MLKEM768
        ext(0x0039, b"\x01\x02\x03")))                                        # transport parameters
    return handshake(1, body)


def server_flight(version=quic.VERSION_1, dcid=CLIENT_DCID, pn=0):
    sh = handshake(2, server_hello(cipher=0x1301, extensions=(
        ext_supported_versions_server(0x0304), ext_key_share_server(0x001D))))
    keys = quic.initial_keys(version, dcid, False)
    initial = protect(version, "initial", CLIENT_SCID, SERVER_SCID, pn,
                      h("0200000000") + crypto_frame(0, sh), keys, pn_len=2)
    return initial + unprotected(version, "handshake", CLIENT_SCID, SERVER_SCID)


class TestReassembly:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_client_hello_split_over_two_datagrams_out_of_order(self, version):
        ch = big_client_hello()
        assert len(ch) > 1300
        keys = quic.initial_keys(version, CLIENT_DCID, True)
        first = protect(version, "initial", CLIENT_DCID, CLIENT_SCID, 0,
                        padded(crypto_frame(0, ch[:1000])), keys)
        second = protect(version, "initial", CLIENT_DCID, CLIENT_SCID, 1,
                         padded(u8(0x01) + crypto_frame(1000, ch[1000:])), keys)
        a, sink, _ = run([(True, second), (True, first), (True, first),   # reordered + retransmitted
                          (False, server_flight(version))])
        [rec] = sink.logs("quic")
        assert rec["server_name"] == "split.example.org"
        assert rec["client_protocol"] == "h3"
        assert rec["history"] == "IISIish"
        assert rec["client_initial_dcid"] == CLIENT_DCID.hex()
        assert rec["client_scid"] == CLIENT_SCID.hex() and rec["server_scid"] == SERVER_SCID.hex()
        assert rec["ja4"].startswith("q13d0305h3_")
        [t] = sink.logs("tls")
        assert t["version"] == "TLSv13" and t["curve"] == "x25519" and t["ssl_history"] == "Cs"
        assert sink.weirds == []

    def test_crypto_frames_in_one_packet_and_overlaps(self):
        ch = big_client_hello()
        keys = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, True)
        frames = crypto_frame(700, ch[700:]) + crypto_frame(0, ch[:800])     # overlapping, reversed
        pkt = protect(quic.VERSION_1, "initial", CLIENT_DCID, b"", 0, padded(frames, 1200), keys)
        a, sink, _ = run([(True, pkt)])
        assert sink.logs("quic")[0]["server_name"] == "split.example.org"

    def test_crypto_stream_is_bounded(self):
        s = quic.CryptoStream()
        s.add(quic.MAX_CRYPTO - 10, b"x" * 20)
        assert s.overflow and not s.pending
        s = quic.CryptoStream()
        for off in range(1, 40):
            s.add(off * 2000, b"y" * 1999)
        assert s.pending_bytes <= quic.MAX_CRYPTO and s.data == b""


class TestHistory:
    def test_coalesced_packets_padding_and_short_headers(self):
        ch = handshake(1, client_hello(extensions=(ext_sni("c.example"), ext_alpn(b"h3"),
                                                   ext_supported_versions_client(0x0304),
                                                   ext_key_share_client(0x001D))))
        keys = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, True)
        initial = protect(quic.VERSION_1, "initial", CLIENT_DCID, CLIENT_SCID, 0,
                          padded(crypto_frame(0, ch), 300), keys)
        dg = initial + unprotected(quic.VERSION_1, "0rtt", CLIENT_DCID, CLIENT_SCID) + bytes(700)
        short = u8(0x40 | 0x01) + SERVER_SCID + b"\xaa" * 40      # short header, fixed bit set
        evs = [(True, dg), (False, server_flight())] + [(True, short)] * 5 + [(False, short)] * 2
        _, sink, _ = run(evs)
        # I S (ClientHello complete) Z (0-RTT) X (zeros after the last packet);
        # server: i s h; short packets at counts 1, 2, 4.
        assert sink.logs("quic")[0]["history"] == "ISZXishOOOoo"

    def test_retry_starts_a_new_record_and_new_keys(self):
        ch = handshake(1, client_hello(extensions=(ext_sni("retry.example"),)))
        k1 = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, True)
        first = protect(quic.VERSION_1, "initial", CLIENT_DCID, b"", 0, padded(crypto_frame(0, ch)), k1)
        retry = (u8(0xF0) + (1).to_bytes(4, "big") + u8(0) + u8(len(SERVER_SCID)) + SERVER_SCID
                 + b"token" + b"\x00" * 16)                        # token + integrity tag
        k2 = quic.initial_keys(quic.VERSION_1, SERVER_SCID, True)
        second = protect(quic.VERSION_1, "initial", SERVER_SCID, b"", 1,
                         padded(crypto_frame(0, ch)), k2, token=b"token")
        _, sink, _ = run([(True, first), (False, retry), (True, second),
                          (False, server_flight(dcid=SERVER_SCID))])
        r1, r2 = sink.logs("quic")
        assert (r1["history"], r1["client_initial_dcid"], r1["server_scid"]) == \
            ("ISr", CLIENT_DCID.hex(), None)
        assert (r2["history"], r2["client_initial_dcid"], r2["server_name"]) == \
            ("ISish", SERVER_SCID.hex(), "retry.example")
        [t] = sink.logs("tls")
        assert t["ssl_history"] == "CCs"

    def test_connection_close_in_initial_ends_the_record(self):
        ch = handshake(1, client_hello())
        kc = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, True)
        ks = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, False)
        close = u8(0x1C) + quic.encode_varint(0x0128) + u8(0x06) + quic.encode_varint(4) + b"nope"
        evs = [(True, protect(quic.VERSION_1, "initial", CLIENT_DCID, b"", 0, padded(crypto_frame(0, ch)), kc)),
               (False, protect(quic.VERSION_1, "initial", b"", SERVER_SCID, 0, close, ks, pn_len=1)),
               (True, u8(0x41) + b"\x00" * 30)]
        _, sink, _ = run(evs)
        # Like Zeek: the close writes the record; a short-header packet alone
        # does not start a new one.
        [r1] = sink.logs("quic")
        assert r1["history"] == "ISic"

    def test_version_negotiation_and_unknown_versions(self):
        vn = u8(0xC0) + bytes(4) + u8(4) + h("01020304") + u8(4) + h("05060708") + h("00000001")
        ch = handshake(1, client_hello())
        kc = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, True)
        pkt = protect(quic.VERSION_1, "initial", CLIENT_DCID, b"", 0, padded(crypto_frame(0, ch)), kc)
        _, sink, _ = run([(True, pkt), (False, vn)])
        [rec] = sink.logs("quic")
        assert rec["history"] == "ISu"
        unknown = u8(0xC0) + h("babababa") + u8(8) + CLIENT_DCID + u8(0) + bytes(1100)
        _, sink, _ = run([(True, unknown)])
        assert sink.logs("quic")[0]["version"] == "unknown-babababa"
        assert sink.logs("quic")[0]["history"] == "U"
        assert sink.weird_names() == ["quic.unhandled_version"]

    def test_server_initial_before_client_is_not_decrypted(self):
        _, sink, ctx = run([(False, SERVER_INITIAL[quic.VERSION_1])])
        assert sink.logs("quic")[0]["history"] == "i" and ctx.service == []
        assert sink.logs("tls") == []


class TestWire:
    @pytest.mark.parametrize("raw,value", [
        # RFC 9000 Appendix A.1 examples
        ("c2197c5eff14e88c", 151288809941952652), ("9d7f3e7d", 494878333),
        ("7bbd", 15293), ("25", 37), ("4025", 37)])
    def test_varints(self, raw, value):
        assert quic.read_varint(h(raw), 0) == (value, len(h(raw)))
        if raw != "4025":
            assert quic.encode_varint(value) == h(raw)

    def test_packet_number_decoding(self):
        # RFC 9000 Appendix A.3 example
        assert quic.decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32
        assert quic.decode_packet_number(-1, 0, 8) == 0
        assert quic.decode_packet_number(0xFF, 0x01, 8) == 0x101

    def test_frames(self):
        # PING; ACK (largest 5, delay 0, 1 extra range, first range 0, gap 1, length 0);
        # CRYPTO at offset 3; PADDING
        f = quic.parse_frames(h("01") + h("02 05 00 01 00 01 00") + crypto_frame(3, b"abc") + bytes(5))
        assert f.bad is None and f.crypto == [(3, b"abc")]
        f = quic.parse_frames(h("03 05 00 00 00 01 02 03") + h("1d 07 02") + b"ok")
        assert f.bad is None and f.close == (7, b"ok")
        f = quic.parse_frames(h("0800 05") + b"hello")                  # STREAM (length absent)
        assert f.bad is None
        f = quic.parse_frames(h("40 40 00"))                            # unknown 2-byte frame type
        assert f.bad and f.crypto == []
        f = quic.parse_frames(h("06 00 10") + b"short")
        assert f.bad == "truncated frame"


class TestProbe:
    @pytest.mark.parametrize("version", VERSIONS)
    def test_positive(self, version):
        assert quic.probe(CLIENT_INITIAL[version], True)
        assert quic.probe(SERVER_INITIAL[version], False)
        assert quic.probe(unprotected(version, "0rtt", CLIENT_DCID, b""), True)

    @pytest.mark.parametrize("data", [
        b"", b"\xc0", b"\xc0\x00\x00\x00\x01", h("40") + bytes(30),      # short header
        h("c0babababa08") + bytes(30),                                   # unknown version
        h("c000000001 15") + bytes(40),                                  # DCID length 21
        h("f000000001 08") + bytes(40),                                  # Retry
        h("8000000000 04") + bytes(20),                                  # version negotiation
        b"\x16\x03\x01\x00\xf1\x01", b"GET / HTTP/1.1\r\n",
    ])
    def test_negative(self, data):
        assert not quic.probe(data, True)


class TestHostile:
    def test_random_datagrams(self):
        rnd = random.Random(9)
        for _ in range(300):
            dgs = []
            for _ in range(rnd.randint(1, 5)):
                body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 200)))
                if rnd.random() < 0.5:
                    body = h("c000000001") + body
                dgs.append((rnd.random() < 0.5, body))
            run(dgs)

    def test_truncations_and_bit_flips_of_the_published_packet(self):
        pkt = RFC9001_CLIENT_INITIAL
        for cut in list(range(0, 60)) + list(range(60, 1200, 97)):
            run([(True, pkt[:cut])])
        rnd = random.Random(5)
        for _ in range(200):
            m = bytearray(pkt)
            m[rnd.randrange(0, 30)] = rnd.getrandbits(8)
            _, sink, _ = run([(True, bytes(m))])
            assert all(w.startswith("quic.") for w in sink.weird_names())

    def test_random_frames_inside_valid_protection(self):
        rnd = random.Random(11)
        keys = quic.initial_keys(quic.VERSION_1, CLIENT_DCID, True)
        for i in range(150):
            payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300)))
            if rnd.random() < 0.5:
                payload = crypto_frame(rnd.randint(0, 3000), payload[:50]) + payload
            pkt = protect(quic.VERSION_1, "initial", CLIENT_DCID, b"", i, padded(payload, 60), keys)
            _, sink, _ = run([(True, pkt)])
            assert all(w.startswith("quic.") for w in sink.weird_names())

    def test_gives_up_on_non_quic_traffic(self):
        """What a QUIC port can also carry (OpenVPN, DTLS): no record, few
        weirds, and the analyzer stops asking for data."""
        rnd = random.Random(2)
        dgs = [(True, h("38") + bytes(rnd.getrandbits(8) for _ in range(80))),     # OpenVPN reset
               (False, h("40") + bytes(rnd.getrandbits(8) for _ in range(80))),
               (True, h("17fefd") + bytes(rnd.getrandbits(8) for _ in range(80))),  # DTLS 1.2 data
               (True, h("c0") + bytes(rnd.getrandbits(8) for _ in range(80)))]
        dgs += [(True, h("c3") + bytes(100))] * 50
        a, sink, ctx = run(dgs)
        assert not a.wants_more()
        assert sink.logs("quic") == [] and sink.logs("tls") == [] and ctx.service == []
        assert len(sink.weirds) <= 3

    def test_stream_data_is_treated_as_datagrams(self):
        ctx, sink = make_ctx("udp")
        a = quic.Analyzer(ctx)
        a.data(True, RFC9001_CLIENT_INITIAL, 1.0)
        a.done(2.0)
        assert sink.logs("quic")[0]["server_name"] == "example.com"


# ===========================================================================
# Corpus cross-checks
# ===========================================================================

ZEEK_QUIC_FIELDS = ("version", "client_initial_dcid", "client_scid", "server_scid",
                    "server_name", "client_protocol", "history")
ZEEK_SSL_FIELDS = ("version", "cipher", "curve", "server_name", "resumed", "last_alert",
                   "next_protocol", "established", "ssl_history")


def run_udp_conversation(key, events):
    sink = RecordingSink()
    from inspector.protocols.base import FlowContext
    ctx = FlowContext(uid="C" + str(key[0][1]), ts=events[0][0], orig_h=key[0][0], orig_p=key[0][1],
                      resp_h=key[1][0], resp_p=key[1][1], transport="udp", sink=sink)
    a = quic.Analyzer(ctx)
    for ts, is_orig, payload, _ in events:
        if a.wants_more():
            a.datagram(is_orig, payload, ts)
    a.done(events[-1][0])
    return a, sink, ctx


def _zeek(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "T" if v else "F"
    return str(v)


@pytest.fixture(scope="module")
def index(corpus):
    import corpus as C
    return {r["dest"]: r for r in C.load_index(corpus)}


def _quic_traces():
    import corpus as C
    root = C.corpus_root()
    if not (root / "INDEX.jsonl").exists():
        return []
    return sorted(r["dest"] for r in C.load_index(root) if r["source"] == "zeek" and "/quic/" in r["dest"]
                  and any(p.endswith(("quic.log", "ssl.log", "quic.log.cut", "ssl.log.cut"))
                          for p in r["oracle_corpus_paths"]))


@pytest.mark.corpus
@pytest.mark.parametrize("trace", _quic_traces() or ["(no corpus)"])
def test_matches_zeek_quic_and_ssl_logs(corpus, index, trace):
    import corpus as C
    row = index.get(trace)
    if row is None:
        pytest.skip("trace not in corpus")
    mine = {"quic": [], "tls": []}
    for key, events in conversations(corpus / trace, "udp").items():
        if any(quic.probe(p[:2048], o) for _, o, p, _ in events):
            _, sink, _ = run_udp_conversation(key, events)
            for log, rec in sink.records:
                mine[log].append((key, rec))
    checked = 0
    for path in row["oracle_corpus_paths"]:
        log = "quic" if "/quic.log" in path else "tls" if "/ssl.log" in path else None
        if log is None:
            continue
        fields = ZEEK_QUIC_FIELDS if log == "quic" else ZEEK_SSL_FIELDS
        rows = C.read_zeek_log(corpus / path, typed=False)
        for z in rows:
            cands = [rec for key, rec in mine[log]
                     if "id.orig_p" not in z or int(z["id.orig_p"]) == key[0][1]]
            cands = [rec for rec in cands
                     if all(_zeek(rec[f]) == (z[f] if z[f] != "" else "") for f in fields if f in z)]
            assert cands, (path, z)
            mine[log] = [(k, r) for k, r in mine[log] if r is not cands[0]]
            checked += 1
    assert checked


@pytest.mark.corpus
@pytest.mark.slow
def test_sni_matches_tshark(corpus, index):
    """tshark decrypts QUIC Initials too: compare the ClientHello SNI."""
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    rows = sorted((r for r in index.values() if "quic" in r["tags"] and "sni" in r["tags"]
                   and r["packets"] <= 1000), key=lambda r: r["dest"])
    compared = 0
    for r in rows:
        path = corpus / r["dest"]
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "quic && tls.handshake.type == 1",
                              "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport",
                              "-e", "tls.handshake.extensions_server_name"],
                             capture_output=True, text=True, timeout=300).stdout
        expected = {}
        for line in out.splitlines():
            f = line.split("\t")
            if len(f) == 3 and f[2]:
                expected.setdefault((int(f[0]), int(f[1])), f[2].split(",")[0])
        for key, events in conversations(path, "udp").items():
            exp = expected.get((key[0][1], key[1][1]))
            if exp is None:
                continue
            a, _, _ = run_udp_conversation(key, events)
            if a.client_hello is None:
                continue                                # e.g. Google T05x: not decrypted
            assert a.client_hello.server_name == exp, (r["dest"], key)
            compared += 1
    assert compared >= 15


@pytest.mark.corpus
def test_quic_ja4_matches_ndpi(corpus, index):
    rows = sorted((r for r in index.values() if r["source"] == "ndpi" and "quic" in r["tags"]),
                  key=lambda r: r["dest"])
    compared = 0
    for r in rows:
        expected = ndpi_ja4(corpus, r["dest"])
        for key, events in conversations(corpus / r["dest"], "udp").items():
            exp = expected.get(("UDP", key[0][1], key[1][1]))
            if exp is None:
                continue
            a, _, _ = run_udp_conversation(key, events)
            if a.client_hello is not None:
                assert_ja4_matches_ndpi(a.client_hello.ja4("q"), exp)
                compared += 1
    assert compared >= 6


@pytest.mark.corpus
def test_corpus_quic_captures_never_raise(corpus, index):
    rows = sorted((r for r in index.values() if "quic" in r["tags"]), key=lambda r: r["dest"])
    for r in rows:
        for key, events in conversations(corpus / r["dest"], "udp").items():
            if events:
                _, sink, _ = run_udp_conversation(key, events)
                assert all(w.startswith("quic.") for w in sink.weird_names())
