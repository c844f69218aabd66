"""Running aggregates of flow records, the terminal summary and the scan progress bar.

``Aggregates`` is fed flow records batch by batch (``add(records)``) while the
scan runs and never keeps the flows: every per-key table is bounded (the
largest keys are kept, the totals stay exact), the timeline coarsens its
buckets instead of growing.  The terminal summary (``print_summary``) and the
HTML report (``inspector.report.html``) both read it.

"Leaving the site" means what the local side sent: ``orig_bytes`` of outbound
connections and ``resp_bytes`` of inbound ones (an FTP active-mode data
connection is opened by the remote server, yet the upload leaves the site).
Internal and external (neither side local) connections are counted, not charted.

Every string here may come from the network: ``clean`` makes control and
bidirectional-override characters visible before anything is printed, and the
rich output never interprets such strings as markup.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..enrich.label import destination_label
from ..severity import severity_rank
from .format import clean

# Terminal styles of the levels of the one severity scale (inspector.severity).
SEVERITY_STYLES = {1: "bold white on red", 2: "bold red", 3: "yellow", 4: "cyan"}

# --------------------------------------------------------------------------------------------
# Bounded tables


class TopTable:
    """A map key -> list of numbers, bounded to about ``2 * cap`` keys.

    When it grows past ``2 * cap`` it is pruned to the ``cap`` keys that are largest by any of
    the ``rank`` columns (the union of the top ``cap // len(rank)`` for each), so both the top
    by bytes and the top by records survive.  ``dropped`` counts the keys let go; the totals
    the caller keeps elsewhere stay exact, and counts of a key that comes back after being
    dropped restart from zero (the usual price of a bounded heavy-hitter table).
    """

    __slots__ = ("cap", "width", "rank", "items", "meta", "dropped")

    def __init__(self, width: int, cap: int = 2000, rank: Tuple[int, ...] = (0,)):
        self.cap = max(4, int(cap))
        self.width = width
        self.rank = rank
        self.items: Dict[Any, list] = {}
        self.meta: Dict[Any, dict] = {}
        self.dropped = 0

    def row(self, key) -> list:
        r = self.items.get(key)
        if r is None:
            if len(self.items) >= 2 * self.cap:
                self._prune()
            r = self.items[key] = [0] * self.width
        return r

    def _prune(self) -> None:
        keys = list(self.items)
        rows = list(self.items.values())
        per = max(1, self.cap // len(self.rank))
        keep = set()
        for col in self.rank:
            keep.update(keys[i] for i in _top_positions([r[col] for r in rows], per))
        for k in keys:
            if k not in keep:
                del self.items[k]
                self.meta.pop(k, None)
                self.dropped += 1

    def top(self, col: int, n: int, min_value: float = 0) -> List[Tuple[Any, list]]:
        """The ``n`` largest rows by column ``col`` (only those above ``min_value`` unless it is None)."""
        if min_value is None:
            rows = list(self.items.items())
        else:
            rows = [(k, v) for k, v in self.items.items() if v[col] > min_value]
        rows.sort(key=lambda kv: (-kv[1][col], str(kv[0])))
        return rows[:n]

    def __len__(self) -> int:
        return len(self.items)


def _top_positions(values: list, n: int):
    """Positions of the ``n`` largest values, ties broken by position: what
    ``sorted(range(len(values)), key=values.__getitem__, reverse=True)[:n]`` gives (a stable
    sort keeps equal values in their order), in numpy when the values fit in int64."""
    if all(v.__class__ is int and -(1 << 62) < v < (1 << 62) for v in values):
        import numpy as np      # not at module level: the command line starts without numpy
        return np.argsort(-np.array(values, dtype=np.int64), kind="stable")[:n].tolist()
    return sorted(range(len(values)), key=values.__getitem__, reverse=True)[:n]


# Columns of the per-key rows
BYTES, FLOWS, CUST, SHIP, BYTES_IN, APP = range(6)
_WIDTH = 6

# Timeline bucket widths: each divides the next, so a coarser view is an exact re-binning.
BUCKET_STEPS = (1, 5, 10, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800,
                2419200, 31449600)


class Timeline:
    """Bytes leaving per time bucket, two series (allowed destinations, the others).

    Starts with 1 s buckets and moves to the next width in ``BUCKET_STEPS`` whenever more
    than ``max_buckets`` buckets are in use.  A connection's bytes are spread over the
    buckets its duration covers."""

    def __init__(self, max_buckets: int = 4096):
        self.max_buckets = max_buckets
        self.step = 0
        self.buckets: Dict[int, List[float]] = {}

    @property
    def width(self) -> int:
        return BUCKET_STEPS[self.step]

    def _coarsen(self) -> None:
        if self.step + 1 >= len(BUCKET_STEPS):
            return
        old = self.width
        self.step += 1
        f = self.width // old
        merged: Dict[int, List[float]] = {}
        for i, v in self.buckets.items():
            m = merged.setdefault(i // f, [0.0, 0.0])
            m[0] += v[0]
            m[1] += v[1]
        self.buckets = merged

    def add(self, start: float, duration: Optional[float], value: float, series: int) -> None:
        if not value or start is None or not math.isfinite(start):
            return
        dur = duration if duration and duration > 0 and math.isfinite(duration) else 0.0
        while dur / self.width > self.max_buckets / 2 and self.step + 1 < len(BUCKET_STEPS):
            self._coarsen()
        w = self.width
        first = int(start // w)
        last = int((start + dur) // w)
        if last == first:
            self._put(first, value, series)
        else:
            end = start + dur
            for i in range(first, last + 1):
                lo = max(start, i * w)
                hi = min(end, (i + 1) * w)
                if hi > lo:
                    self._put(i, value * (hi - lo) / dur, series)
        while len(self.buckets) > self.max_buckets and self.step + 1 < len(BUCKET_STEPS):
            self._coarsen()

    def _put(self, i: int, value: float, series: int) -> None:
        b = self.buckets.get(i)
        if b is None:
            b = self.buckets[i] = [0.0, 0.0]
        b[series] += value

    def series(self, max_bars: int = 96) -> Tuple[int, List[Tuple[float, float, float]]]:
        """(bucket width in seconds, [(bucket start, allowed bytes, other bytes)]) with at most
        ``max_bars`` buckets from the first to the last bucket in use, empty ones included."""
        if not self.buckets:
            return self.width, []
        lo, hi = min(self.buckets), max(self.buckets)
        step = self.step
        w = self.width
        span = (hi - lo + 1) * w
        while span / BUCKET_STEPS[step] > max_bars and step + 1 < len(BUCKET_STEPS):
            step += 1
        W = BUCKET_STEPS[step]
        f = W // w
        out: Dict[int, List[float]] = {}
        for i, v in self.buckets.items():
            m = out.setdefault(i // f, [0.0, 0.0])
            m[0] += v[0]
            m[1] += v[1]
        a, b = min(out), max(out)
        return W, [(float(j * W), out.get(j, (0.0, 0.0))[0], out.get(j, (0.0, 0.0))[1]) for j in range(a, b + 1)]


class Aggregates:
    """What left the site, aggregated while the flows stream by.

    Feed it with ``add(records)`` (an iterable of flow dicts, ``flows.jsonl`` fields).
    ``role_of`` (e.g. ``site.role``) maps a local address to its role for the host -> org
    diagram; hosts without a role appear by address.  ``cap`` bounds every per-key table.

    Exact: ``flows``, ``directions``, ``first_ts``/``last_ts``, the ``out_*`` totals, ``data``
    (identifier counts per class), ``payload``.  Bounded (largest kept): ``dst`` (by
    destination name, else address), ``org``, ``country``, ``host``, ``edges`` (source label,
    org label), ``category``.  Rows are lists indexed by ``BYTES, FLOWS, CUST, SHIP, BYTES_IN,
    APP``; ``meta`` holds the descriptive fields of a key.
    """

    def __init__(self, role_of: Optional[Callable[[str], Optional[str]]] = None, cap: int = 2000,
                 timeline_buckets: int = 4096, pending: int = 8192):
        self.role_of = role_of
        self._roles: Dict[str, Optional[str]] = {}
        self._orgs: Dict[tuple, Tuple[str, str]] = {}
        self.flows = 0
        self.directions: Counter = Counter()
        self.first_ts: Optional[float] = None
        self.last_ts: Optional[float] = None
        self.out_flows = 0
        self.out_bytes = 0
        self.out_bytes_in = 0
        self.out_allowed_bytes = 0
        self.out_customer = 0
        self.out_shipment = 0
        self.data: Counter = Counter()           # identifier class -> distinct values (summed over connections)
        rank = (BYTES, CUST, SHIP)
        self._payload = TopTable(_WIDTH, cap=256, rank=rank)
        self._dst = TopTable(_WIDTH, cap=cap, rank=rank)
        self._org = TopTable(_WIDTH, cap=cap, rank=rank)
        self._country = TopTable(_WIDTH, cap=512, rank=rank)
        self._category = TopTable(_WIDTH, cap=256, rank=rank)
        self._host = TopTable(_WIDTH, cap=cap, rank=rank)
        self._edges = TopTable(_WIDTH, cap=cap * 2, rank=rank)
        self.timeline = Timeline(timeline_buckets)
        # Flows that share destination, host, payload type and allow-list status are summed here
        # first (one dict update per flow) and spread over the tables above in batches.
        self._pending: Dict[tuple, list] = {}
        self._pending_max = max(16, pending)

    # The tables, up to date (reading one folds the pending sums in)

    @property
    def dst(self) -> TopTable:
        self._flush()
        return self._dst

    @property
    def org(self) -> TopTable:
        self._flush()
        return self._org

    @property
    def country(self) -> TopTable:
        self._flush()
        return self._country

    @property
    def category(self) -> TopTable:
        self._flush()
        return self._category

    @property
    def payload(self) -> TopTable:
        self._flush()
        return self._payload

    @property
    def host(self) -> TopTable:
        self._flush()
        return self._host

    @property
    def edges(self) -> TopTable:
        self._flush()
        return self._edges

    # ---- feeding

    def add(self, records: Iterable[dict]) -> "Aggregates":
        add_one = self.add_one
        for f in records:
            add_one(f)
        return self

    def _role(self, host: str) -> Optional[str]:
        if self.role_of is None or not host:
            return None
        r = self._roles.get(host, False)
        if r is False:
            try:
                r = self.role_of(host)
            except Exception:
                r = None
            if len(self._roles) > 65536:
                self._roles.clear()
            self._roles[host] = r
        return r

    def add_one(self, f: dict) -> None:
        self.flows += 1
        d = f.get("direction") or "unknown"
        self.directions[d] += 1
        ts = f.get("ts")
        dur = 0.0
        if (ts.__class__ is float or ts.__class__ is int) and math.isfinite(ts):
            du = f.get("duration")
            if du and (du.__class__ is float or du.__class__ is int) and du > 0 and math.isfinite(du):
                dur = du
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts + dur > self.last_ts:
                self.last_ts = ts + dur
        else:
            ts = None
        if d == "outbound":
            host, remote = f.get("id.orig_h"), f.get("id.resp_h")
            sent, recv = f.get("orig_bytes") or 0, f.get("resp_bytes") or 0
        elif d == "inbound":
            host, remote = f.get("id.resp_h"), f.get("id.orig_h")
            sent, recv = f.get("resp_bytes") or 0, f.get("orig_bytes") or 0
        else:
            return
        recs = f.get("records")
        if recs:
            cust = as_int(recs.get("customer"))
            ship = as_int(recs.get("shipment"))
        else:
            cust = ship = 0
        app = f.get("app_bytes_out") or 0
        if app.__class__ is not int:
            app = as_int(app)
        if sent.__class__ is not int:
            sent = as_int(sent)
        if recv.__class__ is not int:
            recv = as_int(recv)
        allowed = bool(f.get("dst_allowed"))
        self.out_flows += 1
        self.out_bytes += sent
        self.out_bytes_in += recv
        self.out_customer += cust
        self.out_shipment += ship
        if allowed:
            self.out_allowed_bytes += sent

        name = f.get("dst_name")
        key = (str(name) if name else str(remote or "?"), str(host or "?"), f.get("dst_org"), f.get("dst_group"),
               f.get("dst_asn"), f.get("dst_country") or "??", f.get("dst_category"), f.get("payload_type"),
               allowed, remote)
        r = self._pending.get(key)
        if r is None:
            if len(self._pending) >= self._pending_max:
                self._flush()
            r = self._pending[key] = [0, 0, 0, 0, 0, 0, ts, ts, None]
        r[0] += sent
        r[1] += 1
        r[2] += cust
        r[3] += ship
        r[4] += recv
        r[5] += app
        if ts is not None:
            if r[6] is None or ts < r[6]:
                r[6] = ts
            if r[7] is None or ts > r[7]:
                r[7] = ts
        data = f.get("data")
        if data:
            dc = r[8]
            if dc is None:
                dc = r[8] = Counter()
            for k, v in data.items():
                k = str(k)
                v = as_int(v)
                self.data[k] += v
                if k in dc or len(dc) < 32:
                    dc[k] += v
        if ts is not None and sent:
            self.timeline.add(ts, dur, sent, 0 if allowed else 1)

    def _flush(self) -> None:
        """Spread the pending sums over the per-key tables."""
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        for (dst_key, host, org_name, grp, asn, cc, cat, pt, allowed, remote), r in pending.items():
            ok = (org_name, grp, dst_key if dst_key != str(remote or "?") else None, asn, remote)
            label = self._orgs.get(ok)
            if label is None:
                label = destination_label(*ok)
                if len(self._orgs) > 65536:
                    self._orgs.clear()
                self._orgs[ok] = label
            org, org_kind = label
            vals = r[:6]
            sent, ts0, ts1, data = r[0], r[6], r[7], r[8]

            row = self._dst.row(dst_key)
            _acc(row, vals)
            m = self._dst.meta.get(dst_key)
            if m is None:
                m = self._dst.meta[dst_key] = {"org": org, "org_kind": org_kind, "country": cc, "group": grp,
                                               "category": cat, "addr": remote, "allowed": set(), "hosts": set(),
                                               "hosts_more": False, "payload": {}, "data": {},
                                               "first": ts0, "last": ts1}
            m["allowed"].add(allowed)
            if len(m["hosts"]) < 8:
                m["hosts"].add(host)
            elif host not in m["hosts"]:
                m["hosts_more"] = True
            mp = m["payload"]
            if pt and (pt in mp or len(mp) < 8):
                mp[pt] = mp.get(pt, 0) + r[1]
            if data:
                dm = m["data"]
                for k, v in data.items():
                    if k in dm or len(dm) < 32:
                        dm[k] = dm.get(k, 0) + v
            if ts0 is not None and (m["first"] is None or ts0 < m["first"]):
                m["first"] = ts0
            if ts1 is not None and (m["last"] is None or ts1 > m["last"]):
                m["last"] = ts1

            _acc(self._org.row(org), vals)
            m = self._org.meta.get(org)
            if m is None:
                m = self._org.meta[org] = {"kind": org_kind, "countries": Counter(), "allowed": set(),
                                           "category": cat, "dsts": set(), "dsts_more": False}
            if cc in m["countries"] or len(m["countries"]) < 8:
                m["countries"][cc] += sent
            m["allowed"].add(allowed)
            if len(m["dsts"]) < 8:
                m["dsts"].add(dst_key)
            elif dst_key not in m["dsts"]:
                m["dsts_more"] = True

            _acc(self._country.row(cc), vals)
            _acc(self._category.row(cat or "uncategorised"), vals)
            _acc(self._payload.row(pt or "none"), vals)

            role = self._role(host)
            _acc(self._host.row(host), vals)
            if host not in self._host.meta:
                self._host.meta[host] = {"role": role}

            ek = (role or host, org)
            _acc(self._edges.row(ek), vals)
            em = self._edges.meta.get(ek)
            if em is None:
                em = self._edges.meta[ek] = {"allowed": set()}
            em["allowed"].add(allowed)

    # ---- reading

    @property
    def out_other_bytes(self) -> int:
        return self.out_bytes - self.out_allowed_bytes

    @property
    def truncated(self) -> bool:
        """True when a bounded table had to let keys go (its long tail is then approximate)."""
        self._flush()
        return any(t.dropped for t in (self._dst, self._org, self._country, self._host, self._edges, self._category,
                                       self._payload))

    def top_destinations(self, n: int = 20, by: int = BYTES):
        return self.dst.top(by, n)

    def top_orgs(self, n: int = 20, by: int = BYTES):
        return self.org.top(by, n, min_value=None if by == BYTES else 0)

    def top_countries(self, n: int = 20, by: int = BYTES):
        return self.country.top(by, n, min_value=None)

    def top_hosts(self, n: int = 20, by: int = BYTES):
        return self.host.top(by, n, min_value=None)

    def sankey(self, left: int = 10, right: int = 12):
        """(left labels, right labels, [(left, right, bytes, flows, records, allowed set)]), the
        smaller nodes folded into ``other hosts`` / ``other organisations``."""
        src_tot: Counter = Counter()
        org_tot: Counter = Counter()
        for (s, o), r in self.edges.items.items():
            src_tot[s] += r[BYTES]
            org_tot[o] += r[BYTES]
        lefts = [s for s, v in sorted(src_tot.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0]
        rights = [o for o, v in sorted(org_tot.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0]
        other_l = other_r = None
        if len(lefts) > left:
            other_l = f"other hosts ({len(lefts) - left + 1})"
            keep_l = set(lefts[:left - 1])
        else:
            keep_l = set(lefts)
        if len(rights) > right:
            other_r = f"other organisations ({len(rights) - right + 1})"
            keep_r = set(rights[:right - 1])
        else:
            keep_r = set(rights)
        edges: Dict[Tuple[str, str], list] = {}
        for (s, o), r in self.edges.items.items():
            if r[BYTES] <= 0:
                continue
            ls = s if s in keep_l else other_l
            ro = o if o in keep_r else other_r
            e = edges.get((ls, ro))
            if e is None:
                e = edges[(ls, ro)] = [0, 0, 0, set()]
            e[0] += r[BYTES]
            e[1] += r[FLOWS]
            e[2] += r[CUST] + r[SHIP]
            e[3].update(self.edges.meta.get((s, o), {}).get("allowed", ()))
        lnodes = [s for s in lefts if s in keep_l] + ([other_l] if other_l else [])
        rnodes = [o for o in rights if o in keep_r] + ([other_r] if other_r else [])
        return lnodes, rnodes, [(s, o, *v) for (s, o), v in edges.items()]

    def to_dict(self, n: int = 20) -> dict:
        """A JSON-friendly snapshot (totals and the top ``n`` of each table)."""
        def rows(items):
            return [{"key": k if not isinstance(k, tuple) else list(k), "bytes_out": r[BYTES], "flows": r[FLOWS],
                     "customer": r[CUST], "shipment": r[SHIP], "bytes_in": r[BYTES_IN]} for k, r in items]
        return {
            "flows": self.flows, "directions": dict(self.directions), "first_ts": self.first_ts,
            "last_ts": self.last_ts, "out_flows": self.out_flows, "out_bytes": self.out_bytes,
            "out_allowed_bytes": self.out_allowed_bytes, "out_customer": self.out_customer,
            "out_shipment": self.out_shipment, "data": dict(self.data),
            "destinations": rows(self.top_destinations(n)), "orgs": rows(self.top_orgs(n)),
            "countries": rows(self.top_countries(n)), "hosts": rows(self.top_hosts(n)),
        }


def as_int(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def _acc(row: list, vals) -> None:
    row[0] += vals[0]
    row[1] += vals[1]
    row[2] += vals[2]
    row[3] += vals[3]
    row[4] += vals[4]
    row[5] += vals[5]


def allowed_word(allowed: Iterable[bool]) -> str:
    s = set(allowed)
    if s == {True}:
        return "allowed"
    if s == {False}:
        return "not allowed"
    return "partly" if s else "-"


# --------------------------------------------------------------------------------------------
# Alerts


def alert_dest_label(a: dict) -> str:
    dest = a.get("destination") or {}
    return clean(dest.get("name") or a.get("dest_ip") or "?")


def sorted_alerts(alerts: Iterable[dict]) -> List[dict]:
    """Most severe first, then most records, then most bytes, then time."""
    def key(a):
        recs = a.get("records") or {}
        return (severity_rank((a.get("alert") or {}).get("severity")),
                -(as_int(recs.get("customer")) + as_int(recs.get("shipment"))),
                -as_int(a.get("bytes_out")), str(a.get("timestamp") or ""))
    return sorted((a for a in alerts if isinstance(a, dict)), key=key)


def alert_counts(alerts: Iterable[dict]) -> Counter:
    c: Counter = Counter()
    for a in alerts:
        if isinstance(a, dict):
            c[severity_rank((a.get("alert") or {}).get("severity"))] += 1
    return c
