"""SNMP v1 / v2c / v3 (BER), a small Zeek-style ``snmp.log``.

One record per connection, written at ``done()``: version (``1``, ``2c``,
``3``), community (only the well-known ``public`` is written in clear, any
other value becomes ``(masked)``: communities are passwords), PDU counters
(``get_requests`` counts GetRequest and GetNextRequest, as Zeek does),
``display_string`` (sysDescr.0 seen in a response) and ``duration``.
SNMPv3 has no community; its scoped PDU is often encrypted and then not
counted.
"""
from __future__ import annotations

from ..outputs.schema import CONN_ID, INT, INTERVAL, STRING, TIME, Field, Stream
from .base import Analyzer as _BaseAnalyzer, FlowContext

NAME = "snmp"
TRANSPORTS = ("udp",)
PORTS = (161, 162)
LOG = "snmp"
# ---- outputs (read by inspector.outputs): the snmp log's schema and this module's weird names ----
LOG_SCHEMA = Stream("snmp", "SNMP sessions, one record per connection (Zeek snmp.log)", (
    Field("ts", TIME, "time of the first message"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("duration", INTERVAL, "last message minus first message"),
    Field("version", STRING, "SNMP version (1, 2c, 3)"),
    Field("community", STRING, "community string (v1/v2c)"),
    Field("get_requests", INT, "GetRequest and GetNextRequest PDUs"),
    Field("get_bulk_requests", INT, "GetBulkRequest PDUs"),
    Field("get_responses", INT, "Response PDUs"),
    Field("set_requests", INT, "SetRequest PDUs"),
    Field("traps", INT, "trap and inform PDUs"),
    Field("display_string", STRING, "sysDescr.0 seen in a response"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "snmp.bad_message": "a datagram on an SNMP connection that is not valid BER",
}
# ---- end of outputs declarations ----

VERSIONS = {0: "1", 1: "2c", 3: "3"}
PDU_NAMES = {0xA0: "get", 0xA1: "get_next", 0xA2: "response", 0xA3: "set", 0xA4: "trap_v1",
             0xA5: "get_bulk", 0xA6: "inform", 0xA7: "trap_v2", 0xA8: "report"}
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
MASK = "(masked)"
MAX_DISPLAY = 1024


class BERError(Exception):
    pass


def ber_tlv(b: bytes, p: int, end: int) -> tuple[int, int, int]:
    """(tag, value_start, value_end) of the element at p; single-byte tags, definite lengths."""
    if p + 2 > end:
        raise BERError("short")
    tag = b[p]
    if tag & 0x1F == 0x1F:
        raise BERError("multi-byte tag")
    ln = b[p + 1]
    p += 2
    if ln & 0x80:
        k = ln & 0x7F
        if k == 0 or k > 3 or p + k > end:
            raise BERError("bad length")
        ln = int.from_bytes(b[p:p + k], "big")
        p += k
    if p + ln > end:
        raise BERError("overrun")
    return tag, p, p + ln


def ber_int(b: bytes, s: int, e: int) -> int:
    if e - s < 1 or e - s > 9:
        raise BERError("bad integer")
    return int.from_bytes(b[s:e], "big", signed=True)


def ber_oid(b: bytes, s: int, e: int) -> str:
    if e <= s:
        raise BERError("empty oid")
    first = b[s]
    parts = [str(min(first // 40, 2)), str(first - 40 * min(first // 40, 2))]
    v = 0
    for c in b[s + 1:e]:
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            parts.append(str(v))
            v = 0
        elif v > (1 << 64):
            raise BERError("oid subidentifier too long")
    return ".".join(parts)


def parse(data: bytes) -> dict | None:
    """An SNMP message -> {version, community, pdu (tag), varbinds [(oid, tag, value)]} or None."""
    try:
        b = bytes(data)
        tag, s, e = ber_tlv(b, 0, len(b))
        if tag != 0x30:
            return None
        tag, vs, ve = ber_tlv(b, s, e)
        if tag != 0x02:
            return None
        version = ber_int(b, vs, ve)
        if version not in VERSIONS:
            return None
        msg = {"version": VERSIONS[version], "community": None, "pdu": None, "varbinds": [],
               "trailing": e != len(b)}
        if version == 3:
            # msgGlobalData SEQUENCE { msgID, msgMaxSize, msgFlags OCTET STRING (1), msgSecurityModel }
            tag, gs, ge = ber_tlv(b, ve, e)
            if tag != 0x30:
                return None
            fields = []
            p = gs
            while p < ge and len(fields) < 4:
                t, fs, fe = ber_tlv(b, p, ge)
                fields.append((t, fs, fe))
                p = fe
            if [f[0] for f in fields] != [0x02, 0x02, 0x04, 0x02] or fields[2][2] - fields[2][1] != 1:
                return None
            flags = b[fields[2][1]]
            msg["security_model"] = ber_int(b, fields[3][1], fields[3][2])
            tag, ss, se = ber_tlv(b, ge, e)              # msgSecurityParameters
            if tag != 0x04:
                return None
            msg["encrypted"] = bool(flags & 0x02)
            if se >= e:
                return msg
            tag, ps, pe = ber_tlv(b, se, e)              # scopedPDU (SEQUENCE) or encryptedPDU (OCTET STRING)
            if tag == 0x04:
                return msg
            if tag != 0x30:
                return None
            t, cs, ce = ber_tlv(b, ps, pe)               # contextEngineID
            t2, ns_, ne = ber_tlv(b, ce, pe)             # contextName
            if t != 0x04 or t2 != 0x04:
                return None
            pdu_at, pdu_end = ne, pe
        else:
            tag, cs, ce = ber_tlv(b, ve, e)
            if tag != 0x04:
                return None
            msg["community"] = b[cs:ce]
            pdu_at, pdu_end = ce, e
        tag, ps, pe = ber_tlv(b, pdu_at, pdu_end)
        if tag not in PDU_NAMES:
            return None
        msg["pdu"] = tag
        if tag == 0xA4:                                  # v1 trap: enterprise, agent-addr, ...
            return msg
        # request-id, error-status/non-repeaters, error-index/max-repetitions, varbinds
        p = ps
        for _ in range(3):
            t, xs, xe = ber_tlv(b, p, pe)
            if t != 0x02:
                return None
            p = xe
        t, ls, le = ber_tlv(b, p, pe)
        if t != 0x30:
            return None
        p = ls
        while p < le and len(msg["varbinds"]) < 64:
            t, vs2, ve2 = ber_tlv(b, p, le)
            if t != 0x30:
                break
            t, os_, oe = ber_tlv(b, vs2, ve2)
            if t != 0x06:
                break
            oid = ber_oid(b, os_, oe)
            vt, xs, xe = ber_tlv(b, oe, ve2)
            msg["varbinds"].append((oid, vt, b[xs:xe]))
            p = ve2
        return msg
    except BERError:
        return None


def probe(data: bytes, is_orig: bool) -> bool:
    """BER SEQUENCE, INTEGER version 0/1/3, community OCTET STRING (v1/v2c), PDU tag 0xa0-0xa8."""
    try:
        if len(data) < 12 or data[0] != 0x30:
            return False
        m = parse(data)
        return m is not None and not m["trailing"] and (m["pdu"] is not None or m["version"] == "3")
    except Exception:
        return False


def _community(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return "public" if raw == b"public" else MASK


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self.rec = None
        self.last = None

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        m = parse(bytes(data))
        if m is None:
            self.ctx.weird("snmp.bad_message", f"{len(data)} bytes", ts)
            return
        c = self.ctx
        if self.rec is None:
            c.confirm(NAME)
            self.rec = {"ts": ts, "uid": c.uid, "id.orig_h": c.orig_h, "id.orig_p": c.orig_p,
                        "id.resp_h": c.resp_h, "id.resp_p": c.resp_p, "duration": 0.0,
                        "version": m["version"], "community": _community(m["community"]),
                        "get_requests": 0, "get_bulk_requests": 0, "get_responses": 0, "set_requests": 0,
                        "traps": 0, "display_string": None}
        r = self.rec
        self.last = ts
        r["duration"] = ts - r["ts"]
        if r["community"] is None and m["community"] is not None:
            r["community"] = _community(m["community"])
        pdu = m["pdu"]
        if pdu in (0xA0, 0xA1):
            r["get_requests"] += 1
        elif pdu == 0xA5:
            r["get_bulk_requests"] += 1
        elif pdu == 0xA2:
            r["get_responses"] += 1
            for oid, vt, val in m["varbinds"]:
                if oid == SYS_DESCR and vt == 0x04 and r["display_string"] is None:
                    r["display_string"] = "".join(
                        chr(x) if 0x20 <= x < 0x7F else f"\\x{x:02x}" for x in val[:MAX_DISPLAY])
        elif pdu == 0xA3:
            r["set_requests"] += 1
        elif pdu in (0xA4, 0xA6, 0xA7):
            r["traps"] += 1

    def done(self, ts: float) -> None:
        if self.rec is not None:
            self.ctx.emit(LOG, self.rec)
            self.rec = None


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "snmp"}
CONTENT = "raw"
