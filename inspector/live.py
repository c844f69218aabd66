"""``inspector live``: capture from an interface and analyse in streaming batches.

    inspector live -i IFACE [--bpf EXPR] [--site FILE] --out DIR [options]

Two threads:

* the **capture thread** owns the libpcap handle (``capture.LibpcapCapture``):
  it polls with a short timeout, lets libpcap copy packets as pcap records into
  a C buffer, and every ``--batch-packets`` packets, ``--batch-mb`` or
  ``--batch-ms`` milliseconds hands the buffer on as one chunk (and appends it
  to the ``--ring`` of raw capture files).  The hand-over queue is bounded: when
  analysis falls behind, the thread stops reading, the kernel buffer fills and
  the kernel drops packets, which libpcap counts (``ps_drop``) and we report;
  nothing is dropped silently and memory stays bounded.
* the **main thread** turns each chunk into the same ``PacketBatch`` a file
  scan builds and feeds the same ``Scanner`` ``inspector scan`` uses (so live
  equals scan of the same packets by construction), writes flows as they end,
  weirds, protocol logs and alerts, sweeps the flow table while the link is
  idle (so idle flows time out and are written), rotates outputs, rewrites
  ``stats.json`` every ``--stats-interval`` seconds, and handles SIGINT/SIGTERM:
  everything in flight is flushed and the exit status is 0.

The policy stage plugs in through ``LiveSession.on_alerts`` (see there).

The CLI integration is two calls: ``add_parser(subparsers)`` and ``run(args)``.
``python -m inspector.live ...`` runs the same thing stand-alone.
"""
from __future__ import annotations

import argparse
import os
import queue
import re
import resource
import signal
import sys
import threading
import time
from typing import Callable, Iterable

import orjson

DEFAULT_BATCH_PACKETS = 65536
DEFAULT_BATCH_MB = 16
DEFAULT_BATCH_MS = 200
DISPATCH_MAX = 256          # packets per pcap_dispatch call (bounds the overshoot of a batch)
QUEUE_CHUNKS = 4            # chunks waiting between capture and analysis (memory bound)
IDLE_MARGIN = 1.0           # seconds kept back from the packet-time estimate of an idle sweep
IDLE_SWEEP_EVERY = 1.0      # seconds of packet time between idle sweeps
STAMP = "%Y%m%dT%H%M%S"
_JSON_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _stamp(t: float) -> str:
    from .timeutil import format_ts
    return format_ts(t, STAMP)


def _iso(t: float) -> str:
    from .timeutil import format_ts
    return format_ts(t, "%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------
# rotating outputs
# ----------------------------------------------------------------------------------------------

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
            from .outputs.writers import arrow_schema
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
            parts.append(orjson.dumps(r, option=_JSON_OPTS, default=_json_default))
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


def _json_default(obj):
    """As ``inspector scan`` writes logs (bytes as hex, sets as lists); anything else as str, never a crash."""
    from .outputs import json_default as scan_default
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


# ----------------------------------------------------------------------------------------------
# capture thread
# ----------------------------------------------------------------------------------------------

class Chunk:
    """Packets handed from the capture thread to analysis: ``count`` pcap records in ``raw``."""
    __slots__ = ("raw", "count", "mono_last")

    def __init__(self, raw: bytes, count: int, mono_last: float):
        self.raw = raw
        self.count = count
        self.mono_last = mono_last   # time.monotonic() when the last of these packets was read


_END = object()


class CaptureThread(threading.Thread):
    """Reads from a capture source (``LibpcapCapture`` or a test double) into chunks.

    Only this thread touches the source.  ``stop()`` makes it drain what the
    kernel still holds (for at most ``drain_seconds``), hand over the last chunk
    and put the end marker on the queue; the consumer must keep reading until it
    sees it.  libpcap counters are sampled into ``pcap_stats`` (a dict) twice a
    second and once more at the end."""

    def __init__(self, source, out: queue.Queue, batch_packets: int = DEFAULT_BATCH_PACKETS,
                 batch_bytes: int = DEFAULT_BATCH_MB << 20, batch_ms: float = DEFAULT_BATCH_MS, ring=None,
                 poll_seconds: float = 0.05, drain_seconds: float = 2.0):
        super().__init__(name="inspector-capture", daemon=True)
        self.src = source
        self.out = out
        self.batch_packets = max(1, int(batch_packets))
        self.batch_bytes = max(1, int(batch_bytes))
        self.batch_s = max(0.001, batch_ms / 1000.0)
        self.ring = ring
        self.ring_error = None
        self.poll_seconds = poll_seconds
        self.drain_seconds = drain_seconds
        self._stop_event = threading.Event()
        self.error = None
        self.pending = 0              # packets read but not handed over yet
        self.packets = 0              # packets handed over
        self.chunks = 0
        self.last_packet_mono = None
        self.pcap_stats: dict = {}

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:   # reported by the consumer; the end marker still goes out
            self.error = e
            try:
                if self.pending:
                    self._hand_over(self.pending, time.monotonic())
            except BaseException:
                pass
        finally:
            try:
                self.pcap_stats = dict(self.src.stats(), mono=time.monotonic())
            except BaseException:
                pass
            self.out.put(_END)

    def _hand_over(self, count: int, now: float) -> None:
        raw = self.src.take()
        self.pending = 0
        if self.ring is not None and raw:
            try:
                self.ring.write(raw)
            except OSError as e:
                self.ring_error = f"ring disabled: {e.strerror or e}"
                self.ring = None
        self.packets += count
        self.chunks += 1
        self.out.put(Chunk(raw, count, self.last_packet_mono or now))

    def _loop(self) -> None:
        src = self.src
        first = 0.0
        next_stats = 0.0
        deadline = None
        while True:
            stopping = self._stop_event.is_set()
            if stopping and deadline is None:
                deadline = time.monotonic() + self.drain_seconds
            if not stopping:
                timeout = self.poll_seconds
                if self.pending:
                    timeout = max(0.0, min(timeout, first + self.batch_s - time.monotonic()))
                src.wait(timeout)
            while True:
                cnt = min(self.batch_packets - self.pending, DISPATCH_MAX)
                got = src.dispatch(cnt)
                if got:
                    now = time.monotonic()
                    if not self.pending:
                        first = now
                    self.pending += got
                    self.last_packet_mono = now
                    if self.pending >= self.batch_packets or src.pending_bytes() >= self.batch_bytes:
                        self._hand_over(self.pending, now)
                if got < cnt:
                    break
                if stopping and time.monotonic() > deadline:
                    break
            now = time.monotonic()
            if self.pending and (stopping or now - first >= self.batch_s):
                self._hand_over(self.pending, now)
            if now >= next_stats or stopping:
                self.pcap_stats = dict(src.stats(), mono=now)
                next_stats = now + 0.5
            if stopping:
                return


# ----------------------------------------------------------------------------------------------
# analysis session
# ----------------------------------------------------------------------------------------------

class LiveSession:
    """The Scanner plus rotating outputs, fed chunks of pcap records.

    Alerts: the policy stage reports alerts through ``on_alerts(alerts)`` (a list
    of dicts), from anywhere in the main thread; they are appended to
    ``alerts.jsonl`` (rotated like the flows) and printed on stdout, one JSON
    object per line, as they fire.  Two ways to get there without touching this
    class: pass ``policy``, a callable given every batch of ended flow records
    and returning the alerts they raise (an iterable of dicts); or let the
    Scanner collect them in a list attribute ``alerts``, which is drained after
    every batch and sweep.  ``alert_sinks`` are extra callables given each list
    of alerts (a pager, a socket...).

    ``report.html`` (``report=True``): the flows and alerts of the current output
    period (``report.period.PeriodReport``); when ``flows.jsonl`` rotates to
    ``flows-STAMP.jsonl`` its period's report is written as ``report-STAMP.html``, and
    ``finish()`` writes ``report.html`` for the period still open.  A report that cannot
    be written is counted (``report_errors`` in the stats) and never stops the capture.
    """

    def __init__(self, out_dir: str, site=None, max_flows: int = 1_000_000, rotate_seconds: float = 0,
                 rotate_bytes: int = 0, policy: Callable | None = None, alert_sinks: Iterable = (),
                 print_alerts: bool = True, clock: Callable = time.time, source: str = "live",
                 report: bool = True, **scanner_kw):
        from .outputs import FLOW_TYPES, WEIRD_TYPES
        from .scan import FLOW_FIELDS, WEIRD_FIELDS, Scanner
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.clock = clock
        self.source = source
        self.rot = dict(rotate_seconds=rotate_seconds, rotate_bytes=rotate_bytes, clock=clock)
        self.flows = RotatingLog(out_dir, "flows", FLOW_FIELDS, FLOW_TYPES, parquet=True,
                                 on_rotate=self._period_ended if report else None, **self.rot)
        self.weird = RotatingLog(out_dir, "weird", WEIRD_FIELDS, WEIRD_TYPES, **self.rot)
        self.alerts_log: RotatingLog | None = None
        self.logs: dict = {}
        # scanner_kw: the stages built from the settings (enricher, content...), as scan builds them
        self.scanner = Scanner(site=site, max_flows=max_flows, on_flows=self._on_flows, log_sink=self._log_sink,
                               **scanner_kw)
        self.site = self.scanner.site
        self.policy = policy
        self.alert_sinks = list(alert_sinks)
        self.print_alerts = print_alerts
        self.alerts_fired = 0
        self.last_ts: float | None = None
        self.batches = 0
        self.bad_records = 0
        self._pending_logs: dict = {}
        self._finished = False
        self.report = None
        self.report_errors = 0
        if report:
            from .report.period import PeriodReport
            self.report = PeriodReport(out_dir, self.site.name, role_of=self.site.role)
            path = os.path.join(out_dir, "report.html")
            if os.path.exists(path):
                self.report.retire_leftover(self.flows.retired_suffix or _stamp(os.path.getmtime(path)))

    # -- sinks ------------------------------------------------------------------------
    def _on_flows(self, recs: list) -> None:
        if not recs:
            return
        if self.report is not None:   # before the write, which may rotate: these flows end this period
            self.report.add_flows(recs)
        self.flows.write(recs)
        if self.policy is not None:
            alerts = list(self.policy(recs) or ())
            if alerts:
                self.on_alerts(alerts)

    def _log_sink(self, log: str, record: dict) -> None:
        self._pending_logs.setdefault(log, []).append(record)
        feed = getattr(self.policy, "log", None)
        if feed is not None:
            alerts = feed(log, record)
            if alerts:
                self.on_alerts(alerts)

    def _drain(self) -> None:
        """Write what the Scanner collected: weirds, protocol log records, alerts."""
        sc = self.scanner
        if sc.weird_records:
            self.weird.write(sc.weird_records)
            sc.weird_records.clear()
        if self._pending_logs:
            pending, self._pending_logs = self._pending_logs, {}
            for log, recs in pending.items():
                w = self.logs.get(log)
                if w is None:
                    w = self.logs[log] = RotatingLog(self.out_dir, _safe_name(log), **self.rot)
                w.write(recs)
        alerts = getattr(sc, "alerts", None)
        if isinstance(alerts, list) and alerts:
            batch = list(alerts)
            alerts.clear()
            self.on_alerts(batch)

    def on_alerts(self, alerts: list) -> None:
        """The alert hook: write ``alerts.jsonl``, print each alert, pass them to ``alert_sinks``."""
        alerts = [a for a in alerts if a]
        if not alerts:
            return
        if self.alerts_log is None:
            self.alerts_log = RotatingLog(self.out_dir, "alerts", **self.rot)
        self.alerts_log.write(alerts)
        self.alerts_fired += len(alerts)
        if self.report is not None:
            self.report.add_alerts(alerts)
        if self.print_alerts:
            try:
                out = sys.stdout
                for a in alerts:
                    out.write(orjson.dumps(a, option=orjson.OPT_NON_STR_KEYS, default=_json_default).decode()
                              + "\n")
                out.flush()
            except (BrokenPipeError, ValueError):   # stdout gone: keep writing the file
                self.print_alerts = False
        for sink in self.alert_sinks:
            sink(alerts)

    # -- input ------------------------------------------------------------------------
    def feed(self, raw: bytes, count: int, big_endian: bool, tsres: float, linktype: int) -> int:
        """Analyse one chunk of pcap records; returns the packets in it."""
        from .capture import records_to_batch
        if not count or not raw:
            return 0
        batch, rest = records_to_batch(raw, count, big_endian, tsres, linktype, source=self.source)
        if rest:   # cannot happen with libpcap's own records; never silently
            self.bad_records += 1
            self.scanner.outcomes["capture.bad_record"] += 1
            self.scanner.packets_read += 1
            self.scanner.add_weird(self.last_ts, None, "capture.bad_record",
                                   f"{rest} bytes of a chunk are not a pcap record")
        n = len(batch)
        if n:
            sc = self.scanner
            sc.packets_read += n
            sc.bytes_read += int(batch.caplen.sum())
            sc.feed(batch)
            self.last_ts = float(batch.ts[-1])
            self.batches += 1
        self._drain()
        return n

    def sweep(self, now: float) -> int:
        """End the flows whose timers ran out by packet time ``now`` (idle link); returns how many."""
        sc = self.scanner
        if self.last_ts is None or now <= sc.table.now:
            return 0
        n = sc.sweep(now)
        self._drain()
        return n

    def add_weird(self, name: str, detail: str, ts: float | None = None) -> None:
        self.scanner.add_weird(ts if ts is not None else self.last_ts, None, name, detail)
        self._drain()

    def tick(self, now: float | None = None) -> None:
        """Time-based rotation of every output."""
        now = self.clock() if now is None else now
        for w in self._writers():
            w.maybe_rotate(now)

    def _writers(self) -> list:
        ws = [self.flows, self.weird]
        if self.alerts_log is not None:
            ws.append(self.alerts_log)
        ws.extend(self.logs.values())
        return ws

    def finish(self) -> None:
        """End every flow still open (as ``scan`` does at the end of its input) and close the outputs."""
        if self._finished:
            return
        self._finished = True
        self.scanner.finish()
        final = getattr(self.policy, "final", None)
        if final is not None:
            alerts = final()
            if alerts:
                self.on_alerts(alerts)
        self._drain()
        for w in self._writers():
            w.close()
        self._write_report(None)

    # -- report.html --------------------------------------------------------------------
    def _period_ended(self, suffix: str) -> None:
        self._write_report(suffix)

    def _write_report(self, suffix: str | None) -> None:
        """report-SUFFIX.html for the period that just ended (then a new one), or report.html at exit."""
        if self.report is None:
            return
        content = self.logs.get("content")
        content_path = content.path if content is not None else None
        try:
            st = self.stats()
            if suffix is None:
                self.report.write(st, content_path=content_path)
            else:
                self.report.rotate(suffix, st, content_path=content_path)
        except Exception as e:   # a report must never stop the capture
            self.report_errors += 1
            _err(f"warning: cannot write the report: {type(e).__name__}: {e}")

    def stats(self) -> dict:
        sc = self.scanner
        st = sc.stats()
        st.pop("files", None)
        st["flows_active"] = sc.table.active_flows()
        st["flows_written"] = self.flows.total
        st["alerts"] = self.alerts_fired
        st["site"] = self.site.name
        st["outputs_rotated"] = sum(len(w.rotated) for w in self._writers())
        if self.report is not None:
            st["reports_written"] = len(self.report.written)
            st["report_errors"] = self.report_errors
        return st


def _safe_name(log: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(log)) or "log"


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``live`` sub-command to an argparse sub-parsers object."""
    s = subparsers.add_parser("live", help="capture from a network interface and analyse as packets arrive",
                              description="Capture from IFACE through libpcap and write flows, weirds, alerts "
                                          "and stats as they happen.  SIGINT/SIGTERM flush and exit 0.")
    s.add_argument("-i", "--interface", required=True, metavar="IFACE", help="interface to capture on")
    s.add_argument("--bpf", metavar="EXPR", help="capture filter (tcpdump syntax)")
    s.add_argument("--site", metavar="FILE", help="site file (YAML): local_nets, roles, allowed_destinations")
    s.add_argument("--out", required=True, metavar="DIR", help="output directory")
    from .settings import add_analysis_arguments
    add_analysis_arguments(s)
    s.add_argument("--max-flows", type=_positive_int, default=1_000_000,
                   help="flow table bound (LRU eviction beyond, counted as flow.table_full)")
    s.add_argument("--rotate-seconds", type=_non_negative, default=3600, metavar="S",
                   help="rotate outputs every S seconds of wall time, aligned to the clock (0: never; default 3600)")
    s.add_argument("--rotate-mb", type=_non_negative, default=256, metavar="MB",
                   help="rotate an output when its JSON Lines file reaches MB megabytes (0: never; default 256)")
    s.add_argument("--stats-interval", type=_positive, default=10, metavar="S",
                   help="rewrite stats.json (and print a stats line) every S seconds (default 10)")
    s.add_argument("--ring", metavar="DIR", help="keep a ring of raw capture files (pcap) in DIR")
    s.add_argument("--ring-files", type=_positive_int, default=10, metavar="N", help="files in the ring (default 10)")
    s.add_argument("--ring-size", type=_positive, default=100, metavar="MB", help="size of one ring file (default 100)")
    s.add_argument("--snaplen", type=_positive_int, default=262144, help="bytes captured per packet (default 262144)")
    s.add_argument("--buffer-mb", type=_positive_int, default=256,
                   help="kernel capture buffer in MB (default 256); a bigger one absorbs longer bursts")
    s.add_argument("--no-promisc", dest="promisc", action="store_false", help="do not put the interface in "
                   "promiscuous mode")
    s.add_argument("--immediate", dest="immediate", action="store_true", default=False,
                   help="libpcap immediate mode: lowest latency, but on Linux it switches to a ring of fixed-size "
                        "slots (TPACKET_V2) that holds far fewer packets (see docs/live.md); default off")
    s.add_argument("--batch-packets", type=_positive_int, default=DEFAULT_BATCH_PACKETS,
                   help=f"analyse in batches of at most this many packets (default {DEFAULT_BATCH_PACKETS})")
    s.add_argument("--batch-ms", type=_positive, default=DEFAULT_BATCH_MS,
                   help=f"... or after this many milliseconds (default {DEFAULT_BATCH_MS})")
    s.add_argument("--batch-mb", type=_positive, default=DEFAULT_BATCH_MB,
                   help=f"... or this many megabytes (default {DEFAULT_BATCH_MB})")
    s.add_argument("--duration", type=_positive, metavar="S", help="stop after S seconds (as on SIGTERM)")
    s.add_argument("-q", "--quiet", action="store_true", help="no stats lines on stderr, no alerts on stdout")
    from .delivery import add_arguments as add_delivery_arguments
    add_delivery_arguments(s)
    return s


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return v


def _err(msg: str) -> None:
    print("inspector live: " + " ".join(str(msg).split()), file=sys.stderr, flush=True)


def scanner_settings(site, args) -> dict:
    """The Scanner's stages built from the settings options, exactly as ``inspector scan`` builds them
    (keep in step with ``cli._cmd_scan``).  Raises ConfigError, OSError or ValueError."""
    from .settings import build_content, build_enricher
    return {
        "enricher": build_enricher(site, getattr(args, "geoip", None), getattr(args, "asn_db", None),
                                   getattr(args, "signatures", None)),
        "content": build_content(site, getattr(args, "signatures", None), getattr(args, "show_raw", False),
                                 getattr(args, "hash_salt", None)),
    }


class PolicyFeed:
    """Adapts the incremental ``PolicyEngine`` to the live session: flows in, alerts out, as they
    fire; DNS and content log records feed the detectors that need them; ``final()`` at the end."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self, recs: list) -> list:
        alerts = list(self.engine.observe_flows(recs))
        last = max((r.get("ts") or 0.0) + (r.get("duration") or 0.0) for r in recs) if recs else None
        alerts.extend(self.engine.flush(now=last))
        return alerts

    def log(self, log: str, record: dict) -> list:
        if log in ("dns", "content"):
            return list(self.engine.observe_log(log, record))
        return []

    def final(self) -> list:
        return list(self.engine.flush(final=True))


def _load_policy(args):
    """The policy stage (default rules or ``--signatures DIR/rules``), as a ``PolicyFeed``."""
    from .errors import ConfigError
    from .policy import PolicyEngine, load_rules, rules_dir
    from .site import Site, load_site
    site = load_site(args.site) if getattr(args, "site", None) else Site.default()
    try:
        rules = load_rules(rules_dir(getattr(args, "signatures", None)))
    except ConfigError as e:
        raise SystemExit(f"inspector: error: {e}")
    return PolicyFeed(PolicyEngine(rules, site))


def run(args, source=None, policy: Callable | None = None) -> int:
    """Run ``inspector live`` with parsed ``args``; returns the exit status.

    0: stopped by SIGINT/SIGTERM/--duration with everything flushed; 1: the capture
    failed while running (outputs are still flushed); 2: usage, configuration or
    capture-open error (one line on stderr).  ``source`` replaces the libpcap
    capture (tests); ``policy`` overrides ``_load_policy``."""
    stop = threading.Event()
    stop_reason: list = []
    old_handlers = {}

    def _on_signal(signum, _frame):
        if not stop.is_set():
            stop_reason.append(signal.Signals(signum).name)
        stop.set()
    # Installed first, so a signal during start-up also ends in a clean exit 0.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, _on_signal)
    try:
        return _run(args, source, policy, stop, stop_reason)
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)


def _run(args, source, policy, stop: threading.Event, stop_reason: list) -> int:
    from .errors import ConfigError
    from .site import Site, load_site
    try:
        site = load_site(args.site) if args.site else Site.default()
        stages = scanner_settings(site, args)
    except ConfigError as e:
        _err(str(e))
        return 2
    except (OSError, ValueError) as e:
        _err(f"error: cannot load geo data: {e}")
        return 2
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        _err(f"error: cannot create output directory {args.out}: {e.strerror}")
        return 2
    from .delivery import DeliveryConfigError, default_spool_root, from_args as delivery_from_args
    try:
        delivery = delivery_from_args(args, default_spool_root(args.out))
    except DeliveryConfigError as e:
        _err(f"error: {e}")
        return 2
    try:
        return _capture(args, source, policy, stop, stop_reason, site, stages, delivery)
    finally:
        if delivery is not None:
            delivery.close()


def _capture(args, source, policy, stop: threading.Event, stop_reason: list, site, stages, delivery) -> int:
    """The capture loop of ``_run``, once the settings are built; alerts also go to ``delivery``."""
    from .capture import CaptureError, LibpcapCapture, libpcap_version, sysfs_rx_dropped
    from .outputs import write_json
    iface = args.interface
    if source is None:
        source = LibpcapCapture(iface, bpf=args.bpf, snaplen=args.snaplen, promisc=args.promisc,
                                buffer_mb=args.buffer_mb, immediate=args.immediate)
    try:
        source.open()
    except CaptureError as e:
        _err(f"error: {e}")
        return 2
    for w in getattr(source, "warnings", ()):
        _err(f"warning: {w}")
    ring = None
    session = None
    try:
        if args.ring:
            try:
                ring = RingWriter(args.ring, source.header, files=args.ring_files, size_mb=args.ring_size)
            except OSError as e:
                _err(f"error: cannot write the ring in {args.ring}: {e.strerror or e}")
                source.close()
                return 2
        session = LiveSession(args.out, site=site, max_flows=args.max_flows,
                              rotate_seconds=args.rotate_seconds, rotate_bytes=int(args.rotate_mb * (1 << 20)),
                              policy=policy if policy is not None else _load_policy(args),
                              print_alerts=not args.quiet, source=iface,
                              alert_sinks=[delivery] if delivery is not None else (), **stages)
    except BaseException:
        source.close()
        if ring is not None:
            ring.close()
        raise
    try:
        lib_version = libpcap_version() if isinstance(source, LibpcapCapture) else type(source).__name__
    except CaptureError:
        lib_version = None

    q: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    cap = CaptureThread(source, q, batch_packets=args.batch_packets, batch_bytes=int(args.batch_mb * (1 << 20)),
                        batch_ms=args.batch_ms, ring=ring)
    started_wall = time.time()
    started = time.monotonic()
    rx0 = sysfs_rx_dropped(iface)
    big, tsres, linktype = source.big_endian, source.tsres, source.linktype
    state = {"kernel": 0, "iface": 0, "rx": 0, "last_mono": None, "packets": 0, "stats_t": started,
             "stats_pkts": 0, "max_queue": 0}

    def capture_figures() -> dict:
        ps = dict(cap.pcap_stats)
        ps.pop("mono", None)
        rx = sysfs_rx_dropped(iface)
        return {
            "kernel_drops": ps.get("ps_drop", 0),
            "interface_drops": ps.get("ps_ifdrop", 0),
            "rx_dropped": (rx - rx0) if (rx is not None and rx0 is not None) else None,
            "capture": {
                "interface": iface, "bpf": args.bpf, "linktype": linktype, "snaplen": getattr(source, "snaplen", None),
                "promisc": args.promisc, "immediate": bool(getattr(source, "immediate_set", False)),
                "buffer_mb": args.buffer_mb, "libpcap": lib_version,
                "ps_recv": ps.get("ps_recv"), "ps_drop": ps.get("ps_drop"), "ps_ifdrop": ps.get("ps_ifdrop"),
                "rx_dropped_at_start": rx0, "rx_dropped_now": rx,
                "packets_captured": cap.packets + cap.pending, "chunks": cap.chunks,
                "queue_chunks": q.qsize(), "queue_chunks_max": state["max_queue"],
                "ring": ring.info() if ring is not None else None,
                "ring_error": cap.ring_error,
            },
        }

    def note_drops(fig: dict) -> None:
        """New kernel/interface drops become weird records (and stay in the stats)."""
        for key, name, what in (("kernel_drops", "capture.kernel_drop", "by the kernel (capture buffer full)"),
                                ("interface_drops", "capture.interface_drop", "by the interface or driver"),
                                ("rx_dropped", "capture.rx_dropped", "in the interface's rx_dropped counter")):
            v = fig.get(key)
            short = {"kernel_drops": "kernel", "interface_drops": "iface", "rx_dropped": "rx"}[key]
            if v is not None and v > state[short]:
                session.add_weird(name, f"{v - state[short]} packets dropped {what} ({v} in all)")
                state[short] = v

    def write_stats(final: bool = False, first: bool = False) -> dict:
        now = time.monotonic()
        fig = capture_figures()
        if not session._finished:
            note_drops(fig)
        st = session.stats()
        st.update(fig)
        st["mode"] = "live"
        st["started"] = _iso(started_wall)
        st["updated"] = _iso(time.time())
        st["uptime_s"] = round(now - started, 3)
        dt = now - state["stats_t"]
        st["packets_per_s"] = round((st["packets_read"] - state["stats_pkts"]) / dt, 1) if dt > 0 else None
        st["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        st["stopped_by"] = stop_reason[0] if (final and stop_reason) else None
        if delivery is not None:
            if final:    # the last alerts out (bounded by --alert-flush-timeout), then the final figures
                delivery.close()
            st["delivery"] = delivery.stats()
        state["stats_t"] = now
        state["stats_pkts"] = st["packets_read"]
        write_json(os.path.join(args.out, "stats.json"), st)
        if not args.quiet and not first:
            _err(f"{iface}: {st['packets_read']:,} packets ({st['packets_per_s'] or 0:,.0f}/s), "
                 f"flows {st['flows_active']:,} active {st['flows_written']:,} written, "
                 f"drops kernel {st['kernel_drops']:,} iface {st['interface_drops']:,} "
                 f"rx_dropped {st['rx_dropped'] if st['rx_dropped'] is not None else '-'}"
                 + (f", alerts {st['alerts']:,}" if st["alerts"] else ""))
        return st

    rc = 0
    cap.start()
    write_stats(first=True)   # the first stats.json also says the capture is running
    if not args.quiet:
        _err(f"listening on {iface} (link type {linktype}, snaplen {getattr(source, 'snaplen', '?')}"
             + (f", filter {args.bpf!r}" if args.bpf else "") + f"); outputs in {args.out}/")
    next_stats = started + args.stats_interval
    deadline = started + args.duration if args.duration else None
    try:
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                item = None
            if item is _END:
                break
            state["max_queue"] = max(state["max_queue"], q.qsize() + (item is not None))
            now = time.monotonic()
            if item is not None:
                session.feed(item.raw, item.count, big, tsres, linktype)
                state["last_mono"] = item.mono_last
            elif state["last_mono"] is not None and not cap.pending and q.empty():
                # Idle link: advance packet time by the wall time since the last packet, less a margin
                # for packets still on their way, so idle flows time out and get written.
                est = session.last_ts + (now - state["last_mono"]) - IDLE_MARGIN
                last_sweep = session.scanner.table.last_sweep
                if last_sweep is None or est - last_sweep >= IDLE_SWEEP_EVERY:
                    session.sweep(est)
            if (stop.is_set() or (deadline is not None and now >= deadline)) and not cap.stopping:
                if not stop_reason:
                    stop_reason.append("duration")
                cap.stop()
            session.tick()
            if now >= next_stats:
                write_stats()
                next_stats = max(next_stats + args.stats_interval, now)
    except BaseException:
        cap.stop()
        _drain_queue(q, cap)
        try:
            session.finish()
            write_stats(final=True)
        finally:
            source.close()
            if ring is not None:
                ring.close()
        raise
    cap.join(timeout=10)
    if cap.ring_error:
        _err(f"warning: {cap.ring_error}")
    if cap.error is not None:
        _err(f"error: {cap.error}")
        session.add_weird("capture.failed", str(cap.error))
        rc = 1
    note_drops(capture_figures())   # the last counters, while weird.jsonl is still open
    session.finish()
    if ring is not None:
        ring.close()
    source.close()
    st = write_stats(final=True)
    if not args.quiet:
        _err(f"stopped ({st['stopped_by'] or 'end of capture'}): {st['flows_written']:,} flows written to "
             f"{args.out}/")
    return rc


def _drain_queue(q: queue.Queue, cap: CaptureThread) -> None:
    """Unblock a capture thread waiting on a full queue after the consumer failed."""
    end = time.monotonic() + 5
    while cap.is_alive() and time.monotonic() < end:
        try:
            if q.get(timeout=0.1) is _END:
                return
        except queue.Empty:
            pass


def main(argv=None) -> int:
    """Stand-alone entry point: ``python -m inspector.live -i IFACE --out DIR ...``."""
    parser = argparse.ArgumentParser(prog="inspector")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != "live":
        argv = ["live"] + argv
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
