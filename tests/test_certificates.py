"""Names and facts from certificates, Encrypted Client Hello (issue 15).

* RFC 6125 name checks and the name a certificate gives its server
  (``inspector/protocols/certificates.py``), on certificates made here with ``cryptography``;
* the tls analyzer: ``x509`` names, ``tls.cert_name_mismatch`` / ``tls.cert_self_signed`` /
  ``tls.cert_expired`` facts, ECH (``sni_outer``, ``tls.ech``);
* destination naming (``enrich.flows``): ``x509`` only when SNI, Host and DNS named nothing;
* a whole scan of a TLS 1.2 upload to a bare address with no SNI and no DNS (capture built here
  with scapy): its destination is named from the server certificate and the default policy says
  where the data went;
* destination groups matching certificate issuers and subjects, rules matching facts, and their
  ``file:line`` errors.
"""
from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from inspector.errors import ConfigError
from inspector.protocols import certificates as C
from inspector.protocols import tls
from test_proto_tls import (HS, RecordingSink, client_hello, ext, ext_sni, handshake, record, server_hello,
                            u16, vec24)
from test_x509 import T0, make_cert

# ----------------------------------------------------------------------------------------------
# RFC 6125 section 6.4: does a presented name cover the reference name?
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference, presented, ok", [
    ("upload.example.com", "upload.example.com", True),
    ("Upload.Example.COM.", "upload.example.com", True),        # case and trailing dot do not matter
    ("upload.example.com", "download.example.com", False),
    ("upload.example.com", "*.example.com", True),              # one whole left-most label
    ("a.upload.example.com", "*.example.com", False),           # never more than one label
    ("example.com", "*.example.com", False),                    # never an empty label
    ("upload.example.com", "up*.example.com", True),            # partial wildcard (6.4.3 allows it)
    ("upload.example.com", "*load.example.com", True),
    ("upload.example.com", "x*.example.com", False),
    ("example.com", "*.com", False),                            # *.com names no host
    ("www.upload.example.com", "www.*.example.com", False),     # only in the left-most label
    ("xn--bcher-kva.example", "xn--*.example", False),          # not inside an A-label
    ("bücher.example", "xn--bcher-kva.example", True),          # U-label reference as its A-label
    ("upload.example.com", "", False),
])
def test_hostname_matches(reference, presented, ok):
    assert C.hostname_matches(reference, presented) is ok


def test_sni_matching_uses_the_cn_only_without_dns_names():
    # subjectAltName DNS names present: the CN is not consulted (6.4.4)
    assert not C.sni_matches("cn.example", san_dns=["san.example"], cn="cn.example")
    assert C.sni_matches("san.example", san_dns=["san.example"], cn="cn.example")
    # no DNS names (only an address): the CN is
    assert C.sni_matches("cn.example", san_dns=[], san_ip=["192.0.2.7"], cn="cn.example")
    # an address literal in SNI is compared with the address names
    assert C.sni_matches("192.0.2.7", san_ip=["192.0.2.7"]) and not C.sni_matches("192.0.2.8", san_ip=["192.0.2.7"])


@pytest.mark.parametrize("san, cn, name", [
    (["a.example", "primary.example"], "primary.example", "primary.example"),   # CN among the SANs: it
    (["a.example", "b.example"], "other.example", "a.example"),                 # else the first SAN
    (["*.oss.example", "upload.bucket.example"], "*.oss.example", "upload.bucket.example"),  # not a wildcard
    (["*.oss-cn-hangzhou.aliyuncs.com"], None, "oss-cn-hangzhou.aliyuncs.com"),  # only wildcards: the zone
    (["*.com"], None, None),
    ([], "cn-only.example", "cn-only.example"),                                 # no SAN DNS: the CN
    ([], "192.0.2.7", None),                                                    # an address names nothing
    ([], "Jane Doe", None),                                                     # a person is not a host
    ([], "*.wild.example", "wild.example"),
    ([], None, None),
])
def test_best_name(san, cn, name):
    assert C.best_name(san, cn) == name


# ----------------------------------------------------------------------------------------------
# leaf facts on certificates made here
# ----------------------------------------------------------------------------------------------

def _load(der: bytes):
    from cryptography import x509
    return x509.load_der_x509_certificate(der)


def test_self_signed_needs_its_own_signature():
    own = _load(make_cert(dns=("srv.example",)))                  # signed by its own key
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issued = _load(make_cert(dns=("srv.example",), issuer_key=ca_key))
    # same subject and issuer name, but signed by another key: self-issued, not self-signed
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "same.example")])
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(7).not_valid_before(T0).not_valid_after(T0 + datetime.timedelta(days=9))
              .sign(ca_key, hashes.SHA256()))
    ts = T0.timestamp() + 3600
    assert C.leaf_facts(own, ts).self_signed is True
    assert C.leaf_facts(issued, ts).self_signed is False
    assert C.leaf_facts(forged, ts).self_signed is False


def test_validity_at_packet_time():
    cert = _load(make_cert(days=30))                             # valid T0 .. T0 + 30 days
    inside, after, before = T0.timestamp() + 86400, T0.timestamp() + 31 * 86400, T0.timestamp() - 60
    assert (C.leaf_facts(cert, inside).expired, C.leaf_facts(cert, inside).not_yet_valid) == (False, False)
    assert C.leaf_facts(cert, after).expired is True
    assert C.leaf_facts(cert, before).not_yet_valid is True


# ----------------------------------------------------------------------------------------------
# the analyzer
# ----------------------------------------------------------------------------------------------

class EvidenceSink(RecordingSink):
    """RecordingSink that also keeps facts and certificates."""

    def __init__(self):
        super().__init__()
        self.facts: list = []
        self.certs: list = []

    def fact(self, ctx, name, ts):
        self.facts.append(name)

    def certificate(self, ctx, subject, issuer, ts):
        self.certs.append((subject, issuer))


def run_handshake(chain, sni=None, ts=None, extensions=()):
    """A TLS 1.2 ClientHello (with ``sni``), ServerHello + Certificate + ServerHelloDone, fed at
    packet time ``ts`` (default: a day into the test certificates' validity)."""
    from inspector.protocols.base import FlowContext
    sink = EvidenceSink()
    ctx = FlowContext(uid="Ccert0001", ts=0.0, orig_h="10.0.0.1", orig_p=50000, resp_h="203.0.113.9",
                      resp_p=443, transport="tcp", sink=sink)
    a = tls.Analyzer(ctx)
    t = ts if ts is not None else T0.timestamp() + 86400
    exts = ([ext_sni(sni)] if sni else []) + list(extensions)
    a.data(True, record(HS, handshake(1, client_hello(extensions=exts))), t)
    a.data(False, record(HS, handshake(2, server_hello())
                         + handshake(11, vec24(b"".join(vec24(c) for c in chain))) + handshake(14, b"")), t)
    a.done(t + 1)
    [rec] = sink.logs("tls")
    return rec, sink


def test_no_sni_the_certificate_names_the_server():
    leaf = make_cert(cn="*.oss-cn-hangzhou.aliyuncs.com",
                     dns=("*.oss-cn-hangzhou.aliyuncs.com", "upload.examplebucket.aliyuncs.com"),
                     issuer_key=ec.generate_private_key(ec.SECP256R1()))
    rec, sink = run_handshake([leaf])
    assert sink.names == [("x509", "upload.examplebucket.aliyuncs.com")]
    assert rec["cert_name_mismatch"] is None                    # nothing asked for, nothing to compare
    assert rec["cert_self_signed"] is False and sink.facts == []
    assert sink.certs == [("CN=*.oss-cn-hangzhou.aliyuncs.com,O=Example Org", "CN=Example Issuing CA")]
    assert rec["ja4s"] == "t120000_c02f_000000000000"           # TLS 1.2, no extensions, cipher c02f


def test_sni_not_presented_by_the_certificate_is_a_fact():
    leaf = make_cert(cn="cdn.example", dns=("cdn.example", "*.cdn.example"),
                     issuer_key=ec.generate_private_key(ec.SECP256R1()))
    rec, sink = run_handshake([leaf], sni="api.partner.example")
    assert rec["cert_name_mismatch"] is True and sink.facts == ["tls.cert_name_mismatch"]
    assert sink.names[0] == ("sni", "api.partner.example")      # the SNI still names the flow
    rec, sink = run_handshake([leaf], sni="img.cdn.example")    # the wildcard covers it
    assert rec["cert_name_mismatch"] is False and sink.facts == []


def test_self_signed_and_expired_leaf():
    leaf = make_cert(cn="printer.example", dns=("printer.example",), days=30)
    rec, sink = run_handshake([leaf], sni="printer.example", ts=T0.timestamp() + 40 * 86400)
    assert rec["cert_self_signed"] is True and rec["cert_expired"] is True and rec["cert_not_yet_valid"] is False
    assert sorted(sink.facts) == ["tls.cert_expired", "tls.cert_self_signed"]


def test_ip_san_certificate_names_nothing():
    leaf = make_cert(cn="198.51.100.4", ips=("198.51.100.4",))
    rec, sink = run_handshake([leaf])
    assert sink.names == [] and rec["cert_self_signed"] is True


def test_malformed_leaf_is_a_weird_and_names_nothing():
    rec, sink = run_handshake([b"\x30\x82\x01\x00" + b"\x02" * 40])
    assert sink.weird_names() == ["ssl.bad_certificate"]
    assert sink.names == [] and sink.facts == [] and rec["cert_self_signed"] is None


def test_mutated_certificates_never_break_the_analyzer():
    """Hostile certificates: bytes flipped all over a valid leaf (and its length cut) give x509
    records or ssl.bad_certificate weirds, never an analyzer error."""
    import random
    good = make_cert(cn="srv.example", dns=("srv.example", "*.srv.example"), ips=("192.0.2.1",))
    rnd = random.Random(15)
    for _ in range(150):
        der = bytearray(good)
        for _k in range(rnd.randint(1, 6)):
            der[rnd.randrange(len(der))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            der = der[:rnd.randrange(len(der))]
        rec, sink = run_handshake([bytes(der)], sni="srv.example")
        assert set(sink.weird_names()) <= {"ssl.bad_certificate", "ssl.many_subject_alt_names"}
        assert rec["cert_chain_fps"]


ECH_OUTER = bytes([0]) + u16(0x0001) + u16(0x0001) + bytes([0x2A]) + u16(32) + b"\x11" * 32 + u16(16) + b"\x22" * 16


def test_ech_client_hello():
    """ClientHelloOuter with encrypted_client_hello (0xfe0d): the SNI is the provider's public name."""
    leaf = make_cert(cn="public.cdn.example", dns=("public.cdn.example",),
                     issuer_key=ec.generate_private_key(ec.SECP256R1()))
    rec, sink = run_handshake([leaf], sni="public.cdn.example", extensions=[ext(0xFE0D, ECH_OUTER)])
    assert rec["ech"] is True and rec["server_name"] == "public.cdn.example"
    assert sink.names[0] == ("sni_outer", "public.cdn.example") and "tls.ech" in sink.facts
    rec, sink = run_handshake([leaf], sni="public.cdn.example")
    assert rec["ech"] is False and sink.names[0] == ("sni", "public.cdn.example")


# ----------------------------------------------------------------------------------------------
# destination naming: x509 after passive DNS
# ----------------------------------------------------------------------------------------------

def test_x509_names_only_when_nothing_else_did():
    from inspector.enrich.flows import DestinationNames
    names = DestinationNames(("sni", "sni_outer", "quic_sni", "http_host"), fallbacks=("x509",))
    names.hostname("A", "x509", "cert.example", 1.0)
    assert names.name("A", False, "203.0.113.9", 2.0) == ("cert.example", "x509")
    names.hostname("B", "x509", "cert.example", 1.0)
    names.hostname("B", "sni", "asked.example", 1.0)
    assert names.name("B", False, "203.0.113.9", 2.0) == ("asked.example", "sni")
    names.dns_answer("dns.example", "203.0.113.10", "A", 300, 0.5)
    names.hostname("C", "x509", "cert.example", 1.0)
    assert names.name("C", False, "203.0.113.10", 2.0) == ("dns.example", "dns")
    names.hostname("D", "x509", "cert.example", 1.0)
    assert names.name("D", True, "203.0.113.9", 2.0) == (None, None)      # inbound: about us, not them


# ----------------------------------------------------------------------------------------------
# a whole scan: TLS 1.2 upload to a bare address, no SNI, no DNS
# ----------------------------------------------------------------------------------------------

def _tls_session(src, dst, sport, t0, client_first, server_flight, upload, dport=443):
    """A TCP connection carrying a TLS handshake and an upload, as scapy packets with times."""
    from scapy.layers.inet import IP, TCP
    cs, ss = 1000, 90000
    pk = [(t0, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=cs,
                                          options=[("MSS", 1460), ("NOP", None), ("WScale", 8)])),
          (t0 + 0.01, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="SA", seq=ss, ack=cs + 1)),
          (t0 + 0.02, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=cs + 1, ack=ss + 1))]
    c, s, t = cs + 1, ss + 1, t0 + 0.03

    def send(is_client, data):
        nonlocal c, s, t
        for i in range(0, len(data), 1400):
            chunk = data[i:i + 1400]
            if is_client:
                pk.append((t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=c, ack=s) / chunk))
                c += len(chunk)
            else:
                pk.append((t, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="PA", seq=s, ack=c) / chunk))
                s += len(chunk)
            t += 0.001
    send(True, client_first)
    send(False, server_flight)
    send(True, record(20, b"\x01") + record(HS, b"\x14" * 40))         # CCS + (encrypted) Finished
    send(False, record(20, b"\x01") + record(HS, b"\x14" * 40))
    send(True, upload)
    send(False, record(23, b"\x00" * 64))
    pk.append((t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="FA", seq=c, ack=s)))
    pk.append((t + 0.01, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="FA", seq=s, ack=c + 1)))
    pk.append((t + 0.02, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=c + 1, ack=s + 1)))
    return pk


def _write(path, frames):
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    pkts = []
    for ts, p in frames:
        e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
        e.time = ts
        pkts.append(e)
    wrpcap(str(path), pkts)


def _flight(chain):
    return record(HS, handshake(2, server_hello()) + handshake(11, vec24(b"".join(vec24(c) for c in chain)))
                  + handshake(14, b""))


@pytest.fixture(scope="module")
def raw_address_scan(tmp_path_factory):
    """Four connections from 10.1.2.3: (1) to an Alibaba Cloud address (47.74.0.0/15) with no SNI,
    whose certificate is for an OSS bucket, uploading 300 KB; (2) with SNI that the (self-signed,
    expired) certificate does not present; (3) with ECH, 500 bytes; (4) with ECH to Alibaba Cloud,
    96 KB.  Scanned with the CLI and the default policy."""
    from helpers.outputs_scan import read_outputs
    from inspector.cli import main
    t0 = T0.timestamp() + 86400
    ca = ec.generate_private_key(ec.SECP256R1())
    oss = make_cert(cn="*.oss-cn-hangzhou.aliyuncs.com",
                    dns=("*.oss-cn-hangzhou.aliyuncs.com", "upload.examplebucket.aliyuncs.com"), issuer_key=ca)
    old = make_cert(cn="nas.example", dns=("nas.example",), days=1)
    cdn = make_cert(cn="public.cdn.example", dns=("public.cdn.example",), issuer_key=ca)
    upload = b"".join(record(23, bytes([i % 251]) * 16000) for i in range(19))      # ~300 KB of ciphertext
    frames = (_tls_session("10.1.2.3", "47.74.1.10", 50001, t0, record(HS, handshake(1, client_hello())),
                           _flight([oss]), upload)
              + _tls_session("10.1.2.3", "198.51.100.20", 50002, t0 + 5,
                             record(HS, handshake(1, client_hello(extensions=[ext_sni("files.partner.example")]))),
                             _flight([old]), record(23, b"x" * 500))
              + _tls_session("10.1.2.3", "198.51.100.30", 50003, t0 + 10,
                             record(HS, handshake(1, client_hello(extensions=[ext_sni("public.cdn.example"),
                                                                               ext(0xFE0D, ECH_OUTER)]))),
                             _flight([cdn]), record(23, b"y" * 500))
              + _tls_session("10.1.2.3", "47.74.2.20", 50004, t0 + 15,
                             record(HS, handshake(1, client_hello(extensions=[ext_sni("ech.oss.aliyuncs.com"),
                                                                               ext(0xFE0D, ECH_OUTER)]))),
                             _flight([cdn]), b"".join(record(23, b"z" * 16000) for _ in range(6))))
    frames.sort(key=lambda f: f[0])
    d = tmp_path_factory.mktemp("rawaddr")
    pcap, out = d / "raw-address-upload.pcap", d / "out"
    _write(pcap, frames)
    assert main(["scan", str(pcap), "--out", str(out), "-q"], env={}) == 0
    return read_outputs(str(out))


def _flow(out, resp_h):
    [f] = [f for f in out.records["flows"] if f["id.resp_h"] == resp_h]
    return f


def test_raw_address_upload_is_named_from_its_certificate(raw_address_scan):
    f = _flow(raw_address_scan, "47.74.1.10")
    assert (f["dst_name"], f["dst_name_source"]) == ("upload.examplebucket.aliyuncs.com", "x509")
    assert (f["dst_group"], f["dst_category"]) == ("alibaba-cloud", "foreign-cloud")
    assert f["facts"] is None and f["ech"] is None
    assert f["ja4t"] == "8192_2-1-3_1460_8"          # scapy's SYN: window 8192, MSS, NOP, window scale 8
    [t] = [t for t in raw_address_scan.records["tls"] if t["uid"] == f["uid"]]
    assert t["server_name"] is None and t["version"] == "TLSv12" and t["cert_chain_fps"]
    # the default policy says where the data went, by name
    alerts = [a for a in raw_address_scan.records.get("alerts", ()) if f["uid"] in a["uids"]]
    assert alerts and alerts[0]["destination"]["name"] == "upload.examplebucket.aliyuncs.com"
    assert alerts[0]["destination"]["category"] == "foreign-cloud"


def test_ja4t_of_a_syn_inside_a_tunnel(tmp_path):
    """A connection carried in VXLAN goes through the per-packet decoder: its client SYN's JA4T is
    still there (the decoder hands the option bytes over), and a SYN without options is 00s."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN
    from helpers.outputs_scan import read_outputs
    from inspector.cli import main
    t0 = T0.timestamp()
    inner = _tls_session("10.9.0.5", "198.51.100.77", 40000, t0, b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
                         b"")
    bare = [(t0 + 5, IP(src="10.9.0.6", dst="198.51.100.78") / TCP(sport=40001, dport=80, flags="S", seq=1,
                                                                   window=1024))]
    frames = []
    for ts, p in inner + bare:
        outer = Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=49152, dport=4789) / VXLAN(vni=7) / \
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p
        outer.time = ts
        frames.append(outer)
    from scapy.utils import wrpcap
    wrpcap(str(tmp_path / "vxlan.pcap"), frames)
    assert main(["scan", str(tmp_path / "vxlan.pcap"), "--out", str(tmp_path / "out"), "-q"], env={}) == 0
    out = read_outputs(str(tmp_path / "out"))
    assert _flow(out, "198.51.100.77")["ja4t"] == "8192_2-1-3_1460_8"
    assert _flow(out, "198.51.100.78")["ja4t"] == "1024_00_00_00"


def test_scan_states_certificate_facts(raw_address_scan):
    f = _flow(raw_address_scan, "198.51.100.20")
    assert (f["dst_name"], f["dst_name_source"]) == ("files.partner.example", "sni")
    assert f["facts"] == ["tls.cert_expired", "tls.cert_name_mismatch", "tls.cert_self_signed"]


def test_scan_flags_ech(raw_address_scan):
    f = _flow(raw_address_scan, "198.51.100.30")
    assert f["ech"] is True and f["facts"] == ["tls.ech"]
    assert (f["dst_name"], f["dst_name_source"]) == ("public.cdn.example", "sni_outer")
    [t] = [t for t in raw_address_scan.records["tls"] if t["uid"] == f["uid"]]
    assert t["ech"] is True


def test_ech_is_a_fact_for_the_policy_not_an_alert(raw_address_scan):
    """Default rule 1000033: an upload through ECH to a foreign cloud is worth knowing (low); ECH
    by itself (the 500-byte connection) raises nothing."""
    alerts = raw_address_scan.records.get("alerts", ())
    small, upload = _flow(raw_address_scan, "198.51.100.30"), _flow(raw_address_scan, "47.74.2.20")
    assert not [a for a in alerts if small["uid"] in a["uids"]]
    [a] = [a for a in alerts if upload["uid"] in a["uids"]]
    assert a["alert"]["signature_id"] == 1000033 and a["alert"]["severity"] == 4
    assert upload["dst_name_source"] == "sni_outer" and upload["dst_category"] == "foreign-cloud"


def test_explain_says_the_name_is_hidden(raw_address_scan):
    from inspector.evidence.explain import explain, render
    f = _flow(raw_address_scan, "198.51.100.30")
    story = explain(f["uid"], raw_address_scan.out_dir, dissect_packets=False)
    assert story["attribution"]["name_hidden"] is True and story["attribution"]["facts"] == ["tls.ech"]
    assert "the real name is hidden" in render(story)
    g = _flow(raw_address_scan, "47.74.1.10")
    assert "the one the server's certificate gives" in render(explain(g["uid"], raw_address_scan.out_dir,
                                                                      dissect_packets=False))


# ----------------------------------------------------------------------------------------------
# signature files: groups by certificate issuer/subject, rules on facts
# ----------------------------------------------------------------------------------------------

GROUPS = """\
- group: acme-cloud
  category: cloud
  cert_issuers: ["CN=Acme Issuing CA *,O=Acme Cloud,C=US"]
- group: acme-hosted
  category: saas
  cert_subjects: ["*,O=Acme Hosted Customers,*"]
  domains: [acme-hosted.example]
"""


def test_groups_match_certificate_issuer_and_subject():
    from inspector.enrich.groups import loads_groups
    g = loads_groups(GROUPS, "site-groups.yaml")
    acme_ca = ("CN=api.example,O=Example", "CN=Acme Issuing CA 07,O=Acme Cloud,C=US")
    assert g.match(None, "203.0.113.9", None, acme_ca) == ("acme-cloud", "cloud")
    assert g.match(None, "203.0.113.9", None, ("CN=x.example,O=Acme Hosted Customers,C=DE", "CN=Other CA")) \
        == ("acme-hosted", "saas")
    assert g.match(None, "203.0.113.9", None, ("CN=x.example", "CN=acme issuing ca 1,o=acme cloud,c=us")) \
        == ("acme-cloud", "cloud")                               # case-insensitive
    assert g.match("www.acme-hosted.example", "203.0.113.9", None, acme_ca) == ("acme-hosted", "saas")  # name first
    assert g.match(None, "203.0.113.9", None, None) == (None, None)


def test_shipped_groups_name_providers_by_their_issuing_ca():
    from inspector.enrich.groups import load_groups
    g = load_groups()
    acm = ("CN=api.shop.example", "CN=Amazon RSA 2048 M02,O=Amazon,C=US")
    azure = ("CN=edge.example", "CN=Microsoft Azure RSA TLS Issuing CA 03,O=Microsoft Corporation,C=US")
    older = ("CN=edge.microsoft.com", "CN=Microsoft Azure TLS Issuing CA 05,O=Microsoft Corporation,C=US")
    assert g.match(None, "203.0.113.9", None, acm) == ("aws", "cloud")
    assert g.match(None, "203.0.113.9", None, azure) == ("microsoft", "cloud")
    assert g.match(None, "203.0.113.9", None, older) == ("microsoft", "cloud")
    assert g.match(None, "203.0.113.9", None, ("CN=x", "CN=R11,O=Let's Encrypt,C=US")) == (None, None)


@pytest.mark.parametrize("body, line, message", [
    ("- group: x\n  category: cloud\n  cert_issuers: [Acme]\n", 3,
     "invalid certificate name pattern 'Acme' in 'cert_issuers' of group 'x': use an RFC 4514 name with "
     "* wildcards, like 'CN=Example Issuing CA*,O=Example,C=US'"),
    ("- group: x\n  category: cloud\n  cert_subjects: ['O=A*']\n- group: y\n  category: cloud\n"
     "  cert_subjects: ['o=a*']\n", 6,
     "certificate pattern 'o=a*' in 'cert_subjects' already belongs to group 'x' (line 3)"),
    ("- group: x\n  category: cloud\n  cert_issuers: {CN: Acme}\n", 3,
     "'cert_issuers' of group 'x' must be a list, got a mapping"),
])
def test_group_certificate_errors_name_file_and_line(tmp_path, body, line, message):
    from inspector.enrich.groups import check, load_groups
    p = tmp_path / "site.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError) as ei:
        load_groups(str(p))
    assert str(ei.value) == f"{p}:{line}: {message}"
    assert check(str(p))[0] == f"{p}:{line}: {message}"


def test_rules_match_facts():
    from inspector.policy.rules import loads_rules
    from inspector.policy.view import FlowView
    [rule] = loads_rules("- id: 2000100\n  message: self-signed upload\n  severity: low\n"
                         "  match: {direction: outbound, facts: [tls.cert_self_signed, tls.cert_expired]}\n")
    base = {"uid": "C1", "direction": "outbound", "id.orig_h": "10.0.0.1", "id.resp_h": "203.0.113.9"}
    assert rule.flow_ok(FlowView(dict(base, facts=["tls.cert_expired"])))
    assert not rule.flow_ok(FlowView(dict(base, facts=["tls.ech"])))
    assert not rule.flow_ok(FlowView(dict(base, facts=None)))


def test_unknown_fact_is_a_file_line_error():
    from inspector.policy.rules import loads_rules
    with pytest.raises(ConfigError) as ei:
        loads_rules("- id: 2000101\n  message: m\n  severity: low\n  match:\n    facts: [tls.cert_self_signd]\n",
                    "site.yaml")
    assert str(ei.value) == "site.yaml:5: unknown fact 'tls.cert_self_signd' (did you mean 'tls.cert_self_signed'?)"
