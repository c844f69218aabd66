"""The shape every protocol module has.

One protocol = one module in ``inspector/protocols/`` with:

* ``NAME``: the service name as Zeek writes it in conn.log (``http``, ``ssl``, ``dns``...);
* ``TRANSPORTS``: ``("tcp",)``, ``("udp",)`` or both;
* ``PORTS``: port hints (detection is by content; ports only order the probes);
* ``probe(data: bytes, is_orig: bool) -> bool``: a cheap test on the first payload
  of one direction (``data`` is at most ``PROBE_BYTES`` long); never raises;
* an ``Analyzer`` subclass fed in-order stream data (TCP, after reassembly) or
  datagrams (UDP), emitting log records through its ``ctx``; never raises on
  traffic (the dispatcher also guards it: an exception becomes a
  ``<name>.analyzer_error`` weird and the analyzer is detached);
* ``LOG`` (file stem, e.g. ``"http"`` -> ``http.jsonl``) and ``FIELDS`` (the log's
  field order; the dispatcher adds nothing, so ``ts`` and ``uid`` come first by
  convention), or ``LOG = None`` when the protocol has no log of its own;
* ``register()`` is not needed: ``inspector/protocols/__init__.py`` lists modules.

Analyzers talk to the rest of the pipeline only through ``FlowContext``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PROBE_BYTES = 2048


@dataclass
class FlowContext:
    """What an analyzer may know about and do to its connection."""
    uid: str
    ts: float                 # connection start (packet time)
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    transport: str            # "tcp" | "udp"
    sink: "object" = None     # the dispatcher (collects records, names, weirds, expectations)
    service: list = field(default_factory=list)
    sink_flow: "object" = None  # the dispatcher's per-connection state (not for analyzers)

    # -- output ---------------------------------------------------------------
    def emit(self, log: str, record: dict) -> None:
        """Append one record to ``<log>.jsonl`` (record keys in the module's FIELDS order)."""
        self.sink.emit(log, record)

    def weird(self, name: str, detail: str = "", ts: float | None = None) -> None:
        """A protocol anomaly: name is ``<layer>.<snake_case>``, e.g. ``http.bad_chunk_size``."""
        self.sink.weird(self, name, detail, ts)

    def confirm(self, service: str) -> None:
        """The protocol is confirmed on this connection (Zeek's analyzer_confirmation)."""
        if service not in self.service:
            self.service.append(service)

    # -- destination evidence -----------------------------------------------------
    def hostname(self, source: str, name: str, ts: float) -> None:
        """A name for the responder seen in this connection: source is ``sni``,
        ``quic_sni`` or ``http_host``."""
        self.sink.hostname(self, source, name, ts)

    def dns_answer(self, query: str, answer: str, rtype: str, ttl: float, ts: float) -> None:
        """A DNS answer seen on the wire (A/AAAA address or CNAME target) for passive DNS."""
        self.sink.dns_answer(query, answer, rtype, ttl, ts)

    # -- related connections ------------------------------------------------------
    def expect(self, orig_h: str | None, resp_h: str, resp_p: int, service: str, ts: float,
               timeout: float = 300.0) -> None:
        """A connection to resp_h:resp_p (from orig_h, or anyone when None) is expected,
        e.g. an FTP data channel announced by PORT/PASV/EPRT/EPSV; it will carry ``service``
        and name this connection's uid as its parent."""
        self.sink.expect(self, orig_h, resp_h, resp_p, service, ts, timeout)


class Analyzer:
    """Base class: per connection, per protocol."""
    NAME = ""

    def __init__(self, ctx: FlowContext):
        self.ctx = ctx

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        """In-order stream bytes of one direction (TCP)."""

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        """``length`` bytes of this direction were never seen (capture loss)."""

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        """One UDP payload."""

    def done(self, ts: float) -> None:
        """The connection ended: flush pending records (e.g. a request without response)."""

    def wants_more(self) -> bool:
        """False once the analyzer has all it needs; the dispatcher then stops feeding it."""
        return True
