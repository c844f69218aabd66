"""Alert records, Suricata EVE style, and the evidence they carry.

One alert per finding (``alerts.jsonl``, one JSON object per line)::

    {"timestamp": "2025-11-25T09:30:00.000000+0000", "event_type": "alert",
     "src_ip": "172.20.1.10", "src_port": 36083, "dest_ip": "192.0.2.80", "dest_port": 80,
     "proto": "TCP", "app_proto": "http", "community_id": "1:2j6W...",
     "uids": ["CGtfVK4Bh9r2i7ByEg"],
     "alert": {"action": "allowed", "gid": 1, "signature_id": 1000001, "rev": 1,
               "signature": "...", "category": "...", "severity": 2,
               "metadata": {"severity_name": ["high"], "rule": ["customer-records-to-unlisted"], ...}},
     "destination": {"name", "address", "country", "asn", "org", "group", "category", "allowed"},
     "data": {"email": 120, ...}, "records": {"customer": 120, "shipment": 120},
     "bytes_out": 59224, "bytes_in": 171, "flows": 1,
     "evidence": {"samples": {"email": ["a***@e***.org", ...]}, ...},
     "site": "dc-north"}

* ``src_*`` is the local side (the host data left from), ``dest_*`` the remote
  side, whichever side opened the connection.  For findings over several
  flows the addresses, ports and ``community_id`` are those of the most recent
  flow; ``uids`` lists every flow the finding covers, ``flows`` counts them and
  ``window`` (``start``, ``end``, ``group``) says which window and group key.
* ``endpoints`` lists every endpoint pair the finding covers, not only the
  representative flow's: ``{src_ip, dest_ip, dest_port, proto, flows}`` (local
  side first, ephemeral source ports left out), most flows first.
* ``alert_id`` identifies the alert (a hash of its rule, time, window and
  flows: the same input gives the same id); ``incident_id`` names the incident
  it belongs to (``inspector.incidents``; set when incidents are built, at the
  end of a scan or at a rotation of ``live``), and a site-wide aggregate that
  sums the flows of several incidents also lists them all in ``incident_ids``.
* ``capture`` is the input file the earliest covered flow came from (its first
  packet's file, as given to ``scan``), ``captures`` every input file the
  covered flows came from, sorted: what ``inspector carve`` reads back.
* ``why`` says in words what made the finding: a detector's score and the
  facts behind it, or the figures a threshold rule met; ``score`` (0-1) is
  there for detector findings.
* ``data`` and ``records`` are the content fields of the covered flows, summed
  over flows (a per-flow distinct count, summed).
* ``evidence.samples`` are the masked samples of ``content.jsonl`` for the
  covered flows (at most 3 per class), masked again here so that raw values
  never reach an alert, even when ``--show-raw`` wrote them to content.jsonl.
  Detectors add their own figures (``evidence.dns``, ``evidence.beacon``,
  ``evidence.icmp``); DNS query names are shown with their encoded labels
  masked.
"""
from __future__ import annotations

import hashlib
import time

from ..protocols import contributions
from ..severity import severity_name

__all__ = ["iso_timestamp", "Cover", "build_alert", "mask_samples", "window_object", "write_alerts", "summary_lines",
           "MAX_UIDS", "SAMPLES_PER_CLASS", "app_proto", "alert_id", "endpoint_key", "endpoint_list", "threshold_words"]

SAMPLES_PER_CLASS = 3
MAX_UIDS = 1000          # uids kept per finding; alert["uids_truncated"] counts the rest
MAX_DESTINATIONS = 1000

#: Zeek service names -> Suricata app_proto names.


def iso_timestamp(t: float | None) -> str | None:
    """Epoch seconds -> ``2025-11-25T09:30:00.123456+0000`` (UTC; Suricata's EVE layout)."""
    if t is None:
        return None
    sec = int(t // 1)
    usec = int(round((t - sec) * 1_000_000))
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{usec:06d}+0000"


def window_object(w, seconds, group_by) -> dict:
    """The alert's ``window`` object for a closed window ``w`` (:class:`~inspector.policy.window.Window`):
    its start, length, the group it aggregated (``group_by`` names -> ``w.key`` values) and
    ``closed_early`` when it was evicted before its end."""
    key = w.key if isinstance(w.key, tuple) else (w.key,)
    return {"start": iso_timestamp(w.start), "seconds": seconds, "group": dict(zip(group_by, key)),
            **({"closed_early": True} if w.evicted else {})}


def mask_samples(samples) -> dict:
    """``{class: [values]}`` -> the same, every value masked (idempotent on masked values)."""
    from ..content.identifiers import mask
    out = {}
    if not isinstance(samples, dict):
        return out
    for cls, vals in samples.items():
        if not isinstance(vals, (list, tuple)):
            continue
        masked = []
        for v in vals:
            if v is None:
                continue
            m = mask(str(cls), str(v))
            if m not in masked:
                masked.append(m)
            if len(masked) >= SAMPLES_PER_CLASS:
                break
        if masked:
            out[str(cls)] = masked
    return out


def endpoint_key(fv) -> tuple:
    """The endpoint pair of a flow as alerts list it: (local host, remote host, remote port, proto)."""
    return (fv.src, fv.dst, fv.dst_port, (fv.proto or "").upper() or None)


def endpoint_list(pairs: dict) -> list:
    """``{endpoint_key: flows}`` -> the ``endpoints`` of an alert, most flows first."""
    return [{"src_ip": s, "dest_ip": d, "dest_port": p, "proto": pr, "flows": n}
            for (s, d, p, pr), n in sorted(pairs.items(), key=lambda kv: (-kv[1], tuple(map(str, kv[0]))))]


def alert_id(alert: dict) -> str:
    """A stable id for an alert: its rule, time, window, local/remote hosts and flows hashed (16 hex digits).
    The same input and settings give the same id; two findings of one rule never share one."""
    a = alert.get("alert") or {}
    w = alert.get("window") or {}
    parts = [str(a.get("signature_id")), str(alert.get("timestamp")), str(alert.get("src_ip")),
             str(alert.get("dest_ip")), str(w.get("start")), repr(sorted((w.get("group") or {}).items())),
             ",".join(map(str, alert.get("uids") or ()))]
    return hashlib.sha256("|".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def app_proto(fv) -> str | None:
    """EVE ``app_proto`` of a flow: what the protocol modules declare for its services."""
    if fv is None:
        return None
    return contributions().app_proto_of(fv.services)


class Cover:
    """The flows one finding covers: uids, totals, content evidence, the representative (latest) flow."""

    __slots__ = ("uids", "n_uids", "_uid_set", "flows", "bytes_out", "bytes_in", "packets_out", "packets_in",
                 "duration", "edm_rows", "data", "records", "samples", "edi", "first_ts", "last_ts", "rep", "dsts",
                 "extra", "pairs", "captures", "_first")

    def __init__(self):
        self.uids: list = []
        self._uid_set: set = set()
        self.n_uids = 0
        self.flows = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.packets_in = 0
        self.duration = 0.0
        self.edm_rows = 0
        self.data: dict = {}
        self.records: dict = {}
        self.samples: dict = {}
        self.edi: dict = {}
        self.first_ts = None
        self.last_ts = None
        self.rep = None
        self.dsts: set = set()
        self.extra: dict = {}
        self.pairs: dict = {}         # endpoint_key -> flows
        self.captures: set = set()  # input files the covered flows came from
        self._first = None          # (ts, uid, capture) of the earliest covered connection

    def add_uid(self, uid, capture=None, ts=None) -> None:
        """Cover connection ``uid``; ``capture``/``ts`` (its input file and start) feed ``capture``
        and ``captures``, which do not depend on the order connections are added in."""
        if capture is not None:
            if len(self.captures) < MAX_UIDS:
                self.captures.add(capture)
            key = (ts if ts is not None else float("inf"), uid or "", capture)
            if self._first is None or key < self._first:
                self._first = key
        if uid is None or uid in self._uid_set:
            return
        self.n_uids += 1
        if len(self.uids) < MAX_UIDS:
            self.uids.append(uid)
            self._uid_set.add(uid)

    def first_capture(self):
        """The input file of the earliest covered connection (None when no capture is known)."""
        return self._first[2] if self._first is not None else None

    def add_time(self, ts: float) -> None:
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def add_pair(self, fv) -> None:
        """Count ``fv``'s endpoint pair (at most ``MAX_UIDS`` distinct pairs are kept)."""
        k = endpoint_key(fv)
        if k in self.pairs or len(self.pairs) < MAX_UIDS:
            self.pairs[k] = self.pairs.get(k, 0) + 1

    def add_flow(self, fv, content: dict | None = None) -> None:
        self.flows += 1
        self.add_uid(fv.uid, fv.rec.get("capture"), fv.ts)
        self.add_pair(fv)
        self.add_time(fv.ts)
        if self.rep is None or fv.ts >= self.rep.ts:
            self.rep = fv
        self.bytes_out += fv.bytes_out
        self.bytes_in += fv.bytes_in
        self.packets_out += fv.packets_out
        self.packets_in += fv.packets_in
        self.duration += fv.duration
        if fv.edm:
            self.edm_rows += int(sum(v for v in fv.edm.values() if isinstance(v, (int, float))))
        rec = fv.records
        if fv.data or rec.get("customer") or rec.get("shipment"):
            self._add_counts(fv.data, rec)
        if len(self.dsts) < MAX_DESTINATIONS and fv.dst is not None:
            self.dsts.add(fv.dst)
        if content:
            self.add_content(content)

    def _add_counts(self, data: dict, records: dict) -> None:
        d = self.data
        for k, v in data.items():
            if isinstance(v, (int, float)) and v:
                d[k] = d.get(k, 0) + int(v)
        r = self.records
        for k in ("customer", "shipment"):
            v = (records or {}).get(k)
            if isinstance(v, (int, float)) and v:
                r[k] = r.get(k, 0) + int(v)

    def add_content_totals(self, content: dict) -> None:
        """Count a content record's ``data``/``records`` for a flow whose flow record is not at hand."""
        self._add_counts(content.get("data") or {}, content.get("records") or {})
        self.add_content(content)

    def add_content(self, content: dict) -> None:
        """Merge a cached content summary (already masked: see ``engine.content_summary``)."""
        for cls, vals in (content.get("samples") or {}).items():
            have = self.samples.setdefault(cls, [])
            for v in vals:
                if len(have) >= SAMPLES_PER_CLASS:
                    break
                if v not in have:
                    have.append(v)
        for k, v in (content.get("edi_counts") or {}).items():
            if isinstance(v, (int, float)):
                self.edi[k] = self.edi.get(k, 0) + int(v)

    def evidence(self) -> dict:
        ev = {}
        if self.samples:
            ev["samples"] = mask_samples(self.samples)
        if self.edi:
            ev["edi"] = dict(sorted(self.edi.items()))
        ev.update(self.extra)
        return ev


def build_alert(rule, cover: Cover, *, ts: float | None = None, site_name: str | None = None,
                src_ip=None, src_port=None, dest_ip=None, dest_port=None, proto=None, app=None,
                destination: dict | None = None, window: dict | None = None, thresholds: dict | None = None,
                score: float | None = None, why: str | None = None) -> dict:
    """One EVE alert record for ``rule`` over ``cover``; keyword overrides win over the representative flow.
    ``score`` (detectors: 0-1) and ``why`` (the facts behind the finding, in words) go in the record as
    given; a rule without a detector gets ``why`` from its thresholds."""
    rep = cover.rep
    t = ts if ts is not None else (cover.last_ts if cover.last_ts is not None else (rep.ts if rep else None))
    dest = destination if destination is not None else (rep.destination() if rep is not None else
                                                        {"name": None, "address": dest_ip, "country": None,
                                                         "asn": None, "org": None, "group": None,
                                                         "category": None, "allowed": False})
    p = proto if proto is not None else (rep.proto if rep is not None else None)
    meta = {"severity_name": [rule.severity_name]}
    if rule.name:
        meta["rule"] = [rule.name]
    if rule.references:
        meta["references"] = list(rule.references)
    alert = {
        "timestamp": iso_timestamp(t),
        "event_type": "alert",
        "src_ip": src_ip if src_ip is not None else (rep.src if rep else None),
        "src_port": src_port if src_port is not None else (rep.src_port if rep else None),
        "dest_ip": dest_ip if dest_ip is not None else (rep.dst if rep else None),
        "dest_port": dest_port if dest_port is not None else (rep.dst_port if rep else None),
        "proto": p.upper() if isinstance(p, str) else p,
        "app_proto": app if app is not None else app_proto(rep),
        "community_id": rep.community_id if rep is not None else None,
        "uids": list(cover.uids),
        "endpoints": endpoint_list(cover.pairs),
        "capture": cover.first_capture(),
        "captures": sorted(cover.captures),
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": rule.id,
            "rev": rule.rev,
            "signature": rule.message,
            "category": rule.category,
            "severity": rule.severity,
            "metadata": meta,
        },
        "destination": dest,
        "data": dict(sorted(cover.data.items())),
        "records": {"customer": int(cover.records.get("customer", 0)),
                    "shipment": int(cover.records.get("shipment", 0))},
        "bytes_out": int(cover.bytes_out),
        "bytes_in": int(cover.bytes_in),
        "flows": cover.flows,
        "evidence": cover.evidence(),
    }
    if cover.n_uids > len(cover.uids):
        alert["uids_truncated"] = cover.n_uids - len(cover.uids)
    if thresholds:
        alert["evidence"]["thresholds"] = thresholds
    if score is not None:
        alert["score"] = score
    alert["why"] = why if why is not None else threshold_words(rule, cover, thresholds)
    if window is not None:
        alert["window"] = window
    if site_name is not None:
        alert["site"] = site_name
    alert["alert_id"] = alert_id(alert)
    alert["incident_id"] = None
    return alert


def _num_words(v) -> str:
    """12,345 or 76.9 (numbers as a sentence shows them)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def threshold_words(rule, cover: Cover, shown: dict | None) -> str:
    """``why`` of a threshold rule: the figures it met, against its thresholds, in words."""
    n = cover.flows
    who = ""
    rep = cover.rep
    if rep is not None:
        who = f"{n} flow{'s' if n != 1 else ''} from {rep.src} to {rep.dst_name or rep.dst}"
    limits = getattr(rule, "aggregate", None)
    limits = limits.threshold if limits is not None else getattr(rule, "threshold", {}) or {}
    facts = []
    for metric, value in (shown or {}).items():
        lo, hi = limits.get(metric, (None, None))
        v = _num_words(value)
        if hi is not None and lo is None:
            facts.append(f"{metric} {v} (at most {_num_words(hi)})")
        elif lo is not None:
            facts.append(f"{metric} {v} (at least {_num_words(lo)})")
        else:
            facts.append(f"{metric} {v}")
    return (who + (": " if who and facts else "") + ", ".join(facts)) or rule.message


def write_alerts(path: str, alerts) -> int:
    """Write ``alerts.jsonl``: one JSON object per line, atomic (temp file + rename); the file is
    written (empty) when there is no alert, so that consumers can rely on it."""
    import os

    import orjson
    tmp = path + ".tmp"
    n = 0
    with open(tmp, "wb") as fh:
        for a in alerts:
            fh.write(orjson.dumps(a, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS))
            n += 1
    os.replace(tmp, path)
    return n


def summary_lines(alerts) -> list:
    """Terminal summary: ``alerts N: high 3, medium 1`` then the most frequent signatures."""
    from collections import Counter

    alerts = list(alerts)
    if not alerts:
        return ["  alerts 0"]
    by_sev = Counter(a["alert"]["severity"] for a in alerts)
    lines = [f"  alerts {len(alerts):,}: " + ", ".join(f"{severity_name(s)} {n:,}"
                                                      for s, n in sorted(by_sev.items()))]
    by_sig = Counter((a["alert"]["severity"], a["alert"]["signature_id"], a["alert"]["signature"]) for a in alerts)
    for (sev, sid, text), n in sorted(by_sig.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))[:8]:
        lines.append(f"    [{severity_name(sev)}] {sid} {text[:70]} ({n:,})")
    return lines
