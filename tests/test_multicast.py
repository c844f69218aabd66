"""Multicast and broadcast never leave the site.

A datagram to 224.0.0.0/4, 255.255.255.255, a local or role network's broadcast address or ff00::/8
stays on the link it was sent on: such flows are never ``outbound`` (``internal`` when the other side is
local, else ``external``), their payload is not content leaving the site, and the default policy raises
nothing on them.  On public captures the default policy used to raise "customer records sent to a
destination that is not allow-listed" for SSDP/UPnP to 239.255.255.250 and ff02::c, and "beaconing" to
255.255.255.255.

The capture is built here packet by packet (scapy), each packet annotated; the same payloads sent to a
unicast address outside the site are the control: they do leave, and alert.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.site import Site, loads_site

T0 = 1764100000.0
SITE_YAML = """
site: test-lan
local_nets: [192.168.1.0/24, 2001:db8:1::/64]
roles:
  10.77.0.0/16: iot
"""
# customer data in a UDP datagram: an SSDP NOTIFY whose extra header carries a JSON array (as badly
# written UPnP devices do with their device description): 12 e-mail addresses and phone numbers, enough
# for "customer identifiers sent to a destination that is not allow-listed" (1000002) when they leave
RECORDS = json.dumps([{"name": f"Jane Example{i}", "email": f"jane.example{i}@example.com",
                       "phone": f"+1 202-555-01{i:02d}"} for i in range(12)])
NOTIFY = ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n"
          "X-USERS: " + RECORDS + "\r\n\r\n").encode()
MSEARCH = ("M-SEARCH * HTTP/1.1\r\nHOST: [FF02::C]:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n"
           "ST: ssdp:all\r\nX-USERS: " + RECORDS + "\r\n\r\n").encode()
BEACON = b"\x01\x02hello-from-the-lan-beacon" + b"\x00" * 40


def _udp(src, dst, sport, dport, payload, t):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    p = Ether(src="02:00:00:00:00:01", dst="01:00:5e:7f:ff:fa") / ip / UDP(sport=sport, dport=dport) / payload
    p.time = t
    return p


def _capture(path: Path) -> None:
    from scapy.utils import wrpcap
    pk = [
        # SSDP NOTIFY, IPv4 multicast 239.255.255.250:1900, with customer records in a header
        _udp("192.168.1.20", "239.255.255.250", 1900, 1900, NOTIFY, T0),
        # SSDP M-SEARCH, IPv6 link-scope multicast ff02::c, the same records
        _udp("2001:db8:1::20", "ff02::c", 50000, 1900, MSEARCH, T0 + 1),
        # mDNS-like datagram from a host that is not local, to 224.0.0.251: neither side is the site's
        _udp("198.51.100.7", "224.0.0.251", 5353, 5353, NOTIFY, T0 + 2),
        # a subnet broadcast of the local /24 and one of a role network outside the local nets
        _udp("192.168.1.40", "192.168.1.255", 40000, 9999, NOTIFY, T0 + 3),
        _udp("10.77.3.9", "10.77.255.255", 40001, 9999, NOTIFY, T0 + 4),
        # control: the same NOTIFY to a unicast address outside the site leaves, and alerts
        _udp("192.168.1.20", "203.0.113.9", 1901, 1900, NOTIFY, T0 + 5),
    ]
    # a "beacon" to the limited broadcast address every 60 s, 45 times (a new source port each time, so
    # each is a connection of its own), and the same beacon to an outside address as the control (the
    # scored beacon detector wants about an hour of one-per-minute to be sure: 15 no longer makes one)
    for i in range(45):
        pk.append(_udp("192.168.1.30", "255.255.255.255", 41000 + i, 6667, BEACON, T0 + 10 + 60 * i))
        pk.append(_udp("192.168.1.31", "203.0.113.77", 42000 + i, 6667, BEACON, T0 + 11 + 60 * i))
    wrpcap(str(path), pk)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    d = tmp_path_factory.mktemp("mcast")
    pcap, site, out = d / "lan.pcap", d / "site.yaml", d / "out"
    _capture(pcap)
    site.write_text(SITE_YAML)
    assert main(["scan", str(pcap), "--site", str(site), "--out", str(out), "-q"]) == 0
    rd = lambda n: [json.loads(x) for x in (out / n).read_text().splitlines() if x.strip()]  # noqa: E731
    return {f["id.resp_h"]: f for f in rd("flows.jsonl") if f["id.resp_h"] != "203.0.113.77"}, \
        [f for f in rd("flows.jsonl") if f["id.resp_h"] in ("203.0.113.77", "255.255.255.255")], \
        rd("content.jsonl"), rd("alerts.jsonl"), rd("incidents.jsonl")


def test_multicast_and_broadcast_flows_are_not_outbound(scanned):
    flows, beacons, _content, _alerts, _incidents = scanned
    assert flows["239.255.255.250"]["direction"] == "internal"
    assert flows["ff02::c"]["direction"] == "internal"
    assert flows["192.168.1.255"]["direction"] == "internal"
    assert flows["10.77.255.255"]["direction"] == "external"      # the role net is not local: no side is ours
    assert flows["224.0.0.251"]["direction"] == "external"
    assert flows["203.0.113.9"]["direction"] == "outbound"         # the control
    # Zeek's local_orig / local_resp still say what the site's networks hold
    assert flows["239.255.255.250"]["local_orig"] is True and flows["239.255.255.250"]["local_resp"] is False
    assert {f["direction"] for f in beacons if f["id.resp_h"] == "255.255.255.255"} == {"internal"}
    assert len([f for f in beacons if f["id.resp_h"] == "255.255.255.255"]) == 45


def test_their_payload_is_not_data_leaving(scanned):
    flows, _beacons, content, _alerts, _incidents = scanned
    for dst in ("239.255.255.250", "ff02::c", "224.0.0.251", "192.168.1.255", "10.77.255.255"):
        f = flows[dst]
        assert f["records"] == {"customer": 0, "shipment": 0} and not f["data"], dst
    (leaving,) = content
    assert leaving["uid"] == flows["203.0.113.9"]["uid"] and leaving["data"]["email"] == 12


def test_the_default_policy_raises_nothing_on_them(scanned):
    flows, beacons, _content, alerts, incidents = scanned
    covered = {u for a in alerts for u in a["uids"]}
    quiet = {flows[d]["uid"] for d in ("239.255.255.250", "ff02::c", "224.0.0.251", "192.168.1.255",
                                       "10.77.255.255")}
    quiet |= {f["uid"] for f in beacons if f["id.resp_h"] == "255.255.255.255"}
    assert not covered & quiet
    # the controls alert: the records to the outside address, the beacon to the outside address
    sids = {(a["alert"]["signature_id"], a["dest_ip"]) for a in alerts}
    assert (1000002, "203.0.113.9") in sids and (1000070, "203.0.113.77") in sids
    assert {d for i in incidents for dd in i["destinations"] for d in dd["addresses"]} == {"203.0.113.9",
                                                                                          "203.0.113.77"}


@pytest.mark.parametrize("addr,expect", [
    ("224.0.0.251", True), ("239.255.255.250", True), ("255.255.255.255", True), ("ff02::c", True),
    ("ff05::1:3", True), ("192.168.1.255", True), ("10.77.255.255", True), ("192.168.1.20", False),
    ("203.0.113.9", False), ("2001:db8:1::20", False), ("fe80::1", False), ("not an address", False),
])
def test_site_knows_what_never_leaves(addr, expect):
    site = loads_site(SITE_YAML)
    assert site.is_multicast_or_broadcast(addr) is expect


def test_default_site_and_vectorised_form_agree():
    import ipaddress

    import numpy as np
    site = Site.default()
    addrs = ["224.0.0.1", "239.1.2.3", "255.255.255.255", "10.255.255.255", "8.8.8.8", "192.168.1.1"]
    arr = np.array([int(ipaddress.ip_address(a)) for a in addrs], dtype=np.uint32)
    assert site.is_multicast_or_broadcast_v4(arr).tolist() == [site.is_multicast_or_broadcast(a) for a in addrs] \
        == [True, True, True, True, False, False]
