"""x509.jsonl: one record per certificate of a cleartext TLS Certificate message
(inspector/protocols/tls.py: ``x509_record``, ``Analyzer._on_chain``), linked from tls.jsonl by
``cert_chain_fps`` / ``client_cert_chain_fps``.

Certificates are made here with ``cryptography`` (nothing copied); each test says what the
certificate carries and what Zeek's x509.log would show for it.  The conformance test compares
with Zeek's x509.log baselines in the shared corpus (skipped when it is absent).
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from inspector.outputs.schema import X509, stream
from inspector.protocols import tls
from test_proto_tls import HS, client_hello, feed, handshake, record, server_hello, vec24

T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)   # one RSA key: slow to make


def make_cert(cn: str | None = "upload.bucket.example", dns=(), ips=(), *, key=None, issuer_key=None,
              issuer_cn: str = "Example Issuing CA", ca: bool | None = False, serial: int = 0x0A1B2C,
              days: int = 365, start: datetime.datetime = T0, email: str | None = None) -> bytes:
    """A DER certificate: subject CN (+ emailAddress), SAN DNS names and addresses, basicConstraints
    (None: no extension), signed by ``issuer_key`` (default: its own key, self-signed)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org")]     # RFC 4514 prints last first
    if email is not None:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    subject = x509.Name(attrs)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]) if issuer_key else subject
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(serial).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days)))
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), False)
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    signer = issuer_key or key
    algo = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(signer, algo).public_bytes(Encoding.DER)


def handshake_with(server_chain=(), client_chain=None):
    """ClientHello, ServerHello + Certificate(server_chain) + ServerHelloDone, then (optionally)
    the client's Certificate message; TLS 1.2, all in the clear."""
    ev = [(True, record(HS, handshake(1, client_hello()))),
          (False, record(HS, handshake(2, server_hello())
                         + handshake(11, vec24(b"".join(vec24(c) for c in server_chain)))
                         + handshake(14, b"")))]
    if client_chain is not None:
        ev.append((True, record(HS, handshake(11, vec24(b"".join(vec24(c) for c in client_chain))))))
    return ev


def _fp(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


# ----------------------------------------------------------------------------------------------
# one certificate -> one record
# ----------------------------------------------------------------------------------------------

def test_record_has_the_declared_fields_in_order():
    der = make_cert(dns=("upload.bucket.example",))
    rec = tls.x509_record(der, 5.0, True, False)
    # ``capture`` (the input file) is added by the protocol-log path, as for every log.
    assert list(rec) == [n for n in X509.names if n != "capture"]
    rec["capture"] = "x.pcap"
    assert stream("x509") is X509 and X509.problems(rec) == []


def test_san_and_cn():
    """SAN DNS names in order; the CN is in the subject; version 3; sha256 of the DER."""
    der = make_cert(cn="upload.bucket.example", dns=("upload.bucket.example", "bucket.example"))
    rec = tls.x509_record(der, 5.0, True, False)
    assert rec["fingerprint"] == _fp(der)
    assert rec["certificate.version"] == 3
    assert rec["certificate.subject"] == "CN=upload.bucket.example,O=Example Org"
    assert rec["certificate.issuer"] == rec["certificate.subject"]          # self-signed
    assert rec["san.dns"] == ["upload.bucket.example", "bucket.example"]
    assert rec["san.ip"] is None
    assert rec["certificate.key_alg"] == "id-ecPublicKey"
    assert rec["certificate.key_type"] == "ecdsa" and rec["certificate.key_length"] == 256
    assert rec["certificate.sig_alg"] == "ecdsa-with-SHA256"
    assert rec["basic_constraints.ca"] is False
    assert rec["host_cert"] is True and rec["client_cert"] is False
    assert rec["ts"] == 5.0


def test_cn_only_and_no_basic_constraints():
    rec = tls.x509_record(make_cert(cn="cn-only.example", ca=None), 1.0, True, False)
    assert rec["san.dns"] is None and rec["basic_constraints.ca"] is None
    assert rec["certificate.subject"].startswith("CN=cn-only.example,")


def test_ip_sans():
    rec = tls.x509_record(make_cert(cn=None, ips=("192.0.2.7", "2001:db8::1")), 1.0, True, False)
    assert rec["san.ip"] == ["192.0.2.7", "2001:db8::1"] and rec["san.dns"] is None
    assert rec["certificate.subject"] == "O=Example Org"


def test_wildcard_name_kept_as_written():
    rec = tls.x509_record(make_cert(cn="*.bucket.example", dns=("*.bucket.example",)), 1.0, True, False)
    assert rec["san.dns"] == ["*.bucket.example"]


def test_expired_validity_times():
    """An expired certificate is logged as any other: its validity as epoch seconds."""
    start = datetime.datetime(2015, 3, 1, tzinfo=datetime.timezone.utc)
    rec = tls.x509_record(make_cert(start=start, days=30), 1.0, True, False)
    assert rec["certificate.not_valid_before"] == start.timestamp() == 1425168000.0
    assert rec["certificate.not_valid_after"] == 1425168000.0 + 30 * 86400


def test_rsa_key_serial_and_issuer():
    """RSA 2048 signed by a CA: key facts as OpenSSL names them, the serial as upper-case hex in
    whole bytes (0x0A1B2C -> 0A1B2C, as Zeek prints it)."""
    ca_key = ec.generate_private_key(ec.SECP384R1())
    rec = tls.x509_record(make_cert(key=_RSA, issuer_key=ca_key), 1.0, True, False)
    assert rec["certificate.serial"] == "0A1B2C"
    assert rec["certificate.issuer"] == "CN=Example Issuing CA"
    assert rec["certificate.key_alg"] == "rsaEncryption"
    assert rec["certificate.key_type"] == "rsa" and rec["certificate.key_length"] == 2048
    assert rec["certificate.sig_alg"] == "ecdsa-with-SHA384" or rec["certificate.sig_alg"] == "ecdsa-with-SHA256"


def test_ed25519_key():
    k = ed25519.Ed25519PrivateKey.generate()
    rec = tls.x509_record(make_cert(key=k), 1.0, True, False)
    assert rec["certificate.key_alg"] == "ED25519" and rec["certificate.key_type"] == "ed25519"
    assert rec["certificate.sig_alg"] == "ed25519"


@pytest.mark.parametrize("n, want", [(1, "01"), (0x26, "26"), (0x100, "0100"), (0x339D9ED8E73927C9, "339D9ED8E73927C9"),
                                     (-5, "-05")])
def test_serial_hex(n, want):
    assert tls._serial_hex(n) == want


@pytest.mark.parametrize("der", [b"", b"\x30\x03junk", b"\x30\x82\xff\xff" + b"\x00" * 10])
def test_malformed_der_raises(der):
    with pytest.raises(Exception):
        tls.x509_record(der, 1.0, True, False)


# ----------------------------------------------------------------------------------------------
# in the analyzer: chains, client certificates, weirds, tls.jsonl links
# ----------------------------------------------------------------------------------------------

def test_chain_gives_one_record_per_certificate_and_tls_links_them():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_cert(dns=("upload.bucket.example",), issuer_key=ca_key)
    ca = make_cert(cn="Example Issuing CA", key=ca_key, ca=True)
    _, sink, _ = feed(handshake_with([leaf, ca]))
    recs = sink.logs("x509")
    assert [r["fingerprint"] for r in recs] == [_fp(leaf), _fp(ca)]
    assert [r["host_cert"] for r in recs] == [True, False]
    assert [r["basic_constraints.ca"] for r in recs] == [False, True]
    assert not any(r["client_cert"] for r in recs)
    [t] = sink.logs("tls")
    assert t["cert_chain_fps"] == [_fp(leaf), _fp(ca)] and t["client_cert_chain_fps"] is None
    assert t["subject"] == "CN=upload.bucket.example,O=Example Org" and t["san_dns"] == ["upload.bucket.example"]
    assert sink.weirds == []


def test_client_certificate():
    server = make_cert(cn="srv.example", dns=("srv.example",))
    client = make_cert(cn="Jane Doe", ca=None)
    _, sink, _ = feed(handshake_with([server], client_chain=[client]))
    by_fp = {r["fingerprint"]: r for r in sink.logs("x509")}
    assert by_fp[_fp(client)]["client_cert"] is True and by_fp[_fp(client)]["host_cert"] is True
    assert by_fp[_fp(server)]["client_cert"] is False
    [t] = sink.logs("tls")
    assert t["client_cert_chain_fps"] == [_fp(client)] and t["cert_chain_fps"] == [_fp(server)]
    assert t["subject"].startswith("CN=srv.example")          # tls.jsonl names the server's leaf


def test_malformed_certificate_in_chain_is_a_weird_and_the_rest_is_logged():
    good = make_cert(dns=("ok.example",))
    bad = b"\x30\x03junk"
    _, sink, _ = feed(handshake_with([bad, good]))
    assert sink.weird_names() == ["ssl.bad_certificate"]
    assert [r["fingerprint"] for r in sink.logs("x509")] == [_fp(good)]
    [t] = sink.logs("tls")
    assert t["cert_chain_fps"] == [_fp(bad), _fp(good)]       # the chain as sent, parsed or not
    assert t["subject"] is None                               # the leaf did not parse


def test_empty_certificate_message():
    _, sink, _ = feed(handshake_with([]))
    assert sink.logs("x509") == [] and sink.logs("tls")[0]["cert_chain_fps"] is None


def test_many_sans_are_capped_with_a_weird():
    der = make_cert(cn=None, dns=tuple("h%d.example" % i for i in range(tls.MAX_SAN_DNS + 5)))
    _, sink, _ = feed(handshake_with([der]))
    [r] = sink.logs("x509")
    assert len(r["san.dns"]) == tls.MAX_SAN_DNS
    assert sink.weird_names() == ["ssl.many_subject_alt_names"]


def test_tls13_certificate_is_not_parsed():
    """TLS 1.3 certificates are encrypted: a Certificate-typed record after a TLS 1.3 ServerHello
    is not a certificate chain to log."""
    from test_proto_tls import tls13_events
    _, sink, _ = feed(tls13_events())
    assert sink.logs("x509") == [] and sink.logs("tls")[0]["cert_chain_fps"] is None


# ----------------------------------------------------------------------------------------------
# conformance: Zeek's x509.log baselines
# ----------------------------------------------------------------------------------------------

# Zeek's columns that the x509 stream carries (Zeek: ``vector`` columns empty -> unset).
_ZEEK_COLUMNS = [f for f in X509.names if f not in ("ts", "ja4x")]    # ja4x: not a Zeek column


def _zeek_x509_cases():
    try:
        import corpus as C
        root = C.corpus_root()
        index = C.load_index(root)
    except Exception:
        return []
    cases = []
    for r in index:
        if r.get("source") != "zeek":
            continue
        for p in C.oracle_paths(r, root):
            if p.name == "x509.log":
                cases.append(pytest.param(root / r["dest"], p, id=p.parent.name))
    return cases


def _norm(v):
    if v is None or v == [] or v == "":
        return None
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, set):
        return sorted(v)
    return v


@pytest.mark.parametrize("pcap, log", _zeek_x509_cases())
def test_zeek_x509_baselines(pcap, log, tmp_path):
    """Every certificate Zeek logged in a cleartext TLS handshake is in x509.jsonl with the same
    column values (certificates Zeek saw in other protocols' STARTTLS or RDP are out of scope:
    only those whose fingerprint we logged are compared, and most must be found)."""
    import corpus as C
    from helpers.outputs_scan import read_outputs
    from inspector.cli import main
    zeek = C.read_zeek_log(log)
    if not zeek:
        pytest.skip("empty baseline")
    if not pcap.is_file():
        pytest.skip("capture not in the corpus")
    out_dir = tmp_path / "out"
    assert main(["scan", str(pcap), "--out", str(out_dir), "--show-raw", "-q"], env={}) == 0
    out = read_outputs(str(out_dir))
    # A certificate may be in a server chain and a client chain (GridFTP): keyed by both.
    ours = {(r["fingerprint"], r["client_cert"]): r for r in out.records.get("x509", ())}
    tls_fps = {fp for t in out.records.get("tls", ())
               for fp in (t.get("cert_chain_fps") or []) + (t.get("client_cert_chain_fps") or [])}
    assert {fp for fp, _ in ours} <= tls_fps
    compared = 0
    for z in zeek:
        key = (z.get("fingerprint"), z.get("client_cert"))
        if key not in ours:
            continue
        compared += 1
        o = ours[key]
        for col in _ZEEK_COLUMNS:
            zv = z.get(col)
            if col == "san.ip" and zv:
                zv = [str(a) for a in zv]
            assert _norm(o[col]) == _norm(zv), (fp, col, o[col], zv)
    if ".ssl." in log.parent.name or ".files.x509." in log.parent.name:
        assert compared, "no certificate of the baseline found in x509.jsonl"
