"""Processing one capture: the unit of work of a batch, run in a worker process (local or Dask).

``process_capture(task, settings)`` runs one capture file through its own
``inspector.pipeline`` run, the same pipeline ``scan`` runs, policy stage
included; ``process_chain(tasks, settings)`` runs consecutive captures of one
host (see ``chains``) as one stream, so a connection split over two rotated
files is one flow, stored with the capture holding its first packet.  Each
capture's result is a
``CaptureResult``: the flows as an Arrow table (``FLOW_FIELDS`` plus the batch
columns ``capture_sha256``, ``host``, ``seq``, ``role``, ``night``), the alerts
(EVE dicts), the scan's ``stats`` and error lines.  It writes nothing: the
coordinator stores results, so workers may run on other machines (they need
the same paths for captures, site file and signatures) and a killed worker
loses nothing.

Pure and deterministic: the same capture bytes (and chain) and settings give
the same result, wherever it runs.  ``WorkerSettings`` is the picklable description;
the loaded ``Settings`` (site, geo data, signatures, rules) are built from it
once per worker process and reused.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field

import pyarrow as pa

from ..enrich.label import flow_destination_label
from ..pipeline import Sink
from ..settings import SettingsSpec

BATCH_COLUMNS = ("capture_sha256", "host", "seq", "role", "night")
_BATCH_TYPES = {"capture_sha256": pa.string(), "host": pa.string(), "seq": pa.int64(), "role": pa.string(),
                "night": pa.date32()}


@dataclass(frozen=True)
class WorkerSettings(SettingsSpec):
    """Everything a worker needs to process a capture: the run's ``SettingsSpec`` (plain values,
    picklable, hashable) plus the time zone whose calendar dates are the nights."""
    tz: str = "UTC"                    # nights are calendar dates in this time zone


@dataclass
class CaptureResult:
    sha256: str
    path: str
    host: str
    rel: str
    size: int
    status: str = "done"               # done | error (not a capture, unreadable: recorded) | failed (retried)
    error: str | None = None
    flows: pa.Table | None = None
    alerts: list = field(default_factory=list)
    daily: list = field(default_factory=list)        # per-night aggregates (DAILY_COLUMNS rows)
    stats: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    evidence: list = field(default_factory=list)     # per connection: content record, HTTP methods, DNS queries
    policy: bool = False               # whether the policy engine ran
    elapsed: float = 0.0
    worker: str = ""                   # host:pid of the process that scanned it


# ----------------------------------------------------------------------------------------------
# per-process state
# ----------------------------------------------------------------------------------------------

_STATE: dict = {}
_LOCK = threading.Lock()


class _State:
    """What a worker process loads once per settings: the run's ``Settings`` (site, destination data,
    content stage, policy rules)."""

    def __init__(self, spec: SettingsSpec):
        from ..settings import Settings
        self.settings = Settings.from_spec(spec)
        self.site = self.settings.site


def watch_parent(parent_pid: int, every: float = 1.0) -> None:
    """Pool initializer: exit when the coordinator is gone (killed with SIGKILL, its workers would otherwise
    wait forever for work that never comes)."""
    def run():
        while True:
            time.sleep(every)
            if os.getppid() != parent_pid:
                os._exit(3)
    threading.Thread(target=run, name="inspector-batch-parent-watch", daemon=True).start()


def state(settings: SettingsSpec) -> _State:
    """The loaded settings of ``settings`` in this process, built on first use (raises SettingsError).
    Keyed by the analysis settings alone: the time zone does not change what is loaded."""
    key = SettingsSpec(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(SettingsSpec)})
    st = _STATE.get(key)
    if st is None:
        with _LOCK:
            st = _STATE.get(key)
            if st is None:
                st = _STATE[key] = _State(key)
    return st


def tz_of(name: str):
    if name in (None, "", "UTC", "utc", "Z"):
        return _dt.timezone.utc
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def night_of(ts: float, tz) -> _dt.date:
    """The night (calendar day in the site's time zone) of a packet time; times outside the
    calendar fall on its first or last day rather than failing the capture."""
    from ..timeutil import calendar_date
    return calendar_date(ts, tz)


# ----------------------------------------------------------------------------------------------
# flows -> Arrow
# ----------------------------------------------------------------------------------------------

def flow_schema() -> pa.Schema:
    from ..outputs.schema import FLOWS
    base = FLOWS.arrow_schema()
    for name in BATCH_COLUMNS:
        base = base.append(pa.field(name, _BATCH_TYPES[name]))
    return base


def local_side(rec: dict):
    """The address inside the site: the responder of inbound connections, else the originator."""
    if rec.get("direction") == "inbound":
        return rec.get("id.resp_h")
    if rec.get("local_orig") or rec.get("direction") in ("outbound", "internal"):
        return rec.get("id.orig_h")
    if rec.get("local_resp"):
        return rec.get("id.resp_h")
    return None


class FlowCollector(Sink):
    """The batch's pipeline sink: flow records -> Arrow record batches with the batch columns, per-night
    aggregates, and the alerts the pipeline's policy stage raised."""

    def __init__(self, sha256: str, host: str, site, tz):
        from ..outputs.schema import FLOWS
        self.fields = FLOWS.names
        self.flow_schema = FLOWS.arrow_schema()
        self.schema = flow_schema()
        self.sha256, self.host, self.site, self.tz = sha256, host, site, tz
        self.alert_records: list = []  # policy alerts, as they fire
        self.batches: list = []
        self.seq = 0
        self._nights: dict = {}
        self.first_ts = None
        self.last_ts = None
        self.exchanges: dict = {}      # uid -> {uid, content, http_methods, dns_queries}
        self.daily: dict = {}          # DAILY_KEY -> [flows, bytes_out, bytes_in, packets_out, cust, ship, t0, t1]

    def _night(self, ts):
        if ts is None:
            return None
        key = int(ts // 900)           # time zones are offset by multiples of 15 minutes
        n = self._nights.get(key)
        if n is None:
            n = self._nights[key] = night_of(ts, self.tz)
        return n

    def alerts(self, alerts) -> None:
        self.alert_records.extend(alerts)

    def log(self, name: str, rec: dict) -> None:
        """Keep what incidents need beyond the flow columns: each leaving connection's content record
        (its salted record and value hashes count records DISTINCT across captures), and per connection
        the HTTP methods and DNS queries (an incident's title says "in 46 HTTP POSTs")."""
        uid = rec.get("uid")
        if not isinstance(uid, str):
            return
        if name == "content":
            self._evidence(uid)["content"] = rec
        elif name == "http":
            m = rec.get("method")
            if isinstance(m, str) and m:
                methods = self._evidence(uid)["http_methods"]
                methods[m.upper()] = methods.get(m.upper(), 0) + 1
        elif name == "dns":
            self._evidence(uid)["dns_queries"] += 1

    def _evidence(self, uid: str) -> dict:
        e = self.exchanges.get(uid)
        if e is None:
            e = self.exchanges[uid] = {"uid": uid, "content": None, "http_methods": {}, "dns_queries": 0}
        return e

    def evidence_rows(self) -> list:
        """The connections incidents may need: those with a content record, and those the capture's
        alerts cover (sorted by uid)."""
        covered = {u for a in self.alert_records for u in (a.get("uids") or ())}
        return [e for u, e in sorted(self.exchanges.items()) if e["content"] is not None or u in covered]

    def flows(self, recs) -> None:
        recs = list(recs)
        if not recs:
            return
        cols = {f: [r.get(f) for r in recs] for f in self.fields}
        n = len(recs)
        roles = []
        for r in recs:
            addr = local_side(r)
            roles.append(self.site.role(addr) if addr else None)
        ts = cols["ts"]
        for t in ts:
            if t is not None:
                self.first_ts = t if self.first_ts is None else min(self.first_ts, t)
                self.last_ts = t if self.last_ts is None else max(self.last_ts, t)
        nights = [self._night(t) for t in ts]
        for r, role, night in zip(recs, roles, nights):
            self._aggregate(r, role, night)
        extra = {"capture_sha256": [self.sha256] * n, "host": [self.host] * n,
                 "seq": list(range(self.seq, self.seq + n)), "role": roles, "night": nights}
        self.seq += n
        cols.update(extra)
        self.batches.append(pa.RecordBatch.from_pydict(cols, schema=self.schema))

    def _aggregate(self, r: dict, role, night) -> None:
        if night is None:
            return
        direction = r.get("direction") or ""
        inbound = direction == "inbound"
        ob, rb = r.get("orig_bytes") or 0, r.get("resp_bytes") or 0
        op, rp = r.get("orig_pkts") or 0, r.get("resp_pkts") or 0
        out_b, in_b, out_p = (rb, ob, rp) if inbound else (ob, rb, op)
        recs = r.get("records") or {}
        key = (night, self.host, role or "", direction, destination_org(r), r.get("dst_country") or "")
        ts = r.get("ts") or 0.0
        a = self.daily.get(key)
        if a is None:
            self.daily[key] = [1, out_b, in_b, out_p, recs.get("customer") or 0, recs.get("shipment") or 0, ts, ts]
        else:
            a[0] += 1
            a[1] += out_b
            a[2] += in_b
            a[3] += out_p
            a[4] += recs.get("customer") or 0
            a[5] += recs.get("shipment") or 0
            if ts < a[6]:
                a[6] = ts
            if ts > a[7]:
                a[7] = ts

    def daily_rows(self) -> list:
        """Per-night aggregates of this capture, DAILY_COLUMNS order, sorted by key."""
        return [list(k) + v for k, v in sorted(self.daily.items())]

    def table(self) -> pa.Table:
        return pa.Table.from_batches(self.batches, schema=self.schema)


#: The per-night aggregate columns (the ``daily`` table; the first six are its key).
DAILY_KEY = ("night", "host", "role", "direction", "dst_org", "dst_country")
DAILY_COLUMNS = DAILY_KEY + ("flows", "bytes_out", "bytes_in", "packets_out", "records_customer",
                             "records_shipment", "first_ts", "last_ts")


def destination_org(r: dict) -> str:
    """The destination label of a flow record (:mod:`inspector.enrich.label`, the one alerts and the
    HTML report use); '' for internal connections (no destination outside the site) and for a
    record without a remote address."""
    if r.get("direction") == "internal":
        return ""
    label, kind = flow_destination_label(r)
    return "" if kind == "unknown" else label


def result_from_records(records: list, sha256: str, host: str, site=None, tz="UTC", alerts=(),
                        path: str | None = None) -> CaptureResult:
    """A ``CaptureResult`` from flow records (dicts, FLOW_FIELDS): what a worker would return for a
    capture holding these flows.  For tests, imports from other tools and synthetic history."""
    from ..site import Site
    coll = FlowCollector(sha256, host, site if site is not None else Site.default(),
                         tz_of(tz) if isinstance(tz, str) or tz is None else tz)
    coll.flows(records)
    res = CaptureResult(sha256=sha256, path=path or f"<records:{sha256[:12]}>", host=host,
                        rel=path or f"<records:{sha256[:12]}>", size=0)
    res.flows = coll.table()
    res.daily = coll.daily_rows()
    res.alerts = list(alerts)
    res.stats = {"flows": len(records), "first_ts": coll.first_ts, "last_ts": coll.last_ts}
    return res


# ----------------------------------------------------------------------------------------------
# the unit of work
# ----------------------------------------------------------------------------------------------

def process_capture(task: dict, settings: WorkerSettings) -> CaptureResult:
    """Scan one capture.  ``task``: ``{sha256, path, host, rel, size}`` (see ``discover.Capture``).
    A capture whose bytes differ from the hash, or that changes while it is read (size, time or
    inode before and after), is ``failed``: the next run reads it again, whole.

    Never raises for a problem with the capture: ``status`` is ``error`` for a file that is not a
    readable capture (recorded, not retried), ``failed`` for anything else (not recorded, retried by
    the next run).
    """
    from ..pipeline import run
    from ..sources.files import FileSource
    from .discover import file_sha256
    started = time.monotonic()
    res = CaptureResult(sha256=task["sha256"], path=task["path"], host=task["host"], rel=task["rel"],
                        size=task.get("size", 0), worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        st = state(settings)
        actual = file_sha256(task["path"])
        if actual != task["sha256"]:
            res.status, res.error = "failed", f"{task['path']}: changed since it was hashed (retried next run)"
            return res
        before = _file_state(task["path"])
        coll = FlowCollector(task["sha256"], task["host"], st.site, tz_of(settings.tz))
        source = FileSource([task["path"]])
        pipe = run(source, st.settings, [coll])
        if _file_state(task["path"]) != before:
            res.status, res.error = "failed", f"{task['path']}: {_CHANGED_WHILE_READ}"
            return res
        res.errors = list(source.errors)
        stats = pipe.scanner.stats()
        stats.pop("files", None)
        stats["first_ts"], stats["last_ts"] = coll.first_ts, coll.last_ts
        res.stats = stats
        if source.inputs_ok == 0:
            res.status = "error"
            res.error = source.errors[0] if source.errors else f"{task['path']}: not readable"
            res.flows = coll.table().slice(0, 0)
            return res
        res.flows = coll.table()
        res.daily = coll.daily_rows()
        if pipe.policy is not None:
            res.alerts = list(coll.alert_records)
            res.policy = True
        res.evidence = coll.evidence_rows()
    except Exception as e:   # a bug or an unexpected environment problem: retried next run
        res.status = "failed"
        res.error = f"{task['path']}: {type(e).__name__}: {e}"
        res.errors.append(traceback.format_exc(limit=6))
        res.flows = None
    finally:
        res.elapsed = time.monotonic() - started
    return res


def _file_state(path: str):
    """(size, mtime_ns, inode) of a file, or None: compared before and after a scan to notice a
    capture rewritten or appended to while it was read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


_CHANGED_WHILE_READ = "changed while it was read (retried next run)"


class _ChainSink(Sink):
    """The sink of a chain run: every record goes to the collector of the capture it names (its
    ``capture``: for a flow, the file of its first packet), else to the first capture's."""

    def __init__(self, collectors: dict, first: str):
        self.collectors = collectors
        self.first = first

    def _of(self, rec: dict) -> "FlowCollector":
        return self.collectors.get(rec.get("capture")) or self.collectors[self.first]

    def flows(self, recs) -> None:
        groups: dict = {}
        for r in recs:
            groups.setdefault(id(self._of(r)), (self._of(r), []))[1].append(r)
        for coll, group in groups.values():
            coll.flows(group)

    def log(self, name: str, rec: dict) -> None:
        self._of(rec).log(name, rec)

    def alerts(self, alerts) -> None:
        for a in alerts:
            self._of(a).alerts([a])


def process_chain(tasks: list, settings: WorkerSettings) -> list:
    """Scan a chain of consecutive captures of one host (``chains``) as one stream: one
    ``CaptureResult`` per capture, in order, each holding the flows whose first packet it has (a
    connection crossing a file boundary is one flow, counted once).  A chain of one is
    ``process_capture``.  When a file of the chain changed since it was hashed, the whole chain
    failed (retried next run); when one cannot be read to its end, each capture is scanned alone."""
    if len(tasks) == 1:
        return [process_capture(tasks[0], settings)]
    from ..pipeline import run
    from ..sources.files import FileSource
    from .discover import file_sha256
    started = time.monotonic()
    who = f"{socket.gethostname()}:{os.getpid()}"
    results = [CaptureResult(sha256=t["sha256"], path=t["path"], host=t["host"], rel=t["rel"],
                             size=t.get("size", 0), worker=who) for t in tasks]
    try:
        st = state(settings)
        for t in tasks:
            if file_sha256(t["path"]) != t["sha256"]:
                for res in results:
                    res.status, res.error = "failed", f"{t['path']}: changed since it was hashed (retried next run)"
                return results
        tz = tz_of(settings.tz)
        paths = [t["path"] for t in tasks]
        colls = {t["path"]: FlowCollector(t["sha256"], t["host"], st.site, tz) for t in tasks}
        sink = _ChainSink(colls, paths[0])
        before = [_file_state(p) for p in paths]
        source = FileSource(paths)
        pipe = run(source, st.settings, [sink])
        for p, was in zip(paths, before):
            if _file_state(p) != was:
                for res in results:
                    res.status, res.error = "failed", f"{p}: {_CHANGED_WHILE_READ}"
                return results
        if source.failed or len(source.read) != len(paths):
            return [process_capture(t, settings) for t in tasks]
        chain_stats = pipe.scanner.stats()
        chain_stats.pop("files", None)
        chain = [t["sha256"] for t in tasks]
        for k, (t, res) in enumerate(zip(tasks, results)):
            coll = colls[t["path"]]
            packets, nbytes = source.read[t["path"]]
            res.stats = {"packets_read": packets, "bytes_read": nbytes, "flows": coll.seq,
                         "first_ts": coll.first_ts, "last_ts": coll.last_ts, "chain": chain}
            if k == 0:
                res.stats["chain_stats"] = chain_stats
            res.flows = coll.table()
            res.daily = coll.daily_rows()
            if pipe.policy is not None:
                res.alerts = list(coll.alert_records)
                res.policy = True
            res.evidence = coll.evidence_rows()
    except Exception as e:   # a bug or an unexpected environment problem: the chain is retried next run
        for res in results:
            res.status = "failed"
            res.error = f"{res.path}: {type(e).__name__}: {e}"
            res.errors.append(traceback.format_exc(limit=6))
            res.flows = None
    finally:
        elapsed = time.monotonic() - started
        for res in results:
            res.elapsed = elapsed / len(results)
    return results
