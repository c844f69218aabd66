"""files.jsonl (Zeek's files.log) and ``scan --extract-files``.

Oracles:
* tshark ``--export-objects http|imf|ftp-data`` on every bundled capture: the sha256 of each HTTP body
  (de-chunked, gzip undone), of each FTP data transfer and of each leaf MIME part of each e-mail (the
  exported .eml parsed with Python's ``email`` package; a multipart HTTP body split the same way) must
  be the sha256 of exactly one files.jsonl record of that source, and the other way round;
* Zeek's own files.log baselines in the shared corpus (fuid-independent fields);
* unit checks of gaps, caps, name collisions, masking and the unwritable extraction directory.
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from inspector.cli import main
from inspector.content.files import FILES_FIELDS, Extractor, FilesStage, fuid

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "captures"
SITE = str(CAPTURES / "site-dc-north.yaml")
TSHARK = shutil.which("tshark")
NO_FILES = {"content-h-x12-tcp.pcap", "content-i-dns-exfil.pcap", "dc-north-exfil.pcap"}
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not on PATH")
BUNDLED = sorted(p.name for p in CAPTURES.glob("content-*.pcap")) + sorted(p.name for p in CAPTURES.glob("dc-north-*.pcap"))


def _scan(pcaps, out: Path, *extra) -> int:
    return main(["scan", *[str(CAPTURES / p) if not os.path.isabs(str(p)) else str(p) for p in pcaps],
                 "--site", SITE, "--out", str(out), "-q", *extra], env={})


def _files(out: Path) -> list[dict]:
    path = out / "files.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _leaves(raw: bytes) -> list[bytes]:
    """Decoded leaf entities of a MIME message (Python's email package: an independent parser)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if payload:
            out.append(payload)
    return out


def _tshark_objects(pcap: Path, proto: str, tmp: Path) -> list[tuple[str, bytes]]:
    d = tmp / f"export-{proto}"
    subprocess.run([TSHARK, "-r", str(pcap), "-q", "--export-objects", f"{proto},{d}"], check=True,
                   capture_output=True, timeout=120)
    return [(p.name, p.read_bytes()) for p in sorted(d.iterdir())] if d.is_dir() else []


def _oracle(pcap: Path, tmp: Path) -> dict:
    """source -> Counter of sha256, from tshark's exported objects."""
    want = {"HTTP": Counter(), "SMTP": Counter(), "FTP_DATA": Counter()}
    for _name, body in _tshark_objects(pcap, "http", tmp):
        first = body.split(b"\r\n", 1)[0]
        if first.startswith(b"--") and len(first) < 200 and body.rstrip().endswith(first + b"--"):
            # a multipart body: each leaf part is a file (Zeek's semantics), not the whole body
            head = b"Content-Type: multipart/form-data; boundary=\"" + first[2:] + b"\"\r\n\r\n"
            want["HTTP"].update(_sha(p) for p in _leaves(head + body))
        else:
            want["HTTP"][_sha(body)] += 1
    for _name, eml in _tshark_objects(pcap, "imf", tmp):
        want["SMTP"].update(_sha(p) for p in _leaves(eml))
    for _name, data in _tshark_objects(pcap, "ftp-data", tmp):
        want["FTP_DATA"][_sha(data)] += 1
    return want


@needs_tshark
@pytest.mark.parametrize("pcap", BUNDLED)
def test_hashes_match_tshark_export_objects(pcap, tmp_path):
    out = tmp_path / "out"
    assert _scan([pcap], out) == 0
    recs = _files(out)
    want = _oracle(CAPTURES / pcap, tmp_path)
    for source, counts in want.items():
        got = Counter(r["sha256"] for r in recs if r["source"] == source)
        assert got == counts, f"{pcap} {source}: inspector {sorted(got.items())} tshark {sorted(counts.items())}"
    assert all(r["sha256"] is not None and r["missing_bytes"] == 0 for r in recs)
    # captures without HTTP, SMTP or FTP payload (raw TCP X12, DNS, TLS): nothing on either side
    assert bool(sum(want.values(), Counter())) is (pcap not in NO_FILES), pcap


def test_records_shape_and_semantics(tmp_path):
    """Every field declared; uploads leave, their responses do not; filenames from the protocol;
    FTP active (STOR over PORT) and passive (STOR over PASV) both seen; fuids unique and stable."""
    out = tmp_path / "a"
    assert _scan(["content-a-http-json.pcap", "content-e-http-multipart.pcap", "content-f-ftp.pcap",
                  "content-j-smtp-attachment.pcap", "dc-north-day.pcap"], out) == 0
    recs = _files(out)
    assert recs and all(tuple(r) == FILES_FIELDS for r in recs)
    assert len({r["fuid"] for r in recs}) == len(recs)
    assert all(len(r["fuid"]) == 18 and r["fuid"][0] == "F" for r in recs)
    assert all(r["uids"] == [r["uid"]] and r["parent_fuid"] is None for r in recs)
    http = [r for r in recs if r["source"] == "HTTP" and r["id.resp_h"] == "192.0.2.80"]
    assert [(r["is_orig"], r["leaving"], r["mime_type"]) for r in http] == \
        [(True, True, "application/json"), (False, False, "application/json")]
    assert http[0]["seen_bytes"] == http[0]["total_bytes"] == 59028
    ftp = [r for r in recs if r["source"] == "FTP_DATA"]
    assert len(ftp) == 2 and {r["id.resp_p"] == 20 or r["id.orig_p"] == 20 for r in ftp} == {True, False}
    assert all(r["filename"] == "customers-20251125.csv" and r["leaving"] and r["seen_bytes"] == 20904
               for r in ftp)
    # active mode: the server connected from port 20 and the client (its responder) sent the file
    active = next(r for r in ftp if r["id.orig_p"] == 20)
    assert active["is_orig"] is False
    smtp = [r for r in recs if r["source"] == "SMTP"]
    assert [r["filename"] for r in smtp] == [None, "customers-20251125.csv"]
    assert all(r["is_orig"] and r["leaving"] for r in smtp)
    parts = [r for r in recs if r["id.resp_h"] == "203.0.113.92" and r["is_orig"]]
    assert "customers-export-20251125.csv" in [r["filename"] for r in parts]
    internal = [r for r in recs if r["id.resp_h"].startswith("172.20.") and r["id.orig_h"].startswith("172.20.")]
    assert internal and not any(r["leaving"] for r in internal)
    again = tmp_path / "b"
    assert _scan(["content-a-http-json.pcap", "content-e-http-multipart.pcap", "content-f-ftp.pcap",
                  "content-j-smtp-attachment.pcap", "dc-north-day.pcap"], again) == 0
    assert (again / "files.jsonl").read_bytes() == (out / "files.jsonl").read_bytes()


def test_fuid_is_deterministic_and_distinct():
    a = fuid("CabcdefghijKLMNOP1", True, 0)
    assert a == fuid("CabcdefghijKLMNOP1", True, 0)
    assert len({a, fuid("CabcdefghijKLMNOP1", False, 0), fuid("CabcdefghijKLMNOP1", True, 1),
                fuid("CabcdefghijKLMNOP2", True, 0)}) == 4


class _Ctx:
    uid, ts, orig_h, orig_p, resp_h, resp_p = "Ctest000000000001", 1.0, "10.0.0.1", 40000, "192.0.2.1", 21


def _stage(extractor=None):
    got = []
    st = FilesStage(emit=lambda log, rec: got.append((log, rec)), extractor=extractor)
    return st, got


def test_data_channel_gap_counts_missing_and_drops_hashes():
    st, got = _stage()
    ff = st.new_flow(_Ctx(), True)
    st.open_channel(ff, "FTP_DATA", "report.csv", 30)
    st.channel_events(ff, True, [("data", b"a,b\n" * 2), ("gap", 10), ("data", b"c,d\n" * 3)], 2.0)
    st.end_flow(ff, 3.0)
    (log, rec), = got
    assert log == "files"
    assert (rec["seen_bytes"], rec["missing_bytes"], rec["total_bytes"]) == (20, 10, 30)
    assert rec["md5"] is rec["sha1"] is rec["sha256"] is None
    assert rec["filename"] == "report.csv" and rec["leaving"] and rec["ts"] == 2.0


def test_data_channel_hashes_incrementally():
    st, got = _stage()
    ff = st.new_flow(_Ctx(), None)
    st.open_channel(ff, "FTP_DATA")
    chunks = [os.urandom(1000) for _ in range(50)]
    for c in chunks:
        st.channel_events(ff, False, [("data", c)], 2.0)
    st.end_flow(ff, 3.0)
    rec = got[0][1]
    whole = b"".join(chunks)
    assert rec["sha256"] == _sha(whole) and rec["md5"] == hashlib.md5(whole).hexdigest()
    assert rec["seen_bytes"] == 50000 and rec["leaving"] is False and rec["is_orig"] is False


def test_http_body_truncated_or_gapped_has_no_hashes():
    st, got = _stage()
    ff = st.new_flow(_Ctx(), True)
    st.body(ff, True, {"protocol": "http", "ts": 5.0, "body_len": 100, "truncated": True, "incomplete": True,
                       "content_length": 100}, b"x" * 60)
    rec = got[0][1]
    assert (rec["seen_bytes"], rec["missing_bytes"], rec["total_bytes"], rec["sha256"]) == (60, 40, 100, None)


def test_smtp_single_part_base64_is_decoded():
    st, got = _stage()
    ff = st.new_flow(_Ctx(), True)
    payload = b"name,email\nJane,jane@example.com\n"
    import base64
    st.body(ff, True, {"protocol": "smtp", "ts": 1.0, "content_type": "text/csv; name=\"list.csv\"",
                       "content_transfer_encoding": "base64", "body_len": 48},
            base64.encodebytes(payload))
    rec = got[0][1]
    assert rec["sha256"] == _sha(payload) and rec["filename"] == "list.csv" and rec["source"] == "SMTP"


def test_filename_emails_masked_unless_show_raw():
    from inspector.content.stage import ContentStage
    from inspector.scan import Scanner
    for show_raw, masked in ((False, True), (True, False)):
        sc = Scanner(content=ContentStage(show_raw=show_raw))   # the files stage as the pipeline wires it
        files = sc.content.files
        ff = files.new_flow(_Ctx(), True)
        files.body(ff, True, {"protocol": "http", "ts": 1.0, "body_len": 3,
                              "filenames": ["export-jane.doe@example.com.csv"]}, b"a,b")
        name = sc.logs.logs["files"][0]["filename"]
        assert ("jane.doe@example.com" not in name) is masked, name
        assert name.endswith(".csv")


# -- extraction ------------------------------------------------------------------------------

def test_extract_leaving_files_by_sha256(tmp_path):
    out, ex = tmp_path / "out", tmp_path / "ex"
    assert _scan(["content-a-http-json.pcap", "content-b-http-json-reordered.pcap", "content-f-ftp.pcap",
                  "content-j-smtp-attachment.pcap", "dc-north-day.pcap"], out, "--extract-files", str(ex)) == 0
    recs = _files(out)
    leaving = [r for r in recs if r["leaving"]]
    names = sorted(p.name for p in ex.iterdir())
    assert names == sorted({r["sha256"] for r in leaving})       # content-addressed, deduplicated
    for p in ex.iterdir():
        assert _sha(p.read_bytes()) == p.name
    assert all(r["extracted"] == r["sha256"] and r["extracted_cutoff"] is False and
               r["extracted_size"] == r["seen_bytes"] for r in leaving)
    assert all(r["extracted"] is None for r in recs if not r["leaving"])
    stats = json.loads((out / "stats.json").read_text())["extracted"]
    # a and b upload the same JSON; the FTP file goes out twice (active and passive)
    assert stats["files"] == len(names) and stats["duplicates"] == len(leaving) - len(names) >= 2
    assert stats["bytes"] == sum(p.stat().st_size for p in ex.iterdir())


def test_extract_caps_and_partial(tmp_path):
    out, ex = tmp_path / "out", tmp_path / "ex"
    assert _scan(["content-f-ftp.pcap", "content-a-http-json.pcap"], out, "--extract-files", str(ex),
                 "--extract-max-bytes", "1K", "--extract-total-bytes", "1500", "--extract-all") == 0
    recs = _files(out)
    done = [r for r in recs if r["extracted"]]
    assert all(len(r["extracted"]) == 64 + len(".partial") and r["extracted"].endswith(".partial")
               for r in done if r["seen_bytes"] > 1024)
    assert sum(p.stat().st_size for p in ex.iterdir()) <= 1500
    for r in done:
        data = (ex / r["extracted"]).read_bytes()
        assert len(data) == r["extracted_size"] <= 1024
        assert r["extracted_cutoff"] is (r["extracted_size"] < r["seen_bytes"])
    stats = json.loads((out / "stats.json").read_text())["extracted"]
    assert stats["skipped_cap"] >= 1 and stats["partial"] >= 1
    assert any(not r["leaving"] and r["extracted"] for r in recs)          # --extract-all


def test_extract_never_overwrites(tmp_path):
    ex = Extractor(str(tmp_path / "ex"))
    ex.check()
    data = b"hello world\n"
    name = _sha(data)
    assert ex.write(data, name) == (name, False, len(data))
    os.chmod(tmp_path / "ex" / name, 0o444)
    assert ex.write(data, name) == (name, False, len(data))
    assert ex.stats["duplicates"] == 1 and ex.stats["files"] == 1
    # a name taken by other bytes (planted by someone else) is left alone
    planted = tmp_path / "ex" / _sha(b"other")
    planted.write_bytes(b"not these bytes")
    ex.write(b"other", _sha(b"other"))
    assert planted.read_bytes() == b"not these bytes"
    assert not [p for p in (tmp_path / "ex").iterdir() if p.name.startswith(".")]


def test_extract_dir_unwritable_is_one_error_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    target = ro / "sub"
    if os.access(ro, os.W_OK):          # root ignores permission bits: use a path under a regular file
        target = tmp_path / "file"
        target.write_text("x")
        target = target / "sub"
    rc = _scan(["content-a-http-json.pcap"], tmp_path / "out", "--extract-files", str(target))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(target) in err[0] and "Traceback" not in err[0]


def test_extract_write_failure_mid_run(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing: the scan finishes, one error line, exit 2, no temporary file left."""
    import errno

    real_link = os.link

    def full(src, dst, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "link", full)
    ex = tmp_path / "ex"
    rc = _scan(["content-a-http-json.pcap"], tmp_path / "out", "--extract-files", str(ex))
    monkeypatch.setattr(os, "link", real_link)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "No space left" in err[0]
    assert list(ex.iterdir()) == []
    assert (tmp_path / "out" / "files.jsonl").exists()


def test_size_option_rejects_garbage(tmp_path, capsys):
    assert _scan(["content-a-http-json.pcap"], tmp_path / "o", "--extract-files", str(tmp_path / "e"),
                 "--extract-max-bytes", "lots") == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# -- Zeek's files.log baselines (shared corpus) -----------------------------------------------

ZEEK_CASES = [
    # (trace, baseline, fields compared)
    ("zeek/Traces/http/get.pcap", "zeek/Baseline/scripts.base.frameworks.file-analysis.logging/files.log",
     ("source", "mime_type", "seen_bytes", "total_bytes", "missing_bytes", "md5", "sha1", "sha256", "is_orig")),
    ("zeek/Traces/smtp.pcap", "zeek/Baseline/scripts.base.protocols.smtp.attachment/files.log",
     ("source", "mime_type", "filename", "is_orig")),
    ("zeek/Traces/ftp/bigtransfer.pcap", "zeek/Baseline/core.tcp.large-file-reassembly/files.log",
     ("source", "mime_type", "is_orig")),
]


@pytest.mark.corpus
@pytest.mark.parametrize("trace,baseline,fields", ZEEK_CASES, ids=[c[0].split("/")[-1] for c in ZEEK_CASES])
def test_zeek_files_log_agreement(corpus, tmp_path, trace, baseline, fields):
    from corpus import read_zeek_log
    want = read_zeek_log(corpus / baseline)
    out = tmp_path / "out"
    assert main(["scan", str(corpus / trace), "--out", str(out), "-q"], env={}) == 0
    got = _files(out)
    assert len(got) == len(want)
    for g, w in zip(got, want):         # both in the order the files ended
        for k in fields:
            assert g[k] == w[k], f"{trace} {k}: inspector {g[k]!r} zeek {w[k]!r}"
    if "smtp" in trace:
        # Zeek's MIME analyzer keeps the CRLF before a boundary delimiter in the part's data; RFC 2046
        # (and tshark, Python's email package) give it to the delimiter: 2 bytes less on such parts.
        assert [w["seen_bytes"] - g["seen_bytes"] for g, w in zip(got, want)] == [0, 2, 2, 0]
    if "bigtransfer" in trace:
        # The directory listing agrees exactly; the 5 GB transfer wraps the 32-bit sequence space,
        # which a sequence-number reassembler cannot see: total_bytes (the 150 reply) is Zeek's
        # seen + missing, while the gap we count is 2**32 bytes short.
        assert got[0]["seen_bytes"] == want[0]["seen_bytes"] == 270
        assert got[1]["total_bytes"] == want[1]["seen_bytes"] + want[1]["missing_bytes"]
        assert got[1]["sha256"] is None and got[1]["missing_bytes"] > 0


# -- bodies longer than the analyzer keeps, and gaps inside them ------------------------------

def _http_pcap(path: Path, req: bytes, resp: bytes, drop_resp_segment: int | None = None) -> None:
    """One HTTP exchange over TCP, each direction cut into 1400-byte segments; optionally one
    response segment left out (a capture gap)."""
    from helpers.pkt import ACK, FIN, PSH, SYN, pcap_bytes, tcp_frame
    client, server, cport, sport = "172.20.1.10", "198.51.100.7", 41000, 80
    c, s = 1000, 500000
    frames = [(client, server, cport, sport, SYN, c, 0, b""), (server, client, sport, cport, SYN | ACK, s, c + 1, b""),
              (client, server, cport, sport, ACK, c + 1, s + 1, b"")]
    for i in range(0, len(req), 1400):
        frames.append((client, server, cport, sport, PSH | ACK, c + 1 + i, s + 1, req[i:i + 1400]))
    for n, i in enumerate(range(0, len(resp), 1400)):
        if n != drop_resp_segment:
            frames.append((server, client, sport, cport, PSH | ACK, s + 1 + i, c + 1 + len(req), resp[i:i + 1400]))
    frames += [(client, server, cport, sport, FIN | ACK, c + 1 + len(req), s + 1 + len(resp), b""),
               (server, client, sport, cport, FIN | ACK, s + 1 + len(resp), c + 2 + len(req), b""),
               (client, server, cport, sport, ACK, c + 2 + len(req), s + 2 + len(resp), b"")]
    t0 = 1_764_000_000_000_000_000
    path.write_bytes(pcap_bytes([(t0 + k * 100_000, tcp_frame(*f[:4], payload=f[7], flags=f[4], seq=f[5], ack=f[6],
                                                              ident=k % 65536 + 1))
                                 for k, f in enumerate(frames)]))


def test_large_bodies_hashed_whole_and_extracted(tmp_path):
    """A 3 MiB upload and a 2.5 MiB download: past the 1 MiB an HTTP body is kept, the hashes still
    cover every byte (they stream past the files stage) and extraction writes the whole file."""
    up = os.urandom(3 << 20)
    down = b"%PDF-1.4\n" + os.urandom((5 << 19) - 9)
    req = b"POST /upload HTTP/1.1\r\nHost: x.example\r\nContent-Length: %d\r\n\r\n" % len(up) + up
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; " \
           b"filename=\"report.pdf\"\r\nContent-Length: %d\r\n\r\n" % len(down) + down
    pcap = tmp_path / "big.pcap"
    _http_pcap(pcap, req, resp)
    out, ex = tmp_path / "out", tmp_path / "ex"
    assert _scan([pcap], out, "--extract-files", str(ex), "--extract-all") == 0
    got = {r["is_orig"]: r for r in _files(out)}
    assert got[True]["sha256"] == _sha(up) and got[True]["seen_bytes"] == got[True]["total_bytes"] == len(up)
    assert got[True]["md5"] == hashlib.md5(up).hexdigest() and got[True]["leaving"] is True
    assert got[False]["sha256"] == _sha(down) and got[False]["filename"] == "report.pdf"
    assert got[False]["mime_type"] == "application/pdf" and got[False]["leaving"] is False
    assert (ex / _sha(up)).read_bytes() == up and (ex / _sha(down)).read_bytes() == down


def test_body_gap_is_missing_bytes_and_partial_extract(tmp_path):
    down = os.urandom(200_000)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(down) + down
    pcap = tmp_path / "gap.pcap"
    _http_pcap(pcap, b"GET /f HTTP/1.1\r\nHost: x.example\r\n\r\n", resp, drop_resp_segment=40)
    out, ex = tmp_path / "out", tmp_path / "ex"
    assert _scan([pcap], out, "--extract-files", str(ex), "--extract-all") == 0
    rec, = [r for r in _files(out) if not r["is_orig"]]
    assert rec["missing_bytes"] == 1400 and rec["seen_bytes"] == len(down) - 1400
    assert rec["total_bytes"] == len(down) and rec["sha256"] is None
    assert rec["extracted"].endswith(".partial") and rec["extracted_cutoff"] is True
    hole = 40 * 1400 - (len(resp) - len(down))          # the lost segment's offset in the body
    assert (ex / rec["extracted"]).read_bytes() == down[:hole] + bytes(1400) + down[hole + 1400:]


def test_body_cut_by_connection_end_has_no_hashes(tmp_path):
    """The capture ends 1000 bytes into a 50,000-byte download: no hashes of a prefix."""
    down = os.urandom(50_000)
    resp = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(down) + down)
    pcap = tmp_path / "cut.pcap"
    head = len(resp) - len(down)
    _http_pcap(pcap, b"GET /f HTTP/1.1\r\nHost: x.example\r\n\r\n", resp[:head + 1000])
    out = tmp_path / "out"
    assert _scan([pcap], out) == 0
    rec, = [r for r in _files(out) if not r["is_orig"]]
    assert (rec["seen_bytes"], rec["total_bytes"], rec["sha256"]) == (1000, 50_000, None)
