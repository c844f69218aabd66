"""A network interface as a pipeline source: ``LiveSource`` (libpcap, a capture thread, idle sweeps).

Two threads:

* the **capture thread** (:class:`CaptureThread`) owns the libpcap handle
  (``libpcap.LibpcapCapture``): it polls with a short timeout, lets libpcap copy
  packets as pcap records into a C buffer, and every ``batch_packets`` packets,
  ``batch_bytes`` or ``batch_ms`` milliseconds hands the buffer on as one chunk
  (and appends it to the ring of raw capture files).  The hand-over queue is
  bounded: when analysis falls behind, the thread stops reading, the kernel
  buffer fills and the kernel drops packets, which libpcap counts (``ps_drop``)
  and we report; nothing is dropped silently and memory stays bounded.
* the **pipeline's thread** iterates :meth:`LiveSource.batches`: each chunk
  becomes the same ``PacketBatch`` a file scan builds (``records_to_batch``), so
  live equals scan of the same packets by construction; while the link is idle,
  packet time is advanced by the wall time since the last packet (less a
  margin) so idle flows time out and are written; every 0.1 s without packets
  it yields a heartbeat so the sinks rotate and rewrite their stats.

``request_stop(reason)`` (a signal handler, ``--duration``) makes the capture
thread drain what the kernel still holds and end; the source then ends and the
pipeline flushes everything.
"""
from __future__ import annotations

import queue
import threading
import time

from ..pipeline import Idle
from .libpcap import records_to_batch, sysfs_rx_dropped

DEFAULT_BATCH_PACKETS = 65536
DEFAULT_BATCH_MB = 16
DEFAULT_BATCH_MS = 200
DISPATCH_MAX = 256          # packets per pcap_dispatch call (bounds the overshoot of a batch)
QUEUE_CHUNKS = 4            # chunks waiting between capture and analysis (memory bound)
IDLE_MARGIN = 1.0           # seconds kept back from the packet-time estimate of an idle sweep
IDLE_SWEEP_EVERY = 1.0      # seconds of packet time between idle sweeps
POLL_SECONDS = 0.1          # longest wait for a chunk before a heartbeat


class Chunk:
    """Packets handed from the capture thread to analysis: ``count`` pcap records in ``raw``."""
    __slots__ = ("raw", "count", "mono_last", "capture")

    def __init__(self, raw: bytes, count: int, mono_last: float, capture: str | None = None):
        self.raw = raw
        self.count = count
        self.mono_last = mono_last   # time.monotonic() when the last of these packets was read
        self.capture = capture       # the ring file these packets were written to (None: no ring)


_END = object()


class CaptureThread(threading.Thread):
    """Reads from a capture source (``LibpcapCapture`` or a test double) into chunks.

    Only this thread touches the source.  ``stop()`` makes it drain what the
    kernel still holds (for at most ``drain_seconds``), hand over the last chunk
    and put the end marker on the queue; the consumer must keep reading until it
    sees it.  libpcap counters are sampled into ``pcap_stats`` (a dict) twice a
    second and once more at the end."""

    def __init__(self, source, out: queue.Queue, batch_packets: int = DEFAULT_BATCH_PACKETS,
                 batch_bytes: int = DEFAULT_BATCH_MB << 20, batch_ms: float = DEFAULT_BATCH_MS, ring=None,
                 poll_seconds: float = 0.05, drain_seconds: float = 2.0):
        super().__init__(name="inspector-capture", daemon=True)
        self.src = source
        self.out = out
        self.batch_packets = max(1, int(batch_packets))
        self.batch_bytes = max(1, int(batch_bytes))
        self.batch_s = max(0.001, batch_ms / 1000.0)
        self.ring = ring
        self.ring_error = None
        self.poll_seconds = poll_seconds
        self.drain_seconds = drain_seconds
        self._stop_event = threading.Event()
        self.error = None
        self.pending = 0              # packets read but not handed over yet
        self.packets = 0              # packets handed over
        self.chunks = 0
        self.last_packet_mono = None
        self.pcap_stats: dict = {}

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:   # reported by the consumer; the end marker still goes out
            self.error = e
            try:
                if self.pending:
                    self._hand_over(self.pending, time.monotonic())
            except BaseException:
                pass
        finally:
            try:
                self.pcap_stats = dict(self.src.stats(), mono=time.monotonic())
            except BaseException:
                pass
            self.out.put(_END)

    def _hand_over(self, count: int, now: float) -> None:
        raw = self.src.take()
        self.pending = 0
        capture = None
        if self.ring is not None and raw:
            try:
                self.ring.write(raw)
                capture = self.ring.ring[-1]      # the file the chunk went into: records name it
            except OSError as e:
                self.ring_error = f"ring disabled: {e.strerror or e}"
                self.ring = None
        self.packets += count
        self.chunks += 1
        self.out.put(Chunk(raw, count, self.last_packet_mono or now, capture))

    def _loop(self) -> None:
        src = self.src
        first = 0.0
        next_stats = 0.0
        deadline = None
        while True:
            stopping = self._stop_event.is_set()
            if stopping and deadline is None:
                deadline = time.monotonic() + self.drain_seconds
            if not stopping:
                timeout = self.poll_seconds
                if self.pending:
                    timeout = max(0.0, min(timeout, first + self.batch_s - time.monotonic()))
                src.wait(timeout)
            while True:
                cnt = min(self.batch_packets - self.pending, DISPATCH_MAX)
                got = src.dispatch(cnt)
                if got:
                    now = time.monotonic()
                    if not self.pending:
                        first = now
                    self.pending += got
                    self.last_packet_mono = now
                    if self.pending >= self.batch_packets or src.pending_bytes() >= self.batch_bytes:
                        self._hand_over(self.pending, now)
                if got < cnt:
                    break
                if stopping and time.monotonic() > deadline:
                    break
            now = time.monotonic()
            if self.pending and (stopping or now - first >= self.batch_s):
                self._hand_over(self.pending, now)
            if now >= next_stats or stopping:
                self.pcap_stats = dict(src.stats(), mono=now)
                next_stats = now + 0.5
            if stopping:
                return


class LiveSource:
    """``capture`` is an opened ``LibpcapCapture`` (or a test double with the same methods:
    ``wait dispatch pending_bytes take stats close`` and ``header big_endian tsres linktype``).

    ``ring`` (a ``RingWriter``) keeps the raw chunks; ``duration`` stops after that many seconds.
    After the run: ``error`` (the capture failed while running: the CLI exits 1), ``warnings``
    (one line each, for the terminal), ``stopped_by`` (a signal name, ``duration``, or None at the
    end of the capture)."""

    def __init__(self, capture, iface: str = "live", *, batch_packets: int = DEFAULT_BATCH_PACKETS,
                 batch_bytes: int = DEFAULT_BATCH_MB << 20, batch_ms: float = DEFAULT_BATCH_MS, ring=None,
                 duration: float | None = None, info: dict | None = None):
        self.src = capture
        self.iface = iface
        self.ring = ring
        self.duration = duration
        self.info = dict(info or {})       # capture settings reported in stats.json (bpf, promisc...)
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.cap = CaptureThread(capture, self.queue, batch_packets=batch_packets, batch_bytes=batch_bytes,
                                 batch_ms=batch_ms, ring=ring)
        self._stop = threading.Event()
        self.stopped_by: str | None = None
        self.error: BaseException | None = None
        self.warnings: list = []
        self.bad_records = 0
        self.batches_fed = 0
        self.max_queue = 0
        self.rx0 = sysfs_rx_dropped(iface)
        self._drops = {"kernel": 0, "iface": 0, "rx": 0}
        self._closed = False

    def request_stop(self, reason: str) -> None:
        """Stop capturing (from a signal handler or another thread); the first reason is kept."""
        if not self._stop.is_set():
            self.stopped_by = reason
        self._stop.set()

    # -- the pipeline's side ------------------------------------------------------------------
    def batches(self, pipe):
        cap, q, src = self.cap, self.queue, self.src
        big, tsres, linktype = src.big_endian, src.tsres, src.linktype
        started = time.monotonic()
        deadline = started + self.duration if self.duration else None
        last_mono = None
        cap.start()
        try:
            yield None                         # the sinks' first tick: stats.json says the capture runs
            while True:
                try:
                    item = q.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    item = None
                if item is _END:
                    break
                self.max_queue = max(self.max_queue, q.qsize() + (item is not None))
                now = time.monotonic()
                out = None
                if item is not None:
                    out = self._to_batch(pipe, item, big, tsres, linktype)
                    last_mono = item.mono_last
                elif last_mono is not None and not cap.pending and q.empty() and pipe.last_ts is not None:
                    # Idle link: advance packet time by the wall time since the last packet, less a margin
                    # for packets still on their way, so idle flows time out and get written.
                    est = pipe.last_ts + (now - last_mono) - IDLE_MARGIN
                    last_sweep = pipe.scanner.table.last_sweep
                    if last_sweep is None or est - last_sweep >= IDLE_SWEEP_EVERY:
                        out = Idle(est)
                if (self._stop.is_set() or (deadline is not None and now >= deadline)) and not cap.stopping:
                    self.request_stop("duration")
                    cap.stop()
                yield out
            cap.join(timeout=10)
            if cap.ring_error:
                self.warnings.append(cap.ring_error)
            if cap.error is not None:
                self.error = cap.error
                pipe.add_weird("capture.failed", str(cap.error))
            self.note_drops(pipe)              # the last counters, while weird.jsonl is still open
        finally:
            if cap.is_alive():                 # the consumer failed: unblock and end the capture thread
                cap.stop()
                _drain_queue(q, cap)
            self.close()

    def _to_batch(self, pipe, chunk, big, tsres, linktype):
        if not chunk.count or not chunk.raw:
            return None
        if chunk.capture != pipe.scanner.capture:   # records name the ring file holding their packets
            pipe.scanner.set_capture(chunk.capture)
        batch, rest = records_to_batch(chunk.raw, chunk.count, big, tsres, linktype, source=self.iface)
        if rest:   # cannot happen with libpcap's own records; never silently
            self.bad_records += 1
            sc = pipe.scanner
            sc.outcomes["capture.bad_record"] += 1
            sc.packets_read += 1
            pipe.add_weird("capture.bad_record", f"{rest} bytes of a chunk are not a pcap record")
        if not len(batch):
            return None
        pipe.account(len(batch), int(batch.caplen.sum()))
        self.batches_fed += 1
        return batch

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.src.close()
        finally:
            if self.ring is not None:
                self.ring.close()

    # -- figures for stats.json -------------------------------------------------------------------
    def figures(self) -> dict:
        """Drop counters and the capture's state, as ``stats.json`` reports them."""
        cap = self.cap
        ps = dict(cap.pcap_stats)
        ps.pop("mono", None)
        rx = sysfs_rx_dropped(self.iface)
        return {
            "kernel_drops": ps.get("ps_drop", 0),
            "interface_drops": ps.get("ps_ifdrop", 0),
            "rx_dropped": (rx - self.rx0) if (rx is not None and self.rx0 is not None) else None,
            "capture": dict(self.info, **{
                "interface": self.iface, "linktype": self.src.linktype,
                "snaplen": getattr(self.src, "snaplen", None),
                "immediate": bool(getattr(self.src, "immediate_set", False)),
                "ps_recv": ps.get("ps_recv"), "ps_drop": ps.get("ps_drop"), "ps_ifdrop": ps.get("ps_ifdrop"),
                "rx_dropped_at_start": self.rx0, "rx_dropped_now": rx,
                "packets_captured": cap.packets + cap.pending, "chunks": cap.chunks,
                "queue_chunks": self.queue.qsize(), "queue_chunks_max": self.max_queue,
                "ring": self.ring.info() if self.ring is not None else None,
                "ring_error": cap.ring_error,
            }),
        }

    def note_drops(self, pipe, fig: dict | None = None) -> dict:
        """New kernel/interface drops become weird records (and stay in the stats); returns the figures."""
        fig = self.figures() if fig is None else fig
        if pipe.finished:
            return fig
        for key, short, name, what in (
                ("kernel_drops", "kernel", "capture.kernel_drop", "by the kernel (capture buffer full)"),
                ("interface_drops", "iface", "capture.interface_drop", "by the interface or driver"),
                ("rx_dropped", "rx", "capture.rx_dropped", "in the interface's rx_dropped counter")):
            v = fig.get(key)
            if v is not None and v > self._drops[short]:
                pipe.add_weird(name, f"{v - self._drops[short]} packets dropped {what} ({v} in all)")
                self._drops[short] = v
        return fig


def _drain_queue(q: queue.Queue, cap: CaptureThread) -> None:
    """Unblock a capture thread waiting on a full queue after the consumer failed."""
    end = time.monotonic() + 5
    while cap.is_alive() and time.monotonic() < end:
        try:
            if q.get(timeout=0.1) is _END:
                return
        except queue.Empty:
            pass
