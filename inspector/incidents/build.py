"""Incident records: grouping (``grouping.py``) plus the figures, words and commands of each incident.

``build_incidents(alerts, flows, content, ...)`` is a pure function of its inputs (records as dicts);
``incidents_from_dir(out_dir, alerts, ...)`` reads the covered records back from a run's output folder.
"""
from __future__ import annotations

import hashlib
import os
import shlex
from typing import Iterable

import orjson

from ..outputs.schema import INCIDENTS
from ..policy.alerts import app_proto, endpoint_key, endpoint_list, mask_samples
from ..policy.view import FlowView
from .grouping import group_alerts, story_key
from .text import CHANNEL_LABELS, SEVERITY_NAMES, title

__all__ = ["INCIDENT_FIELDS", "build_incidents", "incidents_from_dir", "write_incidents", "iter_covered"]

#: the fields of an ``incidents.jsonl`` record, in order (declared in inspector/outputs/schema.py)
INCIDENT_FIELDS = INCIDENTS.names
#: detector figures copied from alert evidence into the incident's evidence (first alert that has them)
_DETECTOR_EVIDENCE = ("dns", "beacon", "icmp", "edi")


# ------------------------------------------------------------------------------------------------
# reading the covered records
# ------------------------------------------------------------------------------------------------

def _line_uid(line: bytes):
    """The ``uid`` of a JSON Lines record without parsing the whole line (None when absent)."""
    i = line.find(b'"uid":"')
    if i < 0:
        return None
    j = line.find(b'"', i + 7)
    return line[i + 7:j].decode("ascii", "replace") if j > 0 else None


def iter_covered(path: str, uids) -> Iterable[dict]:
    """The records of a JSON Lines file whose ``uid`` is in ``uids`` (a missing file or a bad line is
    skipped: incidents are built from what there is)."""
    try:
        fh = open(path, "rb")
    except OSError:
        return
    with fh:
        for line in fh:
            u = _line_uid(line)
            if u is None or u not in uids:
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                yield rec


def incidents_from_dir(out_dir: str, alerts: list, *, site=None, from_dir: str | None = None,
                       captures=()) -> list:
    """Incidents of the alerts of a run whose outputs are in ``out_dir`` (``flows.jsonl``,
    ``content.jsonl``, ``http.jsonl``, ``dns.jsonl``); ``from_dir`` is the folder named in the
    commands of ``next_steps`` (default ``out_dir``)."""
    uids = {u for a in alerts for u in (a.get("uids") or ())}

    def covered(stream: str):
        return iter_covered(os.path.join(out_dir, stream + ".jsonl"), uids)
    return build_incidents(alerts, covered("flows"), covered("content"), site=site, http=covered("http"),
                           dns=covered("dns"), from_dir=from_dir if from_dir is not None else out_dir,
                           captures=captures)


def write_incidents(path: str, incidents: Iterable[dict]) -> int:
    """``incidents.jsonl``: one record per incident in ``INCIDENT_FIELDS`` order, written atomically (the
    file exists, empty, when there is no incident)."""
    from ..outputs.writers import write_jsonl
    return write_jsonl(path, incidents, INCIDENTS)


# ------------------------------------------------------------------------------------------------
# building
# ------------------------------------------------------------------------------------------------

def build_incidents(alerts: list, flows: Iterable[dict] = (), content: Iterable[dict] = (), *, site=None,
                    http: Iterable[dict] = (), dns: Iterable[dict] = (), from_dir: str = "DIR",
                    captures=()) -> list:
    """Group ``alerts`` into incidents (sorted by severity, then records, then time) and set each alert's
    ``incident_id``.  ``flows`` / ``content`` / ``http`` / ``dns``: records (dicts) of the run; only
    those of covered flows are kept.  ``captures``: the run's inputs, named when flow records carry no
    ``capture`` field of their own."""
    alerts = [a for a in alerts if isinstance(a, dict) and isinstance(a.get("alert"), dict)]   # EVE alerts
    needed = {u for a in alerts for u in (a.get("uids") or ())}
    fvs: dict = {}
    flow_capture: dict = {}
    for rec in flows:
        u = rec.get("uid") if isinstance(rec, dict) else None
        if u in needed and u not in fvs:
            fvs[u] = FlowView(rec, site)
            cap = rec.get("capture")
            if cap:
                flow_capture[u] = cap
    contents = {rec["uid"]: rec for rec in content if isinstance(rec, dict) and rec.get("uid") in needed}
    methods: dict = {}
    for rec in http:
        m = rec.get("method")
        if isinstance(m, str) and m:
            methods.setdefault(rec.get("uid"), {}).setdefault(m.upper(), 0)
            methods[rec["uid"]][m.upper()] += 1
    queries: dict = {}
    for rec in dns:
        queries[rec.get("uid")] = queries.get(rec.get("uid"), 0) + 1

    for a in alerts:
        _complete_endpoints(a, fvs)
    ctx = _Context(fvs, contents, flow_capture, methods, queries, from_dir, list(captures or ()))
    incidents = []
    for g in group_alerts(alerts, fvs):
        incidents.append(_incident(g, alerts, ctx))
    incidents.sort(key=lambda i: (i["severity"], -_records_total(i), i["first_ts"] or 0.0, i["incident_id"]))
    owners: dict = {}
    for inc in incidents:
        for aid in inc["alert_ids"]:
            owners.setdefault(aid, []).append(inc["incident_id"])
    for a in alerts:
        ids = owners.get(a.get("alert_id"), [])
        a["incident_id"] = ids[0] if ids else None
        if len(ids) > 1:
            a["incident_ids"] = ids
    return incidents


class _Context:
    __slots__ = ("fvs", "contents", "flow_capture", "methods", "queries", "from_dir", "captures")

    def __init__(self, fvs, contents, flow_capture, methods, queries, from_dir, captures):
        self.fvs, self.contents, self.flow_capture = fvs, contents, flow_capture
        self.methods, self.queries, self.from_dir, self.captures = methods, queries, from_dir, captures


def _records_total(inc: dict) -> int:
    r = inc.get("records") or {}
    return int(r.get("customer") or 0) + int(r.get("shipment") or 0)


def _complete_endpoints(alert: dict, fvs: dict) -> None:
    """Rebuild ``endpoints`` from the flow records when the alert lists fewer flows than it covers (a
    DNS finding decided after its flows left the engine's cache, or alerts of an older run)."""
    have = sum(int(e.get("flows") or 0) for e in alert.get("endpoints") or ())
    covered = [fvs[u] for u in alert.get("uids") or () if u in fvs]
    if len(covered) <= have:
        return
    pairs: dict = {}
    for fv in covered:
        k = endpoint_key(fv)
        pairs[k] = pairs.get(k, 0) + 1
    alert["endpoints"] = endpoint_list(pairs)


def _distinct(uids: list, ctx: _Context) -> tuple:
    """DISTINCT ``records`` and ``data`` over the flows: the union of the salted hashes, plus what each
    connection counted past its hash bounds (and the counts of flows whose content record is not at hand)."""
    rec_sets = {"customer": set(), "shipment": set()}
    rec_extra = {"customer": 0, "shipment": 0}
    cls_sets: dict = {}
    cls_extra: dict = {}
    for u in uids:
        c = ctx.contents.get(u)
        if c is None:
            fv = ctx.fvs.get(u)
            if fv is None:
                continue
            for k in rec_extra:
                rec_extra[k] += int(fv.records.get(k) or 0)
            for cls, n in fv.data.items():
                if isinstance(n, (int, float)) and n:
                    cls_extra[cls] = cls_extra.get(cls, 0) + int(n)
            continue
        rh = c.get("record_hashes")
        more = c.get("record_hashes_more") or {}
        counts = c.get("records") or {}
        for k in rec_extra:
            if isinstance(rh, dict):
                rec_sets[k].update(rh.get(k) or ())
                rec_extra[k] += int(more.get(k) or 0)
            else:                   # content record of a run without record hashes: as counted
                rec_extra[k] += int(counts.get(k) or 0)
        hashes = c.get("hashes") or {}
        for cls, n in (c.get("data") or {}).items():
            if not isinstance(n, (int, float)) or not n:
                continue
            hs = hashes.get(cls) or ()
            cls_sets.setdefault(cls, set()).update(hs)
            if n > len(hs):
                cls_extra[cls] = cls_extra.get(cls, 0) + int(n) - len(hs)
    records = {k: len(rec_sets[k]) + rec_extra[k] for k in ("customer", "shipment")}
    data = {}
    for cls in sorted(set(cls_sets) | set(cls_extra)):
        n = len(cls_sets.get(cls, ())) + cls_extra.get(cls, 0)
        if n:
            data[cls] = n
    return records, data


def _destinations(flows: list, alerts: list) -> list:
    """``{name, addresses, org, asn, country, group, category}`` per destination, most bytes first."""
    acc: dict = {}
    for fv in flows:
        k = (fv.dst_name, fv.dst_org, fv.dst_asn, fv.dst_country, fv.dst_group, fv.dst_category)
        e = acc.get(k)
        if e is None:
            e = acc[k] = {"bytes": 0, "addresses": []}
        e["bytes"] += fv.bytes_out
        if fv.dst is not None and fv.dst not in e["addresses"]:
            e["addresses"].append(fv.dst)
    if not acc:                     # no flow record at hand: what the alerts say
        for a in alerts:
            d = a.get("destination") or {}
            k = (d.get("name"), d.get("org"), d.get("asn"), d.get("country"), d.get("group"), d.get("category"))
            e = acc.setdefault(k, {"bytes": 0, "addresses": []})
            e["bytes"] += int(a.get("bytes_out") or 0)
            if d.get("address") and d["address"] not in e["addresses"]:
                e["addresses"].append(d["address"])
    out = []
    for (name, org, asn, country, group, category), e in sorted(
            acc.items(), key=lambda kv: (-kv[1]["bytes"], tuple(str(x) for x in kv[0]))):
        out.append({"name": name, "addresses": sorted(e["addresses"]), "org": org, "asn": asn,
                    "country": country, "group": group, "category": category})
    return out


def _evidence(alerts: list, uids: list, ctx: _Context) -> dict:
    """Masked samples (from the alerts, then the content records) and the detectors' figures."""
    samples: dict = {}
    ev: dict = {}
    for a in alerts:
        e = a.get("evidence") or {}
        for cls, vals in (e.get("samples") or {}).items():
            samples.setdefault(cls, []).extend(vals or ())
        for k in _DETECTOR_EVIDENCE:
            if k in e and k not in ev:
                ev[k] = e[k]
    for u in uids:
        c = ctx.contents.get(u)
        if c is not None:
            for cls, vals in (c.get("samples") or {}).items():
                samples.setdefault(cls, []).extend(vals or ())
    out = {}
    masked = mask_samples(samples)
    if masked:
        out["samples"] = dict(sorted(masked.items()))
    out.update(ev)
    return out


def _why(g, alerts: list, inc: dict) -> list:
    """The facts that made these alerts one incident, in words."""
    own = [alerts[i] for i in g.alerts]
    by_sig: dict = {}
    for a in own:
        al = a.get("alert") or {}
        k = (al.get("severity"), al.get("signature_id"), al.get("signature"))
        e = by_sig.setdefault(k, {"n": 0, "thresholds": None, "why": None})
        e["n"] += 1
        if e["thresholds"] is None:
            e["thresholds"] = (a.get("evidence") or {}).get("thresholds")
        if e["why"] is None and a.get("score") is not None:
            e["why"] = a.get("why")         # a detector's score and figures, in words
    out = []
    if own:
        src, label, chan = story_key(own[0])
        name = CHANNEL_LABELS.get(chan, (chan.upper(), ""))[0]
        n_rules = len({k[1] for k in by_sig})
        out.append(f"{len(own)} alert{'s' if len(own) != 1 else ''} of {n_rules} rule{'s' if n_rules != 1 else ''} "
                   f"from {src} to {label} over {name}: one story (same source host, destination and channel)")
        if len(g.keys) > 1:
            out.append("alerts about the same connections were joined: "
                       + "; ".join(f"{k[0]} to {k[1]} over {k[2]}" for k in g.keys))
    for (sev, sid, text), e in sorted(by_sig.items(), key=lambda kv: (kv[0][0] or 9, kv[0][1] or 0)):
        th = e["thresholds"]
        figures = (" (" + ", ".join(f"{k} {v:,}" if isinstance(v, (int, float)) else f"{k} {v}"
                                     for k, v in th.items()) + ")") if isinstance(th, dict) and th else ""
        times = f", {e['n']} times" if e["n"] > 1 else ""
        out.append(f"[{SEVERITY_NAMES.get(sev, sev)}] {sid} {text}{figures}{times}"
                   + (f": {e['why']}" if e["why"] else ""))
    for i in g.attached:
        a = alerts[i]
        al = a.get("alert") or {}
        mine = sum(1 for u in a.get("uids") or () if g.has(u))
        out.append(f"[{SEVERITY_NAMES.get(al.get('severity'), al.get('severity'))}] {al.get('signature_id')} "
                   f"{al.get('signature')}: a site-wide total that {mine} of this incident's flows are part of "
                   f"({a.get('flows')} flows, {_records_total(a):,} records in all)")
    r = inc["records"]
    if r["customer"] or r["shipment"]:
        out.append(f"{r['customer']:,} distinct customer and {r['shipment']:,} distinct shipment records "
                   f"left in {inc['flows']:,} connection{'s' if inc['flows'] != 1 else ''}")
    return out


def _incident_id(g, first_uid) -> str:
    key = "|".join(sorted("/".join(str(x) for x in k) for k in g.keys)) + "|" + str(first_uid)
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _incident(g, alerts: list, ctx: _Context) -> dict:
    members = [alerts[i] for i in g.alerts] + [alerts[i] for i in g.attached]
    flows = sorted((ctx.fvs[u] for u in g.uids if u in ctx.fvs), key=lambda f: (f.ts, str(f.uid)))
    order = {f.uid: n for n, f in enumerate(flows)}
    uids = sorted(g.uids, key=lambda u: (order.get(u, len(order)), str(u)))
    first_uid = uids[0] if uids else None
    if flows:
        first_ts = min(f.ts for f in flows)
        last_ts = max(f.end for f in flows)
    else:
        first_ts = last_ts = None
    srcs = sorted({f.src for f in flows if f.src} or {a.get("src_ip") for a in members if a.get("src_ip")})
    records, data = _distinct(uids, ctx)
    apps = []
    for a in [alerts[i] for i in g.alerts]:
        p = a.get("app_proto") or (a.get("proto") or "").lower() or None
        if p and p not in apps:
            apps.append(p)
    for f in flows:
        p = app_proto(f) or f.proto
        if p and p not in apps:
            apps.append(p)
    caps = sorted({c for u in uids for c in ([ctx.flow_capture[u]] if isinstance(ctx.flow_capture.get(u), str)
                                             else ctx.flow_capture.get(u) or [])})
    if not caps:
        caps = list(ctx.captures)
    inc = {
        "incident_id": _incident_id(g, first_uid),
        "first_ts": first_ts,
        "last_ts": last_ts,
        "severity": min(int((a.get("alert") or {}).get("severity") or 4) for a in members) if members else 4,
        "title": "",
        "src_hosts": srcs,
        "destinations": _destinations(flows, members),
        "signature_ids": sorted({(a.get("alert") or {}).get("signature_id") for a in members} - {None}),
        "alert_ids": [a.get("alert_id") for a in members],
        "uids": uids,
        "flows": len(uids),
        "bytes_out": sum(f.bytes_out for f in flows),
        "bytes_in": sum(f.bytes_in for f in flows),
        "records": records,
        "data": data,
        "payload_types": sorted({t for f in flows for t in f.payload_types if t}),
        "app_protos": apps,
        "captures": caps,
        "evidence": _evidence(members, uids, ctx),
        "why": [],
        "next_steps": [],
    }
    if first_ts is None:            # no flow record at hand: the alerts' own figures
        inc["bytes_out"] = sum(int(a.get("bytes_out") or 0) for a in members)
        inc["bytes_in"] = sum(int(a.get("bytes_in") or 0) for a in members)
    exchanges = {"http_methods": {}, "dns_queries": 0}
    for u in uids:
        for m, n in (ctx.methods.get(u) or {}).items():
            exchanges["http_methods"][m] = exchanges["http_methods"].get(m, 0) + n
        exchanges["dns_queries"] += ctx.queries.get(u, 0)
    dns_ev = inc["evidence"].get("dns")
    if isinstance(dns_ev, dict) and isinstance(dns_ev.get("queries"), int):
        exchanges["dns_queries"] = max(exchanges["dns_queries"], dns_ev["queries"])
    inc["title"] = title(inc, exchanges)
    inc["why"] = _why(g, alerts, inc)
    inc["next_steps"] = _next_steps(inc, flows, ctx.from_dir)
    return inc


def _next_steps(inc: dict, flows: list, from_dir: str) -> list:
    """The commands that take the investigation further: the packets, the largest connection told as a
    story, an evidence pack."""
    d = shlex.quote(from_dir)
    iid = inc["incident_id"]
    steps = [f"inspector carve --from {d} --incident {iid} -o {iid}.pcapng"]
    if flows:
        top = max(flows, key=lambda f: (f.bytes_out, -f.ts))
        steps.append(f"inspector explain {top.uid} --from {d}")
    elif inc["uids"]:
        steps.append(f"inspector explain {inc['uids'][0]} --from {d}")
    steps.append(f"inspector evidence --incident {iid} --from {d} -o {iid}.zip")
    return steps
