#!/usr/bin/env python3
"""Start-up cost of ``inspector``: ``--help``, ``scan`` of an empty capture, ``tshark -r`` of the same file,
and the first scan of a fresh install (no bytecode, no numba cache) without and with ``inspector.warmup``.

    python bench/bench_startup.py [--runs 5] [--json out.json]

Each command runs ``--runs`` times (alternating); the median wall time and the median CPU time
(user + system of the child) are printed.  CPU time is the fairer figure on a loaded machine.
A "fresh install" is emulated with an empty ``PYTHONPYCACHEPREFIX`` and ``NUMBA_CACHE_DIR``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env=None, cwd=REPO) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``cmd``; it must exit 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--repo", default=REPO, help="the checkout whose inspector package is measured (default: this one)")
    ap.add_argument("--no-fresh", action="store_true", help="skip the fresh-install runs (they compile: slow)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="inspector-startup-")
    try:
        empty = os.path.join(tmp, "empty.pcap")
        with open(empty, "wb") as fh:
            fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        env = dict(os.environ, PYTHONPATH=a.repo)
        inspector = [a.python, "-m", "inspector"]
        cmds = {
            "inspector --help": (inspector + ["--help"], env),
            "inspector scan EMPTY --out D": (inspector + ["scan", empty, "--out", os.path.join(tmp, "out")], env),
        }
        if shutil.which("tshark"):
            cmds["tshark -r EMPTY"] = (["tshark", "-r", empty], None)
        samples: dict = {k: [] for k in cmds}
        for _ in range(a.runs):
            for name, (cmd, e) in cmds.items():
                samples[name].append(timed(cmd, e))
        results = {}
        for name, runs in samples.items():
            results[name] = {"wall_s": round(statistics.median(w for w, _ in runs), 3),
                             "cpu_s": round(statistics.median(c for _, c in runs), 3), "runs": len(runs)}
        if not a.no_fresh:
            for label, warm in (("first scan, fresh install, no warmup", False),
                                ("first scan, fresh install, after warmup", True)):
                fresh = tempfile.mkdtemp(dir=tmp)
                fenv = dict(env, PYTHONPYCACHEPREFIX=os.path.join(fresh, "pyc"),
                            NUMBA_CACHE_DIR=os.path.join(fresh, "numba"))
                if warm:
                    w = timed([a.python, "-m", "inspector.warmup"], fenv)
                    results["inspector.warmup (install step)"] = {"wall_s": round(w[0], 3), "cpu_s": round(w[1], 3),
                                                                 "runs": 1}
                scan = inspector + ["scan", os.path.join(a.repo, "captures", "dc-north-day.pcap"), "--out",
                                    os.path.join(fresh, "out"), "-q"]
                first = timed(scan, fenv)
                second = timed(scan, fenv)
                results[label] = {"wall_s": round(first[0], 3), "cpu_s": round(first[1], 3), "runs": 1,
                                  "then_wall_s": round(second[0], 3), "then_cpu_s": round(second[1], 3)}
        width = max(len(k) for k in results)
        for name, r in results.items():
            extra = (f"   (next scan: {r['then_wall_s']:.2f} s wall, {r['then_cpu_s']:.2f} s CPU)"
                     if "then_wall_s" in r else "")
            print(f"{name:<{width}}  {r['wall_s']:7.2f} s wall  {r['cpu_s']:7.2f} s CPU  (median of {r['runs']})"
                  + extra)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(results, fh, indent=2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
