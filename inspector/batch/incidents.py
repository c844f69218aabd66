"""Incidents of the nightly batch: the alerts of one night, over every capture of every host, grouped
into stories by the same rules as ``scan`` (``inspector.incidents``).

A batch scans each capture on its own, so one story (a host uploading manifests all night) is spread
over many captures and alerts. ``rebuild(store, since)`` takes, for each night from ``since`` on that
has alerts, every alert of the night (policy alerts of each capture and the baseline alerts), the flow
records they cover (read back from each capture's Parquet file) and the stored evidence of those
connections (content records with salted record hashes, HTTP methods, DNS queries), builds the
incidents with ``build_incidents`` (records counted DISTINCT across captures), and replaces the
night's rows of the ``incidents`` table and each alert's ``incident_id`` in one transaction.

The commands of ``next_steps`` name what a batch keeps: each capture's path. Batch scans a capture
alone, so ``inspector scan CAPTURE`` with the batch's settings gives the same connection uids, and
the carve and explain commands work on that folder.
"""
from __future__ import annotations

import json
import os
import shlex

import pyarrow.parquet as pq

from ..incidents import build_incidents
from ..outputs.schema import FLOWS
from .store import eve_json

__all__ = ["rebuild", "night_incidents", "flow_records"]

_MAPS = tuple(f.name for f in FLOWS.arrow_schema() if str(f.type).startswith("map<"))


def flow_records(store, sha256: str, uids) -> list:
    """The flow records (``flows.jsonl`` shape) of ``uids`` in one capture's Parquet file."""
    path = store.parquet_path(sha256)
    want = sorted(set(uids))
    if not want or not os.path.exists(path):
        return []
    try:
        table = pq.read_table(path, columns=list(FLOWS.names), filters=[("uid", "in", want)])
    except (OSError, ValueError):
        return []
    out = []
    for rec in table.to_pylist():
        for name in _MAPS:
            v = rec.get(name)
            if isinstance(v, list):
                rec[name] = dict(v)
        out.append(rec)
    return out


def _evidence(store, pairs: list) -> tuple:
    """content records, HTTP method records and DNS query records of (capture, uid) pairs."""
    content, http, dns = [], [], []
    if not pairs:
        return content, http, dns
    con = store.con
    con.execute("CREATE OR REPLACE TEMP TABLE _want (capture_sha256 VARCHAR, uid VARCHAR)")
    con.executemany("INSERT INTO _want VALUES (?, ?)", pairs)
    rows = con.execute("SELECT e.uid, e.content, e.http_methods, e.dns_queries FROM evidence e "
                       "JOIN _want w USING (capture_sha256, uid) ORDER BY e.uid").fetchall()
    con.execute("DROP TABLE _want")
    for uid, c, methods, queries in rows:
        if c:
            content.append(json.loads(c))
        for m, n in (json.loads(methods) if methods else {}).items():
            http.extend({"uid": uid, "method": m} for _ in range(int(n)))
        dns.extend({"uid": uid} for _ in range(int(queries or 0)))
    return content, http, dns


def night_incidents(store, night, site=None) -> tuple:
    """(incidents, alerts) of one night: the alerts as EVE dicts (with ``_db_id``, their row's id, and
    an ``alert_id``: their own, else the row's) carrying, after grouping, their ``incident_id``."""
    rows = store.query("SELECT alert_id, capture_sha256, eve FROM alerts WHERE night = ? "
                       "ORDER BY ts NULLS LAST, alert_id", [night])
    alerts, by_capture = [], {}
    for alert_id, sha, eve in rows:
        a = json.loads(eve)
        a["_db_id"] = alert_id
        a.setdefault("alert_id", alert_id)      # baseline alerts carry none of their own
        alerts.append(a)
        if sha:
            by_capture.setdefault(sha, set()).update(a.get("uids") or ())
    flows, pairs = [], []
    for sha, uids in sorted(by_capture.items()):
        flows.extend(flow_records(store, sha, uids))
        pairs.extend((sha, u) for u in sorted(uids))
    content, http, dns = _evidence(store, pairs)
    incidents = build_incidents(alerts, flows, content, site=site, http=http, dns=dns, from_dir="CASE")
    where = {}
    for rec in flows:
        if isinstance(rec.get("capture"), str):
            where.setdefault(rec["capture"], set()).add(rec.get("uid"))
    for inc in incidents:
        inc["next_steps"] = next_steps(inc, where)
    return incidents, alerts


def next_steps(inc: dict, where: dict) -> list:
    """Per capture of the incident (``where``: capture path -> uids of the flows read from it): re-scan it
    alone, as batch did (so the connections get the same uids), and carve its connections; then the
    largest connection told as a story."""
    iid = inc["incident_id"]
    mine = set(inc.get("uids") or ())
    caps = [(c, [u for u in inc["uids"] if u in where[c]]) for c in sorted(where) if where[c] & mine]
    steps = []
    for n, (cap, uids) in enumerate(caps, 1):
        case = f"case-{iid}" + (f"-{n}" if len(caps) > 1 else "")
        steps.append(f"inspector scan {shlex.quote(cap)} --out {case}")
        steps.append(f"inspector carve --from {case} " + " ".join(f"--uid {shlex.quote(u)}" for u in uids)
                     + f" -o {case}.pcapng")
    if caps:
        case = f"case-{iid}" + ("-1" if len(caps) > 1 else "")
        steps.append(f"inspector explain {shlex.quote(caps[0][1][0])} --from {case}")
    return steps


def rebuild(store, since=None, site=None) -> tuple:
    """Rebuild the incidents of every night from ``since`` on (every night when None) that has alerts
    or incidents.  Returns (nights, incidents)."""
    con = store.con
    where, params = ("WHERE night >= ?", [since, since]) if since is not None else ("", [])
    nights = [r[0] for r in con.execute(f"SELECT night FROM alerts {where} UNION SELECT night FROM incidents "
                                        f"{where} ORDER BY 1", params).fetchall()]
    total = 0
    for night in nights:
        incidents, alerts = night_incidents(store, night, site)
        with store.transaction():
            con.execute("DELETE FROM incidents WHERE night = ?", [night])
            if incidents:
                con.executemany(
                    "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[night, i["incident_id"], i["severity"], i["first_ts"], i["last_ts"], i["title"],
                      i["records"]["customer"], i["records"]["shipment"], i["flows"], i["bytes_out"],
                      json.dumps(i, default=str)] for i in incidents])
            con.executemany("UPDATE alerts SET incident_id = ?, eve = ? WHERE alert_id = ?",
                            [[a.get("incident_id"), eve_json(_stored_eve(a)),
                              a["_db_id"]] for a in alerts])
        total += len(incidents)
    return len(nights), total


def _stored_eve(a: dict) -> dict:
    """The EVE record as stored, now with its ``incident_id``."""
    eve = dict(a)
    eve.pop("_db_id", None)
    return eve
