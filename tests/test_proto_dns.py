"""DNS analyzer (inspector/protocols/dns.py): annotated-bytes unit tests and
corpus cross-checks.

Unit tests build every message field by field (``hdr``, ``qname``, ``question``,
``rr``) so a test reads like the wire format.  Corpus tests extract UDP/TCP
payloads with dpkt (no inspector code involved) and compare the analyzer's
dns.log records with Zeek's baselines, and single messages with the
``dns.*`` checks of suricata-verify tests.

``pcap_flows`` / ``tcp_chunks`` / ``FakeSink`` / ``make_ctx`` are shared with
test_proto_misc.py.
"""
from __future__ import annotations

import gzip
import ipaddress
import json
import random
import re
import socket
import struct
import warnings
from collections import Counter
from pathlib import Path

import pytest

from inspector.protocols import dns
from inspector.protocols.base import FlowContext

# ---------------------------------------------------------------------------
# Shared helpers: a fake dispatcher sink and a context
# ---------------------------------------------------------------------------


class FakeSink:
    """Collects what analyzers send through their FlowContext."""

    def __init__(self):
        self.records: dict[str, list] = {}
        self.weirds: list = []
        self.answers: list = []
        self.hostnames: list = []

    def emit(self, log, record):
        self.records.setdefault(log, []).append(record)

    def weird(self, ctx, name, detail, ts):
        self.weirds.append((name, detail))

    def dns_answer(self, query, answer, rtype, ttl, ts):
        self.answers.append((query, answer, rtype, ttl))

    def hostname(self, ctx, source, name, ts):
        self.hostnames.append((source, name))

    def expect(self, *a):
        pass

    def weird_names(self):
        return {n for n, _ in self.weirds}


def make_ctx(sink=None, orig=("10.0.0.1", 40000), resp=("10.0.0.53", 53), transport="udp", uid="Cdns1"):
    return FlowContext(uid=uid, ts=1000.0, orig_h=orig[0], orig_p=orig[1], resp_h=resp[0], resp_p=resp[1],
                       transport=transport, sink=sink if sink is not None else FakeSink())


# ---------------------------------------------------------------------------
# Annotated DNS builders
# ---------------------------------------------------------------------------

QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080


def hdr(tid, flags=0, qd=1, an=0, ns=0, ar=0, opcode=0, rcode=0):
    return struct.pack("!HHHHHH",
                       tid,                                        # transaction id
                       flags | (opcode << 11) | rcode,             # QR|opcode|AA|TC|RD|RA|Z|rcode
                       qd, an, ns, ar)                             # section counts


def qname(name: str) -> bytes:
    """Uncompressed wire name: length-prefixed labels then the root (0)."""
    out = b""
    for label in name.split(".") if name else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def ptr(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)                       # compression pointer


def question(name: bytes, qtype=1, qclass=1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def rr(name: bytes, rtype: int, rdata: bytes, ttl=300, rclass=1) -> bytes:
    return name + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def a(ip):
    return socket.inet_aton(ip)


def aaaa(ip):
    return socket.inet_pton(socket.AF_INET6, ip)


def tcp_frame(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg                        # RFC 1035 4.2.2 length prefix


QUERY = hdr(0x1234, RD) + question(qname("www.example.com"))            # offset 12: the qname
RESPONSE = (hdr(0x1234, QR | RD | RA, an=2)
            + question(qname("www.example.com"))
            + rr(ptr(12), 5, qname("edge.cdn.example.net"), ttl=60)     # CNAME, owner = ptr to question
            + rr(ptr(45), 1, a("192.0.2.7"), ttl=20))                   # A, owner = ptr to the CNAME target
# offset of the CNAME rdata: 12 + 17 (qname) + 4 (type/class) + 2 (ptr) + 10 (rr header) = 45
assert RESPONSE[45:46] == b"\x04"


def run_udp(messages, ctx=None):
    """messages: [(is_orig, bytes, ts)] -> (sink, analyzer)"""
    ctx = ctx or make_ctx()
    an = dns.Analyzer(ctx)
    for o, m, ts in messages:
        an.datagram(o, m, ts)
    an.done(messages[-1][2] + 1 if messages else 0)
    return ctx.sink, an


def dnslog(sink):
    return sink.records.get("dns", [])


# ---------------------------------------------------------------------------
# Header, questions, basic query/response pairing
# ---------------------------------------------------------------------------

def test_parse_query_fields():
    m = dns.parse_message(QUERY)
    assert (m.id, m.qr, m.opcode, m.rd, m.tc, m.z, m.rcode) == (0x1234, False, 0, True, False, 0, 0)
    assert [(q.name, q.qtype, q.qclass) for q in m.questions] == [("www.example.com", 1, 1)]
    assert m.complete and not m.weirds


def test_query_response_pair_is_one_zeek_record():
    sink, _ = run_udp([(True, QUERY, 10.0), (False, RESPONSE, 10.25)])
    [r] = dnslog(sink)
    assert list(r) == list(dns.FIELDS)
    assert r["trans_id"] == 0x1234 and r["query"] == "www.example.com"
    assert (r["qtype"], r["qtype_name"], r["qclass"], r["qclass_name"]) == (1, "A", 1, "C_INTERNET")
    assert (r["rcode"], r["rcode_name"]) == (0, "NOERROR")
    assert (r["AA"], r["TC"], r["RD"], r["RA"], r["Z"], r["rejected"]) == (False, False, True, True, 0, False)
    assert r["answers"] == ["edge.cdn.example.net", "192.0.2.7"]
    assert r["TTLs"] == [60.0, 20.0]
    assert r["rtt"] == pytest.approx(0.25)
    assert r["ts"] == 10.0 and r["uid"] == "Cdns1" and r["proto"] == "udp"
    assert (r["opcode"], r["opcode_name"]) == (0, "query")
    assert sink.weirds == []


def test_confirm_service():
    ctx = make_ctx()
    run_udp([(True, QUERY, 1.0)], ctx)
    assert ctx.service == ["dns"]


def test_names_are_lowercased_in_log_but_kept_in_parse():
    q = hdr(7, RD) + question(qname("WwW.ExAmple.COM"))
    m = dns.parse_message(q)
    assert m.questions[0].name == "WwW.ExAmple.COM"
    sink, _ = run_udp([(True, q, 1.0)])
    assert dnslog(sink)[0]["query"] == "www.example.com"
    assert dnslog(sink)[0]["original_query"] == "WwW.ExAmple.COM"       # case kept for content analysis
    sink, _ = run_udp([(True, QUERY, 1.0)])
    assert dnslog(sink)[0]["original_query"] is None


def test_unanswered_query_logged_at_done():
    sink, _ = run_udp([(True, QUERY, 5.0)])
    [r] = dnslog(sink)
    assert r["query"] == "www.example.com" and r["rcode"] is None and r["answers"] is None and r["rtt"] is None


def test_unmatched_reply_logged_with_weird():
    sink, _ = run_udp([(False, RESPONSE, 5.0)])
    [r] = dnslog(sink)
    # reply only: query comes from the first answer's owner, no qtype/qclass, no rtt
    assert r["query"] == "www.example.com" and r["qtype"] is None and r["rtt"] is None
    assert r["answers"] == ["edge.cdn.example.net", "192.0.2.7"]
    assert "dns.unmatched_reply" in sink.weird_names()


def test_same_trans_id_is_fifo():
    q1 = hdr(9, RD) + question(qname("one.example"))
    q2 = hdr(9, RD) + question(qname("two.example"))
    r1 = hdr(9, QR | RA, an=1) + question(qname("one.example")) + rr(ptr(12), 1, a("198.51.100.1"))
    r2 = hdr(9, QR | RA, an=1) + question(qname("two.example")) + rr(ptr(12), 1, a("198.51.100.2"))
    sink, _ = run_udp([(True, q1, 1.0), (True, q2, 1.1), (False, r1, 1.2), (False, r2, 1.3)])
    got = [(r["query"], r["answers"]) for r in dnslog(sink)]
    assert got == [("one.example", ["198.51.100.1"]), ("two.example", ["198.51.100.2"])]


def test_second_reply_to_same_query_is_its_own_record():
    sink, _ = run_udp([(True, QUERY, 1.0), (False, RESPONSE, 1.1), (False, RESPONSE, 1.2)])
    recs = dnslog(sink)
    assert len(recs) == 2
    assert recs[0]["rtt"] is not None and recs[0]["qtype"] == 1
    assert recs[1]["rtt"] is None and recs[1]["qtype"] is None     # reply only


def test_nxdomain_without_records_is_rejected():
    q = hdr(3, RD) + question(qname("nope.example"))
    r = hdr(3, QR | RD | RA, rcode=3) + question(qname("nope.example"))
    sink, _ = run_udp([(True, q, 1.0), (False, r, 1.1)])
    [rec] = dnslog(sink)
    assert (rec["rcode_name"], rec["rejected"], rec["answers"], rec["rtt"]) == ("NXDOMAIN", True, None, None)


def test_nxdomain_with_soa_authority_is_not_rejected():
    soa = qname("ns1.example") + qname("hostmaster.example") + struct.pack("!IIIII", 1, 7200, 900, 1209600, 86400)
    q = hdr(4, RD) + question(qname("nope.example"))
    r = hdr(4, QR | RD | RA, ns=1, rcode=3) + question(qname("nope.example")) + rr(ptr(12), 6, soa, ttl=899)
    sink, _ = run_udp([(True, q, 1.0), (False, r, 1.1)])
    [rec] = dnslog(sink)
    assert rec["rejected"] is False and rec["answers"] is None    # authority records are not answers
    m = dns.parse_message(r)
    soa_rr = m.authority[0]
    assert soa_rr.extra["mname"] == "ns1.example" and soa_rr.extra["rname"] == "hostmaster.example"
    assert (soa_rr.extra["serial"], soa_rr.extra["minimum"]) == (1, 86400)


# ---------------------------------------------------------------------------
# Name compression and loop protection
# ---------------------------------------------------------------------------

def test_pointer_into_middle_of_name():
    # question www.example.com at 12; "example.com" starts at 12 + 4 = 16
    r = (hdr(1, QR, an=1) + question(qname("www.example.com"))
         + rr(b"\x04mail" + ptr(16), 1, a("192.0.2.1")))           # mail.<ptr to example.com>
    m = dns.parse_message(r)
    assert m.answers[0].name == "mail.example.com" and m.answers[0].value == "192.0.2.1"


def test_pointer_chain_pointer_to_pointer():
    # answer 1 owner = ptr(12); answer 2 owner = ptr to answer 1's owner (itself a pointer)
    body = hdr(1, QR, an=2) + question(qname("a.example"))
    off_rr1 = len(body)
    body += rr(ptr(12), 1, a("192.0.2.1"))
    body += rr(ptr(off_rr1), 1, a("192.0.2.2"))
    m = dns.parse_message(body)
    assert [x.name for x in m.answers] == ["a.example", "a.example"]
    assert m.complete


def test_self_pointer_is_a_loop():
    r = hdr(1, QR, qd=0, an=1) + rr(ptr(12), 1, a("192.0.2.1"))     # owner at 12 points at 12
    m = dns.parse_message(r)
    assert not m.complete and m.answers == []
    assert ("dns.name_loop", "12") in m.weirds


def test_two_pointer_loop():
    # at 12: label "x" then pointer to 17; at 17: label "y" then pointer to 12
    body = hdr(1, QR, qd=0, an=1)
    body += b"\x01x" + ptr(17)                                     # 12..15
    body += b"\x00"                                                # 16 (filler)
    body += b"\x01y" + ptr(12)                                     # 17..20
    m = dns.parse_message(body + struct.pack("!HHIH", 1, 1, 0, 4) + a("192.0.2.1"))
    assert not m.complete
    assert "dns.name_loop" in {w for w, _ in m.weirds}


def test_loop_never_raises_in_analyzer_and_is_a_weird():
    r = hdr(1, QR, qd=1) + ptr(12) + struct.pack("!HH", 1, 1)
    sink, _ = run_udp([(False, r, 1.0)])
    assert "dns.name_loop" in sink.weird_names()


def test_pointer_beyond_message():
    r = hdr(1, 0) + ptr(0x3FFF) + struct.pack("!HH", 1, 1)
    m = dns.parse_message(r)
    assert not m.complete and m.weirds[0][0] == "dns.bad_compression_pointer"


def test_pointer_into_header_is_refused():
    r = hdr(1, 0) + ptr(4) + struct.pack("!HH", 1, 1)
    assert dns.parse_message(r).weirds[0][0] == "dns.bad_compression_pointer"


def test_forward_pointer_is_followed_with_a_weird():
    # question 1 points forward to question 2's name
    body = hdr(1, 0, qd=2)
    q1 = ptr(12 + 2 + 4) + struct.pack("!HH", 1, 1)                # 12..17, q2's name at 18
    q2 = question(qname("codemonkey.net"))
    m = dns.parse_message(body + q1 + q2)
    assert [q.name for q in m.questions] == ["codemonkey.net", "codemonkey.net"]
    assert m.complete and ("dns.forward_compression_pointer", "18") in m.weirds


def test_reserved_label_type():
    m = dns.parse_message(hdr(1, 0) + b"\x41abc\x00" + struct.pack("!HH", 1, 1))
    assert m.weirds[0] == ("dns.bad_label_type", "0x41")


def test_name_too_long_is_bounded():
    labels = b"".join(b"\x3f" + b"a" * 63 for _ in range(20)) + b"\x00"   # 1280 bytes
    m = dns.parse_message(hdr(1, 0) + labels + struct.pack("!HH", 1, 1))
    assert not m.complete and m.weirds[0][0] == "dns.name_too_long"


def test_long_but_bounded_name_is_kept_whole():
    name = ".".join(["b" * 60] * 6)                                   # 366 wire bytes: > 255 but kept
    m = dns.parse_message(hdr(1, 0) + question(qname(name)))
    assert m.questions[0].name == name and ("dns.name_too_long", "366") in m.weirds


def test_non_printable_label_bytes_are_escaped():
    m = dns.parse_message(hdr(1, 0) + b"\x03a\x00b\x02\xff.\x00" + struct.pack("!HH", 16, 1))
    assert m.questions[0].name == "a\\x00b.\\xff."


def test_root_name():
    m = dns.parse_message(hdr(1, 0) + question(b"\x00", 2))
    assert m.questions[0].name == ""


# ---------------------------------------------------------------------------
# CNAME chains and passive DNS
# ---------------------------------------------------------------------------

def test_cname_chain_passive_dns_uses_owner_names():
    body = hdr(5, QR | RD | RA, an=4) + question(qname("shop.example.com"))
    body += rr(ptr(12), 5, qname("shop.cdn.example.net"), ttl=100)
    off1 = len(body) - len(qname("shop.cdn.example.net"))
    body += rr(ptr(off1), 5, qname("e1.edge.example.org"), ttl=50)
    off2 = len(body) - len(qname("e1.edge.example.org"))
    body += rr(ptr(off2), 1, a("203.0.113.5"), ttl=20)
    body += rr(ptr(off2), 28, aaaa("2001:db8::5"), ttl=20)
    q = hdr(5, RD) + question(qname("shop.example.com"))
    sink, _ = run_udp([(True, q, 1.0), (False, body, 1.1)])
    assert sink.answers == [
        ("shop.example.com", "shop.cdn.example.net", "CNAME", 100.0),
        ("shop.cdn.example.net", "e1.edge.example.org", "CNAME", 50.0),
        ("e1.edge.example.org", "203.0.113.5", "A", 20.0),
        ("e1.edge.example.org", "2001:db8::5", "AAAA", 20.0),
    ]
    [r] = dnslog(sink)
    assert r["answers"] == ["shop.cdn.example.net", "e1.edge.example.org", "203.0.113.5", "2001:db8::5"]
    assert r["TTLs"] == [100.0, 50.0, 20.0, 20.0]


def test_passive_dns_ignores_queries_and_additional_section():
    glue = hdr(6, QR, an=0, ar=1) + question(qname("x.example")) + rr(qname("ns.example"), 1, a("192.0.2.9"))
    sink, _ = run_udp([(True, hdr(6, 0, an=1) + question(qname("x.example")) + rr(ptr(12), 1, a("1.2.3.4")), 1.0),
                       (False, glue, 1.1)])
    assert sink.answers == []


def test_passive_dns_lowercases():
    body = hdr(5, QR, an=1) + question(qname("CDN.Example.COM")) + rr(ptr(12), 5, qname("Target.Example.NET"))
    sink, _ = run_udp([(False, body, 1.0)])
    assert sink.answers == [("cdn.example.com", "target.example.net", "CNAME", 300.0)]


# ---------------------------------------------------------------------------
# Record types and Zeek renderings
# ---------------------------------------------------------------------------

def _answers_of(rrs: bytes, n: int, query="t.example", qtype=255):
    body = hdr(8, QR | AA, an=n) + question(qname(query), qtype) + rrs
    sink, _ = run_udp([(True, hdr(8, RD) + question(qname(query), qtype), 1.0), (False, body, 1.5)])
    return dnslog(sink)[0], dns.parse_message(body)


def test_txt_rendering_multiple_strings():
    txt = b"\x05hello" + b"\x00" + b"\x0bv=spf1 -all"                # "hello", "", "v=spf1 -all"
    rec, m = _answers_of(rr(ptr(12), 16, txt), 1)
    assert rec["answers"] == ["TXT 5 hello TXT 0  TXT 11 v=spf1 -all"]
    assert m.answers[0].value == [b"hello", b"", b"v=spf1 -all"]


def test_txt_char_string_past_rdlength():
    txt = b"\x05hello" + b"\x09short"                                # second string claims 9, has 5
    rec, m = _answers_of(rr(ptr(12), 16, txt), 1)
    assert rec["answers"] == ["TXT 5 hello"] and not m.complete
    assert ("dns.txt_char_str_past_rdlen", "") in m.weirds


def test_mx_ns_ptr_srv_soa():
    rrs = (rr(ptr(12), 15, struct.pack("!H", 10) + qname("mx1.example"))
           + rr(ptr(12), 2, qname("ns1.example"))
           + rr(ptr(12), 12, qname("host.example"))
           + rr(ptr(12), 33, struct.pack("!HHH", 1, 5, 5060) + qname("sip.example"))
           + rr(ptr(12), 6, qname("ns1.example") + qname("root.example") + struct.pack("!IIIII", 1, 2, 3, 4, 5)))
    rec, m = _answers_of(rrs, 5)
    assert rec["answers"] == ["mx1.example", "ns1.example", "host.example", "sip.example", "ns1.example"]
    assert m.answers[0].extra == {"preference": 10}
    assert m.answers[3].extra == {"priority": 1, "weight": 5, "port": 5060}


def test_https_svcb_target_parsed_but_not_logged():
    # HTTPS: priority 1, target "svc.example", one SvcParam (alpn h2)
    rdata = struct.pack("!H", 1) + qname("svc.example") + struct.pack("!HH", 1, 3) + b"\x02h2"
    rec, m = _answers_of(rr(ptr(12), 65, rdata), 1)
    assert m.answers[0].value == "svc.example" and m.answers[0].extra == {"priority": 1}
    assert rec["answers"] is None           # Zeek writes nothing for HTTPS/SVCB
    rec, m = _answers_of(rr(ptr(12), 64, struct.pack("!H", 0) + b"\x00"), 1)   # alias form, target "."
    assert m.answers[0].value == ""


def test_dnssec_and_misc_renderings():
    rrsig = struct.pack("!HBBIIIH", 5, 8, 2, 300, 0, 0, 1234) + qname("cmu.edu") + b"sig"
    rrs = (rr(ptr(12), 46, rrsig)
           + rr(ptr(12), 46, struct.pack("!HBBIIIH", 1, 8, 0, 300, 0, 0, 1) + b"\x00" + b"s")
           + rr(ptr(12), 48, struct.pack("!HBB", 257, 3, 8) + b"key")
           + rr(ptr(12), 43, struct.pack("!HBB", 1, 8, 2) + b"d" * 32)
           + rr(ptr(12), 47, qname("next.example") + b"\x00\x01\x40")
           + rr(ptr(12), 44, b"\x01\x01" + bytes.fromhex("a6b95f9e"))
           + rr(ptr(12), 99, b"\x03spf"))
    rec, _ = _answers_of(rrs, 7)
    assert rec["answers"] == ["RRSIG 5 cmu.edu", "RRSIG 1 <Root>", "DNSKEY 8", "DS 8 2",
                              "NSEC t.example next.example", "SSHFP: a6b95f9e", "SPF 3 spf"]


def test_unknown_type_and_wks_and_hinfo():
    rrs = (rr(ptr(12), 0xFF00, b"\x01\x02")                            # unknown
           + rr(ptr(12), 13, b"\x03cpu\x02os")                         # HINFO: nothing
           + rr(ptr(12), 11, a("192.0.2.1") + b"\x06\x00"))            # WKS: "" (rtt set, no answer)
    rec, m = _answers_of(rrs, 3)
    assert rec["answers"] == ["<unknown type=65280>"] and rec["TTLs"] == [300.0]
    assert ("dns.unknown_rr_type", "65280") in m.weirds
    rec, _ = _answers_of(rr(ptr(12), 11, a("192.0.2.1") + b"\x06\x00"), 1)
    assert rec["answers"] is None and rec["rtt"] == pytest.approx(0.5) and rec["AA"] is True


def test_qtype_and_rcode_names_for_unknown_values():
    assert dns.qtype_name(65534) == "query-65534" and dns.qtype_name(65) == "HTTPS"
    assert dns.rcode_name(3842) == "BADSIG" and dns.rcode_name(99) == "rcode-99"
    assert dns.qclass_name(0x8001) == "qclass-32769"


def test_a_record_with_bad_length_stops_the_message():
    rrs = rr(ptr(12), 1, b"\x01\x02\x03") + rr(ptr(12), 1, a("192.0.2.2"))
    rec, m = _answers_of(rrs, 2)
    assert m.answers[0].value is None and not m.complete and rec["answers"] is None
    assert ("dns.rr_bad_length", "A") in m.weirds


# ---------------------------------------------------------------------------
# EDNS
# ---------------------------------------------------------------------------

def opt_rr(udp=4096, ext_rcode=0, version=0, do=True, options=b""):
    ttl = (ext_rcode << 24) | (version << 16) | (0x8000 if do else 0)
    return b"\x00" + struct.pack("!HHIH", 41, udp, ttl, len(options)) + options


def test_edns_opt_in_query():
    cookie = struct.pack("!HH", 10, 8) + b"\x11" * 8                 # COOKIE option, client cookie only
    q = hdr(11, RD, ar=1) + question(qname("example.org")) + opt_rr(1232, options=cookie)
    m = dns.parse_message(q)
    assert m.complete and m.edns["udp_size"] == 1232 and m.edns["do"] is True and m.edns["version"] == 0
    assert m.edns["options"] == [(10, b"\x11" * 8)]
    sink, _ = run_udp([(True, q, 1.0)])
    assert dnslog(sink)[0]["query"] == "example.org"


def test_edns_bad_option_length_is_weird_not_fatal():
    bad = struct.pack("!HH", 8, 40) + b"\x00\x01"                     # ECS claims 40 bytes, has 2
    r = (hdr(12, QR, an=1, ar=1) + question(qname("example.org"))
         + rr(ptr(12), 1, a("192.0.2.3")) + opt_rr(options=bad))
    m = dns.parse_message(r)
    assert m.complete and ("dns.edns_bad_option_length", "8") in m.weirds
    assert m.answers[0].value == "192.0.2.3"


def test_opt_is_never_an_answer():
    r = hdr(13, QR, an=2) + question(qname("e.org")) + rr(ptr(12), 1, a("192.0.2.4")) + opt_rr()
    sink, _ = run_udp([(False, r, 1.0)])
    assert dnslog(sink)[0]["answers"] == ["192.0.2.4"]


# ---------------------------------------------------------------------------
# Truncation and the TC bit
# ---------------------------------------------------------------------------

def test_message_shorter_than_header():
    assert dns.parse_message(b"\x12\x34\x01") is None
    sink, _ = run_udp([(True, b"\x12\x34\x01", 1.0)])
    assert dnslog(sink) == [] and "dns.truncated_message" in sink.weird_names()


def test_truncated_response_keeps_complete_records():
    cut = RESPONSE[:-2]                                               # A rdata cut short
    m = dns.parse_message(cut)
    assert not m.complete and [x.rtype for x in m.answers] == [5]
    assert m.weirds[-1][0] == "dns.truncated_message"
    sink, _ = run_udp([(True, QUERY, 1.0), (False, cut, 1.1)])
    [r] = dnslog(sink)
    assert r["answers"] == ["edge.cdn.example.net"] and r["rcode_name"] == "NOERROR"
    assert "dns.truncated_message" in sink.weird_names()


def test_every_prefix_of_a_response_parses_without_raising():
    for i in range(len(RESPONSE) + 1):
        m = dns.parse_message(RESPONSE[:i])
        assert (m is None) == (i < 12)


def test_tc_bit():
    q = hdr(14, RD | TC) + question(qname("big.example"), 16)
    r = hdr(14, QR | TC | RD | RA, an=0) + question(qname("big.example"), 16)
    m = dns.parse_message(r)
    assert m.tc and m.complete
    sink, _ = run_udp([(True, q, 1.0), (False, r, 1.1)])
    [rec] = dnslog(sink)
    assert rec["TC"] is True and rec["qtype_name"] == "TXT"


def test_too_many_questions_is_not_parsed():
    m = dns.parse_message(hdr(1, 0, qd=200) + question(qname("x.y")))
    assert m.questions == [] and m.weirds == [("dns.too_many_questions", "200")]


# ---------------------------------------------------------------------------
# TCP framing
# ---------------------------------------------------------------------------

def _tcp_run(chunks_orig, chunks_resp):
    ctx = make_ctx(transport="tcp")
    an = dns.Analyzer(ctx)
    for c in chunks_orig:
        an.data(True, c, 1.0)
    for c in chunks_resp:
        an.data(False, c, 1.5)
    an.done(2.0)
    return ctx.sink


def test_tcp_two_messages_in_one_segment():
    q2 = hdr(0x4321, RD) + question(qname("second.example"))
    sink = _tcp_run([tcp_frame(QUERY) + tcp_frame(q2)], [tcp_frame(RESPONSE)])
    recs = dnslog(sink)
    assert [(r["query"], r["answers"] is not None) for r in recs] == [("www.example.com", True),
                                                                      ("second.example", False)]
    assert recs[0]["proto"] == "tcp"


def test_tcp_split_at_every_byte_boundary():
    stream_q = tcp_frame(QUERY) + tcp_frame(QUERY.replace(b"\x12\x34", b"\x55\x66", 1))
    stream_r = tcp_frame(RESPONSE)
    ref = dnslog(_tcp_run([stream_q], [stream_r]))
    assert len(ref) == 2
    for i in range(len(stream_q) + 1):
        for j in (0, 1, 2, len(stream_r) // 2, len(stream_r) - 1, len(stream_r)):
            got = dnslog(_tcp_run([stream_q[:i], stream_q[i:]], [stream_r[:j], stream_r[j:]]))
            assert got == ref, (i, j)
    for j in range(len(stream_r) + 1):
        got = dnslog(_tcp_run([stream_q], [stream_r[:j], stream_r[j:]]))
        assert got == ref, j


def test_tcp_one_byte_at_a_time():
    stream = tcp_frame(QUERY) + tcp_frame(QUERY)
    sink = _tcp_run([bytes([b]) for b in stream], [bytes([b]) for b in tcp_frame(RESPONSE)])
    assert [r["answers"] is not None for r in dnslog(sink)] == [True, False]


def test_tcp_partial_message_at_end_and_gap():
    ctx = make_ctx(transport="tcp")
    an = dns.Analyzer(ctx)
    an.data(True, tcp_frame(QUERY)[:-3], 1.0)
    an.done(2.0)
    assert dnslog(ctx.sink) == [] and "dns.truncated_message" in ctx.sink.weird_names()
    ctx = make_ctx(transport="tcp")
    an = dns.Analyzer(ctx)
    an.data(True, tcp_frame(QUERY)[:5], 1.0)
    an.gap(True, 100, 1.1)
    an.data(True, b"garbage after the gap", 1.2)
    an.data(False, tcp_frame(RESPONSE), 1.3)
    an.done(2.0)
    [r] = dnslog(ctx.sink)
    assert r["qtype"] is None and r["answers"]      # only the reply survived
    assert an.wants_more()


# ---------------------------------------------------------------------------
# NetBIOS name service, mDNS, LLMNR, dynamic update
# ---------------------------------------------------------------------------

def nb_encode(name: str, suffix: int = 0x00) -> str:
    raw = name.upper().ljust(15).encode()[:15] + bytes([suffix])
    return "".join(chr(0x41 + (b >> 4)) + chr(0x41 + (b & 0xF)) for b in raw)


def test_netbios_name_decoding():
    enc = nb_encode("BRWC0CB383D1F42")
    assert dns.decode_netbios_name(enc) == "BRWC0CB383D1F42"
    assert dns.decode_netbios_name(enc.lower()) == "BRWC0CB383D1F42"
    assert dns.decode_netbios_name(nb_encode("WORKGROUP", 0x1D)) == "WORKGROUP"
    assert dns.decode_netbios_name("ABC") == "" and dns.decode_netbios_name("Z" * 32) == ""


def test_netbios_query_on_137():
    enc = nb_encode("FILESRV", 0x20)
    q = hdr(0x8001, RD | 0x0010) + question(qname(enc), 32)           # NB query, broadcast flag
    assert dns.probe(q, True)
    ctx = make_ctx(orig=("10.0.0.9", 137), resp=("10.0.0.255", 137))
    sink, _ = run_udp([(True, q, 1.0)], ctx)
    [r] = dnslog(sink)
    assert (r["query"], r["qtype_name"], r["Z"], r["opcode_name"]) == ("FILESRV", "NIMLOC", 1, "netbios-query")
    q = hdr(0x8002, 0) + question(qname(enc), 33)                     # NBSTAT
    sink, _ = run_udp([(True, q, 1.0)], make_ctx(orig=("10.0.0.9", 137), resp=("10.0.0.8", 137)))
    assert dnslog(sink)[0]["qtype_name"] == "NBSTAT"


def test_netbios_registration_opcode():
    enc = nb_encode("PC1")
    reg = (hdr(0x8003, RD | 0x0010, ar=1, opcode=5) + question(qname(enc), 32)
           + rr(ptr(12), 32, b"\x00\x00" + a("10.0.0.9"), ttl=300000))
    assert dns.probe(reg, True)
    sink, _ = run_udp([(True, reg, 1.0)], make_ctx(orig=("10.0.0.9", 137), resp=("10.0.0.255", 137)))
    [r] = dnslog(sink)
    assert (r["query"], r["opcode"], r["opcode_name"]) == ("PC1", 5, "netbios-registration")
    refresh = hdr(0x8004, 0x0010, ar=1, opcode=8) + question(qname(enc), 32) + rr(ptr(12), 32, b"\x00" * 6)
    assert dns.probe(refresh, True)


def test_mdns_multicast_messages_are_not_associated():
    q = hdr(0, 0) + question(qname("printer.local"))
    r = hdr(0, QR | AA, qd=0, an=1) + rr(qname("other.local"), 1, a("192.168.0.2"), ttl=120, rclass=0x8001)
    assert dns.probe(r, True)
    ctx = make_ctx(orig=("192.168.0.2", 5353), resp=("224.0.0.251", 5353))
    sink, _ = run_udp([(True, q, 1.0), (True, r, 1.1)], ctx)
    recs = dnslog(sink)
    assert [(x["query"], x["answers"]) for x in recs] == [("printer.local", None), ("other.local", ["192.168.0.2"])]
    assert sink.answers == [("other.local", "192.168.0.2", "A", 120.0)]


def test_llmnr_is_plain_dns():
    q = hdr(0x5f0e, 0) + question(qname("wpad"))
    r = hdr(0x5f0e, QR, an=1) + question(qname("wpad")) + rr(ptr(12), 1, a("10.0.0.66"), ttl=30)
    ctx = make_ctx(orig=("10.0.0.5", 55000), resp=("10.0.0.66", 5355))
    sink, _ = run_udp([(True, q, 1.0), (False, r, 1.01)], ctx)
    assert dnslog(sink)[0]["answers"] == ["10.0.0.66"]


def test_dynamic_update_rendering():
    zone = question(qname("stratolab.org"), 6)
    body = (hdr(47952, QR, qd=1, an=1, ns=3, opcode=5, rcode=5) + zone
            + rr(qname("nwin2.stratolab.org"), 5, b"", ttl=0, rclass=254)      # prerequisite: NoRRSet CNAME
            + rr(qname("nwin2.stratolab.org"), 28, b"", ttl=0, rclass=255)     # update: delete RRset AAAA
            + rr(qname("nwin2.stratolab.org"), 255, b"", ttl=0, rclass=255)    # update: delete all RRsets
            + rr(qname("nwin2.stratolab.org"), 1, a("192.168.1.106"), ttl=1200))
    req = hdr(47952, 0, qd=1, an=1, ns=3, opcode=5) + body[12:]
    sink, _ = run_udp([(True, req, 1.0), (False, body, 1.1)])
    [r] = dnslog(sink)
    assert r["answers"] == ["pre: NoRRSet CNAME nwin2.stratolab.org", "del: RRSet AAAA",
                            "del: RRSet * nwin2.stratolab.org", "add: A nwin2.stratolab.org 192.168.1.106"]
    assert r["query"] == "nwin2.stratolab.org" and r["qtype"] is None
    assert (r["rcode_name"], r["opcode_name"]) == ("REFUSED", "dynamic-update")


def test_unusual_opcode_is_logged():
    # Zeek logs opcodes 0, 4 and 5 only; inspector logs every opcode (as Suricata does), since an
    # unusual opcode on port 53 is itself worth seeing (tunnels, covert channels).
    status = hdr(1, 0, qd=1, opcode=2) + question(qname("status.example"))
    sink, an = run_udp([(True, status, 1.0)])
    recs = dnslog(sink)
    assert [r["query"] for r in recs] == ["status.example"]
    assert recs[0]["opcode"] == 2


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------

def test_probe_accepts_dns():
    assert dns.probe(QUERY, True)
    assert dns.probe(RESPONSE, False)
    assert dns.probe(tcp_frame(QUERY), True)                          # TCP length prefix
    assert dns.probe(tcp_frame(QUERY) + tcp_frame(QUERY)[:5], True)   # more than one message
    assert dns.probe(tcp_frame(RESPONSE)[:30], False)                 # message split across segments
    assert dns.probe(hdr(1, QR | RA, rcode=2) + question(qname("x.example")), False)   # SERVFAIL
    assert dns.probe(hdr(1, 0, opcode=9) + question(qname("suricata.io")), True)       # odd opcode, clean


def test_probe_rejects_other_protocols():
    for data in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 bytes.fromhex("16030100c4010000c00303") + b"\x00" * 200,     # TLS ClientHello start
                 b"SSH-2.0-OpenSSH_9.6\r\n",
                 b"\x00" * 48, b"\xff" * 64, b"", b"\x12",
                 b"<34>Oct 11 22:14:15 host su: 'su root' failed\n",
                 hdr(1, 0, qd=0),                                     # empty query
                 hdr(1, 0, qd=1) + b"\x05abc",                        # name runs off the end
                 hdr(1, 0, qd=1, opcode=3) + question(qname("x.y")) + b"junk",   # odd opcode + trailing bytes
                 hdr(1, 0, qd=1, opcode=7) + question(qname("x.y")) + b"\x01",  # NetBIOS opcode, no NetBIOS name
                 hdr(1, 0, qd=1) + question(qname("x.y"), 1, 77)):    # bogus class
        assert not dns.probe(data, True), data


def random_payloads(seed: int, n: int = 10_000):
    rng = random.Random(seed)
    sizes = [0, 1, 2, 4, 8, 12, 13, 16, 20, 24, 32, 40, 47, 48, 49, 60, 64, 68, 90, 128, 200, 300,
             512, 576, 1024, 1400, 1500, 2048]
    for i in range(n):
        size = sizes[i % len(sizes)] if i % 2 else rng.randrange(0, 1600)
        yield rng.randbytes(size)


def test_probe_random_false_positive_rate():
    fp = sum(1 for p in random_payloads(1234) if dns.probe(p, True) or dns.probe(p, False))
    assert fp < 10, fp             # < 0.1 %


def test_parser_and_analyzer_never_raise_on_random_and_mutated_input():
    rng = random.Random(99)
    samples = [QUERY, RESPONSE, tcp_frame(QUERY)]
    ctx = make_ctx()
    an = dns.Analyzer(ctx)
    tctx = make_ctx(transport="tcp")
    tan = dns.Analyzer(tctx)
    for i, p in enumerate(random_payloads(7, 3000)):
        dns.parse_message(p)
        an.datagram(bool(i & 1), p, float(i))
        tan.data(bool(i & 1), p, float(i))
    for i in range(5000):
        b = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.3:
            del b[rng.randrange(len(b)):]
        dns.parse_message(bytes(b))
        dns.probe(bytes(b), True)
        an.datagram(bool(i & 1), bytes(b), 1e4 + i)
    an.done(2e4)
    tan.done(2e4)


# ---------------------------------------------------------------------------
# Corpus: capture reading with dpkt (shared with test_proto_misc.py)
# ---------------------------------------------------------------------------

def _open_capture(path):
    import dpkt
    with open(path, "rb") as f:
        head = f.read(4)
    fh = gzip.open(path, "rb") if head[:2] == b"\x1f\x8b" else open(path, "rb")
    magic = fh.read(4)
    fh.seek(0)
    if magic == b"\x0a\x0d\x0d\x0a":
        return dpkt.pcapng.Reader(fh)
    return dpkt.pcap.Reader(fh)


def _ip_layer(link, buf):
    import dpkt
    try:
        if link == 1:
            d = dpkt.ethernet.Ethernet(buf).data
        elif link == 113:
            d = dpkt.sll.SLL(buf).data
        elif link in (101, 228, 229, 12, 14):
            d = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        elif link in (0, 108):
            d = dpkt.loopback.Loopback(buf).data
        else:
            return None
    except Exception:
        return None
    return d if isinstance(d, (dpkt.ip.IP, dpkt.ip6.IP6)) else None


def _udp_checksum_ok(ip, udp) -> bool:
    import dpkt
    if udp.sum == 0 and isinstance(ip, dpkt.ip.IP):
        return True
    raw = bytes(udp)
    if isinstance(ip, dpkt.ip.IP):
        pseudo = ip.src + ip.dst + struct.pack("!BBH", 0, 17, len(raw))
    else:
        pseudo = ip.src + ip.dst + struct.pack("!I3xB", len(raw), 17)
    return dpkt.in_cksum(pseudo + raw) == 0


def pcap_flows(path, check_udp_checksum=False) -> dict:
    """Bidirectional TCP/UDP flows of a capture (Ethernet/VLAN, SLL, raw, NULL; no tunnels,
    no IP fragments): key -> {orig, resp, proto, ts, udp: [(is_orig, payload, ts)],
    tcp: {True: [(seq, data, ts)], False: [...]}}.  The originator is the first sender
    (for TCP, the SYN sender)."""
    import dpkt
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = _open_capture(path)
        link = reader.datalink()
        for ts, buf in reader:
            ip = _ip_layer(link, buf)
            if ip is None:
                continue
            if isinstance(ip, dpkt.ip.IP):
                if (ip.mf or ip.offset) or ip.p not in (6, 17):
                    continue
                fam = socket.AF_INET
            else:
                fam = socket.AF_INET6
            l4 = ip.data
            if isinstance(l4, dpkt.udp.UDP):
                proto = "udp"
                if check_udp_checksum and not _udp_checksum_ok(ip, l4):
                    continue
            elif isinstance(l4, dpkt.tcp.TCP):
                proto = "tcp"
            else:
                continue
            src = (socket.inet_ntop(fam, ip.src), l4.sport)
            dst = (socket.inet_ntop(fam, ip.dst), l4.dport)
            key = (proto,) + tuple(sorted([src, dst]))
            fl = out.get(key)
            if fl is None:
                orig, resp = src, dst
                if proto == "tcp" and (l4.flags & 0x12) == 0x12:      # SYN-ACK seen first
                    orig, resp = dst, src
                fl = out[key] = {"orig": orig, "resp": resp, "proto": proto, "ts": ts,
                                 "udp": [], "tcp": {True: [], False: []}}
            is_orig = src == fl["orig"]
            payload = bytes(l4.data)
            if proto == "udp":
                fl["udp"].append((is_orig, payload, ts))
            elif payload:
                fl["tcp"][is_orig].append((l4.seq, payload, ts))
    return out


def tcp_events(segs) -> list:
    """In-order stream of one direction: [("data", bytes, ts) | ("gap", length, ts)]
    (retransmitted bytes dropped; a hole in sequence space becomes a gap)."""
    if not segs:
        return []
    base = segs[0][0]
    rel = sorted((((s - base) & 0xFFFFFFFF), d, t) for s, d, t in segs)
    rel = [x for x in rel if x[0] < 0x80000000]
    nxt = rel[0][0] if rel else 0
    out = []
    for seq, data, ts in rel:
        if seq + len(data) <= nxt:
            continue
        if seq < nxt:
            data = data[nxt - seq:]
            seq = nxt
        if seq > nxt:
            out.append(("gap", seq - nxt, ts))
        out.append(("data", data, ts))
        nxt = seq + len(data)
    return out


def tcp_chunks(segs) -> list:
    """The data before the first hole: [(data, ts)]."""
    out = []
    for kind, val, ts in tcp_events(segs):
        if kind == "gap":
            break
        out.append((val, ts))
    return out


def run_module_on_flow(module, fl, sink, cls=None):
    """Feed one flow to a fresh analyzer of ``module`` (datagrams or in-order stream with gaps)."""
    ctx = FlowContext(uid=f"C{abs(hash((fl['orig'], fl['resp']))) % 10**8}", ts=fl["ts"],
                      orig_h=fl["orig"][0], orig_p=fl["orig"][1], resp_h=fl["resp"][0], resp_p=fl["resp"][1],
                      transport=fl["proto"], sink=sink)
    an = (cls or module.Analyzer)(ctx)
    last = fl["ts"]
    if fl["proto"] == "udp":
        for o, p, ts in fl["udp"]:
            an.datagram(o, p, ts)
            last = ts
    else:
        ev = [(True,) + e for e in tcp_events(fl["tcp"][True])] + \
             [(False,) + e for e in tcp_events(fl["tcp"][False])]
        ev.sort(key=lambda e: e[3])
        for o, kind, val, t in ev:
            if kind == "data":
                an.data(o, val, t)
            else:
                an.gap(o, val, t)
            last = t
    an.done(last)
    return ctx


def first_payloads(fl):
    """The first payload of each direction, as the dispatcher would offer it to probes."""
    out = {}
    if fl["proto"] == "udp":
        for o, p, _ in fl["udp"]:
            if p and o not in out:
                out[o] = p[:2048]
    else:
        for o in (True, False):
            ch = tcp_chunks(fl["tcp"][o])
            if ch:
                out[o] = b"".join(d for d, _ in ch)[:2048]
    return out


# ---------------------------------------------------------------------------
# Corpus: Zeek dns.log baselines
# ---------------------------------------------------------------------------

TUNNEL_TAGS = {"gre", "vxlan", "geneve", "erspan", "ip-in-ip/tunnel", "teredo", "gtp", "mpls", "pppoe", "ppp"}
DNS_PORTS = {53, 137, 5353, 5355}
ZEEK_KEYS = ("trans_id", "query", "qclass", "qtype_name", "rcode_name", "AA", "TC", "RD", "RA", "Z",
             "answers", "TTLs", "rejected", "opcode_name")


def _zeek_key(rec: dict, mine: bool):
    import corpus as C
    out = []
    for k in ZEEK_KEYS:
        v = rec.get(k)
        if mine and isinstance(v, str):
            v = C._zeek_unescape(v)
        if mine and isinstance(v, list):
            v = [C._zeek_unescape(x) if isinstance(x, str) else x for x in v]
        out.append(json.dumps(v or None) if k in ("answers", "TTLs") else json.dumps(v))
    out.append(rec.get("rtt") is not None)
    return tuple(out)


def _dns_baselines(root):
    import corpus as C
    for row in C.load_index(root):
        for p in row.get("oracle_corpus_paths") or []:
            if p.endswith("/dns.log"):
                yield row, Path(root) / p


def _run_dns_on_capture(path, check_csum):
    sink = FakeSink()
    for fl in pcap_flows(path, check_csum).values():
        ports = {fl["orig"][1], fl["resp"][1]}
        if not ports & DNS_PORTS:
            continue
        run_module_on_flow(dns, fl, sink)
    return sink


@pytest.mark.corpus
def test_zeek_dns_log_agreement(corpus):
    """Query/answers/flags of every dns.log baseline, compared as multisets of records."""
    import corpus as C
    results = []
    for row, log in _dns_baselines(corpus):
        tags = set(row.get("features") or row.get("tags") or [])
        if tags & TUNNEL_TAGS:
            results.append((row["dest"], "skipped (tunnel)"))
            continue
        tests = (row.get("extra") or {}).get("tests") or []
        check = not any(t.get("ignore_csum") for t in tests)   # without -C Zeek drops bad checksums
        base = C.read_zeek_log(log)
        sink = _run_dns_on_capture(Path(corpus) / row["dest"], check)
        want = Counter(_zeek_key(r, False) for r in base)
        got = Counter(_zeek_key(r, True) for r in dnslog(sink))
        results.append((row["dest"], "agree" if want == got else f"DIFF -{dict(want - got)} +{dict(got - want)}"))
    print("\nZeek dns.log agreement:")
    for name, res in results:
        print(f"  {name}: {res}")
    compared = [r for r in results if not r[1].startswith("skipped")]
    assert compared, "no dns.log baselines found"
    bad = [r for r in compared if r[1] != "agree"]
    assert not bad, bad


# ---------------------------------------------------------------------------
# Corpus: suricata-verify dns.* checks (per message, EVE v3 field names)
# ---------------------------------------------------------------------------

def _sv_rdata(r: dns.RR):
    if r.rtype in (1, 28):
        return r.value
    if r.rtype in (2, 5, 12, 15, 6):
        return r.value
    return None


def _sv_event(msg: dns.Message) -> dict:
    """A flat dict of the EVE dns.* fields this parser can produce for one message."""
    ev = {"dns.type": "response" if msg.qr else "request", "dns.id": msg.id, "dns.opcode": msg.opcode}
    if msg.qr:
        ev["dns.rcode"] = dns.rcode_name(msg.rcode)
    for i, q in enumerate(msg.questions):
        ev[f"dns.queries[{i}].rrname"] = q.name
        ev[f"dns.queries[{i}].rrtype"] = dns.qtype_name(q.qtype)
    for sec, rrs in (("answers", msg.answers), ("authorities", msg.authority)):
        i = 0
        for r in rrs:
            # EVE v3 writes one entry per TXT character-string
            parts = [dns.render_bytes(x) for x in r.value] if r.rtype == 16 and r.value else [_sv_rdata(r)]
            for rd in parts:
                ev[f"dns.{sec}[{i}].rrname"] = r.name
                ev[f"dns.{sec}[{i}].rrtype"] = dns.qtype_name(r.rtype)
                ev[f"dns.{sec}[{i}].ttl"] = r.ttl
                if rd is not None:
                    ev[f"dns.{sec}[{i}].rdata"] = rd
                if r.rtype == 6 and r.extra:
                    for k, v in r.extra.items():
                        ev[f"dns.{sec}[{i}].soa.{k}"] = v
                i += 1
    return ev


SV_RDATA_TYPES = {"A", "AAAA", "CNAME", "PTR", "NS", "MX", "SOA", "TXT"}


def _sv_match(ev, key, want):
    if key.endswith(".rdata") and ev.get(key[:-len("rdata")] + "rrtype") not in SV_RDATA_TYPES:
        return True             # rdata of a type this parser does not render (NULL, ...): not compared
    return key in ev and _sv_equal(key, want, ev[key])


def _sv_equal(key, want, got):
    if key.endswith(".rdata") and isinstance(want, str) and ":" in want:
        try:
            return ipaddress.ip_address(want) == ipaddress.ip_address(got)
        except ValueError:
            pass
    return str(want) == str(got)


SV_KNOWN = re.compile(r"dns\.(type|id|rcode|opcode|queries\[\d+\]\.(rrname|rrtype)"
                      r"|(answers|authorities)\[\d+\]\.(rrname|rrtype|ttl|rdata|soa\.\w+))")
SV_IGNORED = {"event_type", "pcap_cnt", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto",
              "dns.tx_id", "dns.flags", "dns.version", "dns.qr", "dns.rd", "dns.ra", "dns.aa", "dns.tc",
              "dns.z", "direction"}


def _sv_dns_checks(root):
    import yaml
    import corpus as C
    for row in C.load_index(root):
        if row["source"] != "suricata-verify":
            continue
        for p in row.get("oracle_corpus_paths") or []:
            if not p.endswith("test.yaml"):
                continue
            spec = yaml.safe_load(open(Path(root) / p)) or {}
            for chk in spec.get("checks") or []:
                f = (chk or {}).get("filter")
                if not f:
                    continue
                req = f.get("requires") or {}
                if "lt-version" in req:
                    continue
                match = f.get("match") or {}
                if match.get("event_type") != "dns":
                    continue
                yield row, p, f.get("count"), match


@pytest.mark.corpus
def test_suricata_verify_dns_checks(corpus):
    """Each ``event_type: dns`` filter: count the parsed messages whose fields match."""
    cache = {}
    results = []
    for row, test, count, match in _sv_dns_checks(corpus):
        tags = set(row.get("features") or row.get("tags") or [])
        if tags & TUNNEL_TAGS or "http2" in tags:
            results.append((test, "skipped (tunnel/DoH)"))
            continue
        keys = {k: v for k, v in match.items() if SV_KNOWN.fullmatch(k)}
        if match.get("dns.type") not in (None, "request", "response"):
            results.append((test, "skipped (EVE v1/v2 format)"))
            continue
        if not keys:
            results.append((test, "skipped (no comparable field)"))
            continue
        if row["dest"] not in cache:
            evs = []
            for fl in pcap_flows(Path(corpus) / row["dest"]).values():
                pay = first_payloads(fl)
                if not any(dns.probe(p, o) for o, p in pay.items()):
                    continue
                seen = []

                class Collect(dns.Analyzer):
                    def _message(self, raw, ts):
                        seen.append(raw)
                        super()._message(raw, ts)

                run_module_on_flow(dns, fl, FakeSink(), Collect)
                for m in seen:
                    pm = dns.parse_message(m)
                    if pm is not None:
                        evs.append(_sv_event(pm))
            cache[row["dest"]] = evs
        evs = cache[row["dest"]]
        n = sum(1 for ev in evs if all(_sv_match(ev, k, v) for k, v in keys.items()))
        ok = n == count if set(match) - SV_IGNORED - set(keys) == set() else (n >= 1) == (count >= 1)
        results.append((test, "agree" if ok else f"DIFF want {count} got {n} for {keys}"))
    print("\nsuricata-verify dns checks:")
    for name, res in results:
        print(f"  {name}: {res}")
    compared = [r for r in results if not r[1].startswith("skipped")]
    assert compared
    bad = [r for r in compared if r[1] != "agree"]
    assert not bad, bad
