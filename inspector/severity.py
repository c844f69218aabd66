"""The alert severity scale: one definition for the policy, the reports and the command line.

Suricata's order, lower is more severe: 1 critical, 2 high, 3 medium, 4 low (EVE
``alert.severity``).  Rules declare a severity by name or number (:func:`parse_severity`),
``scan --fail-on`` takes one, and the terminal, HTML and nightly reports name and sort alerts by
:func:`severity_name` / :func:`severity_rank`, where anything off the scale is ``info``, rank 5.
"""
from __future__ import annotations

from typing import Any, Dict, Union

__all__ = ["SEVERITIES", "SEVERITY_NAMES", "UNKNOWN_RANK", "UNKNOWN_NAME", "parse_severity", "severity_name",
           "severity_rank"]

#: name -> level
SEVERITIES: Dict[str, int] = {"critical": 1, "high": 2, "medium": 3, "low": 4}
#: level -> name
SEVERITY_NAMES: Dict[int, str] = {v: k for k, v in SEVERITIES.items()}
#: the rank and name of a severity off the scale (missing, malformed, from another tool)
UNKNOWN_RANK = 5
UNKNOWN_NAME = "info"


def parse_severity(value: Union[int, str]) -> int:
    """``critical``/``high``/``medium``/``low`` (any case) or 1..4 -> 1..4; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid severity {value!r}")
    if isinstance(value, int):
        if value in SEVERITY_NAMES:
            return value
        raise ValueError(f"invalid severity {value!r}")
    text = str(value).strip().lower()
    if text in SEVERITIES:
        return SEVERITIES[text]
    if text.isdigit() and int(text) in SEVERITY_NAMES:
        return int(text)
    raise ValueError(f"invalid severity {value!r}")


def severity_rank(sev: Any) -> int:
    """1 (critical) .. 4 (low) for a level on the scale, :data:`UNKNOWN_RANK` for anything else."""
    try:
        v = int(sev)
    except (TypeError, ValueError, OverflowError):
        return UNKNOWN_RANK
    return v if v in SEVERITY_NAMES else UNKNOWN_RANK


def severity_name(sev: Any) -> str:
    """The name of a level (``critical`` .. ``low``), :data:`UNKNOWN_NAME` for anything else."""
    return SEVERITY_NAMES.get(severity_rank(sev), UNKNOWN_NAME)
