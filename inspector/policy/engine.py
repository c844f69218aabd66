"""The incremental policy engine: the same code for ``scan`` and ``live``.

::

    engine = PolicyEngine(load_rules(), site)
    log_sink:  engine.observe_log(name, record)      # dns and content records (others are ignored)
    on_flows:  alerts += engine.observe_flow(record)  # per-flow rules fire here, at once
    now and then: alerts += engine.flush(now)         # windows whose time is up (live: after each batch)
    at the end: alerts += engine.flush(final=True)    # every open window and detector

* ``observe_flow`` returns the alerts of per-flow rules for that flow; windowed
  rules and detectors only accumulate.
* ``flush(now)`` returns the alerts of windows that closed: by a later event of
  the same key, by eviction (state is bounded), or because ``now`` (default:
  the latest event time seen, flow end or DNS query time) passed their end
  plus ``grace`` seconds.  ``flush(final=True)`` closes everything.
* Content records (``content.jsonl``) reach the engine before the flow record
  of the same connection (the application layer writes them as the connection
  ends); their masked samples become the alerts' evidence.  The engine keeps
  the latest ``max_cached`` of them, and the flow records of DNS connections
  (for DNS findings, which are decided after their flows ended).

Exclusions (the site file's ``exclusions``, :class:`inspector.site.Exclusion`) come first: a flow
that an entry's source, destination and data classes cover, not later than its expiry, reaches no
rule; a DNS query from a covered host for a covered domain reaches no DNS detector.  Each entry
counts the flows it excused and those it covered only after its expiry (``exclusion_stats``).

Memory is bounded: ``max_groups`` open windows per rule (the least recently
updated window closes early beyond it and is evaluated then), ``max_cached``
content summaries, ``alerts.MAX_UIDS`` uids per finding.
"""
from __future__ import annotations

from collections import Counter, OrderedDict

from ..content import classes as data_classes
from .alerts import Cover, build_alert, mask_samples, window_object
from .detectors import DETECTORS
from .rules import Rule, SEVERITIES, parse_severity, thresholds_met
from .view import FlowView, group_value, metric_value
from .window import WindowStore

__all__ = ["PolicyEngine", "evaluate", "exit_status", "cover_metric"]


def _class_group(name: str):
    """The group (customer, shipment, edi) of a data class, the group itself for a record kind."""
    if name in data_classes.GROUPS:
        return name
    dc = data_classes.get(name)
    return dc.group if dc is not None else None


def cover_metric(c: Cover, metric: str, classes=None) -> float:
    """The value of a metric over the flows of a window."""
    if metric == "flows":
        return c.flows
    if metric == "span":
        return (c.last_ts - c.first_ts) if c.flows else 0.0
    if metric == "destinations":
        return len(c.dsts)
    return metric_value(c, metric, classes)     # the per-flow metrics, summed over the window


def _shown(v):
    return round(v, 3) if isinstance(v, float) and not v.is_integer() else int(v)


class _Aggregator:
    """One aggregate rule: a window per group key, thresholds on the window's sums."""

    def __init__(self, rule: Rule, engine: "PolicyEngine"):
        self.rule = rule
        self.engine = engine
        self.agg = rule.aggregate
        self.store = WindowStore(self.agg.window, Cover, grace=engine.grace, max_keys=engine.max_groups)

    def observe(self, fv: FlowView, content) -> None:
        key = tuple(group_value(fv, k) for k in self.agg.group_by)
        self.store.get(key, fv.ts).state.add_flow(fv, content)

    def flush(self, now, final: bool) -> list:
        out = []
        classes = self.rule.match.data
        for w in (self.store.close_all() if final else self.store.due(now)):
            c: Cover = w.state
            if not thresholds_met(self.agg.threshold, lambda m: cover_metric(c, m, classes)):
                continue
            window = window_object(w, self.agg.window, self.agg.group_by)
            shown = {m: _shown(cover_metric(c, m, classes)) for m in self.agg.threshold}
            out.append(self.engine.alert(self.rule, c, window=window, thresholds=shown))
        return out


class PolicyEngine:
    """Rules applied to flow records and protocol log records as they come (see the module docstring)."""

    def __init__(self, rules, site=None, *, max_groups: int = 100_000, grace: float = 360.0,
                 max_cached: int = 200_000):
        self.site = site
        self.grace = float(grace)
        self.max_groups = int(max_groups)
        self.max_cached = int(max_cached)
        self.rules = [r for r in rules if r.enabled]
        self.flow_rules = [r for r in self.rules if r.kind == "flow"]
        self.aggregators = [_Aggregator(r, self) for r in self.rules if r.kind == "aggregate"]
        self.detectors = [DETECTORS[r.detector](r, self) for r in self.rules if r.kind == "detector"]
        self.dns_detectors = [d for d in self.detectors if d.WANTS_DNS]
        self.now: float | None = None
        self.exclusions = tuple(getattr(site, "exclusions", ()) or ())
        self._excused: Counter = Counter()          # entry index -> flows (and DNS queries) excused
        self._expired: Counter = Counter()          # entry index -> flows it covered after its expiry
        self._content: "OrderedDict[str, dict]" = OrderedDict()
        self._flows: "OrderedDict[str, FlowView]" = OrderedDict()
        self.counts: Counter = Counter()
        self.alerts_by_sid: Counter = Counter()

    # -- inputs ---------------------------------------------------------------------------
    def _advance(self, t) -> None:
        if t is not None and (self.now is None or t > self.now):
            self.now = float(t)

    def observe_flow(self, rec: dict) -> list:
        """One ended flow record (``flows.jsonl`` shape); returns the per-flow alerts it raised."""
        fv = FlowView(rec, self.site)
        self.counts["flows"] += 1
        self._advance(fv.end)
        uid = fv.uid
        content = self._content.get(uid) if uid is not None else None
        if uid is not None and ("dns" in fv.services or fv.dst_port == 53 or fv.src_port == 53):
            self._remember(self._flows, uid, fv)
        if self.exclusions and self._excluded(fv):
            return []
        out = []
        for r in self.flow_rules:
            if r.flow_ok(fv):
                c = Cover()
                c.add_flow(fv, content)
                shown = {m: _shown(metric_value(fv, m, r.match.data)) for m in r.threshold}
                out.append(self.alert(r, c, ts=fv.ts, thresholds=shown))
        for a in self.aggregators:
            if a.rule.flow_ok(fv):
                a.observe(fv, content)
        for d in self.detectors:
            if d.rule.flow_ok(fv):
                d.observe_flow(fv, content)
        return out

    def observe_flows(self, recs) -> list:
        """A batch of ended flows, then a flush by time: the ``policy`` callable of ``live``."""
        out = []
        for r in recs:
            out.extend(self.observe_flow(r))
        out.extend(self.flush())
        return out

    __call__ = observe_flows        # the engine is itself a ``LiveSession(policy=...)`` callable

    def observe_log(self, log: str, rec: dict) -> list:
        """A protocol log record: ``content`` records (evidence) and ``dns`` records (DNS tunnelling);
        other logs are ignored.  Returns the alerts raised at once (none today: DNS findings are
        windowed and come out of :meth:`flush`)."""
        if log == "content":
            uid = rec.get("uid")
            if uid is not None:
                self._remember(self._content, uid, self.content_summary(rec))
                self.counts["content"] += 1
        elif log == "dns":
            self.counts["dns"] += 1
            try:
                self._advance(float(rec.get("ts")))
            except (TypeError, ValueError):
                pass
            if self.exclusions and self._dns_excluded(rec):
                return []
            for d in self.dns_detectors:
                d.observe_dns(rec)
        return []

    # -- exclusions ----------------------------------------------------------------------------
    def _applies(self, i: int, e, ts: float) -> bool:
        """Entry ``i`` covers an event at ``ts``: excused when not past its expiry, else counted."""
        if ts <= e.until:
            self._excused[i] += 1
            return True
        self._expired[i] += 1
        return False

    def _excluded(self, fv: FlowView) -> bool:
        classes = [c for c, v in fv.data.items() if v]
        classes += [k for k in ("customer", "shipment") if fv.records.get(k)]
        for i, e in enumerate(self.exclusions):
            if e.source_ok(fv.src, fv.src_role) and \
                    e.destination_ok(fv.dst_name, fv.dst, fv.dst_asn, fv.dst_group) and \
                    e.data_ok(classes, _class_group) and self._applies(i, e, fv.ts):
                return True
        return False

    def _dns_excluded(self, rec: dict) -> bool:
        name, src = rec.get("query"), rec.get("id.orig_h")
        if not isinstance(name, str) or src is None:
            return False
        role = self.site.role(src) if self.site is not None else None
        try:
            ts = float(rec.get("ts") or 0.0)
        except (TypeError, ValueError):
            ts = 0.0
        for i, e in enumerate(self.exclusions):
            if e.domains and e.source_ok(src, role) and e.destination_ok(name) and self._applies(i, e, ts):
                return True
        return False

    def exclusion_stats(self) -> list:
        """Per exclusion: its entry (file:line), owner, reason, expiry, the flows (and DNS queries) it
        excused and those it covered after it expired (not excused: the entry needs review)."""
        return [{**e.to_dict(), "excused": self._excused[i], "after_expiry": self._expired[i]}
                for i, e in enumerate(self.exclusions)]

    def flush(self, now: float | None = None, final: bool = False) -> list:
        """Alerts of the windows that closed (all of them with ``final``), ordered by time."""
        if now is not None:
            self._advance(now)
        out = []
        for a in self.aggregators:
            out.extend(a.flush(self.now, final))
        for d in self.detectors:
            out.extend(d.flush(self.now, final))
        out.sort(key=lambda a: (a["timestamp"] or "", a["alert"]["signature_id"]))
        return out

    # -- helpers for detectors ---------------------------------------------------------------
    @staticmethod
    def content_summary(rec: dict) -> dict:
        """What an alert needs from a content record; samples are masked here, raw values never kept."""
        return {"samples": mask_samples(rec.get("samples") or {}),
                "edi_counts": dict(rec.get("edi_counts") or {}),
                "data": dict(rec.get("data") or {}),
                "records": dict(rec.get("records") or {})}

    def _remember(self, cache: OrderedDict, key, value) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.max_cached:
            cache.popitem(last=False)

    def content_for(self, uid) -> dict | None:
        return self._content.get(uid) if uid is not None else None

    def flow_for(self, uid) -> FlowView | None:
        return self._flows.get(uid) if uid is not None else None

    def alert(self, rule: Rule, cover: Cover, **kw) -> dict:
        self.alerts_by_sid[rule.id] += 1
        return build_alert(rule, cover, site_name=self.site.name if self.site is not None else None, **kw)

    def stats(self) -> dict:
        evicted = sum(a.store.evictions for a in self.aggregators) + sum(d.store.evictions for d in self.detectors)
        return {"rules": len(self.rules), "flows": self.counts["flows"], "dns_records": self.counts["dns"],
                "content_records": self.counts["content"], "alerts": sum(self.alerts_by_sid.values()),
                "alerts_by_signature": {str(k): v for k, v in sorted(self.alerts_by_sid.items())},
                "windows_closed_early": evicted, "exclusions": self.exclusion_stats()}


def evaluate(rules, flows, logs: dict | None = None, site=None, **engine_kw) -> list:
    """Run the policy over records already at hand (a ``ScanResult``'s ``flows`` and ``logs``, or the
    JSON Lines files read back): content and DNS records first, then the flows, then a final flush."""
    eng = PolicyEngine(rules, site, **engine_kw)
    logs = logs or {}
    for name in ("content", "dns"):
        for rec in logs.get(name, ()):
            eng.observe_log(name, rec)
    out = []
    for rec in flows:
        out.extend(eng.observe_flow(rec))
    out.extend(eng.flush(final=True))
    return out


def exit_status(alerts, fail_on) -> int:
    """``scan --fail-on SEVERITY``: 1 when an alert at or above ``fail_on`` (a name or 1-4; 1 is the most
    severe) was raised, else 0.  ``fail_on`` None: always 0."""
    if fail_on is None:
        return 0
    limit = parse_severity(fail_on)
    for a in alerts:
        sev = (a.get("alert") or {}).get("severity") if isinstance(a, dict) else None
        if isinstance(sev, int) and sev <= limit:
            return 1
    return 0


__all__ += ["SEVERITIES"]
