#!/usr/bin/env python3
"""The variation harness: ``captures/generate_variation.py`` run with many seeds, each variant scanned
with the default policy, the incidents checked against what was planted.

For every seed:

* **recall**: each planted channel (beacon, slow drip, split SSH tunnel, DNS tunnel, ICMP tunnel, bulk
  upload) must be found as exactly ONE incident (issue 10: one story per channel), holding its flows;
* **false alerts**: alerts that cover no planted flow, and incidents holding a benign flow.

``python tests/variation.py --seeds 20`` prints one line per seed and the totals (``make variation``);
``tests/test_variation.py`` runs a few seeds in ``make test``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "captures"))

#: channel -> the rule that must be among its incident's signatures (the detector made for it)
EXPECTED_RULE = {"beacon": 1000070, "drip": 1000040, "tunnel": 1000080, "dns": 1000050, "icmp": 1000060,
                 "upload": 1000030}


def _jsonl(path: Path) -> list:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _endpoints(proto, a, ap, b, bp) -> tuple:
    """A connection's key whichever side the flow table calls the originator."""
    return (str(proto).lower(),) + tuple(sorted([(str(a), int(ap)), (str(b), int(bp))]))


def evaluate(seed: int, work: Path) -> dict:
    """Generate, scan and judge one seed; returns its figures and the problems found."""
    import generate_variation as gv
    from inspector.cli import main as cli
    m = gv.generate(seed, work)
    out = work / f"out-{seed}"
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli(["scan", str(work / m["capture"]), "--site", str(work / "site-variation.yaml"), "--out", str(out),
                  "-q"])
    flows = _jsonl(out / "flows.jsonl")
    by_key: dict = {}
    for f in flows:
        by_key.setdefault(_endpoints(f["proto"], f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"]),
                          set()).add(f["uid"])

    def uids(keys) -> set:
        out_ = set()
        for k in keys:
            out_ |= by_key.get(_endpoints(*k), set())
        return out_

    alerts, incidents = _jsonl(out / "alerts.jsonl"), _jsonl(out / "incidents.jsonl")
    planted_all: set = set()
    found, problems = {}, []
    for name, keys in m["channels"].items():
        mine = uids(keys)
        planted_all |= mine
        holding = [i for i in incidents if mine & set(i["uids"])]
        rule = EXPECTED_RULE.get(name)
        found[name] = len(holding) == 1 and (rule is None or rule in holding[0]["signature_ids"])
        if len(holding) != 1:
            problems.append(f"{name}: {len(holding)} incidents ({json.dumps(m['params'].get(name))})")
        elif not found[name]:
            problems.append(f"{name}: its incident has rules {holding[0]['signature_ids']}, not {rule} "
                            f"({json.dumps(m['params'].get(name))})")
        elif not mine <= set(holding[0]["uids"]) and name != "dns":
            missing = len(mine - set(holding[0]["uids"]))
            problems.append(f"{name}: its incident misses {missing} of its {len(mine)} flows")
    benign = uids(m["benign"])
    false_alerts = [a for a in alerts if not (set(a.get("uids") or ()) & planted_all)]
    false_alerts += [a for a in alerts if set(a.get("uids") or ()) & benign and a not in false_alerts]
    for a in false_alerts:
        problems.append(f"false alert {a['alert']['signature_id']} {a['src_ip']} -> {a['dest_ip']}: {a.get('why')}")
    tunnel_records = len(uids(m["channels"].get("tunnel", ())))
    return {"seed": seed, "rc": rc, "packets": m["packets"], "channels": len(found), "tunnel_records": tunnel_records,
            "detected": sum(found.values()), "found": found, "false_alerts": len(false_alerts),
            "alerts": len(alerts), "incidents": len(incidents), "problems": problems, "params": m["params"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="scan randomised variants and report recall and false alerts")
    ap.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    ap.add_argument("--first", type=int, default=1, help="first seed (default 1)")
    ap.add_argument("--keep", type=Path, help="keep captures and outputs in this folder")
    args = ap.parse_args(argv)
    total = {"channels": 0, "detected": 0, "false_alerts": 0}
    per_kind: dict = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for seed in range(args.first, args.first + args.seeds):
            r = evaluate(seed, work)
            for k in total:
                total[k] += r[k]
            for name, ok in r["found"].items():
                d = per_kind.setdefault(name, [0, 0])
                d[0] += ok
                d[1] += 1
            print(f"seed {seed:3d}: {r['detected']}/{r['channels']} channels, {r['false_alerts']} false alerts, "
                  f"{r['alerts']} alerts in {r['incidents']} incidents, {r['packets']:,} packets "
                  f"(the tunnel in {r['tunnel_records']} flow records)")
            for p in r["problems"]:
                print(f"    {p}")
    recall = total["detected"] / total["channels"] if total["channels"] else 0.0
    print(f"recall {total['detected']}/{total['channels']} = {recall:.1%}; false alerts {total['false_alerts']} "
          f"over {args.seeds} seeds ({time.monotonic() - started:.0f} s)")
    print("per channel: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(per_kind.items())))
    return 0 if total["detected"] == total["channels"] and not total["false_alerts"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
