"""The one path from packets to records: ``run(source, settings, sinks)``.

``scan``, ``live`` and ``batch`` differ only in their source and their sinks::

    source ──PacketBatch──▶ Scanner (decode ▶ flows ▶ protocols ▶ content) ──▶ sinks
                               │ ended flows, protocol/content records        ▲
                               └──────────────▶ policy engine ──alerts────────┘

* A **source** (``inspector.sources``) has ``batches(pipe)``, an iterator of
  :class:`~inspector.ingest.PacketBatch` (fed to the Scanner), :class:`Idle`
  (packet time advanced with no packets: flows whose timers ran out end) or
  ``None`` (a heartbeat: nothing arrived, the sinks get a ``tick``).  It
  accounts what it read through ``pipe.account_reader`` / ``pipe.account`` and
  reports capture problems through ``pipe.add_weird``.
* **Sinks** (:class:`Sink`) receive ended-flow batches, protocol log records
  (``content`` included), weird records and alerts, then ``tick`` after every
  source item and ``finish`` once at the end.
* The **policy engine** (``settings.new_policy()``) runs here, the same way for
  every mode: it observes each batch of ended flows and the ``dns``/``content``
  records, and windows close in packet time (a flush after every flow batch),
  then once more at the end.

Deterministic and free of wall-clock time: the same packets give the same records
whichever source delivered them and however they were batched.
"""
from __future__ import annotations

import contextlib
import gc
from contextlib import contextmanager
from typing import Callable, Iterable

from .scan import Scanner
from .settings import Settings

#: The protocol logs the policy engine reads (others are not worth the call).
POLICY_LOGS = ("dns", "content")


class Idle:
    """A source item: no packets, but packet time is now ``ts`` (an idle live link)."""
    __slots__ = ("ts",)

    def __init__(self, ts: float):
        self.ts = ts


class Sink:
    """Where records go.  Every method is optional; the default does nothing."""

    def flows(self, recs: list) -> None:
        """A batch of ended flow records (``flows.jsonl`` shape), in the order they ended."""

    def log(self, name: str, rec: dict) -> None:
        """One protocol log record (``http``, ``dns``, ``content``...)."""

    def weirds(self, recs: list) -> None:
        """Weird records (``ts, uid, name, detail``), as they are noticed."""

    def alerts(self, alerts: list) -> None:
        """Alerts (EVE dicts) as the policy engine raises them."""

    def tick(self, pipe: "Pipeline") -> None:
        """After every source item (a batch, an idle sweep or a heartbeat)."""

    def finish(self, pipe: "Pipeline") -> None:
        """Once, after the last record."""


class Pipeline:
    """The Scanner and the policy engine of one run, fanning records out to the sinks.

    ``policy`` overrides the engine ``settings`` would build (any object with
    ``observe_flows``, ``observe_log`` and ``flush``); ``engine="python"`` runs
    the plain-Python reference flow table (tests cross-check the two).  ``share=(k, n)``
    makes it worker ``k`` of a parallel scan (``inspector.parallel``): no policy engine (the
    parent runs the one engine over every worker's records), a Scanner that analyses its share."""

    def __init__(self, settings: Settings, sinks: Iterable[Sink] = (), *, policy=None, engine: str = "kernel",
                 share: tuple | None = None):
        self.settings = settings
        self.sinks = list(sinks)
        if share is not None:
            self.policy = None
        else:
            self.policy = policy if policy is not None else (settings.new_policy() if settings.analysis else None)
        self.scanner = Scanner(site=settings.site, max_flows=settings.max_flows, on_flows=self._on_flows,
                               engine=engine, enricher=settings.enricher, log_sink=self._on_log,
                               app=settings.analysis, content=settings.content, share=share)
        self.alerts_raised = 0
        self.last_ts: float | None = None      # packet time of the last packet fed
        self.finished = False

    @property
    def site(self):
        return self.settings.site

    # -- records out -------------------------------------------------------------------------
    def _on_flows(self, recs: list) -> None:
        for s in self.sinks:
            s.flows(recs)
        if self.policy is not None:
            # observe_flows ends with a flush by the engine's own clock (DNS records advance it too), so it
            # runs after every batch, even one in which no flow ended
            alerts = list(self.policy.observe_flows(recs))
            if recs:   # windows that closed in packet time fire now, in every mode
                alerts.extend(self.policy.flush(now=max((r.get("ts") or 0.0) + (r.get("duration") or 0.0)
                                                        for r in recs)))
            self._alerts(alerts)

    def _on_log(self, name: str, rec: dict) -> None:
        for s in self.sinks:
            s.log(name, rec)
        if self.policy is not None and name in POLICY_LOGS:
            self._alerts(self.policy.observe_log(name, rec))

    # What a parallel scan's parent hands on from its workers (inspector.parallel).
    def deliver_flows(self, recs: list) -> None:
        """Ended flows analysed elsewhere: to the sinks and the policy engine, as the Scanner's would go."""
        self._on_flows(recs)

    def deliver_log(self, name: str, rec: dict) -> None:
        self._on_log(name, rec)

    def deliver_weirds(self, recs: list) -> None:
        for s in self.sinks:
            s.weirds(recs)

    def _alerts(self, alerts) -> None:
        alerts = [a for a in alerts or () if a]
        if alerts:
            self.alerts_raised += len(alerts)
            for s in self.sinks:
                s.alerts(alerts)

    def _drain_weirds(self) -> None:
        sc = self.scanner
        if sc.weird_records:
            recs = list(sc.weird_records)
            sc.weird_records.clear()
            for s in self.sinks:
                s.weirds(recs)

    # -- packets in --------------------------------------------------------------------------
    def feed(self, batch) -> None:
        """Analyse one PacketBatch (the source has accounted for it)."""
        if len(batch):
            self.scanner.feed(batch)
            self.last_ts = float(batch.ts[-1])
        self._drain_weirds()

    def sweep(self, now: float) -> int:
        """End the flows whose timers ran out by packet time ``now``; returns how many."""
        sc = self.scanner
        if self.last_ts is None or now <= sc.table.now:
            return 0
        n = sc.sweep(now)
        self._drain_weirds()
        return n

    def account(self, packets: int, nbytes: int) -> None:
        """Packets and bytes read by a source that has no CaptureReader (live capture)."""
        self.scanner.packets_read += packets
        self.scanner.bytes_read += nbytes

    def account_reader(self, reader) -> None:
        """A capture file read to its end: its counters and reader events."""
        self.scanner.account_reader(reader)
        self._drain_weirds()

    def add_weird(self, name: str, detail: str, ts: float | None = None, uid=None) -> None:
        """A weird a source noticed (capture drops, a bad record); ``ts`` defaults to the last packet's."""
        self.scanner.add_weird(ts if ts is not None else self.last_ts, uid, name, detail)
        self._drain_weirds()

    def tick(self) -> None:
        for s in self.sinks:
            s.tick(self)

    def finish(self) -> None:
        """End every flow still open, the policy's last windows, then the sinks.  Idempotent."""
        if self.finished:
            return
        self.finished = True
        self.scanner.finish()
        if self.policy is not None:
            self._alerts(self.policy.flush(final=True))
        self._drain_weirds()
        for s in self.sinks:
            s.finish(self)
        self.scanner.release()

    def stats(self) -> dict:
        """The Scanner's counters plus the site name and the alerts raised."""
        st = self.scanner.stats()
        st["site"] = self.site.name
        st["alerts"] = self.alerts_raised
        return st


def run(source, settings: Settings, sinks: Iterable[Sink] = (), *, policy=None,
        engine: str = "kernel", share: tuple | None = None, tune_gc: bool = False) -> Pipeline:
    """Drive ``source`` through one Pipeline into ``sinks``; returns the finished Pipeline.

    On an exception (a signal, a failing sink) what was read is still flushed (flows
    ended, sinks finished) before it propagates.  ``tune_gc``: run under
    ``collector_tuned`` (for a process that runs one pipeline and exits: the scan and live
    commands)."""
    pipe = Pipeline(settings, sinks, policy=policy, engine=engine, share=share)
    with collector_tuned() if tune_gc else contextlib.nullcontext():
        drive(pipe, source)
    return pipe


@contextmanager
def collector_tuned():
    """Python's cyclic garbage collector, set for a long run over many live objects.

    With tens of thousands of open connections (sessions, flow views, windows), the default
    thresholds start a collection every 700 allocations and each one walks every young object:
    a quarter of a scan's CPU went there.  Collections run 70 times less often during the run;
    reference counting still frees almost everything at once (the per-connection cycle is cut
    when a connection ends).  The previous thresholds come back afterwards.

    Only for a process that runs one pipeline (``run(..., tune_gc=True)``: the scan and live
    commands).  The run's own object graph (pipeline, scanner, flow table arrays) is cyclic; with
    collections this rare it reaches the oldest generation and is reclaimed late, so a process that
    runs scan after scan (tests, batch workers) would grow by a flow table per run.  Nothing is
    frozen (``gc.freeze``): that kept every earlier run's uncollected garbage for good (33 MB more
    per scan; ``tests/test_pipeline.py``)."""
    old = gc.get_threshold()
    gc.set_threshold(50_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def drive(pipe: "Pipeline", source) -> None:
    """Feed every item of ``source`` to ``pipe``, then finish it (also when an exception propagates)."""
    try:
        for item in source.batches(pipe):
            if item is None:
                pass
            elif isinstance(item, Idle):
                pipe.sweep(item.ts)
            else:
                pipe.feed(item)
            pipe.tick()
    except BaseException:
        pipe.finish()
        raise
    pipe.finish()


# ----------------------------------------------------------------------------------------------
# the Python API: scan files into memory
# ----------------------------------------------------------------------------------------------

class Collect(Sink):
    """Keeps everything in memory: ``flow_records``, ``logs`` (name -> records), ``weird``,
    ``alert_records``; ``on_flows``/``log_sink`` stream flows/log records to the caller instead."""

    def __init__(self, on_flows: Callable | None = None, log_sink: Callable | None = None):
        self.on_flows = on_flows
        self.log_sink = log_sink
        self.flow_records: list = []
        self.logs: dict = {}
        self.weird: list = []
        self.alert_records: list = []

    def flows(self, recs):
        if self.on_flows is not None:
            self.on_flows(recs)
        else:
            self.flow_records.extend(recs)

    def log(self, name, rec):
        if self.log_sink is not None:
            self.log_sink(name, rec)
        else:
            self.logs.setdefault(name, []).append(rec)

    def weirds(self, recs):
        self.weird.extend(recs)

    def alerts(self, alerts):
        self.alert_records.extend(alerts)


def sorted_weirds(recs: list) -> list:
    """Weird records in ``weird.jsonl`` order: by time (untimed last), name, uid, detail."""
    return sorted(recs, key=lambda w: (w["ts"] is None, w["ts"] or 0.0, w["name"], w["uid"] or "", w["detail"]))


def run_scan(paths: list, site=None, progress: Callable | None = None, max_flows: int = 1_000_000,
             engine: str = "kernel", on_flows: Callable | None = None, enricher=None,
             log_sink: Callable | None = None, content=None, app: bool = True):
    """Scan capture files, directories, globs or '-' (stdin) into a ``ScanResult`` (no policy stage).

    Flows come in the order they end (as in Zeek's conn.log).  With ``on_flows``
    they are handed to that callable batch by batch instead of being kept."""
    from .scan import ScanResult
    from .sources.files import FileSource
    settings = Settings(site=site, enricher=enricher, content=content, max_flows=max_flows, analysis=app)
    src = FileSource(paths, progress=progress)
    sink = Collect(on_flows=on_flows, log_sink=log_sink)
    pipe = run(src, settings, [sink], engine=engine)
    res = ScanResult()
    res.errors = list(src.errors)
    res.inputs_ok = src.inputs_ok
    res.flows = sink.flow_records
    res.logs = sink.logs
    res.weirds = sorted_weirds(sink.weird)
    res.stats = pipe.scanner.stats()
    res.stats["inputs_failed"] = res.errors
    return res
