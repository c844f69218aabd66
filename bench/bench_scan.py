#!/usr/bin/env python3
"""Benchmark `inspector scan` against `tshark -z conv,tcp -z conv,udp`.

Generates the synthetic capture if it is missing (bench/gen_capture.py), then
runs, alternately, N times each:

    inspector scan FILE --out TMPDIR
    tshark -n -q -r FILE -z conv,tcp -z conv,udp      (stdout -> /dev/null)

For every run it records the wall time, user/sys CPU time and peak memory of
the child process, prints a table, and optionally writes the results as JSON.

Peak memory is taken two ways and the larger one is reported:
  * ru_maxrss of the child from os.wait4() (largest single process in the
    child's tree: the child itself or any descendant it waited for);
  * the sum of PSS (proportional set size, /proc/PID/smaps_rollup) over the
    child's whole process tree, sampled every --sample-interval seconds
    (catches worker pools, whose total ru_maxrss cannot see, without
    double-counting copy-on-write pages shared after fork; may miss very
    short peaks).

Targets: inspector median wall time <= 0.25 x tshark's (median of per-pair
ratios), inspector peak memory <= 512 MiB.

Usage:  python bench/bench_scan.py [--runs 3] [--json results.json]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import mmap
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_CAPTURE = BENCH_DIR / "data" / "large.pcap"

TARGET_RATIO = 0.25          # inspector wall / tshark wall
TARGET_MEM_MIB = 512.0       # inspector peak memory

MIB = 1024 * 1024


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def default_inspector_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "inspector"
    if exe.exists() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "inspector"]


def count_pcap_packets(path: Path) -> int | None:
    """Count records of a classic pcap quickly; fall back to capinfos."""
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            magic = mm[:4]
            if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
                fmt = "<I"
            elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
                fmt = ">I"
            else:
                raise ValueError("not a classic pcap")
            unpack = struct.Struct(fmt).unpack_from
            off, n, size = 24, 0, len(mm)
            while off + 16 <= size:
                off += 16 + unpack(mm, off + 8)[0]
                n += 1
            return n
    except (ValueError, OSError):
        pass
    capinfos = shutil.which("capinfos")
    if capinfos:
        try:
            out = subprocess.run([capinfos, "-M", "-c", "-T", str(path)], capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()
            return int(out[-1].split("\t")[-1])
        except (subprocess.CalledProcessError, ValueError, IndexError):
            pass
    return None


def warm_page_cache(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb") as fh:
        while fh.read(16 * MIB):
            pass
    return time.perf_counter() - t


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    kids.extend(int(x) for x in fh.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return kids


def _mem_kib(pid: int) -> int:
    """PSS of pid in KiB (shared pages split between sharers, so summing over
    forked workers does not double-count); falls back to VmRSS."""
    for path, key in ((f"/proc/{pid}/smaps_rollup", "Pss:"), (f"/proc/{pid}/status", "VmRSS:")):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith(key):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return 0


class TreeRSSSampler(threading.Thread):
    """Samples the summed PSS of a process tree until stopped."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self.max_procs = 0
        self.samples = 0
        self._stop_evt = threading.Event()

    def run(self):
        while not self._stop_evt.is_set():
            pids, todo, seen = [], [self.pid], set()
            while todo:
                p = todo.pop()
                if p in seen:
                    continue
                seen.add(p)
                pids.append(p)
                todo.extend(_children(p))
            total = sum(_mem_kib(p) for p in pids)
            self.samples += 1
            if total > self.peak_kib:
                self.peak_kib = total
            self.max_procs = max(self.max_procs, len(pids))
            self._stop_evt.wait(self.interval)

    def stop(self):
        self._stop_evt.set()
        self.join()


def measure(cmd: list[str], *, stdout_path: str | None, stderr_path: str,
            sample_interval: float, cwd: Path, timeout: float | None) -> dict:
    """Run cmd, return wall/cpu/memory figures measured on the child."""
    out_fh = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err_fh = open(stderr_path, "wb")
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_fh, stderr=err_fh,
                                cwd=str(cwd))
        sampler = TreeRSSSampler(proc.pid, sample_interval)
        sampler.start()
        timer = None
        timed_out = []
        if timeout:
            def _kill():
                timed_out.append(True)
                try:
                    proc.kill()
                except OSError:
                    pass
            timer = threading.Timer(timeout, _kill)
            timer.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)   # keep Popen from re-waiting
        if timer:
            timer.cancel()
        sampler.stop()
    finally:
        if stdout_path:
            out_fh.close()
        err_fh.close()
    maxrss_mib = ru.ru_maxrss / 1024.0              # Linux: KiB
    tree_mib = sampler.peak_kib / 1024.0
    return dict(
        cmd=cmd,
        returncode=proc.returncode,
        timed_out=bool(timed_out),
        wall_s=wall,
        user_s=ru.ru_utime,
        sys_s=ru.ru_stime,
        maxrss_mib=maxrss_mib,
        tree_pss_peak_mib=tree_mib,
        peak_mem_mib=max(maxrss_mib, tree_mib),
        max_procs=sampler.max_procs,
        mem_samples=sampler.samples,
    )


def tail(path: str, n: int = 15) -> str:
    try:
        with open(path, "rb") as fh:
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    lines = [l for l in lines if "Running as user" not in l]
    return "\n".join(lines[-n:])


def tool_version(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def dir_size(path: str) -> tuple[int, int]:
    n = size = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                size += os.path.getsize(os.path.join(root, f))
                n += 1
            except OSError:
                pass
    return n, size


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE,
                    help=f"capture to scan (default {DEFAULT_CAPTURE.relative_to(REPO_DIR)}; "
                         "generated if missing)")
    ap.add_argument("--packets", type=int, default=1_000_000,
                    help="packets when generating the capture (default 1,000,000)")
    ap.add_argument("--flows", type=int, default=40_000,
                    help="TCP flows when generating the capture (default 40,000)")
    ap.add_argument("--regenerate", action="store_true", help="regenerate the capture even if present")
    ap.add_argument("--runs", type=int, default=3, help="runs of each tool (default 3)")
    ap.add_argument("--inspector", default=None,
                    help="inspector command (shell-quoted string); default: the 'inspector' "
                         "executable next to sys.executable, else 'python -m inspector'")
    ap.add_argument("--tshark", default=shutil.which("tshark") or "/usr/bin/tshark",
                    help="tshark binary (default: tshark on PATH)")
    ap.add_argument("--scan-args", default="",
                    help="extra arguments for `inspector scan`, e.g. --scan-args=--flows-only (connection records "
                         "only, the mode that corresponds to tshark's conversation table)")
    ap.add_argument("--no-inspector", action="store_true", help="only run tshark")
    ap.add_argument("--no-tshark", action="store_true", help="only run inspector")
    ap.add_argument("--json", type=Path, default=None, help="write results as JSON to this path")
    ap.add_argument("--keep-out", action="store_true",
                    help="keep the inspector --out directories (paths are printed)")
    ap.add_argument("--sample-interval", type=float, default=0.05,
                    help="process-tree PSS sampling interval, s (default 0.05)")
    ap.add_argument("--timeout", type=float, default=1800, help="per-run timeout, s (default 1800)")
    ap.add_argument("--check", action="store_true",
                    help="exit with status 2 if a target is missed (status 1 = a run failed)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    capture = args.capture.resolve()
    inspector_cmd = shlex.split(args.inspector) if args.inspector else default_inspector_cmd()
    extra = shlex.split(args.scan_args)
    tshark = args.tshark
    run_inspector = not args.no_inspector
    run_tshark = not args.no_tshark
    if run_tshark and not (os.path.exists(tshark) or shutil.which(tshark)):
        print(f"warning: tshark not found ({tshark}); running inspector only", file=sys.stderr)
        run_tshark = False
    use_inspector, use_tshark = run_inspector, run_tshark   # as configured (run_* may drop on failure)

    # ---------------- capture ----------------
    gen_stats = None
    if args.regenerate or not capture.exists():
        sys.path.insert(0, str(BENCH_DIR))
        import gen_capture  # noqa: E402
        print(f"generating {capture} ({args.packets:,} packets, {args.flows:,} flows) ...")
        gen_stats = gen_capture.generate(str(capture), args.packets, args.flows)
    size = capture.stat().st_size
    n_packets = count_pcap_packets(capture)
    warm = warm_page_cache(capture)
    print(f"capture: {capture}  {size / 1e6:.1f} MB, "
          f"{n_packets:,} packets" if n_packets is not None else f"capture: {capture}  {size / 1e6:.1f} MB",
          f"(page cache warmed in {warm:.2f} s)")

    tshark_cmd = [tshark, "-n", "-q", "-r", str(capture), "-z", "conv,tcp", "-z", "conv,udp"]
    if run_inspector:
        print("inspector:", " ".join(shlex.quote(c) for c in inspector_cmd + ["scan", str(capture), "--out", "TMPDIR"] + extra))
    if run_tshark:
        print("tshark:   ", " ".join(shlex.quote(c) for c in tshark_cmd), "> /dev/null")
    print(f"host: {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}")
    print()

    # ---------------- runs ----------------
    logdir = tempfile.mkdtemp(prefix="inspector-bench-logs-")
    runs: list[dict] = []
    failures = 0
    for i in range(1, args.runs + 1):
        if not (run_inspector or run_tshark):
            break
        row = {"run": i}
        if run_inspector:
            outdir = tempfile.mkdtemp(prefix=f"inspector-bench-out-{i}-")
            r = measure(inspector_cmd + ["scan", str(capture), "--out", outdir] + extra,
                        stdout_path=os.path.join(logdir, f"inspector-{i}.out"),
                        stderr_path=os.path.join(logdir, f"inspector-{i}.err"),
                        sample_interval=args.sample_interval, cwd=REPO_DIR, timeout=args.timeout)
            r["out_files"], r["out_bytes"] = dir_size(outdir)
            if args.keep_out:
                r["out_dir"] = outdir
            else:
                shutil.rmtree(outdir, ignore_errors=True)
            row["inspector"] = r
            if r["returncode"] != 0:
                failures += 1
                run_inspector = False          # don't repeat a broken command
                print(f"run {i}: inspector FAILED (exit {r['returncode']}"
                      f"{', timed out' if r['timed_out'] else ''}) after {r['wall_s']:.2f} s")
                print("  " + (tail(os.path.join(logdir, f"inspector-{i}.err"))
                              or tail(os.path.join(logdir, f"inspector-{i}.out"))).replace("\n", "\n  "))
            else:
                print(f"run {i}: inspector {r['wall_s']:8.2f} s  {r['peak_mem_mib']:7.1f} MiB"
                      f"  -> {r['out_files']} files, {r['out_bytes'] / 1e6:.1f} MB"
                      + (f" in {r['out_dir']}" if args.keep_out else ""))
        if run_tshark:
            r = measure(tshark_cmd, stdout_path=None,
                        stderr_path=os.path.join(logdir, f"tshark-{i}.err"),
                        sample_interval=args.sample_interval, cwd=REPO_DIR, timeout=args.timeout)
            row["tshark"] = r
            if r["returncode"] != 0:
                failures += 1
                run_tshark = False
                print(f"run {i}: tshark FAILED (exit {r['returncode']}): "
                      + tail(os.path.join(logdir, f"tshark-{i}.err")))
            else:
                print(f"run {i}: tshark    {r['wall_s']:8.2f} s  {r['peak_mem_mib']:7.1f} MiB")
        ok_i = "inspector" in row and row["inspector"]["returncode"] == 0
        ok_t = "tshark" in row and row["tshark"]["returncode"] == 0
        row["ratio"] = row["inspector"]["wall_s"] / row["tshark"]["wall_s"] if ok_i and ok_t else None
        runs.append(row)

    # ---------------- summary ----------------
    def ok(tool):
        return [r[tool] for r in runs if tool in r and r[tool]["returncode"] == 0]

    summary = {}
    for tool in ("inspector", "tshark"):
        rs = ok(tool)
        if not rs:
            continue
        mw = med([r["wall_s"] for r in rs])
        summary[tool] = dict(
            ok_runs=len(rs),
            wall_s=[r["wall_s"] for r in rs],
            median_wall_s=mw,
            min_wall_s=min(r["wall_s"] for r in rs),
            median_cpu_s=med([r["user_s"] + r["sys_s"] for r in rs]),
            peak_mem_mib=max(r["peak_mem_mib"] for r in rs),
            packets_per_s=(n_packets / mw) if n_packets and mw else None,
            mb_per_s=size / 1e6 / mw if mw else None,
        )
    ratios = [r["ratio"] for r in runs if r.get("ratio") is not None]
    median_ratio = med(ratios)
    insp = summary.get("inspector")
    targets = dict(
        ratio=dict(target=TARGET_RATIO, value=median_ratio,
                   met=None if median_ratio is None else median_ratio <= TARGET_RATIO),
        inspector_peak_mem_mib=dict(target=TARGET_MEM_MIB, value=insp and insp["peak_mem_mib"],
                                    met=None if not insp else insp["peak_mem_mib"] <= TARGET_MEM_MIB),
    )

    def verdict(t):
        return {True: "PASS", False: "FAIL", None: "n/a"}[t["met"]]

    print()
    hdr = f"{'run':>4} | {'inspector s':>11} {'MiB':>7} | {'tshark s':>9} {'MiB':>7} | {'ratio':>6}"
    print(hdr)
    print("-" * len(hdr))
    for r in runs:
        ri, rt = r.get("inspector"), r.get("tshark")
        iw = fmt(ri["wall_s"]) if ri and ri["returncode"] == 0 else ("FAIL" if ri else "-")
        tw = fmt(rt["wall_s"]) if rt and rt["returncode"] == 0 else ("FAIL" if rt else "-")
        im = fmt(ri["peak_mem_mib"], ".1f") if ri and ri["returncode"] == 0 else "-"
        tm = fmt(rt["peak_mem_mib"], ".1f") if rt and rt["returncode"] == 0 else "-"
        print(f"{r['run']:>4} | {iw:>11} {im:>7} | {tw:>9} {tm:>7} | {fmt(r.get('ratio'), '.3f'):>6}")
    print("-" * len(hdr))
    print()
    for tool in ("inspector", "tshark"):
        s = summary.get(tool)
        if not s:
            ran = any(tool in r for r in runs)
            print(f"{tool:<9}: {'no successful runs' if ran else 'not run'}")
            continue
        pps = f"{s['packets_per_s']:,.0f} pkt/s" if s["packets_per_s"] else "? pkt/s"
        print(f"{tool:<9}: median wall {s['median_wall_s']:.2f} s (min {s['min_wall_s']:.2f}), "
              f"median cpu {s['median_cpu_s']:.2f} s, peak mem {s['peak_mem_mib']:.1f} MiB, "
              f"{pps}, {s['mb_per_s']:.1f} MB/s")
    t = targets["ratio"]
    val = "n/a" if t["value"] is None else f"{t['value']:.3f}x"
    print(f"median ratio inspector/tshark: {val:>10}  "
          f"(target <= {TARGET_RATIO}x)  {verdict(t)}")
    t = targets["inspector_peak_mem_mib"]
    val = "n/a" if t["value"] is None else f"{t['value']:.1f} MiB"
    print(f"inspector peak memory:         {val:>10}  "
          f"(target <= {TARGET_MEM_MIB:.0f} MiB)  {verdict(t)}")
    if failures:
        print(f"\n{failures} run(s) failed; logs in {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)

    if args.json:
        result = dict(
            timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            capture=dict(path=str(capture), bytes=size, packets=n_packets, generated=gen_stats),
            host=dict(node=platform.node(), machine=platform.machine(), cpus=os.cpu_count(),
                      platform=platform.platform(), python=platform.python_version()),
            commands=dict(inspector=inspector_cmd + ["scan", str(capture), "--out", "TMPDIR"] + extra
                          if use_inspector else None,
                          tshark=tshark_cmd if use_tshark else None),
            tshark_version=tool_version([tshark, "--version"]) if use_tshark else None,
            runs=runs, summary=summary, median_ratio=median_ratio, ratios=ratios,
            targets=targets, failures=failures,
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nresults written to {args.json}")

    if failures:
        return 1
    if args.check and any(t["met"] is False or t["met"] is None for t in targets.values()):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
