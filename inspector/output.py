"""Writers for scan outputs: JSON Lines, Parquet, stats.json.  Only the shell calls these."""
from __future__ import annotations

import json
import math
import os
from typing import Iterable, Sequence

import pandas as pd


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def write_jsonl(path: str, records: Iterable[dict], fields: Sequence[str]) -> int:
    """One JSON object per line, keys in ``fields`` order.  Atomic (temp file + rename)."""
    tmp = path + ".tmp"
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps({k: _clean(r.get(k)) for k in fields}, ensure_ascii=False,
                                separators=(", ", ": ")))
            fh.write("\n")
            n += 1
    os.replace(tmp, path)
    return n


def records_frame(records: list, fields: Sequence[str]) -> pd.DataFrame:
    """DataFrame with exactly ``fields`` as columns (built directly, no temp files)."""
    df = pd.DataFrame.from_records(records, columns=list(fields))
    for col in ("id.orig_p", "id.resp_p", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
                "missed_bytes", "ip_proto", "orig_l2_bytes", "resp_l2_bytes"):
        if col in df:
            df[col] = df[col].astype("int64")
    for col in ("orig_bytes", "resp_bytes", "vlan", "inner_vlan"):
        if col in df:
            df[col] = df[col].astype("Int64")
    for col in ("local_orig", "local_resp"):
        if col in df:
            df[col] = df[col].astype("boolean")
    if "duration" in df:
        df["duration"] = df["duration"].astype("float64")
    if "ts" in df:
        df["ts"] = df["ts"].astype("float64")
    return df


def write_parquet(path: str, records: list, fields: Sequence[str]) -> None:
    tmp = path + ".tmp"
    records_frame(records, fields).to_parquet(tmp, index=False, engine="pyarrow")
    os.replace(tmp, path)


def write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
