"""Compiled fast path: the common-case decode of ``batch._fast_path`` as one numba loop.

Same acceptance rules and the same output columns as the numpy version (which
stays as the readable specification; tests require identical results).  A frame
that is not taken here goes to the per-packet decoder.
"""
from __future__ import annotations

import numpy as np

from ..jit import njit

from .slow import UDP_TUNNEL_PORTS

_TUNNEL = tuple(sorted(UDP_TUNNEL_PORTS))   # UDP tunnel ports: those datagrams take the per-packet path


@njit(cache=True, nogil=True)
def _u16(a, p):
    return (np.int64(a[p]) << 8) | np.int64(a[p + 1])


@njit(cache=True, nogil=True)
def _u32(a, p):
    return (np.int64(a[p]) << 24) | (np.int64(a[p + 1]) << 16) | (np.int64(a[p + 2]) << 8) | np.int64(a[p + 3])


@njit(cache=True, nogil=True)
def _u64(a, p):
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(a[p + k])
    return v


@njit(cache=True, nogil=True)
def fast_decode(arr, off, caplen, wirelen, lt, cp4, cp6,
                ok, ver_o, shi, slo, dhi, dlo, proto_o, sport_o, dport_o, flags_o, seq_o, ack_o, win_o,
                iplen_o, paylen_o, vlan_o, ivlan_o, payoff_o, paycap_o):
    n = len(off)
    for i in range(n):
        ok[i] = False
        o = off[i]
        cap = caplen[i]
        end = o + cap
        wend = o + wirelen[i]
        t = lt[i]
        l3 = -1
        v = 0
        vlan = -1
        ivlan = -1
        if t == 1:
            if cap < 14:
                continue
            et = _u16(arr, o + 12)
            p = o + 14
            for tag in range(2):
                if (et == 0x8100 or et == 0x88A8 or et == 0x9100) and end - p >= 4:
                    vid = _u16(arr, p) & 0x0FFF
                    if tag == 0:
                        vlan = vid
                    else:
                        ivlan = vid
                    et = _u16(arr, p + 2)
                    p += 4
                else:
                    break
            if et == 0x0800:
                l3, v = p, 4
            elif et == 0x86DD:
                l3, v = p, 6
        elif t == 113:
            if cap < 16:
                continue
            et = _u16(arr, o + 14)
            if et == 0x0800:
                l3, v = o + 16, 4
            elif et == 0x86DD:
                l3, v = o + 16, 6
        elif t == 276:
            if cap < 20:
                continue
            et = _u16(arr, o)
            if et == 0x0800:
                l3, v = o + 20, 4
            elif et == 0x86DD:
                l3, v = o + 20, 6
        elif t == 12 or t == 14 or t == 101 or t == 228 or t == 229:
            if cap < 1:
                continue
            nib = arr[o] >> 4
            if nib == 4 and t != 229:
                l3, v = o, 4
            elif nib == 6 and t != 228:
                l3, v = o, 6
        elif t == 0 or t == 108:
            if cap < 4:
                continue
            le = np.int64(arr[o]) | (np.int64(arr[o + 1]) << 8) | (np.int64(arr[o + 2]) << 16) | \
                (np.int64(arr[o + 3]) << 24)
            be = _u32(arr, o)
            fam = be if (t == 108 or le >= 256) else le
            if fam == 2:
                l3, v = o + 4, 4
            elif fam == 10 or fam == 24 or fam == 28 or fam == 30:
                l3, v = o + 4, 6
        if l3 < 0:
            continue
        if v == 4:
            if end - l3 < 20:
                continue
            vihl = arr[l3]
            ihl = (vihl & 0xF) * 4
            tot = _u16(arr, l3 + 2)
            frag = _u16(arr, l3 + 6) & 0x3FFF
            pr = np.int64(arr[l3 + 9])
            if (vihl >> 4) != 4 or ihl < 20 or end - l3 < ihl or tot < ihl or tot > wend - l3 or frag != 0:
                continue
            if pr != 6 and pr != 17 and pr != 1:
                continue
            shi[i] = np.uint64(0)
            slo[i] = np.uint64(_u32(arr, l3 + 12)) | np.uint64(0x0000FFFF00000000)
            dhi[i] = np.uint64(0)
            dlo[i] = np.uint64(_u32(arr, l3 + 16)) | np.uint64(0x0000FFFF00000000)
            l4 = l3 + ihl
            l4len = tot - ihl
            iplen = tot
        else:
            if end - l3 < 40:
                continue
            plen = _u16(arr, l3 + 4)
            pr = np.int64(arr[l3 + 6])
            if (arr[l3] >> 4) != 6 or 40 + plen > wend - l3 or (pr != 6 and pr != 17 and pr != 58):
                continue
            shi[i] = _u64(arr, l3 + 8)
            slo[i] = _u64(arr, l3 + 16)
            dhi[i] = _u64(arr, l3 + 24)
            dlo[i] = _u64(arr, l3 + 32)
            l4 = l3 + 40
            l4len = plen
            iplen = plen + 40
        cap_end = min(end, l3 + iplen)
        caprem = cap_end - l4
        sp = 0
        dp = 0
        fl = 0
        sq = 0
        ak = 0
        win = 0
        if pr == 6:
            if caprem < 20 or l4len < 20:
                continue
            hl = (arr[l4 + 12] >> 4) * 4
            if hl < 20 or hl > l4len or caprem < hl:
                continue
            sp = _u16(arr, l4)
            dp = _u16(arr, l4 + 2)
            sq = _u32(arr, l4 + 4)
            ak = _u32(arr, l4 + 8)
            fl = np.int64(arr[l4 + 13])
            win = _u16(arr, l4 + 14)
            poff = l4 + hl
            plen_ = l4len - hl
        elif pr == 17:
            if caprem < 8 or l4len < 8:
                continue
            sp = _u16(arr, l4)
            dp = _u16(arr, l4 + 2)
            ulen = _u16(arr, l4 + 4)
            if ulen != l4len:
                continue
            tun = False
            for tp in _TUNNEL:
                if sp == tp or dp == tp:
                    tun = True
            if tun:
                continue
            plen_ = l4len - 8
            if plen_ >= 40 and caprem >= 48:
                b0 = arr[l4 + 8]
                if (b0 >> 4) == 6 and _u16(arr, l4 + 12) + 40 == plen_:
                    continue  # maybe Teredo on another port: the per-packet path decides
                if b0 == 0 and arr[l4 + 9] <= 1:
                    continue
            poff = l4 + 8
        else:
            if (pr == 1 and v != 4) or (pr == 58 and v != 6):
                continue
            if caprem < 4 or l4len < 4:
                continue
            it = np.int64(arr[l4])
            code = np.int64(arr[l4 + 1])
            cp = cp4[it] if v == 4 else cp6[it]
            sp = it
            dp = cp if cp >= 0 else code
            poff = l4 + 8
            plen_ = l4len - 8 if l4len > 8 else 0
        pc = cap_end - poff
        if pc > plen_:
            pc = plen_
        if pc < 0:
            pc = 0
        ok[i] = True
        ver_o[i] = v
        proto_o[i] = pr
        sport_o[i] = sp
        dport_o[i] = dp
        flags_o[i] = fl
        seq_o[i] = sq
        ack_o[i] = ak
        win_o[i] = win
        iplen_o[i] = iplen
        paylen_o[i] = plen_
        vlan_o[i] = vlan
        ivlan_o[i] = ivlan
        payoff_o[i] = poff
        paycap_o[i] = pc


def fast_path(arr: np.ndarray, batch, cp4: np.ndarray, cp6: np.ndarray):
    """Columns for the frames taken, and the mask of those frames (same contract as batch._fast_path)."""
    n = len(batch)
    ok = np.zeros(n, dtype=np.bool_)
    i64 = [np.empty(n, dtype=np.int64) for _ in range(14)]
    u64 = [np.empty(n, dtype=np.uint64) for _ in range(4)]
    (ver, proto, sport, dport, flags, seq, ack, win, iplen, paylen, vlan, ivlan, payoff, paycap) = i64
    shi, slo, dhi, dlo = u64
    fast_decode(arr, batch.offset, batch.caplen, batch.wirelen, batch.linktype.astype(np.int64), cp4, cp6,
                ok, ver, shi, slo, dhi, dlo, proto, sport, dport, flags, seq, ack, win, iplen, paylen, vlan, ivlan,
                payoff, paycap)
    idx = np.nonzero(ok)[0]
    cols = {
        "frame": idx.astype(np.int64),
        "ts": batch.ts[idx],
        "ver": ver[idx].astype(np.int8),
        "src_hi": shi[idx], "src_lo": slo[idx], "dst_hi": dhi[idx], "dst_lo": dlo[idx],
        "proto": proto[idx].astype(np.int16),
        "sport": sport[idx].astype(np.int32), "dport": dport[idx].astype(np.int32),
        "flags": flags[idx].astype(np.int16), "seq": seq[idx], "ack": ack[idx],
        "win": win[idx].astype(np.int32), "ip_len": iplen[idx], "pay_len": paylen[idx],
        "wire_len": batch.wirelen[idx],
        "vlan": vlan[idx].astype(np.int32), "inner_vlan": ivlan[idx].astype(np.int32),
        "pay_off": payoff[idx], "pay_cap": paycap[idx],
    }
    return cols, ok
