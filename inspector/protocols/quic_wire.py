"""The QUIC wire layer shared by IETF QUIC (``quic.py``) and Google QUIC (``gquic.py``).

Both analyzers read the same things off the wire: variable-length integers, long
headers, the Initial key schedule and packet protection of RFC 9001 (Google's
T05x/Q050 reuse it with their own salts), CRYPTO frames reassembled by offset,
and the per-direction state behind quic.log's ``history`` letters.  Keeping them
here, with public names, lets ``quic.py`` hand a flow over to ``gquic.py``
without the two modules importing each other.

``LOG_SCHEMA`` (and its field order ``FIELDS``) is quic.log's declaration: both
analyzers write that log.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from ..outputs.schema import STRING, TIME, Field, Stream

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

MAX_CID = 20                 # RFC 9000 §17.2: connection IDs are at most 20 bytes
MAX_CRYPTO = 64 * 1024       # CRYPTO stream bytes buffered per direction

__all__ = [
    "INITIAL",
    "ZERO_RTT",
    "HANDSHAKE",
    "RETRY",
    "VERSION_1",
    "VERSION_2",
    "VersionInfo",
    "VERSIONS",
    "version_name",
    "hkdf_extract",
    "hkdf_label",
    "hkdf_expand_label",
    "InitialKeys",
    "initial_keys",
    "Truncated",
    "read_varint",
    "encode_varint",
    "decode_packet_number",
    "LongHeader",
    "parse_long_header",
    "unprotect",
    "Frames",
    "parse_frames",
    "CryptoStream",
    "DirectionState",
    "FIELDS",
    "LOG_SCHEMA",
    "MAX_CID",
    "MAX_CRYPTO",
]

INITIAL, ZERO_RTT, HANDSHAKE, RETRY = "initial", "0rtt", "handshake", "retry"

VERSION_1 = 0x00000001
VERSION_2 = 0x6B3343CF


@dataclass(frozen=True)
class VersionInfo:
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


def _version_table() -> dict[int, VersionInfo]:
    t = {
        VERSION_1: VersionInfo("1", _SALT_V1, b"quic ", _TYPES_V1),
        VERSION_2: VersionInfo("quicv2", _SALT_V2, b"quicv2 ", _TYPES_V2),
        0xFACEB001: VersionInfo("mvfst (faceb001)", _SALT_D22, b"quic ", _TYPES_V1),
        0xFACEB002: VersionInfo("mvfst (faceb002)", _SALT_D23, b"quic ", _TYPES_V1),
        0xFACEB00E: VersionInfo("mvfst (faceb00e)", _SALT_D23, b"quic ", _TYPES_V1),
        0x54303530: VersionInfo("T050", _SALT_T050, b"quic ", _TYPES_V1, crypto_frame=0x08),
        0x54303531: VersionInfo("T051", _SALT_T051, b"quic ", _TYPES_V1, crypto_frame=0x08),
    }
    for n in range(22, 35):
        salt = _SALT_D22 if n == 22 else _SALT_D23 if n <= 28 else _SALT_D29
        t[0xFF000000 | n] = VersionInfo("draft-%d" % n, salt, b"quic ", _TYPES_V1)
    return t


VERSIONS: dict[int, VersionInfo] = _version_table()


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

class Truncated(Exception):
    """The datagram ends inside the field being read."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """RFC 9000 §16 variable-length integer at ``pos`` -> (value, next pos)."""
    if pos >= len(buf):
        raise Truncated()
    first = buf[pos]
    n = 1 << (first >> 6)
    if pos + n > len(buf):
        raise Truncated()
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
    """Parse the long header at ``pos`` (raises ``Truncated``/``ValueError``)."""
    n = len(dg)
    if pos + 7 > n:
        raise Truncated()
    first = dg[pos]
    version = int.from_bytes(dg[pos + 1:pos + 5], "big")
    p = pos + 5
    dlen = dg[p]
    if dlen > MAX_CID:
        raise ValueError("DCID length %d > 20" % dlen)
    p += 1
    if p + dlen + 1 > n:
        raise Truncated()
    dcid = bytes(dg[p:p + dlen])
    p += dlen
    slen = dg[p]
    if slen > MAX_CID:
        raise ValueError("SCID length %d > 20" % slen)
    p += 1
    if p + slen > n:
        raise Truncated()
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
            raise Truncated()
        hdr.token = bytes(dg[p:p + tlen])
        p += tlen
    length, p = read_varint(dg, p)
    hdr.pn_offset = p
    hdr.end = p + length
    if hdr.end > n:
        raise Truncated()
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
                    raise Truncated()
                out.crypto.append((off, bytes(payload[p:p + ln])))
                p += ln
            elif ftype in (0x1C, 0x1D):                # CONNECTION_CLOSE
                code, p = read_varint(payload, p)
                if ftype == 0x1C:
                    _, p = read_varint(payload, p)     # offending frame type
                ln, p = read_varint(payload, p)
                if p + ln > n:
                    raise Truncated()
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
                    raise Truncated()
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
                raise Truncated()
    except Truncated:
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



class DirectionState:
    """One direction of a QUIC flow (IETF or Google): its CRYPTO stream, whether its hello is
    complete, the largest packet number seen and the counts behind the history letters."""
    __slots__ = ("crypto", "hello_done", "largest_pn", "short_total", "short_next", "warned")

    def __init__(self):
        self.crypto = CryptoStream()
        self.hello_done = False
        self.largest_pn = -1
        self.short_total = 0
        self.short_next = 1
        self.warned = False
