"""TLS analyzer (inspector/protocols/tls.py) and JA3/JA4 (fingerprints.py).

Unit tests build handshakes from annotated bytes; corpus tests compare with
Zeek's ssl.log baselines, tshark's JA3 and SNI, nDPI's JA4 and Suricata's
published JA3 strings.  The small pcap helpers at the end of this file
(``conversations``, ``RecordingSink``...) are shared with test_proto_quic.py.
"""
from __future__ import annotations

import datetime
import gzip
import hashlib
import random
import re
import shutil
import socket
import subprocess
from collections import OrderedDict
from pathlib import Path

import pytest

from inspector.protocols import fingerprints as fp
from inspector.protocols import tls
from inspector.protocols.base import FlowContext


# ===========================================================================
# Byte builders (every field named)
# ===========================================================================

def u8(v: int) -> bytes:
    return bytes([v])


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def vec8(b: bytes) -> bytes:
    return u8(len(b)) + b


def vec16(b: bytes) -> bytes:
    return u16(len(b)) + b


def vec24(b: bytes) -> bytes:
    return u24(len(b)) + b


def ext(etype: int, body: bytes = b"") -> bytes:
    return u16(etype) + vec16(body)                   # extension_type, extension_data<0..2^16-1>


def ext_sni(*names: str) -> bytes:
    entries = b"".join(u8(0) + vec16(n.encode()) for n in names)  # name_type host_name(0), HostName
    return ext(0x0000, vec16(entries))               # ServerNameList


def ext_alpn(*protos: bytes) -> bytes:
    return ext(0x0010, vec16(b"".join(vec8(p) for p in protos)))  # ProtocolNameList


def ext_supported_versions_client(*versions: int) -> bytes:
    return ext(0x002B, vec8(b"".join(u16(v) for v in versions)))


def ext_supported_versions_server(version: int) -> bytes:
    return ext(0x002B, u16(version))                 # selected_version


def ext_groups(*groups: int) -> bytes:
    return ext(0x000A, vec16(b"".join(u16(g) for g in groups)))


def ext_point_formats(*fmts: int) -> bytes:
    return ext(0x000B, vec8(bytes(fmts)))


def ext_sig_algs(*algs: int) -> bytes:
    return ext(0x000D, vec16(b"".join(u16(a) for a in algs)))


def ext_key_share_client(*groups: int) -> bytes:
    shares = b"".join(u16(g) + vec16(b"\x11" * 32) for g in groups)  # KeyShareEntry: group, key_exchange
    return ext(0x0033, vec16(shares))


def ext_key_share_server(group: int) -> bytes:
    return ext(0x0033, u16(group) + vec16(b"\x22" * 32))


def client_hello(*, version=0x0303, random_=bytes(range(32)), session_id=b"",
                 ciphers=(0x1301, 0xC02F), compression=b"\x00", extensions=()) -> bytes:
    """ClientHello handshake body (RFC 8446 §4.1.2)."""
    body = (u16(version)                              # legacy_version
            + random_                                 # random (32)
            + vec8(session_id)                        # legacy_session_id<0..32>
            + vec16(b"".join(u16(c) for c in ciphers))  # cipher_suites<2..2^16-2>
            + vec8(compression))                      # legacy_compression_methods<1..2^8-1>
    if extensions is not None:
        body += vec16(b"".join(extensions))           # extensions<8..2^16-1>
    return body


def server_hello(*, version=0x0303, random_=b"\x42" * 32, session_id=b"", cipher=0xC02F,
                 extensions=()) -> bytes:
    return (u16(version) + random_ + vec8(session_id) + u16(cipher)
            + u8(0)                                   # legacy_compression_method
            + vec16(b"".join(extensions)))


def handshake(msg_type: int, body: bytes) -> bytes:
    return u8(msg_type) + vec24(body)                 # HandshakeType, uint24 length, body


def record(ctype: int, payload: bytes, version: int = 0x0303) -> bytes:
    return u8(ctype) + u16(version) + vec16(payload)  # ContentType, legacy_record_version, length


HS, CCS, ALERT, APPDATA = 22, 20, 21, 23


def make_certificate(cn="inspector.test", sans=("inspector.test", "www.inspector.test"),
                     issuer_cn="Test CA") -> bytes:
    """A self-signed DER certificate with DNS subjectAltNames."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Warehouse, Inc."),
                         x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(1234)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
            .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.DER)


# ===========================================================================
# Sink / context
# ===========================================================================

class RecordingSink:
    """Collects what an analyzer sends through its FlowContext."""

    def __init__(self):
        self.records: list[tuple[str, dict]] = []
        self.weirds: list[tuple[str, str]] = []
        self.names: list[tuple[str, str]] = []

    def emit(self, log, record):
        self.records.append((log, record))

    def weird(self, ctx, name, detail, ts):
        self.weirds.append((name, detail))

    def hostname(self, ctx, source, name, ts):
        self.names.append((source, name))

    def dns_answer(self, *a):
        pass

    def expect(self, *a):
        pass

    def logs(self, name):
        return [r for log, r in self.records if log == name]

    def weird_names(self):
        return [w for w, _ in self.weirds]


def make_ctx(transport="tcp", sink=None):
    sink = sink or RecordingSink()
    ctx = FlowContext(uid="CtestUID0001", ts=1000.0, orig_h="10.0.0.1", orig_p=50000,
                      resp_h="10.0.0.2", resp_p=443, transport=transport, sink=sink)
    return ctx, sink


def feed(events, chunk=None, analyzer_cls=tls.Analyzer, seed=None):
    """Feed [(is_orig, bytes)] to a new analyzer, optionally re-segmented:
    ``chunk=1`` byte by byte, ``seed`` random segment sizes."""
    ctx, sink = make_ctx()
    a = analyzer_cls(ctx)
    rnd = random.Random(seed)
    t = 1000.0
    for is_orig, data in events:
        if chunk is None and seed is None:
            pieces = [data]
        else:
            pieces, i = [], 0
            while i < len(data):
                n = chunk or rnd.randint(1, 40)
                pieces.append(data[i:i + n])
                i += n
        for p in pieces:
            t += 0.001
            if a.wants_more():
                a.data(is_orig, p, t)
    a.done(t + 1)
    return a, sink, ctx


# ===========================================================================
# Handshake fixtures
# ===========================================================================

GREASE = 0x0A0A


def tls12_events(cert_der: bytes | None = None):
    """A TLS 1.2 ECDHE-RSA full handshake with certificate, then data."""
    ch = client_hello(version=0x0303, ciphers=(GREASE, 0xC02F, 0xC030, 0x009C, 0x00FF),
                      extensions=(ext(0x1A1A),                            # GREASE extension
                                  ext_sni("shop.example.com"),
                                  ext_groups(0x2A2A, 0x001D, 0x0017),
                                  ext_point_formats(0),
                                  ext_sig_algs(0x0403, 0x0804),
                                  ext_alpn(b"h2", b"http/1.1")))
    sh = server_hello(cipher=0xC02F, extensions=(ext(0xFF01, b"\x00"), ext_alpn(b"h2")))
    cert = handshake(11, vec24(vec24(cert_der or make_certificate())))    # certificate_list
    ske = handshake(12, u8(3) + u16(0x0017) + vec8(b"\x04" + b"\x33" * 64) + b"\x55" * 72)
    shd = handshake(14, b"")
    return [
        (True, record(HS, handshake(1, ch), version=0x0301)),
        # the server flight: four messages in one record
        (False, record(HS, handshake(2, sh) + cert + ske + shd)),
        (True, record(HS, handshake(16, vec8(b"\x04" + b"\x44" * 64)))),   # ClientKeyExchange
        (True, record(CCS, b"\x01")),
        (True, record(HS, b"\x9a" * 40)),              # encrypted Finished
        (False, record(HS, handshake(4, b"\x00\x00\x1c\x20" + vec16(b"T" * 100)))),  # ticket
        (False, record(CCS, b"\x01")),
        (False, record(HS, b"\x7b" * 40)),             # encrypted Finished
        (True, record(APPDATA, b"\x01" * 300)),
        (False, record(APPDATA, b"\x02" * 5000)),
    ]


def tls13_events(compat_ccs=True):
    ch = client_hello(session_id=b"\x77" * 32,
                      ciphers=(0x3A3A, 0x1301, 0x1302, 0x1303),
                      extensions=(ext_sni("api.example.net"),
                                  ext_supported_versions_client(0x4A4A, 0x0304, 0x0303),
                                  ext_groups(0x001D, 0x0017),
                                  ext_key_share_client(0x001D),
                                  ext_sig_algs(0x0403, 0x0804, 0x0401),
                                  ext_alpn(b"h2", b"http/1.1")))
    sh = server_hello(session_id=b"\x77" * 32, cipher=0x1302,
                      extensions=(ext_supported_versions_server(0x0304),
                                  ext_key_share_server(0x001D)))
    ev = [(True, record(HS, handshake(1, ch), version=0x0301)),
          (False, record(HS, handshake(2, sh)))]
    if compat_ccs:
        ev.append((False, record(CCS, b"\x01")))
    ev += [(False, record(APPDATA, b"\xe1" * 2000)),      # EE, Certificate, CV, Finished
           (False, record(APPDATA, b"\xe2" * 300))]
    if compat_ccs:
        ev.append((True, record(CCS, b"\x01")))
    ev += [(True, record(APPDATA, b"\xc1" * 53)),          # client Finished
           (True, record(APPDATA, b"\xc2" * 500)),
           (False, record(APPDATA, b"\xe3" * 900))]
    return ev


# ===========================================================================
# Fingerprints
# ===========================================================================

class TestGrease:
    def test_grease_values(self):
        assert all(fp.is_grease(0x0A0A + 0x1010 * i) for i in range(16))
        assert not fp.is_grease(0x0A1A)
        assert not fp.is_grease(0x1301)
        assert fp.strip_grease([0x0A0A, 1, 0xFAFA, 2]) == [1, 2]


class TestJA3:
    def test_salesforce_readme_examples(self):
        # The two worked examples of the salesforce/ja3 README.
        s = fp.ja3_string(769, [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
                          [0, 10, 11], [23, 24, 25], [0])
        assert s == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
        assert fp.ja3(769, [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
                      [0, 10, 11], [23, 24, 25], [0]) == "ada70206e40642a3e4461f35503241d5"
        s = fp.ja3_string(769, [4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99], [], [], [])
        assert s == "769,4-5-10-9-100-98-3-6-19-18-99,,,"
        assert hashlib.md5(s.encode()).hexdigest() == "de350869b8c85de67a350c8d186f11e6"

    def test_grease_removed_from_ciphers_extensions_curves(self):
        s = fp.ja3_string(771, [0x0A0A, 4865], [0x1A1A, 0, 0xFAFA], [0x2A2A, 29], [0])
        assert s == "771,4865,0,29,0"

    def test_client_hello_ja3(self):
        ch = tls.parse_client_hello(client_hello(
            version=0x0303, ciphers=(GREASE, 0xC02F),
            extensions=(ext_sni("a.b"), ext_groups(0x001D, 0x0017), ext_point_formats(0, 1))))
        assert ch.ja3_string() == "771,49199,0-10-11,29-23,0-1"
        assert ch.ja3() == hashlib.md5(b"771,49199,0-10-11,29-23,0-1").hexdigest()


# The worked example of FoxIO's technical_details/JA4.md.
SPEC_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
SPEC_EXTENSIONS = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005,
                   0x0023, 0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]
SPEC_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


class TestJA4:
    def test_spec_example_from_lists(self):
        got = fp.ja4("t", 0x0303, SPEC_CIPHERS, SPEC_EXTENSIONS, SPEC_SIGALGS, [0x0304, 0x0303], b"h2")
        assert got == "t13d1516h2_8daaf6152771_e5627efa2ab1"
        a, b, c = fp.ja4_raw("t", 0x0303, SPEC_CIPHERS, SPEC_EXTENSIONS, SPEC_SIGALGS,
                             [0x0304, 0x0303], b"h2")
        assert b == "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"
        assert c == ("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
                     "0403,0804,0401,0503,0805,0501,0806,0601")

    def test_spec_example_without_signature_algorithms(self):
        # "If there are no signature algorithms ... the string ends without an underscore"
        _, _, c = fp.ja4_raw("t", 0x0303, SPEC_CIPHERS, SPEC_EXTENSIONS, [], [0x0304], b"h2")
        assert hashlib.sha256(c.encode()).hexdigest()[:12] == "6d807ffa2a79"

    def test_spec_example_from_wire_with_grease(self):
        """The spec's client built as bytes, GREASE sprinkled everywhere."""
        bodies = {0x0000: ext_sni("example.org")[4:], 0x0010: ext_alpn(b"h2", b"http/1.1")[4:],
                  0x002B: ext_supported_versions_client(0x5A5A, 0x0304, 0x0303)[4:],
                  0x000D: ext_sig_algs(0x6A6A, *SPEC_SIGALGS)[4:]}
        exts = [ext(0x0A0A)] + [ext(e, bodies.get(e, b"")) for e in SPEC_EXTENSIONS] + [ext(0xFAFA, b"\0")]
        ch = tls.parse_client_hello(client_hello(ciphers=[0x2A2A] + SPEC_CIPHERS, extensions=exts))
        assert ch.server_name == "example.org"
        assert ch.ja4("t") == "t13d1516h2_8daaf6152771_e5627efa2ab1"
        assert ch.ja4("q").startswith("q13d1516h2_")

    @pytest.mark.parametrize("alpn,expected", [
        (None, "00"), (b"", "00"), (b"h2", "h2"), (b"http/1.1", "h1"), (b"h", "hh"),
        # the non-alphanumeric examples of the spec
        (b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"),
        (b"\x30\x31\xab\xcd", "3d"), (b"\x30\xab\xcd\x31", "01"),
    ])
    def test_alpn_characters(self, alpn, expected):
        assert fp.ja4_alpn(alpn) == expected

    @pytest.mark.parametrize("legacy,versions,expected", [
        (0x0303, None, "12"), (0x0301, None, "10"), (0x0300, None, "s3"), (0x0002, None, "s2"),
        (0x0303, [0x0A0A, 0x0304, 0x0303], "13"), (0x0303, [0x0304, 0x7F1C], "00"),
        (0xFEFD, [0xFEFC, 0xFEFD], "d3"), (0x1234, None, "00"),
    ])
    def test_version(self, legacy, versions, expected):
        assert fp.ja4_version(legacy, versions) == expected

    def test_empty_lists_hash_to_zeros(self):
        got = fp.ja4("t", 0x0301, [], [], [], None, None)
        assert got == "t10i000000_000000000000_000000000000"
        # only SNI and ALPN: the sorted list (without them) is empty
        got = fp.ja4("t", 0x0303, [0x002F], [0x0000, 0x0010], [], None, b"h2")
        assert got.endswith("_000000000000") and got.startswith("t12d0102h2_")

    def test_counts_capped_at_99(self):
        got = fp.ja4("t", 0x0303, list(range(1, 150)), list(range(1, 120)), [], None, None)
        assert got.startswith("t12i9999")


# ===========================================================================
# Hello parsing
# ===========================================================================

class TestHelloParsing:
    def test_client_hello_fields(self):
        ch = tls.parse_client_hello(client_hello(
            session_id=b"\x01" * 32, ciphers=(0x1301, 0x1302),
            extensions=(ext_sni("first.example", "second.example"), ext_alpn(b"h2", b"http/1.1"),
                        ext_supported_versions_client(0x0304, 0x0303), ext_groups(0x001D),
                        ext_point_formats(0), ext_sig_algs(0x0403), ext_key_share_client(0x001D),
                        ext(0x0023, b"ticket"), ext(0x0029, b"psk"))))
        assert ch.server_name == "first.example"
        assert ch.server_names == ["first.example", "second.example"]
        assert ch.alpn == [b"h2", b"http/1.1"] and ch.alpn_text == ["h2", "http/1.1"]
        assert ch.supported_versions == [0x0304, 0x0303]
        assert ch.groups == [0x001D] and ch.point_formats == [0] and ch.sig_algs == [0x0403]
        assert ch.key_share_groups == [0x001D]
        assert ch.session_ticket == b"ticket" and ch.has_psk
        assert ch.extensions == [0x0000, 0x0010, 0x002B, 0x000A, 0x000B, 0x000D, 0x0033, 0x0023, 0x0029]
        assert ch.problems == []

    def test_client_hello_without_extensions(self):
        ch = tls.parse_client_hello(client_hello(version=0x0300, extensions=None))
        assert ch.extensions == [] and ch.server_name is None
        assert ch.ja3_string() == "768,4865-49199,,,"

    def test_non_printable_sni_is_escaped(self):
        ch = tls.parse_client_hello(client_hello(extensions=(ext(0, vec16(u8(0) + vec16(b"a\x00b\xff"))),)))
        assert ch.server_name == "a\\x00b\\xff"

    def test_truncated_extension_block_is_tolerated(self):
        body = client_hello(extensions=(ext_sni("ok.example"), ext_alpn(b"h2")))
        ch = tls.parse_client_hello(body[:-3])
        assert ch.server_name == "ok.example"
        assert "truncated_extensions" in ch.problems
        assert 0x0010 not in ch.extensions

    def test_malformed_fixed_part_raises_malformed(self):
        body = client_hello()
        for cut in range(0, 38):
            with pytest.raises(tls.Malformed):
                tls.parse_client_hello(body[:cut])
        with pytest.raises(tls.Malformed):
            tls.parse_client_hello(u16(0x0303) + bytes(32) + u8(33) + bytes(33))

    def test_server_hello_tls13_and_hrr(self):
        sh = tls.parse_server_hello(server_hello(cipher=0x1301, extensions=(
            ext_supported_versions_server(0x0304), ext_key_share_server(0x001D), ext(0x0029, u16(0)))))
        assert sh.version == 0x0304 and sh.legacy_version == 0x0303
        assert sh.key_share_group == 0x001D and sh.has_psk and not sh.is_hrr
        hrr = tls.parse_server_hello(server_hello(random_=tls.HRR_RANDOM, cipher=0x1301))
        assert hrr.is_hrr

    def test_server_hello_draft_format(self):
        # TLS 1.3 draft-18: version, random, cipher_suite, extensions (no session id)
        sh = tls.parse_server_hello(u16(0x7F12) + b"\x42" * 32 + u16(0x1301) + vec16(b""))
        assert sh.version == 0x7F12 and sh.cipher == 0x1301
        assert tls.version_name(sh.version) == "TLSv13-draft18"

    def test_sslv2_client_hello(self):
        body = (u8(1) + u16(0x0301) + u16(9) + u16(0) + u16(16)
                + b"\x00\x00\x04" + b"\x01\x00\x80" + b"\x00\x00\xff" + b"\xcc" * 16)
        ch = tls.parse_sslv2_client_hello(body)
        assert ch.sslv2 and ch.legacy_version == 0x0301
        assert ch.ciphers == [0x000004, 0x010080, 0x0000FF]
        assert ch.ja3() is None and ch.ja4() is None


class TestNames:
    def test_versions(self):
        assert [tls.version_name(v) for v in (0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0002)] == \
            ["SSLv3", "TLSv10", "TLSv11", "TLSv12", "TLSv13", "SSLv2"]
        assert tls.version_name(0x7F17) == "TLSv13-draft23"
        assert tls.version_name(0xABCD) == "unknown-0xabcd"

    def test_ciphers(self):
        assert tls.cipher_name(0x1301) == "TLS_AES_128_GCM_SHA256"
        assert tls.cipher_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        assert tls.cipher_name(0xCCA8) == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
        assert tls.cipher_name(0x0088) == "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA"
        assert tls.cipher_name(0xC011) == "TLS_ECDHE_RSA_WITH_RC4_128_SHA"
        assert tls.cipher_name(0xC03C) == "TLS_RSA_WITH_ARIA_128_CBC_SHA256"
        assert tls.cipher_name(0xC061) == "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384"
        assert tls.cipher_name(0xC072) == "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256"
        assert tls.cipher_name(0xC09B) == "TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384"
        assert tls.cipher_name(0x0A0A) == "unknown-0x0a0a"
        assert len(tls.CIPHER_SUITES) > 300

    def test_curves(self):
        assert tls.curve_name(23) == "secp256r1" and tls.curve_name(29) == "x25519"
        assert tls.curve_name(0x11EC) == "X25519MLKEM768"


# ===========================================================================
# Analyzer
# ===========================================================================

class TestAnalyzerTLS12:
    @pytest.mark.parametrize("mode", ["whole", "byte_by_byte", "random_segments"])
    def test_full_handshake(self, mode):
        cert = make_certificate()
        kw = {"whole": {}, "byte_by_byte": {"chunk": 1}, "random_segments": {"seed": 7}}[mode]
        a, sink, ctx = feed(tls12_events(cert), **kw)
        [rec] = sink.logs("tls")
        assert list(rec) == list(tls.FIELDS)
        assert rec["uid"] == "CtestUID0001"
        assert rec["version"] == "TLSv12"
        assert rec["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        assert rec["curve"] == "secp256r1"
        assert rec["server_name"] == "shop.example.com"
        assert rec["next_protocol"] == "h2"
        assert rec["client_alpn"] == ["h2", "http/1.1"]
        assert rec["established"] is True
        assert rec["resumed"] is False
        assert rec["ssl_history"] == "CsxknGIti"
        assert rec["subject"] == "CN=inspector.test,O=Warehouse\\, Inc.,C=DE"
        assert rec["issuer"] == "CN=Test CA"
        assert rec["san_dns"] == ["inspector.test", "www.inspector.test"]
        assert rec["ja3"] == hashlib.md5(b"771,49199-49200-156-255,0-10-11-13-16,29-23,0").hexdigest()
        assert rec["ja4"].startswith("t12d0405h2_")
        assert ctx.service == ["ssl"]
        # the certificate names the server too (x509: used only when SNI, Host and DNS named nothing)
        assert sink.names == [("sni", "shop.example.com"), ("x509", "inspector.test")]
        assert sink.weirds == []
        assert not a.wants_more()

    def test_stops_wanting_data_once_established(self):
        ctx, sink = make_ctx()
        a = tls.Analyzer(ctx)
        events = tls12_events()
        for i, (is_orig, data) in enumerate(events):
            a.data(is_orig, data, 1.0 + i)
            if i == 7:                              # the server's encrypted Finished
                assert not a.wants_more()
                assert len(sink.logs("tls")) == 1
        a.done(99.0)
        assert len(sink.logs("tls")) == 1           # written once

    def test_session_id_echo_is_resumption(self):
        sid = b"\x5e" * 32
        ch = client_hello(session_id=sid, extensions=(ext_sni("r.example"),))
        sh = server_hello(session_id=sid, cipher=0xC02F)
        _, sink, _ = feed([
            (True, record(HS, handshake(1, ch))),
            (False, record(HS, handshake(2, sh))),
            (False, record(CCS, b"\x01")), (False, record(HS, b"\x01" * 40)),
            (True, record(CCS, b"\x01")), (True, record(HS, b"\x02" * 40))])
        [rec] = sink.logs("tls")
        assert rec["resumed"] is True and rec["established"] is True
        assert rec["ssl_history"] == "CsiI"

    def test_session_ticket_resumption(self):
        ch = client_hello(extensions=(ext(0x0023, b"T" * 64),))
        _, sink, _ = feed([
            (True, record(HS, handshake(1, ch))),
            (False, record(HS, handshake(2, server_hello(session_id=b"\x09" * 32)))),
            (False, record(CCS, b"\x01")), (False, record(HS, b"\x01" * 40)),
            (True, record(CCS, b"\x01")), (True, record(HS, b"\x02" * 40))])
        assert sink.logs("tls")[0]["resumed"] is True

    def test_alert(self):
        _, sink, _ = feed([
            (True, record(HS, handshake(1, client_hello()))),
            (False, record(ALERT, b"\x02\x28"))])      # fatal handshake_failure
        [rec] = sink.logs("tls")
        assert rec["last_alert"] == "handshake_failure"
        assert rec["ssl_history"] == "Cl"
        assert rec["established"] is False and rec["version"] is None

    def test_handshake_message_split_across_records(self):
        msg = handshake(1, client_hello(extensions=(ext_sni("split.example"), ext(0x0015, bytes(600)))))
        recs = b"".join(record(HS, msg[i:i + 100]) for i in range(0, len(msg), 100))
        _, sink, _ = feed([(True, recs), (False, record(HS, handshake(2, server_hello())))], chunk=7)
        [rec] = sink.logs("tls")
        assert rec["server_name"] == "split.example" and rec["version"] == "TLSv12"
        assert sink.weirds == []


class TestAnalyzerTLS13:
    @pytest.mark.parametrize("chunk", [None, 1, 13])
    def test_with_middlebox_compat_ccs(self, chunk):
        a, sink, ctx = feed(tls13_events(compat_ccs=True), chunk=chunk)
        [rec] = sink.logs("tls")
        assert rec["version"] == "TLSv13"
        assert rec["cipher"] == "TLS_AES_256_GCM_SHA384"
        assert rec["curve"] == "x25519"
        assert rec["server_name"] == "api.example.net"
        assert rec["ssl_history"] == "CsiI"
        assert rec["established"] is True
        assert rec["resumed"] is False               # session id echo does not count in 1.3
        assert rec["subject"] is None and rec["san_dns"] is None
        assert rec["ja4"].startswith("t13d0306h2_")
        assert not a.wants_more()

    def test_without_ccs_established_on_application_data(self):
        _, sink, _ = feed(tls13_events(compat_ccs=False))
        [rec] = sink.logs("tls")
        assert rec["established"] is True and rec["ssl_history"] == "Cs"

    def test_not_established_without_client_data(self):
        ev = [e for e in tls13_events() if not e[0] or e[1][0] == HS]
        _, sink, _ = feed(ev)
        assert sink.logs("tls")[0]["established"] is False

    def test_hello_retry_request(self):
        ch1 = client_hello(extensions=(ext_sni("hrr.example"), ext_supported_versions_client(0x0304)))
        hrr = server_hello(random_=tls.HRR_RANDOM, cipher=0x1301, extensions=(
            ext_supported_versions_server(0x0304), ext(0x0033, u16(0x0017))))
        sh = server_hello(cipher=0x1301, extensions=(ext_supported_versions_server(0x0304),
                                                     ext_key_share_server(0x0017)))
        _, sink, _ = feed([
            (True, record(HS, handshake(1, ch1))), (False, record(HS, handshake(2, hrr))),
            (False, record(CCS, b"\x01")),
            (True, record(CCS, b"\x01")), (True, record(HS, handshake(1, ch1))),
            (False, record(HS, handshake(2, sh))), (False, record(APPDATA, b"x" * 100)),
            (True, record(APPDATA, b"y" * 60))])
        [rec] = sink.logs("tls")
        assert rec["ssl_history"].startswith("CjiIC")
        assert rec["version"] == "TLSv13" and rec["curve"] == "secp256r1"
        assert rec["established"] is True

    def test_psk_resumption(self):
        ch = client_hello(extensions=(ext_supported_versions_client(0x0304), ext(0x0029, b"p")))
        sh = server_hello(cipher=0x1301, extensions=(ext_supported_versions_server(0x0304),
                                                     ext(0x0029, u16(0))))
        _, sink, _ = feed([(True, record(HS, handshake(1, ch))), (False, record(HS, handshake(2, sh)))])
        assert sink.logs("tls")[0]["resumed"] is True


class TestAnalyzerEdges:
    def test_sslv2_compatible_client_hello_then_tls(self):
        v2 = (u8(1) + u16(0x0301) + u16(6) + u16(0) + u16(16)
              + b"\x00\x00\x35" + b"\x00\x00\x2f" + b"\xcc" * 16)
        v2rec = u16(0x8000 | len(v2)) + v2
        assert tls.probe(v2rec, True)
        _, sink, ctx = feed([(True, v2rec),
                             (False, record(HS, handshake(2, server_hello(version=0x0301, cipher=0x0035)),
                                            version=0x0301))])
        [rec] = sink.logs("tls")
        assert rec["version"] == "TLSv10" and rec["cipher"] == "TLS_RSA_WITH_AES_256_CBC_SHA"
        assert rec["ssl_history"] == "Cs" and rec["ja3"] is None
        assert ctx.service == ["ssl"]

    def test_proxy_protocol_v1_header_is_skipped(self):
        hdr = b"PROXY TCP4 192.0.2.1 198.51.100.7 40000 443\r\n"
        first = hdr + record(HS, handshake(1, client_hello(extensions=(ext_sni("behind.lb"),))))
        assert tls.probe(first[:2048], True)
        _, sink, _ = feed([(True, first)], chunk=5)
        assert sink.logs("tls")[0]["server_name"] == "behind.lb"

    def test_proxy_protocol_v2_header_is_skipped(self):
        addr = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + u16(40000) + u16(443)
        hdr = tls.PROXY_V2_SIGNATURE + u8(0x21) + u8(0x11) + vec16(addr)  # v2 PROXY, TCP over IPv4
        first = hdr + record(HS, handshake(1, client_hello(extensions=(ext_sni("v2.lb"),))))
        assert tls.probe(first, True)
        _, sink, _ = feed([(True, first)])
        assert sink.logs("tls")[0]["server_name"] == "v2.lb"

    def test_not_tls_gives_weird_and_no_record(self):
        _, sink, ctx = feed([(True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")])
        assert sink.logs("tls") == []
        assert sink.weird_names() == ["ssl.bad_record"]
        assert ctx.service == []

    def test_record_too_long(self):
        _, sink, _ = feed([(True, record(HS, handshake(1, client_hello()))),
                           (False, u8(22) + u16(0x0303) + u16(40000) + b"x" * 10)])
        assert "ssl.bad_record_length" in sink.weird_names()
        assert len(sink.logs("tls")) == 1

    def test_truncated_handshake_at_end(self):
        msg = handshake(1, client_hello())
        _, sink, _ = feed([(True, record(HS, msg[:30]))])
        assert sink.weird_names() == ["ssl.truncated_handshake"]
        assert sink.logs("tls") == []

    def test_bad_client_hello_weird(self):
        _, sink, _ = feed([(True, record(HS, handshake(1, b"\x03\x03" + b"\x00" * 10)))])
        assert sink.weird_names() == ["ssl.bad_client_hello"]

    def test_oversized_handshake_message_is_skipped_with_weird(self):
        big = handshake(23, b"\xab" * 100_000)              # supplemental data, 100 KB
        ev = [(True, record(HS, handshake(1, client_hello()))),
              (False, record(HS, handshake(2, server_hello()))),
              (False, b"".join(record(HS, big[i:i + 16000]) for i in range(0, len(big), 16000))),
              (False, record(HS, handshake(14, b"")))]
        ctx, sink = make_ctx()
        a = tls.Analyzer(ctx)
        peak = 0
        for is_orig, data in ev:
            for i in range(0, len(data), 1000):
                a.data(is_orig, data[i:i + 1000], 1.0)
                side = a._sides[is_orig]
                peak = max(peak, len(side.hs) + len(side.buf))
        a.done(2.0)
        assert sink.weird_names() == ["ssl.handshake_too_large"]
        assert peak <= tls.MAX_HANDSHAKE + 2 * tls.MAX_RECORD
        assert sink.logs("tls")[0]["ssl_history"] == "Csan"    # parsing resumed after the skip

    def test_oversized_certificate_message_keeps_leaf(self):
        leaf = make_certificate(cn="leaf.example", sans=("leaf.example",))
        chain = vec24(leaf) + vec24(b"\x30" + b"\x00" * 70_000) * 2
        cert_msg = handshake(11, vec24(chain))
        ev = [(True, record(HS, handshake(1, client_hello()))),
              (False, record(HS, handshake(2, server_hello()))),
              (False, b"".join(record(HS, cert_msg[i:i + 16384])
                               for i in range(0, len(cert_msg), 16384))),
              (False, record(HS, handshake(14, b"")))]
        _, sink, _ = feed(ev)
        [rec] = sink.logs("tls")
        assert rec["subject"].startswith("CN=leaf.example") and rec["san_dns"] == ["leaf.example"]
        assert rec["ssl_history"] == "Csxn"
        assert sink.weird_names() == ["ssl.handshake_too_large"]

    def test_bad_certificate_gives_weird(self):
        ev = [(True, record(HS, handshake(1, client_hello()))),
              (False, record(HS, handshake(2, server_hello()) + handshake(11, vec24(vec24(b"\x30\x03junk")))))]
        _, sink, _ = feed(ev)
        assert sink.weird_names() == ["ssl.bad_certificate"]
        assert sink.logs("tls")[0]["subject"] is None

    def test_gap_inside_ciphertext_keeps_sync(self):
        ev = tls13_events()
        ctx, sink = make_ctx()
        a = tls.Analyzer(ctx)
        for i, (is_orig, data) in enumerate(ev):
            if i == 3:                                      # server's 2000-byte protected record
                a.data(is_orig, data[:100], 1.0)
                a.gap(is_orig, 1500, 1.0)
                a.data(is_orig, data[1600:], 1.0)
            else:
                a.data(is_orig, data, 1.0)
        a.done(2.0)
        assert sink.logs("tls")[0]["established"] is True

    def test_gap_inside_handshake_loses_direction(self):
        ev = tls12_events()
        ctx, sink = make_ctx()
        a = tls.Analyzer(ctx)
        a.data(True, ev[0][1], 1.0)
        a.data(False, ev[1][1][:50], 1.0)
        a.gap(False, 200, 1.0)
        a.data(False, ev[1][1][250:], 1.0)
        for is_orig, data in ev[2:]:
            a.data(is_orig, data, 1.0)
        a.done(2.0)
        [rec] = sink.logs("tls")
        assert rec["server_name"] == "shop.example.com" and rec["established"] is False

    def test_nul_in_certificate_names_is_escaped(self):
        der = make_certificate(cn="evil\x00.example", sans=("ok.example", "bad\x00.example"))
        s = tls.x509_record(der, 1.0, True, False)
        assert s["certificate.subject"].startswith("CN=evil\\00.example,")     # RFC 4514 escape
        assert s["san.dns"] == ["ok.example", "bad\\x00.example"]
        assert not any("\x00" in v for v in (s["certificate.subject"], *s["san.dns"]))


class TestProbe:
    def test_positive(self):
        ch = record(HS, handshake(1, client_hello()), version=0x0301)
        sh = record(HS, handshake(2, server_hello()))
        assert tls.probe(ch, True) and tls.probe(ch[:6], True)
        assert tls.probe(sh, False)

    @pytest.mark.parametrize("data", [
        b"", b"\x16", b"\x16\x03\x01\x00", b"GET / HTTP/1.1\r\n", b"SSH-2.0-OpenSSH_9.0\r\n",
        record(23, b"x" * 50), record(HS, handshake(11, b"x" * 50)),
        b"\x16\x03\x05\x00\x40\x01" + b"\x00" * 60,            # record version 3.5
        b"\x16\x03\x01\xff\xff\x01" + b"\x00" * 60,            # record longer than allowed
        b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x00\x00" + b"\x00" * 60,  # hello version 0.0
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.0\r\n",
    ])
    def test_negative(self, data):
        assert not tls.probe(data, True)

    def test_random_never_raises(self):
        rnd = random.Random(1)
        for _ in range(3000):
            n = rnd.randint(0, 64)
            data = bytes(rnd.getrandbits(8) for _ in range(n))
            if rnd.random() < 0.3:
                data = b"\x16\x03" + data
            assert tls.probe(data, rnd.random() < 0.5) in (True, False)


class TestHostile:
    def test_random_bytes_never_raise(self):
        rnd = random.Random(42)
        for i in range(300):
            ctx, sink = make_ctx()
            a = tls.Analyzer(ctx)
            for _ in range(rnd.randint(1, 6)):
                n = rnd.randint(0, 300)
                prefix = record(HS, b"")[:rnd.randint(0, 5)] if rnd.random() < 0.5 else b""
                a.data(rnd.random() < 0.5, prefix + bytes(rnd.getrandbits(8) for _ in range(n)), 1.0)
                if rnd.random() < 0.2:
                    a.gap(rnd.random() < 0.5, rnd.randint(1, 5000), 1.0)
            a.done(2.0)

    def test_every_truncation_of_a_handshake(self):
        events = tls12_events(make_certificate())
        stream_c = b"".join(d for o, d in events if o)
        stream_s = b"".join(d for o, d in events if not o)
        for cut in range(0, len(stream_s), 37):
            _, sink, _ = feed([(True, stream_c[:cut % len(stream_c)]), (False, stream_s[:cut])])
            assert len(sink.logs("tls")) <= 1

    def test_mutated_client_hellos(self):
        body = handshake(1, client_hello(extensions=(ext_sni("m.example"), ext_alpn(b"h2"),
                                                     ext_supported_versions_client(0x0304),
                                                     ext_groups(29), ext_sig_algs(0x0403))))
        rnd = random.Random(3)
        for pos in range(len(body)):
            mutated = bytearray(body)
            mutated[pos] = rnd.getrandbits(8)
            _, sink, _ = feed([(True, record(HS, bytes(mutated)))])
            for name, _detail in sink.weirds:
                assert name.startswith("ssl.")


# ===========================================================================
# pcap helpers (also used by test_proto_quic.py)
# ===========================================================================

def _read_packets(path: Path):
    import dpkt
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        dl = reader.datalink()
        for ts, buf in reader:
            yield float(ts), dl, buf


def _ip_layer(dl: int, buf: bytes):
    import dpkt
    try:
        if dl == 1:
            ip = dpkt.ethernet.Ethernet(buf).data
        elif dl == 113:
            ip = dpkt.sll.SLL(buf).data
        elif dl == 276:
            ip = dpkt.sll2.SLL2(buf).data
        elif dl in (101, 12, 14, 228, 229):
            ip = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        elif dl == 0:
            ip = dpkt.loopback.Loopback(buf).data
        elif dl in (9, 50):                                  # PPP: 2-byte protocol
            b = buf[2:] if buf[:2] == b"\xff\x03" else buf
            proto = int.from_bytes(b[:2], "big")
            ip = dpkt.ip.IP(b[2:]) if proto == 0x21 else dpkt.ip6.IP6(b[2:]) if proto == 0x57 else None
        else:
            return None
    except Exception:
        return None
    return ip if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else None


def _addr(ip, a: bytes) -> str:
    import dpkt
    return socket.inet_ntop(socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6, a)


def conversations(path: Path, proto: str):
    """{((orig_h, orig_p), (resp_h, resp_p)): [(ts, is_orig, payload, gap)]}.

    TCP payloads are put in sequence order per direction for the simple case:
    retransmitted bytes are dropped and a jump forward becomes ``gap`` (with
    ``payload`` None).  The originator is the SYN sender (else the first
    sender)."""
    import dpkt
    conns: OrderedDict = OrderedDict()
    nxt: dict = {}
    for ts, dl, buf in _read_packets(path):
        ip = _ip_layer(dl, buf)
        if ip is None:
            continue
        l4 = ip.data
        if proto == "tcp" and not isinstance(l4, dpkt.tcp.TCP):
            continue
        if proto == "udp" and not isinstance(l4, dpkt.udp.UDP):
            continue
        s, d = (_addr(ip, ip.src), l4.sport), (_addr(ip, ip.dst), l4.dport)
        if (s, d) in conns:
            key, orig = (s, d), True
        elif (d, s) in conns:
            key, orig = (d, s), False
        else:
            synack = proto == "tcp" and l4.flags & dpkt.tcp.TH_SYN and l4.flags & dpkt.tcp.TH_ACK
            key, orig = ((d, s), False) if synack else ((s, d), True)
            conns[key] = []
        payload = bytes(l4.data)
        if proto == "udp":
            conns[key].append((ts, orig, payload, 0))
            continue
        k = (key, orig)
        if l4.flags & dpkt.tcp.TH_SYN:
            nxt[k] = (l4.seq + 1) & 0xFFFFFFFF
            continue
        if not payload:
            continue
        exp = nxt.setdefault(k, l4.seq)
        ahead = (l4.seq - exp) & 0xFFFFFFFF
        if ahead == 0:
            conns[key].append((ts, orig, payload, 0))
        elif ahead < 0x80000000:
            conns[key].append((ts, orig, None, ahead))
            conns[key].append((ts, orig, payload, 0))
        else:
            back = (exp - l4.seq) & 0xFFFFFFFF
            if back >= len(payload):
                continue                                     # pure retransmission
            conns[key].append((ts, orig, payload[back:], 0))
        nxt[k] = (l4.seq + len(payload)) & 0xFFFFFFFF
    return conns


def run_tls_conversation(key, events, start_at_tls=True):
    """Run the TLS analyzer over one TCP conversation.  With ``start_at_tls``
    each direction starts at its first segment that probes as TLS (what a
    STARTTLS-aware dispatcher does)."""
    sink = RecordingSink()
    ctx = FlowContext(uid="C" + str(key[0][1]), ts=events[0][0], orig_h=key[0][0], orig_p=key[0][1],
                      resp_h=key[1][0], resp_p=key[1][1], transport="tcp", sink=sink)
    a = tls.Analyzer(ctx)
    started = {True: not start_at_tls, False: not start_at_tls}
    for ts, is_orig, payload, gap in events:
        if not a.wants_more():
            break
        if payload is None:
            if started[is_orig]:
                a.gap(is_orig, gap, ts)
            continue
        if not started[is_orig]:
            if not tls.probe(payload[:2048], is_orig):
                continue
            started[is_orig] = True
        a.data(is_orig, payload, ts)
    a.done(events[-1][0])
    return a, sink, ctx


# ===========================================================================
# Corpus cross-checks
# ===========================================================================

def _zeek_value(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "T" if v else "F"
    return str(v)


# Zeek ssl.log baselines whose TLS starts a TCP stream or follows a
# STARTTLS-style exchange we can skip by probing.
ZEEK_SSL_TRACES = [
    "zeek/Traces/tls/tls-conn-with-extensions.pcap", "zeek/Traces/tls/tls1_1.pcap",
    "zeek/Traces/tls/tls13-ech.pcap", "zeek/Traces/tls/ecdhe.pcap", "zeek/Traces/tls/dhe.pcap",
    "zeek/Traces/tls/google-cert-repeat.pcap", "zeek/Traces/tls/google-duplicate.pcap",
    "zeek/Traces/tls/tls13_wolfssl.pcap",
    "zeek/Traces/tls/tls13draft23-chrome67.0.3368.0-canary.pcap",
    "zeek/Traces/tls/tls-fragmented-handshake.pcap.gz", "zeek/Traces/tls/CVE-2015-3194.pcap",
    "zeek/Traces/tls/ml-dsa-44-cert.pcap", "zeek/Traces/tls/imap-starttls.pcap",
    "zeek/Traces/tls/smtp-starttls.pcap", "zeek/Traces/tls/xmpp-starttls.pcap",
    "zeek/Traces/tls/irc-starttls.pcap", "zeek/Traces/rdp/rdp-to-ssl.pcap",
    "zeek/Traces/mysql/encrypted.pcap",
]
ZEEK_SSL_FIELDS = ("version", "cipher", "curve", "server_name", "resumed", "last_alert",
                   "next_protocol", "established", "ssl_history", "subject", "issuer")


@pytest.fixture(scope="module")
def index(corpus):
    import corpus as C
    return {r["dest"]: r for r in C.load_index(corpus)}


@pytest.mark.corpus
@pytest.mark.parametrize("trace", ZEEK_SSL_TRACES)
def test_matches_zeek_ssl_log(corpus, index, trace):
    import corpus as C
    row = index.get(trace)
    if row is None or not (corpus / trace).exists():
        pytest.skip("trace not in corpus")
    logs = [p for p in row["oracle_corpus_paths"] if p.endswith("/ssl.log")]
    assert logs, "no ssl.log baseline"
    mine = {}
    for key, events in conversations(corpus / trace, "tcp").items():
        if events:
            _, sink, _ = run_tls_conversation(key, events)
            for rec in sink.logs("tls"):
                mine[(key[0][1], key[1][1])] = rec
    checked = 0
    for z in C.read_zeek_log(corpus / logs[0], typed=False):
        rec = mine.get((int(z["id.orig_p"]), int(z["id.resp_p"])))
        assert rec is not None, "no tls record for %s" % z["id.orig_p"]
        for f in ZEEK_SSL_FIELDS:
            if f in z:
                assert _zeek_value(rec[f]) == z[f], (f, z[f], rec[f])
        checked += 1
    assert checked


def _tshark():
    return shutil.which("tshark")


def _tls_rows(index, tag_any, limit):
    rows = [r for r in index.values() if set(tag_any) & set(r["tags"]) and "tls" in r["tags"]
            and not r["truncated"] and r["packets"] <= 600 and not r["dest"].endswith(".gz")]
    rows.sort(key=lambda r: r["dest"])
    return rows[:limit]


@pytest.mark.corpus
@pytest.mark.slow
def test_ja3_and_sni_match_tshark(corpus, index):
    """tshark's JA3 full string / hash and SNI of every TCP ClientHello."""
    if not _tshark():
        pytest.skip("tshark not installed")
    rows = _tls_rows(index, ["sni", "tls12", "tls13", "tls-legacy"], 60)
    compared = 0
    for r in rows:
        path = corpus / r["dest"]
        out = subprocess.run(
            ["tshark", "-n", "-r", str(path), "-Y", "tls.handshake.type == 1 && tcp", "-T", "fields",
             "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tls.handshake.extensions_server_name",
             "-e", "tls.handshake.ja3_full", "-e", "tls.handshake.ja3"],
            capture_output=True, text=True, timeout=300).stdout
        expected = {}
        for line in out.splitlines():
            f = line.split("\t")
            if len(f) == 5 and f[3]:
                expected.setdefault((int(f[0]), int(f[1])), (f[2], f[3], f[4]))
        for key, events in conversations(path, "tcp").items():
            exp = expected.get((key[0][1], key[1][1]))
            if not events or exp is None:
                continue
            a, _, _ = run_tls_conversation(key, events)
            ch = a.client_hello
            if ch is None or ch.problems:
                continue                    # malformed hellos: tshark and we differ on purpose
            assert ((ch.server_name or ""), ch.ja3_string(), ch.ja3()) == exp, (r["dest"], key)
            compared += 1
    assert compared >= 40


NDPI_FLOW = re.compile(r"^\s+\d+\s+(TCP|UDP) (\S+):(\d+) <?-> (\S+):(\d+) .*\[JA4: ([^\]]+)\]")


def ndpi_ja4(corpus, dest):
    out = corpus / "ndpi/tests/cfgs/default/result" / (dest.split("/")[-1] + ".out")
    found = {}
    if out.exists():
        for line in open(out, encoding="latin-1"):
            m = NDPI_FLOW.match(line)
            if m:
                found[(m.group(1), int(m.group(3)), int(m.group(5)))] = m.group(6)
                found[(m.group(1), int(m.group(5)), int(m.group(3)))] = m.group(6)
    return found


def assert_ja4_matches_ndpi(mine: str, ndpi: str):
    """nDPI's JA4 agrees with the spec on the version, the counts and both
    hashes; its first part deviates in two documented ways we do not copy:
    it writes ``d`` whether or not there is an SNI extension and takes the
    first *two* ALPN characters instead of the first and last.  An empty
    list hashes to ``000000000000`` in the spec, to SHA-256("") in nDPI."""
    m_a, m_b, m_c = mine.split("_")
    n_a, n_b, n_c = ndpi.split("_")
    empty = hashlib.sha256(b"").hexdigest()[:12]
    assert m_a[:3] == n_a[:3] and m_a[4:8] == n_a[4:8], (mine, ndpi)
    assert m_b == (n_b if n_b != empty else "000000000000"), (mine, ndpi)
    assert m_c == (n_c if n_c != empty else "000000000000"), (mine, ndpi)


@pytest.mark.corpus
def test_ja4_matches_ndpi(corpus, index):
    rows = [r for r in index.values() if r["source"] == "ndpi" and "tls" in r["tags"]
            and "sni" in r["tags"] and r["packets"] <= 400]
    rows.sort(key=lambda r: r["dest"])
    compared = 0
    for r in rows[:25]:
        expected = ndpi_ja4(corpus, r["dest"])
        for key, events in conversations(corpus / r["dest"], "tcp").items():
            exp = expected.get(("TCP", key[0][1], key[1][1]))
            if not events or exp is None:
                continue
            a, _, _ = run_tls_conversation(key, events)
            if a.client_hello is None or a.client_hello.sslv2:
                continue
            assert_ja4_matches_ndpi(a.client_hello.ja4("t"), exp)
            compared += 1
    assert compared >= 15


SURICATA_JA3 = {
    "suricata-verify/tests/tls/tls13-draft19/tls13_draft19.pcap": "tls/tls13-draft19",
    "suricata-verify/tests/tls/tls13-draft22/tls13_draft22.pcap": "tls/tls13-draft22",
    "suricata-verify/tests/tls/tls13-draft23/tls13_draft23.pcap": "tls/tls13-draft23",
    "suricata-verify/tests/tls/tls13-draft28/tls13_draft28.pcap": "tls/tls13-draft28-frames",
    "suricata-verify/tests/tls-duplicate-hello/input.pcap": "tls-duplicate-hello",
}


@pytest.mark.corpus
@pytest.mark.parametrize("pcap", sorted(SURICATA_JA3))
def test_ja3_matches_suricata_expectations(corpus, pcap):
    """Suricata's test.yaml files publish JA3 strings/hashes for these captures."""
    test_yaml = corpus / "suricata-verify/tests" / SURICATA_JA3[pcap] / "test.yaml"
    if not (corpus / pcap).exists() or not test_yaml.exists():
        pytest.skip("not in corpus")
    text = test_yaml.read_text()
    strings = re.findall(r'tls\.ja3\.string: "([^"]*)"', text)
    hashes = re.findall(r'tls\.ja3\.hash: "([0-9a-f]{32})"', text)
    assert strings
    ours_s, ours_h = set(), set()
    for key, events in conversations(corpus / pcap, "tcp").items():
        if events:
            a, _, _ = run_tls_conversation(key, events)
            if a.client_hello is not None:
                ours_s.add(a.client_hello.ja3_string())
                ours_h.add(a.client_hello.ja3())
    assert set(strings) <= ours_s
    assert set(hashes) <= ours_h


@pytest.mark.corpus
def test_certificate_matches_ndpi(corpus, index):
    """Subject / issuer / SANs of a server certificate that nDPI also prints."""
    path = corpus / "ndpi/tests/cfgs/default/pcap/443-git.pcap"
    if not path.exists():
        pytest.skip("not in corpus")
    recs = []
    for key, events in conversations(path, "tcp").items():
        if events:
            recs += run_tls_conversation(key, events)[1].logs("tls")
    rec = next(r for r in recs if r["server_name"] == "github.com")
    assert rec["subject"] == ("CN=github.com,O=GitHub\\, Inc.,L=San Francisco,ST=California,C=US,"
                              "postalCode=94107,street=88 Colin P Kelly\\, Jr Street,"
                              "serialNumber=5157550,jurisdictionST=Delaware,jurisdictionC=US,"
                              "businessCategory=Private Organization") or \
        rec["subject"].startswith("CN=github.com,O=GitHub\\, Inc.,L=San Francisco,ST=California,C=US")
    assert rec["issuer"] == ("CN=DigiCert SHA2 Extended Validation Server CA,OU=www.digicert.com,"
                             "O=DigiCert Inc,C=US")
    assert rec["san_dns"] == ["github.com", "www.github.com"]
    assert rec["version"] == "TLSv12" and rec["established"] is True


@pytest.mark.corpus
def test_corpus_tls_captures_never_raise(corpus, index):
    """Every TCP conversation of the TLS-tagged captures, fed from its first
    byte (no probing): no exception, only ``ssl.*`` weirds."""
    rows = [r for r in index.values() if "tls" in r["tags"] and r["packets"] <= 1000]
    rows.sort(key=lambda r: r["dest"])
    for r in rows[::3]:
        for key, events in conversations(corpus / r["dest"], "tcp").items():
            if events:
                _, sink, _ = run_tls_conversation(key, events, start_at_tls=False)
                assert all(w.startswith("ssl.") for w in sink.weird_names())
