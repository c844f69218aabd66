"""NTP, DHCP, SNMP, syslog, MQTT and SMB modules: annotated-bytes unit tests,
probe robustness, and corpus cross-checks (Zeek ntp/dhcp/syslog logs, nDPI
protocol labels for every module including DNS).

Captures are read with dpkt (helpers shared with test_proto_dns.py); a small
time-ordered driver (``run_capture``) plays the dispatcher: one analyzer per
flow chosen by the probes, datagrams/stream data in capture order across all
flows, ``done()`` for every flow at the end.
"""
from __future__ import annotations

import random
import re
import socket
import struct
from pathlib import Path

import pytest

from inspector.protocols import dhcp, dns, mqtt, ntp, smb2, snmp, syslog
from test_proto_dns import (FakeSink, first_payloads, make_ctx, pcap_flows, random_payloads,
                            tcp_events)

MODULES = [mqtt, smb2, dns, ntp, dhcp, snmp, syslog]     # registry order of these modules


def records(sink, log):
    return sink.records.get(log, [])


# ---------------------------------------------------------------------------
# A time-ordered driver over a capture
# ---------------------------------------------------------------------------

def _ctx_for(fl, sink, n):
    return make_ctx(sink, orig=fl["orig"], resp=fl["resp"], transport=fl["proto"], uid=f"C{n}")


def run_capture(path, modules=MODULES, check_csum=False, force=None):
    """-> (sink, {flow key: (module name, ctx)}).  ``force``: {port: module} attached without probing."""
    sink = FakeSink()
    flows = pcap_flows(path, check_csum)
    events, analyzers, chosen = [], {}, {}
    for n, (key, fl) in enumerate(sorted(flows.items(), key=lambda kv: kv[1]["ts"])):
        mod = None
        if force:
            mod = force.get(fl["resp"][1]) or force.get(fl["orig"][1])
            if mod is not None and fl["proto"] not in mod.TRANSPORTS:
                mod = None
        if mod is None:
            pay = first_payloads(fl)
            for m in modules:
                if fl["proto"] in m.TRANSPORTS and any(m.probe(p, o) for o, p in pay.items()):
                    mod = m
                    break
        if mod is None:
            continue
        ctx = _ctx_for(fl, sink, n)
        chosen[key] = (mod.NAME, ctx)
        analyzers[key] = (mod.Analyzer(ctx), fl)
        if fl["proto"] == "udp":
            events += [(ts, key, o, "dgram", p) for o, p, ts in fl["udp"]]
        else:
            for o in (True, False):
                events += [(ts, key, o, kind, val) for kind, val, ts in tcp_events(fl["tcp"][o])]
    events.sort(key=lambda e: e[0])
    last = {}
    for ts, key, o, kind, val in events:
        an = analyzers[key][0]
        if kind == "dgram":
            an.datagram(o, val, ts)
        elif kind == "data":
            an.data(o, val, ts)
        else:
            an.gap(o, val, ts)
        last[key] = ts
    for key in sorted(analyzers, key=lambda k: last.get(k, 0)):
        analyzers[key][0].done(last.get(key, analyzers[key][1]["ts"]))
    return sink, chosen


# ===========================================================================
# NTP
# ===========================================================================

NTP_UNIX = 2208988800


def ntp_ts(t: float) -> bytes:
    if t == 0:
        return b"\x00" * 8
    secs = int(t) + NTP_UNIX
    return struct.pack("!II", secs & 0xFFFFFFFF, int((t % 1) * 2**32))


def ntp_packet(mode=3, version=4, stratum=2, poll=6, precision=-20, root_delay=0x0BD9, root_disp=0x0630,
               ref=socket.inet_aton("85.199.214.99"), ref_t=1559246556.0, org=0.0, rec=0.0, xmt=1559246614.5,
               tail=b""):
    return struct.pack("!BBbbII4s",
                       (0 << 6) | (version << 3) | mode,     # LI | VN | mode
                       stratum, poll, precision,
                       root_delay, root_disp,                # 16.16 fixed point seconds
                       ref) \
        + ntp_ts(ref_t) + ntp_ts(org) + ntp_ts(rec) + ntp_ts(xmt) + tail


def test_ntp_client_and_server_records():
    ctx = make_ctx(orig=("192.168.43.118", 123), resp=("80.211.52.109", 123))
    an = ntp.Analyzer(ctx)
    an.datagram(True, ntp_packet(), 1.0)
    an.datagram(False, ntp_packet(mode=4, stratum=1, ref=b"GPS\x00", org=1559246614.5, rec=1559246614.6,
                                  xmt=1559246614.7), 1.1)
    an.done(2.0)
    r1, r2 = records(ctx.sink, "ntp")
    assert list(r1) == list(ntp.FIELDS)
    assert (r1["version"], r1["mode"], r1["stratum"], r1["poll"]) == (4, 3, 2, 64.0)
    assert r1["precision"] == 2.0 ** -20
    assert r1["root_delay"] == pytest.approx(0x0BD9 / 65536) and r1["root_disp"] == pytest.approx(0x0630 / 65536)
    assert r1["ref_id"] == "85.199.214.99" and r1["ref_time"] == pytest.approx(1559246556.0)
    assert r1["org_time"] == 0.0 and r1["rec_time"] == 0.0 and r1["xmt_time"] == pytest.approx(1559246614.5)
    assert r1["num_exts"] == 0
    assert (r2["mode"], r2["stratum"], r2["ref_id"]) == (4, 1, "GPS\\x00")     # as Zeek writes it
    assert ctx.service == ["ntp"]


def test_ntp_kiss_code_and_era_1():
    m = ntp.parse(ntp_packet(mode=4, stratum=0, ref=b"RATE"))
    assert m["ref_id"] == "RATE"
    assert ntp.ntp_time(0, 0) == 0.0                                    # unset stays 0, as in Zeek
    assert ntp.ntp_time(0xE0000000, 2**31) == 0xE0000000 - NTP_UNIX + 0.5
    # after the 2036 wrap NTP seconds restart from 0 (era 1)
    assert ntp.ntp_time(0x10000000, 0) == pytest.approx(0x10000000 + 2**32 - NTP_UNIX)


def test_ntp_mac_and_extension_fields():
    mac = struct.pack("!I", 1) + b"\xaa" * 16                          # key id + MD5 digest
    assert ntp.parse(ntp_packet(tail=mac))["num_exts"] == 0
    ext = struct.pack("!HH", 0x0104, 16) + b"\x00" * 12                  # one 16-byte extension field
    assert ntp.parse(ntp_packet(tail=ext + mac))["num_exts"] == 1
    assert ntp.probe(ntp_packet(tail=ext + mac), True)
    assert not ntp.probe(ntp_packet(tail=b"\x01\x02\x03"), True)          # 3 stray bytes


def test_ntp_control_and_private_modes_confirm_without_log():
    readvar = struct.pack("!BBHHHHH", (2 << 3) | 6, 2, 1, 0, 0, 0, 0)    # ntpq readvar, no data
    monlist = struct.pack("!BBBB", (2 << 3) | 7, 0, 3, 42) + b"\x00" * 44  # ntpdc monlist (req 42)
    for pkt in (readvar, monlist):
        assert ntp.probe(pkt, True), pkt
        ctx = make_ctx(orig=("10.0.0.5", 40000), resp=("10.0.0.1", 123))
        an = ntp.Analyzer(ctx)
        an.datagram(True, pkt, 1.0)
        assert ctx.service == ["ntp"] and records(ctx.sink, "ntp") == []


def test_ntp_probe_rejects():
    dtls = bytes.fromhex("16fefd0000000000000000005601000000000000004a") + b"\x00" * 60
    nfs = bytes.fromhex("5e1d0b940000000000000002000186a30000000200000001") + b"\x00" * 40
    for p in (ntp_packet()[:47], ntp_packet(version=0), ntp_packet(version=5), ntp_packet(stratum=200),
              ntp_packet(poll=90), ntp_packet(precision=40), ntp_packet(ref_t=-1e9), ntp_packet(mode=4, xmt=0), dtls, nfs,
              b"\x1b" + b"\x00" * 47 + b"junk"):
        assert not ntp.probe(p, True), p
    assert ntp.probe(b"\x1b" + b"\x00" * 47, True)                       # minimal SNTP client request


# ===========================================================================
# DHCP
# ===========================================================================

MAC = bytes.fromhex("00a0c9112233")


def dhcp_option(code, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def dhcp_msg(op, xid, mtype, yiaddr="0.0.0.0", ciaddr="0.0.0.0", chaddr=MAC, options=b"", hops=0, htype=1):
    return (struct.pack("!BBBBIHH", op, htype, 6, hops, xid, 0, 0x8000)    # op htype hlen hops xid secs flags
            + socket.inet_aton(ciaddr) + socket.inet_aton(yiaddr)             # ciaddr yiaddr
            + socket.inet_aton("0.0.0.0") * 2                                 # siaddr giaddr
            + chaddr.ljust(16, b"\x00")                                       # chaddr
            + b"\x00" * 64 + b"\x00" * 128                                    # sname file
            + dhcp.MAGIC                                                      # magic cookie
            + dhcp_option(53, bytes([mtype])) + options + b"\xff")


def fqdn_option(name: str, wire: bool) -> bytes:
    if wire:
        body = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\x00"
        return dhcp_option(81, b"\x05\x00\x00" + body)                       # flags S|E
    return dhcp_option(81, b"\x01\x00\x00" + name.encode())


@pytest.fixture
def dhcp_sink():
    return FakeSink()


def _dhcp_conn(sink, orig, resp, uid):
    return dhcp.Analyzer(make_ctx(sink, orig=orig, resp=resp, uid=uid))


def test_dhcp_dora_across_two_connections_is_one_record(dhcp_sink):
    client = _dhcp_conn(dhcp_sink, ("0.0.0.0", 68), ("255.255.255.255", 67), "Cclient")
    server = _dhcp_conn(dhcp_sink, ("10.0.0.1", 67), ("255.255.255.255", 68), "Cserver")
    opts_c = dhcp_option(12, b"scanner-07") + fqdn_option("scanner-07.dc.example", True) + \
        dhcp_option(50, socket.inet_aton("10.0.0.57"))
    opts_s = dhcp_option(51, struct.pack("!I", 3600)) + dhcp_option(15, b"dc.example") + \
        dhcp_option(54, socket.inet_aton("10.0.0.1"))
    client.datagram(True, dhcp_msg(1, 0xABCD, 1, options=opts_c), 10.0)
    server.datagram(True, dhcp_msg(2, 0xABCD, 2, yiaddr="10.0.0.57", options=opts_s), 10.1)
    client.datagram(True, dhcp_msg(1, 0xABCD, 3, options=opts_c), 10.2)
    server.datagram(True, dhcp_msg(2, 0xABCD, 5, yiaddr="10.0.0.57", options=opts_s), 10.3)
    client.done(11.0)
    assert records(dhcp_sink, "dhcp") == []            # the server connection is still open
    server.done(11.0)
    [r] = records(dhcp_sink, "dhcp")
    assert list(r) == list(dhcp.FIELDS)
    assert r["uids"] == ["Cclient", "Cserver"]
    assert r["msg_types"] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert (r["client_addr"], r["server_addr"], r["assigned_addr"], r["requested_addr"]) == \
        ("10.0.0.57", "10.0.0.1", "10.0.0.57", "10.0.0.57")
    assert (r["mac"], r["host_name"], r["client_fqdn"], r["domain"], r["lease_time"]) == \
        ("00:a0:c9:11:22:33", "scanner-07", "scanner-07.dc.example", "dc.example", 3600.0)
    assert r["ts"] == 10.0 and r["duration"] == pytest.approx(0.3)


def test_dhcp_inform_unicast_and_client_id(dhcp_sink):
    c = _dhcp_conn(dhcp_sink, ("128.2.6.122", 68), ("128.2.6.1", 67), "Ci")
    cid = dhcp_option(61, b"\x01" + bytes.fromhex("90b11c994929"))       # client id: Ethernet MAC
    c.datagram(True, dhcp_msg(1, 7, 8, ciaddr="128.2.6.122", options=cid + fqdn_option("pc.local", False)), 1.0)
    c.datagram(False, dhcp_msg(2, 7, 5, ciaddr="128.2.6.122"), 1.004)
    c.done(2.0)
    [r] = records(dhcp_sink, "dhcp")
    assert (r["client_addr"], r["server_addr"], r["mac"], r["client_fqdn"], r["msg_types"]) == \
        ("128.2.6.122", None, "90:b1:1c:99:49:29", "pc.local", ["INFORM", "ACK"])


def test_dhcp_idle_transactions_are_split(dhcp_sink):
    c = _dhcp_conn(dhcp_sink, ("0.0.0.0", 68), ("255.255.255.255", 67), "C1")
    c.datagram(True, dhcp_msg(1, 1, 1), 1.0)
    c.datagram(True, dhcp_msg(1, 1, 1), 7.5)            # same xid, 6.5 s later: a new transaction
    assert len(records(dhcp_sink, "dhcp")) == 1
    c.done(8.0)
    assert [r["msg_types"] for r in records(dhcp_sink, "dhcp")] == [["DISCOVER"], ["DISCOVER"]]


def test_dhcp_msg_type_cap(dhcp_sink, monkeypatch):
    monkeypatch.setattr(dhcp, "MAX_MSG_TYPES", 4)
    c = _dhcp_conn(dhcp_sink, ("10.0.0.9", 68), ("10.0.0.1", 67), "C1")
    for i in range(10):
        c.datagram(i % 2 == 0, dhcp_msg(1 + i % 2, 5, 8 if i % 2 == 0 else 5), 1.0 + i * 0.01)
    c.done(2.0)
    assert [len(r["msg_types"]) for r in records(dhcp_sink, "dhcp")] == [4, 4, 2]


def test_dhcp_truncated_options_and_plain_bootp(dhcp_sink):
    c = _dhcp_conn(dhcp_sink, ("0.0.0.0", 68), ("255.255.255.255", 67), "C1")
    msg = dhcp_msg(1, 9, 1)[:-1] + b"\x0c\x20abc"                       # host name claims 32 bytes
    c.datagram(True, msg, 1.0)
    bootp = dhcp_msg(1, 10, 1)[:240] + b"\xff"                           # no option 53
    c.datagram(True, bootp, 1.1)
    c.done(2.0)
    assert "dhcp.truncated_options" in dhcp_sink.weird_names()
    assert [r["msg_types"] for r in records(dhcp_sink, "dhcp")] == [["DISCOVER"]]


def test_dhcp_probe():
    assert dhcp.probe(dhcp_msg(1, 1, 1), True) and dhcp.probe(dhcp_msg(2, 1, 2), False)
    for p in (dhcp_msg(1, 1, 1)[:239], dhcp_msg(3, 1, 1), dhcp_msg(1, 1, 1, htype=6), dhcp_msg(1, 1, 1, hops=99),
              dhcp_msg(1, 1, 1).replace(dhcp.MAGIC, b"\x63\x82\x53\x64")):
        assert not dhcp.probe(p, True)


def test_dhcp_state_is_per_sink():
    s1, s2 = FakeSink(), FakeSink()
    a = _dhcp_conn(s1, ("0.0.0.0", 68), ("255.255.255.255", 67), "A")
    b = _dhcp_conn(s2, ("0.0.0.0", 68), ("255.255.255.255", 67), "B")
    a.datagram(True, dhcp_msg(1, 77, 1), 1.0)
    b.datagram(True, dhcp_msg(1, 77, 3), 1.0)
    a.done(2.0)
    b.done(2.0)
    assert [r["uids"] for r in records(s1, "dhcp")] == [["A"]]
    assert [r["uids"] for r in records(s2, "dhcp")] == [["B"]]


# ===========================================================================
# SNMP (BER builders)
# ===========================================================================

def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = b"\x81" + bytes([n])
    else:
        ln = b"\x82" + struct.pack("!H", n)
    return bytes([tag]) + ln + content


def ber_int(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def ber_oid(oid: str) -> bytes:
    parts = [int(x) for x in oid.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(enc))
    return tlv(0x06, body)


def snmp_msg(version: int, community: bytes, pdu_tag: int, varbinds=(), request_id=1):
    vbs = b"".join(tlv(0x30, ber_oid(oid) + val) for oid, val in varbinds)
    pdu = tlv(pdu_tag, ber_int(request_id) + ber_int(0) + ber_int(0) + tlv(0x30, vbs))
    return tlv(0x30, ber_int(version) + tlv(0x04, community) + pdu)


NULL = b"\x05\x00"


def test_snmp_v2c_session_record():
    ctx = make_ctx(orig=("10.1.1.5", 50000), resp=("10.1.1.1", 161))
    an = snmp.Analyzer(ctx)
    get = snmp_msg(1, b"public", 0xA0, [("1.3.6.1.2.1.1.1.0", NULL), ("1.3.6.1.2.1.1.3.0", NULL)])
    resp = snmp_msg(1, b"public", 0xA2, [("1.3.6.1.2.1.1.1.0", tlv(0x04, b"Zebra ZT410 printer\x01")),
                                         ("1.3.6.1.2.1.1.3.0", tlv(0x43, b"\x01\x02"))])
    assert snmp.probe(get, True) and snmp.probe(resp, False)
    an.datagram(True, get, 1.0)
    an.datagram(False, resp, 1.5)
    an.datagram(True, snmp_msg(1, b"public", 0xA1, [("1.3.6.1.2.1.2", NULL)]), 2.0)
    an.datagram(True, snmp_msg(1, b"public", 0xA5, [("1.3.6.1.2.1.2", NULL)]), 2.5)
    an.done(3.0)
    [r] = records(ctx.sink, "snmp")
    assert list(r) == list(snmp.FIELDS)
    assert (r["version"], r["community"], r["get_requests"], r["get_bulk_requests"], r["get_responses"]) == \
        ("2c", "public", 2, 1, 1)
    assert r["display_string"] == "Zebra ZT410 printer\\x01" and r["duration"] == 1.5
    assert ctx.service == ["snmp"]


def test_snmp_community_is_masked_unless_public():
    ctx = make_ctx(orig=("10.1.1.5", 50000), resp=("10.1.1.1", 161))
    an = snmp.Analyzer(ctx)
    an.datagram(True, snmp_msg(0, b"s3cr3t-rw", 0xA3, [("1.3.6.1.2.1.1.5.0", tlv(0x04, b"x"))]), 1.0)
    an.done(2.0)
    [r] = records(ctx.sink, "snmp")
    assert (r["version"], r["community"], r["set_requests"]) == ("1", "(masked)", 1)
    assert "s3cr3t" not in repr(ctx.sink.records)


def test_snmp_traps_and_v1_trap():
    v1trap = tlv(0x30, ber_int(0) + tlv(0x04, b"public") + tlv(0xA4, ber_oid("1.3.6.1.4.1.9") + tlv(0x40, b"\n\0\0\1")
                                                               + ber_int(6) + ber_int(1) + tlv(0x43, b"\x01")
                                                               + tlv(0x30, b"")))
    assert snmp.parse(v1trap)["pdu"] == 0xA4 and snmp.probe(v1trap, True)
    v2trap = snmp_msg(1, b"public", 0xA7, [("1.3.6.1.2.1.1.3.0", tlv(0x43, b"\x05"))])
    ctx = make_ctx(orig=("10.1.1.1", 40000), resp=("10.1.1.9", 162))
    an = snmp.Analyzer(ctx)
    an.datagram(True, v1trap, 1.0)
    an.datagram(True, v2trap, 1.1)
    an.done(2.0)
    assert records(ctx.sink, "snmp")[0]["traps"] == 2


def test_snmp_v3():
    global_data = tlv(0x30, ber_int(12345) + ber_int(65507) + tlv(0x04, b"\x04") + ber_int(3))   # reportable
    usm = tlv(0x04, tlv(0x30, tlv(0x04, b"") + ber_int(0) + ber_int(0) + tlv(0x04, b"") + tlv(0x04, b"")
                        + tlv(0x04, b"")))
    pdu = tlv(0xA0, ber_int(1) + ber_int(0) + ber_int(0) + tlv(0x30, b""))
    discovery = tlv(0x30, ber_int(3) + global_data + usm + tlv(0x30, tlv(0x04, b"") + tlv(0x04, b"") + pdu))
    m = snmp.parse(discovery)
    assert m["version"] == "3" and m["community"] is None and m["pdu"] == 0xA0 and m["security_model"] == 3
    assert snmp.probe(discovery, True)
    enc = tlv(0x30, ber_int(3) + tlv(0x30, ber_int(1) + ber_int(65507) + tlv(0x04, b"\x07") + ber_int(3))
              + usm + tlv(0x04, b"\x8f" * 40))                                       # authPriv: encrypted PDU
    m = snmp.parse(enc)
    assert m["encrypted"] and m["pdu"] is None and snmp.probe(enc, True)


def test_snmp_probe_rejects():
    ldap_bind = tlv(0x30, ber_int(1) + tlv(0x60, ber_int(3) + tlv(0x04, b"cn=admin") + tlv(0x80, b"pw")))
    good = snmp_msg(1, b"public", 0xA0, [("1.3.6.1.2.1.1.1.0", NULL)])
    for p in (ldap_bind, snmp_msg(2, b"public", 0xA0), snmp_msg(1, b"public", 0xA9), good + b"junk",
              good[:-3], b"\x30\x03\x02\x01\x01", b"\x30" + b"\xff" * 40):
        assert not snmp.probe(p, True), p


def test_snmp_oid_decoding():
    b = ber_oid("1.3.6.1.4.1.311.21.20")
    assert snmp.ber_oid(b, 2, len(b)) == "1.3.6.1.4.1.311.21.20"


# ===========================================================================
# Syslog
# ===========================================================================

def test_syslog_udp_record_and_names():
    ctx = make_ctx(orig=("127.0.0.1", 57067), resp=("127.0.0.1", 514))
    an = syslog.Analyzer(ctx)
    an.datagram(True, b"<133>Apr  5 12:56:51 robin: Hello, syslog!\x00", 1.0)
    an.datagram(True, b"<0>kernel panic", 1.1)
    an.datagram(True, b"<191>" + b"A" * 3000, 1.2)
    [r1, r2, r3] = records(ctx.sink, "syslog")
    assert list(r1) == list(syslog.FIELDS)
    assert (r1["facility"], r1["severity"], r1["proto"]) == ("LOCAL0", "NOTICE", "udp")
    assert r1["message"] == "Apr  5 12:56:51 robin: Hello, syslog!\\x00"
    assert (r2["facility"], r2["severity"]) == ("KERN", "EMERG")
    assert (r3["facility"], r3["severity"], len(r3["message"])) == ("LOCAL7", "DEBUG", syslog.MAX_MESSAGE)
    assert ctx.service == ["syslog"]


def test_syslog_without_pri_is_unspecified():
    ctx = make_ctx(orig=("10.0.0.1", 39887), resp=("10.0.0.2", 514))
    an = syslog.Analyzer(ctx)
    an.datagram(True, b"X", 1.0)
    [r] = records(ctx.sink, "syslog")
    assert (r["facility"], r["severity"], r["message"]) == ("UNSPECIFIED", "UNSPECIFIED", "X")


TCP_LINES = b"<34>1 2024-05-01T10:00:00Z wms01 app - - - first\n<165>Oct 11 22:14:15 host second\r\n"
def octet_counted(msg: bytes) -> bytes:
    return str(len(msg)).encode() + b" " + msg                             # RFC 6587 3.4.1


TCP_OCTETS = octet_counted(b"<34>1 2024-05-01T10:00:00Z wms01 app - - - one") + octet_counted(b"<13>two three four")


@pytest.mark.parametrize("stream,want", [
    (TCP_LINES, [("AUTH", "CRIT", "1 2024-05-01T10:00:00Z wms01 app - - - first"),
                 ("LOCAL4", "NOTICE", "Oct 11 22:14:15 host second")]),
    (TCP_OCTETS, [("AUTH", "CRIT", "1 2024-05-01T10:00:00Z wms01 app - - - one"),
                  ("USER", "NOTICE", "two three four")]),
])
def test_syslog_tcp_framing_split_everywhere(stream, want):
    assert syslog.probe(stream, True)
    for i in range(len(stream) + 1):
        ctx = make_ctx(orig=("10.0.0.1", 40000), resp=("10.0.0.2", 601), transport="tcp")
        an = syslog.Analyzer(ctx)
        an.data(True, stream[:i], 1.0)
        an.data(True, stream[i:], 1.1)
        an.done(2.0)
        got = [(r["facility"], r["severity"], r["message"]) for r in records(ctx.sink, "syslog")]
        assert got == want, i


def test_syslog_tcp_gap_resyncs_on_next_line():
    ctx = make_ctx(orig=("10.0.0.1", 40000), resp=("10.0.0.2", 514), transport="tcp")
    an = syslog.Analyzer(ctx)
    an.data(True, b"<13>one\n<13>tw", 1.0)
    an.gap(True, 50, 1.1)
    an.data(True, b"rest of a lost line\n<13>three\n", 1.2)
    an.done(2.0)
    assert [r["message"] for r in records(ctx.sink, "syslog")] == ["one", "three"]


def test_syslog_probe():
    for p in (b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", b"<165>1 2003-10-11T22:14:15.003Z host",
              b"120 <13>1 2024-01-01T00:00:00Z h a - - - message padding to the announced length....."):
        assert syslog.probe(p, True), p
    for p in (b"<192>too big", b"<012>leading zero", b"<34", b"<34>\x00\x01\x02\x03\x04\x05\x06\x07",
              b"<>x", b"GET / HTTP/1.1\r\n", b"<html><body>", b"<34>"):
        assert not syslog.probe(p, True), p


# ===========================================================================
# MQTT
# ===========================================================================

def mqtt_str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def mqtt_packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + mqtt.encode_varint(len(body)) + body


def mqtt_connect(client_id=b"scanner-12", name=b"MQTT", level=4, flags=0x02, user=None, password=None):
    if user is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = mqtt_str(name) + bytes([level, flags]) + struct.pack("!H", 60)   # name, level, flags, keep-alive
    if level == 5:
        body += b"\x00"                                                       # no properties
    body += mqtt_str(client_id)
    if user is not None:
        body += mqtt_str(user)
    if password is not None:
        body += mqtt_str(password)
    return mqtt_packet(0x10, body)


def mqtt_publish(topic: bytes, payload: bytes, qos=0, pid=1):
    body = mqtt_str(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return mqtt_packet(0x30 | (qos << 1), body)


def test_mqtt_probe_connect_variants():
    assert mqtt.probe(mqtt_connect(), True)
    assert mqtt.probe(mqtt_connect(name=b"MQIsdp", level=3), True)
    assert mqtt.probe(mqtt_connect(level=5, user=b"u", password=b"p"), True)
    assert mqtt.parse_connect(mqtt_connect(user=b"op"))["client_id"] == "scanner-12"
    for p in (mqtt_connect(level=9), mqtt_connect(name=b"MQTX"), mqtt_connect(flags=0x03),
              mqtt_connect()[:8], b"\x10\x00", b"GET / HTTP/1.1\r\n\r\n"):
        assert not mqtt.probe(p, True), p


def test_mqtt_midstream_probe():
    run = b"\xc0\x00" + mqtt_packet(0x40, b"\x00\x02") + mqtt_publish(b"Bus17Info", b"Update triggered", qos=1, pid=4)
    assert mqtt.probe(run, True)
    assert not mqtt.probe(mqtt_publish(b"a/b", b"x") + b"\x01", True)         # trailing junk
    assert not mqtt.probe(b"\xc0\x00\xc0\x00", True)                          # two PINGREQs: too little
    assert not mqtt.probe(mqtt_publish(b"bad\x00topic", b"x"), True)


def test_mqtt_analyzer_topics_and_split_delivery():
    c2s = mqtt_connect(user=b"op") + mqtt_publish(b"dc/dock3/temp", b"21.5") + \
        mqtt_publish(b"dc/dock3/temp", b"21.6", qos=1) + mqtt_packet(0xC0, b"")
    s2c = mqtt_packet(0x20, b"\x00\x00") + mqtt_packet(0x40, b"\x00\x01")
    for cut in range(len(c2s) + 1):
        ctx = make_ctx(orig=("10.0.0.7", 50000), resp=("10.0.0.2", 1883), transport="tcp")
        an = mqtt.Analyzer(ctx)
        an.data(True, c2s[:cut], 1.0)
        an.data(False, s2c, 1.05)
        an.data(True, c2s[cut:], 1.1)
        assert ctx.service == ["mqtt"], cut
        assert an.topics == {(True, "dc/dock3/temp"): 2} and an.connack_code == 0
        assert an.connect["username"] is True and an.connect["client_id"] == "scanner-12"
        assert an.wants_more()


def test_mqtt_large_packet_is_skipped_not_buffered():
    ctx = make_ctx(orig=("10.0.0.7", 50000), resp=("10.0.0.2", 1883), transport="tcp")
    an = mqtt.Analyzer(ctx)
    big = mqtt_publish(b"fw/image", b"\x00" * (mqtt.MAX_PACKET + 10))
    an.data(True, mqtt_connect(), 1.0)
    an.data(True, big[:5000], 1.1)
    assert len(an._buf[True]) == 0
    an.data(True, big[5000:] + mqtt_publish(b"after", b"1"), 1.2)
    assert not an._dead[True] and an.topics[(True, "after")] == 1     # parsing goes on after the skip
    an.data(True, mqtt_publish(b"x", b"\x00" * 100) * (mqtt.BYTE_BUDGET // 100), 1.3)
    assert an._dead[True]                # past the byte budget
    an2 = mqtt.Analyzer(make_ctx(transport="tcp"))
    an2.data(True, b"\x00\x00garbage", 1.0)
    assert an2._dead[True] and "mqtt.bad_packet" in an2.ctx.sink.weird_names()


# ===========================================================================
# SMB
# ===========================================================================

def nbss(payload: bytes, t: int = 0) -> bytes:
    return bytes([t]) + len(payload).to_bytes(3, "big") + payload             # type, 24-bit length


def smb2_header(command: int, response: bool) -> bytes:
    return (b"\xfeSMB" + struct.pack("<HHIHHII", 64, 0, 0, command, 1, 1 if response else 0, 0)
            + struct.pack("<QIIQ", 0, 0, 0, 0) + b"\x00" * 16)                 # msg id, pid, tid, session, sig


def smb2_negotiate_response(dialect: int) -> bytes:
    return smb2_header(0, True) + struct.pack("<HHH", 65, 1, dialect) + b"\x00" * 58


SMB1_NEGOTIATE = b"\xffSMB" + b"\x72" + b"\x00" * 27 + b"\x00\x0c\x00\x02NT LM 0.12\x00"


def nb_name(name: str) -> bytes:
    raw = name.ljust(16).encode()[:16]
    return b"\x20" + bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 0xF))) + b"\x00"


def test_smb_probe():
    assert smb2.probe(nbss(smb2_header(0, False) + b"\x24\x00" + b"\x00" * 34), True)
    assert smb2.probe(nbss(SMB1_NEGOTIATE), True)
    assert smb2.probe(nbss(b"\xfdSMB" + b"\x00" * 48), True)
    assert smb2.probe(nbss(nb_name("FILESRV") + nb_name("SCANNER01"), 0x81), True)
    for p in (nbss(b"\xfeSMX" + b"\x00" * 60), nbss(b"\xfeSMB" + b"\x00" * 10), b"\x00\x00\x00\x10" + b"A" * 16,
              nbss(nb_name("A") + b"\x20" + b"Z" * 32 + b"\x00", 0x81), b"\x81\x00\x00\x44" + b"\x00" * 68):
        assert not smb2.probe(p, True), p


def test_smb_analyzer_confirms_and_reads_dialect():
    req = nbss(smb2_header(0, False) + b"\x24\x00" + b"\x00" * 34)
    resp = nbss(smb2_negotiate_response(0x0311))
    for cut in (0, 1, 3, 4, 10, len(resp) - 1, len(resp)):
        ctx = make_ctx(orig=("10.0.0.7", 50000), resp=("10.0.0.2", 445), transport="tcp")
        an = smb2.Analyzer(ctx)
        an.data(True, nbss(b"", 0x85) + req, 1.0)               # a keep-alive first
        an.data(False, resp[:cut], 1.1)
        an.data(False, resp[cut:], 1.2)
        assert ctx.service == ["smb"] and an.dialect == 0x0311 and an.versions == {"SMB2"}, cut


def test_smb_session_request_then_smb1():
    ctx = make_ctx(orig=("10.0.0.7", 50000), resp=("10.0.0.2", 139), transport="tcp")
    an = smb2.Analyzer(ctx)
    an.data(True, nbss(nb_name("FILESRV") + nb_name("SCANNER01"), 0x81), 1.0)
    assert ctx.service == []
    an.data(False, nbss(b"", 0x82), 1.1)
    an.data(True, nbss(SMB1_NEGOTIATE), 1.2)
    assert ctx.service == ["smb"] and an.versions == {"SMB1"}


def test_smb_stops_after_max_messages():
    an = smb2.Analyzer(make_ctx(transport="tcp"))
    for _ in range(smb2.MAX_MESSAGES):
        an.data(True, nbss(smb2_header(5, False) + b"\x00" * 8), 1.0)
    assert not an.wants_more()


# ===========================================================================
# Robustness of every probe and analyzer
# ===========================================================================

@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
def test_probe_random_false_positives(mod):
    fp = 0
    for p in random_payloads(20240):
        for o in (True, False):
            if mod.probe(p, o):
                fp += 1
                break
    assert fp < 10, f"{mod.NAME}: {fp} false positives in 10000"


SAMPLES = {
    "ntp": [ntp_packet(), ntp_packet(mode=4)],
    "dhcp": [dhcp_msg(1, 1, 1, options=dhcp_option(12, b"h") + fqdn_option("a.b", True))],
    "snmp": [snmp_msg(1, b"public", 0xA2, [("1.3.6.1.2.1.1.1.0", tlv(0x04, b"descr"))])],
    "syslog": [b"<34>Oct 11 22:14:15 host su: failed\n" * 2, b"12 <13>abcdefgh"],
    "mqtt": [mqtt_connect(user=b"u") + mqtt_publish(b"t/x", b"1", qos=1)],
    "smb": [nbss(smb2_negotiate_response(0x0302)), nbss(SMB1_NEGOTIATE)],
}


@pytest.mark.parametrize("mod", [m for m in MODULES if m is not dns], ids=lambda m: m.NAME)
def test_analyzers_never_raise_on_random_and_mutated_input(mod):
    rng = random.Random(5)
    for transport in mod.TRANSPORTS:
        sink = FakeSink()
        an = mod.Analyzer(make_ctx(sink, transport=transport))
        feed = an.datagram if transport == "udp" else an.data
        for i, p in enumerate(random_payloads(11, 1500)):
            mod.probe(p, True)
            feed(bool(i & 1), p, float(i))
        an.done(2000.0)
        for i in range(3000):
            an = mod.Analyzer(make_ctx(sink, transport=transport)) if i % 100 == 0 else an
            feed = an.datagram if transport == "udp" else an.data
            b = bytearray(rng.choice(SAMPLES[mod.NAME]))
            for _ in range(rng.randrange(1, 5)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            if rng.random() < 0.3:
                del b[rng.randrange(len(b)):]
            mod.probe(bytes(b), True)
            feed(True, bytes(b), 3000.0 + i)
            if i % 100 == 99:
                an.done(4000.0 + i)
            if transport == "tcp" and rng.random() < 0.05:
                an.gap(True, 10, 3000.0 + i)


def test_samples_are_detected_by_their_own_probe_only():
    for mod in MODULES:
        for s in SAMPLES.get(mod.NAME, []):
            hits = [m.NAME for m in MODULES if m.probe(s, True)]
            assert hits == [mod.NAME], (mod.NAME, hits)


# ===========================================================================
# Corpus: Zeek logs
# ===========================================================================

def _zeek_rows(root, logname):
    import corpus as C
    for row in C.load_index(root):
        for p in row.get("oracle_corpus_paths") or []:
            if p.endswith("/" + logname):
                yield row, p


def _exec_redefs(row, baseline_path):
    """``-e 'redef X=v; ...'`` from the command lines of the btest that wrote this baseline."""
    out = {}
    for t in (row.get("extra") or {}).get("tests") or []:
        if f"/{t.get('name')}/" not in f"/{baseline_path}":
            continue
        for ex in t.get("execs") or []:
            for name, val in re.findall(r"redef\s+([\w:]+)\s*=\s*([\w.]+)", ex):
                out[name] = val
    return out


def _norm(rec, keys):
    out = []
    for k in keys:
        v = rec.get(k)
        if isinstance(v, float):
            v = round(v, 6)
        out.append(repr(v))
    return tuple(out)


NTP_KEYS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "version", "mode", "stratum", "poll", "precision",
            "root_delay", "root_disp", "ref_id", "ref_time", "org_time", "rec_time", "xmt_time", "num_exts")
DHCP_KEYS = ("client_addr", "server_addr", "mac", "host_name", "client_fqdn", "domain", "requested_addr",
             "assigned_addr", "lease_time", "client_message", "server_message", "msg_types")
SYSLOG_KEYS = ("proto", "facility", "severity", "message")


def _compare(base, mine, keys):
    from collections import Counter
    a = Counter(_norm(r, keys) for r in base)
    b = Counter(_norm(r, keys) for r in mine)
    return a == b, dict(a - b), dict(b - a)


@pytest.mark.corpus
def test_zeek_ntp_dhcp_syslog_logs(corpus, monkeypatch):
    import corpus as C
    results = []
    for mod, logname, keys in ((ntp, "ntp.log", NTP_KEYS), (dhcp, "dhcp.log", DHCP_KEYS),
                               (syslog, "syslog.log", SYSLOG_KEYS)):
        for row, p in _zeek_rows(corpus, logname):
            red = _exec_redefs(row, p)
            with monkeypatch.context() as mp:
                if "DHCP::max_uids_per_log_entry" in red:
                    mp.setattr(dhcp, "MAX_UIDS", int(red["DHCP::max_uids_per_log_entry"]))
                if "DHCP::max_msg_types_per_log_entry" in red:
                    mp.setattr(dhcp, "MAX_MSG_TYPES", int(red["DHCP::max_msg_types_per_log_entry"]))
                tests = (row.get("extra") or {}).get("tests") or []
                check = not any(t.get("ignore_csum") for t in tests)
                # Zeek attaches syslog by port; content detection needs a <PRI> (see syslog.probe)
                force = {514: syslog} if mod is syslog else None
                sink, _ = run_capture(Path(corpus) / row["dest"], [mod], check, force)
            base = C.read_zeek_log(Path(corpus) / p)
            mine = records(sink, mod.LOG)
            for r in mine:
                for k, v in r.items():
                    if isinstance(v, str):
                        r[k] = C._zeek_unescape(v)
            ok, only_base, only_mine = _compare(base, mine, keys)
            results.append((p, len(base), len(mine), "agree" if ok else f"DIFF -{only_base} +{only_mine}"))
    print("\nZeek ntp/dhcp/syslog agreement:")
    for r in results:
        print("  ", *r[:3], r[3][:3000])
    assert len(results) >= 8
    bad = [r for r in results if r[3] != "agree"]
    assert not bad, bad


# ===========================================================================
# Corpus: nDPI labels for every module of this file and DNS
# ===========================================================================

NDPI_MAP = {"DNS": "dns", "MDNS": "dns", "LLMNR": "dns", "NTP": "ntp", "DHCP": "dhcp", "SNMP": "snmp",
            "Syslog": "syslog", "MQTT": "mqtt", "SMBv1": "smb", "SMBv23": "smb"}
# nDPI names for traffic that really is one of ours (checked by hand in the corpus):
# AVASTSecureDNS is DNS (DNSCrypt certificate TXT queries) on 443; NetBIOS on TCP 139 is the
# session service that SMB runs over.  "Unknown" (nDPI found nothing) contradicts no one.
NDPI_COMPATIBLE = {("AVASTSecureDNS", "dns"), ("NetBIOS", "smb")}


@pytest.mark.corpus
def test_probes_against_ndpi_labels(corpus):
    import corpus as C
    tp, fp, fn = {}, [], []
    for row in C.load_index(corpus):
        if row["source"] != "ndpi":
            continue
        outs = [p for p in row.get("oracle_corpus_paths") or [] if p.endswith(".out")]
        if not outs:
            continue
        try:
            nd = C.parse_ndpi_out(Path(corpus) / outs[0])
        except ValueError:
            continue
        labels = {}
        for f in nd:
            proto = {6: "tcp", 17: "udp"}.get(f["ip_proto"])
            if f["tunnel"] or proto is None:
                continue
            key = (proto,) + tuple(sorted([(f["src"], f["sport"]), (f["dst"], f["dport"])]))
            want = NDPI_MAP.get(f["master"]) or NDPI_MAP.get(f["app"])
            if f["master"] == "NetBIOS" and proto == "udp" and 137 in (f["sport"], f["dport"]):
                want = "dns"                          # NetBIOS name service is parsed as DNS
            labels[key] = (want, f["master"])
        for key, fl in pcap_flows(Path(corpus) / row["dest"]).items():
            if key not in labels:
                continue
            pay = first_payloads(fl)
            got = next((m.NAME for m in MODULES
                        if fl["proto"] in m.TRANSPORTS and any(m.probe(p, o) for o, p in pay.items())), None)
            want, master = labels[key]
            if got and got == want:
                tp[got] = tp.get(got, 0) + 1
            elif got and master != "Unknown" and (master, got) not in NDPI_COMPATIBLE:
                fp.append((row["dest"], key, got, master))
            if want and got != want and pay:
                if not (want == "smb" and fl["proto"] == "udp"):       # NetBIOS datagrams (138): not ours
                    fn.append((row["dest"], key, want, got))
    print("\nnDPI agreement (flows):", tp, "false positives:", len(fp), "misses:", len(fn))
    assert sum(tp.values()) > 200
    assert not fp, fp
    assert not fn, fn


@pytest.mark.corpus
def test_corpus_captures_confirm_their_protocol(corpus):
    """Every flow a probe picks in captures tagged or named for these protocols is confirmed
    by its analyzer (the probe and the parser agree on real traffic)."""
    import corpus as C
    picked = confirmed = 0
    unconfirmed = []
    names = re.compile(r"(mqtt|smb|snmp|syslog|ntp|dhcp|netbios)", re.I)
    for row in C.load_index(corpus):
        tags = set(row.get("features") or [])
        if not (names.search(row["dest"]) or tags & {"smb", "mqtt", "snmp", "syslog", "ntp", "dhcp"}):
            continue
        if tags & {"gre", "vxlan", "geneve", "teredo", "gtp", "ip-in-ip/tunnel", "erspan"}:
            continue
        try:
            sink, chosen = run_capture(Path(corpus) / row["dest"], [m for m in MODULES if m is not dns])
        except Exception as e:          # unreadable capture (dpkt): not this test's business
            if "dpkt" in type(e).__module__ or isinstance(e, (ValueError, struct.error)):
                continue
            raise
        for key, (name, ctx) in chosen.items():
            picked += 1
            if name in ctx.service:
                confirmed += 1
            else:
                unconfirmed.append((row["dest"], key, name))
    print("\nflows picked by a probe:", picked, "confirmed:", confirmed, "not confirmed:", unconfirmed)
    assert picked > 20
    assert confirmed >= 0.95 * picked, unconfirmed


@pytest.mark.corpus
@pytest.mark.slow
def test_every_corpus_capture_through_all_modules(corpus):
    """All captures (dpkt-readable, untunnelled flows): every probe and analyzer, no exception."""
    import corpus as C
    files = 0
    per_module = {}
    for row in C.load_index(corpus):
        try:
            sink, chosen = run_capture(Path(corpus) / row["dest"])
        except Exception as e:
            if "dpkt" in type(e).__module__ or isinstance(e, (ValueError, EOFError, OSError, struct.error)):
                continue            # capture dpkt cannot read: the ingest tests cover those
            raise
        files += 1
        for name, _ in chosen.values():
            per_module[name] = per_module.get(name, 0) + 1
    print("\ncaptures:", files, "flows per module:", per_module)
    assert files > 1000 and set(per_module) == {m.NAME for m in MODULES}


def _inner_checks(p: bytes):
    """The probes' inner functions, which (unlike ``probe``) do not swallow exceptions."""
    dns.probe_message(p, True)
    dns.probe_message(p, False)
    m = dns.parse_message(p)
    assert m is None or not any(w == "dns.malformed" for w, _ in m.weirds), m.weirds
    ntp._plausible(p)
    dhcp.parse(p)
    snmp.parse(p)
    syslog._plausible_message(p)
    syslog._octet_count(p)
    mqtt._probe(p, True)
    mqtt._probe(p, False)
    smb2._probe(p, True)


def test_inner_probe_functions_raise_nothing():
    """Random payloads, and valid messages of every module cut anywhere and followed by random
    bytes (to reach the deeper parsing code)."""
    rng = random.Random(77)
    for p in random_payloads(31, 4000):
        _inner_checks(p)
    from test_proto_dns import QUERY, RESPONSE
    valid = [s for v in SAMPLES.values() for s in v] + [QUERY, RESPONSE]
    for _ in range(6000):
        v = rng.choice(valid)
        cut = rng.randrange(len(v) + 1)
        _inner_checks(v[:cut] + rng.randbytes(rng.randrange(0, 40)))
