"""What every sink says about an alert: its stable id, its packet time, a one-line masked summary.

* ``alert_id(alert)``: the alert's ``alert_id`` when it carries a well-formed one (the
  incidents stage sets it; letters, digits and ``._:-``, at most 128), the SHA-256 of it
  when it carries another (``a-`` and 32 hex digits), else ``a-`` and 32 hex digits of the
  SHA-256 of the alert's canonical JSON (sorted keys).  So the same alert gets the same id
  in every run and a receiver can deduplicate on it (the webhook's ``Idempotency-Key``,
  the syslog structured data).
* ``packet_time(alert)``: the alert's ``timestamp`` (EVE layout ``2025-11-25T09:30:00.123456+0000``,
  or any RFC 3339 form) as an RFC 3339 timestamp in UTC with microseconds,
  ``2025-11-25T09:30:00.123456Z``; None when the alert has no readable time.  The time
  is packet time, never the wall clock, so a replay says when the traffic happened.
* ``summary(alert)``: one line of plain text for a human reading a SIEM or a pager:
  severity, signature, who sent how much to whom, and the *masked* evidence samples.
  Evidence is masked again here (``policy.alerts.mask_samples`` is idempotent on masked
  values), so a raw value can never leave the machine even when ``--show-raw`` put one
  into content.jsonl.  Control characters are replaced by spaces.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re

import orjson

from .spool import valid_id

__all__ = ["alert_id", "packet_time", "summary", "severity_of", "SEVERITY_WORDS", "one_line"]

_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                 r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$")
_CTRL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")
SEVERITY_WORDS = {1: "critical", 2: "high", 3: "medium", 4: "low"}
MAX_SUMMARY_CHARS = 1500


def alert_id(alert: dict) -> str:
    """The alert's stable id (see the module docstring); never raises."""
    aid = alert.get("alert_id") if isinstance(alert, dict) else None
    if valid_id(aid):
        return aid
    if aid is not None and aid != "":     # an id that cannot be a header or a spool key: its digest
        return "a-" + hashlib.sha256(str(aid).encode("utf-8", "replace")).hexdigest()[:32]
    try:
        canon = orjson.dumps(alert, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    except (TypeError, orjson.JSONEncodeError):
        canon = repr(alert).encode("utf-8", "replace")
    return "a-" + hashlib.sha256(canon).hexdigest()[:32]


def packet_time(alert: dict) -> str | None:
    """RFC 3339 UTC timestamp with microseconds of the alert's packet time, or None."""
    ts = alert.get("timestamp") if isinstance(alert, dict) else None
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        try:
            t = _dt.datetime.fromtimestamp(float(ts), _dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if not isinstance(ts, str):
        return None
    m = _TS.match(ts.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    try:
        usec = int((frac or "0")[:6].ljust(6, "0"))
        t = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(s), 59), usec, tzinfo=_dt.timezone.utc)
        if sign:
            off = _dt.timedelta(hours=int(oh), minutes=int(om))
            t = t - off if sign == "+" else t + off
        t = t.astimezone(_dt.timezone.utc)
    except (ValueError, OverflowError):
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def severity_of(alert: dict) -> int:
    """The alert's severity, 1 (critical) .. 4 (low); 3 when missing or unreadable."""
    a = alert.get("alert") if isinstance(alert, dict) else None
    sev = a.get("severity") if isinstance(a, dict) else None
    if isinstance(sev, int) and not isinstance(sev, bool) and 1 <= sev <= 4:
        return sev
    if isinstance(sev, str):
        for k, v in SEVERITY_WORDS.items():
            if sev.strip().lower() in (v, str(k)):
                return k
    return 3


def one_line(text) -> str:
    """``text`` with control characters and line breaks collapsed to one space."""
    return _CTRL.sub(" ", str(text)).strip()


def _endpoint(ip, port) -> str | None:
    if ip is None:
        return None
    ip = str(ip)
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def endpoints(alert: dict) -> tuple:
    """``(src, dst)`` as ``addr:port`` (IPv6 in brackets), either None when absent."""
    return _endpoint(alert.get("src_ip"), alert.get("src_port")), _endpoint(alert.get("dest_ip"),
                                                                              alert.get("dest_port"))


def _fmt_bytes(n) -> str:
    try:
        n = float(n)
    except (TypeError, ValueError):
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def summary(alert: dict, limit: int = MAX_SUMMARY_CHARS) -> str:
    """One line of plain text about ``alert``, evidence masked; at most ``limit`` characters."""
    from ..policy.alerts import mask_samples
    if not isinstance(alert, dict):
        return "alert"
    a = alert.get("alert") if isinstance(alert.get("alert"), dict) else {}
    sev = SEVERITY_WORDS[severity_of(alert)]
    parts = [f"[{sev}] {a.get('signature_id', '?')} {a.get('signature') or 'alert'}"]
    dest = alert.get("destination") if isinstance(alert.get("destination"), dict) else {}
    src, dst = endpoints(alert)
    where = dest.get("name") or dst or "?"
    route = f"{alert.get('src_ip') or '?'} -> {where}"
    detail = [x for x in (dst if dest.get("name") else None,
                          "/".join(str(x) for x in (alert.get("proto"), alert.get("app_proto")) if x)) if x]
    if detail:
        route += f" ({' '.join(detail)})"
    who = [str(x) for x in (dest.get("org"), dest.get("country"), dest.get("group")) if x]
    if who:
        route += f" [{', '.join(who)}]"
    parts.append(route)
    rec = alert.get("records") if isinstance(alert.get("records"), dict) else {}
    vol = []
    for k in ("customer", "shipment"):
        if isinstance(rec.get(k), int) and rec[k]:
            vol.append(f"{rec[k]} {k} records")
    if alert.get("bytes_out") is not None:
        vol.append(f"{_fmt_bytes(alert.get('bytes_out'))} out")
    if alert.get("flows"):
        vol.append(f"{alert.get('flows')} flows")
    if vol:
        parts.append(", ".join(vol))
    ev = alert.get("evidence") if isinstance(alert.get("evidence"), dict) else {}
    samples = mask_samples(ev.get("samples") or {})
    if samples:
        parts.append("samples " + "; ".join(f"{cls} {', '.join(vals)}" for cls, vals in sorted(samples.items())))
    if alert.get("incident_id"):
        parts.append(f"incident {alert['incident_id']}")
    parts.append(f"alert {alert_id(alert)}")
    text = one_line(" | ".join(parts))
    if len(text) > limit:
        text = text[:max(0, limit - 3)].rstrip() + "..."
    return text
