"""Writers for scan outputs: JSON Lines, Parquet, stats.json, driven by the stream declarations.

Flows are written as they end (``FlowWriter``), so memory does not grow with
the number of flows in a capture.  Field order and Arrow types come from
``inspector.outputs.schema``; nothing here declares a field.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Iterable, Sequence

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import FLOWS, WEIRD, Stream

#: Field -> declared type, for writers given a field list (``arrow_schema``); derived from the schema.
FLOW_TYPES = FLOWS.types
WEIRD_TYPES = WEIRD.types


def arrow_schema(fields: Sequence[str], types: dict = FLOW_TYPES) -> pa.Schema:
    """The Arrow schema of ``fields`` with their declared ``types`` (``Stream.types``)."""
    return pa.schema([(f, types[f].arrow()) for f in fields])


def _dumps(rec: dict, fields: Sequence[str]) -> bytes:
    return orjson.dumps({k: rec.get(k) for k in fields}, option=orjson.OPT_APPEND_NEWLINE)


class FlowWriter:
    """Streams flow records to ``flows.jsonl`` and ``flows.parquet`` (same records, same order).

    Files are written under temporary names and renamed on ``close`` so a
    reader never sees half a file.  With ``threaded`` (the default) encoding and
    writing run on a second thread, overlapping the compiled stages of the scan,
    which release the GIL; order is kept by a FIFO queue.
    """

    def __init__(self, out_dir: str, fields: Sequence[str] | None = None, types: dict | None = None,
                 name: str | None = None, row_group: int = 16384, threaded: bool = True,
                 stream: Stream = FLOWS):
        self.fields = list(fields) if fields is not None else list(stream.names)
        self.schema = arrow_schema(self.fields, types if types is not None else stream.types)
        name = name or stream.name
        self.jsonl_path = os.path.join(out_dir, f"{name}.jsonl")
        self.parquet_path = os.path.join(out_dir, f"{name}.parquet")
        self._jf = open(self.jsonl_path + ".tmp", "wb")
        self._pw = pq.ParquetWriter(self.parquet_path + ".tmp", self.schema)
        self._pending: list = []
        self.row_group = row_group
        self.count = 0
        self._error = None
        self._queue = None
        if threaded:
            import queue
            import threading
            # Bounded in records, not batches: at most 4 row groups wait for the writer, whatever
            # the size of the batches handed in (a flood ends a whole batch of flows at once).
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._run, name="flow-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as e:  # reported on close
                    self._error = e
                    self._drop_files()

    def _drop_files(self) -> None:
        """After a write error (a full disk...): close and remove the temporary files, so that nothing
        half-written stays behind; the error is raised by ``write`` or ``close``."""
        for close in (self._pw.close, self._jf.close):
            try:
                close()
            except Exception:
                pass
        for path in (self.jsonl_path + ".tmp", self.parquet_path + ".tmp"):
            try:
                os.remove(path)
            except OSError:
                pass

    def write(self, records: Iterable[dict]) -> None:
        """Queue (or write) ``records``; raises the writer thread's error (``OSError`` on a full disk)
        as soon as it is known, so a run stops instead of analysing into a dead file."""
        if self._error is not None:
            raise self._error
        if self._queue is not None:
            recs = records if isinstance(records, list) else list(records)
            for i in range(0, len(recs), self.row_group):
                self._queue.put(recs[i:i + self.row_group])
        else:
            try:
                self._write(records)
            except BaseException as e:
                self._error = e
                self._drop_files()
                raise

    def _write(self, records: Iterable[dict]) -> None:
        fields = self.fields
        jf = self._jf
        for r in records:
            if list(r.keys()) == fields:
                jf.write(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE))
            else:
                jf.write(_dumps(r, fields))
            self._pending.append(r)
            self.count += 1
        if len(self._pending) >= self.row_group:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            recs = self._pending
            cols = {f: [r.get(f) for r in recs] for f in self.fields}
            self._pw.write_table(pa.Table.from_pydict(cols, schema=self.schema))
            self._pending = []

    def close(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
        if self._error is not None:
            raise self._error
        try:
            self._flush()
        except BaseException as e:
            self._error = e
            self._drop_files()
            raise
        self._pw.close()
        self._jf.close()
        os.replace(self.jsonl_path + ".tmp", self.jsonl_path)
        os.replace(self.parquet_path + ".tmp", self.parquet_path)


class LogWriter:
    """Protocol logs (``http.jsonl``, ``tls.jsonl``, ``dns.jsonl``...): one JSONL file per log,
    opened on its first record, written as records arrive, renamed into place on close."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.files: dict = {}
        self.counts: dict = {}
        self.error: OSError | None = None

    def __call__(self, log: str, record: dict) -> None:
        """Append ``record`` to ``<log>.jsonl``.  A write error (a full disk) is kept and raised again
        by every later call and by ``close``: a caller that swallows it (an analyzer guard) cannot
        make the run finish with a log that lost records."""
        if self.error is not None:
            raise self.error
        try:
            fh = self.files.get(log)
            if fh is None:
                fh = open(self._tmp(log), "wb")
                self.files[log] = fh
                self.counts[log] = 0
            fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS,
                                  default=json_default))
        except OSError as e:
            self.error = e
            raise
        self.counts[log] += 1

    def _tmp(self, log: str) -> str:
        return os.path.join(self.out_dir, f"{log}.jsonl.tmp")

    def close(self) -> None:
        """Rename every log into place; on a write error (now or earlier) remove them all and raise."""
        files, self.files = self.files, {}
        for log, fh in files.items():
            try:
                fh.close()
            except OSError as e:
                self.error = self.error or e
        for log in files:
            if self.error is None:
                os.replace(self._tmp(log), os.path.join(self.out_dir, f"{log}.jsonl"))
            else:
                try:
                    os.remove(self._tmp(log))
                except OSError:
                    pass
        if self.error is not None:
            raise self.error


def json_default(obj):
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_jsonl(path: str, records: Iterable[dict], fields: Sequence[str] | Stream) -> int:
    """One JSON object per line, keys in ``fields`` order (or a ``Stream``'s).  Atomic (temp file +
    rename; the temp file is removed when writing fails)."""
    if isinstance(fields, Stream):
        fields = fields.names
    n = 0
    with atomic_file(path, "wb") as fh:
        for r in records:
            fh.write(_dumps(r, fields))
            n += 1
    return n


def records_frame(records: list, fields: Sequence[str] | None = None, types: dict = FLOW_TYPES):
    """pandas DataFrame with exactly ``fields`` (default: the flow fields) as columns and the Parquet
    file's types."""
    import pandas as pd
    fields = FLOWS.names if fields is None else fields
    table = pa.Table.from_pylist([{k: r.get(k) for k in fields} for r in records],
                                 schema=arrow_schema(fields, types))
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON, atomically (``stats.json``)."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


@contextmanager
def atomic_file(path: str, mode: str = "wb", **kw):
    """Open ``path + ".tmp"`` for writing; renamed to ``path`` when the block ends normally, removed
    when it raises (a full disk mid-write leaves nothing under either name)."""
    tmp = path + ".tmp"
    fh = open(tmp, mode, **kw)
    try:
        with fh:
            yield fh
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    os.replace(tmp, path)
