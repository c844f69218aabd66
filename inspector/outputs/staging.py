"""The output folder of a run: written aside, moved into place whole.

A run writes into a staging folder next to ``--out`` (same parent, so the same
filesystem: ``.<name>.inspector-staging-<pid>``) and, at the end, the staging
folder replaces ``--out``.  So no file of an earlier run survives beside the new
ones, and a reader never sees a half-written set under the final name.  On an
error or an abort the staging folder is removed and the old ``--out`` is left as
it was.

When ``--out`` itself cannot be renamed (a mount point, e.g. a container volume,
or a folder whose parent we may not write), the staging folder goes inside it
(``.inspector-staging-<pid>``) and the commit swaps the contents: the earlier
run's entries are removed, then the new ones moved up.  Each file is complete
before it is moved; only the swap is not atomic.

As in Zeek, the output folder belongs to the run: everything in it is replaced.
To protect a folder that is not ours, ``--out`` must be absent, empty, or hold a
previous run's ``stats.json``; anything else is refused with one line before
anything is written.

Every filesystem failure (read-only, no permission, full, over quota...) is an
``OutputError``: one line naming the path, which the CLI prints before exiting
with status 2.  ``OutputError`` is not an ``OSError`` on purpose: code that
treats ``OSError`` as "this input cannot be read" lets it through.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
from contextlib import contextmanager

MARKER = "stats.json"          # a folder holding this (top level) is an inspector output folder
STAGING = ".{name}.inspector-staging-{pid}"
RETIRED = ".{name}.inspector-old-{pid}"
INSIDE = ".inspector-staging-{pid}"   # staging inside --out, when --out cannot be replaced (a mount point)


class OutputError(Exception):
    """The output location cannot be written: ``str(e)`` is one line naming the path."""

    @classmethod
    def from_os(cls, err: OSError, path: str) -> "OutputError":
        """``inspector: error: cannot write outputs to PATH: <reason>`` for any filesystem error
        (EACCES, EROFS, ENOSPC, EDQUOT, EFBIG, EIO...)."""
        return cls(f"inspector: error: cannot write outputs to {path}: {err.strerror or err}")


def _entries(path: str) -> list:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputDir:
    """``with OutputDir(out) as od: <write into od.path>; od.commit()``.

    ``path`` is the staging folder; ``commit()`` moves it into place (replacing
    an earlier run's folder).  Leaving the block without ``commit()`` (an
    exception, an abort) removes the staging folder and leaves ``out`` untouched.
    """

    def __init__(self, out: str):
        self.out = out                                   # as the user gave it (for messages)
        target = os.path.abspath(out)
        if os.path.islink(target):
            target = os.path.realpath(target)             # write beside the real folder (same filesystem)
        self.final = target
        self.parent, self.name = os.path.split(target)
        self.path: str | None = None
        self.committed = False
        self.inside = False            # staging inside --out (a mount point, or a parent we cannot write)

    # -- setting up ------------------------------------------------------------------------
    def __enter__(self) -> "OutputDir":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            self.abort()

    def open(self) -> str:
        """Check ``out`` may be replaced and create the staging folder; returns its path."""
        if not self.name:
            raise OutputError(f"inspector: error: cannot use {self.out} as the output directory")
        if os.path.lexists(self.final) and not os.path.isdir(self.final):
            raise OutputError(f"inspector: error: output path {self.out} exists and is not a directory")
        found = [e for e in _entries(self.final) if not e.startswith(INSIDE.format(pid=""))]
        if found and MARKER not in found:
            raise OutputError(f"inspector: error: output directory {self.out} is not empty and holds no earlier "
                              f"inspector output ({MARKER}); choose another --out or empty it")
        # A mount point cannot be renamed (a container volume: --out /out); nor can a folder whose
        # parent we may not write.  Then the staging folder goes inside --out and commit() swaps the
        # contents instead of the folder.
        self.inside = os.path.isdir(self.final) and (os.path.ismount(self.final)
                                                     or not os.access(self.parent, os.W_OK))
        try:
            if not self.inside:
                os.makedirs(self.parent, exist_ok=True)
            self.path = self._make_staging()
        except OSError as e:
            if self.inside or not os.path.isdir(self.final) or not os.access(self.final, os.W_OK):
                raise OutputError.from_os(e, self.out) from None
            self.inside = True
            try:
                self.path = self._make_staging()
            except OSError as e2:
                raise OutputError.from_os(e2, self.out) from None
        return self.path

    def _make_staging(self) -> str:
        where = self.final if self.inside else self.parent
        self._sweep(where)
        name = INSIDE.format(pid=os.getpid()) if self.inside else STAGING.format(name=self.name, pid=os.getpid())
        path = os.path.join(where, name)
        if os.path.lexists(path):
            shutil.rmtree(path)
        os.mkdir(path)
        return path

    def _sweep(self, where: str) -> None:
        """Remove staging and retired folders left by runs of this ``out`` that died (kill -9)."""
        prefixes = (STAGING.format(name=self.name, pid=""), RETIRED.format(name=self.name, pid=""),
                    INSIDE.format(pid=""))
        for entry in _entries(where):
            for prefix in prefixes:
                pid = entry[len(prefix):] if entry.startswith(prefix) else ""
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(os.path.join(where, entry), ignore_errors=True)

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def writing(self):
        """Turns an ``OSError`` raised in the block (a full disk...) into an ``OutputError`` naming
        ``out``; leaving the ``OutputDir`` block then removes the staging folder."""
        try:
            yield
        except OSError as e:
            raise OutputError.from_os(e, self.out) from None

    def guarded(self, fn):
        """``fn`` with its ``OSError`` s turned into ``OutputError`` s: for writer callbacks called from
        inside a stage, where an ``OSError`` would read as "this input cannot be read"."""
        @functools.wraps(fn)
        def call(*args, **kw):
            with self.writing():
                return fn(*args, **kw)
        return call

    # -- finishing -------------------------------------------------------------------------
    def commit(self) -> str:
        """Move the staging folder into place as ``out``; returns the final path.

        An existing ``out`` is first renamed aside, then removed once the new folder is
        in place; if the second rename fails the old folder is put back."""
        if self.path is None or self.committed:
            raise RuntimeError("OutputDir.commit: not open, or already committed")
        if self.inside:
            return self._commit_inside()
        retired = None
        with self._swap():
            if os.path.lexists(self.final):
                retired = os.path.join(self.parent, RETIRED.format(name=self.name, pid=os.getpid()))
                if os.path.lexists(retired):
                    shutil.rmtree(retired)
                os.rename(self.final, retired)
            try:
                os.rename(self.path, self.final)
            except OSError:
                if retired is not None:
                    os.rename(retired, self.final)
                    retired = None
                raise
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
        return self.final

    @contextmanager
    def _swap(self):
        """Moving the staged outputs into place: SIGINT/SIGTERM are held until it is over (no
        interruption between renames), an OSError becomes one OutputError, and on success the
        folder is committed at its final path."""
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            yield
        except OSError as e:
            raise OutputError.from_os(e, self.out) from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        self.committed = True
        self.path = self.final

    def _commit_inside(self) -> str:
        """Staging inside ``out``: remove the earlier run's entries, then move the new ones up (each
        file was complete before the run ended; only the swap itself is not atomic)."""
        staging = os.path.basename(self.path)
        with self._swap():
            for entry in os.listdir(self.final):
                if entry != staging:
                    victim = os.path.join(self.final, entry)
                    if os.path.isdir(victim) and not os.path.islink(victim):
                        shutil.rmtree(victim)
                    else:
                        os.remove(victim)
            for entry in os.listdir(self.path):
                os.rename(os.path.join(self.path, entry), os.path.join(self.final, entry))
            os.rmdir(self.path)
        return self.final

    def abort(self) -> None:
        """Remove the staging folder (the old ``out`` is untouched)."""
        if self.path is not None and not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
