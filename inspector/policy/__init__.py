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

import os
from typing import List, Optional

from .alerts import summary_lines, write_alerts
from .engine import PolicyEngine, evaluate, exit_status
from .rules import (ID_RANGES, SEVERITIES, SEVERITY_NAMES, Rule, check_rules, default_rules_dir, load_rules,
                    loads_rules, parse_severity)

__all__ = ["load_rules", "loads_rules", "check", "check_rules", "PolicyEngine", "evaluate", "exit_status",
           "SEVERITIES", "SEVERITY_NAMES", "ID_RANGES", "Rule", "parse_severity", "rules_dir", "default_rules_dir",
           "is_signatures_dir", "write_alerts", "summary_lines"]


def rules_dir(signatures: Optional[str] = None) -> str:
    """The rules a run uses: ``<signatures dir>/rules`` when that exists, else the shipped default policy.

    ``signatures`` is the ``--signatures`` argument (None: ./signatures when it exists, else the
    shipped directory, as for destination groups)."""
    from ..signature_files import signatures_dir
    d = os.path.join(signatures_dir(signatures), "rules")
    return d if os.path.isdir(d) else default_rules_dir()


def is_signatures_dir(path: str) -> bool:
    """Whether ``path`` is a signatures directory (has rules/, destinations/ or edm/)."""
    return os.path.isdir(path) and any(os.path.isdir(os.path.join(path, d)) for d in ("rules", "destinations",
                                                                                       "edm"))


def check(path: Optional[str] = None) -> List[str]:
    """Validate signature files: one ``file:line: message`` line per problem, [] when all is well.

    ``path`` is a signatures directory (``rules/*.yaml``, ``destinations/*.yaml`` and ``edm/*.edm``
    are checked; a missing ``rules/`` is fine, the default policy is used then), or a rules directory,
    or one rule file.  None: the signatures directory ``scan`` would use.
    """
    from ..signature_files import signatures_dir
    p = signatures_dir(path)
    if not is_signatures_dir(p):
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
