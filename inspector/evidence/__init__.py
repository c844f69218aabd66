"""Drill-down from a scan's outputs back to its packets: carve, explain, evidence packs.

* ``scandir``: reading a scan's output folder (flows, logs, alerts, incidents, stats) and
  choosing the connections an investigator asked for (``Selection``);
* ``carve``: those connections' packets re-read from the original captures, mapped to
  connections by inspector's own decoder and flow table, written as pcapng (dpkt);
* ``explain``: one connection told as a story, dissected by tshark through pyshark;
* ``pack``: a reproducible evidence zip with a sha256 manifest.

Nothing here prints or parses arguments (the CLI does); problems the user can fix raise
``EvidenceError`` whose text is one line.
"""
from __future__ import annotations


class EvidenceError(Exception):
    """A problem the user can fix (unknown uid, missing capture...): one line, exit status 2."""
