"""Google QUIC (gQUIC): the handshake of Chrome's pre-IETF QUIC versions.

Three wire formats, told apart by the first byte and the version tag:

* **Q024-Q043** ("public header"): a flags byte (0x01 version present, 0x02
  public reset, 0x04 diversification nonce -- server only --, 0x08 8-byte
  connection ID, 0x30 packet number length 1/2/4/6), the connection ID, the
  version tag (client, ``Q039``), the nonce (server), the packet number.
  Handshake packets are not encrypted: a 12-byte FNV-1a-128 hash of header
  and payload (with ``"Client"``/``"Server"`` appended since Q037) comes
  first, then (before Q034) a private flags byte, then gQUIC frames.  Before
  Q039 the integers of the header and the frames are little-endian.
* **Q046** (IETF invariant header): ``0b11TTRRPP``, version, one byte of
  connection ID lengths (two nibbles, ``len - 3``), DCID, SCID, packet
  number; then, as above, the null-encryption hash and gQUIC frames.
  Short headers (``0b01......``) are encrypted.
* **Q050, T050, T051** (IETF long header with token and length): Initial
  packets are protected like IETF QUIC (RFC 9001 key schedule, header
  protection, AES-128-GCM) with version-specific initial salts; the
  payload holds gQUIC frames, the handshake in CRYPTO frames (type 0x08,
  varint offset and length).  Q050 still carries a QUIC-crypto CHLO, T05x a
  TLS 1.3 ClientHello.

The client's handshake (stream 1 before Q047, CRYPTO frames since) is a
QUIC-crypto message: a tag (``CHLO``), the number of entries (u16 LE), two
bytes of padding, then per entry a tag and the end offset of its value (u32
LE), then the values.  ``SNI`` gives the server name, ``UAID`` the user
agent, ``VER`` the version.

Output: one ``quic.jsonl`` record per connection with quic.py's fields
(``version`` is the version tag, ``client_initial_dcid`` the connection ID;
``history`` uses quic.py's letters: I/Z/H/R long-header or unencrypted
handshake packets, S hello complete, C CONNECTION_CLOSE, U version
negotiation, O encrypted packets at counts 1, 2, 4...).  The TLS handshake of
T05x is also written to ``tls.jsonl`` (as quic.py does), and the service is
``quic`` (``quic,ssl`` for T05x).  The user agent is kept on the analyzer
(``user_agent``) -- quic.log has no field for it.

Detection: a client packet with a gQUIC version tag, or any packet whose
null-encryption hash checks (so a server-only capture is recognised too).
On 443/udp the QUIC analyzer is attached by port and hands gQUIC flows over
to this one (``quic.Analyzer`` calls :func:`detect`).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import quic_wire, tls
from .base import Analyzer as _BaseAnalyzer
from .base import FlowContext

NAME = "quic"
LOG = "quic"
TRANSPORTS = ("udp",)
PORTS = ()                   # 443 belongs to quic.py, whose analyzer hands gQUIC over
# ---- outputs (read by inspector.outputs): the quic log's schema and this module's weird names ----
LOG_SCHEMA = quic_wire.LOG_SCHEMA     # gQUIC writes quic.jsonl records with the same fields
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "quic.gquic_bad_client_hello": "a gQUIC CHLO that cannot be parsed",
    "quic.gquic_bad_frame": "a gQUIC frame that cannot be parsed",
    "quic.gquic_bad_handshake_message": "a gQUIC handshake message (tag/value list) that cannot be parsed",
    "quic.gquic_bad_packet": "a gQUIC packet whose header cannot be parsed",
    "quic.gquic_bad_server_hello": "a gQUIC SHLO/REJ that cannot be parsed",
    "quic.gquic_crypto_buffer_cap": "handshake stream data beyond the buffering limit",
    "quic.gquic_decryption_failed": "a protected gQUIC Initial that does not decrypt with the version's salt",
    "quic.gquic_unexpected_handshake_message": "a gQUIC handshake message of an unexpected tag or direction",
}
# ---- end of outputs declarations ----

EMIT_TLS_LOG = True
MAX_CRYPTO = 64 * 1024       # handshake bytes buffered per direction
MAX_ENTRIES = 128            # tag/value pairs in one handshake message (Chromium's limit)
MAX_DATAGRAMS = 64           # datagrams looked at once the hellos are known (or never seen)
MAX_HISTORY = 100
MAX_JUNK_DATAGRAMS = 3

# Initial salts of the gQUIC versions with IETF-style protected Initial packets
# (public constants of Chromium's QUIC; also in Wireshark's and nDPI's dissectors).
IETF_SALTS = {
    b"Q050": bytes.fromhex("504574efd066fe2f9d945cfcdbd3a7f0d3b56b45"),
    b"T050": bytes.fromhex("7ff579e5acd072915580304c43a2367c60488310"),
    b"T051": bytes.fromhex("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d"),
}

FNV_OFFSET = 0x6C62272E07BB014262B821756295C58D
FNV_PRIME = 0x0000000001000000000000000000013B
_MASK128 = (1 << 128) - 1
_MASK96 = (1 << 96) - 1

TAG_CHLO = b"CHLO"
_MESSAGE_TAGS = (b"CHLO", b"REJ\x00", b"SHLO", b"SREJ")
_PN_LEN = (1, 2, 4, 6)
_LONG_TYPES = (quic_wire.INITIAL, quic_wire.ZERO_RTT, quic_wire.HANDSHAKE, quic_wire.RETRY)
_LETTER = {quic_wire.INITIAL: "I", quic_wire.ZERO_RTT: "Z", quic_wire.HANDSHAKE: "H", quic_wire.RETRY: "R"}

TP_GOOGLE_USER_AGENT = 0x3129        # transport parameter of Chrome's T05x
EXT_QUIC_TP = (0xFFA5, 0x0039)       # draft and RFC codepoints of quic_transport_parameters


class Malformed(ValueError):
    pass


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------

def tag_version(tag: bytes) -> int | None:
    """The number of a gQUIC version tag (``Q039`` -> 39, ``T051`` -> 51), else None."""
    if len(tag) != 4 or tag[0] not in b"QT" or tag[1] != 0x30 or not (0x30 <= tag[2] <= 0x39) \
            or not (0x30 <= tag[3] <= 0x39):
        return None
    n = (tag[2] - 0x30) * 10 + tag[3] - 0x30
    if tag[0] == 0x51 and not 1 <= n <= 50 or tag[0] == 0x54 and not 48 <= n <= 51:
        return None
    return n


def _version_text(tag: bytes) -> str:
    return tag.decode("ascii", "replace")


# ---------------------------------------------------------------------------
# Null encryption (FNV-1a 128, truncated to 96 bits)
# ---------------------------------------------------------------------------

def fnv1a_128(data: bytes, h: int = FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK128
    return h


def null_hash(header: bytes, payload: bytes, label: bytes = b"") -> bytes:
    """The 12 bytes a gQUIC NullEncrypter puts before ``payload`` (``label``:
    ``b"Client"``/``b"Server"`` -- the sender -- since Q037, empty before)."""
    h = fnv1a_128(label, fnv1a_128(payload, fnv1a_128(header))) & _MASK96
    return h.to_bytes(16, "little")[:12]


def null_hash_ok(data: bytes, hash_at: int, is_orig: bool) -> bool:
    """Does the 12-byte hash at ``hash_at`` authenticate header + payload?"""
    if hash_at + 12 > len(data):
        return False
    want = int.from_bytes(data[hash_at:hash_at + 12], "little")
    h = fnv1a_128(data[hash_at + 12:], fnv1a_128(data[:hash_at]))
    if h & _MASK96 == want:
        return True
    first, second = (b"Client", b"Server") if is_orig else (b"Server", b"Client")
    # the other label too: a capture that starts with the server's packets has its
    # directions swapped
    return fnv1a_128(first, h) & _MASK96 == want or fnv1a_128(second, h) & _MASK96 == want


# ---------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------

@dataclass
class Header:
    form: str                 # "public" | "q046" | "ietf" | "short"
    version: bytes | None     # the tag, when the packet carries one
    dcid: bytes = b""         # public header: the connection ID
    scid: bytes = b""
    kind: str | None = None   # long headers: initial / 0rtt / handshake / retry
    flags: int = 0
    pn_len: int = 0
    hash_at: int = 0          # public / q046: where the null-encryption hash would be
    end: int = 0              # end of this packet in the datagram
    vneg: bool = False        # version negotiation (public header, from the server)
    reset: bool = False       # public reset
    start: int = 0            # where the packet starts in the datagram


def parse_public_header(dg: bytes, is_orig: bool) -> Header:
    """A Q024-Q043 public header (raises ``Malformed``)."""
    n = len(dg)
    f = dg[0]
    if f & 0xC0:
        raise Malformed("public flags 0x%02x" % f)
    p = 1
    cid = b""
    if f & 0x08:                                   # 8-byte CID (0x0C before Q033)
        cid = dg[p:p + 8]
        p += 8
    if f & 0x02:                                   # public reset: tagged message follows
        return Header("public", None, cid, flags=f, end=n, reset=True)
    version = None
    if f & 0x01:
        version = dg[p:p + 4]
        p += 4
        if not is_orig:                            # version negotiation: a list of tags
            return Header("public", version, cid, flags=f, end=n, vneg=True)
    if f & 0x04 and not is_orig:                   # diversification nonce (server only)
        p += 32
    pn_len = _PN_LEN[(f >> 4) & 3]
    p += pn_len
    if p > n:
        raise Malformed("public header runs past the datagram")
    return Header("public", version, cid, flags=f, pn_len=pn_len, hash_at=p, end=n)


def parse_long_header(dg: bytes, pos: int = 0) -> Header:
    """A Q046 or Q050/T05x long header at ``pos`` (raises ``Malformed``)."""
    n = len(dg)
    if pos + 6 > n:
        raise Malformed("long header runs past the datagram")
    first = dg[pos]
    version = dg[pos + 1:pos + 5]
    kind = _LONG_TYPES[(first >> 4) & 3]
    p = pos + 5
    if version[:1] == b"Q" and 44 <= (tag_version(version) or 0) <= 47:   # Q046: two nibbles
        lens = dg[p]
        dl, sl = lens >> 4, lens & 0x0F
        dl = dl + 3 if dl else 0
        sl = sl + 3 if sl else 0
        p += 1
        if p + dl + sl > n:
            raise Malformed("connection IDs run past the datagram")
        dcid, scid = dg[p:p + dl], dg[p + dl:p + dl + sl]
        p += dl + sl
        pn_len = (first & 3) + 1
        if p + pn_len > n:
            raise Malformed("packet number runs past the datagram")
        return Header("q046", version, dcid, scid, kind, first, pn_len, p + pn_len, n, start=pos)
    dl = dg[p]
    if dl > quic_wire.MAX_CID or p + 1 + dl >= n:
        raise Malformed("bad DCID length %d" % dl)
    dcid = dg[p + 1:p + 1 + dl]
    p += 1 + dl
    sl = dg[p]
    if sl > quic_wire.MAX_CID or p + 1 + sl > n:
        raise Malformed("bad SCID length %d" % sl)
    scid = dg[p + 1:p + 1 + sl]
    p += 1 + sl
    hdr = Header("ietf", version, dcid, scid, kind, first, start=pos)
    if kind == quic_wire.RETRY:
        hdr.end = n
        return hdr
    try:
        if kind == quic_wire.INITIAL:
            tlen, p = quic_wire.read_varint(dg, p)
            p += tlen
        length, p = quic_wire.read_varint(dg, p)
    except quic_wire.Truncated:
        raise Malformed("long header runs past the datagram") from None
    hdr.hash_at = p                                # here: the packet number offset
    hdr.end = p + length
    if hdr.end > n:
        raise Malformed("packet length %d runs past the datagram" % length)
    return hdr


def detect(data: bytes, is_orig: bool) -> bool:
    """Is this datagram gQUIC?  A client packet with a gQUIC version tag, a
    server's version negotiation listing gQUIC tags, or any packet whose
    null-encryption hash checks.  Never raises."""
    try:
        if len(data) < 14:
            return False
        first = data[0]
        if first & 0x80:
            tag = bytes(data[1:5])
            v = tag_version(tag)
            if v is None or (tag not in IETF_SALTS and v < 44):
                return False
            if v >= 48:                                # IETF long header
                return first & 0x40 != 0 and data[5] <= quic_wire.MAX_CID
            return True
        if first & 0xC0:
            return False
        data = bytes(data)
        hdr = parse_public_header(data, is_orig)
        if hdr.version is not None:
            if hdr.vneg:
                tags = data[9:]
                return len(tags) >= 4 and len(tags) % 4 == 0 and \
                    all(tag_version(tags[i:i + 4]) is not None for i in range(0, len(tags), 4))
            return len(hdr.dcid) == 8 and tag_version(hdr.version) is not None
        if hdr.reset:
            return len(hdr.dcid) == 8 and data[9:13] == b"PRST"
        # The hash costs a pass over the datagram: only for what looks like one of a
        # connection's first packets (8-byte connection ID, 1-byte packet number < 32).
        if not hdr.dcid or hdr.pn_len != 1 or not 0 < data[hdr.hash_at - 1] < 32:
            return False
        return null_hash_ok(data, hdr.hash_at, is_orig)
    except Exception:                              # never raise on traffic
        return False


def probe(data: bytes, is_orig: bool) -> bool:
    return detect(data, is_orig)


# ---------------------------------------------------------------------------
# Frames and handshake messages
# ---------------------------------------------------------------------------

@dataclass
class Frames:
    crypto: list                 # [(offset, bytes)] of the handshake stream
    close: tuple | None = None   # (error code, reason)
    bad: str | None = None


def _uint(b: bytes, big: bool) -> int:
    return int.from_bytes(b, "big" if big else "little")


def parse_frames(payload: bytes, big: bool = True, pn_len: int = 1, version: int | None = None,
                 crypto_frames: bool = False) -> Frames:
    """Walk gQUIC frames; collect the handshake stream (stream 1, or CRYPTO
    frames when ``crypto_frames``).  Stops at the first frame it cannot size."""
    out = Frames(crypto=[])
    n = len(payload)
    p = 0
    old = version is not None and version < 34
    try:
        while p < n:
            t = payload[p]
            p += 1
            if t & 0x80:                               # STREAM: 1fdooossB
                sid_len = (t & 3) + 1
                ooo = (t >> 2) & 7
                off_len = ooo + 1 if ooo else 0
                if p + sid_len + off_len > n:
                    raise Malformed("truncated STREAM frame")
                sid = _uint(payload[p:p + sid_len], big)
                p += sid_len
                off = _uint(payload[p:p + off_len], big)
                p += off_len
                if t & 0x20:
                    if p + 2 > n:
                        raise Malformed("truncated STREAM frame")
                    ln = _uint(payload[p:p + 2], big)
                    p += 2
                else:
                    ln = n - p
                if p + ln > n:
                    raise Malformed("STREAM data runs past the packet")
                if sid == 1 and not crypto_frames:
                    out.crypto.append((off, bytes(payload[p:p + ln])))
                p += ln
            elif t & 0x40:                             # ACK: 01ntllmm
                if old:
                    out.bad = "ACK frame of version %d" % version
                    return out
                la_len = _PN_LEN[(t >> 2) & 3]
                blk_len = _PN_LEN[t & 3]
                p += la_len + 2                        # largest acked, ack delay
                blocks = 0
                if t & 0x20:
                    blocks = payload[p]
                    p += 1
                p += blk_len + blocks * (1 + blk_len)
                if p >= n:
                    raise Malformed("truncated ACK frame")
                stamps = payload[p]
                p += 1
                if stamps:
                    p += 5 + (stamps - 1) * 3
            elif t & 0x20:                             # CONGESTION_FEEDBACK (obsolete)
                out.bad = "congestion feedback frame"
                return out
            elif t == 0x00:                            # PADDING: the rest of the packet
                break
            elif t == 0x01:                            # RST_STREAM
                p += 16
            elif t == 0x02:                            # CONNECTION_CLOSE
                if p + 6 > n:
                    raise Malformed("truncated CONNECTION_CLOSE")
                code = _uint(payload[p:p + 4], big)
                ln = _uint(payload[p + 4:p + 6], big)
                out.close = (code, bytes(payload[p + 6:p + 6 + ln]))
                p += 6 + ln
            elif t == 0x03:                            # GOAWAY
                if p + 10 > n:
                    raise Malformed("truncated GOAWAY")
                p += 10 + _uint(payload[p + 8:p + 10], big)
            elif t == 0x04:                            # WINDOW_UPDATE
                p += 12
            elif t == 0x05:                            # BLOCKED
                p += 4
            elif t == 0x06:                            # STOP_WAITING
                p += pn_len + (1 if old else 0)
            elif t == 0x07:                            # PING
                pass
            elif t == 0x08 and crypto_frames:          # CRYPTO (Q048+): varint offset, length
                off, p = quic_wire.read_varint(payload, p)
                ln, p = quic_wire.read_varint(payload, p)
                if p + ln > n:
                    raise Malformed("CRYPTO data runs past the packet")
                out.crypto.append((off, bytes(payload[p:p + ln])))
                p += ln
            else:
                out.bad = "unknown frame type 0x%02x" % t
                return out
            if p > n:
                raise Malformed("frame runs past the packet")
    except (Malformed, quic_wire.Truncated, IndexError) as e:
        out.bad = str(e) or "truncated frame"
    return out


@dataclass
class HandshakeMessage:
    tag: bytes
    values: dict               # tag -> bytes, wire order

    def text(self, tag: bytes) -> str | None:
        v = self.values.get(tag)
        if v is None:
            return None
        return tls.printable(v.rstrip(b"\x00")) or None


def message_length(buf: bytes) -> int | None:
    """Total length of the QUIC-crypto message at the start of ``buf`` once
    its header and entry table are there, else None (raises ``Malformed``)."""
    if len(buf) < 8:
        return None
    n = int.from_bytes(buf[4:6], "little")
    if n > MAX_ENTRIES:
        raise Malformed("%d entries in a handshake message" % n)
    table = 8 + 8 * n
    if len(buf) < table:
        return None
    last = int.from_bytes(buf[table - 4:table], "little") if n else 0
    return table + last


def parse_message(buf: bytes) -> HandshakeMessage | None:
    """A complete QUIC-crypto handshake message (``CHLO``, ``REJ``, ``SHLO``...)
    at the start of ``buf``, None while incomplete; raises ``Malformed``."""
    total = message_length(buf)
    if total is None or len(buf) < total:
        return None
    tag = bytes(buf[:4])
    n = int.from_bytes(buf[4:6], "little")
    base = 8 + 8 * n
    values = {}
    prev = 0
    for i in range(n):
        e = 8 + 8 * i
        t = bytes(buf[e:e + 4])
        end = int.from_bytes(buf[e + 4:e + 8], "little")
        if end < prev:
            raise Malformed("value offsets out of order at %r" % t)
        values.setdefault(t, bytes(buf[base + prev:base + end]))
        prev = end
    return HandshakeMessage(tag, values)


def _walk_ext(body: bytes):
    """(type, data) of the extensions of a TLS ClientHello body."""
    p = 2 + 32
    p += 1 + body[p]                                   # session id
    p += 2 + int.from_bytes(body[p:p + 2], "big")      # cipher suites
    p += 1 + body[p]                                   # compression methods
    end = min(len(body), p + 2 + int.from_bytes(body[p:p + 2], "big"))
    p += 2
    while p + 4 <= end:
        et = int.from_bytes(body[p:p + 2], "big")
        ln = int.from_bytes(body[p + 2:p + 4], "big")
        yield et, body[p + 4:p + 4 + ln]
        p += 4 + ln


def transport_parameter(tp: bytes, pid: int) -> bytes | None:
    """A transport parameter, varint-coded (RFC 9000, T051+) or in the old
    u16 layout (a u16 total length, then u16 id / u16 length: T050)."""
    if len(tp) >= 2 and int.from_bytes(tp[:2], "big") == len(tp) - 2:
        p = 2
        while p + 4 <= len(tp):
            i = int.from_bytes(tp[p:p + 2], "big")
            ln = int.from_bytes(tp[p + 2:p + 4], "big")
            if i == pid:
                return tp[p + 4:p + 4 + ln]
            p += 4 + ln
        return None
    p = 0
    try:
        while p < len(tp):
            i, p = quic_wire.read_varint(tp, p)
            ln, p = quic_wire.read_varint(tp, p)
            if i == pid:
                return tp[p:p + ln]
            p += ln
    except quic_wire.Truncated:
        pass
    return None


def client_hello_user_agent(body: bytes) -> str | None:
    """Chrome's user agent in the QUIC transport parameters of a T05x ClientHello."""
    try:
        for et, data in _walk_ext(body):
            if et in EXT_QUIC_TP:
                ua = transport_parameter(data, TP_GOOGLE_USER_AGENT)
                if ua:
                    return tls.printable(ua)
    except (IndexError, ValueError):
        pass
    return None


# ---------------------------------------------------------------------------
# Analyzer
# ---------------------------------------------------------------------------



class Analyzer(_BaseAnalyzer):
    """One UDP flow carrying Google QUIC."""
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._dirs = {True: quic_wire.DirectionState(), False: quic_wire.DirectionState()}
        self.version: bytes | None = None              # the version tag
        self.client_initial_dcid: str | None = None
        self.client_scid: str | None = None
        self.server_scid: str | None = None
        self.server_name: str | None = None
        self.user_agent: str | None = None
        self.client_protocol: str | None = None
        self.ja4: str | None = None
        self.chlo: HandshakeMessage | None = None
        self.server_message: HandshakeMessage | None = None
        self.client_hello: tls.ClientHello | None = None
        self.server_hello: tls.ServerHello | None = None
        self.history: list[str] = []
        self._ts: float | None = None
        self._tls_ts: float | None = None
        self._tls_history = ""
        self._dcid: bytes | None = None                # T05x/Q050: the client's first DCID
        self._keys: dict = {}
        self._confirmed = False
        self._confirmed_ssl = False
        self._seen = 0                                 # gQUIC datagrams
        self._after = 0                                # datagrams since the hellos (or the start)
        self._junk = 0
        self._weirds: set[str] = set()
        self._done = False

    # -- plumbing ------------------------------------------------------------
    def wants_more(self) -> bool:
        if self._done or (self._junk >= MAX_JUNK_DATAGRAMS and not self._seen):
            return False
        return self._after < MAX_DATAGRAMS

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        self.datagram(is_orig, data, ts)

    def done(self, ts: float) -> None:
        if self._done:
            return
        self._done = True
        if self._seen:
            self.ctx.emit(LOG, self._record())
        if EMIT_TLS_LOG and (self.client_hello is not None or self.server_hello is not None):
            self.ctx.emit(tls.LOG, self._tls_record())

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._done or not data or not self.wants_more():
            return
        try:
            ok = self._datagram(is_orig, bytes(data), ts)
        except Malformed as e:
            self._weird("quic.gquic_bad_packet", str(e), ts)
            ok = False
        if ok:
            if not self._seen:
                self._ts = ts
            self._seen += 1
            if not self._confirmed:
                self._confirmed = True
                self.ctx.confirm(NAME)
        elif not self._seen:
            self._junk += 1
        d = self._dirs
        if (d[True].hello_done and d[False].hello_done) or self._seen > MAX_DATAGRAMS:
            self._after += 1

    def _weird(self, name: str, detail: str, ts: float) -> None:
        if name not in self._weirds:
            self._weirds.add(name)
            self.ctx.weird(name, detail, ts)

    def _history(self, is_orig: bool, letter: str) -> None:
        if len(self.history) < MAX_HISTORY:
            self.history.append(letter.upper() if is_orig else letter.lower())

    def _short(self, is_orig: bool) -> None:
        d = self._dirs[is_orig]
        d.short_total += 1
        if d.short_total == d.short_next:
            d.short_next *= 2
            self._history(is_orig, "O")

    def _set_version(self, tag: bytes | None) -> None:
        if tag is not None and self.version is None and tag_version(tag) is not None:
            self.version = bytes(tag)

    # -- packets ---------------------------------------------------------------
    def _datagram(self, is_orig: bool, dg: bytes, ts: float) -> bool:
        first = dg[0]
        if first & 0x80:
            return self._long(is_orig, dg, ts)
        if first & 0x40:                               # Q046+ short header: encrypted
            if not self._seen:
                return False
            self._short(is_orig)
            return True
        return self._public(is_orig, dg, ts)

    def _public(self, is_orig: bool, dg: bytes, ts: float) -> bool:
        hdr = parse_public_header(dg, is_orig)
        if hdr.reset:
            if not self._seen and dg[9:13] != b"PRST":
                return False
            self._history(is_orig, "C")
            return True
        if hdr.vneg:
            if not detect(dg, is_orig):
                return False
            self._history(is_orig, "U")
            return True
        if is_orig and hdr.dcid and self.client_initial_dcid is None:
            self.client_initial_dcid = hdr.dcid.hex()
        if hdr.version is not None:
            if tag_version(hdr.version) is None:
                return False
            self._set_version(hdr.version)
        v = tag_version(self.version) if self.version else None
        if not null_hash_ok(dg, hdr.hash_at, is_orig):
            if not self._seen and hdr.version is None:
                return False
            self._short(is_orig)                       # encrypted
            return True
        self._history(is_orig, "I")
        p = hdr.hash_at + 12
        if v is not None and v < 34:
            p += 1                                     # private flags
        big = v is None or v >= 39
        frames = parse_frames(dg[p:], big, hdr.pn_len, v)
        if frames.bad is not None and v is None and big:
            frames = parse_frames(dg[p:], False, hdr.pn_len, v)   # a server before Q039
        self._frames(is_orig, frames, ts, tls_hello=False)
        return True

    def _long(self, is_orig: bool, dg: bytes, ts: float) -> bool:
        pos = 0
        n = len(dg)
        ok = False
        while pos < n:
            if not dg[pos] & 0x80:
                if ok and dg[pos] & 0x40:
                    self._short(is_orig)               # coalesced short-header packet
                return ok
            hdr = parse_long_header(dg, pos)
            if tag_version(hdr.version) is None:
                return ok
            self._set_version(hdr.version)
            if is_orig:
                if self.client_initial_dcid is None and hdr.dcid:
                    self.client_initial_dcid = hdr.dcid.hex()
                if self.client_scid is None:
                    self.client_scid = hdr.scid.hex()
            elif self.server_scid is None:
                self.server_scid = hdr.scid.hex()
            self._history(is_orig, _LETTER[hdr.kind])
            ok = True
            if hdr.form == "q046":
                if hdr.kind != quic_wire.RETRY and null_hash_ok(dg, hdr.hash_at, is_orig):
                    frames = parse_frames(dg[hdr.hash_at + 12:], True, hdr.pn_len, 46)
                    self._frames(is_orig, frames, ts, tls_hello=False)
                return True                            # no length field: one packet per datagram
            if hdr.kind == quic_wire.INITIAL and hdr.version in IETF_SALTS and \
                    not self._initial(is_orig, dg, hdr, ts):
                return ok
            pos = hdr.end
        return ok

    def _initial(self, is_orig: bool, dg: bytes, hdr: Header, ts: float) -> bool:
        """Decrypt one Q050/T05x Initial packet (RFC 9001 protection, gQUIC salts)."""
        d = self._dirs[is_orig]
        if d.hello_done:
            return True
        if is_orig and self._dcid is None:
            self._dcid = hdr.dcid
        if self._dcid is None:
            return True                                # server Initial before any client one
        key = (hdr.version, self._dcid, is_orig)
        keys = self._keys.get(key)
        if keys is None:
            if len(self._keys) > 8:
                self._keys.clear()
            secret = quic_wire.hkdf_extract(IETF_SALTS[hdr.version], self._dcid)
            secret = quic_wire.hkdf_expand_label(secret, b"client in" if is_orig else b"server in", 32)
            keys = self._keys[key] = quic_wire.InitialKeys(secret, b"quic ")
        lh = quic_wire.LongHeader(hdr.start, hdr.flags, 0, hdr.dcid, hdr.scid, quic_wire.INITIAL,
                             pn_offset=hdr.hash_at, end=hdr.end)
        try:
            pn, payload = quic_wire.unprotect(dg, lh, keys, d.largest_pn)
        except Exception as e:                         # InvalidTag, too short
            if not d.warned:
                d.warned = True
                self.ctx.weird("quic.gquic_decryption_failed", "%s %s Initial: %s"
                               % ("client" if is_orig else "server", _version_text(hdr.version),
                                  type(e).__name__), ts)
            return False
        d.largest_pn = max(d.largest_pn, pn)
        frames = parse_frames(payload, True, 4, tag_version(hdr.version), crypto_frames=True)
        self._frames(is_orig, frames, ts, tls_hello=hdr.version[:1] == b"T")
        return True

    # -- handshake ---------------------------------------------------------------
    def _frames(self, is_orig: bool, frames: Frames, ts: float, tls_hello: bool) -> None:
        if frames.bad:
            self._weird("quic.gquic_bad_frame", frames.bad, ts)
        d = self._dirs[is_orig]
        if not d.hello_done:
            for off, chunk in frames.crypto:
                d.crypto.add(off, chunk)
            if d.crypto.overflow:
                self._weird("quic.gquic_crypto_buffer_cap", "handshake data beyond %d bytes" % MAX_CRYPTO, ts)
                d.hello_done = True
                d.crypto = quic_wire.CryptoStream()
            elif tls_hello:
                self._tls_hello(is_orig, d, ts)
            else:
                self._crypto_message(is_orig, d, ts, frames.crypto)
        if frames.close is not None:
            self._history(is_orig, "C")

    def _crypto_message(self, is_orig: bool, d: quic_wire.DirectionState, ts: float, chunks: list) -> None:
        try:
            msg = parse_message(d.crypto.data)
            if msg is None:
                # A capture that starts later (a CHLO repeated after a REJ, at offset > 0):
                # handshake messages are sent whole in one packet, so one may stand alone.
                for off, chunk in chunks:
                    if off and chunk[:4] in _MESSAGE_TAGS:
                        msg = parse_message(chunk)
                        if msg is not None:
                            break
        except Malformed as e:
            self._weird("quic.gquic_bad_handshake_message", str(e), ts)
            d.hello_done = True
            d.crypto = quic_wire.CryptoStream()
            return
        if msg is None:
            return
        d.hello_done = True
        d.crypto = quic_wire.CryptoStream()
        self._history(is_orig, "S")
        if not is_orig:
            self.server_message = msg
            return
        if msg.tag != TAG_CHLO:
            self._weird("quic.gquic_unexpected_handshake_message",
                        "%r first in the client handshake stream" % msg.tag, ts)
            return
        self.chlo = msg
        self._set_version(msg.values.get(b"VER"))
        self.user_agent = msg.text(b"UAID")
        sni = msg.text(b"SNI\x00")
        if sni:
            self.server_name = sni
            self.ctx.hostname("quic_sni", sni, ts)

    def _tls_hello(self, is_orig: bool, d: quic_wire.DirectionState, ts: float) -> None:
        msg = d.crypto.message()
        if msg is None:
            return
        d.hello_done = True
        d.crypto = quic_wire.CryptoStream()
        mtype, body = msg
        if self._tls_ts is None:
            self._tls_ts = ts
        if is_orig and mtype == tls.HS_CLIENT_HELLO:
            try:
                ch = tls.parse_client_hello(body)
            except tls.Malformed as e:
                self._weird("quic.gquic_bad_client_hello", str(e), ts)
                return
            self._history(True, "S")
            self._tls_history += "C"
            self.client_hello = ch
            self.server_name = ch.server_name
            self.client_protocol = tls.printable(ch.alpn[0]) if ch.alpn else None
            self.ja4 = ch.ja4("q")
            self.user_agent = client_hello_user_agent(body)
            if not self._confirmed_ssl:
                self._confirmed_ssl = True
                self.ctx.confirm(tls.NAME)
            tls.report_client_hello_name(self.ctx, ch, "quic_sni", ts)
        elif not is_orig and mtype == tls.HS_SERVER_HELLO:
            try:
                sh = tls.parse_server_hello(body)
            except tls.Malformed as e:
                self._weird("quic.gquic_bad_server_hello", str(e), ts)
                return
            self._history(False, "S")
            self._tls_history += "s"
            if not sh.is_hrr:
                self.server_hello = sh
        else:
            self._weird("quic.gquic_unexpected_handshake_message",
                        "TLS type %d first in the %s CRYPTO stream"
                        % (mtype, "client" if is_orig else "server"), ts)

    # -- records -----------------------------------------------------------------
    def _record(self) -> dict:
        return {
            "ts": self._ts if self._ts is not None else self.ctx.ts,
            "uid": self.ctx.uid,
            "version": _version_text(self.version) if self.version else None,
            "client_initial_dcid": self.client_initial_dcid,
            "client_scid": self.client_scid,
            "server_scid": self.server_scid,
            "server_name": self.server_name,
            "client_protocol": self.client_protocol,
            "ja4": self.ja4,
            "history": "".join(self.history),
        }

    def _tls_record(self) -> dict:
        return tls.quic_record(self.ctx.uid, self._tls_ts if self._tls_ts is not None else self.ctx.ts,
                               self.client_hello, self.server_hello, self._tls_history)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "quic", "gquic": "quic"}
NAME_SOURCES = ("quic_sni", "sni_outer")   # the CHLO's SNI tag or the T05x ClientHello (outer name with ECH)
CONTENT = "none"
ENCRYPTED = "tls-encrypted"
