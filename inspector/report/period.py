"""report.html for a run that never ends: one report per output period of ``inspector live``.

Live outputs rotate (``flows.jsonl`` becomes ``flows-YYYYmmddTHHMMSS.jsonl``); the report
follows them.  ``PeriodReport`` is fed the flows and alerts as they are written
(``add_flows``, ``add_alerts``); when the flow log rotates, ``rotate(suffix)`` writes
``report-<suffix>.html`` beside ``flows-<suffix>.jsonl`` (the same period, the same
stamp) and starts a new period; at exit ``write()`` writes ``report.html`` for the
period still open, beside the current ``flows.jsonl``.  A ``report.html`` left by an earlier
run follows its ``flows.jsonl`` (``retire_leftover``).  Both are written atomically
(temp file + rename), so a browser or a copy job never sees half a page.

Memory stays bounded over days: flows go into an ``Aggregates`` (bounded tables, not the
records), and at most ``max_alerts`` alerts are kept per period (the most severe first
when there are more; the page says how many were left out).  The packet and byte figures
are those of the period (the run's totals less those at the period's start).
"""
from __future__ import annotations

import os
from typing import Callable, Optional

from .html import iter_jsonl, write_report
from .summary import Aggregates, severity_rank

__all__ = ["PeriodReport", "MAX_ALERTS"]

MAX_ALERTS = 5000
_DELTA_KEYS = ("packets_read", "bytes_read")


class PeriodReport:
    """See the module docstring.  ``role_of``: address -> role (``site.role``)."""

    def __init__(self, out_dir: str, site_name: str, role_of: Optional[Callable] = None,
                 max_alerts: int = MAX_ALERTS, name: str = "report"):
        self.out_dir = out_dir
        self.site_name = site_name
        self.role_of = role_of
        self.max_alerts = max(1, int(max_alerts))
        self.name = name
        self.written: list = []          # report files written, in order (base names)
        self._base: dict = {}
        self._new_period()

    def _new_period(self, stats: Optional[dict] = None) -> None:
        self.agg = Aggregates(role_of=self.role_of)
        self.alerts: list = []
        self.alerts_total = 0
        if stats is not None:
            self._base = {k: stats.get(k) or 0 for k in _DELTA_KEYS}

    def add_flows(self, recs) -> None:
        self.agg.add(recs)

    def add_alerts(self, alerts) -> None:
        for a in alerts:
            if not isinstance(a, dict):
                continue
            self.alerts_total += 1
            self.alerts.append(a)
        if len(self.alerts) > 2 * self.max_alerts:
            self._trim()

    def _trim(self) -> None:
        """Keep the ``max_alerts`` most severe (the earliest among equals), in firing order."""
        if len(self.alerts) <= self.max_alerts:
            return
        ranked = sorted(range(len(self.alerts)),
                        key=lambda i: (severity_rank((self.alerts[i].get("alert") or {}).get("severity")), i))
        keep = sorted(ranked[:self.max_alerts])
        self.alerts = [self.alerts[i] for i in keep]

    def _period_stats(self, stats: Optional[dict]) -> dict:
        st = dict(stats or {})
        for k in _DELTA_KEYS:
            if isinstance(st.get(k), (int, float)):
                st[k] = st[k] - (self._base.get(k) or 0)
        st["flows"] = self.agg.flows
        st["alerts"] = self.alerts_total
        st.pop("files", None)
        if self.alerts_total > len(self.alerts):
            st["alerts_not_shown"] = self.alerts_total - len(self.alerts)
        return st

    def write(self, stats: Optional[dict] = None, suffix: Optional[str] = None,
              content_path: Optional[str] = None) -> str:
        """Write the open period's report: ``report.html``, or ``report-<suffix>.html``; returns its path."""
        self._trim()
        fname = f"{self.name}-{suffix}.html" if suffix else f"{self.name}.html"
        path = os.path.join(self.out_dir, fname)
        content = iter_jsonl(content_path) if content_path and os.path.exists(content_path) else None
        write_report(path, self.agg, self.alerts, self._period_stats(stats), self.site_name, content=content)
        self.written.append(fname)
        return path

    def retire_leftover(self, suffix: str) -> Optional[str]:
        """An earlier run's ``report.html`` follows its ``flows.jsonl``, renamed ``flows-SUFFIX.jsonl``
        when this run started: it becomes ``report-SUFFIX.html`` (``-1``, ``-2``... on a clash)."""
        path = os.path.join(self.out_dir, f"{self.name}.html")
        if not os.path.exists(path):
            return None
        k, dest = 0, os.path.join(self.out_dir, f"{self.name}-{suffix}.html")
        while os.path.exists(dest):
            k += 1
            dest = os.path.join(self.out_dir, f"{self.name}-{suffix}-{k}.html")
        os.replace(path, dest)
        return dest

    def rotate(self, suffix: str, stats: Optional[dict] = None, content_path: Optional[str] = None) -> str:
        """The period ended (the flow log rotated to ``flows-<suffix>``): write its report, start anew."""
        path = self.write(stats, suffix=suffix, content_path=content_path)
        self._new_period(stats if stats is not None else {})
        return path
