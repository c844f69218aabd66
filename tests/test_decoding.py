"""Bounded decoders (inspector.content.decoding): Content-Encoding with bomb limits, multipart,
base64/base32/hex runs in text, DNS label payloads."""
from __future__ import annotations

import base64
import gzip
import json
import random
import time
import zlib

import pytest

from inspector.content.decoding import decompress, dns_labels_payload, encoded_runs
from inspector.mime import boundary_of, multipart

TEXT = "".join(f"consignee: Jane Doe {i}, Hauptstraße {i % 97}, {20000 + i * 7} Hamburg, +49 40 {i * 7919 % 10**8:08d}\n"
               for i in range(400)).encode()


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


# ------------------------------------------------------------------------------------------------
# decompress

@pytest.mark.parametrize("encoding,encoded", [
    ("gzip", gzip.compress(TEXT)), ("x-gzip", gzip.compress(TEXT)), ("GZIP ", gzip.compress(TEXT)),
    ("deflate", zlib.compress(TEXT)), ("deflate", _raw_deflate(TEXT)), ("deflate", gzip.compress(TEXT)),
    ("gzip", zlib.compress(TEXT)),
])
def test_roundtrip(encoding, encoded):
    out, note = decompress(encoded, encoding)
    assert out == TEXT
    assert note is None or "declared" in note   # "gzip declared, zlib data" and the like


def test_brotli_roundtrip():
    brotli = pytest.importorskip("brotli")
    assert decompress(brotli.compress(TEXT), "br") == (TEXT, None)


def test_zstd_roundtrip():
    zstandard = pytest.importorskip("zstandard")
    assert decompress(zstandard.ZstdCompressor().compress(TEXT), "zstd") == (TEXT, None)


def test_gzip_multi_member():
    data = gzip.compress(b"first member\n") + gzip.compress(b"second member\n") + gzip.compress(b"third\n")
    assert decompress(data, "gzip") == (b"first member\nsecond member\nthird\n", None)


def test_chained_encodings_undone_in_reverse():
    brotli = pytest.importorskip("brotli")
    data = brotli.compress(gzip.compress(TEXT))        # Content-Encoding: gzip, br
    assert decompress(data, "gzip, br") == (TEXT, None)


def test_identity_and_none():
    assert decompress(b"abc", "identity") == (b"abc", None)
    assert decompress(b"abc", None) == (b"abc", None)
    assert decompress(b"abc", "") == (b"abc", None)


def test_gzip_bomb_stops_at_ratio():
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024), 9)     # 10 MiB -> ~10 KB
    assert len(bomb) < 20_000
    t0 = time.perf_counter()
    out, note = decompress(bomb, "gzip")
    assert time.perf_counter() - t0 < 2
    assert len(out) == len(bomb) * 200
    assert out == bytes(len(out))
    assert "ratio" in note and "bomb" in note


def test_bomb_stops_at_size_limit():
    bomb = gzip.compress(b"\0" * (10 * 1024 * 1024), 9)
    out, note = decompress(bomb, "gzip", limit=100_000, max_ratio=10_000)
    assert len(out) == 100_000
    assert "size limit" in note


def test_deflate_and_brotli_bombs():
    raw = _raw_deflate(b"A" * (20 * 1024 * 1024))
    out, note = decompress(raw, "deflate")
    assert len(out) == len(raw) * 200 and "ratio" in note
    brotli = pytest.importorskip("brotli")
    bb = brotli.compress(b"\0" * (50 * 1024 * 1024))
    out, note = decompress(bb, "br")
    assert len(out) == len(bb) * 200 and "ratio" in note


def test_multi_member_bomb_bounded():
    member = gzip.compress(b"\0" * 1_000_000, 9)
    out, note = decompress(member * 200, "gzip", max_ratio=1000)   # 200 MB inflated, 64 MiB limit
    assert len(out) == 64 * 1024 * 1024
    assert "size limit" in note and "bomb" in note
    out, note = decompress(member * 200, "gzip", max_ratio=10)
    assert len(out) == len(member) * 200 * 10 and "ratio" in note


def test_truncated_gzip_gives_prefix():
    full = gzip.compress(TEXT)
    out, note = decompress(full[:len(full) // 2], "gzip")
    assert 0 < len(out) < len(TEXT)
    assert TEXT.startswith(out)
    assert "truncated" in note


def test_truncated_header_only():
    out, note = decompress(gzip.compress(TEXT)[:12], "gzip")
    assert out == b"" and "truncated" in note


def test_damaged_gzip():
    data = bytearray(gzip.compress(random.Random(1).randbytes(200_000) + TEXT))
    for i in range(len(data) // 2, len(data) // 2 + 50):
        data[i] ^= 0x5A
    out, note = decompress(bytes(data), "gzip")
    assert note and ("damaged" in note or "truncated" in note or "trailing" in note)


def test_trailing_garbage_reported():
    out, note = decompress(gzip.compress(b"hello") + b"GARBAGE", "gzip")
    assert out == b"hello" and "trailing" in note


def test_not_actually_compressed_passes_through():
    out, note = decompress(b'{"plain": "json"}', "gzip")
    assert out == b'{"plain": "json"}' and "not gzip" in note
    out, note = decompress(b"\xff" * 100, "deflate")
    assert out == b"\xff" * 100 and note


def test_unsupported_encoding():
    out, note = decompress(b"abc", "compress")
    assert out == b"abc" and "unsupported" in note


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "x-gzip", "gzip, deflate", "\x00\xff", 7])
def test_hostile_decompress(encoding):
    rng = random.Random(5)
    for n in (0, 1, 2, 10, 1000, 70_000):
        d = rng.randbytes(n)
        for data in (d, b"\x1f\x8b\x08\x00" + d, b"\x78\x9c" + d):
            out, note = decompress(data, encoding, limit=1 << 20)
            assert isinstance(out, bytes) and len(out) <= max(len(data), 1 << 20)
            assert note is None or isinstance(note, str)


# ------------------------------------------------------------------------------------------------
# multipart

def test_multipart_form_with_base64_and_qp_parts():
    payload = json.dumps({"consignee": "Jane Doe", "street": "Main Street 1"}).encode()
    body = (b"--b0undary\r\n"
            b'Content-Disposition: form-data; name="meta"\r\n\r\n'
            b"plain value\r\n"
            b"--b0undary\r\n"
            b'Content-Disposition: form-data; name="file"; filename="export.json"\r\n'
            b"Content-Type: application/json\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(payload) +
            b"\r\n--b0undary\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"Stra=C3=9Fe 5, soft=\r\n break\r\n"
            b"--b0undary--\r\nepilogue")
    parts = multipart(body, "b0undary")
    assert len(parts) == 3
    assert parts[0] == ({"content-disposition": 'form-data; name="meta"'}, b"plain value")
    assert parts[1][0]["content-type"] == "application/json"
    assert parts[1][1] == payload
    assert parts[2][1] == "Straße 5, soft break".encode()


def test_multipart_related_nested_one_level():
    inner = (b"--inner\r\nContent-Type: text/plain\r\n\r\nalt text\r\n"
             b"--inner\r\nContent-Type: text/html\r\n\r\n<p>alt html</p>\r\n--inner--")
    body = (b"This is a preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
            + inner + b"\r\n--outer\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"\x89PNG\r\n\x1a\nxyz") + b"\r\n--outer--\r\n")
    parts = multipart(body, "outer")
    assert [p[0].get("content-type") for p in parts] == ["text/plain", "text/html", "image/png"]
    assert parts[0][1] == b"alt text" and parts[1][1] == b"<p>alt html</p>"
    assert parts[2][1] == b"\x89PNG\r\n\x1a\nxyz"


def test_multipart_lf_only_truncated_and_autodetect():
    body = b"--zz\nContent-Type: text/csv\n\na,b\n1,2\n--zz\nContent-Type: text/plain\n\ncut off here"
    parts = multipart(body, None)
    assert parts == [({"content-type": "text/csv"}, b"a,b\n1,2"), ({"content-type": "text/plain"}, b"cut off here")]
    assert multipart(body, b"zz") == parts
    assert multipart(body, '"zz"') == parts


def test_multipart_header_folding_and_no_headers():
    body = b"--b\r\nX-Long: one\r\n two\r\n\r\nbody1\r\n--b\r\n\r\nbody2\r\n--b--"
    parts = multipart(body, "b")
    assert parts == [({"x-long": "one two"}, b"body1"), ({}, b"body2")]


def test_boundary_of():
    assert boundary_of('multipart/form-data; boundary="----WebKitFormBoundary7MA4YWxk"') == \
        "----WebKitFormBoundary7MA4YWxk"
    assert boundary_of("multipart/related; type=text/xml; boundary=abc; start=x") == "abc"
    assert boundary_of("text/plain") is None and boundary_of(None) is None


def test_multipart_hostile():
    rng = random.Random(3)
    assert multipart(b"", "x") == []
    assert multipart(b"no delimiter", "x") == []
    assert multipart(b"--x\r\n" * 5000, "x") is not None
    assert len(multipart(b"--x\r\n\r\nA\r\n" * 5000, "x")) <= 1000
    for _ in range(200):
        d = rng.randbytes(rng.randrange(0, 500))
        parts = multipart(b"--x\r\n" + d + b"\r\n--x--", "x")
        assert isinstance(parts, list)
        multipart(d, None)
        multipart(d, "x" * 300)


# ------------------------------------------------------------------------------------------------
# encoded runs

SECRET = b"consignee: Jane Doe; street: Hauptstrasse 5; postcode 20095; phone +49 40 1234 5678"


def test_runs_in_json_strings():
    doc = json.dumps({
        "b64": base64.b64encode(SECRET).decode(),
        "b64url": base64.urlsafe_b64encode(b"\xfb\xff" + SECRET).decode().rstrip("="),
        "hex": SECRET.hex(),
        "b32": base64.b32encode(SECRET).decode(),
        "name": "getShipmentConsigneeAddressByIdentifier",
        "snake": "consignee_street_address_line_one",
        "uuid": "123e4567-e89b-12d3-a456-426614174000",
        "number": "123456789012345678901234567890",
        "path": "/var/lib/warehouse/exports/customers",
    }).encode()
    runs = encoded_runs(doc)
    assert runs == [("base64", SECRET), ("base64url", b"\xfb\xff" + SECRET), ("hex", SECRET), ("base32", SECRET)]


def test_json_escaped_slashes():
    raw = random.Random(2).randbytes(90)
    enc = base64.b64encode(raw).decode()
    assert "/" in enc
    doc = json.dumps({"v": enc}).replace("/", "\\/").encode()
    assert encoded_runs(doc) == [("base64", raw)]


def test_mime_base64_lines_joined():
    text = b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(SECRET * 3).replace(b"\n", b"\r\n")
    runs = encoded_runs(text)
    assert runs == [("base64", SECRET * 3)]


def test_icmp_hex_payload():
    assert encoded_runs(b"\x08\x00\x4d\x2a" + SECRET.hex().encode()) == [("hex", SECRET)]


def test_dns_tunnel_labels_decoded():
    pytest.importorskip("publicsuffixlist")
    b32 = base64.b32encode(SECRET).decode().rstrip("=").lower()
    labels = [b32[i:i + 60] for i in range(0, len(b32), 60)]
    qname = ".".join(labels) + ".t.exfil-example.co.uk."
    payload = dns_labels_payload(qname)
    assert payload.startswith(b32[:60].encode())
    assert encoded_runs(payload) == [("base32", SECRET)]
    hexname = ".".join(SECRET.hex()[i:i + 62] for i in range(0, len(SECRET.hex()), 62)) + ".example.com"
    assert encoded_runs(dns_labels_payload(hexname)) == [("hex", SECRET)]


def test_plain_text_yields_nothing():
    prose = (b"The consignment for Jane Doe leaves Hamburg tomorrow; CustomerReferenceNumberExample, "
             b"transport_management_system_identifier, 2025-01-01T12:00:00Z, ABCDEFGHIJKLMNOPQRSTUVWXYZ, "
             b"abcdefghijklmnopqrstuvwxyz, 12345678901234567890123456, https://example.com/a/b/c/d/e/f/g")
    assert encoded_runs(prose) == []
    html = b"<div class=\"navigation-menu-container-wrapper\"><a href=\"/customer-service/contact-us\">x</a></div>"
    assert encoded_runs(html) == []


def test_min_len_and_bounds():
    short = base64.b64encode(b"0123456789ab").decode()          # 16 chars
    assert encoded_runs(short.encode()) == []
    assert encoded_runs(short.encode(), min_len=12) == [("base64", b"0123456789ab")]
    many = b" ".join(base64.b64encode(bytes([i]) * 30) for i in range(256)) * 4
    assert len(encoded_runs(many)) == 256
    assert len(encoded_runs(many, max_runs=10)) == 10


def test_random_base64_recall():
    rng = random.Random(7)
    ok = 0
    for _ in range(500):
        raw = rng.randbytes(rng.randrange(24, 200))
        if encoded_runs(b'{"k": "' + base64.b64encode(raw) + b'"}') == [("base64", raw)]:
            ok += 1
    assert ok >= 490


def test_encoded_runs_hostile():
    rng = random.Random(11)
    t0 = time.perf_counter()
    assert encoded_runs(b"A" * 5_000_000) == []
    assert encoded_runs(b"Ab1+" * 1_000_000) is not None
    assert encoded_runs(b"-_" * 1_000_000) == []
    assert encoded_runs(b"aB3\n" * 200_000) is not None
    for _ in range(200):
        encoded_runs(rng.randbytes(rng.randrange(0, 2000)))
    assert encoded_runs(None) == [] and encoded_runs("aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Q") == \
        [("base64", b"hello world this is a test")]
    assert time.perf_counter() - t0 < 20


# ------------------------------------------------------------------------------------------------
# DNS

def test_dns_labels_payload():
    pytest.importorskip("publicsuffixlist")
    assert dns_labels_payload("aaaa.bbbb.example.com") == b"aaaabbbb"
    assert dns_labels_payload("aaaa.bbbb.example.co.uk.") == b"aaaabbbb"
    assert dns_labels_payload(b"x1.y2.example.com.au") == b"x1y2"
    assert dns_labels_payload("example.com") == b""
    assert dns_labels_payload("co.uk") == b""
    assert dns_labels_payload("www.example.com") == b"www"
    assert dns_labels_payload("data.host.corp.internal") == b"datahost"   # unknown TLD: *.internal
    assert dns_labels_payload("") == b"" and dns_labels_payload(None) == b""
    assert dns_labels_payload("a" * 5000 + ".example.com") == b""
    assert dns_labels_payload("..a..b.example.com") == b"ab"
