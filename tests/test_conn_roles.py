"""Zeek's connection roles, written from its source (zeek/zeek), with packets built here.

Rules under test:

* ``IPBasedAnalyzer::NewConn``: a new connection is flipped when its first packet comes from a
  likely server port (``WantConnection``), except towards the IPv4 broadcast address.
* ``ConnKey``: connections are keyed by the five-tuple; VLAN tags do not separate them (only the
  optional ``vlan_fivetuple`` key does), the logged VLAN is the first packet's.
* ``DNS_Interpreter::ParseMessage``: the first DNS message of a connection (at least the 12-byte
  header) that is a response from the originator flips it, unless the responder is multicast.
* ntp-analyzer.pac ``proc_ntp_message``: a SERVER-mode message from the originator or a
  CLIENT-mode message from the responder flips the connection, once.
* ``Connection::FlipRoles``: adds ``^`` to the history and leaves the history letters already seen
  per role as they are; packets and bytes go with their sender.

Every case runs through the compiled flow kernel and the plain-Python reference table, which must
give the same connections.
"""
from __future__ import annotations

import struct

import pytest

from helpers.pkt import eth, ipv4, ipv6, pcap_bytes, udp, vlan_tag
from inspector.pipeline import run_scan

T0 = 1_700_000_000_000_000_000
KEYS = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "conn_state", "history", "orig_pkts",
        "resp_pkts", "orig_bytes", "resp_bytes", "vlan")


def ntp(mode: int) -> bytes:
    """A 48-byte NTPv4 header: LI 0 | VN 4 | Mode, then stratum, poll, precision and zeros."""
    return bytes([(0 << 6) | (4 << 3) | mode,   # LI, version 4, mode
                  2, 6, 0xEC]) + b"\0" * 44       # stratum, poll, precision; delays, ids, timestamps


def dns(response: bool, qid: int = 0x4242) -> bytes:
    """A DNS message: header (id, flags with QR, one question) and the question a./A/IN."""
    flags = 0x8180 if response else 0x0100           # QR|RD|RA or RD
    return struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 0) + b"\x01a\x00" + struct.pack("!HH", 1, 1)


def v4udp(src, sp, dst, dp, payload, vid=None):
    ip = ipv4(src, dst, 17, udp(sp, dp, payload))
    if vid is None:
        return eth(0x0800, ip)
    return eth(0x8100, vlan_tag(vid, 0x0800) + ip)


def scan(tmp_path, frames):
    """Both engines over the frames (0.1 s apart); returns the kernel's flows (projected), after
    checking the reference agrees."""
    p = tmp_path / "roles.pcap"
    p.write_bytes(pcap_bytes([(T0 + k * 100_000_000, f) for k, f in enumerate(frames)]))
    out = []
    for engine in ("kernel", "python"):
        flows = run_scan([str(p)], engine=engine).flows
        out.append(sorted(({k: f.get(k) for k in KEYS} for f in flows), key=repr))
    assert out[0] == out[1], "kernel and reference differ"
    return out[0]


def one(flows):
    assert len(flows) == 1, flows
    return flows[0]


# -- NTP ------------------------------------------------------------------------------------------

def test_ntp_server_reply_captured_first_is_flipped(tmp_path):
    f = one(scan(tmp_path, [v4udp("192.0.2.9", 123, "192.0.2.1", 123, ntp(4)),     # server reply first
                            v4udp("192.0.2.1", 123, "192.0.2.9", 123, ntp(3))]))   # then the client
    assert (f["id.orig_h"], f["id.resp_h"]) == ("192.0.2.1", "192.0.2.9")
    assert f["history"] == "D^"          # 'D' seen for the orig role before the flip stays seen
    assert (f["orig_pkts"], f["resp_pkts"]) == (1, 1)
    assert (f["orig_bytes"], f["resp_bytes"]) == (48, 48)


def test_ntp_client_first_is_not_flipped(tmp_path):
    f = one(scan(tmp_path, [v4udp("192.0.2.1", 123, "192.0.2.9", 123, ntp(3)),
                            v4udp("192.0.2.9", 123, "192.0.2.1", 123, ntp(4))]))
    assert (f["id.orig_h"], f["history"]) == ("192.0.2.1", "Dd")


def test_ntp_flips_once_only(tmp_path):
    # server mode from the originator flips; after that the other side's server-mode message is
    # from the (new) originator too, but the analyzer has flipped already.
    f = one(scan(tmp_path, [v4udp("192.0.2.9", 123, "192.0.2.1", 123, ntp(4)),
                            v4udp("192.0.2.1", 123, "192.0.2.9", 123, ntp(4))]))
    assert f["id.orig_h"] == "192.0.2.1" and f["history"].count("^") == 1


def test_ntp_short_message_does_not_flip(tmp_path):
    # 20 bytes do not parse as an NTP standard message (48 bytes): no analyzer decision
    f = one(scan(tmp_path, [v4udp("192.0.2.9", 123, "192.0.2.1", 123, ntp(4)[:20])]))
    assert (f["id.orig_h"], f["history"]) == ("192.0.2.9", "D")


def test_ntp_reply_to_client_port_flipped_by_port_not_by_analyzer(tmp_path):
    # 123 is a likely server port and 40000 is not: flipped at creation; the reply then comes from
    # the responder, so the analyzer has nothing to flip.
    f = one(scan(tmp_path, [v4udp("192.0.2.9", 123, "192.0.2.1", 40000, ntp(4))]))
    assert (f["id.orig_h"], f["id.orig_p"], f["history"]) == ("192.0.2.1", 40000, "^d")


# -- DNS ------------------------------------------------------------------------------------------

def test_dns_response_first_is_flipped(tmp_path):
    # both ports 5353 (likely server ports both): no port flip; the DNS analyzer flips
    f = one(scan(tmp_path, [v4udp("192.0.2.53", 5353, "192.0.2.7", 5353, dns(True)),
                            v4udp("192.0.2.7", 5353, "192.0.2.53", 5353, dns(False))]))
    assert (f["id.orig_h"], f["id.resp_h"], f["history"]) == ("192.0.2.7", "192.0.2.53", "D^")


def test_dns_response_to_multicast_is_not_flipped(tmp_path):
    f = one(scan(tmp_path, [v4udp("192.0.2.53", 5353, "224.0.0.251", 5353, dns(True))]))
    assert (f["id.orig_h"], f["history"]) == ("192.0.2.53", "D")


def test_dns_only_first_message_counts(tmp_path):
    # a query first: later responses from the originator's side change nothing
    f = one(scan(tmp_path, [v4udp("192.0.2.7", 53, "192.0.2.53", 53, dns(False)),
                            v4udp("192.0.2.7", 53, "192.0.2.53", 53, dns(True))]))
    assert (f["id.orig_h"], f["history"]) == ("192.0.2.7", "D")


def test_dns_header_shorter_than_12_is_not_a_first_message(tmp_path):
    # Zeek returns before first_message is cleared: the next (whole) response still flips
    f = one(scan(tmp_path, [v4udp("192.0.2.53", 53, "192.0.2.7", 53, dns(True)[:8]),
                            v4udp("192.0.2.53", 53, "192.0.2.7", 53, dns(True))]))
    assert (f["id.orig_h"], f["history"]) == ("192.0.2.7", "D^")


def test_dns_over_ipv6_multicast_responder(tmp_path):
    pkt = eth(0x86DD, ipv6("2001:db8::53", "ff02::fb", 17, udp(5353, 5353, dns(True))))
    f = one(scan(tmp_path, [pkt]))
    assert (f["id.orig_h"], f["history"]) == ("2001:db8::53", "D")


def test_no_dns_analyzer_no_flip(tmp_path):
    # a DNS-looking response between ports no DNS analyzer is registered for
    f = one(scan(tmp_path, [v4udp("192.0.2.53", 40001, "192.0.2.7", 40002, dns(True))]))
    assert (f["id.orig_h"], f["history"]) == ("192.0.2.53", "D")


# -- likely server ports and broadcast -------------------------------------------------------------

def test_likely_server_port_flip_is_not_done_towards_broadcast(tmp_path):
    f = one(scan(tmp_path, [v4udp("192.0.2.53", 53, "255.255.255.255", 40000, b"x" * 4)]))
    assert (f["id.orig_h"], f["id.orig_p"], f["history"]) == ("192.0.2.53", 53, "D")


def test_likely_server_port_flip_to_unicast(tmp_path):
    f = one(scan(tmp_path, [v4udp("192.0.2.53", 53, "192.0.2.255", 40000, b"x" * 4)]))
    assert (f["id.orig_h"], f["id.orig_p"], f["history"]) == ("192.0.2.255", 40000, "^d")


def test_dhcp_broadcast_exchange_keyed_as_zeek(tmp_path):
    # DISCOVER 0.0.0.0:68 -> 255.255.255.255:67 and OFFER 192.0.2.1:67 -> 255.255.255.255:68 are two
    # five-tuples, hence two connections, each with its sender as originator (67 and 68 are both
    # likely server ports, and nothing is flipped towards the broadcast address).
    flows = scan(tmp_path, [v4udp("0.0.0.0", 68, "255.255.255.255", 67, b"\x01" * 300),
                            v4udp("192.0.2.1", 67, "255.255.255.255", 68, b"\x02" * 300),
                            v4udp("0.0.0.0", 68, "255.255.255.255", 67, b"\x01" * 300),
                            v4udp("192.0.2.1", 67, "255.255.255.255", 68, b"\x02" * 300)])
    got = {(f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"], f["orig_pkts"], f["resp_pkts"],
            f["conn_state"]) for f in flows}
    assert got == {("0.0.0.0", 68, "255.255.255.255", 67, 2, 0, "S0"),
                   ("192.0.2.1", 67, "255.255.255.255", 68, 2, 0, "S0")}


# -- connection key -------------------------------------------------------------------------------

def test_vlan_does_not_separate_connections(tmp_path):
    # the same DHCP broadcast seen on two VLANs of a trunk is one connection in Zeek's default key
    f = one(scan(tmp_path, [v4udp("0.0.0.0", 68, "255.255.255.255", 67, b"\x01" * 300, vid=10),
                            v4udp("0.0.0.0", 68, "255.255.255.255", 67, b"\x01" * 300, vid=20)]))
    assert (f["orig_pkts"], f["vlan"]) == (2, 10)


@pytest.mark.parametrize("swap", [False, True])
def test_reply_on_other_vlan_meets_its_request(tmp_path, swap):
    frames = [v4udp("192.0.2.1", 40000, "192.0.2.2", 9999, b"q", vid=10),
              v4udp("192.0.2.2", 9999, "192.0.2.1", 40000, b"r", vid=20)]
    f = one(scan(tmp_path, frames[::-1] if swap else frames))
    assert (f["orig_pkts"], f["resp_pkts"], f["conn_state"]) == (1, 1, "SF")
