"""The dispatcher: per-connection sessions, reassembly, protocol detection and analyzers.

It observes the flow table (``FlowTable(observer=...)``): once per batch
(``rows``) and once per set of connections about to end (``ending``).  Per-flow
Python runs only where payload needs it: rows go to Python only for connections
still being analysed (a numpy state per flow id says which), and only rows that
carry payload or open a TCP stream.

For each connection:

* TCP: a ``Reassembler`` per direction turns segments into in-order data and gaps;
* detection: the first bytes of each direction are offered to every protocol's
  ``probe`` (modules whose port hints match first); the first match gets an
  ``Analyzer``, fed the buffered data, then the stream as it comes;
* no match within the detection depth: a module's ``JOINED_PROBE`` may still
  recognise a session joined mid-way; a text protocol is watched for an upgrade
  (``UPGRADE_PROBE``: STARTTLS), anything else is left alone;
* the analyzer stops being fed once it ``wants_more()`` no longer;
* announced connections (``ctx.expect``: FTP data channels) are recognised when
  they start.

What it produces goes to sinks, never into flow records: protocol log records
to ``emit(log, record)`` (the pipeline masks them per the declarations),
weirds to ``weirds``, hostname, fact, certificate and DNS-answer evidence to
``names`` (a ``enrich.flows.DestinationNames``), payload that leaves the site, message bodies
in every direction and announced data channels (files) to ``content`` (a
``content.sink.ContentSink``), and confirmed services to the flow table
(``add_services``) before a connection's record is built.  What a protocol
contributes (no raw content, log-borne content, upgrades, joined sessions) comes
from its declarations (``protocols.base.Contributions``); no protocol is named here.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..protocols.base import PROBE_BYTES, FlowContext
from ..sniff import printable_ascii
from ..streams import ReassemblyBudget, Reassembler
from .session import Session

SYN = 2
ACK = 16
MAX_TCP_OPTIONS = 40        # bytes of options a TCP header can carry (data offset 15 words)
DETECT_PACKETS = 3          # payload packets per direction offered to the probes before giving up
PROBE_CHUNKS = 2            # chunks per direction after which the probes are no longer re-run
UDP_DETECT_DATAGRAMS = 3
WATCH_CHUNKS = 24           # data chunks checked for an upgrade (late TLS ClientHello) after detection ends

ST_NEW, ST_ACTIVE, ST_DONE = 0, 1, 2
ICMP_ECHO = frozenset((0, 8, 128, 129))     # echo reply/request types (v4, v6): their payload is free data

class Dispatcher:
    """Protocol dispatch over the flow table's rows.

    ``contributions``: the protocol modules and their declarations
    (``protocols.contributions()``); ``emit(log, record)``: where log records go;
    ``content``: a ``ContentSink`` or None; ``names``: a ``DestinationNames`` or None.
    """

    def __init__(self, contributions, emit, content=None, names=None, reassembly_cap: int = 64 << 20):
        self.contributions = contributions
        self.modules = contributions.modules
        self.out = emit
        self.content = content
        self.names = names
        self.no_raw = contributions.no_raw
        self.log_content = contributions.log_content if content is not None else {}
        self.files = content is not None and content.files is not None
        self.file_channels = contributions.file_channels if self.files else frozenset()
        self.upgrades = list(contributions.upgrades)
        self.upgrade_modules = frozenset(m for m, _ in self.upgrades)
        self.joined = list(contributions.joined)
        self.http_upgrades = dict(getattr(contributions, "http_upgrades", {}))
        self.tcp_modules = [m for m in self.modules if "tcp" in m.TRANSPORTS]
        self.udp_modules = [m for m in self.modules if "udp" in m.TRANSPORTS]
        self.by_port = {"tcp": defaultdict(list), "udp": defaultdict(list)}
        for m in self.modules:
            for t in m.TRANSPORTS:
                for p in getattr(m, "PORTS", ()):
                    self.by_port[t][p].append(m)
        self.flows: dict = {}      # flow id -> Session
        self._by_uid: dict = {}    # uid -> Session
        self._table = None
        self.state = np.zeros(0, dtype=np.int8)
        self.isn = np.zeros((0, 2), dtype=np.int64)   # per flow and direction: SYN sequence number, -1 none
        # per flow: the client's first SYN for JA4T (window, option bytes, option length; -1 none seen)
        self.syn_win = np.zeros(0, dtype=np.int32)
        self.syn_opts = np.zeros((0, MAX_TCP_OPTIONS), dtype=np.uint8)
        self.syn_olen = np.zeros(0, dtype=np.int8)
        self.budget = ReassemblyBudget(reassembly_cap)
        self.expected: dict = {}   # (resp_h, resp_p) -> [(orig_h|None, service, parent_uid, expires)]
        self.weirds: list = []     # (ts, uid, name, detail)

    # -- the sink analyzers talk to (through FlowContext) ------------------------------
    def emit(self, log: str, record: dict) -> None:
        fn = self.log_content.get(log)
        if fn is not None:
            self._log_content(fn, record)
        self.out(log, record)

    def _log_content(self, fn, record: dict) -> None:
        """What a log record carries out of the site (declared ``LOG_CONTENT``), as sent by the
        originator: inspected when the originator is the local side."""
        fa = self._by_uid.get(record.get("uid"))
        if fa is None or fa.content is None or not fa.leave:
            return
        got = fn(record)
        if got is not None and got[1]:
            self.content.body(fa.content, got[0], got[1])

    def weird(self, ctx, name: str, detail: str, ts) -> None:
        self.weirds.append((ts if ts is not None else ctx.ts, ctx.uid, name, detail))

    def hostname(self, ctx, source: str, name: str, ts: float) -> None:
        if self.names is not None:
            self.names.hostname(ctx.uid, source, name, ts)

    def fact(self, ctx, name: str, ts: float) -> None:
        if self.names is not None:
            self.names.fact(ctx.uid, name)

    def certificate(self, ctx, subject, issuer, ts: float) -> None:
        if self.names is not None:
            self.names.certificate(ctx.uid, subject, issuer)

    def body(self, ctx, is_orig: bool, info: dict, data: bytes) -> None:
        """A message body from an analyzer (HTTP, SMTP): a file in every direction, inspected
        when it leaves the site."""
        fa = ctx.sink_flow
        if fa is None:
            return
        if self.files and info.get("file", True):      # messages (WebSocket, MQTT) are no files
            fa.files = self.content.file_body(fa.files, ctx, fa.leave, is_orig, info, data)
        if fa.content is not None and is_orig == fa.leave and data:
            self.content.body(fa.content, info, data)

    def request(self, ctx, info: dict) -> None:
        """A request's metadata (HTTP: target, headers), whatever its body: inspected when the
        originator's side is the one that leaves the site (query strings, cookies, upload APIs)."""
        fa = ctx.sink_flow
        if fa is not None and fa.content is not None and fa.leave:
            self.content.request(fa.content, info)

    def body_data(self, ctx, is_orig: bool, chunk) -> None:
        """Body bytes as they pass (HTTP): the files stage hashes whole files from them."""
        fa = ctx.sink_flow
        if self.files and fa is not None:
            fa.files = self.content.file_data(fa.files, ctx, fa.leave, is_orig, chunk)

    def body_gap(self, ctx, is_orig: bool, length: int) -> None:
        fa = ctx.sink_flow
        if self.files and fa is not None:
            fa.files = self.content.file_gap(fa.files, ctx, fa.leave, is_orig, length)

    def answer_data(self, ctx, qname: str, data: bytes) -> None:
        """Free-form DNS answer data (TXT, NULL) of a connection: inspected when the answering side
        (the responder) is the local one, as pieces of a tunnel session."""
        fa = ctx.sink_flow
        if fa is not None and fa.content is not None and not fa.leave and data:
            self.content.dns_answer(fa.content, qname, data)

    def dns_answer(self, query: str, answer: str, rtype: str, ttl: float, ts: float) -> None:
        if self.names is not None:
            self.names.dns_answer(query, answer, rtype, ttl, ts)

    def expect(self, ctx, orig_h, resp_h, resp_p, service, ts, timeout) -> None:
        lst = self.expected.setdefault((resp_h, int(resp_p)), [])
        lst.append((orig_h, service, ctx.uid, ts + timeout))
        if len(lst) > 64:
            del lst[0]

    # -- flow table observer: per batch ------------------------------------------------------
    def capture_of(self, uid) -> str | None:
        """The input file of a connection with a session (its first packet's file)."""
        fa = self._by_uid.get(uid)
        return self._table.capture_of(fa.fid) if fa is not None and self._table is not None else None

    def rows(self, table, db, row_fid, row_orig, row_new) -> None:
        self._table = table
        if len(self.state) < table.cap:
            st = np.full(table.cap, ST_NEW, dtype=np.int8)
            st[:len(self.state)] = self.state
            self.state = st
            isn = np.full((table.cap, 2), -1, dtype=np.int64)
            isn[:len(self.isn)] = self.isn
            self.isn = isn
            n0 = len(self.syn_olen)
            win = np.zeros(table.cap, dtype=np.int32)
            win[:n0] = self.syn_win
            opts = np.zeros((table.cap, MAX_TCP_OPTIONS), dtype=np.uint8)
            opts[:n0] = self.syn_opts
            olen = np.full(table.cap, -1, dtype=np.int8)
            olen[:n0] = self.syn_olen
            self.syn_win, self.syn_opts, self.syn_olen = win, opts, olen
        c = db.cols
        state = self.state
        new_rows = np.nonzero(row_new)[0]
        if len(new_rows):
            nf = row_fid[new_rows]
            for f in nf.tolist():
                old = self.flows.pop(f, None)   # defensive: a slot is only reused after ending()
                if old is not None:
                    self._release(old)
            state[nf] = ST_NEW
            self.isn[nf] = -1
            self.syn_olen[nf] = -1
            if table.share is not None:       # another worker analyses these (inspector.parallel)
                state[nf[~table.OWN[nf]]] = ST_DONE
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
        if self.content is not None:
            echo = np.nonzero(live & (pay > 0) & ((proto == 1) | (proto == 58)))[0]
            if len(echo):
                self._icmp(table, db, echo, row_fid, row_orig)
        if self.names is not None:
            self._client_syns(db, row_fid, row_orig)
        rows = np.nonzero(live & (pay > 0) & ((proto == 6) | (proto == 17)))[0]
        if not len(rows):
            return
        fids = row_fid[rows]
        flows = self.flows
        fresh = np.unique(fids)
        fresh = fresh[[f not in flows for f in fresh.tolist()]]
        if len(fresh):
            self._new_sessions(table, fresh)
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
                self._analyzer_error(fa, ts, e)
                self._stop(f, fa)

    def _icmp(self, table, db, rows, row_fid, row_orig) -> None:
        """ICMP echo payloads that leave the site go to the content sink (echo tunnels); any other
        ICMP connection, or one the sink has no more use for, is not looked at again."""
        fids = row_fid[rows]
        fresh = np.unique(fids)
        fresh = fresh[[f not in self.flows for f in fresh.tolist()]]
        if len(fresh):
            self._new_sessions(table, fresh)
        types = db.cols["sport"][rows].tolist()
        for i, f, is_orig, itype in zip(rows.tolist(), fids.tolist(), row_orig[rows].tolist(), types):
            if self.state[f] == ST_DONE:
                continue
            fa = self.flows[f]
            fa.started = True
            if fa.content is None or itype not in ICMP_ECHO:
                self.state[f] = ST_DONE
                continue
            if is_orig == fa.leave:
                ctx = fa.ctx
                if not self.content.icmp(fa.content, ctx.resp_h if is_orig else ctx.orig_h, db.payload(i)):
                    self.state[f] = ST_DONE

    def _analyzer_error(self, fa, ts, e: Exception) -> None:
        name = fa.module.NAME if fa.module is not None else "app"
        self.weirds.append((ts, fa.ctx.uid, f"{name}.analyzer_error", f"{type(e).__name__}: {e}"))

    def _new_sessions(self, table, fids: np.ndarray) -> None:
        """Sessions for connections whose first payload arrives (uids and endpoints fetched
        from the table for all of them at once)."""
        uids = table.uids(fids)
        ends = table.endpoints_many(fids)
        ts0 = table.first_seen(fids)
        content = self.content
        for f, uid, (oh, op, rh, rp), t0 in zip(fids.tolist(), uids, ends, ts0):
            ctx = FlowContext(uid=uid, ts=t0, orig_h=oh, orig_p=op, resp_h=rh, resp_p=rp, transport="tcp", sink=self)
            fa = Session(ctx, f)
            ctx.sink_flow = fa
            if content is not None:
                cf = content.open(uid, t0, oh, rh)
                if cf is not None:
                    fa.content = cf
                    fa.leave = cf.leave
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
                fa.parent = parent
                if service in self.file_channels:
                    announcer = self._by_uid.get(parent)
                    fa.files = self.content.data_channel(ctx, fa.leave, service,
                                                         announcer.analyzer if announcer is not None else None)
                    fa.channel = fa.files is not None
                if fa.content is not None:
                    fa.raw = True          # the content stage reads what the data channel carries out
                    self.content.stream_source(fa.content, service)
                elif fa.channel:
                    fa.raw = True          # only the files stage reads it (both directions)
                else:
                    self.state[fa.fid] = ST_DONE
                return True
        return False

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
            self.weirds.append((ts, fa.ctx.uid, "tcp.reassembly_memory_cap", "gave up waiting for missing data"))
        if events and fa.content is not None and is_orig == fa.leave and \
                (fa.module is None or fa.module.NAME not in self.no_raw):
            for kind, val in events:
                if kind == "data":
                    self.content.stream(fa.content, val)
        if fa.channel and events:
            self.content.channel_events(fa.files, is_orig, events, ts)
        if fa.raw:
            if not fa.channel and (fa.content is None or self.content.stream_full(fa.content)):
                self._stop(f, fa, final=True)
            return
        if events:
            self._deliver(f, fa, is_orig, events, ts)
        if fa.analyzer is None and not fa.watch and not fa.raw and self.state[f] != ST_DONE:
            fa.npay[is_orig] += 1
            if fa.npay[0] >= DETECT_PACKETS and fa.npay[1] >= DETECT_PACKETS or \
                    fa.npay[0] + fa.npay[1] >= 3 * DETECT_PACKETS:
                self._undetected(f, fa)

    def _upgrade(self, data: bytes):
        """The module whose ``UPGRADE_PROBE`` recognises this originator chunk, or None."""
        for m, starts in self.upgrades:
            if starts(data):
                return m
        return None

    def _deliver(self, f, fa, is_orig, events, ts) -> None:
        an = fa.analyzer
        if an is None and fa.watch:
            self._watch_upgrade(f, fa, is_orig, events, ts)
            return
        if an is None:
            if is_orig and self.upgrades:
                for n, (kind, val) in enumerate(events):
                    if kind == "data" and n + len(fa.pending) > 0:
                        m = self._upgrade(val)
                        if m is not None:
                            # e.g. TLS after a preamble no probe knows (MySQL SSLRequest, RDP X.224...)
                            fa.pending = []
                            self._start(f, fa, m, ts)
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
            upgradable = is_orig and self.upgrades and fa.module not in self.upgrade_modules
            for n, (kind, val) in enumerate(events):
                if kind == "data":
                    if upgradable:
                        m = self._upgrade(val)
                        if m is not None:
                            # STARTTLS / AUTH TLS: the stream turns into another protocol here.
                            self._start(f, fa, m, ts)
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
        """A tunnel opened (HTTP CONNECT or 101 Switching Protocols): detect what runs inside,
        from the bytes the analyzer received past the exchange on."""
        an = fa.analyzer
        left = getattr(an, "tunnel_leftover", {}) or {}
        info = getattr(an, "tunnel_info", None) or {}
        try:
            an.done(ts)
        except Exception as e:
            self._analyzer_error(fa, ts, e)
        fa.restart_detection()
        module = self.http_upgrades.get(info.get("upgrade") or "")
        if module is not None:
            # the handshake named the protocol (101 + Upgrade: websocket): no probe needed
            self._start(f, fa, module, ts)
            upgraded = getattr(fa.analyzer, "upgraded", None)
            if upgraded is not None:
                try:
                    upgraded(info)
                except Exception as e:
                    self._analyzer_error(fa, ts, e)
        for o in (True, False):
            data = left.get(o) if isinstance(left, dict) else None
            if data:
                self._deliver(f, fa, o, [("data", bytes(data))], ts)
        if rest and self.state[f] == ST_ACTIVE:
            self._deliver(f, fa, is_orig, rest, ts)

    def _after(self, f, fa) -> None:
        """The analyzer has what it needs.  A TCP stream may still upgrade (STARTTLS) unless it
        already runs a protocol streams upgrade to."""
        if fa.module not in self.upgrade_modules and fa.ctx.transport == "tcp":
            fa.analyzer = None
            fa.watch = WATCH_CHUNKS
        else:
            self._stop(f, fa)

    def _joined(self, fa, final: bool):
        """The module whose ``JOINED_PROBE`` recognises the first bytes, or None."""
        orig, resp = fa.pbuf[True], fa.pbuf[False]
        for m, joined in self.joined:
            if joined(orig, resp, final):
                return m
        return None

    def _undetected(self, f, fa) -> None:
        """No probe matched within the detection depth."""
        m = self._joined(fa, False) if self.joined else None
        if m is not None:
            fa.ctx.confirm(m.NAME)       # a session joined after its start (TLS after its handshake)
            self._stop(f, fa)
            return
        texty = printable_ascii(fa.pbuf[True]) or printable_ascii(fa.pbuf[False])
        fa.pending = []
        fa.pbuf = [b"", b""]
        if texty:
            fa.watch = WATCH_CHUNKS      # a text protocol may still upgrade (STARTTLS in IMAP, XMPP, POP3...)
        else:
            self._stop(f, fa)

    def _watch_upgrade(self, f, fa, is_orig, events, ts) -> None:
        for n, (kind, val) in enumerate(events):
            if kind != "data":
                continue
            m = self._upgrade(val) if is_orig else None
            if m is not None:
                fa.watch = 0
                self._start(f, fa, m, ts)
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
                self._analyzer_error(fa, ts, e)
        fa.watch = 0
        fa.raw = False
        if fa.content is not None and module.NAME in self.no_raw:
            self.content.structured(fa.content)   # its bodies (or nothing, if encrypted) are what counts
        fa.module = module
        fa.analyzer = module.Analyzer(fa.ctx)
        self.state[f] = ST_ACTIVE

    def _stop(self, f, fa, final: bool = False) -> None:
        """No more payload for the analyzers.  The content sink may still want the leaving stream
        of a protocol whose raw bytes are content (raw mode) until its budget is spent."""
        if not final and fa.content is not None and fa.ctx.transport == "tcp" and \
                (fa.module is None or fa.module.NAME not in self.no_raw) and \
                self.content.wants_stream(fa.content):
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

    def _release(self, fa) -> None:
        if fa.reasm is not None:
            for r in fa.reasm:
                r.release()

    # -- UDP ---------------------------------------------------------------------------
    def _udp(self, f, fa, is_orig, payload, ts) -> None:
        if fa.analyzer is None and not fa.raw:
            fa.pbuf[is_orig] = payload[:PROBE_BYTES]
            # Registered ports decide for UDP (as Zeek attaches DNS to 53/udp); content otherwise.
            hinted = self.by_port["udp"].get(fa.ctx.resp_p) or self.by_port["udp"].get(fa.ctx.orig_p)
            module = hinted[0] if hinted and len(hinted) == 1 else self._probe(fa, "udp", is_orig)
            if module is not None:
                # before the content sink sees the datagram: a protocol whose content is not its raw
                # datagrams (DNS: the query names) decides from the first one on
                self._start(f, fa, module)
                fa.pbuf = [b"", b""]
        if fa.content is not None and is_orig == fa.leave and \
                (fa.module is None or fa.module.NAME not in self.no_raw):
            self.content.datagram(fa.content, payload)
        if fa.raw:
            if fa.content is None or self.content.datagrams_full(fa.content):
                self._stop(f, fa, final=True)
            return
        if fa.analyzer is None:
            fa.npay[is_orig] += 1
            if fa.npay[0] + fa.npay[1] >= UDP_DETECT_DATAGRAMS:
                if fa.content is not None:
                    fa.raw = True   # keep typing what leaves, up to the datagram budget
                else:
                    self._stop(f, fa)
            return
        fa.analyzer.datagram(is_orig, payload, ts)
        if not fa.analyzer.wants_more():
            self._stop(f, fa)

    # -- JA4T: the client's SYN --------------------------------------------------------------
    def _client_syns(self, db, row_fid, row_orig) -> None:
        """Keep the window and TCP option bytes of each connection's first client SYN (SYN without
        ACK from the originator), column-wise.  The options lie between the TCP header's fixed 20
        bytes and the payload: the header start is found by trying each header length a data
        offset allows and checking the data offset, ports and sequence number there.  Rows of the
        per-packet decode path (tunnels, fragments) carry no buffer offset: the decoder hands their
        option bytes over (``DecodedBatch.syn_options``)."""
        c = db.cols
        first = np.nonzero((c["proto"] == 6) & ((c["flags"] & (SYN | ACK)) == SYN) & row_orig)[0]
        if not len(first):
            return
        if db.syn_options:
            self._slow_syns(db, first, row_fid)
        first = first[c["pay_off"][first] >= 0]
        if not len(first):
            return
        fids = row_fid[first]
        keep = self.syn_olen[fids] < 0
        if self._table is not None and self._table.share is not None:
            keep &= self._table.OWN[fids]       # another worker's connection (inspector.parallel)
        first, fids = first[keep], fids[keep]
        if not len(first):
            return
        buf = np.frombuffer(db.buf, dtype=np.uint8)
        po = c["pay_off"][first]
        start = np.full(len(first), -1, dtype=np.int64)
        for thl in range(20, 20 + MAX_TCP_OPTIONS + 1, 4):
            st = po - thl
            cand = (start < 0) & (st >= 0) & (st + 20 <= len(buf))
            if not cand.any():
                continue
            i = np.nonzero(cand)[0]
            s0 = st[i]
            b = buf[s0[:, None] + np.arange(20)].astype(np.int64)
            ok = ((b[:, 12] >> 4) * 4 == thl) \
                & (((b[:, 0] << 8) | b[:, 1]) == c["sport"][first[i]]) \
                & (((b[:, 2] << 8) | b[:, 3]) == c["dport"][first[i]]) \
                & (((b[:, 4] << 24) | (b[:, 5] << 16) | (b[:, 6] << 8) | b[:, 7]) == c["seq"][first[i]])
            start[i[ok]] = s0[ok]
        found = start >= 0
        if not found.any():
            return
        start, po, fids, rows = start[found], po[found], fids[found], first[found]
        olen = (po - start - 20).astype(np.int8)
        cols = np.arange(MAX_TCP_OPTIONS)
        idx = np.minimum(start[:, None] + 20 + cols, len(buf) - 1)
        opts = np.where(cols < olen[:, None], buf[idx], 0).astype(np.uint8)
        # a retransmitted SYN in the same batch: the first row of each flow wins
        fids, uniq = np.unique(fids, return_index=True)
        self.syn_win[fids] = c["win"][rows[uniq]]
        self.syn_opts[fids] = opts[uniq]
        self.syn_olen[fids] = olen[uniq]

    def _slow_syns(self, db, first: np.ndarray, row_fid) -> None:
        """Client SYNs of the per-packet decode path: their option bytes come with the batch."""
        c = db.cols
        for i in first[c["pay_off"][first] < 0].tolist():
            f = int(row_fid[i])
            opts = db.syn_options.get(i)
            if opts is None or self.syn_olen[f] >= 0 or len(opts) > MAX_TCP_OPTIONS:
                continue
            self.syn_win[f] = c["win"][i]
            self.syn_opts[f, :len(opts)] = np.frombuffer(opts, dtype=np.uint8)
            self.syn_olen[f] = len(opts)

    def _ja4t(self, table, fids: np.ndarray) -> None:
        """JA4T of the ending connections whose client SYN was seen, to the destination evidence."""
        from ..protocols.ja4plus import ja4t
        fids = fids[fids < len(self.syn_olen)]
        seen = fids[self.syn_olen[fids] >= 0]
        if len(seen):
            for uid, f in zip(table.uids(seen), seen.tolist()):
                self.names.ja4t(uid, ja4t(int(self.syn_win[f]), self.syn_opts[f, :self.syn_olen[f]].tobytes()))
            self.syn_olen[seen] = -1

    # -- flow table observer: connections about to end ------------------------------------------
    def ending(self, table, fids: np.ndarray, last: list) -> None:
        """Finish the sessions of connections whose records are about to be built; their
        confirmed services go to the table."""
        if self.names is not None:
            self._ja4t(table, fids)
        flows = self.flows
        if flows:
            for f, t in zip(fids.tolist(), last):
                fa = flows.pop(f, None)
                if fa is None:
                    continue
                self._finish(f, fa, t)
                if fa.ctx.service:
                    table.add_services(f, fa.ctx.service)
                self._by_uid.pop(fa.ctx.uid, None)
                # Session -> analyzer -> context -> session is a cycle: cut it, so an ended session is
                # freed at once by reference counting instead of piling up for the cyclic collector
                # (tens of thousands of concurrent connections make each collection expensive).
                fa.ctx.sink_flow = None
                fa.analyzer = None
        n = len(self.state)
        self.state[fids[fids < n]] = ST_NEW

    def _finish(self, f, fa, ts) -> None:
        if fa.analyzer is None and not fa.ctx.service and self.state[f] != ST_DONE and self.joined:
            # Never recognised while it lasted: a session joined after its start?
            m = self._joined(fa, True)
            if m is not None:
                fa.ctx.confirm(m.NAME)
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
            self._analyzer_error(fa, ts, e)
        if fa.files is not None:
            try:
                if fa.channel and fa.reasm is not None and self.state[f] != ST_DONE:
                    for is_orig in (True, False):
                        self.content.channel_events(fa.files, is_orig, fa.reasm[is_orig].flush(), ts)
                self.content.end_files(fa.files, ts)
            except Exception as e:
                self.content.files_error(fa.ctx.uid, ts, e)
        self._release(fa)
