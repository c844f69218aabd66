"""Packet time as calendar time, for every time a capture can hold.

Packet timestamps are seconds since 1970 as the capture states them: pcapng allows 64-bit unit
counts and a signed offset, so valid files hold times before 1970 and after the year 9999, which
``datetime`` cannot represent.  Stages keep packet time as plain floats; only the shell turns it
into dates, through these helpers, which never raise: a time outside the calendar is written as
its epoch seconds (``@253402300800.000000``) and falls into the first or last calendar day where a
date is needed (batch nights), so no record is dropped for its timestamp.
"""
from __future__ import annotations

import datetime as _dt
import math

UTC = _dt.timezone.utc


def to_datetime(ts, tz=UTC) -> _dt.datetime | None:
    """``ts`` (epoch seconds) as an aware datetime in ``tz``; None when it is not a finite time
    inside datetime's range (years 1 to 9999)."""
    try:
        t = float(ts)
        if not math.isfinite(t):
            return None
        return _dt.datetime.fromtimestamp(t, tz)
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def format_ts(ts, fmt: str = "%Y-%m-%d %H:%M:%S", tz=UTC) -> str:
    """``ts`` formatted with ``fmt``; outside the calendar, ``@<epoch seconds>``."""
    d = to_datetime(ts, tz)
    if d is not None:
        return d.strftime(fmt)
    try:
        return f"@{float(ts):.6f}"
    except (TypeError, ValueError):
        return "-"


def calendar_date(ts, tz=UTC) -> _dt.date:
    """The calendar day of ``ts`` in ``tz``, clamped to ``date.min``/``date.max`` for times outside
    the calendar (and ``date.min`` for a time that is not a number)."""
    d = to_datetime(ts, tz)
    if d is not None:
        return d.date()
    try:
        return _dt.date.max if float(ts) > 0 else _dt.date.min
    except (TypeError, ValueError):
        return _dt.date.min
