"""Audit of Zeek's packet analysis list: every encapsulation not covered elsewhere, from its spec.

Where each of Zeek's packet analyzers is tested (annotated bytes, never corpus files):

==========================  ====================================================================
Ethernet, VLAN, QinQ, MPLS  test_decode.py LINK_CASES
PPP, PPP serial, PPPoE      test_decode.py LINK_CASES
Linux cooked SLL, SLL2      test_decode.py LINK_CASES
NULL / LOOP, raw IP         test_decode.py LINK_CASES
GRE (+ key/seq), ERSPAN     test_decode.py IP_TUNNELS; ERSPAN type I, GRE/PPP, GRE over IPv6: here
 II/III, IP-in-IP
VXLAN, GENEVE, GTPv1,       test_decode.py UDP_TUNNELS; GTPv1 extension headers, Teredo
 Teredo                      authentication header: here
PBB, GRE-in-UDP, CAPWAP,    test_encapsulations.py
 802.2 LLC / SNAP, Novell
 raw IPX, Cisco FabricPath
AYIYA, NFLOG, IEEE 802.11,  here
 radiotap, PPI, VN-Tag,
 FDDI, ARP
==========================  ====================================================================

Tunnel semantics, as Zeek's: a UDP-carried tunnel's outer datagrams are a UDP connection of their
own and the inner connection's ``tunnel_parents``; an IP tunnel (GRE, IP-in-IP, ERSPAN) is no
connection, its inner connection has one tunnel parent (the tunnel's uid); link-layer framings
(802.11, radiotap, PPI, NFLOG, FDDI, VN-Tag) are no tunnel at all.
"""
from __future__ import annotations

import struct

import pytest

from helpers.pkt import MAC_A, MAC_B, eth, ipv4, ipv6, tcp, udp
from test_decode import (OUT_A, OUT_B, T0_NS, decode_both, find_flow, gre, inner_pair, ip_carrier, outer_udp,
                         rows_of, scan_frames)

SYN, ACK = 0x02, 0x10
IP4 = ipv4("192.0.2.1", "198.51.100.2", 6, tcp(1234, 80, b"hello", seq=7, ack=9, flags=ACK))
IP6 = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5353, 53, b"hello6"))


def only_row(lt: int, frame: bytes) -> dict:
    """The single IP row every decode path gives for a frame."""
    db = decode_both([(lt, frame)])
    (row,) = rows_of(db)
    return row


def snap(ethertype: int) -> bytes:
    return (b"\xaa\xaa\x03"                     # LLC: DSAP SNAP, SSAP SNAP, control UI
            + b"\x00\x00\x00"                   # SNAP OUI 00-00-00 (EtherType follows)
            + struct.pack("!H", ethertype))


# ---------------------------------------------------------------------------
# IP tunnels: ERSPAN type I, GRE carrying PPP, GRE over an IPv6 carrier
# ---------------------------------------------------------------------------

def _check_ip_tunnel(tmp_path, frames, tup):
    db = decode_both([(1, f) for _, f in frames])
    assert len(db) == len(frames) and dict(db.outcomes) == {"decoded": len(frames)}
    res = scan_frames(tmp_path, frames)
    assert len(res.flows) == 1, "the carrier is a tunnel, not a connection"
    inner = find_flow(res.flows, *tup)
    assert (inner["orig_pkts"], inner["resp_pkts"]) == (1, 1)
    assert len(inner["tunnel_parents"]) == 1 and inner["tunnel_parents"][0] != inner["uid"]


@pytest.mark.parametrize("wrap", [
    # ERSPAN type I: GRE protocol 0x88BE without the S bit and without an ERSPAN header
    lambda ip: gre(0x88BE, eth(0x0800, ip)),
    # GRE protocol 0x880B: PPP, address/control FF 03, protocol 0x0021 = IPv4 (RFC 1661)
    lambda ip: gre(0x880B, b"\xff\x03\x00\x21" + ip),
], ids=["erspan-type-i", "gre-ppp"])
def test_gre_variants(tmp_path, wrap):
    syn, synack, tup = inner_pair(4)
    _check_ip_tunnel(tmp_path, [(T0_NS, ip_carrier(True, 47, wrap(syn))),
                                (T0_NS + 1_000_000, ip_carrier(False, 47, wrap(synack)))], tup)


def test_gre_over_ipv6_carrier(tmp_path):
    syn, synack, tup = inner_pair(4)

    def carrier(fwd, inner):
        a, b = ("2001:db8:f::1", "2001:db8:f::2") if fwd else ("2001:db8:f::2", "2001:db8:f::1")
        return eth(0x86DD, ipv6(a, b, 47, gre(0x0800, inner)))
    _check_ip_tunnel(tmp_path, [(T0_NS, carrier(True, syn)), (T0_NS + 1_000_000, carrier(False, synack))], tup)


# ---------------------------------------------------------------------------
# UDP tunnels: AYIYA, GTPv1 extension headers, Teredo authentication
# ---------------------------------------------------------------------------

def ayiya(inner: bytes, next_header: int, opcode: int = 1, id_len_log2: int = 4, sig_words: int = 5) -> bytes:
    """AYIYA (Anything In Anything, draft-massar-v6ops-ayiya) header then the payload."""
    return (struct.pack("!BBBBI",
                        (id_len_log2 << 4) | 1,     # IDLen (log2 of the identity length), IDType 1 (integer)
                        (sig_words << 4) | 2,       # SigLen (4-byte words), HshMeth 2 (SHA-1)
                        (2 << 4) | opcode,          # AutMeth 2 (shared secret), OpCode (1 = forward)
                        next_header,                # next header (41 IPv6, 4 IPv4)
                        0x5F000000)                 # epoch time
            + b"\x20\x01\x0d\xb8" + b"\0" * ((1 << id_len_log2) - 4)    # identity
            + b"\x5a" * (sig_words * 4)                                # signature (SHA-1, 20 bytes)
            + inner)


def _check_udp_tunnel(tmp_path, sport, dport, wrap, ver, service):
    syn, synack, tup = inner_pair(ver)
    frames = [(T0_NS, outer_udp(True, sport, dport, wrap(syn))),
              (T0_NS + 1_000_000, outer_udp(False, sport, dport, wrap(synack)))]
    db = decode_both([(1, f) for _, f in frames])
    assert len(db) == 4 and dict(db.outcomes) == {"decoded": 2}
    res = scan_frames(tmp_path, frames)
    inner = find_flow(res.flows, *tup)
    outer = find_flow(res.flows, OUT_A, sport, OUT_B, dport, "udp")
    assert inner["tunnel_parents"] == [outer["uid"]] and outer["tunnel_parents"] == []
    assert (inner["orig_pkts"], inner["resp_pkts"], outer["orig_pkts"], outer["resp_pkts"]) == (1, 1, 1, 1)
    assert service in (outer["service"] or "")


@pytest.mark.parametrize("ver,nh", [(6, 41), (4, 4)], ids=["ipv6", "ipv4"])
def test_ayiya(tmp_path, ver, nh):
    _check_udp_tunnel(tmp_path, 50000, 5072, lambda ip: ayiya(ip, nh), ver, "ayiya")


@pytest.mark.parametrize("kw", [{"opcode": 0}, {"next_header": 17}], ids=["heartbeat-opcode", "not-ip"])
def test_ayiya_not_forwarded(kw):
    nh = kw.pop("next_header", 4)
    db = decode_both([(1, outer_udp(True, 50000, 5072, ayiya(IP4, nh, **kw)))])
    assert len(db) == 1 and rows_of(db)[0]["dport"] == 5072


def gtpu_ext(inner: bytes) -> bytes:
    """GTP-U G-PDU (3GPP TS 29.281) with the E flag and a PDU Session Container extension header."""
    ext = struct.pack("!BBBB",
                      1,          # extension length in 4-byte units
                      0x00,       # PDU type 0 (DL PDU session information) | spare
                      0x09,       # QFI 9
                      0)          # next extension header type: none
    return struct.pack("!BBHIHBB",
                       0x34,                       # version 1, PT 1, E flag
                       0xFF,                       # G-PDU
                       4 + len(ext) + len(inner),  # length after the first 8 bytes
                       0x00C0FFEE,                 # TEID
                       0,                          # sequence number (present because E is set)
                       0,                          # N-PDU number
                       0x85) + ext + inner         # next extension header: PDU Session Container


def teredo_auth(inner: bytes) -> bytes:
    """Teredo authentication indicator (RFC 4380 section 5.1.1) with empty id and value."""
    return struct.pack("!HBB", 0x0001, 0, 0) + b"\x11" * 8 + b"\x00" + inner   # nonce 8, confirmation 1


@pytest.mark.parametrize("sport,dport,wrap,ver,service", [
    (2152, 2152, gtpu_ext, 4, "gtpv1"),
    (51002, 3544, teredo_auth, 6, "teredo"),
], ids=["gtpv1-pdu-session-container", "teredo-authentication"])
def test_udp_tunnel_headers(tmp_path, sport, dport, wrap, ver, service):
    _check_udp_tunnel(tmp_path, sport, dport, wrap, ver, service)


# ---------------------------------------------------------------------------
# Link layers: NFLOG, IEEE 802.11, radiotap, PPI, VN-Tag, FDDI; ARP
# ---------------------------------------------------------------------------

def nflog(payload: bytes, family: int = 2) -> bytes:
    """LINKTYPE_NFLOG: a 4-byte header, then TLVs (length and type in host order, little-endian
    here, each padded to 4 bytes); type 9 (NFULA_PAYLOAD) holds the packet."""
    def tlv(t, v):
        b = struct.pack("<HH", 4 + len(v), t) + v
        return b + b"\0" * (-len(b) % 4)
    return (struct.pack("!BBH", family, 0, 0)                        # family, version 0, resource id
            + tlv(1, struct.pack("!HBB", 0x0800, 3, 0))               # NFULA_PACKET_HDR: protocol, hook
            + tlv(10, b"eth0\0")                                      # NFULA_PREFIX
            + tlv(9, payload))                                        # NFULA_PAYLOAD


def dot11(body: bytes, *, to_ds=True, from_ds=False, subtype=0, protected=False, order=False,
          ftype=2) -> bytes:
    """An IEEE 802.11 MAC header (frame control, duration, addresses, sequence control, the fourth
    address in a WDS frame, QoS control for QoS subtypes, HT control when the order bit is set)."""
    fc0 = (subtype << 4) | (ftype << 2)                      # protocol version 0, type, subtype
    fc1 = (1 if to_ds else 0) | (2 if from_ds else 0) | (0x40 if protected else 0) | (0x80 if order else 0)
    hdr = struct.pack("<BBH", fc0, fc1, 0) + MAC_A + MAC_B + b"\x02\x00\x00\x00\x00\x09" + struct.pack("<H", 0)
    if to_ds and from_ds:
        hdr += b"\x02\x00\x00\x00\x00\x0a"                    # address 4
    if subtype & 0x8:
        hdr += struct.pack("<H", 5)                           # QoS control (TID 5)
        if order:
            hdr += struct.pack("<I", 0)                       # HT control
    return hdr + body


def radiotap(frame: bytes, with_flags: bool = False) -> bytes:
    """Radiotap header (version 0, little-endian length and present bitmap); optionally the Flags
    field (present bit 1, one byte)."""
    if with_flags:
        return struct.pack("<BBHI", 0, 0, 9, 0x00000002) + b"\x00" + frame
    return struct.pack("<BBHI", 0, 0, 8, 0) + frame


def ppi(frame: bytes, dlt: int) -> bytes:
    """PPI packet header (version 0, flags 0, little-endian length 8, the inner DLT), no fields."""
    return struct.pack("<BBHI", 0, 0, 8, dlt) + frame


WLAN_CASES = [
    ("802.11-to-ds", 105, dot11(snap(0x0800) + IP4)),
    ("802.11-from-ds", 105, dot11(snap(0x0800) + IP4, to_ds=False, from_ds=True)),
    ("802.11-wds-4addr", 105, dot11(snap(0x0800) + IP4, from_ds=True)),
    ("802.11-qos", 105, dot11(snap(0x0800) + IP4, subtype=8)),
    ("802.11-qos-ht-control", 105, dot11(snap(0x0800) + IP4, subtype=8, order=True)),
    ("802.11-ipv6", 105, dot11(snap(0x86DD) + IP6)),
    ("radiotap", 127, radiotap(dot11(snap(0x0800) + IP4))),
    ("radiotap-flags", 127, radiotap(dot11(snap(0x0800) + IP4, subtype=8), with_flags=True)),
    ("ppi-802.11", 192, ppi(dot11(snap(0x0800) + IP4), 105)),
    ("ppi-ethernet", 192, ppi(eth(0x0800, IP4), 1)),
    ("nflog-ipv4", 239, nflog(IP4)),
    ("nflog-ipv6", 239, nflog(IP6, family=10)),
    # Cisco VN-Tag (EtherType 0x8926): 4 bytes of tag (d/p bits, destination and source VIF), EtherType
    ("vntag", 1, eth(0x8926, struct.pack("!HH", 0x8000 | 12, 34) + struct.pack("!H", 0x0800) + IP4)),
    # FDDI: frame control 0x50 (async LLC frame), destination, source, LLC/SNAP
    ("fddi", 10, b"\x50" + MAC_B + MAC_A + snap(0x0800) + IP4),
    ("fddi-ipv6", 10, b"\x50" + MAC_B + MAC_A + snap(0x86DD) + IP6),
]


@pytest.mark.parametrize("lt,frame", [c[1:] for c in WLAN_CASES], ids=[c[0] for c in WLAN_CASES])
def test_link_layer_framings(lt, frame):
    row = only_row(lt, frame)
    if row["ver"] == 4:
        assert (row["src"], row["dst"], row["sport"], row["dport"]) == ("192.0.2.1", "198.51.100.2", 1234, 80)
        assert row["ip_len"] == len(IP4)
    else:
        assert (row["src"], row["dport"]) == ("2001:db8::1", 53)
    assert row["wire_len"] == len(frame)


def test_link_layer_framing_is_no_tunnel(tmp_path):
    res = scan_frames(tmp_path, [(T0_NS, radiotap(dot11(snap(0x0800) + IP4)))], linktype=127)
    (flow,) = res.flows
    assert flow["tunnel_parents"] == [] and flow["orig_pkts"] == 1


NON_IP = [
    ("802.11-protected", 105, dot11(b"\x00" * 8 + snap(0x0800) + IP4, protected=True)),
    ("802.11-beacon", 105, dot11(b"\x00" * 40, ftype=0, subtype=8, to_ds=False)),
    ("802.11-null-data", 105, dot11(b"", subtype=4)),
    ("802.11-arp", 105, dot11(snap(0x0806) + b"\x00" * 28)),
    ("nflog-other-family", 239, nflog(IP4, family=7)),
    ("fddi-arp", 10, b"\x50" + MAC_B + MAC_A + snap(0x0806) + b"\x00" * 28),
    ("fddi-not-snap", 10, b"\x50" + MAC_B + MAC_A + b"\xe0\xe0\x03" + b"\x00" * 30),
    # ARP request (RFC 826): htype 1, ptype IPv4, hlen 6, plen 4, op 1, sender/target addresses
    ("ethernet-arp", 1, eth(0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + bytes([192, 0, 2, 1])
                            + bytes(6) + bytes([192, 0, 2, 2]))),
]


@pytest.mark.parametrize("lt,frame", [c[1:] for c in NON_IP], ids=[c[0] for c in NON_IP])
def test_non_ip_framings(lt, frame):
    db = decode_both([(lt, frame)])
    assert len(db) == 0 and dict(db.outcomes) == {"non_ip": 1}


@pytest.mark.parametrize("lt,frame,weird", [
    (10, b"\x50" + MAC_B + MAC_A + b"\xaa\xaa", "fddi.truncated_header"),
    (127, struct.pack("<BBHI", 0, 0, 64, 0) + b"\x00" * 8, "radiotap.bad_length"),
    (192, struct.pack("<BBHI", 0, 0, 4, 1) + b"\x00" * 20, "ppi.bad_length"),
    (105, b"\x08\x01" + b"\x00" * 10, "wlan.truncated_header"),
], ids=["fddi", "radiotap", "ppi", "802.11"])
def test_truncated_framings_are_weird(lt, frame, weird):
    db = decode_both([(lt, frame)])
    assert len(db) == 0 and weird in [w[1] for w in db.weirds]
