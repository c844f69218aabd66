#!/usr/bin/env python3
"""Conformance report: inspector flows vs. the corpus oracles.

    python tests/conformance_report.py [--json] [--oracle zeek,ndpi,nfstream,packets]
                                       [--filter SUBSTR] [--limit N] [--summary]

Compares, for every capture that has the oracle:

* Zeek ``conn.log`` baselines: connections matched by (proto, orig_h, orig_p,
  resp_h, resp_p) as a multiset; per connection orig/resp pkts, ip_bytes,
  payload bytes and conn_state.  Each disagreement has a kind
  ('fields' | 'direction' | 'missing' | 'extra') and is looked up in
  tests/data/conn_disagreements.yaml.
* nDPI ``.out``: per-flow ``A pkts/B bytes <-> C pkts/D bytes`` (whole frames)
  against our orig/resp pkts and orig/resp_l2_bytes, matched by 5-tuple in
  either direction (port-less protocols by address pair).
* NFStream CSV: multiset of (bidirectional_packets, bidirectional_bytes).
* stats.packets_read against INDEX ``packets`` for complete files.

The test suite (tests/test_conformance_flows.py) imports the same functions,
so what this prints is what the tests assert on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import corpus  # noqa: E402

DISAGREEMENTS_YAML = _HERE / "data" / "conn_disagreements.yaml"
SCAN_TIMEOUT_S = 20
#: the first scan of a process may JIT-compile inspector's numba kernels (~10 s cold)
FIRST_SCAN_TIMEOUT_S = 300

#: extra conn.log columns shown next to the compared ones in the side-by-side view
CONN_CONTEXT = ("service", "duration", "missed_bytes", "history", "tunnel_parents")


# --------------------------------------------------------------------------
# Scanning (cached once per process)
# --------------------------------------------------------------------------

class ScanTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise ScanTimeout in the block after ``seconds`` (SIGALRM; main thread only)."""
    usable = (seconds and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def _handler(signum, frame):
        raise ScanTimeout(f"scan took longer than {seconds}s")

    old = signal.signal(signal.SIGALRM, _handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def inspector_available() -> bool:
    """True when ``inspector.scan`` exists (import errors inside it still raise)."""
    try:
        return importlib.util.find_spec("inspector.scan") is not None
    except ModuleNotFoundError:
        return False


_SCAN_CACHE: dict[str, tuple[str, Any]] = {}


def scan(path: str | Path, timeout: float | None = SCAN_TIMEOUT_S):
    """``inspector.pipeline.run_scan([path])``, cached per path for the whole process.

    Exceptions (including ScanTimeout) are cached too and re-raised.  The
    first scan of the process gets FIRST_SCAN_TIMEOUT_S (JIT warm-up).
    """
    key = str(path)
    if key not in _SCAN_CACHE:
        from inspector.pipeline import run_scan
        if timeout and not any(st == "ok" for st, _ in _SCAN_CACHE.values()):
            timeout = max(timeout, FIRST_SCAN_TIMEOUT_S)
        try:
            with time_limit(timeout):
                res = run_scan([key])
            _SCAN_CACHE[key] = ("ok", res)
        except Exception as exc:  # noqa: BLE001 - cached and re-raised
            _SCAN_CACHE[key] = ("err", exc)
    status, val = _SCAN_CACHE[key]
    if status == "err":
        raise val
    return val


def _rel(p: Path | str, root: Path) -> str:
    try:
        return str(Path(p).relative_to(root))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------
# Zeek conn.log
# --------------------------------------------------------------------------

def zeek_items(index: list[dict], root: Path, filt: str | None = None) -> list[dict]:
    """One item per (trace, conn.log baseline): compare_conn results (or a scan error)."""
    items = []
    for row, conn_path in corpus.zeek_conn_baselines(index, root):
        bl = _rel(conn_path, root)
        if filt and filt not in row["corpus_path"] and filt not in bl:
            continue
        base = corpus.read_zeek_log(conn_path)
        item = {"trace": row["corpus_path"], "baseline": bl, "n_baseline": len(base),
                "error": None}
        try:
            flows = list(scan(row["abspath"]).flows)
        except Exception as exc:  # noqa: BLE001
            item["error"] = f"{type(exc).__name__}: {exc}"
            flows = []
        item["results"] = corpus.compare_conn(base, flows)
        items.append(item)
    return items


def summarize_zeek(items: list[dict], entries: list[dict]) -> dict:
    total = sum(it["n_baseline"] for it in items)
    kinds: Counter = Counter()
    field_cmp = Counter()
    field_eq = Counter()
    disagreements = []
    used_entries: set[int] = set()
    for it in items:
        for res in it["results"]:
            kinds[res["kind"]] += 1
            if res["kind"] in ("agree", "fields"):
                for f in corpus.CONN_FIELDS:
                    field_cmp[f] += 1
                    field_eq[f] += f not in res["fields"]
            if res["kind"] == "agree":
                continue
            cover = [i for i, e in enumerate(entries)
                     if corpus.entry_covers(e, it["trace"], it["baseline"], res)]
            used_entries.update(cover)
            disagreements.append({"trace": it["trace"], "baseline": it["baseline"],
                                  "res": res, "entries": cover,
                                  "hints": conn_hints(res)})
    agree = kinds["agree"]
    traces = {it["trace"] for it in items}
    stale = [e for i, e in enumerate(entries)
             if i not in used_entries and e.get("trace") in traces]
    return {
        "baseline_connections": total,
        "baselines": len(items),
        "traces": len(traces),
        "agree": agree,
        "agreement": agree / total if total else 1.0,
        "kinds": dict(kinds),
        "per_field": {f: {"compared": field_cmp[f], "equal": field_eq[f],
                          "agreement": field_eq[f] / field_cmp[f] if field_cmp[f] else 1.0}
                      for f in corpus.CONN_FIELDS},
        "scan_errors": [(it["trace"], it["error"]) for it in items if it["error"]],
        "disagreements": disagreements,
        "unlisted": [d for d in disagreements if not d["entries"]],
        "stale_entries": stale,
    }


def conn_hints(res: dict) -> list[str]:
    """Cheap guesses at the cause of a conn disagreement (for triage only)."""
    b, o = res.get("baseline") or {}, res.get("ours") or {}
    hints = []
    if b.get("tunnel_parents"):
        hints.append("inner-of-tunnel")
    for f in res.get("fields", []):
        bv, ov = corpus.norm_val(b.get(f)), corpus.norm_val(o.get(f))
        if (bv is None) != (ov is None):
            hints.append(f"unset-vs-value:{f}")
    if res["kind"] == "fields":
        fs = set(res["fields"])
        if fs <= {"orig_bytes", "resp_bytes"}:
            hints.append("payload-bytes-only (seq-number accounting)")
        if fs == {"conn_state"}:
            hints.append("state-machine-only")
        if fs & {"orig_pkts", "resp_pkts"}:
            hints.append("packet-count (timeouts/split/merge/decap?)")
    if res["kind"] == "direction":
        hints.append("originator flipped")
    return hints


# --------------------------------------------------------------------------
# nDPI / NFStream
# --------------------------------------------------------------------------

def ndpi_items(index: list[dict], root: Path, filt: str | None = None) -> list[dict]:
    items = []
    for row in index:
        if row["source"] != "ndpi":
            continue
        outs = [p for p in corpus.oracle_paths(row, root) if p.name.endswith(".out")]
        if not outs or (filt and filt not in row["corpus_path"]):
            continue
        nd = corpus.parse_ndpi_out(outs[0])
        item = {"trace": row["corpus_path"], "oracle": _rel(outs[0], root), "error": None}
        try:
            flows = list(scan(row["abspath"]).flows)
        except Exception as exc:  # noqa: BLE001
            item["error"] = f"{type(exc).__name__}: {exc}"
            flows = []
        item["results"] = corpus.compare_ndpi(nd, flows)
        items.append(item)
    return items


def summarize_ndpi(items: list[dict]) -> dict:
    total = agree = merged = undirected = missing = 0
    f_cmp, f_eq = Counter(), Counter()
    files_all_agree = 0
    dis = []
    for it in items:
        ok = True
        for r in it["results"]:
            total += 1
            if r["kind"] == "agree":
                agree += 1
            elif r["kind"] == "merged":
                merged += 1
            else:
                ok = False
                dis.append({"trace": it["trace"], "res": r})
            if r["undirected_agree"]:
                undirected += 1
            if r["kind"] == "missing":
                missing += 1
            elif r["kind"] != "merged":
                for f in corpus.NDPI_COUNT_FIELDS:
                    f_cmp[f] += 1
                    f_eq[f] += f not in r["fields"]
        files_all_agree += ok
    return {
        "files": len(items), "flows": total, "agree": agree, "merged": merged,
        "exact_agreement": agree / total if total else 1.0,
        # asserted figure: exact, or equal to the sum of our same-5-tuple flows
        "agreement": (agree + merged) / total if total else 1.0,
        "undirected_agree": undirected,
        "undirected_agreement": undirected / total if total else 1.0,
        "missing": missing,
        "files_all_agree": files_all_agree,
        "per_field": {f: {"compared": f_cmp[f], "equal": f_eq[f],
                          "agreement": f_eq[f] / f_cmp[f] if f_cmp[f] else 1.0}
                      for f in corpus.NDPI_COUNT_FIELDS},
        "scan_errors": [(it["trace"], it["error"]) for it in items if it["error"]],
        "disagreements": dis,
    }


def nfstream_items(index: list[dict], root: Path, filt: str | None = None) -> list[dict]:
    items = []
    for row in index:
        if row["source"] != "nfstream":
            continue
        csvs = [p for p in corpus.oracle_paths(row, root) if p.name.endswith(".csv")]
        if not csvs or (filt and filt not in row["corpus_path"]):
            continue
        nf = corpus.read_nfstream_csv(csvs[0])
        item = {"trace": row["corpus_path"], "oracle": _rel(csvs[0], root), "error": None}
        try:
            flows = list(scan(row["abspath"]).flows)
        except Exception as exc:  # noqa: BLE001
            item["error"] = f"{type(exc).__name__}: {exc}"
            flows = []
        item["cmp"] = corpus.compare_nfstream(nf, flows)
        items.append(item)
    return items


def summarize_nfstream(items: list[dict]) -> dict:
    total = sum(it["cmp"]["total"] for it in items)
    matched = sum(it["cmp"]["matched"] for it in items)
    merged = sum(it["cmp"]["merged"] for it in items)
    return {
        "files": len(items), "flows": total, "matched": matched, "merged": merged,
        "exact_agreement": matched / total if total else 1.0,
        # asserted figure: exact, or explained by the different flow timeouts
        "agreement": (matched + merged) / total if total else 1.0,
        "files_all_agree": sum(1 for it in items
                               if not it["cmp"]["missing"] and not it["cmp"]["extra"]),
        "scan_errors": [(it["trace"], it["error"]) for it in items if it["error"]],
        "disagreements": [it for it in items if it["cmp"]["missing"] or it["cmp"]["extra"]],
    }


# --------------------------------------------------------------------------
# packets_read vs INDEX
# --------------------------------------------------------------------------

def packet_count_check(rows: list[dict]) -> dict:
    """Scan each row; list files whose packets_read != INDEX packets (complete files only)."""
    checked, bad, errors, outcome_bad = 0, [], [], []
    for row in rows:
        try:
            st = scan(row["abspath"]).stats
        except Exception as exc:  # noqa: BLE001
            errors.append((row["corpus_path"], f"{type(exc).__name__}: {exc}"))
            continue
        pr = st.get("packets_read")
        if sum((st.get("outcomes") or {}).values()) != pr:
            outcome_bad.append((row["corpus_path"], pr, dict(st.get("outcomes") or {})))
        if row["file_truncated"]:
            continue
        checked += 1
        if pr != row["packets"]:
            bad.append((row["corpus_path"], row["packets"], pr))
    return {"checked": checked, "mismatches": bad, "scan_errors": errors,
            "outcome_sum_mismatches": outcome_bad}


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _fmt(v: Any) -> str:
    v = corpus.norm_val(v)
    if v is None:
        return "-"
    if isinstance(v, (list, tuple, set)):
        return ",".join(map(str, v)) if v else "(empty)"
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def _conn_line(f: dict) -> str:
    return (f"{corpus.key_str(corpus.conn_key(f))}  pkts {_fmt(f.get('orig_pkts'))}/"
            f"{_fmt(f.get('resp_pkts'))} ip_bytes {_fmt(f.get('orig_ip_bytes'))}/"
            f"{_fmt(f.get('resp_ip_bytes'))} bytes {_fmt(f.get('orig_bytes'))}/"
            f"{_fmt(f.get('resp_bytes'))} {_fmt(f.get('conn_state'))} "
            f"hist={_fmt(f.get('history'))} uid={_fmt(f.get('uid'))}")


def print_zeek(summary: dict, entries: list[dict], limit: int | None, out=sys.stdout,
               flows_by_trace: dict | None = None) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    s = summary
    p(f"== Zeek conn.log: {s['baseline_connections']} baseline connections, "
      f"{s['baselines']} baselines, {s['traces']} traces")
    p(f"   agree {s['agree']}/{s['baseline_connections']} = {_pct(s['agreement'])}   "
      + "  ".join(f"{k} {v}" for k, v in sorted(s["kinds"].items()) if k != "agree"))
    p("   per field (over tuple-matched connections):")
    for f, d in s["per_field"].items():
        p(f"     {f:15s} {d['equal']:5d}/{d['compared']:<5d} {_pct(d['agreement'])}")
    p(f"   disagreements {len(s['disagreements'])} (listed {len(s['disagreements']) - len(s['unlisted'])}, "
      f"UNLISTED {len(s['unlisted'])}); stale yaml entries {len(s['stale_entries'])}")
    for t, e in s["scan_errors"]:
        p(f"   SCAN ERROR {t}: {e}")
    for e in s["stale_entries"]:
        p(f"   stale entry (no longer disagrees): {e.get('trace')} {e.get('tuple')} {e.get('fields')}")
    if limit == 0:
        return
    p("")
    p("-- Zeek disagreements (baseline vs ours) --")
    for n, d in enumerate(s["disagreements"]):
        if limit is not None and n >= limit:
            p(f"   ... {len(s['disagreements']) - limit} more")
            break
        res = d["res"]
        listed = ("listed: " + "; ".join(f"[{entries[i].get('class')}] {entries[i].get('reason', '')}"
                                          for i in d["entries"])) if d["entries"] else "UNLISTED"
        p(f"* [{res['kind']}] {d['trace']}  ({d['baseline']})")
        p(f"    {corpus.key_str(res['key'])}   {listed}")
        if d["hints"]:
            p(f"    hints: {', '.join(d['hints'])}")
        b, o = res["baseline"], res["ours"]
        if b is not None and o is not None:
            swap = res["kind"] == "direction"
            if swap:
                p(f"    ours (reversed): {corpus.key_str(corpus.conn_key(o))}")
            p(f"      {'field':15s} {'zeek':>22s} {'ours':>22s}")
            for f in corpus.CONN_FIELDS + CONN_CONTEXT:
                of = f
                if swap:
                    of = f.replace("orig_", "\0").replace("resp_", "orig_").replace("\0", "resp_")
                mark = " *" if f in res["fields"] else ""
                p(f"      {f:15s} {_fmt(b.get(f)):>22s} {_fmt(o.get(of)):>22s}{mark}")
        elif b is not None:
            p(f"    zeek: {_conn_line(b)}")
            if flows_by_trace is not None:
                near = [f for f in flows_by_trace.get(d["trace"], [])
                        if {corpus.norm_addr(f.get('id.orig_h')), corpus.norm_addr(f.get('id.resp_h'))}
                        == {res['key'][1], res['key'][3]}]
                for f in near[:8]:
                    p(f"    ours, same hosts: {_conn_line(f)}")
                if not near:
                    p("    ours: no flow between these hosts")
        else:
            p(f"    ours only: {_conn_line(o)}")


def print_ndpi(summary: dict, limit: int | None, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    s = summary
    p(f"== nDPI: {s['flows']} flows in {s['files']} files")
    p(f"   agree {s['agree'] + s['merged']}/{s['flows']} = {_pct(s['agreement'])} "
      f"(exact {s['agree']} = {_pct(s['exact_agreement'])}, + {s['merged']} equal to the sum of our "
      f"flows split by timeouts); ignoring orientation {s['undirected_agree']} = "
      f"{_pct(s['undirected_agreement'])}; missing {s['missing']}; "
      f"files fully agreeing {s['files_all_agree']}/{s['files']}")
    p("   per field (over 1:1-matched flows):")
    for f, d in s["per_field"].items():
        p(f"     {f:16s} {d['equal']:5d}/{d['compared']:<5d} {_pct(d['agreement'])}")
    for t, e in s["scan_errors"]:
        p(f"   SCAN ERROR {t}: {e}")
    if limit == 0:
        return
    p("")
    p("-- nDPI disagreements (nDPI src->dst vs ours oriented the same way) --")
    for n, d in enumerate(s["disagreements"]):
        if limit is not None and n >= limit:
            p(f"   ... {len(s['disagreements']) - limit} more")
            break
        r, f = d["res"], d["res"]["ndpi"]
        tup = (f"{f['l4']} {f['src']}:{f['sport']} {'<->' if f['bidirectional'] else '->'} "
               f"{f['dst']}:{f['dport']}" + (f" vlan={f['vlan']}" if f['vlan'] is not None else "")
               + (f" tunnel={f['tunnel']}" if f['tunnel'] else ""))
        exp = tuple(f[x] for x in corpus.NDPI_COUNT_FIELDS)
        ours = r["ours_counts"]
        p(f"* [{r['kind']}] {d['trace']}  {tup}  [{f['master']}]")
        p(f"    ndpi {exp[0]} pkts/{exp[1]} bytes <-> {exp[2]} pkts/{exp[3]} bytes")
        if ours is not None:
            extra = " (directions swapped only)" if r["undirected_agree"] else ""
            merged = f" merged from {r['ours']['n']} flows" if r["ours"]["n"] > 1 else ""
            p(f"    ours {ours[0]} pkts/{ours[1]} bytes <-> {ours[2]} pkts/{ours[3]} bytes"
              f"{extra}{merged} uids={','.join(map(str, r['ours']['uids']))}")
        else:
            p("    ours: no flow with this 5-tuple")


def print_nfstream(summary: dict, limit: int | None, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    s = summary
    p(f"== NFStream: {s['flows']} flows in {s['files']} files")
    p(f"   multiset (pkts, bytes): agree {s['matched'] + s['merged']}/{s['flows']} = "
      f"{_pct(s['agreement'])} (exact {s['matched']} = {_pct(s['exact_agreement'])}, + {s['merged']} "
      f"explained by split/merged flows, i.e. different timeouts); "
      f"files fully agreeing {s['files_all_agree']}/{s['files']}")
    for t, e in s["scan_errors"]:
        p(f"   SCAN ERROR {t}: {e}")
    if limit == 0:
        return
    p("")
    p("-- NFStream disagreements: (pkts, bytes) only in NFStream | only in ours --")
    for n, it in enumerate(s["disagreements"]):
        if limit is not None and n >= limit:
            p(f"   ... {len(s['disagreements']) - limit} more")
            break
        c = it["cmp"]
        p(f"* {it['trace']}  matched {c['matched']} + merged {c['merged']} of {c['total']}  "
          f"pkts nf={c['pkts_total_nf']} ours={c['pkts_total_ours']}")
        p(f"    nfstream only: {sorted(c['missing'].elements())[:20]}")
        p(f"    ours only:     {sorted(c['extra'].elements())[:20]}")


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = corpus.report_parser(__doc__, "zeek,ndpi,nfstream,packets", "comma list of zeek,ndpi,nfstream,packets",
                              "only captures whose corpus path contains this",
                              "max disagreements printed per oracle (0: summary only)")
    args = ap.parse_args(argv)
    root, limit, status = corpus.report_setup(args, inspector_available)
    if status is not None:
        return status
    index = corpus.load_index(root)
    oracles = set(args.oracle.split(","))
    entries = corpus.load_disagreements(DISAGREEMENTS_YAML) if DISAGREEMENTS_YAML.exists() else []
    out: dict[str, Any] = {}

    if "zeek" in oracles:
        items = zeek_items(index, root, args.filter)
        s = summarize_zeek(items, entries)
        out["zeek"] = s
        if not args.json:
            fbt = {}
            for it in items:
                try:
                    fbt[it["trace"]] = list(scan(str(root / it["trace"])).flows)
                except Exception:  # noqa: BLE001
                    fbt[it["trace"]] = []
            print_zeek(s, entries, limit, flows_by_trace=fbt)
            print()
    if "ndpi" in oracles:
        s = summarize_ndpi(ndpi_items(index, root, args.filter))
        out["ndpi"] = s
        if not args.json:
            print_ndpi(s, limit)
            print()
    if "nfstream" in oracles:
        s = summarize_nfstream(nfstream_items(index, root, args.filter))
        out["nfstream"] = s
        if not args.json:
            print_nfstream(s, limit)
            print()
    if "packets" in oracles:
        rows = [r for r in index if not args.filter or args.filter in r["corpus_path"]]
        s = packet_count_check(rows)
        out["packets"] = s
        if not args.json:
            print(f"== packets_read vs INDEX: {s['checked']} complete files checked, "
                  f"{len(s['mismatches'])} mismatches, {len(s['scan_errors'])} scan errors, "
                  f"{len(s['outcome_sum_mismatches'])} outcome-sum mismatches")
            for t, exp, got in s["mismatches"][: limit if limit else None]:
                print(f"   {t}: INDEX {exp}, packets_read {got}")
            for t, e in s["scan_errors"][: limit if limit else None]:
                print(f"   SCAN ERROR {t}: {e}")
            for t, pr, oc in s["outcome_sum_mismatches"][: limit if limit else None]:
                print(f"   outcomes don't sum: {t}: packets_read {pr}, outcomes {oc}")
    if args.json:
        # compact the disagreement records for JSON consumers
        if "zeek" in out:
            out["zeek"]["disagreements"] = [
                {"trace": d["trace"], "baseline": d["baseline"], "kind": d["res"]["kind"],
                 "tuple": list(d["res"]["key"]), "fields": d["res"]["fields"],
                 "listed_as": [entries[i] for i in d["entries"]], "hints": d["hints"],
                 "zeek": d["res"]["baseline"], "ours": d["res"]["ours"]}
                for d in out["zeek"]["disagreements"]]
            out["zeek"]["unlisted"] = len(out["zeek"]["unlisted"])
        if "ndpi" in out:
            out["ndpi"]["disagreements"] = [
                {"trace": d["trace"], "kind": d["res"]["kind"],
                 "ndpi": {k: v for k, v in d["res"]["ndpi"].items() if k != "line"},
                 "ours_counts": d["res"]["ours_counts"], "fields": d["res"]["fields"],
                 "undirected_agree": d["res"]["undirected_agree"],
                 "ours_uids": d["res"]["ours"]["uids"] if d["res"]["ours"] else None}
                for d in out["ndpi"]["disagreements"]]
        if "nfstream" in out:
            out["nfstream"]["disagreements"] = [
                {"trace": it["trace"], "matched": it["cmp"]["matched"], "merged": it["cmp"]["merged"],
                 "total": it["cmp"]["total"],
                 "nfstream_only": sorted(it["cmp"]["missing"].elements()),
                 "ours_only": sorted(it["cmp"]["extra"].elements())}
                for it in out["nfstream"]["disagreements"]]
        json.dump(corpus.jsonable(out, counters_as_pairs=True), sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
