"""Naming and enriching the destinations of ended flows.

Two halves:

* :class:`DestinationNames` collects *evidence* while connections run: hostnames
  the protocol analyzers saw (``sni``, ``quic_sni``, ``http_host``: whatever the
  protocol modules declare as ``NAME_SOURCES``), per connection uid, and passive
  DNS from the answers on the wire;
* :class:`EnrichStage` runs on a batch of ended flow records: it names each
  flow's destination (``dst_name``/``dst_name_source``) and adds the destination
  fields of :class:`~inspector.enrich.Enricher` (country, ASN, organisation,
  group, category, allow-listing).

The destination is the responder, except on inbound flows (a non-local host
connecting in), where it is the originator; hostname evidence names the
responder, so inbound flows are named by passive DNS only.  Names come from the
first declared source that named the connection, else from passive DNS
(``dns``): the name the local side asked for before the connection started.
"""
from __future__ import annotations

import ipaddress

from ..outputs.schema import DEST_FLOW_FIELDS, names
from . import DESTINATION_FIELDS
from .pdns import PassiveDNS

# The columns this stage adds, in record order (declared in inspector/outputs/schema.py): the name
# and its source, then the Enricher's DESTINATION_FIELDS.
ENRICH_FIELDS = names(DEST_FLOW_FIELDS)
_NO_DESTINATION = dict.fromkeys(DESTINATION_FIELDS)


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class DestinationNames:
    """Hostname evidence per connection uid, and passive DNS.

    ``sources`` orders the hostname sources, best first (``Contributions.name_sources``);
    a source not in it is ignored.  Evidence is dropped when the flow is named.
    """

    def __init__(self, sources=(), pdns: PassiveDNS | None = None):
        self.sources = tuple(sources)
        self._accepted = frozenset(self.sources)
        self.pdns = pdns if pdns is not None else PassiveDNS()
        self.seen: dict = {}        # uid -> {source: name}, first name per source wins

    def hostname(self, uid: str, source: str, name: str, ts: float) -> None:
        """A name for the responder of connection ``uid`` (address literals name nothing)."""
        if not name or source not in self._accepted:
            return
        names = self.seen.get(uid)
        if names is not None and source in names:
            return
        name = name.strip().rstrip(".").lower()
        if name.startswith("[") or _is_ip_literal(name):
            return
        if names is None:
            names = self.seen[uid] = {}
        names[source] = name

    def dns_answer(self, query: str, answer: str, rtype: str, ttl: float, ts: float) -> None:
        """A DNS answer on the wire (A/AAAA address or CNAME target), for passive DNS."""
        self.pdns.answer(query, answer, rtype, ttl, ts)

    def name(self, uid: str, inbound: bool, dst: str, ts: float) -> tuple:
        """(name, source) for a flow's destination, or (None, None); forgets the flow's evidence."""
        names = self.seen.pop(uid, None)
        if names and not inbound:
            for src in self.sources:
                name = names.get(src)
                if name is not None:
                    return name, src
        name = self.pdns.name_for(dst, ts)
        return (name, "dns") if name is not None else (None, None)


class EnrichStage:
    """Adds ``ENRICH_FIELDS`` to ended flow records (in place, in that order).

    ``names`` is the evidence the dispatcher fed (a :class:`DestinationNames`);
    ``enricher`` an :class:`~inspector.enrich.Enricher` or None (its fields are then None).
    """

    def __init__(self, names: DestinationNames, enricher=None):
        self.names = names
        self.enricher = enricher

    def apply(self, records) -> None:
        name_of = self.names.name
        destination = self.enricher.destination if self.enricher is not None else None
        for r in records:
            inbound = r["direction"] == "inbound"
            dst = r["id.orig_h"] if inbound else r["id.resp_h"]
            name, source = name_of(r["uid"], inbound, dst, r["ts"])
            r["dst_name"] = name
            r["dst_name_source"] = source
            r.update(destination(dst, name) if destination is not None else _NO_DESTINATION)
