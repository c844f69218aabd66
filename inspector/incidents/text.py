"""Incidents in words: the one-sentence title of an incident.

Only counts, names, addresses and masked samples reach these strings: never a raw identifier.
"""
from __future__ import annotations

from ..policy.rules import SEVERITY_NAMES

__all__ = ["CLASS_LABELS", "CHANNEL_LABELS", "SEVERITY_NAMES", "title", "duration_words", "fmt_bytes"]

#: data class -> how an investigator names it in a sentence (plural)
CLASS_LABELS = {
    "tracking_s10": "S10", "tracking_ups": "UPS tracking numbers", "tracking_other": "tracking numbers",
    "sscc": "SSCC", "gtin": "GTIN", "hs_code": "HS codes", "email": "e-mail addresses", "phone": "phones",
    "person_name": "names", "postal_address": "addresses", "iban": "IBANs", "payment_card": "card numbers",
    "eori": "EORI numbers", "edifact_message": "EDIFACT messages", "x12_transaction": "X12 transactions",
}
#: channel -> (name in a sentence, unit of one exchange)
CHANNEL_LABELS = {
    "http": ("HTTP", "request"), "http2": ("HTTP/2", "connection"), "tls": ("TLS", "connection"),
    "dns": ("DNS", "query"), "smtp": ("SMTP", "connection"), "ftp": ("FTP", "connection"),
    "ftp-data": ("FTP", "transfer"), "ssh": ("SSH", "connection"), "quic": ("QUIC", "connection"),
    "icmp": ("ICMP", "flow"), "tcp": ("raw TCP", "connection"), "udp": ("UDP", "flow"),
}


def fmt_bytes(n) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{int(n):,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000.0
    return f"{n} B"


def duration_words(seconds: float) -> str:
    """61 minutes, 3.0 hours, 40 seconds."""
    s = max(0.0, float(seconds or 0.0))
    if s < 90:
        return f"{round(s)} second{'s' if round(s) != 1 else ''}"
    if s < 90 * 60:
        return f"{round(s / 60)} minutes"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} hours"
    return f"{s / 86400:.1f} days"


def _hosts(hosts: list) -> str:
    hosts = [h for h in hosts if h]
    if not hosts:
        return "an unknown host"
    if len(hosts) == 1:
        return hosts[0]
    if len(hosts) == 2:
        return f"{hosts[0]} and {hosts[1]}"
    return f"{hosts[0]}, {hosts[1]} and {len(hosts) - 2} more host{'s' if len(hosts) > 3 else ''}"


def _what(inc: dict) -> str:
    rec = inc.get("records") or {}
    data = inc.get("data") or {}
    cust, ship = int(rec.get("customer") or 0), int(rec.get("shipment") or 0)
    order = list(CLASS_LABELS)          # shipment identifiers first, then customer data, then EDI
    top = [c for c, _n in sorted(data.items(), key=lambda kv: (-kv[1], order.index(kv[0]) if kv[0] in order else 99))
           if c in CLASS_LABELS]
    classes = ", ".join(CLASS_LABELS[c] for c in top[:4])
    if cust or ship:
        if ship and (cust == ship or not cust):
            head = f"{ship:,} shipment record{'s' if ship != 1 else ''}"
        elif cust and not ship:
            head = f"{cust:,} customer record{'s' if cust != 1 else ''}"
        else:
            head = f"{ship:,} shipment and {cust:,} customer records"
        return f"{head} ({classes})" if classes else head
    if top:
        return ", ".join(f"{data[c]:,} {CLASS_LABELS[c]}" for c in top[:3])
    kinds = set(inc.get("payload_types") or ())
    what = "TLS-encrypted data" if "tls-encrypted" in kinds else \
        "encrypted or compressed data" if "encrypted-or-compressed" in kinds else "data"
    return f"{fmt_bytes(inc.get('bytes_out'))} of {what}"


def _whom(inc: dict) -> str:
    dests = inc.get("destinations") or []
    if not dests:
        return "an unknown destination"
    d = dests[0]
    name = d.get("name") or ", ".join((d.get("addresses") or [])[:2]) or "an unknown destination"
    about = [x for x in (d.get("org") or d.get("group"), d.get("country")) if x]
    s = name + (f" ({', '.join(about)})" if about else "")
    if len(dests) > 1:
        s += f" and {len(dests) - 1} other destination{'s' if len(dests) > 2 else ''}"
    return s


def _how(inc: dict, exchanges: dict) -> str:
    chans = [c for c in (inc.get("app_protos") or []) if c]
    if not chans:
        n = int(inc.get("flows") or 0)
        return f"{n:,} connection{'s' if n != 1 else ''}"
    ch = chans[0]
    name, unit = CHANNEL_LABELS.get(ch, (ch.upper(), "connection"))
    if ch == "http" and exchanges.get("http_methods"):
        method, n = max(exchanges["http_methods"].items(), key=lambda kv: (kv[1], kv[0]))
        return f"{n:,} {name} {method}{'s' if n != 1 else ''}"
    if ch == "dns" and exchanges.get("dns_queries"):
        n = int(exchanges["dns_queries"])
        return f"{n:,} DNS quer{'y' if n == 1 else 'ies'}"
    n = int(inc.get("flows") or 0)
    return f"{n:,} {name} {unit}{'s' if n != 1 else ''}"


def title(inc: dict, exchanges: dict | None = None) -> str:
    """One plain sentence: who sent what to whom, how much, how, over how long."""
    span = float(inc.get("last_ts") or 0) - float(inc.get("first_ts") or 0)
    return (f"{_hosts(inc.get('src_hosts') or [])} sent {_what(inc)} to {_whom(inc)} in "
            f"{_how(inc, exchanges or {})}" + (f" over {duration_words(span)}" if span >= 1 else ""))
