"""Options the drill-down commands (carve, explain, evidence) share: where the scan's outputs are."""
from __future__ import annotations


def add_common(q) -> None:
    q.add_argument("--from", dest="from_dir", required=True, metavar="DIR", help="the --out folder of a scan")
    q.add_argument("--capture-root", metavar="DIR",
                   help="where the scanned captures are now, when they moved since the scan")
