"""``inspector scan PATH... --out DIR``: capture files through the pipeline into DIR, a summary on stdout."""
from __future__ import annotations

import os
import signal
import sys
import time

from .options import add_analysis_arguments, severity_arg, size_arg


def add_parser(sub):
    s = sub.add_parser("scan", help="scan capture files, directories, globs or '-' (stdin)")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--out", required=True, metavar="DIR", help="output directory")
    s.add_argument("--site", metavar="FILE", help="site file (YAML): local_nets, roles, allowed_destinations")
    s.add_argument("--max-flows", type=int, default=1_000_000, help="flow table bound (LRU eviction beyond)")
    add_analysis_arguments(s)
    s.add_argument("--workers", type=_workers_arg, default="auto", metavar="N",
                   help="processes sharing the analysis, connections split by address pair (default auto: "
                        "every core for inputs of 64 MB or more, else 1; standard input: 1)")
    s.add_argument("--flows-only", action="store_true",
                   help="connection records only (no protocol, destination, content or policy analysis, no "
                        "report): Zeek conn.log mode, the fastest")
    s.add_argument("--fail-on", type=severity_arg, metavar="SEVERITY",
                   help="exit 1 when an alert at or above this severity was raised (critical, high, medium, low)")
    s.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    s.add_argument("--extract-files", metavar="DIR", help="write the files that left the site to DIR, named by "
                   "sha256 (DIR/<sha256>; a file cut by a cap or with bytes missing: <sha256>.partial)")
    s.add_argument("--extract-max-bytes", type=size_arg, default=None, metavar="SIZE",
                   help="bytes written per extracted file (default 64M; K, M, G suffixes)")
    s.add_argument("--extract-total-bytes", type=size_arg, default=None, metavar="SIZE",
                   help="bytes written by all extracted files of the run (default 1G)")
    s.add_argument("--extract-all", action="store_true",
                   help="extract every file, not only those that left the site")
    from ..delivery import add_arguments as add_delivery_arguments
    add_delivery_arguments(s)
    return s


def _workers_arg(text: str):
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        import argparse
        raise argparse.ArgumentTypeError(f"expected a number of processes (1 or more) or auto, not {text!r}")
    return n


class _Usage(Exception):
    """A problem with the arguments found after parsing: its text is the one stderr line (exit 2)."""


def _extractor(args):
    """The --extract-files writer (checked writable now), or None."""
    if not args.extract_files:
        return None
    from ..content.files import DEFAULT_EXTRACT_MAX_BYTES, DEFAULT_EXTRACT_TOTAL_BYTES, ExtractError, Extractor
    if args.flows_only:
        raise _Usage("inspector: error: --extract-files needs content analysis (not with --flows-only)")
    if _inside(args.extract_files, args.out):
        raise _Usage(f"inspector: error: --extract-files {args.extract_files} must not be inside --out "
                     f"{args.out} (each run replaces the output directory)")
    ex = Extractor(args.extract_files,
                   DEFAULT_EXTRACT_MAX_BYTES if args.extract_max_bytes is None else args.extract_max_bytes,
                   DEFAULT_EXTRACT_TOTAL_BYTES if args.extract_total_bytes is None else args.extract_total_bytes,
                   extract_all=args.extract_all)
    try:
        ex.check()
    except ExtractError as e:
        raise _Usage(f"inspector: error: {e}")
    return ex


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (symlinks resolved)."""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def run(args, env) -> int:
    from ..outputs import OutputDir, OutputError
    from ..settings import Settings, SettingsError
    try:
        settings = Settings.from_args(args, env)
        extractor = _extractor(args)
    except SettingsError as e:
        print(e.line("inspector"), file=sys.stderr)
        return 2
    except _Usage as e:
        print(str(e), file=sys.stderr)
        return 2
    if extractor is not None:          # this run's output: the files stage writes what it sees there
        settings.content.files.extractor = extractor
    from ..delivery import DeliveryConfigError, default_spool_root, from_args as delivery_from_args
    try:   # started now: what an earlier run left in the spool goes out while this one scans
        delivery = None if args.flows_only else delivery_from_args(args, default_spool_root(args.out))
    except DeliveryConfigError as e:
        print(f"inspector: error: {e}", file=sys.stderr)
        return 2
    # The run writes into a staging folder next to --out, moved into place at the end (see
    # inspector/outputs/staging.py); any error leaves the old --out as it was.
    try:
        with OutputDir(args.out) as od, StopSignals() as stop:
            return _scan_into(od, args, settings, extractor, stop, delivery)
    except OutputError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:       # a second SIGINT/SIGTERM: the run is abandoned, --out untouched
        print(f"inspector: interrupted: run abandoned, {args.out} left as it was", file=sys.stderr)
        return 130
    finally:
        if delivery is not None:    # already flushed on a normal end; otherwise stop now, the spool keeps the rest
            delivery.close(0)


def _scan_into(od, args, settings, extractor, stop, delivery) -> int:
    from ..outputs.files import FileSink
    from ..pipeline import Sink, run as run_pipeline
    from ..report import Aggregates
    from ..sources.files import FileSource
    from .terminal import Progress
    started = time.monotonic()
    progress = Progress(enabled=False if args.quiet else None)
    files = FileSink(od.path, alerts=settings.rules is not None, guard=od.writing)
    sinks = [files]
    agg = Aggregates(role_of=settings.site.role)
    if settings.analysis:
        class _Report(Sink):
            def flows(self, recs):
                agg.add(recs)
        sinks.append(_Report())
    from ..parallel import WorkerError, auto_workers, run_parallel
    workers = auto_workers(args.paths) if args.workers == "auto" else args.workers
    if workers > 1 and "-" not in args.paths:
        try:
            source = run_parallel(args.paths, settings, sinks, workers, progress=progress, stop=stop)
        except WorkerError as e:
            progress.done()
            print(f"inspector: error: {e}", file=sys.stderr)
            return 2
        pipe = source.pipe
    else:
        source = FileSource(args.paths, progress=progress, stop=stop)
        pipe = run_pipeline(source, settings, sinks, tune_gc=True)
    progress.done()
    for err in source.errors:
        print(f"inspector: {err}", file=sys.stderr)
    if source.inputs_ok == 0:
        if delivery is not None:   # what the spool held went out while this run tried its inputs
            delivery.close()
        print("inspector: error: no readable capture among the inputs", file=sys.stderr)
        return 2
    alerts = files.alert_records or []
    incidents: list = []
    if files.alert_records is not None:
        from ..incidents import incidents_from_dir, write_incidents
        # The covered flow and content records are read back from the files the pipeline just closed;
        # building incidents gives every alert its alert_id and incident_id (before alerts.jsonl and
        # delivery).  The commands of next_steps name --out, where the outputs are once committed.
        inputs = [f.get("path") for f in pipe.scanner.stats().get("files") or () if f.get("path")]
        with od.writing():
            incidents = incidents_from_dir(od.path, alerts, site=settings.site, from_dir=args.out, captures=inputs)
            write_incidents(os.path.join(od.path, "incidents.jsonl"), incidents)
    if delivery is not None:   # the final alerts (after anything that annotates them), then a bounded flush
        delivery(alerts)
        delivery.close()
    stats = pipe.scanner.stats()
    stats["inputs_failed"] = source.errors
    if stop():
        stats["stopped_by"] = stop()
    stats["site"] = settings.site.name
    stats["alerts"] = pipe.alerts_raised
    if getattr(pipe.policy, "exclusions", None):
        stats["exclusions"] = pipe.policy.exclusion_stats()
    if files.alert_records is not None:
        stats["incidents"] = len(incidents)
    stats["logs"] = files.log_counts
    if extractor is not None:
        stats["extracted"] = extractor.summary()
    if delivery is not None:
        stats["delivery"] = delivery.stats()
    files.write_end_files(stats)
    if settings.analysis:
        from ..report import write_report
        from ..report.html import iter_jsonl
        content_path = os.path.join(od.path, "content.jsonl")
        with od.writing():
            write_report(os.path.join(od.path, "report.html"), agg, alerts, stats, settings.site.name,
                         content=iter_jsonl(content_path) if os.path.exists(content_path) else None,
                         incidents=incidents if files.alert_records is not None else None)
    od.commit()
    if not args.quiet:
        from .terminal import print_summary
        print_summary(None, stats, agg, alerts, settings.site.name, args.out, time.monotonic() - started,
                      incidents=incidents if files.alert_records is not None else None)
    for ex in stats.get("exclusions") or ():
        if ex["after_expiry"]:
            print(f"inspector: warning: {ex['entry']}: exclusion expired on {ex['expires']} (owner {ex['owner']}): "
                  f"{ex['after_expiry']} flows or DNS queries it covers were checked by the policy; "
                  "renew or remove it",
                  file=sys.stderr)
    if extractor is not None and extractor.error:
        print(f"inspector: error: {extractor.error}", file=sys.stderr)
        return 2
    if stop():
        print(f"inspector: interrupted by {stop()}: {args.out} holds the {stats['packets_read']:,} packets "
              f"processed", file=sys.stderr)
        return 128 + getattr(signal, stop()).value
    if args.fail_on is not None:
        from ..policy import exit_status
        return exit_status(alerts, args.fail_on)
    return 0


class StopSignals:
    """SIGINT and SIGTERM during a scan: the first asks the scan to stop after the batch in hand (the
    outputs of what was processed are then written and moved into place); a second one abandons the
    run (``KeyboardInterrupt``).  Calling the object gives the first signal's name, or None.
    Installed only in the main thread (signal handlers can be set nowhere else)."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.name = None
        self._old = {}

    def __call__(self):
        return self.name

    def _handle(self, signum, frame):
        if self.name is not None:
            raise KeyboardInterrupt
        self.name = signal.Signals(signum).name

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
