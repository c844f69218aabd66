#!/usr/bin/env python3
"""A second synthetic capture, of a different shape from ``gen_capture.py``: many short flows.

``gen_capture.py`` makes long TCP conversations with ASCII payloads.  This one makes what a
busy edge link looks like to a flow meter, the shape the performance issue measured with a
generator that is not the project's:

* ``--flows`` short connections (default 40,000), a few packets each (geometric, mean ~8),
  with start times and lifetimes chosen so that about three quarters of them are open at
  the same time (about 30,000 concurrent with the defaults);
* 75 % TCP: handshake (most), 1-6 data segments each way with **random bytes** (nothing a
  probe recognises, nothing printable), then a FIN exchange, an RST, or nothing (the flow
  times out); 25 % UDP between random high ports with random payloads;
* 30 % of flows over IPv6 and 30 % 802.1Q tagged (a flow keeps its shape both ways);
* half the clients are outside the site's 10/8, so the content stage sees leaving payload.

Per-flow and per-packet fields are drawn with numpy; frames are built and checksummed by
dpkt (``dpkt.pcap.Writer``), so it is an independent rendering path from ``gen_capture.py``'s
vectorised byte writes.  Deterministic for a given ``--seed``.

    python bench/gen_flows.py --packets 400000 --flows 40000 --out bench/data/flows.pcap
"""
from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time

import dpkt
import numpy as np

TCP, UDP = 6, 17
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
V6_FRACTION = 0.30
VLAN_FRACTION = 0.30
UDP_FRACTION = 0.25


def _addr4(rng, n, outside):
    """IPv4 addresses: 10.x.y.z inside the site, public-looking ones outside."""
    a = rng.integers(1, 1 << 24, n, dtype=np.int64)
    inside = (10 << 24) | a
    out = ((np.array([23, 45, 81, 104, 151, 185, 203], dtype=np.int64)[rng.integers(0, 7, n)]) << 24) | a
    return np.where(outside, out, inside)


def _ip4(x: int) -> bytes:
    return struct.pack("!I", int(x))


def _ip6(x: int, outside: bool) -> bytes:
    prefix = b"\x20\x01\x0d\xb8\x00\x99" if outside else b"\xfd\x00\x00\x00\x00\x10"
    return prefix + b"\x00" * 6 + struct.pack("!I", int(x))


def plan(n_packets: int, n_flows: int, seed: int, duration: float):
    """Per-flow attributes and per-packet rows (flow, direction, flags, payload length, time)."""
    rng = np.random.default_rng(seed)
    F = n_flows
    udp = rng.random(F) < UDP_FRACTION
    v6 = rng.random(F) < V6_FRACTION
    vlan = np.where(rng.random(F) < VLAN_FRACTION, rng.integers(2, 4000, F), 0)
    outside = rng.random(F) < 0.5
    cli = _addr4(rng, F, outside)          # originator: outside half the time
    srv = _addr4(rng, F, ~outside)         # responder on the other side
    sport = rng.integers(1024, 65536, F)
    dport = np.where(udp, rng.integers(1024, 65536, F), rng.choice([443, 8443, 9000, 5222, 25565, 7001], F))
    # data segments per direction (short flows): budget split so the total is n_packets
    ctrl = np.where(udp, 0, 3)             # SYN, SYN-ACK, ACK
    end_kind = np.where(udp, 0, rng.choice([1, 2, 3], F, p=[0.6, 0.25, 0.15]))   # 1 FIN, 2 RST, 3 none
    tail = np.select([end_kind == 1, end_kind == 2], [4, 1], 0)
    fixed = int((ctrl + tail).sum())
    if n_packets - fixed < 2 * F:
        raise SystemExit(f"--packets {n_packets} too few for {F} flows (need > {fixed + 2 * F})")
    w = rng.geometric(0.25, F).astype(float)
    data = 2 + rng.multinomial(n_packets - fixed - 2 * F, w / w.sum())
    # lifetimes: starts over the first 40 % of the span, lives of 50-65 % of it -> ~3/4 open at once
    t0 = rng.uniform(0, 0.4 * duration, F)
    life = rng.uniform(0.5 * duration, 0.65 * duration, F)
    return dict(rng=rng, udp=udp, v6=v6, vlan=vlan, outside=outside, cli=cli, srv=srv, sport=sport,
                dport=dport, ctrl=ctrl, end_kind=end_kind, data=data, t0=t0, life=life)


def _frame(p, f, src_is_cli, flags, seq, ack, payload):
    """One Ethernet frame (bytes) of flow f, checksums computed by dpkt."""
    if src_is_cli:
        sa, da, sp, dp = p["cli"][f], p["srv"][f], p["sport"][f], p["dport"][f]
        so, do = p["outside"][f], not p["outside"][f]
    else:
        sa, da, sp, dp = p["srv"][f], p["cli"][f], p["dport"][f], p["sport"][f]
        so, do = not p["outside"][f], p["outside"][f]
    if p["udp"][f]:
        l4 = dpkt.udp.UDP(sport=int(sp), dport=int(dp), data=payload)
        l4.ulen = 8 + len(payload)
    else:
        l4 = dpkt.tcp.TCP(sport=int(sp), dport=int(dp), seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                          flags=flags, win=64240, data=payload)
    if p["v6"][f]:
        ip = dpkt.ip6.IP6(src=_ip6(sa, so), dst=_ip6(da, do), nxt=UDP if p["udp"][f] else TCP, hlim=64, data=l4)
        ip.plen = len(l4)
        etype = dpkt.ethernet.ETH_TYPE_IP6
    else:
        ip = dpkt.ip.IP(src=_ip4(sa), dst=_ip4(da), p=UDP if p["udp"][f] else TCP, ttl=64, data=l4,
                        id=(seq >> 3) & 0xFFFF)
        ip.len = 20 + len(l4)
        etype = dpkt.ethernet.ETH_TYPE_IP
    mac_c, mac_s = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
    src_mac, dst_mac = (mac_c, mac_s) if src_is_cli else (mac_s, mac_c)
    body = bytes(ip)
    if p["vlan"][f]:
        return dst_mac + src_mac + struct.pack("!HHH", 0x8100, int(p["vlan"][f]), etype) + body
    return dst_mac + src_mac + struct.pack("!H", etype) + body


def packets(p):
    """Yield (flow, timestamp, frame) flow after flow; the caller sorts by time."""
    rng = p["rng"]
    F = len(p["udp"])
    isn_c = rng.integers(0, 1 << 32, F)
    isn_s = rng.integers(0, 1 << 32, F)
    for f in range(F):
        n = int(p["data"][f])
        t, life = float(p["t0"][f]), float(p["life"][f])
        dirs = rng.random(n) < 0.5
        dirs[0] = True                                      # the originator speaks first
        lens = rng.integers(1, 1400, n)
        pay = rng.bytes(int(lens.sum()))
        steps = n + int(p["ctrl"][f]) + 4
        gaps = rng.exponential(1.0, steps)
        gaps[1:3] = gaps[-3:] = 0.0                         # handshake and teardown: quick (SYN, close timers)
        gaps = np.minimum(gaps * (life / gaps.sum()), 30.0)  # the flow lives `life`, under the UDP idle timeout
        rtt = float(rng.uniform(0.0005, 0.05))
        gaps[1:3] = gaps[-3:] = rtt / 2
        k = 0
        if p["udp"][f]:
            off = 0
            for i in range(n):
                t += gaps[k]; k += 1
                yield f, t, _frame(p, f, bool(dirs[i]), 0, 0, 0, pay[off:off + lens[i]])
                off += int(lens[i])
            continue
        c, s = int(isn_c[f]), int(isn_s[f])
        for src, fl, sq, ak in ((True, SYN, c, 0), (False, SYN | ACK, s, c + 1), (True, ACK, c + 1, s + 1)):
            t += gaps[k]; k += 1
            yield f, t, _frame(p, f, src, fl, sq, ak, b"")
        c, s = c + 1, s + 1
        off = 0
        for i in range(n):
            t += gaps[k]; k += 1
            seg = pay[off:off + lens[i]]
            off += int(lens[i])
            if dirs[i]:
                yield f, t, _frame(p, f, True, PSH | ACK, c, s, seg)
                c += len(seg)
            else:
                yield f, t, _frame(p, f, False, PSH | ACK, s, c, seg)
                s += len(seg)
        kind = int(p["end_kind"][f])
        if kind == 1:
            for src, fl in ((True, FIN | ACK), (False, ACK), (False, FIN | ACK), (True, ACK)):
                t += gaps[k]; k += 1
                if src:
                    yield f, t, _frame(p, f, True, fl, c, s, b"")
                    c += fl & FIN
                else:
                    yield f, t, _frame(p, f, False, fl, s, c, b"")
                    s += fl & FIN
        elif kind == 2:
            t += gaps[k]
            yield f, t, _frame(p, f, True, RST | ACK, c, s, b"")


def generate(out: str, n_packets: int = 400_000, n_flows: int = 40_000, seed: int = 7,
             duration: float = 120.0) -> dict:
    """Write the capture; returns what it holds."""
    t_start = time.perf_counter()
    p = plan(n_packets, n_flows, seed, duration)
    fid_list, ts_list, frames = [], [], []
    for f, t, fr in packets(p):
        fid_list.append(f)
        ts_list.append(t)
        frames.append(fr)
    ts = np.array(ts_list)
    fid = np.array(fid_list)
    order = np.argsort(ts, kind="stable")
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    base = 1_700_000_000.0
    with open(out + ".tmp", "wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        for i in order.tolist():
            w.writepkt(frames[i], ts=base + ts[i])
    os.replace(out + ".tmp", out)
    start = np.full(n_flows, np.inf)
    end = np.full(n_flows, -np.inf)
    np.minimum.at(start, fid, ts)
    np.maximum.at(end, fid, ts)
    ev = np.concatenate((start, end))
    delta = np.concatenate((np.ones(len(start)), -np.ones(len(end))))
    o = np.lexsort((delta, ev))
    stats = dict(packets=len(frames), flows=len(start), udp_flows=int(p["udp"].sum()),
                 ipv6_flows=int(p["v6"].sum()), vlan_flows=int((p["vlan"] > 0).sum()),
                 max_concurrent_flows=int(np.cumsum(delta[o]).max()),
                 bytes=os.path.getsize(out), seconds=round(time.perf_counter() - t_start, 1))
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=400_000, help="total packets (default 400,000)")
    ap.add_argument("--flows", type=int, default=40_000, help="connections (default 40,000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--duration", type=float, default=120.0, help="span in seconds (default 120)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "flows.pcap"))
    a = ap.parse_args(argv)
    st = generate(a.out, a.packets, a.flows, a.seed, a.duration)
    print(f"wrote {a.out}: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in st.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
