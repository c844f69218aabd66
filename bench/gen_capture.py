#!/usr/bin/env python3
"""Fast, deterministic generator of a large synthetic classic pcap.

The capture imitates a busy warehouse LAN segment:

* ``--flows`` TCP connections (default 40,000) whose lifetimes overlap heavily,
  so that tens of thousands of flows are open at the same time.  Every flow has
  a full 3-way handshake (SYN/SYN-ACK carry an MSS option), a variable number of
  data segments / pure ACKs in both directions with consistent seq/ack numbers
  (ISNs are random, so some flows wrap the 32-bit sequence space) and a 4-packet
  FIN teardown.
* UDP DNS request/response pairs (A and AAAA queries, valid messages).
* ~10 % of flows / DNS pairs over IPv6, ~10 % of frames 802.1Q VLAN tagged
  (whole flows are tagged, both directions).
* ~0.5 % of packets are retransmissions of earlier data segments.
* All IPv4 header, TCP and UDP checksums are correct.

Nothing is built per packet in Python: all per-packet fields are numpy arrays,
and the frames are rendered into one byte buffer per chunk with vectorised
fancy-index writes, so 1M packets take a few seconds.

Output: classic pcap, microsecond timestamps, little-endian, DLT_EN10MB.

    python bench/gen_capture.py --packets 1000000 --flows 40000 --out bench/data/large.pcap
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
import time

import numpy as np

# --------------------------------------------------------------------------- #
# constants
# --------------------------------------------------------------------------- #
PCAP_GLOBAL_HDR = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)

TCP_SYN, TCP_FIN, TCP_PSH, TCP_ACK = 0x02, 0x01, 0x08, 0x10

# Server ports with no Wireshark port-registered dissector (checked against
# `tshark -G decodes`, 4.0), so payloads are not parsed as some protocol and
# reported as malformed.  Client ports come from 49152..55999 (minus the two
# ports in that range Wireshark registers), for the same reason.
SERVER_PORTS = np.array([5050, 6100, 7700, 7800, 8181, 8200, 8300, 9100, 9200,
                         9443, 10001, 11000, 12000, 15000], dtype=np.int64)
EPHEMERAL = np.setdiff1d(np.arange(49152, 56000, dtype=np.int64), [49999, 54328])

DNS_FRACTION = 0.05        # share of packets that are DNS (query + response)
RETX_FRACTION = 0.005      # share of packets that are TCP retransmissions
IPV6_FRACTION = 0.10
VLAN_FRACTION = 0.10
VLAN_IDS = np.array([10, 20, 30, 40, 100, 200], dtype=np.int64)
CTRL_PKTS = 7              # SYN, SYN-ACK, ACK, FIN-ACK, ACK, FIN-ACK, ACK
MSS = 1460

PAYLOAD_PATTERN = np.frombuffer(
    b"inspector-bench payload: pallet=000123 sku=ABC-4411 qty=0042 loc=A07-R3-L2 "
    b"status=PICKED scanner=HH-0917 ts=2024-01-01T00:00:00Z | ", dtype=np.uint8)

# DNS name "\x09hostNNNNN\x09warehouse\x05local\x00" (27 bytes, digits vary)
QNAME = b"\x09host00000\x09warehouse\x05local\x00"
QNAME_DIGITS_OFF = 5       # offset of the 5 digits inside QNAME
DNS_SERVERS_V4 = np.array([0x0A000035, 0x0A000135], dtype=np.int64)  # 10.0.0.53, 10.0.1.53


# --------------------------------------------------------------------------- #
# byte-level helpers
# --------------------------------------------------------------------------- #
def put_be(buf, pos, val, nbytes):
    """Write integer array ``val`` big-endian, ``nbytes`` wide, at ``pos``."""
    val = np.asarray(val, dtype=np.uint64)
    for k in range(nbytes):
        shift = np.uint64(8 * (nbytes - 1 - k))
        buf[pos + k] = (val >> shift).astype(np.uint8) if shift else val.astype(np.uint8)


def put_le(buf, pos, val, nbytes):
    val = np.asarray(val, dtype=np.uint64)
    for k in range(nbytes):
        buf[pos + k] = (val >> np.uint64(8 * k)).astype(np.uint8)


def put_const(buf, pos, const: bytes):
    """Write the same byte string at every position in ``pos`` (one fancy op)."""
    if len(pos) == 0:
        return
    tpl = np.frombuffer(const, dtype=np.uint8)
    buf[pos[:, None] + np.arange(len(tpl))] = tpl


class PrefixSums:
    """Prefix sums of the even- and odd-addressed bytes of ``buf``.

    Lets us compute the 16-bit one's-complement sum of any byte range of the
    buffer in O(1) per range, vectorised over all packets.
    """

    def __init__(self, buf):
        # uint32 prefix sums wrap around, but differences over short ranges
        # (< 16M bytes) are still exact in modular arithmetic.
        self.ce = self._prefix(buf[0::2])
        self.co = self._prefix(buf[1::2])

    @staticmethod
    def _prefix(x):
        out = np.empty(len(x) + 1, dtype=np.uint32)
        out[0] = 0
        np.cumsum(x, dtype=np.uint32, out=out[1:])
        return out

    def sum16(self, s, e):
        """Sum of big-endian 16-bit words of buf[s:e] (odd tail zero padded)."""
        se = (self.ce[(e + 1) // 2] - self.ce[(s + 1) // 2]).astype(np.int64)  # even addresses
        so = (self.co[e // 2] - self.co[s // 2]).astype(np.int64)              # odd addresses
        even_start = (s & 1) == 0
        hi = np.where(even_start, se, so)
        lo = np.where(even_start, so, se)
        return hi * 256 + lo


def fold_csum(x):
    x = np.asarray(x, dtype=np.int64)
    for _ in range(4):
        x = (x & 0xFFFF) + (x >> 16)
    return (~x) & 0xFFFF


# --------------------------------------------------------------------------- #
# packet table
# --------------------------------------------------------------------------- #
def build_table(n_packets: int, n_flows: int, seed: int, duration: float):
    """Return a dict of per-packet numpy arrays, sorted by timestamp."""
    rng = np.random.default_rng(seed)

    n_dns_pairs = int(round(n_packets * DNS_FRACTION / 2))
    n_retx = int(round(n_packets * RETX_FRACTION))
    n_tcp = n_packets - 2 * n_dns_pairs - n_retx
    min_per_flow = CTRL_PKTS + 1
    if n_tcp < min_per_flow * n_flows:
        new_flows = max(1, n_tcp // min_per_flow)
        print(f"note: {n_packets} packets too few for {n_flows} flows; using {new_flows} flows",
              file=sys.stderr)
        n_flows = new_flows
    if n_tcp < min_per_flow:
        raise SystemExit("--packets too small (need at least ~20)")
    F = n_flows

    # ---------------- per-flow attributes ----------------
    # data packets per flow: heavy-tailed (lognormal) split of the budget
    w = rng.lognormal(mean=0.0, sigma=1.0, size=F)
    n_data = 1 + rng.multinomial(n_tcp - min_per_flow * F, w / w.sum())
    # Leftover packets from rounding go to the first flow (multinomial is exact).
    npk = CTRL_PKTS + n_data
    assert npk.sum() == n_tcp

    n_clients = int(min(60000, max(256, F // 20)))
    n_servers = 64
    perm = rng.permutation(F)
    client = perm % n_clients
    rank = perm // n_clients
    if rank.max() >= len(EPHEMERAL):
        raise SystemExit("too many flows per client for the ephemeral port pool")
    cport = EPHEMERAL[(client * 131 + rank) % len(EPHEMERAL)]
    server = rng.integers(0, n_servers, F)
    sport_srv = SERVER_PORTS[rng.integers(0, len(SERVER_PORTS), F)]
    is6 = rng.random(F) < IPV6_FRACTION
    vlan = np.where(rng.random(F) < VLAN_FRACTION, VLAN_IDS[rng.integers(0, len(VLAN_IDS), F)], 0)
    isn_c = rng.integers(0, 2**32, F, dtype=np.int64)
    isn_s = rng.integers(0, 2**32, F, dtype=np.int64)
    win_c = np.array([64240, 65535, 29200, 8192], dtype=np.int64)[rng.integers(0, 4, F)]
    win_s = np.array([65160, 65535, 28960, 14600], dtype=np.int64)[rng.integers(0, 4, F)]
    rtt_us = rng.uniform(200, 20000, F)
    # long, overlapping lifetimes -> tens of thousands of concurrent flows
    t0 = rng.uniform(0, 0.45 * duration, F)
    life = rng.uniform(0.2 * duration, 0.5 * duration, F)

    # ---------------- per-packet (TCP) ----------------
    fidx = np.repeat(np.arange(F), npk)
    fstart = np.concatenate(([0], np.cumsum(npk)[:-1]))
    pos = np.arange(n_tcp) - fstart[fidx]
    last = npk[fidx] - 1
    # direction: 0 = client->server, 1 = server->client
    d = np.zeros(n_tcp, dtype=np.int64)
    flags = np.full(n_tcp, TCP_ACK, dtype=np.int64)
    plen = np.zeros(n_tcp, dtype=np.int64)
    is_data = (pos >= 3) & (pos <= last - 4)
    nd = int(is_data.sum())
    dd = (rng.random(nd) < 0.55).astype(np.int64)
    first_data = pos == 3
    dd[first_data[is_data]] = 0                       # first data segment: request
    c2s = rng.integers(16, 513, nd)
    c2s[rng.random(nd) < 0.3] = 0                     # pure ACKs
    s2c = rng.integers(16, MSS + 1, nd)
    r = rng.random(nd)
    s2c[r < 0.30] = MSS
    s2c[r > 0.85] = 0
    pl = np.where(dd == 0, c2s, s2c)
    pl[first_data[is_data] & (pl == 0)] = 64
    d[is_data] = dd
    plen[is_data] = pl
    # A pure ACK must acknowledge new data, otherwise it is a duplicate ACK:
    # give it a payload if the previous packet of the flow is not peer data.
    prev_d = np.concatenate(([0], d[:-1]))
    prev_len = np.concatenate(([0], plen[:-1]))
    fix = is_data & (plen == 0) & ((prev_d == d) | (prev_len == 0))
    plen[fix] = rng.integers(16, 513, int(fix.sum()))
    flags[is_data] = np.where(plen[is_data] > 0, TCP_ACK | TCP_PSH, TCP_ACK)
    # handshake / teardown
    flags[pos == 0] = TCP_SYN
    flags[pos == 1] = TCP_SYN | TCP_ACK
    d[pos == 1] = 1
    td = pos - (last - 3)                             # 0..3 in the teardown
    flags[td == 0] = TCP_FIN | TCP_ACK
    d[td == 1] = 1
    d[td == 2] = 1
    flags[td == 2] = TCP_FIN | TCP_ACK

    # seq / ack: exclusive per-direction cumulative sums of consumed sequence space
    consumed = plen + ((flags & (TCP_SYN | TCP_FIN)) != 0)
    c0 = np.where(d == 0, consumed, 0)
    c1 = np.where(d == 1, consumed, 0)
    cum0 = np.cumsum(c0) - c0
    cum1 = np.cumsum(c1) - c1
    cum0 -= cum0[fstart][fidx]
    cum1 -= cum1[fstart][fidx]
    mod = 2**32
    seq = np.where(d == 0, isn_c[fidx] + cum0, isn_s[fidx] + cum1) % mod
    ack = np.where(d == 0, isn_s[fidx] + cum1, isn_c[fidx] + cum0) % mod
    ack[pos == 0] = 0

    # timestamps (integer microseconds, strictly increasing within a flow)
    gap = rng.exponential(1.0, n_tcp)
    gap[pos < 3] = 0.0
    gsum = np.bincount(fidx, weights=gap, minlength=F)
    gap = gap * (life / gsum)[fidx]
    rt = rtt_us[fidx]
    gap[pos == 1] = rt[pos == 1] / 1e6
    gap[pos == 2] = rt[pos == 2] / 20e6
    gap[td == 1] = rt[td == 1] / 2e6                  # ACK of FIN follows quickly
    gap_us = np.maximum(np.rint(gap * 1e6).astype(np.int64), 1)
    gap_us[pos == 0] = 0
    cg = np.cumsum(gap_us)
    ts = np.rint(t0 * 1e6).astype(np.int64)[fidx] + cg - cg[fstart][fidx]

    mss_opt = pos < 2                                 # SYN and SYN-ACK carry MSS
    win = np.where(d == 0, win_c[fidx], win_s[fidx])

    # ---------------- retransmissions ----------------
    data_idx = np.flatnonzero(plen > 0)
    rx = np.sort(rng.choice(data_idx, size=min(n_retx, len(data_idx)), replace=False))
    rx_ts = ts[rx] + np.maximum((ts[rx + 1] - ts[rx]) // 2, 1)

    def tcp_take(a, extra):
        return np.concatenate((a, extra))

    tcp = dict(
        ts=tcp_take(ts, rx_ts),
        order=tcp_take(np.arange(n_tcp, dtype=np.float64), rx + 0.5),
        flow=tcp_take(fidx, fidx[rx]),
        d=tcp_take(d, d[rx]),
        flags=tcp_take(flags, flags[rx]),
        plen=tcp_take(plen, plen[rx]),
        seq=tcp_take(seq, seq[rx]),
        ack=tcp_take(ack, ack[rx]),
        win=tcp_take(win, win[rx]),
        mss=tcp_take(mss_opt, mss_opt[rx]),
    )
    n_tcp_all = len(tcp["ts"])
    f = tcp["flow"]
    dir_ = tcp["d"]
    cli_is_src = dir_ == 0

    # ---------------- assemble common per-packet columns ----------------
    # Host ids: clients 0..n_clients-1, servers 100000+, DNS servers 200000+
    c_host = client[f]
    s_host = 100000 + server[f]
    src_host = np.where(cli_is_src, c_host, s_host)
    dst_host = np.where(cli_is_src, s_host, c_host)
    src_port = np.where(cli_is_src, cport[f], sport_srv[f])
    dst_port = np.where(cli_is_src, sport_srv[f], cport[f])
    ttl = np.where(cli_is_src, 64, 128)

    # ---------------- DNS ----------------
    n_q = n_dns_pairs
    q_client = rng.integers(0, n_clients, n_q)
    q_srv = rng.integers(0, len(DNS_SERVERS_V4), n_q)
    q_port = EPHEMERAL[rng.integers(0, len(EPHEMERAL), n_q)]
    q_id = rng.integers(0, 65536, n_q)
    q_name = rng.integers(0, 100000, n_q)
    q_aaaa = rng.random(n_q) < 0.2
    q_is6 = rng.random(n_q) < IPV6_FRACTION
    q_vlan = np.where(rng.random(n_q) < VLAN_FRACTION, VLAN_IDS[rng.integers(0, len(VLAN_IDS), n_q)], 0)
    q_ts = rng.integers(0, int(duration * 1e6), n_q)
    r_ts = q_ts + rng.integers(200, 50000, n_q)
    q_ttl = rng.integers(30, 3600, n_q)
    q_ans = rng.integers(0, 2**32, n_q, dtype=np.int64)   # answer address seed

    def dup(a):
        return np.concatenate((a, a))

    dns_resp = np.concatenate((np.zeros(n_q, bool), np.ones(n_q, bool)))
    dc_host = dup(q_client)
    ds_host = 200000 + dup(q_srv)
    dns = dict(
        ts=np.concatenate((q_ts, r_ts)),
        src_host=np.where(dns_resp, ds_host, dc_host),
        dst_host=np.where(dns_resp, dc_host, ds_host),
        src_port=np.where(dns_resp, 53, dup(q_port)),
        dst_port=np.where(dns_resp, dup(q_port), 53),
        ttl=np.where(dns_resp, 64, 64),
        is6=dup(q_is6), vlan=dup(q_vlan),
        dns_resp=dns_resp, dns_id=dup(q_id), dns_name=dup(q_name),
        dns_aaaa=dup(q_aaaa), dns_ttl=dup(q_ttl), dns_ans=dup(q_ans),
    )
    # DNS payload length: 12 hdr + 27 qname + 4 qtype/qclass [+ 12 answer hdr + rdata]
    dns["plen"] = 43 + np.where(dns["dns_resp"], 12 + np.where(dns["dns_aaaa"], 16, 4), 0)

    # ---------------- merge & sort ----------------
    n_all = n_tcp_all + 2 * n_q
    T = {}
    T["ts"] = np.concatenate((tcp["ts"], dns["ts"]))
    order = np.concatenate((tcp["order"], n_tcp + np.arange(2 * n_q, dtype=np.float64)))
    T["is_udp"] = np.concatenate((np.zeros(n_tcp_all, bool), np.ones(2 * n_q, bool)))
    T["src_host"] = np.concatenate((src_host, dns["src_host"]))
    T["dst_host"] = np.concatenate((dst_host, dns["dst_host"]))
    T["src_port"] = np.concatenate((src_port, dns["src_port"]))
    T["dst_port"] = np.concatenate((dst_port, dns["dst_port"]))
    T["ttl"] = np.concatenate((ttl, dns["ttl"]))
    T["is6"] = np.concatenate((is6[f], dns["is6"]))
    T["vlan"] = np.concatenate((vlan[f], dns["vlan"]))
    T["plen"] = np.concatenate((tcp["plen"], dns["plen"]))
    zt = np.zeros(n_tcp_all, dtype=np.int64)
    zu = np.zeros(2 * n_q, dtype=np.int64)
    for k in ("flags", "seq", "ack", "win"):
        T[k] = np.concatenate((tcp[k], zu))
    T["mss"] = np.concatenate((tcp["mss"], np.zeros(2 * n_q, bool)))
    for k in ("dns_resp", "dns_aaaa"):
        T[k] = np.concatenate((np.zeros(n_tcp_all, bool), dns[k]))
    for k in ("dns_id", "dns_name", "dns_ttl", "dns_ans"):
        T[k] = np.concatenate((zt, dns[k]))
    T["ipid"] = rng.integers(0, 65536, n_all)
    T["flowlabel"] = rng.integers(0, 1 << 20, n_all)

    perm = np.lexsort((order, T["ts"]))
    for k in T:
        T[k] = T[k][perm]
    assert len(T["ts"]) == n_packets, (len(T["ts"]), n_packets)

    stats = dict(
        packets=n_all, tcp_flows=F, tcp_packets=n_tcp_all, retransmissions=len(rx),
        dns_pairs=n_q, udp_packets=2 * n_q,
        ipv6_packets=int(T["is6"].sum()), vlan_packets=int((T["vlan"] > 0).sum()),
        clients=n_clients, servers=n_servers,
        max_concurrent_flows=max_concurrent(ts[fstart], ts[fstart + npk - 1]),
        duration_s=(T["ts"][-1] - T["ts"][0]) / 1e6,
    )
    return T, stats


def max_concurrent(start, end):
    ev = np.concatenate((start, end))
    delta = np.concatenate((np.ones_like(start), -np.ones_like(end)))
    o = np.lexsort((delta, ev))
    return int(np.cumsum(delta[o]).max())


# --------------------------------------------------------------------------- #
# rendering
# --------------------------------------------------------------------------- #
def host_mac(h):
    return np.int64(0x020000000000) + h.astype(np.int64)


def ipv4_addr(h):
    h = h.astype(np.int64)
    cli = 0x0A140000 + ((h // 250) << 8) + (h % 250) + 2          # 10.20.x.y
    srv = 0x0A010000 + (((h - 100000) // 200) << 8) + (h - 100000) % 200 + 10  # 10.1.x.y
    dnss = DNS_SERVERS_V4[np.clip(h - 200000, 0, len(DNS_SERVERS_V4) - 1)]
    return np.where(h >= 200000, dnss, np.where(h >= 100000, srv, cli))


def ipv6_addr(h):
    """(hi64, lo64) of fd00:0:0:<net>::<host>."""
    h = h.astype(np.int64)
    hi = np.where(h >= 200000, 0xFD00000000000053,
                  np.where(h >= 100000, 0xFD00000000000001, 0xFD00000000000020)).astype(np.uint64)
    lo = np.where(h >= 200000, 0x53 + (h - 200000),
                  np.where(h >= 100000, 0x10 + (h - 100000), 0x100 + h)).astype(np.uint64)
    return hi, lo


def render_chunk(T, a, b, pattern_cache):
    """Render packets a..b-1 of table T to a bytes-like numpy buffer."""
    sl = slice(a, b)
    n = b - a
    is6 = T["is6"][sl]
    vl = T["vlan"][sl] > 0
    udp = T["is_udp"][sl]
    mss = T["mss"][sl]
    plen = T["plen"][sl]
    eth_len = np.where(vl, 18, 14)
    ip_len = np.where(is6, 40, 20)
    l4_len = np.where(udp, 8, np.where(mss, 24, 20))
    cap = eth_len + ip_len + l4_len + plen
    rec = 16 + cap
    roff = np.concatenate(([0], np.cumsum(rec)[:-1]))
    total = int(rec.sum())

    # fill with payload text; headers are written over it below
    reps = total // len(PAYLOAD_PATTERN) + 1
    if pattern_cache.get("n", 0) < reps:
        pattern_cache["buf"] = np.tile(PAYLOAD_PATTERN, reps)
        pattern_cache["n"] = reps
    buf = pattern_cache["buf"][:total].copy()

    # pcap record header
    ts = T["ts"][sl] + 1_700_000_000_000_000       # epoch offset (Nov 2023)
    put_le(buf, roff, ts // 1_000_000, 4)
    put_le(buf, roff + 4, ts % 1_000_000, 4)
    put_le(buf, roff + 8, cap, 4)
    put_le(buf, roff + 12, cap, 4)

    # Ethernet (+ 802.1Q)
    e = roff + 16
    src_h = T["src_host"][sl]
    dst_h = T["dst_host"][sl]
    put_be(buf, e, host_mac(dst_h), 6)
    put_be(buf, e + 6, host_mac(src_h), 6)
    ethertype = np.where(is6, 0x86DD, 0x0800)
    iv = np.flatnonzero(vl)
    put_const(buf, e[iv] + 12, b"\x81\x00")
    put_be(buf, e[iv] + 14, T["vlan"][sl][iv], 2)            # PCP 0, DEI 0, VID
    put_be(buf, e + eth_len - 2, ethertype, 2)

    ip = e + eth_len
    l4 = ip + ip_len
    l4tot = l4_len + plen
    proto = np.where(udp, 17, 6)
    ttl = T["ttl"][sl]

    # IPv4
    i4 = np.flatnonzero(~is6)
    p = ip[i4]
    put_const(buf, p, b"\x45\x00")
    put_be(buf, p + 2, 20 + l4tot[i4], 2)
    put_be(buf, p + 4, T["ipid"][sl][i4], 2)
    put_const(buf, p + 6, b"\x40\x00")                       # DF
    put_be(buf, p + 8, ttl[i4], 1)
    put_be(buf, p + 9, proto[i4], 1)
    put_const(buf, p + 10, b"\x00\x00")
    put_be(buf, p + 12, ipv4_addr(src_h[i4]), 4)
    put_be(buf, p + 16, ipv4_addr(dst_h[i4]), 4)

    # IPv6
    i6 = np.flatnonzero(is6)
    p = ip[i6]
    put_be(buf, p, 0x60000000 | T["flowlabel"][sl][i6], 4)
    put_be(buf, p + 4, l4tot[i6], 2)
    put_be(buf, p + 6, proto[i6], 1)
    put_be(buf, p + 7, ttl[i6], 1)
    hi, lo = ipv6_addr(src_h[i6])
    put_be(buf, p + 8, hi, 8)
    put_be(buf, p + 16, lo, 8)
    hi, lo = ipv6_addr(dst_h[i6])
    put_be(buf, p + 24, hi, 8)
    put_be(buf, p + 32, lo, 8)

    # ports (same place for TCP and UDP)
    put_be(buf, l4, T["src_port"][sl], 2)
    put_be(buf, l4 + 2, T["dst_port"][sl], 2)

    # TCP
    it = np.flatnonzero(~udp)
    p = l4[it]
    put_be(buf, p + 4, T["seq"][sl][it], 4)
    put_be(buf, p + 8, T["ack"][sl][it], 4)
    put_be(buf, p + 12, np.where(mss[it], 0x60, 0x50), 1)
    put_be(buf, p + 13, T["flags"][sl][it], 1)
    put_be(buf, p + 14, T["win"][sl][it], 2)
    put_const(buf, p + 16, b"\x00\x00\x00\x00")              # checksum, urgent
    im = it[mss[it]]
    put_const(buf, l4[im] + 20, b"\x02\x04" + MSS.to_bytes(2, "big"))

    # UDP / DNS
    iu = np.flatnonzero(udp)
    p = l4[iu]
    put_be(buf, p + 4, l4tot[iu], 2)
    put_const(buf, p + 6, b"\x00\x00")
    dq = p + 8                                               # DNS message
    resp = T["dns_resp"][sl][iu]
    aaaa = T["dns_aaaa"][sl][iu]
    put_be(buf, dq, T["dns_id"][sl][iu], 2)
    put_be(buf, dq + 2, np.where(resp, 0x8180, 0x0100), 2)
    put_const(buf, dq + 4, b"\x00\x01")
    put_be(buf, dq + 6, resp.astype(np.int64), 2)            # ANCOUNT
    put_const(buf, dq + 8, b"\x00\x00\x00\x00")
    put_const(buf, dq + 12, QNAME)
    name = T["dns_name"][sl][iu]
    for k in range(5):
        put_be(buf, dq + 12 + QNAME_DIGITS_OFF + k, 48 + (name // 10 ** (4 - k)) % 10, 1)
    qtype = np.where(aaaa, 28, 1)
    put_be(buf, dq + 39, qtype, 2)
    put_const(buf, dq + 41, b"\x00\x01")
    ir = np.flatnonzero(resp)
    an = dq[ir] + 43
    put_const(buf, an, b"\xc0\x0c")
    put_be(buf, an + 2, qtype[ir], 2)
    put_const(buf, an + 4, b"\x00\x01")
    put_be(buf, an + 6, T["dns_ttl"][sl][iu][ir], 4)
    ans = T["dns_ans"][sl][iu][ir]
    i4a = np.flatnonzero(~aaaa[ir])
    put_const(buf, an[i4a] + 10, b"\x00\x04")
    put_be(buf, an[i4a] + 12, 0x0A000000 | (ans[i4a] & 0xFFFFFF), 4)   # 10.x.y.z
    i6a = np.flatnonzero(aaaa[ir])
    put_const(buf, an[i6a] + 10, b"\x00\x10")
    put_be(buf, an[i6a] + 12, np.full(len(i6a), 0xFD000000000000AA, dtype=np.uint64), 8)
    put_be(buf, an[i6a] + 20, ans[i6a], 8)

    # checksums
    ps = PrefixSums(buf)
    # IPv4 header
    c = fold_csum(ps.sum16(ip[i4], ip[i4] + 20))
    put_be(buf, ip[i4] + 10, c, 2)
    # TCP / UDP, with pseudo header (addresses are contiguous in both IP versions)
    a_off = np.where(is6, 8, 12)
    a_len = np.where(is6, 32, 8)
    pseudo = ps.sum16(ip + a_off, ip + a_off + a_len) + proto + l4tot
    c = fold_csum(ps.sum16(l4, l4 + l4tot) + pseudo)
    c = np.where(udp & (c == 0), 0xFFFF, c)
    csum_off = np.where(udp, 6, 16)
    put_be(buf, l4 + csum_off, c, 2)
    return buf


def generate(out, n_packets=1_000_000, n_flows=40_000, seed=1, duration=300.0,
             chunk=100_000, verbose=True):
    t_start = time.perf_counter()
    T, stats = build_table(n_packets, n_flows, seed, duration)
    t_table = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = out + ".tmp"
    cache = {}
    with open(tmp, "wb") as fh:
        fh.write(PCAP_GLOBAL_HDR)
        for a in range(0, n_packets, chunk):
            b = min(n_packets, a + chunk)
            fh.write(render_chunk(T, a, b, cache).data)
    os.replace(tmp, out)
    t_end = time.perf_counter()
    stats["file_bytes"] = os.path.getsize(out)
    stats["seconds"] = round(t_end - t_start, 3)
    stats["seconds_table"] = round(t_table - t_start, 3)
    if verbose:
        mb = stats["file_bytes"] / 1e6
        print(f"wrote {out}: {mb:.1f} MB, {stats['packets']:,} packets in {stats['seconds']:.1f} s "
              f"({stats['packets'] / stats['seconds']:,.0f} pkt/s)")
        print(f"  tcp: {stats['tcp_flows']:,} flows, {stats['tcp_packets']:,} packets "
              f"({stats['retransmissions']:,} retransmissions), max {stats['max_concurrent_flows']:,} "
              f"concurrent flows")
        print(f"  udp/dns: {stats['dns_pairs']:,} query/response pairs ({stats['udp_packets']:,} packets)")
        print(f"  ipv6: {stats['ipv6_packets']:,} packets, 802.1Q: {stats['vlan_packets']:,} packets, "
              f"span {stats['duration_s']:.1f} s, {stats['clients']:,} clients, {stats['servers']} servers")
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000, help="total packets (default 1,000,000)")
    ap.add_argument("--flows", type=int, default=40_000, help="TCP flows (default 40,000)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "data", "large.pcap"),
                    help="output pcap (default bench/data/large.pcap)")
    ap.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    ap.add_argument("--duration", type=float, default=300.0,
                    help="approximate capture span in seconds (default 300)")
    args = ap.parse_args(argv)
    if args.packets < 20 or args.flows < 1:
        ap.error("need --packets >= 20 and --flows >= 1")
    generate(args.out, args.packets, args.flows, args.seed, args.duration)


if __name__ == "__main__":
    main()
