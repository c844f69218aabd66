"""Compile the numba kernels into their on-disk cache: ``python -m inspector.warmup``.

The kernels (``ingest.walk_pcap``, ``decode.fastpath``, ``flows.kernel``) are
compiled with ``cache=True``: the first process that calls one compiles it
(about half a minute for all of them) and stores the machine code next to the
module (``__pycache__``) or under ``$NUMBA_CACHE_DIR``; every later process
loads it in milliseconds.  ``make venv`` runs this module right after installing,
so the first scan of a fresh clone is not slower than the ones after it.

It runs the pipeline over a small synthetic capture written to a temporary
directory (IPv4 and IPv6, 802.1Q, TCP with a handshake, data, a hole and both
FINs, UDP, ICMP), once as ``scan`` reads files and once as ``live`` reads chunks
of pcap records, then sweeps and flushes the flow table: every kernel and every
argument type a run uses is compiled.  Exit status 0; it prints one line.
"""
from __future__ import annotations

import os
import struct
import sys
import tempfile
import time


def _frames() -> list:
    """(timestamp, Ethernet frame) pairs covering the decoder's and the flow table's paths."""
    import dpkt

    def eth(ip, vlan=None, v6=False):
        e = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                   type=dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP, data=ip)
        raw = bytes(e)
        if vlan is not None:   # 802.1Q tag after the MAC addresses
            raw = raw[:12] + struct.pack("!HH", 0x8100, vlan) + raw[12:]
        return raw

    def tcp4(src, dst, sport, dport, flags, seq, ack, payload=b""):
        t = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, data=payload)
        return dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=t)

    a, b = bytes([10, 0, 0, 1]), bytes([93, 184, 216, 34])
    S, SA, A, PA, FA = 0x02, 0x12, 0x10, 0x18, 0x11
    t0 = 1_700_000_000.0
    req = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    frames = [
        tcp4(a, b, 40000, 80, S, 1000, 0),
        tcp4(b, a, 80, 40000, SA, 5000, 1001),
        tcp4(a, b, 40000, 80, A, 1001, 5001),
        tcp4(a, b, 40000, 80, PA, 1001, 5001, req),
        tcp4(b, a, 80, 40000, PA, 5001 + 10, 1001 + len(req), resp[10:]),     # out of order: a hole first
        tcp4(b, a, 80, 40000, PA, 5001, 1001 + len(req), resp[:10]),
        tcp4(a, b, 40000, 80, FA, 1001 + len(req), 5001 + len(resp)),
        tcp4(b, a, 80, 40000, FA, 5001 + len(resp), 1002 + len(req)),
        tcp4(a, b, 40000, 80, A, 1002 + len(req), 5002 + len(resp)),
    ]
    out = [(t0 + i * 0.01, eth(ip)) for i, ip in enumerate(frames)]
    dns = dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="example.com", type=dpkt.dns.DNS_A)])
    udp = dpkt.udp.UDP(sport=53000, dport=53, data=bytes(dns))
    udp.ulen = len(bytes(udp))
    out.append((t0 + 0.2, eth(dpkt.ip.IP(src=a, dst=bytes([10, 0, 0, 53]), p=dpkt.ip.IP_PROTO_UDP, data=udp),
                              vlan=10)))
    icmp = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping"))
    out.append((t0 + 0.3, eth(dpkt.ip.IP(src=a, dst=b, p=dpkt.ip.IP_PROTO_ICMP, data=icmp))))
    u6 = dpkt.udp.UDP(sport=5353, dport=123, data=b"\x1b" + b"\x00" * 47)
    u6.ulen = len(bytes(u6))
    ip6 = dpkt.ip6.IP6(src=b"\xfe\x80" + b"\x00" * 13 + b"\x01", dst=b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x02",
                       nxt=dpkt.ip.IP_PROTO_UDP, hlim=64, data=u6, plen=len(bytes(u6)))
    out.append((t0 + 0.4, eth(ip6, v6=True)))
    out.append((t0 + 0.5, b"\x00" * 10))              # a runt frame: the decoder's error path
    return out


def write_pcap(path: str, frames: list) -> bytes:
    """Classic little-endian microsecond pcap; returns the records (without the file header)."""
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    recs = b"".join(struct.pack("<IIII", int(ts), int(round((ts % 1) * 1e6)), len(f), len(f)) + f
                    for ts, f in frames)
    with open(path, "wb") as fh:
        fh.write(header + recs)
    return recs


def warm() -> dict:
    """Run every kernel once (compiling it into the cache when it is not there yet)."""
    from .pipeline import Pipeline, run_scan
    from .settings import Settings
    from .sources.libpcap import records_to_batch
    frames = _frames()
    with tempfile.TemporaryDirectory(prefix="inspector-warmup-") as tmp:
        path = os.path.join(tmp, "warmup.pcap")
        recs = write_pcap(path, frames)
        res = run_scan([path])                          # files: ingest, decode, flows, protocols
        run_scan([path], app=False)                     # flows only
        pipe = Pipeline(Settings())                     # live: chunks of records, idle sweeps
        batch, _rest = records_to_batch(recs, len(frames), False, 1e-6, 1)
        pipe.account(len(batch), int(batch.caplen.sum()))
        pipe.feed(batch)
        pipe.sweep(float(batch.ts[-1]) + 3600)
        pipe.finish()
    return {"packets": len(frames), "flows": len(res.flows)}


def main() -> int:
    started = time.monotonic()
    info = warm()
    print(f"inspector warmup: numba kernels compiled and cached ({info['packets']} packets, {info['flows']} flows, "
          f"{time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
