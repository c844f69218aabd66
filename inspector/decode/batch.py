"""Columnar decode of packet batches.

The fast path decodes the common case for a whole batch at once with numpy
fancy indexing: Ethernet (up to two VLAN tags), Linux SLL/SLL2, raw IP, NULL/LOOP;
unfragmented IPv4 and IPv6 without extension headers; TCP, UDP (not a tunnel
port), ICMP/ICMPv6.  Every other frame goes to ``SlowDecoder`` one at a time and
the rows are merged back in frame order.  Both paths produce the same row
columns; ``tests/test_engines.py`` and ``tests/test_decode.py`` check they agree packet for packet.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..ingest import PacketBatch
from .fastpath import fast_path
from ..community_id import ICMP4_COUNTERPART, ICMP6_COUNTERPART
from .slow import SlowDecoder, UDP_TUNNEL_PORTS

_TUNNEL_PORTS = np.array(sorted(UDP_TUNNEL_PORTS), dtype=np.int64)
_V4_LO_PREFIX = np.uint64(0x0000FFFF00000000)


def _cp_table(d: dict) -> np.ndarray:
    t = np.full(256, -1, dtype=np.int64)
    for k, v in d.items():
        t[k] = v
    return t


_CP4 = _cp_table(ICMP4_COUNTERPART)
_CP6 = _cp_table(ICMP6_COUNTERPART)

COLUMNS = ("frame", "ts", "ver", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "sport", "dport",
           "flags", "seq", "ack", "win", "ip_len", "pay_len", "wire_len", "vlan", "inner_vlan",
           "pay_off", "pay_cap")
_DTYPES = {"frame": np.int64, "ts": np.float64, "ver": np.int8, "src_hi": np.uint64, "src_lo": np.uint64,
           "dst_hi": np.uint64, "dst_lo": np.uint64, "proto": np.int16, "sport": np.int32, "dport": np.int32,
           "flags": np.int16, "seq": np.int64, "ack": np.int64, "win": np.int32, "ip_len": np.int64,
           "pay_len": np.int64, "wire_len": np.int64, "vlan": np.int32, "inner_vlan": np.int32,
           "pay_off": np.int64, "pay_cap": np.int64}


@dataclass
class DecodedBatch:
    """Rows (one per IP packet feeding the flow table) as numpy columns."""
    cols: dict
    buf: bytes
    payloads: dict = field(default_factory=dict)   # row -> bytes (per-packet path rows)
    tunnels: dict = field(default_factory=dict)    # row -> (kind, parent): parent is a row index or a key tuple
    outcomes: Counter = field(default_factory=Counter)
    weirds: list = field(default_factory=list)     # (ts, name, detail, row or -1)
    syn_options: dict = field(default_factory=dict)  # row -> TCP SYN option bytes (per-packet path rows)

    def __len__(self) -> int:
        return len(self.cols["frame"])

    def payload(self, i: int) -> bytes:
        """Captured payload bytes of row i."""
        if i in self.payloads:
            return self.payloads[i]
        o = int(self.cols["pay_off"][i])
        return self.buf[o:o + int(self.cols["pay_cap"][i])]


class Decoder:
    """Stateful (fragment reassembly) decoder from PacketBatch to DecodedBatch."""

    def __init__(self, frag_timeout: float = 60.0, fast: bool = True, impl: str = "numba"):
        """``fast``: take the common case on a columnar path (else everything goes per packet);
        ``impl``: "numba" (compiled loop, the default) or "numpy" (the readable specification)."""
        self.slow = SlowDecoder(frag_timeout=frag_timeout)
        self.fast = fast
        self.impl = impl

    def flush(self, now: float) -> list:
        self.slow.frags.flush(now)
        return self._drain_frag_weirds()

    def _drain_frag_weirds(self) -> list:
        out = [(ts, name, detail, -1) for ts, name, detail in self.slow.frags.weirds]
        self.slow.frags.weirds.clear()
        return out

    def decode(self, batch: PacketBatch) -> DecodedBatch:
        n = len(batch)
        arr = np.frombuffer(batch.buf, dtype=np.uint8)
        if self.fast and n:
            if self.impl == "numba":
                fcols, fast_mask = fast_path(arr, batch, _CP4, _CP6)
            else:
                fcols, fast_mask = _fast_path(arr, batch)
        else:
            fcols, fast_mask = None, np.zeros(n, dtype=bool)
        outcomes: Counter = Counter()
        nfast = int(fast_mask.sum())
        if nfast:
            outcomes["decoded"] += nfast
        # Per-packet path for the rest.
        slow_idx = np.nonzero(~fast_mask)[0]
        srows: list = []
        sframe_base: dict[int, int] = {}
        weirds: list = []
        tun_specs: list = []  # (pre-sort position, kind, spec)
        buf = batch.buf
        offs = batch.offset
        caps = batch.caplen
        wires = batch.wirelen
        lts = batch.linktype
        tss = batch.ts
        dec = self.slow.decode
        for i in slow_idx.tolist():
            ts = float(tss[i])
            outcome, rows, ws = dec(buf, int(offs[i]), int(caps[i]), int(wires[i]), int(lts[i]), ts, i)
            outcomes[outcome] += 1
            base = len(srows)
            sframe_base[i] = base
            for r in rows:
                if r.tunnel is not None:
                    tun_specs.append((len(srows), r.tunnel))
                srows.append(r)
            first_row = base if rows else -1
            for name, detail in ws:
                weirds.append((ts, name, detail, first_row))  # row index fixed up below
        frag_weirds = self._drain_frag_weirds()

        # Assemble columns: fast rows then slow rows, then order by frame.
        nslow = len(srows)
        if nslow:
            scols = _rows_to_cols(srows)
            scols["ts"] = tss[scols["frame"]] if len(scols["frame"]) else np.zeros(0)
            if fcols is not None and nfast:
                cols = {c: np.concatenate([fcols[c], scols[c]]) for c in COLUMNS}
            else:
                cols = scols
            sub = np.concatenate([np.zeros(nfast, dtype=np.int64), _sub_index(scols["frame"])])
            order = np.lexsort((sub, cols["frame"]))
            cols = {c: v[order] for c, v in cols.items()}
            inv = np.empty(len(order), dtype=np.int64)
            inv[order] = np.arange(len(order))
            payloads = {int(inv[nfast + j]): srows[j].payload for j in range(nslow)}
            syn_options = {int(inv[nfast + j]): srows[j].syn_options for j in range(nslow)
                           if srows[j].syn_options is not None}
            tunnels = {}
            for pre, spec in tun_specs:
                kind_of = spec[0]
                if kind_of == "row":
                    frame = srows[pre].frame
                    parent_pre = nfast + sframe_base[frame] + spec[1]
                    tunnels[int(inv[nfast + pre])] = (spec[2], int(inv[parent_pre]))
                else:
                    tunnels[int(inv[nfast + pre])] = (spec[2], spec[1])
            fixed = []
            for ts, name, detail, r in weirds:
                fixed.append((ts, name, detail, int(inv[nfast + r]) if r >= 0 else -1))
            weirds = fixed
        else:
            cols = fcols if fcols is not None else _rows_to_cols([])
            if fcols is not None and nfast:
                cols = {c: v for c, v in fcols.items()}
            payloads = {}
            syn_options = {}
            tunnels = {}
        return DecodedBatch(cols=cols, buf=batch.buf, payloads=payloads, tunnels=tunnels, outcomes=outcomes,
                            weirds=weirds + frag_weirds, syn_options=syn_options)


def _sub_index(frames: np.ndarray) -> np.ndarray:
    """Position of each row among the rows of its frame (rows of a frame are contiguous)."""
    n = len(frames)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, frames[1:] != frames[:-1]]
    idx = np.arange(n)
    start_pos = np.maximum.accumulate(np.where(starts, idx, 0))
    return idx - start_pos


def _rows_to_cols(rows: list) -> dict:
    n = len(rows)
    cols = {}
    if n == 0:
        return {c: np.zeros(0, dtype=_DTYPES[c]) for c in COLUMNS}
    cols["frame"] = np.fromiter((r.frame for r in rows), dtype=np.int64, count=n)
    cols["ts"] = np.zeros(n)
    cols["ver"] = np.fromiter((r.ver for r in rows), dtype=np.int8, count=n)
    src = np.frombuffer(b"".join(r.src for r in rows), dtype=">u8").reshape(n, 2)
    dst = np.frombuffer(b"".join(r.dst for r in rows), dtype=">u8").reshape(n, 2)
    cols["src_hi"] = src[:, 0].astype(np.uint64)
    cols["src_lo"] = src[:, 1].astype(np.uint64)
    cols["dst_hi"] = dst[:, 0].astype(np.uint64)
    cols["dst_lo"] = dst[:, 1].astype(np.uint64)
    for name, dt in (("proto", np.int16), ("sport", np.int32), ("dport", np.int32), ("flags", np.int16),
                     ("seq", np.int64), ("ack", np.int64), ("win", np.int32), ("ip_len", np.int64),
                     ("pay_len", np.int64), ("wire_len", np.int64), ("vlan", np.int32),
                     ("inner_vlan", np.int32)):
        cols[name] = np.fromiter((getattr(r, name) for r in rows), dtype=dt, count=n)
    cols["pay_off"] = np.full(n, -1, dtype=np.int64)
    cols["pay_cap"] = np.fromiter((len(r.payload) for r in rows), dtype=np.int64, count=n)
    return cols


def _fast_path(arr: np.ndarray, batch: PacketBatch):
    """Vectorised decode of the common case.  Returns (cols, mask of frames taken)."""
    n = len(batch)
    off = batch.offset
    end = off + batch.caplen
    lt = batch.linktype

    def u8(pos):
        return arr[pos].astype(np.int64)

    def u16(pos):
        return (arr[pos].astype(np.int64) << 8) | arr[pos + 1]

    def u32(pos):
        return (u16(pos) << 16) | u16(pos + 2)

    l3 = np.full(n, -1, dtype=np.int64)
    ver = np.zeros(n, dtype=np.int64)
    vlan = np.full(n, -1, dtype=np.int32)
    ivlan = np.full(n, -1, dtype=np.int32)

    def set_by_ethertype(idx, et, p):
        m4 = et == 0x0800
        m6 = et == 0x86DD
        l3[idx[m4]] = p[m4]
        ver[idx[m4]] = 4
        l3[idx[m6]] = p[m6]
        ver[idx[m6]] = 6

    # Ethernet with up to two VLAN tags.
    e = np.nonzero((lt == 1) & (batch.caplen >= 14))[0]
    if len(e):
        et = u16(off[e] + 12)
        p = off[e] + 14
        for tag in range(2):
            m = ((et == 0x8100) | (et == 0x88A8) | (et == 0x9100)) & (end[e] - p >= 4)
            if not m.any():
                break
            vid = (u16(p[m]) & 0x0FFF).astype(np.int32)
            if tag == 0:
                vlan[e[m]] = vid
            else:
                ivlan[e[m]] = vid
            et[m] = u16(p[m] + 2)
            p[m] += 4
        set_by_ethertype(e, et, p)
    # Linux cooked captures.
    s = np.nonzero((lt == 113) & (batch.caplen >= 16))[0]
    if len(s):
        set_by_ethertype(s, u16(off[s] + 14), off[s] + 16)
    s = np.nonzero((lt == 276) & (batch.caplen >= 20))[0]
    if len(s):
        set_by_ethertype(s, u16(off[s]), off[s] + 20)
    # Raw IP.
    s = np.nonzero(((lt == 12) | (lt == 14) | (lt == 101) | (lt == 228) | (lt == 229)) & (batch.caplen >= 1))[0]
    if len(s):
        v = u8(off[s]) >> 4
        ok = ((v == 4) & (lt[s] != 229)) | ((v == 6) & (lt[s] != 228))
        l3[s[ok]] = off[s[ok]]
        ver[s[ok]] = v[ok]
    # BSD NULL (host byte order) / LOOP (network order).
    s = np.nonzero(((lt == 0) | (lt == 108)) & (batch.caplen >= 4))[0]
    if len(s):
        le = u8(off[s]) | (u8(off[s] + 1) << 8) | (u8(off[s] + 2) << 16) | (u8(off[s] + 3) << 24)
        be = u32(off[s])
        fam = np.where((lt[s] == 108) | (le >= 256), be, le)
        m4 = fam == 2
        m6 = (fam == 10) | (fam == 24) | (fam == 28) | (fam == 30)
        l3[s[m4]] = off[s[m4]] + 4
        ver[s[m4]] = 4
        l3[s[m6]] = off[s[m6]] + 4
        ver[s[m6]] = 6

    wire_end = off + batch.wirelen  # wire bytes measured from the frame start

    cand = np.nonzero(l3 >= 0)[0]
    # IPv4
    i4 = cand[ver[cand] == 4]
    i4 = i4[end[i4] - l3[i4] >= 20]
    p4 = l3[i4]
    vihl = u8(p4)
    ihl = (vihl & 0xF) * 4
    tot4 = u16(p4 + 2)
    frag = u16(p4 + 6) & 0x3FFF
    proto4 = u8(p4 + 9)
    ok4 = ((vihl >> 4) == 4) & (ihl >= 20) & (end[i4] - p4 >= ihl) & (tot4 >= ihl) & \
          (tot4 <= wire_end[i4] - p4) & (frag == 0) & ((proto4 == 6) | (proto4 == 17) | (proto4 == 1))
    i4, p4, ihl, tot4, proto4 = i4[ok4], p4[ok4], ihl[ok4], tot4[ok4], proto4[ok4]
    src4 = u32(p4 + 12).astype(np.uint64)
    dst4 = u32(p4 + 16).astype(np.uint64)
    # IPv6
    i6 = cand[ver[cand] == 6]
    i6 = i6[end[i6] - l3[i6] >= 40]
    p6 = l3[i6]
    plen = u16(p6 + 4)
    nh = u8(p6 + 6)
    ok6 = ((u8(p6) >> 4) == 6) & (40 + plen <= wire_end[i6] - p6) & ((nh == 6) | (nh == 17) | (nh == 58))
    i6, p6, plen, nh = i6[ok6], p6[ok6], plen[ok6], nh[ok6]
    if len(i6):
        a6 = arr[(p6 + 8)[:, None] + np.arange(32)]
        a6 = np.ascontiguousarray(a6).view(">u8").reshape(len(i6), 4).astype(np.uint64)
    else:
        a6 = np.zeros((0, 4), dtype=np.uint64)

    idx = np.concatenate([i4, i6])
    l4 = np.concatenate([p4 + ihl, p6 + 40])
    l4len = np.concatenate([tot4 - ihl, plen])
    ip_len = np.concatenate([tot4, plen + 40])
    proto = np.concatenate([proto4, nh])
    v = np.concatenate([np.full(len(i4), 4), np.full(len(i6), 6)])
    src_hi = np.concatenate([np.zeros(len(i4), dtype=np.uint64), a6[:, 0]])
    src_lo = np.concatenate([src4 | _V4_LO_PREFIX, a6[:, 1]])
    dst_hi = np.concatenate([np.zeros(len(i4), dtype=np.uint64), a6[:, 2]])
    dst_lo = np.concatenate([dst4 | _V4_LO_PREFIX, a6[:, 3]])
    cap_end = np.minimum(end[idx], l3[idx] + ip_len)  # end of the captured IP datagram
    caprem = cap_end - l4

    k = len(idx)
    sport = np.zeros(k, dtype=np.int64)
    dport = np.zeros(k, dtype=np.int64)
    flags = np.zeros(k, dtype=np.int64)
    seq = np.zeros(k, dtype=np.int64)
    ack = np.zeros(k, dtype=np.int64)
    win = np.zeros(k, dtype=np.int64)
    pay_off = np.zeros(k, dtype=np.int64)
    pay_len = np.zeros(k, dtype=np.int64)
    ok = np.zeros(k, dtype=bool)

    t = np.nonzero((proto == 6) & (caprem >= 20) & (l4len >= 20))[0]
    if len(t):
        q = l4[t]
        hl = (u8(q + 12) >> 4) * 4
        good = (hl >= 20) & (hl <= l4len[t]) & (caprem[t] >= hl)
        t, q, hl = t[good], q[good], hl[good]
        sport[t] = u16(q)
        dport[t] = u16(q + 2)
        seq[t] = u32(q + 4)
        ack[t] = u32(q + 8)
        flags[t] = u8(q + 13)
        win[t] = u16(q + 14)
        pay_off[t] = q + hl
        pay_len[t] = l4len[t] - hl
        ok[t] = True
    u = np.nonzero((proto == 17) & (caprem >= 8) & (l4len >= 8))[0]
    if len(u):
        q = l4[u]
        sp = u16(q)
        dp = u16(q + 2)
        ulen = u16(q + 4)
        good = (ulen == l4len[u]) & ~np.isin(sp, _TUNNEL_PORTS) & ~np.isin(dp, _TUNNEL_PORTS)
        # Possible Teredo on another port (exact-length IPv6 inside, maybe behind 0x0000/0x0001
        # headers): the per-packet path decides.
        plen_u = l4len[u] - 8
        big = np.nonzero(good & (plen_u >= 40) & (caprem[u] >= 48))[0]
        if len(big):
            b0 = u8(q[big] + 8)
            maybe = ((b0 >> 4) == 6) & (u16(q[big] + 12) + 40 == plen_u[big])
            maybe |= (b0 == 0) & (u8(q[big] + 9) <= 1)
            good[big[maybe]] = False
        u, q, sp, dp = u[good], q[good], sp[good], dp[good]
        sport[u] = sp
        dport[u] = dp
        pay_off[u] = q + 8
        pay_len[u] = l4len[u] - 8
        ok[u] = True
    c = np.nonzero((((proto == 1) & (v == 4)) | ((proto == 58) & (v == 6))) & (caprem >= 4) & (l4len >= 4))[0]
    if len(c):
        q = l4[c]
        itype = u8(q)
        code = u8(q + 1)
        cp = np.where(v[c] == 4, _CP4[itype], _CP6[itype])
        sport[c] = itype
        dport[c] = np.where(cp >= 0, cp, code)
        pay_off[c] = q + 8
        pay_len[c] = np.maximum(l4len[c] - 8, 0)
        ok[c] = True

    sel = np.nonzero(ok)[0]
    fidx = idx[sel]
    order = np.argsort(fidx, kind="stable")
    sel = sel[order]
    fidx = fidx[order]
    pcap = np.clip(np.minimum(cap_end[sel] - pay_off[sel], pay_len[sel]), 0, None)
    cols = {
        "frame": fidx.astype(np.int64),
        "ts": batch.ts[fidx],
        "ver": v[sel].astype(np.int8),
        "src_hi": src_hi[sel], "src_lo": src_lo[sel], "dst_hi": dst_hi[sel], "dst_lo": dst_lo[sel],
        "proto": proto[sel].astype(np.int16),
        "sport": sport[sel].astype(np.int32), "dport": dport[sel].astype(np.int32),
        "flags": flags[sel].astype(np.int16), "seq": seq[sel], "ack": ack[sel],
        "win": win[sel].astype(np.int32), "ip_len": ip_len[sel], "pay_len": pay_len[sel],
        "wire_len": batch.wirelen[fidx],
        "vlan": vlan[fidx], "inner_vlan": ivlan[fidx],
        "pay_off": pay_off[sel], "pay_cap": pcap,
    }
    mask = np.zeros(n, dtype=bool)
    mask[fidx] = True
    return cols, mask
