#!/usr/bin/env python3
"""Highest replay rate ``inspector live`` takes on this machine without dropping a packet.

    sudo .venv/bin/python bench/bench_live.py                  # generated capture, packets/s
    sudo .venv/bin/python bench/bench_live.py --capture captures/dc-north-day.pcap --mbps

Two network namespaces joined by a veth pair (no addresses, no routes, IPv6
and forwarding off: the frames stay on the pair).  For each trial a fresh
``inspector live`` captures on one end and ``tcpreplay --pps R`` (or ``--mbps``)
replays ``--seconds`` worth of the capture (the first packets, looped when the
capture is too short) into the other.  A trial
passes when every packet sent was read, the inspector's stats show no kernel
drop (pcap ps_drop), no interface drop (ps_ifdrop, sysfs rx_dropped), and the
analysis caught up within ``--max-lag`` seconds of the end of the replay (a
longer lag means the kernel buffer was absorbing a backlog the rate cannot
sustain).  The rate doubles from ``--start`` until a trial fails, then a
bisection narrows the gap (``--refine`` steps).  The figure printed last is the
highest passing rate.  When tcpreplay itself cannot reach the requested rate
the search stops there and says so.

Needs root, iproute2 (``ip netns``) and tcpreplay.  Exit status: 0 done, 1 a
trial could not run, 2 requirements missing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CAPTURE = REPO / "bench" / "data" / "large.pcap"   # the capture bench_scan.py uses
# Run in each new namespace before the veth ends arrive: no IPv6 (no router solicitations, DAD or MLD
# on the link), no forwarding.  Knobs the kernel does not have are skipped.
ISOLATE = ("for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; do "
           "[ -e $f ] && echo 1 > $f; done; echo 0 > /proc/sys/net/ipv4/ip_forward; true")


def sh(cmd, ns=None, check=True, **kw):
    full = (["ip", "netns", "exec", ns] if ns else []) + [str(c) for c in cmd]
    r = subprocess.run(full, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {(r.stderr or r.stdout).strip()}")
    return r


class Veth:
    """``<prefix>-tx`` holds vA (replay), ``<prefix>-rx`` holds vB (capture)."""

    def __init__(self, prefix: str):
        self.tx, self.rx = f"{prefix}-tx", f"{prefix}-rx"

    def __enter__(self):
        try:
            for ns in (self.tx, self.rx):
                sh(["ip", "netns", "add", ns])
                sh(["sh", "-c", ISOLATE], ns=ns)
            sh(["ip", "link", "add", "vA", "netns", self.tx, "type", "veth", "peer", "name", "vB", "netns", self.rx])
            for ns, dev in ((self.tx, "vA"), (self.rx, "vB")):
                sh(["ip", "link", "set", dev, "mtu", "65000"], ns=ns)
                sh(["ip", "link", "set", dev, "up"], ns=ns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for ns in (self.tx, self.rx):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def tx_dropped(self) -> int:
        r = sh(["ip", "-s", "-j", "link", "show", "vA"], ns=self.tx)
        try:
            return int(json.loads(r.stdout)[0]["stats64"]["tx"]["dropped"])
        except (ValueError, KeyError, IndexError):
            return 0


def capture_info(path: Path) -> tuple[int, int]:
    """(packets, bytes on the wire) of a classic pcap or pcapng file, through inspector's reader."""
    sys.path.insert(0, str(REPO))
    from inspector.ingest import CaptureReader
    n = b = 0
    for batch in CaptureReader(str(path)):
        n += len(batch)
        b += int(batch.wirelen.sum())
    return n, b


def load_stats(out: Path) -> dict:
    try:
        return json.loads((out / "stats.json").read_text())
    except (OSError, ValueError):
        return {}


def trial(veth: Veth, capture: Path, n_pkts: int, n_bytes: int, rate: float, unit: str, seconds: float,
          args, workdir: Path) -> dict:
    """One replay at ``rate`` (packets/s or Mbit/s) into a fresh inspector; the measurements."""
    out = Path(tempfile.mkdtemp(prefix="live-", dir=workdir))
    pps = rate if unit == "pps" else rate * 1e6 / 8 / (n_bytes / n_pkts)
    to_send = max(1, math.ceil(pps * seconds))
    loops = max(1, math.ceil(to_send / n_pkts))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = ["ip", "netns", "exec", veth.rx, *args.inspector, "-i", "vB", "--out", str(out), "-q",
           "--stats-interval", "0.5", "--buffer-mb", str(args.buffer_mb), *args.live_arg]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    res = {"rate": rate, "unit": unit, "loops": loops}
    try:
        end = time.monotonic() + 180
        while not (out / "stats.json").exists():
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"inspector live did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.1)
        tx0 = veth.tx_dropped()
        opt = f"--pps={rate:g}" if unit == "pps" else f"--mbps={rate:g}"
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            r = sh(["tcpreplay", opt, f"--loop={loops}", f"--limit={to_send}", "-i", "vA", capture], ns=veth.tx,
                   check=False, timeout=seconds * 5 + 120)
        except subprocess.TimeoutExpired:
            raise RuntimeError("tcpreplay did not finish in time")
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t1 = time.monotonic()
        if r.returncode != 0:
            raise RuntimeError(f"tcpreplay failed: {(r.stderr or r.stdout).strip()}")
        m = re.search(r"Actual: (\d+) packets \((\d+) bytes\) sent in ([\d.]+) seconds", r.stdout)
        sent, sent_bytes, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
        failed = re.search(r"Failed packets:\s+(\d+)", r.stdout)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        res.update(sent=sent, replay_seconds=secs, replay_cpu=round(cpu / secs, 2) if secs else None, achieved_pps=round(sent / secs) if secs else None,
                   achieved_mbps=round(sent_bytes * 8 / secs / 1e6, 1) if secs else None,
                   replay_failed=int(failed.group(1)) if failed else 0, veth_tx_dropped=veth.tx_dropped() - tx0)
        # wait for the analysis to catch up (or to stop making progress)
        last, last_change, lag = -1, time.monotonic(), None
        while True:
            st = load_stats(out)
            done = st.get("packets_read", 0) + st.get("kernel_drops", 0)
            now = time.monotonic()
            if done >= sent:
                lag = now - t1
                break
            if done != last:
                last, last_change = done, now
            elif now - last_change > 10:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
        st = load_stats(out)
        res.update(packets_read=st.get("packets_read"), kernel_drops=st.get("kernel_drops"),
                   interface_drops=st.get("interface_drops"), rx_dropped=st.get("rx_dropped"),
                   catch_up_s=round(lag, 2) if lag is not None else None, exit=proc.returncode,
                   max_rss_mb=st.get("max_rss_mb"), queue_chunks_max=(st.get("capture") or {}).get("queue_chunks_max"))
        res["ok"] = bool(res["exit"] == 0 and res["packets_read"] == sent and not res["kernel_drops"]
                         and not res["interface_drops"] and not res["rx_dropped"] and not res["replay_failed"]
                         and lag is not None and lag <= args.max_lag)
        res["replay_limited"] = res["achieved_pps"] is not None and res["achieved_pps"] < 0.9 * pps
        return res
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(out, ignore_errors=True)


def fmt(r: dict) -> str:
    u = "pps" if r["unit"] == "pps" else "Mbit/s"
    s = (f"  {r['rate']:>12,.0f} {u:<6} sent {r.get('sent', 0):>10,} (achieved {r.get('achieved_pps') or 0:,} pps, "
         f"{r.get('achieved_mbps') or 0:,} Mbit/s)  read {r.get('packets_read') or 0:>10,}  "
         f"drops kernel {r.get('kernel_drops')} iface {r.get('interface_drops')} rx {r.get('rx_dropped')}  "
         f"catch-up {r.get('catch_up_s')} s  tcpreplay {r.get('replay_cpu') or 0:.0%} CPU  "
         f"-> {'ok' if r.get('ok') else 'FAIL'}")
    if r.get("veth_tx_dropped"):
        s += f"  (veth sender dropped {r['veth_tx_dropped']})"
    if r.get("replay_limited"):
        s += "  [tcpreplay below the requested rate]"
    return s


def scan_rate(capture: Path, args) -> float | None:
    """Packets/s of ``inspector scan`` on the capture, start-up included (the analysis is the same)."""
    out = tempfile.mkdtemp(prefix="scan-")
    try:
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "inspector", "scan", str(capture), "--out", out, "-q"],
                           cwd=REPO, capture_output=True)
        dt = time.monotonic() - t
        if r.returncode != 0:
            return None
        return json.loads(Path(out, "stats.json").read_text())["packets_read"] / dt
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path, help=f"capture to replay (default: {DEFAULT_CAPTURE.relative_to(REPO)}, "
                                                 "generated with bench/gen_capture.py when missing)")
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets when generating (default 1,000,000)")
    ap.add_argument("--flows", type=int, default=40_000, help="TCP flows when generating (default 40,000)")
    ap.add_argument("--mbps", action="store_true", help="rates in Mbit/s (tcpreplay --mbps) instead of packets/s")
    ap.add_argument("--start", type=float, help="first rate (default 5,000 pps or 20 Mbit/s)")
    ap.add_argument("--max", type=float, default=5_000_000, help="never try above this rate")
    ap.add_argument("--factor", type=float, default=2.0, help="growth of the rate while trials pass (default 2)")
    ap.add_argument("--refine", type=int, default=3, help="bisection steps after the first failure (default 3)")
    ap.add_argument("--seconds", type=float, default=15.0, help="replay length of a trial (default 15 s)")
    ap.add_argument("--max-lag", type=float, default=2.0,
                    help="seconds the analysis may take to catch up after the replay (default 2)")
    ap.add_argument("--buffer-mb", type=int, default=256, help="inspector live --buffer-mb (default 256)")
    ap.add_argument("--live-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for inspector live (repeatable), e.g. --live-arg=--immediate")
    ap.add_argument("--no-scan-reference", action="store_true", help="skip timing `inspector scan` on the capture")
    ap.add_argument("--json", type=Path, help="write every trial as JSON")
    args = ap.parse_args(argv)
    args.inspector = [sys.executable, "-m", "inspector", "live"]

    missing = [("root", os.geteuid() == 0), ("ip (iproute2)", shutil.which("ip")),
               ("tcpreplay", shutil.which("tcpreplay"))]
    missing = [name for name, ok in missing if not ok]
    if missing:
        print(f"bench_live: needs {', '.join(missing)}", file=sys.stderr)
        return 2
    capture = args.capture
    if capture is None:
        capture = DEFAULT_CAPTURE
        if not capture.exists():
            capture.parent.mkdir(parents=True, exist_ok=True)
            print(f"generating {capture.relative_to(REPO)} ({args.packets:,} packets, {args.flows:,} flows)")
            subprocess.run([sys.executable, str(REPO / "bench" / "gen_capture.py"), "--packets", str(args.packets),
                            "--flows", str(args.flows), "--out", str(capture)], check=True)
    n_pkts, n_bytes = capture_info(capture)
    unit = "mbps" if args.mbps else "pps"
    rate = args.start or (20.0 if args.mbps else 5000.0)
    print(f"capture {capture}: {n_pkts:,} packets, {n_bytes / 1e6:,.1f} MB, mean frame {n_bytes / n_pkts:,.0f} B; "
          f"trials of {args.seconds:g} s, kernel buffer {args.buffer_mb} MB, {os.cpu_count()} CPUs")
    ref = None if args.no_scan_reference else scan_rate(capture, args)
    if ref:
        print(f"reference: inspector scan of the file: {ref:,.0f} packets/s")
    trials = []
    best = None
    bad = None
    limited = False
    workdir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    try:
        with Veth(f"inspector-bench-{os.getpid()}") as veth:
            def run(r):
                res = trial(veth, capture, n_pkts, n_bytes, r, unit, args.seconds, args, workdir)
                trials.append(res)
                print(fmt(res), flush=True)
                return res
            while rate <= args.max:
                res = run(rate)
                if not res["ok"]:
                    bad = rate
                    break
                best = res
                if res["replay_limited"]:
                    limited = True
                    break
                rate *= args.factor
            if best is not None and bad is not None:
                lo, hi = best["rate"], bad
                for _ in range(args.refine):
                    mid = round((lo + hi) / 2, 0 if unit == "pps" else 1)
                    if mid in (lo, hi):
                        break
                    res = run(mid)
                    if res["ok"]:
                        best, lo = res, mid
                        if res["replay_limited"]:
                            limited = True
                            break
                    else:
                        hi = bad = mid
    except RuntimeError as e:
        print(f"bench_live: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"capture": str(capture), "packets": n_pkts, "bytes": n_bytes,
                                         "scan_pps": ref, "trials": trials}, indent=2) + "\n")
    if best is None:
        print(f"max no-drop replay rate: below {rate:g} {'pps' if unit == 'pps' else 'Mbit/s'} (the first trial "
              "failed; try --start lower)")
        return 0
    print(f"max no-drop replay rate: {best['achieved_pps']:,} packets/s ({best['achieved_mbps']:,} Mbit/s) "
          f"[requested {best['rate']:,g} {'pps' if unit == 'pps' else 'Mbit/s'}"
          + (f"; next failing {bad:,g}" if bad is not None else "") + "]"
          + (" -- limited by tcpreplay, inspector may go higher" if limited else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
