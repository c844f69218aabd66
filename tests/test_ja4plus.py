"""JA4+ fingerprints (JA4S, JA4X, JA4H, JA4T: ``inspector/protocols/ja4plus.py``) and HASSH,
checked against the vectors of the published specifications:

* JA4S, JA4X, JA4H, JA4T: FoxIO's technical_details/JA4S.md, JA4X.md, JA4H.md, JA4T.md
  (https://github.com/FoxIO-LLC/ja4, FoxIO License 1.1), and the JA4X values FoxIO publishes for
  Microsoft's and DigiCert's certificates (rust/ja4 snapshot of browsers-x509.pcapng), rebuilt
  here as certificates with the same name and extension layout;
* HASSH / HASSHServer: Salesforce's README (https://github.com/salesforce/hassh): the Cyberduck
  client example.
"""
from __future__ import annotations

import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inspector.protocols import ja4plus

# ----------------------------------------------------------------------------------------------
# JA4S
# ----------------------------------------------------------------------------------------------


def test_ja4s_spec_example():
    """JA4S.md: TLS 1.2, extensions 0005,0017,ff01,0000, no ALPN, cipher c030."""
    args = ("t", 0x0303, None, 0xC030, [0x0005, 0x0017, 0xFF01, 0x0000], None)
    assert ja4plus.ja4s_raw(*args) == "t120400_c030_0005,0017,ff01,0000"
    assert ja4plus.ja4s(*args) == "t120400_c030_4e8089b08790"


def test_ja4s_tls13_quic_alpn():
    """TLS 1.3 is read from supported_versions; ALPN h3's first and last characters; QUIC is q."""
    fp = ja4plus.ja4s("q", 0x0303, 0x0304, 0x1301, [0x002B, 0x0033], b"h3")
    assert fp == "q1302h3_1301_" + hashlib.sha256(b"002b,0033").hexdigest()[:12]


# ----------------------------------------------------------------------------------------------
# JA4X: certificates with the RDN and extension layout of the published examples
# ----------------------------------------------------------------------------------------------

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_KEY = ec.generate_private_key(ec.SECP256R1())
_OID = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}


def _name(*attrs):
    return x509.Name([x509.NameAttribute(_OID[k], v) for k, v in attrs])


def _cert(issuer, subject, extensions) -> bytes:
    b = (x509.CertificateBuilder().issuer_name(issuer).subject_name(subject).public_key(_KEY.public_key())
         .serial_number(1).not_valid_before(T0).not_valid_after(T0 + datetime.timedelta(days=1)))
    for e in extensions:
        b = b.add_extension(e, False)
    return b.sign(_KEY, hashes.SHA256()).public_bytes(Encoding.DER)


_KU = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
_SAN = x509.SubjectAlternativeName([x509.DNSName("a.example")])


def test_ja4x_spec_example():
    """JA4X.md: issuer and subject CN, C, ST, O (550403,550406,550408,55040a); extensions keyUsage,
    extKeyUsage, subjectAltName (551d0f,551d25,551d11) -> 96a6439c8f5c_96a6439c8f5c_aae71e8db6d7."""
    n = _name(("CN", "x"), ("C", "US"), ("ST", "WA"), ("O", "Org"))
    der = _cert(n, n, [_KU, _EKU, _SAN])
    assert ja4plus.ja4x_raw(der) == ("550403,550406,550408,55040a_550403,550406,550408,55040a_"
                                     "551d0f,551d25,551d11")
    assert ja4plus.ja4x(der) == "96a6439c8f5c_96a6439c8f5c_aae71e8db6d7"


def test_ja4x_published_issuer_and_subject_hashes():
    """FoxIO's value for edge.microsoft.com's leaf starts a373a9f83c6b_2bab15409345: issuer C, O, CN;
    subject C, ST, L, O, CN (the order RDNs are seen in, not sorted)."""
    der = _cert(_name(("C", "US"), ("O", "Microsoft Corporation"), ("CN", "Microsoft Azure TLS Issuing CA 05")),
                _name(("C", "US"), ("ST", "WA"), ("L", "Redmond"), ("O", "Microsoft Corporation"),
                      ("CN", "edge.microsoft.com")), [])
    assert ja4plus.ja4x(der) == "a373a9f83c6b_2bab15409345_000000000000"    # no extensions: zeros


@pytest.mark.parametrize("der", [b"", b"\x30\x03junk", b"\x04\x02ab", b"\x30\x82\xff\xff" + b"\x00" * 8])
def test_ja4x_of_malformed_der_is_none(der):
    assert ja4plus.ja4x(der) is None


# ----------------------------------------------------------------------------------------------
# JA4H
# ----------------------------------------------------------------------------------------------

_POST = [("Host", "192.168.1.1"), ("Content-Length", "664"), ("Accept", "application/json, */*; q=0.01"),
         ("X-Requested-With", "XMLHttpRequest"), ("User-Agent", "Mozilla/5.0"),
         ("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8"), ("Origin", "http://192.168.1.1"),
         ("Referer", "http://192.168.1.1/Main"), ("Accept-Encoding", "gzip, deflate"),
         ("Accept-Language", "en-US,en;q=0.9"),
         ("Cookie", "1P_JAR=2023-06-07-17; AEC=AUEFqZdaLLwaXJHyxA8-Cu0i0N4klp_vV3XOuyEYeiWlp4QaeIvSv6t4XKM; "
                    "OGPC=19027681-1:; NID=511=rRELE2o91XNLo6eayqEN7Lf2ue7EcSHVkew3oxf4jzyF8vix2BzxTRvda8MYBFEkLyC1"
                    "xjTcqSIjbC-wV2r120jr2HFau_dHvMxUm9fk6W2J2mddtlMpGMA8qGuAZWt1DSpCFFwHZSKBryGnvRJUeXkc-jw4sXdWhgC"
                    "Kxeu3f01Na4YsBYGf; DV=A84BtBIPqhgmIDlq9acmfs7ik-duiZjdmUPDG3eW3QIAAAA"),
         ("Connection", "close")]


def test_ja4h_spec_example():
    """JA4H.md: the POST example: header names 47d05ed57293, sorted cookie names 21864220ae3d,
    sorted cookie pairs e97928733c74; 10 headers without Cookie and Referer; en-US -> enus."""
    assert ja4plus.ja4h("POST", "1.1", _POST) == "po11cr10enus_47d05ed57293_21864220ae3d_e97928733c74"
    raw = ja4plus.ja4h_raw("POST", "1.1", _POST)
    assert raw.startswith("po11cr10enus_Host,Content-Length,Accept,X-Requested-With,User-Agent,Content-Type,"
                          "Origin,Accept-Encoding,Accept-Language,Connection_1P_JAR,AEC,DV,NID,OGPC_1P_JAR=")


def test_ja4h_http2_example_headers():
    """JA4H.md, the HTTP/2 GET: 11 header names in order (pseudo-headers left out) -> 974ebe531c03."""
    headers = [(":method", "GET"), (":path", "/public/api/alerts"), ("Host", "www.cnn.com"), ("Cookie", "sato=1"),
               ("Sec-Ch-Ua", ""), ("Sec-Ch-Ua-Mobile", "?0"), ("User-Agent", "Mozilla/5.0"),
               ("Sec-Ch-Ua-Platform", '""'), ("Accept", "*/*"), ("Sec-Fetch-Site", "same-origin"),
               ("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Dest", "empty"), ("Referer", "https://www.cnn.com/"),
               ("Accept-Encoding", "gzip, deflate"), ("Accept-Language", "en-US,en;q=0.9")]
    a, b, _c, _d = ja4plus.ja4h("GET", "2", headers).split("_")
    assert (a, b) == ("ge20cr11enus", "974ebe531c03")


def test_ja4h_in_http_log():
    """http.jsonl: the JA4H of the spec's POST, header names as the client wrote them."""
    from inspector.protocols import http
    from test_proto_tls import make_ctx
    request = (b"POST /plugins/unassigned.devices/UnassignedDevices.php HTTP/1.1\r\n"
               + b"".join(f"{n}: {v}\r\n".encode() for n, v in _POST) + b"\r\n" + b"a" * 664)
    ctx, sink = make_ctx()
    a = http.Analyzer(ctx)
    a.data(True, request, 1.0)
    a.data(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1.1)
    a.done(2.0)
    [rec] = sink.logs("http")
    assert rec["ja4h"] == "po11cr10enus_47d05ed57293_21864220ae3d_e97928733c74"


@pytest.mark.parametrize("language, code", [("da, en-GB;q=0.8, en;q=0.7", "da00"), ("en-US,en;q=0.9", "enus"),
                                            ("ru-RU", "ruru"), (None, "0000")])
def test_ja4h_accept_language(language, code):
    headers = [("Host", "h")] + ([("Accept-Language", language)] if language is not None else [])
    fp = ja4plus.ja4h("GET", "1.0", headers)
    assert fp[:12] == "ge10nn%02d%s" % (len(headers), code)
    assert fp.endswith("_000000000000_000000000000")            # no cookie: zeros


# ----------------------------------------------------------------------------------------------
# JA4T
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("window, options, fp", [
    # JA4T.md: Windows 10 (MSS, NOP, WS, NOP, NOP, SACK permitted)
    (64240, bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 8, 1, 1, 4, 2]), "64240_2-1-3-1-1-4_1460_8"),
    # Ubuntu 22.04 (MSS, SACK permitted, timestamps, NOP, window scale)
    (65535, bytes([2, 4, 0x05, 0xB4, 4, 2, 8, 10]) + bytes(8) + bytes([1, 3, 3, 8]), "65535_2-4-8-1-3_1460_8"),
    # macOS: ends with EOL and a padding byte, both kind 0
    (65535, bytes([2, 4, 0x05, 0xB4, 1, 3, 3, 6, 1, 1, 8, 10]) + bytes(8) + bytes([4, 2, 0, 0]),
     "65535_2-1-3-1-1-8-4-0-0_1460_6"),
    (1024, bytes([2, 4, 0x05, 0xB4]), "1024_2_1460_00"),        # Nmap
    (65535, b"", "65535_00_00_00"),                            # Zmap
    (1024, bytes([2, 9, 1]), "1024_2_00_00"),                  # a malformed option ends the list
])
def test_ja4t_spec_examples(window, options, fp):
    assert ja4plus.ja4t(window, options) == fp


# ----------------------------------------------------------------------------------------------
# HASSH (Salesforce, BSD 3-Clause)
# ----------------------------------------------------------------------------------------------

_CYBERDUCK = {
    "kex": ("curve25519-sha256@libssh.org,diffie-hellman-group-exchange-sha256,ecdh-sha2-nistp521,"
            "ecdh-sha2-nistp384,ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1,"
            "diffie-hellman-group14-sha1,diffie-hellman-group14-sha256,diffie-hellman-group15-sha512,"
            "diffie-hellman-group16-sha512,diffie-hellman-group17-sha512,diffie-hellman-group18-sha512,"
            "diffie-hellman-group14-sha256@ssh.com,diffie-hellman-group15-sha256,"
            "diffie-hellman-group15-sha256@ssh.com,diffie-hellman-group15-sha384@ssh.com,"
            "diffie-hellman-group16-sha256,diffie-hellman-group16-sha384@ssh.com,"
            "diffie-hellman-group16-sha512@ssh.com,diffie-hellman-group18-sha512@ssh.com"),
    "enc": ("aes128-cbc,aes128-ctr,aes192-cbc,aes192-ctr,aes256-cbc,aes256-ctr,blowfish-cbc,blowfish-ctr,"
            "cast128-cbc,cast128-ctr,idea-cbc,idea-ctr,serpent128-cbc,serpent128-ctr,serpent192-cbc,"
            "serpent192-ctr,serpent256-cbc,serpent256-ctr,3des-cbc,3des-ctr,twofish128-cbc,twofish128-ctr,"
            "twofish192-cbc,twofish192-ctr,twofish256-cbc,twofish256-ctr,twofish-cbc,arcfour,arcfour128,"
            "arcfour256"),
    "mac": "hmac-sha1,hmac-sha1-96,hmac-md5,hmac-md5-96,hmac-sha2-256,hmac-sha2-512",
    "comp": "zlib@openssh.com,zlib,none",
}


def _kexinit(kex, enc, mac, comp, enc_s2c=None, mac_s2c=None, comp_s2c=None) -> bytes:
    """An SSH_MSG_KEXINIT payload (RFC 4253 7.1) with these name-lists."""
    def nl(text):
        b = text.encode()
        return len(b).to_bytes(4, "big") + b
    lists = [kex, "ssh-ed25519", enc, enc_s2c or enc, mac, mac_s2c or mac, comp, comp_s2c or comp, "", ""]
    return bytes([20]) + b"\x11" * 16 + b"".join(nl(x) for x in lists) + b"\x00" + bytes(4)


def test_hassh_readme_example():
    """README: Cyberduck's algorithm lists -> hassh 8a8ae540028bf433cd68356c1b9e8d5b."""
    from inspector.protocols import ssh
    k = ssh.parse_kexinit(_kexinit(_CYBERDUCK["kex"], _CYBERDUCK["enc"], _CYBERDUCK["mac"], _CYBERDUCK["comp"]))
    algs = ssh.hassh_algorithms(k, server=False)
    assert algs == ";".join((_CYBERDUCK["kex"], _CYBERDUCK["enc"], _CYBERDUCK["mac"], _CYBERDUCK["comp"]))
    assert ssh.hassh(algs) == "8a8ae540028bf433cd68356c1b9e8d5b"


def test_hassh_in_ssh_log():
    """ssh.jsonl: hassh from the client's client-to-server lists, hasshServer from the server's
    server-to-client lists."""
    from inspector.protocols import ssh
    from test_proto_tls import make_ctx

    def packet(payload):
        pad = 8 - (len(payload) + 5) % 8 + 8
        return (len(payload) + pad + 1).to_bytes(4, "big") + bytes([pad]) + payload + bytes(pad)
    client = _kexinit("curve25519-sha256", "aes128-ctr", "hmac-sha2-256", "none")
    server = _kexinit("curve25519-sha256", "aes256-ctr", "hmac-sha1", "none",
                      enc_s2c="chacha20-poly1305@openssh.com", mac_s2c="hmac-sha2-512", comp_s2c="zlib")
    ctx, sink = make_ctx()
    a = ssh.Analyzer(ctx)
    a.data(True, b"SSH-2.0-OpenSSH_9.6\r\n" + packet(client), 1.0)
    a.data(False, b"SSH-2.0-OpenSSH_9.6\r\n" + packet(server), 1.1)
    a.done(2.0)
    [rec] = sink.logs("ssh")
    assert rec["hasshAlgorithms"] == "curve25519-sha256;aes128-ctr;hmac-sha2-256;none"
    assert rec["hasshServerAlgorithms"] == "curve25519-sha256;chacha20-poly1305@openssh.com;hmac-sha2-512;zlib"
    assert rec["hassh"] == hashlib.md5(rec["hasshAlgorithms"].encode()).hexdigest()
    assert rec["hasshServer"] == hashlib.md5(rec["hasshServerAlgorithms"].encode()).hexdigest()
    assert rec["hasshVersion"] == "1.1"
