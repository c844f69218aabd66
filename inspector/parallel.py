"""A scan of capture files on several cores: ``run_parallel(paths, settings, sinks, workers)``.

::

    worker 0 ─┐  each reads and decodes every packet, tracks every flow (one flow table's state,
    worker 1 ─┤  uids and timers), and analyses only the flows it owns: a hash of the unordered
      ...    ─┘  address pair (FlowTable.share), so both directions, a tunnel's inner flow,
              │  reassembled fragments, ICMP errors and an FTP data channel with its control
              │  connection all land in one worker
              ▼  per source item: protocol and content records, weirds, naming evidence, the
     parent      ended flows with their place in the ended order of all flows
              ▼
     one DestinationNames (DNS answers from any worker name any worker's flows), enrichment,
     the one policy engine, the sinks: the records of a single process

Per-connection work (protocol detection and analysis, reassembly, content, files, record
building) is what is spread; reading, decoding and the compiled flow kernel run in every
worker (they are the cheap part).  The parent interleaves the workers' ended flows by their
``seq``, so ``flows.jsonl`` is in the order one process writes; protocol logs come worker by
worker within a batch (the same records, the order of lines may differ).  Deterministic.

Differences from one process, by design: ``--extract-total-bytes`` and the reassembly memory
cap apply per worker; the weird records kept per name (``WEIRD_RECORD_CAP``) are per worker
(the counts in ``stats.json`` are exact).  Standard input cannot be read twice: it is scanned
by one process.
"""
from __future__ import annotations

import heapq
import os
import signal
import traceback
from collections import Counter

from .enrich.flows import DestinationNames, EnrichStage, NameEvents
from .pipeline import Pipeline, Sink, collector_tuned, drive
from .protocols import contributions

#: ``--workers auto`` uses every core once the inputs hold this many bytes (smaller ones: one process)
AUTO_MIN_BYTES = 64 << 20


class WorkerError(RuntimeError):
    """A worker process failed; the message holds its traceback's last line."""


def auto_workers(paths, cpus: int | None = None) -> int:
    """Workers for ``--workers auto``: every core for large inputs, one for small ones or stdin."""
    cpus = cpus or os.cpu_count() or 1
    if cpus < 2 or any(p == "-" for p in paths):
        return 1
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            continue     # directories, globs, missing files: FileSource sorts them out
    return cpus if total >= AUTO_MIN_BYTES else 1


class _Forward(Sink):
    """A worker's one sink: what its pipeline hands out, in order, sent to the parent after every
    source item (``tick``) and at the end (``finish``)."""

    def __init__(self, conn):
        self.conn = conn
        self.names = None          # the worker Scanner's NameEvents (set once the pipeline exists)
        self.events: list = []

    def _names(self) -> None:
        if self.names is not None and self.names.events:
            self.events.append(("names", self.names.drain()))

    def flows(self, recs):
        self._names()
        self.events.append(("flows", list(recs), list(getattr(recs, "seq", ()))))

    def log(self, name, rec):
        self.events.append(("log", name, rec))

    def weirds(self, recs):
        self.events.append(("weirds", list(recs)))

    def tick(self, pipe):
        self._send("tick")

    def finish(self, pipe):
        self._send("finish")

    def _send(self, kind: str) -> None:
        self._names()
        self.conn.send((kind, self.events))
        self.events = []


def _worker(k: int, n: int, paths, settings, conn, progress) -> None:
    """Body of worker ``k``: its share of the scan, then ("end", stats, errors, inputs_ok)."""
    from .sources.files import FileSource
    stopped = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # the parent decides, and tells us by SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: stopped.append("SIGTERM"))
    try:
        fwd = _Forward(conn)
        pipe = Pipeline(settings, [fwd], share=(k, n))
        if pipe.scanner.dispatcher is not None:
            fwd.names = pipe.scanner.enrich.names
        source = FileSource(paths, progress=progress, stop=lambda: stopped[0] if stopped else None)
        with collector_tuned():
            drive(pipe, source)
        conn.send(("end", pipe.scanner.stats(), list(source.errors), source.inputs_ok))
    except BaseException as e:     # reported to the parent, which fails the scan
        try:
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
        except Exception:
            pass
    finally:
        conn.close()


class _Merged:
    """Stands in for the parent pipeline's Scanner once the workers are done: their merged counters."""

    def __init__(self, stats: dict):
        self._stats = stats
        self.weird_records: list = []

    def stats(self) -> dict:
        return dict(self._stats)

    def finish(self) -> None:
        pass

    def release(self) -> None:
        pass


def merge_stats(stats: list) -> dict:
    """Worker 0's reader counters, outcomes and evictions (every worker reads and tracks every packet
    and flow; worker 0 reports them), the flows and weird counts of all."""
    out = dict(stats[0])
    out["flows"] = sum(s["flows"] for s in stats)
    weirds: Counter = Counter()
    for s in stats:
        weirds.update(s["weirds"])
    out["weirds"] = dict(sorted(weirds.items()))
    return out


class ParallelRun:
    """What ``run_parallel`` returns: the finished parent ``pipe`` (its ``scanner.stats()`` are the
    merged counters), and the inputs' ``errors`` and ``inputs_ok`` as a ``FileSource`` has them."""

    def __init__(self, pipe, errors, inputs_ok):
        self.pipe = pipe
        self.errors = errors
        self.inputs_ok = inputs_ok


def run_parallel(paths, settings, sinks, workers: int, progress=None, stop=None) -> ParallelRun:
    """Scan ``paths`` with ``workers`` processes into ``sinks`` (see the module docstring).
    ``progress`` is worker 0's; ``stop()`` (the parent's signals) ends every worker's reading
    after the batch in hand."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    conns, procs = [], []
    for k in range(workers):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, args=(k, workers, list(paths), settings, w, progress if k == 0 else None),
                        name=f"inspector-scan-{k}", daemon=True)
        p.start()
        w.close()
        conns.append(r)
        procs.append(p)
    pipe = Pipeline(settings, sinks)          # the parent's: policy engine and sinks; its Scanner is not fed
    contrib = contributions()
    names = DestinationNames(contrib.name_sources, fallbacks=contrib.name_fallbacks)
    enrich = EnrichStage(names, settings.enricher)
    ends: dict = {}
    forwarded = False
    try:
        with collector_tuned():
            active = list(range(workers))
            while active:
                if stop is not None and stop() and not forwarded:
                    forwarded = True
                    for p in procs:
                        if p.is_alive():
                            os.kill(p.pid, signal.SIGTERM)
                round_events = []
                for k in list(active):
                    try:
                        msg = conns[k].recv()
                    except EOFError:
                        raise WorkerError(f"scan worker {k} ended without a result") from None
                    if msg[0] == "error":
                        raise WorkerError(f"scan worker {k} failed: {msg[1]}")
                    if msg[0] == "end":
                        ends[k] = msg[1:]
                        active.remove(k)
                        continue
                    round_events.append(msg[1])
                if round_events:
                    _merge_round(pipe, round_events, names, enrich, settings.analysis)
                    pipe.tick()
    finally:
        for p in procs:
            if p.is_alive() and ends.keys() != set(range(workers)):
                p.terminate()
            p.join()
        for c in conns:
            c.close()
    stats = [ends[k][0] for k in range(workers)]
    pipe.scanner = _Merged(merge_stats(stats))
    pipe.finish()
    errors, inputs_ok = ends[0][1], ends[0][2]
    return ParallelRun(pipe, errors, inputs_ok)


def _merge_round(pipe, per_worker: list, names, enrich, analysis: bool) -> None:
    """One source item's events from every worker into the parent pipeline: the j-th ended-flow
    batch of each worker is the j-th of a single process, split by owner; what came before it
    (logs, weirds, naming evidence) goes first, worker by worker."""
    segments = []
    for events in per_worker:
        segs, cur = [], []
        for ev in events:
            if ev[0] == "flows":
                segs.append((cur, ev))
                cur = []
            else:
                cur.append(ev)
        segs.append((cur, None))
        segments.append(segs)
    depth = max((len(s) for s in segments), default=0)
    for j in range(depth):
        flows_parts = []
        for segs in segments:
            if j >= len(segs):
                continue
            pre, fl = segs[j]
            for ev in pre:
                _apply(pipe, ev, names)
            if fl is not None:
                flows_parts.append(fl)
        if not flows_parts:
            continue
        merged = [rec for _, rec in heapq.merge(*(zip(seq, recs) for _, recs, seq in flows_parts),
                                                  key=lambda sr: sr[0])]
        if analysis and merged:
            enrich.apply(merged)
        pipe.deliver_flows(merged)


def _apply(pipe, ev, names) -> None:
    kind = ev[0]
    if kind == "log":
        pipe.deliver_log(ev[1], ev[2])
    elif kind == "weirds":
        pipe.deliver_weirds(ev[1])
    elif kind == "names":
        NameEvents.replay(ev[1], names)
