"""SSH: one ``ssh.jsonl`` record per connection (Zeek's ssh.log fields).

Each direction starts with an identification line ``SSH-<proto>-<software>``
(RFC 4253 4.2; a server may send other lines first).  For SSH-2 the binary
packet protocol follows, in clear until NEWKEYS: both sides send KEXINIT
(message 20) with their algorithm lists, and the negotiated algorithm of each
kind is the first client algorithm the server also lists (RFC 4253 7.1).  The
server's key exchange reply (message 31, or 33 for diffie-hellman group
exchange) carries its host key; ``host_key_fingerprint`` is OpenSSH's
``SHA256:<base64>`` of that key blob.  Parsing stops once the record is complete
(``wants_more()`` is then False).

``version`` is 2 when both sides speak SSH-2 (``2.x`` or ``1.99``), 1 when both
speak SSH-1, unset when a banner is missing or they disagree (as Zeek).
``cipher_alg``/``mac_alg``/``compression_alg`` are the client-to-server ones.

HASSH (Salesforce, BSD 3-Clause, https://github.com/salesforce/hassh), as its Zeek script logs it:
``hasshAlgorithms`` is the client's KEXINIT key exchange, client-to-server encryption, MAC and
compression name-lists joined with ``;``, ``hassh`` its MD5; ``hasshServerAlgorithms`` /
``hasshServer`` the same from the server's KEXINIT with its server-to-client lists.
"""
from __future__ import annotations

import base64
import hashlib
import re
import struct

from ..outputs.schema import CONN_ID, INT, STRING, TIME, Field, Stream
from .base import Analyzer as _Base

NAME = "ssh"
TRANSPORTS = ("tcp",)
PORTS = (22, 2222)
LOG = "ssh"
# ---- outputs (read by inspector.outputs): the ssh log's schema and this module's weird names ----
LOG_SCHEMA = Stream("ssh", "SSH sessions, one record per connection (Zeek ssh.log)", (
    Field("ts", TIME, "time of the connection's first packet"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("version", INT, "SSH major version (1 or 2)"),
    Field("client", STRING, "client identification string"),
    Field("server", STRING, "server identification string"),
    Field("cipher_alg", STRING, "negotiated encryption algorithm"),
    Field("mac_alg", STRING, "negotiated MAC algorithm"),
    Field("compression_alg", STRING, "negotiated compression algorithm"),
    Field("kex_alg", STRING, "negotiated key exchange algorithm"),
    Field("host_key_alg", STRING, "server host key algorithm"),
    Field("host_key_fingerprint", STRING, "fingerprint of the server host key (OpenSSH SHA256:base64 form)"),
    Field("hasshVersion", STRING, "HASSH method version (1.1)"),
    Field("hassh", STRING, "HASSH of the client: MD5 of hasshAlgorithms"),
    Field("hasshServer", STRING, "HASSHServer of the server: MD5 of hasshServerAlgorithms"),
    Field("hasshAlgorithms", STRING, "the client's kex;encryption;MAC;compression algorithm lists "
                                     "(client to server)"),
    Field("hasshServerAlgorithms", STRING, "the server's kex;encryption;MAC;compression algorithm lists "
                                           "(server to client)"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "ssh.bad_banner": "an identification line that does not start with SSH-<version>-",
    "ssh.bad_kexinit": "a KEXINIT message that cannot be parsed",
    "ssh.bad_packet": "a binary packet with an impossible length or padding",
    "ssh.banner_too_long": "an identification line over 255 bytes",
    "ssh.content_gap": "bytes missing before the key exchange finished (capture loss)",
    "ssh.no_banner": "a side sent data without an identification line",
    "ssh.no_kexinit": "the first binary packet is not a KEXINIT",
    "ssh.version_mismatch": "the client and server identification versions are incompatible",
}
# ---- end of outputs declarations ----

MAX_BANNER = 255                # RFC 4253: the identification line, CR LF included
MAX_PRE_BANNER = 8192           # server lines before its identification
MAX_PACKET = 35000              # RFC 4253 6.1
MAX_PACKETS_AFTER_KEXINIT = 6   # server packets we look at for the host key
MAX_PACKETS_BEFORE_KEXINIT = 8  # (SSH_MSG_IGNORE and the like)

_BANNER_RE = re.compile(rb"^SSH-(\d+\.\d+)-")
_KEYTYPE_RE = re.compile(rb"^(?:ssh-|ecdsa-|sk-|rsa-|x509v3-|pgp-|spki-|null)[\x21-\x7e]{0,60}$")

_BANNER, _PACKETS, _DONE = range(3)
_NAME_LISTS = ("kex", "host_key", "enc_c2s", "enc_s2c", "mac_c2s", "mac_s2c", "comp_c2s", "comp_s2c")


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        d = bytes(data)
        if d.startswith(b"SSH-"):
            return True
        if not is_orig:                     # a server may send text lines before its banner
            i = d.find(b"\nSSH-")
            return 0 <= i and _BANNER_RE.match(d[i + 1:i + 16]) is not None
        return False
    except Exception:
        return False


def _proto(banner: str | None) -> str | None:
    if not banner:
        return None
    m = re.match(r"^SSH-(\d+\.\d+)", banner)
    return m.group(1) if m else None


def ssh_version(client: str | None, server: str | None) -> int | None:
    c, s = _proto(client), _proto(server)
    if c is None or s is None:
        return None
    c2 = c.startswith("2.") or c == "1.99"
    s2 = s.startswith("2.") or s == "1.99"
    if c2 and s2:
        return 2
    if c.startswith("1.") and s.startswith("1."):
        return 1
    return None


def parse_kexinit(payload: bytes) -> dict | None:
    """Name-lists of an SSH_MSG_KEXINIT payload (message byte included)."""
    if len(payload) < 17 or payload[0] != 20:
        return None
    off = 17
    out = {}
    for key in _NAME_LISTS:
        if off + 4 > len(payload):
            return None
        (n,) = struct.unpack_from("!I", payload, off)
        off += 4
        if n > len(payload) - off:
            return None
        out[key] = [x for x in payload[off:off + n].decode("ascii", "replace").split(",") if x]
        off += n
    return out


HASSH_VERSION = "1.1"


def hassh_algorithms(kexinit: dict, server: bool) -> str:
    """hasshAlgorithms (client) or hasshServerAlgorithms (server) of a parsed KEXINIT."""
    keys = ("kex", "enc_s2c", "mac_s2c", "comp_s2c") if server else ("kex", "enc_c2s", "mac_c2s", "comp_c2s")
    return ";".join(",".join(kexinit[k]) for k in keys)


def hassh(algorithms: str) -> str:
    """HASSH / HASSHServer: the MD5 hex digest of the algorithms string."""
    return hashlib.md5(algorithms.encode("utf-8", "surrogateescape")).hexdigest()


def negotiate(client: list, server: list) -> str | None:
    sset = set(server)
    for alg in client:
        if alg in sset:
            return alg
    return None


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


class _Side:
    __slots__ = ("state", "buf", "banner", "pre", "kexinit", "after_kex", "before_kex")

    def __init__(self):
        self.state = _BANNER
        self.buf = bytearray()
        self.banner = None
        self.pre = 0
        self.kexinit = None
        self.after_kex = 0
        self.before_kex = 0


class Analyzer(_Base):
    NAME = NAME

    def __init__(self, ctx):
        super().__init__(ctx)
        self._sides = (_Side(), _Side())      # index by is_orig
        self._ts = None
        self._emitted = False
        self._confirmed = False
        self.host_key = None

    # -- input -------------------------------------------------------------------------
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        sd = self._sides[1 if is_orig else 0]
        if self._emitted or sd.state == _DONE or not data:
            return
        sd.buf += data
        while sd.state != _DONE and not self._emitted:
            if sd.state == _BANNER:
                if not self._banner(sd, is_orig, ts):
                    break
            elif not self._packet(sd, is_orig, ts):
                break
        if sd.state == _DONE:
            sd.buf = bytearray()
            self._maybe_emit()

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        sd = self._sides[1 if is_orig else 0]
        if sd.state != _DONE:
            if sd.state == _PACKETS:
                self.ctx.weird("ssh.content_gap", f"{length} bytes before key exchange finished", ts)
            sd.state = _DONE                  # packet framing is lost
            sd.buf = bytearray()
            self._maybe_emit()

    def done(self, ts: float) -> None:
        if not self._emitted:
            self._emit()

    def wants_more(self) -> bool:
        return not self._emitted

    # -- banner ------------------------------------------------------------------------
    def _banner(self, sd: _Side, is_orig: bool, ts: float) -> bool:
        buf = sd.buf
        nl = buf.find(b"\n")
        if nl < 0:
            limit = MAX_BANNER if buf.startswith(b"SSH-") else MAX_PRE_BANNER
            if len(buf) > limit:
                if buf.startswith(b"SSH-"):
                    self.ctx.weird("ssh.banner_too_long", "", ts)
                    self._set_banner(sd, is_orig, bytes(buf[:MAX_BANNER]), ts)
                    sd.state = _DONE
                else:
                    self.ctx.weird("ssh.no_banner", f"{'client' if is_orig else 'server'} sent no identification", ts)
                    sd.state = _DONE
            return False
        line = bytes(buf[:nl]).rstrip(b"\r")
        del buf[:nl + 1]
        if line.startswith(b"SSH-"):
            self._set_banner(sd, is_orig, line[:MAX_BANNER], ts)
            proto = _proto(sd.banner) or ""
            sd.state = _PACKETS if (proto.startswith("2.") or proto == "1.99") else _DONE
            return True
        sd.pre += nl + 1
        if sd.pre > MAX_PRE_BANNER:
            self.ctx.weird("ssh.no_banner", f"{'client' if is_orig else 'server'} sent no identification", ts)
            sd.state = _DONE
            return False
        return True

    def _set_banner(self, sd: _Side, is_orig: bool, line: bytes, ts: float) -> None:
        sd.banner = line.decode("utf-8", "backslashreplace")
        if self._ts is None:
            self._ts = ts
        if _BANNER_RE.match(line):
            if not self._confirmed:
                self._confirmed = True
                self.ctx.confirm("ssh")
        else:
            self.ctx.weird("ssh.bad_banner", sd.banner[:60], ts)

    # -- binary packets ----------------------------------------------------------------
    def _packet(self, sd: _Side, is_orig: bool, ts: float) -> bool:
        buf = sd.buf
        if len(buf) < 5:
            return False
        plen, pad = struct.unpack_from("!IB", buf, 0)
        if plen > MAX_PACKET or plen < 5 or pad >= plen:
            self.ctx.weird("ssh.bad_packet", f"length {plen}, padding {pad}", ts)
            sd.state = _DONE
            return False
        if len(buf) < 4 + plen:
            return False
        payload = bytes(buf[5:4 + plen - pad])
        del buf[:4 + plen]
        if not payload:
            return True
        msg = payload[0]
        if msg == 20:
            k = parse_kexinit(payload)
            if k is None:
                self.ctx.weird("ssh.bad_kexinit", "", ts)
                sd.state = _DONE
                return False
            sd.kexinit = k
            if is_orig:
                sd.state = _DONE             # nothing more needed from the client
            return True
        if sd.kexinit is None:
            sd.before_kex += 1
            if sd.before_kex > MAX_PACKETS_BEFORE_KEXINIT:
                self.ctx.weird("ssh.no_kexinit", "", ts)
                sd.state = _DONE
                return False
        if msg == 21:                        # NEWKEYS: encrypted from here
            sd.state = _DONE
            return False
        if not is_orig and sd.kexinit is not None:
            sd.after_kex += 1
            if msg in (31, 33) and len(payload) >= 5:
                (n,) = struct.unpack_from("!I", payload, 1)
                blob = payload[5:5 + n]
                if n == len(blob) and len(blob) >= 4:
                    (tn,) = struct.unpack_from("!I", blob, 0)
                    if _KEYTYPE_RE.match(blob[4:4 + tn]) and tn <= 64:
                        self.host_key = fingerprint(blob)
                        sd.state = _DONE
                        return False
            if sd.after_kex >= MAX_PACKETS_AFTER_KEXINIT:
                sd.state = _DONE
                return False
        return True

    # -- output ------------------------------------------------------------------------
    def _maybe_emit(self) -> None:
        if all(s.state == _DONE for s in self._sides):
            self._emit()

    def _emit(self) -> None:
        if self._emitted:
            return
        self._emitted = True
        cs, ss = self._sides[1], self._sides[0]
        if cs.banner is None and ss.banner is None:
            return
        version = ssh_version(cs.banner, ss.banner)
        if cs.banner and ss.banner and version is None:
            self.ctx.weird("ssh.version_mismatch", f"{cs.banner[:40]} / {ss.banner[:40]}", self._ts)
        ck, sk = cs.kexinit, ss.kexinit
        alg = {}
        if ck and sk:
            for key, name in (("kex", "kex_alg"), ("host_key", "host_key_alg"), ("enc_c2s", "cipher_alg"),
                              ("mac_c2s", "mac_alg"), ("comp_c2s", "compression_alg")):
                alg[name] = negotiate(ck[key], sk[key])
        c_alg = hassh_algorithms(ck, False) if ck else None
        s_alg = hassh_algorithms(sk, True) if sk else None
        c = self.ctx
        c.emit(LOG, {
            "ts": self._ts if self._ts is not None else c.ts,
            "uid": c.uid,
            "id.orig_h": c.orig_h,
            "id.orig_p": c.orig_p,
            "id.resp_h": c.resp_h,
            "id.resp_p": c.resp_p,
            "version": version,
            "client": cs.banner,
            "server": ss.banner,
            "cipher_alg": alg.get("cipher_alg"),
            "mac_alg": alg.get("mac_alg"),
            "compression_alg": alg.get("compression_alg"),
            "kex_alg": alg.get("kex_alg"),
            "host_key_alg": alg.get("host_key_alg"),
            "host_key_fingerprint": self.host_key,
            "hasshVersion": HASSH_VERSION if ck or sk else None,
            "hassh": hassh(c_alg) if c_alg is not None else None,
            "hasshServer": hassh(s_alg) if s_alg is not None else None,
            "hasshAlgorithms": c_alg,
            "hasshServerAlgorithms": s_alg,
        })


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "ssh"}
CONTENT = "none"
ENCRYPTED = "encrypted-or-compressed"
