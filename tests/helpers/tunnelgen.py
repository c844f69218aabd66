"""Generated captures of tunnels and of the traffic they must not be confused with.

Deterministic (fixed seeds, fixed base time), built with scapy; addresses follow the bundled
site file (``captures/site-dc-north.yaml``: 172.20.0.0/16 is local).  Every builder returns the
packets and what was planted, so tests assert exact counts.

* ``dns_tunnel``: a client sends a CSV of customer records in query names to the site's resolver
  (172.20.0.53), which forwards every query to an outside resolver from a few source ports (the
  outbound leg, several connections); ``base32`` (one 56-character label, a hex counter and a tag
  label before the domain), ``hex`` (a decimal counter first, two 60-character labels) or
  ``dnscat`` (hex of a 9-byte binary header with a counter, then the data; no counter label).
* ``icmp_tunnel``: echo requests carrying slices of a CSV (``base64``: each slice encoded on its
  own; ``raw``: the bytes themselves; ``prefixed``: ``0007|<base64>|end``), records cut across
  pings; the replies mirror them.
* negatives: CDN names with long hex labels through the same resolver, Linux and Windows pings.
"""
from __future__ import annotations

import base64
import json
import random
import re
import struct

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

T0 = 1_764_100_000.0
CLIENT, RESOLVER, UPSTREAM = "172.20.1.30", "172.20.0.53", "8.210.10.53"     # upstream: HK, not allow-listed
PINGER, RELAY = "172.20.1.31", "8.210.10.99"
FIRST = ["Anna", "Jonas", "Maria", "Lukas", "Sofia", "Felix", "Emma", "Paul", "Lena", "Noah", "Mia", "Elias"]
LAST = ["Schmidt", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Koch", "Richter", "Klein", "Wolf",
        "Neumann"]


def customers_csv(n: int, start: int = 0) -> bytes:
    """A header and ``n`` customer rows (distinct e-mail addresses, person names)."""
    rows = ["customer_id,name,email,city"]
    for i in range(start, start + n):
        f, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        rows.append(f"C{10000 + i},{f} {last},{f.lower()}.{last.lower()}{i}@mail-example.de,Hamburg")
    return ("\n".join(rows) + "\n").encode()


def _udp(src, dst, sport, dport, payload, ts):
    p = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / IP(src=src, dst=dst) / \
        UDP(sport=sport, dport=dport) / payload
    p.time = ts
    return p


def _names(data: bytes, encoding: str, labels: int = 1) -> list[str]:
    """Query names carrying ``data``: base32 (``labels`` labels of 35 bytes each, a hex counter, a tag
    label) or hex (a decimal counter first, then two labels of 30 bytes each)."""
    if encoding == "base32":
        step = 35 * labels
        out = []
        for k in range(0, len(data), step):
            part = data[k:k + step]
            enc = ".".join(base64.b32encode(part[i:i + 35]).decode().rstrip("=").lower()
                           for i in range(0, len(part), 35))
            out.append(f"{enc}.{k // step:04x}.up.sync-cdn-edge.net")
        return out
    if encoding == "hex":
        step = 60
        out = []
        for k in range(0, len(data), step):
            h = data[k:k + step].hex()
            labels = ".".join(h[i:i + 60] for i in range(0, len(h), 60))
            out.append(f"{k // step}.{labels}.dl.hexsync.org")
        return out
    if encoding == "dnscat":
        # hex of a 9-byte binary header (packet id, type, session id, seq, ack) + 50 data bytes, in two labels
        step = 50
        out = []
        for k in range(0, len(data), step):
            n = k // step
            header = struct.pack("!HBHHH", (n * 7919) & 0xFFFF, 1, 0x5EED, n, 0)
            h = (header + data[k:k + step]).hex()
            out.append(".".join(h[i:i + 60] for i in range(0, len(h), 60)) + ".relay.dnscat-cdn.com")
        return out
    raise ValueError(encoding)


def dns_tunnel(encoding: str, n_records: int = 150, cdn_negatives: int = 40, seed: int = 1, labels: int = 1,
               spacing: float = 0.2, port_per_query: bool = False):
    """Packets of a DNS tunnel through the site's forwarding resolver, and the planted counts.
    ``spacing``: seconds between queries; ``port_per_query``: the resolver forwards each query from a
    port of its own (one outbound connection per query; spaced out, they end during the capture)."""
    rng = random.Random(seed)
    data = customers_csv(n_records)
    pkts = []
    t = T0
    ports = [40000 + 11 * k for k in range(6)]
    names = [(n, True) for n in _names(data, encoding, labels)]
    cdn = [(f"{rng.getrandbits(128):032x}.{rng.getrandbits(32):08x}.cloudfront.net", False)
           for _ in range(cdn_negatives)]
    # the CDN look-ups are interleaved with the tunnel's queries
    mixed = []
    for k, item in enumerate(names):
        mixed.append(item)
        if k % 3 == 0 and cdn:
            mixed.append(cdn.pop())
    mixed.extend(cdn)
    for k, (qname, tunnel) in enumerate(mixed):
        tid = rng.randint(1, 0xFFFF)
        cport = 50000 + k % 500
        q = DNS(id=tid, rd=1, qd=DNSQR(qname=qname, qtype="TXT" if tunnel else "A"))
        pkts.append(_udp(CLIENT, RESOLVER, cport, 53, q, t))
        fport = 20000 + k if port_per_query else ports[k % len(ports)]
        fid = rng.randint(1, 0xFFFF)
        fq = DNS(id=fid, rd=0, qd=DNSQR(qname=qname, qtype="TXT" if tunnel else "A"))
        pkts.append(_udp(RESOLVER, UPSTREAM, fport, 53, fq, t + 0.001))
        if tunnel:
            ans = DNS(id=fid, qr=1, aa=1, rcode=0, qd=DNSQR(qname=qname, qtype="TXT"),
                      an=DNSRR(rrname=qname, type="TXT", ttl=0, rdata=b"ok"))
        else:
            ans = DNS(id=fid, qr=1, rcode=0, qd=DNSQR(qname=qname, qtype="A"),
                      an=DNSRR(rrname=qname, type="A", ttl=60, rdata="13.32.1.%d" % (k % 250 + 1)))
        pkts.append(_udp(UPSTREAM, RESOLVER, 53, fport, ans, t + 0.030))
        back = DNS(id=tid, qr=1, rd=1, ra=1, rcode=0, qd=q.qd, an=ans.an)
        pkts.append(_udp(RESOLVER, CLIENT, 53, cport, back, t + 0.031))
        t += spacing + rng.random() * spacing / 2
    planted = {"records": {"customer": n_records, "shipment": 0}, "email": n_records,
               "queries": len(names), "upstream": UPSTREAM}
    return pkts, planted


def _echo(src, dst, itype, ident, seq, payload, ts):
    p = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / IP(src=src, dst=dst) / \
        ICMP(type=itype, id=ident, seq=seq) / Raw(payload)
    p.time = ts
    return p


def icmp_tunnel(encoding: str, n_records: int = 100, slice_bytes: int = 90, seed: int = 2, pause_every: int = 0):
    """Packets of an ICMP echo tunnel (records cut across pings) beside ordinary pings;
    ``pause_every``: a 90 s pause after that many pings (the ICMP connection ends, a new one starts)."""
    rng = random.Random(seed)
    data = customers_csv(n_records, start=500)
    if encoding == "jsonl":          # one JSON record per ping: every payload starts alike
        rows = data.decode().splitlines()[1:]
        data = "".join(json.dumps({"customer": r.split(",")[0], "name": r.split(",")[1],
                                   "email": r.split(",")[2]}) + "\n" for r in rows).encode()
    pkts = []
    t = T0
    cuts = [m.end() for m in re.finditer(rb"\n", data)] if encoding == "jsonl" else \
        list(range(slice_bytes, len(data), slice_bytes)) + [len(data)]
    for seq, (k, end) in enumerate(zip([0] + cuts[:-1], cuts), 1):
        chunk = data[k:end]
        if encoding == "base64":
            payload = base64.b64encode(chunk)
        elif encoding == "prefixed":
            payload = b"%04d|" % seq + base64.b64encode(chunk) + b"|end"       # a text frame around base64
        else:
            payload = chunk
        pkts.append(_echo(PINGER, RELAY, 8, 0x3A21, seq, payload, t))
        pkts.append(_echo(RELAY, PINGER, 0, 0x3A21, seq, payload, t + 0.04))
        t += 0.5 + rng.random() * 0.2
        if pause_every and seq % pause_every == 0:
            t += 90.0
    pkts.extend(ordinary_pings(t))
    pkts.sort(key=lambda p: p.time)
    return pkts, {"records": {"customer": n_records, "shipment": 0}, "email": n_records, "relay": RELAY}


def ordinary_pings(t: float) -> list:
    """Linux (timestamp + fixed pattern) and Windows (alphabet) pings to outside hosts."""
    pkts = []
    pattern = bytes(range(0x10, 0x38))
    for seq in range(1, 11):
        stamp = int((t + seq) * 1e6)
        linux = (stamp // 1_000_000).to_bytes(4, "little") + (stamp % 1_000_000).to_bytes(4, "little") + pattern
        pkts.append(_echo("172.20.1.40", "9.9.9.9", 8, 0x77, seq, linux, t + seq))
        pkts.append(_echo("9.9.9.9", "172.20.1.40", 0, 0x77, seq, linux, t + seq + 0.01))
        win = b"abcdefghijklmnopqrstuvwabcdefghi"
        pkts.append(_echo("172.20.1.41", "1.1.1.1", 8, 0x1, seq, win, t + seq + 0.2))
        pkts.append(_echo("1.1.1.1", "172.20.1.41", 0, 0x1, seq, win, t + seq + 0.21))
    return pkts


def txt_answer_tunnel(n_records: int = 80, seed: int = 3):
    """An outside client fetches a CSV from a server inside the site in TXT answers (base64 slices of
    150 bytes, one per query; the names carry only a counter)."""
    rng = random.Random(seed)
    data = customers_csv(n_records, start=900)
    server, client = "172.20.0.60", "8.210.10.7"
    pkts = []
    t = T0
    for k, off in enumerate(range(0, len(data), 150)):
        qname = f"{k}.get.files-sync.net"
        tid = rng.randint(1, 0xFFFF)
        q = DNS(id=tid, rd=0, qd=DNSQR(qname=qname, qtype="TXT"))
        pkts.append(_udp(client, server, 30000 + k, 53, q, t))
        a = DNS(id=tid, qr=1, aa=1, qd=q.qd,
                an=DNSRR(rrname=qname, type="TXT", ttl=0, rdata=base64.b64encode(data[off:off + 150])))
        pkts.append(_udp(server, client, 53, 30000 + k, a, t + 0.01))
        t += 0.3
    return pkts, {"records": {"customer": n_records, "shipment": 0}, "email": n_records, "server": server}


def write(path, pkts) -> str:
    wrpcap(str(path), sorted(pkts, key=lambda p: p.time))
    return str(path)
