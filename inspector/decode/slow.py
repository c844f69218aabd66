"""Per-packet decoder for the rare cases: every link type, tunnel, fragment and
malformed header the columnar fast path does not take.

It is also the reference: tests run whole captures through both paths and
require identical rows for the packets the fast path accepts.

``SlowDecoder.decode(buf, off, cap, wire, linktype, ts, frame)`` returns
``(outcome, rows, weirds)``:
* outcome: one name accounting for the frame in ``stats.outcomes`` ("decoded",
  "non_ip", "ip.fragment", "linktype.<name>", or the weird name that stopped it);
* rows: zero or more ``Row`` tuples, one per IP packet that feeds the flow table
  (the outer UDP packet of a tunnel and the inner packet are both rows);
* weirds: (name, detail) pairs.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from ..community_id import ICMP4_COUNTERPART, ICMP6_COUNTERPART
from .linktypes import linktype_name

V4_PREFIX = b"\x00" * 10 + b"\xff\xff"

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)
ETH_MPLS = (0x8847, 0x8848)
ETH_PPPOE_SESS = 0x8864
ETH_FABRICPATH = 0x8903
ETH_VNTAG = 0x8926
ETH_TEB = 0x6558
ETH_ERSPAN2 = 0x88BE
ETH_ERSPAN3 = 0x22EB
ETH_PPP = 0x880B
ETH_PBB = 0x88E7          # IEEE 802.1ah provider backbone bridging (MAC-in-MAC)
PBB_LEN = 18              # I-TAG (4) + customer destination and source MAC (12) + EtherType (2)

# UDP ports whose payload is decapsulated: the outer UDP connection is logged and is the inner
# connections' tunnel parent (as Zeek does for VXLAN, GENEVE, Teredo, GTPv1, AYIYA).
# 4754 is GRE-in-UDP (RFC 8086); 5247 CAPWAP data channel (RFC 5415 section 4.3), decoded as nDPI does.
UDP_TUNNEL_PORTS = {4789: "vxlan", 6081: "geneve", 3544: "teredo", 2152: "gtpv1", 5072: "ayiya", 4754: "gre",
                    5247: "capwap"}

IPV6_EXT = {0, 43, 60, 139, 140, 253, 254}   # 135 (Mobility) ends the chain, as in Zeek and tshark

_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from
_ipv4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_tcp = struct.Struct("!HHIIBBH").unpack_from
_udp = struct.Struct("!HHHH").unpack_from


class Row(NamedTuple):
    frame: int
    ver: int
    src: bytes            # 16 bytes, IPv4 as ::ffff:a.b.c.d
    dst: bytes
    proto: int
    sport: int            # ICMP: type
    dport: int            # ICMP: code
    flags: int
    seq: int
    ack: int
    win: int
    ip_len: int
    pay_len: int
    payload: bytes        # captured payload bytes (may be shorter than pay_len)
    vlan: int
    inner_vlan: int
    tunnel: tuple | None  # ("row", k, kind) or ("key", (kind, src, dst), kind)
    wire_len: int
    syn_options: bytes | None = None   # a TCP SYN's option bytes (JA4T); fast-path rows keep them in the buffer


class Weird(Exception):
    def __init__(self, name: str, detail: str = ""):
        super().__init__(name)
        self.name = name
        self.detail = detail


class NonIP(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class FragmentHeld(Exception):
    pass


class FragmentReassembler:
    """IPv4/IPv6 fragment reassembly with bounded memory and timeouts.

    Holes are tracked per datagram; the first copy of overlapping data wins and
    an inconsistent overlap is a weird.  At most ``max_datagrams`` datagrams and
    ``max_bytes`` buffered bytes are held; the oldest are dropped (weird) past that.
    """

    def __init__(self, timeout: float = 60.0, max_datagrams: int = 4096, max_bytes: int = 32 << 20):
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.pending: dict = {}
        self.bytes_held = 0
        self.weirds: list[tuple[float, str, str]] = []

    def _drop(self, key, name: str, ts: float) -> None:
        ent = self.pending.pop(key, None)
        if ent is not None:
            self.bytes_held -= ent["held"]
            self.weirds.append((ts, name, f"{len(ent['parts'])} fragment(s) of datagram id {key[-1]} discarded"))

    def expire(self, now: float) -> None:
        if not self.pending:
            return
        for key in [k for k, e in self.pending.items() if now - e["first"] > self.timeout]:
            self._drop(key, "ip.fragment_timeout", now)

    def flush(self, now: float) -> None:
        for key in list(self.pending):
            self._drop(key, "ip.fragment_incomplete", now)

    def add(self, key, ts: float, offset: int, more: bool, data: bytes, header: bytes):
        """Add one fragment; returns (header, payload) once the datagram is whole.

        Fragments are kept in arrival order; on assembly the first copy of every
        byte wins, and a later copy that disagrees is an ``ip.fragment_inconsistent_overlap``.
        """
        self.expire(ts)
        ent = self.pending.get(key)
        if ent is None:
            while len(self.pending) >= self.max_datagrams or self.bytes_held + len(data) > self.max_bytes:
                if not self.pending:
                    break
                oldest = next(iter(self.pending))
                self._drop(oldest, "ip.fragment_buffer_full", ts)
            ent = {"first": ts, "parts": [], "total": None, "header": None, "held": 0}
            self.pending[key] = ent
        end = offset + len(data)
        if end > 65535 + 40:
            self._drop(key, "ip.fragment_too_large", ts)
            raise Weird("ip.fragment_too_large", f"fragment ends at {end}")
        if len(ent["parts"]) >= 1024:
            self._drop(key, "ip.too_many_fragments", ts)
            raise Weird("ip.too_many_fragments", "more than 1024 fragments in one datagram")
        ent["parts"].append((offset, data))
        ent["held"] += len(data)
        self.bytes_held += len(data)
        if offset == 0 and ent["header"] is None:
            ent["header"] = header
        if not more and ent["total"] is None:
            ent["total"] = end
        total = ent["total"]
        if total is None or ent["header"] is None:
            raise FragmentHeld()
        covered = 0
        for o, d in sorted(ent["parts"]):
            if o > covered:
                raise FragmentHeld()
            covered = max(covered, o + len(d))
        if covered < total:
            raise FragmentHeld()
        out = np.zeros(total, dtype=np.uint8)
        filled = np.zeros(total, dtype=np.bool_)
        inconsistent = False
        for o, d in ent["parts"]:          # arrival order: the first copy of a byte wins
            if o >= total:
                continue
            seg = np.frombuffer(d, dtype=np.uint8)[:total - o]
            have = filled[o:o + len(seg)]
            if have.any() and (out[o:o + len(seg)][have] != seg[have]).any():
                inconsistent = True
            new = ~have
            out[o:o + len(seg)][new] = seg[new]
            filled[o:o + len(seg)] = True
        if inconsistent:
            self.weirds.append((ts, "ip.fragment_inconsistent_overlap", f"datagram id {key[-1]}"))
        self.pending.pop(key, None)
        self.bytes_held -= ent["held"]
        return ent["header"], out.tobytes()


def icmp_ports(ver: int, itype: int, code: int) -> tuple[int, int]:
    """Zeek's ICMP 'ports': (type, counterpart type) for request/reply pairs, else (type, code)."""
    if ver == 4:
        cp = ICMP4_COUNTERPART.get(itype)
    else:
        cp = ICMP6_COUNTERPART.get(itype)
    return (itype, cp if cp is not None else code)




class SlowDecoder:
    def __init__(self, frag_timeout: float = 60.0):
        self.frags = FragmentReassembler(timeout=frag_timeout)
        self.max_depth = 6

    # -- entry ---------------------------------------------------------------
    def decode(self, buf: bytes, off: int, cap: int, wire: int, linktype: int, ts: float, frame: int):
        rows: list[Row] = []
        weirds: list[tuple[str, str]] = []
        ctx = _Ctx(frame, ts, wire, rows, weirds, start=off)
        try:
            self._link(buf, off, off + cap, linktype, ctx, depth=0)
        except Weird as w:
            weirds.append((w.name, w.detail))
            return (w.name if not rows else "decoded"), rows, weirds
        except NonIP as n:
            if rows:
                return "decoded", rows, weirds
            return n.what, rows, weirds
        except FragmentHeld:
            return ("decoded" if rows else "ip.fragment"), rows, weirds
        except (struct.error, IndexError, ValueError) as e:  # a bound check we missed: never crash
            weirds.append(("decode.malformed", f"{type(e).__name__}: {e}"))
            return ("decoded" if rows else "decode.malformed"), rows, weirds
        return "decoded", rows, weirds

    # -- link layers ------------------------------------------------------------
    def _link(self, buf, p, end, lt, ctx, depth):
        if lt == 1:
            return self._ether(buf, p, end, ctx, depth)
        if lt in (12, 14, 101):
            return self._ip_guess(buf, p, end, ctx, depth)
        if lt == 228:
            return self._ipv4(buf, p, end, ctx, depth)
        if lt == 229:
            return self._ipv6(buf, p, end, ctx, depth)
        if lt == 113:  # Linux cooked v1
            if end - p < 16:
                raise Weird("sll.truncated_header", f"{end - p} bytes")
            return self._ethertype(buf, p + 16, end, _u16(buf, p + 14)[0], ctx, depth)
        if lt == 276:  # Linux cooked v2
            if end - p < 20:
                raise Weird("sll2.truncated_header", f"{end - p} bytes")
            return self._ethertype(buf, p + 20, end, _u16(buf, p)[0], ctx, depth)
        if lt in (0, 108):
            if end - p < 4:
                raise Weird("null.truncated_header", f"{end - p} bytes")
            fam_le = struct.unpack_from("<I", buf, p)[0]
            fam_be = struct.unpack_from(">I", buf, p)[0]
            fam = fam_be if lt == 108 else (fam_le if fam_le < 256 else fam_be)
            if fam == 2:
                return self._ipv4(buf, p + 4, end, ctx, depth)
            if fam in (10, 24, 28, 30):
                return self._ipv6(buf, p + 4, end, ctx, depth)
            raise NonIP("non_ip")
        if lt in (9, 50):  # PPP, PPP in HDLC framing
            return self._ppp(buf, p, end, ctx, depth)
        if lt == 51:  # PPPoE
            return self._pppoe(buf, p, end, ctx, depth)
        if lt == 104:  # Cisco HDLC
            if end - p < 4:
                raise Weird("chdlc.truncated_header", f"{end - p} bytes")
            return self._ethertype(buf, p + 4, end, _u16(buf, p + 2)[0], ctx, depth)
        if lt == 127:  # radiotap
            if end - p < 4:
                raise Weird("radiotap.truncated_header", f"{end - p} bytes")
            hlen = struct.unpack_from("<H", buf, p + 2)[0]
            if hlen < 8 or p + hlen > end:
                raise Weird("radiotap.bad_length", f"header length {hlen}")
            return self._wlan(buf, p + hlen, end, ctx, depth)
        if lt == 105:
            return self._wlan(buf, p, end, ctx, depth)
        if lt == 192:  # PPI
            if end - p < 8:
                raise Weird("ppi.truncated_header", f"{end - p} bytes")
            hlen, dlt = struct.unpack_from("<HI", buf, p + 2)
            if hlen < 8 or p + hlen > end:
                raise Weird("ppi.bad_length", f"header length {hlen}")
            return self._link(buf, p + hlen, end, dlt, ctx, depth + 1)
        if lt == 239:  # NFLOG
            return self._nflog(buf, p, end, ctx, depth)
        if lt == 10:   # FDDI
            return self._fddi(buf, p, end, ctx, depth)
        raise NonIP(f"linktype.{linktype_name(lt)}")

    def _fddi(self, buf, p, end, ctx, depth):
        """FDDI (ANSI X3.139): frame control (1 byte), destination and source MAC (6 each), then
        IEEE 802.2 LLC.  IP rides in SNAP (AA AA 03, OUI, EtherType; RFC 1390).  Zeek's FDDI analyzer
        skips these 21 bytes; the EtherType here also keeps ARP and other non-IP frames out of IP."""
        if end - p < 21:
            raise Weird("fddi.truncated_header", f"{end - p} bytes")
        q = p + 13
        if buf[q] == 0xAA and buf[q + 1] == 0xAA and buf[q + 2] == 0x03:
            return self._ethertype(buf, q + 8, end, _u16(buf, q + 6)[0], ctx, depth)
        raise NonIP("non_ip")

    def _ether(self, buf, p, end, ctx, depth):
        if end - p < 14:
            raise Weird("eth.truncated_header", f"{end - p} bytes")
        et = _u16(buf, p + 12)[0]
        return self._ethertype(buf, p + 14, end, et, ctx, depth, ether=True)

    def _ethertype(self, buf, p, end, et, ctx, depth, ether=False):
        while True:
            if et == ETH_IPV4:
                return self._ipv4(buf, p, end, ctx, depth)
            if et == ETH_IPV6:
                return self._ipv6(buf, p, end, ctx, depth)
            if et in ETH_VLAN:
                if end - p < 4:
                    raise Weird("vlan.truncated_header", f"{end - p} bytes")
                vid = _u16(buf, p)[0] & 0x0FFF
                if ctx.vlan < 0:
                    ctx.vlan = vid
                elif ctx.inner_vlan < 0:
                    ctx.inner_vlan = vid
                et = _u16(buf, p + 2)[0]
                p += 4
                continue
            if et in ETH_MPLS:
                while True:
                    if end - p < 4:
                        raise Weird("mpls.truncated_header", f"{end - p} bytes")
                    lbl = _u32(buf, p)[0]
                    p += 4
                    if lbl & 0x100:
                        break
                return self._ip_guess(buf, p, end, ctx, depth)
            if et == ETH_PPPOE_SESS:
                return self._pppoe(buf, p, end, ctx, depth)
            if et == ETH_FABRICPATH:
                # FabricPath: 2-byte FTAG/TTL then the inner Ethernet header (dst, src, type).
                if end - p < 16:
                    raise Weird("fabricpath.truncated_header", f"{end - p} bytes")
                et = _u16(buf, p + 14)[0]
                p += 16
                continue
            if et == ETH_VNTAG:
                if end - p < 6:
                    raise Weird("vntag.truncated_header", f"{end - p} bytes")
                et = _u16(buf, p + 4)[0]
                p += 6
                continue
            if et == ETH_TEB:
                return self._ether(buf, p, end, ctx, depth + 1)
            if et == ETH_PBB:
                # 802.1ah: I-TAG (PCP/DEI/UCA/reserved, 24-bit I-SID), then the customer frame's
                # destination and source MAC and its EtherType.  Zeek's PBB analyzer hands the frame
                # after the I-TAG to its Ethernet analyzer; so do we.
                if end - p <= PBB_LEN:
                    raise Weird("pbb.truncated_header", f"{end - p} bytes")
                return self._ether(buf, p + 4, end, ctx, depth + 1)
            if ether and et < 0x0600:
                # 802.3 length field: LLC, maybe SNAP with an ethertype inside.
                if end - p >= 8 and buf[p] == 0xAA and buf[p + 1] == 0xAA and buf[p + 2] == 0x03:
                    et = _u16(buf, p + 6)[0]
                    p += 8
                    ether = False
                    continue
                raise NonIP("non_ip")
            raise NonIP("non_ip")

    def _ppp(self, buf, p, end, ctx, depth):
        if end - p >= 4 and buf[p] in (0x0F, 0x8F) and buf[p + 1] == 0x00:
            # Cisco HDLC framing inside a PPP-labelled capture (as tcpdump accepts it).
            return self._ethertype(buf, p + 4, end, _u16(buf, p + 2)[0], ctx, depth)
        if end - p >= 2 and buf[p] == 0xFF and buf[p + 1] == 0x03:
            p += 2
        if end - p < 1:
            raise Weird("ppp.truncated_header", f"{end - p} bytes")
        if buf[p] & 1:
            proto = buf[p]
            p += 1
        else:
            if end - p < 2:
                raise Weird("ppp.truncated_header", f"{end - p} bytes")
            proto = _u16(buf, p)[0]
            p += 2
        if proto == 0x21:
            return self._ipv4(buf, p, end, ctx, depth)
        if proto == 0x57:
            return self._ipv6(buf, p, end, ctx, depth)
        raise NonIP("non_ip")

    def _pppoe(self, buf, p, end, ctx, depth):
        if end - p < 8:
            raise Weird("pppoe.truncated_header", f"{end - p} bytes")
        proto = _u16(buf, p + 6)[0]
        p += 8
        if proto == 0x21:
            return self._ipv4(buf, p, end, ctx, depth)
        if proto == 0x57:
            return self._ipv6(buf, p, end, ctx, depth)
        raise NonIP("non_ip")

    def _wlan(self, buf, p, end, ctx, depth):
        if end - p < 24:
            raise Weird("wlan.truncated_header", f"{end - p} bytes")
        fc = buf[p]
        flags = buf[p + 1]
        ftype = (fc >> 2) & 3
        subtype = (fc >> 4) & 0xF
        if ftype != 2:
            raise NonIP("non_ip")
        if flags & 0x40:  # protected frame
            raise NonIP("non_ip")
        hlen = 24
        if (flags & 3) == 3:
            hlen += 6
        if subtype & 0x8:
            hlen += 2
            if flags & 0x80:  # HT control with order bit
                hlen += 4
        if subtype & 0x4:  # null data
            raise NonIP("non_ip")
        q = p + hlen
        if end - q < 8:
            raise Weird("wlan.truncated_header", f"{end - q} bytes after 802.11 header")
        if buf[q] == 0xAA and buf[q + 1] == 0xAA and buf[q + 2] == 0x03:
            return self._ethertype(buf, q + 8, end, _u16(buf, q + 6)[0], ctx, depth)
        raise NonIP("non_ip")

    def _nflog(self, buf, p, end, ctx, depth):
        if end - p < 4:
            raise Weird("nflog.truncated_header", f"{end - p} bytes")
        family = buf[p]
        q = p + 4
        while q + 4 <= end:
            tlen, ttype = struct.unpack_from("<HH", buf, q)
            if tlen < 4:
                raise Weird("nflog.bad_tlv", f"TLV length {tlen}")
            if ttype == 9:
                if family == 2:
                    return self._ipv4(buf, q + 4, min(end, q + tlen), ctx, depth)
                if family == 10:
                    return self._ipv6(buf, q + 4, min(end, q + tlen), ctx, depth)
                raise NonIP("non_ip")
            q += (tlen + 3) & ~3
        raise NonIP("non_ip")

    # -- IP ---------------------------------------------------------------------
    def _ip_guess(self, buf, p, end, ctx, depth):
        if end - p < 1:
            raise Weird("ip.truncated_header", "no bytes for the IP version")
        v = buf[p] >> 4
        if v == 4:
            return self._ipv4(buf, p, end, ctx, depth)
        if v == 6:
            return self._ipv6(buf, p, end, ctx, depth)
        raise Weird("ip.bad_version", f"version {v}")

    def _ipv4(self, buf, p, end, ctx, depth, reassembled=False):
        if end - p < 20:
            raise Weird("ip.truncated_header", f"{end - p} bytes for an IPv4 header")
        vihl, _tos, total, ident, frag, _ttl, proto, _csum, src4, dst4 = _ipv4(buf, p)
        if vihl >> 4 != 4:
            raise Weird("ip.bad_version", f"version {vihl >> 4} in an IPv4 frame")
        ihl = (vihl & 0xF) * 4
        if ihl < 20:
            raise Weird("ip.bad_header_length", f"IHL {ihl}")
        if end - p < ihl:
            raise Weird("ip.truncated_header", f"{end - p} bytes for a {ihl}-byte header")
        if total == 0 and not reassembled:
            # TSO: the length field was zeroed; use what was captured.
            ctx.weirds.append(("ip.total_length_zero", "using the captured length"))
            total = end - p
        if total < ihl:
            raise Weird("ip.bad_total_length", f"total length {total} < header {ihl}")
        if not reassembled:
            wire_rem = ctx.wire_left(p, end)
            if total > wire_rem:
                raise Weird("ip.truncated_packet", f"total length {total} > {wire_rem} bytes on the wire")
        src = V4_PREFIX + src4
        dst = V4_PREFIX + dst4
        mf = frag & 0x2000
        foff = (frag & 0x1FFF) * 8
        if (mf or foff) and not reassembled:
            cap_end = min(end, p + total)
            if cap_end - p < total:
                raise Weird("ip.truncated_fragment", "fragment not fully captured")
            key = (4, src4, dst4, proto, ident)
            hdr, payload = self.frags.add(key, ctx.ts, foff, bool(mf), bytes(buf[p + ihl:p + total]),
                                          bytes(buf[p:p + ihl]))
            whole = bytearray(hdr)
            if len(hdr) + len(payload) > 0xFFFF:
                raise Weird("ip.reassembled_too_large", f"reassembled datagram of {len(hdr) + len(payload)} bytes")
            struct.pack_into("!H", whole, 2, len(hdr) + len(payload))
            struct.pack_into("!H", whole, 6, 0)
            datagram = bytes(whole) + payload
            return self._ipv4(datagram, 0, len(datagram), ctx, depth, reassembled=True)
        l4_end = min(end, p + total)
        return self._l4(buf, p + ihl, l4_end, total - ihl, 4, src, dst, proto, total, ctx, depth)

    def _ipv6(self, buf, p, end, ctx, depth, reassembled=False):
        if end - p < 40:
            raise Weird("ip6.truncated_header", f"{end - p} bytes for an IPv6 header")
        if buf[p] >> 4 != 6:
            raise Weird("ip.bad_version", f"version {buf[p] >> 4} in an IPv6 frame")
        plen = _u16(buf, p + 4)[0]
        nh = buf[p + 6]
        src = bytes(buf[p + 8:p + 24])
        dst = bytes(buf[p + 24:p + 40])
        if plen == 0 and nh == 0:
            # Jumbogram or TSO: take what was captured.
            plen = end - p - 40
        total = 40 + plen
        if not reassembled:
            wire_rem = ctx.wire_left(p, end)
            if total > wire_rem:
                raise Weird("ip6.truncated_packet", f"payload length {plen} > {wire_rem - 40} bytes on the wire")
        q = p + 40
        l4_end = min(end, p + total)
        # Extension header chain.
        for _ in range(16):
            if nh in IPV6_EXT:
                if l4_end - q < 8:
                    raise Weird("ip6.truncated_extension", f"next header {nh}")
                nxt = buf[q]
                hl = (buf[q + 1] + 1) * 8
                if q + hl > p + total:
                    raise Weird("ip6.bad_extension_length", f"next header {nh} length {hl}")
                q += hl
                nh = nxt
            elif nh == 51:  # AH
                if l4_end - q < 8:
                    raise Weird("ip6.truncated_extension", "AH")
                nxt = buf[q]
                hl = (buf[q + 1] + 2) * 4
                q += hl
                nh = nxt
            elif nh == 44:  # fragment
                if l4_end - q < 8:
                    raise Weird("ip6.truncated_extension", "fragment header")
                nxt = buf[q]
                fo = _u16(buf, q + 2)[0]
                ident = _u32(buf, q + 4)[0]
                foff = fo & 0xFFF8
                more = bool(fo & 1)
                if reassembled or (foff == 0 and not more):
                    q += 8
                    nh = nxt
                    continue
                if l4_end - p < total:
                    raise Weird("ip.truncated_fragment", "fragment not fully captured")
                key = (6, src, dst, ident)
                unfrag = bytes(buf[p:q])  # header + unfragmentable part
                hdr, payload = self.frags.add(key, ctx.ts, foff, more, bytes(buf[q + 8:p + total]),
                                              unfrag + bytes([nxt]))
                unfrag, first_nh = hdr[:-1], hdr[-1]
                # Rebuild: fixed header with payload length, next header of the last unfragmentable header.
                whole = bytearray(unfrag)
                plen2 = len(unfrag) - 40 + len(payload)
                if plen2 > 0xFFFF:
                    raise Weird("ip6.reassembled_too_large", f"reassembled payload of {plen2} bytes")
                struct.pack_into("!H", whole, 4, plen2)
                _set_last_nh(whole, first_nh)
                datagram = bytes(whole) + payload
                return self._ipv6(datagram, 0, len(datagram), ctx, depth, reassembled=True)
            else:
                break
        return self._l4(buf, q, l4_end, p + total - q, 6, src, dst, nh, total, ctx, depth)

    # -- transport ------------------------------------------------------------
    def _l4(self, buf, p, end, l4len, ver, src, dst, proto, ip_len, ctx, depth):
        cap = end - p
        if proto == 6:
            if cap < 20 or l4len < 20:
                raise Weird("tcp.truncated_header", f"{min(cap, l4len)} bytes for a TCP header")
            sport, dport, seq, ack, doff, flags, win = _tcp(buf, p)
            hl = (doff >> 4) * 4
            if hl < 20 or hl > l4len:
                raise Weird("tcp.bad_header_length", f"data offset {hl}, segment {l4len}")
            if cap < hl:
                raise Weird("tcp.truncated_header", f"{cap} bytes for a {hl}-byte TCP header")
            pay_len = l4len - hl
            ctx.add(Row(ctx.frame, ver, src, dst, 6, sport, dport, flags, seq, ack, win, ip_len, pay_len,
                        bytes(buf[p + hl:end]), ctx.vlan, ctx.inner_vlan, ctx.tunnel, ctx.frame_len,
                        bytes(buf[p + 20:p + hl]) if flags & 2 else None))
            return
        if proto == 17:
            if cap < 8 or l4len < 8:
                raise Weird("udp.truncated_header", f"{min(cap, l4len)} bytes for a UDP header")
            sport, dport, ulen, _csum = _udp(buf, p)
            if ulen != l4len and ulen != 0:
                ctx.weirds.append(("udp.length_mismatch", f"UDP length {ulen}, IP payload {l4len}"))
            pay_len = l4len - 8
            payload = bytes(buf[p + 8:end])
            row_index = ctx.add(Row(ctx.frame, ver, src, dst, 17, sport, dport, 0, 0, 0, 0, ip_len, pay_len,
                                    payload, ctx.vlan, ctx.inner_vlan, ctx.tunnel, ctx.frame_len))
            if depth < self.max_depth:
                kind = UDP_TUNNEL_PORTS.get(dport) or UDP_TUNNEL_PORTS.get(sport)
                if kind is None and looks_like_teredo(payload, l4len - 8):
                    kind = "teredo"  # Teredo relays use any port: detected by content, as Zeek does
                if kind:
                    self._udp_tunnel(kind, payload, row_index, ctx, depth)
            return
        if proto in (1, 58):
            if cap < 4 or l4len < 4:
                raise Weird("icmp.truncated_header", f"{min(cap, l4len)} bytes for an ICMP header")
            itype, code = buf[p], buf[p + 1]
            if (proto == 1) != (ver == 4):
                ctx.weirds.append(("icmp.version_mismatch", f"ICMP protocol {proto} over IPv{ver}"))
            sport, dport = icmp_ports(4 if proto == 1 else 6, itype, code)
            pay_len = max(0, l4len - 8)
            ctx.add(Row(ctx.frame, ver, src, dst, proto, sport, dport, 0, 0, 0, 0, ip_len, pay_len,
                        bytes(buf[p + 8:end]), ctx.vlan, ctx.inner_vlan, ctx.tunnel, ctx.frame_len))
            return
        if proto in (4, 41) and depth < self.max_depth:
            # The carrier gets no flow row of its own (Zeek logs it in tunnel.log only).
            tkey = ("key", ("ip-in-ip",) + tuple(sorted((src, dst))), "ip-in-ip")
            inner = _Ctx(ctx.frame, ctx.ts, None, ctx.rows, ctx.weirds, tunnel=tkey, frame_len=ctx.frame_len)
            if proto == 4:
                return self._ipv4(buf, p, end, inner, depth + 1)
            return self._ipv6(buf, p, end, inner, depth + 1)
        if proto == 47 and depth < self.max_depth:
            return self._gre(buf, p, end, src, dst, ctx, depth)
        # Any other IP protocol: a flow without ports (Zeek's unknown_transport).
        ctx.add(Row(ctx.frame, ver, src, dst, proto, 0, 0, 0, 0, 0, 0, ip_len, l4len,
                    bytes(buf[p:end]), ctx.vlan, ctx.inner_vlan, ctx.tunnel, ctx.frame_len))

    def _gre(self, buf, p, end, src, dst, ctx, depth):
        """GRE over IP (protocol 47): the inner packets' tunnel is keyed by the carrier's addresses."""
        q, proto, fl = self._gre_header(buf, p, end)
        inner = _Ctx(ctx.frame, ctx.ts, None, ctx.rows, ctx.weirds,
                     tunnel=("key", ("gre",) + tuple(sorted((src, dst))), "gre"), frame_len=ctx.frame_len)
        return self._gre_payload(buf, q, end, proto, fl, inner, depth)

    @staticmethod
    def _gre_header(buf, p, end):
        """Parse a GRE header (RFC 2784 with RFC 2890 key and sequence; version 1 is PPTP's enhanced
        GRE, RFC 2637) -> (payload offset, protocol type, flags word)."""
        if end - p < 4:
            raise Weird("gre.truncated_header", f"{end - p} bytes")
        fl, proto = struct.unpack_from("!HH", buf, p)
        ver = fl & 7
        q = p + 4
        if ver == 0:
            if fl & 0x8000:     # checksum present (+ reserved1)
                q += 4
            if fl & 0x2000:     # key present
                q += 4
            if fl & 0x1000:     # sequence number present
                q += 4
        elif ver == 1:
            q += 4  # key (payload length + call id)
            if fl & 0x1000:
                q += 4
            if fl & 0x0080:     # acknowledgment number present
                q += 4
        else:
            raise Weird("gre.unknown_version", f"version {ver}")
        if q > end:
            raise Weird("gre.truncated_header", f"{end - p} bytes")
        return q, proto, fl

    def _gre_payload(self, buf, q, end, proto, fl, inner, depth):
        """What a GRE header carries, by protocol type: ERSPAN II/III, PPP, Ethernet (TEB) or an EtherType."""
        if proto == ETH_ERSPAN2:
            if fl & 0x1000:  # ERSPAN type II has a sequence number and an 8-byte header
                q += 8
            if q > end:
                raise Weird("erspan.truncated_header", f"{end - q} bytes")
            return self._ether(buf, q, end, inner, depth + 1)
        if proto == ETH_ERSPAN3:
            if end - q < 12:
                raise Weird("erspan.truncated_header", f"{end - q} bytes")
            o_flag = buf[q + 11] & 1
            q += 12 + (8 if o_flag else 0)
            return self._ether(buf, q, end, inner, depth + 1)
        if proto == ETH_PPP:
            return self._ppp(buf, q, end, inner, depth + 1)
        if proto == ETH_TEB:
            return self._ether(buf, q, end, inner, depth + 1)
        return self._ethertype(buf, q, end, proto, inner, depth + 1)

    def _capwap(self, d, inner, depth) -> None:
        """A CAPWAP data-channel datagram (RFC 5415 section 4.3).

        Word 0: preamble (version 4 bits, must be 0; type 4 bits: 0 plain CAPWAP header, 1 DTLS, which
        is encrypted and left alone), HLEN (5 bits, header length in 4-byte words, including the
        optional Radio MAC and Wireless Specific Information fields), RID (5), WBID (5: 1 = IEEE
        802.11), T (payload in the binding's native frame format when set, an IEEE 802.3 frame when
        clear), F (fragment), L, W, M, K (keep-alive: no payload), 3 flag bits.  Word 1: fragment ID,
        offset.  Fragments are not reassembled (the outer datagram stays a connection of its own)."""
        if len(d) < 8:
            return
        w = _u32(d, 0)[0]
        if w >> 24 != 0:               # version 0, type 0 (not DTLS)
            return
        hlen = ((w >> 19) & 0x1F) * 4
        wbid = (w >> 9) & 0x1F
        t_bit, f_bit, k_bit = (w >> 8) & 1, (w >> 7) & 1, (w >> 3) & 1
        if hlen < 8:
            raise Weird("capwap.bad_header_length", f"HLEN {hlen // 4} words")
        if f_bit or k_bit or hlen >= len(d):
            return
        if not t_bit:
            self._ether(d, hlen, len(d), inner, depth + 1)
        elif wbid == 1:
            self._wlan(d, hlen, len(d), inner, depth + 1)

    def _udp_tunnel(self, kind, payload, row_index, ctx, depth):
        """Decapsulate a UDP tunnel; on failure the outer UDP row stands alone."""
        tunnel = ("row", row_index, kind)
        inner = _Ctx(ctx.frame, ctx.ts, None, [], [], tunnel=tunnel, frame_len=ctx.frame_len)
        d = payload
        try:
            if kind == "vxlan":
                if len(d) < 8 or not d[0] & 0x08:
                    return
                self._ether(d, 8, len(d), inner, depth + 1)
            elif kind == "geneve":
                if len(d) < 8 or d[0] >> 6 != 0:
                    return
                hlen = 8 + (d[0] & 0x3F) * 4
                proto = _u16(d, 2)[0]
                if len(d) < hlen:
                    raise Weird("geneve.truncated_header", f"{len(d)} bytes")
                if proto == ETH_TEB:
                    self._ether(d, hlen, len(d), inner, depth + 1)
                else:
                    self._ethertype(d, hlen, len(d), proto, inner, depth + 1)
            elif kind == "teredo":
                q = 0
                for _ in range(2):
                    if len(d) - q >= 2 and d[q] == 0 and d[q + 1] == 1:      # authentication
                        if len(d) - q < 4:
                            return
                        q += 4 + d[q + 2] + d[q + 3] + 8 + 1
                    elif len(d) - q >= 8 and d[q] == 0 and d[q + 1] == 0:    # origin indication
                        q += 8
                if len(d) - q < 40 or d[q] >> 4 != 6:
                    return
                plen = _u16(d, q + 4)[0]
                if 40 + plen > len(d) - q:
                    return
                if plen == 0 and d[q + 6] == 59:
                    return  # a Teredo bubble: keeps NAT state, carries no connection
                self._ipv6(d, q, len(d), inner, depth + 1)
            elif kind == "gtpv1":
                if len(d) < 8:
                    return
                flags, mtype, glen = d[0], d[1], _u16(d, 2)[0]
                if flags >> 5 != 1 or not flags & 0x10 or mtype != 0xFF:
                    return
                q = 8
                if flags & 0x07:
                    if len(d) < 12:
                        return
                    q = 12
                    ext = d[11] if flags & 0x04 else 0
                    while ext:
                        if len(d) <= q:
                            return
                        elen = d[q] * 4
                        if elen == 0 or q + elen > len(d):
                            return
                        ext = d[q + elen - 1]
                        q += elen
                if q >= len(d):
                    return
                v = d[q] >> 4
                if v == 4:
                    self._ipv4(d, q, len(d), inner, depth + 1)
                elif v == 6:
                    self._ipv6(d, q, len(d), inner, depth + 1)
                else:
                    return
            elif kind == "gre":
                # GRE-in-UDP (RFC 8086): the UDP payload is a GRE header and what it carries.
                q, proto, fl = self._gre_header(d, 0, len(d))
                self._gre_payload(d, q, len(d), proto, fl, inner, depth)
            elif kind == "capwap":
                self._capwap(d, inner, depth)
            elif kind == "ayiya":
                if len(d) < 8:
                    return
                id_len = 1 << (d[0] >> 4)
                sig_len = (d[1] >> 4) * 4
                if d[2] & 0x0F != 1:  # opcode 1: forward
                    return
                nh = d[3]
                q = 8 + id_len + sig_len
                if q > len(d):
                    return
                if nh == 4:
                    self._ipv4(d, q, len(d), inner, depth + 1)
                elif nh == 41:
                    self._ipv6(d, q, len(d), inner, depth + 1)
                else:
                    return
        except (Weird, NonIP, FragmentHeld, struct.error, IndexError) as e:
            if isinstance(e, Weird):
                ctx.weirds.append((e.name, e.detail))
            if not inner.rows:
                return
        for r in inner.rows:
            ctx.add(r)
        ctx.weirds.extend(inner.weirds)


TEREDO_INNER_NH = frozenset({0, 6, 17, 43, 44, 58, 59, 60})


def looks_like_teredo(d: bytes, ulen: int) -> bool:
    """Content test for Teredo on a non-standard port: an exact-length IPv6 packet,
    optionally behind the authentication and origin-indication headers."""
    q = 0
    if len(d) < 40 or len(d) != ulen:
        return False
    if d[0] == 0 and d[1] == 1:
        if len(d) < 13:
            return False
        q = 4 + d[2] + d[3] + 9
    if len(d) - q >= 8 and d[q] == 0 and d[q + 1] == 0:
        q += 8
    if len(d) - q < 40 or d[q] >> 4 != 6:
        return False
    return 40 + _u16(d, q + 4)[0] == len(d) - q and d[q + 6] in TEREDO_INNER_NH


def _set_last_nh(hdr: bytearray, nh: int) -> None:
    """Set the next-header field of the last header in an IPv6 unfragmentable part."""
    q = 40
    field = 6
    cur = hdr[6]
    while q < len(hdr) and cur in IPV6_EXT | {51}:
        field = q
        hl = (hdr[q + 1] + 1) * 8 if cur != 51 else (hdr[q + 1] + 2) * 4
        cur = hdr[q]
        q += hl
    hdr[field] = nh


class _Ctx:
    """Per-frame decoding context: where rows and weirds go, VLAN tags, tunnel parent."""
    __slots__ = ("frame", "ts", "wire", "start", "rows", "weirds", "vlan", "inner_vlan", "tunnel", "frame_len")

    def __init__(self, frame, ts, wire, rows, weirds, tunnel=None, start=0, frame_len=None):
        self.frame = frame
        self.frame_len = wire if frame_len is None else frame_len  # whole-frame bytes, for L2 counters
        self.ts = ts
        self.wire = wire          # wire length of the frame; None inside a tunnel payload
        self.start = start        # offset of the frame in its buffer
        self.rows = rows
        self.weirds = weirds
        self.vlan = -1
        self.inner_vlan = -1
        self.tunnel = tunnel

    def wire_left(self, p, end):
        """Bytes the frame had on the wire from offset p on (captured or not)."""
        if self.wire is None:
            return 1 << 30
        return self.wire - (p - self.start)

    def add(self, row):
        self.rows.append(row)
        return len(self.rows) - 1
