"""``inspector live -i IFACE --out DIR``: capture through libpcap and analyse as packets arrive.

The source is ``sources.live.LiveSource`` (a capture thread, bounded hand-over,
idle sweeps), the sink ``outputs.rotating.LiveSink`` (rotating outputs, stats.json);
the pipeline between them is the one ``scan`` runs, so live equals scan of the
same packets.  SIGINT/SIGTERM (and ``--duration``) stop the capture; everything in
flight is flushed and the exit status is 0.  Stats lines go to stderr, alerts to
stdout (one JSON object per line) as they fire.

Exit status: 0 stopped with everything flushed; 1 the capture failed while running
(outputs still flushed); 2 usage, configuration or capture-open error (one line).
"""
from __future__ import annotations

import signal
import sys
import threading

from .options import add_analysis_arguments, non_negative, positive, positive_int

DEFAULT_BATCH_PACKETS = 65536   # kept in step with inspector.sources.live (not imported: --help stays light)
DEFAULT_BATCH_MB = 16
DEFAULT_BATCH_MS = 200


def add_parser(subparsers):
    s = subparsers.add_parser("live", help="capture from a network interface and analyse as packets arrive",
                              description="Capture from IFACE through libpcap and write flows, weirds, alerts "
                                          "and stats as they happen.  SIGINT/SIGTERM flush and exit 0.")
    s.add_argument("-i", "--interface", required=True, metavar="IFACE", help="interface to capture on")
    s.add_argument("--bpf", metavar="EXPR", help="capture filter (tcpdump syntax)")
    s.add_argument("--site", metavar="FILE", help="site file (YAML): local_nets, roles, allowed_destinations")
    s.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_analysis_arguments(s)
    s.add_argument("--max-flows", type=positive_int, default=1_000_000,
                   help="flow table bound (LRU eviction beyond, counted as flow.table_full)")
    s.add_argument("--rotate-seconds", type=non_negative, default=3600, metavar="S",
                   help="rotate outputs every S seconds of wall time, aligned to the clock (0: never; default 3600)")
    s.add_argument("--rotate-mb", type=non_negative, default=256, metavar="MB",
                   help="rotate an output when its JSON Lines file reaches MB megabytes (0: never; default 256)")
    s.add_argument("--stats-interval", type=positive, default=10, metavar="S",
                   help="rewrite stats.json (and print a stats line) every S seconds (default 10)")
    s.add_argument("--ring", metavar="DIR", help="keep a ring of raw capture files (pcap) in DIR")
    s.add_argument("--ring-files", type=positive_int, default=10, metavar="N", help="files in the ring (default 10)")
    s.add_argument("--ring-size", type=positive, default=100, metavar="MB", help="size of one ring file (default 100)")
    s.add_argument("--snaplen", type=positive_int, default=262144, help="bytes captured per packet (default 262144)")
    s.add_argument("--buffer-mb", type=positive_int, default=256,
                   help="kernel capture buffer in MB (default 256); a bigger one absorbs longer bursts")
    s.add_argument("--no-promisc", dest="promisc", action="store_false", help="do not put the interface in "
                   "promiscuous mode")
    s.add_argument("--immediate", dest="immediate", action="store_true", default=False,
                   help="libpcap immediate mode: lowest latency, but on Linux it switches to a ring of fixed-size "
                        "slots (TPACKET_V2) that holds far fewer packets (see docs/live.md); default off")
    s.add_argument("--batch-packets", type=positive_int, default=DEFAULT_BATCH_PACKETS,
                   help=f"analyse in batches of at most this many packets (default {DEFAULT_BATCH_PACKETS})")
    s.add_argument("--batch-ms", type=positive, default=DEFAULT_BATCH_MS,
                   help=f"... or after this many milliseconds (default {DEFAULT_BATCH_MS})")
    s.add_argument("--batch-mb", type=positive, default=DEFAULT_BATCH_MB,
                   help=f"... or this many megabytes (default {DEFAULT_BATCH_MB})")
    s.add_argument("--duration", type=positive, metavar="S", help="stop after S seconds (as on SIGTERM)")
    s.add_argument("-q", "--quiet", action="store_true", help="no stats lines on stderr, no alerts on stdout")
    from ..delivery import add_arguments as add_delivery_arguments
    add_delivery_arguments(s)
    return s


def _err(msg: str) -> None:
    print("inspector live: " + " ".join(str(msg).split()), file=sys.stderr, flush=True)


class _AlertPrinter:
    """Alerts on stdout, one JSON object per line, as they fire; stops quietly when stdout is gone."""

    def __init__(self):
        self.enabled = True

    def __call__(self, alerts: list) -> None:
        if not self.enabled:
            return
        import orjson

        from ..outputs.rotating import json_default
        try:
            out = sys.stdout
            for a in alerts:
                out.write(orjson.dumps(a, option=orjson.OPT_NON_STR_KEYS, default=json_default).decode() + "\n")
            out.flush()
        except (BrokenPipeError, ValueError):   # stdout gone: keep writing the file
            self.enabled = False


def run(args, env, capture=None, policy=None, alert_sinks=()) -> int:
    """Run ``inspector live``.  ``capture`` replaces the libpcap capture (a test double with the
    same methods), ``policy`` the policy engine the settings would build, ``alert_sinks`` are more
    callables given each list of alerts as they fire."""
    stop_reason: list = []
    holder: dict = {}
    old_handlers = {}

    def _on_signal(signum, _frame):
        name = signal.Signals(signum).name
        src = holder.get("source")
        if src is not None:
            src.request_stop(name)
        elif not stop_reason:
            stop_reason.append(name)
    # Installed first, so a signal during start-up also ends in a clean exit 0.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old_handlers[sig] = signal.signal(sig, _on_signal)
    try:
        return _run(args, env, capture, policy, alert_sinks, holder, stop_reason)
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)


def _run(args, env, capture, policy, alert_sinks, holder, stop_reason) -> int:
    import os

    from ..settings import Settings, SettingsError
    try:
        settings = Settings.from_args(args, env)
    except SettingsError as e:
        _err(e.text)
        return 2
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        _err(f"error: cannot create output directory {args.out}: {e.strerror}")
        return 2
    from ..delivery import DeliveryConfigError, default_spool_root, from_args as delivery_from_args
    try:
        delivery = delivery_from_args(args, default_spool_root(args.out))
    except DeliveryConfigError as e:
        _err(f"error: {e}")
        return 2
    try:
        return _capture(args, settings, capture, policy, list(alert_sinks), holder, stop_reason, delivery)
    finally:
        if delivery is not None:
            delivery.close()


def _capture(args, settings, capture, policy, alert_sinks, holder, stop_reason, delivery) -> int:
    """The capture of ``_run``, once the settings are loaded; alerts also go to ``delivery``."""
    from ..outputs.rotating import LiveSink, RingWriter
    from ..pipeline import run as run_pipeline
    from ..sources.libpcap import CaptureError, LibpcapCapture, libpcap_version
    from ..sources.live import LiveSource
    if delivery is not None:
        alert_sinks = alert_sinks + [delivery]
    iface = args.interface
    if capture is None:
        capture = LibpcapCapture(iface, bpf=args.bpf, snaplen=args.snaplen, promisc=args.promisc,
                                 buffer_mb=args.buffer_mb, immediate=args.immediate)
    try:
        capture.open()
    except CaptureError as e:
        _err(f"error: {e}")
        return 2
    for w in getattr(capture, "warnings", ()):
        _err(f"warning: {w}")
    ring = None
    if args.ring:
        try:
            ring = RingWriter(args.ring, capture.header, files=args.ring_files, size_mb=args.ring_size)
        except OSError as e:
            _err(f"error: cannot write the ring in {args.ring}: {e.strerror or e}")
            capture.close()
            return 2
    try:
        lib_version = libpcap_version() if isinstance(capture, LibpcapCapture) else type(capture).__name__
    except CaptureError:
        lib_version = None
    source = LiveSource(capture, iface, batch_packets=args.batch_packets, batch_bytes=int(args.batch_mb * (1 << 20)),
                        batch_ms=args.batch_ms, ring=ring, duration=args.duration,
                        info={"bpf": args.bpf, "promisc": args.promisc, "buffer_mb": args.buffer_mb,
                              "libpcap": lib_version})
    holder["source"] = source
    if stop_reason:                          # a signal arrived while starting
        source.request_stop(stop_reason[0])
    printer = _AlertPrinter()
    sinks_for_alerts = ([] if args.quiet else [printer]) + list(alert_sinks)

    def on_alerts(alerts):
        for s in sinks_for_alerts:
            s(alerts)

    def on_stats(st):
        if not args.quiet:
            _err(f"{iface}: {st['packets_read']:,} packets ({st['packets_per_s'] or 0:,.0f}/s), "
                 f"flows {st['flows_active']:,} active {st['flows_written']:,} written, "
                 f"drops kernel {st['kernel_drops']:,} iface {st['interface_drops']:,} "
                 f"rx_dropped {st['rx_dropped'] if st['rx_dropped'] is not None else '-'}"
                 + (f", alerts {st['alerts']:,}" if st["alerts"] else ""))
    try:
        sink = LiveSink(args.out, rotate_seconds=args.rotate_seconds, rotate_bytes=int(args.rotate_mb * (1 << 20)),
                        stats_interval=args.stats_interval, stats_source=source, on_stats=on_stats,
                        on_alerts=on_alerts, site=settings.site, delivery=delivery,
                        on_warning=lambda msg: _err(f"warning: {msg}"))
    except BaseException:
        source.close()
        raise
    if not args.quiet:
        _err(f"listening on {iface} (link type {capture.linktype}, snaplen {getattr(capture, 'snaplen', '?')}"
             + (f", filter {args.bpf!r}" if args.bpf else "") + f"); outputs in {args.out}/")
    run_pipeline(source, settings, [sink], policy=policy, tune_gc=True)
    for w in source.warnings:
        _err(f"warning: {w}")
    rc = 0
    if source.error is not None:
        _err(f"error: {source.error}")
        rc = 1
    if not args.quiet:
        st = sink.last_stats
        _err(f"stopped ({st['stopped_by'] or 'end of capture'}): {st['flows_written']:,} flows written to "
             f"{args.out}/")
    return rc
