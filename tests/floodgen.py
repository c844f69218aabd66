"""Flood captures made column-wise with numpy (millions of packets in seconds), for the flood tests
and ``make stress``.

Every generator returns pcap file bytes (Ethernet, microsecond timestamps) built from one frame
template whose address, port, sequence and fragment fields are overwritten per packet:

* ``syn_flood(n)``: n SYNs from distinct source addresses and ports (n new TCP flows);
* ``udp_flood(n)``: n UDP datagrams with 16 payload bytes from distinct sources (n new UDP flows);
* ``hole_flood(n, segs)``: n TCP connections (handshake included) whose data arrives with a hole
  at the start, so every later segment waits in reassembly until the connection ends;
* ``fragment_flood(n)``: n first IPv4 fragments whose other fragments never come.
"""
from __future__ import annotations

import struct

import numpy as np

_ETH = bytes.fromhex("020000000002" "020000000001" "0800")


def _ipv4_header(total_len: int, proto: int, flags_frag: int = 0x4000) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total_len, 1, flags_frag, 64, proto, 0,
                       bytes([172, 20, 1, 10]), bytes([203, 0, 113, 5]))


def _pcap(frames: np.ndarray, ts_us: np.ndarray) -> bytes:
    """frames: (n, L) uint8; one pcap record per row."""
    n, length = frames.shape
    hdr = np.zeros((n, 16), dtype=np.uint8)
    secs = (ts_us // 1_000_000).astype("<u4")
    usec = (ts_us % 1_000_000).astype("<u4")
    hdr[:, 0:4] = secs.view(np.uint8).reshape(n, 4)
    hdr[:, 4:8] = usec.view(np.uint8).reshape(n, 4)
    lens = np.full(n, length, dtype="<u4").view(np.uint8).reshape(n, 4)
    hdr[:, 8:12] = lens
    hdr[:, 12:16] = lens
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return head + np.hstack([hdr, frames]).tobytes()


def _tile(template: bytes, n: int) -> np.ndarray:
    return np.tile(np.frombuffer(template, dtype=np.uint8), (n, 1))


def _put16(a: np.ndarray, col: int, values: np.ndarray) -> None:
    a[:, col] = (values >> 8) & 0xFF
    a[:, col + 1] = values & 0xFF


def _put32(a: np.ndarray, col: int, values: np.ndarray) -> None:
    for k in range(4):
        a[:, col + k] = (values >> (24 - 8 * k)) & 0xFF


def _sources(a: np.ndarray, i: np.ndarray) -> None:
    """Distinct (source address in 172.20.0.0/16, source port) per index."""
    _put16(a, 14 + 14, 0xAC14 + 0 * i)                 # 172.20
    _put16(a, 14 + 14 + 2, (i >> 14) & 0xFFFF)          # .x.y from the high bits
    _put16(a, 14 + 20, 1024 + (i & 0x3FFF))             # source port from the low bits


T0_US = 1_764_000_000 * 1_000_000


def syn_flood(n: int, pps: int = 100_000) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 443, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)
    a = _tile(_ETH + _ipv4_header(40, 6) + tcp, n)
    i = np.arange(n, dtype=np.int64)
    _sources(a, i)
    return _pcap(a, T0_US + i * 1_000_000 // pps)


def udp_flood(n: int, pps: int = 100_000) -> bytes:
    payload = b"\x13\x37" * 8
    udp = struct.pack("!HHHH", 40000, 5000, 8 + len(payload), 0) + payload
    a = _tile(_ETH + _ipv4_header(20 + len(udp), 17) + udp, n)
    i = np.arange(n, dtype=np.int64)
    _sources(a, i)
    return _pcap(a, T0_US + i * 1_000_000 // pps)


def hole_flood(n: int, segs: int = 8, seg_len: int = 1000, pps: int = 50_000) -> bytes:
    """Per connection: SYN, SYN-ACK, ACK, then ``segs`` data segments starting 1 segment past the
    next expected byte (the first segment is never sent)."""
    per = 3 + segs
    tcp_len = 20 + seg_len
    tmpl = _ETH + _ipv4_header(20 + tcp_len, 6) + struct.pack("!HHIIBBHHH", 40000, 443, 0, 0, 5 << 4, 0, 65535,
                                                              0, 0) + b"D" * seg_len
    total = n * per
    a = _tile(tmpl, total)
    k = np.arange(total, dtype=np.int64)
    conn, step = k // per, k % per
    _sources(a, conn)
    server = step == 1
    # SYN-ACK goes the other way: swap addresses and ports.
    src = a[server, 26:30].copy()
    a[server, 26:30] = a[server, 30:34]
    a[server, 30:34] = src
    sp = a[server, 34:36].copy()
    a[server, 34:36] = a[server, 36:38]
    a[server, 36:38] = sp
    flags = np.where(step == 0, 0x02, np.where(step == 1, 0x12, np.where(step == 2, 0x10, 0x18)))
    a[:, 47] = flags
    seq = np.where(step == 0, 1000, np.where(step == 1, 5000, 1001 + (step - 2) * seg_len))
    ack = np.where(step == 0, 0, np.where(step == 1, 1001, 5001))
    _put32(a, 38, seq)
    _put32(a, 42, ack)
    frames = a
    ctrl = step < 3
    # Control packets carry no data: cut their IP length (the frame keeps its bytes: Ethernet padding).
    _put16(frames, 16, np.where(ctrl, 40, 20 + tcp_len))
    return _pcap(frames, T0_US + k * 1_000_000 // pps)


def fragment_flood(n: int, pps: int = 100_000) -> bytes:
    """First fragments (MF set, offset 0) of n distinct datagrams; the rest never arrives."""
    body = struct.pack("!HHHH", 40000, 5000, 1480, 0) + b"F" * 1472
    a = _tile(_ETH + _ipv4_header(20 + 1480, 17, flags_frag=0x2000) + body, n)
    i = np.arange(n, dtype=np.int64)
    _put16(a, 18, i & 0xFFFF)                           # IP identification
    _sources(a, i)
    return _pcap(a, T0_US + i * 1_000_000 // pps)
