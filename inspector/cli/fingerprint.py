"""``inspector fingerprint FILE --columns ... --out FILE.edm``: EDM fingerprints of the site's own records
(``inspector.content.edm`` builds them; this module parses the arguments and prints the summary)."""
from __future__ import annotations

import sys

from .options import list_arg, mapping_arg


def add_parser(subparsers):
    """Register ``inspector fingerprint`` on the CLI's subparsers object."""
    p = subparsers.add_parser(
        "fingerprint",
        help="fingerprint your own customer/shipment records (CSV/TSV) for exact data matching",
        description="Read a CSV/TSV file of the organisation's own records and write an EDM fingerprint: "
                    "salted, truncated HMAC-SHA256 hashes of the normalised cells, never the values.")
    p.add_argument("file", metavar="FILE", help="CSV or TSV file with a header line")
    p.add_argument("--columns", required=True, type=list_arg, metavar="COL[,COL...]",
                   help="columns to fingerprint, e.g. email,phone,name")
    p.add_argument("--out", required=True, metavar="FILE.edm",
                   help="fingerprint to write, e.g. signatures/edm/customers.edm")
    p.add_argument("--classes", type=mapping_arg, default=None, metavar="COL=CLASS[,...]",
                   help="data class per column, e.g. email=email,phone=phone,name=person_name "
                        "(default: guessed from the column name)")
    p.add_argument("--min-columns", type=int, default=None, metavar="N",
                   help="a row matches when N of its columns are seen in one flow (default: min(2, columns))")
    p.add_argument("--region", default="US", metavar="CC",
                   help="default region for phone numbers without a country code (default: US)")
    p.add_argument("--delimiter", default=None, choices=["comma", "semicolon", "tab", "pipe"],
                   help="field separator (default: from the extension and the header line)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of FILE (default: utf-8)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stdout")
    return p


def run(args, env) -> int:
    """``inspector fingerprint``: 0 done, 2 bad arguments or input (one line on stderr)."""
    from ..content.edm import EDMError, build_fingerprint
    try:
        import phonenumbers
    except ImportError:  # pragma: no cover
        print("inspector: error: fingerprint needs the phonenumbers package (pip install phonenumbers)",
              file=sys.stderr)
        return 2
    try:
        "".encode(args.encoding)
    except LookupError:
        print(f"inspector: error: unknown encoding {args.encoding!r}", file=sys.stderr)
        return 2
    try:
        if args.region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            print(f"inspector: error: --region {args.region}: not a phone-number region code (e.g. US, GB, DE)",
                  file=sys.stderr)
            return 2
        header = build_fingerprint(args.file, args.columns, args.out, classes=args.classes,
                                   min_columns=args.min_columns, region=args.region,
                                   delimiter=args.delimiter, encoding=args.encoding)
    except EDMError as e:
        print(f"inspector: error: {e}", file=sys.stderr)
        return 2
    if not getattr(args, "quiet", False):
        cols = ", ".join(f"{c['name']} ({c['class'] or 'text'}: {c['distinct']:,} distinct)"
                         for c in header["columns"])
        print(f"inspector fingerprint: {args.file}: {header['rows']:,} rows; {cols}; a row matches with "
              f"{header['min_columns']} of {len(header['columns'])} columns -> {args.out} "
              f"({header['bytes']:,} bytes, hashes only)")
        for c in header["columns"]:
            if c["values"] < header["rows"]:
                print(f"  note: column {c['name']} is empty in {header['rows'] - c['values']:,} of "
                      f"{header['rows']:,} rows")
        if header["rows_below_min"]:
            print(f"  note: {header['rows_below_min']:,} rows have fewer than {header['min_columns']} values "
                  "and can never match")
    return 0
