"""The analysis core: decode -> flows -> application layer (protocols, content) -> records.

``Scanner`` is what ``inspector.pipeline`` drives for every mode (scan, live,
batch); sources feed it packet batches and the pipeline hands what it emits to
the sinks.  Deterministic and free of wall-clock time: the same packets give
the same records.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .content.files import PII_FIELDS as FILES_PII
from .content.sink import ContentSink, add_empty_fields
from .decode import Decoder
from .dispatch import Dispatcher, ProtocolLogs
from .enrich.flows import DestinationNames, EnrichStage, NameEvents, enrich_placeholders
from .flows.reference import PyFlowTable
from .flows.table import FlowBatch, FlowTable
from .outputs.schema import CONN_FLOW_FIELDS, FLOWS, WEIRD, names
from .protocols import contributions

# Field orders, from the stream declarations (inspector/outputs/schema.py owns them).
CONN_FIELDS = names(CONN_FLOW_FIELDS)
FLOW_FIELDS = FLOWS.names
WEIRD_FIELDS = WEIRD.names
WEIRD_RECORD_CAP = 1000   # weird records kept per name; stats.json counts them all


@dataclass
class ScanResult:
    flows: list = field(default_factory=list)       # flow records (dicts, FLOW_FIELDS order)
    logs: dict = field(default_factory=dict)        # protocol log name -> records (http, tls, dns...)
    weirds: list = field(default_factory=list)      # weird records (dicts, WEIRD_FIELDS order)
    stats: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)      # one line per unreadable input
    inputs_ok: int = 0


class Scanner:
    """Stateful analysis of one run: ``feed`` packet batches, ``finish`` at the end.

    Ended flows go to ``on_flows`` (else ``flow_records``), protocol records to
    ``log_sink``; weirds collect in ``weird_records`` (``inspector.pipeline``
    drains them to its sinks).

    With the application layer on (``app``), the flow table is observed by the protocol
    dispatcher; ended flows then go through destination naming and enrichment
    (``enrich.flows``) and the content sink (``content.sink``), which add their columns, before
    they are handed on.  Protocol log records (and content records) take one path out,
    ``ProtocolLogs``, which masks the PII the protocol modules declare.
    """

    def __init__(self, site=None, max_flows: int = 1_000_000, on_flows: Callable | None = None,
                 engine: str = "kernel", enricher=None, log_sink: Callable | None = None, app: bool = True,
                 content=None, share: tuple | None = None):
        """``share=(k, n)``: worker ``k`` of a parallel scan of ``n`` (``inspector.parallel``): it
        analyses the flows it owns (``FlowTable.share``), reports the reader's counters and the
        weirds of no flow only as worker 0, and leaves naming and enrichment to the parent (the
        evidence is kept as ``NameEvents``, the enrichment fields as placeholders)."""
        from .site import Site
        self.site = site if site is not None else Site.default()
        self.decoder = Decoder()
        self.engine = engine
        self.dispatcher = None
        self.content = None
        self.logs = None
        if engine == "kernel":
            if app:
                contrib = contributions()
                pii = dict(contrib.pii)
                pii.update(FILES_PII)
                self.logs = ProtocolLogs(pii, show_raw=content is not None and content.show_raw, sink=log_sink)
                if content is not None:
                    self.content = ContentSink(content, self.site, contrib.encrypted, emit=self.logs)
                names = NameEvents() if share is not None else \
                    DestinationNames(contrib.name_sources, fallbacks=contrib.name_fallbacks)
                self.enrich = EnrichStage(names, enricher)
                self.dispatcher = Dispatcher(contrib, self.logs, content=self.content, names=names)
                self.logs.capture_of = self.dispatcher.capture_of
            self.table = FlowTable(site=self.site, max_flows=max_flows, observer=self.dispatcher, share=share)
        else:  # the plain-Python reference implementation (tests cross-check the two)
            self.table = PyFlowTable(max_flows=max_flows)
        self.outcomes: Counter = Counter()
        self.packets_read = 0
        self.bytes_read = 0
        self.weird_records: list = []
        self.weird_counts: Counter = Counter()
        self.flow_records: list = []
        self.flows_emitted = 0
        self.on_flows = on_flows
        self.share = share
        self.files: list = []
        self.capture = None        # the input being read (set_capture), None for live without a ring

    def _emit(self, flows: Iterable) -> None:
        if self.engine == "kernel":
            if self.dispatcher is not None and flows:
                if self.share is not None:
                    enrich_placeholders(flows)
                else:
                    self.enrich.apply(flows)
                if self.content is not None:
                    self.content.finish(flows)
                else:
                    add_empty_fields(flows)
            # a parallel scan's worker keeps each record's place in the ended order (FlowBatch.seq)
            recs = FlowBatch(flows, seq=flows.seq) if self.share is not None else list(flows)
        else:
            recs = []
            for f in flows:
                rec = f.record(self.site)
                rec["capture"] = f.capture
                recs.append(rec)
                for ts, name, detail in f.weirds or ():
                    self.add_weird(ts, f.uid, name, detail)
        self.flows_emitted += len(recs)
        if self.on_flows is not None:
            self.on_flows(recs)
        else:
            self.flow_records.extend(recs)

    def add_weird(self, ts, uid, name, detail) -> None:
        """Record a weird: counted always, kept as a record up to WEIRD_RECORD_CAP per name."""
        if uid is None and self.share is not None and self.share[0] != 0:
            return      # worker 0 of a parallel scan reports what belongs to no flow
        n = self.weird_counts[name]
        self.weird_counts[name] = n + 1
        if n < WEIRD_RECORD_CAP:
            self.weird_records.append({"ts": ts, "uid": uid, "name": name, "detail": detail,
                                       "capture": self.capture})

    def feed(self, batch) -> None:
        db = self.decoder.decode(batch)
        self.outcomes.update(db.outcomes)
        self._emit(self.table.process(db))
        self._drain_table_weirds()

    def sweep(self, now: float) -> int:
        """End the flows whose timers ran out by packet time ``now`` (an idle link in live mode),
        hand them on like any ended batch; returns how many ended."""
        recs = FlowBatch() if self.engine == "kernel" else []
        self.table.sweep(now, recs)
        self._emit(recs)
        self._drain_table_weirds()
        return len(recs)

    def _drain_table_weirds(self) -> None:
        for ts, uid, name, detail in self.table.weirds:
            self.add_weird(ts, uid, name, detail)
        self.table.weirds.clear()
        for stage in (self.dispatcher, self.content):
            if stage is not None:
                for ts, uid, name, detail in stage.weirds:
                    self.add_weird(ts, uid, name, detail)
                stage.weirds.clear()

    def set_capture(self, path: str | None) -> None:
        """Name the input whose packets follow (flows, logs and weirds carry it as ``capture``)."""
        self.capture = path
        self.table.set_capture(path)

    def account_reader(self, reader) -> None:
        """A capture file read to its end (an ``ingest.CaptureReader``): counters, events, file entry."""
        st = reader.stats
        self.packets_read += st.packets_read
        self.bytes_read += st.bytes_read
        for ev in st.events:
            if ev.packets:
                self.outcomes[ev.name] += ev.packets
            self.add_weird(ev.ts, None, ev.name, f"{reader.path}: {ev.detail}")
        self.files.append({"path": reader.path, "format": reader.kind, "packets_read": st.packets_read,
                           "bytes_read": st.bytes_read})

    def finish(self) -> None:
        now = self.table.now
        for ts, name, detail, _row in self.decoder.flush(now):
            self.add_weird(ts, None, name, detail)
        self._emit(self.table.flush())
        self._drain_table_weirds()

    def release(self) -> None:
        """The run is over: hand the flow table's arrays back now.  The Scanner, its table and the
        dispatcher refer to each other, so without this they (tens of MB of arrays) would wait for
        a full collection, and a process running scan after scan (tests, batch workers) piles them up."""
        release = getattr(self.table, "release", None)
        if release is not None:
            release()

    def stats(self) -> dict:
        outcomes = dict(sorted(self.outcomes.items()))
        weird_counts = self.weird_counts
        return {
            "packets_read": self.packets_read,
            "bytes_read": self.bytes_read,
            "outcomes": outcomes,
            "flows": self.flows_emitted,
            "weirds": dict(sorted(weird_counts.items())),
            "flows_evicted": self.table.evicted,
            "files": self.files,
        }
