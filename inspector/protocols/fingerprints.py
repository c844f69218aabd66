"""TLS ClientHello fingerprints shared by the ``tls`` and ``quic`` analyzers.

Two fingerprints, both computed from plain lists of integers so this module
knows nothing about wire formats:

* **JA3** (salesforce/ja3): the string
  ``SSLVersion,Ciphers,Extensions,EllipticCurves,EcPointFormats`` of decimal
  values, list members joined by ``-``, GREASE values removed from the cipher,
  extension and curve lists; the fingerprint is the MD5 hex digest of that
  string.  ``SSLVersion`` is the ClientHello's ``legacy_version`` field.

* **JA4** (FoxIO JA4, the openly licensed TLS client fingerprint only):
  ``a_b_c`` where

  - ``a`` = transport (``t`` TCP, ``q`` QUIC, ``d`` DTLS) + 2-char version
    (highest non-GREASE ``supported_versions`` entry, else ``legacy_version``)
    + ``d``/``i`` (SNI extension present or not) + 2-digit cipher count +
    2-digit extension count (GREASE excluded, capped at 99) + first and last
    character of the first ALPN value (``00`` when none; hex rule when either
    character is not alphanumeric);
  - ``b`` = first 12 hex chars of SHA-256 over the sorted, comma-joined 4-hex
    cipher list (``000000000000`` when empty);
  - ``c`` = first 12 hex chars of SHA-256 over the sorted extension list
    without SNI (0x0000) and ALPN (0x0010), followed by ``_`` and the signature
    algorithms in wire order when there are any (``000000000000`` when the
    sorted extension list is empty).

GREASE values (RFC 8701) are ``0x?A?A`` with both bytes equal.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

__all__ = [
    "is_grease", "strip_grease", "ja3_string", "ja3", "ja4", "ja4_raw",
    "ja4_version", "ja4_alpn",
]


def is_grease(value: int) -> bool:
    """True for an RFC 8701 GREASE value (0x0A0A, 0x1A1A, ... 0xFAFA)."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def strip_grease(values: Iterable[int]) -> list[int]:
    """The values, in order, without GREASE."""
    return [v for v in values if not is_grease(v)]


# ---------------------------------------------------------------------------
# JA3
# ---------------------------------------------------------------------------

def ja3_string(version: int, ciphers: Sequence[int], extensions: Sequence[int],
               groups: Sequence[int], point_formats: Sequence[int]) -> str:
    """The JA3 full string (before hashing)."""
    def join(vals: Iterable[int]) -> str:
        return "-".join(str(v) for v in vals)
    return ",".join((
        str(version),
        join(strip_grease(ciphers)),
        join(strip_grease(extensions)),
        join(strip_grease(groups)),
        join(point_formats),
    ))


def ja3(version: int, ciphers: Sequence[int], extensions: Sequence[int],
        groups: Sequence[int], point_formats: Sequence[int]) -> str:
    """The JA3 fingerprint: MD5 hex digest of :func:`ja3_string`."""
    s = ja3_string(version, ciphers, extensions, groups, point_formats)
    return hashlib.md5(s.encode("ascii")).hexdigest()


# ---------------------------------------------------------------------------
# JA4
# ---------------------------------------------------------------------------

_JA4_VERSIONS = {
    0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
    0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3",
}

_EMPTY_HASH = "000000000000"


def ja4_version(legacy_version: int, supported_versions: Sequence[int] | None) -> str:
    """The 2-character JA4 version: highest non-GREASE supported_versions
    entry when that extension was sent, else the legacy version."""
    version = legacy_version
    if supported_versions:
        offered = strip_grease(supported_versions)
        if offered:
            # DTLS versions count down (0xfefd is newer than 0xfeff); take
            # the "highest" in protocol terms for both families.
            dtls = [v for v in offered if v >= 0xFE00]
            if dtls and len(dtls) == len(offered):
                version = min(dtls)
            else:
                version = max(v for v in offered if v < 0xFE00)
    return _JA4_VERSIONS.get(version, "00")


def _alnum(b: int) -> bool:
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def ja4_alpn(first_alpn: bytes | None) -> str:
    """First and last characters of the first ALPN value (``00`` when none)."""
    if not first_alpn:
        return "00"
    first, last = first_alpn[0], first_alpn[-1]
    if _alnum(first) and _alnum(last):
        return chr(first) + chr(last)
    hexed = first_alpn.hex()
    return hexed[0] + hexed[-1]


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _count(n: int) -> str:
    return "%02d" % min(n, 99)


def ja4_raw(proto: str, legacy_version: int, ciphers: Sequence[int],
            extensions: Sequence[int], sig_algs: Sequence[int],
            supported_versions: Sequence[int] | None, first_alpn: bytes | None,
            has_sni: bool | None = None) -> tuple[str, str, str]:
    """The three JA4 parts before hashing: (a, sorted ciphers, sorted
    extensions [+ "_" + signature algorithms])."""
    ciphers = strip_grease(ciphers)
    extensions = strip_grease(extensions)
    sig_algs = strip_grease(sig_algs)
    if has_sni is None:
        has_sni = 0x0000 in extensions
    a = (proto + ja4_version(legacy_version, supported_versions)
         + ("d" if has_sni else "i") + _count(len(ciphers)) + _count(len(extensions))
         + ja4_alpn(first_alpn))
    b = ",".join("%04x" % c for c in sorted(ciphers))
    exts = ",".join("%04x" % e for e in sorted(extensions) if e not in (0x0000, 0x0010))
    c = exts
    if exts and sig_algs:
        c = exts + "_" + ",".join("%04x" % s for s in sig_algs)
    return a, b, c


def ja4(proto: str, legacy_version: int, ciphers: Sequence[int],
        extensions: Sequence[int], sig_algs: Sequence[int],
        supported_versions: Sequence[int] | None, first_alpn: bytes | None,
        has_sni: bool | None = None) -> str:
    """The JA4 fingerprint (``proto`` is ``t``, ``q`` or ``d``)."""
    a, b, c = ja4_raw(proto, legacy_version, ciphers, extensions, sig_algs,
                      supported_versions, first_alpn, has_sni)
    return "_".join((a, _hash12(b) if b else _EMPTY_HASH, _hash12(c) if c else _EMPTY_HASH))
