"""Registered domains: the one place that asks the public suffix list.

``registered_domain("a.b.example.co.uk") == "example.co.uk"``: the public suffix plus one label,
the unit a person or company registers and controls.  Every stage that groups or strips host
names by domain (the DNS-label payload of the content stage, the DNS tunnel detector, the
destination label of :mod:`inspector.enrich.label`, hence alerts and both reports) calls this
function, so they agree on what a domain is.

Two lists are available: the full public suffix list (the default), where private suffixes such
as ``ngrok.io`` or ``s3.amazonaws.com`` count as suffixes (a tenant's name under them is its own
registered domain), and the ICANN section only (``icann_only=True``), where they do not.

This module imports nothing from the package, so any stage may use it.  Without the
``publicsuffixlist`` package the registered domain is the last two labels.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

__all__ = ["registered_domain", "is_address", "normalise_name"]

_PSL = {}       # icann_only -> PublicSuffixList, or False when the package is missing


def _psl(icann_only: bool):
    psl = _PSL.get(icann_only)
    if psl is None:
        try:
            from publicsuffixlist import PublicSuffixList
            psl = PublicSuffixList(only_icann=True) if icann_only else PublicSuffixList()
        except Exception:           # pragma: no cover - package missing: last two labels
            psl = False
        _PSL[icann_only] = psl
    return psl


def is_address(name: str) -> bool:
    """True when ``name`` is an IP address written as a name (``192.0.2.7``, ``2001:db8::1``):
    such a name has no registered domain."""
    return ":" in name or name.replace(".", "").isdigit()


def normalise_name(name) -> Optional[str]:
    """``name`` as the public suffix list wants it: stripped, lower case, without the root's
    trailing dot; None for a non-string, an empty name or an address."""
    if not isinstance(name, str):
        return None
    n = name.strip().lower().rstrip(".")
    if not n or is_address(n):
        return None
    return n


def registered_domain(name, icann_only: bool = False) -> Optional[str]:
    """The registered domain (public suffix + one label) of the host name ``name``, or None when it
    has none: a public suffix itself, an address, an empty or non-string value.  Case, surrounding
    blanks and a trailing dot are ignored.  ``icann_only`` ignores the private section of the list."""
    if not isinstance(name, str):
        return None
    return _registered_domain(name, bool(icann_only))


@lru_cache(maxsize=65536)
def _registered_domain(name: str, icann_only: bool) -> Optional[str]:
    n = normalise_name(name)
    if n is None:
        return None
    psl = _psl(icann_only)
    if not psl:
        labels = n.split(".")
        return ".".join(labels[-2:]) if len(labels) >= 2 else None
    try:
        return psl.privatesuffix(n)
    except Exception:               # pragma: no cover - defensive: a name the list cannot parse
        return None
