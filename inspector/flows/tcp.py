"""TCP connection semantics as Zeek's conn.log defines them.

Endpoint states, the per-packet update order, ``history`` letters, sizes from
sequence space and ``conn_state`` follow Zeek's TCP analyzer so that our
``conn.log``-style records agree with Zeek's on the same trace.  Written from
the documented behaviour and checked against Zeek's baselines in
../shared/corpus (tests/test_conformance_flows.py).

Differences on purpose:
* checksums are not validated (captures from DC hosts are full of offloaded
  checksums; Zeek users run it with ``-C`` for the same reason);
* when the first data of a direction lands more than 1 MiB past the initial
  sequence number (a bogus SYN, SYN-ACK or first ACK number: the failure that
  turns a tiny flow into gigabytes in Zeek), the direction is re-based on that
  data, with a ``tcp.initial_seq_jump`` weird.  Gaps later in a stream are real
  missed data and stay counted (Zeek's large-file baseline agrees).
"""
from __future__ import annotations

import heapq
import re

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
HANDSHAKE = (INACTIVE, SYN_SENT, SYN_ACK_SENT)

FIN, SYN, RST, PSH, ACK, URG = 1, 2, 4, 8, 16, 32
M32 = 0xFFFFFFFF
TOO_LARGE_SEQ_DELTA = 1048576
MAX_HOLES = 8          # sequence gaps tracked per direction (the kernel has the same bound)

# History masks (resp side shifted by 16), as in Zeek.
H_SYN, H_FIN, H_RST, H_FIN_RST, H_DATA, H_ACK, H_MULTI = 1, 2, 4, 8, 0x10, 0x20, 0x40

TCP_INACTIVITY = 300.0
HANDSHAKE_INACTIVITY = 60.0   # Zeek starts TCP with the UDP timeout until the handshake is done
ATTEMPT_DELAY = 5.0
CLOSE_DELAY = 5.0
SESSION_TIMER = 6.0
SYN_TIMEOUT = 5.0
LINGER = 5.0

_RSTOS0 = re.compile(r"^\^?S[^HAFGIQ]*R.*$")


def seq_delta(a: int, b: int) -> int:
    return ((a - b + 0x80000000) & M32) - 0x80000000


class Endpoint:
    __slots__ = ("is_orig", "state", "prev_state", "start_seq", "last_seq", "ack_seq", "seq_wraps", "ack_wraps",
                 "fin_cnt", "rst_cnt", "did_close", "h_syn", "h_fin", "h_rst", "rxmt_cnt", "rxmt_thresh",
                 "win0_cnt", "win0_thresh", "seen", "holes", "lost")

    def __init__(self, is_orig: bool):
        self.is_orig = is_orig
        self.state = INACTIVE
        self.prev_state = INACTIVE
        self.start_seq = 0
        self.last_seq = 0
        self.ack_seq = 0
        self.seq_wraps = 0
        self.ack_wraps = 0
        self.fin_cnt = 0
        self.rst_cnt = 0
        self.did_close = False
        self.h_syn = 0
        self.h_fin = 0
        self.h_rst = 0
        self.rxmt_cnt = 0
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.seen = 0          # payload bytes that advanced the sequence space (counted once)
        self.holes = None      # list of [start, end) gaps in 64-bit sequence space, or None
        self.lost = 0          # gap bytes beyond the MAX_HOLES tracked gaps (never filled)

    def set_state(self, new: int, conn) -> None:
        if new != self.state:
            if new not in HANDSHAKE and self.state in HANDSHAKE:
                peer = conn.resp if self.is_orig else conn.orig
                if peer.state in HANDSHAKE:
                    conn.inactivity = TCP_INACTIVITY
            self.prev_state = self.state
            self.state = new

    def init_seqs(self, start: int, last: int) -> None:
        self.start_seq = start & M32
        self.ack_seq = start & M32
        self.last_seq = last & M32

    def update_last(self, seq: int) -> None:
        if seq < self.last_seq:
            self.seq_wraps += 1
        self.last_seq = seq

    def update_ack(self, seq: int) -> None:
        if seq < self.ack_seq:
            self.ack_wraps += 1
        self.ack_seq = seq

    def full_last(self) -> int:
        return (self.seq_wraps << 32) | self.last_seq

    def full_ack(self) -> int:
        return (self.ack_wraps << 32) | self.ack_seq

    def no_data_acked(self) -> bool:
        a = self.full_ack()
        return a == self.start_seq or a == self.start_seq + 1

    def zeek_size(self, peer: "Endpoint") -> tuple[int, int]:
        """(size, missed): Zeek's Size(), and the bytes acked or skipped but never seen."""
        if self.prev_state == SYN_SENT and self.state == RESET and peer.state == INACTIVE \
                and not self.no_data_acked():
            return 0, 0
        last64 = self.full_last()
        ack64 = self.full_ack()
        top = last64 if last64 > ack64 else ack64
        size = (top - self.start_seq) & 0xFFFFFFFFFFFFFFFF
        if size:
            size -= 1
        if self.fin_cnt and size:
            size -= 1
        missed = 0
        if ack64 > last64:
            missed += ack64 - last64
        if self.holes:
            missed += sum(e - s for s, e in self.holes)
        missed += self.lost
        return size, min(missed, size)


class TCPState:
    """TCP part of a connection: both endpoints plus the Zeek-side flags."""
    __slots__ = ("orig", "resp", "is_partial", "first_seen", "hist_seen", "history", "inactivity",
                 "timers", "flipped", "weirds", "syn_ts")

    def __init__(self):
        self.orig = Endpoint(True)
        self.resp = Endpoint(False)
        self.is_partial = False
        self.first_seen = 0
        self.hist_seen = 0
        self.history = []
        self.inactivity = HANDSHAKE_INACTIVITY
        self.timers = []       # (time, kind): "expire", "attempt", "delete"
        self.flipped = False
        self.weirds = []
        self.syn_ts = None

    # -- history ------------------------------------------------------------
    def check_history(self, mask: int, code: str, is_orig: bool) -> bool:
        """Add ``code`` the first time its bit is seen for that side; True when added now (a repeat
        SYN/FIN/RST is added again by the caller only at a new sequence number, as Zeek does)."""
        if not is_orig:
            mask <<= 16
            code = code.lower()
        if not self.hist_seen & mask:
            self.hist_seen |= mask
            self.history.append(code)
            return True
        return False

    def add_history(self, code: str, is_orig: bool) -> None:
        self.history.append(code if is_orig else code.lower())

    def scaled(self, ep: Endpoint, code: str, kind: str) -> None:
        if kind == "T":
            ep.rxmt_cnt += 1
            if ep.rxmt_cnt == ep.rxmt_thresh:
                self.add_history(code, ep.is_orig)
                ep.rxmt_thresh *= 10
        else:
            ep.win0_cnt += 1
            if ep.win0_cnt == ep.win0_thresh:
                self.add_history(code, ep.is_orig)
                ep.win0_thresh *= 10

    def flip(self) -> None:
        self.orig, self.resp = self.resp, self.orig
        self.orig.is_orig = True
        self.resp.is_orig = False
        fs = self.first_seen
        self.first_seen = (2 if fs & 1 else 0) | (1 if fs & 2 else 0)
        self.is_partial = False
        # hist_seen stays: Zeek's Connection::FlipRoles keeps the letters seen per role.
        self.history.append("^")
        self.flipped = not self.flipped

    def is_closed(self) -> bool:
        return self.orig.did_close or self.resp.did_close

    # -- timers (evaluated lazily, in packet time) ---------------------------------
    def add_timer(self, t: float, kind: str) -> None:
        heapq.heappush(self.timers, (t, kind))

    def removal_time(self, conn, now: float) -> float | None:
        """If Zeek would have removed this connection before ``now``, when; else None.

        Timers that fire before ``now`` are consumed: the connection's state cannot
        change between its packets, so evaluating them at the next packet (or at a
        sweep) gives the same answer Zeek's timer manager gives.
        """
        inact = conn.last_ts + self.inactivity
        o, r = self.orig, self.resp
        timers = self.timers
        while timers and timers[0][0] < now:
            t, kind = heapq.heappop(timers)
            if t > inact:
                heapq.heappush(timers, (t, kind))
                break
            if kind == "delete":
                return t
            if kind == "attempt":
                if o.state in (SYN_SENT, SYN_ACK_SENT) and r.state == INACTIVE:
                    return t
            elif kind == "expire":
                if conn.last_ts + LINGER < t:
                    if o.did_close or r.did_close:
                        if (o.did_close and r.did_close) or o.state == RESET or r.state == RESET \
                                or o.state == INACTIVE or r.state == INACTIVE:
                            return t
                    if r.state == INACTIVE and o.state == INACTIVE:
                        return t
                    # The condition cannot change until the next packet: keep one timer pending.
                    nxt = t + SESSION_TIMER * max(1, int((now - t) // SESSION_TIMER))
                else:
                    nxt = t + SESSION_TIMER
                heapq.heappush(timers, (nxt, "expire"))
        if inact < now:
            return inact
        return None

    # -- reuse -----------------------------------------------------------------
    def is_reuse(self, flags: int, seq: int) -> bool:
        if not flags & SYN:
            return False
        conn_orig = self.orig
        if flags & ACK:
            if self.orig.state != INACTIVE:
                return False
            conn_orig = self.resp
        if not self.is_closed():
            if seq == conn_orig.start_seq:
                return False
            if not flags & ACK and conn_orig.state == SYN_ACK_SENT and self.resp.state == INACTIVE \
                    and seq == self.resp.start_seq:
                return False
        return True

    # -- the per-packet update ---------------------------------------------------
    def packet(self, conn, is_orig: bool, fl: int, seq: int, ack: int, length: int, win: int, ts: float) -> None:
        ep = self.orig if is_orig else self.resp
        peer = self.resp if is_orig else self.orig
        syn = fl & SYN
        fin = fl & FIN
        rst = fl & RST
        ackf = fl & ACK

        # SetPartialStatus
        if is_orig:
            if not self.first_seen & 1:
                self.is_partial = (not syn) or bool(ackf)
        elif not self.first_seen & 2 and not self.is_partial:
            self.is_partial = not syn

        seg_len = length + (1 if syn else 0) + (1 if fin else 0) - (length if rst else 0)
        seq_end = (seq + seg_len) & M32

        # init_endpoint
        st = ep.state
        if st == INACTIVE:
            if syn:
                ep.init_seqs(seq, seq_end)
            else:
                ep.init_seqs(seq - 1, seq)
        elif st in (SYN_SENT, SYN_ACK_SENT):
            if syn and seq != ep.start_seq:
                self.weirds.append(("tcp.syn_seq_jump", ""))
                ep.init_seqs(seq, seq_end)
        elif st in (ESTABLISHED, PARTIAL):
            if syn:
                ep.init_seqs(seq, seq_end)
        elif st == RESET:
            if syn and ep.prev_state == INACTIVE:
                ep.init_seqs(seq, seq_end)

        # relative sequence (for history bookkeeping)
        rel_seq, underflow = _relative(ep, seq, ep.last_seq, ep.seq_wraps)

        # update_history
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self.check_history(H_FIN_RST, "I", is_orig)
            else:
                self.check_history(H_MULTI, "Q", is_orig)
        elif bits == 1:
            if syn:
                code = "H" if ackf else "S"
                if not self.check_history(H_SYN, code, is_orig) and rel_seq != ep.h_syn:
                    self.add_history(code, is_orig)
                ep.h_syn = rel_seq
            if fin:
                if not self.check_history(H_FIN, "F", is_orig) and rel_seq + length != ep.h_fin:
                    self.add_history("F", is_orig)
                ep.h_fin = rel_seq + length
            if rst:
                if not self.check_history(H_RST, "R", is_orig) and rel_seq != ep.h_rst:
                    self.add_history("R", is_orig)
                ep.h_rst = rel_seq
        else:
            if length:
                self.check_history(H_DATA, "D", is_orig)
            elif ackf:
                self.check_history(H_ACK, "A", is_orig)

        # update_window: zero windows
        if win == 0 and not rst and peer.state != CLOSED and ep.state != RESET:
            self.scaled(ep, "W", "W")

        if not (self.orig.did_close and self.resp.did_close):
            conn.last_ts = ts

        if fin:
            ep.fin_cnt += 1
        if rst:
            ep.rst_cnt += 1

        if ackf:
            if peer.state == INACTIVE:
                peer.init_seqs(ack - 1, ack - 1)
            else:
                _rel_ack, ack_under = _relative(peer, ack, peer.ack_seq, peer.ack_wraps)
                if not ack_under and not rst:
                    d = seq_delta(ack, peer.ack_seq)
                    if ack == 0 and d > TOO_LARGE_SEQ_DELTA:
                        pass
                    elif d > 0:
                        peer.update_ack(ack)

        # update_last_seq
        delta_last = seq_delta(seq_end, ep.last_seq)
        if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
            pass
        elif fin and ep.last_seq == ((ep.start_seq + 1) & M32):
            ep.update_last(seq_end)
        elif ep.state == RESET:
            pass
        elif delta_last > 0:
            if length and not rst:
                old = ep.full_last()
                start64 = old + seq_delta(seq, ep.last_seq)
                if ep.seen == 0 and not ep.holes and start64 - old > TOO_LARGE_SEQ_DELTA \
                        and old - ep.start_seq <= 1:
                    # The first data lands far beyond the initial sequence number: the SYN or
                    # SYN-ACK (or the ACK that initialised this side) carried a bogus number.
                    # Re-base instead of reporting the jump as gigabytes of missed data.
                    self.weirds.append(("tcp.initial_seq_jump",
                                        f"first data {start64 - old} bytes past the initial sequence number"))
                    ep.start_seq = (seq - 1) & M32
                    ep.ack_seq = ep.start_seq
                    ep.last_seq = seq & M32
                    ep.seq_wraps = ep.ack_wraps = 0
                    old = start64 = ep.full_last()
                if start64 > old:
                    # A gap in sequence space before this segment.
                    if ep.holes is None:
                        ep.holes = []
                    if len(ep.holes) < MAX_HOLES:
                        ep.holes.append([old, start64])
                    else:
                        self.weirds.append(("tcp.too_many_gaps", f"more than {MAX_HOLES} sequence gaps in one direction"))
                        ep.lost += start64 - old
                    ep.seen += length
                else:
                    ep.seen += min(length, delta_last)
            ep.update_last(seq_end)
        elif length > 0:
            self.scaled(ep, "T", "T")
            if ep.holes and not rst:
                _fill_holes(ep, seq, length)

        # UpdateStateMachine
        do_close = False
        gen_event = False
        st = ep.state
        if st == INACTIVE:
            do_close, gen_event = self._inactive(conn, ep, peer, seq, ack, length, is_orig, fl, ts)
        elif st in (SYN_SENT, SYN_ACK_SENT):
            if fin:
                ep.set_state(CLOSED, self)
                do_close = gen_event = True
            if rst:
                ep.set_state(RESET, self)
                do_close = True
        elif st in (ESTABLISHED, PARTIAL):
            if syn and st == PARTIAL and peer.state == INACTIVE and not ackf:
                ep.set_state(SYN_SENT, self)
            if fin and not rst:
                ep.set_state(CLOSED, self)
                if peer.state == RESET and peer.prev_state == CLOSED:
                    peer.set_state(CLOSED, self)
                do_close = gen_event = True
            if rst:
                ep.set_state(RESET, self)
                do_close = True
        elif st == CLOSED:
            if rst and peer.state != CLOSED:
                ep.set_state(RESET, self)
                if not ep.did_close:
                    do_close = True
        # RESET: nothing changes

        # CheckPIA_FirstPacket
        self.first_seen |= 1 if is_orig else 2

        if do_close:
            self._closed(conn, ep, peer)

    def _inactive(self, conn, ep, peer, seq, ack, length, is_orig, fl, ts):
        do_close = gen_event = False
        syn, fin, rst, ackf = fl & SYN, fl & FIN, fl & RST, fl & ACK
        if syn:
            if is_orig:
                ep.set_state(SYN_ACK_SENT if ackf else SYN_SENT, self)
                self.add_timer(ts + ATTEMPT_DELAY, "attempt")
            else:
                if ackf:
                    pass
                elif peer.state == SYN_ACK_SENT and seq == ep.start_seq:
                    # SYN/SYN-ACK reversal: flip the endpoints and establish.
                    self.is_partial = False
                    conn.flip()
                    peer.set_state(ESTABLISHED, self)
                    self.first_seen |= 1 if ep is self.orig else 2
                if peer.state == SYN_SENT:
                    peer.set_state(ESTABLISHED, self)
                ep.set_state(ESTABLISHED, self)
        if fin:
            ep.set_state(CLOSED, self)
            do_close = gen_event = True
        if rst:
            ep.set_state(RESET, self)
            do_close = True
        if ep.state == INACTIVE:
            if not is_orig and length == 0 and self.orig.state == SYN_SENT:
                pass
            elif ackf and peer.state == ESTABLISHED:
                ep.set_state(ESTABLISHED, self)
                self.is_partial = False
                self.first_seen |= 1 if is_orig else 2
            else:
                ep.set_state(PARTIAL, self)
        return do_close, gen_event

    def _closed(self, conn, ep, peer) -> None:
        if ep.did_close:
            return
        ep.did_close = True
        close_complete = ep.state == RESET or peer.did_close or peer.state == INACTIVE
        if close_complete:
            self.add_timer(conn.last_ts + CLOSE_DELAY, "delete")
        elif ep.prev_state != INACTIVE:
            self.add_timer(conn.last_ts + SESSION_TIMER, "expire")

    # -- results -------------------------------------------------------------------
    def conn_state(self) -> str:
        os_, rs = self.orig.state, self.resp.state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and self.sizes()[:2] == (0, 0)):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.match("".join(self.history)) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    def sizes(self) -> tuple[int, int, int]:
        """(orig_bytes, resp_bytes, missed_bytes) from sequence space."""
        o, om = self.orig.zeek_size(self.resp)
        r, rm = self.resp.zeek_size(self.orig)
        return o, r, om + rm


def _relative(ep: Endpoint, cur: int, last: int, wraps: int) -> tuple[int, bool]:
    delta = seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d = seq_delta(cur, ep.start_seq)
        return d, d < 0
    return ((wraps << 32) | cur) - ep.start_seq, False


def _fill_holes(ep: Endpoint, seq: int, length: int) -> None:
    """A late (out-of-order or retransmitted) segment fills part of a gap."""
    last64 = ep.full_last()
    s = last64 + seq_delta(seq, ep.last_seq)
    e = s + length
    new = []
    for hs, he in ep.holes:
        if e <= hs or s >= he:
            new.append([hs, he])
            continue
        ep.seen += min(e, he) - max(s, hs)
        if s > hs:
            new.append([hs, s])
        if e < he:
            new.append([e, he])
    if len(new) > MAX_HOLES:
        for hs, he in new[MAX_HOLES:]:
            ep.lost += he - hs
        new = new[:MAX_HOLES]
    ep.holes = new
