"""Argument types and the option groups several subcommands share."""
from __future__ import annotations

import argparse


def add_analysis_arguments(p) -> None:
    """The options ``scan`` and ``live`` share for destination data, signatures and evidence."""
    p.add_argument("--geoip", metavar="PATH", help="MaxMind country/city .mmdb (default: bundled offline data)")
    p.add_argument("--asn-db", metavar="PATH", help="MaxMind ASN .mmdb (default: bundled offline data)")
    p.add_argument("--signatures", metavar="DIR", help="signatures directory (default: ./signatures or the "
                                                        "one shipped with inspector)")
    p.add_argument("--show-raw", action="store_true",
                   help="write raw identifier values in content.jsonl (default: masked samples and salted hashes)")
    p.add_argument("--hash-salt", metavar="TEXT", help="salt for evidence hashes (default: $INSPECTOR_HASH_SALT, "
                                                       "else derived from the site name)")


def severity_arg(text: str) -> int:
    """argparse ``type=`` for ``--fail-on``: a severity name or 1-4 -> 1-4."""
    from ..policy.rules import parse_severity
    try:
        return parse_severity(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid severity {text!r}: use critical, high, medium, low "
                                         "or 1-4 (1 = critical)") from None


def _number(text: str, convert, kind: str, ok, need: str):
    try:
        v = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"{text!r} {need}")
    return v


def positive_int(text: str) -> int:
    return _number(text, int, "an integer", lambda v: v > 0, "must be positive")


def positive(text: str) -> float:
    return _number(text, float, "a number", lambda v: v > 0, "must be positive")


def non_negative(text: str) -> float:
    return _number(text, float, "a number", lambda v: v >= 0, "must not be negative")


def size_arg(text: str) -> int:
    """A byte count: 1048576, 512K, 64M, 1G."""
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if mult > 1 else t
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(digits) * mult


def list_arg(text: str) -> list[str]:
    """``a,b,c`` -> ``["a", "b", "c"]`` (no empty names)."""
    items = [x.strip() for x in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"empty name in list {text!r}")
    return items


def mapping_arg(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` -> ``{"k": "v", "k2": "v2"}``."""
    out = {}
    for item in text.split(","):
        k, sep, v = item.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise argparse.ArgumentTypeError(f"expected column=class[,column=class...], got {text!r}")
        out[k.strip()] = v.strip()
    return out
