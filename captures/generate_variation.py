#!/usr/bin/env python3
"""Randomised variants of the policy scenarios, one capture per seed: does detection hold on traffic
it was not tuned on?

Reuses the machinery of ``captures/generate.py`` and ``captures/generate_policy.py`` (hosts, the TCP
simulation with its loss and reordering, TLS records, SSH packets, ICMP, NTP) and draws everything
else from the seed, within realistic ranges:

planted channels (one local host each, so that each is one story)
    ``beacon``      TLS check-ins to a made-up telemetry name: 40-90 connections, a period of 30 s to
                    5 min, jitter 0-10 %, 0-10 % of check-ins lost, request sizes varying by TLS record
                    padding (up to 64 bytes or 8 %), responses of 1-5 KB
    ``drip``        small uploads to one organisation: 36-70 HTTP POSTs of JSON shipment records 45-100 s
                    apart (45-110 minutes; the issue's slow drip: about 50 over an hour), or TLS uploads
                    of 2-9 KB (the smaller ones receive more than they send: the server's certificates)
    ``tunnel``      an SSH tunnel of 70-180 minutes whose keepalives are 6-12 minutes apart, so the flow
                    table's 5-minute inactivity timeout splits it into many flow records
    ``dns``         DNS tunnelling through the site resolver: 30-150 queries of base32 labels under one
                    made-up domain
    ``icmp``        an ICMP echo tunnel: 20-80 requests of 150-900 bytes of base64, replies with other data
    ``upload``      one encrypted upload of 0.3-1 MB to an Alibaba Cloud OSS name

benign mix (nothing may alert)
    browsing to CDN names at Poisson times, Windows and Ubuntu telemetry from office PCs (small regular
    uploads: the site excuses them with an exclusion of the shipped os-telemetry group), chronyd NTP
    polls every 64 s, an allow-listed carrier API polled every 5-15 minutes, Slack's websocket for an
    hour or more (category messaging), an internal AMQP connection, an apt download, monitoring pings.

TCP data segments are lost after the tap (retransmitted after an RTO) or reordered before it at random.
``generate(seed, out_dir)`` writes ``variation-<seed>.pcap`` and ``variation-<seed>.json`` (the channels'
and the benign conversations' 5-tuples, the parameters drawn) and ``site-variation.yaml``; the harness
(``tests/variation.py``) scans them and checks the incidents.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as g  # noqa: E402
import generate_policy as gp  # noqa: E402
from generate import MS, SEC, Capture, Rng, TcpFlow, _host, det_bytes  # noqa: E402
from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: E402

MIN = 60 * SEC
HOUR = 60 * MIN

SITE_YAML = """\
site: dc-variation
local_nets: [172.20.0.0/16]
roles: {172.20.1.0/24: wms, 172.20.10.0/24: office, 172.20.0.0/24: infra}
allowed_destinations: [ups.com, api.partner.example]
exclusions:
  - source: {role: office}
    destination: {group: os-telemetry}
    expires: 2099-12-31
    owner: it-ops@example.com
    reason: OS telemetry of the office PCs (diagnostic data level required)
"""

WORDS = ["nimbus", "relay", "vector", "quartz", "ember", "harbor", "lumen", "orbit", "cobalt", "sable", "tundra",
         "zephyr", "atlas", "brisk", "cinder", "delta", "fable", "garnet", "helix", "ivory", "jade", "kelvin"]
CDN_NAMES = ["www.gstatic.com", "fonts.googleapis.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net",
             "github.githubassets.com", "ajax.aspnetcdn.com", "www.google.com", "fonts.gstatic.com"]


class Variant:
    """One seed's capture, its channels (name -> conversations) and its benign conversations."""

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = Rng(f"variation:{seed}")
        self.cap = Capture(f"variation-{seed}.pcap", f"v{seed}", f"randomised policy scenarios, seed {seed}")
        self.channels: dict = {}
        self.benign: list = []
        self.params: dict = {}
        self.hosts_used: set = set()
        self.remote_used: set = set()
        self.resolver = g.H["resolver"]
        self.t0 = 30 * HOUR + self.rng.randint(0, 12 * HOUR // SEC) * SEC

    # -- draws -------------------------------------------------------------------------------------
    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.rng._r.random()

    def word(self) -> str:
        return self.rng.choice(WORDS)

    def local(self, subnet: int, role: str) -> g.Host:
        while True:
            ip = f"172.20.{subnet}.{self.rng.randint(20, 230)}"
            if ip not in self.hosts_used:
                self.hosts_used.add(ip)
                return _host(f"host-{ip.replace('.', '-')}", ip, role)

    def remote(self, name: str, prefix: str = "203.0.113") -> g.Host:
        while True:
            ip = f"{prefix}.{self.rng.randint(2, 250)}"
            if ip not in self.remote_used:
                self.remote_used.add(ip)
                return _host(name, ip, "external", ttl=self.rng.randint(40, 60))

    def rtt(self) -> int:
        return self.rng.randint(8, 190) * MS

    # -- the network's imperfections -----------------------------------------------------------------
    def impair(self, size: int) -> dict:
        """``TcpFlow.send`` options for a write of ``size`` bytes: a chance of its last segment lost after
        the tap (resent after an RTO), or of two of its segments reordered before it."""
        n_seg = -(-size // 1460)
        r = self.rng._r.random()
        if r < 0.04:
            return {"lose_last": True}
        if r < 0.08 and n_seg >= 2:
            return {"swap": self.rng.randint(0, n_seg - 2)}
        return {}

    def send(self, flow: TcpFlow, from_client: bool, data: bytes, think: int):
        return flow.send(from_client, data, think=think, **self.impair(len(data)))

    def tls_flow(self, client, server, name: str, t: int, rtt: int, label: str, description: str,
                 port: int = 443) -> TcpFlow:
        flow = TcpFlow(self.cap, client, server, port, t=t, srv_rtt=rtt, gap=110, app="tls", server_name=name,
                       description=description)
        return gp.tls_open(flow, label, name, cert_size=self.rng.randint(2400, 4800))

    def tls_write(self, flow: TcpFlow, from_client: bool, size: int, think: int):
        return gp.tls_write(flow, from_client, size, think, **self.impair(size + 60))

    def lookup(self, client: g.Host, name: str, addr: str, t: int) -> int:
        """A stub resolver query through the site resolver (answered from its cache)."""
        txid = self.rng.randint(1, 0xFFFF)
        q = DNS(id=txid, rd=1, qd=[DNSQR(qname=name + ".", qtype="A")])
        a = DNS(id=txid, qr=1, rd=1, ra=1, qd=[DNSQR(qname=name + ".", qtype="A")],
                an=[DNSRR(rrname=name + ".", type="A", ttl=300, rdata=addr)])
        delay = self.rng.randint(200, 900)
        g.udp_exchange(self.cap, client, self.resolver, self.cap.ports.take(client), 53, [(t, q, delay, a)],
                       app="dns", description=f"DNS A {name}")
        return t + delay

    # -- planted channels ---------------------------------------------------------------------------
    def beacon(self):
        src = self.local(10, "office")
        name = f"telemetry.{self.word()}-cloud.example.com"
        dst = self.remote(name)
        n, period = self.rng.randint(40, 90), self.rng.randint(30, 300)
        jitter, loss = self.uniform(0, 0.10), self.uniform(0, 0.10)
        base = self.rng.randint(300, 1500)
        pad = max(16, min(64, int(base * 0.08)))
        convs, t = [], self.t0 + self.rng.randint(0, 600) * SEC
        t = self.lookup(src, name, dst.ip, t)
        for i in range(n):
            if i == 0 or self.rng._r.random() >= loss:
                flow = self.tls_flow(src, dst, name, t + 150, self.rtt(), f"var{self.seed}:beacon:{i}",
                                     f"beacon check-in {i + 1}")
                self.tls_write(flow, True, base + self.rng.randint(0, pad), think=300)
                self.tls_write(flow, False, self.rng.randint(1000, 5000), think=self.rng.randint(20, 90) * MS)
                gp.tls_close(flow)
                convs.append(flow.conv)
            t += int(period * SEC * (1 + self.uniform(-jitter, jitter)))
        self.channels["beacon"] = convs
        self.params["beacon"] = {"connections": len(convs), "period_s": period, "jitter": round(jitter, 3),
                                 "loss": round(loss, 3), "bytes": base, "padding": pad}

    def drip(self):
        src = self.local(1, "wms")
        name = f"api.{self.word()}-{self.word()}.example.net"
        dst = self.remote(name, "198.51.100")
        n = self.rng.randint(36, 70)
        kind = self.rng.choice(["http-json", "tls"])
        convs, t = [], self.t0 + self.rng.randint(0, 900) * SEC
        t = self.lookup(src, name, dst.ip, t)
        gap_lo, gap_hi = 45, 100
        for i in range(n):
            if kind == "http-json":
                flow = TcpFlow(self.cap, src, dst, 80, t=t, srv_rtt=self.rtt(), gap=60, app="http",
                               description=f"JSON POST {i + 1} of shipment records")
                flow.connect()
                recs = [g.shipment_record(self.rng, 3 * i + k, carrier=self.rng.choice(["UPS", "DHL"]))
                        for k in range(self.rng.randint(1, 4))]
                body = json.dumps({"batch": i, "shipments": recs}).encode()
                self.send(flow, True, gc_http_post(name, body), think=150)
                flow.send(False, g.http_response("200 OK", [("Content-Type", "application/json")],
                                                 b'{"ok":true}', g.http_date(flow.t)),
                          think=self.rng.randint(20, 120) * MS)
                flow.close(by_client=True, think=self.rng.randint(5, 80) * MS)
            else:
                flow = self.tls_flow(src, dst, name, t, self.rtt(), f"var{self.seed}:drip:{i}", f"upload {i + 1}")
                self.tls_write(flow, True, self.rng.randint(2000, 9000), think=300)
                self.tls_write(flow, False, self.rng.randint(40, 300), think=self.rng.randint(30, 200) * MS)
                gp.tls_close(flow)
            convs.append(flow.conv)
            t += self.rng.randint(gap_lo, gap_hi) * SEC
        self.channels["drip"] = convs
        self.params["drip"] = {"uploads": n, "kind": kind, "gap_s": [gap_lo, gap_hi]}

    def tunnel(self):
        src = self.local(1, "wms")
        dst = self.remote(dst_name := f"{self.word()}-{self.rng.randint(2, 99)}.relay.example", "192.0.2")
        port = self.rng.choice([22, 443, 2222])
        lab = f"var{self.seed}:ssh"
        t = self.t0 + self.rng.randint(0, 1800) * SEC
        flow = TcpFlow(self.cap, src, dst, port, t=t, srv_rtt=self.rtt(), gap=110, app="ssh",
                       description=f"SSH tunnel to {dst_name}:{port}, keepalives far apart")
        flow.connect()
        flow.send(False, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", think=2 * MS)
        flow.send(True, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n", think=400)
        flow.send(True, gp.ssh_kexinit(f"{lab}:c", server=False), think=100)
        flow.send(False, gp.ssh_kexinit(f"{lab}:s", server=True), think=300)
        flow.send(True, gp.ssh_enc(f"{lab}:auth", 470), think=900)
        flow.send(False, gp.ssh_enc(f"{lab}:auth_ok", 1), think=4 * MS)
        keep = self.rng.randint(6, 12) * MIN
        end = flow.t + self.rng.randint(70, 180) * MIN
        k = 0
        while flow.t + keep < end:
            k += 1
            flow.send(True, gp.ssh_enc(f"{lab}:ka{k}", 27), think=keep + self.rng.randint(0, 20) * SEC)
            flow.send(False, gp.ssh_enc(f"{lab}:kr{k}", 1), think=300)
            if self.rng.randint(0, 3) == 0:
                for j in range(self.rng.randint(2, 6)):
                    self.send(flow, True, gp.ssh_enc(f"{lab}:d{k}:{j}", self.rng.randint(60, 3000)),
                              think=self.rng.randint(100, 3000) * MS)
                    flow.send(False, gp.ssh_enc(f"{lab}:a{k}:{j}", self.rng.randint(20, 200)), think=300)
        flow.close(by_client=True, think=self.rng.randint(1, 30) * SEC)
        self.channels["tunnel"] = [flow.conv]
        self.params["tunnel"] = {"port": port, "keepalive_s": keep // SEC, "keepalives": k}

    def dns(self):
        src = self.local(1, "wms")
        domain = f"{self.word()}{self.rng.randint(10, 99)}.example.org"
        n = self.rng.randint(30, 150)
        convs, t = [], self.t0 + self.rng.randint(0, 3600) * SEC
        for i in range(n):
            chunk = det_bytes(f"var{self.seed}:dns:{i}", self.rng.randint(18, 36))
            label = base64.b32encode(chunk).decode().rstrip("=").lower()
            name = f"{label}.{i:04x}.t.{domain}"
            txid = self.rng.randint(1, 0xFFFF)
            q = DNS(id=txid, rd=1, qd=[DNSQR(qname=name + ".", qtype="TXT")])
            a = DNS(id=txid, qr=1, rd=1, ra=1, qd=[DNSQR(qname=name + ".", qtype="TXT")],
                    an=[DNSRR(rrname=name + ".", type="TXT", ttl=0, rdata=f"ok{i}")])
            convs.append(g.udp_exchange(self.cap, src, self.resolver, self.cap.ports.take(src), 53,
                                        [(t, q, self.rng.randint(15, 60) * MS, a)], app="dns",
                                        description=f"DNS tunnel query {i + 1}"))
            t += self.rng.randint(200, 20_000) * MS
        self.channels["dns"] = convs
        self.params["dns"] = {"queries": n, "domain": domain}

    def icmp(self):
        src = self.local(1, "wms")
        dst = self.remote(f"icmp-relay-{self.seed}", "203.0.113")
        n = self.rng.randint(20, 80)
        pings, t = [], self.t0 + self.rng.randint(0, 3600) * SEC
        for i in range(n):
            up = base64.b64encode(det_bytes(f"var{self.seed}:icmp:up{i}", self.rng.randint(110, 670)))
            down = base64.b64encode(det_bytes(f"var{self.seed}:icmp:dn{i}", self.rng.randint(30, 400)))
            pings.append((t, up, self.rtt(), down))
            t += self.rng.randint(500, 8000) * MS
        conv = gp.icmp_echo(self.cap, src, dst, self.rng.randint(1, 0xFFFF), pings, "ICMP tunnel")
        self.channels["icmp"] = [conv]
        self.params["icmp"] = {"requests": n}

    def upload(self):
        src = self.local(1, "wms")
        name = f"dc-{self.word()}-{self.rng.randint(100, 999)}.oss-cn-hongkong.aliyuncs.com"
        dst = self.remote(name, "47.246.140")
        t = self.lookup(src, name, dst.ip, self.t0 + self.rng.randint(0, 3600) * SEC)
        flow = self.tls_flow(src, dst, name, t + 200, self.rtt(), f"var{self.seed}:upload", "bulk upload to OSS")
        size = self.rng.randint(300_000, 1_000_000)
        sent = 0
        while sent < size:
            chunk = min(16_384, size - sent)
            self.tls_write(flow, True, chunk, think=2 * MS)
            sent += chunk
        self.tls_write(flow, False, self.rng.randint(200, 900), think=self.rng.randint(50, 300) * MS)
        gp.tls_close(flow)
        self.channels["upload"] = [flow.conv]
        self.params["upload"] = {"bytes": size}

    # -- benign mix ------------------------------------------------------------------------------------
    def browsing(self):
        pc = self.local(10, "office")
        t = self.t0
        end = self.t0 + self.rng.randint(60, 150) * MIN
        k = 0
        while t < end:
            name = self.rng.choice(CDN_NAMES)
            k += 1
            flow = self.tls_flow(pc, _host(name, cdn_ip(name), "external", ttl=57), name, t, self.rtt() // 4 + MS,
                                 f"var{self.seed}:web:{k}", f"HTTPS to {name}")
            for _ in range(self.rng.randint(1, 3)):
                self.tls_write(flow, True, self.rng.randint(200, 1200), think=self.rng.randint(1, 800) * MS)
                self.tls_write(flow, False, self.rng.randint(900, 24_000), think=self.rng.randint(10, 90) * MS)
            gp.tls_close(flow, think=self.rng.randint(1, 20) * SEC)
            self.benign.append(flow.conv)
            t = flow.t + int(self.rng._r.expovariate(1 / 150) * SEC) + SEC

    def telemetry(self):
        for who, name, ip in (("windows", "v10.events.data.microsoft.com", "20.42.65.92"),
                              ("ubuntu", "daisy.ubuntu.com", "185.125.190.48")):
            pc = self.local(10, "office")
            server = _host(name, ip, "external", ttl=112)
            period = self.rng.randint(3, 15) * MIN
            t = self.t0 + self.rng.randint(0, 300) * SEC
            for i in range(self.rng.randint(12, 30)):
                flow = self.tls_flow(pc, server, name, t, self.rtt() // 2 + MS, f"var{self.seed}:{who}:{i}",
                                     f"{who} telemetry upload {i + 1}")
                self.tls_write(flow, True, self.rng.randint(1500, 6000), think=300)
                self.tls_write(flow, False, self.rng.randint(100, 400), think=self.rng.randint(30, 120) * MS)
                gp.tls_close(flow)
                self.benign.append(flow.conv)
                t += int(period * (1 + self.uniform(-0.05, 0.05)))

    def ntp(self):
        srv = self.local(1, "wms")
        server = _host("time-a.nist.gov", "129.6.15.28", "external", ttl=52)
        for k in range(self.rng.randint(40, 90)):
            ts = self.t0 + k * 64 * SEC + self.rng.randint(0, 40 * MS)
            self.benign.append(gp.ntp_poll(self.cap, srv, server, ts, self.rtt(), 1, b"NIST",
                                           f"chronyd poll {k + 1}"))

    def carrier(self):
        wms = self.local(1, "wms")
        server = _host("api.ups.com", "153.2.224.29", "external", ttl=51)
        period = self.rng.randint(5, 15) * MIN
        for i in range(self.rng.randint(8, 16)):
            t = self.t0 + i * period + self.rng.randint(-2, 2) * SEC
            flow = self.tls_flow(wms, server, "api.ups.com", t, self.rtt(), f"var{self.seed}:ups:{i}",
                                 f"UPS tracking poll {i + 1}")
            self.tls_write(flow, True, 600 + self.rng.randint(0, 30), think=300)
            self.tls_write(flow, False, 900 + self.rng.randint(0, 60), think=self.rng.randint(90, 160) * MS)
            gp.tls_close(flow)
            self.benign.append(flow.conv)

    def long_benign(self):
        pc = self.local(10, "office")
        slack = _host("wss-primary.slack.com", "18.66.2.10", "external", ttl=241)
        flow = self.tls_flow(pc, slack, "wss-primary.slack.com", self.t0 + MIN, self.rtt(), f"var{self.seed}:slack",
                             "Slack websocket")
        end = flow.t + self.rng.randint(60, 150) * MIN
        while flow.t + 70 * SEC < end:
            self.tls_write(flow, True, 31 + self.rng.randint(0, 8), think=self.rng.randint(50, 70) * SEC)
            self.tls_write(flow, False, 44 + self.rng.randint(0, 8), think=self.rng.randint(15, 40) * MS)
        gp.tls_close(flow)
        self.benign.append(flow.conv)
        wms, mq = self.local(1, "wms"), _host("mq-01", "172.20.3.16", None)
        flow = self.tls_flow(wms, mq, "mq-01.dc.corp", self.t0 + 2 * MIN, 300, f"var{self.seed}:amqp",
                             "AMQPS internal", port=5671)
        end = flow.t + self.rng.randint(60, 150) * MIN
        while flow.t + 70 * SEC < end:
            self.tls_write(flow, True, 25, think=60 * SEC)
            self.tls_write(flow, False, 25, think=self.rng.randint(1, 900) * MS)
        gp.tls_close(flow)
        self.benign.append(flow.conv)

    def apt(self):
        wms = self.local(1, "wms")
        server = _host("archive.ubuntu.com", "91.189.91.83", "external", ttl=50)
        flow = TcpFlow(self.cap, wms, server, 80, t=self.t0 + self.rng.randint(0, 3600) * SEC, srv_rtt=self.rtt(),
                       gap=60, app="http", description="apt download")
        flow.connect()
        flow.send(True, gc_http_get("archive.ubuntu.com", "/ubuntu/pool/main/z/zlib/zlib1g_1.3_amd64.deb"),
                  think=150)
        body = det_bytes(f"var{self.seed}:deb", self.rng.randint(20_000, 90_000))
        self.send(flow, False, g.http_response("200 OK", [("Content-Type", "application/vnd.debian.binary-package")],
                                               body, g.http_date(flow.t)), think=20 * MS)
        flow.close(by_client=True, think=90 * MS)
        self.benign.append(flow.conv)

    def pings(self):
        mon = self.local(0, "infra")
        gdns = _host("dns.google", "8.8.8.8", "external", ttl=118)
        pings = []
        for b in range(self.rng.randint(5, 20)):
            for k in range(3):
                ts = self.t0 + b * 30 * SEC + k * SEC
                data = gp.linux_ping_payload(ts)
                pings.append((ts, data, self.rtt() // 8 + 300, data))
        self.benign.append(gp.icmp_echo(self.cap, mon, gdns, self.rng.randint(1, 0xFFFF), pings, "monitoring"))

    def build(self) -> "Variant":
        for step in (self.beacon, self.drip, self.tunnel, self.dns, self.icmp, self.upload, self.browsing,
                     self.telemetry, self.ntp, self.carrier, self.long_benign, self.apt, self.pings):
            step()
        return self


def cdn_ip(name: str) -> str:
    """A fixed address per CDN name (Google, Cloudflare, Fastly, Microsoft ranges)."""
    table = {"www.gstatic.com": "142.250.74.99", "fonts.googleapis.com": "142.250.74.106",
             "cdnjs.cloudflare.com": "104.17.24.14", "cdn.jsdelivr.net": "151.101.1.229",
             "github.githubassets.com": "185.199.108.154", "ajax.aspnetcdn.com": "152.199.19.160",
             "www.google.com": "142.250.74.100", "fonts.gstatic.com": "142.250.74.67"}
    return table[name]


def gc_http_post(host: str, body: bytes) -> bytes:
    return g.http_request("POST", "/v1/manifests", host, [("Content-Type", "application/json"),
                                                          ("User-Agent", "dc-sync/2.3")], body)


def gc_http_get(host: str, path: str) -> bytes:
    return g.http_request("GET", path, host, [("User-Agent", "Debian APT-HTTP/1.3 (2.7.14)")])


def _key(c) -> list:
    return [c.proto, c.orig.ip, c.orig_p, c.resp.ip, c.resp_p]


def generate(seed: int, out_dir: Path) -> dict:
    """Build the variant of ``seed`` into ``out_dir``; returns its manifest (also written as JSON)."""
    v = Variant(seed).build()
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = v.cap._ordered_frames()
    from scapy.utils import PcapWriter
    pcap = out_dir / v.cap.name
    w = PcapWriter(str(pcap), linktype=g.DLT_EN10MB, endianness="<", sync=False)
    try:
        w.write_header(None)
        for t_us, _n, pkt in frames:
            sec, usec = divmod(g.BASE_TS * SEC + t_us, SEC)
            w.write_packet(pkt.original, sec=sec, usec=usec)
    finally:
        w.close()
    (out_dir / "site-variation.yaml").write_text(SITE_YAML)
    manifest = {"seed": seed, "capture": v.cap.name, "packets": len(frames), "params": v.params,
                "channels": {k: [_key(c) for c in cs] for k, cs in v.channels.items()},
                "benign": [_key(c) for c in v.benign]}
    (out_dir / f"variation-{seed}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("seeds", type=int, nargs="+")
    ap.add_argument("--out", type=Path, default=Path("variation-out"))
    args = ap.parse_args(argv)
    for s in args.seeds:
        m = generate(s, args.out)
        print(f"seed {s}: {m['packets']} packets, {json.dumps(m['params'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
