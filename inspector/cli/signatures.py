"""``inspector signatures check [DIR]``: validate every signature file (``inspector.policy.check``)."""
from __future__ import annotations

import os
import sys


def add_parser(subparsers):
    """Add ``signatures check [DIR]`` to an argparse sub-parsers object (``inspector signatures check``)."""
    s = subparsers.add_parser("signatures", help="signature files: validate them (signatures check [DIR])",
                              description="Work with signature files.")
    sub = s.add_subparsers(dest="signatures_command", metavar="ACTION")
    c = sub.add_parser("check", help="validate every signature file: rules, destination groups, EDM files",
                       description="Validate every signature file under DIR (rules/*.yaml, destinations/*.yaml, "
                                   "edm/*.edm) and print one line per problem: file:line: what is wrong.  "
                                   "Exit status 0 when all is well, 1 when a problem was found.")
    c.add_argument("dir", nargs="?", metavar="DIR",
                   help="a signatures directory, a rules directory or one rule file (default: ./signatures, "
                        "else the one shipped with inspector)")
    c.add_argument("-q", "--quiet", action="store_true", help="print problems only")
    return s


def run(args, env) -> int:
    """Run ``signatures check``: problems on stdout, one per line; 0 all well, 1 problems, 2 usage."""
    if getattr(args, "signatures_command", None) != "check":
        print("inspector signatures: error: an action is required (check)", file=sys.stderr)
        return 2
    from ..policy import is_signatures_dir, check, load_rules
    from ..settings import signatures_dir
    target = signatures_dir(getattr(args, "dir", None))
    problems = check(target)
    for line in problems:
        print(line)
    if problems:
        if not getattr(args, "quiet", False):
            print(f"inspector signatures check: {len(problems)} problem{'s' if len(problems) != 1 else ''} "
                  f"in {target}", file=sys.stderr)
        return 1
    if not getattr(args, "quiet", False):
        n_rules = 0
        if os.path.isdir(os.path.join(target, "rules")) or not is_signatures_dir(target):
            try:
                n_rules = len(load_rules(target))
            except Exception:               # pragma: no cover - check() said it was fine
                n_rules = 0
        print(f"{target}: OK" + (f" ({n_rules} rules)" if n_rules else ""))
    return 0
