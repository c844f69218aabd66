"""Everything a run writes: stream declarations, writers, and the output folder.

* ``schema``: one declaration per output stream (fields, types, docs), light to import;
* ``weirds``: the catalogue of weird names (name, layer, meaning);
* ``writers``: JSON Lines, Parquet and JSON writers driven by the declarations;
* ``staging``: ``OutputDir``, which writes a run into a staging folder next to
  ``--out`` and moves it into place at the end, and ``OutputError``.

This package imports nothing heavy at import time: the names below are loaded
on first use (PEP 562), so ``from inspector.outputs.schema import FLOWS`` in a
lower stage costs no pyarrow import.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "FlowWriter": "writers", "LogWriter": "writers", "write_jsonl": "writers", "write_json": "writers",
    "records_frame": "writers", "arrow_schema": "writers", "json_default": "writers", "FLOW_TYPES": "writers",
    "WEIRD_TYPES": "writers",
    "OutputDir": "staging", "OutputError": "staging",
    "Stream": "schema", "Field": "schema", "streams": "schema", "stream": "schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
