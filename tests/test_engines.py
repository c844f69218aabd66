"""The compiled paths must agree with their readable specifications, packet for packet.

* decode: numba fast path == numpy fast path == per-packet decoder (rows, payload bytes, outcomes);
* flows: the numba flow kernel == the plain-Python reference flow table (every record field).

Run over every capture in ../shared/corpus (skipped without it) and the bundled captures.
"""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

from inspector.decode import Decoder
from inspector.decode.batch import COLUMNS
from inspector.ingest import CaptureReader, NotACapture
from inspector.pipeline import run_scan
from inspector.scan import CONN_FIELDS

from corpus import corpus_root, load_index

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _paths():
    paths = sorted(glob.glob(os.path.join(REPO, "captures", "*.pcap")))
    root = corpus_root()
    if os.path.isdir(root):
        paths += [os.path.join(root, r["dest"]) for r in load_index()]
    return paths


PATHS = _paths()


def _batches(path):
    try:
        return list(CaptureReader(path))
    except NotACapture:
        return []


def test_decode_implementations_agree():
    bad = []
    for path in PATHS:
        for b in _batches(path):
            compiled, numpy_, slow = (Decoder(impl="numba").decode(b), Decoder(impl="numpy").decode(b),
                                      Decoder(fast=False).decode(b))
            for other, name in ((numpy_, "numpy"), (slow, "per-packet")):
                cols = [c for c in COLUMNS if c != "pay_off" or name == "numpy"]  # per-packet rows keep payload aside
                diff = [c for c in cols if not np.array_equal(compiled.cols[c], other.cols[c])]
                if diff:
                    bad.append((path, name, diff))
                if [compiled.payload(i) for i in range(len(compiled))] != [other.payload(i) for i in range(len(other))]:
                    bad.append((path, name, "payload"))
                if compiled.outcomes != other.outcomes:
                    bad.append((path, name, "outcomes"))
    assert not bad, bad[:10]


def _comparable(flows):
    # Connection fields only (the reference has no application layer: no service, no destination);
    # uids differ by construction (both deterministic); tunnel parents are uids too: compare their count.
    skip = ("uid", "tunnel_parents", "service")
    return sorted(repr((tuple((k, f[k]) for k in CONN_FIELDS if k not in skip), len(f["tunnel_parents"])))
                  for f in flows)


def test_flow_kernel_matches_reference():
    if len(PATHS) < 10:
        pytest.skip("corpus absent: only the bundled captures")
    bad = []
    for path in PATHS:
        a = run_scan([path])
        b = run_scan([path], engine="python")
        if _comparable(a.flows) != _comparable(b.flows):
            bad.append(path)
    assert not bad, bad[:10]
