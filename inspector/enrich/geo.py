"""Offline IP address -> (country, AS number, AS organisation) lookups.

Nothing here touches the network: every source is a local file.

Sources
-------
* **Bundled (default)**: the ``geoip2fast`` package ships MaxMind GeoLite2
  data converted to its own ``.dat.gz`` format; we read
  ``geoip2fast-asn-ipv6.dat.gz`` (country + AS organisation name, IPv4 and
  IPv6). That data has **no AS numbers**, only AS names, so with the bundled
  data alone ``asn`` is always None and ``org`` is the GeoLite2 AS
  organisation name (``"GOOGLE"``, ``"CLOUDFLARENET"``...).
* ``geoip_path``: a MaxMind DB (``.mmdb``: GeoLite2-Country / GeoLite2-City,
  GeoIP2, DB-IP lite, ip-location-db country mmdb) or a range CSV
  (``start,end,CC``). Replaces the bundled country data.
* ``asn_path``: a MaxMind DB with ``autonomous_system_number`` /
  ``autonomous_system_organization`` (GeoLite2-ASN, DB-IP ASN lite), or range
  CSV files ``start,end,asn,org`` (the ip-location-db ``asn-ipv4.csv`` /
  ``asn-ipv6.csv`` layout; ``.gz`` accepted; a list of paths is accepted so
  the IPv4 and IPv6 files can be given together). Replaces the bundled AS
  data (so supplies AS numbers).

Where a path is not given, that attribute comes from the bundled data, unless
``bundled=False`` (then it is None).

Semantics
---------
* ``lookup(addr) -> GeoInfo(country, asn, org)`` (a tuple). ``addr`` is a
  string, an ``ipaddress`` object or packed bytes; IPv4-mapped IPv6
  (``::ffff:a.b.c.d``) is looked up as IPv4.
* Private, loopback, link-local, CGNAT, documentation, benchmarking,
  multicast and other reserved addresses (:data:`RESERVED_NETS`) give
  ``(None, None, None)``; so do unparseable strings and addresses the data
  does not cover. No error is raised for any address.
* ``country`` is an ISO 3166-1 alpha-2 code (upper case); ``asn`` an int;
  ``org`` a string.
* Scalar results are cached (bounded; the cache is reset when full).
* Vectorised: :meth:`GeoDB.lookup_v4` takes host-order uint32 IPv4 addresses
  (as ``Site.is_local_v4`` does) and :meth:`GeoDB.lookup_many` any iterable of
  addresses; both return three object arrays (country, asn, org) with None
  for unknown.
"""

from __future__ import annotations

import bisect
from array import array
import csv
import json
import functools
import importlib.util
import gzip
import io
import itertools
import ipaddress
import os
import pickle
from typing import (Any, Dict, Iterable, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from ..errors import ConfigError
from ..site import NetSet, addr_to_int, parse_asn
from .ranges import flatten_most_specific

__all__ = ["GeoDB", "GeoInfo", "RESERVED_NETS", "BUNDLED_FILE"]

PathArg = Union[str, "os.PathLike[str]"]

BUNDLED_FILE = "geoip2fast-asn-ipv6.dat.gz"
_CACHE_MAX = 262144
_V4_MAX = 0xFFFFFFFF

RESERVED_NETS = tuple(ipaddress.ip_network(n) for n in (
    # IPv4 special-purpose (IANA registry, RFC 6890 and successors)
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24",
    "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    # IPv6 special-purpose
    "::/127", "64:ff9b:1::/48", "100::/64", "2001:2::/48", "2001:10::/28",
    "2001:20::/28", "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7",
    "fe80::/10", "ff00::/8",
))


class GeoInfo(NamedTuple):
    country: Optional[str]
    asn: Optional[int]
    org: Optional[str]


_EMPTY = GeoInfo(None, None, None)


# --------------------------------------------------------------------------
# range tables
# --------------------------------------------------------------------------

_U32 = "I" if array("I").itemsize == 4 else "L"
_I32 = "i" if array("i").itemsize == 4 else "l"


class _Ranges:
    """Sorted, disjoint, inclusive ranges -> value id (ids index a value list;
    id 0 means "no value"). Scalar lookup by bisect; IPv4 arrays by numpy.

    IPv4 tables are kept in compact ``array.array`` buffers (bisect works on
    them) with zero-copy numpy views for the vectorised path; IPv6 tables,
    whose values do not fit 64 bits, in Python lists."""

    __slots__ = ("starts", "ends", "ids", "np_starts", "np_ends", "np_ids")

    def __init__(self, starts: Sequence[int], ends: Sequence[int], ids: Sequence[int],
                 v4: bool) -> None:
        if v4:
            self.np_starts = np.ascontiguousarray(starts, dtype=np.uint32)
            self.np_ends = np.ascontiguousarray(ends, dtype=np.uint32)
            self.np_ids = np.ascontiguousarray(ids, dtype=np.int32)
            self.starts = array(_U32, self.np_starts.tobytes())
            self.ends = array(_U32, self.np_ends.tobytes())
            self.ids = array(_I32, self.np_ids.tobytes())
            # views on the compact buffers (the copies above are dropped)
            self.np_starts = np.frombuffer(self.starts, dtype=np.uint32)
            self.np_ends = np.frombuffer(self.ends, dtype=np.uint32)
            self.np_ids = np.frombuffer(self.ids, dtype=np.int32)
        else:
            self.starts = list(starts)
            self.ends = list(ends)
            self.ids = list(ids)
            self.np_starts = self.np_ends = self.np_ids = None

    @classmethod
    def build(cls, rows: Iterable[Tuple[int, int, int]], v4: bool) -> "_Ranges":
        """Ranges that may nest (a prefix and a more-specific inside it): longest-prefix match."""
        rows = flatten_most_specific(rows)
        return cls([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], v4)

    def find(self, value: int) -> int:
        i = bisect.bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return self.ids[i]
        return 0

    def find_v4(self, a: np.ndarray) -> np.ndarray:
        if self.np_starts is None or len(self.np_starts) == 0:
            return np.zeros(a.shape, dtype=np.int64)
        idx = np.searchsorted(self.np_starts, a, side="right") - 1
        ok = idx >= 0
        idx = np.where(ok, idx, 0)
        ok &= a <= self.np_ends[idx]
        return np.where(ok, self.np_ids[idx], 0)


class _RangeSource:
    """A source made of per-version range tables. ``country_values`` /
    ``asn_values`` / ``org_values`` are value lists indexed by id (index 0 is
    None); a table is None when the source lacks that attribute."""

    def __init__(self, description: str,
                 country: Optional[Tuple[_Ranges, _Ranges]] = None,
                 country_values: Optional[List[Optional[str]]] = None,
                 asn: Optional[Tuple[_Ranges, _Ranges]] = None,
                 asn_values: Optional[List[Optional[int]]] = None,
                 org_values: Optional[List[Optional[str]]] = None) -> None:
        self.description = description
        self._country = country
        self._asn = asn
        self.has_country = country is not None
        self.has_asn = asn is not None and asn_values is not None \
            and any(v is not None for v in asn_values)
        self.has_org = asn is not None and org_values is not None
        self._country_values = country_values or [None]
        self._asn_values = asn_values if asn_values is not None else [None] * len(org_values or [None])
        self._org_values = org_values if org_values is not None else [None] * len(self._asn_values)
        self._np_country = np.array(self._country_values, dtype=object)
        self._np_asn = np.array(self._asn_values, dtype=object)
        self._np_org = np.array(self._org_values, dtype=object)

    def country(self, version: int, value: int) -> Optional[str]:
        if self._country is None:
            return None
        return self._country_values[self._country[0 if version == 4 else 1].find(value)]

    def asn_org(self, version: int, value: int) -> Tuple[Optional[int], Optional[str]]:
        if self._asn is None:
            return None, None
        i = self._asn[0 if version == 4 else 1].find(value)
        return self._asn_values[i], self._org_values[i]

    def country_v4(self, a: np.ndarray) -> np.ndarray:
        if self._country is None:
            return np.full(a.shape, None, dtype=object)
        return self._np_country[self._country[0].find_v4(a)]

    def asn_org_v4(self, a: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        if self._asn is None:
            none = np.full(a.shape, None, dtype=object)
            return none, none.copy()
        ids = self._asn[0].find_v4(a)
        return self._np_asn[ids], self._np_org[ids]


class _MMDBSource:
    """A MaxMind DB file read with the ``maxminddb`` package."""

    def __init__(self, path: str) -> None:
        try:
            import maxminddb
        except ImportError:
            raise ConfigError(path, None, "reading .mmdb files needs the 'maxminddb' "
                                          "package (pip install maxminddb)") from None
        try:
            self._reader = maxminddb.open_database(path)
        except OSError as exc:
            raise ConfigError(path, None, f"cannot read GeoIP database: "
                                          f"{exc.strerror or exc}") from None
        except Exception as exc:            # maxminddb.InvalidDatabaseError, ValueError
            raise ConfigError(path, None, f"not a valid MaxMind DB file: {exc}") from None
        meta = self._reader.metadata()
        self.ip_version = meta.ip_version
        self.description = (f"{os.path.basename(path)} ({meta.database_type}, built "
                            f"{_epoch_date(meta.build_epoch)})")
        self.has_country = self.has_asn = self.has_org = True

    def _get(self, version: int, value: int) -> Optional[Dict[str, Any]]:
        if version == 6 and self.ip_version == 4:
            return None
        addr = ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value)
        try:
            rec = self._reader.get(addr)
        except ValueError:
            return None
        return rec if isinstance(rec, dict) else None

    def country(self, version: int, value: int) -> Optional[str]:
        rec = self._get(version, value)
        if not rec:
            return None
        for key in ("country", "registered_country"):
            sub = rec.get(key)
            if isinstance(sub, dict) and sub.get("iso_code"):
                return str(sub["iso_code"]).upper()
        code = rec.get("country_code")
        return str(code).upper() if code else None

    def asn_org(self, version: int, value: int) -> Tuple[Optional[int], Optional[str]]:
        rec = self._get(version, value)
        if not rec:
            return None, None
        asn = rec.get("autonomous_system_number", rec.get("asn"))
        try:
            asn = parse_asn(asn) if asn not in (None, "", 0) else None
        except ValueError:
            asn = None
        org = (rec.get("autonomous_system_organization") or rec.get("as_name")
               or rec.get("organization") or None)
        return asn, (str(org) if org else None)

    def close(self) -> None:
        self._reader.close()


def _epoch_date(epoch: int) -> str:
    import datetime
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------

def _load_geoip2fast(path: str, description: Optional[str] = None) -> _RangeSource:
    """Read the geoip2fast package's ``.dat.gz`` (format version 120, country
    variants) directly into range tables (the package's own lookup keeps its
    tables in module globals, does not fold IPv4-mapped IPv6 and, in files
    with IPv6, does not check the end of IPv4 AS ranges)."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            # The geoip2fast package's own data file: a pickle, trusted like
            # the package's code (user-supplied .dat paths are refused).
            version, source_info, _total, db = pickle.load(fh)
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read GeoIP database: {exc.strerror or exc}") from None
    except Exception as exc:
        raise ConfigError(path, None, f"not a geoip2fast data file: {exc}") from None
    if version != 120 or not isinstance(source_info, dict) or not source_info.get("country"):
        raise ConfigError(path, None, f"unsupported geoip2fast data file (format {version!r}, "
                                      f"{source_info!r}); expected a version 120 country file")
    if source_info.get("asn"):
        (_idx, _idx_asn, names_country, names_asn, first_ip, first_ip_asn,
         id_country, id_asn, netlen, netlen_asn) = db
    else:
        _idx, names_country, first_ip, id_country, netlen = db
        names_asn = first_ip_asn = id_asn = netlen_asn = None

    # country values: "CC:Name"; the first 16 entries are private/reserved pseudo-countries
    country_values: List[Optional[str]] = [None]
    country_map: Dict[int, int] = {}
    for i, item in enumerate(names_country):
        code = item.split(":", 1)[0]
        if i < 16 or len(code) != 2 or not code.isalpha():
            country_map[i] = 0
        else:
            country_values.append(code.upper())
            country_map[i] = len(country_values) - 1
    country = _tables_from_chunks(first_ip, netlen, id_country, country_map)

    asn_tables = None
    org_values: Optional[List[Optional[str]]] = None
    if names_asn is not None:
        org_values = [None]
        org_map: Dict[int, int] = {}
        for i, name in enumerate(names_asn):
            if not name or name in ("<unknown>", "IANA.ORG"):
                org_map[i] = 0
            else:
                org_values.append(str(name))
                org_map[i] = len(org_values) - 1
        asn_tables = _tables_from_chunks(first_ip_asn, netlen_asn, id_asn, org_map)

    desc = description or f"geoip2fast {os.path.basename(path)}"
    info = source_info.get("info")
    if info:
        desc += f" [{info}]"
    return _RangeSource(desc, country=country, country_values=country_values,
                        asn=asn_tables, asn_values=None, org_values=org_values)


def _tables_from_chunks(first_ip: Sequence[Sequence[int]], netlen: Sequence[Sequence[int]],
                        ids: Sequence[Sequence[int]], id_map: Dict[int, int]
                        ) -> Tuple[_Ranges, _Ranges]:
    starts = list(itertools.chain.from_iterable(first_ip))
    lens = list(itertools.chain.from_iterable(netlen))
    vids = list(itertools.chain.from_iterable(ids))
    lookup = np.zeros(max(max(id_map, default=0), max(vids, default=0)) + 1, dtype=np.int64)
    for k, v in id_map.items():
        lookup[k] = v
    split = bisect.bisect_right(starts, _V4_MAX) if starts == sorted(starts) else None
    if split is None:                       # not sorted: generic path
        rows4, rows6 = [], []
        for start, plen, vid in zip(starts, lens, vids):
            if start <= _V4_MAX and plen <= 32:
                rows4.append((start, start + (1 << (32 - plen)) - 1, int(lookup[vid])))
            else:
                rows6.append((start, start + (1 << (128 - plen)) - 1, int(lookup[vid])))
        return _Ranges.build(rows4, True), _Ranges.build(rows6, False)
    s4 = np.asarray(starts[:split], dtype=np.int64)
    l4 = np.asarray(lens[:split], dtype=np.int64)
    e4 = s4 + (np.int64(1) << (32 - l4)) - 1
    i4 = lookup[np.asarray(vids[:split], dtype=np.int64)]
    v4 = _Ranges(s4, e4, i4, True)
    s6 = starts[split:]
    e6 = [s + (1 << (128 - p)) - 1 for s, p in zip(s6, lens[split:])]
    i6 = lookup[np.asarray(vids[split:], dtype=np.int64)].tolist()
    return v4, _Ranges(s6, e6, i6, False)


def _load_range_csv(paths: Sequence[str], kind: str) -> _RangeSource:
    """Range CSVs: ``start,end,CC`` (kind "country") or ``start,end,asn[,org]``
    (kind "asn"). Addresses as text or integers; inclusive; disjoint."""
    rows4: List[Tuple[int, int, int]] = []
    rows6: List[Tuple[int, int, int]] = []
    values: List[Any] = [None]
    value_ids: Dict[Any, int] = {}
    for path in paths:
        try:
            raw = gzip.open(path, "rb").read() if path.endswith(".gz") else open(path, "rb").read()
            text = raw.decode("utf-8-sig")
        except OSError as exc:
            raise ConfigError(path, None, f"cannot read range CSV: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise ConfigError(path, None, f"not a UTF-8 range CSV: {exc}") from None
        for lineno, row in enumerate(csv.reader(io.StringIO(text)), 1):
            if not row or row[0].startswith("#") or row[0].strip().lower() in (
                    "ip_range_start", "start", "network"):
                continue
            if len(row) < 3:
                raise ConfigError(path, lineno, f"expected start,end,{'CC' if kind == 'country' else 'asn,org'}"
                                                f", got {len(row)} column(s)")
            start = _csv_addr(row[0])
            end = _csv_addr(row[1])
            if start is None or end is None or start[0] != end[0] or end[1] < start[1]:
                raise ConfigError(path, lineno, f"invalid address range {row[0]!r}-{row[1]!r}")
            if kind == "country":
                code = row[2].strip().upper()
                value: Any = code if len(code) == 2 and code.isalpha() and code not in ("ZZ", "XX") else None
            else:
                a = row[2].strip()
                try:
                    asn = parse_asn(a) if a not in ("", "0") else None
                except ValueError:
                    raise ConfigError(path, lineno, f"invalid AS number {a!r}") from None
                org = row[3].strip() if len(row) > 3 and row[3].strip() else None
                value = (asn, org)
            vid = value_ids.get(value)
            if vid is None:
                values.append(value)
                vid = value_ids[value] = len(values) - 1
            (rows4 if start[0] == 4 else rows6).append((start[1], end[1], vid))
    desc = ", ".join(os.path.basename(p) for p in paths)
    if kind == "country":
        return _RangeSource(desc, country=(_Ranges.build(rows4, True), _Ranges.build(rows6, False)),
                            country_values=values)
    asn_values = [None] + [v[0] for v in values[1:]]
    flat = flatten_most_specific(rows4)
    starts = np.array([r[0] for r in flat], dtype=np.uint32)
    ends = np.array([r[1] for r in flat], dtype=np.uint32)
    v4 = _Ranges(starts, ends, _customer_ids(starts, ends, np.array([r[2] for r in flat], dtype=np.int32),
                                             asn_values), True)
    return _RangeSource(desc, asn=(v4, _Ranges.build(rows6, False)), asn_values=asn_values,
                        org_values=[None] + [v[1] for v in values[1:]])


def _csv_addr(text: str) -> Optional[Tuple[int, int]]:
    t = text.strip()
    if t.isdigit():
        v = int(t)
        return (4, v) if v <= _V4_MAX else (6, v)
    return addr_to_int(t)


@functools.lru_cache(maxsize=1)
def _bundled() -> _RangeSource:
    try:
        import geoip2fast
    except ImportError:
        raise ConfigError("geoip2fast", None, "the bundled GeoIP data needs the 'geoip2fast' "
                                              "package (pip install geoip2fast), or pass "
                                              "geoip_path/asn_path") from None
    path = os.path.join(os.path.dirname(geoip2fast.__file__), BUNDLED_FILE)
    version = getattr(geoip2fast, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as _v
            version = _v("geoip2fast")
        except Exception:
            version = "?"
    return _load_geoip2fast(path, f"geoip2fast {version} {BUNDLED_FILE}")


BUNDLED_ASN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "asn.npz")


def _load_asn_npz(path: str) -> _RangeSource:
    """inspector/data/asn.npz (built by scripts/build_asn_data.py): AS number and organisation."""
    try:
        z = np.load(path)
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read ASN data: {exc.strerror or exc}") from None
    orgs = bytes(z["org"]).decode("utf-8").split("\n")
    asn_values: List[Optional[int]] = [None] + [int(a) or None for a in z["asn"].tolist()]
    org_values: List[Optional[str]] = [None] + [o or None for o in orgs]
    v4_start, v4_end = z["v4_start"], z["v4_end"]
    v4_id = _customer_ids(v4_start, v4_end, z["v4_id"], asn_values)
    v4 = _Ranges(v4_start, v4_end, v4_id, True)
    s6 = [(h << 64) | l for h, l in zip(z["v6_start_hi"].tolist(), z["v6_start_lo"].tolist())]
    e6 = [(h << 64) | l for h, l in zip(z["v6_end_hi"].tolist(), z["v6_end_lo"].tolist())]
    v6 = _Ranges(s6, e6, z["v6_id"].tolist(), False)
    try:
        src = json.loads(bytes(z["source"]).decode())
        desc = f"{src.get('package')} {src.get('version')} ({src.get('license')})"
    except Exception:
        desc = os.path.basename(path)
    return _RangeSource(desc, asn=(v4, v6), asn_values=asn_values, org_values=org_values)


MITIGATION_ASNS_FILE = os.path.join(os.path.dirname(BUNDLED_ASN), "mitigation_asns.csv")


@functools.lru_cache(maxsize=1)
def mitigation_asns() -> frozenset:
    """AS numbers of DDoS-mitigation networks (inspector/data/mitigation_asns.csv)."""
    out = set()
    with open(MITIGATION_ASNS_FILE, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#"):
                out.add(int(line.split(",", 1)[0]))
    return frozenset(out)


def _customer_ids(starts: np.ndarray, ends: np.ndarray, ids: np.ndarray, asn_values: List[Optional[int]]
                  ) -> np.ndarray:
    """IPv4 range ids with prefixes held by a DDoS-mitigation AS inside one other AS's space given
    back to that AS (its holder in the registry): a range whose neighbours on both sides are
    adjacent and carry the same other AS."""
    ids = np.array(ids, dtype=np.int32, copy=True)
    if len(ids) < 3:
        return ids
    asn_of = np.array([a or 0 for a in asn_values], dtype=np.int64)[ids]
    scrub = np.isin(asn_of, list(mitigation_asns()))
    i = np.nonzero(scrub[1:-1])[0] + 1
    s64, e64 = starts.astype(np.int64), ends.astype(np.int64)
    ok = ((ids[i - 1] == ids[i + 1]) & ~scrub[i - 1] & (asn_of[i - 1] != 0)
          & (e64[i - 1] + 1 == s64[i]) & (e64[i] + 1 == s64[i + 1]))
    ids[i[ok]] = ids[i[ok] - 1]
    return ids


@functools.lru_cache(maxsize=1)
def _bundled_asn() -> _RangeSource:
    """AS numbers and organisations: the vendored ip-location-db snapshot when present,
    else the AS names of the geoip2fast data (no numbers)."""
    if os.path.exists(BUNDLED_ASN):
        return _load_asn_npz(BUNDLED_ASN)
    return _bundled()


def _open_source(paths: Union[PathArg, Sequence[PathArg]], kind: str):
    if isinstance(paths, (str, os.PathLike)):
        plist = [os.fspath(paths)]
    else:
        plist = [os.fspath(p) for p in paths]
    if not plist:
        raise ValueError(f"empty {kind} path list")
    lower = [p.lower() for p in plist]
    if all(p.endswith((".csv", ".csv.gz")) for p in lower):
        return _load_range_csv(plist, kind)
    if len(plist) != 1:
        raise ConfigError(plist[0], None, "only range CSV files may be given as a list")
    path, low = plist[0], lower[0]
    if low.endswith((".dat.gz", ".dat")):
        # geoip2fast files are pickles: read only the one the package ships
        raise ConfigError(path, None, "geoip2fast .dat files are not accepted as paths (they are "
                                      "pickles); use a .mmdb file or a range CSV")
    if not os.path.exists(path):
        raise ConfigError(path, None, "cannot read GeoIP database: No such file or directory")
    return _MMDBSource(path)


# --------------------------------------------------------------------------
# GeoDB
# --------------------------------------------------------------------------

class GeoDB:
    """Country / AS lookups from offline data (see the module docstring).

    ``GeoDB()`` uses the data bundled with ``geoip2fast`` (loaded once per
    process, ~1 s, on the first lookup: a run that looks nothing up, such as
    the scan of an empty capture, does not pay for it).
    ``GeoDB(geoip_path=..., asn_path=...)`` uses the given files for country
    and AS data (opened at once); ``bundled=False`` disables the bundled
    fallback for whatever is not given. Bad files raise ConfigError.
    """

    def __init__(self, geoip_path: Optional[PathArg] = None,
                 asn_path: Optional[Union[PathArg, Sequence[PathArg]]] = None,
                 *, bundled: bool = True) -> None:
        country_src = _open_source(geoip_path, "country") if geoip_path else None
        asn_src = _open_source(asn_path, "asn") if asn_path else None
        self._country_lazy = country_src is None and bundled
        self._asn_lazy = asn_src is None and bundled
        if self._country_lazy and importlib.util.find_spec("geoip2fast") is None:
            _bundled()                          # raises the ConfigError that names the missing package
        self._country = country_src
        self._asn = asn_src
        self._reserved = NetSet(RESERVED_NETS)
        self._cache: Dict[Any, GeoInfo] = {}

    def _source(self, name: str, load):
        """The country or AS source ``name``, loading the bundled data on first use."""
        if getattr(self, name + "_lazy"):
            setattr(self, name, load())
            setattr(self, name + "_lazy", False)
        return getattr(self, name)

    @property
    def _country_src(self):
        return self._source("_country", _bundled)

    @property
    def _asn_src(self):
        return self._source("_asn", _bundled_asn)

    # ---- provenance -----------------------------------------------------

    @property
    def sources(self) -> Dict[str, Optional[str]]:
        """Where each attribute comes from (for reports)."""
        return {
            "country": self._country_src.description if self._country_src else None,
            "asn": self._asn_src.description if self._asn_src and self._asn_src.has_asn else None,
            "org": self._asn_src.description if self._asn_src and self._asn_src.has_org else None,
        }

    @property
    def has_asn_numbers(self) -> bool:
        return bool(self._asn_src and self._asn_src.has_asn)

    # ---- scalar ---------------------------------------------------------

    def lookup(self, addr: Any) -> GeoInfo:
        """(country_iso, asn, org) for one address; Nones when private,
        reserved, unparseable or not covered. Cached."""
        cache = self._cache
        try:
            return cache[addr]
        except KeyError:
            pass
        except TypeError:                       # unhashable
            return self._lookup_key(addr_to_int(addr))
        result = self._lookup_key(addr_to_int(addr))
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[addr] = result
        return result

    def _lookup_key(self, key: Optional[Tuple[int, int]]) -> GeoInfo:
        if key is None or self._reserved.contains(*key):
            return _EMPTY
        version, value = key
        country = self._country_src.country(version, value) if self._country_src else None
        asn, org = self._asn_src.asn_org(version, value) if self._asn_src else (None, None)
        if country is None and asn is None and org is None:
            return _EMPTY
        return GeoInfo(country, asn, org)

    def clear_cache(self) -> None:
        self._cache.clear()

    # ---- vectorised -----------------------------------------------------

    def lookup_v4(self, arr: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised lookup of host-order uint32 IPv4 addresses: three object
        arrays (country, asn, org) shaped like ``arr``, None where unknown."""
        a = np.asarray(arr)
        if a.dtype != np.uint32:
            a = a.astype(np.uint32)
        csrc, asrc = self._country_src, self._asn_src
        if (csrc is None or isinstance(csrc, _RangeSource)) and \
                (asrc is None or isinstance(asrc, _RangeSource)):
            none = np.full(a.shape, None, dtype=object)
            country = csrc.country_v4(a) if csrc else none.copy()
            if asrc:
                asn, org = asrc.asn_org_v4(a)
            else:
                asn, org = none.copy(), none.copy()
            reserved = self._reserved.contains_v4(a)
            if reserved.any():
                country = country.copy()
                asn = asn.copy()
                org = org.copy()
                country[reserved] = None
                asn[reserved] = None
                org[reserved] = None
            return country, asn, org
        # mmdb sources: one scalar lookup per distinct address
        uniq, inverse = np.unique(a, return_inverse=True)
        res = [self._lookup_key((4, int(v))) for v in uniq]
        return _columns(res, inverse.reshape(a.shape))

    def lookup_many(self, addrs: Iterable[Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lookup of any iterable of addresses (strings, ipaddress objects,
        packed bytes; v4 and v6 mixed): three object arrays (country, asn, org).
        Each distinct address is looked up once (through the cache)."""
        seen: Dict[Any, int] = {}
        results: List[GeoInfo] = []
        index: List[int] = []
        for addr in addrs:
            try:
                i = seen.get(addr)
            except TypeError:
                i = None
                addr = bytes(addr) if isinstance(addr, bytearray) else str(addr)
            if i is None:
                i = seen[addr] = len(results)
                results.append(self.lookup(addr))
            index.append(i)
        return _columns(results, np.asarray(index, dtype=np.int64))


def _columns(results: List[GeoInfo], index: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(results)
    cols = []
    for field_no in range(3):
        values = np.empty(n, dtype=object)
        values[:] = [r[field_no] for r in results]
        cols.append(values[index] if n else np.full(index.shape, None, dtype=object))
    return cols[0], cols[1], cols[2]
