"""JA4+ fingerprints other than JA4: JA4S, JA4X, JA4H and JA4T.

These methods are FoxIO's (JA4+ by John Althouse, FoxIO, LLC) and are licensed under the FoxIO
License 1.1 (non-commercial use; patent pending): see NOTICE-JA4PLUS at the root of this
repository and https://github.com/FoxIO-LLC/ja4/blob/main/LICENSE.  The code is written here
from FoxIO's published descriptions (technical_details/JA4S.md, JA4X.md, JA4H.md, JA4T.md);
JA4 itself (TLS client, BSD 3-Clause) is in ``fingerprints.py``.  Every function takes plain
values or bytes (no wire parsing of its own except the DER walk of JA4X), and a hashed part of
nothing is ``000000000000`` (the JA4+ general rule).

* **JA4S** (server hello): ``{q|t}{version}{extension count}{ALPN first+last}_{cipher}_{hash}``:
  version as in JA4 (``supported_versions`` when the server sent it), two-digit count of the
  ServerHello's extensions, the chosen ALPN's first and last characters (``00`` when none), the
  chosen cipher in 4 hex digits, and the truncated SHA-256 of the extensions in wire order
  (``t120400_c030_4e8089b08790`` for extensions 0005,0017,ff01,0000 and cipher c030).
* **JA4X** (certificate): ``{issuer}_{subject}_{extensions}``: truncated SHA-256 of the
  comma-joined hex of the DER contents of each OID, in certificate order: the issuer's RDN
  attribute types, the subject's, the extensions'.
* **JA4H** (HTTP client request): ``{method}{version}{c|n}{r|n}{header count}{language}`` ``_``
  hash of the header names in order (Cookie and Referer left out, names as sent) ``_`` hash of
  the sorted cookie names ``_`` hash of the sorted ``name=value`` cookie pairs.
* **JA4T** (TCP SYN): ``{window}_{option kinds}_{MSS}_{window scale}``, option kinds in wire
  order joined with ``-`` (``00`` for a field that is absent).
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

from .fingerprints import ja4_alpn, ja4_version, strip_grease
from .snmp import BERError, ber_tlv

__all__ = ["ja4s", "ja4s_raw", "ja4x", "ja4x_raw", "ja4h", "ja4h_raw", "ja4t"]

_EMPTY = "000000000000"


def _h12(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12] if text else _EMPTY


# ----------------------------------------------------------------------------------------------
# JA4S
# ----------------------------------------------------------------------------------------------

def ja4s_raw(proto: str, legacy_version: int, selected_version: int | None, cipher: int,
             extensions: Sequence[int], alpn: bytes | None) -> str:
    """JA4S_r: the JA4S with its extension list unhashed."""
    exts = strip_grease(extensions)
    a = (proto + ja4_version(legacy_version, [selected_version] if selected_version is not None else None)
         + "%02d" % min(len(exts), 99) + ja4_alpn(alpn))
    return "%s_%04x_%s" % (a, cipher & 0xFFFF, ",".join("%04x" % e for e in exts))


def ja4s(proto: str, legacy_version: int, selected_version: int | None, cipher: int,
         extensions: Sequence[int], alpn: bytes | None) -> str:
    """The JA4S fingerprint of a ServerHello (``proto``: ``t`` TLS over TCP, ``q`` QUIC)."""
    a, b, c = ja4s_raw(proto, legacy_version, selected_version, cipher, extensions, alpn).split("_", 2)
    return "_".join((a, b, _h12(c)))


# ----------------------------------------------------------------------------------------------
# JA4X
# ----------------------------------------------------------------------------------------------

def _children(buf: bytes, start: int, end: int):
    pos = start
    while pos < end:
        tag, s, e = ber_tlv(buf, pos, end)
        yield tag, s, e
        pos = e


def _name_oids(buf: bytes, start: int, end: int) -> list:
    """OIDs (hex of their DER contents) of a Name's attributes, RDN by RDN, in order."""
    out = []
    for _tag, s, e in _children(buf, start, end):            # RelativeDistinguishedName (SET)
        for _t, s2, e2 in _children(buf, s, e):               # AttributeTypeAndValue (SEQUENCE)
            tag, s3, e3 = ber_tlv(buf, s2, e2)
            if tag == 0x06:
                out.append(buf[s3:e3].hex())
    return out


def ja4x_raw(der: bytes) -> str | None:
    """JA4X_r (``issuer_subject_extensions`` OID lists) of a DER certificate, or None when the
    bytes are not a certificate.  Read with a DER walk of its own, so a certificate whose
    extension values ``cryptography`` refuses still has one."""
    try:
        der = bytes(der)
        tag, s, e = ber_tlv(der, 0, len(der))                   # Certificate
        if tag != 0x30:
            return None
        tag, s, e = ber_tlv(der, s, e)                          # TBSCertificate
        if tag != 0x30:
            return None
        fields = list(_children(der, s, e))
        i = 1 if fields and fields[0][0] == 0xA0 else 0      # [0] EXPLICIT version
        if len(fields) < i + 6:
            return None
        issuer, subject = fields[i + 2], fields[i + 4]
        if issuer[0] != 0x30 or subject[0] != 0x30:
            return None
        exts = []
        for tag, s2, e2 in fields[i + 6:]:
            if tag == 0xA3:                                  # [3] EXPLICIT Extensions
                _t, s3, e3 = ber_tlv(der, s2, e2)
                for _t4, s4, e4 in _children(der, s3, e3):
                    t5, s5, e5 = ber_tlv(der, s4, e4)
                    if t5 == 0x06:
                        exts.append(der[s5:e5].hex())
        return "_".join(",".join(x) for x in (_name_oids(der, issuer[1], issuer[2]),
                                              _name_oids(der, subject[1], subject[2]), exts))
    except BERError:
        return None


def ja4x(der: bytes) -> str | None:
    """The JA4X fingerprint of a DER certificate, or None when the bytes are not one."""
    raw = ja4x_raw(der)
    if raw is None:
        return None
    return "_".join(_h12(part) for part in raw.split("_"))


# ----------------------------------------------------------------------------------------------
# JA4H
# ----------------------------------------------------------------------------------------------

_HTTP_VERSIONS = {"0.9": "09", "1.0": "10", "1.1": "11", "2": "20", "2.0": "20", "3": "30", "3.0": "30"}


def _language(value: str | None) -> str:
    if not value:
        return "0000"
    first = value.split(",", 1)[0].split(";", 1)[0].strip().replace("-", "").lower()
    return (first[:4] + "0000")[:4]


def _ja4h_parts(method: str, version: str | None, headers: Iterable[tuple]) -> tuple:
    """(a, header names, sorted cookie names, sorted cookie pairs) of one request, unhashed."""
    names, cookies = [], []
    has_cookie = has_referer = False
    language = None
    for name, value in headers:
        if not name or name.startswith(":"):
            continue
        low = name.lower()
        if low == "cookie":
            has_cookie = True
            cookies.extend(p.strip() for p in (value or "").split(";") if p.strip())
            continue
        if low == "referer":
            has_referer = True
            continue
        if low == "accept-language" and language is None:
            language = value or ""
        names.append(name)
    v = _HTTP_VERSIONS.get((version or "").upper().replace("HTTP/", ""), "00")
    a = ((method or "").lower()[:2].ljust(2, "0") + v + ("c" if has_cookie else "n")
         + ("r" if has_referer else "n") + "%02d" % min(len(names), 99) + _language(language))
    fields = sorted(c.split("=", 1)[0].strip() for c in cookies)
    return a, ",".join(names), ",".join(fields), ",".join(sorted(cookies))


def ja4h_raw(method: str, version: str | None, headers: Iterable[tuple]) -> str:
    """JA4H_r of one request: ``headers`` are (name, value) pairs as sent, in order (HTTP/2 and
    HTTP/3 pseudo-headers, names starting with ``:``, are left out); ``version`` is ``1.1``,
    ``HTTP/1.1``, ``2``..."""
    return "_".join(_ja4h_parts(method, version, headers))


def ja4h(method: str, version: str | None, headers: Iterable[tuple]) -> str:
    """The JA4H fingerprint of one HTTP request (arguments as :func:`ja4h_raw`)."""
    a, b, c, d = _ja4h_parts(method, version, headers)
    return "_".join((a, _h12(b), _h12(c), _h12(d)))


# ----------------------------------------------------------------------------------------------
# JA4T
# ----------------------------------------------------------------------------------------------

def ja4t(window: int, options: bytes) -> str:
    """The JA4T fingerprint of a TCP SYN: its window and its option bytes (the TCP header past
    the fixed 20 bytes).  End-of-list and padding bytes are kinds like any other (a 0 per byte);
    a malformed option ends the list."""
    kinds: list = []
    mss = wscale = None
    opts = bytes(options)
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        kinds.append(str(kind))
        if kind in (0, 1):
            i += 1
            continue
        if i + 1 >= n:
            break
        length = opts[i + 1]
        if length < 2 or i + length > n:
            break
        if kind == 2 and length == 4:
            mss = (opts[i + 2] << 8) | opts[i + 3]
        elif kind == 3 and length == 3:
            wscale = opts[i + 2]
        i += length
    return "%d_%s_%s_%s" % (window, "-".join(kinds) or "00", "00" if mss is None else mss,
                            "00" if wscale is None else wscale)
