"""Passive DNS ordering and CNAME chains (inspector.enrich.pdns)."""
from __future__ import annotations

from inspector.enrich.pdns import PassiveDNS


def test_name_only_from_answers_before_the_connection():
    p = PassiveDNS()
    p.answer("api.ups.com", "153.2.238.50", "A", 300, ts=100.0)
    assert p.name_for("153.2.238.50", 99.0) is None      # the connection started before the answer
    assert p.name_for("153.2.238.50", 100.0) == "api.ups.com"
    assert p.name_for("153.2.238.50", 150.0) == "api.ups.com"


def test_cname_chain_names_the_address_by_the_name_asked_for():
    p = PassiveDNS()
    p.answer("www.shop.example", "shop.edgekey.net", "CNAME", 60, ts=10.0)
    p.answer("shop.edgekey.net", "e123.a.akamaiedge.net", "CNAME", 20, ts=10.0)
    p.answer("e123.a.akamaiedge.net", "192.0.2.7", "A", 20, ts=10.0)
    assert p.name_for("192.0.2.7", 11.0) == "www.shop.example"


def test_cname_loop_is_safe():
    p = PassiveDNS()
    p.answer("a.example", "b.example", "CNAME", 60, 1.0)
    p.answer("b.example", "a.example", "CNAME", 60, 1.0)
    p.answer("a.example", "198.51.100.1", "A", 60, 1.0)
    assert p.name_for("198.51.100.1", 2.0) in ("a.example", "b.example")


def test_fresh_answer_preferred_over_expired_one():
    p = PassiveDNS()
    p.answer("old.example", "203.0.113.5", "A", 10, ts=0.0)
    p.answer("new.example", "203.0.113.5", "A", 10, ts=50.0)
    assert p.name_for("203.0.113.5", 5.0) == "old.example"
    assert p.name_for("203.0.113.5", 55.0) == "new.example"
    # past every TTL the latest older answer still names it
    assert p.name_for("203.0.113.5", 500.0) == "new.example"


def test_aaaa_and_case_and_trailing_dot():
    p = PassiveDNS()
    p.answer("API.DHL.COM.", "2001:db8::50", "AAAA", 60, 1.0)
    assert p.name_for("2001:db8::50", 2.0) == "api.dhl.com"


def test_bounded():
    p = PassiveDNS(max_addrs=100)
    for i in range(1000):
        p.answer(f"h{i}.example", f"10.0.{i // 256}.{i % 256}", "A", 60, float(i))
    assert len(p.addrs) == 100
    assert p.name_for("10.0.3.231", 2000.0) == "h999.example"
