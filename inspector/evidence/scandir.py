"""A scan's output folder read back, and the connections an investigator asks for.

``ScanDir`` reads ``flows.jsonl``, the protocol logs, ``alerts.jsonl``, ``incidents.jsonl`` and
``stats.json`` of one ``inspector scan --out DIR`` (files are streamed; only the records asked
for are kept).  ``select`` turns ``--uid``/``--alert``/``--incident`` into a ``Selection``:
the connections themselves, plus what belongs with them:

* an FTP control connection brings its data connections (the PORT/PASV/EPRT/EPSV replies in
  ``ftp.jsonl`` name the data channel's responder address and port; the ``ftp-data`` flow to
  that address and port opened after the command is the channel);
* with ``with_dns``, the DNS exchanges that named each destination: the latest ``dns.jsonl``
  answer at or before the connection's start that holds the destination address (and, when
  the connection has a ``dst_name``, whose query is that name or a name CNAME-chained to it).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from . import EvidenceError

#: Flow fields a selection keeps per connection (flows.jsonl can be large).
FLOW_KEEP = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
             "orig_bytes", "resp_bytes", "conn_state", "history", "orig_pkts", "resp_pkts", "tunnel_parents",
             "ip_proto", "community_id", "vlan", "inner_vlan", "direction", "capture", "dst_name",
             "dst_name_source", "dst_country", "dst_asn", "dst_org", "dst_group", "dst_category", "dst_allowed",
             "ech", "facts", "payload_type", "payload_types", "app_bytes_out", "data", "records")


def iter_jsonl(path: str):
    """Records of a JSON Lines file (none when it does not exist); lines that are not JSON
    objects are skipped; an unreadable file is an EvidenceError."""
    from ..report.html import iter_jsonl as records
    if not os.path.exists(path):
        return
    try:
        yield from records(path)
    except OSError as e:
        raise EvidenceError(f"{path}: cannot read: {e.strerror or e}")


@dataclass
class Selection:
    """The connections to carve, explain or pack, in the order asked, with why each is there."""
    uids: list = field(default_factory=list)          # every connection, asked-for first
    flows: dict = field(default_factory=dict)         # uid -> flow record (FLOW_KEEP fields)
    labels: dict = field(default_factory=dict)        # uid -> "incident X" / "alert Y" / "" (what asked for it)
    related: dict = field(default_factory=dict)       # uid -> (relation, uid it belongs to) for added flows
    dns_ids: dict = field(default_factory=dict)       # DNS uid -> set of transaction ids to keep (None: all)
    dns_records: list = field(default_factory=list)   # the dns.jsonl records that named the destinations
    incidents: list = field(default_factory=list)     # incident records asked for
    alerts: list = field(default_factory=list)        # alert records asked for (or in the incidents)

    def add(self, uid: str, label: str = "", related=None) -> bool:
        if uid in self.labels:
            return False
        self.uids.append(uid)
        self.labels[uid] = label
        if related is not None:
            self.related[uid] = related
        return True


class ScanDir:
    """One scan's output folder."""

    def __init__(self, path: str):
        self.path = path
        if not os.path.isdir(path):
            raise EvidenceError(f"{path}: no such output directory (give the --out folder of a scan)")
        if not os.path.exists(self.file("flows.jsonl")):
            raise EvidenceError(f"{path}: no flows.jsonl here: not the output folder of an inspector scan")
        self._stats = None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def has(self, name: str) -> bool:
        return os.path.exists(self.file(name))

    def records(self, name: str):
        return iter_jsonl(self.file(name))

    @property
    def stats(self) -> dict:
        if self._stats is None:
            try:
                with open(self.file("stats.json"), encoding="utf-8") as fh:
                    self._stats = json.load(fh)
            except FileNotFoundError:
                self._stats = {}
            except (OSError, ValueError) as e:
                raise EvidenceError(f"{self.file('stats.json')}: unreadable: {e}")
        return self._stats

    def capture_files(self) -> list:
        """The inputs of the scan in the order it read them: [{path, format, packets_read, ...}]."""
        return [f for f in self.stats.get("files") or () if isinstance(f, dict) and f.get("path")]

    def flows(self, uids) -> dict:
        """uid -> flow record for the given uids (one pass over flows.jsonl)."""
        want = set(uids)
        out = {}
        for rec in self.records("flows.jsonl"):
            uid = rec.get("uid")
            if uid in want:
                out[uid] = {k: rec.get(k) for k in FLOW_KEEP}
                if len(out) == len(want):
                    break
        return out

    def find(self, name: str, key: str, value: str) -> dict | None:
        for rec in self.records(name):
            if rec.get(key) == value:
                return rec
        return None

    def log_lines(self, uids) -> dict:
        """Protocol log name -> its records about these connections (every ``*.jsonl`` except
        flows, alerts, incidents, weird and content, which are read on their own)."""
        want = set(uids)
        out = {}
        skip = {"flows.jsonl", "alerts.jsonl", "incidents.jsonl", "weird.jsonl", "content.jsonl", "files.jsonl"}
        for name in sorted(os.listdir(self.path)):
            if not name.endswith(".jsonl") or name in skip:
                continue
            recs = [r for r in self.records(name) if r.get("uid") in want or
                    any(u in want for u in (r.get("uids") or ()) if isinstance(u, str))]
            if recs:
                out[name[:-len(".jsonl")]] = recs
        return out

    def content(self, uids) -> list:
        want = set(uids)
        return [r for r in self.records("content.jsonl") if r.get("uid") in want]

    def alerts_for(self, uids) -> list:
        want = set(uids)
        return [a for a in self.records("alerts.jsonl") if any(u in want for u in a.get("uids") or ())]


def select(scan: ScanDir, uids=(), alert_ids=(), incident_ids=(), with_dns: bool = False) -> Selection:
    """Resolve what was asked into connections; EvidenceError names the first unknown id."""
    sel = Selection()
    for iid in incident_ids:
        inc = _lookup(scan, "incidents.jsonl", "incident_id", iid, "incident", "use --uid or --alert")
        sel.incidents.append(inc)
        for u in inc.get("uids") or ():
            sel.add(u, f"incident {iid}")
    if sel.incidents:
        ids = {a for inc in sel.incidents for a in inc.get("alert_ids") or ()}
        if ids:
            sel.alerts.extend(a for a in scan.records("alerts.jsonl") if a.get("alert_id") in ids)
    for aid in alert_ids:
        al = _lookup(scan, "alerts.jsonl", "alert_id", aid, "alert", "use --uid")
        if al not in sel.alerts:
            sel.alerts.append(al)
        for u in al.get("uids") or ():
            sel.add(u, f"alert {aid}")
    for u in uids:
        sel.add(u, "")
    if not sel.uids:
        raise EvidenceError("nothing selected: give --uid, --alert or --incident")
    sel.flows = scan.flows(sel.uids)
    missing = [u for u in sel.uids if u not in sel.flows]
    if missing:
        raise EvidenceError(f"unknown uid {missing[0]} in {scan.file('flows.jsonl')}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    _add_ftp_data(scan, sel)
    if with_dns:
        _add_dns(scan, sel)
    return sel


def _lookup(scan: ScanDir, name: str, key: str, value: str, kind: str, hint: str) -> dict:
    """The record of ``name`` whose ``key`` is ``value``, or EvidenceError (one line)."""
    if not scan.has(name):
        raise EvidenceError(f"{scan.path}: no {name} (this scan has no {kind}s); {hint}")
    rec = scan.find(name, key, value)
    if rec is None:
        raise EvidenceError(f"unknown {kind} {value} in {scan.file(name)}")
    return rec


def _services(rec) -> set:
    svc = rec.get("service")
    return {s.strip() for s in svc.split(",")} if isinstance(svc, str) else set()


def _add_ftp_data(scan: ScanDir, sel: Selection) -> None:
    """FTP control connections bring the data connections their commands opened."""
    controls = {u for u in sel.uids if "ftp" in _services(sel.flows[u])}
    if not controls or not scan.has("ftp.jsonl"):
        return
    expected = []      # (resp_h, resp_p, ts, control uid)
    for rec in scan.records("ftp.jsonl"):
        if rec.get("uid") in controls and rec.get("data_channel.resp_h") and rec.get("data_channel.resp_p"):
            expected.append((rec["data_channel.resp_h"], rec["data_channel.resp_p"], rec.get("ts") or 0.0, rec["uid"]))
    if not expected:
        return
    by_key = {}
    for h, p, ts, ctl in expected:
        by_key.setdefault((h, p), []).append((ts, ctl))
    for rec in scan.records("flows.jsonl"):
        if "ftp-data" not in _services(rec):
            continue
        hits = by_key.get((rec.get("id.resp_h"), rec.get("id.resp_p")))
        if not hits:
            continue
        ts = rec.get("ts") or 0.0
        ctl = next((c for t, c in sorted(hits, reverse=True) if t - 1.0 <= ts), None)
        if ctl is not None and sel.add(rec["uid"], sel.labels.get(ctl, ""), ("ftp-data channel of", ctl)):
            sel.flows[rec["uid"]] = {k: rec.get(k) for k in FLOW_KEEP}


def destination(rec: dict) -> tuple:
    """(address, name) of the remote side of a flow record (the originator of inbound flows)."""
    if rec.get("direction") == "inbound":
        return rec.get("id.orig_h"), rec.get("dst_name")
    return rec.get("id.resp_h"), rec.get("dst_name")


def naming_answer(dns_records, addr: str, name: str | None, before: float):
    """The latest DNS answer at or before ``before`` that gave ``addr`` (for ``name`` when known)."""
    best = None
    for rec in dns_records:
        answers = rec.get("answers") or ()
        if addr not in answers:
            continue
        if name and rec.get("query") != name and name not in answers:
            continue
        ts = rec.get("ts") or 0.0
        if ts <= before + 1e-6 and (best is None or ts >= (best.get("ts") or 0.0)):
            best = rec
    return best


def _add_dns(scan: ScanDir, sel: Selection) -> None:
    """Add the DNS exchanges that named the selected connections' destinations."""
    if not scan.has("dns.jsonl"):
        return
    wanted = {}
    for u in list(sel.uids):
        addr, _name = destination(sel.flows[u])
        if addr:
            wanted.setdefault(addr, []).append(u)
    dns = [r for r in scan.records("dns.jsonl") if any(a in wanted for a in r.get("answers") or ())]
    found = {}
    for addr, us in wanted.items():
        for u in us:
            rec = sel.flows[u]
            ans = naming_answer(dns, addr, rec.get("dst_name"), rec.get("ts") or 0.0)
            if ans is None or not ans.get("uid"):
                continue
            duid = ans["uid"]
            if ans not in sel.dns_records:
                sel.dns_records.append(ans)
            if duid in sel.flows and duid not in sel.dns_ids:
                continue          # a DNS connection asked for itself: all of it is carved
            ids = sel.dns_ids.setdefault(duid, set())
            if ids is not None and isinstance(ans.get("trans_id"), int) and (ans.get("proto") == "udp"):
                ids.add(ans["trans_id"])
            else:
                sel.dns_ids[duid] = None
            found.setdefault(duid, u)
    if found:
        extra = scan.flows(found)
        for duid, u in found.items():
            if duid in extra and sel.add(duid, sel.labels.get(u, ""), ("DNS answer naming the destination of", u)):
                sel.flows[duid] = extra[duid]
    for duid in [d for d in sel.dns_ids if d not in sel.related]:
        sel.dns_ids.pop(duid)     # asked for in its own right (or unknown): carved whole
