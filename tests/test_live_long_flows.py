"""``inspector live``: a connection open across output rotations and across ring capture files is
one flow, written once, with every packet, when it ends (never split at a rotation, never lost).
The capture is a test double serving packets built here; no interface is needed."""
from __future__ import annotations

import random

from helpers.pkt import ACK, FIN, PSH, SYN, eth, ipv4, pcap_bytes, tcp, udp
from test_live import FileSource, Session, live_args, read_jsonl, read_rotated
from inspector.cli import live as live_cli
from inspector.pipeline import run_scan
from inspector.sources.libpcap import parse_header
from test_live import pcap_records

T0 = 1_767_100_000 * 10**9
S = 10**9
C, SRV = "10.2.0.7", "203.0.113.44"


def long_connection_with_noise(n_noise: int = 400) -> list:
    """A TCP connection of five minutes (handshake, 20 requests and answers 15 s apart, close) among
    single UDP datagrams of other hosts in its first four minutes: those end (60 s of silence) and
    are written while it is still open, so the outputs rotate many times before it ends."""
    frames = [(T0, eth(0x0800, ipv4(C, SRV, 6, tcp(41000, 8080, seq=1, flags=SYN)))),
              (T0 + S // 10, eth(0x0800, ipv4(SRV, C, 6, tcp(8080, 41000, seq=501, ack=2, flags=SYN | ACK)))),
              (T0 + S // 5, eth(0x0800, ipv4(C, SRV, 6, tcp(41000, 8080, seq=2, ack=502, flags=ACK))))]
    cs, ss = 2, 502
    for k in range(20):
        t = T0 + (k + 1) * 15 * S
        frames.append((t, eth(0x0800, ipv4(C, SRV, 6, tcp(41000, 8080, b"q" * 10, seq=cs, ack=ss, flags=PSH | ACK)))))
        cs += 10
        frames.append((t + S // 2, eth(0x0800, ipv4(SRV, C, 6, tcp(8080, 41000, b"a" * 30, seq=ss, ack=cs,
                                                                      flags=PSH | ACK)))))
        ss += 30
    t = T0 + 310 * S
    frames += [(t, eth(0x0800, ipv4(C, SRV, 6, tcp(41000, 8080, seq=cs, ack=ss, flags=FIN | ACK)))),
               (t + S // 10, eth(0x0800, ipv4(SRV, C, 6, tcp(8080, 41000, seq=ss, ack=cs + 1, flags=FIN | ACK)))),
               (t + S // 5, eth(0x0800, ipv4(C, SRV, 6, tcp(41000, 8080, seq=cs + 1, ack=ss + 1, flags=ACK))))]
    rnd = random.Random(7)
    for k in range(n_noise):
        t = T0 + rnd.randrange(0, 240 * S)
        frames.append((t, eth(0x0800, ipv4(f"10.9.{k // 200}.{k % 200 + 1}", "10.9.255.1", 17,
                                           udp(20000 + k, 514, b"x" * 40)))))
    return sorted(frames, key=lambda f: f[0])


def _conn(f):
    return tuple(f[k] for k in ("uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "conn_state",
                                "history", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes"))


def _the_connection(flows):
    got = [f for f in flows if f["proto"] == "tcp"]
    assert len(got) == 1, [(f["id.orig_p"], f["orig_pkts"], f["resp_pkts"]) for f in got]
    return got[0]


def test_connection_open_across_output_rotations_is_one_flow(tmp_path):
    cap = tmp_path / "long.pcap"
    cap.write_bytes(pcap_bytes(long_connection_with_noise()))
    out = tmp_path / "out"
    args = live_args(["-i", "fake0", "--out", out, "--duration", "4", "--rotate-mb", "0.004", "-q",
                      "--batch-packets", "20"])
    assert live_cli.run(args, {}, capture=FileSource(cap, per_dispatch=15)) == 0
    rotated = sorted(out.glob("flows-*.jsonl"))
    flows = read_rotated(out, "flows")
    f = _the_connection(flows)
    holder = [p.name for p in rotated + [out / "flows.jsonl"] if any(r["uid"] == f["uid"] for r in read_jsonl(p))]
    assert len(holder) == 1
    assert sum(p.name < holder[0] for p in rotated) >= 2, "outputs rotated twice while the connection was open"
    assert (f["orig_pkts"], f["resp_pkts"], f["conn_state"]) == (24, 22, "SF")
    assert (f["orig_bytes"], f["resp_bytes"]) == (200, 600)
    ref = run_scan([str(cap)]).flows
    assert sorted(map(_conn, flows)) == sorted(map(_conn, ref))      # every connection, as scan has it


def test_connection_across_ring_files_is_one_flow(tmp_path):
    """The live run's ring hands the pipeline chunks read from successive capture files; the
    connection's record names the file of its first packet and counts every packet once."""
    cap = tmp_path / "long.pcap"
    cap.write_bytes(pcap_bytes(long_connection_with_noise(100)))
    header, records = pcap_records(cap)
    big, tsres, _snap, lt = parse_header(header)
    s = Session(tmp_path / "live")
    third = len(records) // 3
    for k, part in enumerate((records[:third], records[third:2 * third], records[2 * third:])):
        for i in range(0, len(part), 9):
            chunk = part[i:i + 9]
            s.feed(b"".join(chunk), len(chunk), big, tsres, lt, capture=f"ring-{k:04d}.pcap")
    s.finish()
    flows = read_rotated(tmp_path / "live", "flows")
    f = _the_connection(flows)
    assert (f["orig_pkts"], f["resp_pkts"], f["conn_state"], f["capture"]) == (24, 22, "SF", "ring-0000.pcap")
    assert len(flows) == len(read_jsonl(tmp_path / "live" / "flows.jsonl")) + sum(
        len(read_jsonl(p)) for p in (tmp_path / "live").glob("flows-*.jsonl"))
