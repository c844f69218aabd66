"""Cross-check per-5-tuple packet counts against tshark (via pyshark).

For a sample of corpus captures covering different link types and
encapsulations (Ethernet, Linux SLL/SLL2, raw IP, NULL/loopback, PPP, pcapng,
802.1Q VLAN, IPv6), tshark gives every packet's outermost IP 5-tuple; we
compare the multiset {unordered 5-tuple: packets} with the sum of
orig_pkts + resp_pkts of inspector's flows per unordered 5-tuple.

The sample is chosen from INDEX by properties, not by name: files whose
tshark tags show no tunnel (tshark and inspector decapsulate tunnels
differently), no IP fragments (tshark reassembles them), nothing malformed
or snaplen-cut, and a readable, supported link type.  TCP/UDP are keyed with
ports; every other IP protocol (ICMP, IGMP, ESP, SCTP ...) by address pair,
as Zeek-style ICMP "connections" use type/code as ports.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

import conformance_report as cr
import corpus as C

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

EXCLUDE_TAGS = {
    "gre", "vxlan", "geneve", "erspan", "mpls", "pppoe", "ip-in-ip/tunnel", "teredo", "gtp",
    "ipv4frag", "ipv6.fraghdr", "malformed", "snaplen_cut", "file-truncated", "file-corrupt",
    "unsupported-linktype", "malformed-by-name", "esp",
}
MIN_PKTS, MAX_PKTS = 1, 1500

# (label, predicate on an INDEX row)
CATEGORIES = [
    ("ethernet-ipv4", lambda r: r["linktype"] == "EN10MB(1)" and r["format"] == "pcap"
     and not {"vlan", "ipv6"} & set(r["features"])),
    ("ethernet-ipv6", lambda r: r["linktype"] == "EN10MB(1)" and "ipv6" in r["features"]
     and "vlan" not in r["features"]),
    ("vlan", lambda r: r["linktype"] == "EN10MB(1)" and "vlan" in r["features"]),
    ("pcapng", lambda r: r["format"] == "pcapng" and r["linktype"] == "EN10MB(1)"),
    ("linux-sll", lambda r: r["linktype"] == "LINUX_SLL(113)"),
    ("linux-sll2", lambda r: r["linktype"] == "LINUX_SLL2(276)"),
    ("raw-ip", lambda r: r["linktype"] in ("RAW(101)", "IPV4(228)")),
    ("raw-ipv6", lambda r: r["linktype"] == "IPV6(229)"),
    ("null-loopback", lambda r: r["linktype"] == "NULL(0)"),
    ("ppp", lambda r: r["linktype"] in ("PPP(9)", "PPP_HDLC(50)")),
    ("pcap-ns", lambda r: r["format"] == "pcap-ns"),
]

L4_BY_LAYER = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "igmp": 2, "sctp": 132,
               "esp": 50, "ah": 51, "ospf": 89, "vrrp": 112, "pim": 103, "gre": 47}


def _eligible(r: dict) -> bool:
    t = r.get("tshark") or {}
    return (not r["file_truncated"] and not EXCLUDE_TAGS & set(r["features"])
            and MIN_PKTS <= r["packets"] <= MAX_PKTS
            and not t.get("tshark_err")
            and not r["corpus_path"].endswith(".gz"))


def select_sample(index: list[dict]) -> list[tuple[str, dict]]:
    """One capture per category: the eligible one with the most packets (ties: path)."""
    chosen, seen = [], set()
    for label, pred in CATEGORIES:
        cands = [r for r in index if _eligible(r) and pred(r) and r["corpus_path"] not in seen]
        if not cands:
            continue
        r = sorted(cands, key=lambda r: (-r["packets"], r["corpus_path"]))[0]
        seen.add(r["corpus_path"])
        chosen.append((label, r))
    return chosen


def _key(ipp, a, ap, b, bp):
    if ipp in (6, 17):
        return (ipp, frozenset([(a, ap), (b, bp)]))
    return (ipp, frozenset([a, b]))


def tshark_tuples(path: str) -> Counter:
    """Counter {unordered 5-tuple: packets} of the outermost IP header, via pyshark."""
    pyshark = pytest.importorskip("pyshark")
    counts: Counter = Counter()

    def on_packet(pkt):
        names = [layer.layer_name for layer in pkt.layers]
        ip_i = next((i for i, n in enumerate(names) if n in ("ip", "ipv6")), None)
        if ip_i is None:
            return
        ipl = pkt.layers[ip_i]
        if names[ip_i] == "ip":
            src, dst, ipp = ipl.src, ipl.dst, int(ipl.proto)
        else:
            src, dst, ipp = ipl.src, ipl.dst, int(ipl.nxt)
        nxt = names[ip_i + 1] if ip_i + 1 < len(names) else None
        if nxt in L4_BY_LAYER:
            ipp = L4_BY_LAYER[nxt]
        sp = dp = 0
        if ipp in (6, 17) and nxt in ("tcp", "udp"):
            l4 = pkt.layers[ip_i + 1]
            sp, dp = int(l4.srcport), int(l4.dstport)
        counts[_key(ipp, C.norm_addr(src), sp, C.norm_addr(dst), dp)] += 1

    cap = pyshark.FileCapture(path, keep_packets=False)
    try:
        cap.apply_on_packets(on_packet, timeout=120)
    finally:
        cap.close()
    return counts


def inspector_tuples(flows: list[dict]) -> Counter:
    counts: Counter = Counter()
    for f in flows:
        ipp = C.flow_ip_proto(f)
        k = _key(ipp, C.norm_addr(f["id.orig_h"]), C.norm_val(f["id.orig_p"]),
                 C.norm_addr(f["id.resp_h"]), C.norm_val(f["id.resp_p"]))
        counts[k] += int(C.norm_val(f.get("orig_pkts")) or 0) + int(C.norm_val(f.get("resp_pkts")) or 0)
    return counts


def _fmt_key(k):
    ipp, ends = k
    return f"{ipp} " + " <-> ".join(sorted(map(str, ends)))


def _sample():
    root = C.corpus_root()
    if not (root / "INDEX.jsonl").is_file():
        return []
    return select_sample(C.load_index(root))


SAMPLE = _sample()


@pytest.mark.parametrize("label,row", SAMPLE or [("none", None)],
                         ids=[f"{lbl}:{r['corpus_path']}" for lbl, r in SAMPLE] or ["no-corpus"])
def test_tuples_match_tshark(corpus, label, row):
    if row is None:
        pytest.skip("no corpus index")
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    if not cr.inspector_available():
        pytest.skip("inspector.scan not available yet")
    theirs = tshark_tuples(row["abspath"])
    ours = inspector_tuples(list(cr.scan(row["abspath"]).flows))
    diff = sorted((k for k in set(theirs) | set(ours) if theirs.get(k, 0) != ours.get(k, 0)),
                  key=_fmt_key)
    msg = "\n".join([f"{label} {row['corpus_path']} ({row['linktype']}, {row['format']}): "
                      f"{len(diff)} of {len(set(theirs) | set(ours))} tuples differ"]
                     + [f"  tshark {theirs.get(k, 0):5d} pkts  ours {ours.get(k, 0):5d}  {_fmt_key(k)}"
                        for k in diff[:30]])
    assert theirs == ours, msg


def test_sample_covers_link_types(corpus):
    labels = {lbl for lbl, _ in SAMPLE}
    print("\npyshark sample:", [(lbl, r["corpus_path"], r["packets"]) for lbl, r in SAMPLE])
    assert len(labels) >= 6, labels
