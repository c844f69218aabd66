"""Golden baselines: every output stream of a scan of each bundled capture, stored under
``tests/golden/<capture>/`` and compared record by record (as Zeek's btest baselines).

Regenerate with ``pytest tests/test_golden.py --update-golden`` and review the diff like code:
a change to a baseline must be intended and explained in the commit that makes it.

Compared: every ``*.jsonl`` stream the scan writes (flows, protocol logs, content, weird, alerts
and the streams later stages add) and ``stats.json``.  The file set itself is compared too, so
a stream that appears or disappears is a difference.  ``flows.parquet`` holds the same records as
``flows.jsonl`` (tests/test_cli.py checks that) and ``report.html`` is checked in test_report.py.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from inspector.cli import main

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
GOLDEN = Path(__file__).resolve().parent / "golden"
SITE = CAPTURES / "site-dc-north.yaml"
PCAPS = sorted(p.name for p in CAPTURES.glob("*.pcap"))
ALL = "all-captures"        # one scan of every bundled capture together (what ``make demo`` runs)
COMPARED = (".jsonl", ".json")
SALT = "golden-baseline-salt"


def _scan(pcap: str, out: Path) -> None:
    cwd = os.getcwd()
    os.chdir(REPO)          # capture paths as given, relative to the repository: stable across checkouts
    inputs = [f"captures/{p}" for p in PCAPS] if pcap == ALL else [f"captures/{pcap}"]
    try:
        rc = main(["scan", *inputs, "--site", "captures/site-dc-north.yaml", "--out", str(out),
                   "--hash-salt", SALT, "-q"], env={})
    finally:
        os.chdir(cwd)
    assert rc == 0


def _outputs(d: Path) -> dict:
    """The compared files; the output folder, which incidents name in their commands, reads ``$OUT``."""
    return {p.name: p.read_text(encoding="utf-8").replace(str(d), "$OUT") for p in sorted(d.iterdir())
            if p.is_file() and p.name.endswith(COMPARED)}


def _first_difference(name: str, want: str, got: str) -> str:
    if name.endswith(".json"):
        w, g = json.loads(want), json.loads(got)
        keys = sorted(set(w) | set(g))
        diff = [k for k in keys if w.get(k) != g.get(k)]
        return f"{name}: keys differ: {diff[:10]}"
    wl, gl = want.splitlines(), got.splitlines()
    for i, (a, b) in enumerate(zip(wl, gl)):
        if a != b:
            return f"{name} line {i + 1}:\n  baseline: {a[:600]}\n  now:      {b[:600]}"
    return f"{name}: {len(wl)} lines in the baseline, {len(gl)} now"


@pytest.mark.parametrize("pcap", PCAPS + [ALL])
def test_golden(pcap, tmp_path, request):
    out = tmp_path / "out"
    _scan(pcap, out)
    got = _outputs(out)
    base = GOLDEN / pcap.removesuffix(".pcap")
    if request.config.getoption("--update-golden"):
        base.mkdir(parents=True, exist_ok=True)
        for old in base.iterdir():
            old.unlink()
        for name, text in got.items():
            (base / name).write_text(text, encoding="utf-8")
        return
    assert base.is_dir(), f"no baseline for {pcap}: run pytest tests/test_golden.py --update-golden"
    want = _outputs(base)
    assert sorted(got) == sorted(want), f"output files differ: baseline {sorted(want)}, now {sorted(got)}"
    problems = [_first_difference(n, want[n], got[n]) for n in sorted(want) if want[n] != got[n]]
    assert not problems, "\n".join(problems)


def test_every_bundled_capture_has_a_baseline():
    stored = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) if GOLDEN.is_dir() else []
    assert stored == sorted([p.removesuffix(".pcap") for p in PCAPS] + [ALL])
