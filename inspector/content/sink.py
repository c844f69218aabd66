"""The content stage as a sink of the pipeline: payload events in, content fields and records out.

Protocol dispatch does not inspect anything.  For each connection with one local
and one non-local side it opens a handle here (:meth:`ContentSink.open`) and
then emits events for the bytes that *leave the site*:

* ``body(h, info, data)``: a message body (HTTP request body, SMTP DATA), or what
  a log record carries (a DNS query name, see ``LOG_CONTENT`` in protocols/base.py);
* ``stream(h, data)``: in-order stream bytes of a protocol without message
  structure (unknown TCP protocols, FTP data channels), up to the stream budget;
* ``datagram(h, data)``: one UDP payload, up to ``DATAGRAMS`` per connection;
* ``icmp(h, remote, data)``: one ICMP echo payload (``tunnels.py`` decodes echo tunnels as
  sessions); DNS query bodies (``info["qname"]``) and ``dns_answer(h, qname, data)`` (TXT/NULL
  answer data) go through the same sessions, so data cut across many queries or pings is
  reassembled before it is inspected.

It asks back only what steers its own work (is the stream budget spent, is the
leaving stream still worth reading), and says ``structured(h)`` when a protocol
that hands bodies (or nothing) takes over the connection.

Files (files.jsonl, the content stage's ``files`` stage) are seen in every
direction: message bodies (``file_body``) and announced data channels
(``data_channel`` then ``channel_events``) of any connection; ``end_files`` writes
a data channel's files when the connection ends.

On a batch of ended flow records :meth:`finish` adds the per-flow content fields
(``FLOW_CONTENT_FIELDS``) and emits a ``content`` record for each flow where
something was found; encrypted services (``ENCRYPTED`` declarations) count their
leaving bytes as their payload type.
"""
from __future__ import annotations

from .files import SOURCES, ftp_filename
from .stage import FLOW_CONTENT_FIELDS, ContentFlow, ContentStage, empty_fields
from .tunnels import Tunnels

__all__ = ["ContentSink", "DATAGRAMS", "OPAQUE_TYPES", "FLOW_CONTENT_FIELDS", "add_empty_fields"]

DATAGRAMS = 64          # leaving UDP payloads inspected per connection
# Payload types not worth reading as a raw stream (encrypted, compressed or media).
OPAQUE_TYPES = ("tls-encrypted", "encrypted-or-compressed", "image", "binary", "zip", "gzip", "pdf", "office")
_LEAVE = {"outbound": True, "inbound": False}
_UDP = {"source": "udp"}


class ContentSink:
    """Per-connection content state keyed by uid, fed by dispatch events.

    ``site`` decides which side is local; ``encrypted`` maps a service to the payload
    type its bytes count as (``Contributions.encrypted``); ``emit(log, record)``
    receives the ``content`` records.  Content-stage anomalies are collected in
    ``weirds`` as (ts, uid, name, detail), ``ts`` being the connection start.
    """

    def __init__(self, stage: ContentStage, site, encrypted: dict | None = None, emit=None):
        self.stage = stage
        self.site = site
        self.encrypted = dict(encrypted or {})
        self.emit = emit
        self.flows: dict = {}       # uid -> ContentFlow of connections still open
        self.weirds: list = []
        owner = getattr(stage.weird, "__self__", None)
        if stage.weird is None or isinstance(owner, ContentSink):
            stage.weird = self._weird   # a stage reused run after run reports to the current run
        self.show_raw = stage.show_raw
        self.stream_budget = stage.stream_budget
        self.files = getattr(stage, "files", None)   # FilesStage (files.jsonl) or None
        if self.files is not None:
            self.files.emit = emit
        self.tunnels = Tunnels(self._inspect, self._yield)

    # -- events from dispatch ----------------------------------------------------------
    def open(self, uid: str, ts: float, orig_h: str, resp_h: str) -> ContentFlow | None:
        """A handle for a connection whose payload may leave the site, or None when both
        sides are local or both are not, or one is a multicast/broadcast address, which stays on
        the link (nothing of it leaves)."""
        site = self.site
        if site.is_multicast_or_broadcast(orig_h) or site.is_multicast_or_broadcast(resp_h):
            return None
        lo, lr = site.is_local(orig_h), site.is_local(resp_h)
        if lo == lr:
            return None
        cf = ContentFlow(uid, ts, bool(lo))    # orig local -> what the originator sends leaves
        self.flows[uid] = cf
        self.tunnels.open(uid, orig_h if lo else resp_h)
        return cf

    def body(self, cf: ContentFlow, info: dict, data: bytes) -> None:
        if info.get("qname"):
            self.tunnels.dns_query(cf, info, data)     # a query name: maybe one piece of a tunnel
        else:
            self.stage.body(cf, info, data, cf.uid)

    def icmp(self, cf: ContentFlow, remote: str, data: bytes) -> bool:
        """One ICMP echo payload leaving the site; False once the connection is not worth feeding
        (ordinary pings, or the session's budget spent)."""
        return self.tunnels.icmp(cf, remote, data)

    def dns_answer(self, cf: ContentFlow, qname: str, data: bytes) -> None:
        """TXT/NULL answer data leaving the site (a local server answering outside)."""
        self.tunnels.dns_answer(cf, qname, data)

    def _inspect(self, cf: ContentFlow, info: dict, data: bytes) -> None:
        self.stage.body(cf, info, data, cf.uid)

    def request(self, cf: ContentFlow, info: dict) -> None:
        """A request that leaves (HTTP): query string, cookies, custom headers, upload API."""
        self.stage.request(cf, info, cf.uid)

    def _yield(self, data: bytes) -> int:
        """Records (x1000) and distinct values found in ``data``: how well a decoding reads."""
        stage = self.stage
        rc = stage.records_mod.count_records(data, stage.types.classify(data)[0])
        return 1000 * (rc.customer + rc.shipment) + sum(len(v) for v in rc.data.values())

    def stream(self, cf: ContentFlow, data: bytes) -> None:
        self.stage.stream(cf, data)

    def datagram(self, cf: ContentFlow, data: bytes) -> None:
        if cf.bodies < DATAGRAMS:
            self.stage.body(cf, _UDP, data, cf.uid)

    def stream_source(self, cf: ContentFlow, source: str) -> None:
        """The raw stream is a known kind of transfer (``ftp-data``), unless already described."""
        if cf.stream_info is None:
            cf.stream_info = {"source": source}

    def structured(self, cf: ContentFlow) -> None:
        """A protocol that hands message bodies (or nothing readable) took the connection over:
        the raw bytes gathered so far are not its content."""
        cf.stream = bytearray()

    # -- files, every direction --------------------------------------------------------------
    def file_body(self, ff, ctx, leave, is_orig: bool, info: dict, data: bytes):
        """A message body as a file (``ff``: the connection's FilesFlow, None before its first
        file; ``ctx`` its FlowContext); returns the FilesFlow.  A files-stage failure is a
        ``files.error`` weird and costs nothing else."""
        if ff is None:
            ff = self.files.new_flow(ctx, leave)
        try:
            self.files.body(ff, is_orig, info, data)
        except Exception as e:
            self.files_error(ctx.uid, ctx.ts, e)
        return ff

    def file_data(self, ff, ctx, leave, is_orig: bool, chunk):
        """Body bytes as they pass (HTTP), before the body is delivered; returns the FilesFlow."""
        if ff is None:
            ff = self.files.new_flow(ctx, leave)
        self.files.body_data(ff, is_orig, chunk)
        return ff

    def file_gap(self, ff, ctx, leave, is_orig: bool, length: int):
        """``length`` body bytes never seen (capture loss); returns the FilesFlow."""
        if ff is None:
            ff = self.files.new_flow(ctx, leave)
        self.files.body_gap(ff, is_orig, length)
        return ff

    def data_channel(self, ctx, leave, service: str, announcer):
        """An announced connection whose bytes are files (``FILE_CHANNELS``): its FilesFlow, the
        file named by the announcing analyzer's transfer in progress (the command is sent before
        the data flows); None when there is no files stage."""
        if self.files is None:
            return None
        current = getattr(announcer, "current_transfer", None)
        xfer = current() if current is not None else None
        ff = self.files.new_flow(ctx, leave)
        self.files.open_channel(ff, SOURCES.get(service, service.upper()), ftp_filename(xfer["arg"]) if xfer else None,
                                xfer["size"] if xfer else None)
        return ff

    def channel_events(self, ff, is_orig: bool, events, ts) -> None:
        self.files.channel_events(ff, is_orig, events, ts)

    def end_files(self, ff, ts) -> None:
        self.files.end_flow(ff, ts)

    def files_error(self, uid, ts, e: Exception) -> None:
        self.weirds.append((ts, uid, "files.error", f"{type(e).__name__}: {e}"))

    # -- what steers the dispatcher's feeding ----------------------------------------------
    def stream_full(self, cf: ContentFlow) -> bool:
        return len(cf.stream) >= self.stream_budget

    def datagrams_full(self, cf: ContentFlow) -> bool:
        return cf.bodies >= DATAGRAMS

    def wants_stream(self, cf: ContentFlow) -> bool:
        """Is more of the leaving stream worth reading: budget left, and what came so far is
        not encrypted, compressed or media, unless it is an archive, a compression format or a
        binary encoding the stage opens (``ContentStage.openable``)?"""
        if len(cf.stream) >= self.stream_budget:
            return False
        head = bytes(cf.stream[:4096])
        if not head:
            return True
        ptype, _ = self.stage.types.classify(head)
        return ptype not in OPAQUE_TYPES or self.stage.openable(head)

    # -- ended flows ---------------------------------------------------------------------
    def finish(self, records) -> None:
        """Add ``FLOW_CONTENT_FIELDS`` to each record of an ended batch (a ``FlowBatch``: its
        payload byte counts are the application bytes); emit the ``content`` records."""
        stage = self.stage
        flows = self.flows
        encrypted = self.encrypted
        for r, ob, rb in zip(records, records.orig_payload, records.resp_payload):
            uid = r["uid"]
            cf = flows.get(uid)
            leave = cf.leave if cf is not None else _LEAVE.get(r["direction"])
            if leave is None:
                r.update(empty_fields())
                continue
            app_bytes = (ob if leave else rb) or 0
            if cf is None:
                cf = ContentFlow(uid, r["ts"], leave)
            else:
                self.tunnels.finish_flow(cf)     # its share of decoded tunnel data, held queries
            svc = r["service"]
            if svc and encrypted:
                enc = next((encrypted[x] for x in svc.split(",") if x in encrypted), None)
                if enc is not None:
                    # Encrypted: nothing to read; its bytes are typed as such.
                    stage.opaque(cf, enc, max(app_bytes - sum(cf.bytes_by_type.values()), 0))
            fields, record = stage.finish(cf, uid, r["ts"], r["direction"], app_bytes)
            flows.pop(uid, None)
            if record is not None and self.emit is not None:
                # the connection's endpoints after uid, and its input file (drill-down)
                rec = {"ts": record["ts"], "uid": uid}
                for k in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"):
                    rec[k] = r.get(k)
                rec.update(record)
                rec["capture"] = r.get("capture")
                self.emit("content", rec)
            r.update(fields)

    def _weird(self, uid, name: str, detail: str) -> None:
        cf = self.flows.get(uid)
        self.weirds.append((cf.ts if cf is not None else None, uid, name, detail))


def add_empty_fields(records) -> None:
    """The content fields of flows when no content stage runs (nothing inspected)."""
    for r in records:
        r.update(empty_fields())
