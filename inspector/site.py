"""Site description: which networks are "ours", host roles, allowed destinations.

A site file is YAML; every key is optional::

    site: dc-north                                  # a name for reports
    local_nets: [172.20.0.0/16, "fd00:20::/48"]     # CIDRs or bare addresses
    roles: {172.20.1.0/24: wms, 172.20.50.0/24: scanner}   # CIDR -> host role
    allowed_destinations: [api.partner.example, 192.0.2.0/24, AS64500]

Semantics
---------
* ``site``: free-form name, default ``"site"``.
* ``local_nets``: list of CIDRs. A bare address is a /32 (IPv4) or /128 (IPv6).
  A CIDR with host bits set (``172.20.1.0/16``) is rejected as a likely typo.
  When the key is absent (or null) the default is :data:`DEFAULT_LOCAL_NETS`:

  - RFC 1918 private IPv4: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16
  - RFC 4193 unique local IPv6: fc00::/7
  - loopback: 127.0.0.0/8, ::1/128
  - link-local: 169.254.0.0/16, fe80::/10

  Carrier-grade NAT space (100.64.0.0/10, RFC 6598) is deliberately *not*
  local by default; list it explicitly if the site uses it.
  An explicit empty list means "nothing is local".
* ``roles``: mapping CIDR -> role name. The longest matching prefix wins.

Multicast and broadcast never leave the site: 224.0.0.0/4, 255.255.255.255,
ff00::/8 and the broadcast address of every IPv4 local or role network (a /30
or wider) stay on the link they were sent on (:meth:`Site.is_multicast_or_broadcast`).
A flow to (or from) such an address is ``internal`` when its other side is
local and ``external`` otherwise, never ``outbound`` or ``inbound``
(:func:`flow_direction`); ``local_orig``/``local_resp`` keep saying only
whether an address is in ``local_nets``.
* ``allowed_destinations``: list whose entries are, by shape:

  - an AS number: ``64500``, ``"AS64500"``, ``"as64500"`` (asdot ``"AS1.10"``
    is accepted too and means 65546); valid range 1..4294967295;
  - a CIDR or bare address (anything containing ``/`` or ``:``, or made of
    digits and dots only);
  - otherwise a domain suffix. It is lower-cased, a leading ``"*."`` or
    ``"."`` and a trailing ``"."`` are stripped. A suffix matches on label
    boundaries: ``ups.com`` allows ``ups.com`` and ``api.ups.com`` but not
    ``notups.com``.

* ``exclusions``: scoped, expiring exceptions to the policy (:class:`Exclusion`)::

      exclusions:
        - source: {role: office}              # optional: host (address/CIDR list) and/or role; any local host
          destination: {group: os-telemetry}  # one or more of domain, cidr, asn, group (lists allowed)
          data: []                            # data classes the flows may carry (class, customer, shipment,
                                              # edi or any); default none: flows with identifiers still alert
          expires: 2026-06-30                 # required: applies to traffic up to the end of that day (UTC)
          owner: it-ops@example.com           # required: who answers for it
          reason: OS telemetry of the office PCs, reviewed 2025-12   # required

  A flow is excused when an entry's source, destination and data classes cover
  it and its packets are not later than the expiry: no rule sees it.  An entry
  that matches flows after its expiry is reported (stats.json ``exclusions``,
  and a warning at the end of ``scan``), not applied.

A key given with a null value (``roles:`` with nothing after it) is treated as
absent. Every problem raises :class:`inspector.errors.ConfigError` naming the
file and the 1-based line of the offending value.

IPv4-mapped IPv6 addresses (``::ffff:10.1.2.3``) are looked up as the IPv4
address they carry.

Site objects are immutable (frozen dataclass, tuple fields) because lookup
indexes are precomputed at construction; use :func:`dataclasses.replace` to
derive a modified site.
"""

from __future__ import annotations

import bisect
import datetime
import difflib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from typing import (Any, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import yaml

from .content import classes as data_classes
from .errors import ConfigError
from .yamlconf import TAG_FLOAT, TAG_INT, TAG_STR, compose, is_null, node_kind, node_line

__all__ = [
    "DEFAULT_LOCAL_NETS",
    "DIRECTIONS",
    "NON_UNICAST_NETS",
    "flow_direction",
    "direction_index",
    "Site",
    "load_site",
    "loads_site",
    "parse_asn",
    "normalize_domain",
]

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

DEFAULT_LOCAL_NETS: Tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",       # RFC 1918
        "172.16.0.0/12",    # RFC 1918
        "192.168.0.0/16",   # RFC 1918
        "fc00::/7",         # RFC 4193 unique local
        "127.0.0.0/8",      # loopback
        "::1/128",          # loopback
        "169.254.0.0/16",   # link-local
        "fe80::/10",        # link-local
    )
)

#: Destinations that never leave the site: IPv4 multicast, the limited broadcast, IPv6 multicast.
NON_UNICAST_NETS: Tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n) for n in ("224.0.0.0/4", "255.255.255.255/32", "ff00::/8"))

#: Flow directions, indexed by ``(orig is ours) << 1 | (resp is ours)`` (see :func:`direction_index`).
DIRECTIONS: Tuple[str, ...] = ("external", "inbound", "outbound", "internal")


def flow_direction(local_orig: bool, local_resp: bool, group_orig: bool = False, group_resp: bool = False) -> str:
    """``outbound``/``inbound``/``internal``/``external`` of a flow whose originator / responder is local
    (``local_*``) or a multicast/broadcast address (``group_*``).  A flow that involves a multicast or
    broadcast address stays on the link: ``internal`` when its other side is local, else ``external``."""
    if group_orig or group_resp:
        return "internal" if (local_orig or group_orig) and (local_resp or group_resp) else "external"
    return DIRECTIONS[(bool(local_orig) << 1) | bool(local_resp)]


def direction_index(lo: np.ndarray, lr: np.ndarray, go: np.ndarray, gr: np.ndarray) -> np.ndarray:
    """Vectorised :func:`flow_direction`: boolean arrays -> indexes into :data:`DIRECTIONS`."""
    idx = (lo.astype(np.int64) << 1) | lr.astype(np.int64)
    grp = go | gr
    if grp.any():
        inside = (lo | go) & (lr | gr)
        idx = np.where(grp, np.where(inside, 3, 0), idx)
    return idx


TOP_LEVEL_KEYS = ("site", "local_nets", "roles", "allowed_destinations", "exclusions")
EXCLUSION_KEYS = ("source", "destination", "data", "expires", "owner", "reason")
EXCLUSION_SOURCE_KEYS = ("host", "role")
EXCLUSION_DEST_KEYS = ("domain", "cidr", "asn", "group")

_MAX_ASN = 0xFFFFFFFF
_CACHE_MAX = 65536          # entries per per-site lookup cache before it is reset
_MASK_LOOP_MAX = 16         # up to this many v4 nets: mask & compare; else searchsorted

_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
_ASN_RE = re.compile(r"(?:as)?(\d+)(?:\.(\d+))?\Z", re.IGNORECASE)
_NUMERIC_RE = re.compile(r"[0-9.]+\Z")



# --------------------------------------------------------------------------
# value helpers (shared by the loader and programmatic construction)
# --------------------------------------------------------------------------

def parse_asn(value: Union[int, str]) -> int:
    """Parse ``64500``, ``"64500"``, ``"AS64500"``, ``"as64500"`` or asdot
    ``"AS1.10"`` into an int in 1..4294967295; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid AS number {value!r}")
    if isinstance(value, int):
        asn = value
    else:
        m = _ASN_RE.match(str(value).strip())
        if not m:
            raise ValueError(f"invalid AS number {value!r}")
        if m.group(2) is not None:                      # asdot: high.low
            high, low = int(m.group(1)), int(m.group(2))
            if high > 0xFFFF or low > 0xFFFF:
                raise ValueError(f"invalid AS number {value!r}")
            asn = (high << 16) | low
        else:
            asn = int(m.group(1))
    if not 1 <= asn <= _MAX_ASN:
        raise ValueError(f"invalid AS number {value!r}")
    return asn


def normalize_domain(value: str) -> str:
    """Normalise a domain suffix: lower-case, strip a leading ``*.``/``.`` and
    a trailing ``.``, IDNA-encode non-ASCII names; ValueError if invalid."""
    d = str(value).strip().lower()
    if d.startswith("*."):
        d = d[2:]
    elif d.startswith("."):
        d = d[1:]
    if d.endswith("."):
        d = d[:-1]
    if not d.isascii():
        try:
            d = d.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"invalid domain {value!r}") from None
    if not d or len(d) > 253 or not all(_LABEL_RE.match(l) for l in d.split(".")):
        raise ValueError(f"invalid domain {value!r}")
    if d.rsplit(".", 1)[-1].isdigit():      # a TLD is never all-numeric
        raise ValueError(f"invalid domain {value!r}")
    return d


def parse_network(text: str) -> Tuple[Optional[IPNetwork], str]:
    """Return (network, "") or (None, reason). Bare addresses become /32, /128."""
    t = text.strip()
    if not t:
        return None, "empty value"
    cls = ipaddress.IPv6Network if ":" in t else ipaddress.IPv4Network
    try:
        return cls(t), ""
    except ValueError as exc:
        try:
            loose = cls(t, strict=False)
        except ValueError:
            return None, " ".join(str(exc).split())
        return None, f"host bits set (did you mean {loose}?)"


def to_network(value: Any) -> IPNetwork:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_network(value)
    net, reason = parse_network(str(value))
    if net is None:
        raise ValueError(f"invalid CIDR {str(value)!r}: {reason}")
    return net


def _looks_like_network(text: str) -> bool:
    return "/" in text or ":" in text or bool(_NUMERIC_RE.match(text))


def addr_to_int(addr: Any) -> Optional[Tuple[int, int]]:
    """(version, int) for an address given as str / ipaddress object / packed
    bytes; IPv4-mapped IPv6 is folded to IPv4. None if it does not parse."""
    if isinstance(addr, str):
        s = addr.strip()
        try:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, s), "big")
        except OSError:
            pass
        if "%" in s:
            s = s.split("%", 1)[0]
        try:
            v = int.from_bytes(socket.inet_pton(socket.AF_INET6, s), "big")
        except OSError:
            return None
    elif isinstance(addr, ipaddress.IPv4Address):
        return 4, int(addr)
    elif isinstance(addr, ipaddress.IPv6Address):
        v = int(addr)
    elif isinstance(addr, (bytes, bytearray)) and len(addr) in (4, 16):
        if len(addr) == 4:
            return 4, int.from_bytes(addr, "big")
        v = int.from_bytes(addr, "big")
    else:
        return None
    if v >> 32 == 0xFFFF:                       # ::ffff:a.b.c.d
        return 4, v & 0xFFFFFFFF
    return 6, v


# --------------------------------------------------------------------------
# lookup structures
# --------------------------------------------------------------------------

class NetSet:
    """Membership over a set of networks: scalar (bisect over collapsed,
    disjoint ranges) and vectorised IPv4 (numpy mask & compare)."""

    __slots__ = ("_ranges", "_starts", "_v4_nets", "_v4_masks",
                 "_v4_starts", "_v4_ends", "_n_v4")

    def __init__(self, nets: Iterable[IPNetwork]) -> None:
        nets = list(nets)
        self._ranges: Dict[int, Tuple[List[int], List[int]]] = {}
        self._starts: Dict[int, List[int]] = {}
        v4: List[ipaddress.IPv4Network] = []
        for version in (4, 6):
            collapsed = list(ipaddress.collapse_addresses(
                n for n in nets if n.version == version))
            starts = [int(n.network_address) for n in collapsed]
            ends = [int(n.broadcast_address) for n in collapsed]
            self._ranges[version] = (starts, ends)
            if version == 4:
                v4 = collapsed              # type: ignore[assignment]
        self._n_v4 = len(v4)
        self._v4_nets = np.array([int(n.network_address) for n in v4], dtype=np.uint32)
        self._v4_masks = np.array([int(n.netmask) for n in v4], dtype=np.uint32)
        self._v4_starts = self._v4_nets.copy()      # collapsed output is sorted
        self._v4_ends = np.array([int(n.broadcast_address) for n in v4], dtype=np.uint32)

    def contains(self, version: int, value: int) -> bool:
        starts, ends = self._ranges[version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= ends[i]

    def contains_v4(self, arr: Any) -> np.ndarray:
        a = _as_u32(arr)
        n = self._n_v4
        if n == 0:
            return np.zeros(a.shape, dtype=bool)
        if n <= _MASK_LOOP_MAX:
            out = (a & self._v4_masks[0]) == self._v4_nets[0]
            if n > 1:
                tmp = np.empty(a.shape, dtype=np.uint32)
                hit = np.empty(a.shape, dtype=bool)
                for m, v in zip(self._v4_masks[1:], self._v4_nets[1:]):
                    np.bitwise_and(a, m, out=tmp)
                    np.equal(tmp, v, out=hit)
                    out |= hit
            return out
        idx = np.searchsorted(self._v4_starts, a, side="right") - 1
        ok = idx >= 0
        return ok & (a <= self._v4_ends[np.where(ok, idx, 0)])


def _as_u32(arr: Any) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype != np.uint32:
        a = a.astype(np.uint32)
    return a


class _RoleTable:
    """Longest-prefix-match of roles (scalar and vectorised IPv4)."""

    __slots__ = ("_by_len", "_v4_ordered")

    def __init__(self, roles: Sequence[Tuple[IPNetwork, str]]) -> None:
        by_len: Dict[Tuple[int, int], Dict[int, str]] = {}
        for net, role in roles:
            by_len.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = role
        bits = {4: 32, 6: 128}
        # per version: [(mask, {net_int: role}), ...] longest prefix first
        self._by_len: Dict[int, List[Tuple[int, Dict[int, str]]]] = {4: [], 6: []}
        for (version, plen) in sorted(by_len, key=lambda k: -k[1]):
            width = bits[version]
            mask = ((1 << width) - 1) ^ ((1 << (width - plen)) - 1)
            self._by_len[version].append((mask, by_len[(version, plen)]))
        # v4 roles shortest prefix first, so longer prefixes overwrite
        self._v4_ordered = [
            (np.uint32(int(net.netmask)), np.uint32(int(net.network_address)), role)
            for net, role in sorted((r for r in roles if r[0].version == 4),
                                    key=lambda r: r[0].prefixlen)
        ]

    def lookup(self, version: int, value: int) -> Optional[str]:
        for mask, table in self._by_len[version]:
            role = table.get(value & mask)
            if role is not None:
                return role
        return None

    def lookup_v4(self, arr: Any) -> np.ndarray:
        a = _as_u32(arr)
        out = np.full(a.shape, None, dtype=object)
        for mask, net, role in self._v4_ordered:
            out[(a & mask) == net] = role
        return out


# --------------------------------------------------------------------------
# Exclusions
# --------------------------------------------------------------------------

def _in_nets(addr, nets) -> bool:
    """Is ``addr`` (any form :func:`addr_to_int` reads) inside one of ``nets``?"""
    key = addr_to_int(addr) if addr is not None else None
    return key is not None and any(n.version == key[0] and int(n.network_address) <= key[1] <=
                                   int(n.broadcast_address) for n in nets)


@dataclass(frozen=True)
class Exclusion:
    """One entry of the site file's ``exclusions`` (see the module docstring).  ``source`` is
    ``"file:line"``; ``until`` the expiry as epoch seconds (the end of the ``expires`` day, UTC)."""

    expires: str
    until: float
    owner: str
    reason: str
    src_nets: Tuple[IPNetwork, ...] = ()
    src_roles: Tuple[str, ...] = ()
    domains: Tuple[str, ...] = ()
    nets: Tuple[IPNetwork, ...] = ()
    asns: Tuple[int, ...] = ()
    groups: Tuple[str, ...] = ()
    data: Tuple[str, ...] = ()
    source: Optional[str] = None

    def source_ok(self, addr, role) -> bool:
        """Does the entry's source scope cover a local host ``addr`` of role ``role``?"""
        if self.src_roles and role in self.src_roles:
            return True
        if self.src_nets and _in_nets(addr, self.src_nets):
            return True
        return not self.src_roles and not self.src_nets

    def destination_ok(self, name=None, addr=None, asn=None, group=None) -> bool:
        """Does the entry's destination cover it (any of domain suffix, CIDR, AS number, group)?"""
        if name and self.domains:
            n = str(name).strip().lower().rstrip(".")
            if any(n == d or n.endswith("." + d) for d in self.domains):
                return True
        if self.nets and _in_nets(addr, self.nets):
            return True
        if asn is not None and self.asns:
            try:
                if parse_asn(asn) in self.asns:
                    return True
            except ValueError:
                pass
        return bool(group) and group in self.groups

    def data_ok(self, classes: Iterable[str], groups_of) -> bool:
        """Are all ``classes`` (data classes a flow carries) allowed by ``data``?  ``groups_of(c)`` gives
        the group of class ``c`` (customer, shipment, edi)."""
        allowed = self.data
        if "any" in allowed:
            return True
        return all(c in allowed or groups_of(c) in allowed for c in classes)

    def to_dict(self) -> Dict[str, Any]:
        return {"entry": self.source, "owner": self.owner, "reason": self.reason, "expires": self.expires}


# --------------------------------------------------------------------------
# Site
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    """A loaded site description (see the module docstring for semantics).

    Fields are tuples (the object is immutable); the constructor also accepts
    lists, strings for networks, a mapping for ``roles``, and ``"AS64500"``
    strings for ``allowed_asns``; bad values raise ValueError.
    """

    name: str = "site"
    local_nets: Tuple[IPNetwork, ...] = DEFAULT_LOCAL_NETS
    roles: Tuple[Tuple[IPNetwork, str], ...] = ()
    allowed_domains: Tuple[str, ...] = ()
    allowed_nets: Tuple[IPNetwork, ...] = ()
    allowed_asns: Tuple[int, ...] = ()
    exclusions: Tuple[Exclusion, ...] = ()
    source: Optional[str] = field(default=None, compare=False)

    _local: NetSet = field(init=False, repr=False, compare=False)
    _group: NetSet = field(init=False, repr=False, compare=False)
    _allowed: NetSet = field(init=False, repr=False, compare=False)
    _roles: _RoleTable = field(init=False, repr=False, compare=False)
    _domain_set: frozenset = field(init=False, repr=False, compare=False)
    _asn_set: frozenset = field(init=False, repr=False, compare=False)
    _local_cache: Dict[Any, bool] = field(init=False, repr=False, compare=False)
    _role_cache: Dict[Any, Optional[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "name", str(self.name))
        local = tuple(_dedupe(to_network(n) for n in self.local_nets))
        setattr_(self, "local_nets", local)

        role_items: Iterable[Any] = (self.roles.items() if isinstance(self.roles, Mapping)
                                     else self.roles)
        roles: List[Tuple[IPNetwork, str]] = []
        seen: Dict[IPNetwork, str] = {}
        for net, role in role_items:
            net = to_network(net)
            role = str(role).strip() if role is not None else ""
            if not role:
                raise ValueError(f"empty role name for {net}")
            if net in seen:
                raise ValueError(f"duplicate role network {net}")
            seen[net] = role
            roles.append((net, role))
        setattr_(self, "roles", tuple(roles))

        setattr_(self, "allowed_domains",
                 tuple(_dedupe(normalize_domain(d) for d in self.allowed_domains)))
        setattr_(self, "allowed_nets",
                 tuple(_dedupe(to_network(n) for n in self.allowed_nets)))
        setattr_(self, "allowed_asns",
                 tuple(_dedupe(parse_asn(a) for a in self.allowed_asns)))
        setattr_(self, "exclusions", tuple(self.exclusions))

        setattr_(self, "_local", NetSet(self.local_nets))
        # multicast, limited broadcast, and the broadcast address of each IPv4 local or role network
        bcast = {ipaddress.ip_network(f"{n.broadcast_address}/32") for n in
                 list(self.local_nets) + [net for net, _r in self.roles] if n.version == 4 and n.prefixlen <= 30}
        setattr_(self, "_group", NetSet(NON_UNICAST_NETS + tuple(sorted(bcast))))
        setattr_(self, "_allowed", NetSet(self.allowed_nets))
        setattr_(self, "_roles", _RoleTable(self.roles))
        setattr_(self, "_domain_set", frozenset(self.allowed_domains))
        setattr_(self, "_asn_set", frozenset(self.allowed_asns))
        setattr_(self, "_local_cache", {})
        setattr_(self, "_role_cache", {})

    # ---- construction ---------------------------------------------------

    @classmethod
    def default(cls) -> "Site":
        """Name "site", default local nets, no roles, nothing allowed."""
        return cls()

    # ---- membership -----------------------------------------------------

    def is_local_v4(self, arr: Any) -> np.ndarray:
        """Vectorised: IPv4 addresses as host-order uint32 (other integer
        dtypes are cast) -> bool array of the same shape."""
        return self._local.contains_v4(arr)

    def is_local(self, addr: Union[str, IPAddress, bytes]) -> bool:
        """Is ``addr`` (str, ipaddress object or packed bytes) inside a local
        net? Unparseable input gives False. Results are cached."""
        cache = self._local_cache
        try:
            return cache[addr]
        except KeyError:
            pass
        except TypeError:                   # unhashable: don't cache
            key = addr_to_int(addr)
            return key is not None and self._local.contains(*key)
        key = addr_to_int(addr)
        result = key is not None and self._local.contains(*key)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[addr] = result
        return result

    def is_multicast_or_broadcast_v4(self, arr: Any) -> np.ndarray:
        """Vectorised :meth:`is_multicast_or_broadcast` for IPv4 addresses as host-order uint32."""
        return self._group.contains_v4(arr)

    def is_multicast_or_broadcast(self, addr: Union[str, IPAddress, bytes]) -> bool:
        """Is ``addr`` a multicast address, the limited broadcast, or the broadcast address of a local or
        role network: a destination that never leaves the site?  Unparseable input gives False."""
        key = addr_to_int(addr)
        return key is not None and self._group.contains(*key)

    def role(self, addr: Union[str, IPAddress, bytes]) -> Optional[str]:
        """Role of the longest matching ``roles`` prefix, or None."""
        cache = self._role_cache
        try:
            return cache[addr]
        except KeyError:
            pass
        except TypeError:
            key = addr_to_int(addr)
            return None if key is None else self._roles.lookup(*key)
        key = addr_to_int(addr)
        result = None if key is None else self._roles.lookup(*key)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[addr] = result
        return result

    def roles_v4(self, arr: Any) -> np.ndarray:
        """Vectorised :meth:`role` for host-order uint32 IPv4 addresses:
        an object array of role names / None, same shape as ``arr``."""
        return self._roles.lookup_v4(arr)

    def domain_allowed(self, name: Optional[str]) -> bool:
        """Does ``name`` equal or sit below an allowed domain suffix?"""
        if not name or not self._domain_set:
            return False
        n = name.strip().lower().rstrip(".")
        if not n.isascii():
            try:
                n = n.encode("idna").decode("ascii")
            except UnicodeError:
                return False
        domains = self._domain_set
        if n in domains:
            return True
        i = n.find(".")
        while i != -1:
            if n[i + 1:] in domains:
                return True
            i = n.find(".", i + 1)
        return False

    def is_allowed(self, name: Optional[str] = None,
                   addr: Optional[Union[str, IPAddress, bytes]] = None,
                   asn: Optional[Union[int, str]] = None) -> bool:
        """True if any given attribute is allowed: ``name`` by domain suffix
        (label boundaries), ``addr`` inside ``allowed_nets``, ``asn`` in
        ``allowed_asns``. None arguments are ignored; all None -> False."""
        if name and self.domain_allowed(name):
            return True
        if addr is not None and self.allowed_nets:
            key = addr_to_int(addr)
            if key is not None and self._allowed.contains(*key):
                return True
        if asn is not None and self._asn_set:
            try:
                if parse_asn(asn) in self._asn_set:
                    return True
            except ValueError:
                pass
        return False

    # ---- reporting ------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """JSON-friendly summary for reports."""
        return {
            "name": self.name,
            "source": self.source,
            "local_nets": [str(n) for n in self.local_nets],
            "roles": {str(n): r for n, r in self.roles},
            "allowed_domains": list(self.allowed_domains),
            "allowed_nets": [str(n) for n in self.allowed_nets],
            "allowed_asns": list(self.allowed_asns),
            "exclusions": [e.to_dict() for e in self.exclusions],
        }


def _dedupe(items: Iterable[Any]) -> List[Any]:
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


# --------------------------------------------------------------------------
# loader
# --------------------------------------------------------------------------

class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, node: Optional[yaml.Node], message: str) -> ConfigError:
        return ConfigError(self.path, node_line(node), message)

    is_null = staticmethod(is_null)

    def scalar_text(self, node: yaml.Node, what: str) -> str:
        """Raw text of a string-like scalar (str/int/float tags, so that YAML
        1.1 quirks like sexagesimal ints don't mangle addresses)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (TAG_STR, TAG_INT, TAG_FLOAT):
            raise self.error(node, f"{what}, got {node_kind(node)}")
        return node.value.strip()

    def network(self, node: yaml.Node, key: str) -> IPNetwork:
        if self.is_null(node):
            raise self.error(node, f"empty entry in '{key}'")
        text = self.scalar_text(node, f"'{key}' entries must be CIDR strings")
        net, reason = parse_network(text)
        if net is None:
            raise self.error(node, f"invalid CIDR {text!r} in '{key}': {reason}")
        return net

    def parse(self, root: Optional[yaml.Node]) -> Dict[str, Any]:
        kwargs: Dict[str, Any] = {"source": self.path}
        if root is None or self.is_null(root):        # empty file / empty document
            return kwargs
        if not isinstance(root, yaml.MappingNode):
            raise self.error(root, f"site file must be a mapping of keys to values, got {node_kind(root)}")
        seen: Dict[str, int] = {}
        for knode, vnode in root.value:
            if not (isinstance(knode, yaml.ScalarNode) and knode.tag == TAG_STR):
                key_text = knode.value if isinstance(knode, yaml.ScalarNode) else node_kind(knode)
                raise self.error(knode, f"unknown top-level key {key_text!r}; expected one of: "
                                        + ", ".join(TOP_LEVEL_KEYS))
            key = knode.value
            if key not in TOP_LEVEL_KEYS:
                hint = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=1)
                msg = f"unknown top-level key {key!r}"
                msg += f" (did you mean {hint[0]!r}?)" if hint else \
                    "; expected one of: " + ", ".join(TOP_LEVEL_KEYS)
                raise self.error(knode, msg)
            if key in seen:
                raise self.error(knode, f"duplicate key {key!r} (first defined on line {seen[key]})")
            seen[key] = knode.start_mark.line + 1
            if self.is_null(vnode):
                continue                              # "key:" with no value -> default
            getattr(self, "parse_" + key)(vnode, kwargs)
        return kwargs

    def parse_site(self, node: yaml.Node, kwargs: Dict[str, Any]) -> None:
        name = self.scalar_text(node, "'site' must be a string")
        if not name:
            raise self.error(node, "'site' must not be empty")
        kwargs["name"] = name

    def parse_local_nets(self, node: yaml.Node, kwargs: Dict[str, Any]) -> None:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"'local_nets' must be a list of CIDRs, got {node_kind(node)}")
        kwargs["local_nets"] = [self.network(item, "local_nets") for item in node.value]

    def parse_roles(self, node: yaml.Node, kwargs: Dict[str, Any]) -> None:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"'roles' must be a mapping of CIDR to role name, got {node_kind(node)}")
        roles: List[Tuple[IPNetwork, str]] = []
        first_line: Dict[IPNetwork, int] = {}
        for knode, vnode in node.value:
            net = self.network(knode, "roles")
            if net in first_line:
                raise self.error(knode, f"duplicate role network {net} "
                                        f"(first defined on line {first_line[net]})")
            first_line[net] = knode.start_mark.line + 1
            if self.is_null(vnode):
                raise self.error(vnode, f"empty role name for {net}")
            if not (isinstance(vnode, yaml.ScalarNode) and vnode.tag == TAG_STR):
                raise self.error(vnode, f"role name for {net} must be a string, got {node_kind(vnode)}")
            role = vnode.value.strip()
            if not role:
                raise self.error(vnode, f"empty role name for {net}")
            roles.append((net, role))
        kwargs["roles"] = roles

    def parse_allowed_destinations(self, node: yaml.Node, kwargs: Dict[str, Any]) -> None:
        key = "allowed_destinations"
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"'{key}' must be a list, got {node_kind(node)}")
        domains: List[str] = []
        nets: List[IPNetwork] = []
        asns: List[int] = []
        for item in node.value:
            if self.is_null(item):
                raise self.error(item, f"empty entry in '{key}'")
            text = self.scalar_text(
                item, f"'{key}' entries must be domain suffixes, CIDRs or AS numbers")
            if not text:
                raise self.error(item, f"empty entry in '{key}'")
            if _ASN_RE.match(text) and (text[:2].lower() == "as" or text.isdigit()):
                try:
                    asns.append(parse_asn(text))
                except ValueError:
                    raise self.error(item, f"invalid AS number {text!r} in '{key}' "
                                           f"(must be AS1..AS{_MAX_ASN})") from None
            elif _looks_like_network(text):
                nets.append(self.network(item, key))
            else:
                try:
                    domains.append(normalize_domain(text))
                except ValueError:
                    raise self.error(item, f"invalid domain {text!r} in '{key}'") from None
        kwargs["allowed_domains"] = domains
        kwargs["allowed_nets"] = nets
        kwargs["allowed_asns"] = asns


    def words(self, node: yaml.Node, what: str) -> List[Tuple[yaml.Node, str]]:
        """A scalar or a list of scalars -> [(node, text)]."""
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        out = []
        for item in items:
            if self.is_null(item):
                raise self.error(item, f"empty entry in {what}")
            out.append((item, self.scalar_text(item, f"{what} must be text")))
        return out

    def mapping(self, node: yaml.Node, what: str, keys: Sequence[str]) -> Dict[str, Tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping, got {node_kind(node)}")
        out: Dict[str, Tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else node_kind(knode)
            if key not in keys:
                hint = difflib.get_close_matches(str(key), keys, n=1)
                raise self.error(knode, f"unknown key {key!r} in {what}"
                                        + (f" (did you mean {hint[0]!r}?)" if hint else
                                           "; expected one of: " + ", ".join(keys)))
            if key in out:
                raise self.error(knode, f"duplicate key {key!r} in {what}")
            if self.is_null(vnode):
                raise self.error(vnode, f"{key!r} in {what} has no value")
            out[key] = (knode, vnode)
        return out

    def parse_exclusions(self, node: yaml.Node, kwargs: Dict[str, Any]) -> None:
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(node, f"'exclusions' must be a list of entries, got {node_kind(node)}")
        kwargs["exclusions"] = [self.exclusion(item) for item in node.value]

    def exclusion(self, node: yaml.Node) -> Exclusion:
        what = "an exclusion"
        m = self.mapping(node, what, EXCLUSION_KEYS)
        for key in ("destination", "expires", "owner", "reason"):
            if key not in m:
                raise self.error(node, f"{what} needs {key!r} (every exclusion names a destination, an expiry "
                                       "date, an owner and a reason)")
        kw: Dict[str, Any] = {"source": f"{self.path}:{node_line(node)}"}
        for key in ("owner", "reason"):
            text = self.scalar_text(m[key][1], f"{key!r} of {what} must be text")
            if not text:
                raise self.error(m[key][1], f"{key!r} of {what} must not be empty")
            kw[key] = text
        exp = m["expires"][1]
        text = self.scalar_text(exp, f"'expires' of {what} must be a date like 2026-06-30") \
            if not (isinstance(exp, yaml.ScalarNode) and exp.tag == "tag:yaml.org,2002:timestamp") else exp.value
        mt = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text.strip())
        try:
            day = datetime.date(int(mt.group(1)), int(mt.group(2)), int(mt.group(3))) if mt else None
        except ValueError:
            day = None
        if day is None:
            raise self.error(exp, f"invalid date {text!r} for 'expires' of {what}: use YYYY-MM-DD")
        kw["expires"] = day.isoformat()
        kw["until"] = float((day.toordinal() - 719163 + 1) * 86400)      # the end of that day, UTC
        if "source" in m:
            sm = self.mapping(m["source"][1], "the source of an exclusion", EXCLUSION_SOURCE_KEYS)
            if not sm:
                raise self.error(m["source"][1], "the source of an exclusion names a host or a role")
            if "host" in sm:
                kw["src_nets"] = tuple(self.network(item, "exclusions source host")
                                       for item, _t in self.words(sm["host"][1], "the source host of an exclusion"))
            if "role" in sm:
                kw["src_roles"] = tuple(t for _i, t in self.words(sm["role"][1], "the source role of an exclusion"))
        dm = self.mapping(m["destination"][1], "the destination of an exclusion", EXCLUSION_DEST_KEYS)
        if not dm:
            raise self.error(m["destination"][1], "the destination of an exclusion names a domain, cidr, asn or group")
        for key, (_kn, vn) in dm.items():
            vals = []
            for item, t in self.words(vn, f"the destination {key} of an exclusion"):
                try:
                    if key == "domain":
                        vals.append(normalize_domain(t))
                    elif key == "cidr":
                        vals.append(self.network(item, "exclusions destination cidr"))
                    elif key == "asn":
                        vals.append(parse_asn(t))
                    else:
                        vals.append(t.lower())
                except ValueError as exc:
                    raise self.error(item, f"invalid {key} {t!r} in an exclusion: {exc}") from None
            kw[{"domain": "domains", "cidr": "nets", "asn": "asns", "group": "groups"}[key]] = tuple(vals)
        if "data" in m:
            known = set(data_classes.names()) | set(data_classes.GROUPS) | {"any"}
            data = []
            vn = m["data"][1]
            items = self.words(vn, "the data of an exclusion") if not (
                isinstance(vn, yaml.SequenceNode) and not vn.value) else []
            for item, t in items:
                if t not in known:
                    hint = difflib.get_close_matches(t, sorted(known), n=1)
                    raise self.error(item, f"unknown data class {t!r} in an exclusion"
                                           + (f" (did you mean {hint[0]!r}?)" if hint else ""))
                data.append(t)
            kw["data"] = tuple(data)
        return Exclusion(**kw)


def loads_site(text: Union[str, bytes], path: str = "<string>") -> Site:
    """Parse site YAML from a string/bytes; ``path`` is used in errors."""
    path = os.fspath(path)
    root, err = compose(text, path)
    if err is not None:
        raise err
    kwargs = _Parser(path).parse(root)
    try:
        return Site(**kwargs)
    except ValueError as exc:               # should be unreachable: parser validates
        raise ConfigError(path, None, str(exc)) from None


def load_site(path: Union[str, "os.PathLike[str]"]) -> Site:
    """Load a site YAML file. Raises ConfigError (file:line: message)."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(p, None, f"cannot read site file: {exc.strerror or exc}") from None
    return loads_site(raw, p)
