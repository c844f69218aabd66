"""Community ID v1 flow hashing (https://github.com/corelight/community-id-spec).

``community_id(proto, saddr, daddr, sport, dport, seed=0)`` returns
``"1:" + base64(sha1(seed . addr_lo . addr_hi . proto . 0 . port_lo . port_hi))``
where all values are in network byte order and the endpoints are ordered so the
numerically smaller (address bytes, then port) comes first, which makes the ID
identical for both directions of a flow.

* TCP (6), UDP (17), SCTP (132): the ports are hashed.
* ICMP (1) / ICMPv6 (58): the caller passes ``sport=type, dport=code``. If the
  type has a counterpart (request <-> reply, table below, as in Zeek's
  ICMP4_counterpart/ICMP6_counterpart and the reference pycommunityid) the
  "ports" are (type, counterpart type) and the endpoints are ordered as for TCP,
  so a request and its reply get the same ID. Otherwise the message is
  one-way: the ports are (type, code) and the endpoints are NOT reordered.
* Any other protocol: no ports in the hash input, endpoints ordered by address.

Note on ICMPv6 146/147 (mobile prefix solicitation/advertisement): neither the
reference implementation nor Zeek pairs them, and the spec's baseline table
lists type 146 as "Unidirectional treatment" (1:fYC8+pz24E+EhANP1EZhpX0Dw10=),
so they are one-way here too.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import struct
from functools import lru_cache
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "community_id",
    "community_ids",
    "icmp_port_equivalents",
    "hash_tuple",
    "ICMP4_COUNTERPART",
    "ICMP6_COUNTERPART",
    "PORT_PROTOCOLS",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMP6 = 58
PROTO_SCTP = 132

#: protocols whose hash input includes the two 16-bit "ports"
PORT_PROTOCOLS = frozenset({PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMP6, PROTO_SCTP})

#: ICMPv4 type -> counterpart type (echo, timestamp, info, router sol/adv, mask)
ICMP4_COUNTERPART = {
    8: 0, 0: 8,          # echo request / echo reply
    13: 14, 14: 13,      # timestamp / timestamp reply
    15: 16, 16: 15,      # information request / reply
    10: 9, 9: 10,        # router solicitation / router advertisement
    17: 18, 18: 17,      # address mask request / reply
}

#: ICMPv6 type -> counterpart type
ICMP6_COUNTERPART = {
    128: 129, 129: 128,  # echo request / reply
    130: 131, 131: 130,  # MLD listener query / report
    133: 134, 134: 133,  # router solicitation / advertisement
    135: 136, 136: 135,  # neighbor solicitation / advertisement
    139: 140, 140: 139,  # node information query / response ("who are you")
    144: 145, 145: 144,  # home agent address discovery request / reply
}

AddrLike = Union[str, bytes, bytearray, ipaddress.IPv4Address, ipaddress.IPv6Address]

_SEED = struct.Struct("!H")
_PROTO_PAD = struct.Struct("!BB")
_PORTS = struct.Struct("!HH")


def icmp_port_equivalents(proto: int, itype: int, icode: int) -> Tuple[int, int, bool]:
    """(sport, dport, is_one_way) for an ICMP (1) / ICMPv6 (58) type and code."""
    table = ICMP4_COUNTERPART if proto == PROTO_ICMP else ICMP6_COUNTERPART
    counterpart = table.get(itype)
    if counterpart is None:
        return itype, icode, True
    return itype, counterpart, False


@lru_cache(maxsize=65536)
def _pack_str(addr: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, addr)
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, addr.split("%", 1)[0])
    except OSError:
        raise ValueError(f"invalid IP address {addr!r}") from None


def _pack(addr: AddrLike) -> bytes:
    if isinstance(addr, str):
        return _pack_str(addr)
    if isinstance(addr, (bytes, bytearray)):
        if len(addr) not in (4, 16):
            raise ValueError(f"packed address must be 4 or 16 bytes, got {len(addr)}")
        return bytes(addr)
    if isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return addr.packed
    raise TypeError(f"unsupported address type {type(addr).__name__}")


def _check_seed(seed: int) -> bytes:
    if not 0 <= int(seed) <= 0xFFFF:
        raise ValueError(f"seed must be in 0..65535, got {seed}")
    return _SEED.pack(int(seed))


def hash_tuple(seed_bytes: bytes, proto: int, a: bytes, b: bytes,
               sport: Optional[int], dport: Optional[int]) -> str:
    """The Community ID of a tuple already in wire form: the packed seed (``!H``), the protocol
    number, both packed addresses and the ports (or ICMP port equivalents); the flow table calls
    this directly with the addresses it already holds packed."""
    if len(a) != len(b):
        raise ValueError("source and destination addresses are of different IP versions")
    if not 0 <= proto <= 255:
        raise ValueError(f"protocol number must be in 0..255, got {proto}")
    if proto in PORT_PROTOCOLS:
        sp = 0 if sport is None else int(sport)
        dp = 0 if dport is None else int(dport)
        one_way = False
        if proto == PROTO_ICMP or proto == PROTO_ICMP6:
            sp, dp, one_way = icmp_port_equivalents(proto, sp, dp)
        if not (0 <= sp <= 0xFFFF and 0 <= dp <= 0xFFFF):
            raise ValueError(f"ports must be in 0..65535, got {sport}, {dport}")
        if not one_way and not (a < b or (a == b and sp < dp)):
            a, b, sp, dp = b, a, dp, sp
        data = b"".join((seed_bytes, a, b, _PROTO_PAD.pack(proto, 0), _PORTS.pack(sp, dp)))
    else:
        if b < a:
            a, b = b, a
        data = b"".join((seed_bytes, a, b, _PROTO_PAD.pack(proto, 0)))
    digest = hashlib.sha1(data, usedforsecurity=False).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")


def community_id(proto: int, saddr: AddrLike, daddr: AddrLike,
                 sport: Optional[int] = None, dport: Optional[int] = None,
                 seed: int = 0) -> str:
    """Community ID v1 of one flow tuple, e.g. ``"1:wCb3OG7yAFWelaUydu0D+125CLM="``.

    ``saddr``/``daddr``: IPv4/IPv6 text, packed bytes (4/16) or ipaddress
    objects, same family. ``sport``/``dport``: ports for TCP/UDP/SCTP, ICMP
    type/code for ICMP and ICMPv6 (None counts as 0); ignored for other
    protocols. ``seed``: 0..65535. Raises ValueError/TypeError on bad input.
    """
    return hash_tuple(_check_seed(seed), int(proto), _pack(saddr), _pack(daddr), sport, dport)


Row = Union[Sequence[Any], Mapping[str, Any]]


def community_ids(rows: Iterable[Row], seed: int = 0) -> List[str]:
    """Community IDs for many flows.

    Each row is a sequence ``(proto, saddr, daddr, sport, dport)`` (ports may
    be None / omitted for port-less protocols) or a mapping with those keys.
    Packed addresses are cached; a row that cannot be hashed (bad address,
    mixed families, out-of-range values) yields ``""``, the spec's
    "unsupported" value, instead of aborting the batch.
    """
    seed_bytes = _check_seed(seed)
    packed: dict = {}
    out: List[str] = []
    append = out.append
    for row in rows:
        if isinstance(row, Mapping):
            proto, saddr, daddr = row["proto"], row["saddr"], row["daddr"]
            sport, dport = row.get("sport"), row.get("dport")
        else:
            proto, saddr, daddr = row[0], row[1], row[2]
            sport = row[3] if len(row) > 3 else None
            dport = row[4] if len(row) > 4 else None
        if isinstance(saddr, bytearray):
            saddr = bytes(saddr)
        if isinstance(daddr, bytearray):
            daddr = bytes(daddr)
        try:
            a = packed.get(saddr)
            if a is None:
                a = packed[saddr] = _pack(saddr)
            b = packed.get(daddr)
            if b is None:
                b = packed[daddr] = _pack(daddr)
            append(hash_tuple(seed_bytes, int(proto), a, b, sport, dport))
        except (ValueError, TypeError, OverflowError):
            append("")
    return out
