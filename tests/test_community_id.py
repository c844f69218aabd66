"""Tests for inspector.community_id against the Community ID spec's published
baseline data (corelight/community-id-spec, baseline/README.md tables and
baseline/baseline_deflt.json / baseline_seed1.json) and, when tshark with the
communityid post-dissector is installed, against Wireshark on crafted pcaps."""

import ipaddress
import random
import shutil
import subprocess

import pytest

from inspector.community_id import (ICMP4_COUNTERPART, ICMP6_COUNTERPART, community_id,
                                    community_ids, icmp_port_equivalents)

A6 = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D"
B6 = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D"

# baseline/README.md tables: (proto, saddr, daddr, sport, dport, seed0, seed1)
SPEC_TABLE = [
    (6, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (6, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
    (17, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (17, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=", "1:OShq+iKDAMVouh/4bMxB9Sz4amw="),
    (132, "1.2.3.4", "5.6.7.8", 1122, 3344, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
    (132, "5.6.7.8", "1.2.3.4", 3344, 1122, "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=", "1:uitchpn5MMGAQKBJh7bIr/bAr7s="),
    (1, "1.2.3.4", "5.6.7.8", 8, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    (1, "5.6.7.8", "1.2.3.4", 0, 0, "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=", "1:9pr4ZGTICiuZoIh90RRYE2RyXpU="),
    (1, "1.2.3.4", "5.6.7.8", 11, 0, "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=", "1:1DD7cWGC/Yg91YGsQeni8du3pIA="),
    (58, A6, B6, 128, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
    (58, B6, A6, 129, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=", "1:IO27GQzPuCtNnwFvjWALMHu5tJE="),
    (58, A6, B6, 146, 0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10=", "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s="),
    (46, "1.2.3.4", "5.6.7.8", None, None, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
    (46, "5.6.7.8", "1.2.3.4", None, None, "1:ikv3kmf89luf73WPz1jOs49S768=", "1:/buhqeOmaRCopOZFy9HnoJd5XW8="),
    (46, A6, B6, None, None, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
    (46, B6, A6, None, None, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=", "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM="),
]

# baseline/baseline_deflt.json and baseline_seed1.json (from pcaps/combined.pcap.gz)
V6a, V6b = "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea"
S1, D1 = "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2"
G6s, G6d = "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a"
SPEC_JSON = [
    (58, V6a, V6b, 135, 136, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="),
    (58, V6b, V6a, 136, 135, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="),
    (58, V6b, V6a, 135, 136, "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="),
    (58, V6a, V6b, 136, 135, "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="),
    (58, "3ffe:501:1800:2345::2", S1, 3, 0, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:lVEtCZpYu84Xqaa++3lXFyuu2n4="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", S1, 1, 4, "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8="),
    (58, S1, D1, 128, 129, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="),
    (58, D1, S1, 129, 128, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="),
    (58, V6a, "ff02::2", 133, 134, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8="),
    (58, V6b, "ff02::1", 134, 133, "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:K/ee5UCqAMAQXDorP5nSa2CGLjc="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="),
    (1, "192.168.0.1", "192.168.0.89", 0, 8, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="),
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:XjUibYHaafLQ3pxQeiMI8g25q20="),
    (6, G6s, G6d, 63943, 25, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
    (6, G6d, G6s, 25, 63943, "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
    (132, "192.168.170.8", "192.168.170.56", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
    (132, "192.168.170.56", "192.168.170.8", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
    (46, "10.1.12.1", "10.1.12.2", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="),
    (46, "10.1.12.2", "10.1.12.1", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="),
]

VECTORS = SPEC_TABLE + SPEC_JSON


@pytest.mark.parametrize("proto,saddr,daddr,sport,dport,seed0,seed1", VECTORS)
def test_spec_vectors(proto, saddr, daddr, sport, dport, seed0, seed1):
    assert community_id(proto, saddr, daddr, sport, dport) == seed0
    assert community_id(proto, saddr, daddr, sport, dport, seed=0) == seed0
    assert community_id(proto, saddr, daddr, sport, dport, seed=1) == seed1


def test_community_ids_batch_matches_vectors():
    rows = [v[:5] for v in VECTORS]
    assert community_ids(rows) == [v[5] for v in VECTORS]
    assert community_ids(rows, seed=1) == [v[6] for v in VECTORS]
    dict_rows = [dict(zip(("proto", "saddr", "daddr", "sport", "dport"), v[:5])) for v in VECTORS]
    assert community_ids(dict_rows) == [v[5] for v in VECTORS]
    # port-less rows may be 3-tuples
    assert community_ids([(46, "1.2.3.4", "5.6.7.8")]) == ["1:ikv3kmf89luf73WPz1jOs49S768="]


def test_community_ids_bad_rows_yield_empty_string():
    rows = [(6, "1.2.3.4", "5.6.7.8", 1122, 3344),
            (6, "1.2.3.4", "::1", 1, 2),                 # mixed families
            (6, "nope", "5.6.7.8", 1, 2),                # bad address
            (6, "1.2.3.4", "5.6.7.8", 70000, 2),         # bad port
            (6, "1.2.3.4", "5.6.7.8", 1122, 3344)]
    assert community_ids(rows) == ["1:wCb3OG7yAFWelaUydu0D+125CLM=", "", "", "",
                                   "1:wCb3OG7yAFWelaUydu0D+125CLM="]


def test_address_input_forms():
    expected = "1:wCb3OG7yAFWelaUydu0D+125CLM="
    assert community_id(6, bytes([1, 2, 3, 4]), bytes([5, 6, 7, 8]), 1122, 3344) == expected
    assert community_id(6, ipaddress.ip_address("1.2.3.4"), ipaddress.ip_address("5.6.7.8"),
                        1122, 3344) == expected
    assert community_id(58, A6.lower(), ipaddress.ip_address(B6), 128, 0) == \
        "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="


def test_invalid_input():
    with pytest.raises(ValueError):
        community_id(6, "1.2.3.4", "::1", 1, 2)
    with pytest.raises(ValueError):
        community_id(6, "1.2.3.4", "5.6.7.999", 1, 2)
    with pytest.raises(ValueError):
        community_id(6, "1.2.3.4", "5.6.7.8", 1, 2, seed=65536)
    with pytest.raises(ValueError):
        community_id(6, "1.2.3.4", "5.6.7.8", -1, 2)
    with pytest.raises(ValueError):
        community_id(256, "1.2.3.4", "5.6.7.8")


def test_icmp_counterpart_tables():
    pairs4 = {(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)}
    pairs6 = {(128, 129), (133, 134), (135, 136), (130, 131), (139, 140), (144, 145)}
    for table, pairs in ((ICMP4_COUNTERPART, pairs4), (ICMP6_COUNTERPART, pairs6)):
        expect = {}
        for a, b in pairs:
            expect[a], expect[b] = b, a
        assert table == expect
    assert icmp_port_equivalents(1, 8, 0) == (8, 0, False)
    assert icmp_port_equivalents(1, 3, 1) == (3, 1, True)
    assert icmp_port_equivalents(58, 146, 0) == (146, 0, True)     # spec: one-way
    assert icmp_port_equivalents(58, 144, 0) == (144, 145, False)


def test_icmp_request_reply_symmetry():
    for proto, table in ((1, ICMP4_COUNTERPART), (58, ICMP6_COUNTERPART)):
        a, b = ("10.0.0.1", "10.0.0.2") if proto == 1 else ("2001:db8::1", "2001:db8::2")
        for req, rep in table.items():
            assert community_id(proto, a, b, req, 0) == community_id(proto, b, a, rep, 0), (proto, req)
            # the code does not matter for two-way types
            assert community_id(proto, a, b, req, 0) == community_id(proto, a, b, req, 5)


def test_one_way_icmp_not_reordered():
    # one-way: (type, code) as ports, endpoints kept in the given order
    fwd = community_id(1, "10.0.0.2", "10.0.0.1", 3, 1)
    rev = community_id(1, "10.0.0.1", "10.0.0.2", 3, 1)
    assert fwd != rev
    assert community_id(1, "10.0.0.2", "10.0.0.1", 3, 1) != community_id(1, "10.0.0.2", "10.0.0.1", 3, 2)


def test_portless_protocols_ignore_ports():
    base = community_id(47, "10.1.1.1", "10.2.2.2")
    assert community_id(47, "10.1.1.1", "10.2.2.2", 1, 2) == base
    assert community_id(47, "10.2.2.2", "10.1.1.1", 9, 9) == base


def test_random_direction_symmetry():
    rng = random.Random(42)
    for _ in range(500):
        proto = rng.choice([6, 17, 132, 47, 50])
        if rng.random() < 0.5:
            a, b = (str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2))
        else:
            a, b = (str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(2))
        if rng.random() < 0.1:
            b = a                                   # equal addresses: ports decide
        sp, dp = rng.randrange(65536), rng.randrange(65536)
        assert community_id(proto, a, b, sp, dp) == community_id(proto, b, a, dp, sp)


# --------------------------------------------------------------------- tshark

def _tshark_has_communityid(tshark):
    try:
        out = subprocess.run([tshark, "-G", "protocols"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.split("\t")[-1].strip() == "communityid" for line in out.splitlines())


def _tshark_cases():
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6MLQuery,
                                    ICMPv6MPSol, ICMPv6ND_NS, IPv6)
    from scapy.layers.l2 import Ether
    from scapy.layers.sctp import SCTP
    from scapy.packet import Raw

    def E():
        return Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:02")

    a6, b6 = A6.lower(), B6.lower()
    g_s, g_d = "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887"
    return [
        ("tcp", E() / IP(src="1.2.3.4", dst="5.6.7.8") / TCP(sport=1122, dport=3344),
         (6, "1.2.3.4", "5.6.7.8", 1122, 3344)),
        ("tcp-reverse", E() / IP(src="5.6.7.8", dst="1.2.3.4") / TCP(sport=3344, dport=1122),
         (6, "5.6.7.8", "1.2.3.4", 3344, 1122)),
        ("tcp-same-addr", E() / IP(src="10.0.0.1", dst="10.0.0.1") / TCP(sport=80, dport=1234),
         (6, "10.0.0.1", "10.0.0.1", 80, 1234)),
        ("udp", E() / IP(src="192.168.1.52", dst="8.8.8.8") / UDP(sport=54585, dport=53),
         (17, "192.168.1.52", "8.8.8.8", 54585, 53)),
        ("icmp-echo", E() / IP(src="192.168.0.89", dst="192.168.0.1") / ICMP(type=8),
         (1, "192.168.0.89", "192.168.0.1", 8, 0)),
        ("icmp-echo-reply", E() / IP(src="192.168.0.1", dst="192.168.0.89") / ICMP(type=0),
         (1, "192.168.0.1", "192.168.0.89", 0, 0)),
        ("icmp-timestamp", E() / IP(src="9.9.9.9", dst="1.1.1.1") / ICMP(type=13),
         (1, "9.9.9.9", "1.1.1.1", 13, 0)),
        ("icmp-router-adv", E() / IP(src="9.9.9.9", dst="1.1.1.1") / ICMP(type=9),
         (1, "9.9.9.9", "1.1.1.1", 9, 0)),
        ("icmp-unreachable", E() / IP(src="9.9.9.9", dst="1.1.1.1") / ICMP(type=3, code=3)
         / IP(src="1.1.1.1", dst="9.9.9.9") / UDP(sport=5, dport=6),
         (1, "9.9.9.9", "1.1.1.1", 3, 3)),
        ("icmp6-echo", E() / IPv6(src=b6, dst=a6) / ICMPv6EchoRequest(),
         (58, b6, a6, 128, 0)),
        ("icmp6-echo-reply", E() / IPv6(src=a6, dst=b6) / ICMPv6EchoReply(),
         (58, a6, b6, 129, 0)),
        ("icmp6-neighbor-sol", E() / IPv6(src=b6, dst=a6) / ICMPv6ND_NS(tgt=a6),
         (58, b6, a6, 135, 0)),
        ("icmp6-mld-query", E() / IPv6(src=b6, dst=a6) / ICMPv6MLQuery(),
         (58, b6, a6, 130, 0)),
        ("icmp6-mobile-prefix-sol", E() / IPv6(src=b6, dst=a6) / ICMPv6MPSol(),
         (58, b6, a6, 146, 0)),
        ("sctp", E() / IP(src="192.168.170.56", dst="192.168.170.8") / SCTP(sport=7, dport=7),
         (132, "192.168.170.56", "192.168.170.8", 7, 7)),
        ("ipv6-tcp", E() / IPv6(src=g_s, dst=g_d) / TCP(sport=25, dport=63943),
         (6, g_s, g_d, 25, 63943)),
        ("ipv6-udp", E() / IPv6(src=a6, dst=b6) / UDP(sport=5353, dport=5353),
         (17, a6, b6, 5353, 5353)),
        ("gre-portless", E() / IP(src="10.1.12.2", dst="10.1.12.1", proto=47) / Raw(b"\0\0\0\0"),
         (47, "10.1.12.2", "10.1.12.1", None, None)),
        ("rsvp-portless", E() / IP(src="10.1.12.2", dst="10.1.12.1", proto=46)
         / Raw(b"\x10\x01\x00\x00\x00\x00\x00\x08"),
         (46, "10.1.12.2", "10.1.12.1", None, None)),
        ("proto253-portless", E() / IP(src="10.1.12.2", dst="10.1.12.1", proto=253) / Raw(b"abcd"),
         (253, "10.1.12.2", "10.1.12.1", None, None)),
        # tshark 4.0 emits no Community ID for port-less IPv6; the spec table covers that case.
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_tshark(tmp_path, seed):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    if not _tshark_has_communityid(tshark):
        pytest.skip("this tshark has no communityid post-dissector")
    pytest.importorskip("scapy")
    from scapy.utils import wrpcap

    cases = _tshark_cases()
    pcap = tmp_path / "cid.pcap"
    wrpcap(str(pcap), [c[1] for c in cases])
    proc = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "--enable-protocol", "communityid",
         "-o", f"communityid.seed:{seed}", "-o", "tcp.try_heuristic_first:FALSE",
         "-T", "fields", "-e", "frame.number", "-e", "communityid"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    theirs = {}
    for line in proc.stdout.splitlines():
        num, _, cid = line.partition("\t")
        theirs[int(num)] = cid.strip()
    assert len(theirs) == len(cases)
    for i, (name, _, tup) in enumerate(cases, 1):
        assert theirs[i], f"tshark gave no Community ID for {name}"
        assert community_id(*tup, seed=seed) == theirs[i], name
