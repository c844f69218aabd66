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
``store``).  Consecutive captures of one host are scanned as one stream, so a
connection crossing a file boundary is one flow (see ``chains``).  Each capture lands atomically: kill the batch at any moment,
start it again, and nothing is lost or duplicated.  Then the batch alerts of
the nights that changed (and of the later ones) are recomputed from the
history: first-seen destinations and volumes far above a host's baseline
(see ``baseline``).  ``report`` writes the night's self-contained HTML page.

Exit status: 0 done; 1 some captures failed and will be retried by the next
run (or the database refused a commit); 2 usage or configuration error,
database in use, nothing readable.

``run_batch`` is the coordinator; the command line (``inspector.cli.batch`` and
``inspector.cli.report``) parses the arguments and calls it.
"""
from __future__ import annotations

import os
import sys
import time

__all__ = ["run_batch"]


# ----------------------------------------------------------------------------------------------
# batch
# ----------------------------------------------------------------------------------------------

def _check_settings(settings) -> str | None:
    """Load what every worker will load, once, here (and keep it for workers in this process):
    one error line, or None."""
    from ..settings import SettingsError
    from .worker import state, tz_of
    try:
        tz_of(settings.tz)
    except Exception:
        return f"inspector batch: error: --tz {settings.tz}: unknown time zone (use an IANA name like Europe/Berlin)"
    try:
        state(settings)
    except SettingsError as e:
        return e.line("inspector")
    except (OSError, ValueError, KeyError) as e:
        return f"inspector: error: {e}"
    return None


def _failed(chain: list, error: str) -> list:
    """Every capture of a chain failed with ``error`` (retried by the next run)."""
    from .worker import CaptureResult
    return [CaptureResult(sha256=t["sha256"], path=t["path"], host=t["host"], rel=t["rel"],
                          size=t.get("size", 0), status="failed", error=error) for t in chain]


def _run_local(tasks: list, settings, workers: int, on_result) -> None:
    """Local processes (spawned: a clean interpreter per worker), at most 2 chains per worker in flight.
    ``tasks`` are chains (lists of capture tasks, see ``chains``); ``on_result`` gets each chain's
    results.  A worker that dies (OOM killer, crash) breaks the pool: its chains are tried once more
    in a new pool."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from .worker import process_chain, watch_parent
    if workers <= 0:
        for t in tasks:
            on_result(process_chain(t, settings))
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
                    inflight[ex.submit(process_chain, t, settings)] = t
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
                        key = t[0]["sha256"]
                        attempts[key] = attempts.get(key, 0) + 1
                        if attempts[key] < 2:
                            pending.append(t)
                            continue
                        res = _failed(t, f"{t[0]['path']}: the worker process died (retried next run)")
                    except Exception as e:
                        res = _failed(t, f"{t[0]['path']}: {type(e).__name__}: {e}")
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

    from .worker import process_chain
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, ValueError) as e:       # unreachable, timed out, a malformed address
        raise _DaskUnavailable(f"cannot reach the Dask scheduler at {address}: {str(e).splitlines()[0]}") from None
    run_id = uuid.uuid4().hex[:8]
    try:
        futs = [client.submit(process_chain, t, settings, key=f"inspector-batch-{run_id}-{t[0]['sha256'][:16]}",
                              pure=False, retries=1) for t in tasks]
        by_key = {f.key: t for f, t in zip(futs, tasks)}
        for fut in as_completed(futs, loop=client.loop):
            t = by_key[fut.key]
            try:
                res = fut.result()
            except Exception as e:
                res = _failed(t, f"{t[0]['path']}: {type(e).__name__}: {e}")
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
    from .chains import build_chains, capture_span
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
        # consecutive captures of one host are one stream (chains): a connection crossing a file
        # boundary stays one flow; the longest chains are started first
        per_host: dict = {}
        for t in tasks:
            per_host[t["host"]] = per_host.get(t["host"], 0) + 1
        spans = {t["sha256"]: capture_span(t["path"]) for t in tasks if per_host[t["host"]] > 1}
        chains = build_chains(tasks, spans)
        chains.sort(key=lambda c: (-sum(t["size"] for t in c), c[0]["host"], c[0]["rel"]))
        if dask:
            where = f"Dask cluster {dask}"
        else:
            if workers is None:
                workers = min(os.cpu_count() or 1, max(len(chains), 1))
            where = "this process" if workers <= 0 else f"{workers} local worker{'s' if workers != 1 else ''}"
        say(f"inspector batch: {len(caps)} capture{'s' if len(caps) != 1 else ''} found, {n_done} already "
            f"processed, {n_dup} duplicate{'s' if n_dup != 1 else ''}, {len(tasks)} to process"
            + (f" on {where}" if tasks else ""))
        counts = {"committed": 0, "error": 0, "failed": 0, "flows": 0, "alerts": 0}
        total = len(tasks)
        commit_error = []

        def on_result(results) -> None:
            """One chain's results: failures reported, the rest committed in one transaction."""
            if commit_error:
                return
            keep = []
            for res in results:
                if res.status == "failed":
                    counts["failed"] += 1
                    complain(f"inspector batch: failed {res.rel}: {res.error}")
                    for line in res.errors[-1:]:
                        if "Traceback" in line:
                            complain(line.rstrip())
                else:
                    keep.append(res)
            if not keep:
                return
            try:
                if len(keep) == 1:
                    store.commit(keep[0], settings.tz)
                else:
                    store.commit_many(keep, settings.tz)
            except Exception as e:
                names = ", ".join(r.rel for r in keep)
                commit_error.append(f"{names}: {type(e).__name__}: {str(e).splitlines()[0]}")
                complain(f"inspector batch: error: cannot store {commit_error[-1]}")
                return
            for res in keep:
                committed(res)

        def committed(res) -> None:
            name = res.rel
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
                    _run_dask(chains, settings, dask, on_result)
                else:
                    _run_local(chains, settings, workers, on_result)
            except (OSError, _DaskUnavailable) as e:
                complain(f"inspector batch: error: {e}")
                return 2
        if commit_error:
            return 1
        since = store.query("SELECT min(night) FROM baseline_pending")[0][0]
        nights, n_alerts = run_baselines(store, cfg, everything=rebaseline, site_name=_site_name(settings),
                                         on_alerts=delivery)
        if nights:
            say(f"baselines: {nights} night{'s' if nights != 1 else ''} recomputed, {n_alerts} batch alert"
                f"{'s' if n_alerts != 1 else ''}")
        if since is not None or rebaseline:
            from .incidents import rebuild
            inc_nights, n_inc = rebuild(store, since=None if rebaseline else since, site=_site(settings))
            if inc_nights:
                say(f"incidents: {n_inc} in {inc_nights} night{'s' if inc_nights != 1 else ''}")
        say(f"inspector batch: {counts['committed']} committed, {counts['error']} unreadable, {counts['failed']} "
            f"failed; {counts['flows']} flows, {counts['alerts']} policy alerts in "
            f"{time.monotonic() - started:.1f}s; database {db}")
        return 1 if counts["failed"] else 0
    finally:
        store.close()


def _site_name(settings):
    """The site's name, from the settings this process loaded (``_check_settings``)."""
    if not settings.site:
        return None
    from .worker import state
    return state(settings).site.name


def _site(settings):
    """The site this process loaded for the run's settings (None for the default site)."""
    if not settings.site:
        return None
    from .worker import state
    return state(settings).site


def _replace(settings, **kw):
    import dataclasses
    return dataclasses.replace(settings, **kw)
