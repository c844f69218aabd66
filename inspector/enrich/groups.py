"""Destination groups: who operates a destination (as data, not code).

Group files are YAML under ``signatures/destinations/``; each file is a list
of groups::

    - group: alibaba-cloud                 # id: lower-case letters, digits, '-'
      name: Alibaba Cloud                  # display name (default: the id)
      category: foreign-cloud              # one of CATEGORIES
      country: CN                          # optional ISO 3166-1 alpha-2 code
      domains: [aliyuncs.com, alicdn.com]  # suffixes, label-boundary match
      cidrs: [47.74.0.0/15]                # optional
      asns: [45102, AS37963]               # optional
      cert_issuers: ["CN=Example Issuing CA*,O=Example,C=US"]   # optional
      cert_subjects: ["*,O=Example Cloud,*"]                     # optional
      references: [https://...]            # optional
      notes: free text                     # optional

Every group needs at least one of ``domains``, ``cidrs``, ``asns``, ``cert_issuers`` or
``cert_subjects``.  Certificate patterns are globs (``*``, ``?``) matched case-insensitively
against the whole RFC 4514 name of the server's leaf certificate as ``x509.jsonl`` prints it
(most specific attribute first: ``CN=Amazon RSA 2048 M02,O=Amazon,C=US``).
Domains are normalised like the site file's (lower case, leading ``*.``/``.``
and trailing ``.`` stripped, IDNA). A domain, an identical CIDR or an AS
number may belong to one group only; nested CIDRs in different groups are
fine (the longest prefix wins). Group ids are unique across all files.

Matching (:meth:`Groups.match`) takes the first that hits, in this order:

1. the name (SNI / DNS / HTTP host) by domain suffix on label boundaries, the
   longest suffix winning (``update.microsoft.com`` beats ``microsoft.com``);
2. the server certificate's issuer, then its subject, by pattern (the first group in
   file order whose pattern matches; a provider's own issuing CA says whose service it is);
3. the address by CIDR, the longest prefix winning;
4. the AS number.

Every problem is a :class:`~inspector.errors.ConfigError` naming the file and
line; :func:`check` returns all of them (one line each) across all files,
:func:`load_groups` raises the first.
"""

from __future__ import annotations

import bisect
import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from typing import (Any, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import yaml

from ..errors import ConfigError
from ..site import addr_to_int, normalize_domain, parse_asn, parse_network, to_network
from ..yamlconf import TAG_FLOAT, TAG_INT, TAG_NULL, TAG_STR, compose, is_null, node_kind, node_line, yaml_files
from .ranges import flatten_most_specific

__all__ = [
    "CATEGORIES",
    "GROUP_KEYS",
    "Group",
    "Groups",
    "default_groups_dir",
    "load_groups",
    "loads_groups",
    "check",
]

#: The documented set of categories (see signatures/README.md).
CATEGORIES: Dict[str, str] = {
    "cloud": "public cloud / hosting provider (IaaS, PaaS, object storage)",
    "foreign-cloud": "cloud provider under a non-EU/non-US home jurisdiction "
                     "(CN, RU, ...); reported apart so policy can treat it apart",
    "cdn": "content delivery / edge network; the real destination is behind it",
    "carrier": "parcel and express carrier, postal operator (label, tracking, manifest APIs)",
    "customs": "customs authority or customs declaration system",
    "government": "other public administration (tax, trade, EU institutions)",
    "logistics-platform": "logistics software platform / tracking aggregator / 3PL network",
    "marketplace": "e-commerce marketplace (seller and order APIs)",
    "software-update": "operating-system and software update hosts, package registries",
    "saas": "general software-as-a-service and vendor services",
    "messaging": "chat, e-mail and voice/video messaging services",
    "payment": "payment provider",
    "dns": "public DNS resolver",
    "time": "public NTP service",
    "telemetry": "operating-system telemetry: diagnostic data, crash reports, usage metrics",
}

GROUP_KEYS = ("group", "name", "category", "country", "domains", "cidrs", "asns",
              "cert_issuers", "cert_subjects", "references", "notes")

_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
_COUNTRY_RE = re.compile(r"[A-Za-z]{2}\Z")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*\Z", re.IGNORECASE)


def default_groups_dir() -> str:
    """``signatures/destinations`` of the source tree this package sits in."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "signatures", "destinations"))


# --------------------------------------------------------------------------
# Group / Groups
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """One destination group. ``source`` is ``"file:line"`` when loaded."""

    id: str
    name: str
    category: str
    country: Optional[str] = None
    domains: Tuple[str, ...] = ()
    cidrs: Tuple[Any, ...] = ()
    asns: Tuple[int, ...] = ()
    references: Tuple[str, ...] = ()
    notes: Optional[str] = None
    source: Optional[str] = None
    cert_issuers: Tuple[str, ...] = ()     # glob patterns over the RFC 4514 issuer
    cert_subjects: Tuple[str, ...] = ()    # glob patterns over the RFC 4514 subject

    def to_dict(self) -> Dict[str, Any]:
        return {
            "group": self.id, "name": self.name, "category": self.category,
            "country": self.country, "domains": list(self.domains),
            "cidrs": [str(n) for n in self.cidrs], "asns": list(self.asns),
            "cert_issuers": list(self.cert_issuers), "cert_subjects": list(self.cert_subjects),
            "references": list(self.references), "notes": self.notes,
        }


def cert_pattern(pattern: str):
    """A certificate name glob compiled for :meth:`Groups.match_certificate` (case-insensitive,
    ``*`` and ``?`` match any characters, commas included)."""
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE | re.DOTALL)


class _CidrIndex:
    """Longest-prefix match over prefixes that are nested or disjoint, as a
    flat sorted list of disjoint intervals -> group index (bisect; numpy for
    IPv4 arrays)."""

    __slots__ = ("_starts", "_ends", "_gids", "_np_starts", "_np_ends", "_np_gids")

    def __init__(self, items: List[Tuple[int, int, int]], v4: bool) -> None:
        segs = flatten_most_specific(items)
        self._starts = [s[0] for s in segs]
        self._ends = [s[1] for s in segs]
        self._gids = [s[2] for s in segs]
        if v4:
            self._np_starts = np.asarray(self._starts, dtype=np.uint32)
            self._np_ends = np.asarray(self._ends, dtype=np.uint32)
            self._np_gids = np.asarray(self._gids, dtype=np.int64)

    def find(self, value: int) -> int:
        i = bisect.bisect_right(self._starts, value) - 1
        if i >= 0 and value <= self._ends[i]:
            return self._gids[i]
        return -1

    def find_v4(self, a: np.ndarray) -> np.ndarray:
        if not self._starts:
            return np.full(a.shape, -1, dtype=np.int64)
        idx = np.searchsorted(self._np_starts, a, side="right") - 1
        ok = idx >= 0
        idx = np.where(ok, idx, 0)
        ok &= a <= self._np_ends[idx]
        return np.where(ok, self._np_gids[idx], -1)


class Groups:
    """A set of destination groups with precomputed match indexes.

    Construct from :class:`Group` objects (ValueError on conflicts) or with
    :func:`load_groups`.
    """

    def __init__(self, groups: Iterable[Group] = ()) -> None:
        self._groups: Tuple[Group, ...] = tuple(groups)
        self._by_id: Dict[str, int] = {}
        self._domains: Dict[str, int] = {}
        self._asns: Dict[int, int] = {}
        self._issuers: List[Tuple[Any, int]] = []     # (compiled pattern, group index), file order
        self._subjects: List[Tuple[Any, int]] = []
        cidr_owner: Dict[Any, int] = {}
        rows: Dict[int, List[Tuple[int, int, int]]] = {4: [], 6: []}
        for gi, g in enumerate(self._groups):
            if g.id in self._by_id:
                raise ValueError(f"duplicate group id {g.id!r}")
            if g.category not in CATEGORIES:
                raise ValueError(f"unknown category {g.category!r} in group {g.id!r}")
            self._by_id[g.id] = gi
            for d in g.domains:
                d = normalize_domain(d)
                if self._domains.get(d, gi) != gi:
                    raise ValueError(f"domain {d!r} is in groups "
                                     f"{self._groups[self._domains[d]].id!r} and {g.id!r}")
                self._domains[d] = gi
            for n in g.cidrs:
                n = to_network(n)
                if cidr_owner.get(n, gi) != gi:
                    raise ValueError(f"CIDR {n} is in groups "
                                     f"{self._groups[cidr_owner[n]].id!r} and {g.id!r}")
                if n in cidr_owner:
                    continue
                cidr_owner[n] = gi
                rows[n.version].append((int(n.network_address), int(n.broadcast_address), gi))
            for a in g.asns:
                a = parse_asn(a)
                if self._asns.get(a, gi) != gi:
                    raise ValueError(f"AS{a} is in groups "
                                     f"{self._groups[self._asns[a]].id!r} and {g.id!r}")
                self._asns[a] = gi
            self._issuers.extend((cert_pattern(p), gi) for p in g.cert_issuers)
            self._subjects.extend((cert_pattern(p), gi) for p in g.cert_subjects)
        self._cidrs = {4: _CidrIndex(rows[4], True), 6: _CidrIndex(rows[6], False)}
        self._np_ids = np.array([None] + [g.id for g in self._groups], dtype=object)
        self._np_categories = np.array([None] + [g.category for g in self._groups], dtype=object)

    # ---- container ------------------------------------------------------

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(self._groups)

    def __contains__(self, group_id: object) -> bool:
        return group_id in self._by_id

    def get(self, group_id: str) -> Optional[Group]:
        i = self._by_id.get(group_id)
        return None if i is None else self._groups[i]

    def __getitem__(self, group_id: str) -> Group:
        return self._groups[self._by_id[group_id]]

    # ---- matching -------------------------------------------------------

    def match_domain(self, name: Optional[str]) -> Optional[Group]:
        """Group of the longest domain suffix of ``name`` (label boundaries)."""
        if not name or not self._domains:
            return None
        n = name.strip().lower().rstrip(".")
        if not n.isascii():
            try:
                n = n.encode("idna").decode("ascii")
            except UnicodeError:
                return None
        domains = self._domains
        gi = domains.get(n)
        if gi is not None:
            return self._groups[gi]
        i = n.find(".")
        while i != -1:
            gi = domains.get(n[i + 1:])
            if gi is not None:
                return self._groups[gi]
            i = n.find(".", i + 1)
        return None

    def match_addr(self, addr: Any) -> Optional[Group]:
        """Group of the longest CIDR containing ``addr`` (str, ipaddress
        object or packed bytes; IPv4-mapped IPv6 folded to IPv4)."""
        if addr is None:
            return None
        key = addr_to_int(addr)
        if key is None:
            return None
        gi = self._cidrs[key[0]].find(key[1])
        return None if gi < 0 else self._groups[gi]

    def match_asn(self, asn: Any) -> Optional[Group]:
        if asn is None or not self._asns:
            return None
        try:
            gi = self._asns.get(parse_asn(asn))
        except ValueError:
            return None
        return None if gi is None else self._groups[gi]

    def match_certificate(self, cert: Optional[Tuple[Optional[str], Optional[str]]]) -> Optional[Group]:
        """Group of the first pattern matching the certificate's issuer, else its subject;
        ``cert`` is ``(subject, issuer)`` (RFC 4514 strings) or None."""
        if not cert:
            return None
        subject, issuer = cert
        for value, patterns in ((issuer, self._issuers), (subject, self._subjects)):
            if value and patterns:
                for pat, gi in patterns:
                    if pat.match(value):
                        return self._groups[gi]
        return None

    def match_group(self, name: Optional[str] = None, addr: Any = None,
                    asn: Any = None, cert: Optional[Tuple[Optional[str], Optional[str]]] = None) -> Optional[Group]:
        """The matching :class:`Group` (domain, then certificate, then CIDR, then ASN) or None."""
        return (self.match_domain(name) or self.match_certificate(cert) or self.match_addr(addr)
                or self.match_asn(asn))

    def match(self, name: Optional[str] = None, addr: Any = None,
              asn: Any = None, cert: Optional[Tuple[Optional[str], Optional[str]]] = None) \
            -> Tuple[Optional[str], Optional[str]]:
        """``(group_id, category)`` of the matching group, else ``(None, None)``."""
        g = self.match_group(name, addr, asn, cert)
        return (g.id, g.category) if g is not None else (None, None)

    def match_v4(self, arr: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Vectorised CIDR match of host-order uint32 IPv4 addresses: object
        arrays (group id, category), None where no CIDR matches."""
        a = np.asarray(arr)
        if a.dtype != np.uint32:
            a = a.astype(np.uint32)
        gi = self._cidrs[4].find_v4(a) + 1
        return self._np_ids[gi], self._np_categories[gi]

    def to_list(self) -> List[Dict[str, Any]]:
        return [g.to_dict() for g in self._groups]


# --------------------------------------------------------------------------
# loader
# --------------------------------------------------------------------------

class _Collector:
    """Parses group files, collecting every problem instead of stopping."""

    def __init__(self) -> None:
        self.problems: List[ConfigError] = []
        self.groups: List[Group] = []
        self._ids: Dict[str, Tuple[str, int]] = {}
        self._domains: Dict[str, Tuple[str, str, int]] = {}
        self._cidrs: Dict[Any, Tuple[str, str, int]] = {}
        self._asns: Dict[int, Tuple[str, str, int]] = {}
        self._cert_patterns: Dict[Tuple[str, str], Tuple[str, str, int]] = {}

    # ---- helpers ----------------------------------------------------------

    def problem(self, path: str, node: Optional[yaml.Node], message: str) -> None:
        self.problems.append(ConfigError(path, node_line(node), message))

    @staticmethod
    def _where(path: str, first: Tuple[str, int]) -> str:
        fpath, fline = first
        if fpath == path:
            return f"line {fline}"
        return f"{fpath}:{fline}"

    is_null = staticmethod(is_null)

    def _claim(self, owners: Dict[Any, Tuple[str, str, int]], key: Any, what: str, gid: Optional[str],
               ok: bool, path: str, item: yaml.Node) -> bool:
        """``key`` (a CIDR, an AS number, a certificate pattern) for group ``gid``: False, with a
        problem naming the first owner, when another entry already has it; recorded when ``ok``."""
        first = owners.get(key)
        if first is not None:
            owner, fpath, fline = first
            self.problem(path, item, f"{what} already belongs to group {owner!r} "
                                     f"({self._where(path, (fpath, fline))})")
            return False
        if ok:
            owners[key] = (gid, path, node_line(item))
        return True

    def text(self, path: str, node: yaml.Node, what: str,
             tags: Sequence[str] = (TAG_STR,)) -> Optional[str]:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
            self.problem(path, node, f"{what}, got {node_kind(node)}")
            return None
        return node.value.strip()

    def seq(self, path: str, node: yaml.Node, key: str, gid: str) -> List[yaml.Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.ScalarNode) and node.tag != TAG_NULL:
            return [node]                           # a single value is a one-item list
        self.problem(path, node, f"'{key}' of group {gid!r} must be a list, got {node_kind(node)}")
        return []

    # ---- files ------------------------------------------------------------

    def file(self, path: str) -> None:
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            self.problems.append(ConfigError(path, None, f"cannot read group file: "
                                                         f"{exc.strerror or exc}"))
            return
        root, err = compose(raw, path)
        if err is not None:
            self.problems.append(err)
            return
        if root is None or self.is_null(root):
            return                                  # empty file: no groups
        if not isinstance(root, yaml.SequenceNode):
            self.problem(path, root, f"a group file must be a list of groups, got {node_kind(root)}")
            return
        for item in root.value:
            self.group(path, item)

    def group(self, path: str, node: yaml.Node) -> None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(path, node, f"each group must be a mapping, got {node_kind(node)}")
            return
        values: Dict[str, yaml.Node] = {}
        keys: Dict[str, yaml.Node] = {}
        for knode, vnode in node.value:
            if not (isinstance(knode, yaml.ScalarNode) and knode.tag == TAG_STR):
                self.problem(path, knode, f"group keys must be strings, got {node_kind(knode)}")
                continue
            key = knode.value
            if key in keys:
                self.problem(path, knode, f"duplicate key {key!r} "
                                          f"(first defined on line {node_line(keys[key])})")
                continue
            keys[key] = knode
            if key not in GROUP_KEYS:
                hint = difflib.get_close_matches(key, GROUP_KEYS, n=1)
                msg = f"unknown key {key!r}"
                msg += f" (did you mean {hint[0]!r}?)" if hint else \
                    "; expected one of: " + ", ".join(GROUP_KEYS)
                self.problem(path, knode, msg)
                continue
            if not self.is_null(vnode):
                values[key] = vnode

        # id
        gid_node = values.get("group")
        if gid_node is None:
            self.problem(path, node, "group without a 'group' id")
            gid = None
        else:
            gid = self.text(path, gid_node, "'group' must be a string id")
            if gid is not None and not _ID_RE.match(gid):
                self.problem(path, gid_node, f"invalid group id {gid!r}: use lower-case letters, "
                                             "digits and '-' (like 'alibaba-cloud')")
                gid = None
            elif gid is not None:
                first = self._ids.get(gid)
                if first is not None:
                    self.problem(path, gid_node, f"duplicate group id {gid!r} "
                                                 f"(first defined at {self._where(path, first)})")
                    gid = None
                else:
                    self._ids[gid] = (path, node_line(gid_node))
        label = gid if gid is not None else f"at line {node_line(node)}"
        ok = gid is not None
        n_problems = len(self.problems)

        name = gid or ""
        if "name" in values:
            t = self.text(path, values["name"], "'name' must be a string",
                          (TAG_STR, TAG_INT, TAG_FLOAT))
            if t == "":
                self.problem(path, values["name"], "'name' must not be empty")
            elif t is not None:
                name = t

        category = None
        cnode = values.get("category")
        if cnode is None:
            self.problem(path, node, f"group {label!r} has no 'category'; expected one of: "
                                     + ", ".join(CATEGORIES))
        else:
            c = self.text(path, cnode, "'category' must be a string")
            if c is not None:
                if c in CATEGORIES:
                    category = c
                else:
                    hint = difflib.get_close_matches(c, CATEGORIES, n=1)
                    msg = f"unknown category {c!r}"
                    msg += f" (did you mean {hint[0]!r}?)" if hint else \
                        "; expected one of: " + ", ".join(CATEGORIES)
                    self.problem(path, cnode, msg)

        country = None
        if "country" in values:
            t = self.text(path, values["country"], "'country' must be a two-letter ISO 3166-1 code")
            if t is not None:
                if _COUNTRY_RE.match(t):
                    country = t.upper()
                else:
                    self.problem(path, values["country"],
                                 f"invalid country {t!r}: use a two-letter ISO 3166-1 code like 'CN'")

        n_before_lists = len(self.problems)
        domains: List[str] = []
        for item in self.seq(path, values["domains"], "domains", label) if "domains" in values else []:
            if self.is_null(item):
                self.problem(path, item, f"empty entry in 'domains' of group {label!r}")
                continue
            t = self.text(path, item, "'domains' entries must be domain suffixes")
            if t is None:
                continue
            try:
                d = normalize_domain(t)
            except ValueError:
                self.problem(path, item, f"invalid domain {t!r} in group {label!r}")
                continue
            first = self._domains.get(d)
            if first is not None:
                owner, fpath, fline = first
                where = self._where(path, (fpath, fline))
                if owner == gid:
                    self.problem(path, item, f"duplicate domain {d!r} in group {label!r} "
                                             f"(first listed on {where})")
                else:
                    self.problem(path, item, f"domain {d!r} already belongs to group {owner!r} "
                                             f"({where})")
                continue
            if ok:
                self._domains[d] = (gid, path, node_line(item))
            domains.append(d)

        cidrs: List[Any] = []
        for item in self.seq(path, values["cidrs"], "cidrs", label) if "cidrs" in values else []:
            if self.is_null(item):
                self.problem(path, item, f"empty entry in 'cidrs' of group {label!r}")
                continue
            t = self.text(path, item, "'cidrs' entries must be CIDR strings",
                          (TAG_STR, TAG_INT, TAG_FLOAT))
            if t is None:
                continue
            net, reason = parse_network(t)
            if net is None:
                self.problem(path, item, f"invalid CIDR {t!r} in group {label!r}: {reason}")
                continue
            if self._claim(self._cidrs, net, f"CIDR {net}", gid, ok, path, item):
                cidrs.append(net)

        asns: List[int] = []
        for item in self.seq(path, values["asns"], "asns", label) if "asns" in values else []:
            if self.is_null(item):
                self.problem(path, item, f"empty entry in 'asns' of group {label!r}")
                continue
            t = self.text(path, item, "'asns' entries must be AS numbers like 45102 or AS45102",
                          (TAG_STR, TAG_INT))
            if t is None:
                continue
            try:
                if not re.match(r"(?:as)?\d+(?:\.\d+)?\Z", t, re.IGNORECASE):
                    raise ValueError(t)
                a = parse_asn(t)
            except ValueError:
                self.problem(path, item, f"invalid AS number {t!r} in group {label!r} "
                                         f"(must be AS1..AS4294967295)")
                continue
            if self._claim(self._asns, a, f"AS{a}", gid, ok, path, item):
                asns.append(a)

        cert_lists: Dict[str, List[str]] = {"cert_issuers": [], "cert_subjects": []}
        for key, out in cert_lists.items():
            for item in self.seq(path, values[key], key, label) if key in values else []:
                if self.is_null(item):
                    self.problem(path, item, f"empty entry in '{key}' of group {label!r}")
                    continue
                t = self.text(path, item, f"'{key}' entries must be certificate name patterns")
                if t is None:
                    continue
                if "=" not in t or t.strip("*?,= ") == "":
                    self.problem(path, item, f"invalid certificate name pattern {t!r} in '{key}' of group "
                                             f"{label!r}: use an RFC 4514 name with * wildcards, like "
                                             f"'CN=Example Issuing CA*,O=Example,C=US'")
                    continue
                if self._claim(self._cert_patterns, (key, t.lower()), f"certificate pattern {t!r} in '{key}'",
                               gid, ok, path, item):
                    out.append(t)

        references: List[str] = []
        for item in self.seq(path, values["references"], "references", label) \
                if "references" in values else []:
            t = self.text(path, item, "'references' entries must be URLs")
            if t is None:
                continue
            if not _URL_RE.match(t):
                self.problem(path, item, f"invalid reference {t!r}: must be an http(s) URL")
                continue
            references.append(t)

        notes = None
        if "notes" in values:
            notes = self.text(path, values["notes"], "'notes' must be a string")

        if not (domains or cidrs or asns or cert_lists["cert_issuers"] or cert_lists["cert_subjects"]) \
                and len(self.problems) == n_before_lists:
            self.problem(path, node, f"group {label!r} has no domains, cidrs, asns, cert_issuers or cert_subjects")

        if ok and category is not None and len(self.problems) == n_problems:
            self.groups.append(Group(
                id=gid, name=name, category=category, country=country,
                domains=tuple(domains), cidrs=tuple(cidrs), asns=tuple(asns),
                references=tuple(references), notes=notes,
                source=f"{path}:{node_line(node)}",
                cert_issuers=tuple(cert_lists["cert_issuers"]),
                cert_subjects=tuple(cert_lists["cert_subjects"]),
            ))


def _collect(path: Optional[Union[str, "os.PathLike[str]"]]) -> _Collector:
    col = _Collector()
    files, err = yaml_files(path if path is not None else default_groups_dir(), "group")
    if err is not None:
        col.problems.append(err)
    for f in files:
        col.file(f)
    return col


def check(path: Optional[Union[str, "os.PathLike[str]"]] = None) -> List[str]:
    """Validate a group directory (or one file): one ``file:line: message``
    line per problem across all files; an empty list when all is well."""
    return [str(p) for p in _collect(path).problems]


def load_groups(path: Optional[Union[str, "os.PathLike[str]"]] = None) -> Groups:
    """Load every ``*.yaml``/``*.yml`` group file of a directory (sorted by
    name), or one file; default :func:`default_groups_dir`. Raises the first
    problem as ConfigError (use :func:`check` to see them all)."""
    col = _collect(path)
    if col.problems:
        raise col.problems[0]
    return Groups(col.groups)


def loads_groups(text: Union[str, bytes], path: str = "<string>") -> Groups:
    """Parse one group file's YAML text; ``path`` is used in errors."""
    col = _Collector()
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    root, err = compose(raw, path)
    if err is not None:
        raise err
    if root is not None and not col.is_null(root):
        if not isinstance(root, yaml.SequenceNode):
            raise ConfigError(path, node_line(root),
                              f"a group file must be a list of groups, got {node_kind(root)}")
        for item in root.value:
            col.group(path, item)
    if col.problems:
        raise col.problems[0]
    return Groups(col.groups)
