"""Writers for scan outputs: JSON Lines, Parquet, stats.json.  Only the shell calls these.

Flows are written as they end (``FlowWriter``), so memory does not grow with
the number of flows in a capture.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

_T = {"f": pa.float64(), "s": pa.string(), "i": pa.int64(), "b": pa.bool_(), "ls": pa.list_(pa.string()),
      "mi": pa.map_(pa.string(), pa.int64()),
      "rec": pa.struct([("customer", pa.int64()), ("shipment", pa.int64())])}

# Field -> Arrow type for flows.jsonl / flows.parquet (FLOW_FIELDS order is in scan.py).
FLOW_TYPES = {
    "ts": "f", "uid": "s", "id.orig_h": "s", "id.orig_p": "i", "id.resp_h": "s", "id.resp_p": "i",
    "proto": "s", "service": "s", "duration": "f", "orig_bytes": "i", "resp_bytes": "i", "conn_state": "s",
    "local_orig": "b", "local_resp": "b", "missed_bytes": "i", "history": "s", "orig_pkts": "i",
    "orig_ip_bytes": "i", "resp_pkts": "i", "resp_ip_bytes": "i", "tunnel_parents": "ls", "ip_proto": "i",
    "community_id": "s", "vlan": "i", "inner_vlan": "i", "direction": "s", "orig_l2_bytes": "i",
    "resp_l2_bytes": "i",
    "dst_name": "s", "dst_name_source": "s", "dst_country": "s", "dst_asn": "i", "dst_org": "s", "dst_group": "s",
    "dst_category": "s", "dst_allowed": "b",
    "payload_type": "s", "payload_types": "ls", "payload_encoding": "s", "app_bytes_out": "i", "data": "mi",
    "records": "rec", "edm": "mi",
}
WEIRD_TYPES = {"ts": "f", "uid": "s", "name": "s", "detail": "s"}


def schema(fields: Sequence[str], types: dict) -> pa.Schema:
    return pa.schema([(f, _T[types[f]]) for f in fields])


def _dumps(rec: dict, fields: Sequence[str]) -> bytes:
    return orjson.dumps({k: rec.get(k) for k in fields}, option=orjson.OPT_APPEND_NEWLINE)


class FlowWriter:
    """Streams flow records to ``flows.jsonl`` and ``flows.parquet`` (same records, same order).

    Files are written under temporary names and renamed on ``close`` so a
    reader never sees half a file.  With ``threaded`` (the default) encoding and
    writing run on a second thread, overlapping the compiled stages of the scan,
    which release the GIL; order is kept by a FIFO queue.
    """

    def __init__(self, out_dir: str, fields: Sequence[str], types: dict = FLOW_TYPES, name: str = "flows",
                 row_group: int = 16384, threaded: bool = True):
        self.fields = list(fields)
        self.schema = schema(self.fields, types)
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
            self._queue = queue.Queue(maxsize=64)
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

    def write(self, records: Iterable[dict]) -> None:
        if self._queue is not None:
            self._queue.put(list(records))
        else:
            self._write(records)

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
            if self._error is not None:
                raise self._error
        self._flush()
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

    def __call__(self, log: str, record: dict) -> None:
        fh = self.files.get(log)
        if fh is None:
            fh = open(os.path.join(self.out_dir, f"{log}.jsonl.tmp"), "wb")
            self.files[log] = fh
            self.counts[log] = 0
        fh.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS,
                              default=_json_default))
        self.counts[log] += 1

    def close(self) -> None:
        for log, fh in self.files.items():
            fh.close()
            os.replace(os.path.join(self.out_dir, f"{log}.jsonl.tmp"), os.path.join(self.out_dir, f"{log}.jsonl"))
        self.files = {}


def _json_default(obj):
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_jsonl(path: str, records: Iterable[dict], fields: Sequence[str]) -> int:
    """One JSON object per line, keys in ``fields`` order.  Atomic (temp file + rename)."""
    tmp = path + ".tmp"
    n = 0
    with open(tmp, "wb") as fh:
        for r in records:
            fh.write(_dumps(r, fields))
            n += 1
    os.replace(tmp, path)
    return n


def records_frame(records: list, fields: Sequence[str], types: dict = FLOW_TYPES):
    """pandas DataFrame with exactly ``fields`` as columns and the Parquet file's types."""
    import pandas as pd
    table = pa.Table.from_pylist([{k: r.get(k) for k in fields} for r in records], schema=schema(fields, types))
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get)


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
