"""The application layer: streams, protocol detection and analyzers, destinations.

Driven by the flow table once per batch (``on_rows``) and once per ended batch of
connections (``on_end``).  Per-flow Python runs only where payload needs it:
rows go to Python only for connections still being analysed (a numpy state per
flow id says which), and only rows that carry payload or open/close a TCP stream.

For each connection:
* TCP: a ``Reassembler`` per direction turns segments into in-order data and gaps;
* detection: the first bytes of each direction are offered to every protocol's
  ``probe`` (modules whose port hints match first); the first match gets an
  ``Analyzer``, fed the buffered data, then the stream as it comes;
* no match within the detection depth: the connection is left alone;
* the analyzer stops being fed once it ``wants_more()`` no longer.

At the end of a connection ``on_end`` adds to its record: ``service`` (the
confirmed protocols, as Zeek writes it), the destination name with its source
(``sni``, ``quic_sni``, ``http_host``, ``dns`` from passive DNS), and the
destination's country, ASN, organisation, group, category and allow-listing.
"""
from __future__ import annotations

import ipaddress
import re
from collections import defaultdict

import numpy as np

from .content.stage import FLOW_CONTENT_FIELDS, empty_fields
from .outputs.schema import DEST_FLOW_FIELDS, names
from .pdns import PassiveDNS
from .protocols import load as load_protocols
from .protocols.base import PROBE_BYTES, FlowContext
from .sniff import client_hello as _client_hello, printable_ascii as _texty, tls_records as _tls_records
from .streams import ReassemblyBudget, Reassembler

FIN, SYN, RST = 1, 2, 4
DETECT_PACKETS = 3          # payload packets per direction offered to the probes before giving up
PROBE_CHUNKS = 2            # chunks per direction after which the probes are no longer re-run
UDP_DETECT_DATAGRAMS = 3
WATCH_CHUNKS = 24           # data chunks checked for a late TLS ClientHello after detection ends
NAME_PRECEDENCE = ("sni", "quic_sni", "http_host")
STRUCTURED = ("http", "smtp")                 # analyzers that hand message bodies to the content stage
ENCRYPTED = {"ssl": "tls-encrypted", "quic": "tls-encrypted", "ssh": "encrypted-or-compressed"}
NO_RAW = ("http", "smtp", "ssl", "quic", "ssh", "dns", "ftp")   # no raw-stream content for these
OPAQUE_TYPES = ("tls-encrypted", "encrypted-or-compressed", "image", "binary", "zip", "gzip", "pdf", "office")
UDP_CONTENT_DATAGRAMS = 64
APP_FIELDS = names(DEST_FLOW_FIELDS)        # declared in inspector/outputs/schema.py

ST_NEW, ST_ACTIVE, ST_DONE = 0, 1, 2


# Log fields that carry people's addresses: masked unless --show-raw (content stage's setting).
PII_FIELDS = {"smtp": ("mailfrom", "rcptto", "from", "to", "cc", "reply_to"), "http": ("uri", "referrer"),
              "ftp": ("arg",), "files": ("filename",)}
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _mask_text(text):
    if not isinstance(text, str) or ("@" not in text and "%40" not in text.lower()):
        return text
    from .content.identifiers import mask
    return _EMAIL_RE.sub(lambda m: mask("email", m.group(0).replace("%40", "@").replace("%40".upper(), "@")),
                         text)


def _mask_record(record: dict, fields) -> dict:
    out = dict(record)
    for k in fields:
        v = out.get(k)
        if isinstance(v, list):
            out[k] = [_mask_text(x) for x in v]
        elif isinstance(v, (set, tuple)):
            out[k] = [_mask_text(x) for x in v]
        elif v is not None:
            out[k] = _mask_text(v)
    return out


def _qname_payload(qname: str) -> bytes:
    """What a query name can carry: the labels left of the registered domain, space-separated (data
    in a label), then joined (data split over labels)."""
    from .content.decoding import dns_labels_payload
    from .domain import registered_domain
    name = qname.strip().rstrip(".")
    labels = name.split(".")
    reg = registered_domain(name.lower())
    keep = len(labels) - (reg.count(".") + 1 if reg else len(labels))
    if keep <= 0:
        return b""
    dotted = " ".join(labels[:keep]).encode("utf-8", "surrogatepass")
    joined = dns_labels_payload(name)
    return dotted + b" " + joined if keep > 1 else dotted


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class _FlowApp:
    __slots__ = ("ctx", "analyzer", "reasm", "pending", "pbuf", "npay", "names", "pending_bytes",
                 "module", "ended", "ftp_parent", "watch", "fid", "leave", "content", "raw", "started", "files")

    def __init__(self, ctx):
        self.ctx = ctx
        self.analyzer = None
        self.module = None
        self.reasm = None
        self.pending = []          # (is_orig, kind, value, ts) before detection, in arrival order
        self.pending_bytes = 0
        self.pbuf = [b"", b""]     # first bytes per direction: [resp, orig]
        self.npay = [0, 0]
        self.names = {}            # source -> (ts, name)
        self.ended = False
        self.ftp_parent = None
        self.watch = 0             # data chunks still checked for a TLS ClientHello (STARTTLS and the like)
        self.leave = None          # the is_orig value of the direction that leaves the site, or None
        self.content = None        # content.stage.ContentFlow for connections with a leaving direction
        self.raw = False           # only raw leaving stream bytes are still wanted (content stage)
        self.started = False
        self.files = None          # content.files.FilesFlow once a file was seen (or a data channel)


class AppLayer:
    def __init__(self, site=None, enricher=None, log_sink=None, modules=None, reassembly_cap: int = 64 << 20,
                 content=None):
        self.site = site
        self.content = content     # content.stage.ContentStage or None
        if content is not None and getattr(content, "weird", None) is None:
            content.weird = self._content_weird
        self.files = getattr(content, "files", None)   # content.files.FilesStage: files.jsonl
        if self.files is not None:
            self.files.emit = self.emit
        self.enricher = enricher
        self.modules = modules if modules is not None else load_protocols()
        self.tcp_modules = [m for m in self.modules if "tcp" in m.TRANSPORTS]
        self.udp_modules = [m for m in self.modules if "udp" in m.TRANSPORTS]
        self.tls_module = next((m for m in self.modules if m.NAME == "ssl"), None)
        self.by_port = {"tcp": defaultdict(list), "udp": defaultdict(list)}
        for m in self.modules:
            for t in m.TRANSPORTS:
                for p in getattr(m, "PORTS", ()):
                    self.by_port[t][p].append(m)
        self.flows: dict = {}
        self._by_uid: dict = {}
        self.state = np.zeros(0, dtype=np.int8)
        self.isn = np.zeros((0, 2), dtype=np.int64)   # per flow and direction: SYN sequence number, -1 none
        self.pdns = PassiveDNS()
        self.budget = ReassemblyBudget(reassembly_cap)
        self.expected: dict = {}   # (resp_h, resp_p) -> [(orig_h|None, service, parent_uid, expires)]
        self.logs = defaultdict(list)
        self.log_sink = log_sink   # callable(log, record) or None to keep records in self.logs
        self.weirds: list = []     # (ts, uid, name, detail)
        self.table = None
        self.stats = defaultdict(int)

    # -- the sink analyzers talk to (through FlowContext) ------------------------------
    def emit(self, log: str, record: dict) -> None:
        if log == "dns" and self.content is not None:
            self._dns_content(record)
        if log in PII_FIELDS and (self.content is None or not self.content.show_raw):
            record = _mask_record(record, PII_FIELDS[log])
        if self.log_sink is not None:
            self.log_sink(log, record)
        else:
            self.logs[log].append(record)

    def _content_weird(self, uid, name: str, detail: str) -> None:
        """Content-stage anomalies (type mismatch, decompression limits) as weird records."""
        fa = self._by_uid.get(uid)
        self.weirds.append((fa.ctx.ts if fa is not None else None, uid, name, detail))

    def _dns_content(self, record: dict) -> None:
        """Query names sent to a non-local resolver leave the site: their labels may carry data."""
        q = record.get("original_query") or record.get("query")
        fa = self._by_uid.get(record.get("uid"))
        if not q or fa is None or fa.content is None or not fa.leave:
            return
        payload = _qname_payload(q)
        if payload:
            self.content.body(fa.content, {"source": "dns"}, payload, fa.ctx.uid)

    def weird(self, ctx, name: str, detail: str, ts) -> None:
        self.weirds.append((ts if ts is not None else ctx.ts, ctx.uid, name, detail))

    def hostname(self, ctx, source: str, name: str, ts: float) -> None:
        fa = ctx.sink_flow
        if fa is None or not name or source in fa.names:
            return
        name = name.strip().rstrip(".").lower()
        if name.startswith("[") or _is_ip_literal(name):
            return  # an address literal names nothing
        fa.names[source] = (ts, name)

    def body(self, ctx, is_orig: bool, info: dict, data: bytes) -> None:
        """A message body from an analyzer (HTTP, SMTP): a file in every direction (files.jsonl),
        inspected when it leaves the site."""
        fa = ctx.sink_flow
        if fa is None:
            return
        if self.files is not None:
            try:
                self.files.body(self._files_flow(fa), is_orig, info, data)
            except Exception as e:       # a files bug must not cost the flow its content inspection
                self.weirds.append((ctx.ts, ctx.uid, "files.error", f"{type(e).__name__}: {e}"))
        if fa.content is not None and is_orig == fa.leave and data:
            self.content.body(fa.content, info, data, ctx.uid)

    def body_data(self, ctx, is_orig: bool, chunk) -> None:
        """Body bytes as they pass (HTTP): the files stage hashes whole files from them."""
        fa = ctx.sink_flow
        if self.files is not None and fa is not None:
            self.files.body_data(self._files_flow(fa), is_orig, chunk)

    def body_gap(self, ctx, is_orig: bool, length: int) -> None:
        fa = ctx.sink_flow
        if self.files is not None and fa is not None:
            self.files.body_gap(self._files_flow(fa), is_orig, length)

    def _files_flow(self, fa):
        if fa.files is None:
            fa.files = self.files.new_flow(fa.ctx, fa.leave)
        return fa.files

    def dns_answer(self, query: str, answer: str, rtype: str, ttl: float, ts: float) -> None:
        self.pdns.answer(query, answer, rtype, ttl, ts)

    def expect(self, ctx, orig_h, resp_h, resp_p, service, ts, timeout) -> None:
        lst = self.expected.setdefault((resp_h, int(resp_p)), [])
        lst.append((orig_h, service, ctx.uid, ts + timeout))
        if len(lst) > 64:
            del lst[0]

    # -- per batch -------------------------------------------------------------------
    def on_rows(self, table, db, row_fid, row_orig, row_new) -> None:
        self.table = table
        if len(self.state) < table.cap:
            st = np.full(table.cap, ST_NEW, dtype=np.int8)
            st[:len(self.state)] = self.state
            self.state = st
            isn = np.full((table.cap, 2), -1, dtype=np.int64)
            isn[:len(self.isn)] = self.isn
            self.isn = isn
        c = db.cols
        state = self.state
        new_rows = np.nonzero(row_new)[0]
        if len(new_rows):
            nf = row_fid[new_rows]
            for f in nf.tolist():
                old = self.flows.pop(f, None)   # defensive: a slot is only reused after on_end
                if old is not None:
                    self._release(old)
            state[nf] = ST_NEW
            self.isn[nf] = -1
        proto = c["proto"]
        pay = c["pay_cap"]
        live = state[row_fid] != ST_DONE
        # SYNs only tell the reassembler where data starts: recorded column-wise, no Python per row.
        syn = np.nonzero(live & (proto == 6) & ((c["flags"] & SYN) != 0))[0]
        if len(syn):
            sf = row_fid[syn]
            so = row_orig[syn].astype(np.int64)
            unset = self.isn[sf, so] < 0
            self.isn[sf[unset], so[unset]] = c["seq"][syn][unset]
        rows = np.nonzero(live & (pay > 0) & ((proto == 6) | (proto == 17)))[0]
        if not len(rows):
            return
        fids = row_fid[rows]
        flows = self.flows
        fresh = np.unique(fids)
        fresh = fresh[[f not in flows for f in fresh.tolist()]]
        if len(fresh):
            self._new_flows(table, fresh)
        origs = row_orig[rows].tolist()
        protos = proto[rows].tolist()
        flags = c["flags"][rows].tolist()
        seqs = c["seq"][rows].tolist()
        tss = c["ts"][rows].tolist()
        for i, f, is_orig, pr, flg, seq, ts in zip(rows.tolist(), fids.tolist(), origs, protos, flags, seqs, tss):
            if state[f] == ST_DONE:
                continue
            fa = flows[f]
            if not fa.started:
                fa.started = True
                fa.ctx.transport = "tcp" if pr == 6 else "udp"
                # In packet order, so a data channel announced earlier in this batch is recognised.
                if self.expected:
                    self._expected_flow(fa, ts)
            try:
                if pr == 6:
                    self._tcp(f, fa, is_orig, flg, seq, db.payload(i), ts)
                else:
                    self._udp(f, fa, is_orig, db.payload(i), ts)
            except Exception as e:  # an analyzer bug must not stop the scan
                name = fa.module.NAME if fa.module is not None else "app"
                self.weirds.append((ts, fa.ctx.uid, f"{name}.analyzer_error", f"{type(e).__name__}: {e}"))
                self._stop(f, fa)

    def _new_flows(self, table, fids: np.ndarray) -> None:
        """Per-connection state for connections whose first payload arrives (uids and
        endpoints computed for all of them at once)."""
        uids = table.uids(fids)
        ends = table.endpoints_many(fids)
        ts0 = table.FF[fids, 0].tolist()
        site = self.site
        for f, uid, (oh, op, rh, rp), t0 in zip(fids.tolist(), uids, ends, ts0):
            ctx = FlowContext(uid=uid, ts=t0, orig_h=oh, orig_p=op, resp_h=rh, resp_p=rp, transport="tcp", sink=self)
            fa = _FlowApp(ctx)
            fa.fid = f
            ctx.sink_flow = fa
            if self.content is not None and site is not None:
                lo, lr = site.is_local(oh), site.is_local(rh)
                if lo != lr:
                    fa.leave = bool(lo)   # orig local -> what the originator sends leaves
                    fa.content = self.content.new_flow()
            self.flows[f] = fa
            self._by_uid[uid] = fa

    def _expected_flow(self, fa, ts) -> bool:
        """Is this new connection one an analyzer announced (FTP data channel)?"""
        ctx = fa.ctx
        lst = self.expected.get((ctx.resp_h, ctx.resp_p))
        if not lst:
            return False
        for k, (eo, service, parent, expires) in enumerate(lst):
            if ts <= expires and (eo is None or eo == ctx.orig_h):
                del lst[k]
                if not lst:
                    del self.expected[(ctx.resp_h, ctx.resp_p)]
                ctx.confirm(service)
                fa.ftp_parent = parent
                if self.files is not None and service == "ftp-data":
                    self._data_channel(fa, parent)
                if fa.content is not None:
                    fa.raw = True          # the content stage reads what the data channel carries out
                    if fa.content.stream_info is None:
                        fa.content.stream_info = {"source": service}
                elif fa.files is not None:
                    fa.raw = True          # only the files stage reads it (both directions)
                else:
                    self.state[self.flows_fid(fa)] = ST_DONE
                return True
        return False

    def flows_fid(self, fa) -> int:
        return fa.fid

    def _data_channel(self, fa, parent_uid) -> None:
        """An FTP data connection: its bytes are a file named by the control connection's transfer
        command in progress (the command is sent before the data flows)."""
        from .content.files import ftp_filename
        pa = self._by_uid.get(parent_uid)
        current = getattr(pa.analyzer, "current_transfer", None) if pa is not None else None
        xfer = current() if current is not None else None
        self.files.open_channel(self._files_flow(fa), "FTP_DATA", ftp_filename(xfer["arg"]) if xfer else None,
                                xfer["size"] if xfer else None)

    # -- TCP ---------------------------------------------------------------------------
    def _tcp(self, f, fa, is_orig, flags, seq, payload, ts) -> None:
        if fa.reasm is None:
            fa.reasm = [Reassembler(self.budget), Reassembler(self.budget)]
            for d in (0, 1):
                s0 = int(self.isn[f, d])
                if s0 >= 0:
                    fa.reasm[d].syn(s0)
        r = fa.reasm[is_orig]
        if flags & SYN:
            r.syn(seq)
            seq = (seq + 1) & 0xFFFFFFFF
        if not payload:
            return
        before = r.inconsistent
        caps = self.budget.cap_hits
        events = r.add(seq, payload)
        if r.inconsistent != before:
            self.weirds.append((ts, fa.ctx.uid, "tcp.inconsistent_retransmission",
                                f"{'orig' if is_orig else 'resp'} data differs from the first copy"))
        if self.budget.cap_hits != caps:
            self.stats["reassembly_cap_hits"] += 1
            self.weirds.append((ts, fa.ctx.uid, "tcp.reassembly_memory_cap", "gave up waiting for missing data"))
        if events and fa.content is not None and is_orig == fa.leave and \
                (fa.module is None or fa.module.NAME not in NO_RAW):
            for kind, val in events:
                if kind == "data":
                    self.content.stream(fa.content, val)
        channel = fa.files is not None and fa.files.source is not None
        if channel and events:
            self.files.channel_events(fa.files, is_orig, events, ts)
        if fa.raw:
            if not channel and (fa.content is None or len(fa.content.stream) >= self.content.stream_budget):
                self._stop(f, fa, final=True)
            return
        if events:
            self._deliver(f, fa, is_orig, events, ts)
        if fa.analyzer is None and not fa.watch and not fa.raw and self.state[f] != ST_DONE:
            fa.npay[is_orig] += 1
            if fa.npay[0] >= DETECT_PACKETS and fa.npay[1] >= DETECT_PACKETS or \
                    fa.npay[0] + fa.npay[1] >= 3 * DETECT_PACKETS:
                self._undetected(f, fa)

    def _deliver(self, f, fa, is_orig, events, ts) -> None:
        an = fa.analyzer
        if an is None and fa.watch:
            self._watch_tls(f, fa, is_orig, events, ts)
            return
        if an is None:
            if is_orig and self.tls_module is not None:
                for n, (kind, val) in enumerate(events):
                    if kind == "data" and n + len(fa.pending) > 0 and _client_hello(val):
                        # TLS after a preamble this dispatcher does not know (MySQL SSLRequest, RDP X.224...)
                        fa.pending = []
                        self._start(f, fa, self.tls_module, ts)
                        self._deliver(f, fa, is_orig, events[n:], ts)
                        return
            for kind, val in events:
                fa.pending.append((is_orig, kind, val, ts))
                if kind == "data":
                    room = PROBE_BYTES - len(fa.pbuf[is_orig])
                    if room > 0:
                        fa.pbuf[is_orig] += val[:room]
                    fa.pending_bytes += len(val)
            # The first chunks of a direction decide; later ones add little but cost every probe.
            module = self._probe(fa, "tcp", is_orig) if fa.npay[is_orig] < PROBE_CHUNKS else None
            if module is None:
                if fa.pending_bytes > 4 * PROBE_BYTES:
                    self._undetected(f, fa)
                return
            self._start(f, fa, module)
            pending, fa.pending = fa.pending, []
            an = fa.analyzer
            for o, kind, val, t in pending:
                if kind == "data":
                    an.data(o, val, t)
                else:
                    an.gap(o, val, t)
        else:
            tls_mod = self.tls_module
            for n, (kind, val) in enumerate(events):
                if kind == "data":
                    if is_orig and fa.module is not tls_mod and tls_mod is not None and _client_hello(val):
                        # STARTTLS / AUTH TLS: the stream turns into TLS here.
                        self._start(f, fa, tls_mod, ts)
                        self._deliver(f, fa, is_orig, events[n:], ts)
                        return
                    an.data(is_orig, val, ts)
                    if getattr(an, "tunnel", False):
                        self._tunnel(f, fa, is_orig, events[n + 1:], ts)
                        return
                else:
                    an.gap(is_orig, val, ts)
        if not an.wants_more():
            self._after(f, fa)

    def _tunnel(self, f, fa, is_orig, rest, ts) -> None:
        """HTTP CONNECT (or 101 Switching Protocols) succeeded: detect what runs inside, from the
        bytes the HTTP analyzer received past the exchange on."""
        an = fa.analyzer
        left = getattr(an, "tunnel_leftover", {}) or {}
        try:
            an.done(ts)
        except Exception as e:
            self.weirds.append((ts, fa.ctx.uid, "http.analyzer_error", f"{type(e).__name__}: {e}"))
        fa.analyzer = None
        fa.module = None
        fa.pending = []
        fa.pending_bytes = 0
        fa.pbuf = [b"", b""]
        fa.npay = [0, 0]
        for o in (True, False):
            data = left.get(o) if isinstance(left, dict) else None
            if data:
                self._deliver(f, fa, o, [("data", bytes(data))], ts)
        if rest and self.state[f] == ST_ACTIVE:
            self._deliver(f, fa, is_orig, rest, ts)

    def _after(self, f, fa) -> None:
        """The analyzer has what it needs.  Non-TLS protocols may still upgrade to TLS."""
        if fa.module is not self.tls_module and fa.ctx.transport == "tcp":
            fa.analyzer = None
            fa.watch = WATCH_CHUNKS
        else:
            self._stop(f, fa)

    def _undetected(self, f, fa) -> None:
        """No probe matched within the detection depth."""
        if (_tls_records(fa.pbuf[True]) and _tls_records(fa.pbuf[False])) or \
                _tls_records(fa.pbuf[True], 2) or _tls_records(fa.pbuf[False], 2):
            fa.ctx.confirm("ssl")        # a TLS session joined after its handshake
            self._stop(f, fa)
            return
        texty = _texty(fa.pbuf[True]) or _texty(fa.pbuf[False])
        fa.pending = []
        fa.pbuf = [b"", b""]
        if texty:
            fa.watch = WATCH_CHUNKS      # a text protocol may still upgrade (STARTTLS in IMAP, XMPP, POP3...)
        else:
            self._stop(f, fa)

    def _watch_tls(self, f, fa, is_orig, events, ts) -> None:
        for n, (kind, val) in enumerate(events):
            if kind != "data":
                continue
            if is_orig and self.tls_module is not None and _client_hello(val):
                fa.watch = 0
                self._start(f, fa, self.tls_module, ts)
                self._deliver(f, fa, is_orig, events[n:], ts)
                return
            fa.watch -= 1
            if fa.watch <= 0:
                self._stop(f, fa)
                return

    def _probe(self, fa, transport: str, is_orig: bool):
        data = fa.pbuf[is_orig]
        if not data:
            return None
        for m in self._candidates(fa, transport):
            try:
                if m.probe(data, is_orig):
                    return m
            except Exception:
                continue
        return None

    def _candidates(self, fa, transport: str):
        hinted = self.by_port[transport].get(fa.ctx.resp_p, [])
        rest = [m for m in (self.tcp_modules if transport == "tcp" else self.udp_modules) if m not in hinted]
        return hinted + rest

    def _start(self, f, fa, module, ts: float = 0.0) -> None:
        if fa.analyzer is not None:      # an upgrade (STARTTLS...): let the old analyzer write its records
            try:
                fa.analyzer.done(ts)
            except Exception as e:
                self.weirds.append((ts, fa.ctx.uid, f"{fa.module.NAME}.analyzer_error", f"{type(e).__name__}: {e}"))
        fa.watch = 0
        fa.raw = False
        if fa.content is not None and module.NAME in NO_RAW:
            fa.content.stream = bytearray()   # its bodies (or nothing, if encrypted) are what counts
        fa.module = module
        fa.analyzer = module.Analyzer(fa.ctx)
        self.state[f] = ST_ACTIVE
        self.stats[f"analyzer_{module.NAME}"] += 1

    def _stop(self, f, fa, final: bool = False) -> None:
        """No more payload for the analyzers.  The content stage may still want the leaving stream
        of a cleartext protocol without message structure (raw mode) until its budget is spent."""
        if not final and fa.content is not None and fa.ctx.transport == "tcp" and \
                (fa.module is None or fa.module.NAME not in NO_RAW) and \
                len(fa.content.stream) < self.content.stream_budget and self._textual(fa):
            fa.raw = True
            fa.analyzer = None
            fa.pending = []
            return
        fa.raw = False
        self.state[f] = ST_DONE
        if fa.reasm is not None:
            for r in fa.reasm:
                r.release()
        fa.pending = []
        fa.pbuf = [b"", b""]

    def _textual(self, fa) -> bool:
        """Is the leaving stream worth inspecting (not encrypted, compressed or media)?"""
        head = bytes(fa.content.stream[:4096])
        if not head:
            return True
        ptype, _ = self.content.types.classify(head)
        return ptype not in OPAQUE_TYPES

    def _release(self, fa) -> None:
        if fa.reasm is not None:
            for r in fa.reasm:
                r.release()

    # -- UDP ---------------------------------------------------------------------------
    def _udp(self, f, fa, is_orig, payload, ts) -> None:
        if fa.content is not None and is_orig == fa.leave and \
                (fa.module is None or fa.module.NAME not in NO_RAW) and fa.content.bodies < UDP_CONTENT_DATAGRAMS:
            self.content.body(fa.content, {"source": "udp"}, payload, fa.ctx.uid)
        if fa.raw:
            if fa.content is None or fa.content.bodies >= UDP_CONTENT_DATAGRAMS:
                self._stop(f, fa, final=True)
            return
        if fa.analyzer is None:
            fa.pbuf[is_orig] = payload[:PROBE_BYTES]
            # Registered ports decide for UDP (as Zeek attaches DNS to 53/udp); content otherwise.
            hinted = self.by_port["udp"].get(fa.ctx.resp_p) or self.by_port["udp"].get(fa.ctx.orig_p)
            module = hinted[0] if hinted and len(hinted) == 1 else self._probe(fa, "udp", is_orig)
            if module is None:
                fa.npay[is_orig] += 1
                if fa.npay[0] + fa.npay[1] >= UDP_DETECT_DATAGRAMS:
                    if fa.content is not None and fa.leave is not None:
                        fa.raw = True   # keep typing what leaves, up to the datagram budget
                    else:
                        self._stop(f, fa)
                return
            self._start(f, fa, module)
            fa.pbuf = [b"", b""]
        fa.analyzer.datagram(is_orig, payload, ts)
        if not fa.analyzer.wants_more():
            self._stop(f, fa)

    # -- end of connections --------------------------------------------------------------
    def on_end(self, fids: np.ndarray, uids: list, oh: list, rh: list, ts: list, last: list, directions: list,
               services: list, orig_bytes: list | None = None, resp_bytes: list | None = None) -> dict:
        """Finish the analyzers of ended connections; extra record columns (APP_FIELDS) plus services."""
        n = len(fids)
        cols = {k: [None] * n for k in APP_FIELDS + FLOW_CONTENT_FIELDS}
        for j, f in enumerate(fids.tolist()):
            fa = self.flows.pop(f, None)
            names = {}
            if fa is not None:
                self._finish(f, fa, last[j])
                names = fa.names
                if fa.ctx.service:
                    svc = services[j].split(",") if services[j] else []
                    for s in fa.ctx.service:
                        if s not in svc:
                            svc.append(s)
                    services[j] = ",".join(svc)
            if len(self.state) > f:
                self.state[f] = ST_NEW
            self._content_end(cols, j, fa, uids[j], ts[j], directions[j], services[j],
                              orig_bytes[j] if orig_bytes is not None else 0,
                              resp_bytes[j] if resp_bytes is not None else 0)
            if fa is not None:
                self._by_uid.pop(fa.ctx.uid, None)
            inbound = directions[j] == "inbound"
            dst = oh[j] if inbound else rh[j]
            name, source = None, None
            if not inbound:
                for src in NAME_PRECEDENCE:
                    if src in names:
                        name, source = names[src][1], src
                        break
            if name is None:
                name = self.pdns.name_for(dst, ts[j])
                if name is not None:
                    source = "dns"
            cols["dst_name"][j] = name
            cols["dst_name_source"][j] = source
            if self.enricher is not None:
                d = self.enricher.destination(dst, name)
                for k in ("dst_country", "dst_asn", "dst_org", "dst_group", "dst_category", "dst_allowed"):
                    cols[k][j] = d.get(k)
        return cols

    def _content_end(self, cols, j, fa, uid, ts, direction, services, ob, rb) -> None:
        """Content fields of an ended connection (only what left the site counts)."""
        if self.content is None:
            fields = empty_fields()
        else:
            leave = fa.leave if fa is not None else (True if direction == "outbound" else
                                                      False if direction == "inbound" else None)
            if leave is None:
                fields = empty_fields()
            else:
                app_bytes = (ob if leave else rb) or 0
                cf = fa.content if fa is not None and fa.content is not None else self.content.new_flow()
                svc = services.split(",") if services else []
                enc = next((ENCRYPTED[x] for x in svc if x in ENCRYPTED), None)
                if enc is not None:
                    # Encrypted: nothing to read; its bytes are typed as such.
                    typed = sum(cf.bytes_by_type.values())
                    self.content.opaque(cf, enc, max(app_bytes - typed, 0))
                fields, record = self.content.finish(cf, uid, ts, direction, app_bytes)
                if record is not None:
                    self.emit("content", record)
        for k in FLOW_CONTENT_FIELDS:
            cols[k][j] = fields[k]

    def _finish(self, f, fa, ts) -> None:
        if fa.analyzer is None and not fa.ctx.service and self.state[f] != ST_DONE:
            # Never recognised while it lasted: a TLS session joined after its handshake?
            if _tls_records(fa.pbuf[True]) or _tls_records(fa.pbuf[False]):
                fa.ctx.confirm("ssl")
        try:
            if fa.reasm is not None and fa.analyzer is not None and self.state[f] == ST_ACTIVE:
                for is_orig in (True, False):
                    events = fa.reasm[is_orig].flush()
                    for kind, val in events:
                        if kind == "data":
                            fa.analyzer.data(is_orig, val, ts)
                        else:
                            fa.analyzer.gap(is_orig, val, ts)
            if fa.analyzer is not None:
                fa.analyzer.done(ts)
        except Exception as e:
            name = fa.module.NAME if fa.module is not None else "app"
            self.weirds.append((ts, fa.ctx.uid, f"{name}.analyzer_error", f"{type(e).__name__}: {e}"))
        if fa.files is not None:
            try:
                if fa.files.source is not None and fa.reasm is not None and self.state[f] != ST_DONE:
                    for is_orig in (True, False):
                        self.files.channel_events(fa.files, is_orig, fa.reasm[is_orig].flush(), ts)
                self.files.end_flow(fa.files, ts)
            except Exception as e:
                self.weirds.append((ts, fa.ctx.uid, "files.error", f"{type(e).__name__}: {e}"))
        self._release(fa)

    def flush_expected(self) -> None:
        self.expected.clear()
