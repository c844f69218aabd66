"""``inspector carve``: the packets of connections, alerts or incidents, as pcapng."""
from __future__ import annotations

import sys

from .drilldown import add_common


def add_parser(sub) -> None:
    c = sub.add_parser("carve", help="write the packets of connections, alerts or incidents to a pcapng file")
    add_common(c)
    c.add_argument("--uid", action="extend", nargs="+", default=[], metavar="UID", help="connection uid(s)")
    c.add_argument("--alert", action="append", default=[], metavar="ID", help="an alert_id of alerts.jsonl")
    c.add_argument("--incident", action="append", default=[], metavar="ID",
                   help="an incident_id of incidents.jsonl")
    c.add_argument("-o", "--out", required=True, metavar="FILE", help="the pcapng file to write")
    c.add_argument("--with-dns", action="store_true", help="add the DNS exchanges that named the destinations")
    c.add_argument("-q", "--quiet", action="store_true", help="no summary line")


def run(args, env) -> int:
    from ..evidence import EvidenceError
    from ..evidence.carve import carve
    if not (args.uid or args.alert or args.incident):
        print("inspector carve: error: give --uid, --alert or --incident", file=sys.stderr)
        return 2
    try:
        sel, res = carve(args.from_dir, args.out, uids=args.uid, alert_ids=args.alert, incident_ids=args.incident,
                         with_dns=args.with_dns, capture_root=args.capture_root)
    except EvidenceError as e:
        print(f"inspector carve: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        extra = len(sel.related)
        print(f"carved {len(res.packets)} packets of {len(sel.uids)} connections"
              + (f" ({extra} added: FTP data channels, DNS answers)" if extra else "")
              + f" from {len(res.captures)} capture(s) into {args.out}")
    return 0
