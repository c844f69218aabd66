"""The shared pieces every stage uses, one module each: the severity scale, payload sniffing, MIME
parsing, configuration file lists and report formatting."""
from __future__ import annotations

import pytest

from inspector import mime, sniff
from inspector.errors import ConfigError
from inspector.report.format import clean, esc, fmt_bytes, fmt_duration, fmt_int, fmt_ts
from inspector.severity import SEVERITIES, SEVERITY_NAMES, parse_severity, severity_name, severity_rank
from inspector.yamlconf import compose, node_kind, node_line, yaml_files


# -- severity -------------------------------------------------------------------------------------

def test_severity_scale():
    assert SEVERITIES == {"critical": 1, "high": 2, "medium": 3, "low": 4}
    assert {v: k for k, v in SEVERITIES.items()} == SEVERITY_NAMES
    assert parse_severity("HIGH") == 2 and parse_severity(" low ") == 4 and parse_severity("1") == 1
    assert parse_severity(3) == 3
    for bad in (True, 0, 5, "5", "severe", None, 2.5):
        with pytest.raises(ValueError):
            parse_severity(bad)
    assert [severity_name(x) for x in (1, "2", 3.0, 4, 5, None, "x", float("inf"))] == \
        ["critical", "high", "medium", "low", "info", "info", "info", "info"]
    assert [severity_rank(x) for x in (1, 4, 0, 9, None, "abc")] == [1, 4, 5, 5, 5, 5]


def test_the_policy_and_the_reports_share_the_scale():
    from inspector.batch import baseline
    from inspector.policy import rules
    assert rules.SEVERITIES is SEVERITIES and rules.parse_severity is parse_severity
    assert baseline.SEVERITY_NAMES is SEVERITY_NAMES


# -- sniffing -------------------------------------------------------------------------------------

def _rec(ct: int, body: bytes, minor: int = 3) -> bytes:
    return bytes((ct, 3, minor)) + len(body).to_bytes(2, "big") + body


def test_tls_records_whole_and_prefix():
    hello = _rec(22, b"\x01\x00\x00\x04abcd", minor=1)
    two = hello + _rec(23, b"x" * 40)
    assert sniff.tls_records(hello) and sniff.tls_records(two, 2) and not sniff.tls_records(hello, 2)
    junk_after = hello + b"GET / HTTP/1.1\r\n"
    assert not sniff.tls_records(junk_after)                     # detection: every header must be TLS
    assert sniff.tls_records(junk_after, 1, whole=False)         # payload typing: it starts with TLS
    assert sniff.classify(junk_after)[0] == "tls-encrypted"
    for bad in (b"", b"\x16\x03", _rec(24, b"x"), _rec(22, b"", 1), b"\x16\x02\x01\x00\x05hello",
                b"\x17\x03\x03\x48\x01" + b"x" * 10):          # length > 2^14 + 2048
        assert not sniff.tls_records(bad) and not sniff.tls_records(bad, 1, whole=False)
    assert sniff.client_hello(hello) and not sniff.client_hello(_rec(22, b"\x02\x00\x00\x00"))


def test_printable_ascii_and_looks_text():
    assert sniff.printable_ascii(b"USER anonymous\r\n") and not sniff.printable_ascii(b"\x00\x01\x02abc")
    assert not sniff.printable_ascii(b"")
    assert sniff.looks_text("grüße aus köln\n".encode()) and not sniff.looks_text(b"ab\x00cd")
    assert sniff.sniff_mime(b'{"a": 1}') == "application/json" and sniff.sniff_mime(b"") is None
    assert sniff.sniff_mime(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20) == "image/png"


# -- MIME -----------------------------------------------------------------------------------------

def test_header_param_and_boundary():
    ct = 'multipart/form-data; charset=utf-8; boundary="a b;c"'
    assert mime.header_param(ct, "boundary") == "a b;c" and mime.boundary_of(ct) == "a b;c"
    assert mime.boundary_of(b"multipart/mixed; boundary=xyz") == "xyz"
    assert mime.boundary_of("multipart/mixed; boundary=" + "q" * 300) == "q" * mime.MAX_BOUNDARY
    assert mime.boundary_of("text/plain") is None and mime.boundary_of(None) is None
    assert mime.boundary_of("multipart/mixed; boundary=") is None
    assert mime.header_param("attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf", "filename") == \
        "r%C3%A9sum%C3%A9.pdf"


def test_split_entity_and_parts():
    assert mime.split_entity(b"\r\nbody") == ({}, b"body")
    assert mime.split_entity(b"Content-Type: text/plain\r\n continued\r\n\r\nhi") == \
        ({"content-type": "text/plain continued"}, b"hi")
    assert mime.split_entity(b"X: 1") == ({"x": "1"}, b"")
    assert mime.split_entity(b"X: 1", need_blank_line=True) == (None, b"")
    body = (b"preamble\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"aGVsbG8=\r\n--b\r\n\r\nraw\r\n--b--\r\nepilogue")
    assert mime.parts(body, b"b") == [({"content-type": "text/plain", "content-transfer-encoding": "base64"},
                                       b"hello"), ({}, b"raw")]
    assert [p[1] for p in mime.parts(body, b"b", decode=False)] == [b"aGVsbG8=", b"raw"]
    assert mime.multipart(body[len(b"preamble\r\n"):]) == mime.parts(body, b"b")   # boundary from line 1
    assert mime.multipart(b"not multipart") == [] and mime.multipart(None) == []
    assert len(mime.parts(b"--b\r\n\r\nx\r\n" * 50, b"b", max_parts=7)) == 7


# -- configuration files --------------------------------------------------------------------------

def test_yaml_files(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    files, err = yaml_files(d, "rule")
    assert files == [] and isinstance(err, ConfigError) and "no rule files" in str(err)
    for n in ("b.yaml", "a.yml", ".hidden.yaml", "notes.txt"):
        (d / n).write_text("[]\n")
    assert yaml_files(d, "rule") == ([str(d / "a.yml"), str(d / "b.yaml")], None)
    assert yaml_files(d / "b.yaml", "group") == ([str(d / "b.yaml")], None)
    files, err = yaml_files(tmp_path / "missing", "group")
    assert files == [] and "no such group file or directory" in str(err)


def test_compose_reports_file_and_line():
    root, err = compose(b"a: 1\nb: [x, y]\n", "f.yaml")
    assert err is None and node_kind(root) == "a mapping" and node_line(root.value[1][1]) == 2
    for text, line in ((b"a: 1\nb: [\n", 3), (b"ok: 1\n\xff\xfe\n", 2), ("a: \x07\n", 1)):
        root, err = compose(text, "f.yaml")
        assert root is None and err.path == "f.yaml" and err.line == line, (text, err)
    assert compose(b"", "f.yaml") == (None, None)


# -- report formatting ----------------------------------------------------------------------------

def test_report_format():
    assert clean("a\u202eb\x00c\nd", 0) == "a\\u202eb\\x00c d" and clean(None) == ""
    assert clean("x" * 10, 5) == "xxxx\u2026"
    assert esc('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert fmt_bytes(512) == "512 B" and fmt_bytes(1536) == "1.5 KB" and fmt_bytes(None) == "0 B"
    assert fmt_int(1234567) == "1,234,567" and fmt_int(None) == "0"
    assert fmt_ts(0) == "1970-01-01 00:00:00" and fmt_ts(None) == "-" and fmt_ts(3661, with_date=False) == "01:01:01"
    assert [fmt_duration(x) for x in (None, -1, 4.25, 42, 185, 7620, 97200)] == \
        ["-", "-", "4.2s", "42s", "3m 05s", "2h 07m", "1d 3h"]
