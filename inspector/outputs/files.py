"""``FileSink``: the outputs of ``inspector scan`` (and any finite run) in one directory.

``flows.jsonl`` + ``flows.parquet`` written as flows end, one ``NAME.jsonl`` per
protocol log as records come, then at the end ``weird.jsonl`` (sorted by time),
``alerts.jsonl`` (when the run has a policy stage) and ``stats.json``.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable

from ..pipeline import Sink, sorted_weirds


class FileSink(Sink):
    """``guard`` is a context-manager factory every write runs in (``OutputDir.writing``: a full disk
    becomes one ``OutputError`` naming the folder, not "this input cannot be read")."""

    def __init__(self, out_dir: str, alerts: bool = True, guard: Callable = contextlib.nullcontext):
        from .writers import FlowWriter, LogWriter
        self.out_dir = out_dir
        self.guard = guard
        with guard():
            self.flow_writer = FlowWriter(out_dir)
            self.log_writer = LogWriter(out_dir)
        self.weird_records: list = []
        self.alert_records: list | None = [] if alerts else None

    def flows(self, recs):
        with self.guard():
            self.flow_writer.write(recs)

    def log(self, name, rec):
        with self.guard():
            self.log_writer(name, rec)

    def weirds(self, recs):
        self.weird_records.extend(recs)

    def alerts(self, alerts):
        if self.alert_records is not None:
            self.alert_records.extend(alerts)

    def finish(self, pipe):
        """Close the streaming writers (flows, protocol logs)."""
        with self.guard():
            self.flow_writer.close()
            self.log_writer.close()

    @property
    def log_counts(self) -> dict:
        return dict(self.log_writer.counts)

    def write_end_files(self, stats: dict) -> None:
        """``weird.jsonl``, ``alerts.jsonl`` and ``stats.json``: what is written once the run is over."""
        from ..scan import WEIRD_FIELDS
        from .writers import write_json, write_jsonl
        with self.guard():
            write_jsonl(os.path.join(self.out_dir, "weird.jsonl"), sorted_weirds(self.weird_records), WEIRD_FIELDS)
            if self.alert_records is not None:
                from ..policy import write_alerts
                write_alerts(os.path.join(self.out_dir, "alerts.jsonl"), self.alert_records)
            write_json(os.path.join(self.out_dir, "stats.json"), stats)
