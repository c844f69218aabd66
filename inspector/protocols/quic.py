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

from . import gquic, tls
from .base import Analyzer as _BaseAnalyzer
from .base import FlowContext
# The wire layer is part of this module's public surface (tests and tools build packets with it).
from .quic_wire import (FIELDS, HANDSHAKE, INITIAL, LOG_SCHEMA, MAX_CID, MAX_CRYPTO, RETRY, VERSION_1, VERSION_2,  # noqa: F401
                        VERSIONS, ZERO_RTT, CryptoStream, DirectionState, Frames, InitialKeys, LongHeader, Truncated,
                        VersionInfo, decode_packet_number, encode_varint, hkdf_expand_label, hkdf_extract, hkdf_label,
                        initial_keys, parse_frames, parse_long_header, read_varint, unprotect, version_name)

NAME = "quic"
LOG = "quic"
TRANSPORTS = ("udp",)
PORTS = (443, 4433, 8443, 853, 784)
# ---- outputs (read by inspector.outputs): the quic log's schema and this module's weird names ----
# LOG_SCHEMA (and FIELDS) live in quic_wire.py: gquic.py writes the same log.
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

MAX_HISTORY = 100
# Datagrams that are not QUIC (parse errors, unknown versions, fixed bit clear)
# tolerated before anything decrypted; then the analyzer gives up.  Guards
# against non-QUIC traffic on a QUIC port (DTLS, OpenVPN, games on 443/udp).
MAX_JUNK_DATAGRAMS = 3

_LETTER = {INITIAL: "I", ZERO_RTT: "Z", HANDSHAKE: "H", RETRY: "R"}

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


class Analyzer(_BaseAnalyzer):
    """One UDP flow carrying QUIC."""
    NAME = NAME
    _gquic = None        # a gquic.Analyzer once the flow turned out to be Google QUIC

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._session: _Session | None = None
        self._dirs = {True: DirectionState(), False: DirectionState()}
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
            except Truncated:
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

    def _check_hello(self, is_orig: bool, d: DirectionState, ts: float) -> None:
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
            if ch.server_name != self._reported_name or ch.ech:
                self._reported_name = ch.server_name
                tls.report_client_hello_name(self.ctx, ch, "quic_sni", ts)
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
            fresh = DirectionState()
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
        return tls.quic_record(self.ctx.uid, self._tls_ts if self._tls_ts is not None else self.ctx.ts,
                               self.client_hello, self.server_hello, self._tls_history)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "quic"}
NAME_SOURCES = ("quic_sni", "sni_outer")   # the Initial's ClientHello server_name (outer name with ECH)
CONTENT = "none"
ENCRYPTED = "tls-encrypted"
