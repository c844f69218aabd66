"""Unit checks of the binary decoders (inspector/content/binary.py), request parameters
(params.py) and cloud upload recognition (cloud.py): formats found by structure, bounds hold, hostile
input never raises, benign look-alikes decode to nothing."""
from __future__ import annotations

import base64
import json
import os
import random
import sys
import zlib
from pathlib import Path

import cbor2
import cramjam
import lz4.block
import lz4.frame
import msgpack
import pytest
import zstandard

from inspector.content import binary, cloud, params
from inspector.content.stage import ContentFlow, ContentStage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import content_depth_gen as gen  # noqa: E402

ROWS = gen.customers(0, 12)
CSV = gen.csv_bytes(ROWS)


_STAGE = []


def _stage_counts(data: bytes, info: dict | None = None):
    if not _STAGE:
        _STAGE.append(ContentStage())        # one stage: building the prefilter is the slow part
    st = _STAGE[0]
    cf = ContentFlow()
    weirds = []
    st.weird = lambda uid, name, detail: weirds.append(name)
    st.body(cf, info or {"source": "http"}, data)
    return {k: len(v) for k, v in cf.values.items()}, cf.records["customer"], cf, weirds


@pytest.mark.parametrize("codec,blob", [
    ("zstd", zstandard.ZstdCompressor().compress(CSV)),
    ("lz4", lz4.frame.compress(CSV)),
    ("snappy", bytes(cramjam.snappy.compress(CSV))),
])
def test_compressed_by_magic_is_read(codec, blob):
    assert binary.codec_of(blob) == codec
    data, customers, cf, _ = _stage_counts(blob)
    assert data == {"email": 12, "phone": 12} and customers == 12 and codec in cf.encodings


def test_lz4_block_needs_and_respects_its_declared_size():
    blob = lz4.block.compress(CSV, store_size=False)
    assert binary.decompress(blob, "lz4", raw_size=len(CSV)) == CSV
    with pytest.raises(ValueError):
        binary.decompress(blob, "lz4")
    with pytest.raises(binary.Bomb):
        binary.decompress(blob, "lz4", raw_size=1 << 40, cap=1 << 20)


def test_snappy_raw_bomb_is_refused_before_expanding():
    # a raw block whose varint header announces 2 GiB
    blob = bytes([0x80, 0x80, 0x80, 0x80, 0x08]) + b"\x00" * 16
    with pytest.raises(binary.Bomb):
        binary.decompress(blob, "snappy", cap=1 << 20)


def test_framed_compression_bombs_stop_at_the_cap():
    zeros = bytes(8 << 20)
    for codec, blob in (("lz4", lz4.frame.compress(zeros)), ("zstd", zstandard.ZstdCompressor().compress(zeros)),
                        ("snappy", bytes(cramjam.snappy.compress(zeros)))):
        with pytest.raises(binary.Bomb):
            binary.decompress(blob, codec, cap=1 << 20)


def test_sls_putlogs_one_log_one_record():
    raw = gen.sls_log_group(ROWS)
    info = {"source": "http", "protocol": "http", "direction": "request", "method": "POST",
            "target": "/logstores/app/shards/lb", "host": "proj.cn-hangzhou.log.aliyuncs.com",
            "content_type": "application/x-protobuf",
            "headers": [("x-log-apiversion", "0.6.0"), ("x-log-compresstype", "lz4"),
                        ("x-log-bodyrawsize", str(len(raw)))]}
    data, customers, cf, weirds = _stage_counts(lz4.block.compress(raw, store_size=False), info)
    assert data == {"email": 12, "phone": 12} and customers == 12 and not weirds
    assert cf.apis == {"alibaba-sls:PutLogs"} and {"lz4", "protobuf"} <= cf.encodings


def test_sls_lying_raw_size_is_a_weird_not_a_crash():
    raw = gen.sls_log_group(ROWS)
    info = {"source": "http", "protocol": "http", "direction": "request", "method": "POST",
            "target": "/logstores/app", "host": "p.log.aliyuncs.com",
            "headers": [("x-log-compresstype", "lz4"), ("x-log-bodyrawsize", "7")]}
    _data, _c, _cf, weirds = _stage_counts(lz4.block.compress(raw, store_size=False), info)
    assert weirds == ["content.decompression"]


@pytest.mark.parametrize("fmt,blob", [("msgpack", msgpack.packb(ROWS)), ("cbor", cbor2.dumps(ROWS)),
                                      ("cbor", b"\xd9\xd9\xf7" + cbor2.dumps({"customers": ROWS}))])
def test_msgpack_and_cbor_by_structure(fmt, blob):
    data, customers, cf, _ = _stage_counts(blob)
    assert data == {"email": 12, "phone": 12} and customers == 12 and fmt in cf.encodings


def test_protobuf_map_entries_give_field_context():
    msg = b"".join(gen.pb_bytes(3, gen.pb_bytes(1, k.encode()) + gen.pb_bytes(2, v.encode()))
                   for k, v in ROWS[0].items())
    fmt, doc = binary.structured(msg, "application/x-protobuf")
    assert fmt == "protobuf" and json.loads(doc) == {"3": ROWS[0]}


def test_grpc_messages_and_compressed_grpc():
    msgs = [b"".join(gen.pb_bytes(1, gen.pb_bytes(1, k.encode()) + gen.pb_bytes(2, v.encode()))
                     for k, v in r.items()) for r in ROWS]
    plain = b"".join(gen.grpc_frame(m) for m in msgs)
    assert [m for _c, m in binary.grpc_messages(plain)] == msgs
    gz = b"".join(b"\x01" + len(z).to_bytes(4, "big") + z for z in (zlib.compress(m) for m in msgs))
    info = {"source": "http", "content_type": "application/grpc", "headers": [("grpc-encoding", "deflate")]}
    data, customers, cf, _ = _stage_counts(gz, info)
    assert data == {"email": 12, "phone": 12} and customers == 12 and "grpc" in cf.encodings


def test_random_and_numeric_binaries_decode_to_nothing():
    rng = random.Random(5)
    for n in (3, 17, 256, 4096):
        blob = bytes(rng.randrange(256) for _ in range(n))
        assert binary.structured(blob) is None
    numbers = b"".join(gen.pb_varint(i % 15 + 1, i * 7919) for i in range(200))
    assert binary.structured(numbers) is None            # no text: nothing to read
    assert binary.structured(b"plain ascii text, not a message") is None


def test_hostile_input_never_raises():
    rng = random.Random(11)
    seeds = [msgpack.packb(ROWS), cbor2.dumps(ROWS), gen.sls_log_group(ROWS), lz4.frame.compress(CSV),
             bytes(cramjam.snappy.compress(CSV)), zstandard.ZstdCompressor().compress(CSV)]
    for seed in seeds:
        for _ in range(60):
            b = bytearray(seed)
            for _k in range(rng.randrange(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            cut = bytes(b[:rng.randrange(1, len(b) + 1)])
            binary.structured(cut)
            binary.grpc_messages(cut)
            binary.h2c_bodies(cut)
            _stage_counts(cut)
    deep = b""
    for _ in range(5000):                    # nesting far past MAX_DEPTH
        deep = gen.pb_bytes(1, deep + gen.pb_bytes(2, b"x"))
    binary.structured(deep)
    binary.structured(b"\x91" * 100_000)     # msgpack arrays nested 100,000 deep


def test_params_decoding_and_benign_tokens():
    d = base64.urlsafe_b64encode(json.dumps({"email": "a.b@example.com"}).encode()).decode().rstrip("=")
    pairs, enc = params.decode_pairs(params.request_pairs(
        f"/t?d={d}&h={b'c.d@example.org'.hex()}&x=%2561%2540example.net&q=a+b",
        [("Cookie", "s=" + base64.b64encode(b"e.f@example.com").decode()), ("User-Agent", "curl/8"),
         ("x-amz-meta-owner", "g.h@example.com"), ("X-Trace", "abc")]))
    got = dict(pairs)
    assert got["d.email"] == "a.b@example.com" and got["h"] == "c.d@example.org"
    assert got["x"] == "a@example.net" and got["q"] == "a b" and got["cookie.s"] == "e.f@example.com"
    assert got["owner"] == "g.h@example.com" and got["trace"] == "abc" and "user-agent" not in got
    assert {"base64", "hex", "json"} <= enc
    # session tokens, hashes and random ids stay as they are (not text when decoded)
    pairs, _enc = params.decode_pairs([("sid", base64.b64encode(os.urandom(24)).decode()),
                                       ("h", "deadbeefcafe0123456789abcdef0123")])
    assert dict(pairs)["h"] == "deadbeefcafe0123456789abcdef0123"


def test_params_bounded():
    target = "/?" + "&".join(f"k{i}=v{i}" for i in range(50_000))
    pairs = params.request_pairs(target, [])
    assert len(pairs) == params.MAX_PAIRS
    nested = "x"
    for _ in range(50):
        nested = base64.b64encode(f"a={nested}&b=1".encode()).decode()
    pairs, _ = params.decode_pairs([("d", nested)])
    assert len(pairs) <= params.MAX_PAIRS


@pytest.mark.parametrize("info,api", [
    ({"method": "PUT", "target": "/o.csv", "host": "b.oss-cn-beijing.aliyuncs.com"}, "alibaba-oss:PutObject"),
    ({"method": "PUT", "target": "/o?partNumber=3&uploadId=x", "host": "b.oss-eu-central-1.aliyuncs.com"},
     "alibaba-oss:UploadPart"),
    ({"method": "POST", "target": "/o?append&position=0", "host": "b.oss-cn-beijing.aliyuncs.com"},
     "alibaba-oss:AppendObject"),
    ({"method": "PUT", "target": "/k", "host": "bucket.s3.amazonaws.com"}, "aws-s3:PutObject"),
    ({"method": "POST", "target": "/k?uploadId=abc", "host": "bucket.s3.us-east-1.amazonaws.com"},
     "aws-s3:CompleteMultipartUpload"),
    ({"method": "PUT", "target": "/c/b", "host": "acct.blob.core.windows.net",
      "headers": [("x-ms-blob-type", "BlockBlob")]}, "azure-blob:PutBlob"),
    ({"method": "PUT", "target": "/c/b?comp=blocklist", "host": "acct.blob.core.windows.net"},
     "azure-blob:PutBlockList"),
    ({"method": "GET", "target": "/logstores/web/track?APIVersion=0.6.0&email=x", "host": "p.log.aliyuncs.com"},
     "alibaba-sls:WebTracking"),
    ({"method": "POST", "target": "/upload/storage/v1/b/x/o", "host": "storage.googleapis.com"}, "gcp-gcs:Upload"),
    ({"method": "GET", "target": "/k", "host": "bucket.s3.amazonaws.com"}, None),
    ({"method": "PUT", "target": "/k", "host": "www.example.com"}, None),
    ({"method": "POST", "target": "/logstores", "host": "www.example.com"}, None),
])
def test_cloud_recognition(info, api):
    up = cloud.recognise(info)
    assert (up.api if up else None) == api


def test_aws_unchunk():
    body = b"hello world " * 100
    framed = b"".join(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), b"0" * 64, c)
                      for c in (body[:500], body[500:])) + b"0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n"
    assert cloud.aws_unchunk(framed) == body
    assert cloud.aws_unchunk(b"not chunked at all") is None


def test_raw_stream_of_an_openable_container_is_read_on():
    """A raw TCP stream that starts with a zip, a zstd frame or a MessagePack container is read past
    its head (those are opened); random bytes are not."""
    from inspector.content.sink import ContentSink

    class _Site:
        def is_local(self, ip):
            return ip.startswith("10.")

        def is_multicast_or_broadcast(self, ip):
            return False

    if not _STAGE:
        _STAGE.append(ContentStage())
    sink = ContentSink(_STAGE[0], _Site())
    rng = random.Random(3)
    for head, want in ((gen.zip_bytes({"a.csv": CSV}), True), (zstandard.ZstdCompressor().compress(CSV), True),
                       (msgpack.packb(ROWS), True), (bytes(rng.randrange(256) for _ in range(4096)), False)):
        cf = sink.open("C1", 0.0, "10.0.0.1", "192.0.2.1")
        sink.stream(cf, head)
        assert sink.wants_stream(cf) is want


def test_form_field_holding_a_base64_csv_counts_its_rows():
    body = b"note=weekly+export&file=" + base64.b64encode(CSV).replace(b"+", b"%2B").replace(b"/", b"%2F") \
        .replace(b"=", b"%3D")
    data, customers, cf, _ = _stage_counts(body, {"source": "http",
                                                 "content_type": "application/x-www-form-urlencoded"})
    assert data == {"email": 12, "phone": 12} and customers == 12 and "base64" in cf.encodings


def test_otlp_style_attributes_and_snappy_remote_write():
    """Key/value attributes whose value is wrapped (OpenTelemetry AnyValue) still name their values;
    a Snappy-compressed protobuf declared by Content-Encoding (Prometheus remote write) is read."""
    attrs = b"".join(gen.pb_bytes(2, gen.pb_bytes(1, k.encode()) + gen.pb_bytes(2, gen.pb_bytes(1, v.encode())))
                     for k, v in ROWS[0].items())
    fmt, doc = binary.structured(gen.pb_bytes(1, attrs), "application/x-protobuf")
    assert json.loads(doc) == {"1": [{"2": ROWS[0]}]}     # a nested message is a record (an array element)
    body = b"".join(gen.pb_bytes(1, b"".join(gen.pb_bytes(1, gen.pb_bytes(1, k.encode()) + gen.pb_bytes(2, v.encode()))
                                             for k, v in r.items())) for r in ROWS)
    info = {"source": "http", "content_type": "application/x-protobuf", "content_encoding": "snappy"}
    data, customers, cf, _ = _stage_counts(bytes(cramjam.snappy.compress_raw(body)), info)
    assert data == {"email": 12, "phone": 12} and customers == 12 and {"snappy", "protobuf"} <= cf.encodings


def test_pdf_tables_only_from_aligned_runs():
    from inspector.content.archives import pdf_tables
    text = ("Delivery terms apply to all  orders.\nSigned by  the manager\n\n"
            "Order    Pallets    Dock\n4711     12         D3\n4712     4          D1\n"
            "Totals are indicative.\n")
    assert pdf_tables(text) == [b"Order\tPallets\tDock\n4711\t12\tD3\n4712\t4\tD1\n"]
    assert pdf_tables("Just prose, one line.\nAnother  line with a gap.\n") == []


def test_base64_gzip_and_protobuf_inside_json_are_opened():
    gz = base64.b64encode(zlib.compress(CSV)).decode()
    import gzip as _gzip
    doc = json.dumps({"export": base64.b64encode(_gzip.compress(CSV, mtime=0)).decode(), "z": gz}).encode()
    data, customers, _cf, _ = _stage_counts(doc, {"source": "http", "content_type": "application/json"})
    assert data == {"email": 12, "phone": 12} and customers == 12
    pb = gen.sls_log_group(ROWS)
    data, customers, cf, _ = _stage_counts(json.dumps({"payload": base64.b64encode(pb).decode()}).encode())
    assert data == {"email": 12, "phone": 12} and customers == 12 and "protobuf" in cf.encodings


@pytest.mark.parametrize("kind", ["parquet", "arrow", "sqlite"])
def test_table_files_count_their_rows(kind, tmp_path):
    """A Parquet or Arrow export, or a SQLite database, leaving: each table read with its column
    names as field context (the phone column needs the name for national numbers)."""
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq
    cols = {c: [r[c] for r in ROWS] for c in ROWS[0]}
    if kind == "parquet":
        buf = pa.BufferOutputStream()
        pq.write_table(pa.table(cols), buf)
        blob = buf.getvalue().to_pybytes()
    elif kind == "arrow":
        buf = pa.BufferOutputStream()
        with pa.ipc.new_file(buf, pa.table(cols).schema) as w:
            w.write_table(pa.table(cols))
        blob = buf.getvalue().to_pybytes()
    else:
        path = tmp_path / "c.db"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE customers (customer_id TEXT, email TEXT, phone TEXT)")
        con.executemany("INSERT INTO customers VALUES (?, ?, ?)", [tuple(r.values()) for r in ROWS])
        con.execute("CREATE TABLE settings (k TEXT, v TEXT)")
        con.commit()
        con.close()
        blob = path.read_bytes()
    data, customers, _cf, weirds = _stage_counts(blob)
    assert data == {"email": 12, "phone": 12} and customers == 12 and not weirds
    cut = blob[:len(blob) // 2]                       # damaged: a weird at most, never an exception
    _stage_counts(cut)


def test_parquet_rle_bomb_is_bounded():
    """Five million equal values RLE-encode to a few kilobytes: reading stops at MAX_TABLE_ROWS."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from inspector.content.archives import MAX_TABLE_ROWS, Budget, expand
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"v": pa.array([7] * 5_000_000, pa.int64())}), buf)
    blob = buf.getvalue().to_pybytes()
    assert len(blob) < 200_000
    members, _problems = expand(blob, "binary", Budget())
    assert members[0].data.count(b"\n") == MAX_TABLE_ROWS + 1


def test_grpc_web_binary_and_text():
    msgs = b"".join(gen.grpc_frame(b"".join(gen.pb_bytes(1, gen.pb_bytes(1, k.encode()) + gen.pb_bytes(2, v.encode()))
                                            for k, v in r.items())) for r in ROWS)
    trailer = b"grpc-status:0\r\n"
    web = msgs + b"\x80" + len(trailer).to_bytes(4, "big") + trailer
    for ctype, body in (("application/grpc-web+proto", web), ("application/grpc-web-text", base64.b64encode(web))):
        data, customers, cf, _ = _stage_counts(body, {"source": "http", "content_type": ctype})
        assert data == {"email": 12, "phone": 12} and customers == 12 and "grpc" in cf.encodings, ctype
