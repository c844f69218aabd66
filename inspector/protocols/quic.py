"""QUIC (RFC 9000 / RFC 9001, version 2 RFC 9369): Initial packets decrypted.

Only the Initial packets carry something an observer can read: they are
protected with keys derived from the client's first Destination Connection ID
(RFC 9001 §5.2), so every on-path observer can remove the protection:

    initial_secret = HKDF-Extract(version salt, client's first DCID)
    client_secret  = HKDF-Expand-Label(initial_secret, "client in", "", 32)
    server_secret  = HKDF-Expand-Label(initial_secret, "server in", "", 32)
    key / iv / hp  = HKDF-Expand-Label(secret, "quic key" | "quic iv" | "quic hp")

(QUIC v2 uses another salt and the labels "quicv2 key/iv/hp"; the IETF
drafts 22-34, Facebook's mvfst and Google's T050/T051 their own salts, see
``VERSIONS``).  Header
protection is removed with an AES-ECB mask over a 16-byte ciphertext sample
(RFC 9001 §5.4), the payload is AES-128-GCM with the header as associated
data and ``iv XOR packet number`` as nonce (§5.3).  The AEAD tag is verified,
so a wrong salt or DCID never yields garbage.

From the decrypted frames (PADDING, PING, ACK, CRYPTO, CONNECTION_CLOSE; the
other types are skipped by their length) the CRYPTO stream of each direction
is reassembled by offset, across packets and datagrams (Chrome splits its
ClientHello over several Initial packets), and the ClientHello/ServerHello is
parsed with ``tls.parse_client_hello`` / ``tls.parse_server_hello``.

Output follows Zeek's quic.log: one ``quic.jsonl`` record per QUIC
"session", i.e. per connection, except that -- like Zeek -- a Retry, a
CONNECTION_CLOSE seen in an Initial or an unsupported version ends the record
and the next packet starts a new one.  ``history`` uses Zeek's letters (client
upper case): I Initial, H Handshake, Z 0-RTT, R Retry, S Client/Server Hello
complete, C CONNECTION_CLOSE, U unhandled version, X bytes after the last
packet of a datagram (fixed bit clear), O short-header packets at counts 1, 2,
4, 8... per direction.  Like Zeek, an Initial is decrypted only until that
direction's hello is complete.

As Zeek does for QUIC connections (service ``quic,ssl``), the TLS handshake
seen in the Initial packets is also written as one ``tls.jsonl`` record per
connection at ``done()`` (``established`` is always false: the rest of the
handshake is encrypted), and both ``quic`` and ``ssl`` are confirmed.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from . import tls
from ..outputs.schema import STRING, TIME, Field, Stream
from .base import Analyzer as _BaseAnalyzer
from .base import FlowContext

NAME = "quic"
LOG = "quic"
TRANSPORTS = ("udp",)
PORTS = (443, 4433, 8443, 853, 784)
# ---- outputs (read by inspector.outputs): the quic log's schema and this module's weird names ----
LOG_SCHEMA = Stream("quic", "QUIC connections (IETF and Google QUIC), one record per connection (Zeek quic.log)", (
    Field("ts", TIME, "time of the first packet"),
    Field("uid", STRING, "the connection's uid"),
    Field("version", STRING, "QUIC version name as Zeek writes it (1, quicv2, draft-29, Q050...; unknown-<hex> otherwise)"),
    Field("client_initial_dcid", STRING, "the client's first destination connection id (hex)"),
    Field("client_scid", STRING, "the client's source connection id (hex)"),
    Field("server_scid", STRING, "the server's source connection id (hex)"),
    Field("server_name", STRING, "SNI from the client's hello"),
    Field("client_protocol", STRING, "first ALPN protocol the client offered"),
    Field("ja4", STRING, "JA4 fingerprint of the client's hello"),
    Field("history", STRING, "Zeek's QUIC history letters (I initial, H handshake, ...; upper case client)"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "quic.bad_client_hello": "the TLS ClientHello inside the client's Initial cannot be parsed",
    "quic.bad_frame": "a frame in a decrypted Initial packet cannot be parsed",
    "quic.bad_long_header": "a long-header packet whose header cannot be parsed",
    "quic.bad_server_hello": "the TLS ServerHello inside the server's Initial cannot be parsed",
    "quic.client_hello_<problem>": "a tolerated defect of the ClientHello (as ssl.client_hello_<problem>)",
    "quic.crypto_buffer_cap": "CRYPTO frame data beyond the buffering limit",
    "quic.decryption_failed": "an Initial packet that does not decrypt with the version's initial keys",
    "quic.truncated_packet": "a long-header packet that runs past the end of its datagram",
    "quic.unexpected_handshake_message": "a TLS handshake message other than the hellos in an Initial",
    "quic.unhandled_version": "a QUIC version whose Initial packets cannot be decrypted",
}
# ---- end of outputs declarations ----

# Also write the TLS view of the Initial handshake to tls.jsonl (Zeek's ssl.log).
EMIT_TLS_LOG = True

MAX_CID = 20                 # RFC 9000 §17.2: connection IDs are at most 20 bytes
MAX_CRYPTO = 64 * 1024       # CRYPTO stream bytes buffered per direction
MAX_HISTORY = 100
# Datagrams that are not QUIC (parse errors, unknown versions, fixed bit clear)
# tolerated before anything decrypted; then the analyzer gives up.  Guards
# against non-QUIC traffic on a QUIC port (DTLS, OpenVPN, games on 443/udp).
MAX_JUNK_DATAGRAMS = 3

INITIAL, ZERO_RTT, HANDSHAKE, RETRY = "initial", "0rtt", "handshake", "retry"
_LETTER = {INITIAL: "I", ZERO_RTT: "Z", HANDSHAKE: "H", RETRY: "R"}

VERSION_1 = 0x00000001
VERSION_2 = 0x6B3343CF


@dataclass(frozen=True)
class _Version:
    name: str                # Zeek's version string
    salt: bytes              # Initial salt (RFC 9001 §5.2 / RFC 9369 §3.3.1)
    label: bytes             # "quic " or "quicv2 "
    types: tuple             # long-header type bits 0..3 -> packet kind
    crypto_frame: int = 0x06  # CRYPTO frame type (Google's T05x used 0x08)


_TYPES_V1 = (INITIAL, ZERO_RTT, HANDSHAKE, RETRY)
_TYPES_V2 = (RETRY, INITIAL, ZERO_RTT, HANDSHAKE)     # RFC 9369 §3.2

_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")   # drafts 29-34
_SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")   # drafts 23-28
_SALT_D22 = bytes.fromhex("7fbcdb0e7c66bbe9193a96cd21519ebd7a02644a")   # draft 22
# Google QUIC with TLS (Chrome 2020-2021), IETF invariant header
_SALT_T050 = bytes.fromhex("7ff579e5acd072915580304c43a2367c60488310")
_SALT_T051 = bytes.fromhex("7a4edef4e7ccee5fa4506c19124fc8ccda6e033d")


def _version_table() -> dict[int, _Version]:
    t = {
        VERSION_1: _Version("1", _SALT_V1, b"quic ", _TYPES_V1),
        VERSION_2: _Version("quicv2", _SALT_V2, b"quicv2 ", _TYPES_V2),
        0xFACEB001: _Version("mvfst (faceb001)", _SALT_D22, b"quic ", _TYPES_V1),
        0xFACEB002: _Version("mvfst (faceb002)", _SALT_D23, b"quic ", _TYPES_V1),
        0xFACEB00E: _Version("mvfst (faceb00e)", _SALT_D23, b"quic ", _TYPES_V1),
        0x54303530: _Version("T050", _SALT_T050, b"quic ", _TYPES_V1, crypto_frame=0x08),
        0x54303531: _Version("T051", _SALT_T051, b"quic ", _TYPES_V1, crypto_frame=0x08),
    }
    for n in range(22, 35):
        salt = _SALT_D22 if n == 22 else _SALT_D23 if n <= 28 else _SALT_D29
        t[0xFF000000 | n] = _Version("draft-%d" % n, salt, b"quic ", _TYPES_V1)
    return t


VERSIONS: dict[int, _Version] = _version_table()


def version_name(v: int) -> str:
    """Zeek's quic.log version string (``1``, ``quicv2``, ``draft-29``...)."""
    known = VERSIONS.get(v)
    return known.name if known else "unknown-%x" % v


# ---------------------------------------------------------------------------
# Key schedule (RFC 9001 §5.1-5.2, RFC 8446 §7.1)
# ---------------------------------------------------------------------------

def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_label(label: bytes, length: int, context: bytes = b"") -> bytes:
    """The HkdfLabel structure (RFC 8446 §7.1) for ``label`` ("tls13 " added)."""
    full = b"tls13 " + label
    return struct.pack("!HB", length, len(full)) + full + bytes([len(context)]) + context


def hkdf_expand_label(secret: bytes, label: bytes, length: int, context: bytes = b"") -> bytes:
    """HKDF-Expand-Label with SHA-256 (``label`` without the "tls13 " prefix)."""
    info = hkdf_label(label, length, context)
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


class InitialKeys:
    """AEAD key, IV and header-protection key of one direction's Initial packets."""
    __slots__ = ("secret", "key", "iv", "hp", "_aead", "_ecb")

    def __init__(self, secret: bytes, label: bytes):
        self.secret = secret
        self.key = hkdf_expand_label(secret, label + b"key", 16)
        self.iv = hkdf_expand_label(secret, label + b"iv", 12)
        self.hp = hkdf_expand_label(secret, label + b"hp", 16)
        self._aead = None
        self._ecb = None

    def mask(self, sample: bytes) -> bytes:
        """Header protection mask: AES-ECB(hp, sample)[0:5]."""
        if self._ecb is None:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
            self._ecb = Cipher(algorithms.AES(self.hp), modes.ECB()).encryptor()
        return self._ecb.update(sample)[:5]

    def nonce(self, pn: int) -> bytes:
        return (int.from_bytes(self.iv, "big") ^ pn).to_bytes(12, "big")

    def open(self, pn: int, header: bytes, ciphertext: bytes) -> bytes:
        """Decrypt and authenticate (raises ``cryptography`` InvalidTag)."""
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            self._aead = AESGCM(self.key)
        return self._aead.decrypt(self.nonce(pn), ciphertext, header)

    def seal(self, pn: int, header: bytes, plaintext: bytes) -> bytes:
        """Encrypt (used by tests to build packets)."""
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            self._aead = AESGCM(self.key)
        return self._aead.encrypt(self.nonce(pn), plaintext, header)


def initial_keys(version: int, dcid: bytes, is_client: bool) -> InitialKeys:
    """Initial keys for one direction, from the client's first DCID."""
    v = VERSIONS[version]
    initial_secret = hkdf_extract(v.salt, dcid)
    secret = hkdf_expand_label(initial_secret, b"client in" if is_client else b"server in", 32)
    return InitialKeys(secret, v.label)


# ---------------------------------------------------------------------------
# Wire helpers
# ---------------------------------------------------------------------------

class _Truncated(Exception):
    pass


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """RFC 9000 §16 variable-length integer at ``pos`` -> (value, next pos)."""
    if pos >= len(buf):
        raise _Truncated()
    first = buf[pos]
    n = 1 << (first >> 6)
    if pos + n > len(buf):
        raise _Truncated()
    v = first & 0x3F
    for i in range(1, n):
        v = (v << 8) | buf[pos + i]
    return v, pos + n


def encode_varint(v: int) -> bytes:
    if v < 0x40:
        return bytes([v])
    if v < 0x4000:
        return struct.pack("!H", v | 0x4000)
    if v < 0x40000000:
        return struct.pack("!I", v | 0x80000000)
    return struct.pack("!Q", v | 0xC000000000000000)


def decode_packet_number(largest: int, truncated: int, nbits: int) -> int:
    """RFC 9000 Appendix A.3."""
    expected = largest + 1
    win = 1 << nbits
    hwin = win >> 1
    mask = win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


@dataclass
class LongHeader:
    """A long-header packet located in a datagram (``start``..``end``)."""
    start: int
    first: int
    version: int
    dcid: bytes
    scid: bytes
    kind: str | None         # None: version not supported
    token: bytes = b""
    pn_offset: int = 0
    end: int = 0


def parse_long_header(dg: bytes, pos: int) -> LongHeader:
    """Parse the long header at ``pos`` (raises ``_Truncated``/``ValueError``)."""
    n = len(dg)
    if pos + 7 > n:
        raise _Truncated()
    first = dg[pos]
    version = int.from_bytes(dg[pos + 1:pos + 5], "big")
    p = pos + 5
    dlen = dg[p]
    if dlen > MAX_CID:
        raise ValueError("DCID length %d > 20" % dlen)
    p += 1
    if p + dlen + 1 > n:
        raise _Truncated()
    dcid = bytes(dg[p:p + dlen])
    p += dlen
    slen = dg[p]
    if slen > MAX_CID:
        raise ValueError("SCID length %d > 20" % slen)
    p += 1
    if p + slen > n:
        raise _Truncated()
    scid = bytes(dg[p:p + slen])
    p += slen
    v = VERSIONS.get(version)
    if v is None:
        return LongHeader(pos, first, version, dcid, scid, None, end=n)
    kind = v.types[(first >> 4) & 3]
    hdr = LongHeader(pos, first, version, dcid, scid, kind)
    if kind == RETRY:
        hdr.end = n                                    # token + integrity tag: the rest
        return hdr
    if kind == INITIAL:
        tlen, p = read_varint(dg, p)
        if p + tlen > n:
            raise _Truncated()
        hdr.token = bytes(dg[p:p + tlen])
        p += tlen
    length, p = read_varint(dg, p)
    hdr.pn_offset = p
    hdr.end = p + length
    if hdr.end > n:
        raise _Truncated()
    return hdr


def unprotect(dg: bytes, hdr: LongHeader, keys: InitialKeys, largest_pn: int) -> tuple[int, bytes]:
    """Remove header protection and decrypt one long-header packet.

    Returns (packet number, plaintext payload); raises ``ValueError`` when the
    packet is too short and ``cryptography.exceptions.InvalidTag`` when it
    does not authenticate."""
    pn_off = hdr.pn_offset
    sample_off = pn_off + 4
    if sample_off + 16 > hdr.end:
        raise ValueError("packet too short for a header protection sample")
    mask = keys.mask(bytes(dg[sample_off:sample_off + 16]))
    first = dg[hdr.start] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(dg[pn_off + i] ^ mask[1 + i] for i in range(pn_len))
    pn = decode_packet_number(largest_pn, int.from_bytes(pn_bytes, "big"), 8 * pn_len)
    header = bytes([first]) + bytes(dg[hdr.start + 1:pn_off]) + pn_bytes
    ciphertext = bytes(dg[pn_off + pn_len:hdr.end])
    if len(ciphertext) < 16:
        raise ValueError("payload shorter than the AEAD tag")
    return pn, keys.open(pn, header, ciphertext)


@dataclass
class Frames:
    """What matters in a decrypted Initial payload."""
    crypto: list                 # [(offset, bytes)]
    close: tuple | None = None   # (error code, reason) of a CONNECTION_CLOSE
    bad: str | None = None       # why parsing stopped early


# Frame types with only varint fields after the type: type -> number of varints.
_VARINT_FRAMES = {0x04: 3, 0x05: 2, 0x10: 1, 0x11: 2, 0x12: 1, 0x13: 1, 0x14: 1, 0x15: 2,
                  0x16: 1, 0x17: 1, 0x19: 1}


def parse_frames(payload: bytes, crypto_type: int = 0x06) -> Frames:
    """Walk the frames of a decrypted packet (RFC 9000 §19).  ``crypto_type``
    is the CRYPTO frame type of the version (0x06 but for Google's T05x)."""
    out = Frames(crypto=[])
    n = len(payload)
    p = 0
    try:
        while p < n:
            ftype = payload[p]
            if ftype == 0x00:                          # PADDING: runs of zeros
                p += 1
                while p < n and payload[p] == 0:
                    p += 1
                continue
            ftype, p = read_varint(payload, p)
            if ftype == 0x01 or ftype == 0x1E:         # PING, HANDSHAKE_DONE
                continue
            if ftype in (0x02, 0x03):                  # ACK
                _, p = read_varint(payload, p)         # largest acknowledged
                _, p = read_varint(payload, p)         # ack delay
                count, p = read_varint(payload, p)     # range count
                _, p = read_varint(payload, p)         # first range
                if count > n:
                    raise ValueError("ACK range count %d" % count)
                for _ in range(2 * count + (3 if ftype == 0x03 else 0)):
                    _, p = read_varint(payload, p)
            elif ftype == crypto_type:                 # CRYPTO
                off, p = read_varint(payload, p)
                ln, p = read_varint(payload, p)
                if p + ln > n:
                    raise _Truncated()
                out.crypto.append((off, bytes(payload[p:p + ln])))
                p += ln
            elif ftype in (0x1C, 0x1D):                # CONNECTION_CLOSE
                code, p = read_varint(payload, p)
                if ftype == 0x1C:
                    _, p = read_varint(payload, p)     # offending frame type
                ln, p = read_varint(payload, p)
                if p + ln > n:
                    raise _Truncated()
                out.close = (code, bytes(payload[p:p + ln]))
                p += ln
            elif ftype == 0x07:                        # NEW_TOKEN
                ln, p = read_varint(payload, p)
                p += ln
            elif 0x08 <= ftype <= 0x0F:                # STREAM
                _, p = read_varint(payload, p)
                if ftype & 0x04:
                    _, p = read_varint(payload, p)
                if ftype & 0x02:
                    ln, p = read_varint(payload, p)
                    p += ln
                else:
                    p = n
            elif ftype in _VARINT_FRAMES:
                for _ in range(_VARINT_FRAMES[ftype]):
                    _, p = read_varint(payload, p)
            elif ftype == 0x18:                        # NEW_CONNECTION_ID
                _, p = read_varint(payload, p)
                _, p = read_varint(payload, p)
                if p >= n:
                    raise _Truncated()
                p += 1 + payload[p] + 16
            elif ftype in (0x1A, 0x1B):                # PATH_CHALLENGE / RESPONSE
                p += 8
            elif ftype == 0x30:                        # DATAGRAM without length
                p = n
            elif ftype == 0x31:
                ln, p = read_varint(payload, p)
                p += ln
            else:
                out.bad = "unknown frame type 0x%x" % ftype
                return out
            if p > n:
                raise _Truncated()
    except _Truncated:
        out.bad = "truncated frame"
    except ValueError as e:
        out.bad = str(e)
    return out


class CryptoStream:
    """One direction's CRYPTO stream, reassembled by offset (bounded)."""
    __slots__ = ("data", "pending", "pending_bytes", "overflow")

    def __init__(self):
        self.data = bytearray()      # contiguous bytes from offset 0
        self.pending: dict[int, bytes] = {}   # out-of-order chunks by offset
        self.pending_bytes = 0
        self.overflow = False

    def add(self, off: int, chunk: bytes) -> None:
        end = off + len(chunk)
        if end <= len(self.data) or not chunk:
            return                                     # duplicate / retransmission
        if end > MAX_CRYPTO or self.pending_bytes + len(chunk) > MAX_CRYPTO:
            self.overflow = True
            return
        old = self.pending.get(off)
        if old is None or len(chunk) > len(old):
            self.pending[off] = chunk
            self.pending_bytes += len(chunk) - (len(old) if old else 0)
        while self.pending:
            o = min(self.pending)
            if o > len(self.data):
                break
            c = self.pending.pop(o)
            self.pending_bytes -= len(c)
            skip = len(self.data) - o
            if skip < len(c):
                self.data += c[skip:]

    def message(self) -> tuple[int, bytes] | None:
        """The first handshake message (type, body) once complete."""
        d = self.data
        if len(d) < 4:
            return None
        mlen = (d[1] << 16) | (d[2] << 8) | d[3]
        if len(d) < 4 + mlen:
            return None
        return d[0], bytes(d[4:4 + mlen])

    def expected(self) -> int | None:
        d = self.data
        if len(d) < 4:
            return None
        return 4 + ((d[1] << 16) | (d[2] << 8) | d[3])


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------

def probe(data: bytes, is_orig: bool) -> bool:
    """A long-header packet (Initial, 0-RTT or Handshake) of a version we can
    decrypt, with plausible connection ID lengths."""
    try:
        if len(data) < 7 or data[0] & 0xC0 != 0xC0:
            return False
        v = VERSIONS.get(int.from_bytes(data[1:5], "big"))
        if v is None or v.types[(data[0] >> 4) & 3] == RETRY:
            return False
        dlen = data[5]
        if dlen > MAX_CID or len(data) < 7 + dlen:
            return False
        return data[6 + dlen] <= MAX_CID
    except Exception:                                  # never raise on traffic
        return False


# ---------------------------------------------------------------------------
# Analyzer
# ---------------------------------------------------------------------------

class _Session:
    """State of one quic.log record."""
    __slots__ = ("ts", "version", "client_initial_dcid", "client_scid", "server_scid",
                 "server_name", "client_protocol", "ja4", "history")

    def __init__(self, ts: float, version: int):
        self.ts = ts
        self.version = version_name(version)
        self.client_initial_dcid: str | None = None
        self.client_scid: str | None = None
        self.server_scid: str | None = None
        self.server_name: str | None = None
        self.client_protocol: str | None = None
        self.ja4: str | None = None
        self.history: list[str] = []


class _Dir:
    __slots__ = ("crypto", "hello_done", "largest_pn", "short_total", "short_next", "warned")

    def __init__(self):
        self.crypto = CryptoStream()
        self.hello_done = False
        self.largest_pn = -1
        self.short_total = 0
        self.short_next = 1
        self.warned = False


class Analyzer(_BaseAnalyzer):
    """One UDP flow carrying QUIC."""
    NAME = NAME
    _gquic = None        # a gquic.Analyzer once the flow turned out to be Google QUIC

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._session: _Session | None = None
        self._dirs = {True: _Dir(), False: _Dir()}
        self._dcid: bytes | None = None              # client's first DCID: the key input
        self._keys: dict[tuple, InitialKeys] = {}
        self._decrypted = 0
        self._confirmed_quic = False
        self._confirmed_ssl = False
        # TLS view across the connection (one tls.jsonl record, like Zeek's ssl.log)
        self.client_hello: tls.ClientHello | None = None
        self.server_hello: tls.ServerHello | None = None
        self._tls_history = ""
        self._tls_ts: float | None = None
        self._reported_name: str | None = None
        self._junk = 0
        self._weirds: set[str] = set()
        self._done = False

    # -- plumbing ------------------------------------------------------------
    def wants_more(self) -> bool:
        if self._gquic is not None:
            return self._gquic.wants_more()
        if self._done or (self._junk >= MAX_JUNK_DATAGRAMS and not self._decrypted):
            return False
        # After both hellos only the history can still change; stop once it is full.
        s = self._session
        return not (self._dirs[True].hello_done and self._dirs[False].hello_done
                    and s is not None and len(s.history) >= MAX_HISTORY)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        """QUIC is datagram-only; stream data is treated as one datagram."""
        self.datagram(is_orig, data, ts)

    def done(self, ts: float) -> None:
        if self._gquic is not None:
            self._gquic.done(ts)
            return
        if self._done:
            return
        self._done = True
        self._log_session()
        if EMIT_TLS_LOG and (self.client_hello is not None or self.server_hello is not None):
            self.ctx.emit(tls.LOG, self._tls_record())

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._gquic is not None or (self._session is None and not self._decrypted
                                       and self._to_gquic(is_orig, data)):
            self._gquic.datagram(is_orig, data, ts)
            return
        if self._done or not data or not self.wants_more():
            return
        if not self._packets(is_orig, data, ts) and not self._decrypted:
            self._junk += 1

    def _to_gquic(self, is_orig: bool, data: bytes) -> bool:
        """Google QUIC (gquic.py) on a port that brought this analyzer: hand the flow over."""
        from . import gquic
        if self._done or not data or not gquic.detect(data, is_orig):
            return False
        self._gquic = gquic.Analyzer(self.ctx)
        return True

    def _weird(self, name: str, detail: str, ts: float) -> None:
        """Each weird once per connection (a stream of junk must not flood)."""
        if name not in self._weirds:
            self._weirds.add(name)
            self.ctx.weird(name, detail, ts)

    def _packets(self, is_orig: bool, data: bytes, ts: float) -> bool:
        """Walk the packets of one datagram; False when it did not look like QUIC."""
        pos = 0
        n = len(data)
        while pos < n:
            first = data[pos]
            if not first & 0x40:
                # Fixed bit clear: not a QUIC packet (padding or junk after the
                # last coalesced packet).  Zeek notes it once decryption worked.
                if self._decrypted and self._session is not None:
                    self._history(is_orig, "X")
                return pos > 0
            if not first & 0x80:
                self._short(is_orig)
                # A short header runs to the end.  Before any long header it
                # is indistinguishable from junk.
                return self._session is not None
            try:
                hdr = parse_long_header(data, pos)
            except _Truncated:
                self._weird("quic.truncated_packet", "long header packet runs past the datagram", ts)
                return False
            except ValueError as e:
                self._weird("quic.bad_long_header", str(e), ts)
                return False
            if hdr.kind is None:
                if self._session is None:
                    self._new_session(is_orig, hdr, ts)
                self._history(is_orig, "U")
                if hdr.version != 0:
                    self._weird("quic.unhandled_version", "version 0x%08x" % hdr.version, ts)
                self._log_session()
                return False
            if hdr.kind != RETRY or self._session is None:
                self._new_session(is_orig, hdr, ts)     # (Zeek: a Retry keeps the IDs)
            self._history(is_orig, _LETTER[hdr.kind])
            if hdr.kind == RETRY:
                self._log_session()
                self._reset_crypto()
                return True
            if hdr.kind == INITIAL and not self._initial(is_orig, data, hdr, ts):
                return True                            # QUIC, but undecryptable: drop the rest
            pos = hdr.end
        return True

    # -- packets -------------------------------------------------------------
    def _new_session(self, is_orig: bool, hdr: LongHeader, ts: float) -> None:
        s = self._session
        if s is None:
            s = self._session = _Session(ts, hdr.version)
        if is_orig:
            if hdr.dcid and s.client_initial_dcid is None:
                s.client_initial_dcid = hdr.dcid.hex()
            s.client_scid = hdr.scid.hex()
        else:
            s.server_scid = hdr.scid.hex()

    def _short(self, is_orig: bool) -> None:
        d = self._dirs[is_orig]
        d.short_total += 1
        if d.short_total == d.short_next:
            d.short_next *= 2
            if self._session is not None:
                self._history(is_orig, "O")

    def _keys_for(self, version: int, dcid: bytes, is_client: bool) -> InitialKeys:
        k = (version, dcid, is_client)
        keys = self._keys.get(k)
        if keys is None:
            if len(self._keys) > 16:
                self._keys.clear()
            keys = self._keys[k] = initial_keys(version, dcid, is_client)
        return keys

    def _initial(self, is_orig: bool, dg: bytes, hdr: LongHeader, ts: float) -> bool:
        """Decrypt one Initial packet and process its frames; False when the
        rest of the datagram should be dropped."""
        d = self._dirs[is_orig]
        if d.hello_done:
            return True                                # Zeek stops decrypting here too
        if is_orig and self._dcid is None:
            self._dcid = hdr.dcid
        if self._dcid is None:
            return True                                # server Initial before any client one
        keys = self._keys_for(hdr.version, self._dcid, is_orig)
        try:
            pn, payload = unprotect(dg, hdr, keys, d.largest_pn)
        except Exception as e:                         # InvalidTag, too short
            if not d.warned:
                d.warned = True
                self.ctx.weird("quic.decryption_failed", "%s Initial: %s"
                               % ("client" if is_orig else "server", type(e).__name__), ts)
            return False
        d.largest_pn = max(d.largest_pn, pn)
        self._decrypted += 1
        if not self._confirmed_quic:
            self._confirmed_quic = True
            self.ctx.confirm(NAME)
        frames = parse_frames(payload, VERSIONS[hdr.version].crypto_frame)
        if frames.bad:
            self._weird("quic.bad_frame", frames.bad, ts)
        for off, chunk in frames.crypto:
            d.crypto.add(off, chunk)
        if d.crypto.overflow:
            self._weird("quic.crypto_buffer_cap", "CRYPTO data beyond %d bytes" % MAX_CRYPTO, ts)
            d.crypto.overflow = False
            d.hello_done = True
        self._check_hello(is_orig, d, ts)
        if frames.close is not None:
            self._history(is_orig, "C")
            self._log_session()
        return True

    def _check_hello(self, is_orig: bool, d: _Dir, ts: float) -> None:
        if d.hello_done:
            return
        msg = d.crypto.message()
        if msg is None:
            return
        d.hello_done = True
        d.crypto = CryptoStream()                      # release the buffer
        mtype, body = msg
        if self._tls_ts is None:
            self._tls_ts = ts
        if is_orig and mtype == tls.HS_CLIENT_HELLO:
            try:
                ch = tls.parse_client_hello(body)
            except tls.Malformed as e:
                self.ctx.weird("quic.bad_client_hello", str(e), ts)
                return
            for p in ch.problems:
                self.ctx.weird("quic.client_hello_" + p, "", ts)
            self._history(True, "S")
            self._tls_history += "C"
            if self.client_hello is None or ch.server_name:
                self.client_hello = ch
            s = self._session
            if s is not None:
                s.server_name = ch.server_name
                s.client_protocol = tls.printable(ch.alpn[0]) if ch.alpn else None
                s.ja4 = ch.ja4("q")
            if not self._confirmed_ssl:
                self._confirmed_ssl = True
                self.ctx.confirm(tls.NAME)
            if ch.server_name and ch.server_name != self._reported_name:
                self._reported_name = ch.server_name
                self.ctx.hostname("quic_sni", ch.server_name, ts)
        elif not is_orig and mtype == tls.HS_SERVER_HELLO:
            try:
                sh = tls.parse_server_hello(body)
            except tls.Malformed as e:
                self.ctx.weird("quic.bad_server_hello", str(e), ts)
                return
            self._history(False, "S")
            self._tls_history += "s"
            if not sh.is_hrr:
                self.server_hello = sh
        else:
            self.ctx.weird("quic.unexpected_handshake_message",
                           "type %d first in the %s CRYPTO stream"
                           % (mtype, "client" if is_orig else "server"), ts)

    # -- state ---------------------------------------------------------------
    def _history(self, is_orig: bool, letter: str) -> None:
        s = self._session
        if s is not None and len(s.history) < MAX_HISTORY:
            s.history.append(letter.upper() if is_orig else letter.lower())

    def _reset_crypto(self) -> None:
        """After a Retry the client's next Initial picks new keys (new DCID)."""
        self._dcid = None
        for is_orig in (True, False):
            old = self._dirs[is_orig]
            fresh = _Dir()
            fresh.short_total, fresh.short_next = old.short_total, old.short_next
            self._dirs[is_orig] = fresh

    def _log_session(self) -> None:
        s = self._session
        if s is None:
            return
        self._session = None
        self.ctx.emit(LOG, {
            "ts": s.ts,
            "uid": self.ctx.uid,
            "version": s.version,
            "client_initial_dcid": s.client_initial_dcid,
            "client_scid": s.client_scid,
            "server_scid": s.server_scid,
            "server_name": s.server_name,
            "client_protocol": s.client_protocol,
            "ja4": s.ja4,
            "history": "".join(s.history),
        })

    def _tls_record(self) -> dict:
        ch, sh = self.client_hello, self.server_hello
        resumed = bool(sh is not None and sh.has_psk and ch is not None and ch.has_psk)
        return {
            "ts": self._tls_ts if self._tls_ts is not None else self.ctx.ts,
            "uid": self.ctx.uid,
            "version": tls.version_name(sh.version) if sh else None,
            "cipher": tls.cipher_name(sh.cipher) if sh else None,
            "curve": tls.curve_name(sh.key_share_group)
            if sh and sh.key_share_group is not None else None,
            "server_name": ch.server_name if ch else None,
            "resumed": resumed,
            "last_alert": None,
            "next_protocol": None,                     # in EncryptedExtensions: not visible
            "established": False,
            "ssl_history": self._tls_history or None,
            "ja3": ch.ja3() if ch else None,
            "ja4": ch.ja4("q") if ch else None,
            "client_alpn": ch.alpn_text if ch and tls.EXT_ALPN in ch.extensions else None,
            "subject": None,
            "issuer": None,
            "san_dns": None,
        }
