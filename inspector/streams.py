"""TCP stream reassembly, per connection direction, bounded.

``Reassembler.add(seq, data)`` takes segments in capture order and returns the
events for the analyzers, in sequence order: ``("data", bytes)`` and
``("gap", n)``.  Semantics, as in Zeek and Suricata:

* sequence numbers are unwrapped to 64 bits around the next expected byte, so a
  stream may cross 2**32;
* retransmissions and overlaps: the first copy of a byte wins; a later copy that
  disagrees with it is reported (``inconsistent`` counter, and a
  ``tcp.inconsistent_retransmission`` weird from the caller);
* out-of-order segments wait in a bounded buffer until the hole before them is
  filled; when the buffer is over its budget (or at ``flush``), the hole is
  declared a gap and delivery goes on after it;
* a global cap (``ReassemblyBudget``) bounds the bytes waiting across all
  connections; hitting it forces the connection that needs memory to give up
  its holes (a ``tcp.reassembly_memory_cap`` weird).
"""
from __future__ import annotations

M32 = 0xFFFFFFFF
KEEP_DELIVERED = 4096      # bytes of delivered history kept to check retransmissions


class ReassemblyBudget:
    """Bytes buffered out of order across all connections."""

    def __init__(self, cap: int = 64 << 20):
        self.cap = cap
        self.used = 0
        self.cap_hits = 0


def _delta(a: int, b: int) -> int:
    return ((a - b + 0x80000000) & M32) - 0x80000000


class Reassembler:
    __slots__ = ("next", "segs", "buffered", "budget", "max_buffer", "history", "inconsistent", "gaps",
                 "delivered", "started", "retransmitted")

    def __init__(self, budget: ReassemblyBudget, max_buffer: int = 256 << 10):
        self.next = None           # next expected byte, 64-bit (None until the first segment)
        self.segs = {}             # 64-bit position -> bytes, waiting for a hole to fill
        self.buffered = 0
        self.budget = budget
        self.max_buffer = max_buffer
        self.history = b""         # the last KEEP_DELIVERED delivered bytes
        self.inconsistent = 0
        self.gaps = 0
        self.delivered = 0
        self.started = False
        self.retransmitted = 0

    def syn(self, seq: int) -> None:
        """A SYN: data starts at seq + 1."""
        if self.next is None:
            self.next = (seq + 1) & M32

    def _pos(self, seq: int) -> int:
        return self.next + _delta(seq, self.next & M32)

    def add(self, seq: int, data: bytes) -> list:
        if not data:
            return []
        if self.next is None:
            self.next = seq
        pos = self._pos(seq)
        end = pos + len(data)
        out: list = []
        if end <= self.next:
            self.retransmitted += 1
            self._check_history(pos, data)
            return out
        if pos < self.next:
            self.retransmitted += 1
            self._check_history(pos, data[:self.next - pos])
            data = data[self.next - pos:]
            pos = self.next
        if pos == self.next:
            self._deliver(data, out)
            self._drain(out)
        else:
            self._store(pos, data, out)
        return out

    def _check_history(self, pos: int, data: bytes) -> None:
        h = self.history
        hstart = self.next - len(h)
        s = max(pos, hstart)
        e = min(pos + len(data), self.next)
        if e > s and data[s - pos:e - pos] != h[s - hstart:e - hstart]:
            self.inconsistent += 1

    def _deliver(self, data: bytes, out: list) -> None:
        out.append(("data", data))
        self.next += len(data)
        self.delivered += len(data)
        h = self.history + data
        self.history = h[-KEEP_DELIVERED:] if len(h) > KEEP_DELIVERED else h

    def _drain(self, out: list) -> None:
        segs = self.segs
        while segs:
            nxt = self.next
            first = min(segs)
            if first > nxt:
                return
            data = segs.pop(first)
            self.buffered -= len(data)
            self.budget.used -= len(data)
            end = first + len(data)
            if end <= nxt:
                self._check_history(first, data)
                continue
            if first < nxt:
                self._check_history(first, data[:nxt - first])
                data = data[nxt - first:]
            self._deliver(data, out)

    def _store(self, pos: int, data: bytes, out: list) -> None:
        # Keep only the parts no waiting segment already covers (first data wins).
        for s in sorted(self.segs):
            sd = self.segs[s]
            e = s + len(sd)
            if e <= pos or s >= pos + len(data):
                continue
            if s <= pos:
                overlap = min(e, pos + len(data)) - pos
                if data[:overlap] != sd[pos - s:pos - s + overlap]:
                    self.inconsistent += 1
                if pos + len(data) <= e:
                    return
                data = data[e - pos:]
                pos = e
            else:
                # an existing segment starts inside the new one: store the head, continue with the rest
                head = data[:s - pos]
                overlap = min(e, pos + len(data)) - s
                if data[s - pos:s - pos + overlap] != sd[:overlap]:
                    self.inconsistent += 1
                self._put(pos, head)
                if pos + len(data) <= e:
                    return
                data = data[e - pos:]
                pos = e
        if data:
            self._put(pos, data)
        if self.buffered > self.max_buffer:
            self._give_up(out)
        elif self.budget.used > self.budget.cap:
            self.budget.cap_hits += 1
            self._give_up(out)

    def _put(self, pos: int, data: bytes) -> None:
        if data:
            self.segs[pos] = data
            self.buffered += len(data)
            self.budget.used += len(data)

    def _give_up(self, out: list) -> None:
        """Declare the holes before the waiting data as gaps and deliver everything waiting."""
        while self.segs:
            first = min(self.segs)
            if first > self.next:
                out.append(("gap", first - self.next))
                self.gaps += 1
                self.next = first
                self.history = b""
            self._drain(out)

    def flush(self) -> list:
        """End of the connection: deliver what waits behind holes."""
        out: list = []
        self._give_up(out)
        return out

    def release(self) -> None:
        """Forget buffered data (connection done or analysis stopped)."""
        self.budget.used -= self.buffered
        self.buffered = 0
        self.segs = {}
        self.history = b""
