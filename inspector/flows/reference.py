"""Reference flow table in plain Python (``inspector.flows.table`` runs the compiled kernel).

Readable, per-packet, object-per-flow; tests run both on the corpus and require
identical records.  Decoded rows -> bidirectional connections with Zeek conn.log semantics.

Keys are the 5-tuple plus outer and inner VLAN, in a canonical order so both
directions meet.  The originator is the sender of the first packet, flipped by
Zeek's heuristics (likely server ports; SYN/SYN-ACK reversal).  Connections end
on Zeek's timers, replayed in packet time: inactivity (TCP 5 min once the
handshake is done, UDP/ICMP/other 1 min), TCP attempt (5 s), close delay (5 s)
and the session expire timer, plus connection reuse by a new SYN.

Memory is bounded: past ``max_flows`` the least recently active tenth of the
table is evicted (a ``flow.table_full`` weird) and reported as ended.
"""
from __future__ import annotations

import hashlib
import math
import ipaddress
import socket
import struct

import numpy as np

from ..community_id import community_id
from ..site import flow_direction
from . import roles
from .tcp import ACK, SYN, SYN_TIMEOUT, TCPState

UDP_INACTIVITY = 60.0
DNS_SESSION_TIMEOUT = 10.0
DNS_PORTS = frozenset({53, 137, 5353, 5355})
ICMP_INACTIVITY = 60.0
OTHER_INACTIVITY = 60.0

# Zeek's likely_server_ports with its default scripts loaded (protocol scripts add their ports).
LIKELY_TCP = frozenset({21, 22, 23, 25, 53, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614,
                        631, 636, 989, 990, 992, 993, 995, 1080, 1433, 1434, 1883, 2811, 3128, 3268, 3306, 3389,
                        5222, 5223, 5269, 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000})
LIKELY_UDP = frozenset({53, 67, 68, 88, 123, 137, 161, 162, 443, 514, 1812, 2123, 2152, 3544, 4789, 5060, 5072,
                        5353, 5355, 6081, 20000})

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def addr_str(ver: int, hi: int, lo: int) -> str:
    if ver == 4:
        return socket.inet_ntoa(struct.pack("!I", lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def _is_multicast(ver: int, hi: int, lo: int) -> bool:
    """IPv4 224.0.0.0/4 or IPv6 ff00::/8, from the packed address."""
    if ver == 4:
        return (lo & 0xFFFFFFFF) >> 28 == 0xE
    return hi >> 56 == 0xFF


def make_uid(seed: str, prefix: str = "C") -> str:
    h = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=13).digest(), "big")
    out = []
    for _ in range(17):
        h, r = divmod(h, 62)
        out.append(_B62[r])
    return prefix + "".join(out)


def tunnel_uid(cache: dict, spec) -> str:
    """The uid of a tunnel (GRE, IP-in-IP), one per unordered endpoint pair, memoised in ``cache``."""
    uid = cache.get(spec)
    if uid is None:
        uid = make_uid(f"tunnel|{spec!r}")
        cache[spec] = uid
    return uid


class Flow:
    __slots__ = ("key", "uid", "proto", "ver", "o_hi", "o_lo", "o_port", "r_hi", "r_lo", "r_port", "orig_is_a",
                 "ts", "last_ts", "opk", "rpk", "oip", "rip", "ol2", "rl2", "obytes", "rbytes", "tcp", "history",
                 "vlan", "inner_vlan", "tunnel_parents", "service", "weirds", "end_ts", "ended_by", "app", "capture",
                 "roles")

    def __init__(self):
        self.opk = self.rpk = self.oip = self.rip = self.ol2 = self.rl2 = 0
        self.obytes = self.rbytes = 0
        self.tcp = None
        self.history = None
        self.tunnel_parents = None
        self.service = None
        self.weirds = None
        self.end_ts = None
        self.ended_by = None
        self.app = None  # later stages hang per-flow state here
        self.capture = None  # the input holding the first packet (FlowTable's CAP column)
        self.roles = 0       # roles.A_* flags: analyzers that may flip the connection, and what they did

    def flip(self) -> None:
        self.o_hi, self.r_hi = self.r_hi, self.o_hi
        self.o_lo, self.r_lo = self.r_lo, self.o_lo
        self.o_port, self.r_port = self.r_port, self.o_port
        self.orig_is_a = not self.orig_is_a
        self.opk, self.rpk = self.rpk, self.opk
        self.oip, self.rip = self.rip, self.oip
        self.ol2, self.rl2 = self.rl2, self.ol2
        self.obytes, self.rbytes = self.rbytes, self.obytes
        if self.tcp is not None:
            self.tcp.flip()
        else:
            if self.history is None:
                self.history = []
            self.history.append("^")

    def add_weird(self, name: str, detail: str, ts: float) -> None:
        if self.weirds is None:
            self.weirds = []
        if len(self.weirds) < 100:
            self.weirds.append((ts, name, detail))

    def timeout(self) -> float:
        if self.proto == 17:
            return UDP_INACTIVITY
        if self.proto in (1, 58):
            return ICMP_INACTIVITY
        return OTHER_INACTIVITY

    def removal_time(self, now: float):
        if self.tcp is not None:
            return self.tcp.removal_time(self, now)
        t = self.last_ts + self.timeout()
        if self.proto == 17 and (self.o_port in DNS_PORTS or self.r_port in DNS_PORTS):
            # Zeek's DNS analyzer expires a UDP session on a 10 s timer that fires every
            # dns_session_timeout from the first packet once 9 s have passed without traffic.
            k = max(1, math.ceil((self.last_ts + DNS_SESSION_TIMEOUT - 1.0 - self.ts) / DNS_SESSION_TIMEOUT))
            t = min(t, self.ts + k * DNS_SESSION_TIMEOUT)
        return t if t < now else None

    # -- output ---------------------------------------------------------------
    def record(self, site=None) -> dict:
        ver = self.ver
        oh = addr_str(ver, self.o_hi, self.o_lo)
        rh = addr_str(ver, self.r_hi, self.r_lo)
        proto = self.proto
        pname = PROTO_NAMES.get(proto, "unknown_transport")
        duration = self.last_ts - self.ts
        missed = 0
        if self.tcp is not None:
            ob, rb, missed = self.tcp.sizes()
            for name, detail in self.tcp.weirds:
                self.add_weird(name, detail, self.last_ts)
            self.tcp.weirds = []
            state = self.tcp.conn_state()
            history = "".join(self.tcp.history)
        elif proto == 17:
            ob, rb = self.obytes, self.rbytes
            if self.opk:
                state = "SF" if self.rpk else "S0"
            else:
                state = "SHR" if self.rpk else "OTH"
            history = "".join(self.history or ())
        else:
            ob, rb = (self.obytes, self.rbytes) if proto in (1, 58) else (0, 0)
            state = "OTH"
            history = "".join(self.history or ())
        if duration > 0:
            dur = round(duration, 6)
        else:
            # Zeek leaves duration and byte counts unset on zero-length connections.
            dur = None
            ob = rb = None
        if site is not None:
            lo_, lr_ = site.is_local(oh), site.is_local(rh)
            direction = flow_direction(lo_, lr_, site.is_multicast_or_broadcast(oh),
                                       site.is_multicast_or_broadcast(rh))
        else:
            lo_ = lr_ = None
            direction = "external"
        if proto in (6, 17, 132) or proto in (1, 58):
            cid = community_id(proto, oh, rh, self.o_port, self.r_port)
        else:
            cid = community_id(proto, oh, rh)
        return {
            "ts": self.ts,
            "uid": self.uid,
            "id.orig_h": oh,
            "id.orig_p": self.o_port,
            "id.resp_h": rh,
            "id.resp_p": self.r_port,
            "proto": pname,
            "service": ",".join(self.service) if self.service else None,
            "duration": dur,
            "orig_bytes": ob,
            "resp_bytes": rb,
            "conn_state": state,
            "local_orig": lo_,
            "local_resp": lr_,
            "missed_bytes": missed,
            "history": history or None,
            "orig_pkts": self.opk,
            "orig_ip_bytes": self.oip,
            "resp_pkts": self.rpk,
            "resp_ip_bytes": self.rip,
            "tunnel_parents": sorted(self.tunnel_parents) if self.tunnel_parents else [],
            "ip_proto": proto,
            "community_id": cid,
            "vlan": self.vlan if self.vlan >= 0 else None,
            "inner_vlan": self.inner_vlan if self.inner_vlan >= 0 else None,
            "direction": direction,
            "orig_l2_bytes": self.ol2,
            "resp_l2_bytes": self.rl2,
        }


class PyFlowTable:
    """Builds connections from DecodedBatch rows; finished flows come back from ``process``."""

    def __init__(self, max_flows: int = 1_000_000, sweep_interval: float = 10.0):
        self.flows: dict = {}
        self.max_flows = max_flows
        self.sweep_interval = sweep_interval
        self.last_sweep = None
        self.counter = 0
        self.tunnel_uids: dict = {}
        self.weirds: list = []     # (ts, uid|None, name, detail)
        self.evicted = 0
        self.now = 0.0
        self.hooks = []            # callables(flow, decoded_batch, row, is_orig) for payload stages
        self.capture = None        # the input being read; new flows carry it

    def set_capture(self, name: str | None) -> None:
        self.capture = name

    # -- helpers ------------------------------------------------------------------
    def _new_uid(self, key, ts) -> str:
        self.counter += 1
        return make_uid(f"{key}|{ts!r}|{self.counter}")

    def _tunnel_uid(self, spec) -> str:
        return tunnel_uid(self.tunnel_uids, spec)

    def _finish(self, f: Flow, end_ts: float, why: str, out: list) -> None:
        f.end_ts = end_ts
        f.ended_by = why
        out.append(f)

    # -- main loop -----------------------------------------------------------------
    def process(self, db) -> list:
        finished: list = []
        c = db.cols
        n = len(db)
        if n == 0:
            for ts, name, detail, _r in db.weirds:
                self.weirds.append((ts, None, name, detail))
            return finished
        shi, slo, dhi, dlo = c["src_hi"], c["src_lo"], c["dst_hi"], c["dst_lo"]
        sp, dp = c["sport"], c["dport"]
        a_first = (shi < dhi) | ((shi == dhi) & ((slo < dlo) | ((slo == dlo) & (sp <= dp))))
        tunnels = db.tunnels
        need_uid = set()
        for kind, parent in tunnels.values():
            if isinstance(parent, int):
                need_uid.add(parent)
        for w in db.weirds:
            if w[3] >= 0:
                need_uid.add(w[3])
        row_flow = {}
        flows = self.flows
        hooks = self.hooks
        cols = [c[k].tolist() for k in ("ts", "ver", "proto", "vlan", "inner_vlan", "flags", "seq", "ack",
                                          "win", "ip_len", "pay_len", "wire_len")] + [roles.hints(db).tolist()]
        keys_src = zip(shi.tolist(), slo.tolist(), sp.tolist(), dhi.tolist(), dlo.tolist(), dp.tolist(),
                       a_first.tolist())
        i = -1
        for (ts, ver, proto, vlan, ivlan, fl, seq, ack, win, ip_len, pay_len, wire_len, hint), \
                (h1, l1, p1, h2, l2, p2, af) in zip(zip(*cols), keys_src):
            i += 1
            # Zeek's default connection key: the five-tuple, VLAN tags not included
            if af:
                key = (proto, h1, l1, p1, h2, l2, p2)
            else:
                key = (proto, h2, l2, p2, h1, l1, p1)
            f = flows.get(key)
            if f is not None:
                rt = f.removal_time(ts)
                if rt is not None:
                    del flows[key]
                    self._finish(f, rt, "timeout", finished)
                    f = None
                elif proto == 6 and fl & SYN and f.tcp.is_reuse(fl, seq):
                    del flows[key]
                    f.add_weird("tcp.connection_reuse", "", ts)
                    self._finish(f, ts, "reuse", finished)
                    f = None
            if f is None:
                f = Flow()
                f.key = key
                f.uid = self._new_uid(key, ts)
                f.capture = self.capture
                f.proto = proto
                f.ver = ver
                f.ts = f.last_ts = ts
                f.vlan = vlan
                f.inner_vlan = ivlan
                f.o_hi, f.o_lo, f.o_port, f.r_hi, f.r_lo, f.r_port = h1, l1, p1, h2, l2, p2
                f.orig_is_a = af
                flip = False
                if proto == 6:
                    f.tcp = TCPState()
                    f.tcp.add_timer(ts + SYN_TIMEOUT, "expire")
                    if not fl & SYN or fl & ACK:
                        if p1 in LIKELY_TCP:
                            flip = (not fl & SYN and p1 < p2) if p2 in LIKELY_TCP else True
                elif proto == 17:
                    flip = p1 in LIKELY_UDP and p2 not in LIKELY_UDP
                if flip and not (ver == 4 and l2 & 0xFFFFFFFF == 0xFFFFFFFF):
                    f.flip()   # never towards the IPv4 broadcast address (IPBasedAnalyzer::NewConn)
                f.roles = roles.analyzers_for(proto, f.r_port)
                flows[key] = f
                if len(flows) > self.max_flows:
                    self._evict(ts, finished)
            is_orig = af == f.orig_is_a
            if proto == 6:
                f.tcp.packet(f, is_orig, fl, seq, ack, pay_len, win, ts)
            else:
                f.last_ts = ts
                if proto == 17:
                    if f.history is None:
                        f.history = []
                    letter = "D" if is_orig else "d"
                    if letter not in f.history:
                        f.history.append(letter)
                if proto == 17 or proto in (1, 58):
                    if is_orig:
                        f.obytes += pay_len
                    else:
                        f.rbytes += pay_len
                if hint and f.roles:
                    flip, f.roles = roles.wants_flip(f.roles, hint, is_orig, _is_multicast(f.ver, f.r_hi, f.r_lo))
                    if flip:
                        f.flip()
                        is_orig = not is_orig
            # ConnSize: counted after the transport update, with the packet's original direction.
            if is_orig:
                f.opk += 1
                f.oip += ip_len
                f.ol2 += wire_len
            else:
                f.rpk += 1
                f.rip += ip_len
                f.rl2 += wire_len
            if i in need_uid:
                row_flow[i] = f
            t = tunnels.get(i)
            if t is not None:
                self._tunnel_parent(f, t, row_flow)
            for hook in hooks:
                hook(f, db, i, is_orig)
        for ts, name, detail, r in db.weirds:
            wf = row_flow.get(r) if r >= 0 else None
            self.weirds.append((ts, wf.uid if wf is not None else None, name, detail))
        self.now = float(c["ts"][-1])
        if self.last_sweep is None:
            self.last_sweep = self.now
        elif self.now - self.last_sweep >= self.sweep_interval:
            self.sweep(self.now, finished)
        return finished

    def _tunnel_parent(self, f: Flow, tunnel: tuple, row_flow: dict) -> None:
        """Record the encapsulating connection (UDP tunnels) or tunnel (GRE, IP-in-IP) of f."""
        kind, parent = tunnel
        if isinstance(parent, int):
            pf = row_flow.get(parent)
            if pf is None:
                return
            puid = pf.uid
            if pf.service is None:
                pf.service = []
            if kind not in pf.service:
                pf.service.append(kind)
        else:
            puid = self._tunnel_uid(parent)
        if f.tunnel_parents is None:
            f.tunnel_parents = set()
        f.tunnel_parents.add(puid)

    def sweep(self, now: float, finished: list) -> None:
        """End every flow whose timers have run out by ``now``."""
        self.last_sweep = now
        dead = []
        for key, f in self.flows.items():
            rt = f.removal_time(now)
            if rt is not None:
                dead.append((key, f, rt))
        for key, f, rt in dead:
            del self.flows[key]
            self._finish(f, rt, "timeout", finished)

    def _evict(self, now: float, finished: list) -> None:
        self.sweep(now, finished)
        if len(self.flows) <= self.max_flows:
            return
        items = sorted(self.flows.items(), key=lambda kv: kv[1].last_ts)
        k = max(1, len(items) // 10)
        for key, f in items[:k]:
            del self.flows[key]
            f.add_weird("flow.table_full", f"evicted with {len(items)} flows in the table", now)
            self._finish(f, f.last_ts, "evicted", finished)
        self.evicted += k
        self.weirds.append((now, None, "flow.table_full", f"evicted {k} least recently active flows"))

    def flush(self) -> list:
        """End every flow (end of input)."""
        out: list = []
        for f in self.flows.values():
            self._finish(f, f.last_ts, "end_of_input", out)
        self.flows = {}
        return out
