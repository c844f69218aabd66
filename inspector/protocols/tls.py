"""TLS / SSL over TCP (Zeek's ``ssl`` service, logged to ``tls.jsonl``).

What is parsed
--------------
The record layer of each direction's in-order byte stream (RFC 5246 §6.2,
RFC 8446 §5.1), records split across segments and handshake messages split
across records (and several messages in one record).  From the cleartext part
of the handshake:

* ClientHello (RFC 8446 §4.1.2): legacy version, session id, cipher suites,
  extension types in wire order, server_name (first ``host_name`` entry),
  ALPN, supported_versions, supported_groups, ec_point_formats,
  signature_algorithms, key_share groups, session ticket / PSK presence ->
  JA3 and JA4 (``t`` prefix), see ``fingerprints.py``;
* ServerHello: negotiated version (``supported_versions`` for TLS 1.3),
  cipher, ALPN (``next_protocol``), key_share group, HelloRetryRequest;
* Certificate (TLS <= 1.2 only, the only cleartext case), from the server and
  from the client: every certificate of the chain through ``cryptography.x509``
  -> one ``x509.jsonl`` record each (Zeek's x509.log columns, :func:`x509_record`;
  a certificate that does not parse is the weird ``ssl.bad_certificate``);
  tls.jsonl links them by SHA-256 fingerprint (``cert_chain_fps``,
  ``client_cert_chain_fps``) and keeps the server leaf's subject, issuer
  (RFC 4514 strings) and subjectAltName DNS names;
* ServerKeyExchange of ECDHE suites: the named curve;
* SSLv2-compatible ClientHello (and an SSLv2 server hello + client master key);
* a HAProxy PROXY protocol header (v1/v2) in front of the ClientHello is skipped.

``established`` (Zeek's definition, chosen to match ssl.log)
------------------------------------------------------------
Each direction becomes *encrypted* when it sends ChangeCipherSpec, or, once
TLS 1.3 was negotiated, when it sends its first application_data record (TLS
1.3 without middlebox-compatibility CCS).  A protected record (any record
after CCS before TLS 1.3, application_data in TLS 1.3) is a ciphertext
record; the first ciphertext record seen while both directions are encrypted
sets ``established``.  For TLS <= 1.2 that is the second Finished message; for
TLS 1.3 the client's (encrypted) Finished.  SSLv2: the client master key
message.  This reproduces Zeek's ssl.log on its TLS baselines (e.g. ``CsiI``
-> T, QUIC -> F).

Output
------
One ``tls.jsonl`` record per connection, written when the connection is
established (the analyzer then asks for no more data) or at ``done()``, only
if a ClientHello or ServerHello was parsed.  Extra Zeek ssl.log columns are
kept where cheap: ``curve``, ``last_alert``, ``ssl_history`` (Zeek's letters,
client upper case).

Buffering is bounded: at most one plaintext record (<= 18 KB) plus one
handshake message being reassembled (<= 64 KB, ``MAX_HANDSHAKE``) per
direction; a larger message is skipped by length (weird
``ssl.handshake_too_large``), except that the leaf of an oversized Certificate
message is still buffered up to ``MAX_LEAF_CERTIFICATE`` and parsed.
Ciphertext and application data are skipped by length without buffering.

Reusable pieces (QUIC uses them): :func:`parse_client_hello`,
:func:`parse_server_hello`, :func:`version_name`, :func:`cipher_name`,
:func:`curve_name`, :func:`printable`, :class:`ClientHello`, :class:`ServerHello`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import certificates, fingerprints, ja4plus
from ..outputs.schema import BOOL, ListOf, STRING, TIME, Field, Stream
from ..sniff import client_hello, tls_records
from .base import Analyzer as _BaseAnalyzer
from .base import FlowContext

NAME = "ssl"
LOG = "tls"
X509_LOG = "x509"          # certificates (declared in inspector.outputs.schema: X509)
# Client certificates name people: e-mail addresses in x509 names are masked unless --show-raw.
PII_FIELDS = {X509_LOG: ("certificate.subject", "certificate.issuer")}
TRANSPORTS = ("tcp",)
PORTS = (443, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995,
         3269, 5061, 5223, 5986, 8443, 8883, 9443)
# ---- outputs (read by inspector.outputs): the tls log's schema and this module's weird names ----
LOG_SCHEMA = Stream("tls", "TLS handshakes (also those inside QUIC), one record per connection (Zeek ssl.log)", (
    Field("ts", TIME, "time of the connection's first packet"),
    Field("uid", STRING, "the connection's uid"),
    Field("version", STRING, "negotiated version (TLSv12, TLSv13...)"),
    Field("cipher", STRING, "negotiated cipher suite"),
    Field("curve", STRING, "key exchange group"),
    Field("server_name", STRING, "SNI from the ClientHello (the outer, public name when ech is true)"),
    Field("ech", BOOL, "the ClientHello carried the Encrypted Client Hello extension (0xfe0d): the name the "
                       "client asked for is encrypted"),
    Field("resumed", BOOL, "the session was resumed"),
    Field("last_alert", STRING, "last alert seen"),
    Field("next_protocol", STRING, "ALPN protocol the server chose"),
    Field("established", BOOL, "the handshake completed"),
    Field("ssl_history", STRING, "Zeek's ssl_history letters (handshake messages; upper case client)"),
    Field("ja3", STRING, "JA3 fingerprint of the ClientHello"),
    Field("ja4", STRING, "JA4 fingerprint of the ClientHello"),
    Field("ja4s", STRING, "JA4S fingerprint of the ServerHello (FoxIO License 1.1)"),
    Field("client_alpn", ListOf(STRING), "ALPN protocols the client offered"),
    Field("subject", STRING, "subject of the server certificate (TLS 1.2 and earlier)"),
    Field("issuer", STRING, "issuer of the server certificate"),
    Field("san_dns", ListOf(STRING), "DNS names in the server certificate's subjectAltName"),
    Field("cert_name_mismatch", BOOL, "the server certificate does not present the SNI (RFC 6125 matching; "
                                      "null without SNI or certificate)"),
    Field("cert_self_signed", BOOL, "the server certificate is self-signed (null without one)"),
    Field("cert_expired", BOOL, "the server certificate had expired at the time of the handshake"),
    Field("cert_not_yet_valid", BOOL, "the server certificate was not yet valid at the time of the handshake"),
    Field("cert_chain_fps", ListOf(STRING), "SHA-256 fingerprints of the server's certificate chain, leaf first "
                                            "(x509.jsonl fingerprint)"),
    Field("client_cert_chain_fps", ListOf(STRING), "SHA-256 fingerprints of the client's certificate chain"),
))
FIELDS = LOG_SCHEMA.names
# Facts about a connection the policy can use (flows.jsonl ``facts``; rules ``match: {facts: [...]}``):
# about the server's leaf certificate (cleartext TLS <= 1.2 only) and the ClientHello.
FACTS = {
    "tls.cert_name_mismatch": "the server certificate does not present the name the client asked for (SNI)",
    "tls.cert_self_signed": "the server certificate is self-signed",
    "tls.cert_expired": "the server certificate had expired at the time of the handshake",
    "tls.cert_not_yet_valid": "the server certificate was not yet valid at the time of the handshake",
    "tls.ech": "the client used Encrypted Client Hello: the destination name is the provider's public name, "
               "the real one is hidden",
}
WEIRDS = {
    "ssl.bad_certificate": "a certificate that cannot be parsed (exception in detail)",
    "ssl.bad_certificate_message": "a Certificate handshake message that cannot be parsed",
    "ssl.bad_client_hello": "a ClientHello that cannot be parsed",
    "ssl.bad_record": "a record with an unknown content type or version (the direction is given up)",
    "ssl.bad_record_length": "a record longer than TLS allows (the direction is given up)",
    "ssl.bad_server_hello": "a ServerHello that cannot be parsed",
    "ssl.client_hello_truncated_extensions": "the ClientHello's extensions run past its end (tolerated)",
    "ssl.client_hello_bad_extension_<n>": "a malformed known extension number n in the ClientHello (skipped)",
    "ssl.client_hello_no_cipher_suites": "a ClientHello offering no cipher suite",
    "ssl.client_hello_no_compression_methods": "a ClientHello offering no compression method",
    "ssl.server_hello_truncated_extensions": "the ServerHello's extensions run past its end (tolerated)",
    "ssl.server_hello_bad_extension_<n>": "a malformed known extension number n in the ServerHello (skipped)",
    "ssl.handshake_too_large": "a handshake message over the buffering limit (the direction is given up)",
    "ssl.many_subject_alt_names": "a certificate with more subjectAltNames than are kept",
    "ssl.truncated_handshake": "the connection ended inside a handshake message",
}
# ---- end of outputs declarations ----

# Record layer limits: TLSCiphertext may carry 2^14 + 2048 bytes (RFC 5246 §6.2.3).
MAX_RECORD = 2 ** 14 + 2048
# Largest handshake message we reassemble (certificate chains are the big ones).
MAX_HANDSHAKE = 64 * 1024
# A Certificate message above MAX_HANDSHAKE is not buffered whole: only its
# first (leaf) certificate is, up to this size; the rest is skipped unbuffered.
MAX_LEAF_CERTIFICATE = 512 * 1024
MAX_HISTORY = 100
# At most this many subjectAltName DNS names are logged per certificate.
MAX_SAN_DNS = 100

CT_CCS, CT_ALERT, CT_HANDSHAKE, CT_APPDATA, CT_HEARTBEAT = 20, 21, 22, 23, 24

HS_CLIENT_HELLO, HS_SERVER_HELLO = 1, 2
HS_CERTIFICATE, HS_SERVER_KEY_EXCHANGE, HS_CLIENT_KEY_EXCHANGE = 11, 12, 16

EXT_SERVER_NAME = 0x0000
EXT_SUPPORTED_GROUPS = 0x000A
EXT_EC_POINT_FORMATS = 0x000B
EXT_SIGNATURE_ALGORITHMS = 0x000D
EXT_ALPN = 0x0010
EXT_SESSION_TICKET = 0x0023
EXT_PRE_SHARED_KEY = 0x0029
EXT_SUPPORTED_VERSIONS = 0x002B
EXT_KEY_SHARE = 0x0033
EXT_ECH = 0xFE0D                 # encrypted_client_hello (draft-ietf-tls-esni)

# ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3).
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


# ---------------------------------------------------------------------------
# Name tables
# ---------------------------------------------------------------------------

_VERSIONS = {
    0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv10", 0x0302: "TLSv11",
    0x0303: "TLSv12", 0x0304: "TLSv13", 0xFEFF: "DTLSv10", 0xFEFD: "DTLSv12",
    0xFEFC: "DTLSv13",
}


def version_name(v: int) -> str:
    """Zeek's name for a protocol version (``TLSv12``, ``TLSv13-draft23``...)."""
    name = _VERSIONS.get(v)
    if name:
        return name
    if v >> 8 == 0x7F:
        return "TLSv13-draft%d" % (v & 0xFF)
    return "unknown-0x%04x" % v


def is_tls13(v: int | None) -> bool:
    """TLS 1.3 or one of its drafts (IETF 0x7fXX, Facebook 0xfbXX)."""
    return v is not None and (v == 0x0304 or v >> 8 in (0x7F, 0xFB))


def _suite_table() -> dict[int, str]:
    t = {
        0x0000: "NULL_WITH_NULL_NULL", 0x0001: "RSA_WITH_NULL_MD5", 0x0002: "RSA_WITH_NULL_SHA",
        0x0003: "RSA_EXPORT_WITH_RC4_40_MD5", 0x0004: "RSA_WITH_RC4_128_MD5",
        0x0005: "RSA_WITH_RC4_128_SHA", 0x0006: "RSA_EXPORT_WITH_RC2_CBC_40_MD5",
        0x0007: "RSA_WITH_IDEA_CBC_SHA", 0x0008: "RSA_EXPORT_WITH_DES40_CBC_SHA",
        0x0009: "RSA_WITH_DES_CBC_SHA", 0x000A: "RSA_WITH_3DES_EDE_CBC_SHA",
        0x000B: "DH_DSS_EXPORT_WITH_DES40_CBC_SHA", 0x000C: "DH_DSS_WITH_DES_CBC_SHA",
        0x000D: "DH_DSS_WITH_3DES_EDE_CBC_SHA", 0x000E: "DH_RSA_EXPORT_WITH_DES40_CBC_SHA",
        0x000F: "DH_RSA_WITH_DES_CBC_SHA", 0x0010: "DH_RSA_WITH_3DES_EDE_CBC_SHA",
        0x0011: "DHE_DSS_EXPORT_WITH_DES40_CBC_SHA", 0x0012: "DHE_DSS_WITH_DES_CBC_SHA",
        0x0013: "DHE_DSS_WITH_3DES_EDE_CBC_SHA", 0x0014: "DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
        0x0015: "DHE_RSA_WITH_DES_CBC_SHA", 0x0016: "DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0x0017: "DH_anon_EXPORT_WITH_RC4_40_MD5", 0x0018: "DH_anon_WITH_RC4_128_MD5",
        0x0019: "DH_anon_EXPORT_WITH_DES40_CBC_SHA", 0x001A: "DH_anon_WITH_DES_CBC_SHA",
        0x001B: "DH_anon_WITH_3DES_EDE_CBC_SHA",
        0x001E: "KRB5_WITH_DES_CBC_SHA", 0x001F: "KRB5_WITH_3DES_EDE_CBC_SHA",
        0x0020: "KRB5_WITH_RC4_128_SHA", 0x0021: "KRB5_WITH_IDEA_CBC_SHA",
        0x0022: "KRB5_WITH_DES_CBC_MD5", 0x0023: "KRB5_WITH_3DES_EDE_CBC_MD5",
        0x0024: "KRB5_WITH_RC4_128_MD5", 0x0025: "KRB5_WITH_IDEA_CBC_MD5",
        0x0026: "KRB5_EXPORT_WITH_DES_CBC_40_SHA", 0x0027: "KRB5_EXPORT_WITH_RC2_CBC_40_SHA",
        0x0028: "KRB5_EXPORT_WITH_RC4_40_SHA", 0x0029: "KRB5_EXPORT_WITH_DES_CBC_40_MD5",
        0x002A: "KRB5_EXPORT_WITH_RC2_CBC_40_MD5", 0x002B: "KRB5_EXPORT_WITH_RC4_40_MD5",
        0x002C: "PSK_WITH_NULL_SHA", 0x002D: "DHE_PSK_WITH_NULL_SHA", 0x002E: "RSA_PSK_WITH_NULL_SHA",
        0x002F: "RSA_WITH_AES_128_CBC_SHA", 0x0030: "DH_DSS_WITH_AES_128_CBC_SHA",
        0x0031: "DH_RSA_WITH_AES_128_CBC_SHA", 0x0032: "DHE_DSS_WITH_AES_128_CBC_SHA",
        0x0033: "DHE_RSA_WITH_AES_128_CBC_SHA", 0x0034: "DH_anon_WITH_AES_128_CBC_SHA",
        0x0035: "RSA_WITH_AES_256_CBC_SHA", 0x0036: "DH_DSS_WITH_AES_256_CBC_SHA",
        0x0037: "DH_RSA_WITH_AES_256_CBC_SHA", 0x0038: "DHE_DSS_WITH_AES_256_CBC_SHA",
        0x0039: "DHE_RSA_WITH_AES_256_CBC_SHA", 0x003A: "DH_anon_WITH_AES_256_CBC_SHA",
        0x003B: "RSA_WITH_NULL_SHA256", 0x003C: "RSA_WITH_AES_128_CBC_SHA256",
        0x003D: "RSA_WITH_AES_256_CBC_SHA256", 0x003E: "DH_DSS_WITH_AES_128_CBC_SHA256",
        0x003F: "DH_RSA_WITH_AES_128_CBC_SHA256", 0x0040: "DHE_DSS_WITH_AES_128_CBC_SHA256",
        0x0041: "RSA_WITH_CAMELLIA_128_CBC_SHA", 0x0042: "DH_DSS_WITH_CAMELLIA_128_CBC_SHA",
        0x0043: "DH_RSA_WITH_CAMELLIA_128_CBC_SHA", 0x0044: "DHE_DSS_WITH_CAMELLIA_128_CBC_SHA",
        0x0045: "DHE_RSA_WITH_CAMELLIA_128_CBC_SHA", 0x0046: "DH_anon_WITH_CAMELLIA_128_CBC_SHA",
        # pre-standard export-1024 suites (draft-ietf-tls-56-bit-ciphersuites)
        0x0060: "RSA_EXPORT1024_WITH_RC4_56_MD5", 0x0061: "RSA_EXPORT1024_WITH_RC2_CBC_56_MD5",
        0x0062: "RSA_EXPORT1024_WITH_DES_CBC_SHA", 0x0063: "DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA",
        0x0064: "RSA_EXPORT1024_WITH_RC4_56_SHA", 0x0065: "DHE_DSS_EXPORT1024_WITH_RC4_56_SHA",
        0x0066: "DHE_DSS_WITH_RC4_128_SHA",
        0x0067: "DHE_RSA_WITH_AES_128_CBC_SHA256", 0x0068: "DH_DSS_WITH_AES_256_CBC_SHA256",
        0x0069: "DH_RSA_WITH_AES_256_CBC_SHA256", 0x006A: "DHE_DSS_WITH_AES_256_CBC_SHA256",
        0x006B: "DHE_RSA_WITH_AES_256_CBC_SHA256", 0x006C: "DH_anon_WITH_AES_128_CBC_SHA256",
        0x006D: "DH_anon_WITH_AES_256_CBC_SHA256",
        # GOST (draft-chudov-cryptopro-cptls)
        0x0080: "GOSTR341094_WITH_28147_CNT_IMIT", 0x0081: "GOSTR341001_WITH_28147_CNT_IMIT",
        0x0082: "GOSTR341094_WITH_NULL_GOSTR3411", 0x0083: "GOSTR341001_WITH_NULL_GOSTR3411",
        0x0084: "RSA_WITH_CAMELLIA_256_CBC_SHA", 0x0085: "DH_DSS_WITH_CAMELLIA_256_CBC_SHA",
        0x0086: "DH_RSA_WITH_CAMELLIA_256_CBC_SHA", 0x0087: "DHE_DSS_WITH_CAMELLIA_256_CBC_SHA",
        0x0088: "DHE_RSA_WITH_CAMELLIA_256_CBC_SHA", 0x0089: "DH_anon_WITH_CAMELLIA_256_CBC_SHA",
        0x008A: "PSK_WITH_RC4_128_SHA", 0x008B: "PSK_WITH_3DES_EDE_CBC_SHA",
        0x008C: "PSK_WITH_AES_128_CBC_SHA", 0x008D: "PSK_WITH_AES_256_CBC_SHA",
        0x008E: "DHE_PSK_WITH_RC4_128_SHA", 0x008F: "DHE_PSK_WITH_3DES_EDE_CBC_SHA",
        0x0090: "DHE_PSK_WITH_AES_128_CBC_SHA", 0x0091: "DHE_PSK_WITH_AES_256_CBC_SHA",
        0x0092: "RSA_PSK_WITH_RC4_128_SHA", 0x0093: "RSA_PSK_WITH_3DES_EDE_CBC_SHA",
        0x0094: "RSA_PSK_WITH_AES_128_CBC_SHA", 0x0095: "RSA_PSK_WITH_AES_256_CBC_SHA",
        0x0096: "RSA_WITH_SEED_CBC_SHA", 0x0097: "DH_DSS_WITH_SEED_CBC_SHA",
        0x0098: "DH_RSA_WITH_SEED_CBC_SHA", 0x0099: "DHE_DSS_WITH_SEED_CBC_SHA",
        0x009A: "DHE_RSA_WITH_SEED_CBC_SHA", 0x009B: "DH_anon_WITH_SEED_CBC_SHA",
        0x009C: "RSA_WITH_AES_128_GCM_SHA256", 0x009D: "RSA_WITH_AES_256_GCM_SHA384",
        0x009E: "DHE_RSA_WITH_AES_128_GCM_SHA256", 0x009F: "DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x00A0: "DH_RSA_WITH_AES_128_GCM_SHA256", 0x00A1: "DH_RSA_WITH_AES_256_GCM_SHA384",
        0x00A2: "DHE_DSS_WITH_AES_128_GCM_SHA256", 0x00A3: "DHE_DSS_WITH_AES_256_GCM_SHA384",
        0x00A4: "DH_DSS_WITH_AES_128_GCM_SHA256", 0x00A5: "DH_DSS_WITH_AES_256_GCM_SHA384",
        0x00A6: "DH_anon_WITH_AES_128_GCM_SHA256", 0x00A7: "DH_anon_WITH_AES_256_GCM_SHA384",
        0x00A8: "PSK_WITH_AES_128_GCM_SHA256", 0x00A9: "PSK_WITH_AES_256_GCM_SHA384",
        0x00AA: "DHE_PSK_WITH_AES_128_GCM_SHA256", 0x00AB: "DHE_PSK_WITH_AES_256_GCM_SHA384",
        0x00AC: "RSA_PSK_WITH_AES_128_GCM_SHA256", 0x00AD: "RSA_PSK_WITH_AES_256_GCM_SHA384",
        0x00AE: "PSK_WITH_AES_128_CBC_SHA256", 0x00AF: "PSK_WITH_AES_256_CBC_SHA384",
        0x00B0: "PSK_WITH_NULL_SHA256", 0x00B1: "PSK_WITH_NULL_SHA384",
        0x00B2: "DHE_PSK_WITH_AES_128_CBC_SHA256", 0x00B3: "DHE_PSK_WITH_AES_256_CBC_SHA384",
        0x00B4: "DHE_PSK_WITH_NULL_SHA256", 0x00B5: "DHE_PSK_WITH_NULL_SHA384",
        0x00B6: "RSA_PSK_WITH_AES_128_CBC_SHA256", 0x00B7: "RSA_PSK_WITH_AES_256_CBC_SHA384",
        0x00B8: "RSA_PSK_WITH_NULL_SHA256", 0x00B9: "RSA_PSK_WITH_NULL_SHA384",
        0x00BA: "RSA_WITH_CAMELLIA_128_CBC_SHA256", 0x00BB: "DH_DSS_WITH_CAMELLIA_128_CBC_SHA256",
        0x00BC: "DH_RSA_WITH_CAMELLIA_128_CBC_SHA256", 0x00BD: "DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256",
        0x00BE: "DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256", 0x00BF: "DH_anon_WITH_CAMELLIA_128_CBC_SHA256",
        0x00C0: "RSA_WITH_CAMELLIA_256_CBC_SHA256", 0x00C1: "DH_DSS_WITH_CAMELLIA_256_CBC_SHA256",
        0x00C2: "DH_RSA_WITH_CAMELLIA_256_CBC_SHA256", 0x00C3: "DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256",
        0x00C4: "DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256", 0x00C5: "DH_anon_WITH_CAMELLIA_256_CBC_SHA256",
        0x00FF: "EMPTY_RENEGOTIATION_INFO_SCSV",
        0x1301: "AES_128_GCM_SHA256", 0x1302: "AES_256_GCM_SHA384",
        0x1303: "CHACHA20_POLY1305_SHA256", 0x1304: "AES_128_CCM_SHA256",
        0x1305: "AES_128_CCM_8_SHA256",
        0x5600: "FALLBACK_SCSV",
        0xC001: "ECDH_ECDSA_WITH_NULL_SHA", 0xC002: "ECDH_ECDSA_WITH_RC4_128_SHA",
        0xC003: "ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA", 0xC004: "ECDH_ECDSA_WITH_AES_128_CBC_SHA",
        0xC005: "ECDH_ECDSA_WITH_AES_256_CBC_SHA", 0xC006: "ECDHE_ECDSA_WITH_NULL_SHA",
        0xC007: "ECDHE_ECDSA_WITH_RC4_128_SHA", 0xC008: "ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
        0xC009: "ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC00A: "ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xC00B: "ECDH_RSA_WITH_NULL_SHA", 0xC00C: "ECDH_RSA_WITH_RC4_128_SHA",
        0xC00D: "ECDH_RSA_WITH_3DES_EDE_CBC_SHA", 0xC00E: "ECDH_RSA_WITH_AES_128_CBC_SHA",
        0xC00F: "ECDH_RSA_WITH_AES_256_CBC_SHA", 0xC010: "ECDHE_RSA_WITH_NULL_SHA",
        0xC011: "ECDHE_RSA_WITH_RC4_128_SHA", 0xC012: "ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xC013: "ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xC015: "ECDH_anon_WITH_NULL_SHA", 0xC016: "ECDH_anon_WITH_RC4_128_SHA",
        0xC017: "ECDH_anon_WITH_3DES_EDE_CBC_SHA", 0xC018: "ECDH_anon_WITH_AES_128_CBC_SHA",
        0xC019: "ECDH_anon_WITH_AES_256_CBC_SHA",
        0xC01A: "SRP_SHA_WITH_3DES_EDE_CBC_SHA", 0xC01B: "SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA",
        0xC01C: "SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA", 0xC01D: "SRP_SHA_WITH_AES_128_CBC_SHA",
        0xC01E: "SRP_SHA_RSA_WITH_AES_128_CBC_SHA", 0xC01F: "SRP_SHA_DSS_WITH_AES_128_CBC_SHA",
        0xC020: "SRP_SHA_WITH_AES_256_CBC_SHA", 0xC021: "SRP_SHA_RSA_WITH_AES_256_CBC_SHA",
        0xC022: "SRP_SHA_DSS_WITH_AES_256_CBC_SHA",
        0xC023: "ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC024: "ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xC025: "ECDH_ECDSA_WITH_AES_128_CBC_SHA256", 0xC026: "ECDH_ECDSA_WITH_AES_256_CBC_SHA384",
        0xC027: "ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC028: "ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xC029: "ECDH_RSA_WITH_AES_128_CBC_SHA256", 0xC02A: "ECDH_RSA_WITH_AES_256_CBC_SHA384",
        0xC02B: "ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02D: "ECDH_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02E: "ECDH_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02F: "ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xC031: "ECDH_RSA_WITH_AES_128_GCM_SHA256", 0xC032: "ECDH_RSA_WITH_AES_256_GCM_SHA384",
        0xC033: "ECDHE_PSK_WITH_RC4_128_SHA", 0xC034: "ECDHE_PSK_WITH_3DES_EDE_CBC_SHA",
        0xC035: "ECDHE_PSK_WITH_AES_128_CBC_SHA", 0xC036: "ECDHE_PSK_WITH_AES_256_CBC_SHA",
        0xC037: "ECDHE_PSK_WITH_AES_128_CBC_SHA256", 0xC038: "ECDHE_PSK_WITH_AES_256_CBC_SHA384",
        0xC039: "ECDHE_PSK_WITH_NULL_SHA", 0xC03A: "ECDHE_PSK_WITH_NULL_SHA256",
        0xC03B: "ECDHE_PSK_WITH_NULL_SHA384",
        0xC09C: "RSA_WITH_AES_128_CCM", 0xC09D: "RSA_WITH_AES_256_CCM",
        0xC09E: "DHE_RSA_WITH_AES_128_CCM", 0xC09F: "DHE_RSA_WITH_AES_256_CCM",
        0xC0A0: "RSA_WITH_AES_128_CCM_8", 0xC0A1: "RSA_WITH_AES_256_CCM_8",
        0xC0A2: "DHE_RSA_WITH_AES_128_CCM_8", 0xC0A3: "DHE_RSA_WITH_AES_256_CCM_8",
        0xC0A4: "PSK_WITH_AES_128_CCM", 0xC0A5: "PSK_WITH_AES_256_CCM",
        0xC0A6: "DHE_PSK_WITH_AES_128_CCM", 0xC0A7: "DHE_PSK_WITH_AES_256_CCM",
        0xC0A8: "PSK_WITH_AES_128_CCM_8", 0xC0A9: "PSK_WITH_AES_256_CCM_8",
        0xC0AA: "PSK_DHE_WITH_AES_128_CCM_8", 0xC0AB: "PSK_DHE_WITH_AES_256_CCM_8",
        0xC0AC: "ECDHE_ECDSA_WITH_AES_128_CCM", 0xC0AD: "ECDHE_ECDSA_WITH_AES_256_CCM",
        0xC0AE: "ECDHE_ECDSA_WITH_AES_128_CCM_8", 0xC0AF: "ECDHE_ECDSA_WITH_AES_256_CCM_8",
        # ChaCha20 draft code points (pre RFC 7905), named as Zeek does
        0xCC13: "ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
        0xCC14: "ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
        0xCC15: "DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
        0xCCA8: "ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCA9: "ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAA: "DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAB: "PSK_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAC: "ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAD: "DHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
        0xCCAE: "RSA_PSK_WITH_CHACHA20_POLY1305_SHA256",
        0xD001: "ECDHE_PSK_WITH_AES_128_GCM_SHA256", 0xD002: "ECDHE_PSK_WITH_AES_256_GCM_SHA384",
        0xD003: "ECDHE_PSK_WITH_AES_128_CCM_8_SHA256", 0xD005: "ECDHE_PSK_WITH_AES_128_CCM_SHA256",
    }
    # ARIA (RFC 6209) and the ECC/GCM Camellia suites (RFC 6367) are regular
    # blocks: (key exchange, mode) pairs of consecutive 128/256-bit code points.
    aria = [
        ("RSA", "CBC"), ("DH_DSS", "CBC"), ("DH_RSA", "CBC"), ("DHE_DSS", "CBC"),
        ("DHE_RSA", "CBC"), ("DH_anon", "CBC"), ("ECDHE_ECDSA", "CBC"), ("ECDH_ECDSA", "CBC"),
        ("ECDHE_RSA", "CBC"), ("ECDH_RSA", "CBC"),
        ("RSA", "GCM"), ("DHE_RSA", "GCM"), ("DH_RSA", "GCM"), ("DHE_DSS", "GCM"),
        ("DH_DSS", "GCM"), ("DH_anon", "GCM"), ("ECDHE_ECDSA", "GCM"), ("ECDH_ECDSA", "GCM"),
        ("ECDHE_RSA", "GCM"), ("ECDH_RSA", "GCM"),
        ("PSK", "CBC"), ("DHE_PSK", "CBC"), ("RSA_PSK", "CBC"),
        ("PSK", "GCM"), ("DHE_PSK", "GCM"), ("RSA_PSK", "GCM"), ("ECDHE_PSK", "CBC"),
    ]
    camellia = [
        ("ECDHE_ECDSA", "CBC"), ("ECDH_ECDSA", "CBC"), ("ECDHE_RSA", "CBC"), ("ECDH_RSA", "CBC"),
        ("RSA", "GCM"), ("DHE_RSA", "GCM"), ("DH_RSA", "GCM"), ("DHE_DSS", "GCM"),
        ("DH_DSS", "GCM"), ("DH_anon", "GCM"), ("ECDHE_ECDSA", "GCM"), ("ECDH_ECDSA", "GCM"),
        ("ECDHE_RSA", "GCM"), ("ECDH_RSA", "GCM"), ("PSK", "GCM"), ("DHE_PSK", "GCM"),
        ("RSA_PSK", "GCM"), ("PSK", "CBC"), ("DHE_PSK", "CBC"), ("RSA_PSK", "CBC"),
        ("ECDHE_PSK", "CBC"),
    ]
    for start, algo, blocks in ((0xC03C, "ARIA", aria), (0xC072, "CAMELLIA", camellia)):
        for i, (kx, mode) in enumerate(blocks):
            lo = "%s_WITH_%s_128_%s_SHA256" % (kx, algo, mode)
            hi = "%s_WITH_%s_256_%s_SHA384" % (kx, algo, mode)
            t.setdefault(start + 2 * i, lo)
            t.setdefault(start + 2 * i + 1, hi)
    return {k: "TLS_" + v for k, v in t.items()}


CIPHER_SUITES: dict[int, str] = _suite_table()


def cipher_name(code: int) -> str:
    """IANA name of a cipher suite; ``unknown-0xXXXX`` when not in the table."""
    return CIPHER_SUITES.get(code) or "unknown-0x%04x" % code


_CURVES = {
    1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2",
    6: "sect233k1", 7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1",
    11: "sect409k1", 12: "sect409r1", 13: "sect571k1", 14: "sect571r1", 15: "secp160k1",
    16: "secp160r1", 17: "secp160r2", 18: "secp192k1", 19: "secp192r1", 20: "secp224k1",
    21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1", 25: "secp521r1",
    26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 29: "x25519",
    30: "x448", 256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096", 259: "ffdhe6144",
    260: "ffdhe8192", 0x0200: "MLKEM512", 0x0201: "MLKEM768", 0x0202: "MLKEM1024",
    0x11EB: "SecP256r1MLKEM768", 0x11EC: "X25519MLKEM768", 0x11ED: "SecP384r1MLKEM1024",
    0x6399: "X25519Kyber768Draft00", 0x639A: "SecP256r1Kyber768Draft00",
    0xFF01: "arbitrary_explicit_prime_curves", 0xFF02: "arbitrary_explicit_char2_curves",
}


def curve_name(code: int) -> str:
    """Zeek's name for a named group / curve."""
    return _CURVES.get(code) or "unknown-0x%04x" % code


ALERTS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
    109: "missing_extension", 110: "unsupported_extension", 111: "certificate_unobtainable",
    112: "unrecognized_name", 113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value", 115: "unknown_psk_identity",
    116: "certificate_required", 120: "no_application_protocol",
}

# Zeek's ssl_history letters per handshake type (client letters upper-cased).
_HISTORY = {
    0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k",
    13: "r", 14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p",
    254: "m",
}


# ---------------------------------------------------------------------------
# Byte reader
# ---------------------------------------------------------------------------

class Malformed(ValueError):
    """A handshake message does not parse."""


class _Reader:
    """Bounds-checked big-endian reader over ``buf[pos:end]``."""
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise Malformed("truncated: need %d bytes, %d left" % (n, self.end - self.pos))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        if self.pos >= self.end:
            raise Malformed("truncated: need 1 byte")
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def u16(self) -> int:
        b = self.take(2)
        return (b[0] << 8) | b[1]

    def u24(self) -> int:
        b = self.take(3)
        return (b[0] << 16) | (b[1] << 8) | b[2]

    def sub(self, n: int) -> "_Reader":
        """A reader over the next ``n`` bytes (consumed from this one)."""
        if n < 0 or self.pos + n > self.end:
            raise Malformed("truncated vector: need %d bytes, %d left" % (n, self.end - self.pos))
        r = _Reader(self.buf, self.pos, self.pos + n)
        self.pos += n
        return r

    def u16_list(self, nbytes: int) -> list[int]:
        b = self.take(nbytes)
        return [(b[i] << 8) | b[i + 1] for i in range(0, nbytes - 1, 2)]


def printable(b: bytes) -> str:
    """Bytes as log text: printable ASCII kept, everything else ``\\xNN``
    (server names, ALPN values)."""
    if b.isascii():
        s = b.decode("ascii")
        if s.isprintable():
            return s
    return "".join(chr(c) if 0x20 <= c < 0x7F else "\\x%02x" % c for c in b)


# ---------------------------------------------------------------------------
# Hello messages
# ---------------------------------------------------------------------------

@dataclass
class ClientHello:
    """A parsed ClientHello (values as on the wire, GREASE included)."""
    legacy_version: int
    random: bytes = b""
    session_id: bytes = b""
    ciphers: list[int] = field(default_factory=list)
    compression: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)     # types, wire order
    server_names: list[str] = field(default_factory=list)   # host_name entries
    alpn: list[bytes] = field(default_factory=list)
    supported_versions: list[int] | None = None
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    sig_algs: list[int] = field(default_factory=list)
    key_share_groups: list[int] = field(default_factory=list)
    session_ticket: bytes | None = None
    has_psk: bool = False
    sslv2: bool = False
    problems: list[str] = field(default_factory=list)       # tolerated defects

    @property
    def server_name(self) -> str | None:
        """The first host_name of the SNI extension (Zeek's ``server_name``)."""
        return self.server_names[0] if self.server_names else None

    @property
    def alpn_text(self) -> list[str]:
        return [printable(p) for p in self.alpn]

    @property
    def ech(self) -> bool:
        """The client offered Encrypted Client Hello: its server_name is then the outer, public
        name of the provider's front end, and the name it really asked for is encrypted.  (A
        GREASE ECH extension, sent by browsers without an ECH configuration, looks the same on
        the wire by design: its outer SNI is then the real name.)"""
        return EXT_ECH in self.extensions

    def ja3_string(self) -> str | None:
        if self.sslv2:
            return None
        return fingerprints.ja3_string(self.legacy_version, self.ciphers, self.extensions,
                                       self.groups, self.point_formats)

    def ja3(self) -> str | None:
        if self.sslv2:
            return None
        return fingerprints.ja3(self.legacy_version, self.ciphers, self.extensions,
                                self.groups, self.point_formats)

    def ja4(self, proto: str = "t") -> str | None:
        if self.sslv2:
            return None
        return fingerprints.ja4(proto, self.legacy_version, self.ciphers, self.extensions,
                                self.sig_algs, self.supported_versions,
                                self.alpn[0] if self.alpn else None)


@dataclass
class ServerHello:
    """A parsed ServerHello (or HelloRetryRequest, ``is_hrr``)."""
    legacy_version: int
    random: bytes = b""
    session_id: bytes = b""
    cipher: int = 0
    compression: int = 0
    extensions: list[int] = field(default_factory=list)
    selected_version: int | None = None
    alpn: list[bytes] = field(default_factory=list)
    key_share_group: int | None = None
    has_psk: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def version(self) -> int:
        """Negotiated version: supported_versions when present (TLS 1.3)."""
        return self.selected_version if self.selected_version is not None else self.legacy_version

    @property
    def is_hrr(self) -> bool:
        return self.random == HRR_RANDOM

    def ja4s(self, proto: str = "t") -> str:
        """JA4S of this ServerHello (FoxIO License 1.1: ``ja4plus.py``)."""
        return ja4plus.ja4s(proto, self.legacy_version, self.selected_version, self.cipher, self.extensions,
                            self.alpn[0] if self.alpn else None)


def _parse_extensions(r: _Reader, hello, client: bool) -> None:
    """Extensions block: ``uint16 length`` then (type, uint16 len, data)*.

    A truncated block keeps what parsed and notes the defect in
    ``hello.problems``; a malformed known extension is skipped likewise."""
    if r.left() == 0:
        return                                        # no extensions (SSLv3 era)
    if r.left() < 2:
        hello.problems.append("truncated_extensions")
        return
    total = r.u16()
    if total > r.left():
        hello.problems.append("truncated_extensions")
        total = r.left()
    block = r.sub(total)
    while block.left() > 0:
        if block.left() < 4:
            hello.problems.append("truncated_extensions")
            return
        etype = block.u16()
        elen = block.u16()
        if elen > block.left():
            hello.problems.append("truncated_extensions")
            return
        data = block.sub(elen)
        hello.extensions.append(etype)
        try:
            (_client_ext if client else _server_ext)(hello, etype, data)
        except Malformed:
            hello.problems.append("bad_extension_%d" % etype)


def _client_ext(ch: ClientHello, etype: int, d: _Reader) -> None:
    if etype == EXT_SERVER_NAME:
        if d.left() == 0:
            return                                    # empty SNI (server echo form)
        lst = d.sub(d.u16())
        while lst.left() > 0:
            ntype = lst.u8()
            name = lst.take(lst.u16())
            if ntype == 0:
                ch.server_names.append(printable(name))
    elif etype == EXT_ALPN:
        lst = d.sub(d.u16())
        while lst.left() > 0:
            ch.alpn.append(lst.take(lst.u8()))
    elif etype == EXT_SUPPORTED_VERSIONS:
        n = d.u8()
        ch.supported_versions = d.u16_list(n)
    elif etype == EXT_SUPPORTED_GROUPS:
        n = d.u16()
        ch.groups = d.u16_list(n)
    elif etype == EXT_EC_POINT_FORMATS:
        n = d.u8()
        ch.point_formats = list(d.take(n))
    elif etype == EXT_SIGNATURE_ALGORITHMS:
        n = d.u16()
        ch.sig_algs = d.u16_list(n)
    elif etype == EXT_KEY_SHARE:
        lst = d.sub(d.u16())
        while lst.left() > 0:
            ch.key_share_groups.append(lst.u16())
            lst.take(lst.u16())
    elif etype == EXT_SESSION_TICKET:
        ch.session_ticket = d.take(d.left())
    elif etype == EXT_PRE_SHARED_KEY:
        ch.has_psk = True


def _server_ext(sh: ServerHello, etype: int, d: _Reader) -> None:
    if etype == EXT_SUPPORTED_VERSIONS:
        sh.selected_version = d.u16()
    elif etype == EXT_ALPN:
        lst = d.sub(d.u16())
        while lst.left() > 0:
            sh.alpn.append(lst.take(lst.u8()))
    elif etype == EXT_KEY_SHARE:
        sh.key_share_group = d.u16()                  # HRR: selected_group only
    elif etype == EXT_PRE_SHARED_KEY:
        sh.has_psk = True


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello handshake body (after the 4-byte handshake header).

    Raises :class:`Malformed` when the fixed part does not parse; defects in
    the extensions are tolerated and listed in ``problems``."""
    r = _Reader(body)
    ch = ClientHello(legacy_version=r.u16())
    ch.random = r.take(32)
    sid_len = r.u8()
    if sid_len > 32:
        raise Malformed("session id length %d > 32" % sid_len)
    ch.session_id = r.take(sid_len)
    cs_len = r.u16()
    if cs_len % 2:
        raise Malformed("odd cipher suites length %d" % cs_len)
    if cs_len == 0:
        ch.problems.append("no_cipher_suites")
    ch.ciphers = r.u16_list(cs_len)
    comp_len = r.u8()
    if comp_len == 0:
        ch.problems.append("no_compression_methods")
    ch.compression = list(r.take(comp_len))
    _parse_extensions(r, ch, client=True)
    return ch


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello handshake body (after the 4-byte handshake header)."""
    r = _Reader(body)
    sh = ServerHello(legacy_version=r.u16())
    sh.random = r.take(32)
    if sh.legacy_version >> 8 == 0x7F and (sh.legacy_version & 0xFF) < 22:
        # TLS 1.3 drafts before -22: no session id, no compression method.
        sh.cipher = r.u16()
        _parse_extensions(r, sh, client=False)
        return sh
    sid_len = r.u8()
    if sid_len > 32:
        raise Malformed("session id length %d > 32" % sid_len)
    sh.session_id = r.take(sid_len)
    sh.cipher = r.u16()
    sh.compression = r.u8()
    _parse_extensions(r, sh, client=False)
    return sh


def parse_sslv2_client_hello(body: bytes) -> ClientHello:
    """An SSLv2 CLIENT-HELLO record body (message type byte included)."""
    r = _Reader(body)
    if r.u8() != 1:
        raise Malformed("not an SSLv2 client hello")
    version = r.u16()
    cs_len, sid_len, chal_len = r.u16(), r.u16(), r.u16()
    if cs_len % 3 or sid_len > 32 or not 16 <= chal_len <= 32:
        raise Malformed("bad SSLv2 client hello lengths")
    specs = r.take(cs_len)
    ch = ClientHello(legacy_version=version, sslv2=True)
    ch.ciphers = [(specs[i] << 16) | (specs[i + 1] << 8) | specs[i + 2]
                  for i in range(0, cs_len, 3)]
    ch.session_id = r.take(sid_len)
    ch.random = r.take(chal_len)
    return ch


def parse_certificate_list(body: bytes) -> list[bytes]:
    """DER certificates of a TLS <= 1.2 Certificate message (leaf first)."""
    r = _Reader(body)
    lst = r.sub(r.u24())
    certs = []
    while lst.left() > 0:
        certs.append(lst.take(lst.u24()))
    return certs


_OID_NAMES: dict | None = None


def _oid_names() -> dict:
    """Attribute names as OpenSSL prints them (and so Zeek's x509.log), where
    RFC 4514 has none: ``emailAddress=`` rather than ``1.2.840.113549.1.9.1=``."""
    global _OID_NAMES
    if _OID_NAMES is None:
        from cryptography.x509.oid import NameOID as N
        _OID_NAMES = {
            N.EMAIL_ADDRESS: "emailAddress", N.STREET_ADDRESS: "street",
            N.POSTAL_CODE: "postalCode", N.SERIAL_NUMBER: "serialNumber",
            N.BUSINESS_CATEGORY: "businessCategory", N.SURNAME: "SN", N.GIVEN_NAME: "GN",
            N.TITLE: "title", N.INITIALS: "initials", N.PSEUDONYM: "pseudonym",
            N.GENERATION_QUALIFIER: "generationQualifier", N.DN_QUALIFIER: "dnQualifier",
            N.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
            N.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
            N.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
            N.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
            N.UNSTRUCTURED_NAME: "unstructuredName", N.POSTAL_ADDRESS: "postalAddress",
        }
    return _OID_NAMES


# OpenSSL's long names of public-key algorithms (Zeek's certificate.key_alg); others as dotted OIDs.
_KEY_ALGS = {
    "1.2.840.113549.1.1.1": "rsaEncryption", "1.2.840.113549.1.1.10": "rsassaPss",
    "1.2.840.10045.2.1": "id-ecPublicKey", "1.2.840.10040.4.1": "dsaEncryption",
    "1.2.840.10046.2.1": "dhpublicnumber", "1.3.101.110": "X25519", "1.3.101.111": "X448",
    "1.3.101.112": "ED25519", "1.3.101.113": "ED448",
    # FIPS 204 ML-DSA (the same OID names the key and the signature algorithm)
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44", "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
}


def _serial_hex(n: int) -> str:
    """The serial number as OpenSSL prints it (Zeek's certificate.serial): upper-case hex, whole
    bytes, a leading ``-`` when negative."""
    sign, n = ("-", -n) if n < 0 else ("", n)
    h = "%X" % n
    return sign + ("0" + h if len(h) % 2 else h)


# Zeek's certificate.key_type per public-key algorithm OID.
_KEY_TYPES = {"1.2.840.113549.1.1.1": "rsa", "1.2.840.113549.1.1.10": "rsa", "1.2.840.10045.2.1": "ecdsa",
              "1.2.840.10040.4.1": "dsa", "1.3.101.112": "ed25519", "1.3.101.113": "ed448",
              "2.16.840.1.101.3.4.3.17": "ML-DSA-44", "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
              "2.16.840.1.101.3.4.3.19": "ML-DSA-87"}
# Key types whose public keys have one size (bits of the encoded key, as OpenSSL counts ML-DSA).
_FIXED_KEY_BITS = {"ed25519": 256, "ed448": 456, "ML-DSA-44": 1312 * 8, "ML-DSA-65": 1952 * 8,
                   "ML-DSA-87": 2592 * 8}


def _public_key_facts(cert) -> tuple:
    """(key_alg, key_type, key_length) of a certificate's public key as Zeek logs them; an
    unsupported or broken key gives what could be read and None for the rest."""
    try:
        oid = cert.public_key_algorithm_oid.dotted_string
    except Exception:                                  # unparseable SubjectPublicKeyInfo
        return None, None, None
    key_type = _KEY_TYPES.get(oid)
    bits = _FIXED_KEY_BITS.get(key_type)
    if key_type is not None and bits is None:
        try:
            key = cert.public_key()
            curve = getattr(key, "curve", None)        # EC: the curve's size, as Zeek
            bits = curve.key_size if curve is not None else getattr(key, "key_size", None)
        except Exception:                              # a key cryptography refuses to load
            bits = None
    return _KEY_ALGS.get(oid, oid), key_type, bits


def x509_record(der: bytes, ts: float, host_cert: bool, client_cert: bool) -> dict:
    """One x509.jsonl record (Zeek's x509.log columns, the ``x509`` stream of
    ``inspector.outputs.schema``) for a DER certificate; see :func:`parse_certificate`."""
    return parse_certificate(der, ts, host_cert, client_cert)[0]


def parse_certificate(der: bytes, ts: float, host_cert: bool, client_cert: bool) -> tuple[dict, bool]:
    """(x509.jsonl record, subjectAltName names were cut) for a DER certificate.

    ``host_cert``: the first certificate of a chain (the endpoint's own); ``client_cert``: sent by
    the client.  Raises ``ValueError`` (or a ``cryptography`` error) when the DER does not parse;
    the caller turns that into the weird ``ssl.bad_certificate``.  Names keep control characters
    escaped (``_clean``); at most ``MAX_SAN_DNS`` names of each subjectAltName kind are kept."""
    rec, cut, _cert = _parse_certificate_full(der, ts, host_cert, client_cert)
    return rec, cut


def _parse_certificate_full(der: bytes, ts: float, host_cert: bool, client_cert: bool) -> tuple:
    """(record, names were cut, the ``cryptography`` certificate) for a DER certificate."""
    import hashlib
    import warnings

    with warnings.catch_warnings():
        # cryptography warns about tolerated defects (a negative serial...): the traffic's
        # business, not the operator's; the values are logged as they are.
        warnings.simplefilter("ignore")
        return _parse_certificate(hashlib.sha256(der).hexdigest(), der, ts, host_cert, client_cert)


def _parse_certificate(fingerprint: str, der: bytes, ts: float, host_cert: bool,
                       client_cert: bool) -> tuple:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    names = _oid_names()
    san_dns = san_ip = None
    cut = False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = san.get_values_for_type(x509.IPAddress)
        cut = len(dns) > MAX_SAN_DNS or len(ips) > MAX_SAN_DNS
        san_dns = [_clean(n) for n in dns[:MAX_SAN_DNS]] or None
        san_ip = [str(a) for a in ips[:MAX_SAN_DNS]] or None
    except x509.ExtensionNotFound:
        pass
    ca = None
    try:
        ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        pass
    try:
        sig_oid = cert.signature_algorithm_oid
        sig_alg = _KEY_ALGS.get(sig_oid.dotted_string) if sig_oid._name == "Unknown OID" else sig_oid._name
        sig_alg = sig_alg or sig_oid.dotted_string
    except Exception:                                  # an unparseable AlgorithmIdentifier
        sig_alg = None
    key_alg, key_type, key_length = _public_key_facts(cert)
    return {
        "ts": ts,
        "fingerprint": fingerprint,
        "certificate.version": cert.version.value + 1,
        "certificate.serial": _serial_hex(cert.serial_number),
        "certificate.subject": _clean(cert.subject.rfc4514_string(names)),
        "certificate.issuer": _clean(cert.issuer.rfc4514_string(names)),
        "certificate.not_valid_before": cert.not_valid_before_utc.timestamp(),
        "certificate.not_valid_after": cert.not_valid_after_utc.timestamp(),
        "certificate.key_alg": key_alg,
        "certificate.sig_alg": sig_alg,
        "certificate.key_type": key_type,
        "certificate.key_length": key_length,
        "san.dns": san_dns,
        "san.ip": san_ip,
        "basic_constraints.ca": ca,
        "host_cert": host_cert,
        "client_cert": client_cert,
        "ja4x": ja4plus.ja4x(der),
    }, cut, cert


def _clean(s: str) -> str:
    """Control characters of a decoded string as ``\\xNN`` (a NUL in a
    certificate name must not reach the log raw)."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else "\\x%02x" % ord(c) if ord(c) < 256
                   else "\\u%04x" % ord(c) for c in s)


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_header_len(buf: bytes) -> int:
    """Length of a leading HAProxy PROXY protocol header (v1 text or v2
    binary), as load balancers put in front of the client's ClientHello:
    ``-1`` when there is none, ``0`` when more bytes are needed."""
    n = len(buf)
    if n < 12:
        if bytes(buf[:6]) == b"PROXY "[:min(n, 6)] or bytes(buf) == PROXY_V2_SIGNATURE[:n]:
            return 0
        return -1
    if buf[:6] == b"PROXY ":
        end = bytes(buf[:108]).find(b"\r\n")
        if end < 0:
            return 0 if n < 108 else -1
        return end + 2
    if buf[:12] == PROXY_V2_SIGNATURE:
        if n < 16:
            return 0
        total = 16 + ((buf[14] << 8) | buf[15])
        return total if n >= total else 0
    return -1


def probe(data: bytes, is_orig: bool) -> bool:
    """A TLS handshake record starting a ClientHello/ServerHello, or an
    SSLv2-compatible ClientHello (either possibly behind a PROXY header)."""
    try:
        if is_orig and data[:1] in (b"P", b"\r"):
            skip = proxy_header_len(data)
            if skip > 0:
                data = data[skip:]
        if len(data) >= 6 and data[0] == CT_HANDSHAKE and data[1] == 3 and data[2] <= 4:
            rec_len = (data[3] << 8) | data[4]
            if rec_len < 4 or rec_len > MAX_RECORD or data[5] not in (1, 2):
                return False
            if len(data) >= 11:
                hs_len = (data[6] << 16) | (data[7] << 8) | data[8]
                if hs_len < 38 or data[9] not in (3, 0x7F, 0xFB):
                    return False
            return True
        return _probe_sslv2(data)
    except Exception:                                  # never raise on traffic
        return False


def _probe_sslv2(data: bytes) -> bool:
    if len(data) < 11 or not data[0] & 0x80 or data[2] != 1:
        return False
    rec_len = ((data[0] & 0x7F) << 8) | data[1]
    version = (data[3] << 8) | data[4]
    if version not in (0x0002, 0x0300, 0x0301, 0x0302, 0x0303):
        return False
    cs_len = (data[5] << 8) | data[6]
    sid_len = (data[7] << 8) | data[8]
    chal_len = (data[9] << 8) | data[10]
    return (cs_len > 0 and cs_len % 3 == 0 and sid_len in (0, 16, 32)
            and 16 <= chal_len <= 32 and 9 + cs_len + sid_len + chal_len == rec_len)


# ---------------------------------------------------------------------------
# Analyzer
# ---------------------------------------------------------------------------

class _Side:
    """Per-direction record-layer state."""
    __slots__ = ("buf", "skip", "hs", "hs_skip", "encrypted", "protected", "lost", "hs_off",
                 "records", "v2")

    def __init__(self):
        self.buf = bytearray()    # unparsed record bytes (at most one record)
        self.skip = 0             # ciphertext body bytes still to discard
        self.hs = bytearray()     # handshake message reassembly
        self.hs_skip = 0          # rest of an oversized handshake message to discard
        self.encrypted = False    # sent ChangeCipherSpec (or TLS 1.3 app data): Zeek's state
        self.protected = False    # its records are ciphertext (CCS before TLS 1.3)
        self.lost = False         # out of sync: ignore the rest of this direction
        self.hs_off = False       # handshake parsing abandoned (cap / error)
        self.records = 0
        self.v2 = False           # SSLv2 record framing


class Analyzer(_BaseAnalyzer):
    """One TLS connection: record layer + cleartext handshake."""
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._sides = {True: _Side(), False: _Side()}
        self._ts: float | None = None
        self.client_hello: ClientHello | None = None
        self.server_hello: ServerHello | None = None
        self._client_session_id: bytes | None = None
        self._ticket_no_sid = False
        self._cke_seen = False
        self._tls13 = False
        self._v2_conn = False
        self._proxy_checked = False
        self._confirmed = False
        self._finished = False     # record written, nothing more wanted
        self.version: str | None = None
        self.cipher: str | None = None
        self._cipher_code: int | None = None
        self.curve: str | None = None
        self.next_protocol: str | None = None
        self.resumed = False
        self.established = False
        self.last_alert: str | None = None
        self.history = ""
        self.cert: dict | None = None          # the server's leaf: subject, issuer, san_dns and its facts
        # Per direction (is_orig): SHA-256 fingerprints of the Certificate message's chain, in
        # order; None until that direction's (first) Certificate message.
        self._chain_fps: dict = {True: None, False: None}

    # -- plumbing ------------------------------------------------------------
    def wants_more(self) -> bool:
        return not self._finished

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._finished or not data:
            return
        side = self._sides[is_orig]
        if side.lost:
            return
        if self._ts is None:
            self._ts = ts
        if side.skip:
            if len(data) <= side.skip:
                side.skip -= len(data)
                return
            data = data[side.skip:]
            side.skip = 0
        side.buf += data
        if is_orig and not self._proxy_checked:
            skip = proxy_header_len(side.buf)
            if skip == 0 and len(side.buf) < 4096:
                return                                 # PROXY header not complete yet
            self._proxy_checked = True
            if skip > 0:
                del side.buf[:skip]
        self._records(side, is_orig, ts)
        if self._sides[True].lost and self._sides[False].lost:
            self._finish(ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        side = self._sides[is_orig]
        if self._finished or side.lost:
            return
        if side.skip >= length and not side.buf:
            side.skip -= length                      # the hole is inside skipped ciphertext
            return
        side.lost = True
        side.buf.clear()
        side.hs.clear()
        if self._sides[not is_orig].lost:
            self._finish(ts)

    def done(self, ts: float) -> None:
        if not self._finished:
            for is_orig, side in self._sides.items():
                if side.hs and not side.hs_off and not side.lost:
                    self.ctx.weird("ssl.truncated_handshake",
                                   "%d bytes of an unfinished handshake message from %s"
                                   % (len(side.hs), "client" if is_orig else "server"), ts)
            self._finish(ts)

    # -- record layer ----------------------------------------------------------
    def _records(self, side: _Side, is_orig: bool, ts: float) -> None:
        buf = side.buf
        pos = 0
        while not side.lost and not self._finished:
            avail = len(buf) - pos
            if side.v2 or (side.records == 0 and avail >= 1 and buf[pos] & 0x80):
                used = self._v2_record(side, is_orig, buf, pos, ts)
                if used == 0:
                    break
                pos += used
                continue
            if avail < 5:
                break
            ctype, major, minor = buf[pos], buf[pos + 1], buf[pos + 2]
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if not CT_CCS <= ctype <= CT_HEARTBEAT or major != 3 or minor > 4:
                self._lose(side, is_orig, "ssl.bad_record",
                           "record header %s" % bytes(buf[pos:pos + 5]).hex(), ts)
                break
            if length > MAX_RECORD:
                self._lose(side, is_orig, "ssl.bad_record_length",
                           "record length %d > %d" % (length, MAX_RECORD), ts)
                break
            side.records += 1
            if ctype == CT_APPDATA and self._tls13 and not side.encrypted:
                side.encrypted = True                 # TLS 1.3: protected records begin
            opaque = side.protected or ctype == CT_APPDATA or (
                ctype == CT_HANDSHAKE and side.hs_off)
            if opaque:
                have = min(avail - 5, length)
                pos += 5 + have
                side.skip = length - have
                self._opaque_record(side, is_orig, ctype, ts)
                if side.skip:
                    break
                continue
            if avail < 5 + length:
                break                                  # wait for the whole record
            body = bytes(buf[pos + 5:pos + 5 + length])
            pos += 5 + length
            self._plain_record(side, is_orig, ctype, body, ts)
        if side.lost:
            buf.clear()
        else:
            del buf[:pos]

    def _tls13_possible(self) -> bool:
        if self._tls13:
            return True
        if self.server_hello is not None:
            return False
        ch = self.client_hello
        return bool(ch and ch.supported_versions
                    and any(is_tls13(v) for v in ch.supported_versions))

    def _lose(self, side: _Side, is_orig: bool, weird: str, detail: str, ts: float) -> None:
        self.ctx.weird(weird, detail + (" from client" if is_orig else " from server"), ts)
        side.lost = True
        side.hs.clear()

    def _opaque_record(self, side: _Side, is_orig: bool, ctype: int, ts: float) -> None:
        """A record whose content we do not parse (ciphertext / application data)."""
        if side.encrypted and not self.established:
            other = self._sides[not is_orig]
            if other.encrypted:
                self.established = True
                self._finish(ts)

    def _plain_record(self, side: _Side, is_orig: bool, ctype: int, body: bytes, ts: float) -> None:
        if ctype == CT_HANDSHAKE:
            self._handshake_bytes(side, is_orig, body, ts)
        elif ctype == CT_CCS:
            self._add_history(is_orig, "i")
            if side.hs:
                self.ctx.weird("ssl.truncated_handshake",
                               "ChangeCipherSpec inside a handshake message", ts)
                side.hs.clear()
            side.encrypted = True
            # Before TLS 1.3 the records after CCS are protected.  In TLS 1.3
            # the CCS is a compatibility no-op (protected records are all
            # application_data) and a second ClientHello/ServerHello after a
            # HelloRetryRequest may follow it in the clear.
            side.protected = not self._tls13_possible()
            if is_orig and self._ticket_no_sid and not self._cke_seen:
                self.resumed = True
        elif ctype == CT_ALERT:
            if len(body) >= 2:
                self._add_history(is_orig, "l")
                self.last_alert = ALERTS.get(body[1], "unknown-%d" % body[1])
        elif ctype == CT_HEARTBEAT:
            self._add_history(is_orig, "b")

    # -- SSLv2 -------------------------------------------------------------------
    def _v2_record(self, side: _Side, is_orig: bool, buf: bytearray, pos: int, ts: float) -> int:
        """Parse one SSLv2 record at ``pos``; returns bytes used (0 = need more)."""
        avail = len(buf) - pos
        if avail < 3:
            return 0
        if buf[pos] & 0x80:
            hdr, length = 2, ((buf[pos] & 0x7F) << 8) | buf[pos + 1]
        else:
            hdr, length = 3, ((buf[pos] & 0x3F) << 8) | buf[pos + 1]
        if avail < hdr + length:
            return 0
        body = bytes(buf[pos + hdr:pos + hdr + length])
        side.records += 1
        mtype = body[0] if body else -1
        if not side.v2:
            # First record of this direction in SSLv2 framing.
            if is_orig and mtype == 1:
                try:
                    ch = parse_sslv2_client_hello(body)
                except Malformed as e:
                    self._lose(side, is_orig, "ssl.bad_client_hello", "SSLv2: %s" % e, ts)
                    return 0
                self._add_history(True, "c")
                self._on_client_hello(ch, ts)
                return hdr + length                    # the server may answer in SSLv3+ framing
            if not is_orig and mtype == 4 and self.client_hello is not None:
                self._v2_conn = True
                side.v2 = True
                self._sides[True].v2 = True
                self._add_history(False, "s")
                self.version = version_name(2)
                self._confirm()
                return hdr + length
            self._lose(side, is_orig, "ssl.bad_record",
                       "record header %s" % bytes(buf[pos:pos + 3]).hex(), ts)
            return 0
        if is_orig and mtype == 2:                     # CLIENT-MASTER-KEY
            self.established = True
            self._finish(ts)
        return hdr + length

    # -- handshake ---------------------------------------------------------------
    def _handshake_bytes(self, side: _Side, is_orig: bool, body: bytes, ts: float) -> None:
        if side.hs_off:
            return
        if side.hs_skip:
            if len(body) <= side.hs_skip:
                side.hs_skip -= len(body)
                return
            body = body[side.hs_skip:]
            side.hs_skip = 0
        side.hs += body
        hs = side.hs
        pos = 0
        while len(hs) - pos >= 4 and not side.hs_off and not self._finished:
            mtype = hs[pos]
            mlen = (hs[pos + 1] << 16) | (hs[pos + 2] << 8) | hs[pos + 3]
            avail = len(hs) - pos - 4
            if mlen > MAX_HANDSHAKE:
                # Too large to buffer whole.  A certificate chain is the usual
                # case: its leaf comes first, so parse the leaf from the head
                # of the message and discard the rest without buffering it.
                leaf = None
                if mtype == HS_CERTIFICATE and not self._tls13 \
                        and self._chain_fps[is_orig] is None:
                    if avail < 6:
                        break
                    leaf_len = (hs[pos + 7] << 16) | (hs[pos + 8] << 8) | hs[pos + 9]
                    if leaf_len <= MAX_LEAF_CERTIFICATE:
                        if avail < 6 + leaf_len:
                            break                      # wait for the whole leaf
                        leaf = bytes(hs[pos + 10:pos + 10 + leaf_len])
                self.ctx.weird("ssl.handshake_too_large",
                               "handshake message type %d of %d bytes (cap %d): %s"
                               % (mtype, mlen, MAX_HANDSHAKE,
                                  "leaf certificate kept, rest skipped" if leaf else "skipped"), ts)
                self._add_history(is_orig, _HISTORY.get(mtype, "z"))
                if leaf is not None:
                    self._on_chain([leaf], is_orig, ts)
                take = min(avail, mlen)
                pos += 4 + take
                side.hs_skip = mlen - take
                break
            if avail < mlen:
                break
            msg = bytes(hs[pos + 4:pos + 4 + mlen])
            pos += 4 + mlen
            self._handshake(side, is_orig, mtype, msg, ts)
        if side.hs_off:
            hs.clear()
        else:
            del hs[:pos]

    def _handshake(self, side: _Side, is_orig: bool, mtype: int, msg: bytes, ts: float) -> None:
        if mtype == HS_SERVER_HELLO and msg[2:34] == HRR_RANDOM:
            self._add_history(is_orig, "j")
        else:
            self._add_history(is_orig, _HISTORY.get(mtype, "z"))
        if mtype == HS_CLIENT_HELLO:
            if self.client_hello is not None:
                return                                 # second hello (after HRR): keep the first
            try:
                ch = parse_client_hello(msg)
            except Malformed as e:
                self.ctx.weird("ssl.bad_client_hello", str(e), ts)
                side.hs_off = True
                return
            self._on_client_hello(ch, ts)
        elif mtype == HS_SERVER_HELLO:
            try:
                sh = parse_server_hello(msg)
            except Malformed as e:
                self.ctx.weird("ssl.bad_server_hello", str(e), ts)
                side.hs_off = True
                return
            self._on_server_hello(sh, ts)
        elif mtype == HS_CERTIFICATE and not self._tls13 and self._chain_fps[is_orig] is None:
            self._on_certificate(msg, is_orig, ts)
        elif mtype == HS_SERVER_KEY_EXCHANGE and not is_orig:
            name = CIPHER_SUITES.get(self._cipher_code or 0, "")
            if ("ECDHE" in name or "ECDH_anon" in name) and len(msg) >= 3 and msg[0] == 3:
                self.curve = curve_name((msg[1] << 8) | msg[2])
        elif mtype == HS_CLIENT_KEY_EXCHANGE and is_orig:
            self._cke_seen = True

    def _on_client_hello(self, ch: ClientHello, ts: float) -> None:
        self.client_hello = ch
        for p in ch.problems:
            self.ctx.weird("ssl.client_hello_" + p, "", ts)
        sid = ch.session_id
        if sid and sid != b"\x00" * 32:
            self._client_session_id = sid
        elif ch.session_ticket:
            self._ticket_no_sid = True
        self._confirm()
        report_client_hello_name(self.ctx, ch, "sni", ts)

    def _on_server_hello(self, sh: ServerHello, ts: float) -> None:
        for p in sh.problems:
            self.ctx.weird("ssl.server_hello_" + p, "", ts)
        if sh.is_hrr:
            return                                     # the real ServerHello follows
        self.server_hello = sh
        v = sh.version
        self.version = version_name(v)
        self._cipher_code = sh.cipher
        self.cipher = cipher_name(sh.cipher)
        self._tls13 = is_tls13(v)
        if sh.alpn:
            self.next_protocol = printable(sh.alpn[0])
        if sh.key_share_group is not None:
            self.curve = curve_name(sh.key_share_group)
        if (self._client_session_id is not None and sh.session_id == self._client_session_id
                and not self._tls13):
            self.resumed = True
        if sh.has_psk and self.client_hello is not None and self.client_hello.has_psk:
            self.resumed = True
        self._confirm()

    def _on_certificate(self, msg: bytes, is_orig: bool, ts: float) -> None:
        try:
            certs = parse_certificate_list(msg)
        except Malformed as e:
            self.ctx.weird("ssl.bad_certificate_message", str(e), ts)
            self._chain_fps[is_orig] = []
            return
        self._on_chain(certs, is_orig, ts)

    def _on_chain(self, certs: list, is_orig: bool, ts: float) -> None:
        """One direction's certificate chain (leaf first): an x509.jsonl record per certificate
        that parses (a weird for each that does not; its fingerprint still goes in the chain),
        the server leaf's names for tls.jsonl."""
        import hashlib
        fps = self._chain_fps[is_orig] = []
        for i, der in enumerate(certs):
            fps.append(hashlib.sha256(der).hexdigest())
            try:
                rec, cut, cert = _parse_certificate_full(der, ts, i == 0, is_orig)
            except Exception as e:                     # cryptography raises many types
                self.ctx.weird("ssl.bad_certificate", "certificate %d from %s: %s: %s"
                               % (i, "client" if is_orig else "server", type(e).__name__, e), ts)
                continue
            if cut:
                self.ctx.weird("ssl.many_subject_alt_names",
                               "only the first %d DNS names and addresses are logged" % MAX_SAN_DNS, ts)
            self.ctx.emit(X509_LOG, rec)
            if i == 0 and not is_orig:
                self._server_leaf(rec, cert, ts)

    def _server_leaf(self, rec: dict, cert, ts: float) -> None:
        """The server's own certificate: its names for tls.jsonl; the name it gives the server
        (``x509``, used when nothing else names the flow); whether it presents the SNI; self-signed
        and validity facts; its subject and issuer for destination groups."""
        san_dns = rec["san.dns"] or []
        cns = certificates.common_names(cert)
        cn = cns[-1] if cns else None                  # the most specific CN, as OpenSSL's lookup
        facts = certificates.leaf_facts(cert, ts)
        sni = self.client_hello.server_name if self.client_hello is not None else None
        mismatch = None
        if sni:
            mismatch = not certificates.sni_matches(sni, san_dns, rec["san.ip"] or (), cn)
        self.cert = {"subject": rec["certificate.subject"], "issuer": rec["certificate.issuer"],
                     "san_dns": san_dns, "mismatch": mismatch, "self_signed": facts.self_signed,
                     "expired": facts.expired, "not_yet_valid": facts.not_yet_valid}
        for fact, holds in (("tls.cert_name_mismatch", mismatch), ("tls.cert_self_signed", facts.self_signed),
                            ("tls.cert_expired", facts.expired), ("tls.cert_not_yet_valid", facts.not_yet_valid)):
            if holds:
                self.ctx.fact(fact, ts)
        name = certificates.best_name(san_dns, cn)
        if name:
            self.ctx.hostname("x509", name, ts)
        self.ctx.certificate(rec["certificate.subject"], rec["certificate.issuer"], ts)

    # -- output --------------------------------------------------------------------
    def _confirm(self) -> None:
        if not self._confirmed:
            self._confirmed = True
            self.ctx.confirm(NAME)

    def _add_history(self, is_orig: bool, letter: str) -> None:
        if len(self.history) < MAX_HISTORY:
            self.history += letter.upper() if is_orig else letter.lower()

    def record(self) -> dict | None:
        """The tls.jsonl record as it stands (None when no hello was parsed)."""
        ch, sh = self.client_hello, self.server_hello
        if ch is None and sh is None and not self._v2_conn:
            return None
        cert = self.cert or {}
        return {
            "ts": self._ts if self._ts is not None else self.ctx.ts,
            "uid": self.ctx.uid,
            "version": self.version,
            "cipher": self.cipher,
            "curve": self.curve,
            "server_name": ch.server_name if ch else None,
            "ech": ch.ech if ch else None,
            "resumed": self.resumed,
            "last_alert": self.last_alert,
            "next_protocol": self.next_protocol,
            "established": self.established,
            "ssl_history": self.history or None,
            "ja3": ch.ja3() if ch else None,
            "ja4": ch.ja4("t") if ch else None,
            "ja4s": sh.ja4s("t") if sh else None,
            "client_alpn": ch.alpn_text if ch and EXT_ALPN in ch.extensions else None,
            "subject": cert.get("subject"),
            "issuer": cert.get("issuer"),
            "san_dns": cert.get("san_dns"),
            "cert_name_mismatch": cert.get("mismatch"),
            "cert_self_signed": cert.get("self_signed"),
            "cert_expired": cert.get("expired"),
            "cert_not_yet_valid": cert.get("not_yet_valid"),
            "cert_chain_fps": self._chain_fps[False] or None,
            "client_cert_chain_fps": self._chain_fps[True] or None,
        }

    def _finish(self, ts: float) -> None:
        if self._finished:
            return
        self._finished = True
        rec = self.record()
        if rec is not None:
            self.ctx.emit(LOG, rec)
        for side in self._sides.values():
            side.buf = bytearray()
            side.hs = bytearray()


def quic_record(uid: str, ts: float, ch: ClientHello | None, sh: ServerHello | None, history: str) -> dict:
    """The tls.jsonl record of a QUIC connection's TLS handshake (IETF QUIC and Google QUIC with
    TLS): what its Initial packets show; certificates and the rest of the handshake are encrypted."""
    return {
        "ts": ts,
        "uid": uid,
        "version": version_name(sh.version) if sh else None,
        "cipher": cipher_name(sh.cipher) if sh else None,
        "curve": curve_name(sh.key_share_group) if sh and sh.key_share_group is not None else None,
        "server_name": ch.server_name if ch else None,
        "ech": ch.ech if ch else None,
        "resumed": bool(sh is not None and sh.has_psk and ch is not None and ch.has_psk),
        "last_alert": None,
        "next_protocol": None,                         # in EncryptedExtensions: not visible
        "established": False,
        "ssl_history": history or None,
        "ja3": ch.ja3() if ch else None,
        "ja4": ch.ja4("q") if ch else None,
        "ja4s": sh.ja4s("q") if sh else None,
        "client_alpn": ch.alpn_text if ch and EXT_ALPN in ch.extensions else None,
        "subject": None,
        "issuer": None,
        "san_dns": None,
        "cert_name_mismatch": None,
        "cert_self_signed": None,
        "cert_expired": None,
        "cert_not_yet_valid": None,
        "cert_chain_fps": None,                        # certificates are encrypted in QUIC
        "client_cert_chain_fps": None,
    }


def report_client_hello_name(ctx, ch: ClientHello, source: str, ts: float) -> None:
    """A ClientHello's name for the destination (``source``: ``sni`` or ``quic_sni``), or, with
    Encrypted Client Hello, its outer name as ``sni_outer`` and the fact ``tls.ech``."""
    if ch.ech:
        ctx.fact("tls.ech", ts)
    if ch.server_name:
        ctx.hostname("sni_outer" if ch.ech else source, ch.server_name, ts)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
def joined_session(orig: bytes, resp: bytes, final: bool) -> bool:
    """A TLS session joined after its handshake: record headers in both directions, or two
    in a row in one; once the connection has ended, one plausible header in either suffices."""
    if final:
        return tls_records(orig) or tls_records(resp)
    return (tls_records(orig) and tls_records(resp)) or tls_records(orig, 2) or tls_records(resp, 2)


APP_PROTO = {NAME: "tls"}          # service -> EVE app_proto
NAME_SOURCES = ("sni", "sni_outer")  # the ClientHello's server_name (its public outer name with ECH)
NAME_FALLBACKS = ("x509",)         # the server certificate's name, when the connection and DNS named nothing
CONTENT = "none"                   # encrypted: nothing to read
ENCRYPTED = "tls-encrypted"        # payload type its bytes count as
UPGRADE_PROBE = client_hello       # a ClientHello starting a running stream (STARTTLS, after a preamble)
JOINED_PROBE = joined_session
