"""Bounded per-key time windows, shared by aggregate rules and detectors.

A window opens at the timestamp of the first event of its key and lasts
``length`` seconds.  It closes

* when an event of the same key arrives at or after its end (the event opens
  the next window),
* when the engine's clock passes its end plus ``grace`` (flows are reported
  when they end, so a flow that started inside a window can arrive a few
  minutes after the window's end; ``grace`` waits for it),
* when the store is full (``max_keys``): the least recently updated key is
  closed early, so memory stays bounded,
* at the end of the input (``close_all``).

Events that arrive late (timestamp before the current window's start) count in
the current window.
"""
from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from typing import Callable, Iterator


class Window:
    """State of one key's open window; ``state`` is whatever the owner keeps in it."""
    __slots__ = ("key", "start", "end", "state", "evicted")

    def __init__(self, key, start: float, end: float, state):
        self.key = key
        self.start = start
        self.end = end
        self.state = state
        self.evicted = False


class WindowStore:
    def __init__(self, length: float, make_state: Callable, grace: float = 360.0, max_keys: int = 100_000):
        self.length = float(length)
        self.grace = float(grace)
        self.max_keys = max(1, int(max_keys))
        self.make_state = make_state
        self._open: "OrderedDict[object, Window]" = OrderedDict()
        self._heap: list = []
        self._seq = itertools.count()
        self.closed: list = []          # windows closed by events or eviction, not yet handed out
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._open)

    def get(self, key, ts: float) -> Window:
        """The open window of ``key`` for an event at ``ts`` (closing the old one when ``ts`` is past it)."""
        w = self._open.get(key)
        if w is not None:
            if ts >= w.end:
                del self._open[key]
                self.closed.append(w)
                w = None
            else:
                self._open.move_to_end(key)
                return w
        w = Window(key, ts, ts + self.length, self.make_state())
        self._open[key] = w
        heapq.heappush(self._heap, (w.end + self.grace, next(self._seq), w))
        while len(self._open) > self.max_keys:
            _k, old = self._open.popitem(last=False)
            old.evicted = True
            self.evictions += 1
            self.closed.append(old)
        return w

    def close(self, key) -> None:
        """Close ``key``'s window now (a detector whose window is full)."""
        w = self._open.pop(key, None)
        if w is not None:
            self.closed.append(w)

    def due(self, now: float | None) -> Iterator[Window]:
        """Windows closed since the last call, then those whose end + grace is at or before ``now``."""
        out, self.closed = self.closed, []
        yield from out
        if now is None:
            return
        heap = self._heap
        while heap and heap[0][0] <= now:
            _d, _s, w = heapq.heappop(heap)
            if self._open.get(w.key) is w:
                del self._open[w.key]
                yield w
        # drop heap entries of windows that were closed some other way (keeps the heap bounded)
        if len(heap) > 4 * len(self._open) + 64:
            live = {id(w) for w in self._open.values()}
            self._heap = [e for e in heap if id(e[2]) in live]
            heapq.heapify(self._heap)

    def close_all(self) -> Iterator[Window]:
        out, self.closed = self.closed, []
        yield from out
        opened = list(self._open.values())
        self._open.clear()
        self._heap = []
        yield from opened
