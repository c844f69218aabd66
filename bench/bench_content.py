#!/usr/bin/env python3
"""Content-stage throughput: the identifier prefilter against a plain-``re`` baseline.

Builds ``--mb`` MB (default 200) of realistic mixed outbound payloads, deterministically from
``--seed``: JSON shipment arrays, CSV customer exports, HTML pages, EDIFACT IFTMIN interchanges,
and binary chunks (random = encrypted, zlib = compressed).  Then times, payload by payload:

  (a) ``Prefilter(engine="hyperscan").regions``          (when hyperscan imports)
  (b) ``Prefilter(engine="re").regions``                 (the pure-Python fallback)
  (b2) ``Prefilter(engine="re2").regions``               (when google-re2 imports)
  (c) a plain ``re`` baseline: one ``findall`` per identifier regex over every payload
  (d) when ``inspector/content/identifiers.py`` exists: the pipeline prefilter -> ``identifiers.scan``
      on each region; and, on the first ``--full-scan-mb`` MB only, ``identifiers.scan`` on whole
      payloads, with the share of its findings the region pipeline also finds (recall).
  (f) the whole content stage (``ContentStage.body``: typing, archive/codec/structured decoders where
      magic or structure calls for them, records, identifiers) on the first ``--stage-mb`` MB, the
      cost a leaving body pays end to end.

Prints a table (or JSON with ``--json``).  All prefilter engines must give identical regions; the
run says so (``regions_equal``) and exits 1 when they differ.

Usage:  python bench/bench_content.py [--mb 200] [--seed 7] [--runs 1] [--json]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import re
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inspector.content.prefilter import Prefilter, available_engines  # noqa: E402

# ------------------------------------------------------------------------------------------------
# identifiers with valid check digits

FIRST = ("Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Karin", "Lukas",
         "Marta", "Niklas", "Olga", "Paul", "Rosa", "Simon", "Tanja", "Uwe", "Vera", "Willem", "Yara", "Zoe",
         "James", "Mary", "Robert", "Linda", "Pierre", "Camille", "Jan", "Sanne", "Piotr", "Agnieszka")
LAST = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Smith",
        "Johnson", "Brown", "Taylor", "Dubois", "Martin", "de Vries", "Jansen", "Kowalski", "Nowak", "Rossi")
STREETS = ("Hauptstraße", "Bahnhofstraße", "Industriestraße", "High Street", "Station Road", "Rue de la Paix",
           "Kerkstraat", "Marktplatz", "Logistikweg", "Harbour Way", "Ulica Długa", "Via Roma")
CITIES = (("DE", "Hamburg", "20095"), ("DE", "München", "80331"), ("GB", "London", "EC1A 1BB"),
          ("NL", "Rotterdam", "3011 AA"), ("FR", "Lyon", "69002"), ("PL", "Gdańsk", "80-001"),
          ("IT", "Milano", "20121"), ("US", "Memphis", "38118"))
DOMAINS = ("example.com", "mail.example.de", "logistics.example.nl", "customer.example.co.uk", "shop.example.fr")
WORDS = ("the", "of", "and", "to", "in", "warehouse", "delivery", "order", "service", "our", "for", "with",
         "shipping", "returns", "customers", "fast", "reliable", "network", "partner", "solutions", "contact",
         "about", "news", "careers", "quality", "pallet", "storage", "fulfilment", "europe", "today")


def s10(rng) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(8))
    w = (8, 6, 4, 2, 3, 5, 9, 7)
    c = 11 - sum(int(d) * k for d, k in zip(body, w)) % 11
    c = 0 if c == 10 else 5 if c == 11 else c
    return rng.choice(("RR", "CP", "EE", "LX", "RA")) + body + str(c) + rng.choice(("DE", "GB", "NL", "FR"))


def gs1(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def sscc(rng) -> str:
    return gs1("3" + "".join(rng.choice("0123456789") for _ in range(16)))


def gtin13(rng) -> str:
    return gs1("40" + "".join(rng.choice("0123456789") for _ in range(10)))


def ups(rng) -> str:
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(6)) + "01" + \
        "".join(rng.choice("0123456789") for _ in range(7))
    total = 0
    for i, ch in enumerate(body):
        v = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += v * (2 if i % 2 else 1)
    return "1Z" + body + str((10 - total % 10) % 10)


def iban(rng, cc="DE") -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    num = "".join(str(int(c, 36)) for c in bban + cc + "00")
    return f"{cc}{98 - int(num) % 97:02d}{bban}"


def phone(rng) -> str:
    return rng.choice(("+49 40 ", "+44 20 ", "+31 10 ", "+33 4 ", "+1 901 ")) + \
        f"{rng.randrange(1000, 9999)} {rng.randrange(1000, 9999)}"


def person(rng):
    f, l = rng.choice(FIRST), rng.choice(LAST)
    email = f"{f.lower()}.{l.lower().replace(' ', '').replace('ü', 'ue')}{rng.randrange(100)}@{rng.choice(DOMAINS)}"
    return f, l, email


# ------------------------------------------------------------------------------------------------
# payload generators (each returns bytes of roughly the requested size)

def gen_json(rng, size: int) -> bytes:
    recs = []
    approx = 0
    while approx < size:
        f, l, email = person(rng)
        cc, city, pc = rng.choice(CITIES)
        rec = {
            "shipment_id": f"SHP-{rng.randrange(10**9):09d}",
            "created": f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:00:00Z",
            "consignee": {"name": f"{f} {l}", "street": f"{rng.choice(STREETS)} {rng.randrange(1, 200)}",
                          "postcode": pc, "city": city, "country": cc, "phone": phone(rng), "email": email},
            "tracking": rng.choice((ups(rng), s10(rng))),
            "sscc": sscc(rng),
            "items": [{"gtin": gtin13(rng), "qty": rng.randrange(1, 20), "hs_code": f"{rng.randrange(100000, 999999)}",
                       "weight_kg": round(rng.uniform(0.1, 30), 2)} for _ in range(rng.randrange(1, 4))],
            "status": rng.choice(("created", "picked", "packed", "shipped")),
        }
        recs.append(rec)
        approx += 420 + 110 * len(rec["items"])
    return json.dumps(recs, ensure_ascii=False).encode("utf-8")


def gen_csv(rng, size: int) -> bytes:
    rows = ["customer_id,first_name,last_name,email,phone,street,postcode,city,country,iban,created_at"]
    n = 0
    while n < size:
        f, l, email = person(rng)
        cc, city, pc = rng.choice(CITIES)
        row = (f"C{rng.randrange(10**7):07d},{f},{l},{email},{phone(rng)},\"{rng.choice(STREETS)} {rng.randrange(1, 200)}\","
               f"{pc},{city},{cc},{iban(rng, 'DE' if cc == 'DE' else 'NL')},2024-{rng.randrange(1, 13):02d}-01")
        rows.append(row)
        n += len(row) + 1
    return ("\n".join(rows) + "\n").encode("utf-8")


def gen_html(rng, size: int) -> bytes:
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Logistics portal</title>",
             "<link rel=\"stylesheet\" href=\"/static/site.css\"><script src=\"/static/app.js\"></script></head><body>",
             "<nav><ul>" + "".join(f"<li><a href=\"/{w}\">{w.title()}</a></li>" for w in WORDS[5:15]) + "</ul></nav>"]
    n = sum(map(len, parts))
    while n < size:
        k = rng.random()
        if k < 0.7:
            p = "<p>" + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(20, 80))) + ".</p>"
        elif k < 0.85:
            p = "<div class=\"card\"><h3>" + rng.choice(WORDS).title() + "</h3><span class=\"price\">" + \
                f"{rng.randrange(1, 999)}.{rng.randrange(100):02d} EUR</span></div>"
        elif k < 0.95:
            p = "<script>window.dataLayer=window.dataLayer||[];dataLayer.push({'event':'view','id':" + \
                f"{rng.randrange(10**6)}" + "});</script>"
        else:
            f, l, email = person(rng)
            p = f"<footer>Contact: <a href=\"mailto:{email}\">{email}</a> phone {phone(rng)}</footer>"
        parts.append(p)
        n += len(p)
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")


def gen_edifact(rng, size: int) -> bytes:
    segs = ["UNA:+.? '", f"UNB+UNOC:3+SENDER{rng.randrange(1000)}:ZZ+RECEIVER:ZZ+250101:1200+{rng.randrange(10**6)}'"]
    n = 0
    m = 0
    while n < size:
        m += 1
        f, l, _ = person(rng)
        cc, city, pc = rng.choice(CITIES)
        msg = [f"UNH+{m}+IFTMIN:D:04A:UN'", f"BGM+610+{rng.randrange(10**8)}+9'", "DTM+137:202501011200:203'",
               "NAD+CZ+++Warehouse North+Industriestrasse 5+Hamburg++20095+DE'",
               f"NAD+CN+++{f} {l}+{rng.choice(STREETS)} {rng.randrange(1, 200)}+{city}++{pc}+{cc}'",
               f"CTA+IC+:{f} {l}'", f"COM+{phone(rng).replace(' ', '')}:TE'",
               f"GID+1+{rng.randrange(1, 9)}:PK'", f"MEA+AAE+G+KGM:{rng.randrange(1, 900)}'",
               "PCI+33E'", f"GIN+BJ+{sscc(rng)}'", f"RFF+CU:{s10(rng)}'"]
        msg.append(f"UNT+{len(msg) + 1}+{m}'")
        segs.extend(msg)
        n += sum(map(len, msg))
    segs.append(f"UNZ+{m}+1'")
    return "\n".join(segs).encode("latin-1", "replace")


def gen_binary(rng, size: int) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(size)                        # encrypted-looking
    return zlib.compress(gen_json(rng, size * 3), 6)[:size]  # compressed


KINDS = (("json", gen_json, 0.30, (20_000, 300_000)), ("csv", gen_csv, 0.20, (50_000, 600_000)),
         ("html", gen_html, 0.20, (10_000, 150_000)), ("binary", gen_binary, 0.20, (4_000, 256_000)),
         ("edifact", gen_edifact, 0.10, (2_000, 60_000)))


def build_corpus(total_mb: float, seed: int) -> list[tuple[str, bytes]]:
    """Mixed payloads totalling about ``total_mb`` MB; unique payloads up to 64 MB, then repeated (the
    scanners keep no state between payloads, so repetition does not flatter them)."""
    rng = random.Random(seed)
    target = int(total_mb * 1e6)
    unique_target = min(target, 64_000_000)
    payloads: list[tuple[str, bytes]] = []
    have = {k: 0 for k, *_ in KINDS}
    total = 0
    while total < unique_target:
        # the kind furthest below its share
        kind, gen, share, (lo, hi) = min(KINDS, key=lambda k: have[k[0]] / k[2])
        hi = max(2, min(hi, unique_target // 20))   # small corpora still get every kind
        lo = min(lo, hi // 2)
        size = min(rng.randrange(lo, hi), max(1000, unique_target - total))
        p = gen(rng, size)
        payloads.append((kind, p))
        have[kind] += len(p)
        total += len(p)
    i = 0
    unique = len(payloads)
    while total < target:
        kind, p = payloads[i % unique]
        payloads.append((kind, p))
        total += len(p)
        i += 1
    return payloads


# ------------------------------------------------------------------------------------------------
# baseline: every identifier regex, one findall each

BASELINE = {
    "email": rb"[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}",
    "tracking_ups": rb"1[Zz](?: ?[0-9A-Za-z]){16}",
    "tracking_s10": rb"\b[A-Z]{2}\d{9}[A-Z]{2}\b",
    "sscc": rb"(?<!\d)(?:\(00\))?\d{18}(?!\d)",
    "gtin": rb"(?<!\d)\d{13,14}(?!\d)",
    "payment_card": rb"(?<!\d)\d{4}[ \-]?\d{4}[ \-]?\d{4}[ \-]?\d{1,4}(?!\d)",
    "iban": rb"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
    "phone": rb"\+ ?[1-9](?:[ \-.]?\(?\d\)?){6,16}",
    "eori": rb"\b(?:AT|BE|DE|DK|ES|FR|GB|IE|IT|NL|PL|SE|XI)[0-9A-Z]{8,15}\b",
    "hs_code": rb"(?i)(?:hs[ _\-]?code|tariff)[\"':=\s]{0,4}\d{4}(?:[ .]?\d{2}){1,3}",
    "edifact_message": rb"UNH\+[^+']{1,14}\+[A-Z]{6}:",
    "x12_transaction": rb"ST\*\d{3}\*",
    "gs1_ai": rb"\((?:00|01|02|10|17|21|41[0-5]|42[01])\)\d{2,18}",
    "keywords": rb"(?i)consignee|consignor|recipient|shipper|street|postcode|postal[ _\-]?code|zip[ _\-]?code|"
                rb"phone|e-?mail|eori|hs[ _\-]?code|tariff|address|surname|first[ _\-]?name|last[ _\-]?name",
}


def baseline_scan(patterns, payload: bytes) -> int:
    return sum(len(p.findall(payload)) for p in patterns)


# ------------------------------------------------------------------------------------------------

def _time(fn, payloads, runs: int, per_kind: dict | None = None):
    """Best total seconds over ``runs`` runs, the outputs, and (into ``per_kind``) seconds by kind."""
    best = None
    out = None
    clock = time.perf_counter
    for _ in range(max(1, runs)):
        kinds: dict[str, float] = {}
        res = []
        t_all = clock()
        for k, p in payloads:
            t0 = clock()
            res.append(fn(p))
            kinds[k] = kinds.get(k, 0.0) + clock() - t0
        dt = clock() - t_all
        if best is None or dt < best:
            best, out = dt, res
            if per_kind is not None:
                per_kind.clear()
                per_kind.update(kinds)
    return best, out


def _head(payloads, mb: float):
    """The first payloads up to ``mb`` MB, and their size in bytes."""
    sample, n = [], 0
    for kp in payloads:
        if n >= mb * 1e6:
            break
        sample.append(kp)
        n += len(kp[1])
    return sample, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200.0, help="payload megabytes to build (default 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1, help="runs per engine; the best is reported")
    ap.add_argument("--pad", type=int, default=64)
    ap.add_argument("--full-scan-mb", type=float, default=10.0,
                    help="MB on which identifiers.scan also runs on whole payloads (recall check)")
    ap.add_argument("--stage-mb", type=float, default=10.0,
                    help="MB run through the whole content stage (ContentStage.body)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    payloads = build_corpus(args.mb, args.seed)
    build_s = time.perf_counter() - t0
    total = sum(len(p) for _k, p in payloads)
    mb = total / 1e6
    by_kind: dict[str, int] = {}
    for k, p in payloads:
        by_kind[k] = by_kind.get(k, 0) + len(p)

    rows = []
    engines = available_engines()
    regions_by_engine = {}
    for eng in ("hyperscan", "re2", "re"):
        if eng not in engines:
            continue
        pf = Prefilter(engine=eng)
        pf.regions(b"warm up consignee +44 20 7946 0958")
        kinds: dict[str, float] = {}
        secs, regions = _time(lambda p, pf=pf: pf.regions(p, pad=args.pad), payloads, args.runs, kinds)
        regions_by_engine[eng] = regions
        covered = sum(e - s for rs in regions for s, e in rs)
        label = {"hyperscan": "(a) prefilter, hyperscan", "re2": "(b2) prefilter, re2 + re",
                 "re": "(b) prefilter, re fallback"}[eng]
        rows.append({"name": label, "engine": eng, "seconds": secs, "mb_s": mb / secs,
                     "regions": sum(len(r) for r in regions), "coverage": covered / total,
                     "mb_s_by_kind": {k: by_kind[k] / 1e6 / t for k, t in kinds.items() if t > 0}})

    compiled = [re.compile(p) for p in BASELINE.values()]
    kinds = {}
    secs, counts = _time(lambda p: baseline_scan(compiled, p), payloads, args.runs, kinds)
    rows.append({"name": f"(c) re baseline, {len(compiled)} findall", "engine": "re-baseline", "seconds": secs,
                 "mb_s": mb / secs, "matches": sum(counts),
                 "mb_s_by_kind": {k: by_kind[k] / 1e6 / t for k, t in kinds.items() if t > 0}})

    equal = True
    ref = None
    for eng, regs in regions_by_engine.items():
        if ref is None:
            ref = regs
        elif regs != ref:
            equal = False

    recall = None
    ident_path = ROOT / "inspector" / "content" / "identifiers.py"
    if ident_path.exists():
        try:
            identifiers = importlib.import_module("inspector.content.identifiers")
            pf = Prefilter()

            def pipeline(p, pf=pf):
                found: dict[str, set] = {}
                for s, e in pf.regions(p, pad=args.pad):
                    for cls, vals in identifiers.scan(p[s:e]).items():
                        found.setdefault(cls, set()).update(vals)
                return found

            kinds = {}
            secs, found = _time(pipeline, payloads, 1, kinds)
            rows.append({"name": f"(d) prefilter ({pf.engine}) -> identifiers.scan", "engine": "pipeline",
                         "seconds": secs, "mb_s": mb / secs,
                         "values": sum(len(v) for f in found for v in f.values()),
                         "mb_s_by_kind": {k: by_kind[k] / 1e6 / t for k, t in kinds.items() if t > 0}})
            # whole-payload scan on a sample, and how much of it the region pipeline finds
            sample, n = _head(payloads, args.full_scan_mb)
            if sample:
                kinds = {}
                secs, whole = _time(lambda p: identifiers.scan(p), sample, 1, kinds)
                sample_kind: dict[str, int] = {}
                for k, p in sample:
                    sample_kind[k] = sample_kind.get(k, 0) + len(p)
                rows.append({"name": f"(e) identifiers.scan, whole payloads ({n / 1e6:.0f} MB sample)",
                             "engine": "identifiers", "seconds": secs, "mb_s": n / 1e6 / secs,
                             "values": sum(len(v) for f in whole for v in f.values()),
                             "mb_s_by_kind": {k: sample_kind[k] / 1e6 / t for k, t in kinds.items() if t > 0}})
                hit = tot = 0
                per_class: dict[str, list] = {}
                for w, f in zip(whole, found[:len(sample)]):
                    for cls, vals in w.items():
                        got = len(vals & f.get(cls, set()))
                        hit += got
                        tot += len(vals)
                        pc = per_class.setdefault(cls, [0, 0])
                        pc[0] += got
                        pc[1] += len(vals)
                recall = {"overall": hit / tot if tot else None,
                          "per_class": {c: (h / t if t else None) for c, (h, t) in sorted(per_class.items())}}
        except Exception as e:  # another helper's module: report, do not die
            rows.append({"name": "(d) identifiers pipeline", "engine": "pipeline", "error": repr(e)})

    try:
        from inspector.content.stage import ContentFlow, ContentStage
        stage = ContentStage()
        sample, n = _head(payloads, args.stage_mb)

        def through_stage(p, stage=stage):
            cf = ContentFlow()
            stage.body(cf, {"source": "http"}, p)
            return sum(len(v) for v in cf.values.values())

        kinds = {}
        sample_kind: dict[str, int] = {}
        for k, p in sample:
            sample_kind[k] = sample_kind.get(k, 0) + len(p)
        secs, vals = _time(through_stage, sample, 1, kinds)
        rows.append({"name": f"(f) ContentStage.body ({n / 1e6:.0f} MB sample)", "engine": "stage",
                     "seconds": secs, "mb_s": n / 1e6 / secs, "values": sum(vals),
                     "mb_s_by_kind": {k: sample_kind[k] / 1e6 / t for k, t in kinds.items() if t > 0}})
    except Exception as e:  # an older checkout without the stage: report, do not die
        rows.append({"name": "(f) ContentStage.body", "engine": "stage", "error": repr(e)})

    result = {
        "mb": mb, "payloads": len(payloads), "by_kind_mb": {k: v / 1e6 for k, v in by_kind.items()},
        "build_seconds": build_s, "seed": args.seed, "pad": args.pad, "runs": args.runs,
        "engines_available": engines, "regions_equal": equal, "rows": rows, "identifier_recall": recall,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{mb:.1f} MB in {len(payloads)} payloads ("
              + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in by_kind.items()) + f" MB), built in {build_s:.1f} s")
        print(f"{'':48s} {'seconds':>9s} {'MB/s':>9s}  notes")
        for r in rows:
            if "error" in r:
                print(f"{r['name']:48s} {'-':>9s} {'-':>9s}  {r['error']}")
                continue
            note = ""
            if "regions" in r:
                note = f"{r['regions']} regions, {100 * r['coverage']:.1f}% of bytes"
            elif "matches" in r:
                note = f"{r['matches']} matches"
            elif "values" in r:
                note = f"{r['values']} values"
            print(f"{r['name'][:48]:48s} {r['seconds']:9.2f} {r['mb_s']:9.1f}  {note}")
        kinds_order = [k for k, *_ in KINDS if k in by_kind]
        print()
        print(f"{'MB/s by payload kind':48s} " + " ".join(f"{k:>9s}" for k in kinds_order))
        for r in rows:
            if "mb_s_by_kind" in r:
                print(f"{r['name'][:48]:48s} " + " ".join(f"{r['mb_s_by_kind'].get(k, 0):9.1f}" for k in kinds_order))
        print()
        print(f"prefilter engines give identical regions: {equal}")
        if recall:
            print("identifier recall of the region pipeline vs whole-payload scan: "
                  + (f"{100 * recall['overall']:.1f}%" if recall["overall"] is not None else "n/a")
                  + "  (" + ", ".join(f"{c} {100 * v:.0f}%" for c, v in recall["per_class"].items()
                                       if v is not None) + ")")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
