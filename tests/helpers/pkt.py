"""Annotated byte builders for packets and capture files.

Every header is packed with ``struct`` field by field, with a comment naming each
field, so a test reads like a protocol diagram.  Checksums are filled where cheap
(IPv4 header) and left zero elsewhere: inspector does not validate them.

Capture-file writers: ``pcap_bytes`` (classic pcap, both byte orders, micro or
nanosecond) and the pcapng block builders ``shb``, ``idb``, ``epb``, ``spb``,
``legacy_pb``, ``custom_block``, ``raw_block``.
"""
from __future__ import annotations

import ipaddress
import struct

# ---------------------------------------------------------------------------
# Link layers
# ---------------------------------------------------------------------------

MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")


def eth(ethertype: int, payload: bytes, dst: bytes = MAC_B, src: bytes = MAC_A) -> bytes:
    return (dst                                   # destination MAC (6)
            + src                                 # source MAC (6)
            + struct.pack("!H", ethertype)        # EtherType (2)
            + payload)


def vlan_tag(vid: int, inner_ethertype: int, pcp: int = 0) -> bytes:
    """The 4 bytes after a TPID: TCI (PCP:3 DEI:1 VID:12) then the next EtherType."""
    return struct.pack("!HH",
                       (pcp << 13) | (vid & 0x0FFF),   # TCI
                       inner_ethertype)                # encapsulated EtherType


def mpls_label(label: int, bottom: bool, ttl: int = 64, tc: int = 0) -> bytes:
    # label:20 | TC:3 | S:1 | TTL:8
    return struct.pack("!I", (label << 12) | (tc << 9) | (int(bottom) << 8) | ttl)


def sll_header(protocol: int, pkttype: int = 0, arphrd: int = 1, addr: bytes = MAC_A) -> bytes:
    """Linux cooked capture v1 (DLT 113), 16 bytes."""
    return struct.pack("!HHH", pkttype,            # packet type (0 = to us)
                       arphrd,                     # ARPHRD_ type (1 = Ethernet)
                       len(addr)) \
        + addr.ljust(8, b"\0") \
        + struct.pack("!H", protocol)              # protocol (EtherType)


def sll2_header(protocol: int, ifindex: int = 2, arphrd: int = 1, pkttype: int = 4, addr: bytes = MAC_A) -> bytes:
    """Linux cooked capture v2 (LINKTYPE_LINUX_SLL2 = 276), 20 bytes."""
    return struct.pack("!HHIHBB",
                       protocol,                   # protocol type (EtherType)
                       0,                          # reserved (MBZ)
                       ifindex,                    # interface index
                       arphrd,                     # ARPHRD_ type
                       pkttype,                    # packet type (4 = outgoing)
                       len(addr)) \
        + addr.ljust(8, b"\0")                     # link-layer address, padded to 8


def null_header(family: int, byteorder: str) -> bytes:
    """BSD loopback: a 4-byte address family in host (DLT_NULL) or network (DLT_LOOP) order."""
    return struct.pack(byteorder + "I", family)


def pppoe_session(payload: bytes, ppp_proto: int = 0x0021, session: int = 0x1234) -> bytes:
    return struct.pack("!BBHH",
                       0x11,                       # version 1, type 1
                       0x00,                       # code 0 = session data
                       session,                    # session id
                       len(payload) + 2) \
        + struct.pack("!H", ppp_proto) \
        + payload                                  # PPP protocol (0x0021 IPv4) + datagram


# ---------------------------------------------------------------------------
# IP
# ---------------------------------------------------------------------------

def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, df: bool = False, mf: bool = False,
         frag_off: int = 0, ttl: int = 64, total_len: int | None = None) -> bytes:
    """IPv4 header (20 bytes, no options) + payload.  frag_off is in bytes (multiple of 8)."""
    assert frag_off % 8 == 0
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off // 8)
    hdr = struct.pack("!BBHHHBBH4s4s",
                      0x45,                                    # version 4, IHL 5 words
                      0,                                       # DSCP/ECN
                      total_len if total_len is not None else 20 + len(payload),  # total length
                      ident,                                   # identification
                      flags,                                   # flags (DF, MF) + fragment offset
                      ttl,                                     # TTL
                      proto,                                   # protocol
                      0,                                       # header checksum (filled below)
                      ipaddress.IPv4Address(src).packed,       # source address
                      ipaddress.IPv4Address(dst).packed)       # destination address
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src: str, dst: str, nh: int, payload: bytes, hlim: int = 64, plen: int | None = None) -> bytes:
    return struct.pack("!IHBB16s16s",
                       0x60000000,                             # version 6, traffic class 0, flow label 0
                       len(payload) if plen is None else plen,  # payload length
                       nh,                                     # next header
                       hlim,                                   # hop limit
                       ipaddress.IPv6Address(src).packed,      # source address
                       ipaddress.IPv6Address(dst).packed) + payload


def ipv6_ext(nh: int, body: bytes = b"") -> bytes:
    """Generic IPv6 extension header (hop-by-hop, routing, destination options):
    next header, header length in 8-octet units beyond the first, then the body padded to 8n."""
    body = body + b"\x00" * ((-(2 + len(body))) % 8)   # zero bytes are Pad1 options
    return struct.pack("!BB",
                       nh,                          # next header
                       (2 + len(body)) // 8 - 1     # length in 8-octet units, not counting the first
                       ) + body


def ipv6_frag(nh: int, offset: int, more: bool, ident: int) -> bytes:
    """IPv6 fragment header (8 bytes); offset in bytes (multiple of 8)."""
    return struct.pack("!BBHI",
                       nh,                                     # next header
                       0,                                      # reserved
                       (offset & 0xFFF8) | int(more),          # offset:13 | res:2 | M:1
                       ident)                                  # identification


def tcp(sport: int, dport: int, payload: bytes = b"", seq: int = 1000, ack: int = 0, flags: int = 0x02,
        win: int = 65535, options: bytes = b"") -> bytes:
    assert len(options) % 4 == 0
    return struct.pack("!HHIIBBHHH",
                       sport, dport,                           # ports
                       seq,                                    # sequence number
                       ack,                                    # acknowledgement number
                       ((20 + len(options)) // 4) << 4,        # data offset (words) << 4
                       flags,                                  # CWR ECE URG ACK PSH RST SYN FIN
                       win,                                    # window
                       0,                                      # checksum (not checked)
                       0) + options + payload                  # urgent pointer


def udp(sport: int, dport: int, payload: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HHHH",
                       sport, dport,                           # ports
                       8 + len(payload) if length is None else length,  # length (header + data)
                       0) + payload                            # checksum (0 = none)


def icmp_echo(itype: int, ident: int, seq: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHHH",
                       itype,                                  # type (8 request, 0 reply)
                       0,                                      # code
                       0,                                      # checksum (not checked)
                       ident,                                  # identifier
                       seq) + payload                          # sequence number


SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04

# ---------------------------------------------------------------------------
# Classic pcap
# ---------------------------------------------------------------------------


def pcap_header(linktype: int = 1, endian: str = "<", nano: bool = False, snaplen: int = 262144) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(endian + "IHHiIII",
                       magic,          # magic (written in the file's byte order)
                       2, 4,           # version 2.4
                       0,              # thiszone
                       0,              # sigfigs
                       snaplen,        # snaplen
                       linktype)       # network (LINKTYPE_*)


def pcap_record(ts_ns: int, data: bytes, endian: str = "<", nano: bool = False, orig_len: int | None = None,
                incl_len: int | None = None) -> bytes:
    sec, ns = divmod(ts_ns, 1_000_000_000)
    frac = ns if nano else ns // 1000
    return struct.pack(endian + "IIII",
                       sec,                                          # ts_sec
                       frac,                                         # ts_usec / ts_nsec
                       len(data) if incl_len is None else incl_len,  # incl_len (captured)
                       len(data) if orig_len is None else orig_len) + data  # orig_len (on the wire)


def pcap_bytes(frames, linktype: int = 1, endian: str = "<", nano: bool = False, snaplen: int = 262144) -> bytes:
    """frames: iterable of (ts_ns, data) or (ts_ns, data, orig_len)."""
    out = [pcap_header(linktype, endian, nano, snaplen)]
    for fr in frames:
        ts_ns, data = fr[0], fr[1]
        orig = fr[2] if len(fr) > 2 else None
        out.append(pcap_record(ts_ns, data, endian, nano, orig_len=orig))
    return b"".join(out)


# ---------------------------------------------------------------------------
# pcapng
# ---------------------------------------------------------------------------

def _pad4(b: bytes) -> bytes:
    return b + b"\0" * ((-len(b)) % 4)


def ng_option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _pad4(value)


def ng_end_of_options(endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", 0, 0)       # opt_endofopt


def raw_block(btype: int, body: bytes, endian: str = "<", length: int | None = None) -> bytes:
    """type, total length, body (padded), total length again."""
    body = _pad4(body)
    blen = 12 + len(body) if length is None else length
    return struct.pack(endian + "II", btype, blen) + body + struct.pack(endian + "I", blen)


def shb(endian: str = "<") -> bytes:
    body = struct.pack(endian + "IHHq",
                       0x1A2B3C4D,     # byte-order magic (reads 4d3c2b1a in a little-endian file)
                       1, 0,           # version 1.0
                       -1)             # section length: unknown
    return raw_block(0x0A0D0D0A, body, endian)


def idb(linktype: int, endian: str = "<", snaplen: int = 262144, tsresol: int | None = None,
        tsoffset: int | None = None) -> bytes:
    body = struct.pack(endian + "HHI", linktype, 0, snaplen)       # link type, reserved, snaplen
    opts = b""
    if tsresol is not None:
        opts += ng_option(9, bytes([tsresol]), endian)              # if_tsresol (bit 7: power of 2)
    if tsoffset is not None:
        opts += ng_option(14, struct.pack(endian + "q", tsoffset), endian)   # if_tsoffset (seconds)
    if opts:
        opts += ng_end_of_options(endian)
    return raw_block(1, body + opts, endian)


def epb(ifid: int, ts_units: int, data: bytes, endian: str = "<", orig_len: int | None = None) -> bytes:
    body = struct.pack(endian + "IIIII",
                       ifid,                      # interface id
                       ts_units >> 32,            # timestamp (high 32 bits)
                       ts_units & 0xFFFFFFFF,     # timestamp (low 32 bits)
                       len(data),                 # captured length
                       len(data) if orig_len is None else orig_len) + data   # original length
    return raw_block(6, body, endian)


def spb(data: bytes, endian: str = "<", orig_len: int | None = None) -> bytes:
    body = struct.pack(endian + "I", len(data) if orig_len is None else orig_len) + data  # original length
    return raw_block(3, body, endian)


def legacy_pb(ifid: int, ts_units: int, data: bytes, endian: str = "<") -> bytes:
    body = struct.pack(endian + "HHIIII",
                       ifid,                      # interface id (16 bits)
                       0,                         # drops count
                       ts_units >> 32,            # timestamp high
                       ts_units & 0xFFFFFFFF,     # timestamp low
                       len(data),                 # captured length
                       len(data)) + data          # original length
    return raw_block(2, body, endian)


def custom_block(endian: str = "<", copyable: bool = True) -> bytes:
    body = struct.pack(endian + "I", 32473) + b"vendor-private-data"   # PEN (example enterprise number)
    return raw_block(0x00000BAD if copyable else 0x40000BAD, body, endian)


# ---------------------------------------------------------------------------
# Frames used across tests
# ---------------------------------------------------------------------------

def tcp_frame(src="10.0.0.1", dst="10.0.0.2", sport=40000, dport=80, payload=b"", flags=PSH | ACK, seq=1000,
              ack=1, ident=1) -> bytes:
    return eth(0x0800, ipv4(src, dst, 6, tcp(sport, dport, payload, seq=seq, ack=ack, flags=flags), ident=ident))


def udp_frame(src="10.0.0.1", dst="10.0.0.2", sport=40000, dport=53, payload=b"q" * 20, ident=1) -> bytes:
    return eth(0x0800, ipv4(src, dst, 17, udp(sport, dport, payload), ident=ident))


def tcp_session(client="10.0.0.1", server="10.0.0.2", cport=40000, sport=80, t0_ns=1_764_000_000_000_000_000,
                req=b"GET / HTTP/1.1\r\n\r\n", resp=b"HTTP/1.1 200 OK\r\n\r\nhello", step_ns=1_000_000):
    """A complete TCP session (handshake, request, response, FIN close) as (ts_ns, frame) pairs."""
    c_isn, s_isn = 1000, 5000
    pkts = [
        (client, server, cport, sport, SYN, c_isn, 0, b""),
        (server, client, sport, cport, SYN | ACK, s_isn, c_isn + 1, b""),
        (client, server, cport, sport, ACK, c_isn + 1, s_isn + 1, b""),
        (client, server, cport, sport, PSH | ACK, c_isn + 1, s_isn + 1, req),
        (server, client, sport, cport, PSH | ACK, s_isn + 1, c_isn + 1 + len(req), resp),
        (client, server, cport, sport, FIN | ACK, c_isn + 1 + len(req), s_isn + 1 + len(resp), b""),
        (server, client, sport, cport, FIN | ACK, s_isn + 1 + len(resp), c_isn + 2 + len(req), b""),
        (client, server, cport, sport, ACK, c_isn + 2 + len(req), s_isn + 2 + len(resp), b""),
    ]
    out = []
    for i, (s, d, sp, dp, fl, sq, ak, pl) in enumerate(pkts):
        out.append((t0_ns + i * step_ns, tcp_frame(s, d, sp, dp, pl, fl, sq, ak, ident=i + 1)))
    return out
