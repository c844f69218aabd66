"""DHCPv4 (BOOTP + RFC 2132 options), Zeek ``dhcp.log`` semantics.

Zeek's dhcp.log is organised around a *transaction* (messages sharing a
transaction id within a short time), not a connection: the client's
broadcast DISCOVER/REQUEST and the server's OFFER/ACK usually travel in
different UDP "connections".  So the aggregation here is kept per dispatcher
(the ``ctx.sink``), keyed by ``xid``:

* a record collects ``uids`` (every connection involved), client and server
  addresses, MAC, host name, client FQDN, domain, requested and assigned
  addresses, lease time, messages, the message types in order and the duration;
* it is written when the transaction has been idle for 5 s or open for 30 s
  (checked whenever a DHCP message arrives or a DHCP connection ends on the
  same sink), when the last open DHCP connection of the sink ends, or at once
  when it reaches 10 uids / 50 message types (Zeek's
  ``max_uids_per_log_entry`` / ``max_msg_types_per_log_entry``; module
  constants ``MAX_UIDS`` / ``MAX_MSG_TYPES``).
"""
from __future__ import annotations

import socket
import weakref

from ..outputs.schema import ADDR, INTERVAL, ListOf, STRING, TIME, Field, Stream
from .base import Analyzer as _BaseAnalyzer, FlowContext

NAME = "dhcp"
TRANSPORTS = ("udp",)
PORTS = (67, 68, 4011)
LOG = "dhcp"
# ---- outputs (read by inspector.outputs): the dhcp log's schema and this module's weird names ----
LOG_SCHEMA = Stream("dhcp", "DHCP leases, one record per exchange (Zeek dhcp.log)", (
    Field("ts", TIME, "time of the exchange's first message"),
    Field("uids", ListOf(STRING), "uids of the connections the exchange's messages travelled in"),
    Field("client_addr", ADDR, "the client's address (ciaddr)"),
    Field("server_addr", ADDR, "the server's address"),
    Field("mac", STRING, "the client's hardware address"),
    Field("host_name", STRING, "host name option (12)"),
    Field("client_fqdn", STRING, "client FQDN option (81)"),
    Field("domain", STRING, "domain name option (15)"),
    Field("requested_addr", ADDR, "requested address option (50)"),
    Field("assigned_addr", ADDR, "address the server assigned (yiaddr)"),
    Field("lease_time", INTERVAL, "lease time, seconds"),
    Field("client_message", STRING, "message option (56) from the client"),
    Field("server_message", STRING, "message option (56) from the server"),
    Field("msg_types", ListOf(STRING), "message types of the exchange in order (DISCOVER, OFFER...)"),
    Field("duration", INTERVAL, "last message minus first message"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "dhcp.bad_message": "a datagram on a DHCP connection too short or without the magic cookie",
    "dhcp.truncated_options": "the options run past the end of the message",
}
# ---- end of outputs declarations ----

MAGIC = b"\x63\x82\x53\x63"
IDLE_TIMEOUT = 5.0                 # Zeek: written 5 s after the last message ...
MAX_WATCH = 30.0                   # ... or 30 s after the first (DHCP::max_txid_watch_time)
MAX_UIDS = 10
MAX_MSG_TYPES = 50
MAX_PENDING = 4096                 # transactions held per sink

MESSAGE_TYPES = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE",
    8: "INFORM", 9: "FORCERENEW", 10: "LEASEQUERY", 11: "LEASEUNASSIGNED", 12: "LEASEUNKNOWN",
    13: "LEASEACTIVE", 14: "BULKLEASEQUERY", 15: "LEASEQUERYDONE", 16: "ACTIVELEASEQUERY",
    17: "LEASEQUERYSTATUS", 18: "TLS",
}

_PRINTABLE = frozenset(range(0x20, 0x7F))


def _text(b: bytes) -> str:
    b = b.rstrip(b"\x00") if b.endswith(b"\x00") else b
    return "".join(chr(c) if c in _PRINTABLE else f"\\x{c:02x}" for c in b)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ip(b: bytes) -> str:
    return socket.inet_ntoa(b)


def _dns_wire_name(b: bytes) -> str:
    labels, p = [], 0
    while p < len(b) and b[p]:
        ln = b[p]
        if ln > 63 or p + 1 + ln > len(b):
            break
        labels.append(_text(b[p + 1:p + 1 + ln]))
        p += 1 + ln
    return ".".join(labels)


def parse(data: bytes) -> dict | None:
    """A BOOTP/DHCP message -> dict, or None when it is not one."""
    if len(data) < 240 or data[236:240] != MAGIC or data[0] not in (1, 2):
        return None
    hlen = min(data[2], 16)
    m = {"op": data[0], "htype": data[1], "hlen": data[2], "hops": data[3],
         "xid": int.from_bytes(data[4:8], "big"), "secs": int.from_bytes(data[8:10], "big"),
         "flags": int.from_bytes(data[10:12], "big"),
         "ciaddr": _ip(data[12:16]), "yiaddr": _ip(data[16:20]), "siaddr": _ip(data[20:24]),
         "giaddr": _ip(data[24:28]), "chaddr": _mac(data[28:28 + hlen]) if hlen else "",
         "options": {}, "truncated_options": False}
    opts = m["options"]
    p, n = 240, len(data)
    while p < n:
        code = data[p]
        if code == 0:                      # pad
            p += 1
            continue
        if code == 255:                    # end
            break
        if p + 2 > n or p + 2 + data[p + 1] > n:
            m["truncated_options"] = True
            break
        ln = data[p + 1]
        val = data[p + 2:p + 2 + ln]
        opts[code] = opts[code] + val if code in opts else val      # RFC 3396 concatenation
        p += 2 + ln
    o = opts
    if 53 in o and len(o[53]) >= 1:
        m["msg_type"] = o[53][0]
    if 12 in o:
        m["host_name"] = _text(o[12])
    if 15 in o:
        m["domain_name"] = _text(o[15])
    if 50 in o and len(o[50]) == 4:
        m["addr_request"] = _ip(o[50])
    if 51 in o and len(o[51]) == 4:
        m["lease"] = float(int.from_bytes(o[51], "big"))
    if 54 in o and len(o[54]) == 4:
        m["serv_addr"] = _ip(o[54])
    if 56 in o:
        m["message"] = _text(o[56])
    if 61 in o and len(o[61]) >= 2:
        m["client_id"] = {"hwtype": o[61][0], "hwaddr": _mac(o[61][1:])}
    if 81 in o and len(o[81]) >= 3:
        flags = o[81][0]
        name = o[81][3:]
        m["client_fqdn"] = _dns_wire_name(name) if flags & 0x04 else _text(name)
    return m


def probe(data: bytes, is_orig: bool) -> bool:
    """BOOTP op 1/2, Ethernet hardware type and length, sane hops, the DHCP magic cookie."""
    try:
        if len(data) < 240:
            return False
        data = bytes(data[:240])
        return data[0] in (1, 2) and data[1] == 1 and data[2] == 6 and data[3] <= 16 \
            and data[236:240] == MAGIC
    except Exception:
        return False


# ------------------------------------------------------------------------------
# Transaction aggregation (per sink)
# ------------------------------------------------------------------------------

class _Transactions:
    def __init__(self):
        self.by_xid: dict[int, dict] = {}
        self.live = 0                  # DHCP analyzers on this sink not yet done

    def expire(self, now: float, emit) -> None:
        stale = [x for x, info in self.by_xid.items()
                 if now - info["_last"] > IDLE_TIMEOUT or now - info["ts"] > MAX_WATCH]
        for x in stale:
            emit(self.by_xid.pop(x))


_BY_SINK: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _transactions_for(sink, fallback) -> _Transactions:
    try:
        t = _BY_SINK.get(sink)
        if t is None:
            t = _BY_SINK[sink] = _Transactions()
        return t
    except TypeError:                  # sink not weak-referenceable (or None): per connection
        return fallback


def _finish(info: dict) -> dict:
    if info.get("mac") is None and info.get("_chaddr"):
        info["mac"] = info["_chaddr"]
    return {k: info.get(k) for k in FIELDS}


class Analyzer(_BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx: FlowContext):
        super().__init__(ctx)
        self._own = _Transactions()
        self.tx = _transactions_for(ctx.sink, self._own)
        self.tx.live += 1
        self._done = False
        self.confirmed = False

    def _emit(self, info: dict) -> None:
        self.ctx.emit(LOG, _finish(info))

    def datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        m = parse(bytes(data))
        if m is None:
            self.ctx.weird("dhcp.bad_message", f"{len(data)} bytes", ts)
            return
        if m["truncated_options"]:
            self.ctx.weird("dhcp.truncated_options", "", ts)
        if not self.confirmed:
            self.confirmed = True
            self.ctx.confirm(NAME)
        if "msg_type" not in m:
            return                         # plain BOOTP: nothing for dhcp.log
        self.tx.expire(ts, self._emit)
        c = self.ctx
        info = self.tx.by_xid.get(m["xid"])
        if info is None:
            if len(self.tx.by_xid) >= MAX_PENDING:
                oldest = min(self.tx.by_xid, key=lambda x: self.tx.by_xid[x]["_last"])
                self._emit(self.tx.by_xid.pop(oldest))
            info = self.tx.by_xid[m["xid"]] = {"ts": ts, "uids": [], "msg_types": [], "duration": 0.0,
                                               "_last": ts}
        info["duration"] = ts - info["ts"]
        if c.uid not in info["uids"]:
            info["uids"].append(c.uid)
        info["msg_types"].append(MESSAGE_TYPES.get(m["msg_type"], f"unknown-{m['msg_type']}"))
        info["_last"] = ts
        src = c.orig_h if is_orig else c.resp_h
        is_client = m["op"] == 1
        if "message" in m:
            info["client_message" if is_client else "server_message"] = m["message"]
        if is_client:
            if src not in ("0.0.0.0", "255.255.255.255"):
                info["client_addr"] = src
            if "host_name" in m:
                info["host_name"] = m["host_name"]
            if "client_fqdn" in m:
                info["client_fqdn"] = m["client_fqdn"]
            cid = m.get("client_id")
            if cid and cid["hwtype"] == 1:
                info["mac"] = cid["hwaddr"]
            else:
                info["_chaddr"] = m["chaddr"]
            if "addr_request" in m:
                info["requested_addr"] = m["addr_request"]
        else:
            if m["yiaddr"] != "0.0.0.0":
                info["server_addr"] = src
                info["assigned_addr"] = m["yiaddr"]
            if m["chaddr"] and info.get("mac") is None:
                info["mac"] = m["chaddr"]
            if info.get("client_addr") is None and info.get("assigned_addr"):
                info["client_addr"] = info["assigned_addr"]
            if "domain_name" in m:
                info["domain"] = m["domain_name"]
            if "lease" in m:
                info["lease_time"] = m["lease"]
        if len(info["uids"]) >= MAX_UIDS or len(info["msg_types"]) >= MAX_MSG_TYPES:
            self._emit(self.tx.by_xid.pop(m["xid"]))

    def done(self, ts: float) -> None:
        """Transactions idle for 5 s are written now; all the rest once no DHCP connection
        is left open on this sink."""
        if self._done:
            return
        self._done = True
        self.tx.live -= 1
        tx = self.tx
        tx.expire(ts, self._emit)
        if tx.live <= 0:
            for x in sorted(tx.by_xid, key=lambda k: tx.by_xid[k]["ts"]):
                self._emit(tx.by_xid.pop(x))


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "dhcp"}
CONTENT = "raw"
