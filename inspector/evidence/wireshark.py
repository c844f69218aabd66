"""Wireshark display filters that show the packets of one connection of flows.jsonl.

Endpoints are matched per direction (``ip.src==A && tcp.srcport==x && ip.dst==B && ...`` or
the reverse), with the VLAN when the connection had one and the connection's time span
(``frame.time_epoch``, widened to whole microseconds), so a later connection reusing the
same ports is not shown.  The span is the carved packets' first and last time when known;
from the flow record alone it is ``ts`` .. ``ts + duration`` plus the close linger (a
connection's trailing ACKs after its close are counted in its packets but not its duration,
as in Zeek).  For a tunnelled connection the inner header matches (Wireshark's
fields match any layer of the frame).
"""
from __future__ import annotations

import math

_L4 = {"tcp": "tcp", "udp": "udp", "sctp": "sctp"}


def _ip(addr: str) -> str:
    return "ipv6" if ":" in str(addr) else "ip"


LINGER = 5.0      # seconds a closed connection still takes packets (flows.kernel.LINGER)


def display_filter(flow: dict, with_time: bool = True, span: tuple | None = None) -> str:
    """A Wireshark/tshark display filter for one flow record (flows.jsonl fields); ``span``
    (first, last packet time) narrows the time range to the carved packets."""
    oh, rh = flow.get("id.orig_h"), flow.get("id.resp_h")
    op, rp = flow.get("id.orig_p"), flow.get("id.resp_p")
    proto = (flow.get("proto") or "").lower()
    ip = _ip(oh)
    l4 = _L4.get(proto)
    if l4:
        fwd = f"{ip}.src=={oh} && {l4}.srcport=={op} && {ip}.dst=={rh} && {l4}.dstport=={rp}"
        rev = f"{ip}.src=={rh} && {l4}.srcport=={rp} && {ip}.dst=={oh} && {l4}.dstport=={op}"
    else:
        fwd = f"{ip}.src=={oh} && {ip}.dst=={rh}"
        rev = f"{ip}.src=={rh} && {ip}.dst=={oh}"
    parts = [f"(({fwd}) || ({rev}))"]
    if proto == "icmp":
        parts.append("icmpv6" if ip == "ipv6" else "icmp")
    elif not l4 and flow.get("ip_proto") is not None:
        parts.append(f"ipv6.nxt=={flow['ip_proto']}" if ip == "ipv6" else f"ip.proto=={flow['ip_proto']}")
    if flow.get("vlan") is not None:
        parts.append(f"vlan.id=={flow['vlan']}")
    if flow.get("inner_vlan") is not None:
        parts.append(f"vlan.id=={flow['inner_vlan']}")
    ts = flow.get("ts")
    if with_time and (span is not None or isinstance(ts, (int, float))):
        if span is not None:
            first, last = span
        else:
            first, last = ts, ts + (flow.get("duration") or 0.0) + LINGER
        start = math.floor(first * 1e6) / 1e6
        end = math.ceil(last * 1e6) / 1e6
        parts.append(f"frame.time_epoch >= {start:.6f} && frame.time_epoch <= {end:.6f}")
    return " && ".join(parts)
