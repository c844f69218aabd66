"""Live outputs: files rotated by time and size, the ring of raw capture files, and ``LiveSink``.

* :class:`RotatingLog`  ``NAME.jsonl`` (and ``NAME.parquet``), rotated by wall time and size
* :class:`RingWriter`   the last N raw capture files (classic pcap), for drill-down after the fact
* :class:`LiveSink`     the pipeline sink of ``inspector live``: flows, weirds, protocol logs and
  alerts to rotating files as they happen, ``stats.json`` rewritten every few seconds
"""
from __future__ import annotations

import os
import re
import resource
import time
from typing import Callable, Iterable

import orjson

from ..pipeline import Sink

STAMP = "%Y%m%dT%H%M%S"
_JSON_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _stamp(t: float) -> str:
    from ..timeutil import format_ts
    return format_ts(t, STAMP)


def _iso(t: float) -> str:
    from ..timeutil import format_ts
    return format_ts(t, "%Y-%m-%dT%H:%M:%SZ")


class RotatingLog:
    """``NAME.jsonl`` (and with ``parquet``, ``NAME.parquet``) rotated by time and size.

    The current file is always ``NAME.jsonl``: flushed after every write, so
    ``tail -f`` works.  Rotation renames it (and the Parquet file, finished at
    that moment; it is written as ``NAME.parquet.tmp`` while current) to
    ``NAME-YYYYmmddTHHMMSS.jsonl`` / ``.parquet``, stamped with the UTC time the
    file was opened (``-1``, ``-2``... on a clash).  Rotation happens when the
    JSON Lines file reaches ``rotate_bytes``, and at multiples of
    ``rotate_seconds`` of wall time (aligned to the clock, as Zeek does);
    a file with no records is not rotated.  On ``close`` the current files stay
    ``NAME.jsonl``/``NAME.parquet``.  Files left by an earlier run are rotated
    away on start, never overwritten.
    """

    def __init__(self, out_dir: str, name: str, fields=None, types=None, parquet: bool = False,
                 rotate_seconds: float = 0, rotate_bytes: int = 0, clock: Callable = time.time,
                 row_group: int = 16384, on_rotate: Callable | None = None):
        self.out_dir = out_dir
        self.name = name
        self.fields = list(fields) if fields else None
        self.parquet = parquet and self.fields is not None
        self.types = types
        self.rotate_seconds = rotate_seconds
        self.rotate_bytes = rotate_bytes
        self.clock = clock
        self.row_group = row_group
        self.path = os.path.join(out_dir, f"{name}.jsonl")
        self.pq_path = os.path.join(out_dir, f"{name}.parquet")
        self.rotated: list = []          # names of the files rotated so far
        self.retired_suffix = None       # the suffix an earlier run's NAME.jsonl was renamed to, if any
        self.on_rotate = on_rotate       # called with the stamp suffix ("YYYYmmddTHHMMSS[-k]") after a rotation
        self.total = 0                   # records written over all files
        self._schema = None
        if self.parquet:
            from .writers import arrow_schema
            self._schema = arrow_schema(self.fields, types)
        self._retire_leftovers()
        self._open()

    def _retire_leftovers(self) -> None:
        if os.path.exists(self.pq_path + ".tmp"):
            os.replace(self.pq_path + ".tmp", self.pq_path + ".incomplete")
        for path in (self.path, self.pq_path):
            if os.path.exists(path):
                if os.path.getsize(path) == 0:
                    os.remove(path)
                    continue
                ext = ".jsonl" if path.endswith(".jsonl") else ".parquet"
                dest = self._free_name(_stamp(os.path.getmtime(path)), (ext,))
                os.replace(path, dest[ext])
                if ext == ".jsonl":
                    self.retired_suffix = os.path.basename(dest[ext])[len(self.name) + 1:-len(ext)]

    def _free_name(self, stamp: str, exts=(".jsonl", ".parquet")) -> dict:
        k = 0
        while True:
            base = f"{self.name}-{stamp}" + (f"-{k}" if k else "")
            names = {e: os.path.join(self.out_dir, base + e) for e in exts}
            if not any(os.path.exists(p) for p in names.values()):
                return names
            k += 1

    def _open(self) -> None:
        self.opened = self.clock()
        if self.rotate_seconds:
            self.deadline = (self.opened // self.rotate_seconds + 1) * self.rotate_seconds
        else:
            self.deadline = float("inf")
        self._jf = open(self.path, "wb")
        self.size = 0
        self.count = 0
        self._pending: list = []
        self._pw = None

    def write(self, records: Iterable[dict]) -> int:
        fields = self.fields
        parts = []
        n = 0
        for r in records:
            if fields is not None and list(r.keys()) != fields:
                r = {k: r.get(k) for k in fields}
            parts.append(orjson.dumps(r, option=_JSON_OPTS, default=json_default))
            if self.parquet:
                self._pending.append(r)
            n += 1
        if not n:
            return 0
        data = b"".join(parts)
        self._jf.write(data)
        self._jf.flush()
        self.size += len(data)
        self.count += n
        self.total += n
        if self.parquet and len(self._pending) >= self.row_group:
            self._flush_parquet()
        if self.rotate_bytes and self.size >= self.rotate_bytes:
            self.rotate()
        return n

    def _flush_parquet(self) -> None:
        if not self._pending:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq
        if self._pw is None:
            self._pw = pq.ParquetWriter(self.pq_path + ".tmp", self._schema)
        cols = {f: [r.get(f) for r in self._pending] for f in self.fields}
        self._pw.write_table(pa.Table.from_pydict(cols, schema=self._schema))
        self._pending = []

    def _close_files(self) -> None:
        self._jf.close()
        if self.parquet:
            self._flush_parquet()
            if self._pw is None:   # no records: an empty file with the schema, as FlowWriter writes
                import pyarrow.parquet as pq
                self._pw = pq.ParquetWriter(self.pq_path + ".tmp", self._schema)
            self._pw.close()
            self._pw = None

    def maybe_rotate(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        if now < self.deadline:
            return False
        if not self.count:   # nothing to rotate: stay on the same (empty) file
            self.deadline = (now // self.rotate_seconds + 1) * self.rotate_seconds
            self.opened = now
            return False
        self.rotate()
        return True

    def rotate(self) -> None:
        self._close_files()
        names = self._free_name(_stamp(self.opened))
        os.replace(self.path, names[".jsonl"])
        self.rotated.append(os.path.basename(names[".jsonl"]))
        if self.parquet:
            os.replace(self.pq_path + ".tmp", names[".parquet"])
            self.rotated.append(os.path.basename(names[".parquet"]))
        self._open()
        if self.on_rotate is not None:
            self.on_rotate(os.path.basename(names[".jsonl"])[len(self.name) + 1:-len(".jsonl")])

    def close(self) -> None:
        self._close_files()
        if self.parquet:
            os.replace(self.pq_path + ".tmp", self.pq_path)


def json_default(obj):
    """As ``inspector scan`` writes logs (bytes as hex, sets as lists); anything else as str, never a crash."""
    from .writers import json_default as scan_default
    try:
        return scan_default(obj)
    except TypeError:
        return str(obj)


# ----------------------------------------------------------------------------------------------
# ring of raw capture files
# ----------------------------------------------------------------------------------------------

class RingWriter:
    """Keeps the last ``files`` capture files of up to ``size_mb`` MB each in ``ring_dir``.

    Files are classic pcap, ``ring-NNNNNN-YYYYmmddTHHMMSS.pcap`` (sequence number,
    then the UTC time the file was opened), so they sort in capture order and
    ``inspector scan DIR`` or ``tcpdump -r`` read them.  Ring files found on start
    (an earlier run) count towards ``files`` and are removed oldest first.
    Records are written whole, one chunk at a time, and flushed, so the current
    file is always readable."""

    PATTERN = re.compile(r"^ring-(\d{6,})-\d{8}T\d{6}\.pcap$")

    def __init__(self, ring_dir: str, header: bytes, files: int = 10, size_mb: float = 100,
                 clock: Callable = time.time):
        self.dir = ring_dir
        self.header = header
        self.files = max(1, int(files))
        self.size_limit = max(1, int(size_mb * (1 << 20)))
        self.clock = clock
        os.makedirs(ring_dir, exist_ok=True)
        existing = []
        for name in os.listdir(ring_dir):
            m = self.PATTERN.match(name)
            if m:
                existing.append((int(m.group(1)), name))
        existing.sort()
        self.ring = [os.path.join(ring_dir, n) for _, n in existing]
        self.seq = existing[-1][0] + 1 if existing else 0
        self.written = 0
        self.deleted = 0
        self._fh = None
        self._open()

    def _open(self) -> None:
        path = os.path.join(self.dir, f"ring-{self.seq:06d}-{_stamp(self.clock())}.pcap")
        self.seq += 1
        self._fh = open(path, "wb")
        self._fh.write(self.header)
        self._fh.flush()
        self.size = len(self.header)
        self.ring.append(path)
        while len(self.ring) > self.files:
            old = self.ring.pop(0)
            try:
                os.remove(old)
                self.deleted += 1
            except FileNotFoundError:
                pass

    def write(self, raw: bytes) -> None:
        if self.size > len(self.header) and self.size + len(raw) > self.size_limit:
            self._fh.close()
            self._open()
        self._fh.write(raw)
        self._fh.flush()
        self.size += len(raw)
        self.written += len(raw)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def info(self) -> dict:
        return {"dir": self.dir, "files": [os.path.basename(p) for p in self.ring], "bytes_written": self.written,
                "files_deleted": self.deleted}


def _safe_name(log: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(log)) or "log"


class LiveSink(Sink):
    """Outputs of ``inspector live`` in ``out_dir``: every stream a :class:`RotatingLog`, written as the
    records come (protocol logs once per source item), ``stats.json`` rewritten every
    ``stats_interval`` seconds and at the end.

    ``stats_source`` (the ``LiveSource``) adds the capture figures to the stats and turns new drops
    into weirds; ``on_stats(stats)`` is called after every rewrite but the first (the CLI prints a
    line); ``on_alerts(alerts)`` as alerts fire (the CLI prints them; delivery sinks plug in here)."""

    def __init__(self, out_dir: str, rotate_seconds: float = 0, rotate_bytes: int = 0, stats_interval: float = 10,
                 stats_source=None, on_stats: Callable | None = None, on_alerts: Callable | None = None,
                 clock: Callable = time.time, monotonic: Callable = time.monotonic, site=None, report: bool = True,
                 delivery=None, on_warning: Callable | None = None):
        from .writers import FLOW_TYPES, WEIRD_TYPES
        from ..scan import FLOW_FIELDS, WEIRD_FIELDS
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.clock = clock
        self.monotonic = monotonic
        self.rot = dict(rotate_seconds=rotate_seconds, rotate_bytes=rotate_bytes, clock=clock)
        self.flow_log = RotatingLog(out_dir, "flows", FLOW_FIELDS, FLOW_TYPES, parquet=True,
                                    on_rotate=self._period_ended if report else None, **self.rot)
        self.weird_log = RotatingLog(out_dir, "weird", WEIRD_FIELDS, WEIRD_TYPES, **self.rot)
        self.alerts_log: RotatingLog | None = None
        self.logs: dict = {}
        self._pending_logs: dict = {}
        self.stats_interval = stats_interval
        self.stats_source = stats_source
        self.on_stats = on_stats
        self.on_alerts = on_alerts
        self.started_wall = clock()
        self.started = monotonic()
        self._next_stats = self.started + stats_interval
        self._stats_t = self.started
        self._stats_pkts = 0
        self._first = True
        self.last_stats: dict = {}
        self.delivery = delivery           # inspector.delivery.AlertDelivery: closed before the final stats
        self.on_warning = on_warning
        self.report = None                 # report.html of the current output period (report.period)
        self.report_errors = 0
        self.incidents = 0
        self.site = site
        self._pipe = None
        if report:
            from ..report.period import PeriodReport
            from ..site import Site
            site = site if site is not None else Site.default()
            self.report = PeriodReport(out_dir, site.name, role_of=site.role)
            path = os.path.join(out_dir, "report.html")
            if os.path.exists(path):
                self.report.retire_leftover(self.flow_log.retired_suffix or _stamp(os.path.getmtime(path)))

    # -- records ---------------------------------------------------------------------------
    def flows(self, recs):
        if recs:
            if self.report is not None:   # before the write, which may rotate: these flows end this period
                self.report.add_flows(recs)
            self.flow_log.write(recs)

    def log(self, name, rec):
        self._pending_logs.setdefault(name, []).append(rec)

    def weirds(self, recs):
        self.weird_log.write(recs)

    def alerts(self, alerts):
        if self.alerts_log is None:
            self.alerts_log = RotatingLog(self.out_dir, "alerts", **self.rot)
        self.alerts_log.write(alerts)
        if self.report is not None:
            self.report.add_alerts(alerts)
        if self.on_alerts is not None:
            self.on_alerts(alerts)

    def _write_logs(self) -> None:
        if self._pending_logs:
            pending, self._pending_logs = self._pending_logs, {}
            for log, recs in pending.items():
                w = self.logs.get(log)
                if w is None:
                    w = self.logs[log] = RotatingLog(self.out_dir, _safe_name(log), **self.rot)
                w.write(recs)

    def writers(self) -> list:
        ws = [self.flow_log, self.weird_log]
        if self.alerts_log is not None:
            ws.append(self.alerts_log)
        ws.extend(self.logs.values())
        return ws

    # -- time ------------------------------------------------------------------------------
    def tick(self, pipe, now: float | None = None) -> None:
        """Write pending protocol records, rotate by time, rewrite stats.json when it is due."""
        self._pipe = pipe
        self._write_logs()
        now_wall = self.clock() if now is None else now
        rotated = False
        for w in self.writers():
            rotated = w.maybe_rotate(now_wall) or rotated
        if rotated:
            self.write_incidents()
        mono = self.monotonic()
        if self._first or mono >= self._next_stats:
            self.write_stats(pipe)
            self._next_stats = max(self._next_stats + self.stats_interval, mono)

    def finish(self, pipe) -> None:
        self._pipe = pipe
        self._write_logs()
        for w in self.writers():
            w.close()
        self.write_incidents(final=True)
        self._write_report(None)
        self.write_stats(pipe, final=True)

    # -- incidents.jsonl -------------------------------------------------------------------
    def _jsonl_files(self, w: "RotatingLog | None") -> list:
        """The JSON Lines files of one output this session wrote: rotated ones in order, then the current."""
        if w is None:
            return []
        return [os.path.join(self.out_dir, n) for n in w.rotated if n.endswith(".jsonl")] + [w.path]

    def write_incidents(self, final: bool = False) -> int:
        """``incidents.jsonl`` over every alert of the session so far (``inspector.incidents``), from the
        alert, flow, content, HTTP and DNS files it wrote, rotated ones included.  Alerts go out as they
        fire, before their incident is known: at exit (``final``, every file closed) the session's alert
        files are rewritten with their ``incident_id``; before that, rotated alert files are, and the
        current one keeps ``incident_id`` null until it rotates or the run ends."""
        if self.alerts_log is None:
            return 0
        from ..incidents import build_incidents, iter_covered, write_incidents
        from ..policy import write_alerts
        from ..report.html import iter_jsonl
        files = self._jsonl_files(self.alerts_log)
        by_file = [(p, list(iter_jsonl(p)) if os.path.exists(p) else []) for p in files]
        alerts = [a for _p, recs in by_file for a in recs]
        uids = {u for a in alerts for u in (a.get("uids") or ())}

        def covered(name):
            for p in self._jsonl_files(self.flow_log if name == "flows" else self.logs.get(name)):
                if os.path.exists(p):
                    yield from iter_covered(p, uids)
        incidents = build_incidents(alerts, covered("flows"), covered("content"), site=self.site,
                                    http=covered("http"), dns=covered("dns"), from_dir=self.out_dir)
        write_incidents(os.path.join(self.out_dir, "incidents.jsonl"), incidents)
        self.incidents = len(incidents)
        for p, recs in by_file:
            if (final or p != self.alerts_log.path) and any("alert_id" in r for r in recs):
                write_alerts(p, recs)
        return len(incidents)

    # -- report.html ----------------------------------------------------------------------
    def _period_ended(self, suffix: str) -> None:
        self._write_report(suffix)

    def _write_report(self, suffix: str | None) -> None:
        """report-SUFFIX.html for the period that just ended (then a new one), or report.html at exit."""
        if self.report is None or self._pipe is None:
            return
        content = self.logs.get("content")
        content_path = content.path if content is not None else None
        try:
            st = self.stats(self._pipe)
            if suffix is None:
                self.report.write(st, content_path=content_path)
            else:
                self.report.rotate(suffix, st, content_path=content_path)
        except Exception as e:   # a report must never stop the capture
            self.report_errors += 1
            if self.on_warning is not None:
                self.on_warning(f"cannot write the report: {type(e).__name__}: {e}")

    def stats(self, pipe) -> dict:
        st = pipe.stats()
        st.pop("files", None)
        st["flows_active"] = pipe.scanner.table.active_flows()
        st["flows_written"] = self.flow_log.total
        st["outputs_rotated"] = sum(len(w.rotated) for w in self.writers())
        if self.alerts_log is not None:
            st["incidents"] = self.incidents
        if self.report is not None:
            st["reports_written"] = len(self.report.written)
            st["report_errors"] = self.report_errors
        return st

    def write_stats(self, pipe, final: bool = False) -> dict:
        from .writers import write_json
        src = self.stats_source
        fig = src.note_drops(pipe) if src is not None else {}
        self._write_logs()
        now = self.monotonic()
        st = self.stats(pipe)
        st.update(fig)
        st["mode"] = "live"
        st["started"] = _iso(self.started_wall)
        st["updated"] = _iso(self.clock())
        st["uptime_s"] = round(now - self.started, 3)
        dt = now - self._stats_t
        st["packets_per_s"] = round((st["packets_read"] - self._stats_pkts) / dt, 1) if dt > 0 else None
        st["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        st["stopped_by"] = (getattr(src, "stopped_by", None) if final else None)
        if self.delivery is not None:
            if final:    # the last alerts out (bounded by --alert-flush-timeout), then the final figures
                self.delivery.close()
            st["delivery"] = self.delivery.stats()
        self._stats_t = now
        self._stats_pkts = st["packets_read"]
        write_json(os.path.join(self.out_dir, "stats.json"), st)
        first, self._first = self._first, False
        if self.on_stats is not None and not first:
            self.on_stats(st)
        self.last_stats = st
        return st
