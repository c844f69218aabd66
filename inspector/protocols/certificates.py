"""What a server's certificate says about the destination: names, name checks, trust facts, JA4X.

Used by the ``tls`` analyzer on the leaf certificate of a cleartext (TLS <= 1.2) Certificate
message; every function here takes plain values or DER bytes and never raises on hostile input
(a certificate that does not parse was already a weird, ``ssl.bad_certificate``).

* :func:`hostname_matches` / :func:`sni_matches`: RFC 6125 section 6.4 matching of a reference
  name (the ClientHello's SNI) against the names a certificate presents.  DNS names compare
  case-insensitively as A-labels without a trailing dot.  A wildcard ``*`` is honoured only in the
  left-most label (section 6.4.3: ``*.example.com``, and the partial forms ``w*.example.com``
  / ``*w.example.com`` that section allows), matches exactly one whole label (never an empty
  one, never across a dot), is not honoured inside an IDN A-label (``xn--``), and needs at least
  two labels after it (``*.com`` names no host: the CA/Browser Forum rule).  When the certificate
  has subjectAltName DNS names the subject CN is not consulted (section 6.4.4); an SNI that is an
  address literal is compared with the subjectAltName addresses.
* :func:`best_name`: the one name a certificate gives its server when the connection itself
  named nothing (no SNI, Host or DNS): the subject CN when it is also a subjectAltName DNS name
  (the certificate's primary name), else the first subjectAltName DNS name that is a host name,
  else the zone of the first wildcard name (``*.oss.example`` -> ``oss.example``), else, without
  subjectAltName DNS names, the CN when it is a host name.  Addresses name nothing.
* :func:`leaf_facts`: self-signed (subject equal to issuer and the signature verifying with the
  certificate's own key), expired / not yet valid at packet time.

The certificate's JA4X fingerprint is :func:`inspector.protocols.ja4plus.ja4x`.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["hostname_matches", "sni_matches", "best_name", "is_hostname", "LeafFacts", "leaf_facts",
           "common_names"]

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+\Z")
_PATTERN_LABEL_RE = re.compile(r"[a-z0-9_-]*\*[a-z0-9_-]*\Z")


def _a_label(name: str) -> str | None:
    """``name`` lower-cased, without a trailing dot, non-ASCII labels IDNA-encoded; None when it
    cannot be (an IDNA error)."""
    n = name.strip().rstrip(".").lower()
    if not n.isascii():
        try:
            n = n.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return n


def is_hostname(name: str | None) -> bool:
    """A DNS host name of at least two labels (letters, digits, ``-``, ``_``), not an address."""
    if not name:
        return False
    n = _a_label(name)
    return bool(n) and _HOSTNAME_RE.match(n) is not None and not _is_address(n)


def _is_address(s: str) -> bool:
    try:
        ipaddress.ip_address(s.strip("[]"))
        return True
    except ValueError:
        return False


def hostname_matches(reference: str, presented: str) -> bool:
    """Does the presented DNS name (``*`` wildcard rules in the module docstring) cover the
    reference host name?"""
    ref, pat = _a_label(reference or ""), _a_label(presented or "")
    if not ref or not pat:
        return False
    if "*" not in pat:
        return ref == pat
    first, _, rest = pat.partition(".")
    if "*" in rest or first.count("*") != 1 or not _PATTERN_LABEL_RE.match(first) \
            or first.startswith("xn--") or rest.count(".") < 1:
        return False
    rfirst, _, rrest = ref.partition(".")
    if rrest != rest or not rfirst:
        return False
    head, _, tail = first.partition("*")
    return len(rfirst) >= len(head) + len(tail) and rfirst.startswith(head) and rfirst.endswith(tail)


def sni_matches(sni: str, san_dns=(), san_ip=(), cn: str | None = None) -> bool:
    """Does a certificate with these subjectAltName DNS names and addresses and subject CN
    present the name the client asked for (RFC 6125 section 6.4)?"""
    if _is_address(sni):
        try:
            want = ipaddress.ip_address(sni.strip("[]"))
        except ValueError:
            return False
        for a in san_ip or ():
            try:
                if ipaddress.ip_address(a) == want:
                    return True
            except ValueError:
                continue
        return False
    if san_dns:
        return any(hostname_matches(sni, p) for p in san_dns)
    return cn is not None and hostname_matches(sni, cn)


def _zone(pattern: str) -> str | None:
    """The domain a wildcard name covers (``*.b.example`` -> ``b.example``), when it is a host
    name of at least two labels."""
    first, _, rest = pattern.partition(".")
    return rest if "*" in first and "*" not in rest and is_hostname(rest) else None


def best_name(san_dns=(), cn: str | None = None) -> str | None:
    """The name a certificate gives its server (rules in the module docstring), lower-cased."""
    names = [_a_label(n) for n in san_dns or () if n]
    names = [n for n in names if n]
    c = _a_label(cn) if cn else None
    if names:
        if c and c in names and "*" not in c and is_hostname(c):
            return c
        for n in names:
            if "*" not in n and is_hostname(n):
                return n
        for n in names:
            z = _zone(n)
            if z:
                return z
        return None
    if c:
        if "*" in c:
            return _zone(c)
        return c if is_hostname(c) else None
    return None


def common_names(cert) -> list:
    """The subject's commonName values of a ``cryptography`` certificate (as text)."""
    from cryptography.x509.oid import NameOID
    try:
        return [a.value if isinstance(a.value, str) else a.value.decode("utf-8", "replace")
                for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    except Exception:                                  # an undecodable name
        return []


@dataclass(frozen=True)
class LeafFacts:
    """What the policy may use about a server's leaf certificate."""
    self_signed: bool
    expired: bool
    not_yet_valid: bool


def _self_signed(cert) -> bool:
    """Subject equal to issuer and signed by the certificate's own key.  When the key type is one
    ``cryptography`` cannot verify with, the authority key identifier decides (absent, or equal
    to the subject key identifier)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    try:
        if cert.subject.public_bytes() != cert.issuer.public_bytes():
            return False
    except Exception:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except InvalidSignature:
        return False
    except (UnsupportedAlgorithm, ValueError, TypeError):
        pass                                           # a key or signature type cryptography cannot check
    except Exception:                                  # anything else a hostile certificate provokes
        pass
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except Exception:
        return True
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except Exception:
        return False
    return aki is None or aki == ski


def leaf_facts(cert, ts: float) -> LeafFacts:
    """Self-signed, expired and not-yet-valid (at packet time ``ts``) for a ``cryptography``
    certificate."""
    try:
        before = cert.not_valid_before_utc.timestamp()
        after = cert.not_valid_after_utc.timestamp()
    except Exception:
        before = after = None
    return LeafFacts(self_signed=_self_signed(cert),
                     expired=after is not None and ts > after,
                     not_yet_valid=before is not None and ts < before)
