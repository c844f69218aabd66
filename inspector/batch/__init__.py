"""``inspector batch`` and ``inspector report``: the nightly batch over a site's captures.

    inspector batch DIR... --db PATH [--workers N | --dask ADDRESS] [--site FILE] [options]
    inspector report --db PATH [--night DATE] --out FILE.html [--nights N]

``batch`` finds the captures under each ``DIR`` (recursively; a host's
captures live in its own sub-folder, whose name is the host name; see
``discover``), skips those already processed (by SHA-256 of the file bytes),
scans the others in parallel (``--workers N`` local processes, or the workers
of the Dask cluster whose scheduler ``--dask`` names) and stores each
capture's flows, policy alerts and per-night aggregates in the DuckDB database
``--db`` with one Parquet file per capture in ``<db dir>/parquet/`` (see
``store``).  Each capture lands atomically: kill the batch at any moment,
start it again, and nothing is lost or duplicated.  Then the batch alerts of
the nights that changed (and of the later ones) are recomputed from the
history: first-seen destinations and volumes far above a host's baseline
(see ``baseline``).  ``report`` writes the night's self-contained HTML page.

Exit status: 0 done; 1 some captures failed and will be retried by the next
run (or the database refused a commit); 2 usage or configuration error,
database in use, nothing readable.

The CLI integration is four calls: ``add_parser(subparsers)`` and ``run(args)``
for ``batch``, ``add_report_parser(subparsers)`` and ``run_report(args)`` for
``report``; ``python -m inspector.batch batch|report ...`` runs them stand-alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["add_parser", "run", "add_report_parser", "run_report", "run_batch", "main"]


# ----------------------------------------------------------------------------------------------
# argument parsing
# ----------------------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    from .baseline import BaselineConfig
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


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    r = subparsers.add_parser("report", help="the nightly HTML report of a batch database")
    r.add_argument("--db", required=True, metavar="PATH", help="the batch database (inspector batch --db)")
    r.add_argument("--night", metavar="DATE", help="YYYY-MM-DD (default: the latest night in the database)")
    r.add_argument("--out", required=True, metavar="FILE.html", help="the report (one self-contained page)")
    r.add_argument("--nights", type=int, default=14, metavar="N", help="trend over the last N nights (default 14)")
    r.add_argument("--by", choices=("host", "role"), default="host", help="rows of the host table: site host or role")
    return r


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# batch
# ----------------------------------------------------------------------------------------------

def _check_settings(settings) -> str | None:
    """Validate what every worker would load, once, here: one error line or None."""
    from ..errors import ConfigError
    try:
        if settings.site:
            from ..site import load_site
            load_site(settings.site)
        from ..enrich import load_groups
        from ..settings import signatures_dir
        load_groups(os.path.join(signatures_dir(settings.signatures), "destinations"))
        for p in (settings.geoip, settings.asn_db):
            if p and not os.path.exists(p):
                return f"inspector: error: cannot load geo data: {p}: no such file"
        if settings.rules and not os.path.exists(settings.rules):
            return f"inspector: error: {settings.rules}: no such file"
        if settings.policy:
            try:
                from ..policy import load_rules
            except ImportError:
                load_rules = None
            if load_rules is not None:
                from .worker import default_rules
                load_rules(settings.rules or default_rules(settings.signatures))
        from .worker import tz_of
        try:
            tz_of(settings.tz)
        except Exception:
            return f"inspector batch: error: --tz {settings.tz}: unknown time zone (use an IANA name like Europe/Berlin)"
    except ConfigError as e:
        return str(e)
    except (OSError, ValueError, KeyError) as e:
        return f"inspector: error: {e}"
    except Exception as e:   # ZoneInfoNotFoundError, a rules error class of the policy engine...
        return f"inspector: error: {type(e).__name__}: {e}"
    return None


def _failed(task: dict, error: str):
    from .worker import CaptureResult
    return CaptureResult(sha256=task["sha256"], path=task["path"], host=task["host"], rel=task["rel"],
                         size=task.get("size", 0), status="failed", error=error)


def _run_local(tasks: list, settings, workers: int, on_result) -> None:
    """Local processes (spawned: a clean interpreter per worker), at most 2 tasks per worker in flight.
    A worker that dies (OOM killer, crash) breaks the pool: its tasks are tried once more in a new pool."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from .worker import process_capture, watch_parent
    if workers <= 0:
        for t in tasks:
            on_result(process_capture(t, settings))
        return
    ctx = mp.get_context("spawn")
    pending = list(reversed(tasks))
    attempts: dict = {}
    def new_pool():
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=watch_parent,
                                   initargs=(os.getpid(),))
    ex = new_pool()
    inflight: dict = {}
    try:
        while pending or inflight:
            broken = False
            while pending and len(inflight) < 2 * workers and not broken:
                t = pending.pop()
                try:
                    inflight[ex.submit(process_capture, t, settings)] = t
                except BrokenProcessPool:
                    pending.append(t)
                    broken = True
            if inflight:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for f in done:
                    t = inflight.pop(f)
                    try:
                        res = f.result()
                    except BrokenProcessPool:
                        broken = True
                        attempts[t["sha256"]] = attempts.get(t["sha256"], 0) + 1
                        if attempts[t["sha256"]] < 2:
                            pending.append(t)
                            continue
                        res = _failed(t, f"{t['path']}: the worker process died (retried next run)")
                    except Exception as e:
                        res = _failed(t, f"{t['path']}: {type(e).__name__}: {e}")
                    on_result(res)
            if broken:
                for f, t in list(inflight.items()):    # the others in flight died with the pool
                    pending.append(t)
                inflight.clear()
                ex.shutdown(wait=False, cancel_futures=True)
                ex = new_pool()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


class _DaskUnavailable(Exception):
    pass


def _run_dask(tasks: list, settings, address: str, on_result) -> None:
    import uuid

    from distributed import Client, as_completed

    from .worker import process_capture
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, ValueError) as e:       # unreachable, timed out, a malformed address
        raise _DaskUnavailable(f"cannot reach the Dask scheduler at {address}: {str(e).splitlines()[0]}") from None
    run_id = uuid.uuid4().hex[:8]
    try:
        futs = [client.submit(process_capture, t, settings, key=f"inspector-batch-{run_id}-{t['sha256'][:16]}",
                              pure=False, retries=1) for t in tasks]
        by_key = {f.key: t for f, t in zip(futs, tasks)}
        for fut in as_completed(futs, loop=client.loop):
            t = by_key[fut.key]
            try:
                res = fut.result()
            except Exception as e:
                res = _failed(t, f"{t['path']}: {type(e).__name__}: {e}")
            on_result(res)
            fut.release()
    finally:
        client.close()


def run_batch(dirs: list, db: str, settings=None, cfg=None, workers: int | None = None, dask: str | None = None,
              quiet: bool = False, rebaseline: bool = False, retry_errors: bool = False, rehash: bool = False,
              out=None, err=None, delivery=None) -> int:
    """The ``batch`` command as a function (the CLI's ``run`` parses arguments and calls this).
    ``delivery`` (``inspector.delivery.AlertDelivery``) is given each capture's policy alerts once
    the capture is committed and each recomputed night's batch alerts, with their database ids."""
    from .baseline import BaselineConfig, run_baselines
    from .discover import discover, file_sha256
    from .store import Store, StoreError
    from .worker import WorkerSettings
    out = out or sys.stdout
    err = err or sys.stderr

    def say(msg: str) -> None:
        print(msg, file=out, flush=True)

    def complain(msg: str) -> None:
        print(msg, file=err, flush=True)

    started = time.monotonic()
    settings = settings or WorkerSettings()
    cfg = cfg or BaselineConfig()
    try:
        cfg.check()
    except ValueError as e:
        complain(f"inspector batch: error: {e}")
        return 2
    problem = _check_settings(settings)
    if problem:
        complain(problem)
        return 2
    try:
        store = Store(db)
    except StoreError as e:
        complain(f"inspector batch: error: {e}")
        return 2
    except OSError as e:
        complain(f"inspector batch: error: {db}: {e.strerror or e}")
        return 2
    try:
        tz_db = store.meta("tz")
        if settings.tz is None or settings.tz == "":
            settings = _replace(settings, tz=tz_db or "UTC")
        if tz_db is not None and tz_db != settings.tz:
            complain(f"inspector batch: error: {db}: nights are dates in {tz_db}, not {settings.tz} "
                     "(use another database for another time zone)")
            return 2
        if tz_db is None:
            store.set_meta("tz", settings.tz)
        store.clean_temp()
        if retry_errors:
            store.forget_errors()
        excl = [db, db + ".wal", store.parquet_dir]
        caps, errors = discover(dirs, exclude=excl)
        for e in errors:
            complain(f"inspector batch: {e}")
        if errors and not caps:
            return 2
        # content hashes (cached by path, size and mtime)
        cache = {} if rehash else store.cached_hashes()
        new_hashes = []
        hashed = []
        for c in caps:
            hit = cache.get(c.path)
            if hit and hit[0] == c.size and hit[1] == c.mtime_ns:
                sha = hit[2]
            else:
                try:
                    sha = file_sha256(c.path)
                except OSError as e:
                    complain(f"inspector batch: {c.path}: {e.strerror or e}")
                    continue
                new_hashes.append((c.path, c.size, c.mtime_ns, sha))
            hashed.append((c, sha))
        store.remember_hashes(new_hashes)
        done = store.processed()
        tasks, seen = [], {}
        n_done = n_dup = 0
        for c, sha in hashed:
            if sha in done:
                n_done += 1
                continue
            if sha in seen:
                n_dup += 1
                if not quiet:
                    say(f"duplicate {c.rel}: same content as {seen[sha]}")
                continue
            seen[sha] = c.rel
            tasks.append({"sha256": sha, "path": c.path, "host": c.host, "rel": c.rel, "size": c.size})
        tasks.sort(key=lambda t: (-t["size"], t["host"], t["rel"]))     # long ones first
        if dask:
            where = f"Dask cluster {dask}"
        else:
            if workers is None:
                workers = min(os.cpu_count() or 1, max(len(tasks), 1))
            where = "this process" if workers <= 0 else f"{workers} local worker{'s' if workers != 1 else ''}"
        say(f"inspector batch: {len(caps)} capture{'s' if len(caps) != 1 else ''} found, {n_done} already "
            f"processed, {n_dup} duplicate{'s' if n_dup != 1 else ''}, {len(tasks)} to process"
            + (f" on {where}" if tasks else ""))
        counts = {"committed": 0, "error": 0, "failed": 0, "flows": 0, "alerts": 0}
        total = len(tasks)
        commit_error = []

        def on_result(res) -> None:
            if commit_error:
                return
            name = res.rel
            if res.status == "failed":
                counts["failed"] += 1
                complain(f"inspector batch: failed {name}: {res.error}")
                for line in res.errors[-1:]:
                    if "Traceback" in line:
                        complain(line.rstrip())
                return
            try:
                store.commit(res, settings.tz)
            except Exception as e:
                commit_error.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0]}")
                complain(f"inspector batch: error: cannot store {commit_error[-1]}")
                return
            n = counts["committed"] + counts["error"] + 1
            if res.status == "error":
                counts["error"] += 1
                complain(f"inspector batch: {res.error} (recorded; --retry-errors to try again)")
                if not quiet:
                    say(f"recorded {res.sha256[:12]} {name}: not a readable capture [{n}/{total}]")
                return
            counts["committed"] += 1
            if delivery is not None and res.alerts:
                from .store import policy_alert_id
                delivery([dict(a, alert_id=policy_alert_id(res.sha256, i)) for i, a in enumerate(res.alerts)])
            nf = res.flows.num_rows
            counts["flows"] += nf
            counts["alerts"] += len(res.alerts)
            if not quiet:
                say(f"committed {res.sha256[:12]} {name}: {nf} flows, {len(res.alerts)} alerts "
                    f"({res.elapsed:.1f}s) [{n}/{total}]")

        if tasks:
            try:
                if dask:
                    _run_dask(tasks, settings, dask, on_result)
                else:
                    _run_local(tasks, settings, workers, on_result)
            except (OSError, _DaskUnavailable) as e:
                complain(f"inspector batch: error: {e}")
                return 2
        if commit_error:
            return 1
        nights, n_alerts = run_baselines(store, cfg, everything=rebaseline, site_name=_site_name(settings),
                                         on_alerts=delivery)
        if nights:
            say(f"baselines: {nights} night{'s' if nights != 1 else ''} recomputed, {n_alerts} batch alert"
                f"{'s' if n_alerts != 1 else ''}")
        say(f"inspector batch: {counts['committed']} committed, {counts['error']} unreadable, {counts['failed']} "
            f"failed; {counts['flows']} flows, {counts['alerts']} policy alerts in "
            f"{time.monotonic() - started:.1f}s; database {db}")
        return 1 if counts["failed"] else 0
    finally:
        store.close()


def _site_name(settings):
    if not settings.site:
        return None
    from ..site import load_site
    return load_site(settings.site).name


def _replace(settings, **kw):
    import dataclasses
    return dataclasses.replace(settings, **kw)


def run(args) -> int:
    from .baseline import BaselineConfig
    from .worker import WorkerSettings
    if args.dask and args.workers is not None:
        _err("inspector batch: error: --workers and --dask exclude each other (Dask workers are the cluster's)")
        return 2
    if args.max_flows is not None and args.max_flows < 1:
        _err("inspector batch: error: --max-flows must be at least 1")
        return 2
    settings = WorkerSettings(site=_abs(args.site), geoip=_abs(args.geoip), asn_db=_abs(args.asn_db),
                              signatures=_abs(args.signatures), hash_salt=args.hash_salt, rules=_abs(args.rules),
                              policy=not args.no_policy, max_flows=args.max_flows, tz=args.tz)
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


def _abs(path):
    """Workers (other processes, other machines with the same mounts) resolve paths themselves."""
    return os.path.abspath(path) if path else path


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------

def run_report(args) -> int:
    import datetime as _dt

    from .report import write_report
    from .store import Store, StoreError
    night = None
    if args.night:
        try:
            night = _dt.date.fromisoformat(args.night)
        except ValueError:
            _err(f"inspector report: error: --night {args.night!r}: expected YYYY-MM-DD")
            return 2
    if args.nights < 1:
        _err("inspector report: error: --nights must be at least 1")
        return 2
    try:
        store = Store(args.db, read_only=True)
    except StoreError as e:
        _err(f"inspector report: error: {e}")
        return 2
    try:
        try:
            info = write_report(store, night, args.out, nights=args.nights, by=args.by)
        except ValueError as e:
            _err(f"inspector report: error: {e}")
            return 2
        except OSError as e:
            _err(f"inspector report: error: cannot write {args.out}: {e.strerror or e}")
            return 2
    finally:
        store.close()
    print(f"inspector report: night {info['night']}: {info['alerts']} alerts, {info['hosts']} "
          f"{'hosts' if args.by == 'host' else 'roles'} -> {args.out}")
    return 0


# ----------------------------------------------------------------------------------------------
# stand-alone: python -m inspector.batch batch|report ...
# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    class _P(argparse.ArgumentParser):
        def error(self, message):
            _err(f"{self.prog}: error: {message}")
            raise SystemExit(2)
    p = _P(prog="inspector")
    sub = p.add_subparsers(dest="command", parser_class=_P)
    add_parser(sub)
    add_report_parser(sub)
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    if args.command == "batch":
        return run(args)
    if args.command == "report":
        return run_report(args)
    _err("inspector: error: a command is required (batch, report)")
    return 2
