"""DNS (also mDNS on 5353, LLMNR on 5355 and NetBIOS name service on 137).

Two layers:

* ``parse_message(buf, netbios=False) -> Message | None``: one DNS message
  (header, questions, answer/authority/additional records) with name
  compression, loop protection and bounds on every count and length.  Names
  keep their original case; bytes outside printable ASCII are written
  ``\\xNN`` (as Zeek writes them).  Parsing stops at the first broken record,
  keeping what came before (``Message.complete`` is then False and
  ``Message.weirds`` names the problem), as Zeek does.
* ``Analyzer``: Zeek ``dns.log`` semantics.  One record per query/reply
  pair matched by transaction id (FIFO per id), written when both halves were
  seen; unmatched queries and replies are written at ``done()``.  Answers are
  rendered as Zeek renders them (A/AAAA addresses, CNAME/NS/PTR/MX/SRV/SOA
  names, ``TXT <len> <text>``, ``RRSIG <type> <signer>``...; record types Zeek
  does not render give ``<unknown type=N>``).  Names are lower-cased as Zeek
  does; ``original_query`` (an inspector field, last) keeps the query as sent
  on the wire when its case differs (case can carry encoded data).  Every A/AAAA/CNAME record of
  a reply's answer section also goes to ``ctx.dns_answer`` with its own owner
  name, so CNAME chains can be followed.

Over TCP, messages are 2-byte length prefixed and may be split or packed
arbitrarily across ``data()`` calls.
"""
from __future__ import annotations

import ipaddress
import socket
from collections import deque
from dataclasses import dataclass, field

from ..content.decoding import dns_labels_payload
from ..domain import registered_domain
from ..outputs.schema import BOOL, CONN_ID, INT, INTERVAL, ListOf, STRING, TIME, Field, Stream
from .base import PROBE_BYTES, Analyzer as _BaseAnalyzer, FlowContext

NAME = "dns"
TRANSPORTS = ("udp", "tcp")
PORTS = (53, 137, 5353, 5355)
LOG = "dns"
# ---- outputs (read by inspector.outputs): the dns log's schema and this module's weird names ----
LOG_SCHEMA = Stream("dns", "DNS queries and their answers, one record per transaction (Zeek dns.log)", (
    Field("ts", TIME, "time of the query (of the reply when no query was seen)"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("proto", STRING, "transport: udp or tcp"),
    Field("trans_id", INT, "DNS transaction id"),
    Field("rtt", INTERVAL, "time from the query to its reply"),
    Field("query", STRING, "the name queried (lower case, as Zeek)"),
    Field("qclass", INT, "query class number"),
    Field("qclass_name", STRING, "query class name (C_INTERNET...)"),
    Field("qtype", INT, "query type number"),
    Field("qtype_name", STRING, "query type name (A, AAAA, TXT...)"),
    Field("rcode", INT, "response code number"),
    Field("rcode_name", STRING, "response code name (NOERROR, NXDOMAIN...)"),
    Field("AA", BOOL, "authoritative answer"),
    Field("TC", BOOL, "truncated message"),
    Field("RD", BOOL, "recursion desired"),
    Field("RA", BOOL, "recursion available"),
    Field("Z", INT, "the reserved header bits"),
    Field("answers", ListOf(STRING), "answer data (addresses, names, text) in reply order"),
    Field("TTLs", ListOf(INTERVAL), "time to live of each answer, seconds"),
    Field("rejected", BOOL, "the server rejected the query (a reply without answers and a non-zero rcode)"),
    Field("opcode", INT, "operation code number"),
    Field("opcode_name", STRING, "operation code name (query, notify, update...)"),
    Field("original_query", STRING, "the query name as sent, when it differs from query (case, escapes)"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "dns.bad_compression_pointer": "a name compression pointer points outside the message",
    "dns.bad_label_type": "a label length byte with the reserved 0x40/0x80 type bits",
    "dns.edns_bad_option_length": "an EDNS option runs past its OPT record",
    "dns.forward_compression_pointer": "a compression pointer points forward (tolerated)",
    "dns.malformed": "the message could not be parsed (exception type in detail)",
    "dns.multiple_opt_records": "more than one EDNS OPT record in a message",
    "dns.name_loop": "compression pointers form a loop",
    "dns.name_too_long": "a name longer than 255 bytes",
    "dns.rr_bad_length": "a resource record's data length does not fit its type",
    "dns.rr_length_mismatch": "a resource record's data is shorter or longer than its type needs",
    "dns.tcp_zero_length": "a zero length prefix on DNS over TCP",
    "dns.too_many_questions": "more questions than a message can plausibly carry (parse stopped)",
    "dns.too_many_records": "more resource records than the parse limit (rest skipped)",
    "dns.trailing_data": "bytes after the last resource record",
    "dns.truncated_message": "the message ends inside a header, name or record",
    "dns.txt_char_str_past_rdlen": "a TXT character-string runs past the record data",
    "dns.unknown_rr_type": "a resource record of a type the parser does not know (kept as raw data)",
    "dns.unmatched_reply": "a reply with no outstanding query of the same transaction id",
}
# ---- end of outputs declarations ----

# Bounds -----------------------------------------------------------------------
MAX_QUESTIONS = 25          # Zeek's dns_max_queries: more is not DNS
MAX_RECORDS = 2000          # per message, all sections together
MAX_NAME_WIRE = 1024        # bytes of labels in one (decompressed) name
MAX_PENDING_MSGS = 50       # Zeek DNS::max_pending_msgs (per transaction id)
MAX_PENDING_IDS = 50        # Zeek DNS::max_pending_query_ids
RESYNC_CHUNKS = 16          # TCP: data chunks tried after a gap before giving up on a direction

# Tables (Zeek base/protocols/dns/consts.zeek) -----------------------------------
QTYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
    10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT",
    17: "RP", 18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR",
    24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT",
    31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT",
    38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP",
    45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3",
    51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY",
    58: "TALINK", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD",
    64: "SVCB", 65: "HTTPS", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID",
    103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP", 108: "EUI48",
    109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
    254: "MAILA", 255: "*", 256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV",
    65281: "WINS", 65282: "WINS-R", 65422: "XPF", 65521: "INTEGRITY",
}
RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSet", 9: "NOTAUTH", 10: "NOTZONE",
    11: "unassigned-11", 12: "unassigned-12", 13: "unassigned-13", 14: "unassigned-14",
    15: "unassigned-15", 16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE",
    20: "BADNAME", 21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE", 3842: "BADSIG",
}
CLASSES = {1: "C_INTERNET", 2: "C_CSNET", 3: "C_CHAOS", 4: "C_HESIOD", 254: "C_NONE", 255: "C_ANY"}
OPCODES = {0: "query", 1: "iquery", 2: "server-status", 4: "notify", 5: "dynamic-update", 6: "dso"}
NETBIOS_OPCODES = {0: "netbios-query", 5: "netbios-registration", 6: "netbios-release",
                   7: "netbios-wack", 8: "netbios-refresh"}
TRACKED_OPCODES = tuple(range(16))  # every opcode is logged (Zeek keeps 0, 4, 5; Suricata all): odd opcodes are a tunnelling signal

SECTION_ANSWER, SECTION_AUTHORITY, SECTION_ADDITIONAL = "answer", "authority", "additional"

T_A, T_NS, T_CNAME, T_SOA, T_WKS, T_PTR, T_HINFO, T_MX, T_TXT = 1, 2, 5, 6, 11, 12, 13, 15, 16
T_NULL = 10
T_AAAA, T_LOC, T_NB, T_SRV, T_NAPTR, T_A6, T_OPT, T_DS, T_SSHFP = 28, 29, 32, 33, 35, 38, 41, 43, 44
T_RRSIG, T_NSEC, T_DNSKEY, T_NSEC3, T_NSEC3PARAM, T_SVCB, T_HTTPS = 46, 47, 48, 50, 51, 64, 65
T_SPF, T_TKEY, T_TSIG, T_ANY, T_CAA, T_BINDS = 99, 249, 250, 255, 257, 65534
C_NONE, C_ANY = 254, 255

# Types Zeek parses but does not write into dns.log answers (no reply string at all).
_SILENT_TYPES = frozenset((T_HINFO, T_NB, T_OPT, T_TSIG, T_TKEY, T_CAA, T_SVCB, T_HTTPS))


def qtype_name(t: int) -> str:
    return QTYPES.get(t) or f"query-{t}"


def rcode_name(r: int) -> str:
    return RCODES.get(r) or f"rcode-{r}"


def qclass_name(c: int) -> str:
    return CLASSES.get(c) or f"qclass-{c}"


def opcode_name(op: int, netbios: bool = False) -> str:
    if netbios:
        return NETBIOS_OPCODES.get(op) or f"netbios-opcode-{op}"
    return OPCODES.get(op) or f"opcode-{op}"


# ------------------------------------------------------------------------------
# Rendering helpers
# ------------------------------------------------------------------------------

_PRINTABLE = frozenset(range(0x20, 0x7F))


def render_bytes(b: bytes) -> str:
    """Printable ASCII as is, anything else as ``\\xNN`` (Zeek's log escaping)."""
    try:
        s = b.decode("ascii")
        if s.isprintable():
            return s
    except UnicodeDecodeError:
        pass
    return "".join(chr(c) if c in _PRINTABLE else f"\\x{c:02x}" for c in b)


def _lower(s: str) -> str:
    # ASCII-only lower-casing (Zeek's isupper/tolower in the C locale).
    return s.lower() if s.isascii() else "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def decode_netbios_name(name: str) -> str:
    """Zeek's ``decode_netbios_name``: 32 letters A-P -> up to 15 characters, or ''."""
    if len(name) != 32:
        return ""
    out = []
    for i in range(16):
        c0, c1 = name[2 * i].upper(), name[2 * i + 1].upper()
        if not ("A" <= c0 <= "P" and "A" <= c1 <= "P"):
            return ""
        b = ((ord(c0) - 65) << 4) | (ord(c1) - 65)
        ch = chr(b)
        if (b < 0x80 and (ch.isalnum() or (0x21 <= b <= 0x7E and not ch.isalnum()))) or b == 0x20 or b < 3:
            out.append(b)
        else:
            break
    if len(out) == 16:
        out = out[:15]
    while out and out[-1] in (0x20, 0):
        out.pop()
    return render_bytes(bytes(out))


def _is_multicast(addr) -> bool:
    try:
        return ipaddress.ip_address(addr).is_multicast
    except (ValueError, TypeError):
        return False


def _inet6(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


# ------------------------------------------------------------------------------
# Message model and parser
# ------------------------------------------------------------------------------

class _Stop(Exception):
    """Parsing of the message stops here (reason = weird name)."""

    def __init__(self, weird: str, detail: str = ""):
        super().__init__(weird)
        self.weird = weird
        self.detail = detail


@dataclass(slots=True)
class Question:
    name: str          # original case, no trailing dot, root = ""
    qtype: int
    qclass: int


@dataclass(slots=True)
class RR:
    name: str          # owner name, original case
    rtype: int
    rclass: int
    ttl: int
    section: str       # "answer" | "authority" | "additional"
    rdlength: int = 0
    value: object = None     # A/AAAA: address; name types: target (original case); TXT/SPF: [bytes]; OPT: dict
    text: str | None = None  # Zeek's rendering for dns.log (names lowercased); None = Zeek writes nothing
    extra: dict | None = None


@dataclass(slots=True)
class Message:
    id: int
    qr: bool
    opcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    z: int
    rcode: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    questions: list = field(default_factory=list)
    answers: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    edns: dict | None = None
    complete: bool = True         # every counted question/record parsed
    answers_ok: bool = False      # header, questions and answer section parsed (Zeek's confirmation point)
    weirds: list = field(default_factory=list)   # [(name, detail)]

    @property
    def records(self):
        return self.answers + self.authority + self.additional


def read_name(buf: bytes, off: int, end: int | None = None, weirds: list | None = None) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``off``; return (name, offset after it).

    Pointers may go anywhere inside the message (a forward pointer is reported
    as a weird, not refused); a pointer target seen twice is a loop.  Raises
    ``_Stop`` on truncation, loops, reserved label types or over-long names.
    """
    n = len(buf)
    if end is None:
        end = n
    labels = []
    total = 0
    pos = off
    after = None
    visited = None
    limit = end              # labels read before the first jump must fit in [off, end)
    while True:
        if pos >= limit:
            raise _Stop("dns.truncated_message", "name")
        ln = buf[pos]
        if ln == 0:
            pos += 1
            break
        kind = ln & 0xC0
        if kind == 0xC0:
            if pos + 1 >= limit:
                raise _Stop("dns.truncated_message", "name pointer")
            ptr = ((ln & 0x3F) << 8) | buf[pos + 1]
            if after is None:
                after = pos + 2
                visited = set()
            if ptr in visited or ptr == pos:
                raise _Stop("dns.name_loop", str(ptr))
            if ptr < 12 or ptr >= n:
                raise _Stop("dns.bad_compression_pointer", str(ptr))
            if ptr >= off and weirds is not None and ptr > pos:
                weirds.append(("dns.forward_compression_pointer", str(ptr)))
            visited.add(ptr)
            pos = ptr
            limit = n
            continue
        if kind:
            raise _Stop("dns.bad_label_type", f"0x{ln:02x}")
        if pos + 1 + ln > limit:
            raise _Stop("dns.truncated_message", "label")
        labels.append(buf[pos + 1:pos + 1 + ln])
        total += ln + 1
        if total > MAX_NAME_WIRE:
            raise _Stop("dns.name_too_long", str(total))
        pos += 1 + ln
    if total > 255 and weirds is not None:
        weirds.append(("dns.name_too_long", str(total)))
    if not labels:
        name = ""
    else:
        raw = b".".join(labels)
        name = render_bytes(raw)
    return name, (after if after is not None else pos)


def _char_strings(buf: bytes, p: int, end: int, weirds: list) -> tuple[list, bool]:
    out = []
    while p < end:
        ln = buf[p]
        p += 1
        if p + ln > end:
            weirds.append(("dns.txt_char_str_past_rdlen", ""))
            return out, False
        out.append(bytes(buf[p:p + ln]))
        p += ln
    return out, True


def _parse_rdata(msg: Message, rr: RR, buf: bytes, p: int, end: int, netbios: bool) -> None:
    """Fill rr.value / rr.text from rdata at [p, end).  Raises _Stop where Zeek gives up."""
    t = rr.rtype
    w = msg.weirds
    rdl = end - p
    update = msg.opcode == 5 and not netbios
    if t == T_A:
        if rdl != 4:
            raise _Stop("dns.rr_bad_length", "A")
        a = socket.inet_ntoa(buf[p:end])
        rr.value = a
        rr.text = f"A {_lower(rr.name)} {a}" if update else a
    elif t in (T_AAAA, T_A6):
        if rdl != 16:
            if t == T_A6:
                return
            raise _Stop("dns.rr_bad_length", "AAAA")
        a = _inet6(buf[p:end])
        rr.value = a
        rr.text = f"{QTYPES[t]} {_lower(rr.name)} {a}" if update else a
    elif t in (T_NS, T_CNAME, T_PTR):
        name, q = read_name(buf, p, None, w)
        if q != end:
            w.append(("dns.rr_length_mismatch", QTYPES[t]))
        rr.value = name
        rr.text = _lower(name)
    elif t == T_MX:
        if rdl < 3:
            raise _Stop("dns.rr_bad_length", "MX")
        name, q = read_name(buf, p + 2, None, w)
        rr.value = name
        rr.extra = {"preference": int.from_bytes(buf[p:p + 2], "big")}
        rr.text = _lower(name)
    elif t == T_SOA:
        mname, q = read_name(buf, p, None, w)
        rname, q = read_name(buf, q, None, w)
        if q + 20 > len(buf):
            raise _Stop("dns.truncated_message", "SOA")
        vals = [int.from_bytes(buf[q + 4 * i:q + 4 * i + 4], "big") for i in range(5)]
        rr.value = mname
        rr.extra = {"mname": mname, "rname": rname, "serial": vals[0], "refresh": vals[1],
                    "retry": vals[2], "expire": vals[3], "minimum": vals[4]}
        rr.text = _lower(mname)
    elif t == T_SRV:
        if netbios:          # NBSTAT: not parsed by Zeek
            return
        if rdl < 7:
            raise _Stop("dns.rr_bad_length", "SRV")
        name, q = read_name(buf, p + 6, None, w)
        rr.value = name
        rr.extra = {"priority": int.from_bytes(buf[p:p + 2], "big"),
                    "weight": int.from_bytes(buf[p + 2:p + 4], "big"),
                    "port": int.from_bytes(buf[p + 4:p + 6], "big")}
        rr.text = _lower(name)
    elif t in (T_TXT, T_SPF):
        strs, ok = _char_strings(buf, p, end, w)
        rr.value = strs
        tag = "TXT" if t == T_TXT else "SPF"
        rr.text = " ".join(f"{tag} {len(s)} {render_bytes(s)}" for s in strs)
        if not ok:
            raise _Stop("dns.txt_char_str_past_rdlen", "")
    elif t in (T_SVCB, T_HTTPS):
        if rdl < 3:
            raise _Stop("dns.rr_bad_length", QTYPES[t])
        name, q = read_name(buf, p + 2, end, w)
        rr.value = name                       # the TargetName ("" = the owner itself)
        rr.extra = {"priority": int.from_bytes(buf[p:p + 2], "big")}
    elif t == T_OPT:
        _parse_opt(msg, rr, buf, p, end)
    elif t == T_WKS:
        rr.text = ""
    elif t == T_NAPTR:
        if rdl < 5:
            raise _Stop("dns.rr_bad_length", "NAPTR")
        order = int.from_bytes(buf[p:p + 2], "big")
        pref = int.from_bytes(buf[p + 2:p + 4], "big")
        q = p + 4
        parts = []
        for _ in range(3):
            if q >= end:
                raise _Stop("dns.rr_bad_length", "NAPTR")
            ln = buf[q]
            if q + 1 + ln > end:
                raise _Stop("dns.rr_bad_length", "NAPTR")
            parts.append(render_bytes(buf[q + 1:q + 1 + ln]))
            q += 1 + ln
        repl, q = read_name(buf, q, None, w)
        tmp = parts[2]
        if repl:
            tmp = f"{tmp} {_lower(repl)}" if tmp else _lower(repl)
        rr.value = repl
        rr.text = f"NAPTR {order} {pref} {parts[0]} {parts[1]} {tmp}"
    elif t == T_RRSIG:
        if rdl < 18:
            raise _Stop("dns.rr_bad_length", "RRSIG")
        covered = int.from_bytes(buf[p:p + 2], "big")
        signer, q = read_name(buf, p + 18, None, w)
        rr.value = signer
        rr.text = f"RRSIG {covered} {_lower(signer) or '<Root>'}"
    elif t == T_DNSKEY:
        if rdl < 4:
            raise _Stop("dns.rr_bad_length", "DNSKEY")
        rr.text = f"DNSKEY {buf[p + 3]}"
    elif t == T_DS:
        if rdl < 4:
            raise _Stop("dns.rr_bad_length", "DS")
        rr.text = f"DS {buf[p + 2]} {buf[p + 3]}"
    elif t == T_NSEC:
        nxt, q = read_name(buf, p, None, w)
        rr.value = nxt
        rr.text = f"NSEC {_lower(rr.name)} {_lower(nxt)}"
    elif t == T_NSEC3:
        rr.text = "NSEC3"
    elif t == T_NSEC3PARAM:
        rr.text = "NSEC3PARAM"
    elif t == T_SSHFP:
        if rdl < 2:
            raise _Stop("dns.rr_bad_length", "SSHFP")
        rr.text = "SSHFP: " + bytes(buf[p + 2:end]).hex()
    elif t == T_LOC:
        if rdl < 16:
            raise _Stop("dns.rr_bad_length", "LOC")
        rr.text = f"LOC:  {buf[p + 1]} {buf[p + 2]} {buf[p + 3]}"
    elif t == T_BINDS:
        if rdl < 5:
            raise _Stop("dns.rr_bad_length", "BINDS")
        rr.text = "BIND9 signing signal"
    elif t in _SILENT_TYPES:
        return
    else:
        w.append(("dns.unknown_rr_type", str(t)))
        rr.text = f"<unknown type={t}>"
        if t == T_NULL:
            rr.value = bytes(buf[p:end])      # free-form data (tunnels answer in NULL records)


def _parse_opt(msg: Message, rr: RR, buf: bytes, p: int, end: int) -> None:
    ttl = rr.ttl
    opts = []
    q = p
    while q + 4 <= end:
        code = int.from_bytes(buf[q:q + 2], "big")
        ln = int.from_bytes(buf[q + 2:q + 4], "big")
        q += 4
        if q + ln > end:
            msg.weirds.append(("dns.edns_bad_option_length", str(code)))
            break
        opts.append((code, bytes(buf[q:q + ln])))
        q += ln
    else:
        if q != end:
            msg.weirds.append(("dns.edns_bad_option_length", "trailing"))
    edns = {"udp_size": rr.rclass, "ext_rcode": (ttl >> 24) & 0xFF, "version": (ttl >> 16) & 0xFF,
            "do": bool(ttl & 0x8000), "z": ttl & 0xFFFF, "options": opts}
    rr.value = edns
    if msg.edns is None:
        msg.edns = edns
    elif rr.section == SECTION_ADDITIONAL:
        msg.weirds.append(("dns.multiple_opt_records", ""))


def parse_header(buf: bytes) -> Message | None:
    if len(buf) < 12:
        return None
    fl = (buf[2] << 8) | buf[3]
    return Message(
        id=(buf[0] << 8) | buf[1], qr=bool(fl & 0x8000), opcode=(fl >> 11) & 0xF,
        aa=bool(fl & 0x0400), tc=bool(fl & 0x0200), rd=bool(fl & 0x0100), ra=bool(fl & 0x0080),
        z=(fl >> 4) & 0x7, rcode=fl & 0xF,
        qdcount=(buf[4] << 8) | buf[5], ancount=(buf[6] << 8) | buf[7],
        nscount=(buf[8] << 8) | buf[9], arcount=(buf[10] << 8) | buf[11])


def parse_message(buf: bytes, netbios: bool = False) -> Message | None:
    """Parse one DNS message; None when shorter than a header.  Never raises."""
    buf = bytes(buf)
    msg = parse_header(buf)
    if msg is None:
        return None
    try:
        _parse_body(msg, buf, netbios)
    except _Stop as e:
        msg.complete = False
        msg.weirds.append((e.weird, e.detail))
    except (IndexError, ValueError, OSError) as e:   # defensive: never raise on traffic
        msg.complete = False
        msg.weirds.append(("dns.malformed", type(e).__name__))
    return msg


def _parse_body(msg: Message, buf: bytes, netbios: bool) -> None:
    n = len(buf)
    if msg.qdcount > MAX_QUESTIONS:
        raise _Stop("dns.too_many_questions", str(msg.qdcount))
    p = 12
    w = msg.weirds
    for _ in range(msg.qdcount):
        name, p = read_name(buf, p, None, w)
        if p + 4 > n:
            raise _Stop("dns.truncated_message", "question")
        msg.questions.append(Question(name, (buf[p] << 8) | buf[p + 1], (buf[p + 2] << 8) | buf[p + 3]))
        p += 4
    if msg.ancount + msg.nscount + msg.arcount > MAX_RECORDS:
        w.append(("dns.too_many_records", str(msg.ancount + msg.nscount + msg.arcount)))
    budget = MAX_RECORDS
    for count, section, out in ((msg.ancount, SECTION_ANSWER, msg.answers),
                                (msg.nscount, SECTION_AUTHORITY, msg.authority),
                                (msg.arcount, SECTION_ADDITIONAL, msg.additional)):
        for _ in range(count):
            if budget <= 0:
                raise _Stop("dns.too_many_records", "")
            budget -= 1
            name, p = read_name(buf, p, None, w)
            if p + 10 > n:
                raise _Stop("dns.truncated_message", "record header")
            rtype = (buf[p] << 8) | buf[p + 1]
            rclass = (buf[p + 2] << 8) | buf[p + 3]
            ttl = int.from_bytes(buf[p + 4:p + 8], "big")
            rdl = (buf[p + 8] << 8) | buf[p + 9]
            p += 10
            if p + rdl > n:
                raise _Stop("dns.truncated_message", "rdata")
            rr = RR(name, rtype, rclass, ttl, section, rdl)
            out.append(rr)
            if msg.opcode == 5 and not netbios and rclass in (C_NONE, C_ANY) and \
                    section in (SECTION_ANSWER, SECTION_AUTHORITY):
                pass          # dynamic update prerequisite / delete: rendered by the analyzer
            else:
                _parse_rdata(msg, rr, buf, p, p + rdl, netbios)
            p += rdl
        if section == SECTION_ANSWER:
            msg.answers_ok = True
    if p < n:
        # trailing bytes after the last record (padding is common on some stacks)
        w.append(("dns.trailing_data", str(n - p)))


# ------------------------------------------------------------------------------
# Probe
# ------------------------------------------------------------------------------

def _is_netbios_label(buf: bytes, p: int) -> bool:
    if p + 33 > len(buf) or buf[p] != 32:
        return False
    return all(0x41 <= c <= 0x50 for c in buf[p + 1:p + 33])


def probe_message(b: bytes, complete: bool) -> bool:
    """``complete``: ``b`` is the whole message (else a prefix of it)."""
    n = len(b)
    if n < 12:
        return False
    fl = (b[2] << 8) | b[3]
    qr = fl & 0x8000
    op = (fl >> 11) & 0xF
    qd = (b[4] << 8) | b[5]
    an = (b[6] << 8) | b[7]
    ns = (b[8] << 8) | b[9]
    ar = (b[10] << 8) | b[11]
    if qd > 10 or an > 256 or ns > 256 or ar > 256:
        return False
    odd_opcode = op == 3 or (op > 5 and not _is_netbios_label(b, 12))
    if odd_opcode and not complete:
        return False
    if not qr:
        if qd == 0 and not (op == 5 or op == 4):
            return False
        if qd == 0 and an + ns + ar == 0:
            return False
        if fl & 0x000F:            # rcode in a query
            return False
    else:
        if qd + an + ns + ar == 0:
            return (fl & 0x000F) != 0 and n == 12 and complete    # bare error reply
        if (fl & 0x000F) > 10:
            return False
    if complete and 12 + 5 * qd + 11 * (an + ns + ar) > n:
        return False
    # the first name must parse, plus its type/class (or a record header)
    try:
        name, p = read_name(b, 12)
    except _Stop as e:
        return not complete and e.weird == "dns.truncated_message" and n > 13
    if qd:
        if p + 4 > n:
            return not complete
        qclass = ((b[p + 2] << 8) | b[p + 3]) & 0x7FFF     # mDNS: top bit = unicast-response
        qtype = (b[p] << 8) | b[p + 1]
        if qtype == 0 or qclass not in (1, 3, 4, 254, 255):
            return False
        if odd_opcode:
            return _parses_cleanly(b)
        # the whole question section must parse when the message is complete
        if complete:
            for _ in range(qd - 1):
                try:
                    _, p = read_name(b, p + 4)
                except _Stop:
                    return False
                if p + 4 > n:
                    return False
        return True
    if p + 10 > n:
        return not complete
    rclass = ((b[p + 2] << 8) | b[p + 3]) & 0x7FFF
    rtype = (b[p] << 8) | b[p + 1]
    if rtype == 0 or not (rclass in (1, 3, 4, 254, 255) or rtype == T_OPT):
        return False
    return _parses_cleanly(b) if odd_opcode else True


def _parses_cleanly(b: bytes) -> bool:
    """Unassigned opcodes: accepted only when the whole message parses without a weird."""
    m = parse_message(b)
    return m is not None and m.complete and not m.weirds


def probe(data: bytes, is_orig: bool) -> bool:
    """A plausible DNS message, or a TCP 2-byte length + DNS message (or its start)."""
    try:
        data = bytes(data)
        if probe_message(data, len(data) < PROBE_BYTES):
            return True
        if len(data) >= 14:
            ln = (data[0] << 8) | data[1]
            if ln >= 12:
                return probe_message(data[2:2 + ln], ln + 2 <= len(data))
        return False
    except Exception:
        return False


# ------------------------------------------------------------------------------
# Analyzer (Zeek dns.log semantics)
# ------------------------------------------------------------------------------

class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self.netbios = ctx.resp_p == 137 or ctx.orig_p == 137
        # Messages sent to a multicast group (mDNS) are not correlated by
        # transaction id: each one is its own log record (Zeek >= 7).
        self.multicast = _is_multicast(ctx.resp_h)
        self._buf = {True: bytearray(), False: bytearray()}
        self._lost = {True: 0, False: 0}      # 0 = in sync, else chunks skipped since a gap + 1
        self._pend_q: dict[int, deque] = {}
        self._pend_r: dict[int, deque] = {}
        self._seq = 0
        self._weirded: set = set()
        self.messages = 0
        self.confirmed = False

    # -- input ---------------------------------------------------------------
    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        self._message(bytes(data), ts)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if not data:
            return
        state = self._lost[is_orig]
        if state:
            # After a gap: resume where a chunk starts with a plausible framed message.
            ok = False
            if state < RESYNC_CHUNKS and len(data) >= 14:
                ln = (data[0] << 8) | data[1]
                ok = ln >= 12 and probe_message(bytes(data[2:2 + ln]), ln + 2 <= len(data))
            if not ok:
                if state < RESYNC_CHUNKS:
                    self._lost[is_orig] = state + 1
                return
            self._lost[is_orig] = 0
        buf = self._buf[is_orig]
        buf += data
        while len(buf) >= 2:
            ln = (buf[0] << 8) | buf[1]
            if ln == 0:
                del buf[:2]
                self._weird("dns.tcp_zero_length", "", ts)
                continue
            if len(buf) < 2 + ln:
                break
            msg = bytes(buf[2:2 + ln])
            del buf[:2 + ln]
            self._message(msg, ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        # Message boundaries are lost in this direction: skip data until a chunk
        # starts with a plausible length-prefixed message (at most RESYNC_CHUNKS tries).
        if not self._lost[is_orig]:
            self._lost[is_orig] = 1
        self._buf[is_orig].clear()

    def wants_more(self) -> bool:
        return not (self._lost[True] >= RESYNC_CHUNKS and self._lost[False] >= RESYNC_CHUNKS)

    def done(self, ts: float) -> None:
        rest = []
        for table in (self._pend_q, self._pend_r):
            for q in table.values():
                rest.extend(q)
            table.clear()
        rest.sort(key=lambda i: i["_seq"])
        for info in rest:
            self._emit(info)
        for d in (True, False):
            if self._buf[d]:
                self._weird("dns.truncated_message", "tcp: partial message at end", ts)
                self._buf[d].clear()

    # -- internals -----------------------------------------------------------
    def _weird(self, name: str, detail: str, ts: float) -> None:
        if name in self._weirded:
            return
        self._weirded.add(name)
        self.ctx.weird(name, detail, ts)

    def _emit(self, info: dict) -> None:
        self.ctx.emit(LOG, {k: info.get(k) for k in FIELDS})

    def _new(self, ts: float, tid: int) -> dict:
        c = self.ctx
        self._seq += 1
        return {"ts": ts, "uid": c.uid, "id.orig_h": c.orig_h, "id.orig_p": c.orig_p,
                "id.resp_h": c.resp_h, "id.resp_p": c.resp_p, "proto": c.transport,
                "trans_id": tid, "rtt": None, "query": None, "qclass": None, "qclass_name": None,
                "qtype": None, "qtype_name": None, "rcode": None, "rcode_name": None,
                "AA": False, "TC": False, "RD": False, "RA": False, "Z": 0,
                "answers": None, "TTLs": None, "rejected": False, "opcode": None, "opcode_name": None,
                "original_query": None,
                "_seq": self._seq, "_saw_q": False, "_saw_r": False}

    def _enqueue(self, table: dict, tid: int, info: dict) -> None:
        q = table.get(tid)
        if q is None:
            if len(table) > MAX_PENDING_IDS:
                for old in table.values():
                    for i in old:
                        self._emit(i)
                table.clear()
            q = table[tid] = deque()
        elif len(q) > MAX_PENDING_MSGS:
            for i in q:
                self._emit(i)
            q.clear()
        q.append(info)

    @staticmethod
    def _pop(table: dict, tid: int):
        q = table.get(tid)
        if not q:
            return None
        info = q.popleft()
        if not q:
            del table[tid]
        return info

    def _session(self, msg: Message, ts: float) -> dict:
        if self.multicast:
            info = self._new(ts, msg.id)
        elif not msg.qr:
            info = self._pop(self._pend_r, msg.id)
            if info is None:
                info = self._new(ts, msg.id)
                self._enqueue(self._pend_q, msg.id, info)
        else:
            info = self._pop(self._pend_q, msg.id)
            if info is None:
                info = self._new(ts, msg.id)
                self._weird("dns.unmatched_reply", "", ts)
                self._enqueue(self._pend_r, msg.id, info)
        if msg.qr:
            info["rcode"] = msg.rcode
            info["rcode_name"] = rcode_name(msg.rcode)
            if msg.rcode != 0 and msg.qdcount == 0:
                info["rejected"] = True
        info["opcode"] = msg.opcode
        info["opcode_name"] = opcode_name(msg.opcode, self.netbios)
        return info

    def _message(self, raw: bytes, ts: float) -> None:
        msg = parse_message(raw, self.netbios)
        if msg is None:
            self._weird("dns.truncated_message", f"{len(raw)} bytes < header", ts)
            return
        self.messages += 1
        for name, detail in msg.weirds:
            self._weird(name, detail, ts)
        if msg.answers_ok or (msg.complete and not msg.ancount):
            if not self.confirmed:
                self.confirmed = True
                self.ctx.confirm(NAME)
        if msg.qr:
            self._passive(msg, ts)
            self._answer_data(msg)
        if msg.opcode not in TRACKED_OPCODES:
            return
        info = self._session(msg, ts)
        if not msg.qr:
            if msg.opcode != 5 or self.netbios:
                for q in msg.questions:
                    self._request(info, msg, q)
        else:
            if msg.questions and not (msg.ancount or msg.nscount or msg.arcount):
                info["rejected"] = True
            if msg.opcode == 5 and not self.netbios:
                for rr in msg.answers:
                    self._reply(info, msg, rr, self._update_text(rr, True), ts)
                for rr in msg.authority:
                    self._reply(info, msg, rr, self._update_text(rr, False), ts)
            else:
                for rr in msg.answers:
                    if rr.rtype == T_OPT:
                        continue
                    self._reply(info, msg, rr, rr.text, ts)
        if msg.qr:
            info["_saw_r"] = True
        else:
            info["_saw_q"] = True
        if self.multicast or (info["_saw_q"] and info["_saw_r"]):
            self._emit(info)

    def _request(self, info: dict, msg: Message, q: Question) -> None:
        info["RD"] = msg.rd
        info["TC"] = msg.tc
        info["qclass"] = q.qclass
        info["qclass_name"] = qclass_name(q.qclass)
        info["qtype"] = q.qtype
        info["qtype_name"] = qtype_name(q.qtype)
        info["Z"] = msg.z
        query = _lower(q.name)
        info["original_query"] = q.name if q.name != query else None
        if self.netbios:
            dec = decode_netbios_name(query)
            if dec:
                query = dec
                info["original_query"] = None
            if info["qtype_name"] == "SRV":
                info["qtype_name"] = "NBSTAT"
        info["query"] = query

    @staticmethod
    def _update_text(rr: RR, prerequisite: bool) -> str | None:
        owner = _lower(rr.name)
        if rr.rclass in (C_NONE, C_ANY):
            tn = qtype_name(rr.rtype)
            if prerequisite:
                if rr.rclass == C_NONE and rr.rtype == T_ANY:
                    what = f"NameNotInUse {owner}"
                elif rr.rclass == C_ANY and rr.rtype == T_ANY:
                    what = f"NameInUse {owner}"
                elif rr.rclass == C_NONE:
                    what = f"NoRRSet {tn} {owner}"
                else:
                    what = f"RRSetExists {tn} {owner}"
                return f"pre: {what}"
            if rr.rclass == C_ANY and rr.rtype == T_ANY:
                what = f"RRSet * {owner}"
            elif rr.rclass == C_NONE:
                what = f"RR {tn} {owner}"
            else:
                what = f"RRSet {tn}"
            return f"del: {what}"
        if rr.text is None:
            return None
        if not prerequisite and rr.text and not rr.text.startswith("del:"):
            return f"add: {rr.text}"
        return rr.text

    def _reply(self, info: dict, msg: Message, rr: RR, text: str | None, ts: float) -> None:
        if text is None:
            return          # Zeek raises no reply event for this record type
        if info["query"] is None:
            info["query"] = _lower(rr.name)
            if info["query"] != rr.name:
                info["original_query"] = rr.name
        info["AA"] = msg.aa
        info["RA"] = msg.ra
        if info["rtt"] is None:
            rtt = ts - info["ts"]
            info["rtt"] = rtt if rtt != 0 else None
        if text != "":
            if info["answers"] is None:
                info["answers"] = []
                info["TTLs"] = []
            info["answers"].append(text)
            info["TTLs"].append(float(rr.ttl))

    def _answer_data(self, msg: Message) -> None:
        """TXT and NULL answer data to the dispatcher (``answer_data``): the content stage decodes
        it as a tunnel session when the answering side is the local one (data leaving in answers)."""
        hook = getattr(self.ctx.sink, "answer_data", None)
        if hook is None:
            return
        qname = msg.questions[0].name if msg.questions else None
        for rr in msg.answers:
            if rr.rtype == T_TXT and rr.value:
                data = b"".join(rr.value)
            elif rr.rtype == T_NULL and rr.value:
                data = rr.value
            else:
                continue
            hook(self.ctx, qname or rr.name, data)

    def _passive(self, msg: Message, ts: float) -> None:
        sink = self.ctx.sink
        if sink is None:
            return
        for rr in msg.answers:
            if rr.value is None:
                continue
            if rr.rtype == T_A:
                kind = "A"
            elif rr.rtype == T_AAAA:
                kind = "AAAA"
            elif rr.rtype == T_CNAME:
                kind = "CNAME"
            else:
                continue
            ans = rr.value if kind != "CNAME" else _lower(rr.value)
            self.ctx.dns_answer(_lower(rr.name), ans, kind, float(rr.ttl), ts)


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
def query_content(record: dict):
    """What a query name carries out of the site: the labels left of the registered domain,
    space-separated (data in a label), then joined (data split over labels).  Returns
    ``(info, payload)`` or None (see base.py, ``LOG_CONTENT``)."""
    q = record.get("original_query") or record.get("query")
    if not q:
        return None
    name = q.strip().rstrip(".")
    labels = name.split(".")
    reg = registered_domain(name.lower())
    keep = len(labels) - (reg.count(".") + 1 if reg else len(labels))
    if keep <= 0:
        return None
    dotted = " ".join(labels[:keep]).encode("utf-8", "surrogatepass")
    payload = dotted + b" " + dns_labels_payload(name) if keep > 1 else dotted
    return {"source": "dns", "qname": name}, payload    # qname: the content stage's tunnel sessions

APP_PROTO = {NAME: "dns"}
CONTENT = "log"                    # query names sent to a resolver outside the site may carry data
LOG_CONTENT = {"dns": query_content}
