"""Payload typing (inspector.sniff.classify): one real-ish sample per type, declared
Content-Type mismatches, and hostile input (never raises, always one of PAYLOAD_TYPES, bounded time)."""
from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import struct
import time
import zipfile
import zlib

import pytest

from inspector.content import PAYLOAD_TYPES
from inspector.sniff import HEAD, classify, shannon_entropy


def _zip(entries: dict, compress=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _png() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    raw = b"\x00" + b"\xff\x00\x00" * 2 + b"\x00" + b"\x00\xff\x00" * 2
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _bmp() -> bytes:
    pixels = b"\x00\x00\xff\x00" * 4
    dib = struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54) + dib + pixels


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_field(num: int, wt: int, value) -> bytes:
    key = _varint(num << 3 | wt)
    if wt == 0:
        return key + _varint(value)
    if wt == 2:
        return key + _varint(len(value)) + value
    if wt == 5:
        return key + struct.pack("<I", value)
    return key + struct.pack("<Q", value)


def _protobuf() -> bytes:
    items = []
    for i in range(20):
        sub = _pb_field(1, 0, 1000 + i) + _pb_field(2, 2, b"\x00\x01\x02" + bytes([i])) + _pb_field(3, 5, i * 7)
        items.append(_pb_field(4, 2, sub))
    return _pb_field(1, 0, 150) + _pb_field(2, 1, 2 ** 40) + b"".join(items)


def _shipments(n: int) -> list:
    return [{"id": i, "consignee": {"name": "Jane Müller", "street": "Hauptstraße 5", "postcode": "20095"},
             "sscc": f"{340123450000000000 + i}", "weight": 1.5 * i} for i in range(n)]


EDIFACT = (b"UNA:+.? 'UNB+UNOC:3+WAREHOUSE:ZZ+CARRIER:ZZ+250101:1200+42'UNH+1+IFTMIN:D:04A:UN'"
           b"BGM+610+12345+9'NAD+CN+++Jane Doe+Main Street 1+Hamburg++20095+DE'UNT+4+1'UNZ+1+42'")
X12 = (b"ISA*00*          *00*          *ZZ*WAREHOUSE      *ZZ*CARRIER        *250101*1200*U*00401*000000042*0*P*>~"
       b"GS*SH*WAREHOUSE*CARRIER*20250101*1200*42*X*004010~ST*856*0001~BSN*00*12345*20250101*1200~SE*3*0001~")
MULTIPART = (b"--XyZzY123\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
             b"--XyZzY123\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
             b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\xff\xfe\r\n--XyZzY123--\r\n")

SAMPLES = {
    "json": [json.dumps(_shipments(5)).encode(), b'{"a": [1, 2.5e3, true, null, "x\\u00e9"]}',
             b"\xef\xbb\xbf{\"bom\": 1}", b'{"a":1}\n{"a":2}\n{"a":3}\n',          # BOM, NDJSON
             json.dumps(_shipments(2000)).encode()[:50_000],                          # truncated by capture
             json.dumps(_shipments(4000)).encode()],                                 # large: head only
    "xml": [b'<?xml version="1.0" encoding="UTF-8"?><Shipments><Shipment id="1"><To>Jane</To></Shipment></Shipments>',
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><x a="1"/></soap:Body>'
            b'</soap:Envelope>',
            b"<root><![CDATA[<not a tag>]]><!-- c --><a>1</a></root>"],
    "html": [b"<!DOCTYPE html><html><head><title>x</title></head><body><p>Hi<br>there</p></body></html>",
             b"<html><body><div>unclosed <p>para</body></html>",
             b"\n\n<div class=\"x\"><p>a &amp; b</p><img src=a.png></div>",
             b'<?xml version="1.0"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>'],
    "csv": [b"id,name,email\n1,Jane,j@example.com\n2,\"Doe, John\",d@example.com\n3,Al,a@example.com\n",
            b"sku;qty;price\nA1;2;3,50\nB2;1;7,00\n", b"a|b|c\n1|2|3\n4|5|6\n"],
    "tsv": [b"id\tname\tcity\n1\tJane\tHamburg\n2\tJohn\tLondon\n"],
    "edifact": [EDIFACT, EDIFACT[9:], b"UNH+1+ORDERS:D:96A:UN'BGM+220+1'"],
    "x12": [X12],
    "form": [b"user=jane&password=secret&remember=on", b"q=consignee+address%20list",
             b"a%5B0%5D=1&a%5B1%5D=2&empty="],
    "multipart": [MULTIPART],
    "protobuf": [_protobuf()],
    "pdf": [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"],
    "office": [b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
               _zip({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w:document/>"}),
               _zip({"xl/workbook.xml": "<workbook/>", "xl/worksheets/sheet1.xml": "<sheet/>"}),
               _zip({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": "<x/>"},
                    compress=zipfile.ZIP_STORED)],
    "zip": [_zip({"export/customers.csv": "a,b\n1,2\n", "readme.txt": "hi"})],
    "gzip": [gzip.compress(json.dumps(_shipments(50)).encode())],
    "image": [_png(), b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100), b"GIF89a\x01\x00\x01\x00" + bytes(20),
              b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(30), _bmp(), b"II*\x00\x08\x00\x00\x00" + bytes(40),
              b"MM\x00*\x00\x00\x00\x08" + bytes(40), b"\x00\x00\x00\x1cftypheic" + bytes(40)],
    "text": [b"Hello team,\nthe pallets for order 4711 leave the dock at 14:00.\nRegards\n",
             "Grüße aus Köln – die Sendung ist unterwegs.\n".encode("utf-8"),
             "Grüße aus Köln, die Sendung ist unterwegs.\n".encode("latin-1"),
             "\ufeffUTF-16 text with a BOM\n".encode("utf-16"), b"{not json at all", b"<3 you"],
    "tls-encrypted": [bytes([0x16, 3, 1, 0, 0x40]) + bytes(range(0x40)) + bytes([0x17, 3, 3, 0, 8]) + bytes(8),
                      bytes([0x17, 3, 3, 0x40, 0x00]) + random.Random(1).randbytes(2000)],
    "encrypted-or-compressed": [random.Random(2).randbytes(4096), random.Random(3).randbytes(256),
                                bz2.compress(b"some data " * 100), lzma.compress(b"some data " * 100),
                                b"7z\xbc\xaf\x27\x1c" + bytes(30), b"\x28\xb5\x2f\xfd" + bytes(30),
                                zlib.compress(random.Random(4).randbytes(3000))],
    "binary": [b"\x7fELF\x02\x01\x01" + bytes(57) + b"".join(struct.pack("<IIQ", i, 3 * i, 0) for i in range(100)),
               bytes(600), b"\x00\x01"],
}


def test_samples_cover_every_type():
    assert set(SAMPLES) == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("expected,data", [(t, d) for t, ds in SAMPLES.items() for d in ds],
                         ids=[f"{t}-{i}" for t, ds in SAMPLES.items() for i in range(len(ds))])
def test_classify_samples(expected, data):
    assert classify(data) == (expected, None)


def test_zstd_magic():
    zstandard = pytest.importorskip("zstandard")
    assert classify(zstandard.ZstdCompressor().compress(b"x" * 1000))[0] == "encrypted-or-compressed"


def test_empty():
    assert classify(b"") == ("text", None)
    assert classify(b"", "application/json") == ("text", None)


@pytest.mark.parametrize("declared,data,note", [
    ("application/json; charset=utf-8", gzip.compress(b'{"a": 1}'), "declared application/json, content is gzip"),
    ("application/json", b"<html><body>error</body></html>", "declared application/json, content is html"),
    ("image/png", b"<!DOCTYPE html><html></html>", "declared image/png, content is html"),
    ("text/csv", SAMPLES["office"][2], "declared text/csv, content is office"),
    ("application/x-www-form-urlencoded", b'{"user": "jane"}', "declared application/x-www-form-urlencoded, content is json"),
    ("application/pdf", b"PK\x03\x04" + bytes(40), "declared application/pdf, content is zip"),
    ("text/plain", random.Random(5).randbytes(1000), "declared text/plain, content is encrypted-or-compressed"),
    ("APPLICATION/XML", b'{"a": 1}', "declared application/xml, content is json"),
])
def test_declared_mismatch(declared, data, note):
    assert classify(data, declared)[1] == note


@pytest.mark.parametrize("declared,data", [
    ("application/json", b'{"a": 1}'), ("application/vnd.api+json", b"[1, 2]"),
    ("text/plain", b'{"a": 1}'), ("text/plain", b"a,b\n1,2\n"), ("application/octet-stream", b"anything"),
    (None, gzip.compress(b"x")), ("", b"x"), ("nonsense", b"\x00"), ("application/zip", SAMPLES["office"][1]),
    ("multipart/form-data; boundary=XyZzY123", MULTIPART), ("application/xhtml+xml", SAMPLES["html"][3]),
    ("application/x-protobuf", _protobuf()), ("application/gzip", SAMPLES["gzip"][0]),
    ("text/csv", b"id\tname\n1\tx\n2\ty\n"),
])
def test_declared_agrees(declared, data):
    assert classify(data, declared)[1] is None


def test_declared_type_alone_decides_nothing():
    assert classify(b"just some words here", "application/json")[0] == "text"
    assert classify(b"\x89PNG\r\n\x1a\n" + bytes(40), "application/json")[0] == "image"


def test_declared_boundary_used_for_multipart():
    body = b"preamble text\r\n" + MULTIPART
    assert classify(body, 'multipart/mixed; boundary="XyZzY123"')[0] == "multipart"
    assert classify(MULTIPART, "multipart/form-data; boundary=other")[0] != "multipart"


def test_declared_protobuf_tips_textual_protobuf():
    msg = _pb_field(1, 2, b"consignee jane doe street") + _pb_field(2, 2, b"hamburg city centre")
    assert classify(msg, "application/x-protobuf")[0] == "protobuf"


def test_office_detected_from_central_directory():
    # entries whose local headers use data descriptors: the central directory at the end names them
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("docProps/app.xml", "<x/>" * 10)
        with z.open("ppt/presentation.xml", "w") as f:
            f.write(b"<p/>" * 100)
    assert classify(buf.getvalue())[0] == "office"


def test_large_json_is_fast():
    data = json.dumps(_shipments(100_000)).encode()          # ~9 MB
    t0 = time.perf_counter()
    assert classify(data)[0] == "json"
    assert time.perf_counter() - t0 < 0.5


def test_entropy_correction():
    r = random.Random(9).randbytes(256)
    assert shannon_entropy(r) >= 7.5 > shannon_entropy(r, corrected=False)
    assert shannon_entropy(b"aaaa") == 0.0
    assert shannon_entropy(b"") == 0.0


def test_short_random_is_not_encrypted():
    assert classify(random.Random(6).randbytes(100))[0] in ("binary", "protobuf")


def test_random_buffers_rarely_protobuf():
    rng = random.Random(8)
    kinds = [classify(rng.randbytes(rng.randrange(256, 4096)))[0] for _ in range(300)]
    assert kinds.count("encrypted-or-compressed") >= 297


# ------------------------------------------------------------------------------------------------
# hostile input

HOSTILE = [
    b"[" * 100_000, b"{\"a\":" * 50_000, b"<a>" * 30_000, b"<" * 20_000, b"<a " + b"b=\"1\" " * 5000,
    b"--" + b"x" * 100 + b"\r\n" + b"H: v\r\n" * 1000, b"UNA" + b"\x00" * 10, b"ISA" + b"*" * 200,
    b"\x16\x03\x01\xff\xff", b"PK\x03\x04" + b"\xff" * 26, b"PK\x05\x06" * 100,
    b"PK\x03\x04" + bytes(22) + b"\xff\xff\xff\xff" + bytes(4), b"\x1f\x8b\x08" + b"\x00" * 5,
    b"%PDF-", b"BM" + b"\xff" * 50, b"RIFF", b"\x08" * 10_000, b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 100,
    b"a=" * 50_000, b"a,b\n" * 50_000, "\ud800".encode("utf-8", "surrogatepass") * 100,
    b"\xff\xfe" + b"\x00\xd8" * 1000, b"\xef\xbb\xbf", b"\x80" * 5000, b"&" * 10_000,
    b'"' * 10_000, b"\\" * 10_000, b"1" * 100_000, b"-" * 10_000 + b"\n",
]


@pytest.mark.parametrize("data", HOSTILE, ids=[f"h{i}" for i in range(len(HOSTILE))])
def test_hostile_never_raises(data):
    t0 = time.perf_counter()
    for declared in (None, "application/json", "multipart/form-data; boundary=" + "x" * 100, "\x00\xff;;=", 42):
        t, note = classify(data, declared)
        assert t in PAYLOAD_TYPES
        assert note is None or isinstance(note, str) and len(note) < 200
    assert time.perf_counter() - t0 < 2.0


def test_fuzz_truncated_and_flipped_samples():
    rng = random.Random(1234)
    samples = [d for ds in SAMPLES.values() for d in ds]
    t0 = time.perf_counter()
    for d in samples:
        for _ in range(8):
            cut = d[:rng.randrange(0, len(d) + 1)]
            assert classify(cut)[0] in PAYLOAD_TYPES
            if d:
                b = bytearray(d[:HEAD * 2])
                for _ in range(rng.randrange(1, 6)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                assert classify(bytes(b))[0] in PAYLOAD_TYPES
    for _ in range(300):
        assert classify(rng.randbytes(rng.randrange(0, 3000)))[0] in PAYLOAD_TYPES
    assert time.perf_counter() - t0 < 20


def test_non_bytes_inputs():
    assert classify(bytearray(b'{"a": 1}'))[0] == "json"
    assert classify(memoryview(b"a,b\n1,2\n"))[0] == "csv"
    assert classify('{"a": 1}')[0] == "json"
    assert classify(None)[0] in PAYLOAD_TYPES
    assert classify(12345)[0] in PAYLOAD_TYPES
