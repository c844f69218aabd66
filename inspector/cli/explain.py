"""``inspector explain UID --from DIR``: one connection told as a story (tshark through pyshark)."""
from __future__ import annotations

import sys

from .drilldown import add_common


def add_parser(sub) -> None:
    e = sub.add_parser("explain", help="one connection told as a story (tshark dissection through pyshark)")
    e.add_argument("uid", metavar="UID", help="the connection's uid (flows.jsonl)")
    add_common(e)
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--no-dissect", action="store_true", help="skip the tshark dissection of the packets")


def run(args, env) -> int:
    import json

    from ..evidence import EvidenceError
    from ..evidence.explain import explain, render
    try:
        story = explain(args.uid, args.from_dir, capture_root=args.capture_root, dissect_packets=not args.no_dissect)
    except EvidenceError as e:
        print(f"inspector explain: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(story, indent=2, sort_keys=False) + "\n")
    else:
        sys.stdout.write(render(story))
    return 0
