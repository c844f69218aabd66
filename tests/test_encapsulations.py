"""Encapsulations written from their specifications (annotated bytes, not corpus files).

Each case builds the frame field by field from the standard, runs it through every decode path
(compiled, numpy, per-packet: they must agree) and through a scan, and checks the inner
connection and its tunnel parent as Zeek defines them: a UDP-carried tunnel's outer UDP
connection is logged and is the inner connection's ``tunnel_parents``; an Ethernet-level
encapsulation (PBB, FabricPath, LLC/SNAP) is no tunnel at all.
"""
from __future__ import annotations

import struct

import pytest

from helpers.pkt import MAC_A, MAC_B, eth, ipv4, ipv6, tcp, udp
from test_decode import (OUT_A, OUT_B, T0_NS, decode_both, find_flow, inner_pair, outer_udp, rows_of,
                         scan_frames)

SYN, ACK = 0x02, 0x10


def _check_udp_tunnel(tmp_path, wrap, port, service):
    """An inner connection through a UDP tunnel on ``port``: every decode path agrees, the outer
    datagram pair is one UDP connection with ``service``, and it is the inner one's tunnel parent."""
    frames, tup = _pair_frames(lambda ip, fwd: outer_udp(fwd, 50000 if port != 5247 else 5247, port, wrap(ip)))
    db = decode_both([(1, f) for _, f in frames])
    assert len(db) == 4 and dict(db.outcomes) == {"decoded": 2}
    res = scan_frames(tmp_path, frames)
    inner = find_flow(res.flows, *tup)
    outer = find_flow(res.flows, OUT_A, 50000 if port != 5247 else 5247, OUT_B, port, "udp")
    assert inner["tunnel_parents"] == [outer["uid"]]
    assert inner["orig_pkts"] == 1 and inner["resp_pkts"] == 1
    assert service in (outer["service"] or "")


def _pair_frames(wrap):
    """Client SYN and server SYN-ACK of one inner connection, each wrapped into a whole frame."""
    syn, synack, tup = inner_pair(4)
    return [(T0_NS, wrap(syn, True)), (T0_NS + 1_000_000, wrap(synack, False))], tup


# ---------------------------------------------------------------------------
# IEEE 802.1ah provider backbone bridging (MAC-in-MAC), EtherType 0x88E7
# ---------------------------------------------------------------------------

def pbb(inner_ethertype: int, payload: bytes, isid: int = 0x0ABCDE) -> bytes:
    i_tag = struct.pack("!I",
                        (3 << 29)          # I-PCP 3
                        | (0 << 28)        # I-DEI
                        | (0 << 27)        # UCA
                        | isid)            # 24-bit service instance identifier
    c_dst, c_src = b"\x02\x00\x00\x00\x00\xc1", b"\x02\x00\x00\x00\x00\xc2"   # customer MACs
    return i_tag + c_dst + c_src + struct.pack("!H", inner_ethertype) + payload


@pytest.mark.parametrize("b_vlan", [False, True], ids=["untagged", "b-tag"])
def test_pbb_customer_frame(tmp_path, b_vlan):
    def wrap(ip, fwd):
        body = pbb(0x0800, ip)
        if b_vlan:   # backbone VLAN tag (802.1ad S-tag, EtherType 0x88A8) before the I-TAG
            return eth(0x88A8, struct.pack("!HH", 100, 0x88E7) + body)
        return eth(0x88E7, body)
    frames, tup = _pair_frames(wrap)
    db = decode_both([(1, f) for _, f in frames])
    assert dict(db.outcomes) == {"decoded": 2}
    res = scan_frames(tmp_path, frames)
    f = find_flow(res.flows, *tup)
    assert f["orig_pkts"] == 1 and f["resp_pkts"] == 1 and f["tunnel_parents"] == []
    assert len(res.flows) == 1


def test_pbb_customer_vlan_inside():
    ip = ipv4("10.1.1.1", "10.1.1.2", 17, udp(5000, 53, b"q" * 12))
    frame = eth(0x88E7, pbb(0x8100, struct.pack("!HH", 42, 0x0800) + ip))   # C-tag VLAN 42
    db = decode_both([(1, frame)])
    (row,) = rows_of(db)
    assert (row["src"], row["dst"], row["dport"], row["vlan"]) == ("10.1.1.1", "10.1.1.2", 53, 42)


def test_pbb_truncated_is_weird():
    db = decode_both([(1, eth(0x88E7, pbb(0x0800, b""))[:14 + 18])])
    assert dict(db.outcomes) == {"pbb.truncated_header": 1}


# ---------------------------------------------------------------------------
# GRE-in-UDP (RFC 8086): UDP destination port 4754, payload = GRE header + payload
# ---------------------------------------------------------------------------

def gre_header(proto: int, key: int | None = None, seq: int | None = None, csum: bool = False) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    out = struct.pack("!HH", flags, proto)          # C, K, S bits; version 0; protocol type
    if csum:
        out += struct.pack("!HH", 0, 0)             # checksum + reserved1
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out


GRE_UDP_CASES = [
    ("ipv4", lambda ip: gre_header(0x0800) + ip),
    ("ipv4-key-seq-csum", lambda ip: gre_header(0x0800, key=7, seq=1, csum=True) + ip),
    ("ethernet", lambda ip: gre_header(0x6558) + eth(0x0800, ip)),
    ("mpls", lambda ip: gre_header(0x8847) + struct.pack("!I", (16 << 12) | 0x100 | 64) + ip),
]


@pytest.mark.parametrize("wrap", [c[1] for c in GRE_UDP_CASES], ids=[c[0] for c in GRE_UDP_CASES])
def test_gre_in_udp(tmp_path, wrap):
    _check_udp_tunnel(tmp_path, wrap, 4754, "gre")


def test_gre_in_udp_bad_version_keeps_outer_datagram():
    bad = struct.pack("!HH", 0x0003, 0x0800) + b"x" * 30        # GRE version 3 does not exist
    db = decode_both([(1, outer_udp(True, 50000, 4754, bad))])
    assert len(db) == 1 and dict(db.outcomes) == {"decoded": 1}
    assert [w[1] for w in db.weirds] == ["gre.unknown_version"]


# ---------------------------------------------------------------------------
# CAPWAP data channel (RFC 5415 section 4.3), UDP port 5247
# ---------------------------------------------------------------------------

def capwap(payload: bytes, t_bit: bool, wbid: int = 1, radio_mac: bytes | None = None, k_bit=False,
           f_bit=False, dtls=False) -> bytes:
    opt = b""
    if radio_mac is not None:   # Radio MAC Address field: length byte, address, padded to 4 bytes
        opt = bytes([len(radio_mac)]) + radio_mac
        opt += b"\0" * (-len(opt) % 4)
    hlen_words = (8 + len(opt)) // 4
    w0 = ((1 if dtls else 0) << 24          # preamble: version 0, type (1 = DTLS)
          | hlen_words << 19                # HLEN
          | 0 << 14                         # RID
          | wbid << 9                       # WBID: 1 = IEEE 802.11
          | (1 if t_bit else 0) << 8        # T: native frame format of the binding
          | (1 if f_bit else 0) << 7        # F: fragment
          | (1 if radio_mac is not None else 0) << 4   # M: radio MAC present
          | (1 if k_bit else 0) << 3)       # K: keep-alive
    w1 = 0                                  # fragment ID, fragment offset
    return struct.pack("!II", w0, w1) + opt + payload


def dot11_data(ip: bytes, qos: bool = False) -> bytes:
    """An IEEE 802.11 data frame (To DS) carrying LLC/SNAP + IPv4."""
    fc = 0x08 | (0x80 if qos else 0)               # type 2 (data), subtype 0 or 8 (QoS data)
    hdr = struct.pack("<BBH", fc, 0x01, 0)          # frame control (To DS), duration
    hdr += MAC_A + MAC_B + b"\x02\x00\x00\x00\x00\x09" + struct.pack("<H", 0x10)   # addr1-3, seq ctl
    if qos:
        hdr += struct.pack("<H", 0)                 # QoS control
    return hdr + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", 0x0800) + ip


CAPWAP_CASES = [
    ("802.11-native", lambda ip: capwap(dot11_data(ip), t_bit=True)),
    ("802.11-qos-radio-mac", lambda ip: capwap(dot11_data(ip, qos=True), t_bit=True, radio_mac=MAC_B)),
    ("802.3", lambda ip: capwap(eth(0x0800, ip), t_bit=False)),
]


@pytest.mark.parametrize("wrap", [c[1] for c in CAPWAP_CASES], ids=[c[0] for c in CAPWAP_CASES])
def test_capwap_data(tmp_path, wrap):
    _check_udp_tunnel(tmp_path, wrap, 5247, "capwap")      # access point and controller both use 5247


@pytest.mark.parametrize("kw", [{"k_bit": True}, {"f_bit": True}, {"dtls": True}, {"wbid": 3}],
                         ids=["keep-alive", "fragment", "dtls", "other-binding"])
def test_capwap_not_decapsulated(kw):
    ip = ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, flags=SYN))
    db = decode_both([(1, outer_udp(True, 5247, 5247, capwap(dot11_data(ip), t_bit=True, **kw)))])
    assert len(db) == 1 and dict(db.outcomes) == {"decoded": 1} and not db.weirds


# ---------------------------------------------------------------------------
# IEEE 802.3 length field: 802.2 LLC, SNAP, Novell raw IPX; Cisco FabricPath
# ---------------------------------------------------------------------------

def dot3(payload: bytes) -> bytes:
    return MAC_B + MAC_A + struct.pack("!H", len(payload)) + payload   # length, not an EtherType


def test_llc_snap_ipv4_and_ipv6():
    ip4 = ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"x" * 8))
    ip6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(1000, 53, b"y" * 8))
    snap = lambda et, ip: dot3(b"\xaa\xaa\x03" + b"\x00\x00\x00" + struct.pack("!H", et) + ip)  # noqa: E731
    db = decode_both([(1, snap(0x0800, ip4)), (1, snap(0x86DD, ip6))])
    assert [(r["src"], r["dport"]) for r in rows_of(db)] == [("10.0.0.1", 53), ("2001:db8::1", 53)]


@pytest.mark.parametrize("llc", [b"\xff\xff" + b"\x00" * 28,          # Novell raw 802.3 (IPX, no LLC)
                                 b"\xe0\xe0\x03" + b"\x00" * 27,      # 802.2 LLC, DSAP/SSAP 0xE0: IPX
                                 b"\x42\x42\x03" + b"\x00" * 35],     # 802.2 LLC, 0x42: spanning tree BPDU
                         ids=["novell-raw-ipx", "llc-ipx", "llc-stp"])
def test_non_ip_802_3_frames(llc):
    db = decode_both([(1, dot3(llc))])
    assert len(db) == 0 and dict(db.outcomes) == {"non_ip": 1}


def test_fabricpath():
    ip = ipv4("10.9.0.1", "10.9.0.2", 17, udp(1000, 514, b"syslog"))
    ftag_ttl = struct.pack("!H", (1 << 6) | 32)           # FTAG 1, TTL 32
    inner = b"\x02\x00\x00\x00\x00\xd1" + b"\x02\x00\x00\x00\x00\xd2" + struct.pack("!H", 0x0800) + ip
    db = decode_both([(1, eth(0x8903, ftag_ttl + inner))])
    (row,) = rows_of(db)
    assert (row["src"], row["dport"]) == ("10.9.0.1", 514)
