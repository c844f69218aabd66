"""Exact data matching: inspector/content/edm.py (fingerprint files, n-of-m row matching, the CLI part)."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from inspector.cli import fingerprint as fingerprint_cli
from inspector.content import edm
from inspector.content.edm import EDMError, EDMIndex, build_fingerprint, normalise

ROWS = [
    # id, name, email, phone, street, tracking
    ("1", "José Núñez", "Jose.Nunez@Example.com", "+1 202 555 0143", "12 Maple Ave, Apt 4", "1Z999AA10123456784"),
    ("2", "Jane  Doe", " jane.doe@example.org ", "(212) 555-0199", "400 Test Avenue", "1Z 999 AA1 0123 4567 84x"),
    ("3", "Sam Sample", "sam@example.com", "", "9 Demo Lane", ""),
    ("4", "Erika Mustermann", "erika.mustermann@example.com", "+44 20 7946 0123", "Musterstrasse 1", ""),
    ("5", "Jane Doe", "jane.doe2@example.org", "+1 312 555 0100", "7 Other Road", ""),
]


def _csv(rows=ROWS, sep=",") -> str:
    def q(v):
        if sep == "," and any(c in v for c in ',"\n'):
            return '"' + v.replace('"', '""') + '"'
        return v
    lines = [sep.join(["id", "name", "email", "phone", "street", "tracking"])]
    lines += [sep.join(q(v) for v in r) for r in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture
def src(tmp_path) -> Path:
    p = tmp_path / "customers.csv"
    p.write_text(_csv(), encoding="utf-8")
    return p


@pytest.fixture
def index(src, tmp_path) -> EDMIndex:
    out = tmp_path / "edm" / "customers.edm"
    build_fingerprint(src, ["email", "phone", "name"], out)
    return EDMIndex.load(out)


def _parser():
    ap = argparse.ArgumentParser(prog="inspector")
    sub = ap.add_subparsers(dest="command")
    fingerprint_cli.add_parser(sub)
    return ap


def run_cli(argv, capsys):
    args = _parser().parse_args(["fingerprint", *map(str, argv)])
    rc = fingerprint_cli.run(args, {})
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# ---------------------------------------------------------------------------
# round trip and file contents
# ---------------------------------------------------------------------------

def test_round_trip(index):
    assert index.rows == 5
    assert index.column_names == ["email", "phone", "name"]
    assert index.classes == {"email": "email", "phone": "phone", "name": "person_name"}
    assert index.min_columns == 2
    assert index.header["rows_below_min"] == 0
    cols = {c["name"]: c for c in index.header["columns"]}
    assert cols["phone"]["values"] == 4 and cols["phone"]["distinct"] == 4
    assert cols["name"]["values"] == 5 and cols["name"]["distinct"] == 4  # "Jane  Doe" == "Jane Doe"
    for _id, name, email, phone, _street, _t in ROWS:
        assert index.contains("email", email)
        assert index.contains("name", name)
        if phone:
            assert index.contains("phone", phone)
    assert not index.contains("email", "nobody@example.com")
    assert not index.contains("name", "Nobody")


def test_file_layout(src, tmp_path):
    out = tmp_path / "x.edm"
    salt = bytes(range(16))
    hdr = build_fingerprint(src, ["email"], out, salt=salt)
    data = out.read_bytes()
    assert data[:8] == edm.MAGIC
    assert int.from_bytes(data[8:10], "little") == edm.VERSION
    assert data[12:28] == salt
    assert len(data) == hdr["bytes"] and len(data) % 8 == 0
    import hashlib
    import hmac
    digest = hmac.new(salt, b"sam@example.com", hashlib.sha256).digest()[:8]
    assert digest in data  # HMAC-SHA256(salt, normalised value), first 8 bytes, stored raw
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_no_raw_values_in_file(src, tmp_path):
    out = tmp_path / "c.edm"
    build_fingerprint(src, ["email", "phone", "name", "street", "tracking"], out)
    data = out.read_bytes()
    needles = set()
    for row in ROWS:
        for v in row[1:]:
            if not v.strip():
                continue
            needles |= {v, v.strip(), v.lower(), v.upper()}
            for kind in ("email", "phone", "name", "id", "digits"):
                n = normalise(kind, v)
                if len(n) >= 4:
                    needles.add(n)
    needles |= {"Núñez", "nunez", "Mustermann", "mustermann", "jane.doe", "5550143", "79460123", "Maple",
                "999AA1"}
    for n in needles:
        for enc in ("utf-8", "utf-16-le", "latin-1"):
            try:
                b = n.encode(enc)
            except UnicodeEncodeError:
                continue
            assert b not in data, f"raw value {n!r} ({enc}) found in the fingerprint"


def test_salt_is_random(src, tmp_path):
    a, b = tmp_path / "a.edm", tmp_path / "b.edm"
    build_fingerprint(src, ["email"], a)
    build_fingerprint(src, ["email"], b)
    da, db = a.read_bytes(), b.read_bytes()
    assert da[12:28] != db[12:28]
    assert da[-200:] != db[-200:]  # same values, different hashes
    assert EDMIndex.load(a).contains("email", "sam@example.com")
    assert EDMIndex.load(b).contains("email", "sam@example.com")


# ---------------------------------------------------------------------------
# n-of-m
# ---------------------------------------------------------------------------

def test_n_of_m_counting(index):
    # one column of a row is not enough with the default n = min(2, 3) = 2
    assert index.match({"email": {"sam@example.com"}}) == 0
    assert index.match({"email": {"sam@example.com"}, "name": {"Sam Sample"}}) == 1
    # row 3 has no phone: email + name still reach 2
    assert index.match({"email": {"sam@example.com"}, "phone": {"+12025550143"}}) == 0
    # "Jane Doe" is the name of rows 2 and 5: with row 2's phone only row 2 counts
    assert index.match({"name": {"jane doe"}, "phone": {"+1 212-555-0199"}}) == 1
    assert index.match({"name": {"jane doe"}, "email": {"jane.doe@example.org", "jane.doe2@example.org"}}) == 2
    # values from different rows do not add up to one row
    assert index.match({"email": {"sam@example.com"}, "phone": {"+44 20 7946 0123"}}) == 0
    everything = {"email": {r[2] for r in ROWS}, "phone": {r[3] for r in ROWS}, "name": {r[1] for r in ROWS}}
    assert index.match(everything) == 5
    assert index.match(everything, min_columns=3) == 4  # row 3 has no phone
    assert index.match({"email": {r[2] for r in ROWS}}, min_columns=1) == 5
    assert list(index.matched_rows({"email": {"sam@example.com"}, "name": {"sam sample"}})) == [2]
    assert index.match({}) == 0
    with pytest.raises(KeyError):
        index.match({"street": {"x"}})


def test_min_columns_option_is_stored(src, tmp_path):
    out = tmp_path / "m.edm"
    build_fingerprint(src, ["email", "phone", "name"], out, min_columns=3)
    ix = EDMIndex.load(out)
    assert ix.min_columns == 3
    assert ix.header["rows_below_min"] == 1  # row 3 (no phone) can never match
    assert ix.match({"email": {"sam@example.com"}, "name": {"sam sample"}}) == 0
    assert ix.match({"email": {"jose.nunez@example.com"}, "name": {"jose nunez"}, "phone": {"202-555-0143"}}) == 1
    single = tmp_path / "s.edm"
    build_fingerprint(src, ["email"], single)
    assert EDMIndex.load(single).min_columns == 1  # min(2, m) with m = 1
    assert EDMIndex.load(single).match({"email": {"SAM@example.com"}}) == 1


def test_match_values_by_data_class(src, tmp_path):
    out = tmp_path / "t.edm"
    build_fingerprint(src, ["email", "phone", "name", "tracking"], out,
                      classes={"name": "person_name", "tracking": "tracking_ups"})
    ix = EDMIndex.load(out)
    assert ix.classes == {"email": "email", "phone": "phone", "name": "person_name", "tracking": "tracking_ups"}
    assert ix.match_values({"email": {"jose.nunez@example.com"}, "tracking_ups": {"1Z999AA10123456784"}}) == 1
    # any tracking_* class is looked up in the tracking column
    assert ix.match_values({"email": {"jose.nunez@example.com"}, "tracking_other": {"1z999aa10123456784"}}) == 1
    assert ix.match_values({"person_name": {"Sam Sample"}, "email": {"sam@example.com"},
                            "iban": {"GB82WEST12345698765432"}}) == 1
    assert ix.match_values({"iban": {"x"}}) == 0


def test_accumulator_combines_payloads_of_one_flow(index):
    acc = index.accumulator()
    acc.add("email", ["sam@example.com"])
    assert acc.rows_matched() == 0
    acc.add_values({"person_name": {"SAM SAMPLE"}})
    assert acc.rows_matched() == 1
    acc.add("email", ["sam@example.com"])  # seeing a value twice changes nothing
    assert acc.matched_rows() == [2]


def test_column_classes_guessed_from_names(tmp_path):
    p = tmp_path / "g.csv"
    p.write_text("Full Name,E-Mail,Mobile,UPS Tracking,SSCC,IBAN,Card Number,Street Address,notes\n"
                 "A B,a@example.com,+12025550143,1Z999AA10123456784,006141411234567890,GB82WEST12345698765432,"
                 "4111111111111111,1 Road,x\n")
    out = tmp_path / "g.edm"
    cols = ["Full Name", "E-Mail", "Mobile", "UPS Tracking", "SSCC", "IBAN", "Card Number", "Street Address",
            "notes"]
    build_fingerprint(p, cols, out)
    ix = EDMIndex.load(out)
    assert list(ix.classes.values()) == ["person_name", "email", "phone", "tracking_ups", "sscc", "iban",
                                        "payment_card", "postal_address", None]
    assert ix.contains("Card Number", "4111 1111 1111 1111")
    assert ix.contains("notes", " X ")


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,a,b", [
    ("email", "  Jane.Doe@Example.COM ", "jane.doe@example.com"),
    ("email", "mailto:<jane.doe@example.com>", "JANE.DOE@example.com"),
    ("phone", "+1 (202) 555-0143", "202.555.0143"),
    ("phone", "+12025550143", "1-202-555-0143"),
    ("phone", "+44 20 7946 0123", "+44 (0)20 7946-0123"),
    ("name", "José  Núñez", "jose nunez"),
    ("name", "ERIKA\tMUSTERMANN", "Erika Mustermann"),
    ("name", "Zoë Ødegaard", "zoe ødegaard"),
    ("name", "Straße", "STRASSE"),
    ("id", "1z 999 aa1 0123 4567 84", "1Z999AA10123456784"),
    ("id", "GB82 WEST 1234 5698 7654 32", "gb82west12345698765432"),
    ("id", "RR-123 456 785-GB", "RR123456785GB"),
    ("digits", "4111 1111-1111 1111", "4111111111111111"),
])
def test_normalisation_equivalences(kind, a, b):
    assert normalise(kind, a) == normalise(kind, b) != ""


def test_phone_region():
    assert normalise("phone", "020 7946 0123", "GB") == "+442079460123"
    assert normalise("phone", "(202) 555-0143", "US") == "+12025550143"
    assert normalise("phone", "020 7946 0123", "GB") == normalise("phone", "+44 20 7946 0123", "US")
    # unparsable text falls back to '#digits' and never equals an E.164 value
    assert normalise("phone", "ext 12") == "#12"
    assert normalise("phone", "call me") == ""


@pytest.mark.parametrize("kind,v", [
    ("email", " A@B.example "), ("phone", "+1 (202) 555-0143"), ("phone", "12"), ("phone", "020 7946 0123"),
    ("name", " José  Núñez "), ("id", "1z 999"), ("digits", "41-11"), ("text", "Maple Ave, Apt 4"),
])
def test_normalisation_is_idempotent(kind, v):
    once = normalise(kind, v)
    assert normalise(kind, once) == once


def test_region_is_applied_to_candidates(tmp_path):
    p = tmp_path / "uk.csv"
    p.write_text("name,phone\nErika Mustermann,020 7946 0123\n")
    out = tmp_path / "uk.edm"
    build_fingerprint(p, ["name", "phone"], out, region="GB")
    ix = EDMIndex.load(out)
    assert ix.region == "GB"
    assert ix.match({"name": {"erika mustermann"}, "phone": {"+44 20 7946 0123"}}) == 1
    assert ix.match({"name": {"erika mustermann"}, "phone": {"020-7946-0123"}}) == 1


# ---------------------------------------------------------------------------
# input formats
# ---------------------------------------------------------------------------

def test_tsv_semicolon_bom_and_quoted_newlines(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text(_csv(sep="\t"), encoding="utf-8")
    build_fingerprint(tsv, ["email", "name"], tmp_path / "t.edm")
    assert EDMIndex.load(tmp_path / "t.edm").match({"email": {"sam@example.com"}, "name": {"sam sample"}}) == 1
    semi = tmp_path / "c.txt"
    semi.write_bytes(b"\xef\xbb\xbfname;email\r\nSam Sample;sam@example.com\r\n\r\nA B;a@example.com\r\n")
    hdr = build_fingerprint(semi, ["email", "name"], tmp_path / "s.edm")
    assert hdr["rows"] == 2
    multi = tmp_path / "m.csv"
    multi.write_text('name,street,email\nSam Sample,"9 Demo Lane\nSpringfield",sam@example.com\n')
    hdr = build_fingerprint(multi, ["email", "street"], tmp_path / "m.edm")
    ix = EDMIndex.load(tmp_path / "m.edm")
    assert hdr["rows"] == 1 and ix.contains("street", "9 demo lane springfield")


def test_latin1_encoding(tmp_path):
    p = tmp_path / "l.csv"
    p.write_bytes("name,email\nJosé Núñez,j@example.com\n".encode("latin-1"))
    build_fingerprint(p, ["name", "email"], tmp_path / "l.edm", encoding="latin-1")
    assert EDMIndex.load(tmp_path / "l.edm").contains("name", "JOSE NUNEZ")


# ---------------------------------------------------------------------------
# errors: one line, with file and line
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("content,line,fragment", [
    (b"id,name,email\n1,A,a@example.com\n2,B\n", 3, "expected 3 fields"),
    (b'id,name,email\n1,"A\nB",a@example.com\n2,B,b@example.com,x\n', 4, "expected 3 fields"),
    (b"id,name,email\n1,A,a@example.com\n2,\xff\xfe,b@example.com\n", 3, "not valid utf-8"),
    (b"id,name,email\n1,A,a@exa\x00mple.com\n", 2, "NUL byte at column 10"),
    (b'id,name,email\n1,"A"x,a@example.com\n', 2, "bad CSV"),
    (b"", 1, "empty file"),
    (b"id,name\n1,A\n", 1, "no column 'email'"),
    (b"id,email,EMAIL,name\n1,a,b,c\n", 1, "duplicate column"),
])
def test_bad_input_one_error_line(tmp_path, capsys, content, line, fragment):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    rc, out, err = run_cli([p, "--columns", "email,name", "--out", tmp_path / "o.edm"], capsys)
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"inspector: error: {p}:{line}: "), err
    assert fragment in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.edm").exists()


def test_bad_input_never_echoes_values(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("name,email\nSecret Person,secret@example.com,extra\n")
    rc, _out, err = run_cli([p, "--columns", "email,name", "--out", tmp_path / "o.edm"], capsys)
    assert rc == 2 and "secret" not in err.lower()


@pytest.mark.parametrize("extra,fragment", [
    (["--min-columns", "3"], "--min-columns must be between 1 and 2"),
    (["--min-columns", "0"], "--min-columns must be between 1 and 2"),
    (["--classes", "email=mail"], "unknown data class"),
    (["--classes", "phone=phone"], "not in --columns"),
    (["--region", "XX"], "not a phone-number region"),
    (["--encoding", "nope-8"], "unknown encoding"),
])
def test_bad_arguments(src, tmp_path, capsys, extra, fragment):
    rc, _out, err = run_cli([src, "--columns", "email,name", "--out", tmp_path / "o.edm", *extra], capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and fragment in err, err


def test_missing_file(tmp_path, capsys):
    rc, _out, err = run_cli([tmp_path / "nope.csv", "--columns", "email", "--out", tmp_path / "o.edm"], capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and "nope.csv: cannot read" in err


def test_cli_success_summary(src, tmp_path, capsys):
    out = tmp_path / "signatures" / "edm" / "customers.edm"
    rc, stdout, err = run_cli([src, "--columns", "email,phone,name", "--out", out,
                               "--classes", "email=email,phone=phone,name=person_name", "--min-columns", "2"],
                              capsys)
    assert rc == 0, err
    assert out.is_file() and not Path(str(out) + ".tmp").exists()
    assert "5 rows" in stdout and "2 of 3" in stdout and "empty in 1 of 5 rows" in stdout
    assert "jane" not in stdout.lower()
    rc, stdout, _ = run_cli([src, "--columns", "email", "--out", out, "-q"], capsys)
    assert rc == 0 and stdout == ""


def test_load_rejects_bad_files(src, tmp_path):
    good = tmp_path / "g.edm"
    build_fingerprint(src, ["email", "name"], good)
    data = good.read_bytes()
    cases = {
        "magic.edm": b"PK\x03\x04" + data[4:],
        "trunc.edm": data[:-50],
        "flip.edm": data[:100] + bytes([data[100] ^ 1]) + data[101:],
        "empty.edm": b"",
        "version.edm": data[:8] + (9).to_bytes(2, "little") + data[10:],
    }
    for name, blob in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(EDMError) as ei:
            EDMIndex.load(p)
        msg = str(ei.value)
        assert msg.startswith(str(p)) and "\n" not in msg
    with pytest.raises(EDMError, match="cannot read"):
        EDMIndex.load(tmp_path / "missing.edm")


# ---------------------------------------------------------------------------
# size and speed
# ---------------------------------------------------------------------------

def test_large_file_speed(tmp_path):
    n = 100_000
    p = tmp_path / "big.csv"
    with open(p, "w", encoding="utf-8") as f:
        f.write("customer_id,name,email,phone\n")
        for i in range(n):
            f.write(f"C{i:07d},Person{i} Surname{i % 977},person{i}@example.com,+1 202 555 {i % 10000:04d}\n")
    out = tmp_path / "big.edm"
    t0 = time.perf_counter()
    hdr = build_fingerprint(p, ["email", "phone", "name"], out)
    t_build = time.perf_counter() - t0
    assert hdr["rows"] == n
    # 3 columns x (8-byte hash per distinct value + 4-byte offset + 4-byte row id)
    assert os.path.getsize(out) < n * 3 * 16 + 4096
    t0 = time.perf_counter()
    ix = EDMIndex.load(out)
    t_load = time.perf_counter() - t0
    cand = {"email": {f"person{i}@example.com" for i in range(0, n, 50)} | {f"x{i}@example.org" for i in range(500)},
            "name": {f"person{i} surname{i % 977}" for i in range(0, n, 100)}}
    t0 = time.perf_counter()
    got = ix.match(cand)
    t_match = time.perf_counter() - t0
    assert got == n // 100
    # phones repeat every 10,000 rows: one phone + one email still pins a single row
    assert ix.match({"email": {"person12345@example.com"}, "phone": {"+12025552345"}}) == 1
    assert t_build < 30, f"fingerprinting 100k rows took {t_build:.1f}s"
    assert t_load < 2, f"loading took {t_load:.2f}s"
    assert t_match < 2, f"matching 2,500 candidates took {t_match:.2f}s"


def test_utf16_file(tmp_path):
    p = tmp_path / "w.csv"
    p.write_text("name,email\nJosé Núñez,j@example.com\n", encoding="utf-16")
    build_fingerprint(p, ["name", "email"], tmp_path / "w.edm", encoding="utf-16")
    assert EDMIndex.load(tmp_path / "w.edm").match({"name": {"jose nunez"}, "email": {"J@example.com"}}) == 1
    with pytest.raises(EDMError, match=r"w.csv:1: NUL byte"):
        build_fingerprint(p, ["name", "email"], tmp_path / "w.edm")
