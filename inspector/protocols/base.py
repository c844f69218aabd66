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
* registration: one line in ``MODULES`` (``inspector/protocols/__init__.py``); code
  outside the package (plug-ins, tests) calls ``protocols.register(module)``.

Analyzers talk to the rest of the pipeline only through ``FlowContext``.

What a module contributes to the rest of the pipeline
-----------------------------------------------------
Besides detection and analysis, a module *declares* (module-level names, in a
block of their own at the end of the module) what the pipeline does with its
output.  The dispatcher, the protocol-log masking, the content stage, destination
naming and the alerts read these declarations through :class:`Contributions`;
none of them names a protocol.  Every name is optional (default in brackets):

* ``APP_PROTO``: ``{service: EVE app_proto}`` for the services the module
  confirms (``{"ssl": "tls"}``) [``{NAME: NAME}``];
* ``PII_FIELDS``: ``{log: (field, ...)}``: log fields that carry people's
  addresses, masked before the record is written unless the run shows raw values
  (``--show-raw``) [none];
* ``NAME_SOURCES``: the ``ctx.hostname()`` sources the module reports, best
  first (``("sni",)``).  A connection's destination name comes from the first
  source, in registry order, that named it; passive DNS comes after all of them
  [none];
* ``NAME_FALLBACKS``: ``ctx.hostname()`` sources weaker than passive DNS, best
  first (``("x509",)``: the server certificate names a flow only when the
  connection and DNS named nothing) [none];
* ``FACTS``: ``{name: doc}``: the facts the module states about a connection
  with ``ctx.fact()`` (``tls.cert_self_signed``...); flows carry them in
  ``facts`` and rules match them (``match: {facts: [...]}``) [none];
* ``CONTENT``: how the connection's payload reaches the content stage:
  ``"raw"`` the stream (or datagrams) that leave the site are the content;
  ``"bodies"`` the analyzer hands message bodies through ``ctx.sink.body``
  (HTTP, SMTP) and the raw stream is not inspected; ``"log"`` the module's log
  records carry it (``LOG_CONTENT``); ``"none"`` nothing to read (encrypted, or
  a control channel whose data flows elsewhere) [``"raw"``];
* ``ENCRYPTED``: the payload type the connection's leaving bytes are counted as
  when the service was confirmed (``"tls-encrypted"``) [None: cleartext];
* ``LOG_CONTENT``: ``{log: function(record) -> (info, payload) or None}``: what a
  record of that log carries out of the site *as sent by the originator*
  (DNS query names); ``info`` is the content stage's body description [none];
* ``FILE_CHANNELS``: services of the connections the module announces
  (``ctx.expect``) whose bytes are files (files.jsonl); the announcing
  analyzer's ``current_transfer()`` (``{"arg": ..., "size": ...}`` or None)
  names the file in progress [none];
* ``UPGRADE_PROBE``: ``function(data) -> bool`` on an originator chunk inside a
  running stream: the stream turns into this protocol here (TLS after STARTTLS
  or after a preamble no probe knows) [none];
* ``HTTP_UPGRADE``: HTTP ``Upgrade`` tokens (``("websocket",)``): after a 101 Switching
  Protocols answering that token, the rest of the connection runs this module's analyzer,
  whose ``upgraded(info)`` (if any) receives the handshake (``extensions``: the response's
  ``Sec-WebSocket-Extensions``) [none];
* ``JOINED_PROBE``: ``function(orig_head, resp_head, final) -> bool`` on the first
  bytes of both directions of a connection no probe recognised: a session of
  this protocol joined after its start; ``final`` when the connection ended
  (weaker evidence suffices then) [none].

Adding a protocol stays one module plus one registry line: nothing outside the
module names it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PROBE_BYTES = 2048
CONTENT_KINDS = ("raw", "bodies", "log", "none")


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
        """A name for the responder seen in this connection: source is one the module declares
        in ``NAME_SOURCES`` or ``NAME_FALLBACKS`` (``sni``, ``sni_outer``, ``quic_sni``,
        ``http_host``, ``x509``)."""
        self.sink.hostname(self, source, name, ts)

    def fact(self, name: str, ts: float) -> None:
        """A fact about this connection the policy can use (a name the module declares in
        ``FACTS``, e.g. ``tls.cert_expired``).  Sinks that collect no destination evidence (test
        doubles) ignore it."""
        fn = getattr(self.sink, "fact", None)
        if fn is not None:
            fn(self, name, ts)

    def certificate(self, subject: str | None, issuer: str | None, ts: float) -> None:
        """The responder's own certificate (RFC 4514 subject and issuer): destination groups may
        match it (a provider's issuing CA).  Ignored by sinks without destination evidence."""
        fn = getattr(self.sink, "certificate", None)
        if fn is not None:
            fn(self, subject, issuer, ts)

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


class Contributions:
    """The declarations of a list of protocol modules, merged for the stages that read them.

    Built once per pipeline from the loaded modules; a module with a malformed
    declaration is refused here (``ValueError``) rather than misbehaving later.
    """

    def __init__(self, modules):
        self.modules = list(modules)
        self.app_proto: dict = {}       # service -> EVE app_proto
        self.pii: dict = {}             # log -> field names to mask
        self.encrypted: dict = {}       # service -> payload type of its bytes
        self.log_content: dict = {}     # log -> function(record) -> (info, payload) | None
        self.upgrades: list = []        # (module, function(data) -> bool)
        self.joined: list = []          # (module, function(orig_head, resp_head, final) -> bool)
        self.http_upgrades: dict = {}   # HTTP Upgrade token (lower case) -> module
        file_channels = set()
        no_raw = set()
        sources: list = []
        fallbacks: list = []
        self.facts: dict = {}           # fact name -> one line saying what it means
        for m in self.modules:
            name = m.NAME
            for service, proto in getattr(m, "APP_PROTO", {name: name}).items():
                self.app_proto.setdefault(service, proto)
            for log, fields in getattr(m, "PII_FIELDS", {}).items():
                merged = self.pii.setdefault(log, ())
                self.pii[log] = merged + tuple(f for f in fields if f not in merged)
            for src in getattr(m, "NAME_SOURCES", ()):
                if src not in sources:
                    sources.append(src)
            for src in getattr(m, "NAME_FALLBACKS", ()):
                if src not in fallbacks:
                    fallbacks.append(src)
            facts = getattr(m, "FACTS", {})
            if not isinstance(facts, dict) or not all(isinstance(k, str) and "." in k for k in facts):
                raise ValueError(f"protocol {name}: FACTS must map '<layer>.<name>' strings to their meaning")
            for fact, doc in facts.items():
                self.facts.setdefault(fact, doc)
            kind = getattr(m, "CONTENT", "raw")
            if kind not in CONTENT_KINDS:
                raise ValueError(f"protocol {name}: CONTENT must be one of {CONTENT_KINDS}, not {kind!r}")
            if kind != "raw":
                no_raw.add(name)
            enc = getattr(m, "ENCRYPTED", None)
            if enc is not None:
                self.encrypted.setdefault(name, enc)
            file_channels.update(getattr(m, "FILE_CHANNELS", ()))
            for log, fn in getattr(m, "LOG_CONTENT", {}).items():
                self.log_content.setdefault(log, fn)
            for token in getattr(m, "HTTP_UPGRADE", ()):
                self.http_upgrades.setdefault(str(token).lower(), m)
            for attr, dest in (("UPGRADE_PROBE", self.upgrades), ("JOINED_PROBE", self.joined)):
                fn = getattr(m, attr, None)
                if fn is not None:
                    if not callable(fn):
                        raise ValueError(f"protocol {name}: {attr} must be callable")
                    dest.append((m, fn))
        self.no_raw = frozenset(no_raw)         # module NAMEs whose raw stream is not content
        self.name_sources = tuple(sources)      # hostname sources, best first
        # sources weaker than passive DNS, best first (a source declared both ways is a source)
        self.name_fallbacks = tuple(f for f in fallbacks if f not in sources)
        self.file_channels = frozenset(file_channels)   # announced services whose bytes are files

    def app_proto_of(self, services) -> str | None:
        """EVE ``app_proto`` of a connection from its confirmed services (the first one
        declared), else its first service, else None."""
        for s in services:
            p = self.app_proto.get(s)
            if p:
                return p
        return services[0] if services else None
