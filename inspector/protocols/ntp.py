"""NTP (RFC 5905; versions 1-4), Zeek ``ntp.log`` semantics.

One record per standard message (modes 1-5), as Zeek writes it: version,
mode, stratum, poll / precision (seconds, 2**x), root delay / dispersion
(seconds), ``ref_id`` (stratum 0: kiss code, stratum 1: reference clock
name, above: an IPv4 address), the four timestamps as Unix times (0 when the
wire value is 0) and the number of extension fields.  Control (mode 6) and
private (mode 7, e.g. ``monlist``) messages are recognised and confirmed but
not logged, as in Zeek.
"""
from __future__ import annotations

import socket
import struct

from ..outputs.schema import CONN_ID, INT, INTERVAL, STRING, TIME, Field, Stream
from .base import Analyzer as _BaseAnalyzer, FlowContext

NAME = "ntp"
TRANSPORTS = ("udp",)
PORTS = (123,)
LOG = "ntp"
# ---- outputs (read by inspector.outputs): the ntp log's schema and this module's weird names ----
LOG_SCHEMA = Stream("ntp", "NTP messages, one record per message (Zeek ntp.log)", (
    Field("ts", TIME, "time of the message"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("version", INT, "NTP version"),
    Field("mode", INT, "association mode (3 client, 4 server...)"),
    Field("stratum", INT, "stratum of the sender's clock"),
    Field("poll", INTERVAL, "maximum interval between messages, seconds"),
    Field("precision", INTERVAL, "precision of the sender's clock, seconds"),
    Field("root_delay", INTERVAL, "round-trip delay to the reference clock, seconds"),
    Field("root_disp", INTERVAL, "dispersion to the reference clock, seconds"),
    Field("ref_id", STRING, "reference id: an address, or a four-letter code for stratum 0-1"),
    Field("ref_time", TIME, "time the clock was last set"),
    Field("org_time", TIME, "origin timestamp (the request's transmit time, in replies)"),
    Field("rec_time", TIME, "receive timestamp"),
    Field("xmt_time", TIME, "transmit timestamp"),
    Field("num_exts", INT, "number of extension fields"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "ntp.bad_message": "a datagram on an NTP connection too short or malformed to parse",
}
# ---- end of outputs declarations ----

NTP_EPOCH_OFFSET = 2208988800          # 1900-01-01 -> 1970-01-01
_STD = struct.Struct("!BBbbII4sIIIIIIII")

# Plausible NTP era for timestamps that must be set: 1990 .. 2036 (era 0), 2036 .. 2050 (era 1).
_ERA0_LO = 0xA9000000                  # ~1989-11
_ERA1_HI = 0x1A000000                  # ~2049 (after the 2036 wrap)


def ntp_time(secs: int, frac: int) -> float:
    if secs == 0 and frac == 0:
        return 0.0
    if secs < 0x80000000:              # era 1 (after 2036-02-07)
        secs += 1 << 32
    return secs - NTP_EPOCH_OFFSET + frac / 4294967296.0


def _plausible_secs(s: int) -> bool:
    return s == 0 or s >= _ERA0_LO or s < _ERA1_HI


def _count_extensions(tail: bytes) -> int | None:
    """Extension fields after the 48-byte header; None when the tail makes no sense.
    A 4-byte crypto-NAK or a 20/24-byte MAC (key id + MD5/SHA1) alone is not an extension."""
    n = len(tail)
    if n == 4:
        return 0 if tail == b"\x00\x00\x00\x00" else None       # crypto-NAK: key id 0
    if n in (0, 20, 24):
        return 0
    count = 0
    p = 0
    while n - p > 24:
        if p + 4 > n:
            return None
        ln = (tail[p + 2] << 8) | tail[p + 3]
        if ln < 16 or ln % 4 or p + ln > n:
            return None
        count += 1
        p += ln
    if n - p not in (0, 4, 20, 24):
        return None
    return count


def parse(data: bytes) -> dict | None:
    """One NTP message -> dict (std fields for modes 1-5), or None when it is not NTP."""
    if len(data) < 1:
        return None
    b0 = data[0]
    version = (b0 >> 3) & 7
    mode = b0 & 7
    if not 1 <= version <= 4 or mode == 0:
        return None
    if mode <= 5:
        if len(data) < 48:
            return None
        (_, stratum, poll, precision, root_delay, root_disp, ref, rs, rf, os_, of, rcs, rcf, xs, xf) = \
            _STD.unpack_from(data)
        exts = _count_extensions(data[48:])
        if stratum <= 1:               # kiss code (stratum 0) or reference clock name, e.g. GPS\x00
            ref_id = "".join(chr(c) if 0x20 <= c < 0x7F else f"\\x{c:02x}" for c in ref)
        else:
            ref_id = socket.inet_ntoa(ref)
        return {"version": version, "mode": mode, "stratum": stratum,
                "poll": float(2.0 ** poll), "precision": float(2.0 ** precision),
                "root_delay": root_delay / 65536.0, "root_disp": root_disp / 65536.0,
                "ref_id": ref_id, "ref_time": ntp_time(rs, rf), "org_time": ntp_time(os_, of),
                "rec_time": ntp_time(rcs, rcf), "xmt_time": ntp_time(xs, xf),
                "num_exts": exts if exts is not None else 0, "_raw_secs": (rs, os_, rcs, xs),
                "_exts_ok": exts is not None, "_fields": (stratum, poll, precision, root_delay, root_disp)}
    if mode == 6:
        if len(data) < 12:
            return None
        op = data[1] & 0x1F
        count = (data[10] << 8) | data[11]
        return {"version": version, "mode": mode, "opcode": op, "count": count}
    # mode 7 (implementation-specific, ntpdc): b1 = R|M|sequence, b2 = implementation, b3 = request code
    if len(data) < 8:
        return None
    return {"version": version, "mode": mode, "implementation": data[2], "request": data[3]}


def _plausible(data: bytes) -> bool:
    m = parse(data)
    if m is None:
        return False
    mode = m["mode"]
    if mode <= 5:
        stratum, poll, precision, root_delay, root_disp = m["_fields"]
        if stratum > 16 or not -6 <= poll <= 17 or not -64 <= precision <= 32:
            return False
        if root_delay >= 0x01000000 or root_disp >= 0x01000000:     # 256 s
            return False
        if not m["_exts_ok"]:
            return False
        rs, os_, rcs, xs = m["_raw_secs"]
        if not _plausible_secs(rs):      # (org_time echoes the peer's, possibly random, xmt_time)
            return False
        if mode in (2, 4, 5) and not (_plausible_secs(rcs) and _plausible_secs(xs) and (xs or stratum == 0)):
            return False
        return True
    if mode == 6:
        if m["version"] < 2:
            return False
        # R|E|M|opcode, sequence, status, association id, offset, count; data padded to 4 bytes,
        # then an optional MAC (key id + MD5/SHA1 digest)
        b1 = data[1]
        response, error, more = b1 & 0x80, b1 & 0x40, b1 & 0x20
        if not 1 <= m["opcode"] <= 12 or m["count"] > 468:
            return False
        if not response and (error or more):
            return False
        offset = (data[8] << 8) | data[9]
        if offset % 4 or offset > 8192:
            return False
        extra = len(data) - 12 - m["count"]
        return 0 <= extra <= 7 or 20 <= extra <= 31
    # mode 7 (ntpdc): R|M|VN|mode, A|sequence, implementation (0 univ, 2 xntpd old, 3 xntpd),
    # request code, err|nitems, mbz|itemsize, data (requests are padded, e.g. monlist = 48 bytes)
    if m["version"] < 2 or m["implementation"] not in (0, 2, 3) or m["request"] > 63:
        return False
    err_nitems = (data[4] << 8) | data[5]
    mbz_size = (data[6] << 8) | data[7]
    err, nitems, size = err_nitems >> 12, err_nitems & 0xFFF, mbz_size & 0xFFF
    if mbz_size >> 12 or err > 7 or nitems > 500 or size > 500 or (nitems and not size):
        return False
    body = len(data) - 8
    if data[0] & 0x80:                       # response: exactly the items (+ padding)
        return 0 <= body - nitems * size <= 3
    if data[0] & 0x40:                       # "more" is for responses only
        return False
    return nitems * size <= body <= nitems * size + 200 and body % 4 == 0    # ntpdc: 192-byte requests


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        data = bytes(data)
        if len(data) < 48 and (len(data) < 8 or (data[0] & 7) < 6):
            return False
        return _plausible(data)
    except Exception:
        return False


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self.confirmed = False
        self.messages = 0
        self.modes = set()

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        data = bytes(data)
        if not _plausible(data):
            self.ctx.weird("ntp.bad_message", f"{len(data)} bytes", ts)
            return
        m = parse(data)
        self.messages += 1
        self.modes.add(m["mode"])
        if not self.confirmed:
            self.confirmed = True
            self.ctx.confirm(NAME)
        if m["mode"] <= 5:
            c = self.ctx
            rec = {"ts": ts, "uid": c.uid, "id.orig_h": c.orig_h, "id.orig_p": c.orig_p,
                   "id.resp_h": c.resp_h, "id.resp_p": c.resp_p}
            for k in FIELDS[6:]:
                rec[k] = m[k]
            c.emit(LOG, rec)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "ntp"}
CONTENT = "raw"
