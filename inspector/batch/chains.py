"""Chains: consecutive captures of one host, scanned as one stream so a connection that crosses a
file boundary (a capture rotated while it was open) is one flow, as ``scan a.pcap b.pcap`` and
``zeek -r`` over the files in order give it, not two.

A host's new captures are ordered by their first packet time; capture B follows capture A when B
starts where A stopped: no earlier than A's last packet and at most ``MAX_GAP`` seconds later.  A
longer pause ends every connection anyway (Zeek's TCP inactivity timeout is 5 minutes, UDP's one),
and a capture that overlaps another in time (two interfaces, copies) is not one stream with
anything: it stays alone.
Captures whose packet times cannot be read, or run backwards, stay alone too.

A chain is the batch's unit of work (``worker.process_chain``): one pipeline over its files in
order, each flow stored with the capture that holds its first packet, and the chain committed in
one transaction (``store.Store.commit_many``), so a killed batch redoes the whole chain, never half
of a connection.  Only captures processed in the same run are chained: a connection still open at
the end of the last capture of a run is stored as it stands then (ended by the end of the input).
"""
from __future__ import annotations

#: the longest pause between two captures of one host that still continues a stream (seconds):
#: Zeek's TCP inactivity timeout, the longest of its connection timers
MAX_GAP = 300.0


def capture_span(path: str) -> tuple[float, float] | None:
    """(first, last) packet time of a capture in file order, or None when it has no packet, cannot
    be read, or its times run backwards overall (such a file is never chained)."""
    from ..ingest import CaptureReader, NotACapture
    first = last = None
    try:
        reader = CaptureReader(path)
        try:
            for batch in reader:
                if len(batch):
                    if first is None:
                        first = float(batch.ts[0])
                    last = float(batch.ts[-1])
        finally:
            reader.close()
    except (NotACapture, OSError, ValueError):
        return None
    if first is None or not last >= first:
        return None
    return first, last


def build_chains(tasks: list, spans: dict) -> list:
    """Group batch tasks (dicts with ``sha256``, ``host``, ``rel``) into chains (lists of tasks in
    stream order) using ``spans`` (sha256 -> (first, last) or None).  Every task is in exactly one
    chain; chains of one task are the common case."""
    by_host: dict = {}
    for t in tasks:
        by_host.setdefault(t["host"], []).append(t)
    chains = []
    for host in sorted(by_host):
        timed = sorted((t for t in by_host[host] if spans.get(t["sha256"])),
                       key=lambda t: (spans[t["sha256"]][0], t["rel"]))
        # captures overlapping another one in time are not one stream with anything
        alone = set()
        for i, t in enumerate(timed):
            last = spans[t["sha256"]][1]
            for u in timed[i + 1:]:
                if spans[u["sha256"]][0] >= last:
                    break
                alone.update((t["sha256"], u["sha256"]))
        chains.extend([t] for t in by_host[host] if not spans.get(t["sha256"]) or t["sha256"] in alone)
        cur: list = []
        for t in (t for t in timed if t["sha256"] not in alone):
            if cur:
                prev_last = spans[cur[-1]["sha256"]][1]
                first = spans[t["sha256"]][0]
                if prev_last <= first <= prev_last + MAX_GAP:
                    cur.append(t)
                    continue
                chains.append(cur)
            cur = [t]
        if cur:
            chains.append(cur)
    return chains
