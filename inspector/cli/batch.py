"""``inspector batch DIR... --db PATH``: the nightly batch over a site's captures (see ``inspector.batch``).

Each capture goes through the same pipeline ``scan`` runs, in worker processes
(local or a Dask cluster) that get the run's ``WorkerSettings`` (a picklable
``SettingsSpec``, resolved here from the arguments and the environment) and load
the settings once per process.
"""
from __future__ import annotations

import os
import sys


def add_parser(subparsers):
    from ..batch.baseline import BaselineConfig
    d = BaselineConfig()
    b = subparsers.add_parser("batch", help="nightly batch: captures under DIR... into a DuckDB database, "
                                            "with baselines and batch alerts")
    b.add_argument("dirs", nargs="+", metavar="DIR",
                   help="capture folders (searched recursively; DIR/<host>/... : the sub-folder names the host)")
    b.add_argument("--db", required=True, metavar="PATH", help="DuckDB database (created when absent); "
                                                               "Parquet files go to <its dir>/parquet/")
    b.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes (default: the number of CPUs; 0: in this process)")
    b.add_argument("--dask", metavar="ADDRESS", help="run on the Dask distributed cluster whose scheduler is at "
                                                     "ADDRESS (tcp://host:8786); workers need the same paths")
    b.add_argument("--site", metavar="FILE", help="site file (YAML): local_nets, roles, allowed_destinations")
    b.add_argument("--geoip", metavar="PATH", help="MaxMind country/city .mmdb (default: bundled offline data)")
    b.add_argument("--asn-db", metavar="PATH", help="MaxMind ASN .mmdb (default: bundled offline data)")
    b.add_argument("--signatures", metavar="DIR", help="signatures directory (default: ./signatures or the one "
                                                       "shipped with inspector)")
    b.add_argument("--rules", metavar="PATH", help="policy rules (default: the policy engine's own)")
    b.add_argument("--no-policy", action="store_true", help="no policy alerts (flows and baselines only)")
    b.add_argument("--hash-salt", metavar="TEXT", help="salt for evidence hashes (default: $INSPECTOR_HASH_SALT, "
                                                       "else derived from the site name)")
    b.add_argument("--max-flows", type=int, default=1_000_000, help="flow table bound per capture")
    b.add_argument("--tz", metavar="ZONE", help="time zone whose calendar dates are the nights (default: UTC; "
                                                "fixed by the first run of a database)")
    b.add_argument("--baseline-nights", type=int, default=d.nights, metavar="N",
                   help=f"history window: a host's last N nights with traffic (default {d.nights})")
    b.add_argument("--baseline-k", type=float, default=d.k, metavar="K",
                   help=f"alert above median + K * MAD-based scale (default {d.k:g})")
    b.add_argument("--baseline-min-nights", type=int, default=d.min_nights, metavar="M",
                   help=f"no baseline alert before M history nights (default {d.min_nights})")
    b.add_argument("--baseline-by", choices=("host", "role"), default=d.by,
                   help="baseline entity: the site host (capture sub-folder) or the local host's role")
    b.add_argument("--rebaseline", action="store_true", help="recompute the batch alerts of every night")
    b.add_argument("--retry-errors", action="store_true",
                   help="process again the files recorded as unreadable by earlier runs")
    b.add_argument("--rehash", action="store_true", help="hash every file again (ignore the path/size/mtime cache)")
    b.add_argument("-q", "--quiet", action="store_true", help="no per-capture lines on stdout")
    from ..delivery import SPOOL_DIRNAME, add_arguments as add_delivery_arguments
    add_delivery_arguments(b, spool_default=f"{SPOOL_DIRNAME}/ beside the database")
    return b


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _abs(path):
    """Workers (other processes, other machines with the same mounts) resolve paths themselves."""
    return os.path.abspath(path) if path else path


def run(args, env) -> int:
    from ..batch import run_batch
    from ..batch.baseline import BaselineConfig
    from ..batch.worker import WorkerSettings
    from ..settings import signatures_dir
    if args.dask and args.workers is not None:
        _err("inspector batch: error: --workers and --dask exclude each other (Dask workers are the cluster's)")
        return 2
    if args.max_flows is not None and args.max_flows < 1:
        _err("inspector batch: error: --max-flows must be at least 1")
        return 2
    settings = WorkerSettings.from_args(
        args, env, site=_abs(args.site), geoip=_abs(args.geoip), asn_db=_abs(args.asn_db),
        signatures=_abs(signatures_dir(args.signatures)), rules=_abs(args.rules), tz=args.tz)
    cfg = BaselineConfig(nights=args.baseline_nights, k=args.baseline_k, min_nights=args.baseline_min_nights,
                         by=args.baseline_by)
    from ..delivery import SPOOL_DIRNAME, DeliveryConfigError, from_args as delivery_from_args
    try:
        delivery = delivery_from_args(args, os.path.join(os.path.dirname(os.path.abspath(args.db)), SPOOL_DIRNAME))
    except DeliveryConfigError as e:
        _err(f"inspector batch: error: {e}")
        return 2
    try:
        return run_batch(args.dirs, args.db, settings=settings, cfg=cfg, workers=args.workers, dask=args.dask,
                         quiet=args.quiet, rebaseline=args.rebaseline, retry_errors=args.retry_errors,
                         rehash=args.rehash, delivery=delivery)
    finally:
        if delivery is not None:
            delivery.close()
            _report_delivery(delivery, args.quiet)


def _report_delivery(delivery, quiet: bool) -> None:
    """One line on what left for the receivers (batch has no stats.json); problems always."""
    st = delivery.stats()
    line = (f"alert delivery: {st['sent']} sent, {st['spooled']} spooled, {st['dropped']} dropped, "
            f"{st['failed']} failed")
    if st["dropped"] or st["failed"] or st["spooled"]:
        _err(f"inspector batch: {line}")
    elif not quiet:
        print(f"inspector batch: {line}", flush=True)
