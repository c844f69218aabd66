"""Tests for the project's own scenario captures (captures/generate.py).

* the committed pcaps, manifests and site file are exactly what the generator
  produces (regenerated into a temporary directory, compared by sha256);
* each manifest is internally consistent;
* tshark, an independent dissector, agrees with every manifest: packet count,
  TCP/UDP conversation counts (``-z conv,tcp -z conv,udp``), per-conversation
  packets / IP bytes / payload bytes (retransmissions excluded) each way,
  VLAN ids, retransmission and out-of-order counts, and the TLS SNIs.
  These parts are skipped when tshark is not on PATH.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
GENERATOR = CAPTURES / "generate.py"
PCAPS = ["dc-north-day.pcap", "dc-north-exfil.pcap", "dc-north-ipv6-vlan.pcap"]
TSHARK = shutil.which("tshark")

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not on PATH")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(pcap: str) -> dict:
    return json.loads((CAPTURES / "expected" / f"{Path(pcap).stem}.json").read_text())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("captures")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True,
                   capture_output=True, cwd=ROOT)
    return out


# ---------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------


def test_regeneration_is_byte_identical(regenerated: Path):
    produced = sorted(p.relative_to(regenerated) for p in regenerated.rglob("*") if p.is_file())
    expected = sorted([Path(p) for p in PCAPS]
                      + [Path("expected") / f"{Path(p).stem}.json" for p in PCAPS]
                      + [Path("site-dc-north.yaml")])
    assert produced == expected
    for rel in produced:
        committed = CAPTURES / rel
        assert committed.is_file(), f"{rel} is not committed; run python captures/generate.py"
        assert _sha256(regenerated / rel) == _sha256(committed), (
            f"{rel} differs from a fresh generation; run python captures/generate.py")


def test_total_size_is_small():
    total = sum((CAPTURES / p).stat().st_size for p in PCAPS)
    assert total < 1_500_000


def test_site_file_shape():
    yaml = pytest.importorskip("yaml")
    site = yaml.safe_load((CAPTURES / "site-dc-north.yaml").read_text())
    assert site == {
        "site": "dc-north",
        "local_nets": ["172.20.0.0/16", "fd00:20::/48"],
        "roles": {"172.20.1.0/24": "wms", "172.20.50.0/24": "scanner", "172.20.60.0/24": "printer",
                  "172.20.2.0/24": "backup", "172.20.0.0/24": "infra"},
        "allowed_destinations": ["api.partner.example", "ups.com", "dhl.com", "198.51.100.0/24"],
    }


# ---------------------------------------------------------------------------
# manifest consistency
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("pcap", PCAPS)
def test_manifest_consistency(pcap: str):
    m = _manifest(pcap)
    convs = m["conversations"]
    assert m["capture"] == pcap
    assert m["pcap_sha256"] == _sha256(CAPTURES / pcap)
    assert m["packet_count"] == sum(c["orig_pkts"] + c["resp_pkts"] for c in convs)
    keys = [(c["proto"], c["orig_h"], c["orig_p"], c["resp_h"], c["resp_p"]) for c in convs]
    assert len(keys) == len(set(keys))
    for proto in ("tcp", "udp", "icmp"):
        assert m[f"{proto}_conversations"] == sum(1 for c in convs if c["proto"] == proto)
    for c in convs:
        assert c["conn_state"] in {"SF", "S0", "REJ", "RSTO", "RSTR", "OTH"}
        if c["proto"] == "icmp":
            assert (c["orig_p"], c["resp_p"], c["conn_state"]) == (8, 0, "OTH")
        if c["conn_state"] in {"S0", "REJ"}:
            assert c["orig_bytes"] == c["resp_bytes"] == 0
    assert m["tls_server_names"] == [c["server_name"] for c in sorted(convs, key=lambda c: c["ts"])
                                     if c["server_name"]]


def test_scenarios_cover_the_brief():
    day, exfil, v6vlan = (_manifest(p)["conversations"] for p in PCAPS)
    states = {c["conn_state"] for c in day}
    assert {"SF", "S0", "REJ", "RSTO", "RSTR", "OTH"} <= states
    assert sum(c["retransmissions"] for c in day) >= 2
    assert sum(c["out_of_order"] for c in day) == 1
    bulk = [c for c in exfil if c["resp_h"].startswith("47.246.") and c["orig_bytes"] > 400_000]
    assert len(bulk) == 1 and bulk[0]["resp_p"] == 443
    assert any(c["ip_version"] == 6 and c["proto"] == "tcp" for c in v6vlan)
    assert any(c["vlan"] == 50 for c in v6vlan)
    backup = [c for c in day if c["resp_h"] == "172.20.2.20" and c["resp_p"] == 873]
    assert len(backup) == 1 and backup[0]["orig_bytes"] > 300_000


# ---------------------------------------------------------------------------
# tshark cross-checks
# ---------------------------------------------------------------------------

_FIELDS = ["frame.number", "frame.time_epoch", "vlan.id", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
           "ip.len", "ipv6.plen", "tcp.srcport", "tcp.dstport", "tcp.len", "udp.srcport", "udp.dstport",
           "udp.length", "icmp.type"]


def _tshark(*args: str) -> str:
    res = subprocess.run([TSHARK, "-n", *args], check=True, capture_output=True, text=True)
    return res.stdout


def _frames_matching(pcap: Path, display_filter: str) -> set[int]:
    out = _tshark("-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number")
    return {int(x) for x in out.split()}


def _tshark_conversations(pcap: Path) -> tuple[int, dict]:
    """Rebuild Zeek-style conversations from tshark's per-frame fields."""
    args = ["-r", str(pcap), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for f in _FIELDS:
        args += ["-e", f]
    retrans = _frames_matching(pcap, "tcp.analysis.retransmission")
    ooo = _frames_matching(pcap, "tcp.analysis.out_of_order")
    convs: dict = {}
    n = 0
    for line in _tshark(*args).splitlines():
        row = dict(zip(_FIELDS, line.split("\t")))
        n += 1
        num = int(row["frame.number"])
        src, dst = row["ip.src"] or row["ipv6.src"], row["ip.dst"] or row["ipv6.dst"]
        ip_len = int(row["ip.len"]) if row["ip.len"] else int(row["ipv6.plen"]) + 40
        if row["tcp.srcport"]:
            proto, sp, dp, plen = "tcp", int(row["tcp.srcport"]), int(row["tcp.dstport"]), int(row["tcp.len"])
        elif row["udp.srcport"]:
            proto, sp, dp = "udp", int(row["udp.srcport"]), int(row["udp.dstport"])
            plen = int(row["udp.length"]) - 8
        else:
            itype = int(row["icmp.type"])
            proto, sp, dp, plen = "icmp", itype, {8: 0, 0: 8}[itype], ip_len - 20 - 8
        fwd, rev = (proto, src, sp, dst, dp), (proto, dst, dp, src, sp)
        if rev in convs:
            key, side = rev, "resp"
        else:
            key, side = fwd, "orig"
            convs.setdefault(key, defaultdict(int, ts=float(row["frame.time_epoch"]),
                                              vlan=int(row["vlan.id"]) if row["vlan.id"] else None))
        c = convs[key]
        c[f"{side}_pkts"] += 1
        c[f"{side}_ip_bytes"] += ip_len
        if num not in retrans:
            c[f"{side}_bytes"] += plen
        c["retransmissions"] += num in retrans
        c["out_of_order"] += num in ooo
        c["last"] = float(row["frame.time_epoch"])
    return n, convs


@needs_tshark
@pytest.mark.parametrize("pcap", PCAPS)
def test_tshark_packet_and_conversation_counts(pcap: str):
    m = _manifest(pcap)
    out = _tshark("-r", str(CAPTURES / pcap), "-q", "-z", "conv,tcp", "-z", "conv,udp")
    counts: dict[str, int] = defaultdict(int)
    kind = None
    for line in out.splitlines():
        if line.strip().endswith("Conversations"):  # "TCP Conversations" / "UDP Conversations"
            kind = line.split()[0].lower()
        elif "<->" in line:
            counts[kind] += 1
    assert counts.get("tcp", 0) == m["tcp_conversations"]
    assert counts.get("udp", 0) == m["udp_conversations"]
    total = len(_tshark("-r", str(CAPTURES / pcap), "-T", "fields", "-e", "frame.number").split())
    assert total == m["packet_count"]
    # nothing tshark considers malformed
    assert not _frames_matching(CAPTURES / pcap, "_ws.malformed || _ws.expert.severity == error")


@needs_tshark
@pytest.mark.parametrize("pcap", PCAPS)
def test_tshark_agrees_with_manifest_per_conversation(pcap: str):
    m = _manifest(pcap)
    n, seen = _tshark_conversations(CAPTURES / pcap)
    assert n == m["packet_count"]
    expected = {(c["proto"], c["orig_h"], c["orig_p"], c["resp_h"], c["resp_p"]): c
                for c in m["conversations"]}
    assert set(seen) == set(expected)
    for key, exp in expected.items():
        got = seen[key]
        for field in ("orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "orig_ip_bytes",
                      "resp_ip_bytes", "retransmissions", "out_of_order"):
            assert got[field] == exp[field], (key, field, got[field], exp[field])
        assert got["vlan"] == exp["vlan"], key
        assert got["ts"] == pytest.approx(exp["ts"], abs=1e-6), key
        assert got["last"] - got["ts"] == pytest.approx(exp["duration"], abs=2e-6), key


@needs_tshark
@pytest.mark.parametrize("pcap", PCAPS)
def test_tshark_sees_the_sni(pcap: str):
    out = _tshark("-r", str(CAPTURES / pcap), "-Y", "tls.handshake.extensions_server_name",
                  "-T", "fields", "-e", "tls.handshake.extensions_server_name")
    assert out.split() == _manifest(pcap)["tls_server_names"]
