"""Protocol parsers on inputs generated from the grammar, checked field by field against tshark.

Hypothesis draws HTTP requests and DNS messages from the specifications' grammars (RFC 9110/9112:
any token method, the four request-target forms, HTTP/1.0 and 1.1, obsolete header folding;
RFC 1035/6891: names of any label shape, compression pointers, EDNS, unusual classes and types).
Each draw becomes packets in one capture; inspector scans it and tshark dissects it; the fields
both tools report must agree.  tshark is an independent implementation, so an agreement is
evidence the parser follows the grammar rather than the fixtures.
"""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from helpers.pkt import eth, ipv4, pcap_bytes, tcp_session, udp  # noqa: E402
from inspector.cli import main  # noqa: E402

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
    lambda s: s[0] != "-" and s[-1] != "-")
HOST = st.lists(LABEL, min_size=2, max_size=4).map(".".join)
PCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
PATH = st.lists(st.text(PCHAR, min_size=0, max_size=12), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
QUERY = st.one_of(st.just(""), st.text(PCHAR + "/?", min_size=1, max_size=20).map(lambda q: "?" + q))
# Methods Wireshark's HTTP dissector recognises (it knows a list; Zeek and RFC 9110 take any token).
TSHARK_METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PROPFIND", "MKCOL", "REPORT", "CCM_POST", "M-SEARCH")
METHOD = st.one_of(st.sampled_from(TSHARK_METHODS),
                   st.text(TCHAR, min_size=1, max_size=12).filter(lambda m: m.upper() != "PRI"))


@st.composite
def http_request(draw):
    method = draw(METHOD)
    host = draw(HOST)
    form = draw(st.sampled_from(["origin", "absolute", "authority", "asterisk"]))
    if form == "origin":
        target = draw(PATH) + draw(QUERY)
    elif form == "absolute":
        target = f"http://{host}{draw(PATH)}{draw(QUERY)}"
    elif form == "authority":
        target = f"{host}:{draw(st.integers(1, 65535))}"
    else:
        target = "*"
    version = draw(st.sampled_from(["1.0", "1.1"]))
    fold = draw(st.booleans())
    ua = "probe/1.0" + ("\r\n  (folded)" if fold else "")
    head = f"{method} {target} HTTP/{version}\r\nHost: {host}\r\nUser-Agent: {ua}\r\nContent-Length: 0\r\n\r\n"
    return method, target, host, head.encode("latin-1")


def _scan(tmp_path: Path, pcap: Path) -> Path:
    out = tmp_path / "out"
    assert main(["scan", str(pcap), "--out", str(out), "-q"], env={}) == 0
    return out


def _tshark(pcap: Path, fields: list, filt: str) -> list:
    cmd = [TSHARK, "-n", "-r", str(pcap), "-Y", filt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [line.split("\t") for line in p.stdout.splitlines() if line.strip()]


def _jsonl(path: Path) -> list:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@SETTINGS
@given(reqs=st.lists(http_request(), min_size=4, max_size=12))
def test_http_requests_agree_with_tshark(tmp_path_factory, reqs):
    tmp_path = tmp_path_factory.mktemp("http")
    frames = []
    for i, (_m, _t, _h, raw) in enumerate(reqs):
        frames += tcp_session(client="10.1.0.2", server="10.1.0.3", cport=41000 + i, sport=80,
                              t0_ns=1_764_000_000_000_000_000 + i * 10**9, req=raw,
                              resp=b"HTTP/1.1 204 No Content\r\n\r\n")
    pcap = tmp_path / "http.pcap"
    pcap.write_bytes(pcap_bytes(frames))
    out = _scan(tmp_path, pcap)
    ours = {r["id.orig_p"]: r for r in _jsonl(out / "http.jsonl")}
    theirs = {int(r[0]): r for r in _tshark(pcap, ["tcp.srcport", "http.request.method", "http.request.uri",
                                                      "http.host"], "http.request")}
    for i, (method, target, host, _raw) in enumerate(reqs):
        port = 41000 + i
        assert port in ours, f"inspector did not log request {method} {target}"
        o = ours[port]
        assert (o["method"], o["host"]) == (method, host)         # the grammar's ground truth
        if method not in TSHARK_METHODS:
            continue                                               # tshark does not parse unknown methods
        assert port in theirs, f"tshark did not see request {method} {target}"
        t = theirs[port]
        assert (t[1], t[2], t[3]) == (method, target, host)


# ------------------------------------------------------------------------------------------
# DNS
# ------------------------------------------------------------------------------------------

DNS_LABEL = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=63)
DNS_NAME = st.lists(DNS_LABEL, min_size=1, max_size=5).filter(lambda ls: sum(len(x) + 1 for x in ls) < 250)
QTYPES = st.sampled_from([1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 43, 48, 64, 65, 99, 255, 256, 32769, 65280])
QCLASSES = st.sampled_from([1, 3, 4, 255])


def _name(labels) -> bytes:
    return b"".join(bytes([len(x)]) + x.encode() for x in labels) + b"\x00"


@st.composite
def dns_exchange(draw):
    labels = draw(DNS_NAME)
    qtype, qclass = draw(QTYPES), draw(QCLASSES)
    txid = draw(st.integers(0, 0xFFFF))
    edns = draw(st.booleans())
    q = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 1 if edns else 0) + _name(labels) + \
        struct.pack("!HH", qtype, qclass)
    if edns:   # OPT pseudo-RR (RFC 6891): root name, type 41, class = UDP payload size, TTL = flags
        q += b"\x00" + struct.pack("!HHIH", 41, draw(st.sampled_from([512, 1232, 4096])), 0x8000, 0)
    # Answer: the question's name by a compression pointer to offset 12, an A record.
    a = struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + _name(labels) + struct.pack("!HH", qtype, qclass)
    a += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, draw(st.integers(1, 254))])
    return ".".join(labels), qtype, qclass, q, a


@SETTINGS
@given(exchanges=st.lists(dns_exchange(), min_size=4, max_size=12))
def test_dns_names_types_classes_agree_with_tshark(tmp_path_factory, exchanges):
    tmp_path = tmp_path_factory.mktemp("dns")
    frames = []
    t0 = 1_764_000_000_000_000_000
    for i, (_n, _t, _c, q, a) in enumerate(exchanges):
        sport = 42000 + i
        frames.append((t0 + i * 10**9, eth(0x0800, ipv4("10.1.0.2", "10.1.0.53", 17, udp(sport, 53, q)))))
        frames.append((t0 + i * 10**9 + 10**6, eth(0x0800, ipv4("10.1.0.53", "10.1.0.2", 17, udp(53, sport, a)))))
    pcap = tmp_path / "dns.pcap"
    pcap.write_bytes(pcap_bytes(frames))
    out = _scan(tmp_path, pcap)
    ours = {r["id.orig_p"]: r for r in _jsonl(out / "dns.jsonl")}
    theirs = {int(r[0]): r for r in _tshark(pcap, ["udp.srcport", "dns.qry.name", "dns.qry.type", "dns.qry.class"],
                                            "dns.flags.response == 0")}
    for i, (name, qtype, qclass, _q, _a) in enumerate(exchanges):
        port = 42000 + i
        assert port in ours and port in theirs, name
        o, t = ours[port], theirs[port]
        assert t[1] == name
        assert o["query"] == name.lower() or o["query"] == name     # Zeek logs names as sent
        assert int(t[2]) == qtype == o["qtype"]
        assert int(t[3], 0) == qclass == o["qclass"]
