"""``inspector report --db PATH --out FILE.html``: the nightly HTML report of a batch database."""
from __future__ import annotations

import sys


def add_parser(subparsers):
    r = subparsers.add_parser("report", help="the nightly HTML report of a batch database")
    r.add_argument("--db", required=True, metavar="PATH", help="the batch database (inspector batch --db)")
    r.add_argument("--night", metavar="DATE", help="YYYY-MM-DD (default: the latest night in the database)")
    r.add_argument("--out", required=True, metavar="FILE.html", help="the report (one self-contained page)")
    r.add_argument("--nights", type=int, default=14, metavar="N", help="trend over the last N nights (default 14)")
    r.add_argument("--by", choices=("host", "role"), default="host", help="rows of the host table: site host or role")
    return r


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args, env) -> int:
    import datetime as _dt

    from ..batch.report import write_report
    from ..batch.store import Store, StoreError
    night = None
    if args.night:
        try:
            night = _dt.date.fromisoformat(args.night)
        except ValueError:
            _err(f"inspector report: error: --night {args.night!r}: expected YYYY-MM-DD")
            return 2
    if args.nights < 1:
        _err("inspector report: error: --nights must be at least 1")
        return 2
    try:
        store = Store(args.db, read_only=True)
    except StoreError as e:
        _err(f"inspector report: error: {e}")
        return 2
    try:
        try:
            info = write_report(store, night, args.out, nights=args.nights, by=args.by)
        except ValueError as e:
            _err(f"inspector report: error: {e}")
            return 2
        except OSError as e:
            _err(f"inspector report: error: cannot write {args.out}: {e.strerror or e}")
            return 2
    finally:
        store.close()
    print(f"inspector report: night {info['night']}: {info['incidents']} incidents, {info['alerts']} alerts, "
          f"{info['hosts']} "
          f"{'hosts' if args.by == 'host' else 'roles'} -> {args.out}")
    return 0
