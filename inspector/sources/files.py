"""Capture files as a pipeline source: ``FileSource(paths)``.

``paths`` are files, directories, globs or ``-`` (stdin), expanded by
``ingest.expand_inputs``; each capture is read by an ``ingest.CaptureReader``
in order, so a run over several files is one continuous stream of packets (a
connection split over two rotated files is one flow).  An input that cannot be
read is one line in ``errors`` and the next input is read; ``inputs_ok`` counts
those read to their end.
"""
from __future__ import annotations

from typing import Callable, Iterator

from ..ingest import CaptureReader, NotACapture, expand_inputs


class FileSource:
    """``progress(path, packets, reader)`` is called after every batch (the terminal progress line);
    ``stop()``, asked after every batch, ends the reading early when it returns a reason (SIGINT,
    SIGTERM: what was read so far is kept, its flows end as at the end of the input)."""

    def __init__(self, paths, progress: Callable | None = None, stop: Callable | None = None):
        self.paths = list(paths)
        self.progress = progress
        self.stop = stop
        self.errors: list = []          # one line per unreadable input
        self.inputs_ok = 0
        self.failed: dict = {}          # input path -> its error line (read in part, or not at all)
        self.read: dict = {}            # input path -> (packets_read, bytes_read) of an input read to its end

    def batches(self, pipe) -> Iterator:
        inputs, errors = expand_inputs(self.paths)
        self.errors.extend(errors)
        stop = self.stop
        for path in inputs:
            if stop is not None and stop():
                break
            try:
                reader = CaptureReader(path)
                pipe.scanner.set_capture(path)       # records name the input they came from
                packets = 0
                for batch in reader:
                    yield batch
                    packets += len(batch)
                    if self.progress is not None:
                        self.progress(path, packets, reader)
                    if stop is not None and stop():
                        reader.close()
                        break
            except NotACapture as e:
                self._fail(path, str(e))
            except IsADirectoryError:
                self._fail(path, f"{path}: is a directory")
            except PermissionError:
                self._fail(path, f"{path}: permission denied")
            except OSError as e:
                self._fail(path, f"{path}: {e.strerror or e}")
            else:
                pipe.account_reader(reader)
                self.read[path] = (reader.stats.packets_read, reader.stats.bytes_read)
                self.inputs_ok += 1

    def _fail(self, path: str, line: str) -> None:
        self.errors.append(line)
        self.failed[path] = line
