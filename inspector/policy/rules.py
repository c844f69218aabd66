"""Policy rules: schema, loading, validation with line numbers.

Rule files are YAML under ``signatures/rules/``; each file is a list of rules
(the full schema is in ``signatures/README.md``, section *Rules*)::

    - id: 2000001                         # 1000000-1099999 default policy, 2000000-2999999 site rules
      name: crm-export-to-unlisted        # optional slug
      message: CRM export to a destination that is not allow-listed     # alert.signature
      severity: high                      # critical, high, medium, low, or 1..4 (1 = critical)
      category: Customer data exfiltration                              # alert.category (default "Policy violation")
      references: [https://attack.mitre.org/techniques/T1567/]
      match:                              # every key given must hold
        direction: [outbound, inbound]
        destination: {allowed: false, category: [foreign-cloud]}
        data: [customer]
        any: [{destination: {known: false}}, {destination: {category: foreign-cloud}}]
        not: {destination: {category: [software-update]}}
      threshold: {records.customer: 1}   # per flow: metric -> minimum, or {min, max}
      aggregate:                          # optional: over flows in a time window
        window: 6h
        group_by: [src_host, dst_org]
        threshold: {flows: 5, bytes_out: 32KB}
      detector: dns_tunnel                # optional, instead of aggregate: a built-in detector
      params: {min_unique_subdomains: 30} # the detector's parameters

:func:`check` returns one ``file:line: message`` line per problem across all
files; :func:`load_rules` raises the first as :class:`~inspector.errors.ConfigError`.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from ..content import classes as data_classes
from ..enrich.groups import CATEGORIES
from ..errors import ConfigError
from ..severity import SEVERITIES, SEVERITY_NAMES, parse_severity  # the one scale (re-exported)
from ..site import normalize_domain, parse_asn, parse_network
from ..yamlconf import (SCALAR_TEXT, TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_STR, compose, is_null, node_kind, node_line,
                        yaml_files, yaml_int)
from . import detectors as _detectors
from .view import (AGGREGATE_METRICS, BYTE_METRICS, CLASS_ALIASES, class_alias, FLOW_METRICS, GROUP_KEYS, TIME_METRICS,
                   metric_value)

__all__ = ["SEVERITIES", "SEVERITY_NAMES", "ID_RANGES", "Rule", "Match", "DestinationMatch", "Aggregate",
           "load_rules", "loads_rules", "check_rules", "parse_severity", "parse_size", "parse_duration",
           "default_rules_dir", "RULE_KEYS", "MATCH_KEYS", "DESTINATION_KEYS", "DIRECTIONS"]

#: Documented signature id ranges.
ID_RANGES: Dict[str, Tuple[int, int]] = {
    "default policy (signatures/rules/default*.yaml, shipped with inspector)": (1_000_000, 1_099_999),
    "site rules": (2_000_000, 2_999_999),
}

RULE_KEYS = ("id", "name", "message", "severity", "category", "references", "rev", "enabled", "match",
             "threshold", "aggregate", "detector", "params", "notes")
MATCH_KEYS = ("direction", "proto", "service", "payload_type", "data", "dst_port", "src_role", "destination",
              "facts", "any", "not")
DESTINATION_KEYS = ("allowed", "known", "group", "category", "country", "asn", "org", "name", "host")
AGGREGATE_KEYS = ("window", "group_by", "threshold")
DIRECTIONS = ("outbound", "inbound", "internal", "external")
PROTOS = ("tcp", "udp", "icmp")
DEFAULT_CATEGORY = "Policy violation"

_SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?\Z")
_COUNTRY_RE = re.compile(r"[A-Za-z]{2}\Z")
_URL_RE = re.compile(r"https?://[^\s/$.?#][^\s]*\Z", re.IGNORECASE)
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*\Z", re.IGNORECASE)
_DUR_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DUR_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def known_facts() -> Tuple[str, ...]:
    """The facts rules may match (``match: {facts: [...]}``): those the protocol modules declare
    (``FACTS``, e.g. ``tls.cert_self_signed``), sorted."""
    from ..protocols import contributions
    return tuple(sorted(contributions().facts))


def default_rules_dir() -> str:
    """``signatures/rules`` of the source tree this package sits in."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "signatures", "rules"))


# --------------------------------------------------------------------------
# value parsers (also used for detector parameters and the command line)
# --------------------------------------------------------------------------

def parse_size(value: Union[int, float, str]) -> int:
    """``4096``, ``"64KB"``, ``"1.5 MiB"``, ``"2G"`` -> bytes (K = 1024); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"invalid size {value!r}")
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"invalid size {value!r}")
    unit = (m.group(2) or "").lower()[:1]
    if unit == "b":
        unit = ""
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_duration(value: Union[int, float, str]) -> float:
    """``90`` (seconds), ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"``, ``"1h30m"`` -> seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}")
        return float(value)
    text = str(value).strip().lower().replace(" ", "")
    if not text:
        raise ValueError(f"invalid duration {value!r}")
    try:
        v = float(text)
        if v < 0:
            raise ValueError(f"invalid duration {value!r}")
        return v
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DUR_PART_RE.finditer(text):
        if m.start() != pos:
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {value!r}")
    return total


# --------------------------------------------------------------------------
# compiled rules
# --------------------------------------------------------------------------

def _compile(checks) -> Any:
    """All of ``checks`` (callables of a FlowView) as one predicate."""
    checks = tuple(checks)
    if not checks:
        return lambda fv: True
    if len(checks) == 1:
        return checks[0]

    def all_hold(fv, checks=checks):
        for c in checks:
            if not c(fv):
                return False
        return True
    return all_hold


@dataclass(frozen=True)
class DestinationMatch:
    allowed: Optional[bool] = None
    known: Optional[bool] = None
    groups: Optional[frozenset] = None
    categories: Optional[frozenset] = None
    countries: Optional[frozenset] = None
    asns: Optional[frozenset] = None
    orgs: Optional[Tuple[Any, ...]] = None        # compiled case-insensitive globs
    names: Optional[Tuple[Any, ...]] = None
    hosts: Optional[Tuple[Any, ...]] = None       # networks

    def __post_init__(self) -> None:
        c = []
        if self.allowed is not None:
            allowed = self.allowed
            c.append(lambda fv: fv.dst_allowed == allowed)
        if self.known is not None:
            known = self.known
            c.append(lambda fv: (fv.dst_group is not None) == known)
        if self.groups is not None:
            groups = self.groups
            c.append(lambda fv: fv.dst_group in groups)
        if self.categories is not None:
            cats = self.categories
            c.append(lambda fv: fv.dst_category in cats)
        if self.countries is not None:
            countries = self.countries
            c.append(lambda fv: (fv.dst_country or "").upper() in countries)
        if self.asns is not None:
            asns = self.asns
            c.append(lambda fv: fv.dst_asn in asns)
        if self.orgs is not None:
            orgs = self.orgs
            c.append(lambda fv: any(p.match(fv.dst_org or "") for p in orgs))
        if self.names is not None:
            names = self.names
            c.append(lambda fv: any(p.match((fv.dst_name or "").lower().rstrip(".")) for p in names))
        if self.hosts is not None:
            hosts = self.hosts

            def in_hosts(fv, hosts=hosts):
                import ipaddress
                try:
                    addr = ipaddress.ip_address(fv.dst)
                except (TypeError, ValueError):
                    return False
                return any(addr.version == n.version and addr in n for n in hosts)
            c.append(in_hosts)
        object.__setattr__(self, "matches", _compile(c))

    def matches(self, fv) -> bool:            # replaced per instance by the compiled predicate
        raise NotImplementedError


@dataclass(frozen=True)
class Match:
    directions: Optional[frozenset] = None
    protos: Optional[frozenset] = None
    services: Optional[frozenset] = None
    payload_types: Optional[frozenset] = None
    data: Optional[Tuple[str, ...]] = None           # expanded classes: at least one present
    dst_ports: Optional[frozenset] = None
    src_roles: Optional[frozenset] = None
    destination: Optional[DestinationMatch] = None
    facts: Optional[frozenset] = None                 # at least one of these facts holds
    any: Tuple["Match", ...] = ()
    not_: Optional["Match"] = None

    def __post_init__(self) -> None:
        c = []
        if self.directions is not None:
            directions = self.directions
            c.append(lambda fv: fv.direction in directions)
        if self.protos is not None:
            protos = self.protos
            c.append(lambda fv: fv.proto in protos)
        if self.services is not None:
            services = self.services
            c.append(lambda fv: not services.isdisjoint(fv.services))
        if self.payload_types is not None:
            pts = self.payload_types
            c.append(lambda fv: not pts.isdisjoint(fv.payload_types))
        if self.data is not None:
            classes = frozenset(self.data)
            c.append(lambda fv: any(v and k in classes for k, v in fv.data.items()) if fv.data else False)
        if self.dst_ports is not None:
            ports = self.dst_ports
            c.append(lambda fv: fv.dst_port in ports)
        if self.src_roles is not None:
            roles = self.src_roles
            c.append(lambda fv: fv.src_role in roles)
        if self.destination is not None:
            c.append(self.destination.matches)
        if self.facts is not None:
            facts = self.facts
            c.append(lambda fv: not facts.isdisjoint(fv.facts))
        if self.any:
            subs = tuple(m.matches for m in self.any)
            c.append(lambda fv: any(m(fv) for m in subs))
        if self.not_ is not None:
            neg = self.not_.matches
            c.append(lambda fv: not neg(fv))
        object.__setattr__(self, "matches", _compile(c))

    def matches(self, fv) -> bool:            # replaced per instance by the compiled predicate
        raise NotImplementedError

    @property
    def empty(self) -> bool:
        return self == Match()


@dataclass(frozen=True)
class Aggregate:
    window: float
    group_by: Tuple[str, ...]
    threshold: Dict[str, Tuple[Optional[float], Optional[float]]]


@dataclass(frozen=True)
class Rule:
    """One loaded rule. ``source`` is ``"file:line"``."""

    id: int
    message: str
    severity: int
    category: str = DEFAULT_CATEGORY
    name: Optional[str] = None
    rev: int = 1
    enabled: bool = True
    references: Tuple[str, ...] = ()
    match: Match = field(default_factory=Match)
    threshold: Dict[str, Tuple[Optional[float], Optional[float]]] = field(default_factory=dict)
    aggregate: Optional[Aggregate] = None
    detector: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)
    notes: Optional[str] = None
    source: Optional[str] = None

    @property
    def severity_name(self) -> str:
        return SEVERITY_NAMES.get(self.severity, str(self.severity))

    @property
    def kind(self) -> str:
        """``flow`` (fires per flow), ``aggregate`` or ``detector``."""
        return "detector" if self.detector else "aggregate" if self.aggregate else "flow"

    @property
    def data_classes(self) -> Optional[Tuple[str, ...]]:
        return self.match.data

    def flow_ok(self, fv) -> bool:
        """The flow meets the rule's ``match`` and its per-flow ``threshold``."""
        if not self.match.matches(fv):
            return False
        if not self.threshold:
            return True
        return thresholds_met(self.threshold, lambda m: metric_value(fv, m, self.match.data))


def thresholds_met(threshold: dict, value) -> bool:
    for metric, (lo, hi) in threshold.items():
        v = value(metric)
        if lo is not None and v < lo:
            return False
        if hi is not None and v > hi:
            return False
    return True


# --------------------------------------------------------------------------
# the collector: parses rule files, collecting every problem
# --------------------------------------------------------------------------

def _hint(word: str, choices: Sequence[str]) -> str:
    h = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {h[0]!r}?)" if h else "; expected one of: " + ", ".join(choices)


def _glob(pattern: str):
    return re.compile(fnmatch.translate(pattern.lower()), re.IGNORECASE | re.DOTALL)


class _Collector:
    def __init__(self) -> None:
        self.problems: List[ConfigError] = []
        self.rules: List[Rule] = []
        self._ids: Dict[int, Tuple[str, int]] = {}
        self.path = "<string>"

    # ---- helpers ----------------------------------------------------------
    def problem(self, node: Optional[yaml.Node], message: str) -> None:
        self.problems.append(ConfigError(self.path, node_line(node), message))

    @staticmethod
    def is_null(node: Optional[yaml.Node]) -> bool:
        return node is None or is_null(node)

    def mapping(self, node: yaml.Node, what: str,
                keys: Sequence[str]) -> Optional[Dict[str, Tuple[yaml.Node, yaml.Node]]]:
        """key -> (key node, value node) of a mapping; unknown and duplicate keys are problems."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping, got {node_kind(node)}")
            return None
        out: Dict[str, Tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if not (isinstance(knode, yaml.ScalarNode) and knode.tag in SCALAR_TEXT):
                self.problem(knode, f"keys of {what} must be strings, got {node_kind(knode)}")
                continue
            key = knode.value
            if key in out:
                self.problem(knode, f"duplicate key {key!r} in {what} (first defined on line {node_line(out[key][0])})")
                continue
            if keys and key not in keys:
                self.problem(knode, f"unknown key {key!r} in {what}{_hint(key, keys)}")
                continue
            out[key] = (knode, vnode)
        return out

    def text(self, node: yaml.Node, what: str, tags=(TAG_STR,)) -> Optional[str]:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
            self.problem(node, f"{what}, got {node_kind(node)}")
            return None
        return node.value.strip()

    def items(self, node: yaml.Node) -> List[yaml.Node]:
        """A list's items; a single scalar is a one-item list."""
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return [node]

    def words(self, node: yaml.Node, what: str, tags=SCALAR_TEXT) -> List[Tuple[yaml.Node, str]]:
        out = []
        items = self.items(node)
        if isinstance(node, yaml.SequenceNode) and not items:
            self.problem(node, f"{what}: empty list")
        for item in items:
            if self.is_null(item):
                self.problem(item, f"empty entry in {what}")
                continue
            t = self.text(item, f"{what} entries must be strings", tags)
            if t is None:
                continue
            if not t:
                self.problem(item, f"empty entry in {what}")
                continue
            out.append((item, t))
        return out

    def boolean(self, node: yaml.Node, what: str) -> Optional[bool]:
        if isinstance(node, yaml.ScalarNode) and node.tag == TAG_BOOL:
            return node.value.lower() in ("true", "yes", "on", "y")
        self.problem(node, f"{what} must be true or false, got {node_kind(node)}")
        return None

    def number(self, node: yaml.Node, what: str, integer: bool = False) -> Optional[float]:
        tags = (TAG_INT,) if integer else (TAG_INT, TAG_FLOAT)
        if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
            self.problem(node, f"{what} must be {'an integer' if integer else 'a number'}, got {node_kind(node)}")
            return None
        try:
            v = yaml.safe_load(node.value) if node.tag == TAG_FLOAT else yaml_int(node.value)
        except (ValueError, yaml.YAMLError):
            self.problem(node, f"{what}: invalid number {node.value!r}")
            return None
        return v

    # ---- files ------------------------------------------------------------
    def file(self, path: str) -> None:
        self.path = path
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            self.problems.append(ConfigError(path, None, f"cannot read rule file: {exc.strerror or exc}"))
            return
        self.text_file(raw, path)

    def text_file(self, raw: bytes, path: str) -> None:
        self.path = path
        root, err = compose(raw, path)
        if err is not None:
            self.problems.append(err)
            return
        if self.is_null(root):
            return
        if not isinstance(root, yaml.SequenceNode):
            self.problem(root, f"a rule file must be a list of rules, got {node_kind(root)}")
            return
        for item in root.value:
            self.rule(item)

    # ---- one rule ---------------------------------------------------------
    def rule(self, node: yaml.Node) -> None:
        n0 = len(self.problems)
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"each rule must be a mapping, got {node_kind(node)}")
            return
        m = self.mapping(node, "a rule", RULE_KEYS)
        if m is None:
            return
        v = {k: vn for k, (kn, vn) in m.items() if not self.is_null(vn)}

        rid = None
        if "id" not in v:
            self.problem(node, "rule without an 'id'")
        else:
            n = v["id"]
            if not (isinstance(n, yaml.ScalarNode) and n.tag == TAG_INT):
                self.problem(n, f"'id' must be an integer signature id, got {node_kind(n)}")
            else:
                try:
                    rid = yaml_int(n.value)
                except ValueError:
                    rid = -1                    # reported as out of range below
                if not any(lo <= rid <= hi for lo, hi in ID_RANGES.values()):
                    self.problem(n, f"id {rid} is out of range: use 2000000-2999999 for site rules "
                                    f"(1000000-1099999 is the default policy)")
                    rid = None
                else:
                    first = self._ids.get(rid)
                    if first is not None:
                        where = f"line {first[1]}" if first[0] == self.path else f"{first[0]}:{first[1]}"
                        self.problem(n, f"duplicate rule id {rid} (first defined at {where})")
                        rid = None
                    else:
                        self._ids[rid] = (self.path, node_line(n))
        label = f"rule {rid}" if rid is not None else f"the rule at line {node_line(node)}"

        message = None
        if "message" not in v:
            self.problem(node, f"{label} has no 'message' (the alert's signature text)")
        else:
            message = self.text(v["message"], "'message' must be a string")
            if message == "":
                self.problem(v["message"], "'message' must not be empty")
                message = None

        severity = None
        if "severity" not in v:
            self.problem(node, f"{label} has no 'severity'; use one of: critical, high, medium, low (or 1-4)")
        else:
            sn = v["severity"]
            if isinstance(sn, yaml.ScalarNode) and sn.tag in (TAG_STR, TAG_INT):
                try:
                    severity = parse_severity(int(sn.value) if sn.tag == TAG_INT else sn.value)
                except ValueError:
                    self.problem(sn, f"invalid severity {sn.value!r}: use critical, high, medium, low "
                                     f"(or 1-4, 1 = critical)")
            else:
                self.problem(sn, f"'severity' must be a name or 1-4, got {node_kind(sn)}")

        category = DEFAULT_CATEGORY
        if "category" in v:
            c = self.text(v["category"], "'category' must be a string")
            if c == "":
                self.problem(v["category"], "'category' must not be empty")
            elif c is not None:
                category = c

        name = None
        if "name" in v:
            t = self.text(v["name"], "'name' must be a string")
            if t is not None:
                if _SLUG_RE.match(t):
                    name = t
                else:
                    self.problem(v["name"], f"invalid rule name {t!r}: use lower-case letters, digits, '.', "
                                            "'_' and '-'")

        rev = 1
        if "rev" in v:
            r = self.number(v["rev"], "'rev'", integer=True)
            if r is not None:
                if r < 1:
                    self.problem(v["rev"], "'rev' must be 1 or more")
                else:
                    rev = int(r)

        enabled = True
        if "enabled" in v:
            b = self.boolean(v["enabled"], "'enabled'")
            if b is not None:
                enabled = b

        references: List[str] = []
        if "references" in v:
            for item, t in self.words(v["references"], "'references'", (TAG_STR,)):
                if _URL_RE.match(t):
                    references.append(t)
                else:
                    self.problem(item, f"invalid reference {t!r}: must be an http(s) URL")

        notes = None
        if "notes" in v:
            notes = self.text(v["notes"], "'notes' must be a string")

        match = Match()
        if "match" in v:
            match = self.match(v["match"], "'match'", top=True) or Match()

        threshold: dict = {}
        if "threshold" in v:
            threshold = self.threshold(v["threshold"], "'threshold'", aggregate=False)

        aggregate = None
        if "aggregate" in v:
            aggregate = self.aggregate(v["aggregate"])

        detector = None
        params: Dict[str, Any] = {}
        if "detector" in v:
            d = self.text(v["detector"], "'detector' must be a detector name")
            if d is not None:
                if d in _detectors.DETECTORS:
                    detector = d
                else:
                    self.problem(v["detector"], f"unknown detector {d!r}{_hint(d, sorted(_detectors.DETECTORS))}")
        if "params" in v:
            if "detector" not in v:
                self.problem(m["params"][0], "'params' without a 'detector' (params configure a detector)")
            elif detector is not None:
                params = self.params(v["params"], detector)
        if detector is not None and "aggregate" in v:
            self.problem(m["aggregate"][0], f"{label}: a detector rule has its own window and grouping; "
                                            "set them in 'params', not in 'aggregate'")
        if ("detector" not in v and "aggregate" not in v and not threshold and match.empty
                and len(self.problems) == n0):
            self.problem(node, f"{label} has no 'match', 'threshold', 'aggregate' or 'detector': "
                               "it would fire on every flow")

        if len(self.problems) == n0 and rid is not None and message is not None and severity is not None:
            self.rules.append(Rule(
                id=rid, message=message, severity=severity, category=category, name=name, rev=rev,
                enabled=enabled, references=tuple(references), match=match, threshold=threshold,
                aggregate=aggregate, detector=detector, params=params, notes=notes,
                source=f"{self.path}:{node_line(node)}"))

    # ---- match ------------------------------------------------------------
    def choices(self, node: yaml.Node, what: str, allowed: Sequence[str], lower: bool = True) -> Optional[frozenset]:
        out = set()
        ok = True
        for item, t in self.words(node, what):
            t2 = t.lower() if lower else t
            if t2 not in allowed:
                self.problem(item, f"unknown {what.strip(chr(39))} {t!r}{_hint(t2, allowed)}")
                ok = False
                continue
            out.add(t2)
        return frozenset(out) if ok and out else None

    def match(self, node: yaml.Node, what: str, top: bool = False) -> Optional[Match]:
        m = self.mapping(node, what, MATCH_KEYS)
        if m is None:
            return None
        v = {k: vn for k, (kn, vn) in m.items()}
        kw: Dict[str, Any] = {}
        for key, vn in v.items():
            if self.is_null(vn):
                self.problem(vn if vn is not None else m[key][0], f"{what}: '{key}' has no value")
                continue
            if key == "direction":
                kw["directions"] = self.choices(vn, "direction", DIRECTIONS)
            elif key == "proto":
                kw["protos"] = self.choices(vn, "proto", PROTOS)
            elif key == "service":
                kw["services"] = frozenset(t.lower() for _n, t in self.words(vn, "'service'")) or None
            elif key == "payload_type":
                from ..content import PAYLOAD_TYPES
                kw["payload_types"] = self.choices(vn, "payload type", PAYLOAD_TYPES)
            elif key == "data":
                classes: List[str] = []
                for item, t in self.words(vn, "'data'"):
                    if t in CLASS_ALIASES:
                        classes.extend(c for c in class_alias(t) if c not in classes)
                    elif data_classes.get(t) is not None:
                        if t not in classes:
                            classes.append(t)
                    else:
                        choices = list(data_classes.names()) + list(CLASS_ALIASES)
                        self.problem(item, f"unknown data class {t!r}{_hint(t, choices)}")
                kw["data"] = tuple(classes) or None
            elif key == "dst_port":
                ports = set()
                for item in self.items(vn):
                    p = self.number(item, "'dst_port' entries", integer=True)
                    if p is not None:
                        if 0 <= p <= 65535:
                            ports.add(int(p))
                        else:
                            self.problem(item, f"invalid port {p}: must be 0-65535")
                kw["dst_ports"] = frozenset(ports) or None
            elif key == "src_role":
                kw["src_roles"] = frozenset(t for _n, t in self.words(vn, "'src_role'")) or None
            elif key == "destination":
                kw["destination"] = self.destination(vn)
            elif key == "facts":
                kw["facts"] = self.choices(vn, "fact", known_facts(), lower=False)
            elif key == "any":
                if not isinstance(vn, yaml.SequenceNode) or not vn.value:
                    self.problem(vn, f"'any' must be a non-empty list of match blocks, got {node_kind(vn)}")
                    continue
                subs = [self.match(item, "an 'any' entry") for item in vn.value]
                kw["any"] = tuple(s for s in subs if s is not None)
            elif key == "not":
                kw["not_"] = self.match(vn, "'not'")
        return Match(**{k: val for k, val in kw.items() if val is not None})

    def destination(self, node: yaml.Node) -> Optional[DestinationMatch]:
        m = self.mapping(node, "'destination'", DESTINATION_KEYS)
        if m is None:
            return None
        kw: Dict[str, Any] = {}
        for key, (kn, vn) in m.items():
            if self.is_null(vn):
                self.problem(kn, f"'destination': '{key}' has no value")
                continue
            if key in ("allowed", "known"):
                kw[key] = self.boolean(vn, f"'destination.{key}'")
            elif key == "group":
                kw["groups"] = frozenset(t for _n, t in self.words(vn, "'destination.group'")) or None
            elif key == "category":
                kw["categories"] = self.choices(vn, "category", tuple(CATEGORIES))
            elif key == "country":
                out = set()
                # YAML 1.1 reads NO (Norway) as a boolean: take the raw text of booleans too
                for item, t in self.words(vn, "'destination.country'", SCALAR_TEXT + (TAG_BOOL,)):
                    if _COUNTRY_RE.match(t):
                        out.add(t.upper())
                    else:
                        self.problem(item, f"invalid country {t!r}: use a two-letter ISO 3166-1 code like 'CN'")
                kw["countries"] = frozenset(out) or None
            elif key == "asn":
                out = set()
                for item, t in self.words(vn, "'destination.asn'", (TAG_STR, TAG_INT)):
                    try:
                        if not re.match(r"(?:as)?\d+(?:\.\d+)?\Z", t, re.IGNORECASE):
                            raise ValueError(t)
                        out.add(parse_asn(t))
                    except ValueError:
                        self.problem(item, f"invalid AS number {t!r} (must be AS1..AS4294967295)")
                kw["asns"] = frozenset(out) or None
            elif key == "org":
                kw["orgs"] = tuple(_glob(t) for _n, t in self.words(vn, "'destination.org'")) or None
            elif key == "name":
                pats = []
                for item, t in self.words(vn, "'destination.name'"):
                    plain = t.replace("*", "a").replace("?", "a")
                    try:
                        normalize_domain(plain)
                    except ValueError:
                        self.problem(item, f"invalid name pattern {t!r}: use a host name with * and ? "
                                           "wildcards, like '*.aliyuncs.com'")
                        continue
                    pats.append(_glob(t.rstrip(".")))
                kw["names"] = tuple(pats) or None
            elif key == "host":
                nets = []
                for item, t in self.words(vn, "'destination.host'"):
                    net, reason = parse_network(t)
                    if net is None:
                        self.problem(item, f"invalid CIDR {t!r} in 'destination.host': {reason}")
                    else:
                        nets.append(net)
                kw["hosts"] = tuple(nets) or None
        return DestinationMatch(**{k: val for k, val in kw.items() if val is not None})

    # ---- thresholds, aggregates, params -----------------------------------
    def metric_value(self, node: yaml.Node, metric: str) -> Optional[float]:
        """A threshold bound: bytes for byte metrics, seconds for time metrics, a number otherwise."""
        if not isinstance(node, yaml.ScalarNode) or node.tag not in SCALAR_TEXT:
            self.problem(node, f"threshold of {metric!r} must be a number, got {node_kind(node)}")
            return None
        raw: Any = node.value
        if node.tag == TAG_INT:
            try:
                raw = yaml_int(raw)
            except ValueError:
                self.problem(node, f"threshold of {metric!r}: invalid number {node.value!r}")
                return None
        elif node.tag == TAG_FLOAT:
            try:
                raw = float(raw)
            except ValueError:
                self.problem(node, f"threshold of {metric!r}: invalid number {node.value!r}")
                return None
        try:
            if metric in BYTE_METRICS:
                return float(parse_size(raw))
            if metric in TIME_METRICS:
                return parse_duration(raw)
            if isinstance(raw, str):
                raise ValueError(raw)
            if raw < 0:
                raise ValueError(raw)
            return float(raw)
        except ValueError:
            if metric in BYTE_METRICS:
                self.problem(node, f"invalid size {node.value!r} for {metric!r}: use a number of bytes or "
                                   "a size like 64KB, 10MB (K = 1024)")
            elif metric in TIME_METRICS:
                self.problem(node, f"invalid duration {node.value!r} for {metric!r}: use seconds or a "
                                   "duration like 90s, 15m, 6h, 1d")
            else:
                self.problem(node, f"threshold of {metric!r} must be a non-negative number, "
                                   f"got {node.value!r}")
            return None

    def threshold(self, node: yaml.Node, what: str, aggregate: bool) -> dict:
        m = self.mapping(node, what, ())
        if m is None:
            return {}
        names = list(FLOW_METRICS) + (list(AGGREGATE_METRICS) if aggregate else [])
        out = {}
        for metric, (kn, vn) in m.items():
            if not self.known_metric(metric):
                if metric in AGGREGATE_METRICS:
                    self.problem(kn, f"metric {metric!r} exists only over several flows: put it in "
                                     "'aggregate.threshold'")
                else:
                    self.problem(kn, f"unknown metric {metric!r} in {what}{_hint(metric, names)} "
                                     "(or data.<class>, records.customer, records.shipment)")
                continue
            if metric in AGGREGATE_METRICS and not aggregate:
                self.problem(kn, f"metric {metric!r} exists only over several flows: put it in "
                                 "'aggregate.threshold'")
                continue
            if self.is_null(vn):
                self.problem(kn, f"threshold of {metric!r} has no value")
                continue
            lo = hi = None
            if isinstance(vn, yaml.MappingNode):
                mm = self.mapping(vn, f"the threshold of {metric!r}", ("min", "max"))
                if mm is None:
                    continue
                if not mm:
                    self.problem(vn, f"threshold of {metric!r}: give 'min', 'max' or both")
                    continue
                if "min" in mm:
                    lo = self.metric_value(mm["min"][1], metric)
                if "max" in mm:
                    hi = self.metric_value(mm["max"][1], metric)
                if lo is not None and hi is not None and lo > hi:
                    self.problem(vn, f"threshold of {metric!r}: min is greater than max")
                    continue
                if ("min" in mm and lo is None) or ("max" in mm and hi is None):
                    continue
            else:
                lo = self.metric_value(vn, metric)
                if lo is None:
                    continue
            out[metric] = (lo, hi)
        return out

    @staticmethod
    def known_metric(metric: str) -> bool:
        if metric in FLOW_METRICS or metric in AGGREGATE_METRICS:
            return True
        if metric in ("records.customer", "records.shipment"):
            return True
        if metric.startswith("data."):
            name = metric[5:]
            return data_classes.get(name) is not None or name in CLASS_ALIASES
        return False

    def group_by(self, node: yaml.Node, what: str) -> Optional[Tuple[str, ...]]:
        keys: List[str] = []
        ok = True
        for item, t in self.words(node, what):
            if t not in GROUP_KEYS:
                self.problem(item, f"unknown group_by key {t!r}{_hint(t, list(GROUP_KEYS))}")
                ok = False
            elif t in keys:
                self.problem(item, f"group_by key {t!r} listed twice")
                ok = False
            else:
                keys.append(t)
        return tuple(keys) if ok and keys else None

    def aggregate(self, node: yaml.Node) -> Optional[Aggregate]:
        m = self.mapping(node, "'aggregate'", AGGREGATE_KEYS)
        if m is None:
            return None
        n0 = len(self.problems)
        window = None
        if "window" not in m or self.is_null(m["window"][1]):
            self.problem(node, "'aggregate' needs a 'window' (like 1h)")
        else:
            window = self.duration(m["window"][1], "'aggregate.window'")
        group_by: Tuple[str, ...] = ()
        if "group_by" in m and not self.is_null(m["group_by"][1]):
            group_by = self.group_by(m["group_by"][1], "'aggregate.group_by'") or ()
        threshold: dict = {}
        if "threshold" not in m or self.is_null(m["threshold"][1]):
            self.problem(node, "'aggregate' needs a 'threshold' (like {flows: 10})")
        else:
            threshold = self.threshold(m["threshold"][1], "'aggregate.threshold'", aggregate=True)
            if not threshold and len(self.problems) == n0:
                self.problem(m["threshold"][1], "'aggregate.threshold' is empty")
        if len(self.problems) != n0 or window is None:
            return None
        return Aggregate(window=window, group_by=group_by, threshold=threshold)

    def duration(self, node: yaml.Node, what: str) -> Optional[float]:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in SCALAR_TEXT:
            self.problem(node, f"{what} must be a duration like 90s, 15m, 6h, got {node_kind(node)}")
            return None
        try:
            raw: Any = float(node.value) if node.tag in (TAG_INT, TAG_FLOAT) else node.value
            d = parse_duration(raw)
        except ValueError:
            self.problem(node, f"invalid duration {node.value!r} for {what}: use seconds or a duration like "
                               "90s, 15m, 6h, 1d")
            return None
        if d <= 0:
            self.problem(node, f"{what} must be longer than 0 seconds")
            return None
        return d

    def weights(self, node: yaml.Node, what: str, names: Sequence[str]) -> Optional[Dict[str, float]]:
        """A detector's score weights: ``{sub-score: weight}``, each a number >= 0, not all 0; sub-scores
        left out keep their default weight."""
        m = self.mapping(node, what, names)
        if m is None:
            return None
        out: Dict[str, float] = {}
        for name, (_kn, vn) in m.items():
            v = self.number(vn, f"weight {name!r} of {what}")
            if v is None:
                continue
            if v < 0:
                self.problem(vn, f"weight {name!r} of {what} must not be negative")
                continue
            out[name] = float(v)
        if out and not any(out.values()) and len(out) == len(names):
            self.problem(node, f"the weights of {what} are all 0: nothing would be scored")
            return None
        return out

    def params(self, node: yaml.Node, detector: str) -> Dict[str, Any]:
        spec = _detectors.DETECTORS[detector].PARAMS
        m = self.mapping(node, f"the params of detector {detector}", tuple(spec))
        if m is None:
            return {}
        out: Dict[str, Any] = {}
        for key, (kn, vn) in m.items():
            kind = spec[key][0]
            what = f"parameter {key!r} of detector {detector}"
            if self.is_null(vn):
                self.problem(kn, f"{what} has no value")
                continue
            if kind == "int":
                val = self.number(vn, what, integer=True)
                if val is not None and val < 0:
                    self.problem(vn, f"{what} must not be negative")
                    val = None
            elif kind == "float":
                val = self.number(vn, what)
                if val is not None and val < 0:
                    self.problem(vn, f"{what} must not be negative")
                    val = None
            elif kind == "bytes":
                val = self.metric_value(vn, "bytes_out")
            elif kind == "duration":
                val = self.duration(vn, what)
            elif kind == "bool":
                val = self.boolean(vn, what)
            elif kind == "domains":
                doms = []
                for item, t in self.words(vn, what):
                    try:
                        doms.append(normalize_domain(t))
                    except ValueError:
                        self.problem(item, f"invalid domain {t!r} in {what}")
                val = tuple(doms)
            elif kind == "group_by":
                val = self.group_by(vn, what)
            elif kind == "weights":
                val = self.weights(vn, what, tuple(spec[key][1]))
            else:                                   # pragma: no cover - a detector declared a bad kind
                raise AssertionError(kind)
            if val is not None:
                out[key] = val
        return out


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------

def rules_path(path: Optional[Union[str, "os.PathLike[str]"]]) -> str:
    """A rules directory or file: ``path`` itself, or ``path/rules`` when ``path`` is a signatures
    directory (one with a ``rules`` or ``destinations`` sub-directory); default :func:`default_rules_dir`."""
    if path is None:
        return default_rules_dir()
    p = os.fspath(path)
    if os.path.isdir(os.path.join(p, "rules")) or os.path.isdir(os.path.join(p, "destinations")):
        return os.path.join(p, "rules")
    return p


def _collect(path) -> _Collector:
    col = _Collector()
    files, err = yaml_files(rules_path(path), "rule")
    if err is not None:
        col.problems.append(err)
    for f in files:
        col.file(f)
    return col


def check_rules(path: Optional[Union[str, "os.PathLike[str]"]] = None) -> List[str]:
    """Validate rule files: one ``file:line: message`` line per problem (empty when all is well)."""
    return [str(p) for p in _collect(path).problems]


def load_rules(path: Optional[Union[str, "os.PathLike[str]"]] = None) -> List[Rule]:
    """Load every ``*.yaml``/``*.yml`` rule file of a directory (sorted by name), or one file.

    ``path`` may be a rules directory, one rule file, or a signatures directory (its ``rules/`` is
    read); default: the shipped ``signatures/rules``.  Raises the first problem as ConfigError
    (:func:`check_rules` lists them all).  Disabled rules (``enabled: false``) are included; the
    engine skips them.
    """
    col = _collect(path)
    if col.problems:
        raise col.problems[0]
    return col.rules


def loads_rules(text: Union[str, bytes], path: str = "<string>") -> List[Rule]:
    """Parse one rule file's YAML text; ``path`` is used in errors.  Raises the first problem."""
    col = _Collector()
    col.text_file(text.encode("utf-8") if isinstance(text, str) else bytes(text), path)
    if col.problems:
        raise col.problems[0]
    return col.rules
