"""One flow record seen from the site: which side is ours, what left, to whom.

Rules, aggregates and detectors all read flows through :class:`FlowView`, built
once per flow record (the dicts of ``flows.jsonl``, ``FLOW_FIELDS``):

* the **local side** (``src``) is the side inside the site: the originator,
  except for ``inbound`` connections (opened from outside), whose responder is
  ours; active-mode FTP data channels are inbound connections that carry data
  out, so "data leaves" is not the same as "outbound";
* ``bytes_out``/``packets_out`` are what the local side sent, ``bytes_in`` /
  ``packets_in`` what it received;
* the destination fields (``dst_*``) are those of the record: the non-local
  side of the connection.
"""
from __future__ import annotations

from ..content import classes as data_classes
from ..domain import registered_domain
from ..enrich.label import destination_label

__all__ = ["FlowView", "metric_value", "group_value", "GROUP_KEYS", "FLOW_METRICS",
           "AGGREGATE_METRICS", "CLASS_ALIASES", "class_alias", "identifier_classes"]

#: ``data`` aliases usable in rules: a name for a family of data classes (``inspector.content.classes``
#: groups; ``any`` is every class).
CLASS_ALIASES = ("customer", "shipment", "edi", "any")


def class_alias(name: str) -> tuple | None:
    """The classes an alias stands for, as registered now; None when ``name`` is not an alias."""
    return data_classes.group(name) if name in CLASS_ALIASES else None


def identifier_classes() -> tuple:
    """Classes that are identifiers (EDI classes count messages, not identifiers)."""
    edi = data_classes.group("edi")
    return tuple(c for c in data_classes.names() if c not in edi)


#: Per-flow metrics (thresholds in ``threshold`` and ``aggregate.threshold``).
FLOW_METRICS = {
    "bytes_out": "bytes sent by the local side (orig_bytes, or resp_bytes for inbound connections)",
    "bytes_in": "bytes received by the local side",
    "packets_out": "packets sent by the local side",
    "packets_in": "packets received by the local side",
    "out_in_ratio": "bytes_out / bytes_in (bytes_in of 0 counts as 1)",
    "duration": "connection duration, seconds",
    "records": "customer + shipment records",
    "records.customer": "customer records (rows/objects with customer fields)",
    "records.shipment": "shipment records",
    "identifiers": "distinct identifiers: the sum of the per-class counts over the rule's `data` classes "
                   "(all identifier classes when the rule names none)",
    "edi_messages": "EDIFACT messages + X12 transactions",
    "edm_rows": "rows of your own records matched by EDM fingerprints",
}
#: Metrics that exist only over several flows (``aggregate.threshold``).
AGGREGATE_METRICS = {
    "flows": "number of flows in the window",
    "span": "seconds from the first to the last flow start in the window",
    "destinations": "distinct remote addresses in the window",
}
BYTE_METRICS = ("bytes_out", "bytes_in")
TIME_METRICS = ("duration", "span")

#: Keys for ``aggregate.group_by`` (and detectors' ``group_by``).
GROUP_KEYS = {
    "src_host": "the local host (the side inside the site)",
    "src_role": "the local host's role from the site file (null when none)",
    "dst_host": "the remote address",
    "dst_port": "the remote port",
    "dst": "the destination's name when known, else its address",
    "dst_name": "the destination name (SNI, HTTP host, DNS)",
    "registered_domain": "the registered domain of the destination name (public suffix + 1), else the address",
    "dst_org": "the destination label (inspector.enrich.label): the AS organisation, else the destination group, "
               "else the registered domain, else AS<n>, else the address",
    "dst_group": "the destination group",
    "dst_category": "the destination group's category",
    "dst_country": "the destination country",
    "dst_asn": "the destination AS number",
    "site": "the site name",
    "service": "the service (Zeek's service field)",
    "proto": "tcp, udp, icmp",
}


def _num(v) -> float:
    try:
        return float(v) if v is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


class FlowView:
    """A flow record with the site's point of view precomputed (see the module docstring)."""

    __slots__ = ("rec", "uid", "ts", "end", "direction", "proto", "service", "services", "src", "src_port",
                 "dst", "dst_port", "bytes_out", "bytes_in", "packets_out", "packets_in", "duration", "data",
                 "records", "edm", "payload_types", "dst_name", "dst_country", "dst_asn", "dst_org", "dst_group",
                 "dst_category", "dst_allowed", "community_id", "site", "facts", "_role")

    def __init__(self, rec: dict, site=None):
        self.rec = rec
        self.uid = rec.get("uid")
        self.ts = _num(rec.get("ts"))
        self.duration = _num(rec.get("duration"))
        self.end = self.ts + self.duration
        self.direction = rec.get("direction")
        self.proto = (rec.get("proto") or "").lower() or None
        svc = rec.get("service")
        self.service = svc
        self.services = tuple(s.strip().lower() for s in svc.split(",") if s.strip()) if isinstance(svc, str) \
            else tuple(svc or ())
        ours_is_resp = self.direction == "inbound"
        o_h, o_p, r_h, r_p = rec.get("id.orig_h"), rec.get("id.orig_p"), rec.get("id.resp_h"), rec.get("id.resp_p")
        ob, rb = int(_num(rec.get("orig_bytes"))), int(_num(rec.get("resp_bytes")))
        op, rp = int(_num(rec.get("orig_pkts"))), int(_num(rec.get("resp_pkts")))
        if ours_is_resp:
            self.src, self.src_port, self.dst, self.dst_port = r_h, r_p, o_h, o_p
            self.bytes_out, self.bytes_in, self.packets_out, self.packets_in = rb, ob, rp, op
        else:
            self.src, self.src_port, self.dst, self.dst_port = o_h, o_p, r_h, r_p
            self.bytes_out, self.bytes_in, self.packets_out, self.packets_in = ob, rb, op, rp
        self.data = rec.get("data") or {}
        self.records = rec.get("records") or {}
        self.edm = rec.get("edm") or {}
        pts = set(rec.get("payload_types") or ())
        if rec.get("payload_type"):
            pts.add(rec["payload_type"])
        self.payload_types = pts
        self.dst_name = rec.get("dst_name")
        self.dst_country = rec.get("dst_country")
        self.dst_asn = rec.get("dst_asn")
        self.dst_org = rec.get("dst_org")
        self.dst_group = rec.get("dst_group")
        self.dst_category = rec.get("dst_category")
        allowed = rec.get("dst_allowed")
        if allowed is None and site is not None:
            # no destination enrichment (--flows-only): the site's CIDR/AS/name allow-list still applies
            allowed = site.is_allowed(self.dst_name, self.dst, self.dst_asn)
        self.dst_allowed = bool(allowed)
        self.community_id = rec.get("community_id")
        self.facts = frozenset(rec.get("facts") or ())
        self.site = site
        self._role = False

    # -- derived ---------------------------------------------------------------------
    @property
    def src_role(self):
        if self._role is False:
            self._role = self.site.role(self.src) if self.site is not None and self.src else None
        return self._role

    @property
    def edm_rows(self) -> float:
        """Rows matched against the site's EDM fingerprint files, all files together."""
        return sum(_num(v) for v in self.edm.values())

    @property
    def registered_domain(self):
        return registered_domain(self.dst_name)

    @property
    def org(self):
        """The destination label (:mod:`inspector.enrich.label`): the same name the reports use."""
        return destination_label(self.dst_org, self.dst_group, self.dst_name, self.dst_asn, self.dst)[0]

    def destination(self) -> dict:
        """The ``destination`` object of an alert."""
        return {"name": self.dst_name, "address": self.dst, "country": self.dst_country, "asn": self.dst_asn,
                "org": self.dst_org, "group": self.dst_group, "category": self.dst_category,
                "allowed": self.dst_allowed}


def class_sum(data: dict, classes) -> int:
    return int(sum(_num(data.get(c)) for c in classes))


def metric_value(fv, metric: str, classes=None) -> float:
    """The value of a per-flow metric; ``classes`` are the rule's data classes (for ``identifiers``).

    ``fv`` is one flow (:class:`FlowView`) or the flows of a window (``alerts.Cover``, through
    ``engine.cover_metric``): both carry the same totals under the same names."""
    if metric == "bytes_out":
        return fv.bytes_out
    if metric == "bytes_in":
        return fv.bytes_in
    if metric == "packets_out":
        return fv.packets_out
    if metric == "packets_in":
        return fv.packets_in
    if metric == "out_in_ratio":
        return fv.bytes_out / max(fv.bytes_in, 1)
    if metric == "duration":
        return fv.duration
    if metric == "records":
        return _num(fv.records.get("customer")) + _num(fv.records.get("shipment"))
    if metric.startswith("records."):
        return _num(fv.records.get(metric[8:]))
    if metric == "identifiers":
        return class_sum(fv.data, classes or identifier_classes())
    if metric.startswith("data."):
        name = metric[5:]
        return class_sum(fv.data, class_alias(name) or (name,))
    if metric == "edi_messages":
        return class_sum(fv.data, data_classes.group("edi"))
    if metric == "edm_rows":
        return fv.edm_rows
    raise KeyError(metric)


def group_value(fv: FlowView, key: str):
    """The value of one ``group_by`` key for a flow."""
    if key == "src_host":
        return fv.src
    if key == "src_role":
        return fv.src_role
    if key == "dst_host":
        return fv.dst
    if key == "dst_port":
        return fv.dst_port
    if key == "dst":
        return fv.dst_name or fv.dst
    if key == "registered_domain":
        return fv.registered_domain or fv.dst
    if key == "dst_org":
        return fv.org
    if key == "site":
        return fv.site.name if fv.site is not None else None
    if key == "service":
        return fv.service
    if key == "proto":
        return fv.proto
    return getattr(fv, key)
