"""TCP reassembly edge cases (inspector.streams.Reassembler)."""
from __future__ import annotations

from inspector.streams import ReassemblyBudget, Reassembler


def _data(events):
    return b"".join(v for k, v in events if k == "data")


def _r(**kw):
    return Reassembler(ReassemblyBudget(kw.pop("cap", 1 << 20)), **kw)


def test_in_order_after_syn():
    r = _r()
    r.syn(1000)                       # data starts at 1001
    assert r.add(1001, b"GET / ") == [("data", b"GET / ")]
    assert r.add(1007, b"HTTP/1.1") == [("data", b"HTTP/1.1")]
    assert r.delivered == 14


def test_out_of_order_waits_for_the_hole():
    r = _r()
    r.syn(0)
    assert r.add(6, b"world") == []           # bytes 6..10 arrive before 1..5
    assert r.buffered == 5
    ev = r.add(1, b"hello")
    assert _data(ev) == b"helloworld"
    assert r.buffered == 0


def test_retransmission_counted_once_and_consistent():
    r = _r()
    r.syn(0)
    r.add(1, b"abcdef")
    assert r.add(1, b"abcdef") == []          # exact retransmission: nothing new
    assert r.add(4, b"defgh") == [("data", b"gh")]   # partial retransmission: only the new tail
    assert r.retransmitted == 2
    assert r.inconsistent == 0


def test_overlap_with_different_data_first_copy_wins():
    r = _r()
    r.syn(0)
    r.add(1, b"abcdef")
    ev = r.add(4, b"XYZgh")                   # rewrites d,e,f: the first copy stands
    assert _data(ev) == b"gh"
    assert r.inconsistent == 1


def test_overlapping_out_of_order_segments_first_copy_wins():
    r = _r()
    r.syn(0)
    r.add(5, b"EFGH")                         # waits
    r.add(3, b"cdXXYYIJ")                     # covers the waiting 5..8 with different bytes, then 9..10
    assert r.inconsistent == 1
    ev = r.add(1, b"ab")
    assert _data(ev) == b"abcdEFGHIJ"


def test_gap_declared_at_flush():
    r = _r()
    r.syn(0)
    r.add(1, b"abc")
    assert r.add(10, b"xyz") == []            # bytes 4..9 never come
    ev = r.flush()
    assert ev == [("gap", 6), ("data", b"xyz")]
    assert r.gaps == 1


def test_gap_declared_when_buffer_budget_is_exceeded():
    r = _r(max_buffer=8)
    r.syn(0)
    r.add(1, b"a")
    ev = r.add(100, b"0123456789")            # 10 bytes waiting > 8: give up on the hole
    assert ev == [("gap", 98), ("data", b"0123456789")]


def test_global_memory_cap():
    budget = ReassemblyBudget(cap=16)
    a, b = Reassembler(budget), Reassembler(budget)
    a.syn(0)
    b.syn(0)
    a.add(50, b"x" * 10)                      # 10 waiting
    ev = b.add(50, b"y" * 10)                 # 20 > 16: b gives up its hole
    assert ev[0] == ("gap", 49)
    assert budget.cap_hits == 1
    assert budget.used == 10


def test_sequence_wraparound():
    r = _r()
    isn = 0xFFFFFFF0
    r.syn(isn)                                 # data starts at 0xFFFFFFF1
    ev = r.add(0xFFFFFFF1, b"A" * 15)          # up to 0xFFFFFFFF inclusive
    ev += r.add(0x00000000, b"B" * 10)         # wrapped
    assert _data(ev) == b"A" * 15 + b"B" * 10
    assert r.add(0xFFFFFFFA, b"A" * 6) == []    # an old retransmission across the wrap
    assert r.inconsistent == 0


def test_wraparound_out_of_order():
    r = _r()
    r.syn(0xFFFFFFFD)                          # data starts at 0xFFFFFFFE
    assert r.add(0x00000001, b"cd") == []      # after the wrap, early
    ev = r.add(0xFFFFFFFE, b"ab\x00")
    assert _data(ev) == b"ab\x00cd"


def test_partial_connection_starts_at_first_segment():
    r = _r()
    assert r.add(5000, b"mid-stream") == [("data", b"mid-stream")]


def test_release_returns_budget():
    budget = ReassemblyBudget()
    r = Reassembler(budget)
    r.syn(0)
    r.add(10, b"abc")
    assert budget.used == 3
    r.release()
    assert budget.used == 0
