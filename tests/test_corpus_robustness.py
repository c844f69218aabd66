"""Robustness: every corpus capture scans without an exception or a hang.

* One test per INDEX row (id = corpus path): ``run_scan`` returns within
  SCAN_TIMEOUT_S (SIGALRM guard, no subprocess) and its ``stats.outcomes``
  sum to ``stats.packets_read``.
* For complete files (``file_truncated`` empty), packets_read == INDEX
  ``packets`` (which matches tshark wherever tshark can read the file).
* For tcpdump captures, packets_read == the record count of the tcpdump
  ``.out`` oracle (where the file is not truncated).
* A summary test prints how many files produced weirds (and which names).

Scan results are cached for the whole session (conformance_report.scan), so
the other corpus test modules reuse them.
"""

from __future__ import annotations

from collections import Counter

import pytest

import conformance_report as cr
import corpus as C

SCAN_TIMEOUT_S = 20

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def _rows():
    root = C.corpus_root()
    if not (root / "INDEX.jsonl").is_file():
        return []
    return C.load_index(root)


ROWS = _rows()


@pytest.fixture(scope="module")
def ready(corpus):
    if not cr.inspector_available():
        pytest.skip("inspector.scan not available yet")
    return corpus


def _scan(row):
    return cr.scan(row["abspath"], timeout=SCAN_TIMEOUT_S)


@pytest.mark.parametrize("row", ROWS or [None], ids=[r["corpus_path"] for r in ROWS] or ["no-corpus"])
def test_scan_capture(ready, row):
    if row is None:
        pytest.skip("no corpus index")
    res = _scan(row)
    st = res.stats
    pr = st["packets_read"]
    outcomes = st.get("outcomes") or {}
    assert sum(outcomes.values()) == pr, f"outcomes {outcomes} do not sum to packets_read {pr}"
    assert all(v >= 0 for v in outcomes.values()), outcomes
    if not row["file_truncated"]:
        assert pr == row["packets"], f"packets_read {pr} != INDEX packets {row['packets']}"
    # cut-short files (file_truncated set): INDEX counts the records before the
    # break; a reader that resynchronises after a bogus incl_len may read more.
    assert isinstance(res.flows, list) and isinstance(res.weirds, list)


TCPDUMP = [r for r in ROWS if r["source"] == "tcpdump" and not r["file_truncated"]]


@pytest.mark.parametrize("row", TCPDUMP or [None],
                         ids=[r["corpus_path"] for r in TCPDUMP] or ["no-corpus"])
def test_tcpdump_record_count(ready, row):
    if row is None:
        pytest.skip("no tcpdump captures")
    outs = [p for p in C.oracle_paths(row, ready) if p.suffix == ".out"]
    if not outs:
        pytest.skip("no .out oracle")
    expected = C.tcpdump_out_record_count(outs[0])
    assert _scan(row).stats["packets_read"] == expected


def test_weird_statistics(ready):
    files_with_weirds = 0
    names: Counter = Counter()
    errors = []
    outcomes: Counter = Counter()
    for row in ROWS:
        try:
            res = _scan(row)
        except Exception as exc:  # noqa: BLE001 - reported by test_scan_capture
            errors.append((row["corpus_path"], repr(exc)))
            continue
        outcomes.update(res.stats.get("outcomes") or {})
        if res.weirds:
            files_with_weirds += 1
            names.update({w.get("name") for w in res.weirds})
    print(f"\n{files_with_weirds}/{len(ROWS)} corpus files produced weirds; "
          f"{len(errors)} scan errors")
    print("  files per weird name:", dict(names.most_common(25)))
    print("  packet outcomes over the corpus:", dict(outcomes.most_common()))
    assert len(ROWS) > 0
