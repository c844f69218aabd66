"""Flow conformance against the corpus oracles (Zeek conn.log, nDPI, NFStream).

Part 1 unit-tests the oracle parsers in tests/corpus.py (no inspector needed).
Part 2 scans the corpus captures with inspector and compares; it is skipped
until ``inspector.scan`` exists.  ``python tests/conformance_report.py``
prints the same comparisons with every disagreement side by side.

Tolerance decisions
-------------------
* Zeek conn.log: exact.  A connection agrees only if its (proto, orig_h,
  orig_p, resp_h, resp_p) matches (multiset; originator must agree, a reversed
  match is a 'direction' disagreement) and orig/resp pkts, ip_bytes, payload
  bytes and conn_state are all equal.  Every disagreement (and every extra flow
  of ours) must be listed in tests/data/conn_disagreements.yaml.
* nDPI: exact per-flow directional packets and whole-frame bytes, matched by
  5-tuple in either direction.  Not exact-able everywhere: ndpiReader uses its
  own idle timeouts and flow table (and splits / drops some flows), reports
  only the *inner* flow of tunnels it decapsulates (GTP/VXLAN/GRE: bytes are
  the whole outer frame), keys ICMP and other port-less protocols by address
  pair (we aggregate ours the same way), and skips non-IP frames.  It also
  counts the *captured* length where caplen < len (fins.pcap,
  ja3_lots_of_cipher_suites_2_anon.pcap, reasm_segv_anon.pcapng: the only
  three such files whose flows cover every packet), and attributes IPv4/IPv6
  fragments differently (first fragment only).  Timeout tolerance: an nDPI
  flow that equals the *sum* of several flows of ours with the same 5-tuple
  (we split on Zeek's inactivity timeouts / port reuse, ndpiReader did not)
  counts as agreeing ('merged'); the report shows exact and merged apart.
  Hence a threshold, NDPI_MIN_AGREEMENT, instead of equality.
* NFStream: no 5-tuple in the CSV, so multiset of (bidirectional_packets,
  bidirectional_bytes).  NFStream's idle timeout is 120 s (active 1800 s)
  while Zeek's are 5 min TCP / 1 min UDP+ICMP, so flows split in one tool
  and not the other; it also decapsulates GTP/CAPWAP/TZSP by default and
  reports only the inner flow.  Timeout tolerance: after the exact multiset
  match, 2..4 leftover rows of one side that sum to a leftover row of the
  other count as agreeing ('merged').  NFStream counts the original frame
  length (len), nDPI the captured one.  Threshold NFSTREAM_MIN_AGREEMENT.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest

import conformance_report as cr
import corpus as C

# ---- thresholds (the lead may tune these) ---------------------------------
# Started at 0.90 each; set from what inspector achieved when written
# (Zeek 98.4%, nDPI 99.5% [exact 98.3%], NFStream 96.3% [exact 94.8%]).
ZEEK_MIN_AGREEMENT = 0.97
NDPI_MIN_AGREEMENT = 0.98       # directional pkts + whole-frame bytes, per nDPI flow
NFSTREAM_MIN_AGREEMENT = 0.95   # multiset (pkts, bytes) over NFStream rows

pytestmark = pytest.mark.corpus


def _p(root: Path, rel: str) -> Path:
    p = root / rel
    if not p.exists():
        pytest.skip(f"{rel} not in this corpus")
    return p


@pytest.fixture(scope="module")
def index(corpus):
    return C.load_index(corpus)


# ===========================================================================
# Part 1: oracle parsers (no inspector)
# ===========================================================================

def test_index_rows_have_aliases(index):
    assert index, "INDEX.jsonl is empty"
    for r in index:
        assert r["corpus_path"] == r["dest"]
        assert r["file_truncated"] == r.get("truncated", "")
        assert isinstance(r["packets"], int)
        assert Path(r["abspath"]).exists(), r["corpus_path"]


def test_corpus_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(C.CORPUS_ENV, str(tmp_path))
    assert C.corpus_root() == tmp_path
    monkeypatch.delenv(C.CORPUS_ENV)
    assert C.corpus_root() == Path(C.__file__).resolve().parents[1].parent / "shared" / "corpus"


def test_read_zeek_conn_log_known_values(corpus):
    rows = C.read_zeek_log(_p(corpus, "zeek/Baseline/core.tunnels.teredo/conn.log"))
    assert len(rows) > 10
    r0 = rows[0]
    assert r0["ts"] == "XXXXXXXXXX.XXXXXX"          # masked time stays a string
    assert r0["id.orig_h"] == "192.168.2.16" and r0["id.orig_p"] == 1576
    assert r0["id.resp_h"] == "75.126.130.163" and r0["id.resp_p"] == 80
    assert r0["proto"] == "tcp" and r0["service"] is None
    assert r0["duration"] == pytest.approx(0.000357)
    assert (r0["orig_bytes"], r0["resp_bytes"], r0["conn_state"]) == (0, 0, "SHR")
    assert (r0["local_orig"], r0["local_resp"]) == (True, False)
    assert (r0["orig_pkts"], r0["orig_ip_bytes"], r0["resp_pkts"], r0["resp_ip_bytes"]) == (1, 40, 1, 40)
    assert r0["tunnel_parents"] is None and r0["ip_proto"] == 6
    # a row with unset duration/bytes
    unset = [r for r in rows if r["history"] == "R"][0]
    assert unset["duration"] is None and unset["orig_bytes"] is None
    # a set[string] column with a value is a list of uids
    inner = [r for r in rows if r["tunnel_parents"]]
    assert inner and all(isinstance(r["tunnel_parents"], list) for r in inner)
    assert all(isinstance(u, str) and u.startswith("C") for r in inner for u in r["tunnel_parents"])


def test_read_zeek_log_empty_and_sets(tmp_path):
    p = tmp_path / "x.log"
    p.write_text("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
                 "#fields\ta\tb\tc\td\n#types\tset[string]\tstring\tcount\tvector[count]\n"
                 "x,y\t(empty)\t-\t(empty)\n-\tq\\x09r\t7\t1,2\n#close\tX\n")
    rows = C.read_zeek_log(p)
    assert rows == [{"a": ["x", "y"], "b": "", "c": None, "d": []},
                    {"a": None, "b": "q\tr", "c": 7, "d": [1, 2]}]


def test_read_zeek_cut_file(corpus):
    rows = C.read_zeek_log(_p(corpus, "zeek/Baseline/scripts.base.protocols.vlan.vlan-0/conn.log.cut"))
    assert rows == [{"id.ctx.vlan": "0", "id.ctx.inner_vlan": None, "vlan": "0", "inner_vlan": None}]


def test_zeek_conn_baselines(index, corpus):
    pairs = C.zeek_conn_baselines(index, corpus)
    traces = {r["corpus_path"] for r, _ in pairs}
    rows = sum(len(C.read_zeek_log(p)) for _, p in pairs)
    print(f"\nZeek conn.log baselines: {len(pairs)} files, {len(traces)} traces, {rows} connections")
    assert pairs and rows
    for r, p in pairs:
        assert p.name == "conn.log" and p.exists()
        log = C.read_zeek_log(p)
        for row in log:
            assert row["proto"] in ("tcp", "udp", "icmp", "unknown_transport")
            for f in ("orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"):
                assert isinstance(row[f], int), (p, f, row[f])


def test_parse_ndpi_out_known_values(corpus):
    fl = C.parse_ndpi_out(_p(corpus, "ndpi/tests/cfgs/default/result/443-chrome.pcap.out"))
    assert len(fl) == 1
    f = fl[0]
    assert (f["l4"], f["ip_proto"], f["src"], f["sport"], f["dst"], f["dport"]) == \
        ("TCP", 6, "178.62.197.130", 443, "192.168.1.13", 53059)
    assert f["bidirectional"] is False and f["vlan"] is None and f["tunnel"] is None
    assert (f["master"], f["app"], f["proto_ids"]) == ("TLS", "TLS", "91")
    assert (f["src2dst_packets"], f["src2dst_bytes"], f["dst2src_packets"], f["dst2src_bytes"]) == (1, 1506, 0, 0)


def test_parse_ndpi_out_ipv6_and_undetected(corpus):
    fl = C.parse_ndpi_out(_p(corpus, "ndpi/tests/cfgs/default/result/custom_rules_ipv6.pcapng.out"))
    assert [f["section"] for f in fl].count("undetected") == 1
    f = [x for x in fl if x["sport"] == 21554][0]
    assert (f["src"], f["dst"], f["dport"], f["bidirectional"]) == \
        ("3ffe:507::1:200:86ff:fe05:80da", "3ffe:501:4819::42", 5333, True)
    assert f["ip_proto"] == 17 and f["master"] == "CustomProtocolD"
    und = [x for x in fl if x["section"] == "undetected"][0]
    assert und["src"] == "fe80::76ac:b9ff:fedd:a1e2" and und["dst"] == "ff02::1"


def test_parse_ndpi_out_master_app_sni_tls(corpus):
    # a TLS.<App> flow with SNI and TLS version: find one anywhere (file names vary)
    found = None
    for p in sorted((corpus / "ndpi/tests/cfgs/default/result").glob("*.out")):
        for f in C.parse_ndpi_out(p):
            if f["master"] == "TLS" and f["app"] != "TLS" and f["hostname"] and f["tls_version"]:
                found = f
                break
        if found:
            break
    if not found:
        pytest.skip("no TLS.<app> flow with SNI in this corpus")
    assert "." in found["proto_ids"] and found["tls_version"].startswith("TLSv1")
    assert f"[Hostname/SNI: {found['hostname']}]" in found["line"]


def test_parse_ndpi_out_vlan_tunnel_numeric_l4(index, corpus):
    flows = [f for r in index if r["source"] == "ndpi"
             for p in C.oracle_paths(r, corpus) for f in C.parse_ndpi_out(p)]
    vl = [f for f in flows if f["vlan"] is not None]
    tun = [f for f in flows if f["tunnel"]]
    num = [f for f in flows if f["l4"].isdigit()]
    print(f"\nnDPI flows: {len(vl)} with VLAN, {len(tun)} tunnelled, {len(num)} numeric L4")
    assert all(f"[VLAN: {f['vlan']}]" in f["line"] for f in vl)
    assert {f["tunnel"] for f in tun} <= {"GTP", "VXLAN", "GRE", "CAPWAP", "TZSP"}
    assert all(f["ip_proto"] == int(f["l4"]) for f in num)
    assert all(f["ip_proto"] is not None for f in flows), \
        {f["l4"] for f in flows if f["ip_proto"] is None}
    for f in flows:
        if not f["bidirectional"]:
            assert (f["dst2src_packets"], f["dst2src_bytes"]) == (0, 0), f["line"][:120]
        if f["ip_proto"] not in C.PORTED:
            assert f["sport"] == 0 and f["dport"] == 0


def test_ndpi_flows_sum_to_protocol_table(index, corpus):
    """Parser completeness: in every .out the flows add up to the per-protocol table."""
    n_files = n_flows = 0
    for r in index:
        if r["source"] != "ndpi":
            continue
        for p in C.oracle_paths(r, corpus):
            fl = C.parse_ndpi_out(p)
            tab = C.parse_ndpi_summary(p)
            n_files += 1
            n_flows += len(fl)
            assert (sum(v[0] for v in tab.values()), sum(v[1] for v in tab.values()),
                    sum(v[2] for v in tab.values())) == \
                (sum(f["packets"] for f in fl), sum(f["bytes"] for f in fl), len(fl)), p.name
    print(f"\nnDPI: {n_flows} flows in {n_files} .out files")
    assert n_flows > 0


def test_read_nfstream_csv(index, corpus):
    n_files = n_rows = 0
    for r in index:
        if r["source"] != "nfstream":
            continue
        for p in C.oracle_paths(r, corpus):
            rows = C.read_nfstream_csv(p)
            n_files += 1
            n_rows += len(rows)
            for row in rows:
                assert isinstance(row["bidirectional_packets"], int)
                assert isinstance(row["bidirectional_bytes"], int)
                assert row["bidirectional_bytes"] >= 14 * row["bidirectional_packets"] or \
                    r["linktype"] != "EN10MB(1)"
    print(f"\nNFStream: {n_rows} flows in {n_files} CSV files")
    assert n_rows > 0


def test_tcpdump_record_count_equals_index(index, corpus):
    n = 0
    for r in index:
        if r["source"] != "tcpdump":
            continue
        for p in C.oracle_paths(r, corpus):
            if p.suffix == ".out":
                n += 1
                assert C.tcpdump_out_record_count(p) == r["packets"], p.name
    assert n > 0


def test_tcpdump_record_count_grammar(tmp_path):
    p = tmp_path / "t.out"
    p.write_bytes(b"    1  12:00 IP a > b: x\n\t0x0000:  4500\n    2  12:01 IP\n"
                  b"    5  not in sequence\n   3  12:02 ARP\n")
    assert C.tcpdump_out_record_count(p) == 3


def test_detect_format(index, corpus):
    fmt = {"pcap": "pcap", "pcap-ns": "pcap-ns", "pcapng": "pcapng"}
    for r in index[:: max(1, len(index) // 100)]:
        got = C.detect_format(r["abspath"])
        if got != "gzip":
            assert got == fmt[r["format"]], r["corpus_path"]


# ---- comparison logic on synthetic input ---------------------------------

def _conn(orig_h, orig_p, resp_h, resp_p, proto="tcp", **kw):
    d = {"id.orig_h": orig_h, "id.orig_p": orig_p, "id.resp_h": resp_h, "id.resp_p": resp_p,
         "proto": proto, "orig_pkts": 1, "resp_pkts": 1, "orig_ip_bytes": 40,
         "resp_ip_bytes": 40, "orig_bytes": 0, "resp_bytes": 0, "conn_state": "SF",
         "orig_l2_bytes": 54, "resp_l2_bytes": 54}
    d.update(kw)
    return d


def test_compare_conn_kinds():
    base = [_conn("1.1.1.1", 1, "2.2.2.2", 80), _conn("1.1.1.1", 2, "2.2.2.2", 80),
            _conn("1.1.1.1", 3, "2.2.2.2", 80), _conn("1.1.1.1", 4, "2.2.2.2", 80),
            _conn("1.1.1.1", 5, "2.2.2.2", 80, orig_pkts=3)]
    ours = [_conn("1.1.1.1", 1, "2.2.2.2", 80),                       # agree
            _conn("1.1.1.1", 2, "2.2.2.2", 80, conn_state="S1"),      # fields
            _conn("2.2.2.2", 80, "1.1.1.1", 3),                       # direction
            _conn("9.9.9.9", 9, "2.2.2.2", 80),                       # extra (4 missing)
            _conn("1.1.1.1", 5, "2.2.2.2", 80, orig_pkts=3.0)]        # floats equal ints
    res = C.compare_conn(base, ours)
    assert [r["kind"] for r in res] == ["agree", "fields", "direction", "missing", "agree", "extra"]
    assert res[1]["fields"] == ["conn_state"]
    assert C.disagreement_labels(res[2]) == ["direction"]


def test_compare_conn_multiset_pairs_best():
    base = [_conn("1.1.1.1", 1, "2.2.2.2", 80, orig_pkts=5), _conn("1.1.1.1", 1, "2.2.2.2", 80, orig_pkts=2)]
    ours = [_conn("1.1.1.1", 1, "2.2.2.2", 80, orig_pkts=2), _conn("1.1.1.1", 1, "2.2.2.2", 80, orig_pkts=5)]
    assert [r["kind"] for r in C.compare_conn(base, ours)] == ["agree", "agree"]
    # unknown_transport rows differ only by ip_proto
    b2 = [_conn("1.1.1.1", 0, "2.2.2.2", 0, proto="unknown_transport", ip_proto=99),
          _conn("1.1.1.1", 0, "2.2.2.2", 0, proto="unknown_transport", ip_proto=132, orig_pkts=7)]
    o2 = [dict(b2[1]), dict(b2[0])]
    assert [r["kind"] for r in C.compare_conn(b2, o2)] == ["agree", "agree"]


def test_compare_conn_baselines_against_themselves(index, corpus):
    for _, p in C.zeek_conn_baselines(index, corpus):
        rows = C.read_zeek_log(p)
        res = C.compare_conn(rows, [dict(r) for r in rows])
        assert all(r["kind"] == "agree" for r in res), p


def test_compare_ndpi_and_nfstream_synthetic():
    nd = [{"ip_proto": 6, "src": "10.0.0.2", "sport": 80, "dst": "10.0.0.1", "dport": 999, "vlan": None,
           "src2dst_packets": 3, "src2dst_bytes": 300, "dst2src_packets": 2, "dst2src_bytes": 120},
          {"ip_proto": 1, "src": "10.0.0.1", "sport": 0, "dst": "8.8.8.8", "dport": 0, "vlan": None,
           "src2dst_packets": 2, "src2dst_bytes": 196, "dst2src_packets": 2, "dst2src_bytes": 196},
          {"ip_proto": 17, "src": "10.0.0.1", "sport": 5, "dst": "8.8.8.8", "dport": 53, "vlan": None,
           "src2dst_packets": 1, "src2dst_bytes": 80, "dst2src_packets": 0, "dst2src_bytes": 0}]
    ours = [_conn("10.0.0.1", 999, "10.0.0.2", 80, orig_pkts=2, orig_l2_bytes=120,
                  resp_pkts=3, resp_l2_bytes=300),
            # Zeek-style ICMP: one flow per type/code, merged by address pair
            _conn("10.0.0.1", 8, "8.8.8.8", 0, proto="icmp", orig_pkts=1, orig_l2_bytes=98,
                  resp_pkts=1, resp_l2_bytes=98),
            _conn("10.0.0.1", 8, "8.8.8.8", 0, proto="icmp", orig_pkts=1, orig_l2_bytes=98,
                  resp_pkts=1, resp_l2_bytes=98)]
    res = C.compare_ndpi(nd, ours)
    assert [r["kind"] for r in res] == ["agree", "agree", "missing"]
    nf = [{"bidirectional_packets": 5, "bidirectional_bytes": 420},
          {"bidirectional_packets": 4, "bidirectional_bytes": 392},
          {"bidirectional_packets": 1, "bidirectional_bytes": 80}]
    c = C.compare_nfstream(nf, ours)
    assert (c["total"], c["matched"], c["merged"]) == (3, 2, 0)
    assert c["missing"] == Counter({(1, 80): 1})


def test_timeout_tolerance_merges_split_flows():
    # we split one 5-tuple in two (Zeek UDP timeout); nDPI / NFStream kept one flow
    ours = [_conn("10.0.0.1", 5, "8.8.8.8", 53, proto="udp", orig_pkts=1, orig_l2_bytes=80,
                  resp_pkts=1, resp_l2_bytes=120),
            _conn("10.0.0.1", 5, "8.8.8.8", 53, proto="udp", orig_pkts=2, orig_l2_bytes=160,
                  resp_pkts=0, resp_l2_bytes=0)]
    nd = [{"ip_proto": 17, "src": "10.0.0.1", "sport": 5, "dst": "8.8.8.8", "dport": 53, "vlan": None,
           "src2dst_packets": 3, "src2dst_bytes": 240, "dst2src_packets": 1, "dst2src_bytes": 120}]
    r = C.compare_ndpi(nd, ours)[0]
    assert r["kind"] == "merged" and r["ours"]["n"] == 2
    c = C.compare_nfstream([{"bidirectional_packets": 4, "bidirectional_bytes": 360}], ours)
    assert (c["matched"], c["merged"], len(c["missing"]), len(c["extra"])) == (0, 1, 0, 0)
    # NFStream split (idle 120 s) what we kept as one flow
    one = [_conn("1.1.1.1", 1, "2.2.2.2", 2, proto="udp", orig_pkts=3, orig_l2_bytes=360,
                 resp_pkts=0, resp_l2_bytes=0)]
    c = C.compare_nfstream([{"bidirectional_packets": 2, "bidirectional_bytes": 200},
                            {"bidirectional_packets": 1, "bidirectional_bytes": 160},
                            {"bidirectional_packets": 7, "bidirectional_bytes": 700}], one)
    assert (c["matched"], c["merged"]) == (0, 2) and c["missing"] == Counter({(7, 700): 1})


def test_disagreement_entry_matching():
    res = {"kind": "fields", "key": ("tcp", "1.1.1.1", 1, "2.2.2.2", 80, None),
           "fields": ["orig_bytes"]}
    e = {"trace": "t.pcap", "tuple": ["tcp", "1.1.1.1", 1, "2.2.2.2", 80],
         "fields": ["orig_bytes", "resp_bytes"], "class": "payload-seq", "reason": "x"}
    assert C.entry_covers(e, "t.pcap", "b/conn.log", res)
    assert not C.entry_covers(e, "u.pcap", "b/conn.log", res)
    assert not C.entry_covers(dict(e, fields=["conn_state"]), "t.pcap", "b/conn.log", res)
    assert C.entry_covers(dict(e, tuple="*", fields="*"), "t.pcap", "b/conn.log", res)
    assert not C.entry_covers(dict(e, baseline="c/conn.log"), "t.pcap", "b/conn.log", res)
    miss = dict(res, kind="missing", fields=[])
    assert C.entry_covers(dict(e, fields=["missing"]), "t.pcap", "b/conn.log", miss)


def test_disagreements_yaml_is_well_formed():
    entries = C.load_disagreements(cr.DISAGREEMENTS_YAML)
    for e in entries:
        assert {"trace", "fields", "class", "reason"} <= set(e), e
        assert e["reason"], e
        C._entry_tuple(e)   # raises on a malformed tuple


# ===========================================================================
# Part 2: inspector vs. oracles (skipped until inspector.scan exists)
# ===========================================================================

@pytest.fixture(scope="module")
def inspector_ready():
    if not cr.inspector_available():
        pytest.skip("inspector.scan not available yet")
    return True


@pytest.fixture(scope="module")
def zeek_summary(inspector_ready, index, corpus):
    entries = C.load_disagreements(cr.DISAGREEMENTS_YAML)
    return cr.summarize_zeek(cr.zeek_items(index, corpus), entries)


@pytest.fixture(scope="module")
def ndpi_summary(inspector_ready, index, corpus):
    return cr.summarize_ndpi(cr.ndpi_items(index, corpus))


@pytest.fixture(scope="module")
def nfstream_summary(inspector_ready, index, corpus):
    return cr.summarize_nfstream(cr.nfstream_items(index, corpus))


@pytest.mark.slow
def test_zeek_scans_without_error(zeek_summary):
    assert not zeek_summary["scan_errors"], zeek_summary["scan_errors"]


@pytest.mark.slow
def test_zeek_conn_agreement(zeek_summary):
    s = zeek_summary
    per_field = ", ".join(f"{f} {100 * d['agreement']:.1f}%" for f, d in s["per_field"].items())
    print(f"\nZeek conn.log agreement: {s['agree']}/{s['baseline_connections']} "
          f"= {100 * s['agreement']:.1f}%  kinds={s['kinds']}\n  per field: {per_field}")
    assert s["agreement"] >= ZEEK_MIN_AGREEMENT, (
        f"conn.log agreement {100 * s['agreement']:.1f}% < {100 * ZEEK_MIN_AGREEMENT:.0f}% "
        f"(run: python tests/conformance_report.py --oracle zeek)")


@pytest.mark.slow
def test_zeek_disagreements_are_listed(zeek_summary):
    s = zeek_summary
    for e in s["stale_entries"]:
        warnings.warn(f"conn_disagreements.yaml entry no longer disagrees: "
                      f"{e.get('trace')} {e.get('tuple')} {e.get('fields')}")
    lines = [f"{d['trace']} [{d['res']['kind']}] {C.key_str(d['res']['key'])} "
             f"fields={C.disagreement_labels(d['res'])}" for d in s["unlisted"]]
    assert not lines, ("disagreements not listed in tests/data/conn_disagreements.yaml "
                       "(see python tests/conformance_report.py --oracle zeek):\n  "
                       + "\n  ".join(lines))


@pytest.mark.slow
def test_ndpi_flow_counts_agreement(ndpi_summary):
    s = ndpi_summary
    per_field = ", ".join(f"{f} {100 * d['agreement']:.1f}%" for f, d in s["per_field"].items())
    print(f"\nnDPI agreement: {s['agree']}/{s['flows']} = {100 * s['agreement']:.1f}% "
          f"(ignoring orientation {100 * s['undirected_agreement']:.1f}%, missing {s['missing']}, "
          f"files fully agreeing {s['files_all_agree']}/{s['files']})\n  per field: {per_field}")
    assert not s["scan_errors"], s["scan_errors"]
    assert s["agreement"] >= NDPI_MIN_AGREEMENT


@pytest.mark.slow
def test_nfstream_flow_counts_agreement(nfstream_summary):
    s = nfstream_summary
    print(f"\nNFStream agreement: {s['matched']}/{s['flows']} = {100 * s['agreement']:.1f}% "
          f"(files fully agreeing {s['files_all_agree']}/{s['files']})")
    assert not s["scan_errors"], s["scan_errors"]
    assert s["agreement"] >= NFSTREAM_MIN_AGREEMENT


@pytest.mark.slow
def test_packets_read_equals_index(inspector_ready, index, zeek_summary, ndpi_summary,
                                   nfstream_summary):
    """Every capture scanned above (complete files) reads exactly INDEX ``packets`` records."""
    rows = [r for r in index if r["source"] in ("ndpi", "nfstream")
            or (r["source"] == "zeek" and any(Path(p).name == "conn.log"
                                              for p in r["oracle_corpus_paths"]))]
    s = cr.packet_count_check(rows)
    assert s["checked"] > 0
    assert not s["scan_errors"], s["scan_errors"]
    assert not s["mismatches"], "\n".join(f"{t}: INDEX {e}, packets_read {g}"
                                          for t, e, g in s["mismatches"])
