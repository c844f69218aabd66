"""Syslog (RFC 3164 / RFC 5424 framing) over UDP and TCP, Zeek ``syslog.log``.

One record per message: facility and severity (Zeek's names; ``UNSPECIFIED``
for a message without ``<PRI>`` on a connection already attached), and the text
after ``<PRI>`` (bytes outside printable ASCII written ``\\xNN``, as Zeek
writes them), cut to ``MAX_MESSAGE`` bytes.  Over TCP, messages are either
octet-counted (``<len> <PRI>...``, RFC 6587 3.4.1) or newline-terminated
(3.4.2); the framing is chosen from the first bytes of each direction.
"""
from __future__ import annotations

from ..outputs.schema import CONN_ID, STRING, TIME, Field, Stream
from .base import Analyzer as _BaseAnalyzer, FlowContext

NAME = "syslog"
TRANSPORTS = ("udp", "tcp")
PORTS = (514, 601, 6514)
LOG = "syslog"
# ---- outputs (read by inspector.outputs): the syslog log's schema and this module's weird names ----
LOG_SCHEMA = Stream("syslog", "syslog messages, one record per message (Zeek syslog.log)", (
    Field("ts", TIME, "time of the message"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("proto", STRING, "transport: udp or tcp"),
    Field("facility", STRING, "facility name (KERN, USER, LOCAL0...)"),
    Field("severity", STRING, "severity name (EMERG ... DEBUG)"),
    Field("message", STRING, "the message text after the priority"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "syslog.missing_pri": "a message without the <PRI> prefix",
}
# ---- end of outputs declarations ----

MAX_MESSAGE = 1024
MAX_LINE = 64 * 1024              # TCP: a line longer than this is cut
MAX_RECORDS = 100_000             # per connection

FACILITIES = ("KERN", "USER", "MAIL", "DAEMON", "AUTH", "SYSLOG", "LPR", "NEWS", "UUCP", "CRON", "AUTHPRIV",
              "FTP", "NTP", "AUDIT", "ALERT", "CLOCK", "LOCAL0", "LOCAL1", "LOCAL2", "LOCAL3", "LOCAL4",
              "LOCAL5", "LOCAL6", "LOCAL7")
SEVERITIES = ("EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG")

_PRINTABLE = frozenset(range(0x20, 0x7F))
_TEXTISH = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D} | frozenset(range(0x80, 0x100))


def _escape(b: bytes) -> str:
    try:
        s = b.decode("ascii")
        if s.isprintable():
            return s
    except UnicodeDecodeError:
        pass
    return "".join(chr(c) if c in _PRINTABLE else f"\\x{c:02x}" for c in b)


def parse_pri(b: bytes) -> tuple[int, int] | None:
    """``<N>`` at the start, N in 0..191 (1-3 digits) -> (N, offset after '>')."""
    if len(b) < 3 or b[0] != 0x3C:
        return None
    end = b.find(b">", 1, 5)
    if end < 2:
        return None
    digits = b[1:end]
    if not digits.isdigit():
        return None
    n = int(digits)
    if n > 191 or (len(digits) > 1 and digits[0] == 0x30):
        return None
    return n, end + 1


def _looks_like_text(b: bytes) -> bool:
    if not b:
        return False
    sample = b[:128]
    printable = sum(1 for c in sample if c in _PRINTABLE)
    return all(c in _TEXTISH for c in sample[:-1] if c != 0) and printable >= max(1, int(0.9 * len(sample) - 2))


def _plausible_message(b: bytes) -> bool:
    pri = parse_pri(b)
    if pri is None:
        return False
    rest = b[pri[1]:]
    return len(rest) >= 4 and _looks_like_text(rest)


def _octet_count(b: bytes) -> tuple[int, int] | None:
    """RFC 6587 octet counting: ``<len> `` -> (len, offset of the message)."""
    sp = b.find(b" ", 0, 7)
    if sp < 1 or not b[:sp].isdigit() or b[0] == 0x30:
        return None
    return int(b[:sp]), sp + 1


def probe(data: bytes, is_orig: bool) -> bool:
    """``<N>`` with N in 0..191, then text; or the same after an RFC 6587 octet count."""
    try:
        data = bytes(data)
        if _plausible_message(data):
            return True
        oc = _octet_count(data)
        if oc is not None and oc[0] >= 5:
            return _plausible_message(data[oc[1]:oc[1] + oc[0]])
        return False
    except Exception:
        return False


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self.confirmed = False
        self.records = 0
        self._buf = {True: bytearray(), False: bytearray()}
        self._framing = {True: None, False: None}      # None (undecided) | "octet" | "line"
        self._lost = {True: False, False: False}

    def _record(self, msg: bytes, ts: float) -> None:
        pri = parse_pri(msg)
        if pri is None:                  # Zeek logs it anyway, facility/severity UNSPECIFIED
            if not self.confirmed:
                self.ctx.weird("syslog.missing_pri", "", ts)
            n, off = None, 0
        else:
            n, off = pri
        if not self.confirmed and n is not None:
            self.confirmed = True
            self.ctx.confirm(NAME)
        if self.records >= MAX_RECORDS:
            return
        self.records += 1
        text = msg[off:off + MAX_MESSAGE]
        c = self.ctx
        c.emit(LOG, {"ts": ts, "uid": c.uid, "id.orig_h": c.orig_h, "id.orig_p": c.orig_p,
                     "id.resp_h": c.resp_h, "id.resp_p": c.resp_p, "proto": c.transport,
                     "facility": FACILITIES[n >> 3] if n is not None else "UNSPECIFIED",
                     "severity": SEVERITIES[n & 7] if n is not None else "UNSPECIFIED",
                     "message": _escape(text)})

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        self._record(bytes(data), ts)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._lost[is_orig]:
            # after a gap: resync on the next line start
            nl = bytes(data).find(b"\n")
            if nl < 0 or self._framing[is_orig] == "octet":
                return
            data = data[nl + 1:]
            self._lost[is_orig] = False
        buf = self._buf[is_orig]
        buf += data
        while buf:
            fr = self._framing[is_orig]
            if fr is None:
                if buf[0] == 0x3C:
                    fr = "line"
                elif buf[:1].isdigit():
                    sp = buf.find(b" ", 0, 7)
                    if sp < 0:
                        if len(buf) >= 7:
                            fr = "line"
                        else:
                            return
                    else:
                        fr = "octet" if buf[:sp].isdigit() else "line"
                else:
                    fr = "line"
                self._framing[is_orig] = fr
            if fr == "octet":
                oc = _octet_count(bytes(buf[:8]))
                if oc is None:
                    if len(buf) < 8 and buf.isdigit():
                        return
                    self._framing[is_orig] = "line"       # not octet counted after all
                    continue
                ln, off = oc
                if len(buf) < off + ln:
                    if ln > MAX_LINE:
                        self._framing[is_orig] = "line"
                        continue
                    return
                self._record(bytes(buf[off:off + ln]).rstrip(b"\r\n"), ts)
                del buf[:off + ln]
            else:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > MAX_LINE:
                        self._record(bytes(buf[:MAX_LINE]), ts)
                        buf.clear()
                        self._lost[is_orig] = True
                    return
                line = bytes(buf[:nl]).rstrip(b"\r")
                del buf[:nl + 1]
                if line.strip(b"\x00 "):
                    self._record(line, ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        self._buf[is_orig].clear()
        self._lost[is_orig] = True

    def done(self, ts: float) -> None:
        for d in (True, False):
            buf = self._buf[d]
            if buf and self._framing[d] == "line" and buf.strip(b"\x00 \r\n"):
                self._record(bytes(buf).rstrip(b"\r\n"), ts)
            buf.clear()


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "syslog"}
CONTENT = "raw"
