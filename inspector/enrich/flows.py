"""Naming and enriching the destinations of ended flows.

Two halves:

* :class:`DestinationNames` collects *evidence* while connections run: hostnames
  the protocol analyzers saw (``sni``, ``sni_outer``, ``quic_sni``, ``http_host``,
  ``x509``: whatever the protocol modules declare as ``NAME_SOURCES`` and
  ``NAME_FALLBACKS``), facts they stated (``FACTS``: ``tls.ech``,
  ``tls.cert_expired``...) and the responder's certificate names, per connection
  uid, and passive DNS from the answers on the wire;
* :class:`EnrichStage` runs on a batch of ended flow records: it names each
  flow's destination (``dst_name``/``dst_name_source``), adds the destination
  fields of :class:`~inspector.enrich.Enricher` (country, ASN, organisation,
  group, category, allow-listing; groups may match the certificate's issuer or
  subject) and the connection's ``ech`` flag and ``facts``.

The destination is the responder, except on inbound flows (a non-local host
connecting in), where it is the originator; hostname, certificate and fact
evidence is about the responder, so inbound flows are named by passive DNS only
and carry no facts.  Names come from the first declared source that named the
connection, else from passive DNS (``dns``: the name the local side asked for
before the connection started), else from the first fallback source (``x509``:
the server certificate's own name, for a client that connected to a bare address).
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
# The fact a ClientHello with the Encrypted Client Hello extension states (protocols/tls.py FACTS):
# flows carry it as their own ``ech`` field too.
ECH_FACT = "tls.ech"


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class DestinationNames:
    """Destination evidence per connection uid (names, facts, the responder's certificate), and
    passive DNS.

    ``sources`` orders the hostname sources, best first (``Contributions.name_sources``);
    ``fallbacks`` the sources weaker than passive DNS (``Contributions.name_fallbacks``); a
    source in neither is ignored.  Evidence is dropped when the flow is named.
    """

    def __init__(self, sources=(), pdns: PassiveDNS | None = None, fallbacks=()):
        self.sources = tuple(sources)
        self.fallbacks = tuple(f for f in fallbacks if f not in self.sources)
        self._accepted = frozenset(self.sources + self.fallbacks)
        self.pdns = pdns if pdns is not None else PassiveDNS()
        self.seen: dict = {}        # uid -> {source: name}, first name per source wins
        self.facts: dict = {}       # uid -> set of fact names
        self.certs: dict = {}       # uid -> (subject, issuer) of the responder's certificate
        self.ja4ts: dict = {}       # uid -> JA4T of the client's SYN

    def fact(self, uid: str, name: str) -> None:
        """A fact about connection ``uid`` (``tls.cert_expired``...)."""
        if name:
            self.facts.setdefault(uid, set()).add(name)

    def certificate(self, uid: str, subject: str | None, issuer: str | None) -> None:
        """The responder's certificate of connection ``uid`` (the first one seen is kept)."""
        if (subject or issuer) and uid not in self.certs:
            self.certs[uid] = (subject, issuer)

    def ja4t(self, uid: str, fingerprint: str) -> None:
        """The JA4T of connection ``uid``'s client SYN (the dispatcher computes it as the
        connection ends)."""
        self.ja4ts[uid] = fingerprint

    def evidence(self, uid: str, inbound: bool) -> tuple:
        """(sorted facts or None, (subject, issuer) or None) of a flow; forgets them.  Inbound
        flows have none (the evidence is about the responder, the local side)."""
        facts = self.facts.pop(uid, None)
        cert = self.certs.pop(uid, None)
        if inbound:
            return None, None
        return (sorted(facts) if facts else None), cert

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
        if name is not None:
            return name, "dns"
        if names and not inbound:
            for src in self.fallbacks:
                name = names.get(src)
                if name is not None:
                    return name, src
        return None, None


class NameEvents:
    """Stands in for :class:`DestinationNames` in a worker of a parallel scan: the evidence the
    dispatcher feeds (names, DNS answers, facts, certificates, JA4T) is kept as events, which the
    parent replays into the one ``DestinationNames`` before it enriches the flows that ended with
    them (a DNS answer names connections of other workers too).  ``drain()`` hands them over."""

    FED = ("hostname", "dns_answer", "fact", "certificate", "ja4t")

    def __init__(self):
        self.events: list = []

    def hostname(self, uid: str, source: str, name: str, ts: float) -> None:
        self.events.append(("hostname", (uid, source, name, ts)))

    def dns_answer(self, query: str, answer: str, rtype: str, ttl: float, ts: float) -> None:
        self.events.append(("dns_answer", (query, answer, rtype, ttl, ts)))

    def fact(self, uid: str, name: str) -> None:
        self.events.append(("fact", (uid, name)))

    def certificate(self, uid: str, subject: str | None, issuer: str | None) -> None:
        self.events.append(("certificate", (uid, subject, issuer)))

    def ja4t(self, uid: str, fingerprint: str) -> None:
        self.events.append(("ja4t", (uid, fingerprint)))

    def drain(self) -> list:
        out, self.events = self.events, []
        return out

    @staticmethod
    def replay(events, names: DestinationNames) -> None:
        for method, args in events:
            if method in NameEvents.FED:
                getattr(names, method)(*args)


def enrich_placeholders(records) -> None:
    """``ENRICH_FIELDS`` set to None, in their place in each record (a parallel scan's parent fills
    them in later, so the records keep the field order of a single process)."""
    for r in records:
        r.update(_PLACEHOLDERS)


_PLACEHOLDERS = dict.fromkeys(ENRICH_FIELDS)


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
        evidence = self.names.evidence
        ja4ts = self.names.ja4ts
        destination = self.enricher.destination if self.enricher is not None else None
        for r in records:
            inbound = r["direction"] == "inbound"
            dst = r["id.orig_h"] if inbound else r["id.resp_h"]
            uid = r["uid"]
            name, source = name_of(uid, inbound, dst, r["ts"])
            facts, cert = evidence(uid, inbound)
            r["dst_name"] = name
            r["dst_name_source"] = source
            if destination is None:
                r.update(_NO_DESTINATION)
            elif cert is None:
                r.update(destination(dst, name))
            else:
                r.update(destination(dst, name, cert))
            r["ech"] = True if facts and ECH_FACT in facts else None
            r["facts"] = facts
            r["ja4t"] = ja4ts.pop(uid, None)
