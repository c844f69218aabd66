"""The content scenario captures (captures/generate_content.py): files, manifests, and independent checks.

* every ``expected/content-*.json`` has its pcap, and the pcap has the manifest's packet count;
* regeneration is byte-identical, and the content generator leaves the dc-north captures alone;
* each manifest is internally consistent (conversation rows as in the dc-north manifests, one ``content``
  row per conversation, ``leaving`` zero where nothing may be reported) and covers the brief (a-k);
* tshark agrees on packets, conversations, bytes, retransmissions and reordering, and finds nothing
  malformed; it also decodes the HTTP/FTP/SMTP/DNS layers the scenarios rely on (gzip, chunked, multipart,
  PORT/PASV, IMF);
* the e-mail and UPS tracking counts are recounted from the pcap bytes with a small reassembler and
  decoders written here (not taken from the generator);
* the ``edm_rows`` agree with exact data matching (inspector.content.edm) against a fingerprint of the
  generator's customer master.

The inspector-side assertions (identifiers, records, payload types found by the scan) live elsewhere.
"""
from __future__ import annotations

import base64
import binascii
import email
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
GENERATOR = CAPTURES / "generate_content.py"
MANIFESTS = sorted((CAPTURES / "expected").glob("content-*.json"))
NAMES = [p.stem for p in MANIFESTS]
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not on PATH")

SCENARIOS = {"a": "content-a-http-json", "b": "content-b-http-json-reordered", "c": "content-c-http-gzip",
             "d": "content-d-http-chunked-csv", "e": "content-e-http-multipart", "f": "content-f-ftp",
             "g": "content-g-edifact-http", "h": "content-h-x12-tcp", "i": "content-i-dns-exfil",
             "j": "content-j-smtp-attachment", "k": "content-k-negative"}


def _manifest(name: str) -> dict:
    return json.loads((CAPTURES / "expected" / f"{name}.json").read_text())


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _pcap_packet_count(path: Path) -> int:
    """Count pcap records by walking the file (no dissector involved)."""
    data = path.read_bytes()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"), "not a classic pcap"
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    pos, n = 24, 0
    while pos < len(data):
        incl = int.from_bytes(data[pos + 8:pos + 12], "little" if order == "<" else "big")
        pos += 16 + incl
        n += 1
    assert pos == len(data), "truncated record"
    return n


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------

def test_all_scenarios_present():
    assert sorted(NAMES) == sorted(SCENARIOS.values())


@pytest.mark.parametrize("name", NAMES)
def test_pcap_exists_and_matches_packet_count(name):
    m = _manifest(name)
    pcap = CAPTURES / m["capture"]
    assert m["capture"] == f"{name}.pcap"
    assert pcap.is_file(), f"{pcap} missing; run python captures/generate_content.py"
    assert _pcap_packet_count(pcap) == m["packet_count"]
    assert m["pcap_sha256"] == _sha256(pcap)


def test_total_size_is_small():
    total = sum((CAPTURES / f"{n}.pcap").stat().st_size for n in NAMES)
    assert total < 2_000_000


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("content")
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, capture_output=True, cwd=ROOT)
    return out


def test_regeneration_is_byte_identical(regenerated):
    produced = sorted(p.relative_to(regenerated) for p in regenerated.rglob("*") if p.is_file())
    expected = sorted([Path(f"{n}.pcap") for n in SCENARIOS.values()]
                      + [Path("expected") / f"{n}.json" for n in SCENARIOS.values()])
    assert produced == expected  # and nothing else: the dc-north files are not touched
    for rel in produced:
        assert _sha256(regenerated / rel) == _sha256(CAPTURES / rel), (
            f"{rel} differs from a fresh generation; run python captures/generate_content.py")


# ---------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------

def test_generator_classes_match_inspector():
    sys.path.insert(0, str(CAPTURES))
    try:
        import generate_content
    finally:
        sys.path.remove(str(CAPTURES))
    from inspector.content import DATA_CLASSES, PAYLOAD_TYPES
    assert generate_content.DATA_CLASSES == DATA_CLASSES
    for name in NAMES:
        for row in _manifest(name)["content"]:
            assert row["payload_type"] is None or row["payload_type"] in PAYLOAD_TYPES, row["payload_type"]


@pytest.mark.parametrize("name", NAMES)
def test_manifest_consistency(name):
    from inspector.content import DATA_CLASSES
    m = _manifest(name)
    convs, content = m["conversations"], m["content"]
    assert m["generator"] == "captures/generate_content.py" and m["content_format"] == 1
    assert m["packet_count"] == sum(c["orig_pkts"] + c["resp_pkts"] for c in convs)
    for proto in ("tcp", "udp", "icmp"):
        assert m[f"{proto}_conversations"] == sum(1 for c in convs if c["proto"] == proto)
    key = lambda r: (r["id"], r["proto"], r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"])  # noqa: E731
    assert [key(r) for r in content] == [key(c) for c in convs]
    for r in content:
        assert set(r["identifiers"]) == set(DATA_CLASSES)
        assert set(r["records"]) == {"customer", "shipment"}
        assert r["expect"] in {"records", "identifiers", "nothing"}
        assert r["direction"] in {"outbound", "inbound", "internal"}
        assert r["data_sender"] in {"orig", "resp", None}
        for cls, values in r["incidental"].items():
            assert cls in DATA_CLASSES and values == sorted(set(values))
        if r["expect"] == "nothing":
            assert not r["leaves_site"]
            assert not any(r["leaving"]["identifiers"].values())
            assert r["leaving"]["records"] == {"customer": 0, "shipment": 0} and r["leaving"]["edm_rows"] == 0
        else:
            assert r["leaves_site"] and r["leaving"] == {"identifiers": r["identifiers"], "records": r["records"],
                                                         "edm_rows": r["edm_rows"]}
            assert (r["expect"] == "records") == any(r["records"].values())
    tot = m["content_totals"]
    assert tot["leaving_records"] == {k: sum(r["leaving"]["records"][k] for r in content)
                                      for k in ("customer", "shipment")}


def _rows(scenario: str) -> list[dict]:
    return _manifest(SCENARIOS[scenario])["content"]


def _leaving(scenario: str) -> list[dict]:
    return [r for r in _rows(scenario) if r["expect"] != "nothing"]


def test_scenarios_cover_the_brief():
    for s in "abc":
        (r,) = _leaving(s)
        assert r["records"] == {"customer": 120, "shipment": 120} and r["payload_type"] == "json"
        ids = r["identifiers"]
        for cls in ("tracking_ups", "sscc", "person_name", "postal_address", "phone", "email"):
            assert ids[cls] == 120, (s, cls)
        assert r["direction"] == "outbound" and r["edm_rows"] == 120
    assert _leaving("a")[0]["transfer"]["segments"] > 30
    b = _manifest(SCENARIOS["b"])["conversations"][0]
    assert (b["retransmissions"], b["out_of_order"]) == (1, 2)
    assert _leaving("c")[0]["transfer"]["content_encoding"] == "gzip"
    (d,) = _leaving("d")
    assert d["records"]["customer"] == 250 and d["transfer"]["transfer_encoding"] == "chunked"
    (e,) = _leaving("e")
    assert e["records"]["customer"] == 300 and e["payload_type"] == "multipart" and e["identifiers"]["iban"] == 300
    f = _leaving("f")
    assert sorted(r["transfer"]["mode"] for r in f) == ["active", "passive"]
    assert all(r["records"]["customer"] == 200 and r["payload_type"] == "csv" for r in f)
    active = next(r for r in f if r["transfer"]["mode"] == "active")
    assert (active["orig_p"], active["direction"], active["data_sender"]) == (20, "inbound", "resp")
    assert sum(1 for r in _rows("f") if r["resp_p"] == 21 and r["expect"] == "nothing") == 2
    (g,) = _leaving("g")
    assert g["edi"]["messages"] == {"IFTMIN": 3, "IFTSTA": 1} and g["identifiers"]["edifact_message"] == 4
    assert g["payload_type"] == "edifact" and g["records"] == {"customer": 3, "shipment": 4}
    (h,) = _leaving("h")
    assert h["resp_p"] == 5000 and h["edi"]["messages"] == {"856": 2} and h["identifiers"]["x12_transaction"] == 2
    assert h["records"] == {"customer": 2, "shipment": 2}
    (i,) = _leaving("i")
    assert i["proto"] == "udp" and i["resp_p"] == 53 and i["identifiers"]["email"] == 40
    assert sum(i["identifiers"].values()) == 40 and i["expect"] == "identifiers"
    (j,) = _leaving("j")
    assert j["records"]["customer"] == 50 and j["identifiers"]["payment_card"] == 50
    assert j["identifiers"]["email"] == 50 and len(j["incidental"]["email"]) == 2
    k = _rows("k")
    assert len(k) == 3 and all(r["expect"] == "nothing" for r in k)
    assert sorted(r["payload_type"] for r in k) == ["csv", "html", "tls-encrypted"]
    html = next(r for r in k if r["payload_type"] == "html")
    assert html["data_sender"] == "resp" and html["identifiers"]["email"] == 30
    internal = next(r for r in k if r["payload_type"] == "csv")
    assert internal["direction"] == "internal" and internal["records"]["customer"] == 250
    assert internal["resp_h"] == "172.20.2.20"


# ---------------------------------------------------------------------------
# tshark
# ---------------------------------------------------------------------------

def _tshark(*args: str) -> str:
    return subprocess.run([TSHARK, "-n", *args], check=True, capture_output=True, text=True).stdout


def _frames(pcap: Path, flt: str) -> set[int]:
    return {int(x) for x in _tshark("-r", str(pcap), "-Y", flt, "-T", "fields", "-e", "frame.number").split()}


_FIELDS = ["frame.number", "ip.src", "ip.dst", "ip.len", "tcp.srcport", "tcp.dstport", "tcp.len", "udp.srcport",
           "udp.dstport", "udp.length"]


@needs_tshark
@pytest.mark.parametrize("name", NAMES)
def test_tshark_agrees_with_manifest(name):
    m = _manifest(name)
    pcap = CAPTURES / m["capture"]
    out = _tshark("-r", str(pcap), "-q", "-z", "conv,tcp", "-z", "conv,udp")
    counts: dict = defaultdict(int)
    kind = None
    for line in out.splitlines():
        if line.strip().endswith("Conversations"):
            kind = line.split()[0].lower()
        elif "<->" in line:
            counts[kind] += 1
    assert counts.get("tcp", 0) == m["tcp_conversations"] and counts.get("udp", 0) == m["udp_conversations"]
    assert not _frames(pcap, "_ws.malformed || _ws.expert.severity == error")
    retrans, ooo = _frames(pcap, "tcp.analysis.retransmission"), _frames(pcap, "tcp.analysis.out_of_order")
    args = ["-r", str(pcap), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
    for f in _FIELDS:
        args += ["-e", f]
    seen: dict = {}
    n = 0
    for line in _tshark(*args).splitlines():
        row = dict(zip(_FIELDS, line.split("\t")))
        n += 1
        num = int(row["frame.number"])
        if row["tcp.srcport"]:
            proto, sp, dp, plen = "tcp", int(row["tcp.srcport"]), int(row["tcp.dstport"]), int(row["tcp.len"])
        else:
            proto, sp, dp, plen = "udp", int(row["udp.srcport"]), int(row["udp.dstport"]), int(row["udp.length"]) - 8
        fwd, rev = (proto, row["ip.src"], sp, row["ip.dst"], dp), (proto, row["ip.dst"], dp, row["ip.src"], sp)
        key, side = (rev, "resp") if rev in seen else (fwd, "orig")
        c = seen.setdefault(key, defaultdict(int))
        c[f"{side}_pkts"] += 1
        c[f"{side}_ip_bytes"] += int(row["ip.len"])
        c[f"{side}_bytes"] += 0 if num in retrans else plen
        c["retransmissions"] += num in retrans
        c["out_of_order"] += num in ooo
    assert n == m["packet_count"]
    expected = {(c["proto"], c["orig_h"], c["orig_p"], c["resp_h"], c["resp_p"]): c for c in m["conversations"]}
    assert set(seen) == set(expected)
    for key, exp in expected.items():
        for f in ("orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes",
                  "retransmissions", "out_of_order"):
            assert seen[key][f] == exp[f], (key, f, seen[key][f], exp[f])
    assert _tshark("-r", str(pcap), "-Y", "tls.handshake.extensions_server_name", "-T", "fields", "-e",
                   "tls.handshake.extensions_server_name").split() == m["tls_server_names"]


@needs_tshark
def test_tshark_decodes_the_application_layers():
    def fields(scenario, flt, *fs):
        args = ["-r", str(CAPTURES / f"{SCENARIOS[scenario]}.pcap"), "-Y", flt, "-T", "fields"]
        for f in fs:
            args += ["-e", f]
        return [line.split("\t") for line in _tshark(*args).splitlines()]

    (row,) = fields("c", "http.request", "http.content_encoding", "http.file_data")
    assert row[0] == "gzip" and '"tracking_number": "1Z' in row[1]  # tshark inflates our deflate stream
    (row,) = fields("d", "http.request", "http.transfer_encoding", "http.file_data")
    assert row[0] == "chunked" and row[1].startswith("customer_id,name,email")
    (row,) = fields("e", "http.request", "mime_multipart.header.content-type")
    assert row[0] == "text/csv"
    cmds = fields("f", "ftp.request", "ftp.request.command")
    assert [c[0] for c in cmds].count("PORT") == 1 and [c[0] for c in cmds].count("PASV") == 1
    assert len(fields("f", "ftp-data", "frame.number")) > 20
    (row,) = fields("j", "imf", "imf.from", "mime_multipart.header.content-type")
    assert "exports@dc-north.example.com" in row[0] and "text/csv" in row[1]
    assert len(fields("i", "dns.flags.response == 0", "dns.qry.name")) == 40


# ---------------------------------------------------------------------------
# independent recount from the pcap bytes
# ---------------------------------------------------------------------------

def _streams(pcap: Path) -> dict:
    """{(proto, orig 5-tuple side...): {"orig": bytes, "resp": bytes}} by sequence number (TCP) or order (UDP)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import RawPcapReader
    from scapy.layers.l2 import Ether

    segs: dict = {}
    udp: dict = {}
    for raw, _meta in RawPcapReader(str(pcap)):
        pkt = Ether(raw)
        ip = pkt[IP]
        if TCP in pkt:
            t = pkt[TCP]
            fwd, rev = ("tcp", ip.src, t.sport, ip.dst, t.dport), ("tcp", ip.dst, t.dport, ip.src, t.sport)
            key, side = (rev, "resp") if rev in segs else (fwd, "orig")
            d = segs.setdefault(key, {"orig": {}, "resp": {}, "isn": {}})
            if t.flags.S:
                d["isn"][side] = t.seq
            data = bytes(t.payload)
            if data:
                d[side][(t.seq - d["isn"][side] - 1) % 2**32] = data
        elif UDP in pkt:
            u = pkt[UDP]
            fwd, rev = ("udp", ip.src, u.sport, ip.dst, u.dport), ("udp", ip.dst, u.dport, ip.src, u.sport)
            key, side = (rev, "resp") if rev in udp else (fwd, "orig")
            udp.setdefault(key, {"orig": [], "resp": []})[side].append(bytes(u.payload))
    out = {}
    for key, d in segs.items():
        out[key] = {}
        for side in ("orig", "resp"):
            buf = bytearray()
            for off, data in sorted(d[side].items()):
                assert off <= len(buf), f"hole in {key} {side}"
                buf[off:off + len(data)] = data
            out[key][side] = bytes(buf)
    for key, d in udp.items():
        out[key] = {"orig": d["orig"], "resp": d["resp"]}
    return out


EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
UPS = re.compile(rb"\b1Z[0-9A-Z]{16}\b")


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        eol = body.index(b"\r\n", pos)
        n = int(body[pos:eol].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += body[eol + 2:eol + 2 + n]
        pos = eol + 2 + n + 2


def _decoded(data, layers: list[str]) -> bytes:
    """The data sender's bytes plus every decoded layer the scenario uses (recount input)."""
    if "dns" in layers:
        text = b""
        from scapy.layers.dns import DNS
        for q in data:
            label = DNS(q).qd[0].qname.split(b".")[0].decode()
            for dec in (lambda s: base64.b32decode(s + "=" * (-len(s) % 8)),
                        lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))):
                try:
                    text += dec(label) + b"\n"
                    break
                except (binascii.Error, ValueError):
                    continue
        return text
    parts = [data]
    if data.startswith((b"POST ", b"PUT ", b"GET ", b"HTTP/")):
        head, _, body = data.partition(b"\r\n\r\n")
        h = head.lower()
        if b"transfer-encoding: chunked" in h:
            body = _dechunk(body)
        if b"content-encoding: gzip" in h:
            body = gzip.decompress(body)
        parts.append(body)
    if b"\r\nDATA\r\n" in data:
        msg = data.split(b"\r\nDATA\r\n", 1)[1]
        for part in email.message_from_bytes(msg).walk():
            payload = part.get_payload(decode=True)
            if payload:
                parts.append(payload)
    return b"\n".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_recount_from_pcap(name):
    m = _manifest(name)
    streams = _streams(CAPTURES / m["capture"])
    for r in m["content"]:
        key = (r["proto"], r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"])
        side = r["data_sender"] or "orig"
        text = _decoded(streams[key][side], r["layers"])
        emails = {e.lower().decode() for e in EMAIL.findall(text)}
        if r["payload_type"] == "tls-encrypted":
            emails = set()
        incidental = set(r["incidental"].get("email", []))
        assert incidental <= emails
        assert len(emails - incidental) == r["identifiers"]["email"], (r["id"], sorted(emails)[:5])
        assert len(set(UPS.findall(text))) == r["identifiers"]["tracking_ups"], r["id"]
        for cls, example in r["examples"].items():
            if cls in ("email", "tracking_ups", "payment_card", "iban", "person_name"):
                assert example.encode() in text, (r["id"], cls, example)


# ---------------------------------------------------------------------------
# exact data matching against the customer master
# ---------------------------------------------------------------------------

def test_edm_rows_match_the_customer_master(tmp_path):
    pytest.importorskip("phonenumbers")
    from inspector.content.edm import EDMIndex, build_fingerprint
    sys.path.insert(0, str(CAPTURES))
    try:
        import generate_content as gc
    finally:
        sys.path.remove(str(CAPTURES))
    master = tmp_path / "customers.csv"
    master.write_bytes(gc.master_csv())
    build_fingerprint(master, ["email", "phone", "name"], tmp_path / "c.edm",
                      classes={"email": "email", "phone": "phone", "name": "person_name"}, region="US")
    ix = EDMIndex.load(tmp_path / "c.edm")
    assert ix.rows == 1000
    for scenario, name in SCENARIOS.items():
        rows = {(r["proto"], r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"]): r for r in _manifest(name)["content"]}
        for key, _sender, values in gc.planted_values(scenario):
            assert ix.match_values(values) == rows[key]["edm_rows"], (scenario, key)
