"""Incidents: the alerts of a run told as the stories an investigator acts on.

A scan raises one alert per rule and finding (one per POST of a slow upload, one per window of a
detector); an analyst thinks in stories: *this host sent these records to that organisation through
that channel*.  :func:`build_incidents` groups the alerts of a run into incidents and
``incidents.jsonl`` holds one record per incident (``INCIDENT_FIELDS``).

Grouping (``grouping.py``)
    * every alert has a *story key*: its local host, the destination label (organisation, else
      destination group, else registered domain, else address; :func:`grouping.destination_label`)
      and its channel (the EVE ``app_proto``, else the transport);
    * alerts with the same key are one incident, across rules and time windows; alerts that cover a
      common flow are one incident too (a DNS-tunnel finding and the identifiers found in the same
      queries);
    * a *site-wide aggregate* (an aggregate whose group has no ``src_host``, such as "bulk customer
      records per country") does not stand alone: it joins every incident whose flows it sums; the
      flows it sums that no incident holds join the incident of their own story key, or form one.

Counting
    ``records`` and ``data`` are DISTINCT over the whole incident: the content stage keeps salted
    hashes of every record identity and identifier value of a connection (``content.jsonl``
    ``record_hashes`` / ``hashes``), and an incident counts the union, so a record sent twice counts
    once.  Values past the per-connection hash bounds are added as they were counted there.

Inputs are the alerts plus the flow and content records they cover, taken from iterables (the
``flows.jsonl`` / ``content.jsonl`` of the run: :func:`incidents_from_dir`); only the records of
covered flows are kept in memory.  Alerts are updated in place: ``incident_id`` (and
``incident_ids`` for aggregates over several incidents), and ``endpoints`` rebuilt from the flow
records when the policy engine did not hold every covered flow.
"""
from __future__ import annotations

from .build import INCIDENT_FIELDS, build_incidents, incidents_from_dir, iter_covered, write_incidents
from .grouping import destination_label, story_key

__all__ = ["INCIDENT_FIELDS", "build_incidents", "incidents_from_dir", "iter_covered", "write_incidents",
           "destination_label", "story_key"]
