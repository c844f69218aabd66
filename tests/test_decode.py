"""Decoding: link layers, IPv6 extension chains, fragment reassembly, tunnels, and the
fast-path/per-packet-path equivalence property over every available capture.

Unit tests build frames from annotated bytes (tests/helpers/pkt.py) and decode them with
both ``Decoder(fast=True)`` and ``Decoder(fast=False)``; every unit test also checks the two
paths agree.  Flow-level properties (tunnel_parents, ICMP ports, unknown transports) go
through ``run_scan`` on a pcap written to tmp_path.
"""
from __future__ import annotations

import ipaddress
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from helpers.pkt import (ACK, MAC_A, MAC_B, PSH, SYN, eth, icmp_echo, ipv4, ipv6, ipv6_ext, ipv6_frag,
                         mpls_label, null_header, pcap_bytes, pppoe_session, sll2_header, sll_header, tcp, udp,
                         vlan_tag)
import inspect

from inspector.decode.batch import COLUMNS, Decoder
from inspector.ingest import CaptureReader, NotACapture, PacketBatch
from inspector.pipeline import run_scan

REPO = Path(__file__).resolve().parents[1]
T0 = 1_764_000_000.0
T0_NS = 1_764_000_000_000_000_000


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# Fast-path implementations to check against the per-packet path ("numba" and "numpy" when
# the Decoder offers a choice; otherwise its one fast path).
FAST_IMPLS = (("numba", "numpy") if "impl" in inspect.signature(Decoder.__init__).parameters else (None,))


def fast_decoder(impl, **kw) -> Decoder:
    return Decoder(fast=True, **kw) if impl is None else Decoder(fast=True, impl=impl, **kw)


def make_batch(frames) -> PacketBatch:
    """frames: list of (linktype, data) or (linktype, data, ts) or (linktype, data, ts, wirelen)."""
    buf = b""
    offs, caps, wires, lts, tss = [], [], [], [], []
    for i, fr in enumerate(frames):
        lt, data = fr[0], fr[1]
        ts = fr[2] if len(fr) > 2 else T0 + i * 0.001
        wire = fr[3] if len(fr) > 3 else len(data)
        buf += b"\xee" * 3                     # junk between frames: offsets must be honoured
        offs.append(len(buf))
        buf += data
        caps.append(len(data))
        wires.append(wire)
        lts.append(lt)
        tss.append(ts)
    return PacketBatch(buf=buf, ts=np.array(tss, dtype=np.float64), caplen=np.array(caps, dtype=np.int64),
                       wirelen=np.array(wires, dtype=np.int64), offset=np.array(offs, dtype=np.int64),
                       linktype=np.array(lts, dtype=np.int32))


def _addr(hi: int, lo: int) -> str:
    raw = int(hi).to_bytes(8, "big") + int(lo).to_bytes(8, "big")
    a = ipaddress.IPv6Address(raw)
    return str(a.ipv4_mapped) if a.ipv4_mapped else str(a)


def rows_of(db) -> list:
    c = db.cols
    out = []
    for i in range(len(db)):
        out.append({
            "frame": int(c["frame"][i]), "ver": int(c["ver"][i]),
            "src": _addr(c["src_hi"][i], c["src_lo"][i]), "dst": _addr(c["dst_hi"][i], c["dst_lo"][i]),
            "proto": int(c["proto"][i]), "sport": int(c["sport"][i]), "dport": int(c["dport"][i]),
            "flags": int(c["flags"][i]), "seq": int(c["seq"][i]), "ack": int(c["ack"][i]),
            "ip_len": int(c["ip_len"][i]), "pay_len": int(c["pay_len"][i]), "wire_len": int(c["wire_len"][i]),
            "vlan": int(c["vlan"][i]), "inner_vlan": int(c["inner_vlan"][i]), "payload": db.payload(i),
        })
    return out


def compare_paths(a, b) -> list:
    """Differences between two DecodedBatch (fast vs per-packet path) as strings.

    ``pay_off`` is where the fast path finds a payload inside the batch buffer; the per-packet
    path keeps payload bytes itself (pay_off -1).  It is compared through ``payload(i)``."""
    diffs = []
    if len(a) != len(b):
        return [f"row count {len(a)} != {len(b)}"]
    for c in COLUMNS:
        if c == "pay_off":
            continue
        if not np.array_equal(a.cols[c], b.cols[c]):
            bad = np.nonzero(a.cols[c] != b.cols[c])[0][:3].tolist()
            diffs.append(f"column {c} rows {bad}")
    for i in range(len(a)):
        if a.payload(i) != b.payload(i):
            diffs.append(f"payload row {i}")
            break
    if a.outcomes != b.outcomes:
        diffs.append(f"outcomes {dict(a.outcomes)} != {dict(b.outcomes)}")
    if a.tunnels != b.tunnels:
        diffs.append("tunnels")
    if sorted(map(repr, a.weirds)) != sorted(map(repr, b.weirds)):
        diffs.append("weirds")
    return diffs


def decode_both(frames, **kw):
    """Decode with every fast path and the per-packet path (fresh decoders), assert they
    agree, return the (first) fast-path result."""
    batch = make_batch(frames)
    slow = Decoder(fast=False, **kw).decode(batch)
    first = None
    for impl in FAST_IMPLS:
        fast = fast_decoder(impl, **kw).decode(batch)
        assert compare_paths(fast, slow) == [], f"fast path {impl}"
        first = first or fast
    return first


def weird_names(db) -> list:
    return [w[1] for w in db.weirds]


def scan_frames(tmp_path, frames, linktype=1, name="t.pcap"):
    """Write (ts_ns, frame) pairs to a pcap and run_scan it."""
    p = tmp_path / name
    p.write_bytes(pcap_bytes(frames, linktype=linktype))
    res = run_scan([str(p)])
    st = res.stats
    assert sum(st["outcomes"].values()) == st["packets_read"]
    return res


def find_flow(flows, orig_h, orig_p, resp_h, resp_p, proto):
    got = [f for f in flows if (f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"], f["proto"])
           == (orig_h, orig_p, resp_h, resp_p, proto)]
    assert len(got) == 1, (orig_h, orig_p, resp_h, resp_p, proto,
                           [(f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"], f["proto"])
                            for f in flows])
    return got[0]


# Reference inner packets.
V4_PAYLOAD = b"hello over v4"
V6_PAYLOAD = b"hello over v6"
IP4 = ipv4("192.0.2.1", "198.51.100.2", 6, tcp(1234, 80, V4_PAYLOAD, seq=7, ack=9, flags=PSH | ACK))
IP6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5353, 53, V6_PAYLOAD))
V4_TUPLE = ("192.0.2.1", "198.51.100.2", 6, 1234, 80, V4_PAYLOAD)
V6_TUPLE = ("2001:db8::1", "2001:db8::2", 17, 5353, 53, V6_PAYLOAD)


def one_row(db):
    rows = rows_of(db)
    assert len(rows) == 1, rows
    assert dict(db.outcomes) == {"decoded": 1}
    return rows[0]


def check_tuple(row, tup):
    assert (row["src"], row["dst"], row["proto"], row["sport"], row["dport"], row["payload"]) == tup
    assert row["pay_len"] == len(tup[5])


# ---------------------------------------------------------------------------
# link layers
# ---------------------------------------------------------------------------

LINK_CASES = [
    # id, linktype, frame bytes, expected tuple, vlan, inner_vlan
    ("ethernet", 1, eth(0x0800, IP4), V4_TUPLE, -1, -1),
    ("ethernet-v6", 1, eth(0x86DD, IP6), V6_TUPLE, -1, -1),
    ("802.1q", 1, eth(0x8100, vlan_tag(100, 0x0800, pcp=5) + IP4), V4_TUPLE, 100, -1),
    ("qinq-802.1ad", 1, eth(0x88A8, vlan_tag(200, 0x8100) + vlan_tag(300, 0x86DD) + IP6), V6_TUPLE, 200, 300),
    ("qinq-9100", 1, eth(0x9100, vlan_tag(201, 0x8100) + vlan_tag(301, 0x0800) + IP4), V4_TUPLE, 201, 301),
    # MPLS unicast: two labels, bottom-of-stack bit on the second, then IPv4 (guessed by version nibble)
    ("mpls", 1, eth(0x8847, mpls_label(16, False) + mpls_label(1001, True) + IP4), V4_TUPLE, -1, -1),
    ("mpls-v6", 1, eth(0x8847, mpls_label(2001, True) + IP6), V6_TUPLE, -1, -1),
    ("vlan-mpls", 1, eth(0x8100, vlan_tag(7, 0x8847) + mpls_label(5, True) + IP4), V4_TUPLE, 7, -1),
    ("linux-sll", 113, sll_header(0x0800) + IP4, V4_TUPLE, -1, -1),
    ("linux-sll-v6", 113, sll_header(0x86DD, pkttype=4) + IP6, V6_TUPLE, -1, -1),
    ("linux-sll2", 276, sll2_header(0x0800) + IP4, V4_TUPLE, -1, -1),
    ("linux-sll2-v6", 276, sll2_header(0x86DD) + IP6, V6_TUPLE, -1, -1),
    ("raw12-v4", 12, IP4, V4_TUPLE, -1, -1),
    ("raw12-v6", 12, IP6, V6_TUPLE, -1, -1),
    ("raw14-v4", 14, IP4, V4_TUPLE, -1, -1),
    ("raw101-v4", 101, IP4, V4_TUPLE, -1, -1),
    ("raw101-v6", 101, IP6, V6_TUPLE, -1, -1),
    ("ipv4-228", 228, IP4, V4_TUPLE, -1, -1),
    ("ipv6-229", 229, IP6, V6_TUPLE, -1, -1),
    # BSD loopback: AF_INET = 2 in host byte order (DLT_NULL, either order) or network order (DLT_LOOP)
    ("null-le-v4", 0, null_header(2, "<") + IP4, V4_TUPLE, -1, -1),
    ("null-be-v4", 0, null_header(2, ">") + IP4, V4_TUPLE, -1, -1),
    ("null-le-v6-bsd24", 0, null_header(24, "<") + IP6, V6_TUPLE, -1, -1),
    ("null-le-v6-freebsd28", 0, null_header(28, "<") + IP6, V6_TUPLE, -1, -1),
    ("null-be-v6-darwin30", 0, null_header(30, ">") + IP6, V6_TUPLE, -1, -1),
    ("loop-v4", 108, null_header(2, ">") + IP4, V4_TUPLE, -1, -1),
    ("loop-v6", 108, null_header(24, ">") + IP6, V6_TUPLE, -1, -1),
    # PPP: address 0xFF, control 0x03, protocol 0x0021 (IPv4) / 0x0057 (IPv6)
    ("ppp-v4", 9, b"\xff\x03" + b"\x00\x21" + IP4, V4_TUPLE, -1, -1),
    ("ppp-v6", 9, b"\xff\x03" + b"\x00\x57" + IP6, V6_TUPLE, -1, -1),
    ("ppp-no-address-control", 9, b"\x00\x21" + IP4, V4_TUPLE, -1, -1),
    ("ppp-compressed-proto", 9, b"\x21" + IP4, V4_TUPLE, -1, -1),      # PFC: 1-byte protocol field
    ("ppp-hdlc-50", 50, b"\xff\x03\x00\x21" + IP4, V4_TUPLE, -1, -1),
    ("pppoe", 1, eth(0x8864, pppoe_session(IP4)), V4_TUPLE, -1, -1),
    ("pppoe-v6", 1, eth(0x8864, pppoe_session(IP6, ppp_proto=0x0057)), V6_TUPLE, -1, -1),
    ("pppoe-vlan", 1, eth(0x8100, vlan_tag(42, 0x8864) + pppoe_session(IP4)), V4_TUPLE, 42, -1),
    ("ppp-ether-51", 51, pppoe_session(IP4), V4_TUPLE, -1, -1),
    # Cisco HDLC: address 0x0F (unicast), control 0x00, protocol = EtherType
    ("cisco-hdlc", 104, b"\x0f\x00" + b"\x08\x00" + IP4, V4_TUPLE, -1, -1),
    ("cisco-hdlc-v6", 104, b"\x8f\x00" + b"\x86\xdd" + IP6, V6_TUPLE, -1, -1),
]


@pytest.mark.parametrize("lt,frame,tup,vlan,ivlan", [c[1:] for c in LINK_CASES], ids=[c[0] for c in LINK_CASES])
def test_link_layer(lt, frame, tup, vlan, ivlan):
    db = decode_both([(lt, frame)])
    row = one_row(db)
    check_tuple(row, tup)
    assert (row["vlan"], row["inner_vlan"]) == (vlan, ivlan)
    ver = 4 if "." in tup[0] else 6
    assert row["ver"] == ver
    assert row["ip_len"] == (len(IP4) if ver == 4 else len(IP6))
    assert row["wire_len"] == len(frame)


def test_link_layers_in_one_mixed_batch():
    """All link types in one batch: rows come back in frame order, the fast path taking its share."""
    frames = [(c[1], c[2]) for c in LINK_CASES]
    db = decode_both(frames)
    rows = rows_of(db)
    assert [r["frame"] for r in rows] == list(range(len(LINK_CASES)))
    for r, c in zip(rows, LINK_CASES):
        check_tuple(r, c[3])
        assert (r["vlan"], r["inner_vlan"]) == (c[4], c[5]), c[0]


def test_raw_ipv4_linktype_refuses_ipv6():
    # DLT 228 is IPv4 only: an IPv6 packet there is a bad version, on both paths.
    db = decode_both([(228, IP6)])
    assert len(db) == 0
    assert dict(db.outcomes) == {"ip.bad_version": 1}


def test_non_ip_ethernet():
    arp = eth(0x0806, bytes(28))       # ARP
    db = decode_both([(1, arp)])
    assert len(db) == 0 and dict(db.outcomes) == {"non_ip": 1}


def test_unknown_linktype_outcome():
    db = decode_both([(147, IP4), (147, b"\x00" * 10)])
    assert len(db) == 0
    assert dict(db.outcomes) == {"linktype.USER0(147)": 2}


def test_unknown_linktype_through_scan(tmp_path):
    res = scan_frames(tmp_path, [(T0_NS, IP4), (T0_NS + 1000, IP4)], linktype=147)
    assert res.stats["outcomes"] == {"linktype.USER0(147)": 2}
    assert res.flows == []


def test_snaplen_cut_frame():
    # caplen 54 (headers only) but 54 + 13 bytes on the wire: payload length counts, payload bytes absent
    frame = eth(0x0800, IP4)
    db = decode_both([(1, frame[:54], T0, len(frame))])
    row = one_row(db)
    assert row["pay_len"] == len(V4_PAYLOAD) and row["payload"] == b""
    assert row["wire_len"] == len(frame)


# ---------------------------------------------------------------------------
# IPv6 extension headers
# ---------------------------------------------------------------------------

def test_ipv6_extension_chain_to_tcp():
    seg = tcp(40000, 443, b"ext-chain-data", seq=11, flags=PSH | ACK)
    chain = (ipv6_ext(43, b"\x05\x02\x00\x00\x00\x00")                   # hop-by-hop (nh 0) -> routing (43);
                                                                           # router-alert option + Pad
             + ipv6_ext(60, b"\x04\x00" + b"\x00" * 4)                    # routing (43) type 4 (SRH-ish), SL 0
             + ipv6_ext(6, b"\x01\x0c" + b"\x00" * 12))                   # destination options (60) -> TCP;
                                                                           # PadN option, 12 bytes
    pkt = ipv6("2001:db8:1::10", "2001:db8:2::20", 0, chain + seg)
    db = decode_both([(1, eth(0x86DD, pkt))])
    row = one_row(db)
    check_tuple(row, ("2001:db8:1::10", "2001:db8:2::20", 6, 40000, 443, b"ext-chain-data"))
    assert row["ip_len"] == len(pkt)
    assert row["seq"] == 11


def test_ipv6_extension_chain_scapy():
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    p = (Ether() / IPv6(src="2001:db8::a", dst="2001:db8::b") / IPv6ExtHdrHopByHop() /
         IPv6ExtHdrRouting(addresses=["2001:db8::c"], segleft=0) / IPv6ExtHdrDestOpt() /
         TCP(sport=1111, dport=2222, flags="S") / Raw(b"xyz"))
    db = decode_both([(1, bytes(p))])
    row = one_row(db)
    check_tuple(row, ("2001:db8::a", "2001:db8::b", 6, 1111, 2222, b"xyz"))


def test_ipv6_bad_extension_length_is_weird():
    bad = struct.pack("!BB", 6, 200) + b"\x00" * 6        # hop-by-hop claiming (200+1)*8 bytes
    pkt = ipv6("2001:db8::1", "2001:db8::2", 0, bad + tcp(1, 2))
    db = decode_both([(1, eth(0x86DD, pkt))])
    assert len(db) == 0
    assert dict(db.outcomes) == {"ip6.bad_extension_length": 1}


# ---------------------------------------------------------------------------
# fragments
# ---------------------------------------------------------------------------

FRAG_SRC, FRAG_DST = "10.9.0.1", "10.9.0.2"


def _udp_datagram(n=56):
    body = bytes((i * 7) & 0xFF for i in range(n))
    return udp(7000, 7001, body), body


def _v4frag(data, off, more, ident=0x4242, src=FRAG_SRC, dst=FRAG_DST):
    return eth(0x0800, ipv4(src, dst, 17, data, ident=ident, mf=more, frag_off=off))


def test_ipv4_fragments_out_of_order():
    dgram, body = _udp_datagram()                    # 64 bytes: UDP header + 56
    frames = [(1, _v4frag(dgram[48:], 48, False)),   # last fragment first
              (1, _v4frag(dgram[0:24], 0, True)),
              (1, _v4frag(dgram[24:48], 24, True))]
    db = decode_both(frames)
    row = one_row_of_frames(db, expect_frame=2)
    check_tuple(row, (FRAG_SRC, FRAG_DST, 17, 7000, 7001, body))
    assert row["ip_len"] == 20 + len(dgram)
    assert dict(db.outcomes) == {"ip.fragment": 2, "decoded": 1}
    assert weird_names(db) == []


def one_row_of_frames(db, expect_frame):
    rows = rows_of(db)
    assert len(rows) == 1, rows
    assert rows[0]["frame"] == expect_frame
    return rows[0]


def test_ipv4_fragments_consistent_overlap():
    dgram, body = _udp_datagram()
    frames = [(1, _v4frag(dgram[0:24], 0, True)),
              (1, _v4frag(dgram[16:40], 16, True)),  # overlaps 16..24 with the same bytes
              (1, _v4frag(dgram[40:], 40, False))]
    db = decode_both(frames)
    row = one_row_of_frames(db, 2)
    assert row["payload"] == body
    assert weird_names(db) == []


def test_ipv4_fragments_duplicate():
    dgram, body = _udp_datagram()
    frames = [(1, _v4frag(dgram[0:32], 0, True)),
              (1, _v4frag(dgram[0:32], 0, True)),    # exact duplicate: ignored, no weird
              (1, _v4frag(dgram[32:], 32, False))]
    db = decode_both(frames)
    row = one_row_of_frames(db, 2)
    assert row["payload"] == body
    assert weird_names(db) == []


def test_ipv4_fragments_inconsistent_overlap_first_data_wins():
    """Fragment A (16..32) arrives first; B (0..24) arrives later and disagrees on 16..24.
    The first copy (A's) must win, and the disagreement is a weird."""
    dgram, body = _udp_datagram()
    other = b"\xAA" * 8
    frames = [(1, _v4frag(dgram[16:32], 16, True)),               # A: first copy of 16..32
              (1, _v4frag(dgram[0:16] + other, 0, True)),         # B: 0..24, bytes 16..24 differ
              (1, _v4frag(dgram[32:], 32, False))]
    db = decode_both(frames)
    row = one_row_of_frames(db, 2)
    assert row["payload"] == body, "bytes 16..24 must come from the fragment that arrived first"
    assert "ip.fragment_inconsistent_overlap" in weird_names(db)


def test_ipv4_fragments_inconsistent_overlap_keeps_rest_of_fragment():
    """A (0..24) then B (16..64, last): B disagrees on 16..24; its bytes 24..64 must still be used."""
    dgram, body = _udp_datagram()
    other = b"\xBB" * 8
    a = dgram[0:16] + other
    frames = [(1, _v4frag(a, 0, True)),
              (1, _v4frag(dgram[16:], 16, False))]
    db = decode_both(frames)
    row = one_row_of_frames(db, 1)
    assert row["payload"] == (a + dgram[24:])[8:], "bytes after the overlap were not filled in"
    assert weird_names(db).count("ip.fragment_inconsistent_overlap") >= 1


def test_ipv6_fragments_out_of_order():
    src, dst = "2001:db8::f1", "2001:db8::f2"
    dgram, body = _udp_datagram(80)                  # 88 bytes
    pieces = [(0, dgram[0:32], True), (32, dgram[32:64], True), (64, dgram[64:], False)]

    def frag(off, data, more):
        return eth(0x86DD, ipv6(src, dst, 44, ipv6_frag(17, off, more, 0xABCD) + data))

    frames = [(1, frag(*pieces[2])), (1, frag(*pieces[0])), (1, frag(*pieces[1]))]
    db = decode_both(frames)
    row = one_row_of_frames(db, 2)
    check_tuple(row, (src, dst, 17, 7000, 7001, body))
    assert row["ip_len"] == 40 + len(dgram)
    assert dict(db.outcomes) == {"ip.fragment": 2, "decoded": 1}


def test_ipv6_fragment_after_extension_header():
    src, dst = "2001:db8::f1", "2001:db8::f2"
    dgram, body = _udp_datagram(40)
    hbh = ipv6_ext(44)                                                  # hop-by-hop -> fragment header

    def frag(off, data, more):
        return eth(0x86DD, ipv6(src, dst, 0, hbh + ipv6_frag(17, off, more, 7) + data))

    db = decode_both([(1, frag(0, dgram[:24], True)), (1, frag(24, dgram[24:], False))])
    row = one_row_of_frames(db, 1)
    check_tuple(row, (src, dst, 17, 7000, 7001, body))


def test_fragment_timeout_weird():
    dgram, body = _udp_datagram()
    dec = Decoder(fast=True, frag_timeout=30.0)
    b1 = make_batch([(1, _v4frag(dgram[0:32], 0, True), T0)])
    d1 = dec.decode(b1)
    assert len(d1) == 0 and dict(d1.outcomes) == {"ip.fragment": 1}
    # 100 s later a fragment of another datagram arrives: the first one has timed out
    b2 = make_batch([(1, _v4frag(dgram[0:32], 0, True, ident=0x9999), T0 + 100)])
    d2 = dec.decode(b2)
    assert "ip.fragment_timeout" in weird_names(d2)
    # the rest of the timed-out datagram no longer completes it
    b3 = make_batch([(1, _v4frag(dgram[32:], 32, False), T0 + 101)])
    d3 = dec.decode(b3)
    assert len(d3) == 0
    # end of input: what is still pending is reported
    names = [w[1] for w in dec.flush(T0 + 102)]
    assert "ip.fragment_incomplete" in names


def test_fragment_timeout_through_scan(tmp_path):
    dgram, _ = _udp_datagram()
    frames = [(T0_NS, _v4frag(dgram[0:32], 0, True)),
              (T0_NS + 100 * 10**9, _v4frag(dgram[0:32], 0, True, ident=7)),
              (T0_NS + 101 * 10**9, udp_plain())]
    res = scan_frames(tmp_path, frames)
    names = [w["name"] for w in res.weirds]
    assert "ip.fragment_timeout" in names and "ip.fragment_incomplete" in names
    assert res.stats["outcomes"] == {"ip.fragment": 2, "decoded": 1}


def udp_plain():
    return eth(0x0800, ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"x")))


# ---------------------------------------------------------------------------
# tunnels
# ---------------------------------------------------------------------------

OUT_A, OUT_B = "203.0.113.1", "203.0.113.2"
IN_C, IN_S = "192.168.10.5", "192.168.20.9"


def inner_pair(ver=4):
    """Inner SYN (client->server) and SYN-ACK (server->client) as IP packets."""
    if ver == 4:
        syn = ipv4(IN_C, IN_S, 6, tcp(33000, 443, seq=100, flags=SYN))
        synack = ipv4(IN_S, IN_C, 6, tcp(443, 33000, seq=500, ack=101, flags=SYN | ACK))
        return syn, synack, (IN_C, 33000, IN_S, 443, "tcp")
    c6, s6 = "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8:99::443"
    syn = ipv6(c6, s6, 6, tcp(33000, 443, seq=100, flags=SYN))
    synack = ipv6(s6, c6, 6, tcp(443, 33000, seq=500, ack=101, flags=SYN | ACK))
    return syn, synack, (c6, 33000, s6, 443, "tcp")


def outer_udp(fwd: bool, sport, dport, payload):
    """Outer Ethernet/IPv4/UDP: fwd A:sport -> B:dport, else the reverse direction."""
    if fwd:
        return eth(0x0800, ipv4(OUT_A, OUT_B, 17, udp(sport, dport, payload)))
    return eth(0x0800, ipv4(OUT_B, OUT_A, 17, udp(dport, sport, payload)), dst=MAC_A, src=MAC_B)


def vxlan(inner_eth: bytes, vni=5001) -> bytes:
    return struct.pack("!BBHI",
                       0x08,            # flags: I (VNI valid)
                       0, 0,            # reserved
                       vni << 8) + inner_eth   # VNI (24 bits) + reserved


def geneve(inner: bytes, proto=0x6558, vni=77, options=b"") -> bytes:
    assert len(options) % 4 == 0
    return struct.pack("!BBHI",
                       (0 << 6) | (len(options) // 4),   # version 0, option length in 4-byte words
                       0,                                 # O/C flags
                       proto,                             # protocol type (0x6558 = Ethernet)
                       vni << 8) + options + inner        # VNI + reserved


def gtpu(inner_ip: bytes, teid=0x1234, seq=None) -> bytes:
    if seq is None:
        return struct.pack("!BBHI",
                           0x30,             # version 1, PT 1 (GTP), no E/S/PN
                           0xFF,             # message type: G-PDU
                           len(inner_ip),    # length (after the mandatory 8 bytes)
                           teid) + inner_ip  # TEID
    return struct.pack("!BBHIHBB",
                       0x32,                 # version 1, PT 1, S flag
                       0xFF, len(inner_ip) + 4, teid,
                       seq,                  # sequence number
                       0,                    # N-PDU number
                       0) + inner_ip         # next extension header type: none


UDP_TUNNELS = [
    # id, outer sport, outer dport, wrap(inner ip packet, ver) -> udp payload, inner version, service
    ("vxlan", 49152, 4789, lambda ip, v: vxlan(eth(0x0800 if v == 4 else 0x86DD, ip)), 4, "vxlan"),
    ("geneve", 49153, 6081, lambda ip, v: geneve(eth(0x0800, ip)), 4, "geneve"),
    ("geneve-options-ip", 49154, 6081,
     lambda ip, v: geneve(ip, proto=0x0800, options=struct.pack("!HBB", 0x0102, 0x80, 1) + b"\0" * 4), 4, "geneve"),
    ("gtp-u", 2152, 2152, lambda ip, v: gtpu(ip), 4, "gtpv1"),
    ("gtp-u-seq", 2152, 2152, lambda ip, v: gtpu(ip, seq=9), 4, "gtpv1"),
    ("teredo-3544", 51000, 3544, lambda ip, v: ip, 6, "teredo"),
    ("teredo-other-port", 40001, 52000, lambda ip, v: ip, 6, "teredo"),
    ("teredo-origin-indication", 51001, 3544,
     lambda ip, v: struct.pack("!HH4s", 0x0000, 0xFFFF ^ 51001, bytes(4)) + ip, 6, "teredo"),
]


@pytest.mark.parametrize("sport,dport,wrap,ver,service", [c[1:] for c in UDP_TUNNELS],
                         ids=[c[0] for c in UDP_TUNNELS])
def test_udp_tunnel(tmp_path, sport, dport, wrap, ver, service):
    syn, synack, tup = inner_pair(ver)
    frames = [(T0_NS, outer_udp(True, sport, dport, wrap(syn, ver))),
              (T0_NS + 1_000_000, outer_udp(False, sport, dport, wrap(synack, ver)))]
    db = decode_both([(1, f) for _, f in frames])
    assert len(db) == 4 and dict(db.outcomes) == {"decoded": 2}
    res = scan_frames(tmp_path, frames)
    inner = find_flow(res.flows, *tup)
    assert inner["orig_pkts"] == 1 and inner["resp_pkts"] == 1
    outer = find_flow(res.flows, OUT_A, sport, OUT_B, dport, "udp")
    assert outer["orig_pkts"] == 1 and outer["resp_pkts"] == 1
    assert inner["tunnel_parents"] == [outer["uid"]]
    assert outer["tunnel_parents"] == []
    assert service in (outer["service"] or "")
    assert len(res.flows) == 2


def test_teredo_bubble_is_not_a_connection(tmp_path):
    bubble = ipv6("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e378::1", 59, b"")  # no next header
    res = scan_frames(tmp_path, [(T0_NS, outer_udp(True, 51000, 3544, bubble))])
    assert len(res.flows) == 1 and res.flows[0]["proto"] == "udp"


def gre(proto: int, payload: bytes, seq: int | None = None) -> bytes:
    flags = 0x1000 if seq is not None else 0      # S bit: sequence number present
    return struct.pack("!HH", flags, proto) + (struct.pack("!I", seq) if seq is not None else b"") + payload


def erspan2(inner_eth: bytes, session=3) -> bytes:
    return struct.pack("!HHI",
                       (1 << 12) | 0,           # version 1 (type II) | VLAN 0
                       (0 << 13) | (0 << 11) | (0 << 10) | session,  # COS, En, T, session id
                       0) + inner_eth           # reserved + index


def erspan3(inner_eth: bytes, session=4, o_flag=False) -> bytes:
    hdr = struct.pack("!HHIHH",
                      (2 << 12) | 0,            # version 2 (type III) | VLAN
                      session,                  # COS, BSO, T, session id
                      0x01020304,               # timestamp
                      0,                        # SGT
                      int(o_flag))              # P, FT, HW ID, D, Gra, O (bit 0)
    if o_flag:
        hdr += struct.pack("!II", 0x00000001, 0x00000002)   # platform-specific subheader
    return hdr + inner_eth


def ip_carrier(fwd: bool, proto: int, payload: bytes) -> bytes:
    if fwd:
        return eth(0x0800, ipv4(OUT_A, OUT_B, proto, payload))
    return eth(0x0800, ipv4(OUT_B, OUT_A, proto, payload), dst=MAC_A, src=MAC_B)


IP_TUNNELS = [
    ("gre-ipv4", lambda ip, v: gre(0x0800, ip), 47, 4),
    ("gre-teb", lambda ip, v: gre(0x6558, eth(0x0800, ip)), 47, 4),
    ("gre-key-seq", lambda ip, v: struct.pack("!HHII", 0x3000, 0x0800, 0xCAFE, 1) + ip, 47, 4),
    ("erspan-ii", lambda ip, v: gre(0x88BE, erspan2(eth(0x0800, ip)), seq=1), 47, 4),
    ("erspan-iii", lambda ip, v: gre(0x22EB, erspan3(eth(0x0800, ip)), seq=1), 47, 4),
    ("erspan-iii-platform", lambda ip, v: gre(0x22EB, erspan3(eth(0x0800, ip), o_flag=True), seq=2), 47, 4),
    ("ip-in-ip-4", lambda ip, v: ip, 4, 4),
    ("ip-in-ip-41", lambda ip, v: ip, 41, 6),
]


@pytest.mark.parametrize("wrap,proto,ver", [c[1:] for c in IP_TUNNELS], ids=[c[0] for c in IP_TUNNELS])
def test_ip_tunnel_inner_flow(tmp_path, wrap, proto, ver):
    syn, synack, tup = inner_pair(ver)
    frames = [(T0_NS, ip_carrier(True, proto, wrap(syn, ver))),
              (T0_NS + 1_000_000, ip_carrier(True, proto, wrap(synack, ver)))]
    db = decode_both([(1, f) for _, f in frames])
    assert len(db) == 2 and dict(db.outcomes) == {"decoded": 2}
    res = scan_frames(tmp_path, frames)
    assert len(res.flows) == 1, "the carrier is a tunnel, not a connection"
    inner = find_flow(res.flows, *tup)
    assert inner["orig_pkts"] == 1 and inner["resp_pkts"] == 1
    assert len(inner["tunnel_parents"]) == 1
    tuid = inner["tunnel_parents"][0]
    assert isinstance(tuid, str) and tuid and tuid != inner["uid"]


@pytest.mark.parametrize("proto,wrap", [(47, lambda ip: gre(0x0800, ip)), (4, lambda ip: ip)], ids=["gre", "ipip"])
def test_ip_tunnel_both_directions_one_tunnel(tmp_path, proto, wrap):
    """A GRE/IP-in-IP tunnel carries both directions; as in Zeek (tunnel keyed by the unordered
    address pair) the inner connection has ONE tunnel parent, not one per direction."""
    syn, synack, tup = inner_pair(4)
    frames = [(T0_NS, ip_carrier(True, proto, wrap(syn))),
              (T0_NS + 1_000_000, ip_carrier(False, proto, wrap(synack)))]
    res = scan_frames(tmp_path, frames)
    inner = find_flow(res.flows, *tup)
    assert len(inner["tunnel_parents"]) == 1, inner["tunnel_parents"]


def test_two_inner_flows_same_tunnel_share_parent(tmp_path):
    a = ipv4(IN_C, IN_S, 17, udp(1000, 53, b"q1"))
    b = ipv4(IN_C, IN_S, 17, udp(1001, 53, b"q2"))
    c = ipv4(IN_C, IN_S, 17, udp(1002, 53, b"q3"))
    frames = [(T0_NS, ip_carrier(True, 47, gre(0x0800, a))),
              (T0_NS + 1000, ip_carrier(True, 47, gre(0x0800, b))),
              (T0_NS + 2000, eth(0x0800, ipv4("203.0.113.7", OUT_B, 47, gre(0x0800, c))))]
    res = scan_frames(tmp_path, frames)
    p = {f["id.orig_p"]: f["tunnel_parents"] for f in res.flows}
    assert p[1000] == p[1001] and len(p[1000]) == 1
    assert p[1002] != p[1000]


def test_nested_tunnel_vxlan_in_gre(tmp_path):
    syn, _, tup = inner_pair(4)
    mid = ipv4("10.50.0.1", "10.50.0.2", 17, udp(40000, 4789, vxlan(eth(0x0800, syn))))
    frame = ip_carrier(True, 47, gre(0x0800, mid))
    res = scan_frames(tmp_path, [(T0_NS, frame)])
    vx = find_flow(res.flows, "10.50.0.1", 40000, "10.50.0.2", 4789, "udp")
    inner = find_flow(res.flows, *tup)
    assert inner["tunnel_parents"] == [vx["uid"]]
    assert len(vx["tunnel_parents"]) == 1


# ---------------------------------------------------------------------------
# ICMP, unknown transports
# ---------------------------------------------------------------------------

def test_icmp_echo_one_flow(tmp_path):
    req = eth(0x0800, ipv4("172.20.1.10", "172.20.60.21", 1, icmp_echo(8, 0x77, 1, b"p" * 56)))
    rep = eth(0x0800, ipv4("172.20.60.21", "172.20.1.10", 1, icmp_echo(0, 0x77, 1, b"p" * 56)), dst=MAC_A,
              src=MAC_B)
    db = decode_both([(1, req), (1, rep)])
    r = rows_of(db)
    assert [(x["sport"], x["dport"]) for x in r] == [(8, 0), (0, 8)]
    res = scan_frames(tmp_path, [(T0_NS, req), (T0_NS + 500_000, rep)])
    assert len(res.flows) == 1
    f = res.flows[0]
    assert (f["proto"], f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"]) == \
        ("icmp", "172.20.1.10", 8, "172.20.60.21", 0)
    assert f["orig_pkts"] == 1 and f["resp_pkts"] == 1
    assert f["orig_bytes"] == 56 and f["resp_bytes"] == 56


def test_icmpv6_echo_one_flow(tmp_path):
    a, b = "fd00:20:0:1::10", "fd00:20::53"
    req = eth(0x86DD, ipv6(a, b, 58, icmp_echo(128, 1, 1, b"x" * 8)))
    rep = eth(0x86DD, ipv6(b, a, 58, icmp_echo(129, 1, 1, b"x" * 8)))
    res = scan_frames(tmp_path, [(T0_NS, req), (T0_NS + 1000, rep)])
    assert len(res.flows) == 1
    f = res.flows[0]
    assert (f["proto"], f["id.orig_p"], f["id.resp_p"]) == ("icmp", 128, 129)


def test_sctp_unknown_transport(tmp_path):
    sctp = struct.pack("!HHII",
                       2905, 2905,         # source / destination port (M3UA)
                       0xDEADBEEF,         # verification tag
                       0) + struct.pack("!BBH", 1, 0, 4)   # checksum; INIT chunk type, flags, length
    pkt = eth(0x0800, ipv4("10.7.0.1", "10.7.0.2", 132, sctp))
    db = decode_both([(1, pkt)])
    row = one_row(db)
    assert (row["proto"], row["sport"], row["dport"]) == (132, 0, 0)
    assert row["pay_len"] == len(sctp)
    res = scan_frames(tmp_path, [(T0_NS, pkt)])
    assert len(res.flows) == 1
    f = res.flows[0]
    assert (f["proto"], f["id.orig_p"], f["id.resp_p"], f["ip_proto"]) == ("unknown_transport", 0, 0, 132)


# ---------------------------------------------------------------------------
# key property: the fast path and the per-packet path agree on every capture
# ---------------------------------------------------------------------------

def corpus_root() -> Path:
    env = os.environ.get("INSPECTOR_CORPUS")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def capture_files(root: Path) -> list:
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            try:
                with open(p, "rb") as fh:
                    head = fh.read(4)
            except OSError:
                continue
            if head in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                        b"\x0a\x0d\x0d\x0a") or head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd":
                out.append(p)
    return out


def fast_slow_differences(path: str) -> list:
    try:
        reader = CaptureReader(path)
    except NotACapture:
        return []
    fasts = {impl: fast_decoder(impl) for impl in FAST_IMPLS}
    slow = Decoder(fast=False)
    diffs = []
    for k, batch in enumerate(reader):
        ref = slow.decode(batch)
        for impl, dec in fasts.items():
            d = compare_paths(dec.decode(batch), ref)
            if d:
                diffs.append(f"batch {k} fast={impl}: " + "; ".join(d))
    return diffs


def _check_all(paths, root):
    bad = {}
    for p in paths:
        d = fast_slow_differences(p)
        if d:
            bad[os.path.relpath(p, root)] = d[:3]
    assert not bad, "fast and per-packet paths disagree:\n" + "\n".join(f"{k}: {v}" for k, v in bad.items())


def test_fast_equals_slow_on_bundled_captures():
    paths = sorted(str(p) for p in (REPO / "captures").glob("*.pcap"))
    assert paths
    _check_all(paths, REPO)


def test_fast_equals_slow_on_corpus():
    root = corpus_root()
    if not root.is_dir():
        pytest.skip(f"corpus not found at {root} (set INSPECTOR_CORPUS)")
    paths = capture_files(root)
    assert len(paths) > 100
    _check_all(paths, root)
