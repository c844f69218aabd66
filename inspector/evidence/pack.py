"""Evidence packs: one incident's packets, records and attribution in a reproducible zip.

``inspector evidence --incident ID --from DIR -o FILE.zip`` writes:

* ``packets.pcapng``: the incident's connections carved from the original captures (with
  FTP data channels and the DNS exchanges that named the destinations), see ``carve``;
* ``incident.json`` (when asked for by incident), ``alerts.jsonl``: the incident and its alerts;
* ``flows.jsonl``: the flow records of every carved connection, as the scan wrote them;
* ``logs/<log>.jsonl``: their protocol log lines (http, tls, dns, ftp, smtp...), as written
  (the scan masks personal data in them unless it ran with ``--show-raw``);
* ``content.jsonl``: what left, per connection: classes, record counts, masked samples (masked
  again here, whatever the scan's options) and the salted hashes of the values, which let a
  holder of the salt check whether a given value was among them without the pack revealing it;
* ``attribution.json``: per destination, the chain address -> DNS answer -> name -> ASN,
  organisation, country -> destination group -> allowed or not;
* ``manifest.json``: the sha256 and size of every other file in the pack, the sha256, size and
  packet count of each source capture, the inspector version and the signature set's hash.

The same input gives the same manifest and the same zip bytes: no wall-clock time anywhere,
entries sorted, fixed zip timestamps and attributes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

from . import EvidenceError
from .carve import collect, write_pcapng
from .explain import attribution
from .scandir import ScanDir, destination, select

ZIP_TIME = (1980, 1, 1, 0, 0, 0)      # the earliest time a zip can hold: no wall clock in the pack
MANIFEST = "manifest.json"


def _sha256_file(path: str) -> tuple:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def signature_set_hash(signatures: str | None = None) -> dict:
    """sha256 over the signature files a scan with ``--signatures signatures`` uses.

    Every file under the signatures directory (and the rules directory when the shipped
    default policy stands in for a missing ``rules/``), sorted by path relative to its
    directory; the hash input is one line per file: ``relative path NUL sha256 LF``.
    """
    from ..policy import rules_dir
    from ..signature_files import signatures_dir
    sig = os.path.abspath(signatures_dir(signatures))
    roots = [("", sig)]
    rules = os.path.abspath(rules_dir(signatures))
    if not rules.startswith(sig + os.sep):
        roots.append(("rules/", rules))
    entries = []
    for prefix, root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x != "__pycache__")
            for name in files:
                if name.startswith(".") or name.endswith((".pyc", ".tmp")):
                    continue
                full = os.path.join(d, name)
                rel = prefix + os.path.relpath(full, root).replace(os.sep, "/")
                entries.append((rel, _sha256_file(full)[0]))
    entries.sort()
    h = hashlib.sha256()
    for rel, digest in entries:
        h.update(f"{rel}\0{digest}\n".encode("utf-8"))
    return {"sha256": h.hexdigest(), "files": len(entries)}


def _jsonl(records) -> bytes:
    return b"".join(json.dumps(r, sort_keys=False, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8")


def build(scan_dir: str, incident_ids=(), alert_ids=(), uids=(), capture_root: str | None = None,
          signatures: str | None = None) -> dict:
    """The pack's files as {name: bytes} (manifest.json included)."""
    from .. import __version__
    from ..policy.alerts import mask_samples
    scan = ScanDir(scan_dir)
    sel = select(scan, uids=uids, alert_ids=alert_ids, incident_ids=incident_ids, with_dns=True)
    res = collect(scan, sel, capture_root)
    buf = io.BytesIO()
    write_pcapng(buf, res, sel)
    files = {"packets.pcapng": buf.getvalue()}
    if sel.incidents:
        files["incident.json"] = _json(sel.incidents[0] if len(sel.incidents) == 1 else sel.incidents)
    alerts = list(sel.alerts)
    if not alerts:       # incidents without alert ids, or --uid: the alerts about these connections
        alerts = scan.alerts_for(sel.uids)
    files["alerts.jsonl"] = _jsonl(alerts)
    want = set(sel.uids)
    files["flows.jsonl"] = _jsonl(r for r in scan.records("flows.jsonl") if r.get("uid") in want)
    for name, recs in sorted(scan.log_lines(sel.uids).items()):
        files[f"logs/{name}.jsonl"] = _jsonl(recs)
    content = []
    for r in scan.content(sel.uids):
        r = dict(r)
        r["samples"] = mask_samples(r.get("samples") or {})
        content.append(r)
    files["content.jsonl"] = _jsonl(content)
    chains = []
    seen = set()
    dns_uids = {u for u, rel in sel.related.items() if rel[0].startswith("DNS")}
    for u in sel.uids:
        key = destination(sel.flows[u])
        if u in dns_uids or key in seen:
            continue
        seen.add(key)
        chain = attribution(scan, sel.flows[u])
        chain["uids"] = [x for x in sel.uids if x not in dns_uids and destination(sel.flows[x]) == key]
        chains.append(chain)
    files["attribution.json"] = _json(chains)
    files["README.txt"] = _readme(incident_ids, alert_ids, sel, res).encode("utf-8")
    captures = []
    for name, path in sorted(res.resolved.items()):
        digest, size = _sha256_file(path)
        info = next((f for f in scan.capture_files() if f["path"] == name), {})
        captures.append({"capture": name, "sha256": digest, "bytes": size, "packets": info.get("packets_read"),
                         "packets_carved": sum(1 for p in res.packets if p.capture == name)})
    manifest = {
        "inspector_version": __version__,
        "site": scan.stats.get("site"),
        "incident_ids": list(incident_ids),
        "alert_ids": [a.get("alert_id") for a in alerts if a.get("alert_id")],
        "uids": list(sel.uids),
        "packets": len(res.packets),
        "captures": captures,
        "signatures": signature_set_hash(signatures),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in sorted(files.items())},
    }
    files[MANIFEST] = _json(manifest)
    return files


def _readme(incident_ids, alert_ids, sel, res) -> str:
    what = ", ".join([f"incident {i}" for i in incident_ids] + [f"alert {a}" for a in alert_ids]) or \
        f"{len(sel.uids)} connection(s)"
    return "\n".join([
        f"Evidence pack for {what}, written by inspector.",
        "",
        "packets.pcapng    the packets of the connections, carved from the original captures (open in",
        "                  Wireshark; the first packet of each connection carries a comment with its uid)",
        "incident.json     the incident (when the pack was made for one)",
        "alerts.jsonl      its alerts",
        "flows.jsonl       the connections (Zeek conn.log fields plus destination and content fields)",
        "logs/*.jsonl      their protocol log lines",
        "content.jsonl     what left: data classes, record counts, masked samples, salted hashes of values",
        "attribution.json  per destination: address, DNS answer, name, AS/organisation/country, group",
        "manifest.json     sha256 of every file here and of each source capture, inspector version,",
        "                  signature set hash; check with: sha256sum <file>",
        "",
        f"{len(res.packets)} packets of {len(sel.uids)} connections from {len(res.resolved)} capture(s).",
        "",
    ])


def write_zip(out: str, files: dict) -> None:
    """A zip with sorted entries, fixed timestamps and attributes: the same files, the same bytes."""
    tmp = f"{out}.tmp"
    try:
        with open(tmp, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3                 # unix
                info.external_attr = 0o100644 << 16     # a regular file, rw-r--r--
                z.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
        os.replace(tmp, out)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise EvidenceError(f"{out}: cannot write: {e.strerror or e}")


def verify(path: str, capture_root: str | None = None) -> list:
    """Problems found re-checking a pack (empty when it verifies): every file's sha256 against
    the manifest, no file missing or extra."""
    problems = []
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        if MANIFEST not in names:
            return [f"{path}: no {MANIFEST}"]
        man = json.loads(z.read(MANIFEST))
        listed = set(man.get("files") or {})
        for name in sorted(names - {MANIFEST}):
            if name not in listed:
                problems.append(f"{name}: not in the manifest")
                continue
            if hashlib.sha256(z.read(name)).hexdigest() != man["files"][name]["sha256"]:
                problems.append(f"{name}: sha256 differs from the manifest")
        for name in sorted(listed - names):
            problems.append(f"{name}: in the manifest but not in the pack")
    return problems


def evidence(scan_dir: str, out: str, incident_ids=(), alert_ids=(), uids=(), capture_root: str | None = None,
             signatures: str | None = None) -> dict:
    """Build and write the pack; returns the manifest."""
    files = build(scan_dir, incident_ids=incident_ids, alert_ids=alert_ids, uids=uids, capture_root=capture_root,
                  signatures=signatures)
    write_zip(out, files)
    return json.loads(files[MANIFEST])
