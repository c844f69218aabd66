#!/usr/bin/env python3
"""Coverage-guided fuzzing of every target in ``targets.py`` with atheris (libFuzzer).

    python tests/fuzz/run.py [--seconds 60] [--target NAME ...] [--crashes tests/fuzz/crashes]

Each target runs in its own process for a fixed time budget, seeded from the bundled captures
and signature files.  An input that makes a target raise is written to the crash directory as
``<target>-crash-<sha1>`` (libFuzzer's artifact), where ``tests/test_fuzz_regressions.py``
replays it on every ``make test``.  The summary line per target gives executions, coverage and
crashes; the exit status is 1 when any target crashed.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# Modules the targets reach.  The numba kernels run as plain Python here (NUMBA_DISABLE_JIT), so the
# fuzzer sees their branches too: atheris instruments bytecode, which numba cannot compile.
_INSTRUMENTED = ("inspector.ingest", "inspector.decode", "inspector.decode.batch", "inspector.decode.slow",
                 "inspector.decode.fastpath", "inspector.flows.kernel", "inspector.protocols",
                 "inspector.content.stage", "inspector.sniff", "inspector.mime", "inspector.content.decoding",
                 "inspector.content.records", "inspector.content.identifiers", "inspector.content.prefilter",
                 "inspector.enrich.groups", "inspector.policy.rules", "inspector.site")


def child(target: str, seconds: int, crashes: Path) -> None:
    os.environ["NUMBA_DISABLE_JIT"] = "1"
    import importlib

    import atheris
    with atheris.instrument_imports(include=["inspector"]):
        import targets as T          # noqa: N812
        for m in _INSTRUMENTED:
            importlib.import_module(m)
        T._modules()                 # the protocol modules (imported through the registry)
    fn = T.TARGETS[target]
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    for i, s in enumerate(T.seeds(target)):
        (corpus / f"seed-{i:04d}").write_bytes(s)
    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-print_final_stats=1", "-timeout=20",
            "-rss_limit_mb=3072", "-max_len=65536", f"-artifact_prefix={crashes}/{target}-"]
    atheris.Setup(argv, fn)
    atheris.Fuzz()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--target", action="append")
    ap.add_argument("--crashes", default=str(HERE / "crashes"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    crashes = Path(a.crashes)
    crashes.mkdir(parents=True, exist_ok=True)
    if a.child:
        child(a.child, a.seconds, crashes)
        return 0
    import targets as T
    names = a.target or list(T.TARGETS)
    bad = 0
    for name in names:
        before = set(os.listdir(crashes))
        p = subprocess.run([sys.executable, __file__, "--child", name, "--seconds", str(a.seconds),
                            "--crashes", str(crashes)], capture_output=True, text=True,
                           timeout=a.seconds * 3 + 300)
        log = p.stderr
        execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
        cov = re.findall(r"cov: (\d+)", log)
        new = sorted(set(os.listdir(crashes)) - before)
        print(f"fuzz {name}: {execs[-1] if execs else '?'} executions in {a.seconds}s, "
              f"coverage {cov[-1] if cov else '?'} edges, exit {p.returncode}, new crashes {len(new)}"
              + (f": {', '.join(new)}" if new else ""), flush=True)
        if new or p.returncode not in (0,):
            bad += 1
            tail = "\n".join(log.splitlines()[-25:])
            print(tail, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
