#!/usr/bin/env python3
"""``make bench``: the scan modes against tshark on two captures of different shapes.

For each capture (generated into ``bench/data/`` on first use, never committed):

* ``project``: ``gen_capture.py`` (long TCP conversations with ASCII payloads, DNS),
* ``flows``: ``gen_flows.py`` (many short flows with random payloads, ~3/4 of them open at
  once, 30 % IPv6, 30 % VLAN, half of them crossing the site boundary),

it runs, in turn within each round so the shared machine's drift hits them alike:

    tshark -n -q -r FILE -z conv,tcp -z conv,udp
    inspector scan FILE --out TMP --flows-only
    inspector scan FILE --out TMP                    (full analysis)
    inspector scan FILE --out TMP --workers 2        (full analysis, two worker processes)

``--runs`` rounds (default 3).  Printed per capture and mode: the median wall time, the
median of the per-round ratios to tshark's wall time of the same round (the figure to
read on a busy machine), and the peak memory (the larger of the child's ``ru_maxrss`` and
the summed PSS of its process tree, see ``bench_scan.measure``).  ``--json`` keeps all of it.

    python bench/bench_suite.py [--runs 3] [--scale 1.0] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_scan  # noqa: E402  (measure, warm_page_cache, count_pcap_packets, med)

REPO_DIR = BENCH_DIR.parent
DATA = BENCH_DIR / "data"

#: name -> (file, generator module, generator keyword arguments at scale 1)
CAPTURES = {
    "project": ("project-300k.pcap", "gen_capture", dict(n_packets=300_000, n_flows=12_000)),
    "flows": ("flows-400k.pcap", "gen_flows", dict(n_packets=400_000, n_flows=40_000)),
}

MODES = (
    ("flows-only", ["--flows-only"]),
    ("full", []),
    ("full, 2 workers", ["--workers", "2"]),
)

TARGETS = {"flows-only": 0.15, "full": 0.25, "full, 2 workers": 0.25}
TARGET_MEM_MIB = 512.0


def capture_path(name: str, scale: float) -> Path:
    fname, _, _ = CAPTURES[name]
    if scale != 1.0:
        stem, ext = os.path.splitext(fname)
        fname = f"{stem}-x{scale:g}{ext}"
    return DATA / fname


def ensure_capture(name: str, scale: float, regenerate: bool) -> Path:
    """The capture file, generated when missing (deterministic: same seed, same bytes)."""
    path = capture_path(name, scale)
    if path.exists() and not regenerate:
        return path
    _, module, kw = CAPTURES[name]
    kw = {k: max(1, int(v * scale)) for k, v in kw.items()}
    print(f"generating {path.name} with {module}.py {kw} ...", flush=True)
    gen = __import__(module)
    DATA.mkdir(parents=True, exist_ok=True)
    gen.generate(str(path), **kw)
    return path


def supports_workers(cmd: list[str]) -> bool:
    try:
        out = subprocess.run(cmd + ["scan", "--help"], capture_output=True, text=True, cwd=REPO_DIR,
                             timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "--workers" in out


def run_capture(name: str, path: Path, args, inspector_cmd: list[str], modes, logdir: str) -> dict:
    tshark_cmd = [args.tshark, "-n", "-q", "-r", str(path), "-z", "conv,tcp", "-z", "conv,udp"]
    bench_scan.warm_page_cache(path)
    packets = bench_scan.count_pcap_packets(path)
    print(f"\n== {name}: {path.name}, {path.stat().st_size / 1e6:.0f} MB, {packets:,} packets", flush=True)
    runs: dict = {"tshark": []}
    for label, _ in modes:
        runs[label] = []
    for i in range(1, args.runs + 1):
        order = [("tshark", None)] + list(modes)
        for label, extra in order:
            if label == "tshark":
                cmd, out = tshark_cmd, None
            else:
                out = tempfile.mkdtemp(prefix="inspector-bench-")
                cmd = inspector_cmd + ["scan", str(path), "--out", out, "-q"] + extra
            err = os.path.join(logdir, f"{name}-{label.replace(' ', '_').replace(',', '')}-{i}.err")
            r = bench_scan.measure(cmd, stdout_path=None, stderr_path=err, sample_interval=0.05,
                                   cwd=REPO_DIR, timeout=args.timeout)
            if out:
                shutil.rmtree(out, ignore_errors=True)
            if r["returncode"] != 0:
                print(f"  round {i} {label}: FAILED (exit {r['returncode']}): {bench_scan.tail(err, 5)}")
            else:
                print(f"  round {i} {label:<16} {r['wall_s']:7.2f} s {r['peak_mem_mib']:7.0f} MiB", flush=True)
            runs[label].append(r)
    summary = {}
    tsh = runs["tshark"]
    for label in runs:
        ok = [(k, r) for k, r in enumerate(runs[label]) if r["returncode"] == 0]
        if not ok:
            summary[label] = None
            continue
        ratios = [r["wall_s"] / tsh[k]["wall_s"] for k, r in ok
                  if k < len(tsh) and tsh[k]["returncode"] == 0]
        summary[label] = dict(
            median_wall_s=bench_scan.med([r["wall_s"] for _, r in ok]),
            median_cpu_s=bench_scan.med([r["user_s"] + r["sys_s"] for _, r in ok]),
            median_ratio=bench_scan.med(ratios) if ratios else None,
            peak_mem_mib=max(r["peak_mem_mib"] for _, r in ok),
            packets_per_s=packets / bench_scan.med([r["wall_s"] for _, r in ok]) if packets else None,
        )
    return dict(capture=str(path), bytes=path.stat().st_size, packets=packets, runs=runs, summary=summary)


def print_table(results: dict) -> None:
    print()
    hdr = f"{'capture':<8} {'mode':<16} {'median s':>9} {'vs tshark':>10} {'target':>7} {'peak MiB':>9} {'pkt/s':>9}"
    print(hdr)
    print("-" * len(hdr))
    for name, res in results.items():
        for label, s in res["summary"].items():
            if s is None:
                print(f"{name:<8} {label:<16} {'failed / n/a':>9}")
                continue
            ratio = "1.000x" if label == "tshark" else (f"{s['median_ratio']:.3f}x" if s["median_ratio"] else "-")
            tgt = f"{TARGETS[label]:.2f}x" if label in TARGETS else ""
            print(f"{name:<8} {label:<16} {s['median_wall_s']:9.2f} {ratio:>10} {tgt:>7} "
                  f"{s['peak_mem_mib']:9.0f} {s['packets_per_s'] or 0:9,.0f}")
        full, w2 = res["summary"].get("full"), res["summary"].get("full, 2 workers")
        if full and w2:
            print(f"{'':<8} 1 -> 2 workers scaling: {full['median_wall_s'] / w2['median_wall_s']:.2f}x "
                  f"(target 1.8x; {os.cpu_count()} cpus, shared)")
    print(f"\nmemory target: <= {TARGET_MEM_MIB:.0f} MiB; ratios are medians of per-round ratios "
          f"(each mode over tshark's time in the same round)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--scale", type=float, default=1.0, help="capture size factor (default 1: 300k and 400k packets)")
    ap.add_argument("--captures", default=",".join(CAPTURES), help="comma-separated subset of: " + ", ".join(CAPTURES))
    ap.add_argument("--regenerate", action="store_true", help="regenerate the captures")
    ap.add_argument("--inspector", default=None, help="inspector command (default: the venv's, else python -m inspector)")
    ap.add_argument("--tshark", default=shutil.which("tshark") or "tshark")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", type=Path, default=None, help="write every measurement as JSON here")
    args = ap.parse_args(argv)
    if not shutil.which(args.tshark) and not os.path.exists(args.tshark):
        print("tshark not found: the ratios need it (make system-deps)", file=sys.stderr)
        return 1
    inspector_cmd = args.inspector.split() if args.inspector else bench_scan.default_inspector_cmd()
    modes = [m for m in MODES if "--workers" not in m[1] or supports_workers(inspector_cmd)]
    print(f"host: {platform.node()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}; inspector: {' '.join(inspector_cmd)}")
    logdir = tempfile.mkdtemp(prefix="inspector-bench-logs-")
    results = {}
    for name in [c.strip() for c in args.captures.split(",") if c.strip()]:
        if name not in CAPTURES:
            ap.error(f"unknown capture {name!r}")
        path = ensure_capture(name, args.scale, args.regenerate)
        results[name] = run_capture(name, path, args, inspector_cmd, modes, logdir)
    print_table(results)
    failed = any(r["returncode"] != 0 for res in results.values() for rs in res["runs"].values() for r in rs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(host=platform.node(), cpus=os.cpu_count(), results=results),
                                        indent=1, default=str) + "\n")
    if failed:
        print(f"some runs failed; logs in {logdir}")
        return 1
    shutil.rmtree(logdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
