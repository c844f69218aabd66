"""Command line: a thin shell that parses arguments, builds settings once and wires stages.

``main(argv, env) -> exit status`` so tests run the CLI in-process.
Exit status: 0 done; 2 usage error, bad config, or no readable input (one line on stderr).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter

from . import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="inspector", description="Network traffic inspector for warehouse and DC networks.")
    p.add_argument("--version", action="version", version=f"inspector {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    s = sub.add_parser("scan", help="scan capture files, directories, globs or '-' (stdin)")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--out", required=True, metavar="DIR", help="output directory")
    s.add_argument("--site", metavar="FILE", help="site file (YAML): local_nets, roles, allowed_destinations")
    s.add_argument("--max-flows", type=int, default=1_000_000, help="flow table bound (LRU eviction beyond)")
    from .settings import add_analysis_arguments
    add_analysis_arguments(s)
    s.add_argument("--flows-only", action="store_true",
                   help="connection records only (no protocol, destination, content or policy analysis, no "
                        "report): Zeek conn.log mode, the fastest")
    from .policy import add_check_parser, severity_arg
    s.add_argument("--fail-on", type=severity_arg, metavar="SEVERITY",
                   help="exit 1 when an alert at or above this severity was raised (critical, high, medium, low)")
    s.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    s.add_argument("--extract-files", metavar="DIR", help="write the files that left the site to DIR, named by "
                   "sha256 (DIR/<sha256>; a file cut by a cap or with bytes missing: <sha256>.partial)")
    s.add_argument("--extract-max-bytes", type=_size_arg, default=None, metavar="SIZE",
                   help="bytes written per extracted file (default 64M; K, M, G suffixes)")
    s.add_argument("--extract-total-bytes", type=_size_arg, default=None, metavar="SIZE",
                   help="bytes written by all extracted files of the run (default 1G)")
    s.add_argument("--extract-all", action="store_true",
                   help="extract every file, not only those that left the site")
    from .delivery import add_arguments as add_delivery_arguments
    add_delivery_arguments(s)
    add_check_parser(sub)
    from .content import edm as _edm
    _edm.add_parser(sub)
    from . import live as _live
    _live.add_parser(sub)
    from .batch import add_parser as add_batch_parser, add_report_parser
    add_batch_parser(sub)
    add_report_parser(sub)
    return p


def _size_arg(text: str) -> int:
    """A byte count: 1048576, 512K, 64M, 1G."""
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if mult > 1 else t
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(digits) * mult


def _extractor(args):
    """The --extract-files writer (checked writable now), or None."""
    if not args.extract_files:
        return None
    from .content.files import DEFAULT_EXTRACT_MAX_BYTES, DEFAULT_EXTRACT_TOTAL_BYTES, ExtractError, Extractor
    if args.flows_only:
        raise _UsageError("inspector: error: --extract-files needs content analysis (not with --flows-only)")
    if _inside(args.extract_files, args.out):
        raise _UsageError(f"inspector: error: --extract-files {args.extract_files} must not be inside --out "
                          f"{args.out} (each run replaces the output directory)")
    ex = Extractor(args.extract_files,
                   DEFAULT_EXTRACT_MAX_BYTES if args.extract_max_bytes is None else args.extract_max_bytes,
                   DEFAULT_EXTRACT_TOTAL_BYTES if args.extract_total_bytes is None else args.extract_total_bytes,
                   extract_all=args.extract_all)
    try:
        ex.check()
    except ExtractError as e:
        raise _UsageError(f"inspector: error: {e}")
    return ex


def main(argv=None, env=None) -> int:
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    if args.command is None:
        print("inspector: error: a command is required (scan, live, batch, report, fingerprint, signatures)",
              file=sys.stderr)
        return 2
    if args.command == "scan":
        return _cmd_scan(args)
    if args.command == "fingerprint":
        from .content import edm
        return edm.run(args)
    if args.command == "live":
        from . import live
        return live.run(args)
    if args.command == "signatures":
        from .policy import run_check
        return run_check(args)
    if args.command == "batch":
        from .batch import run as run_batch
        return run_batch(args)
    if args.command == "report":
        from .batch import run_report
        return run_report(args)
    return 2


def _load_site(path):
    from .errors import ConfigError
    from .site import Site, load_site
    if not path:
        return Site.default()
    try:
        return load_site(path)
    except ConfigError as e:
        raise _UsageError(str(e))


def build_enricher(site, geoip=None, asn_db=None, signatures=None):
    from .errors import ConfigError
    from .settings import build_enricher as _build
    try:
        return _build(site, geoip, asn_db, signatures)
    except ConfigError as e:
        raise _UsageError(str(e))
    except (OSError, ValueError) as e:
        raise _UsageError(f"inspector: error: cannot load geo data: {e}")


def build_content(site, signatures=None, show_raw=False, hash_salt=None):
    from .errors import ConfigError
    from .settings import build_content as _build
    try:
        return _build(site, signatures, show_raw, hash_salt)
    except ConfigError as e:
        raise _UsageError(str(e))


def build_policy(site, signatures=None):
    """The rules a run uses (``<signatures>/rules`` or the shipped default policy) and an engine."""
    from .errors import ConfigError
    from .policy import PolicyEngine, load_rules, rules_dir
    try:
        rules = load_rules(rules_dir(signatures))
    except ConfigError as e:
        raise _UsageError(str(e))
    return PolicyEngine(rules, site, max_cached=50_000)


def _cmd_scan(args) -> int:
    from .outputs import OutputDir, OutputError
    try:
        site = _load_site(args.site)
        if args.flows_only:      # connection records only: no destination data, content or policy
            enricher = content = policy = None
        else:
            enricher = build_enricher(site, args.geoip, args.asn_db, args.signatures)
            content = build_content(site, args.signatures, args.show_raw, args.hash_salt)
            policy = build_policy(site, args.signatures)
        extractor = _extractor(args)
        if extractor is not None:
            content.files.extractor = extractor
    except _UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    from .delivery import DeliveryConfigError, default_spool_root, from_args as delivery_from_args
    try:   # started now: what an earlier run left in the spool goes out while this one scans
        delivery = None if args.flows_only else delivery_from_args(args, default_spool_root(args.out))
    except DeliveryConfigError as e:
        print(f"inspector: error: {e}", file=sys.stderr)
        return 2
    # The run writes into a staging folder next to --out, moved into place at the end (see
    # inspector/outputs/staging.py); any error leaves the old --out as it was.
    try:
        with OutputDir(args.out) as od, _StopSignals() as stop:
            return _scan_into(od, args, site, enricher, content, policy, extractor, stop, delivery)
    except OutputError as e:
        print(str(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:       # a second SIGINT/SIGTERM: the run is abandoned, --out untouched
        print(f"inspector: interrupted: run abandoned, {args.out} left as it was", file=sys.stderr)
        return 130
    finally:
        if delivery is not None:    # already flushed on a normal end; otherwise stop now, the spool keeps the rest
            delivery.close(0)


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (symlinks resolved)."""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def _scan_into(od, args, site, enricher, content, policy, extractor, stop, delivery) -> int:
    from .outputs import FlowWriter, LogWriter, write_json, write_jsonl
    from .report import Aggregates, Progress, print_summary
    from .scan import WEIRD_FIELDS, run_scan
    out = od.path
    started = time.monotonic()
    progress = Progress(enabled=False if args.quiet else None)
    with od.writing():
        writer = FlowWriter(out)
        logs = LogWriter(out)
    agg = Aggregates(role_of=site.role)
    alerts: list = []

    @od.guarded
    def on_flows(recs):
        writer.write(recs)
        if args.flows_only:      # conn.log mode: connection records, nothing else
            return
        agg.add(recs)
        alerts.extend(policy.observe_flows(recs))
        if recs:   # windows that closed in packet time fire now, as they do in live mode
            alerts.extend(policy.flush(now=max((r.get("ts") or 0.0) + (r.get("duration") or 0.0) for r in recs)))

    @od.guarded
    def on_log(log, rec):
        logs(log, rec)
        if policy is not None and log in ("dns", "content"):
            alerts.extend(policy.observe_log(log, rec))

    res = run_scan(args.paths, site=site, progress=progress, max_flows=args.max_flows, on_flows=on_flows,
                   enricher=enricher, log_sink=on_log, content=content, app=not args.flows_only, stop=stop)
    progress.done()
    if policy is not None:
        alerts.extend(policy.flush(final=True))
    with od.writing():
        writer.close()
        logs.close()
    for err in res.errors:
        print(f"inspector: {err}", file=sys.stderr)
    if res.inputs_ok == 0:
        if delivery is not None:   # what the spool held went out while this run tried its inputs
            delivery.close()
        print("inspector: error: no readable capture among the inputs", file=sys.stderr)
        return 2
    if delivery is not None:   # the final alerts (after anything that annotates them), then a bounded flush
        delivery(alerts)
        delivery.close()
    stats = dict(res.stats)
    stats["site"] = site.name
    stats["alerts"] = len(alerts)
    stats["logs"] = dict(logs.counts)
    if extractor is not None:
        stats["extracted"] = extractor.summary()
    if delivery is not None:
        stats["delivery"] = delivery.stats()
    with od.writing():
        write_jsonl(os.path.join(out, "weird.jsonl"), res.weirds, WEIRD_FIELDS)
        if policy is not None:
            from .policy import write_alerts
            write_alerts(os.path.join(out, "alerts.jsonl"), alerts)
        write_json(os.path.join(out, "stats.json"), stats)
        if not args.flows_only:
            from .report import write_report
            from .report.html import iter_jsonl
            content_path = os.path.join(out, "content.jsonl")
            write_report(os.path.join(out, "report.html"), agg, alerts, stats, site.name,
                         content=iter_jsonl(content_path) if os.path.exists(content_path) else None)
    od.commit()
    if not args.quiet:
        print_summary(None, stats, agg, alerts, site.name, args.out, time.monotonic() - started)
    if extractor is not None and extractor.error:
        print(f"inspector: error: {extractor.error}", file=sys.stderr)
        return 2
    if stop():
        print(f"inspector: interrupted by {stop()}: {args.out} holds the {stats['packets_read']:,} packets "
              f"processed", file=sys.stderr)
        return 128 + getattr(signal, stop()).value
    if args.fail_on is not None:
        from .policy import exit_status
        return exit_status(alerts, args.fail_on)
    return 0


class _StopSignals:
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


class _Progress:
    """A one-line progress indicator on stderr for scans longer than a couple of seconds."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.start = time.monotonic()
        self.shown = False
        self.last = 0.0

    def __call__(self, path, packets, reader):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < 2.0 or now - self.last < 0.5:
            return
        self.last = now
        self.shown = True
        sys.stderr.write(f"\r  {os.path.basename(path)}: {packets:,} packets  ")
        sys.stderr.flush()

    def done(self):
        if self.shown:
            sys.stderr.write("\n")


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


class _Summary:
    """Running totals for the terminal summary (flows are not kept in memory)."""

    def __init__(self):
        self.flows = 0
        self.by_dir = Counter()
        self.out_bytes = Counter()
        self.by_org = Counter()
        self.logs = {}

    def add(self, recs) -> None:
        for f in recs:
            self.flows += 1
            d = f["direction"]
            self.by_dir[d] += 1
            if d == "outbound":
                dst = f.get("dst_name") or f["id.resp_h"]
                self.out_bytes[(f["id.orig_h"], dst, f["id.resp_p"], f["proto"])] += f["orig_bytes"] or 0
                org = f.get("dst_org") or f.get("dst_group") or "unknown"
                self.by_org[(org, f.get("dst_country") or "??")] += f["orig_bytes"] or 0


def _print_summary(res, summary, site, out_dir: str, elapsed: float) -> None:
    st = res.stats
    print(f"inspector scan: site {site.name}: {st['packets_read']:,} packets, {_fmt_bytes(st['bytes_read'])} "
          f"read in {elapsed:.1f}s")
    decoded = st["outcomes"].get("decoded", 0)
    other = {k: v for k, v in st["outcomes"].items() if k != "decoded"}
    print(f"  decoded {decoded:,}" + ("" if not other else "; other: " +
                                       ", ".join(f"{k} {v:,}" for k, v in sorted(other.items(),
                                                                                  key=lambda kv: -kv[1])[:6])))
    print(f"  flows {summary.flows:,}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(summary.by_dir.items())))
    if summary.out_bytes:
        print("  top outbound flows by bytes sent:")
        for (src, dst, port, proto), b in summary.out_bytes.most_common(8):
            print(f"    {src:>15} -> {dst}:{port}/{proto}  {_fmt_bytes(b)}")
    if summary.by_org:
        print("  outbound bytes by destination organisation (country):")
        for (org, cc), b in summary.by_org.most_common(6):
            print(f"    {org[:40]:<40} ({cc})  {_fmt_bytes(b)}")
    if st["weirds"]:
        wc = Counter(st["weirds"])
        print("  weird: " + ", ".join(f"{k} {v}" for k, v in wc.most_common(6)))
    print(f"  outputs in {out_dir}/: flows.jsonl flows.parquet weird.jsonl stats.json"
          + "".join(f" {k}.jsonl" for k in sorted(summary.logs)))
