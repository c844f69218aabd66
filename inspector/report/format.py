"""Formatting shared by every report: the terminal summary, the HTML report and the nightly report.

Text from the network (host names, organisations, signatures, evidence) goes through :func:`clean`
(printable, one line, controls and bidi overrides made visible) and, in HTML, :func:`esc`;
numbers, sizes, times and durations are written the same way everywhere.
"""
from __future__ import annotations

import html
import re
from typing import Any, Optional

from ..timeutil import format_ts

__all__ = ["clean", "esc", "fmt_bytes", "fmt_int", "fmt_ts", "fmt_duration"]

# C0/C1 controls (except tab/newline), and the characters that reorder or hide text
# ("Trojan Source": bidi embeddings/overrides/isolates, zero-width marks).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean(value: Any, limit: int = 0) -> str:
    """``value`` as a printable one-line string: controls and bidi overrides become ``\\xNN``/``\\uNNNN``.

    ``limit`` > 0 truncates to that many characters with an ellipsis."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    if _UNSAFE.search(s):
        s = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", s)
    s = s.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    if limit and len(s) > limit:
        s = s[:limit - 1] + "\u2026"
    return s


def esc(value: Any, limit: int = 0) -> str:
    """HTML-escaped, printable, one-line text (also safe inside quoted attributes)."""
    return html.escape(clean(value, limit), quote=True)


def fmt_bytes(n: Optional[float]) -> str:
    """1024-based, as the CLI prints: ``512 B``, ``457.0 KB``, ``1.2 GB``."""
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def fmt_int(n: Optional[float]) -> str:
    """A count with thousands separators; None is 0."""
    return f"{int(n or 0):,}"


def fmt_ts(ts: Optional[float], with_date: bool = True) -> str:
    """A UTC timestamp as ``YYYY-mm-dd HH:MM:SS`` (or the time only); ``-`` when unknown."""
    if ts is None:
        return "-"
    return format_ts(ts, "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def fmt_duration(seconds: Optional[float]) -> str:
    """A duration as ``4.2s``, ``42s``, ``3m 05s``, ``2h 07m`` or ``1d 3h``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m:02d}m"
    return f"{m}m {s:02d}s"
