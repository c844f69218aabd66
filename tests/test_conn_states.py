"""conn_state and history for every transition, from Zeek's rules, with packets built here.

``conn_state`` follows base/protocols/conn/main.zeek (``conn_state``): TCP endpoint states at the
end (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET), RSTOS0 by the
history pattern ``^?S[^HAFGIQ]*R.*``; UDP by which sides sent; other protocols OTH.  ``history``
letters follow the TCP session adapter's ``update_history`` (S/H SYN without/with ACK, A pure ACK,
D data, F FIN, R RST, Q SYN+FIN, I FIN+RST, T retransmission, W zero window; upper case from the
originator) and ``Connection::FlipRoles`` (``^``).  Every case runs through the compiled kernel and
the reference table, which must agree.
"""
from __future__ import annotations

import pytest

from helpers.pkt import ACK, FIN, PSH, RST, SYN, eth, icmp_echo, ipv4, pcap_bytes, tcp, udp
from inspector.pipeline import run_scan

T0 = 1_766_000_000 * 10**9
C, SV = "192.0.2.10", "198.51.100.20"
CP, SP = 43210, 8088            # neither is a likely server port: no port-based flip
KEYS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "conn_state", "history", "orig_pkts", "resp_pkts")


def c2s(flags, seq, ack=0, data=b"", win=65535, sport=CP, dport=SP):
    return eth(0x0800, ipv4(C, SV, 6, tcp(sport, dport, data, seq=seq, ack=ack, flags=flags, win=win)))


def s2c(flags, seq, ack=0, data=b"", win=65535, sport=SP, dport=CP):
    return eth(0x0800, ipv4(SV, C, 6, tcp(sport, dport, data, seq=seq, ack=ack, flags=flags, win=win)))


def conn(tmp_path, frames):
    p = tmp_path / "c.pcap"
    p.write_bytes(pcap_bytes([(T0 + k * 10_000_000, f) for k, f in enumerate(frames)]))
    got = []
    for engine in ("kernel", "python"):
        flows = run_scan([str(p)], engine=engine).flows
        assert len(flows) == 1, flows
        got.append({k: flows[0][k] for k in KEYS})
    assert got[0] == got[1], got
    return got[0]


HS = [c2s(SYN, 100), s2c(SYN | ACK, 500, 101), c2s(ACK, 101, 501)]

CASES = [
    # id, frames, conn_state, history
    ("S0", [c2s(SYN, 100)], "S0", "S"),
    ("S0-retried-SYN", [c2s(SYN, 100), c2s(SYN, 100)], "S0", "S"),
    ("S1", HS, "S1", "ShA"),
    ("S1-data", HS + [c2s(PSH | ACK, 101, 501, b"hello"), s2c(PSH | ACK, 501, 106, b"world")], "S1", "ShADd"),
    ("SF", HS + [c2s(PSH | ACK, 101, 501, b"hi"), s2c(FIN | ACK, 501, 103), c2s(FIN | ACK, 103, 502),
                 s2c(ACK, 502, 104)], "SF", "ShADfFa"),
    ("REJ", [c2s(SYN, 100), s2c(RST | ACK, 0, 101)], "REJ", "Sr"),
    ("S2", HS + [c2s(FIN | ACK, 101, 501)], "S2", "ShAF"),
    ("S3", HS + [s2c(FIN | ACK, 501, 101)], "S3", "ShAf"),
    ("RSTO", HS + [c2s(RST | ACK, 101, 501)], "RSTO", "ShAR"),
    ("RSTR", HS + [s2c(RST | ACK, 501, 101)], "RSTR", "ShAr"),
    ("RSTOS0", [c2s(SYN, 100), c2s(RST, 101)], "RSTOS0", "SR"),
    ("SH", [c2s(SYN, 100), c2s(FIN, 101)], "SH", "SF"),
    ("OTH-midstream", [c2s(PSH | ACK, 7000, 9000, b"mid-stream data")], "OTH", "D"),
    ("OTH-ack-only", [c2s(ACK, 7000, 9000)], "OTH", "A"),
    ("Q-syn-fin", [c2s(SYN | FIN, 100)], "SH", "Q"),
    ("I-fin-rst", HS + [c2s(FIN | RST | ACK, 101, 501)], "RSTO", "ShAI"),
    ("T-retransmission", HS + [c2s(PSH | ACK, 101, 501, b"abc"), c2s(PSH | ACK, 101, 501, b"abc")], "S1", "ShADT"),
    ("W-zero-window", HS + [s2c(ACK, 501, 101, win=0)], "S1", "ShAaw"),      # the responder's: lower case
    # a second FIN at a new sequence number is a new letter; a retransmitted one is not
    ("F-twice", HS + [c2s(FIN | ACK, 101, 501), c2s(FIN | ACK, 101, 501), c2s(PSH | FIN | ACK, 101, 501, b"late")],
     "S2", "ShAFF"),
    ("R-twice", [c2s(SYN, 100), s2c(RST | ACK, 0, 101), s2c(RST | ACK, 0, 101), s2c(RST | ACK, 50, 101)],
     "REJ", "Srr"),
]


@pytest.mark.parametrize("frames,state,history", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tcp_transitions(tmp_path, frames, state, history):
    got = conn(tmp_path, frames)
    assert (got["conn_state"], got["history"]) == (state, history)
    assert (got["id.orig_h"], got["id.orig_p"]) == (C, CP)


def test_syn_ack_reversal_flips(tmp_path):
    # Zeek's SYN/SYN-ACK reversal (TCPSessionAdapter::UpdateInactiveState): the SYN-ACK seen first,
    # then the SYN it answers: the roles flip and both sides are established.
    got = conn(tmp_path, [s2c(SYN | ACK, 500, 101), c2s(SYN, 100), c2s(ACK, 101, 501)])
    assert (got["id.orig_h"], got["conn_state"]) == (C, "S1")
    assert "^" in got["history"]


@pytest.mark.parametrize("frames,state,history", [
    # first packet from the likely server port 80 to a client port: flipped at creation
    ([s2c(SYN | ACK, 500, 101, sport=80), s2c(RST, 501, sport=80)], "RSTRH", "^hr"),
    ([s2c(SYN | ACK, 500, 101, sport=80), s2c(FIN | ACK, 501, 101, sport=80)], "SHR", "^hf"),
], ids=["RSTRH", "SHR"])
def test_responder_only_states(tmp_path, frames, state, history):
    got = conn(tmp_path, frames)
    assert (got["id.orig_h"], got["id.resp_p"], got["conn_state"], got["history"]) == (C, 80, state, history)


@pytest.mark.parametrize("frames,state,history", [
    ([eth(0x0800, ipv4(C, SV, 17, udp(CP, SP, b"q")))], "S0", "D"),
    ([eth(0x0800, ipv4(C, SV, 17, udp(CP, SP, b"q"))), eth(0x0800, ipv4(SV, C, 17, udp(SP, CP, b"r")))], "SF", "Dd"),
    ([eth(0x0800, ipv4(SV, C, 17, udp(53, CP, b"r")))], "SHR", "^d"),
    ([eth(0x0800, ipv4(C, SV, 1, icmp_echo(8, 7, 1, b"ping"))),
      eth(0x0800, ipv4(SV, C, 1, icmp_echo(0, 7, 1, b"ping")))], "OTH", None),
], ids=["udp-S0", "udp-SF", "udp-SHR-flipped", "icmp-OTH"])
def test_udp_and_icmp_states(tmp_path, frames, state, history):
    got = conn(tmp_path, frames)
    assert (got["conn_state"], got["history"]) == (state, history)
