"""``inspector evidence``: an evidence pack (zip) for an incident, with a sha256 manifest."""
from __future__ import annotations

import sys

from .drilldown import add_common


def add_parser(sub) -> None:
    v = sub.add_parser("evidence", help="an evidence pack (zip): packets, records, attribution, sha256 manifest")
    add_common(v)
    v.add_argument("--incident", action="append", default=[], metavar="ID", help="an incident_id of incidents.jsonl")
    v.add_argument("--alert", action="append", default=[], metavar="ID",
                   help="an alert_id (for scans without incidents)")
    v.add_argument("--uid", action="extend", nargs="+", default=[], metavar="UID", help="connection uid(s)")
    v.add_argument("-o", "--out", required=True, metavar="FILE.zip", help="the zip file to write")
    v.add_argument("--signatures", metavar="DIR",
                   help="the signatures directory the scan used (its hash goes into the manifest)")
    v.add_argument("-q", "--quiet", action="store_true", help="no summary line")


def run(args, env) -> int:
    from ..evidence import EvidenceError
    from ..evidence.pack import evidence
    if not (args.uid or args.alert or args.incident):
        print("inspector evidence: error: give --incident (or --alert, --uid)", file=sys.stderr)
        return 2
    try:
        man = evidence(args.from_dir, args.out, incident_ids=args.incident, alert_ids=args.alert, uids=args.uid,
                       capture_root=args.capture_root, signatures=args.signatures)
    except EvidenceError as e:
        print(f"inspector evidence: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"evidence pack {args.out}: {len(man['files'])} files + manifest.json, {man['packets']} packets of "
              f"{len(man['uids'])} connections from {len(man['captures'])} capture(s)")
    return 0
