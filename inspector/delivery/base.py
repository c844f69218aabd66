"""The machinery every alert sink shares: a bounded queue drained by one background thread.

Packet processing must never wait for a syslog server or a web hook.  ``submit(alerts)``
encodes each alert (``prepare``: the bytes a sink will send, made now, so that later changes to
the alert dicts cannot race the delivery thread) and only appends to an in-memory queue (bounded: ``queue_size`` alerts; beyond it an alert
is refused and counted ``dropped``, or handed to ``_overflow`` which a sink may override)
and returns at once.  One daemon thread per sink takes the alerts off the queue and
delivers them (``_run``, written by each sink).  ``close(timeout)`` asks the thread to
finish what is queued within ``timeout`` seconds of wall time and waits for it; a
sink decides what happens to what is left (the web hook spools it to disk, syslog counts
it ``failed``).  Counters are plain integers read by ``stats()``.

Back-off: ``backoff(n)`` is exponential with "full jitter" (a uniform draw between 0 and
``min(cap, base * 2**n)``, as AWS's architecture blog on back-off recommends), so
many inspectors restarted together do not hammer a receiver in lock step.
"""
from __future__ import annotations

import collections
import random
import threading
import time
from typing import Callable

__all__ = ["AsyncSink", "backoff", "COUNTERS"]

COUNTERS = ("submitted", "sent", "retried", "spooled", "dropped", "failed")


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): full jitter, bounded by ``cap``."""
    ceiling = min(cap, base * (2 ** min(max(attempt, 0), 30)))
    return rng() * ceiling


class AsyncSink:
    """A bounded queue and its delivery thread.  Subclasses implement ``_run`` and ``describe``."""

    kind = "sink"

    def __init__(self, queue_size: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.queue_size = max(1, int(queue_size))
        self.clock = clock
        self.counters = {k: 0 for k in COUNTERS}
        self.last_error: str | None = None
        self._q: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closing = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None

    # -- producer side (the packet-processing thread) ----------------------------------------
    def start(self) -> "AsyncSink":
        if self._thread is None:
            self._thread = threading.Thread(target=self._guarded_run, name=f"inspector-{self.kind}", daemon=True)
            self._thread.start()
        return self

    def submit(self, alerts) -> None:
        """Queue ``alerts`` (dicts) for delivery; never blocks on the network or the disk."""
        items = []
        for a in alerts:
            if not isinstance(a, dict):
                continue
            try:
                items.append(self.prepare(a))
            except Exception as e:     # an alert that cannot be encoded never stops packet processing
                with self._cv:
                    self.counters["submitted"] += 1
                    self.counters["failed"] += 1
                self.last_error = f"cannot encode an alert: {type(e).__name__}: {e}"
        with self._cv:
            for item in items:
                self.counters["submitted"] += 1
                if self._closing or len(self._q) >= self.queue_size:
                    self._overflow(item)
                    continue
                self._q.append(item)
            self._cv.notify_all()

    def prepare(self, alert: dict):
        """What goes on the queue for ``alert``, made in the caller's thread: the alert may change
        after this call (later stages annotate alerts in place), what is queued does not."""
        return alert

    def _overflow(self, item) -> None:
        """An item the queue cannot hold (called with the lock held): counted as dropped."""
        self.counters["dropped"] += 1

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within ``timeout`` seconds, then stop the thread."""
        self.begin_close(timeout)
        self.wait_closed()

    def begin_close(self, timeout: float = 10.0) -> None:
        """Tell the thread to finish within ``timeout`` seconds (several sinks close in parallel)."""
        with self._cv:
            if self._closing:
                return
            self._closing = True
            self._deadline = self.clock() + max(0.0, timeout)
            self._cv.notify_all()

    def wait_closed(self) -> None:
        """Wait for the thread (until the deadline plus ``grace()``); settle what it left behind."""
        if self._thread is not None:
            self._thread.join(max(0.0, self._time_left() or 0.0) + self.grace())
            if not self._thread.is_alive():
                self._thread = None
                return
        self._abandon()

    def release(self) -> None:
        """Let go of what the sink holds (files, locks) without delivering: a sink never started."""

    def grace(self) -> float:
        """Seconds to wait beyond the flush timeout for an operation in flight (e.g. one HTTP request)."""
        return 1.0

    def _abandon(self) -> None:
        """The thread did not finish in time (or never ran): settle what is left, from the caller's thread."""
        with self._cv:
            left = len(self._q)
            self._q.clear()
            self.counters["failed"] += left

    # -- consumer side (the delivery thread) ------------------------------------------------
    def _guarded_run(self) -> None:
        try:
            self._run()
        except BaseException as e:   # never a traceback from a daemon thread; the counters say it
            self.last_error = f"delivery thread failed: {type(e).__name__}: {e}"

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _time_left(self) -> float | None:
        """Seconds until the flush deadline (None while not closing)."""
        if self._deadline is None:
            return None
        return self._deadline - self.clock()

    def _expired(self) -> bool:
        left = self._time_left()
        return left is not None and left <= 0

    def _take(self, wait: float | None):
        """The next queued item (see ``prepare``), waiting up to ``wait`` seconds (None: until one comes or closing)."""
        with self._cv:
            if not self._q and not self._closing:
                self._cv.wait(wait)
            return self._q.popleft() if self._q else None

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, cut short by the flush deadline (never past it)."""
        left = self._time_left()
        if left is not None:
            seconds = min(seconds, max(0.0, left))
        if seconds <= 0:
            return
        with self._cv:
            end = self.clock() + seconds
            while True:
                rest = end - self.clock()
                if rest <= 0:
                    return
                before = self._deadline
                self._cv.wait(rest)
                if self._deadline != before:          # close() was called: re-bound by the new deadline
                    left = self._time_left()
                    if left is not None and left < end - self.clock():
                        end = self.clock() + max(0.0, left)

    def _queue_empty(self) -> bool:
        with self._cv:
            return not self._q

    # -- reporting ---------------------------------------------------------------------------
    def describe(self) -> dict:
        return {}

    def stats(self) -> dict:
        with self._cv:
            out = dict(self.describe())
            out.update(self.counters)
            out["queued"] = len(self._q)
        if self.last_error:
            out["last_error"] = self.last_error
        return out
