"""Covert channels decoded as sessions: DNS query names, DNS TXT/NULL answers, ICMP echo payloads.

A tunnel cuts a stream into pieces small enough for one DNS label or one ping and encodes each
piece; inspecting the pieces one at a time finds fragments (half an e-mail address, a CSV row cut
in two) and no records.  This module puts the pieces of one *session* back together and hands the
content stage the reassembled stream, so identifiers and records leaving through a tunnel count
like any upload.

Sessions (keys):

* ``dns``: the query names one local host sends out of the site under one registered domain.  The
  local host is the client itself, or the site's forwarding resolver on its outbound leg (the
  only leg that leaves the site: the counts land on the resolver's connections to the outside).
* ``dns-answer``: TXT and NULL answer data a local server sends to the outside, per registered
  domain of the query (a server inside answering an outside client: data leaving in answers).
* ``icmp``: echo payloads one local host sends to one outside host.

Layout (decided once per session on its first pieces, :func:`dns_layout`): labels that are the
same in every query (a tunnel tag, a session id) and a short counter label (decimal or hex,
distinct per query) are stripped; the counter orders the pieces; the labels left are the data.
For ICMP a prefix shared by every payload (a tool's magic) is stripped.

Decoding (:func:`choose_plan`): base32, base64 (standard or URL-safe), hex and raw are each tried on the
session's first pieces, decoding the concatenation (one stream cut anywhere: ``stream``) or each
piece on its own (``chunk``), or each piece in whichever encoding suits it (``mixed``); the plan
kept is the one whose output is text (or a known file type).  Raw is a candidate only when the
pieces hold characters no encoding alphabet has (a comma, a space, ``@``).  Pieces decoded on their
own are joined without separator or with a newline, whichever yields more records and values.
Sessions whose pieces do not decode to text, or that repeat one payload (ordinary pings, whose
payload is a fixed pattern), are *rejected*: their pieces are inspected one by one, as before.

Attribution: the decoded stream is handed to the content stage as the session's connections end
(:meth:`Tunnels.finish_flow`), each ending connection taking the complete lines decoded so far
(the last one takes the rest), with a CSV header line carried to every later slice; so the counts
sum exactly over the session's connections and join their flow records, their ``content`` record,
the alerts and incidents built on those and exact data matching.

Bounded: ``MAX_SESSIONS`` sessions (least recently used dropped), ``MAX_PENDING_BYTES`` encoded
bytes waiting per session, ``MAX_HOLD`` decoded bytes held for a record boundary, undecided
sessions keep at most ``UNDECIDED_CHUNKS`` pieces.  Decoded values are never logged; they reach
the outputs only as the content stage's masked samples and salted hashes.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict
from dataclasses import dataclass, replace

from ..domain import registered_domain

__all__ = ["Tunnels", "Plan", "choose_plan", "decode_piece", "dns_layout", "dns_pieces", "text_score",
           "csv_header", "ENCODINGS"]

MAX_SESSIONS = 4096
MAX_PENDING_BYTES = 4 << 20         # encoded bytes waiting to be decoded, per session
MAX_HOLD = 1 << 20                  # decoded bytes held waiting for a record boundary
MAX_SEEN = 65_536                   # pieces remembered (as hashes) per session to drop retransmissions
MAX_HELD_PER_FLOW = 4096            # undecided DNS queries held back per connection
UNDECIDED_CHUNKS = 32               # pieces an undecided session keeps; not decoded by then: rejected
DECIDE_AT = frozenset((4, 8, 16, UNDECIDED_CHUNKS))
MIN_CHUNKS = 4                      # pieces needed before a session may be decoded
MIN_DNS_DATA = 12                   # data characters a query needs to be a candidate piece
MIN_DECODED = 32                    # decoded bytes the sample must give
MIN_TEXT = 0.9                      # share of printable characters in decoded text
CLEAN_TEXT = 0.995                  # below this, framing around the data is looked for
SAMPLE = 64                         # pieces a plan is chosen on
MAX_SEQ_LABEL = 12                  # a counter label is at most this long
MAX_PIECE_HEADER = 24               # binary header bytes per piece tried
FLUSH_AT = 256 << 10                # pending bytes decoded and handed on while the connection lasts

ENCODINGS = ("base32", "base64", "hex", "raw")     # base64: the standard and the URL-safe alphabet
_UNIT = {"base32": 8, "base64": 4, "hex": 2}
_ALPHABET = {
    "base32": re.compile(rb"[A-Za-z2-7]*={0,6}\Z"),
    "base64": re.compile(rb"[A-Za-z0-9+/_-]*={0,2}\Z"),
    "hex": re.compile(rb"[0-9A-Fa-f]*\Z"),
}
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_ENCODED_ONLY = re.compile(rb"[A-Za-z0-9+/_=-]*\Z")      # every character in some encoding's alphabet
_RUN = re.compile(rb"[A-Za-z0-9+/_=-]{8,}")
_SEQ = re.compile(r"[0-9a-fA-F]{1,%d}\Z" % MAX_SEQ_LABEL)
_HEADER_CELL = re.compile(r"[A-Za-z_][\w .\-/()#]{0,63}\Z")
_KNOWN_MAGIC = (b"\x1f\x8b", b"PK\x03\x04", b"%PDF-", b"BZh", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
                b"\x28\xb5\x2f\xfd")

UNDECIDED, TUNNEL, REJECTED = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# decoding one piece, scoring text
# ---------------------------------------------------------------------------------------------

def decode_piece(data: bytes, encoding: str, final: bool = True) -> tuple[bytes | None, bytes]:
    """Decode ``data`` in ``encoding`` -> (decoded or None when it is not that encoding, the
    undecoded remainder).  With ``final`` the whole piece is decoded (unpadded tails allowed);
    otherwise only whole units (8 base32 characters, 4 base64, 2 hex) and the rest is returned
    to be continued by the next piece."""
    if encoding == "raw":
        return bytes(data), b""
    pat = _ALPHABET.get(encoding)
    if pat is None or not pat.match(data):
        return None, b""
    body = data.rstrip(b"=")
    padded = len(body) != len(data)
    unit = _UNIT[encoding]
    if final or padded:
        cut = len(body)
    else:
        cut = len(body) - len(body) % unit
    head, rest = body[:cut], body[cut:]
    try:
        if encoding == "hex":
            if len(head) % 2:
                return None, b""
            return binascii.unhexlify(head), rest
        if encoding == "base32":
            if len(head) % 8 in (1, 3, 6):
                return None, b""
            return base64.b32decode(head.upper() + b"=" * (-len(head) % 8)), rest
        if len(head) % 4 == 1:
            return None, b""
        return base64.b64decode(head.translate(_URLSAFE) + b"=" * (-len(head) % 4), validate=True), rest
    except (binascii.Error, ValueError):
        return None, b""


def text_score(data: bytes) -> float:
    """Share of characters of ``data`` (as UTF-8) that are printable or line/tab breaks; a known
    file type (gzip, zip, PDF...) scores 0.95."""
    if not data:
        return 0.0
    if data.startswith(_KNOWN_MAGIC):
        return 0.95
    s = data[:65536].decode("utf-8", "replace")
    good = sum(1 for c in s if (c.isprintable() and c != "\ufffd") or c in "\t\r\n")
    return good / len(s)


def csv_header(first_line: bytes) -> bytes | None:
    """``first_line`` (with its newline) when it is a CSV/TSV header row (names separated by one of
    ``, ; TAB |``), else None: it is carried to each later slice of the stream as its context."""
    try:
        line = first_line[:4096].decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None
    for d in (",", ";", "\t", "|"):
        cells = [c.strip().strip('"') for c in line.split(d)]
        if len(cells) >= 2 and all(_HEADER_CELL.match(c) for c in cells) and \
                len({c.lower() for c in cells}) == len(cells):
            return first_line if first_line.endswith(b"\n") else first_line + b"\n"
    return None


# ---------------------------------------------------------------------------------------------
# plans: how a session's pieces decode
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """How to decode a session: ``encoding`` (or "mixed": each piece its own), ``mode`` ("stream":
    one encoded stream cut anywhere, or "chunk": each piece encoded alone) and ``sep`` (what joins
    pieces decoded alone).  Chunk mode only: ``extract`` decodes the longest run of encoding
    characters of each piece (a piece with a text prefix such as ``0017|``), ``skip`` drops that many
    decoded bytes from each piece (a binary header per piece: counters, session ids)."""
    encoding: str
    mode: str
    sep: bytes = b""
    score: float = 0.0
    skip: int = 0
    extract: bool = False


def _best_single(piece: bytes) -> tuple[str | None, bytes | None]:
    """(encoding, decoded) of the encoding under which one piece reads best as text, or (None, None)
    (raw text is no choice here: a session of raw text is one raw stream)."""
    best, best_enc, best_sc = None, None, 0.0
    for enc in ENCODINGS[:-1]:
        dec, _ = decode_piece(piece, enc)
        if dec:
            sc = text_score(dec)
            if sc > best_sc + 1e-9:
                best, best_enc, best_sc = dec, enc, sc
    return (best_enc, best) if best_sc >= MIN_TEXT else (None, None)


#: encoding names as the content stage reports them (``payload_encoding``)
ENCODING_NAMES = {"base32": "base32", "base64": "base64", "hex": "hex"}


def decode_pieces(pieces: list, plan: Plan, carry: bytes = b"", final: bool = True,
                  used: set | None = None) -> tuple[bytes, bytes, int]:
    """Decode ``pieces`` (in order) with ``plan``; ``carry`` is the undecoded tail of the previous
    call (stream mode).  Returns (decoded, new carry, pieces that failed); the encodings used are
    added to ``used``."""
    out = bytearray()
    failed = 0
    if used is not None and plan.encoding in ENCODING_NAMES:
        used.add(ENCODING_NAMES[plan.encoding])
    if plan.mode == "stream":
        for k, p in enumerate(pieces):
            buf = carry + p
            dec, carry = decode_piece(buf, plan.encoding, final=final and k == len(pieces) - 1)
            if dec is None:
                failed += 1
                carry = b""
                continue
            out += dec
        return bytes(out), carry, failed
    for p in pieces:
        if plan.extract:
            runs = _RUN.findall(p)
            p = max(runs, key=len) if runs else b""
        if plan.encoding == "mixed":
            enc, dec = _best_single(p)
            if used is not None and enc in ENCODING_NAMES:
                used.add(ENCODING_NAMES[enc])
        else:
            dec, _ = decode_piece(p, plan.encoding)
        if dec is None:
            failed += 1
            continue
        if plan.skip:
            dec = dec[plan.skip:]
        if out and plan.sep and not out.endswith(plan.sep):
            out += plan.sep
        out += dec
    return bytes(out), b"", failed


def choose_plan(pieces: list, allow_raw: bool, yield_of=None) -> Plan | None:
    """The plan under which the first pieces of a session decode to text (or a known type), or
    None.  ``yield_of(decoded) -> int`` (records and values found) picks the separator of pieces
    decoded alone."""
    sample = [p for p in pieces[:SAMPLE] if p]
    if len(sample) < MIN_CHUNKS:
        return None
    # raw text is a candidate when some characters are in no encoding's alphabet and the pieces are
    # not mostly one long encoded run (``0007|<base64>|end`` is base64 in a frame, not text)
    raw_ok = allow_raw and any(not _ENCODED_ONLY.match(p) for p in sample) and \
        sum(_longest_run(p) / len(p) for p in sample) / len(sample) < 0.5
    best: Plan | None = None
    tried = [(enc, mode) for enc in ENCODINGS for mode in ("stream", "chunk")
             if enc != "raw" or raw_ok]
    tried.append(("mixed", "chunk"))
    for enc, mode in tried:
        if enc == "raw" and mode == "chunk":
            continue
        best = _better(best, sample, Plan(enc, mode))
    if best is None or best.score < CLEAN_TEXT:
        # not clean text yet: pieces with a text frame around the encoded part (``0017|<base64>``),
        # or a binary header in front of each piece's data (counters, a session id): the header
        # length under which the pieces read best (the smallest of equals)
        if any(not _ENCODED_ONLY.match(p) for p in sample):
            for enc in ENCODINGS[:-1]:
                best = _better(best, sample, Plan(enc, "chunk", extract=True))
        for enc in ENCODINGS if raw_ok else ENCODINGS[:-1]:
            for k in range(1, MAX_PIECE_HEADER + 1):
                best = _better(best, sample, Plan(enc, "chunk", skip=k))
    if best is None:
        return None
    if best.mode == "chunk" and yield_of is not None:
        plain = decode_pieces(sample, best)[0]
        lined = decode_pieces(sample, replace(best, sep=b"\n"))[0]
        if yield_of(lined) > yield_of(plain):
            best = replace(best, sep=b"\n")
    return best


def _longest_run(piece: bytes) -> int:
    return max((len(r) for r in _RUN.findall(piece)), default=0)


def _better(best: Plan | None, sample: list, plan: Plan) -> Plan | None:
    """``plan`` (with its score) when the sample decodes to text under it, better than ``best``."""
    dec, _, failed = decode_pieces(sample, plan)
    if failed > len(sample) // 10 or len(dec) < MIN_DECODED:
        return best
    sc = text_score(dec)
    if sc >= MIN_TEXT and (best is None or sc > best.score + 1e-9):
        return replace(plan, score=sc)
    return best


# ---------------------------------------------------------------------------------------------
# DNS names: which labels carry data
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DnsLayout:
    """How a session's names carry data: ``strip`` right-aligned label positions (0 = next to the
    registered domain) dropped from every name (constant labels, the counter), and where the counter
    label is: ``("right", j)``, ``("left", 0)`` or None.  For ICMP, ``strip`` is the length of the
    prefix every payload shares."""
    strip: int
    seq: tuple | None = None


def dns_layout(names: list) -> DnsLayout:
    """The layout of a session's query names (``names``: lists of labels left of the registered
    domain): constant labels and a distinct short counter next to the domain are stripped; a
    counter may also be the first label."""
    if not names:
        return DnsLayout(0)
    shortest = min(len(n) for n in names)
    j, seq = 0, None
    while j < shortest - 1:
        vals = [n[-1 - j].lower() for n in names]
        top = max(set(vals), key=vals.count)
        if vals.count(top) >= 0.9 * len(vals):
            j += 1
            continue
        if seq is None and all(_SEQ.match(v) for v in vals) and len(set(vals)) >= 0.9 * len(vals):
            seq = ("right", j)
            j += 1
            continue
        break
    if seq is None and shortest - j >= 2:
        vals = [n[0].lower() for n in names]
        if all(_SEQ.match(v) for v in vals) and len(set(vals)) >= 0.9 * len(vals):
            seq = ("left", 0)
    return DnsLayout(j, seq)


def dns_pieces(labels: list, layout: DnsLayout) -> tuple[tuple | None, bytes]:
    """(counter sort key or None, data bytes) of one query name's labels under ``layout``.  The
    counter sorts by length then characters, which orders zero-padded decimal and hex counters
    alike (and unpadded decimal ones), without guessing the base."""
    seq = None
    if layout.seq is not None:
        side, j = layout.seq
        idx = len(labels) - 1 - j if side == "right" else 0
        if 0 <= idx < len(labels) and _SEQ.match(labels[idx]):
            lab = labels[idx].lower()
            seq = (len(lab), lab)
    keep = labels[:len(labels) - layout.strip] if layout.strip else list(labels)
    if layout.seq is not None and layout.seq[0] == "left" and keep:
        keep = keep[1:]
    return seq, "".join(keep).encode("utf-8", "surrogatepass")


def split_qname(qname: str) -> tuple[str, list] | None:
    """(registered domain, labels left of it) of a query name, or None when nothing is left of it."""
    name = qname.strip().rstrip(".")
    if not name or len(name) > 1024:
        return None
    reg = registered_domain(name.lower())
    if not reg:
        return None
    labels = [lab for lab in name.split(".") if lab]
    keep = len(labels) - (reg.count(".") + 1)
    if keep <= 0:
        return None
    return reg, labels[:keep]


# ---------------------------------------------------------------------------------------------
# sessions
# ---------------------------------------------------------------------------------------------

class _Session:
    __slots__ = ("kind", "key", "state", "plan", "layout", "raw", "pending", "pending_bytes", "seen",
                 "carry", "decoded", "header", "started", "open_uids", "arrivals", "dropped", "used", "dups")

    def __init__(self, kind: str, key):
        self.kind = kind
        self.key = key
        self.state = UNDECIDED
        self.plan: Plan | None = None
        self.layout: DnsLayout | None = None
        self.raw: list = []            # undecided: (arrival, raw piece) (DNS: label lists; else bytes)
        self.pending: list = []        # decided: (order, data) waiting to be decoded
        self.pending_bytes = 0
        self.seen: set = set()         # pieces met (retransmissions are dropped)
        self.carry = b""               # stream mode: encoded tail waiting for the next piece
        self.decoded = bytearray()     # decoded, not yet handed to a connection
        self.header: bytes | None = None
        self.started = False           # the first slice (with the stream's first line) went out
        self.open_uids: set = set()    # connections that carried pieces and have not ended
        self.arrivals = 0
        self.dropped = 0               # pieces past MAX_PENDING_BYTES
        self.used: set = set()         # encodings the decoded pieces were in
        self.dups = 0                  # pieces that repeated one already seen


class Tunnels:
    """Tunnel sessions of one run, fed by the content sink.

    ``inspect(cf, info, data)``: hands a body to the content stage (the sink's ``stage.body``);
    ``yield_of(data) -> int``: records and values found in a decoded sample (to choose how pieces
    join).  ``open(uid, local)`` names a connection's local host; ``finish_flow(cf)`` (a
    ``ContentFlow``) before the stage finishes it.
    """

    def __init__(self, inspect, yield_of=None):
        self.inspect = inspect
        self.yield_of = yield_of
        self.sessions: "OrderedDict[tuple, _Session]" = OrderedDict()
        self.hosts: dict = {}          # uid -> local host of a connection with a content handle
        self.by_uid: dict = {}         # uid -> {session key}
        self.held: dict = {}           # uid -> [(session key, info, data)]: undecided DNS queries
        self.stats = {"sessions": 0, "tunnels": 0, "rejected": 0, "pieces": 0, "decoded_bytes": 0}

    # -- connections ------------------------------------------------------------------------
    def open(self, uid: str, local: str) -> None:
        self.hosts[uid] = local

    def _session(self, kind: str, key, create: bool = True) -> _Session | None:
        s = self.sessions.get(key)
        if s is None:
            if not create:
                return None
            s = self.sessions[key] = _Session(kind, key)
            self.stats["sessions"] += 1
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        else:
            self.sessions.move_to_end(key)
        return s

    def _join(self, s: _Session, uid: str) -> None:
        s.open_uids.add(uid)
        keys = self.by_uid.get(uid)
        if keys is None:
            keys = self.by_uid[uid] = set()
        keys.add(s.key)

    # -- input ------------------------------------------------------------------------------
    def dns_query(self, cf, info: dict, data: bytes) -> None:
        """A query name leaving the site (``info["qname"]``); ``data`` is what the content stage
        inspects of it alone (``dns.query_content``) when its session turns out not to be a tunnel."""
        uid = cf.uid
        host = self.hosts.get(uid)
        split = split_qname(info.get("qname") or "")
        if host is None or split is None:
            self.inspect(cf, info, data)
            return
        reg, labels = split
        # a short name starts no session, but may be the last piece of one
        s = self._session("dns", ("dns", host, reg), create=sum(len(x) for x in labels) >= MIN_DNS_DATA)
        if s is None or s.state == REJECTED:
            self.inspect(cf, info, data)
            return
        ident = hash(".".join(labels))
        if ident in s.seen:
            return                         # a retransmission (resolver retry): its data is in already
        if len(s.seen) < MAX_SEEN:
            s.seen.add(ident)
        self._join(s, uid)
        if s.state == UNDECIDED:
            held = self.held.setdefault(uid, [])
            if len(held) < MAX_HELD_PER_FLOW:
                held.append((s.key, info, data))
            else:
                self.inspect(cf, info, data)
        self._piece(s, labels, cf)

    def dns_answer(self, cf, qname: str, data: bytes) -> None:
        """TXT/NULL answer data a local server sends out for ``qname``."""
        host = self.hosts.get(cf.uid)
        if host is None or not data:
            return
        split = split_qname(qname or "")
        reg = split[0] if split else (registered_domain((qname or "").lower()) or "")
        s = self._session("dns-answer", ("dns-answer", host, reg))
        if s.state != REJECTED:
            self._bytes_piece(s, cf, data)

    def icmp(self, cf, remote: str, data: bytes) -> bool:
        """One ICMP echo payload leaving the site to ``remote``; False once the session wants no more."""
        host = self.hosts.get(cf.uid)
        if host is None:
            return False
        if not data:
            return True
        s = self._session("icmp", ("icmp", host, remote))
        if s.state == REJECTED:
            return False
        self._bytes_piece(s, cf, data)
        return s.state != REJECTED and s.pending_bytes < MAX_PENDING_BYTES

    def _bytes_piece(self, s: _Session, cf, data: bytes) -> None:
        data = bytes(data)
        ident = hash(data)
        if ident in s.seen:
            s.dups += 1
            if s.state == UNDECIDED and s.dups >= 16 and s.dups > 4 * len(s.raw):
                self._reject(s)            # one payload over and over (ping -p, keep-alives): no data
            return
        if len(s.seen) < MAX_SEEN:
            s.seen.add(ident)
        self._join(s, cf.uid)
        self._piece(s, data, cf)

    def _piece(self, s: _Session, raw, cf) -> None:
        s.arrivals += 1
        self.stats["pieces"] += 1
        if s.state == UNDECIDED:
            if len(s.raw) < UNDECIDED_CHUNKS:
                s.raw.append((s.arrivals, raw))
                if len(s.raw) in DECIDE_AT:
                    self._decide(s)
            return
        if s.state == TUNNEL:
            self._add(s, s.arrivals, raw)
            if s.pending_bytes >= FLUSH_AT:
                # a long-lived connection (one ICMP flow, one resolver socket): what is decoded so far
                # goes to it now, keeping the session's memory bounded
                self._attribute(s, cf, final=False)

    def _add(self, s: _Session, arrival: int, raw) -> None:
        if s.pending_bytes >= MAX_PENDING_BYTES:
            s.dropped += 1
            return
        if s.kind == "dns":
            seq, data = dns_pieces(raw, s.layout)
            # no counter: arrival order; a counter that did not parse: after the counted pieces
            order = (0,) + seq if seq is not None else (0 if s.layout.seq is None else 1, arrival)
        else:
            data = raw[s.layout.strip:].rstrip(b"\x00")
            order = (0, arrival)
        s.pending.append((order, data))
        s.pending_bytes += len(data)

    # -- deciding ---------------------------------------------------------------------------
    def _decide(self, s: _Session) -> None:
        """Choose the session's layout and plan on the pieces seen so far."""
        if len(s.raw) < MIN_CHUNKS:
            return
        raws = [r for _, r in s.raw]
        if s.kind == "dns":
            layout = dns_layout(raws)
            parts = [dns_pieces(r, layout) for r in raws]
            if layout.seq is not None:
                parts.sort(key=lambda p: (p[0] is None, p[0] or ()))
            datas = [d for _, d in parts]
        else:
            layout = DnsLayout(_common_prefix(raws))
            datas = [r[layout.strip:].rstrip(b"\x00") for r in raws]
            if not _varies(datas):
                self._reject(s)
                return
            if layout.strip:
                # a prefix every payload shares is a tool's magic, or the start of every record
                # ('{"id": ...'): it is dropped only when the pieces read better without it
                whole = choose_plan([r.rstrip(b"\x00") for r in raws], True, self.yield_of)
                plan = choose_plan(datas, True, self.yield_of)
                if whole is not None and (plan is None or plan.score <= whole.score):
                    layout, plan = DnsLayout(0), whole
                self._decided(s, layout, plan)
                return
        self._decided(s, layout, choose_plan(datas, True, self.yield_of))

    def _decided(self, s: _Session, layout: DnsLayout, plan: Plan | None) -> None:
        if plan is None:
            if len(s.raw) >= UNDECIDED_CHUNKS:
                self._reject(s)
            return
        s.state = TUNNEL
        s.plan = plan
        s.layout = layout
        self.stats["tunnels"] += 1
        for arrival, raw in s.raw:
            self._add(s, arrival, raw)
        s.raw = []

    def _reject(self, s: _Session) -> None:
        s.state = REJECTED
        s.raw = []
        s.seen = set()
        self.stats["rejected"] += 1

    # -- attribution ------------------------------------------------------------------------
    def finish_flow(self, cf) -> None:
        """A connection ends: its share of decoded tunnel data goes to the content stage (into
        ``cf``), then the queries it held back whose session is no tunnel are inspected alone."""
        uid = cf.uid
        self.hosts.pop(uid, None)
        for key in sorted(self.by_uid.pop(uid, ()), key=repr):
            s = self.sessions.get(key)
            if s is None:
                continue
            s.open_uids.discard(uid)
            if s.state == UNDECIDED:
                self._decide(s)
            if s.state == TUNNEL:
                self._attribute(s, cf, final=not s.open_uids)
        for key, info, data in self.held.pop(uid, ()):
            s = self.sessions.get(key)
            if s is None or s.state != TUNNEL:
                self.inspect(cf, info, data)

    def _attribute(self, s: _Session, cf, final: bool) -> None:
        """Hand ``cf`` the complete lines decoded so far (everything when ``final``: no other
        connection of the session is open), the CSV header in front of every slice but the first."""
        self._decode_pending(s, final)
        buf = s.decoded
        if not buf:
            return
        if final or len(buf) >= MAX_HOLD:
            cut = len(buf)
        elif bytes(buf[:8]).startswith(_KNOWN_MAGIC):
            cut = 0                    # a file (gzip, zip...) is inspected whole
        else:
            cut = buf.rfind(b"\n") + 1
        if cut <= 0:
            return
        piece = bytes(buf[:cut])
        del buf[:cut]
        if not s.started:
            s.started = True
            nl = piece.find(b"\n")
            if nl > 0:
                s.header = csv_header(piece[:nl + 1])
            body = piece
        else:
            body = s.header + piece if s.header is not None else piece
        self.stats["decoded_bytes"] += len(piece)
        cf.encodings.update(s.used)
        self.inspect(cf, {"source": f"{s.kind}-tunnel"}, body)

    def _decode_pending(self, s: _Session, final: bool) -> None:
        """Decode the pieces gathered since the last call, in counter (else arrival) order."""
        if not s.pending:
            if final and s.carry:          # stream mode: the tail of the last piece
                dec, s.carry = decode_piece(s.carry, s.plan.encoding)
                s.decoded += dec or b""
            return
        s.pending.sort(key=lambda p: p[0])
        batch, s.pending, s.pending_bytes = s.pending, [], 0
        dec, s.carry, _ = decode_pieces([d for _, d in batch], s.plan, s.carry, final=final, used=s.used)
        if dec and s.plan.sep and s.decoded and not s.decoded.endswith(s.plan.sep):
            s.decoded += s.plan.sep
        s.decoded += dec


def _common_prefix(raws: list) -> int:
    """Length of the prefix every piece shares (a tunnel tool's magic), at most 64 bytes."""
    if len(raws) < 2:
        return 0
    first = raws[0]
    n = min(64, min(len(r) for r in raws))
    k = 0
    while k < n and all(r[k] == first[k] for r in raws):
        k += 1
    return k


def _varies(datas: list) -> bool:
    """Do the pieces carry data, rather than one pattern repeated (pings: a fixed pattern, at most a
    timestamp changing)?  At least half distinct, and on average 8 bytes or more between the
    prefix and the suffix they all share."""
    if len(datas) < 2:
        return False
    if len(set(datas)) < 0.5 * len(datas):
        return False
    n = min(len(d) for d in datas)
    suffix = 0
    while suffix < n and all(d[-1 - suffix] == datas[0][-1 - suffix] for d in datas):
        suffix += 1
    varying = sum(len(d) - suffix for d in datas) / len(datas)
    return varying >= 8
