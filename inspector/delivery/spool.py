"""A durable, bounded, append-only queue of alerts on disk: what a web hook could not take yet.

Layout of the spool directory::

    spool-000007.log    segments: one line per alert, "CRC ID BODY\\n" (CRC: 8 hex digits of the
    spool-000008.log    CRC-32 of "ID BODY"; ID: the alert's stable id; BODY: its JSON, one line)
    acked               the ids delivered (or given up) since the segments were written, one a line
    lock                held (flock) by the process using the spool; holds its pid
    sent                the journal of delivered ids (``Journal``, used by the web hook)

Every write is appended and ``fsync``-ed before the call returns (a new file's directory
too), so an alert the spool accepted survives a crash or a power cut.  Nothing is ever
rewritten in place: a line cut short by a crash has no newline or a wrong CRC and is
skipped (counted ``corrupt``); a duplicate id is kept once.

Pending = ids in the segments, in order, minus the ids in ``acked``.  Opening the spool
(the next run) compacts it: the pending lines are copied to one new segment (written as
``.tmp``, synced, renamed), then the old segments and ``acked`` are removed, so what a
crash leaves between those steps is either the old or the new state, never a loss or a
duplicate.  While running, a segment whose alerts were all acknowledged is deleted (and
its ids dropped from ``acked``), and when nothing is pending every file goes.

Bounded: ``max_bytes`` of pending lines; ``append`` refuses what does not fit (the caller
counts it ``dropped``).  Segments rotate at ``segment_bytes``.  Files are written 0600 in
a 0700 directory: they hold masked evidence, but evidence all the same.
"""
from __future__ import annotations

import collections
import os
import re
import threading
import zlib

__all__ = ["Spool", "SpoolBusy", "Journal", "valid_id"]

_SEG = re.compile(r"^spool-(\d{6,})\.log$")
_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
ACKED = "acked"


def valid_id(alert_id) -> bool:
    """An id usable as a spool key and an HTTP header value: letters, digits and ``._:-``, at most 128."""
    return isinstance(alert_id, str) and alert_id.isascii() and bool(_ID.fullmatch(alert_id.encode("ascii")))


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _line(alert_id: str, body: bytes) -> bytes:
    payload = alert_id.encode("ascii") + b" " + body
    return b"%08x " % (zlib.crc32(payload) & 0xFFFFFFFF) + payload + b"\n"


def _parse(line: bytes):
    """``(id, body)`` of a complete segment line (without its newline), or None when damaged."""
    crc, sep, payload = line.partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(payload) & 0xFFFFFFFF:
            return None
    except ValueError:
        return None
    aid, sep, body = payload.partition(b" ")
    if not sep or not _ID.fullmatch(aid) or not body:
        return None
    return aid.decode("ascii"), body


class SpoolBusy(OSError):
    """Another process holds the spool."""


def _lock(directory: str) -> int:
    """Hold ``directory/lock`` (an exclusive ``flock``) for this process: two runs sharing a spool
    would send each other's alerts twice.  Raises SpoolBusy naming the holder's pid."""
    import fcntl
    path = os.path.join(directory, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        except OSError:
            holder = "?"
        os.close(fd)
        raise SpoolBusy(f"the alert spool {directory} is in use by another inspector (pid {holder}); "
                        f"give this run its own --alert-spool") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
    return fd


class Spool:
    """See the module docstring.  Thread-safe (one lock); methods raise OSError on disk errors."""

    def __init__(self, directory: str, max_bytes: int = 64 << 20, segment_bytes: int | None = None):
        self.dir = directory
        self.max_bytes = max(1, int(max_bytes))
        self.segment_bytes = int(segment_bytes) if segment_bytes else max(64 << 10, self.max_bytes // 8)
        self._lock = threading.Lock()
        self._pending: "collections.OrderedDict[str, tuple]" = collections.OrderedDict()  # id -> (seq, off, len)
        self._seg_pending: dict = {}      # seq -> pending lines in that segment
        self._seg_acked: dict = {}        # seq -> ids acknowledged from that segment
        self.bytes = 0                    # pending bytes
        self.loaded = 0                   # alerts pending when the spool was opened (an earlier run)
        self.corrupt = 0                  # damaged lines skipped when opening
        self._cur = None
        self._cur_seq = -1
        self._cur_size = 0
        self._next_seq = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._lock_fd = _lock(directory)
        try:
            self._open_existing()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- opening ---------------------------------------------------------------------------
    def _segments(self) -> list:
        out = []
        for name in os.listdir(self.dir):
            m = _SEG.match(name)
            if m:
                out.append((int(m.group(1)), name))
            elif name.startswith("spool-") and name.endswith(".tmp"):
                os.remove(os.path.join(self.dir, name))   # an unfinished compaction: the old files are intact
        return sorted(out)

    def _read_acked(self) -> set:
        path = os.path.join(self.dir, ACKED)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return set()
        lines = data.split(b"\n")[:-1]          # the last piece has no newline: torn or empty
        return {ln.decode("ascii") for ln in lines if _ID.fullmatch(ln)}

    def _open_existing(self) -> None:
        segs = self._segments()
        acked = self._read_acked()
        pending: "collections.OrderedDict[str, bytes]" = collections.OrderedDict()
        skipped = 0
        for _, name in segs:
            with open(os.path.join(self.dir, name), "rb") as fh:
                data = fh.read()
            pieces = data.split(b"\n")
            if pieces[-1]:
                self.corrupt += 1                   # torn last line
            for raw in pieces[:-1]:
                parsed = _parse(raw)
                if parsed is None:
                    self.corrupt += 1
                    continue
                aid, body = parsed
                if aid in acked or aid in pending:
                    skipped += 1
                    continue
                pending[aid] = body
        self._next_seq = (segs[-1][0] + 1) if segs else 0
        has_acked_file = os.path.exists(os.path.join(self.dir, ACKED))
        if not pending:
            for _, name in segs:
                os.remove(os.path.join(self.dir, name))
            if has_acked_file:
                os.remove(os.path.join(self.dir, ACKED))
            if segs or has_acked_file:
                _fsync_dir(self.dir)
            return
        self.loaded = len(pending)
        if len(segs) == 1 and not skipped and not self.corrupt and not has_acked_file:
            seq, name = segs[0]       # already compact: index it in place
            off = 0
            with open(os.path.join(self.dir, name), "rb") as fh:
                data = fh.read()
            for raw in data.split(b"\n")[:-1]:
                aid = _parse(raw)[0]
                self._index(aid, seq, off, len(raw) + 1)
                off += len(raw) + 1
            return
        seq = self._next_seq
        self._next_seq += 1
        final = os.path.join(self.dir, f"spool-{seq:06d}.log")
        tmp = final + ".tmp"
        off = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for aid, body in pending.items():
                ln = _line(aid, body)
                fh.write(ln)
                self._index(aid, seq, off, len(ln))
                off += len(ln)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        for _, name in segs:
            os.remove(os.path.join(self.dir, name))
        if has_acked_file:
            os.remove(os.path.join(self.dir, ACKED))
        _fsync_dir(self.dir)

    def _index(self, aid: str, seq: int, off: int, length: int) -> None:
        self._pending[aid] = (seq, off, length)
        self._seg_pending[seq] = self._seg_pending.get(seq, 0) + 1
        self.bytes += length

    # -- writing ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, aid) -> bool:
        return aid in self._pending

    def append(self, items) -> list:
        """Spool ``(id, body)`` pairs (body: one line of JSON bytes) in order, with one fsync.
        Returns the ids refused because the spool is full; ids already pending count as spooled."""
        refused = []
        with self._lock:
            todo = []
            for aid, body in items:
                if not valid_id(aid) or b"\n" in body:
                    raise ValueError(f"cannot spool id {aid!r}")
                if aid in self._pending or any(a == aid for a, _ in todo):
                    continue
                ln = _line(aid, body)
                if self.bytes + sum(len(x) for _, x in todo) + len(ln) > self.max_bytes:
                    refused.append(aid)
                    continue
                todo.append((aid, ln))
            for aid, ln in todo:
                if self._cur is None or (self._cur_size and self._cur_size + len(ln) > self.segment_bytes):
                    self._roll()
                self._cur.write(ln)
                self._index(aid, self._cur_seq, self._cur_size, len(ln))
                self._cur_size += len(ln)
            if todo:
                self._cur.flush()
                os.fsync(self._cur.fileno())
        return refused

    def _roll(self) -> None:
        """Start a new segment (the old one is complete and synced)."""
        old = self._cur_seq
        if self._cur is not None:
            self._cur.close()
        self._cur_seq = self._next_seq
        self._next_seq += 1
        path = os.path.join(self.dir, f"spool-{self._cur_seq:06d}.log")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._cur = os.fdopen(fd, "ab")
        self._cur_size = 0
        _fsync_dir(self.dir)
        if old >= 0 and not self._seg_pending.get(old):
            self._remove_segment(old)

    # -- reading and acknowledging -----------------------------------------------------------
    def peek(self):
        """``(id, body)`` of the oldest pending alert, or None."""
        with self._lock:
            if not self._pending:
                return None
            aid, (seq, off, length) = next(iter(self._pending.items()))
            with open(os.path.join(self.dir, f"spool-{seq:06d}.log"), "rb") as fh:
                fh.seek(off)
                raw = fh.read(length)
        parsed = _parse(raw.rstrip(b"\n"))
        if parsed is None or parsed[0] != aid:      # the disk changed under us: never send garbage
            raise OSError(f"spool segment {seq} damaged at offset {off}")
        return parsed

    def pending_ids(self) -> list:
        with self._lock:
            return list(self._pending)

    def ack(self, aid: str) -> None:
        """``aid`` left the spool (delivered, or refused for good): record it, durably."""
        with self._lock:
            where = self._pending.pop(aid, None)
            if where is None:
                return
            seq, _, length = where
            self.bytes -= length
            self._seg_pending[seq] -= 1
            if not self._pending:
                self._reset()
                return
            path = os.path.join(self.dir, ACKED)
            new = not os.path.exists(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, aid.encode("ascii") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                _fsync_dir(self.dir)
            self._seg_acked.setdefault(seq, []).append(aid)
            if not self._seg_pending[seq] and seq != self._cur_seq:
                self._remove_segment(seq)

    def _remove_segment(self, seq: int) -> None:
        """Delete a fully acknowledged segment, then drop its ids from ``acked`` (atomic rewrite)."""
        os.remove(os.path.join(self.dir, f"spool-{seq:06d}.log"))
        self._seg_pending.pop(seq, None)
        self._seg_acked.pop(seq, None)
        keep = [a for ids in self._seg_acked.values() for a in ids]
        path = os.path.join(self.dir, ACKED)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(a.encode("ascii") + b"\n" for a in keep))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.dir)

    def _reset(self) -> None:
        """Nothing pending: remove every file (segments first, ``acked`` last)."""
        if self._cur is not None:
            self._cur.close()
            self._cur = None
        self._cur_seq = -1
        self._cur_size = 0
        for _, name in self._segments():
            os.remove(os.path.join(self.dir, name))
        try:
            os.remove(os.path.join(self.dir, ACKED))
        except FileNotFoundError:
            pass
        _fsync_dir(self.dir)
        self._seg_pending.clear()
        self._seg_acked.clear()
        self.bytes = 0

    def close(self) -> None:
        with self._lock:
            if self._cur is not None:
                self._cur.close()
                self._cur = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)      # releases the flock
                self._lock_fd = None

    def disk_bytes(self) -> int:
        """Bytes the spool's files take now (pending lines plus acknowledged ones not yet deleted)."""
        total = 0
        for name in os.listdir(self.dir):
            try:
                total += os.path.getsize(os.path.join(self.dir, name))
            except OSError:
                pass
        return total


class Journal:
    """The ids delivered lately, on disk (``sent``, one id a line, appended and fsync-ed).

    So that an alert is delivered once even when a later run raises it again: a re-run over
    the same captures, a nightly batch recomputing a night's baseline alerts.  The last
    ``keep`` ids are remembered; beyond ``2 * keep`` lines the file is rewritten (temp file,
    sync, rename) with the newest ``keep``.  Torn or malformed lines are skipped."""

    NAME = "sent"

    def __init__(self, directory: str, keep: int = 100_000):
        self.path = os.path.join(directory, self.NAME)
        self.keep = max(1, int(keep))
        self._lock = threading.Lock()
        self._ids: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._lines = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            data = b""
        for ln in data.split(b"\n")[:-1]:
            if _ID.fullmatch(ln):
                aid = ln.decode("ascii")
                self._ids.pop(aid, None)
                self._ids[aid] = None
                self._lines += 1
        while len(self._ids) > self.keep:
            self._ids.popitem(last=False)
        torn = bool(data) and not data.endswith(b"\n")
        if torn or len(self._ids) > self.keep or self._lines > 2 * self.keep:
            self._compact()
        self._fd = None

    def __contains__(self, aid) -> bool:
        return aid in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, aid: str) -> None:
        """Remember ``aid`` as delivered (durably).  OSError when the disk refuses."""
        if not valid_id(aid):
            return
        with self._lock:
            self._ids.pop(aid, None)
            self._ids[aid] = None
            while len(self._ids) > self.keep:
                self._ids.popitem(last=False)
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(self._fd, aid.encode("ascii") + b"\n")
            os.fsync(self._fd)
            self._lines += 1
            if self._lines > 2 * self.keep:
                self._compact()

    def _compact(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"".join(a.encode("ascii") + b"\n" for a in self._ids))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(os.path.dirname(self.path))
        self._lines = len(self._ids)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
