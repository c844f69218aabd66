"""Compiled flow kernel: Zeek connection semantics over columnar flow state.

The same semantics as ``inspector.flows.tcp`` (the readable reference, kept
and cross-checked packet for packet in tests), run by numba over a structure of
arrays: a per-packet state machine in Python costs about 20 us a packet, the
whole budget for a million packets is about 2 s, so the loop is compiled.
Flow state lives in numpy arrays indexed by a flow id; ``FlowStore`` owns them,
``process`` runs the rows of one decoded batch in order.

Layout (constants below): FI int64 fields per flow, FF float64 fields, ADDR
(orig hi/lo, resp hi/lo), EP per-endpoint fields [orig, resp], HOLES gap list
per endpoint, HIST the history letters.
"""
from __future__ import annotations

import numpy as np

from ..jit import njit
from .roles import (A_DNS, A_DNS_SEEN, A_NTP, A_NTP_FLIPPED, DNS_UDP_PORTS, H_DNS_MSG, H_DNS_RESPONSE,
                    H_NTP_CLIENT, H_NTP_SERVER, NTP_UDP_PORT)

# --- flow int fields ---------------------------------------------------------
PROTO, VER, OPORT, RPORT, ORIG_IS_A, OPK, RPK, OIP, RIP, OL2, RL2, OBYTES, RBYTES, VLAN, IVLAN, ACTIVE, \
    IS_PARTIAL, FIRST_SEEN, HIST_SEEN, HIST_LEN, SERIAL, WEIRDS, ENDED_BY, APPF = range(24)
NFI = 24
# --- flow float fields ---------------------------------------------------------
TS, LAST, INACT, T_ATTEMPT, T_DELETE, T_EXP1, T_EXP2 = range(7)
NFF = 7
# --- endpoint fields -------------------------------------------------------------
STATE, PREV, START, LSEQ, ASEQ, SWRAPS, AWRAPS, FIN_CNT, RST_CNT, DID_CLOSE, H_SYN, H_FIN, H_RST, RX_CNT, RX_TH, \
    W0_CNT, W0_TH, SEEN, NHOLES, LOST = range(20)
NE = 20
MAXH = 8
HMAX = 48

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
FIN, SYN, RST, ACKF = 1, 2, 4, 16
M32 = 0xFFFFFFFF
TOO_LARGE = 1048576
H_SYNM, H_FINM, H_RSTM, H_FIN_RST, H_DATA, H_ACKM, H_MULTI = 1, 2, 4, 8, 0x10, 0x20, 0x40

TCP_INACTIVITY = 300.0
HANDSHAKE_INACTIVITY = 60.0
UDP_INACTIVITY = 60.0
OTHER_INACTIVITY = 60.0
DNS_SESSION = 10.0
ATTEMPT_DELAY = 5.0
CLOSE_DELAY = 5.0
SESSION_TIMER = 6.0
SYN_TIMEOUT = 5.0
LINGER = 5.0
INF = np.inf
NOT_YET = -np.inf      # _removal_time: the flow's timers have not run out (packet times may be negative)

# weird bits
W_INITIAL_SEQ_JUMP, W_SYN_SEQ_JUMP, W_HIST_FULL, W_HOLES_FULL, W_REUSE = 1, 2, 4, 8, 16
WEIRD_NAMES = {
    W_INITIAL_SEQ_JUMP: ("tcp.initial_seq_jump",
                         "first data more than 1 MiB past the initial sequence number; direction re-based"),
    W_SYN_SEQ_JUMP: ("tcp.syn_seq_jump", "a SYN with a new initial sequence number"),
    W_HIST_FULL: ("flow.history_truncated", f"history longer than {HMAX} letters"),
    W_HOLES_FULL: ("tcp.too_many_gaps", f"more than {MAXH} sequence gaps in one direction"),
    W_REUSE: ("tcp.connection_reuse", "a new SYN on a closed or different connection"),
}
ENDED_NAMES = ("", "timeout", "reuse", "evicted", "end_of_input")
STATE_NAMES = ("OTH", "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR")

_J = dict(cache=True, nogil=True)


@njit(**_J)
def seq_delta(a, b):
    return ((a - b + 0x80000000) & M32) - 0x80000000


@njit(**_J)
def _hist_add(FI, HIST, f, code):
    n = FI[f, HIST_LEN]
    if n < HMAX:
        HIST[f, n] = code
        FI[f, HIST_LEN] = n + 1
    else:
        FI[f, WEIRDS] |= W_HIST_FULL


@njit(**_J)
def _check_hist(FI, HIST, f, mask, code, is_orig):
    """Add ``code`` (lower case for the responder) the first time its ``mask`` bit is seen for that
    side; True when it was added now (Zeek's ``Connection::CheckHistory`` returns the opposite)."""
    if not is_orig:
        mask <<= 16
        code = code + 32  # lower case
    if FI[f, HIST_SEEN] & mask == 0:
        FI[f, HIST_SEEN] |= mask
        _hist_add(FI, HIST, f, code)
        return True
    return False


@njit(**_J)
def _add_hist(FI, HIST, f, code, is_orig):
    _hist_add(FI, HIST, f, code if is_orig else code + 32)


@njit(**_J)
def _set_state(FI, FF, EP, f, e, new):
    old = EP[f, e, STATE]
    if new != old:
        if new > SYN_ACK_SENT and old <= SYN_ACK_SENT and EP[f, 1 - e, STATE] <= SYN_ACK_SENT:
            # handshake states are INACTIVE, SYN_SENT, SYN_ACK_SENT (0..2)
            FF[f, INACT] = TCP_INACTIVITY
        EP[f, e, PREV] = old
        EP[f, e, STATE] = new


@njit(**_J)
def _init_seqs(EP, f, e, start, last):
    EP[f, e, START] = start & M32
    EP[f, e, ASEQ] = start & M32
    EP[f, e, LSEQ] = last & M32


@njit(**_J)
def _full_last(EP, f, e):
    return (EP[f, e, SWRAPS] << 32) | EP[f, e, LSEQ]


@njit(**_J)
def _full_ack(EP, f, e):
    return (EP[f, e, AWRAPS] << 32) | EP[f, e, ASEQ]


@njit(**_J)
def _update_last(EP, f, e, seq):
    if seq < EP[f, e, LSEQ]:
        EP[f, e, SWRAPS] += 1
    EP[f, e, LSEQ] = seq


@njit(**_J)
def _relative(EP, f, e, cur, last, wraps):
    delta = seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d = seq_delta(cur, EP[f, e, START])
        return d, d < 0
    return ((wraps << 32) | cur) - EP[f, e, START], False


@njit(**_J)
def _flip(FI, FF, ADDR, EP, HOLES, HIST, f):
    for a, b in ((0, 2), (1, 3)):
        t = ADDR[f, a]
        ADDR[f, a] = ADDR[f, b]
        ADDR[f, b] = t
    for a, b in ((OPORT, RPORT), (OPK, RPK), (OIP, RIP), (OL2, RL2), (OBYTES, RBYTES)):
        t = FI[f, a]
        FI[f, a] = FI[f, b]
        FI[f, b] = t
    FI[f, ORIG_IS_A] = 1 - FI[f, ORIG_IS_A]
    for k in range(NE):
        t = EP[f, 0, k]
        EP[f, 0, k] = EP[f, 1, k]
        EP[f, 1, k] = t
    for h in range(MAXH):
        for j in range(2):
            t = HOLES[f, 0, h, j]
            HOLES[f, 0, h, j] = HOLES[f, 1, h, j]
            HOLES[f, 1, h, j] = t
    fs = FI[f, FIRST_SEEN]
    FI[f, FIRST_SEEN] = (2 if fs & 1 else 0) | (1 if fs & 2 else 0)
    FI[f, IS_PARTIAL] = 0
    # Zeek's Connection::FlipRoles keeps hist_seen as it is: the letters already seen stay seen for
    # the role (orig or resp), not for the endpoint that sent them.
    _hist_add(FI, HIST, f, 94)  # '^'


@njit(**_J)
def _removal_time(FI, FF, EP, f, now):
    """When Zeek's timers would have removed flow f before ``now``; NOT_YET if not.  Any time is
    valid packet time, negative ones (captures dated before 1970) included."""
    last = FF[f, LAST]
    inact = last + FF[f, INACT]
    proto = FI[f, PROTO]
    if proto != 6:
        t = inact
        if proto == 17:
            op = FI[f, OPORT]
            rp = FI[f, RPORT]
            if op == 53 or rp == 53 or op == 137 or rp == 137 or op == 5353 or rp == 5353 or op == 5355 \
                    or rp == 5355:
                ts0 = FF[f, TS]
                k = np.ceil((last + DNS_SESSION - 1.0 - ts0) / DNS_SESSION)
                if k < 1.0:
                    k = 1.0
                t2 = ts0 + k * DNS_SESSION
                if t2 < t:
                    t = t2
        return t if t < now else NOT_YET
    # TCP: evaluate timers in time order.
    while True:
        # earliest pending timer
        tmin = FF[f, T_ATTEMPT]
        kind = T_ATTEMPT
        for k in (T_DELETE, T_EXP1, T_EXP2):
            if FF[f, k] < tmin:
                tmin = FF[f, k]
                kind = k
        if tmin >= now or tmin > inact:
            break
        os_ = EP[f, 0, STATE]
        rs = EP[f, 1, STATE]
        if kind == T_DELETE:
            return tmin
        if kind == T_ATTEMPT:
            FF[f, T_ATTEMPT] = INF
            if (os_ == SYN_SENT or os_ == SYN_ACK_SENT) and rs == INACTIVE:
                return tmin
            continue
        # expire timer
        if last + LINGER < tmin:
            oc = EP[f, 0, DID_CLOSE]
            rc = EP[f, 1, DID_CLOSE]
            if oc or rc:
                if (oc and rc) or os_ == RESET or rs == RESET or os_ == INACTIVE or rs == INACTIVE:
                    return tmin
            if rs == INACTIVE and os_ == INACTIVE:
                return tmin
            steps = np.floor((now - tmin) / SESSION_TIMER)
            if steps < 1.0:
                steps = 1.0
            FF[f, kind] = tmin + SESSION_TIMER * steps
        else:
            FF[f, kind] = tmin + SESSION_TIMER
    if inact < now:
        return inact
    return NOT_YET


@njit(**_J)
def _is_reuse(FI, EP, f, fl, seq):
    if fl & SYN == 0:
        return False
    co = 0
    if fl & ACKF:
        if EP[f, 0, STATE] != INACTIVE:
            return False
        co = 1
    closed = EP[f, 0, DID_CLOSE] or EP[f, 1, DID_CLOSE]
    if not closed:
        if seq == EP[f, co, START]:
            return False
        if fl & ACKF == 0 and EP[f, co, STATE] == SYN_ACK_SENT and EP[f, 1, STATE] == INACTIVE \
                and seq == EP[f, 1, START]:
            return False
    return True


@njit(**_J)
def _closed(FI, FF, EP, f, e):
    if EP[f, e, DID_CLOSE]:
        return
    EP[f, e, DID_CLOSE] = 1
    p = 1 - e
    if EP[f, e, STATE] == RESET or EP[f, p, DID_CLOSE] or EP[f, p, STATE] == INACTIVE:
        t = FF[f, LAST] + CLOSE_DELAY
        if t < FF[f, T_DELETE]:
            FF[f, T_DELETE] = t
    elif EP[f, e, PREV] != INACTIVE:
        t = FF[f, LAST] + SESSION_TIMER
        if t < FF[f, T_EXP2]:
            FF[f, T_EXP2] = t


@njit(**_J)
def _fill_holes(EP, HOLES, f, e, seq, length):
    last64 = _full_last(EP, f, e)
    s = last64 + seq_delta(seq, EP[f, e, LSEQ])
    end = s + length
    n = EP[f, e, NHOLES]
    tmp = np.empty((MAXH * 2, 2), dtype=np.int64)
    m = 0
    for h in range(n):
        hs = HOLES[f, e, h, 0]
        he = HOLES[f, e, h, 1]
        if end <= hs or s >= he:
            tmp[m, 0] = hs
            tmp[m, 1] = he
            m += 1
            continue
        EP[f, e, SEEN] += min(end, he) - max(s, hs)
        if s > hs:
            tmp[m, 0] = hs
            tmp[m, 1] = s
            m += 1
        if end < he:
            tmp[m, 0] = end
            tmp[m, 1] = he
            m += 1
    if m > MAXH:
        for h in range(MAXH, m):
            EP[f, e, LOST] += tmp[h, 1] - tmp[h, 0]
        m = MAXH
    for h in range(m):
        HOLES[f, e, h, 0] = tmp[h, 0]
        HOLES[f, e, h, 1] = tmp[h, 1]
    EP[f, e, NHOLES] = m


@njit(**_J)
def _tcp_packet(FI, FF, ADDR, EP, HOLES, HIST, f, is_orig, fl, seq, ack, length, win, ts):
    e = 0 if is_orig else 1
    p = 1 - e
    syn = fl & SYN
    fin = fl & FIN
    rst = fl & RST
    ackf = fl & ACKF
    # SetPartialStatus
    if is_orig:
        if FI[f, FIRST_SEEN] & 1 == 0:
            FI[f, IS_PARTIAL] = 1 if (syn == 0 or ackf != 0) else 0
    elif FI[f, FIRST_SEEN] & 2 == 0 and FI[f, IS_PARTIAL] == 0:
        FI[f, IS_PARTIAL] = 1 if syn == 0 else 0

    seg_len = length + (1 if syn else 0) + (1 if fin else 0) - (length if rst else 0)
    seq_end = (seq + seg_len) & M32

    st = EP[f, e, STATE]
    if st == INACTIVE:
        if syn:
            _init_seqs(EP, f, e, seq, seq_end)
        else:
            _init_seqs(EP, f, e, seq - 1, seq)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if syn and seq != EP[f, e, START]:
            FI[f, WEIRDS] |= W_SYN_SEQ_JUMP
            _init_seqs(EP, f, e, seq, seq_end)
    elif st == ESTABLISHED or st == PARTIAL:
        if syn:
            _init_seqs(EP, f, e, seq, seq_end)
    elif st == RESET:
        if syn and EP[f, e, PREV] == INACTIVE:
            _init_seqs(EP, f, e, seq, seq_end)

    rel_seq, _under = _relative(EP, f, e, seq, EP[f, e, LSEQ], EP[f, e, SWRAPS])

    bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    if bits > 1:
        if fin and rst:
            _check_hist(FI, HIST, f, H_FIN_RST, 73, is_orig)     # 'I'
        else:
            _check_hist(FI, HIST, f, H_MULTI, 81, is_orig)       # 'Q'
    elif bits == 1:
        # update_history: a SYN, FIN or RST seen before on this side is added again only when it
        # sits at another sequence number than the previous one (a new one, not a retransmission)
        if syn:
            code = 72 if ackf else 83                             # 'H' / 'S'
            if not _check_hist(FI, HIST, f, H_SYNM, code, is_orig) and rel_seq != EP[f, e, H_SYN]:
                _add_hist(FI, HIST, f, code, is_orig)
            EP[f, e, H_SYN] = rel_seq
        if fin:
            if not _check_hist(FI, HIST, f, H_FINM, 70, is_orig) and rel_seq + length != EP[f, e, H_FIN]:
                _add_hist(FI, HIST, f, 70, is_orig)
            EP[f, e, H_FIN] = rel_seq + length
        if rst:
            if not _check_hist(FI, HIST, f, H_RSTM, 82, is_orig) and rel_seq != EP[f, e, H_RST]:
                _add_hist(FI, HIST, f, 82, is_orig)
            EP[f, e, H_RST] = rel_seq
    else:
        if length:
            _check_hist(FI, HIST, f, H_DATA, 68, is_orig)        # 'D'
        elif ackf:
            _check_hist(FI, HIST, f, H_ACKM, 65, is_orig)        # 'A'

    if win == 0 and not rst and EP[f, p, STATE] != CLOSED and EP[f, e, STATE] != RESET:
        EP[f, e, W0_CNT] += 1
        if EP[f, e, W0_CNT] == EP[f, e, W0_TH]:
            _add_hist(FI, HIST, f, 87, is_orig)                  # 'W'
            EP[f, e, W0_TH] *= 10

    if not (EP[f, 0, DID_CLOSE] and EP[f, 1, DID_CLOSE]):
        FF[f, LAST] = ts

    if fin:
        EP[f, e, FIN_CNT] += 1
    if rst:
        EP[f, e, RST_CNT] += 1

    if ackf:
        if EP[f, p, STATE] == INACTIVE:
            _init_seqs(EP, f, p, ack - 1, ack - 1)
        else:
            _ra, ack_under = _relative(EP, f, p, ack, EP[f, p, ASEQ], EP[f, p, AWRAPS])
            if not ack_under and not rst:
                d = seq_delta(ack, EP[f, p, ASEQ])
                if ack == 0 and d > TOO_LARGE:
                    pass
                elif d > 0:
                    if ack < EP[f, p, ASEQ]:
                        EP[f, p, AWRAPS] += 1
                    EP[f, p, ASEQ] = ack

    delta_last = seq_delta(seq_end, EP[f, e, LSEQ])
    if (syn or rst) and (delta_last > TOO_LARGE or delta_last < -TOO_LARGE):
        pass
    elif fin and EP[f, e, LSEQ] == ((EP[f, e, START] + 1) & M32):
        _update_last(EP, f, e, seq_end)
    elif EP[f, e, STATE] == RESET:
        pass
    elif delta_last > 0:
        if length and not rst:
            old = _full_last(EP, f, e)
            start64 = old + seq_delta(seq, EP[f, e, LSEQ])
            if EP[f, e, SEEN] == 0 and EP[f, e, NHOLES] == 0 and start64 - old > TOO_LARGE \
                    and old - EP[f, e, START] <= 1:
                FI[f, WEIRDS] |= W_INITIAL_SEQ_JUMP
                EP[f, e, START] = (seq - 1) & M32
                EP[f, e, ASEQ] = EP[f, e, START]
                EP[f, e, LSEQ] = seq & M32
                EP[f, e, SWRAPS] = 0
                EP[f, e, AWRAPS] = 0
                old = _full_last(EP, f, e)
                start64 = old
            if start64 > old:
                n = EP[f, e, NHOLES]
                if n < MAXH:
                    HOLES[f, e, n, 0] = old
                    HOLES[f, e, n, 1] = start64
                    EP[f, e, NHOLES] = n + 1
                else:
                    # Too many open gaps to track: this one is counted as missed for good.
                    FI[f, WEIRDS] |= W_HOLES_FULL
                    EP[f, e, LOST] += start64 - old
                EP[f, e, SEEN] += length
            else:
                EP[f, e, SEEN] += min(length, delta_last)
        _update_last(EP, f, e, seq_end)
    elif length > 0:
        EP[f, e, RX_CNT] += 1
        if EP[f, e, RX_CNT] == EP[f, e, RX_TH]:
            _add_hist(FI, HIST, f, 84, is_orig)                  # 'T'
            EP[f, e, RX_TH] *= 10
        if EP[f, e, NHOLES] and not rst:
            _fill_holes(EP, HOLES, f, e, seq, length)

    # UpdateStateMachine
    do_close = False
    st = EP[f, e, STATE]
    if st == INACTIVE:
        if syn:
            if is_orig:
                _set_state(FI, FF, EP, f, e, SYN_ACK_SENT if ackf else SYN_SENT)
                t = ts + ATTEMPT_DELAY
                if t < FF[f, T_ATTEMPT]:
                    FF[f, T_ATTEMPT] = t
            else:
                if ackf:
                    pass
                elif EP[f, p, STATE] == SYN_ACK_SENT and seq == EP[f, e, START]:
                    # SYN/SYN-ACK reversal: flip the endpoints and establish.
                    FI[f, IS_PARTIAL] = 0
                    _flip(FI, FF, ADDR, EP, HOLES, HIST, f)
                    e, p = p, e
                    _set_state(FI, FF, EP, f, p, ESTABLISHED)
                    FI[f, FIRST_SEEN] |= 1 if e == 0 else 2
                if EP[f, p, STATE] == SYN_SENT:
                    _set_state(FI, FF, EP, f, p, ESTABLISHED)
                _set_state(FI, FF, EP, f, e, ESTABLISHED)
        if fin:
            _set_state(FI, FF, EP, f, e, CLOSED)
            do_close = True
        if rst:
            _set_state(FI, FF, EP, f, e, RESET)
            do_close = True
        if EP[f, e, STATE] == INACTIVE:
            if e == 1 and length == 0 and EP[f, 0, STATE] == SYN_SENT:
                pass
            elif ackf and EP[f, p, STATE] == ESTABLISHED:
                _set_state(FI, FF, EP, f, e, ESTABLISHED)
                FI[f, IS_PARTIAL] = 0
                FI[f, FIRST_SEEN] |= 1 if e == 0 else 2
            else:
                _set_state(FI, FF, EP, f, e, PARTIAL)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fin:
            _set_state(FI, FF, EP, f, e, CLOSED)
            do_close = True
        if rst:
            _set_state(FI, FF, EP, f, e, RESET)
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if syn and st == PARTIAL and EP[f, p, STATE] == INACTIVE and not ackf:
            _set_state(FI, FF, EP, f, e, SYN_SENT)
        if fin and not rst:
            _set_state(FI, FF, EP, f, e, CLOSED)
            if EP[f, p, STATE] == RESET and EP[f, p, PREV] == CLOSED:
                _set_state(FI, FF, EP, f, p, CLOSED)
            do_close = True
        if rst:
            _set_state(FI, FF, EP, f, e, RESET)
            do_close = True
    elif st == CLOSED:
        if rst and EP[f, p, STATE] != CLOSED:
            _set_state(FI, FF, EP, f, e, RESET)
            if not EP[f, e, DID_CLOSE]:
                do_close = True

    # CheckPIA_FirstPacket (uses the packet's original direction, as Zeek does)
    FI[f, FIRST_SEEN] |= 1 if is_orig else 2
    if do_close:
        _closed(FI, FF, EP, f, e)


@njit(**_J)
def _init_flow(FI, FF, ADDR, EP, HOLES, HIST, f, serial, ver, proto, vlan, ivlan, ts, af,
               shi, slo, sport, dhi, dlo, dport):
    for k in range(NFI):
        FI[f, k] = 0
    for k in range(NE):
        EP[f, 0, k] = 0
        EP[f, 1, k] = 0
    EP[f, 0, RX_TH] = 1
    EP[f, 1, RX_TH] = 1
    EP[f, 0, W0_TH] = 1
    EP[f, 1, W0_TH] = 1
    FI[f, PROTO] = proto
    FI[f, VER] = ver
    FI[f, OPORT] = sport
    FI[f, RPORT] = dport
    FI[f, ORIG_IS_A] = 1 if af else 0
    FI[f, VLAN] = vlan
    FI[f, IVLAN] = ivlan
    FI[f, ACTIVE] = 1
    FI[f, SERIAL] = serial
    ADDR[f, 0] = shi
    ADDR[f, 1] = slo
    ADDR[f, 2] = dhi
    ADDR[f, 3] = dlo
    FF[f, TS] = ts
    FF[f, LAST] = ts
    FF[f, T_ATTEMPT] = INF
    FF[f, T_DELETE] = INF
    FF[f, T_EXP2] = INF
    if proto == 6:
        FF[f, INACT] = HANDSHAKE_INACTIVITY
        FF[f, T_EXP1] = ts + SYN_TIMEOUT
    else:
        FF[f, INACT] = UDP_INACTIVITY if proto == 17 else OTHER_INACTIVITY
        FF[f, T_EXP1] = INF


@njit(**_J)
def _mix(h, v):
    h ^= v + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
    return h * np.uint64(0xBF58476D1CE4E5B9)


@njit(**_J)
def _lookup(HT, KEY, SLOT, key, h):
    """Slot holding the flow with this key (>= 0), or -(first free slot) - 1."""
    mask = len(HT) - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        f = HT[slot]
        if f == -1:
            return -slot - 1
        if f >= 0:
            same = True
            for k in range(9):
                if KEY[f, k] != key[k]:
                    same = False
                    break
            if same:
                return slot
        slot = (slot + 1) & mask


@njit(**_J)
def ht_insert(HT, KEY, SLOT, f):
    h = np.uint64(0)
    for k in range(9):
        h = _mix(h, KEY[f, k])
    mask = len(HT) - 1
    slot = np.int64(h & np.uint64(mask))
    while HT[slot] >= 0:
        slot = (slot + 1) & mask
    HT[slot] = f
    SLOT[f] = slot


@njit(**_J)
def ht_rebuild(HT, KEY, SLOT, FI, upto):
    HT[:] = -1
    for f in range(upto):
        if FI[f, ACTIVE] == 1 or FI[f, ACTIVE] == 2:
            ht_insert(HT, KEY, SLOT, f)


@njit(**_J)
def _alloc(FI, free, counters, cap):
    nf = counters[3]
    if nf > 0:
        counters[3] = nf - 1
        return free[nf - 1]
    f = counters[0]
    if f >= cap:
        return -1
    counters[0] = f + 1
    return f


@njit(**_J)
def process(start, ts_a, ver_a, proto_a, vlan_a, ivlan_a, fl_a, seq_a, ack_a, win_a, ip_a, pay_a, wire_a,
            shi_a, slo_a, sp_a, dhi_a, dlo_a, dp_a, app_a,
            FI, FF, ADDR, EP, HOLES, HIST, KEY, SLOT, HT, free, counters, ended, ended_ts,
            likely_tcp, likely_udp, row_fid, row_orig, row_new, max_active):
    """Run rows start.. of one batch in order.  Returns the row reached: len(ts_a) when done, less
    when a new flow is needed and the flow arrays are full (the caller grows them) or
    ``max_active`` flows are active (the caller evicts), and calls again from there.
    counters: [next_new_fid, serial, n_ended, n_free, n_in_table, n_tombstones].

    Connections are keyed by Zeek's default five-tuple (protocol, addresses, ports): VLAN tags are
    recorded from the first packet but do not separate connections.  ``app_a`` holds the per-row
    hints of ``roles.hints`` for the DNS/NTP role flips."""
    n = len(ts_a)
    cap = FI.shape[0]
    key = np.empty(9, dtype=np.uint64)
    for i in range(start, n):
        ts = ts_a[i]
        proto = proto_a[i]
        fl = fl_a[i]
        seq = seq_a[i]
        shi = shi_a[i]
        slo = slo_a[i]
        sp = sp_a[i]
        dhi = dhi_a[i]
        dlo = dlo_a[i]
        dp = dp_a[i]
        af = shi < dhi or (shi == dhi and (slo < dlo or (slo == dlo and sp <= dp)))
        key[0] = np.uint64(proto)
        key[1] = np.uint64(0)
        key[2] = np.uint64(0)
        if af:
            key[3] = shi
            key[4] = slo
            key[5] = np.uint64(sp)
            key[6] = dhi
            key[7] = dlo
            key[8] = np.uint64(dp)
        else:
            key[3] = dhi
            key[4] = dlo
            key[5] = np.uint64(dp)
            key[6] = shi
            key[7] = slo
            key[8] = np.uint64(sp)
        h = np.uint64(0)
        for k in range(9):
            h = _mix(h, key[k])
        slot = _lookup(HT, KEY, SLOT, key, h)
        f = -1
        if slot >= 0:
            f = HT[slot]
            rt = _removal_time(FI, FF, EP, f, ts)
            why = 0
            if rt != NOT_YET:
                why = 1
            elif proto == 6 and fl & SYN and _is_reuse(FI, EP, f, fl, seq):
                why = 2
                rt = ts
                FI[f, WEIRDS] |= W_REUSE
            if why:
                nf = _alloc(FI, free, counters, cap)
                if nf < 0:
                    return i
                FI[f, ACTIVE] = 0
                FI[f, ENDED_BY] = why
                k = counters[2]
                ended[k] = f
                ended_ts[k] = rt
                counters[2] = k + 1
                HT[slot] = nf
                SLOT[nf] = slot
                f = nf
                FI[f, ACTIVE] = 0
            else:
                slot = -1  # existing, active flow
        else:
            if counters[4] >= max_active:
                return i
            nf = _alloc(FI, free, counters, cap)
            if nf < 0:
                return i
            slot = -slot - 1
            HT[slot] = nf
            SLOT[nf] = slot
            counters[4] += 1
            f = nf
            FI[f, ACTIVE] = 0
            slot = 0
        row_new[i] = slot >= 0
        if slot >= 0:
            # a new connection: the packet's source is the originator unless Zeek's heuristics flip it
            for k in range(9):
                KEY[f, k] = key[k]
            serial = counters[1]
            counters[1] = serial + 1
            _init_flow(FI, FF, ADDR, EP, HOLES, HIST, f, serial, ver_a[i], proto, vlan_a[i], ivlan_a[i], ts,
                       af, shi, slo, sp, dhi, dlo, dp)
            flip = False
            if proto == 6:
                if fl & SYN == 0 or fl & ACKF:
                    if likely_tcp[sp]:
                        if likely_tcp[dp]:
                            flip = fl & SYN == 0 and sp < dp
                        else:
                            flip = True
            elif proto == 17:
                flip = likely_udp[sp] and not likely_udp[dp]
            # IPBasedAnalyzer::NewConn: never towards the IPv4 broadcast address
            if flip and not (ver_a[i] == 4 and dlo & np.uint64(0xFFFFFFFF) == np.uint64(0xFFFFFFFF)):
                _flip(FI, FF, ADDR, EP, HOLES, HIST, f)
            if proto == 17:
                rp = FI[f, RPORT]
                if rp == NTP_UDP_PORT:
                    FI[f, APPF] = A_NTP
                else:
                    for dns_port in DNS_UDP_PORTS:
                        if rp == dns_port:
                            FI[f, APPF] = A_DNS
        is_orig = (af == (FI[f, ORIG_IS_A] == 1))
        pay = pay_a[i]
        if proto == 6:
            _tcp_packet(FI, FF, ADDR, EP, HOLES, HIST, f, is_orig, fl, seq, ack_a[i], pay, win_a[i], ts)
        else:
            FF[f, LAST] = ts
            if proto == 17:
                _check_hist(FI, HIST, f, H_DATA, 68, is_orig)
                if is_orig:
                    FI[f, OBYTES] += pay
                else:
                    FI[f, RBYTES] += pay
                if app_a[i] and FI[f, APPF] and _app_flip(FI, ADDR, f, app_a[i], is_orig):
                    _flip(FI, FF, ADDR, EP, HOLES, HIST, f)
                    is_orig = not is_orig
            elif proto == 1 or proto == 58:
                if is_orig:
                    FI[f, OBYTES] += pay
                else:
                    FI[f, RBYTES] += pay
        if is_orig:
            FI[f, OPK] += 1
            FI[f, OIP] += ip_a[i]
            FI[f, OL2] += wire_a[i]
        else:
            FI[f, RPK] += 1
            FI[f, RIP] += ip_a[i]
            FI[f, RL2] += wire_a[i]
        row_fid[i] = f
        row_orig[i] = is_orig
    return n


@njit(**_J)
def _app_flip(FI, ADDR, f, hint, is_orig):
    """Zeek's DNS and NTP analyzer flips (see ``roles``): True when this packet flips flow f."""
    appf = FI[f, APPF]
    flip = False
    if appf & A_DNS and appf & A_DNS_SEEN == 0 and hint & H_DNS_MSG:
        appf |= A_DNS_SEEN
        if hint & H_DNS_RESPONSE and is_orig:
            if FI[f, VER] == 4:
                multicast = ((ADDR[f, 3] & np.uint64(0xFFFFFFFF)) >> np.uint64(28)) == np.uint64(0xE)
            else:
                multicast = ADDR[f, 2] >> np.uint64(56) == np.uint64(0xFF)
            flip = not multicast
    if appf & A_NTP and appf & A_NTP_FLIPPED == 0 and (
            (hint & H_NTP_SERVER and is_orig) or (hint & H_NTP_CLIENT and not is_orig)):
        appf |= A_NTP_FLIPPED
        flip = True
    FI[f, APPF] = appf
    return flip


@njit(**_J)
def sweep(FI, FF, EP, HT, SLOT, upto, now, ended, ended_ts, counters, force):
    """End every active flow whose timers ran out by ``now`` (all of them when ``force``)."""
    for f in range(upto):
        if FI[f, ACTIVE] != 1:
            continue
        if force:
            rt = FF[f, LAST]
            why = 4
        else:
            rt = _removal_time(FI, FF, EP, f, now)
            why = 1
        if rt != NOT_YET:
            FI[f, ACTIVE] = 0
            FI[f, ENDED_BY] = why
            k = counters[2]
            ended[k] = f
            ended_ts[k] = rt
            counters[2] = k + 1
            HT[SLOT[f]] = -2
            counters[4] -= 1
            counters[5] += 1


@njit(**_J)
def _size(EP, HOLES, f, e):
    p = 1 - e
    if EP[f, e, PREV] == SYN_SENT and EP[f, e, STATE] == RESET and EP[f, p, STATE] == INACTIVE:
        a = _full_ack(EP, f, e)
        if not (a == EP[f, e, START] or a == EP[f, e, START] + 1):
            return 0, 0
    last64 = _full_last(EP, f, e)
    ack64 = _full_ack(EP, f, e)
    top = last64 if last64 > ack64 else ack64
    size = top - EP[f, e, START]
    if size < 0:
        size = 0  # Zeek's unsigned arithmetic would report ~2**64 here
    if size != 0:
        size -= 1
    if EP[f, e, FIN_CNT] and size != 0:
        size -= 1
    missed = 0
    if ack64 > last64:
        missed += ack64 - last64
    for h in range(EP[f, e, NHOLES]):
        missed += HOLES[f, e, h, 1] - HOLES[f, e, h, 0]
    missed += EP[f, e, LOST]
    if missed > size:
        missed = size
    return size, missed


@njit(**_J)
def finalize(FI, EP, HOLES, HIST, fids, out):
    """Per ended flow: orig_bytes, resp_bytes, missed_bytes, conn_state code."""
    for j in range(len(fids)):
        f = fids[j]
        proto = FI[f, PROTO]
        if proto == 6:
            ob, om = _size(EP, HOLES, f, 0)
            rb, rm = _size(EP, HOLES, f, 1)
            os_ = EP[f, 0, STATE]
            rs = EP[f, 1, STATE]
            o_in = os_ == INACTIVE or os_ == PARTIAL
            r_in = rs == INACTIVE or rs == PARTIAL
            if rs == RESET:
                if os_ == SYN_SENT or os_ == SYN_ACK_SENT or (os_ == RESET and ob == 0 and rb == 0):
                    st = 4
                elif o_in:
                    st = 10
                else:
                    st = 8
            elif os_ == RESET:
                if r_in:
                    # RSTOS0 when the history is ^?S[^HAFGIQ]*R.*
                    st = 0
                    n = FI[f, HIST_LEN]
                    k = 0
                    if n > 0 and HIST[f, 0] == 94:
                        k = 1
                    if k < n and HIST[f, k] == 83:
                        k += 1
                        while k < n:
                            c = HIST[f, k]
                            if c == 82:
                                st = 9
                                break
                            if c == 72 or c == 65 or c == 70 or c == 71 or c == 73 or c == 81:
                                break
                            k += 1
                else:
                    st = 7
            elif rs == CLOSED and os_ == CLOSED:
                st = 3
            elif os_ == CLOSED:
                st = 11 if r_in else 5
            elif rs == CLOSED:
                st = 12 if o_in else 6
            elif os_ == SYN_SENT and rs == INACTIVE:
                st = 1
            elif os_ == ESTABLISHED and rs == ESTABLISHED:
                st = 2
            else:
                st = 0
            out[j, 0] = ob
            out[j, 1] = rb
            out[j, 2] = om + rm
            out[j, 3] = st
        elif proto == 17:
            out[j, 0] = FI[f, OBYTES]
            out[j, 1] = FI[f, RBYTES]
            out[j, 2] = 0
            if FI[f, OPK]:
                out[j, 3] = 3 if FI[f, RPK] else 1
            else:
                out[j, 3] = 12 if FI[f, RPK] else 0
        else:
            if proto == 1 or proto == 58:
                out[j, 0] = FI[f, OBYTES]
                out[j, 1] = FI[f, RBYTES]
            else:
                out[j, 0] = 0
                out[j, 1] = 0
            out[j, 2] = 0
            out[j, 3] = 0
