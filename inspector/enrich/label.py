"""The destination label: which organisation a flow's remote side belongs to, in one word.

Alerts group by it (a rule's ``group_by: [dst_org]``), the HTML report ranks organisations by it
and the nightly batch report keys its per-destination series on it, so all three show the same
destination under the same name.  It is computed here and nowhere else.

The label is the first of these that is known:

==========  =====================================================================
kind        label
==========  =====================================================================
``org``     the AS organisation of the address (``dst_org``)
``group``   the destination group the name or address matched (``dst_group``)
``domain``  the registered domain of the destination name (:mod:`inspector.domain`)
``asn``     ``AS<n>`` when the AS number is known but not its organisation
``address`` the remote address itself (so unrelated unknown destinations never merge)
``unknown`` ``unknown``: no address either (a malformed record)
==========  =====================================================================
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from ..domain import registered_domain

__all__ = ["LABEL_KINDS", "destination_label", "flow_destination_label", "remote_address"]

#: The kinds of label, most to least specific.
LABEL_KINDS = ("org", "group", "domain", "asn", "address", "unknown")


def destination_label(org: Any = None, group: Any = None, name: Any = None, asn: Any = None,
                      address: Any = None) -> Tuple[str, str]:
    """``(label, kind)`` of a destination from its enrichment fields (see the module docstring)."""
    if org:
        return str(org), "org"
    if group:
        return str(group), "group"
    if name:
        rd = registered_domain(name) if isinstance(name, str) else None
        if rd:
            return rd, "domain"
    if asn:
        return f"AS{asn}", "asn"
    if address:
        return str(address), "address"
    return "unknown", "unknown"


def remote_address(rec: dict) -> Optional[Any]:
    """The remote side's address of a flow record: the originator of an inbound flow, else the
    responder."""
    return rec.get("id.orig_h") if rec.get("direction") == "inbound" else rec.get("id.resp_h")


def flow_destination_label(rec: dict) -> Tuple[str, str]:
    """``(label, kind)`` of a flow record (``flows.jsonl`` fields)."""
    return destination_label(rec.get("dst_org"), rec.get("dst_group"), rec.get("dst_name"), rec.get("dst_asn"),
                             remote_address(rec))
