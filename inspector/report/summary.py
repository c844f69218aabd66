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

import io
import math
import os
import sys
import time
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..enrich.label import destination_label
from ..severity import severity_name, severity_rank
from .format import clean, fmt_bytes, fmt_duration, fmt_int, fmt_ts

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
        keep = set()
        per = max(1, self.cap // len(self.rank))
        for col in self.rank:
            ranked = sorted(self.items.items(), key=lambda kv: kv[1][col], reverse=True)
            keep.update(k for k, _ in ranked[:per])
        for k in list(self.items):
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
            cust = _int(recs.get("customer"))
            ship = _int(recs.get("shipment"))
        else:
            cust = ship = 0
        app = f.get("app_bytes_out") or 0
        if app.__class__ is not int:
            app = _int(app)
        if sent.__class__ is not int:
            sent = _int(sent)
        if recv.__class__ is not int:
            recv = _int(recv)
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
                v = _int(v)
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


def _int(v: Any) -> int:
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
                -(_int(recs.get("customer")) + _int(recs.get("shipment"))),
                -_int(a.get("bytes_out")), str(a.get("timestamp") or ""))
    return sorted((a for a in alerts if isinstance(a, dict)), key=key)


def alert_counts(alerts: Iterable[dict]) -> Counter:
    c: Counter = Counter()
    for a in alerts:
        if isinstance(a, dict):
            c[severity_rank((a.get("alert") or {}).get("severity"))] += 1
    return c


# --------------------------------------------------------------------------------------------
# Terminal summary


def print_summary(console_or_none, stats: dict, aggregates: Aggregates, alerts: Optional[list], site_name: str,
                  out_dir: str, elapsed: float, top: int = 8) -> None:
    """Print the end-of-scan summary with ``rich`` (plain text when rich is not installed).

    ``console_or_none``: a ``rich.console.Console`` or None for one on stdout."""
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a dependency; keep working without it
        _print_plain(stats, aggregates, alerts or [], site_name, out_dir, elapsed, top)
        return
    console = console_or_none if console_or_none is not None else Console(highlight=False)
    _print_rich(console, stats or {}, aggregates, alerts or [], site_name, out_dir, elapsed, top)


def _summary_lines(stats, agg: Aggregates, site_name, elapsed) -> List[str]:
    lines = []
    files = stats.get("files") or []
    lines.append(f"{fmt_int(stats.get('packets_read'))} packets, {fmt_bytes(stats.get('bytes_read'))} read"
                 + (f" from {len(files)} file{'s' if len(files) != 1 else ''}" if files else "")
                 + f" in {elapsed:.1f}s")
    if agg.first_ts is not None:
        lines.append(f"capture {fmt_ts(agg.first_ts)} \u2192 {fmt_ts(agg.last_ts)} UTC "
                     f"({fmt_duration((agg.last_ts or agg.first_ts) - agg.first_ts)})")
    outcomes = stats.get("outcomes") or {}
    other = {k: v for k, v in outcomes.items() if k != "decoded"}
    if other:
        lines.append("not decoded: " + ", ".join(f"{clean(k)} {fmt_int(v)}" for k, v in
                                                 sorted(other.items(), key=lambda kv: -kv[1])[:6]))
    dirs = ", ".join(f"{clean(k)} {fmt_int(v)}" for k, v in sorted(agg.directions.items()))
    lines.append(f"flows {fmt_int(agg.flows)}" + (f": {dirs}" if dirs else ""))
    if agg.out_flows:
        lines.append(f"leaving the site: {fmt_bytes(agg.out_bytes)} in {fmt_int(agg.out_flows)} connections to "
                     f"{fmt_int(len(agg.dst))} destinations; {fmt_bytes(agg.out_other_bytes)} to destinations "
                     f"not on the allow list")
        if agg.out_customer or agg.out_shipment:
            lines.append(f"records leaving: {fmt_int(agg.out_customer)} customer, "
                         f"{fmt_int(agg.out_shipment)} shipment")
    weirds = stats.get("weirds") or {}
    if weirds:
        wc = Counter(weirds)
        lines.append("weird: " + ", ".join(f"{clean(k)} {v}" for k, v in wc.most_common(6)))
    return lines


def _allow_mark(allowed) -> str:
    return {"allowed": "yes", "not allowed": "no", "partly": "partly"}.get(allowed_word(allowed), "-")


def _cs(c, s) -> str:
    """``customer / shipment`` record counts, blank when both are zero."""
    return f"{fmt_int(c)} / {fmt_int(s)}" if c or s else ""


def _org_rows(agg: Aggregates, top: int):
    rows = []
    for org, r in agg.top_orgs(top):
        m = agg.org.meta.get(org, {})
        ccs = m.get("countries") or Counter()
        cc = ",".join(clean(c) for c, _ in ccs.most_common(3))
        rows.append((clean(org, 40), cc, fmt_int(r[FLOWS]), fmt_bytes(r[BYTES]), _cs(r[CUST], r[SHIP]),
                     _allow_mark(m.get("allowed", ()))))
    return rows


def _dst_rows(agg: Aggregates, top: int, by: int = BYTES):
    rows = []
    for name, r in agg.top_destinations(top, by=by):
        m = agg.dst.meta.get(name, {})
        rows.append((clean(name, 60), clean(m.get("org"), 40), fmt_bytes(r[BYTES]), _cs(r[CUST], r[SHIP]),
                     _allow_mark(m.get("allowed", ()))))
    return rows


def _alert_rows(alerts, top: int):
    rows = []
    for a in sorted_alerts(alerts)[:top]:
        al = a.get("alert") or {}
        recs = a.get("records") or {}
        rows.append((severity_rank(al.get("severity")), severity_name(al.get("severity")),
                     clean(al.get("signature"), 80),
                     f"{clean(a.get('src_ip'))} \u2192 {alert_dest_label(a)}",
                     fmt_bytes(a.get("bytes_out")), _cs(_int(recs.get("customer")), _int(recs.get("shipment")))))
    return rows


def _outputs(out_dir: str) -> str:
    try:
        names = sorted(n for n in os.listdir(out_dir) if not n.endswith(".tmp"))
    except OSError:
        names = []
    return f"outputs in {clean(out_dir)}/: " + " ".join(clean(n) for n in names)


def _print_rich(console, stats, agg: Aggregates, alerts, site_name, out_dir, elapsed, top) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console.rule(Text(f"inspector scan \u00b7 site {clean(site_name)}", style="bold"))
    for line in _summary_lines(stats, agg, site_name, elapsed):
        console.print(Text("  " + line))

    allow_styles = {"yes": "green", "no": "red", "partly": "yellow"}

    def widths(headers, rows, flex):
        """Column widths: numbers and short columns as wide as their content, the ``flex`` text
        columns share what is left of the console width (each at least 12).  A gap between
        columns is three cells (padding on either side and the invisible box divider)."""
        natural = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        room = console.width - 3 * (len(headers) - 1) - sum(w for i, w in enumerate(natural) if i not in flex)
        want = sum(natural[i] for i in flex)
        out = list(natural)
        if flex and want > room:
            for i in flex:
                out[i] = max(12, min(natural[i], room * natural[i] // max(1, want)))
        return out

    def table(title, headers, rows, right=(), flex=(0,)):
        """Numbers never wrap or shrink; the text columns in ``flex`` are truncated to fit."""
        t = Table(title=Text(title, style="bold"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False)
        for i, (h, w) in enumerate(zip(headers, widths(headers, rows, flex))):
            t.add_column(h, justify="right" if i in right else "left", no_wrap=True, overflow="ellipsis", width=w)
        for row in rows:
            t.add_row(*(Text(c, style=allow_styles.get(c, "") if headers[i] == "allowed" else "")
                        for i, c in enumerate(row)))
        return t

    if agg.out_flows:
        console.print()
        console.print(table("Leaving the site, by destination organisation",
                            ["organisation", "country", "conns", "bytes out", "cust / ship", "allowed"],
                            _org_rows(agg, top), right=(2, 3, 4)))
        crow = [(clean(cc), fmt_int(r[FLOWS]), fmt_bytes(r[BYTES]), _cs(r[CUST], r[SHIP]))
                for cc, r in agg.top_countries(top)]
        console.print(table("By country", ["country", "conns", "bytes out", "cust / ship"], crow,
                            right=(1, 2, 3), flex=()))
        console.print(table("Top destinations by bytes out",
                            ["destination", "organisation", "bytes out", "cust / ship", "allowed"],
                            _dst_rows(agg, top), right=(2, 3), flex=(0, 1)))
        if agg.out_customer or agg.out_shipment:
            rrow = [r for r in _dst_rows(agg, top, by=CUST) if r[3]]
            console.print(table("Records leaving (customer / shipment), by destination",
                                ["destination", "organisation", "bytes out", "cust / ship", "allowed"], rrow,
                                right=(2, 3), flex=(0, 1)))
    counts = alert_counts(alerts)
    line = Text("  alerts: ", style="bold")
    if not counts:
        line.append("none", style="green")
    else:
        parts = []
        for rank in (1, 2, 3, 4, 5):
            if counts.get(rank):
                parts.append((f"{counts[rank]} {severity_name(rank)}", SEVERITY_STYLES.get(rank, "")))
        for i, (txt, style) in enumerate(parts):
            if i:
                line.append(" \u00b7 ")
            line.append(txt, style=style)
    console.print()
    console.print(line)
    if alerts:
        rows = _alert_rows(alerts, top)
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        heads = ["sev", "signature", "source \u2192 destination", "bytes out", "cust / ship"]
        for i, (h, w) in enumerate(zip(heads, widths(heads, [r[1:] for r in rows], (1, 2)))):
            t.add_column(h, justify="right" if i >= 3 else "left", overflow="ellipsis", no_wrap=True, width=w)
        for rank, sev, sig, path, b, recs in rows:
            t.add_row(Text(sev, style=SEVERITY_STYLES.get(rank, "")), Text(sig), Text(path), Text(b), Text(recs))
        console.print(t)
        if len(alerts) > top:
            console.print(Text(f"  \u2026 and {len(alerts) - top} more (alerts.jsonl, report.html)", style="dim"))
    console.print(Text("  " + _outputs(out_dir), style="dim"))


def _print_plain(stats, agg, alerts, site_name, out_dir, elapsed, top) -> None:  # pragma: no cover
    p = print
    p(f"inspector scan: site {clean(site_name)}")
    for line in _summary_lines(stats, agg, site_name, elapsed):
        p("  " + line)
    for title, rows in (("by destination organisation", _org_rows(agg, top)),
                        ("top destinations", _dst_rows(agg, top))):
        if rows:
            p(f"  {title}:")
            for r in rows:
                p("    " + "  ".join(x for x in r if x))
    counts = alert_counts(alerts)
    p("  alerts: " + (", ".join(f"{counts[k]} {severity_name(k)}" for k in sorted(counts)) or "none"))
    for r in _alert_rows(alerts, top):
        p("    " + "  ".join(x for x in r[1:] if x))
    p("  " + _outputs(out_dir))


# --------------------------------------------------------------------------------------------
# Progress


def _raw_file(reader) -> Optional[io.IOBase]:
    """The regular file under a CaptureReader's (possibly decompressing) stream, or None."""
    s = getattr(reader, "stream", None)
    for _ in range(8):
        if s is None:
            return None
        if isinstance(s, io.IOBase):
            try:
                if _is_regular(s):
                    return s
            except (OSError, ValueError, io.UnsupportedOperation):
                return None
        s = getattr(s, "raw", None)
    return None


def _is_regular(f) -> bool:
    import stat
    return stat.S_ISREG(os.fstat(f.fileno()).st_mode)


class Progress:
    """Progress callback for ``run_scan(progress=...)``: ``progress(path, packets, reader)``.

    Shows a rich progress bar (file name, position in the file, packets) on stderr, but only
    when stderr is a terminal and only once the scan has run for ``delay`` seconds: short
    scans print nothing.  Call ``done()`` (or use it as a context manager) at the end."""

    def __init__(self, enabled: Optional[bool] = None, console=None, delay: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        if enabled is None:
            enabled = _stderr_is_tty()
        self.enabled = bool(enabled)
        self.console = console
        self.delay = delay
        self.clock = clock
        self.start = clock()
        self.shown = False
        self._bar = None
        self._task = None
        self._path = None
        self._files = 0
        self._total = None
        self._raw = None

    def __call__(self, path, packets, reader=None) -> None:
        if not self.enabled:
            return
        if path != self._path:
            self._path = path
            self._files += 1
            self._raw = _raw_file(reader) if reader is not None else None
            try:
                self._total = os.fstat(self._raw.fileno()).st_size if self._raw is not None else None
            except (OSError, ValueError):
                self._total = None
            if self._bar is not None:
                self._new_task()
        if self._bar is None:
            if self.clock() - self.start < self.delay:
                return
            if not self._open():
                return
        pos = None
        if self._raw is not None:
            try:
                pos = self._raw.tell()
            except (OSError, ValueError):
                pos = None
        kw = {"packets": packets}
        if pos is not None and self._total:
            kw["completed"] = min(pos, self._total)
        self._bar.update(self._task, **kw)

    def _open(self) -> bool:
        try:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress as RichProgress, SpinnerColumn, TaskProgressColumn,
                                       TextColumn, TimeElapsedColumn)
        except ImportError:  # pragma: no cover
            self.enabled = False
            return False
        console = self.console if self.console is not None else Console(stderr=True)
        self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TextColumn("{task.fields[packets]:>12,} packets"),
                                 TimeElapsedColumn(), console=console, transient=True)
        self._bar.start()
        self.shown = True
        self._new_task()
        return True

    def _new_task(self) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        from rich.markup import escape
        name = escape(clean(os.path.basename(str(self._path)) or str(self._path), 40))
        desc = f"file {self._files}: {name}" if self._files > 1 else name
        self._task = self._bar.add_task(desc, total=self._total, packets=0)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    close = done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.done()
        return False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
