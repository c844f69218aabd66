"""Tunnels decoded as sessions (inspector/content/tunnels.py): DNS query names, DNS TXT answers and
ICMP echo payloads put back together, decoded and counted like any upload.

Unit tests use the RFC 4648 test vectors (section 10) and hand-made names; the capture tests use
generated traffic (tests/helpers/tunnelgen.py) with planted records counted exactly, and the
look-alikes (CDN names with long hex labels, Linux and Windows pings) that must count nothing.
"""
from __future__ import annotations

import base64
import json
import os

import pytest

from helpers import tunnelgen as gen
from inspector.content.stage import ContentFlow
from inspector.content.tunnels import (Plan, Tunnels, choose_plan, csv_header, decode_piece, decode_pieces,
                                       dns_layout, dns_pieces, split_qname, text_score)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = os.path.join(REPO, "captures", "site-dc-north.yaml")


# ---------------------------------------------------------------------------------------------
# decoding pieces (RFC 4648, section 10 test vectors)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("enc,encoded,plain", [
    ("base32", b"MZXW6YTBOI======", b"foobar"),
    ("base32", b"MZXW6YQ=", b"foob"),
    ("base32", b"mzxw6", b"foo"),                 # DNS labels: lower case, no padding
    ("base64", b"Zm9vYmFy", b"foobar"),
    ("base64", b"Zm9vYg==", b"foob"),
    ("base64", b"Zm9vYg", b"foob"),              # unpadded
    ("base64", b"-_-_", b"\xfb\xff\xbf"),           # the URL-safe alphabet (RFC 4648 section 5)
    ("base64", b"+/+/", b"\xfb\xff\xbf"),
    ("hex", b"666F6F626172", b"foobar"),
    ("hex", b"666f6f", b"foo"),
])
def test_rfc4648_vectors(enc, encoded, plain):
    assert decode_piece(encoded, enc)[0] == plain


@pytest.mark.parametrize("enc,bad", [("base32", b"MZXW1"), ("base32", b"MZX"), ("hex", b"abc"),
                                     ("base64", b"Zm9v!"), ("base64", b"Z")])
def test_not_that_encoding(enc, bad):
    assert decode_piece(bad, enc)[0] is None


def test_stream_carry_joins_a_stream_cut_anywhere():
    # one base32 stream cut into pieces of 13 characters (not a multiple of 8)
    text = b"customer_id,name,email\nC1,Anna Weber,anna@example.org\n"
    enc = base64.b32encode(text).rstrip(b"=").lower()
    pieces = [enc[i:i + 13] for i in range(0, len(enc), 13)]
    dec, carry, failed = decode_pieces(pieces, Plan("base32", "stream"))
    assert (dec, carry, failed) == (text, b"", 0)
    # pieces decoded one by one do not give the text back
    assert decode_pieces(pieces, Plan("base32", "chunk"))[0] != text
    assert choose_plan(pieces, True).mode == "stream"


def test_text_score():
    assert text_score(b"name,email\nAnna,a@b.de\n") == 1.0
    assert text_score(bytes(range(256))) < 0.5
    assert text_score(b"\x1f\x8b\x08\x00" + bytes(40)) == 0.95      # gzip: a known type


def test_csv_header():
    assert csv_header(b"customer_id,name,email,city\n") == b"customer_id,name,email,city\n"
    assert csv_header(b"id;Name;E-Mail\r\n") is not None
    assert csv_header(b"C10001,Anna Weber,anna@example.org,Hamburg\n") is None
    assert csv_header(b'{"name": "x"}\n') is None


# ---------------------------------------------------------------------------------------------
# DNS names
# ---------------------------------------------------------------------------------------------

def test_layout_strips_tag_and_hex_counter():
    names = [split_qname(f"{base64.b32encode(bytes([k]) * 20).decode().rstrip('=').lower()}.{k:04x}.up.x.example.net")[1]
             for k in range(12)]
    lay = dns_layout(names)
    assert lay.strip == 3 and lay.seq == ("right", 2)       # "x" and "up" are the same in every name
    seq, data = dns_pieces(names[11], lay)
    assert seq == (4, "000b") and base64.b32decode(data.upper() + b"=" * (-len(data) % 8)) == bytes([11]) * 20


def test_layout_counter_first_and_data_over_two_labels():
    def h(k, part):
        return bytes([k, part]).hex() * 15
    names = [split_qname(f"{k}.{h(k, 1)}.{h(k, 2)}.dl.hexsync.org")[1] for k in range(1, 15)]
    lay = dns_layout(names)
    assert lay.seq == ("left", 0) and lay.strip == 1
    seq, data = dns_pieces(names[9], lay)
    assert seq == (2, "10") and data == (h(10, 1) + h(10, 2)).encode()
    # counters of different lengths sort numerically (9 before 10)
    assert dns_pieces(names[8], lay)[0] < seq


def test_split_qname():
    assert split_qname("a.b.example.co.uk.") == ("example.co.uk", ["a", "b"])
    assert split_qname("example.com") is None
    assert split_qname("") is None


# ---------------------------------------------------------------------------------------------
# plans: what decodes, what does not
# ---------------------------------------------------------------------------------------------

def test_cdn_hex_labels_are_no_tunnel():
    import random
    rng = random.Random(5)
    pieces = [f"{rng.getrandbits(128):032x}".encode() for _ in range(32)]
    assert choose_plan(pieces, True) is None


def test_base64_of_random_bytes_is_no_tunnel():
    import random
    rng = random.Random(6)
    pieces = [base64.b64encode(bytes(rng.getrandbits(8) for _ in range(300))) for _ in range(16)]
    assert choose_plan(pieces, True) is None        # raw is no candidate: every character is base64


def test_mixed_encodings_one_value_per_piece():
    values = [f"person{k}@mail-example.de".encode() for k in range(8)]
    pieces = [base64.b32encode(v).rstrip(b"=") if k % 2 else base64.urlsafe_b64encode(v).rstrip(b"=")
              for k, v in enumerate(values)]

    def yield_of(data):
        return sum(1 for line in data.split(b"\n") if line in values)
    plan = choose_plan(pieces, True, yield_of)
    assert plan.encoding == "mixed" and plan.sep == b"\n"
    assert decode_pieces(pieces, plan)[0] == b"\n".join(values)


# ---------------------------------------------------------------------------------------------
# sessions: slices, header carried, held queries
# ---------------------------------------------------------------------------------------------

class _Recorder:
    def __init__(self):
        self.bodies = []

    def __call__(self, cf, info, data):
        self.bodies.append((cf.uid, info.get("source"), data))


def _query(tun, uid, qname):
    cf = ContentFlow(uid, 0.0, True)
    tun.dns_query(cf, {"source": "dns", "qname": qname}, qname.encode())
    return cf


def test_session_slices_carry_the_header_and_sum_to_the_stream():
    data = gen.customers_csv(40)
    names = gen._names(data, "base32")
    rec = _Recorder()
    tun = Tunnels(rec)
    flows = []
    for k, name in enumerate(names):
        uid = f"C{k}"
        tun.open(uid, "172.20.0.53")
        flows.append(_query(tun, uid, name))
        if k >= 10 and k % 7 == 0:          # some connections end while the tunnel goes on
            tun.finish_flow(flows[k - 10])
    for cf in flows:
        if cf.uid in tun.by_uid:
            tun.finish_flow(cf)
    slices = [d for _, src, d in rec.bodies if src == "dns-tunnel"]
    assert len(slices) > 2
    header = data.split(b"\n", 1)[0] + b"\n"
    assert all(s.startswith(header) for s in slices)
    rows = [line for s in slices for line in s.split(b"\n")[1:] if line]
    assert rows == data.split(b"\n")[1:-1]          # every record once, in order, none cut
    assert not [1 for _, src, _ in rec.bodies if src == "dns"]   # no query inspected alone


def test_too_few_queries_are_inspected_alone():
    rec = _Recorder()
    tun = Tunnels(rec)
    tun.open("C1", "10.0.0.1")
    cf = _query(tun, "C1", "mzxw6ytboi.0001.t.example.net")
    _query(tun, "C1", "www.example.org")
    tun.finish_flow(cf)
    assert sorted(src for _, src, _ in rec.bodies) == ["dns", "dns"]


def test_pings_are_rejected_and_not_fed_further():
    tun = Tunnels(_Recorder())
    tun.open("C1", "10.0.0.1")
    cf = ContentFlow("C1", 0.0, True)
    win = b"abcdefghijklmnopqrstuvwabcdefghi"
    assert all(tun.icmp(cf, "1.1.1.1", win) for _ in range(3))
    assert tun.icmp(cf, "1.1.1.1", win)        # identical payloads: kept once each, nothing decided
    tun.open("C2", "10.0.0.2")
    cf2 = ContentFlow("C2", 0.0, True)
    pattern = bytes(range(0x10, 0x38))
    results = [tun.icmp(cf2, "9.9.9.9", k.to_bytes(8, "little") + pattern) for k in range(6)]
    assert results[-1] is False                 # a timestamp and a fixed pattern: rejected


def test_one_payload_over_and_over_is_rejected():
    tun = Tunnels(_Recorder())
    tun.open("C1", "10.0.0.1")
    cf = ContentFlow("C1", 0.0, True)
    results = [tun.icmp(cf, "1.1.1.1", b"abcdefghijklmnopqrstuvwabcdefghi") for _ in range(20)]
    assert results[0] is True and results[-1] is False


def test_binary_header_per_piece_is_skipped():
    import struct
    data = gen.customers_csv(10)
    pieces = [(struct.pack("!HBHH", k * 31, 1, 0xBEEF, k) + data[i:i + 40]).hex().encode()
              for k, i in enumerate(range(0, len(data), 40))]
    plan = choose_plan(pieces, True)
    assert (plan.encoding, plan.mode, plan.skip) == ("hex", "chunk", 7)
    assert decode_pieces(pieces, plan)[0] == data


def test_bounded_sessions():
    from inspector.content import tunnels
    tun = Tunnels(_Recorder())
    for k in range(tunnels.MAX_SESSIONS + 50):
        tun.open(f"C{k}", "10.0.0.1")
        _query(tun, f"C{k}", f"{'a' * 20}.x.example{k}.net")
    assert len(tun.sessions) == tunnels.MAX_SESSIONS


# ---------------------------------------------------------------------------------------------
# generated captures through the pipeline
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    from inspector.site import load_site
    return load_site(SITE)


def _scan(tmp_path, name, pkts, site, content=None):
    from inspector.pipeline import run_scan
    from inspector.settings import build_content, build_enricher
    path = gen.write(tmp_path / f"{name}.pcap", pkts)
    return run_scan([path], site=site, content=content or build_content(site), enricher=build_enricher(site))


def _totals(flows, dst=None, src=None):
    rec = {"customer": 0, "shipment": 0}
    email, n = 0, 0
    for f in flows:
        if (dst is None or f["id.resp_h"] == dst) and (src is None or f["id.orig_h"] == src):
            for k in rec:
                rec[k] += f["records"][k]
            email += f["data"].get("email", 0)
            n += bool(f["records"]["customer"])
    return rec, email, n


@pytest.mark.parametrize("encoding", ["base32", "hex", "dnscat"])
def test_dns_tunnel_through_forwarding_resolver(encoding, tmp_path, site):
    pkts, planted = gen.dns_tunnel(encoding)
    res = _scan(tmp_path, encoding, pkts, site)
    legs = [f for f in res.flows if f["id.orig_h"] == gen.RESOLVER and f["id.resp_h"] == gen.UPSTREAM]
    rec, email, _ = _totals(legs)
    assert rec == planted["records"] and email == planted["email"]
    # the client's leg stays inside the site: nothing leaves there
    client = [f for f in res.flows if f["id.orig_h"] == gen.CLIENT]
    assert client and all(not f["data"] and not f["records"]["customer"] for f in client)
    assert _totals(res.flows) == (planted["records"], planted["email"], _totals(legs)[2])
    enc = {f["payload_encoding"] for f in legs if f["records"]["customer"]}
    assert all({"dnscat": "hex"}.get(encoding, encoding) in e.split(",") for e in enc)


def test_dns_tunnel_over_many_short_connections(tmp_path, site):
    """Each query forwarded from its own port: one outbound connection per query; the records decoded
    from all of them add up exactly (slices over connections ending one by one: the session test above)."""
    pkts, planted = gen.dns_tunnel("base32", spacing=0.6, port_per_query=True, cdn_negatives=10)
    res = _scan(tmp_path, "many", pkts, site)
    rec, email, carriers = _totals(res.flows, dst=gen.UPSTREAM)
    assert rec == planted["records"] and email == planted["email"]
    assert carriers >= 2


@pytest.mark.parametrize("encoding", ["base64", "raw", "prefixed", "jsonl"])
def test_icmp_tunnel(encoding, tmp_path, site):
    pkts, planted = gen.icmp_tunnel(encoding)
    res = _scan(tmp_path, encoding, pkts, site)
    rec, email, _ = _totals(res.flows, dst=gen.RELAY)
    assert rec == planted["records"] and email == planted["email"]
    pings = [f for f in res.flows if f["proto"] == "icmp" and f["id.resp_h"] != gen.RELAY]
    assert len(pings) == 2
    assert all(f["payload_type"] is None and not f["data"] for f in pings)


def test_icmp_tunnel_over_two_connections(tmp_path, site):
    pkts, planted = gen.icmp_tunnel("base64", pause_every=40)
    res = _scan(tmp_path, "pause", pkts, site)
    tunnel = [f for f in res.flows if f["id.resp_h"] == gen.RELAY]
    assert len(tunnel) == 2
    rec, email, _ = _totals(tunnel)
    assert rec == planted["records"] and email == planted["email"]


def test_long_tunnel_on_one_connection_is_handed_on_as_it_goes(tmp_path, site, monkeypatch):
    """One ICMP connection carrying more than the flush size: decoded slices go to the connection
    while it lasts (memory stays bounded), and the counts still add up exactly."""
    from inspector.content import tunnels
    monkeypatch.setattr(tunnels, "FLUSH_AT", 2048)
    seen = []
    real = tunnels.Tunnels._attribute

    def spy(self, s, cf, final):
        seen.append((final, s.pending_bytes))
        return real(self, s, cf, final)
    monkeypatch.setattr(tunnels.Tunnels, "_attribute", spy)
    pkts, planted = gen.icmp_tunnel("base64", n_records=400)
    res = _scan(tmp_path, "long", pkts, site)
    rec, email, _ = _totals(res.flows, dst=gen.RELAY)
    assert rec == planted["records"] and email == planted["email"]
    assert sum(1 for final, _ in seen if not final) >= 5
    assert max(p for _, p in seen) < 2048 + 400


def test_txt_answers_leaving_the_site(tmp_path, site):
    pkts, planted = gen.txt_answer_tunnel()
    res = _scan(tmp_path, "txt", pkts, site)
    rec, email, _ = _totals(res.flows)
    assert rec == planted["records"] and email == planted["email"]


def test_answers_coming_in_count_nothing(tmp_path, site):
    """The same TXT answers sent by an outside server to a local client enter the site: nothing leaves."""
    pkts, _ = gen.txt_answer_tunnel()
    swapped = []
    from scapy.layers.inet import IP
    for p in pkts:
        q = p.copy()
        q[IP].src = {"172.20.0.60": "8.210.10.60", "8.210.10.7": "172.20.1.77"}[p[IP].src]
        q[IP].dst = {"172.20.0.60": "8.210.10.60", "8.210.10.7": "172.20.1.77"}[p[IP].dst]
        del q[IP].chksum
        q.time = p.time
        swapped.append(q)
    res = _scan(tmp_path, "txt-in", swapped, site)
    assert _totals(res.flows)[:2] == ({"customer": 0, "shipment": 0}, 0)


def test_negatives_count_nothing(tmp_path, site):
    """CDN names with long hex labels through the resolver, Linux and Windows pings: no content."""
    pkts, _ = gen.dns_tunnel("base32", n_records=0, cdn_negatives=60)
    pkts += gen.ordinary_pings(gen.T0 + 1)
    res = _scan(tmp_path, "neg", pkts, site)
    assert res.flows
    assert not [f for f in res.flows if f["data"] or f["records"]["customer"]]
    assert not res.logs.get("content")


# ---------------------------------------------------------------------------------------------
# end to end: alerts, incidents, per-country rule, exact data matching
# ---------------------------------------------------------------------------------------------

def _cli_scan(tmp_path, name, pkts, *extra):
    from inspector.cli import main
    path = gen.write(tmp_path / f"{name}.pcap", pkts)
    out = tmp_path / f"out-{name}"
    assert main(["scan", path, "--site", SITE, "--out", str(out), "-q", *extra], env={}) == 0

    def read(stream):
        p = out / f"{stream}.jsonl"
        return [json.loads(line) for line in open(p)] if p.exists() else []
    return read


def test_dns_tunnel_alert_and_incident_carry_the_records(tmp_path):
    pkts, planted = gen.dns_tunnel("base32")
    read = _cli_scan(tmp_path, "e2e", pkts)
    tunnel = [a for a in read("alerts") if a["alert"]["signature_id"] == 1000050]
    assert len(tunnel) == 1
    a = tunnel[0]
    assert a["src_ip"] == gen.CLIENT
    assert a["records"]["customer"] == planted["records"]["customer"]
    assert a["data"]["email"] == planted["email"]
    assert a["evidence"]["dns"]["resolver_legs"] >= 1
    samples = a["evidence"]["samples"]["email"]
    assert samples and all("***" in s for s in samples)           # masked evidence only
    legs = {f["uid"] for f in read("flows") if f["id.resp_h"] == gen.UPSTREAM}
    assert set(a["uids"]) & legs
    inc = [i for i in read("incidents") if a["alert_id"] in (i.get("alerts") or i.get("alert_ids") or [])] or \
        read("incidents")
    assert max(i["records"]["customer"] for i in inc) == planted["records"]["customer"]


def test_icmp_tunnel_alert_carries_the_records(tmp_path):
    pkts, planted = gen.icmp_tunnel("base64")
    read = _cli_scan(tmp_path, "icmp", pkts)
    icmp = [a for a in read("alerts") if a["alert"]["signature_id"] == 1000060]
    assert len(icmp) == 1
    assert icmp[0]["records"] == planted["records"] and icmp[0]["data"]["email"] == planted["email"]


def test_per_country_rule_counts_the_tunnel(tmp_path):
    """1,100 records through the DNS tunnel reach the per-country critical rule (1,000 a day)."""
    pkts, planted = gen.dns_tunnel("base32", n_records=1100, cdn_negatives=0, labels=2, spacing=0.05)
    read = _cli_scan(tmp_path, "country", pkts)
    country = [a for a in read("alerts") if a["alert"]["signature_id"] == 1000004]
    assert len(country) == 1
    assert country[0]["records"]["customer"] == planted["records"]["customer"]
    assert country[0]["destination"]["country"] == "HK" or country[0]["window"]["group"]["dst_country"] == "HK"


def test_exact_data_matching_through_the_tunnel(tmp_path, site):
    from inspector.content.edm import EDMIndex, build_fingerprint
    from inspector.content.stage import ContentStage
    src = tmp_path / "customers.csv"
    src.write_bytes(gen.customers_csv(150))
    build_fingerprint(src, ["email", "name"], tmp_path / "c.edm", classes={"name": "person_name"})
    stage = ContentStage(edm=[EDMIndex.load(tmp_path / "c.edm")])
    pkts, planted = gen.dns_tunnel("hex")
    res = _scan(tmp_path, "edm", pkts, site, content=stage)
    rows = sum(sum(f["edm"].values()) for f in res.flows if f["edm"])
    assert rows == planted["records"]["customer"]
