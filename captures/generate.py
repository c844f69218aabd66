#!/usr/bin/env python3
"""Deterministic scenario generator for the inspector's test captures.

Builds realistic distribution-centre ("dc-north") traffic with scapy and
writes, into ``--out`` (default: the directory of this script):

* ``dc-north-day.pcap``        main mixed daytime scenario (most traffic)
* ``dc-north-exfil.pcap``      night-time bulk TLS upload + periodic "drip"
* ``dc-north-ipv6-vlan.pcap``  one IPv6 TLS flow (+ its DNS) and one 802.1Q flow
* ``expected/<capture>.json``  ground-truth manifest for every capture
* ``site-dc-north.yaml``       the site description used with these captures

Everything is a pure function of the constants below: a fixed seed, a fixed
base timestamp and no wall-clock reads, so the output is byte-identical from
run to run (for a given scapy version; see captures/README.md).

Model of the network
--------------------
The tap is a SPAN port on the site core and sees both directions of every
conversation.  Packet timing is modelled from the tap's point of view with two
round-trip times per TCP flow: ``cli_rtt`` (tap -> client -> tap) and
``srv_rtt`` (tap -> server -> tap).  A packet from one side that causes a
reaction of the other side is followed, at the tap, by that reaction one
``*_rtt`` of the reacting side later.

TCP is simulated with real semantics: three-way handshake with options,
sequence/acknowledgement numbers advancing by the payload length, MSS
segmentation, a receiver that ACKs every second full segment, sends
immediate duplicate ACKs for out-of-order data and otherwise delays its ACK
(40 ms) unless the ACK can piggyback on data it sends anyway, FIN/ACK
teardown, RSTs, RTO retransmissions ("lost after the tap") and reordering
("reordered before the tap").

Manifest semantics (Zeek conn.log conventions)
----------------------------------------------
* one entry per conversation (Zeek connection); originator = sender of the
  first packet;
* ``orig_pkts``/``resp_pkts`` count every packet, retransmissions included;
* ``orig_bytes``/``resp_bytes`` are payload bytes counted once: TCP payload
  sequence space covered (retransmitted bytes are not double counted), UDP
  payload, ICMP payload after the 8-byte ICMP header;
* ``orig_ip_bytes``/``resp_ip_bytes`` sum the IP total length (IPv6: payload
  length + 40) of every packet;
* ``conn_state`` follows Zeek (SF, S0, REJ, RSTO, RSTR; UDP: SF/S0;
  ICMP: OTH); ICMP ``orig_p``/``resp_p`` are the ICMP type of the first
  packet and its counterpart type (8/0 for echo);
* ``ts`` is the first packet's time, ``duration`` last minus first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import ipaddress
import json
import random
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scapy import VERSION as SCAPY_VERSION
from scapy.data import DLT_EN10MB
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRROPT
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapWriter

# --------------------------------------------------------------------------
# Global constants (changing any of these changes every output byte)
# --------------------------------------------------------------------------

SEED = 20251124
#: 2025-11-24T16:00:00Z.  All timestamps are integer microseconds from here.
BASE_TS = 1764000000
MS = 1_000
SEC = 1_000_000

#: Linux-like delayed-ACK timer.
DELACK_US = 40 * MS
#: Linux-like minimum retransmission timeout.
RTO_MIN_US = 200 * MS

SITE = "dc-north"
SITE_YAML = """\
site: dc-north
local_nets: [172.20.0.0/16, "fd00:20::/48"]
roles: {172.20.1.0/24: wms, 172.20.50.0/24: scanner, 172.20.60.0/24: printer, 172.20.2.0/24: backup, 172.20.0.0/24: infra}
allowed_destinations: [api.partner.example, ups.com, dhl.com, 198.51.100.0/24]
"""

LOCAL_NETS = [ipaddress.ip_network("172.20.0.0/16"), ipaddress.ip_network("fd00:20::/48")]

# --------------------------------------------------------------------------
# Deterministic randomness
# --------------------------------------------------------------------------


def _label_int(label: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{SEED}:{label}".encode()).digest()[:8], "big")


def det_bytes(label: str, n: int) -> bytes:
    """``n`` pseudo-random bytes that depend only on SEED and ``label``."""
    return hashlib.shake_256(f"{SEED}:{label}".encode()).digest(n)


class Rng:
    """Seeded PRNG that only relies on ``random.Random.random()``.

    ``random()`` is the one method whose output Python guarantees to be
    stable across versions for a given integer seed, so all derived values
    (ints, choices) are computed from it here.  Every scenario gets its own
    ``Rng(label)`` so that editing one scenario does not perturb the others.
    """

    def __init__(self, label: str):
        self._r = random.Random(_label_int(label))

    def randint(self, lo: int, hi: int) -> int:
        return lo + int(self._r.random() * (hi - lo + 1))

    def choice(self, seq):
        return seq[self.randint(0, len(seq) - 1)]

    def u32(self) -> int:
        return self.randint(0, 2**32 - 1)

    def jitter(self, base: int, spread: int) -> int:
        return base + self.randint(-spread, spread)


# --------------------------------------------------------------------------
# Hosts and addressing
# --------------------------------------------------------------------------

ROUTER_MAC = "00:1c:73:dc:00:01"  # site core router / default gateway


def _mac_for(name: str) -> str:
    b = hashlib.sha256(f"mac:{name}".encode()).digest()[:5]
    return "02:" + ":".join(f"{x:02x}" for x in b)  # locally administered


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    role: str
    ttl: int = 64
    mac: str = ""

    @property
    def local(self) -> bool:
        a = ipaddress.ip_address(self.ip)
        return any(a in n for n in LOCAL_NETS)

    @property
    def v6(self) -> bool:
        return ":" in self.ip

    def subnet(self):
        prefix = 64 if self.v6 else 24
        return ipaddress.ip_network(f"{self.ip}/{prefix}", strict=False)


def _host(name: str, ip: str, role: str, ttl: int = 64, mac_name: str | None = None) -> Host:
    return Host(name, ip, role, ttl, _mac_for(mac_name or name))


H = {
    # infrastructure
    "resolver": _host("dns-01", "172.20.0.53", "infra"),
    "resolver6": _host("dns-01", "fd00:20::53", "infra", mac_name="dns-01"),
    # WMS application servers
    "wms1": _host("wms-01", "172.20.1.10", "wms"),
    "wms2": _host("wms-02", "172.20.1.11", "wms"),
    "wms3": _host("wms-03", "172.20.1.12", "wms"),
    "wms1_6": _host("wms-01", "fd00:20:0:1::10", "wms", mac_name="wms-01"),
    # backup
    "backup": _host("backup-01", "172.20.2.20", "backup"),
    # handheld scanners (Android RF guns)
    "scan14": _host("tc52-0014", "172.20.50.14", "scanner"),
    "scan15": _host("tc52-0015", "172.20.50.15", "scanner"),
    "scan16": _host("tc52-0016", "172.20.50.16", "scanner"),
    "scan17": _host("tc52-0017", "172.20.50.17", "scanner"),
    "scan21": _host("tc52-0021", "172.20.50.21", "scanner"),
    # label printers
    "prn21": _host("zt410-dock01", "172.20.60.21", "printer"),
    "prn22": _host("zt410-dock02", "172.20.60.22", "printer"),
    "prn23": _host("zt410-dock03", "172.20.60.23", "printer"),
    # external
    "quad9": _host("dns.quad9.net", "9.9.9.9", "external", ttl=57),
    "ntp": _host("time.cloudflare.com", "162.159.200.123", "external", ttl=58),
    "ups_api": _host("api.ups.com", "153.2.238.50", "external", ttl=51),
    "ups_api6": _host("api.ups.com", "2001:db8:153:2::50", "external", ttl=51),
    "ups_tools": _host("onlinetools.ups.com", "153.2.224.60", "external", ttl=51),
    "dhl_api": _host("api.dhl.com", "165.72.100.25", "external", ttl=49),
    "partner": _host("api.partner.example", "198.51.100.20", "external", ttl=55),
    "vendor_dl": _host("dl.wmsvendor.example", "203.0.113.40", "external", ttl=53),
    "oss": _host("dc-sync-7f3a.oss-ap-southeast-1.aliyuncs.com", "47.246.23.17", "external", ttl=46),
}

#: DNS data served by the resolver (name -> qtype -> answer RRs).
EXFIL_NAME = "dc-sync-7f3a.oss-ap-southeast-1.aliyuncs.com"
ZONE: dict[str, dict[str, list[tuple[str, str, int, str]]]] = {
    "time.cloudflare.com": {"A": [("time.cloudflare.com", "A", 300, "162.159.200.123")]},
    "api.ups.com": {
        "A": [("api.ups.com", "A", 300, "153.2.238.50")],
        "AAAA": [("api.ups.com", "AAAA", 300, "2001:db8:153:2::50")],
    },
    "onlinetools.ups.com": {
        "A": [
            ("onlinetools.ups.com", "CNAME", 1800, "onlinetools-ups.gslb.ups.com"),
            ("onlinetools-ups.gslb.ups.com", "A", 60, "153.2.224.60"),
        ]
    },
    "api.dhl.com": {
        "A": [
            ("api.dhl.com", "CNAME", 3600, "api-eu.gslb.dhl.com"),
            ("api-eu.gslb.dhl.com", "A", 120, "165.72.100.25"),
        ],
        # CNAME but no AAAA at the target: NOERROR, answer = CNAME only
        "AAAA": [("api.dhl.com", "CNAME", 3600, "api-eu.gslb.dhl.com")],
    },
    "api.partner.example": {"A": [("api.partner.example", "A", 600, "198.51.100.20")]},
    "dl.wmsvendor.example": {"A": [("dl.wmsvendor.example", "A", 300, "203.0.113.40")]},
    EXFIL_NAME: {
        "A": [
            (EXFIL_NAME, "CNAME", 600, "oss-ap-southeast-1.aliyuncs.com"),
            ("oss-ap-southeast-1.aliyuncs.com", "A", 60, "47.246.23.17"),
        ]
    },
    # wpad.dc-north.corp is deliberately absent -> NXDOMAIN
}

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def u8(v: int) -> bytes:
    return struct.pack("!B", v)


def u16(v: int) -> bytes:
    return struct.pack("!H", v)


def u24(v: int) -> bytes:
    return struct.pack("!I", v)[1:]


class PortAllocator:
    """Per-host ephemeral port allocator (deterministic, never repeats)."""

    def __init__(self, label: str):
        self._rng = Rng(f"ports:{label}")
        self._next: dict[str, int] = {}

    def take(self, host: Host) -> int:
        if host.ip not in self._next:
            self._next[host.ip] = self._rng.randint(33000, 58000)
        port = self._next[host.ip]
        self._next[host.ip] = port + self._rng.randint(1, 9)
        return port


# --------------------------------------------------------------------------
# Capture & conversation bookkeeping
# --------------------------------------------------------------------------


@dataclass
class Conversation:
    """One Zeek-style connection and the packets it consists of."""

    proto: str  # "tcp" | "udp" | "icmp"
    orig: Host
    resp: Host
    orig_p: int
    resp_p: int
    conn_state: str
    app: str
    description: str
    vlan: int | None = None
    server_name: str | None = None
    # (t_us, from_orig, scapy packet, meta) - meta: dict with analysis hints
    packets: list = field(default_factory=list)

    def key(self):
        return (self.proto, self.orig.ip, self.orig_p, self.resp.ip, self.resp_p)


class Capture:
    """Collects conversations, merges their packets in time order, writes files."""

    def __init__(self, name: str, short: str, description: str):
        self.name = name
        self.short = short
        self.description = description
        self.convs: list[Conversation] = []
        self.ip_id: dict[str, int] = {}
        self.ports = PortAllocator(name)

    # -- IPv4 identification: one counter per sending host --------------
    def next_ip_id(self, host: Host) -> int:
        if host.ip not in self.ip_id:
            self.ip_id[host.ip] = _label_int(f"ipid:{self.name}:{host.ip}") & 0xFFFF
        v = self.ip_id[host.ip]
        self.ip_id[host.ip] = (v + 1) & 0xFFFF
        return v

    def add(self, conv: Conversation) -> Conversation:
        for other in self.convs:
            assert other.key() != conv.key(), f"duplicate 5-tuple {conv.key()}"
        self.convs.append(conv)
        return conv

    # -- layer 2/3 framing ------------------------------------------------
    def frame(self, conv: Conversation, from_orig: bool, l4) -> "Ether":
        """Wrap an L4 packet in IP(v6)/[802.1Q]/Ethernet as seen at the tap.

        The tap sits on the originator's segment: if both ends share a
        subnet the frame carries both hosts' MACs, otherwise one side is the
        core router's MAC.
        """
        src, dst = (conv.orig, conv.resp) if from_orig else (conv.resp, conv.orig)
        same_l2 = conv.orig.local and conv.resp.local and conv.orig.subnet() == conv.resp.subnet()
        if same_l2:
            smac, dmac, ttl = src.mac, dst.mac, src.ttl
        elif from_orig:
            smac, dmac, ttl = src.mac, ROUTER_MAC, src.ttl
        else:
            # forwarded by the router: local hosts lose one hop, remote TTLs
            # already describe what arrives at the site
            smac, dmac = ROUTER_MAC, dst.mac
            ttl = src.ttl - 1 if src.local else src.ttl
        if src.v6:
            l3 = IPv6(src=src.ip, dst=dst.ip, hlim=ttl) / l4
        else:
            df = "DF" if conv.proto == "tcp" else 0
            l3 = IP(src=src.ip, dst=dst.ip, ttl=ttl, id=self.next_ip_id(src), flags=df) / l4
        if conv.vlan is not None:
            frame = Ether(src=smac, dst=dmac) / Dot1Q(vlan=conv.vlan) / l3
        else:
            frame = Ether(src=smac, dst=dmac) / l3
        # Build once and re-dissect: lengths/checksums become concrete fields and
        # ``.original`` keeps the exact bytes that go into the pcap.
        return Ether(bytes(frame))

    # -- output -------------------------------------------------------------
    def _ordered_frames(self):
        frames = []
        n = 0
        for conv in self.convs:
            for t_us, _from_orig, pkt, _meta in conv.packets:
                frames.append((t_us, n, pkt))
                n += 1
        frames.sort(key=lambda x: (x[0], x[1]))
        return frames

    def write(self, out_dir: Path) -> dict:
        pcap_path = out_dir / self.name
        frames = self._ordered_frames()
        writer = PcapWriter(str(pcap_path), linktype=DLT_EN10MB, endianness="<", sync=False)
        try:
            writer.write_header(None)  # linktype is explicit, so no guessing happens
            for t_us, _n, pkt in frames:
                sec, usec = divmod(BASE_TS * SEC + t_us, SEC)
                writer.write_packet(pkt.original, sec=sec, usec=usec)
        finally:
            writer.close()
        manifest = self.manifest(frames)
        manifest["pcap_sha256"] = hashlib.sha256(pcap_path.read_bytes()).hexdigest()
        exp_dir = out_dir / "expected"
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / f"{Path(self.name).stem}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return manifest

    def manifest(self, frames) -> dict:
        rows = []
        for conv in sorted(self.convs, key=lambda c: min(p[0] for p in c.packets)):
            rows.append(summarize(conv))
        for i, row in enumerate(rows, 1):
            row["id"] = f"{self.short}-{i:03d}"
        # nicer key order: id first
        rows = [{"id": r.pop("id"), **r} for r in rows]
        total = len(frames)
        assert total == sum(r["orig_pkts"] + r["resp_pkts"] for r in rows)
        # SNIs in packet order (ClientHello packets are tagged in their meta)
        hello = []
        for conv in self.convs:
            for t_us, _f, _p, meta in conv.packets:
                if meta.get("sni"):
                    hello.append((t_us, meta["sni"]))
        snis = [s for _t, s in sorted(hello)]
        return {
            "capture": self.name,
            "description": self.description,
            "generator": "captures/generate.py",
            "scapy_version": SCAPY_VERSION,
            "seed": SEED,
            "site": SITE,
            "first_ts": _ts(frames[0][0]),
            "last_ts": _ts(frames[-1][0]),
            "packet_count": total,
            "tcp_conversations": sum(1 for r in rows if r["proto"] == "tcp"),
            "udp_conversations": sum(1 for r in rows if r["proto"] == "udp"),
            "icmp_conversations": sum(1 for r in rows if r["proto"] == "icmp"),
            "tls_server_names": snis,
            "conversations": rows,
        }


def _ts(t_us: int) -> float:
    return round((BASE_TS * SEC + t_us) / SEC, 6)


def _ip_len(pkt) -> int:
    """IP total length (IPv6: payload length + fixed header)."""
    if IPv6 in pkt:
        return pkt[IPv6].plen + 40
    return pkt[IP].len


def _l4_len(pkt) -> int:
    """Length of the IP payload (no IPv6 extension headers are generated)."""
    if IPv6 in pkt:
        return pkt[IPv6].plen
    return pkt[IP].len - 4 * pkt[IP].ihl


def _payload_len(pkt, proto: str) -> int:
    """Zeek's per-packet payload size: TCP/UDP payload, ICMP data after 8 header bytes."""
    if proto == "tcp":
        return _l4_len(pkt) - 4 * pkt[TCP].dataofs
    if proto == "udp":
        return pkt[UDP].len - 8
    return _l4_len(pkt) - 8


def _union_len(ranges: list[tuple[int, int]]) -> tuple[int, bool]:
    """Length covered by half-open ranges and whether the cover is one block from 0."""
    covered = 0
    end = 0
    contiguous = True
    for a, b in sorted(ranges):
        if a > end:
            contiguous = False
        if b > end:
            covered += b - max(a, end)
            end = b
    return covered, contiguous


def _tcp_state(conv: Conversation) -> str:
    """Zeek conn_state derived from the flags seen (the subset we generate)."""
    flags = {True: set(), False: set()}
    for _t, from_orig, pkt, _m in conv.packets:
        f = pkt[TCP].flags
        if f.S and not f.A:
            flags[from_orig].add("S")
        if f.S and f.A:
            flags[from_orig].add("SA")
        if f.F:
            flags[from_orig].add("F")
        if f.R:
            flags[from_orig].add("R")
    o, r = flags[True], flags[False]
    if "R" in r:
        return "REJ" if "SA" not in r else "RSTR"
    if "R" in o:
        return "RSTO" if r else "RSTOS0"
    if "F" in o and "F" in r:
        return "SF"
    if not r:
        return "S0"
    return "S1"


def summarize(conv: Conversation) -> dict:
    """Compute the ground-truth manifest row of one conversation from its packets."""
    times = [p[0] for p in conv.packets]
    pkts = {True: 0, False: 0}
    ip_bytes = {True: 0, False: 0}
    payload = {True: 0, False: 0}
    ranges = {True: [], False: []}
    retrans = ooo = 0
    isn = {}
    for _t, from_orig, pkt, meta in conv.packets:
        pkts[from_orig] += 1
        ip_bytes[from_orig] += _ip_len(pkt)
        if conv.proto == "tcp":
            tcp = pkt[TCP]
            if tcp.flags.S:
                isn[from_orig] = tcp.seq
            n = _payload_len(pkt, "tcp")
            if n:
                rel = (tcp.seq - isn[from_orig] - 1) % 2**32
                ranges[from_orig].append((rel, rel + n))
            retrans += bool(meta.get("retransmission"))
            ooo += bool(meta.get("out_of_order"))
        else:
            payload[from_orig] += _payload_len(pkt, conv.proto)
    if conv.proto == "tcp":
        for side in (True, False):
            covered, contiguous = _union_len(ranges[side])
            assert contiguous, f"sequence gap in {conv.key()}"
            payload[side] = covered
        state = _tcp_state(conv)
    elif conv.proto == "udp":
        state = "SF" if pkts[False] else "S0"
    else:
        state = "OTH"
    assert state == conv.conn_state, f"{conv.key()}: computed {state}, declared {conv.conn_state}"
    return {
        "ts": _ts(min(times)),
        "duration": round((max(times) - min(times)) / SEC, 6),
        "proto": conv.proto,
        "orig_h": conv.orig.ip,
        "orig_p": conv.orig_p,
        "resp_h": conv.resp.ip,
        "resp_p": conv.resp_p,
        "orig_pkts": pkts[True],
        "resp_pkts": pkts[False],
        "orig_bytes": payload[True],
        "resp_bytes": payload[False],
        "orig_ip_bytes": ip_bytes[True],
        "resp_ip_bytes": ip_bytes[False],
        "conn_state": conv.conn_state,
        "vlan": conv.vlan,
        "ip_version": 6 if conv.orig.v6 else 4,
        "app": conv.app,
        "server_name": conv.server_name,
        "retransmissions": retrans,
        "out_of_order": ooo,
        "orig_role": conv.orig.role,
        "resp_role": conv.resp.role,
        "description": conv.description,
    }


# --------------------------------------------------------------------------
# TCP simulation
# --------------------------------------------------------------------------


@dataclass
class _Side:
    host: Host
    port: int
    isn: int
    window: int  # advertised (already scaled-down) window field
    mss: int
    nxt: int = 0  # next sequence number to send (unwrapped)
    rcv: int = 0  # next sequence number expected from the peer (unwrapped)


@dataclass
class _Emission:
    t: int
    seq: int
    payload: bytes
    psh: bool
    lost: bool = False  # lost between the tap and the receiver
    retrans: bool = False
    ooo: bool = False


class TcpFlow:
    """One TCP connection, simulated segment by segment.

    ``self.t`` is the flow's clock: the earliest time (at the tap) at which
    the next application action can happen.
    """

    def __init__(self, cap: Capture, client: Host, server: Host, sport: int, *, t: int,
                 srv_rtt: int, cli_rtt: int = 120, gap: int = 15, app: str, description: str,
                 conn_state: str = "SF", vlan: int | None = None, server_name: str | None = None):
        self.cap = cap
        self.rng = Rng(f"tcp:{cap.name}:{client.ip}:{server.ip}:{sport}:{t}")
        cport = cap.ports.take(client)
        mss = 1440 if client.v6 else 1460
        self.c = _Side(client, cport, self.rng.u32(), window=2053, mss=mss)
        self.s = _Side(server, sport, self.rng.u32(), window=4101, mss=mss)
        self.t = t
        self.srv_rtt = srv_rtt
        self.cli_rtt = cli_rtt
        self.gap = gap  # pacing between back-to-back full segments
        self._pending = None  # (receiver_is_client, deadline, ack_value)
        self.conv = cap.add(Conversation("tcp", client, server, cport, sport, conn_state, app,
                                         description, vlan=vlan, server_name=server_name))

    # -- packet emission ---------------------------------------------------
    def _emit(self, t: int, from_client: bool, flags: str, seq: int, ack: int,
              payload: bytes = b"", options=None, window: int | None = None, **meta):
        side = self.c if from_client else self.s
        tcp = TCP(sport=side.port, dport=(self.s if from_client else self.c).port,
                  seq=seq % 2**32, ack=ack % 2**32 if "A" in flags else 0, flags=flags,
                  window=side.window if window is None else window, options=options or [])
        if payload:
            tcp = tcp / Raw(payload)
        pkt = self.cap.frame(self.conv, from_client, tcp)
        self.conv.packets.append((t, from_client, pkt, meta))

    def _rtt_of(self, client_side: bool) -> int:
        return self.cli_rtt if client_side else self.srv_rtt

    def _flush_pending(self, receiver_next: dict):
        """Emit a delayed ACK unless the receiver sends something before its timer fires.

        ``receiver_next`` maps "receiver is client" -> time of that side's next packet.
        """
        if self._pending is None:
            return
        is_client, deadline, ack = self._pending
        self._pending = None
        nxt = receiver_next.get(is_client)
        if nxt is not None and nxt <= deadline:
            return  # the ACK piggybacks on that packet
        side = self.c if is_client else self.s
        self._emit(deadline, is_client, "A", side.nxt, ack)
        self.t = max(self.t, deadline)

    # -- connection life cycle -----------------------------------------------
    def connect(self):
        c, s = self.c, self.s
        t0 = self.t
        self._emit(t0, True, "S", c.isn, 0, window=64240 if not c.host.v6 else 64800,
                   options=[("MSS", c.mss), ("NOP", None), ("WScale", 8)])
        c.nxt = c.isn + 1
        t1 = t0 + self.srv_rtt
        self._emit(t1, False, "SA", s.isn, c.nxt, window=65160,
                   options=[("MSS", s.mss), ("NOP", None), ("WScale", 7)])
        s.nxt = s.isn + 1
        c.rcv, s.rcv = s.nxt, c.nxt
        t2 = t1 + self.cli_rtt
        self._emit(t2, True, "A", c.nxt, c.rcv)
        self.t = t2
        return self

    def syn_unanswered(self):
        """A single SYN that never gets an answer (Zeek S0)."""
        self._emit(self.t, True, "S", self.c.isn, 0, window=64240,
                   options=[("MSS", self.c.mss), ("NOP", None), ("WScale", 8)])
        return self

    def rejected(self):
        """SYN answered by RST/ACK from a closed port (Zeek REJ)."""
        self._emit(self.t, True, "S", self.c.isn, 0, window=64240,
                   options=[("MSS", self.c.mss), ("NOP", None), ("WScale", 8)])
        self._emit(self.t + self.srv_rtt, False, "RA", 0, self.c.isn + 1, window=0)
        self.t += self.srv_rtt
        return self

    def send(self, from_client: bool, data: bytes, *, think: int = 0, gap: int | None = None,
             lose_last: bool = False, swap: int | None = None, sni: str | None = None):
        """One application write of ``data`` by the client or the server.

        ``lose_last``: the last segment is lost after the tap and resent after
        an RTO.  ``swap=k``: segments k and k+1 arrive swapped (reordered
        upstream of the tap).  ``sni`` tags the first segment as a TLS
        ClientHello carrying that server name (for the manifest).
        """
        snd, rcv = (self.c, self.s) if from_client else (self.s, self.c)
        rtt_recv = self._rtt_of(not from_client)
        gap = self.gap if gap is None else gap
        t = self.t + think
        self._flush_pending({from_client: t, not from_client: t + rtt_recv})

        chunks = [data[i:i + snd.mss] for i in range(0, len(data), snd.mss)]
        ems: list[_Emission] = []
        seq = snd.nxt
        tt = t
        for i, ch in enumerate(chunks):
            ems.append(_Emission(tt, seq, ch, psh=i == len(chunks) - 1))
            seq += len(ch)
            tt += max(1, gap * len(ch) // snd.mss)
        if swap is not None:
            a, b = ems[swap], ems[swap + 1]
            a.t, b.t = b.t + max(1, gap // 4), a.t
            a.ooo = True
        if lose_last:
            last = ems[-1]
            last.lost = True
            rto = RTO_MIN_US + 2 * (self.srv_rtt + self.cli_rtt)
            ems.append(_Emission(last.t + rto, last.seq, last.payload, psh=last.psh, retrans=True))
        snd.nxt = seq

        for e in ems:
            meta = {}
            if e.retrans:
                meta["retransmission"] = True
            if e.ooo:
                meta["out_of_order"] = True
            if sni and e.seq == ems[0].seq and not e.retrans:
                meta["sni"] = sni
            self._emit(e.t, from_client, "PA" if e.psh else "A", e.seq, snd.rcv, e.payload, **meta)

        # receiver: ACK every 2nd segment, immediate dup-ACK on a hole,
        # immediate ACK when a hole is filled, delayed ACK otherwise
        rcv_nxt = rcv.rcv
        ooo: dict[int, int] = {}
        pending = 0
        first_pending_t = None
        last_arrival = t
        for e in sorted(ems, key=lambda e: e.t):
            if e.lost:
                continue
            ta = e.t + rtt_recv
            if pending and first_pending_t + DELACK_US < ta:
                self._emit(first_pending_t + DELACK_US, not from_client, "A", rcv.nxt, rcv_nxt)
                pending = 0
            end = e.seq + len(e.payload)
            if e.seq == rcv_nxt:
                rcv_nxt = end
                filled = False
                while rcv_nxt in ooo:
                    rcv_nxt = ooo.pop(rcv_nxt)
                    filled = True
                if filled:
                    self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                    pending = 0
                else:
                    if pending == 0:
                        first_pending_t = e.t + rtt_recv
                    pending += 1
                    if pending >= 2:
                        self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                        pending = 0
            elif e.seq > rcv_nxt:
                ooo[e.seq] = end
                self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)  # duplicate ACK
                pending = 0
            else:
                self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                pending = 0
            last_arrival = max(last_arrival, ta)
        assert rcv_nxt == snd.nxt and not ooo
        rcv.rcv = rcv_nxt
        if pending:
            self._pending = (not from_client, first_pending_t + DELACK_US, rcv_nxt)
        self.t = max([last_arrival] + [p[0] for p in self.conv.packets])
        return self

    def close(self, by_client: bool = True, think: int = 0):
        """FIN/ACK teardown: FIN, FIN-ACK from the peer, final ACK."""
        ini, oth = (self.c, self.s) if by_client else (self.s, self.c)
        t = self.t + think
        t_oth = t + self._rtt_of(not by_client)
        self._flush_pending({by_client: t, not by_client: t_oth})
        self._emit(t, by_client, "FA", ini.nxt, ini.rcv)
        ini.nxt += 1
        oth.rcv = ini.nxt
        self._emit(t_oth, not by_client, "FA", oth.nxt, oth.rcv)
        oth.nxt += 1
        ini.rcv = oth.nxt
        t_fin = t_oth + self._rtt_of(by_client)
        self._emit(t_fin, by_client, "A", ini.nxt, ini.rcv)
        self.t = t_fin
        return self

    def reset(self, by_client: bool = True, think: int = 0):
        """Abort with RST/ACK (Zeek RSTO if the client, RSTR if the server)."""
        side = self.c if by_client else self.s
        t = self.t + think
        self._flush_pending({by_client: t})
        self._emit(t, by_client, "RA", side.nxt, side.rcv, window=0)
        self.t = t
        return self


# --------------------------------------------------------------------------
# UDP / ICMP helpers
# --------------------------------------------------------------------------


def udp_exchange(cap: Capture, client: Host, server: Host, cport: int, sport: int,
                 exchanges: list[tuple[int, bytes, int, bytes | None]], *, app: str,
                 description: str, vlan: int | None = None) -> Conversation:
    """A UDP conversation: list of (t_request, request, response_delay, response|None)."""
    state = "SF" if any(r is not None for _t, _q, _d, r in exchanges) else "S0"
    conv = cap.add(Conversation("udp", client, server, cport, sport, state, app, description, vlan=vlan))
    for t, req, delay, resp in exchanges:
        conv.packets.append((t, True, cap.frame(conv, True, UDP(sport=cport, dport=sport) / req), {}))
        if resp is not None:
            conv.packets.append(
                (t + delay, False, cap.frame(conv, False, UDP(sport=sport, dport=cport) / resp), {}))
    return conv


def ping(cap: Capture, src: Host, dst: Host, t: int, count: int, rtt: int, ident: int,
         description: str) -> Conversation:
    """Linux-style ``ping -c count``: 56-byte payload, 1 s interval."""
    conv = cap.add(Conversation("icmp", src, dst, 8, 0, "OTH", "icmp", description))
    for i in range(count):
        ts = t + i * SEC + i * 37  # small scheduling drift
        sec, usec = divmod(BASE_TS * SEC + ts, SEC)
        data = struct.pack("<QQ", sec, usec) + bytes(range(0x10, 0x38))
        req = ICMP(type=8, code=0, id=ident, seq=i + 1) / Raw(data)
        rep = ICMP(type=0, code=0, id=ident, seq=i + 1) / Raw(data)
        conv.packets.append((ts, True, cap.frame(conv, True, req), {}))
        conv.packets.append((ts + rtt + 3 * i, False, cap.frame(conv, False, rep), {}))
    return conv


# --------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------


class Resolver:
    """The site resolver: answers from cache or recurses to 9.9.9.9."""

    def __init__(self, cap: Capture, host: Host = H["resolver"]):
        self.cap = cap
        self.host = host
        self.cache: dict[tuple[str, str], int] = {}  # (name, qtype) -> expiry (us)
        self.rng = Rng(f"dns:{cap.name}:{host.ip}")

    def _rrs(self, records, ttl_left: int | None = None):
        out = []
        for name, rtype, ttl, rdata in records:
            t = ttl if ttl_left is None else max(1, min(ttl, ttl_left))
            out.append(DNSRR(rrname=name + ".", type=rtype, ttl=t,
                             rdata=rdata + "." if rtype == "CNAME" else rdata))
        return out

    def lookup(self, client: Host, name: str, qtype: str, t: int, *, vlan: int | None = None) -> int:
        """Emit the client query/answer (and the upstream exchange on a miss).

        Returns the time at which the client has its answer.
        """
        records = ZONE.get(name, {}).get(qtype)
        rcode = 0 if name in ZONE else 3  # NXDOMAIN for unknown names
        records = records or []
        ttl = min((r[2] for r in records), default=300)
        cport = self.cap.ports.take(client)
        txid = self.rng.randint(1, 0xFFFF)
        query = DNS(id=txid, rd=1, qd=[DNSQR(qname=name + ".", qtype=qtype)])
        expiry = self.cache.get((name, qtype))
        server = self.host
        if expiry is not None and expiry > t:
            ttl_left = (expiry - t) // SEC
            answer = DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name + ".", qtype=qtype)],
                         an=self._rrs(records, ttl_left))
            delay = 180 + self.rng.randint(0, 120)
            desc = f"DNS {qtype} {name} (resolver cache hit)"
        else:
            # recursion: resolver -> upstream
            up_t = t + 90 + self.rng.randint(0, 60)
            up_rtt = 11 * MS + self.rng.randint(0, 4 * MS)
            up_id = self.rng.randint(1, 0xFFFF)
            up_port = self.cap.ports.take(server)
            up_q = DNS(id=up_id, rd=1, qd=[DNSQR(qname=name + ".", qtype=qtype)], ar=[DNSRROPT(rclass=1232)])
            up_a = DNS(id=up_id, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name + ".", qtype=qtype)],
                       an=self._rrs(records), ar=[DNSRROPT(rclass=1232)])
            udp_exchange(self.cap, server, H["quad9"], up_port, 53, [(up_t, up_q, up_rtt, up_a)],
                         app="dns", description=f"resolver recursion: {qtype} {name} to upstream 9.9.9.9")
            answer = DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name + ".", qtype=qtype)],
                         an=self._rrs(records))
            delay = (up_t - t) + up_rtt + 70
            if rcode == 0:
                self.cache[(name, qtype)] = t + delay + ttl * SEC
            desc = f"DNS {qtype} {name} (resolver cache miss)" + (" -> NXDOMAIN" if rcode else "")
        srv = H["resolver6"] if client.v6 else server
        udp_exchange(self.cap, client, srv, cport, 53, [(t, query, delay, answer)], app="dns",
                     description=desc, vlan=vlan)
        return t + delay


# --------------------------------------------------------------------------
# Application payloads
# --------------------------------------------------------------------------


def ups_check_digit(body15: str) -> str:
    """UPS 1Z check digit over the 15 characters after '1Z'."""
    total = 0
    for i, ch in enumerate(body15):
        v = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += v * (2 if i % 2 else 1)
    return str((10 - total % 10) % 10)


def ups_tracking(shipper: str, service: str, package: int) -> str:
    body = f"{shipper}{service}{package:07d}"
    return "1Z" + body + ups_check_digit(body)


def sscc(serial: int, ext: int = 0, prefix: str = "0614141") -> str:
    """18-digit SSCC (GS1 example company prefix) with its mod-10 check digit."""
    body = f"{ext}{prefix}{serial:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


assert ups_tracking("999AA1", "01", 2345678) == "1Z999AA10123456784"

FAKE_PEOPLE = [
    ("Jane Example", "Example Retail GmbH", "12 Sample Street", "Springfield", "IL", "62704", "US"),
    ("John Placeholder", "Placeholder Foods Inc.", "400 Test Avenue", "Riverton", "WY", "82501", "US"),
    ("Erika Mustermann", "Muster Logistik AG", "Musterstrasse 1", "Berlin", "BE", "10115", "DE"),
    ("Alex Doe", "Doe Hardware LLC", "77 Fictional Blvd", "Fairview", "TN", "37062", "US"),
    ("Sam Sample", "Sample Outdoor Co.", "9 Demo Lane", "Greenville", "SC", "29601", "US"),
    ("Chris Testperson", "Testperson Pharma BV", "Proefweg 23", "Utrecht", "UT", "3511", "NL"),
]


def shipment_record(rng: Rng, i: int, carrier: str = "UPS") -> dict:
    name, company, street, city, state, zipc, country = FAKE_PEOPLE[i % len(FAKE_PEOPLE)]
    first = name.split()[0].lower()
    last = name.split()[-1].lower()
    if carrier == "UPS":
        tracking = "1Z999AA10123456784" if i == 0 else ups_tracking("999AA1", "01", 2345678 + 1111 * i)
    else:
        tracking = f"{rng.randint(10**9, 10**10 - 1)}"
    return {
        "shipment_id": f"SHP-DCN-2025-{118400 + i:06d}",
        "carrier": carrier,
        "service": "GROUND" if carrier == "UPS" else "EXPRESS_WORLDWIDE",
        "tracking_number": tracking,
        "sscc": sscc(1234500 + 17 * i),
        "pieces": 1 + i % 3,
        "weight_kg": round(2.5 + 1.75 * i, 2),
        "consignee": {
            "name": name,
            "company": company,
            "address": {"line1": street, "city": city, "state": state, "postal_code": zipc,
                        "country": country},
            "email": f"{first}.{last}@example.com",
            "phone": f"+1-555-01{10 + i:02d}",
        },
        "reference": f"PO-77{3100 + i}",
    }


def http_request(method: str, path: str, host: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_response(status: str, headers: list[tuple[str, str]], body: bytes, date: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Date: {date}"] + [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _utc(t: int) -> dt.datetime:
    """Capture-relative microseconds -> aware UTC datetime (no clock access)."""
    return dt.datetime.fromtimestamp(BASE_TS + t // SEC, tz=dt.timezone.utc)


def http_date(t: int) -> str:
    return _utc(t).strftime("%a, %d %b %Y %H:%M:%S GMT")


def iso_time(t: int) -> str:
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def jbytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------
# TLS 1.3 records (built by hand, so bytes do not depend on scapy's TLS layer)
# --------------------------------------------------------------------------

_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
            0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]


def _ext(etype: int, body: bytes) -> bytes:
    return u16(etype) + u16(len(body)) + body


def tls_client_hello(label: str, sni: str, alpn: tuple[str, ...] = ("h2", "http/1.1"),
                     psk_identity: bytes | None = None) -> bytes:
    """A TLS 1.3-capable ClientHello (TLS 1.2 record/legacy version, like browsers/curl).

    With ``psk_identity`` it offers session resumption: a pre_shared_key
    extension (always the last extension) with one ticket and its binder.
    """
    rnd = det_bytes(f"{label}:crandom", 32)
    sid = det_bytes(f"{label}:sid", 32)
    key = det_bytes(f"{label}:ckey", 32)
    name = sni.encode()
    sn_list = u8(0) + u16(len(name)) + name
    alpn_list = b"".join(u8(len(p)) + p.encode() for p in alpn)
    exts = b"".join([
        _ext(0x0000, u16(len(sn_list)) + sn_list),                      # server_name
        _ext(0x0017, b""),                                             # extended_master_secret
        _ext(0xFF01, b"\x00"),                                         # renegotiation_info
        _ext(0x000A, u16(6) + u16(0x001D) + u16(0x0017) + u16(0x0018)),  # supported_groups
        _ext(0x000B, b"\x01\x00"),                                     # ec_point_formats
        _ext(0x0023, b""),                                             # session_ticket
        _ext(0x0010, u16(len(alpn_list)) + alpn_list),                 # ALPN
        _ext(0x0005, b"\x01\x00\x00\x00\x00"),                         # status_request
        _ext(0x000D, u16(16) + bytes.fromhex("04030804040105030805050108060601")),  # sig algs
        _ext(0x0033, u16(36) + u16(0x001D) + u16(32) + key),           # key_share x25519
        _ext(0x002D, b"\x01\x01"),                                     # psk_key_exchange_modes
        _ext(0x002B, b"\x04\x03\x04\x03\x03"),                         # supported_versions
    ])
    if psk_identity is not None:
        identity = u16(len(psk_identity)) + psk_identity + struct.pack("!I", _label_int(f"{label}:age") & 0xFFFFFFFF)
        binder = u8(32) + det_bytes(f"{label}:binder", 32)
        exts += _ext(0x0029, u16(len(identity)) + identity + u16(len(binder)) + binder)  # pre_shared_key
    body = (u16(0x0303) + rnd + u8(32) + sid + u16(2 * len(_CIPHERS))
            + b"".join(u16(c) for c in _CIPHERS) + b"\x01\x00" + u16(len(exts)) + exts)
    hs = b"\x01" + u24(len(body)) + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


def tls_server_hello(label: str, psk: bool = False) -> bytes:
    """TLS 1.3 ServerHello (TLS_AES_128_GCM_SHA256, x25519; selects PSK 0 if ``psk``)."""
    rnd = det_bytes(f"{label}:srandom", 32)
    sid = det_bytes(f"{label}:sid", 32)  # echo of the client's legacy session id
    key = det_bytes(f"{label}:skey", 32)
    exts = _ext(0x002B, u16(0x0304)) + _ext(0x0033, u16(0x001D) + u16(32) + key)
    if psk:
        exts += _ext(0x0029, u16(0))
    body = u16(0x0303) + rnd + u8(32) + sid + u16(0x1301) + b"\x00" + u16(len(exts)) + exts
    hs = b"\x02" + u24(len(body)) + body
    return b"\x16\x03\x03" + u16(len(hs)) + hs


TLS_CCS = b"\x14\x03\x03\x00\x01\x01"


def tls_app_data(label: str, size: int) -> bytes:
    """Opaque TLS 1.3 application_data records carrying ``size`` bytes of ciphertext."""
    out = []
    i = 0
    while size > 0:
        n = min(size, 16384 + 17)
        out.append(b"\x17\x03\x03" + u16(n) + det_bytes(f"{label}:ad{i}", n))
        size -= n
        i += 1
    return b"".join(out)


def tls_session(flow: TcpFlow, label: str, sni: str, exchanges: list[tuple[int, int, int]], *,
                close_think: int = 2 * MS, cert_size: int = 3300, resume: bytes | None = None):
    """Handshake + ``exchanges`` of (request ciphertext, response ciphertext, server think µs).

    TLS 1.3: ClientHello; ServerHello + CCS + encrypted EE/Certificate/
    CertificateVerify/Finished; client CCS + Finished (+ first request);
    NewSessionTicket records precede the first response; close_notify then FIN.
    With ``resume`` (a session ticket) the handshake is a PSK resumption:
    no certificate, the server's encrypted flight is only EE + Finished.
    """
    flow.connect()
    flow.send(True, tls_client_hello(label, sni, psk_identity=resume), think=40, sni=sni)
    if resume is None:
        server_enc = tls_app_data(f"{label}:cert", cert_size)
    else:
        server_enc = tls_app_data(f"{label}:ee", 23)
    flight = (tls_server_hello(label, psk=resume is not None) + TLS_CCS + server_enc
              + tls_app_data(f"{label}:sfin", 53))
    flow.send(False, flight, think=900)
    for i, (req, resp, think) in enumerate(exchanges):
        data = tls_app_data(f"{label}:req{i}", req)
        if i == 0:
            data = TLS_CCS + tls_app_data(f"{label}:cfin", 53) + data
        flow.send(True, data, think=300 if i == 0 else 1200 * MS)
        out = tls_app_data(f"{label}:resp{i}", resp)
        if i == 0:
            nst = tls_app_data(f"{label}:nst0", 249)
            if resume is None:
                nst += tls_app_data(f"{label}:nst1", 249)
            out = nst + out
        flow.send(False, out, think=think)
    flow.send(True, tls_app_data(f"{label}:alert", 19), think=close_think)  # close_notify
    flow.close(by_client=True, think=60)
    return flow


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

EXT_RTT = {  # tap -> server -> tap, microseconds
    "ups": 24 * MS, "dhl": 31 * MS, "partner": 18 * MS, "vendor": 27 * MS, "oss": 176 * MS,
    "ntp": 9 * MS,
}
LAN_RTT = 260  # tap -> LAN host -> tap


def scanner_session(cap: Capture, scanner: Host, wms: Host, t: int, n_req: int, end: str,
                    description: str, vlan: int | None = None, conn_state: str = "SF"):
    """An RF scanner posting scan events to the WMS (HTTP/1.1 keep-alive on 8080)."""
    rng = Rng(f"scanner:{cap.name}:{scanner.ip}:{t}")
    flow = TcpFlow(cap, scanner, wms, 8080, t=t, srv_rtt=LAN_RTT, cli_rtt=2 * MS + 300, app="http",
                   description=description, vlan=vlan, conn_state=conn_state)
    flow.connect()
    device = "TC52-" + scanner.ip.rsplit(".", 1)[1].zfill(4)
    for i in range(n_req):
        ev = {
            "device_id": device,
            "user": f"picker{rng.randint(1, 40):02d}",
            "event": rng.choice(["pick", "putaway", "pack", "load"]),
            "location": f"{rng.choice('ABCDEF')}-{rng.randint(1, 30):02d}-{rng.randint(1, 8):02d}-"
                        f"{rng.choice('ABCD')}",
            "sscc": sscc(2200000 + rng.randint(0, 99999)),
            "sku": f"SKU-{rng.randint(100000, 999999)}",
            "qty": rng.randint(1, 12),
            "ts": iso_time(flow.t),
        }
        body = jbytes(ev)
        req = http_request("POST", "/api/v1/scans", f"{wms.ip}:8080", [
            ("User-Agent", "RFTerminal/5.2 (Android 11; TC52)"),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("Connection", "keep-alive"),
        ], body)
        flow.send(True, req, think=200 if i == 0 else rng.randint(3, 9) * SEC)
        task = {"status": "ok", "scan_id": rng.randint(10**7, 10**8 - 1),
                "next_task": {"type": "pick", "location": f"B-{rng.randint(1, 30):02d}-03-A",
                              "sku": f"SKU-{rng.randint(100000, 999999)}", "qty": rng.randint(1, 6)}}
        resp = http_response("200 OK", [("Content-Type", "application/json"), ("Server", "wms-api/3.8"),
                                        ("Connection", "keep-alive")], jbytes(task), http_date(flow.t))
        flow.send(False, resp, think=rng.randint(2, 12) * MS)
    if end == "fin":
        flow.close(by_client=True, think=rng.randint(1, 3) * SEC)
    elif end == "rst_client":
        flow.reset(by_client=True, think=rng.randint(1, 3) * SEC)
    elif end == "rst_server":
        flow.reset(by_client=False, think=rng.randint(5, 15) * SEC)
    return flow


def zpl_label(rec: dict) -> str:
    c = rec["consignee"]
    a = c["address"]
    return (
        "^XA^CI28^PW812^LL1218\n"
        f"^FO40,40^A0N,36,36^FDSHIP TO: {c['name']}^FS\n"
        f"^FO40,85^A0N,30,30^FD{c['company']}^FS\n"
        f"^FO40,120^A0N,30,30^FD{a['line1']}^FS\n"
        f"^FO40,155^A0N,30,30^FD{a['city']} {a['state']} {a['postal_code']} {a['country']}^FS\n"
        "^FO40,210^GB730,3,3^FS\n"
        f"^FO40,240^A0N,50,50^FD{rec['carrier']} {rec['service']}^FS\n"
        f"^FO40,310^BY3^BCN,160,Y,N,N^FD>;{rec['tracking_number']}^FS\n"
        f"^FO40,540^A0N,28,28^FDTRACKING #: {rec['tracking_number']}^FS\n"
        f"^FO40,600^BY3^BCN,160,Y,N,N^FD>;>800{rec['sscc']}^FS\n"
        f"^FO40,820^A0N,28,28^FDREF: {rec['reference']}  WT: {rec['weight_kg']} KG^FS\n"
        "^PQ1,0,1,Y^XZ\n"
    )


def print_job(cap: Capture, wms: Host, printer: Host, t: int, records: list[dict], description: str,
              status_query: bool = False):
    """A raw TCP/9100 print job; the printer only answers ~HS status queries."""
    flow = TcpFlow(cap, wms, printer, 9100, t=t, srv_rtt=LAN_RTT, app="zpl", description=description)
    flow.connect()
    if status_query:
        flow.send(True, b"~HS\r\n", think=80)
        status = (b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n"
                  b"\x02000,0,0,0,1,2,6,0,00000000,1,000\x03\r\n"
                  b"\x021234,0\x03\r\n")
        flow.send(False, status, think=3 * MS)
    zpl = "".join(zpl_label(r) for r in records).encode()
    flow.send(True, zpl, think=150)
    flow.close(by_client=True, think=5 * MS)
    return flow


def build_day() -> Capture:
    """The main mixed daytime scenario."""
    cap = Capture("dc-north-day.pcap", "day",
                  "dc-north daytime mix: DNS, NTP, ICMP, carrier TLS APIs, partner HTTP POSTs, "
                  "software download, rsync backup, label printing, RF scanners, REJ/S0 attempts")
    dns = Resolver(cap)
    rng = Rng("day")
    wms1, wms2, wms3 = H["wms1"], H["wms2"], H["wms3"]

    # -- NTP ------------------------------------------------------------------
    t = dns.lookup(wms1, "time.cloudflare.com", "A", 400 * MS)
    t_ntp = t + 2 * MS
    sec, usec = divmod(BASE_TS * SEC + t_ntp, SEC)
    ntp_ts = lambda s, us: struct.pack("!II", s + 2208988800, (us << 32) // SEC)  # noqa: E731
    ntp_req = b"\x23\x00\x06\xec" + bytes(12) + bytes(24) + ntp_ts(sec, usec)
    srv_sec, srv_usec = divmod(BASE_TS * SEC + t_ntp + EXT_RTT["ntp"] // 2, SEC)
    ntp_resp = (b"\x24\x03\x06\xe7" + struct.pack("!II", 0x00000150, 0x00000A3C) + bytes([10, 21, 8, 4])
                + ntp_ts(srv_sec - 41, 250000) + ntp_ts(sec, usec) + ntp_ts(srv_sec, srv_usec)
                + ntp_ts(srv_sec, min(srv_usec + 24, SEC - 1)))
    udp_exchange(cap, wms1, H["ntp"], 123, 123, [(t_ntp, ntp_req, EXT_RTT["ntp"], ntp_resp)],
                 app="ntp", description="NTP v4 client/server exchange with time.cloudflare.com")

    # -- ICMP printer health checks ---------------------------------------------
    ping(cap, wms1, H["prn21"], 2 * SEC, 3, 410, 0x1C46, "printer health check: ping -c 3 zt410-dock01")
    ping(cap, wms1, H["prn22"], 2 * SEC + 500 * MS, 3, 395, 0x1C47, "printer health check: ping -c 3 zt410-dock02")

    # -- RF scanners -> WMS (HTTP 8080) --------------------------------------------
    dns.lookup(H["scan14"], "wpad.dc-north.corp", "A", 6 * SEC)
    scanner_session(cap, H["scan14"], wms2, 7 * SEC, 3, "fin",
                    "RF scanner scan events to WMS, 3 POSTs, normal close")
    scanner_session(cap, H["scan15"], wms2, 9 * SEC + 120 * MS, 2, "rst_client",
                    "RF scanner scan events, app suspended: scanner aborts with RST", conn_state="RSTO")
    scanner_session(cap, H["scan16"], wms3, 11 * SEC + 700 * MS, 1, "rst_server",
                    "RF scanner session reset by the WMS (idle keep-alive reaped)", conn_state="RSTR")
    TcpFlow(cap, H["scan17"], wms3, 8443, t=14 * SEC, srv_rtt=LAN_RTT, app="https",
            description="scanner tries a closed port on the WMS (8443): RST", conn_state="REJ").rejected()

    # -- carrier APIs over TLS ---------------------------------------------------------
    t = dns.lookup(wms1, "api.ups.com", "A", 20 * SEC)
    dns.lookup(wms1, "api.ups.com", "AAAA", 20 * SEC + 60)
    tls_session(TcpFlow(cap, wms1, H["ups_api"], 443, t=t + 300, srv_rtt=EXT_RTT["ups"], gap=110,
                        app="tls", server_name="api.ups.com",
                        description="UPS rating + shipping API (TLS 1.3, SNI api.ups.com)"),
                "day:ups1", "api.ups.com", [(1180, 2620, 140 * MS), (1710, 14830, 420 * MS)])

    t = dns.lookup(wms2, "onlinetools.ups.com", "A", 27 * SEC)
    tls_session(TcpFlow(cap, wms2, H["ups_tools"], 443, t=t + 250, srv_rtt=EXT_RTT["ups"] + 2 * MS, gap=110,
                        app="tls", server_name="onlinetools.ups.com",
                        description="UPS OnlineTools address validation (TLS 1.3, CNAME to gslb)"),
                "day:upstools", "onlinetools.ups.com", [(890, 1240, 95 * MS)])

    t = dns.lookup(wms3, "api.dhl.com", "A", 31 * SEC)
    dns.lookup(wms3, "api.dhl.com", "AAAA", 31 * SEC + 45)
    tls_session(TcpFlow(cap, wms3, H["dhl_api"], 443, t=t + 280, srv_rtt=EXT_RTT["dhl"], gap=110,
                        app="tls", server_name="api.dhl.com",
                        description="DHL Express shipment API (TLS 1.3, CNAME to gslb)"),
                "day:dhl", "api.dhl.com", [(1530, 3480, 260 * MS), (620, 910, 80 * MS)], cert_size=3900)

    t = dns.lookup(wms2, "api.ups.com", "A", 44 * SEC)  # resolver cache hit
    tls_session(TcpFlow(cap, wms2, H["ups_api"], 443, t=t + 200, srv_rtt=EXT_RTT["ups"], gap=110,
                        app="tls", server_name="api.ups.com",
                        description="UPS label API from a second WMS node (resolver cache hit)"),
                "day:ups2", "api.ups.com", [(1320, 18210, 510 * MS)])

    # -- partner API: plain HTTP JSON POSTs ----------------------------------------------
    t = dns.lookup(wms1, "api.partner.example", "A", 52 * SEC)
    flow = TcpFlow(cap, wms1, H["partner"], 80, t=t + 300, srv_rtt=EXT_RTT["partner"], gap=110, app="http",
                   description="partner API: 2 JSON shipment batches over one keep-alive connection; "
                               "tail segment of the 2nd POST retransmitted")
    flow.connect()
    for b, (first, n) in enumerate([(0, 3), (3, 4)]):
        recs = [shipment_record(rng, first + i) for i in range(n)]
        body = jbytes({"batch_id": f"B-DCN-20251124-{41 + b:03d}", "site": SITE, "shipments": recs})
        req = http_request("POST", "/v2/shipments", "api.partner.example", [
            ("User-Agent", "wms-connector/2.4.1"), ("Content-Type", "application/json"),
            ("Accept", "application/json"), ("X-Api-Key", "test_0000000000000000000000000000"),
        ], body)
        flow.send(True, req, think=200 if b == 0 else 4 * SEC, lose_last=b == 1)
        ack = {"accepted": n, "rejected": 0, "batch_id": f"B-DCN-20251124-{41 + b:03d}",
               "receipt": f"RCPT-{rng.randint(10**9, 10**10 - 1)}"}
        flow.send(False, http_response("200 OK", [("Content-Type", "application/json"), ("Server", "nginx"),
                                                 ("Connection", "keep-alive")], jbytes(ack), http_date(flow.t)),
                  think=35 * MS)
    flow.close(by_client=True, think=2 * SEC)

    t = dns.lookup(wms3, "api.partner.example", "A", 63 * SEC)  # cache hit
    flow = TcpFlow(cap, wms3, H["partner"], 80, t=t + 250, srv_rtt=EXT_RTT["partner"], gap=110, app="http",
                   description="partner API: single JSON shipment batch (DHL consignments)")
    flow.connect()
    recs = [shipment_record(rng, 10 + i, carrier="DHL") for i in range(2)]
    body = jbytes({"batch_id": "B-DCN-20251124-043", "site": SITE, "shipments": recs})
    flow.send(True, http_request("POST", "/v2/shipments", "api.partner.example", [
        ("User-Agent", "wms-connector/2.4.1"), ("Content-Type", "application/json"),
        ("Accept", "application/json"), ("X-Api-Key", "test_0000000000000000000000000000"),
    ], body), think=150)
    flow.send(False, http_response("200 OK", [("Content-Type", "application/json"), ("Server", "nginx")],
                                   jbytes({"accepted": 2, "rejected": 0, "batch_id": "B-DCN-20251124-043"}),
                                   http_date(flow.t)), think=29 * MS)
    flow.close(by_client=True, think=300 * MS)

    # -- software download -------------------------------------------------------------------
    t = dns.lookup(wms2, "dl.wmsvendor.example", "A", 70 * SEC)
    flow = TcpFlow(cap, wms2, H["vendor_dl"], 80, t=t + 400, srv_rtt=EXT_RTT["vendor"], gap=240, app="http",
                   description="software download (HTTP GET, ~200 KB): GET retransmitted, one segment "
                               "reordered upstream, last data segment retransmitted")
    flow.connect()
    get = http_request("GET", "/releases/wms-agent/4.12.3/wms-agent-4.12.3-linux-x86_64.tar.gz",
                       "dl.wmsvendor.example", [("User-Agent", "Wget/1.21.3"), ("Accept", "*/*"),
                                                ("Accept-Encoding", "identity"), ("Connection", "Keep-Alive")])
    flow.send(True, get, think=120, lose_last=True)
    blob = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + det_bytes("day:download", 204800 - 10)
    resp = http_response("200 OK", [("Server", "nginx/1.24.0"), ("Content-Type", "application/gzip"),
                                    ("Last-Modified", "Tue, 18 Nov 2025 09:12:44 GMT"),
                                    ("ETag", '"691c3a2c-32000"'), ("Accept-Ranges", "bytes"),
                                    ("Connection", "keep-alive")], blob, http_date(flow.t))
    flow.send(False, resp, think=4 * MS, swap=57, lose_last=True)
    flow.close(by_client=True, think=15 * MS)

    # -- internal backup: rsync daemon push ------------------------------------------------------
    flow = TcpFlow(cap, wms1, H["backup"], 873, t=85 * SEC, srv_rtt=LAN_RTT, gap=14, app="rsync",
                   description="nightly-style rsync push of WMS exports to backup-01 (~300 KB)")
    flow.connect()
    greet = b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n"
    flow.send(False, greet, think=900)
    flow.send(True, greet, think=150)
    flow.send(True, b"wms-exports\n", think=40)
    flow.send(False, b"@RSYNCD: OK\n", think=1200)
    flow.send(True, b"--server\x00-logDtpre.iLsfxCIvu\x00--delete\x00.\x00wms-exports/\x00\x00", think=200)
    flow.send(False, det_bytes("day:rsync:seed", 5), think=800)
    flow.send(True, det_bytes("day:rsync:flist", 2480), think=300)
    flow.send(False, det_bytes("day:rsync:sums", 96), think=2 * MS)
    flow.send(True, det_bytes("day:rsync:data", 300_000), think=400)
    flow.send(False, det_bytes("day:rsync:stats", 61), think=3 * MS)
    flow.send(True, det_bytes("day:rsync:done", 4), think=200)
    flow.close(by_client=True, think=1 * MS)

    # -- label printing ------------------------------------------------------------------------------
    recs = [shipment_record(rng, i) for i in range(6)]
    print_job(cap, wms2, H["prn21"], 100 * SEC, recs[0:2], "ZPL print job: 2 UPS labels to dock01",
              status_query=True)
    print_job(cap, wms2, H["prn22"], 103 * SEC, recs[2:3], "ZPL print job: 1 UPS label to dock02")
    print_job(cap, wms3, H["prn21"], 107 * SEC, recs[3:6], "ZPL print job: 3 UPS labels to dock01")
    TcpFlow(cap, wms2, H["prn23"], 9100, t=110 * SEC, srv_rtt=LAN_RTT, app="zpl", conn_state="S0",
            description="print job to powered-off printer dock03: single unanswered SYN").syn_unanswered()
    return cap


def build_exfil() -> Capture:
    """Night-time bulk upload to Alibaba Cloud OSS plus a periodic small "drip"."""
    cap = Capture("dc-north-exfil.pcap", "exfil",
                  "dc-north night: ~400 KB TLS upload from wms-03 to 47.246.23.17 (Alibaba Cloud OSS) "
                  "followed by six small periodic uploads (drip) to the same host")
    dns = Resolver(cap)
    rng = Rng("exfil")
    wms3, oss = H["wms3"], H["oss"]
    t0 = 10 * 3600 * SEC  # 02:00 UTC the next night

    t = dns.lookup(wms3, EXFIL_NAME, "A", t0)
    tls_session(TcpFlow(cap, wms3, oss, 443, t=t + 350, srv_rtt=EXT_RTT["oss"], gap=290, app="tls",
                        server_name=EXFIL_NAME,
                        description="bulk TLS upload ~400 KB to Alibaba Cloud OSS (suspicious)"),
                "exfil:bulk", EXFIL_NAME, [(401_000, 412, 95 * MS)], cert_size=4100)

    t = t0 + 15 * 60 * SEC
    for i in range(6):
        t += rng.jitter(15 * 60 * SEC, 20 * SEC)
        ta = dns.lookup(wms3, EXFIL_NAME, "A", t)
        tls_session(TcpFlow(cap, wms3, oss, 443, t=ta + 300, srv_rtt=EXT_RTT["oss"] + rng.randint(0, 9) * MS,
                            gap=290, app="tls", server_name=EXFIL_NAME,
                            description=f"drip upload {i + 1}/6 (~6 KB every ~15 min, TLS resumption) "
                                        "to the same OSS host"),
                    f"exfil:drip{i}", EXFIL_NAME, [(rng.randint(5800, 6600), rng.randint(280, 420), 70 * MS)],
                    resume=det_bytes(f"exfil:ticket{i}", 192))
    return cap


def build_ipv6_vlan() -> Capture:
    """One IPv6 flow (with its DNS over IPv6) and one 802.1Q-tagged flow."""
    cap = Capture("dc-north-ipv6-vlan.pcap", "v6vlan",
                  "dc-north: IPv6 TLS from wms-01 (fd00:20:0:1::10) to api.ups.com (2001:db8:153:2::50) "
                  "with its AAAA lookup over IPv6, and an RF scanner HTTP session on VLAN 50")
    dns = Resolver(cap)
    t0 = 2 * 3600 * SEC  # 18:00 UTC
    dns.cache[("api.ups.com", "AAAA")] = t0 + 200 * SEC  # warm cache
    t = dns.lookup(H["wms1_6"], "api.ups.com", "AAAA", t0)
    tls_session(TcpFlow(cap, H["wms1_6"], H["ups_api6"], 443, t=t + 300, srv_rtt=EXT_RTT["ups"] + 3 * MS,
                        gap=110, app="tls", server_name="api.ups.com",
                        description="UPS API over IPv6 (TLS 1.3)"),
                "v6:ups", "api.ups.com", [(1240, 5210, 160 * MS)])
    scanner_session(cap, H["scan21"], H["wms2"], t0 + 30 * SEC, 2, "fin",
                    "RF scanner HTTP session carried on 802.1Q VLAN 50", vlan=50)
    return cap


BUILDERS = [build_day, build_exfil, build_ipv6_vlan]


def generate(out_dir: Path) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests = [builder().write(out_dir) for builder in BUILDERS]
    (out_dir / "site-dc-north.yaml").write_text(SITE_YAML)
    return manifests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output directory (default: the captures/ directory)")
    args = ap.parse_args(argv)
    for m in generate(args.out):
        print(f"{m['capture']}: {m['packet_count']} packets, {len(m['conversations'])} conversations "
              f"(tcp {m['tcp_conversations']}, udp {m['udp_conversations']}, icmp {m['icmp_conversations']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
