"""Policy: rules over flows and logs that raise alerts (``alerts.jsonl``, Suricata EVE style).

Modules:

* ``rules.py``     the YAML rule schema, loading and validation with file:line problems
* ``engine.py``    :class:`PolicyEngine`, incremental (scan and live alike), :func:`exit_status`
* ``detectors.py`` DNS tunnelling, ICMP tunnelling, beaconing (RITA's score), slow drip
* ``alerts.py``    EVE alert records and masked evidence
* ``view.py``      a flow record from the site's point of view; metrics and group keys
* ``window.py``    bounded per-key time windows

The rule language and the default policy are documented in ``signatures/README.md`` (*Rules*).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .alerts import summary_lines, write_alerts
from .engine import PolicyEngine, evaluate, exit_status
from .rules import (ID_RANGES, SEVERITIES, SEVERITY_NAMES, Rule, check_rules, default_rules_dir, load_rules,
                    loads_rules, parse_severity)

__all__ = ["load_rules", "loads_rules", "check", "check_rules", "PolicyEngine", "evaluate", "exit_status",
           "add_check_parser", "run_check", "SEVERITIES", "SEVERITY_NAMES", "ID_RANGES", "Rule",
           "parse_severity", "severity_arg", "rules_dir", "default_rules_dir", "write_alerts", "summary_lines"]


def severity_arg(text: str) -> int:
    """argparse ``type=`` for ``--fail-on``: a severity name or 1-4 -> 1-4."""
    try:
        return parse_severity(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid severity {text!r}: use critical, high, medium, low "
                                         "or 1-4 (1 = critical)") from None


def rules_dir(signatures: Optional[str] = None) -> str:
    """The rules a run uses: ``<signatures dir>/rules`` when that exists, else the shipped default policy.

    ``signatures`` is the ``--signatures`` argument (None: ./signatures when it exists, else the
    shipped directory, as for destination groups)."""
    from ..settings import signatures_dir
    d = os.path.join(signatures_dir(signatures), "rules")
    return d if os.path.isdir(d) else default_rules_dir()


def _is_signatures_dir(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.isdir(os.path.join(path, d)) for d in ("rules", "destinations",
                                                                                       "edm"))


def check(path: Optional[str] = None) -> List[str]:
    """Validate signature files: one ``file:line: message`` line per problem, [] when all is well.

    ``path`` is a signatures directory (``rules/*.yaml``, ``destinations/*.yaml`` and ``edm/*.edm``
    are checked; a missing ``rules/`` is fine, the default policy is used then), or a rules directory,
    or one rule file.  None: the signatures directory ``scan`` would use.
    """
    from ..settings import signatures_dir
    p = signatures_dir(path)
    if not _is_signatures_dir(p):
        return check_rules(p)
    problems: List[str] = []
    if os.path.isdir(os.path.join(p, "rules")):
        problems += check_rules(os.path.join(p, "rules"))
    from ..enrich.groups import check as check_groups
    problems += check_groups(os.path.join(p, "destinations"))
    edm_dir = os.path.join(p, "edm")
    if os.path.isdir(edm_dir):
        from ..content.edm import EDMIndex
        from ..errors import ConfigError
        for name in sorted(os.listdir(edm_dir)):
            f = os.path.join(edm_dir, name)
            if name.endswith(".edm") and os.path.isfile(f):
                try:
                    EDMIndex.load(f)
                except ConfigError as e:
                    problems.append(str(e))
                except (OSError, ValueError, RuntimeError) as e:
                    problems.append(f"{f}: {e}")
    return problems


def add_check_parser(subparsers) -> argparse.ArgumentParser:
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


def run_check(args) -> int:
    """Run ``signatures check``: problems on stdout, one per line; 0 all well, 1 problems, 2 usage."""
    if getattr(args, "signatures_command", None) != "check":
        print("inspector signatures: error: an action is required (check)", file=sys.stderr)
        return 2
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
        if os.path.isdir(os.path.join(target, "rules")) or not _is_signatures_dir(target):
            try:
                n_rules = len(load_rules(target))
            except Exception:               # pragma: no cover - check() said it was fine
                n_rules = 0
        print(f"{target}: OK" + (f" ({n_rules} rules)" if n_rules else ""))
    return 0
