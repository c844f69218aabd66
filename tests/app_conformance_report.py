#!/usr/bin/env python3
"""Application-layer conformance report: inspector's protocol logs vs. the corpus oracles.

    python tests/app_conformance_report.py [--json] [--oracle zeek,suricata,ndpi]
                                           [--filter SUBSTR] [--field GLOB] [--limit N]
                                           [--summary] [--unlisted]

Compares, for every capture that has the oracle:

* Zeek ``ssl.log`` / ``http.log`` / ``dns.log`` / ``quic.log`` baselines
  (and their zeek-cut files): rows matched to our ``tls`` / ``http`` /
  ``dns`` / ``quic`` records within the same connection (either direction;
  uid -> 5-tuple through our flows), then paired by fewest differing values.
  Fields: ssl.server_name, http.host, http.method, http.uri, dns.query,
  dns.answers (as a set per query), quic.server_name.
* Suricata-verify ``test.yaml`` checks (newest-version alternative) with
  tls.sni, http.hostname, http.http_method, dns query rrname, dns answers
  rdata, quic server_name: at least one record of ours on the connection
  the check names must carry the value.
* Zeek ``conn.log`` of non-bare tests: ``service`` (restricted to the
  services our analyzers can name) against our flow ``service``; measured,
  not asserted (zeek.conn.service).
* nDPI ``.out`` flows: Hostname/SNI (TLS/QUIC/HTTP/DNS masters) among the
  names our records give for the flow, and the master protocol mapped onto
  our flow ``service`` (the table lives in tests/test_conformance_app.py).

Each disagreement is looked up in tests/data/app_disagreements.yaml.  The
test suite (tests/test_conformance_app.py) imports these functions, so what
this prints is what the tests assert on.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _p in (str(_HERE.parent), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import conformance_report as cr  # noqa: E402  (shared scan cache, inspector_available)
import corpus  # noqa: E402

APP_DISAGREEMENTS_YAML = _HERE / "data" / "app_disagreements.yaml"

ORACLES = ("zeek", "suricata", "ndpi")


# --------------------------------------------------------------------------
# Our side, cached per capture
# --------------------------------------------------------------------------

_VIEW_CACHE: dict[str, tuple[str, Any]] = {}


def view_for(path: str | Path) -> dict:
    """``corpus.our_app_view`` of ``run_scan([path])`` (scan cached in conformance_report)."""
    key = str(path)
    if key not in _VIEW_CACHE:
        try:
            res = cr.scan(key)
            _VIEW_CACHE[key] = ("ok", corpus.our_app_view(list(res.flows), dict(res.logs or {})))
        except Exception as exc:  # noqa: BLE001 - cached and re-raised
            _VIEW_CACHE[key] = ("err", exc)
    st, val = _VIEW_CACHE[key]
    if st == "err":
        raise val
    return val


def _empty_view() -> dict:
    return corpus.our_app_view([], {})


def _rel(p: Path | str, root: Path) -> str:
    try:
        return str(Path(p).relative_to(root))
    except ValueError:
        return str(p)


def _view_or_error(row: dict) -> tuple[dict, str | None]:
    try:
        return view_for(row["abspath"]), None
    except Exception as exc:  # noqa: BLE001
        return _empty_view(), f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------
# Items: one per (capture, oracle file)
# --------------------------------------------------------------------------

def zeek_items(index: list[dict], root: Path, filt: str | None = None) -> list[dict]:
    items = []
    for row, log, path in corpus.zeek_app_baselines(index, root):
        bl = _rel(path, root)
        if filt and filt not in row["corpus_path"] and filt not in bl:
            continue
        base = corpus.zeek_app_records(path, log)
        view, err = _view_or_error(row)
        items.append({"oracle": "zeek", "trace": row["corpus_path"], "baseline": bl, "log": log,
                      "n_baseline": len(base), "error": err,
                      "results": corpus.compare_zeek_app(log, base, view)})
    return items


def suricata_items(index: list[dict], root: Path, filt: str | None = None) -> list[dict]:
    items = []
    for row, path, exps in corpus.suricata_app_tests(index, root):
        bl = _rel(path, root)
        if filt and filt not in row["corpus_path"] and filt not in bl:
            continue
        view, err = _view_or_error(row)
        items.append({"oracle": "suricata", "trace": row["corpus_path"], "baseline": bl,
                      "n_baseline": len(exps), "error": err,
                      "results": corpus.compare_suricata_app(exps, view)})
    return items


def zeek_service_items(index: list[dict], root: Path, filt: str | None = None, *,
                       known_services) -> list[dict]:
    """conn.log ``service`` of non-bare Zeek tests (bare-mode tests fill it only for the
    analyzers their script loaded) vs our flow service."""
    items = []
    for row, path in corpus.zeek_conn_baselines(index, root):
        bl = _rel(path, root)
        if filt and filt not in row["corpus_path"] and filt not in bl:
            continue
        if corpus.zeek_test_is_bare(row, path) is not False:
            continue
        base = corpus.read_zeek_log(path)
        try:
            flows = list(cr.scan(row["abspath"]).flows)
            err = None
        except Exception as exc:  # noqa: BLE001
            flows, err = [], f"{type(exc).__name__}: {exc}"
        items.append({"oracle": "zeek-conn", "trace": row["corpus_path"], "baseline": bl,
                      "n_baseline": len(base), "error": err,
                      "results": corpus.compare_zeek_service(base, flows, known_services)})
    return items


def ndpi_items(index: list[dict], root: Path, filt: str | None = None, *, service_map: dict,
               hostname_masters, known_services, tolerated: dict | None = None) -> list[dict]:
    items = []
    for row in index:
        if row["source"] != "ndpi":
            continue
        outs = [p for p in corpus.oracle_paths(row, root) if p.name.endswith(".out")]
        if not outs or (filt and filt not in row["corpus_path"]):
            continue
        nd = corpus.parse_ndpi_out(outs[0])
        if not any(f["ip_proto"] in corpus.PORTED and f["master"] not in (None, "Unknown") for f in nd):
            continue
        view, err = _view_or_error(row)
        res = corpus.compare_ndpi_app(nd, view, service_map, hostname_masters, known_services,
                                      tolerated)
        items.append({"oracle": "ndpi", "trace": row["corpus_path"], "baseline": _rel(outs[0], root),
                      "n_baseline": len(res), "error": err, "results": res})
    return items


# --------------------------------------------------------------------------
# Flattening: per-field counts + disagreement records
# --------------------------------------------------------------------------

def _show(v: Any) -> Any:
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    return corpus.norm_val(v)


def flatten(items: list[dict]) -> tuple[Counter, Counter, list[dict]]:
    """(compared per field, agreeing per field, disagreement records).

    A disagreement record: oracle, trace, baseline, field ('<oracle>.<log>.<field>'),
    key, kind ('value' | 'missing' | 'extra' | 'no-flow'), expected, ours, context.
    Zeek 'extra' rows (records of ours the baseline lacks) are disagreements
    of the pseudo-field 'zeek.<log>.extra' and are not part of any agreement figure.
    """
    cmp_, eq = Counter(), Counter()
    dis = []
    for it in items:
        o = it["oracle"]
        for r in it["results"]:
            if o == "zeek":
                log = r["log"]
                if r["kind"] == "extra":
                    ours = r["ours"] or {}
                    dis.append({"oracle": o, "trace": it["trace"], "baseline": it["baseline"],
                                "field": f"zeek.{log}.extra", "key": r["key"], "kind": "extra",
                                "expected": None,
                                "ours": {f: _show(ours.get(f)) for f in corpus.ZEEK_APP_FIELDS[log]},
                                "context": {"uid": ours.get("uid")}})
                    continue
                for f in corpus.ZEEK_APP_FIELDS[log]:
                    name = f"zeek.{log}.{f}"
                    cmp_[name] += 1
                    if f not in r["diff"]:
                        eq[name] += 1
                        continue
                    b = r["base"]
                    ours = r["ours"]
                    dis.append({"oracle": o, "trace": it["trace"], "baseline": it["baseline"],
                                "field": name, "key": r["key"], "kind": r["kind"],
                                "expected": _show(b.get(f)),
                                "ours": _show(ours.get(f)) if ours is not None else None,
                                "context": _zeek_context(log, b, ours, r.get("ours_log"))})
            elif o == "suricata":
                name = f"suricata.{r['field']}"
                cmp_[name] += 1
                if r["kind"] == "agree":
                    eq[name] += 1
                    continue
                x = r["exp"]
                dis.append({"oracle": o, "trace": it["trace"], "baseline": it["baseline"],
                            "field": name, "key": r["key"], "kind": r["kind"],
                            "expected": _show(x["value"]), "ours": [_show(v) for v in r["ours_values"]],
                            "context": {"event_type": x["event_type"], "check": x["check"],
                                        "count": x["count"], "query": x["query"],
                                        "rrtypes": x["rrtypes"]}})
            elif o == "zeek-conn":
                name = "zeek.conn.service"
                cmp_[name] += 1
                if r["kind"] == "agree":
                    eq[name] += 1
                    continue
                dis.append({"oracle": "zeek", "trace": it["trace"], "baseline": it["baseline"],
                            "field": name, "key": r["key"], "kind": r["kind"],
                            "expected": r["expected"], "ours": r["ours"], "context": {}})
            else:
                name = f"ndpi.{r['field']}"
                names = [name]
                if r["field"] == "service":
                    names.append("ndpi.service.mapped" if r["mapped"] else "ndpi.service.unmapped")
                for n in names:
                    cmp_[n] += 1
                    eq[n] += r["kind"] == "agree"
                if r["kind"] == "agree":
                    continue
                a = r["app"]
                dis.append({"oracle": o, "trace": it["trace"], "baseline": it["baseline"],
                            "field": name, "key": r["key"], "kind": r["kind"],
                            "expected": r["expected"], "ours": r["ours"],
                            "context": {"master": a["master"], "app": a["app"],
                                        "confidence": a["confidence"], "hostname": a["hostname"],
                                        "alpn": a["alpn"], "mapped": r["mapped"]}})
    return cmp_, eq, dis


def _zeek_context(log: str, b: dict, ours: dict | None, ours_log: str | None) -> dict:
    ctx = {"uid": b.get("uid")}
    for f in ("version", "established", "trans_depth", "status_code", "qtype_name", "rcode_name",
              "trans_id", "client_protocol"):
        if f in b:
            ctx[f] = _show(b.get(f))
    if ours is not None:
        ctx["ours_uid"] = ours.get("uid")
        if ours_log and ours_log != corpus.ZEEK_APP_LOGS[log]:
            ctx["ours_log"] = ours_log
    return ctx


def summarize(items: list[dict], entries: list[dict]) -> dict:
    """Per-field agreement and the disagreements, each with the yaml entries covering it.

    Entries with ``exclude: true`` take the disagreements they cover out of
    the agreement figures (the oracle does not apply there, e.g. a Zeek test
    script that alters the log); the figures are then ``agree / (compared -
    excluded)``.  ``raw_agreement`` keeps them in.
    """
    cmp_, eq, dis = flatten(items)
    used: set[int] = set()
    excluded = Counter()
    for d in dis:
        cover = [i for i, e in enumerate(entries)
                 if corpus.app_entry_covers(e, d["trace"], d["field"], d["key"], d.get("baseline"))]
        d["entries"] = cover
        used.update(cover)
        if any(entries[i].get("exclude") for i in cover) and d["kind"] != "extra":
            excluded[d["field"]] += 1
            if d["field"] == "ndpi.service":
                excluded["ndpi.service.mapped" if d["context"]["mapped"] else "ndpi.service.unmapped"] += 1
    per_field = {}
    for f in sorted(cmp_):
        n, e, x = cmp_[f], eq[f], excluded[f]
        per_field[f] = {"compared": n, "agree": e, "excluded": x,
                        "agreement": e / (n - x) if n - x else 1.0,
                        "raw_agreement": e / n if n else 1.0}
    traces = {it["trace"] for it in items}
    stale = [e for i, e in enumerate(entries) if i not in used and
             any(fnmatchcase(t, str(e.get("trace", ""))) for t in traces)]
    kinds = Counter((d["field"], d["kind"]) for d in dis)
    return {
        "captures": len(traces),
        "oracle_files": len(items),
        "per_field": per_field,
        "kinds": {f"{f} {k}": v for (f, k), v in sorted(kinds.items())},
        "scan_errors": sorted({(it["trace"], it["error"]) for it in items if it["error"]}),
        "disagreements": dis,
        "unlisted": [d for d in dis if not d["entries"]],
        "stale_entries": stale,
    }


def collect(index: list[dict], root: Path, oracles=ORACLES, filt: str | None = None,
            ndpi_args: dict | None = None) -> list[dict]:
    items: list[dict] = []
    if ndpi_args is None and ("ndpi" in oracles or "zeek" in oracles):
        ndpi_args = default_ndpi_args()
    if "zeek" in oracles:
        items += zeek_items(index, root, filt)
        items += zeek_service_items(index, root, filt, known_services=ndpi_args["known_services"])
    if "suricata" in oracles:
        items += suricata_items(index, root, filt)
    if "ndpi" in oracles:
        items += ndpi_items(index, root, filt, **ndpi_args)
    return items


def default_ndpi_args() -> dict:
    """The nDPI mapping tables, defined in tests/test_conformance_app.py."""
    import test_conformance_app as T  # lazy: the test module imports this one
    return {"service_map": T.NDPI_SERVICE_MAP, "hostname_masters": T.NDPI_HOSTNAME_MASTERS,
            "known_services": T.KNOWN_SERVICES, "tolerated": T.NDPI_TOLERATED}


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _fmt(v: Any, width: int = 200) -> str:
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        s = "[" + ", ".join(_fmt(x, width) for x in v) + "]" if v else "(empty)"
    else:
        s = str(v)
    return s if len(s) <= width else s[:width - 3] + "..."


def print_summary(s: dict, entries: list[dict], asserted: dict | None = None, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"== app-layer conformance: {s['captures']} captures, {s['oracle_files']} oracle files")
    p(f"   {'field':32s} {'agree':>7s}/{'compared':<8s} {'agreement':>9s}  (raw, excluded)")
    for f, d in s["per_field"].items():
        mark = ""
        if asserted and f in asserted:
            mark = "  OK" if d["agreement"] >= asserted[f] else f"  BELOW {_pct(asserted[f])}"
        p(f"   {f:32s} {d['agree']:7d}/{d['compared']:<8d} {_pct(d['agreement']):>9s}  "
          f"({_pct(d['raw_agreement'])}, {d['excluded']}){mark}")
    n = len(s["disagreements"])
    p(f"   disagreements {n} (listed {n - len(s['unlisted'])}, UNLISTED {len(s['unlisted'])}); "
      f"stale yaml entries {len(s['stale_entries'])}")
    for t, e in s["scan_errors"]:
        p(f"   SCAN ERROR {t}: {e}")


def _group(dis: list[dict]) -> list[list[dict]]:
    """Consecutive disagreements about the same oracle record (e.g. the host, method and
    uri of one missing http.log row) as one group."""
    groups: list[list[dict]] = []
    for d in dis:
        g = groups[-1] if groups else None
        if g and d["oracle"] == "zeek" and g[0]["oracle"] == "zeek" and all(
                g[0][k] == d[k] for k in ("trace", "baseline", "key", "kind")) and \
                g[0]["context"].get("uid") == d["context"].get("uid") and \
                g[0]["field"].rsplit(".", 1)[0] == d["field"].rsplit(".", 1)[0] and \
                d["field"] not in {x["field"] for x in g}:
            g.append(d)
        else:
            groups.append([d])
    return groups


def print_disagreements(s: dict, entries: list[dict], limit: int | None, field_glob: str | None = None,
                        unlisted_only: bool = False, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    dis = s["unlisted"] if unlisted_only else s["disagreements"]
    if field_glob:
        dis = [d for d in dis if fnmatchcase(d["field"], field_glob)]
    if limit == 0 or not dis:
        return
    p("")
    p("-- disagreements: baseline vs ours --")
    groups = _group(dis)
    for n, g in enumerate(groups):
        if limit is not None and n >= limit:
            p(f"   ... {len(groups) - limit} more")
            break
        d = g[0]
        idx = sorted({i for x in g for i in x["entries"]})
        tag = ",".join(str(entries[i].get("class")) for i in idx) or "UNLISTED"
        fields = ",".join(x["field"].rsplit(".", 1)[1] for x in g) if len(g) > 1 else d["field"]
        if len(g) > 1:
            fields = g[0]["field"].rsplit(".", 1)[0] + ".{" + fields + "}"
        p(f"* [{d['kind']}] {fields}  {d['trace']}  {d['key']}  ({tag})")
        if d["oracle"] == "zeek":
            p(f"    baseline {d['baseline']}")
        for x in g:
            lab = x["field"].rsplit(".", 1)[1] + ": " if len(g) > 1 else ""
            p(f"    {lab}{d['oracle']} {_fmt(x['expected'])}  |  ours {_fmt(x['ours'])}")
        ctx = {k: v for k, v in d["context"].items() if v not in (None, [], "")}
        if ctx:
            p(f"    context  {_fmt(json.dumps(corpus.jsonable(ctx)), 300)}")
        for i in idx:
            p(f"    listed: {entries[i].get('class')}: {_fmt(entries[i].get('reason'), 300)}")
    if s["stale_entries"]:
        p("")
        p("-- stale yaml entries (cover no disagreement any more) --")
        for e in s["stale_entries"]:
            p(f"   {e.get('trace')} {e.get('field')} {e.get('key')}")


def main(argv: list[str] | None = None) -> int:
    ap = corpus.report_parser(__doc__, ",".join(ORACLES), "comma list of zeek,suricata,ndpi",
                              "only captures (or oracle files) whose corpus path contains this",
                              "max disagreements printed (0: summary only)")
    ap.add_argument("--field", help="only disagreements whose field matches this glob, e.g. 'zeek.dns.*'")
    ap.add_argument("--unlisted", action="store_true", help="print only disagreements not in the yaml")
    args = ap.parse_args(argv)
    root, limit, status = corpus.report_setup(args, cr.inspector_available)
    if status is not None:
        return status
    index = corpus.load_index(root)
    entries = corpus.load_disagreements(APP_DISAGREEMENTS_YAML) if APP_DISAGREEMENTS_YAML.exists() else []
    items = collect(index, root, tuple(args.oracle.split(",")), args.filter)
    s = summarize(items, entries)
    try:
        import test_conformance_app as T
        asserted = {f: T.MIN_AGREEMENT for f in T.ASSERTED_FIELDS}
    except Exception:  # noqa: BLE001
        asserted = None
    if args.json:
        out = dict(s)
        dis = s["disagreements"]
        if args.field:
            dis = [d for d in dis if fnmatchcase(d["field"], args.field)]
        out["disagreements"] = [dict({k: v for k, v in d.items() if k != "entries"},
                                     listed_as=[entries[i] for i in d["entries"]]) for d in dis]
        out["unlisted"] = len(s["unlisted"])
        json.dump(corpus.jsonable(out), sys.stdout, indent=1)
        print()
        return 0
    print_summary(s, entries, asserted)
    print_disagreements(s, entries, limit, args.field, args.unlisted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
