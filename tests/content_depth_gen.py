"""Generator of the content-depth captures: data leaving in archives, documents, binary encodings,
cloud upload APIs and request metadata, at exact planted counts, plus benign look-alikes.

``build(path)`` writes one classic pcap (every conversation from the office PC 172.20.10.25, inside
the dc-north site, to its own external server) and returns ``SCENARIOS``-shaped expectations:
``{server ip: Expect}``.  Everything is deterministic (no clock, no randomness): the captures are made
at test time from the constants here, so no binary is committed.

Identifiers are fake but valid: e-mail addresses at example.com/.org, UK drama phone numbers
(020 7946 0xxx, which ``phonenumbers`` accepts as valid).
"""
from __future__ import annotations

import base64
import io
import json
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers.pkt import ACK, FIN, PSH, SYN, pcap_bytes, tcp_frame  # noqa: E402
from test_archives import xlsx  # noqa: E402

CLIENT = "172.20.10.25"
T0_NS = 1_764_000_000_000_000_000
MSS = 1400


# ------------------------------------------------------------------------------------------------
# planted data

def customers(start: int, n: int) -> list[dict]:
    """``n`` customers with distinct e-mail addresses and phone numbers, from index ``start``."""
    return [{"customer_id": f"C{start + i:05d}", "email": f"cust{start + i}@example.com",
             "phone": f"+44 20 7946 {start + i:04d}"} for i in range(n)]


def csv_bytes(rows: list[dict]) -> bytes:
    cols = list(rows[0])
    return ("\n".join([",".join(cols)] + [",".join(r[c] for c in cols) for r in rows]) + "\n").encode()


def zip_bytes(files: dict, method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 11, 25, 9, 30, 0))
            info.compress_type = method
            zf.writestr(info, data)
    return buf.getvalue()


def xlsx_bytes(rows: list[dict]) -> bytes:
    """A minimal SpreadsheetML workbook (tests/test_archives.py builds it): header row, one row each."""
    cols = list(rows[0])
    return xlsx([cols] + [[r[c] for c in cols] for r in rows])


def encrypt_flag(data: bytes) -> bytes:
    """A zip with the 'encrypted' general-purpose flag set on every local and central header (what a
    password-protected archive declares; the bytes are then unreadable without the password)."""
    b = bytearray(data)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            flags = struct.unpack_from("<H", b, i + off)[0]
            struct.pack_into("<H", b, i + off, flags | 1)
            i = b.find(sig, i + 4)
    return bytes(b)


def pdf_bytes(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica, one text line per entry) with a correct cross-reference table."""
    ops = ["BT", "/F1 9 Tf", "11 TL", "40 800 Td"]
    for ln in lines:
        esc = ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({esc}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# protobuf wire format (what the SLS LogGroup and the gRPC messages are made of)

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_bytes(fn: int, data: bytes) -> bytes:
    return varint(fn << 3 | 2) + varint(len(data)) + data


def pb_varint(fn: int, v: int) -> bytes:
    return varint(fn << 3) + varint(v)


def sls_log_group(rows: list[dict], topic: str = "wms-export", source: str = "172.20.10.25") -> bytes:
    """An Alibaba Cloud Log Service LogGroup: one Log (Time, Contents{Key, Value}...) per row."""
    logs = b""
    for i, r in enumerate(rows):
        contents = b"".join(pb_bytes(2, pb_bytes(1, k.encode()) + pb_bytes(2, v.encode())) for k, v in r.items())
        logs += pb_bytes(1, pb_varint(1, 1_764_000_000 + i) + contents)
    return logs + pb_bytes(3, topic.encode()) + pb_bytes(4, source.encode())


def grpc_frame(msg: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def h2_frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((ftype, flags)) + struct.pack(">I", sid) + payload


# ------------------------------------------------------------------------------------------------
# conversations

@dataclass
class Expect:
    """What the scan must report for one connection (its server)."""
    name: str
    data: dict = field(default_factory=dict)       # class -> distinct values (exactly)
    customer: int = 0                               # customer records
    apis: list = field(default_factory=list)        # upload_apis
    encodings: set = field(default_factory=set)     # subset of payload_encoding
    weirds: set = field(default_factory=set)        # content weird names on this connection
    members: list = field(default_factory=list)     # files.jsonl member filenames (parent_fuid set)


class Capture:
    def __init__(self):
        self.frames: list[tuple[int, bytes]] = []
        self.t = T0_NS
        self.port = 40000
        self.ident = 1

    def _frame(self, src, dst, sp, dp, payload, flags, seq, ack):
        self.frames.append((self.t, tcp_frame(src, dst, sp, dp, payload, flags, seq, ack, ident=self.ident)))
        self.ident = (self.ident + 1) & 0xFFFF
        self.t += 200_000

    def tcp(self, server: str, sport: int, exchanges: list[tuple[bytes, bytes]]) -> None:
        """One TCP connection: handshake, each (client bytes, server bytes) in turn, FIN close."""
        self.port += 1
        c, s = self.port, sport
        cs, ss = 1000, 9000
        self._frame(CLIENT, server, c, s, b"", SYN, cs, 0)
        self._frame(server, CLIENT, s, c, b"", SYN | ACK, ss, cs + 1)
        cs += 1
        ss += 1
        self._frame(CLIENT, server, c, s, b"", ACK, cs, ss)
        for out, back in exchanges:
            for i in range(0, len(out), MSS):
                seg = out[i:i + MSS]
                self._frame(CLIENT, server, c, s, seg, PSH | ACK, cs, ss)
                cs += len(seg)
            for i in range(0, len(back), MSS):
                seg = back[i:i + MSS]
                self._frame(server, CLIENT, s, c, seg, PSH | ACK, ss, cs)
                ss += len(seg)
        self._frame(CLIENT, server, c, s, b"", FIN | ACK, cs, ss)
        self._frame(server, CLIENT, s, c, b"", FIN | ACK, ss, cs + 1)
        self._frame(CLIENT, server, c, s, b"", ACK, cs + 1, ss + 1)
        self.t += 50_000_000

    def write(self, path: Path) -> None:
        path.write_bytes(pcap_bytes(self.frames))


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def http(method: str, target: str, host: str, headers: list[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def smtp(cap: Capture, server: str, attachment: bytes, filename: str, ctype: str) -> None:
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    msg = (b"From: ops@dc-north.example\r\nTo: partner@example.org\r\nSubject: export\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n"
           b"--XYZ\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
           b"--XYZ\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=\"" + filename.encode() + b"\"\r\n\r\n" + b64 +
           b"--XYZ--\r\n.\r\n")
    cap.tcp(server, 25, [
        (b"", b"220 mx.example.org ESMTP\r\n"),
        (b"EHLO dc-north.example\r\n", b"250 mx.example.org\r\n"),
        (b"MAIL FROM:<ops@dc-north.example>\r\n", b"250 OK\r\n"),
        (b"RCPT TO:<partner@example.org>\r\n", b"250 OK\r\n"),
        (b"DATA\r\n", b"354 go ahead\r\n"),
        (msg, b"250 queued\r\n"),
        (b"QUIT\r\n", b"221 bye\r\n"),
    ])


def _emails(rows):
    return {r["email"] for r in rows}


def _phones(rows):
    return {r["phone"].replace(" ", "") for r in rows}


def _cust(rows, name, **kw) -> Expect:
    return Expect(name, {"email": _emails(rows), "phone": _phones(rows)}, len(rows), **kw)


def build(path: Path) -> dict[str, Expect]:
    """Write the capture; ``{server ip: Expect}``."""
    import cbor2
    import lz4.block
    import msgpack
    import py7zr

    cap = Capture()
    exp: dict[str, Expect] = {}

    # 1. an xlsx manifest uploaded over HTTP
    rows = customers(0, 20)
    cap.tcp("203.0.113.1", 80, [(http("POST", "/upload/manifest.xlsx", "upload.filedrop.example",
                                      [("Content-Type", "application/vnd.openxmlformats-officedocument."
                                                        "spreadsheetml.sheet")], xlsx_bytes(rows)), OK)])
    exp["203.0.113.1"] = _cust(rows, "xlsx over HTTP")

    # 2. a zipped CSV over HTTP
    rows = customers(100, 25)
    cap.tcp("203.0.113.2", 80, [(http("POST", "/upload", "upload.filedrop.example",
                                      [("Content-Type", "application/zip")],
                                      zip_bytes({"export/customers.csv": csv_bytes(rows)})), OK)])
    exp["203.0.113.2"] = _cust(rows, "zipped CSV over HTTP", members=["export/customers.csv"])

    # 3. an xlsx attached to an e-mail
    rows = customers(200, 15)
    smtp(cap, "203.0.113.3", xlsx_bytes(rows), "manifest.xlsx",
         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    exp["203.0.113.3"] = _cust(rows, "xlsx over SMTP")

    # 4. a zipped CSV attached to an e-mail
    rows = customers(300, 12)
    smtp(cap, "203.0.113.4", zip_bytes({"customers.csv": csv_bytes(rows)}), "customers.zip", "application/zip")
    exp["203.0.113.4"] = _cust(rows, "zipped CSV over SMTP", members=["customers.csv"])

    # 5. Alibaba Cloud Log Service PutLogs: a LogGroup, LZ4-compressed (raw block)
    rows = customers(400, 30)
    raw = sls_log_group(rows)
    cap.tcp("203.0.113.5", 80, [(http("POST", "/logstores/wms-events/shards/lb",
                                      "dc-north.cn-hangzhou.log.aliyuncs.com",
                                      [("Content-Type", "application/x-protobuf"), ("x-log-apiversion", "0.6.0"),
                                       ("x-log-compresstype", "lz4"), ("x-log-bodyrawsize", str(len(raw))),
                                       ("x-log-signaturemethod", "hmac-sha1")],
                                      lz4.block.compress(raw, store_size=False)), OK)])
    exp["203.0.113.5"] = _cust(rows, "SLS PutLogs, LZ4 protobuf", apis=["alibaba-sls:PutLogs"],
                               encodings={"lz4", "protobuf"})

    # 6. an OSS PutObject (JSON export) and a multipart upload (initiate, one CSV part, complete)
    rows_put = customers(500, 8)
    rows_part = customers(510, 6)
    part_csv = csv_bytes(rows_part)
    cut = part_csv.index(b"@example", len(part_csv) // 2) - 2
    host = "wms-backup.oss-cn-shanghai.aliyuncs.com"
    auth = [("Authorization", "OSS LTAI5tExampleKeyId:c2lnbmF0dXJl"), ("x-oss-date", "20251125T093000Z")]
    cap.tcp("203.0.113.6", 80, [
        (http("PUT", "/exports/customers.json", host, auth + [("Content-Type", "application/json")],
              json.dumps(rows_put).encode()), OK),
        (http("POST", "/exports/big.csv?uploads", host, auth), OK),
        # the object in two parts, cut inside an e-mail address (parts are joined before counting)
        (http("PUT", "/exports/big.csv?partNumber=2&uploadId=0004B9894A22E5B1888A1E29F823", host, auth,
              part_csv[cut:]), OK),
        (http("PUT", "/exports/big.csv?partNumber=1&uploadId=0004B9894A22E5B1888A1E29F823", host, auth,
              part_csv[:cut]), OK),
        (http("POST", "/exports/big.csv?uploadId=0004B9894A22E5B1888A1E29F823", host,
              auth + [("Content-Type", "application/xml")],
              b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"3858F62230AC3C915F300C664312C11F"
              b"\"</ETag></Part></CompleteMultipartUpload>"), OK),
    ])
    both = rows_put + rows_part
    exp["203.0.113.6"] = _cust(both, "OSS PutObject and multipart upload",
                               apis=["alibaba-oss:CompleteMultipartUpload", "alibaba-oss:InitiateMultipartUpload",
                                     "alibaba-oss:PutObject", "alibaba-oss:UploadPart"])

    # 7. query-string beacons: base64url JSON, hex, double percent-encoding, and a base64 cookie
    rows = customers(600, 5)
    extra = customers(700, 5)
    beacons = []
    for r, x in zip(rows, extra):
        d = base64.urlsafe_b64encode(json.dumps({"email": r["email"], "phone": r["phone"]}).encode()).decode()
        e = x["email"].encode().hex()
        beacons.append((http("GET", f"/px.gif?v=2&d={d.rstrip('=')}&e={e}&ref=%252Fcart", "px.tracker.example",
                             [("Cookie", "sid=9f2c1e7a55b04d3c; em=" +
                               base64.b64encode(x["email"].upper().encode()).decode())]), OK))
    cap.tcp("203.0.113.7", 80, beacons)
    exp["203.0.113.7"] = Expect("query-string beacons", {"email": _emails(rows) | _emails(extra),
                                                         "phone": _phones(rows)}, 5,
                                encodings={"base64", "hex", "json"})

    # 8. a zip bomb: a small CSV, then a member of zeros expanding 1000x (the ratio bound stops there)
    rows = customers(800, 3)
    bomb = zip_bytes({"a.csv": csv_bytes(rows), "b.bin": bytes(20 << 20)})
    cap.tcp("203.0.113.8", 80, [(http("POST", "/upload", "upload.filedrop.example",
                                      [("Content-Type", "application/zip")], bomb), OK)])
    exp["203.0.113.8"] = _cust(rows, "zip bomb", weirds={"content.archive_bomb"}, members=["a.csv"])

    # 9. an encrypted zip: reported, nothing readable counted
    enc = encrypt_flag(zip_bytes({"customers.csv": csv_bytes(customers(900, 10))}, zipfile.ZIP_STORED))
    cap.tcp("203.0.113.9", 80, [(http("POST", "/upload", "upload.filedrop.example",
                                      [("Content-Type", "application/zip")], enc), OK)])
    exp["203.0.113.9"] = Expect("encrypted zip", weirds={"content.encrypted_archive"})

    # 10. a PDF manifest
    rows = customers(1000, 6)
    lines = ["Delivery manifest DC North", "Customer  E-mail  Phone"] + \
        [f"{r['customer_id']}  {r['email']}  {r['phone']}" for r in rows]
    cap.tcp("203.0.113.10", 80, [(http("POST", "/upload/manifest.pdf", "upload.filedrop.example",
                                       [("Content-Type", "application/pdf")], pdf_bytes(lines)), OK)])
    exp["203.0.113.10"] = Expect("PDF manifest", {"email": _emails(rows), "phone": _phones(rows)}, len(rows))

    # 11. a 7z of a CSV
    rows = customers(1100, 9)
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(csv_bytes(rows), "customers.csv")
    cap.tcp("203.0.113.11", 80, [(http("POST", "/upload", "upload.filedrop.example",
                                       [("Content-Type", "application/x-7z-compressed")], buf.getvalue()), OK)])
    exp["203.0.113.11"] = _cust(rows, "7z of a CSV", members=["customers.csv"])

    # 12. gRPC over cleartext HTTP/2: two messages of a map<string,string> record each, split frames
    rows = customers(1200, 4)
    msgs = b"".join(grpc_frame(b"".join(pb_bytes(1, pb_bytes(1, k.encode()) + pb_bytes(2, v.encode()))
                                        for k, v in r.items())) for r in rows)
    h2 = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b"") +
          h2_frame(1, 4, 1, b"\x83\x86\x44\x0c/crm.v1/Put") +            # HEADERS (HPACK, not decoded)
          h2_frame(0, 0, 1, msgs[:50]) + h2_frame(0, 1, 1, msgs[50:]))
    cap.tcp("203.0.113.12", 80, [(h2, h2_frame(4, 0, 0, b"") + h2_frame(4, 1, 0, b""))])
    exp["203.0.113.12"] = _cust(rows, "gRPC over h2c", encodings={"grpc"})

    # 13. MessagePack and CBOR bodies
    rows = customers(1300, 7)
    cap.tcp("203.0.113.13", 80, [(http("POST", "/ingest", "api.telemetry.example",
                                       [("Content-Type", "application/msgpack")], msgpack.packb(rows)), OK)])
    exp["203.0.113.13"] = _cust(rows, "MessagePack", encodings={"msgpack"})
    rows = customers(1400, 7)
    cap.tcp("203.0.113.14", 80, [(http("POST", "/ingest", "api.telemetry.example",
                                       [("Content-Type", "application/octet-stream")], cbor2.dumps(rows)), OK)])
    exp["203.0.113.14"] = _cust(rows, "CBOR", encodings={"cbor"})

    # 14. an AWS S3 multipart part (aws-chunked, SigV4) and an Azure Blob PutBlock
    rows = customers(1500, 5)
    body = csv_bytes(rows)
    chunked = b"%x;chunk-signature=%s\r\n" % (len(body), b"a" * 64) + body + b"\r\n0;chunk-signature=" + \
        b"b" * 64 + b"\r\n\r\n"
    cap.tcp("203.0.113.15", 80, [(http("PUT", "/big.csv?partNumber=2&uploadId=VXBsb2FkSWQ",
                                       "wms-exports.s3.eu-central-1.amazonaws.com",
                                       [("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                                        ("x-amz-decoded-content-length", str(len(body))),
                                        ("Content-Encoding", "aws-chunked"),
                                        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251125/"
                                                          "eu-central-1/s3/aws4_request")], chunked), OK)])
    exp["203.0.113.15"] = _cust(rows, "S3 UploadPart, aws-chunked", apis=["aws-s3:UploadPart"])
    rows = customers(1600, 5)
    cap.tcp("203.0.113.16", 80, [(http("PUT", "/exports/big.csv?comp=block&blockid=QmxvY2tJZDAwMDAx",
                                       "wmsexports.blob.core.windows.net",
                                       [("x-ms-version", "2023-11-03"), ("x-ms-date", "Tue, 25 Nov 2025 09:30:00 GMT")],
                                       csv_bytes(rows)), OK)])
    exp["203.0.113.16"] = _cust(rows, "Azure PutBlock", apis=["azure-blob:PutBlock"])

    # 15. a raw TCP stream (no known protocol) carrying a zip (stored) far larger than the sniffing head
    rows = customers(2000, 800)
    cap.tcp("203.0.113.17", 9000, [(zip_bytes({"dump.csv": csv_bytes(rows)}, zipfile.ZIP_STORED), b"OK\n")])
    exp["203.0.113.17"] = _cust(rows, "zip over raw TCP")

    # 16. a zipped CSV of 1.4 MiB (a random notes column): past the 1 MiB an HTTP response keeps
    import random
    rnd = random.Random(16)
    rows = [dict(r, notes=rnd.randbytes(450).hex()) for r in customers(3000, 3000)]
    cap.tcp("203.0.113.18", 80, [(http("POST", "/upload", "upload.filedrop.example",
                                       [("Content-Type", "application/zip")],
                                       zip_bytes({"big.csv": csv_bytes(rows)})), OK)])
    exp["203.0.113.18"] = _cust(rows, "1.4 MiB zip over HTTP", members=["big.csv"])

    # negatives: benign look-alikes count nothing
    cap.tcp("198.51.100.201", 80, [(http("POST", "/upload", "upload.filedrop.example",
                                         [("Content-Type", "application/zip")],
                                         zip_bytes({"README.txt": b"Release notes: pallet scanner firmware 4.2.1\n"
                                                                  b"Order 20251125-0042, build 20394857.\n"})), OK)])
    exp["198.51.100.201"] = Expect("zip of release notes", members=["README.txt"])
    beacon = http("GET", "/collect?v=1&tid=UA-000000-2&cid=555.1234567890&sid=" +
                  base64.b64encode(bytes(range(40, 64))).decode() + "&h=" + "deadbeefcafe0123456789abcdef0123" +
                  "&q=shipping%20rates%20to%20berlin", "analytics.example",
                  [("Cookie", "session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl; theme=dark"),
                   ("X-Client-Build", "4.2.1+20251125")])
    cap.tcp("198.51.100.202", 80, [(beacon, OK)])
    exp["198.51.100.202"] = Expect("analytics beacon without PII")
    metrics = sls_log_group([{"metric": "cpu", "value": str(40 + i), "host": f"wms-{i}"} for i in range(10)])
    cap.tcp("198.51.100.203", 80, [(http("POST", "/logstores/metrics", "dc-north.cn-hangzhou.log.aliyuncs.com",
                                         [("Content-Type", "application/x-protobuf"),
                                          ("x-log-apiversion", "0.6.0"), ("x-log-compresstype", "deflate"),
                                          ("x-log-bodyrawsize", str(len(metrics)))], zlib.compress(metrics)), OK)])
    exp["198.51.100.203"] = Expect("SLS metrics without PII", apis=["alibaba-sls:PutLogs"],
                                   encodings={"deflate", "protobuf"})
    cap.tcp("198.51.100.204", 80, [(http("POST", "/ingest", "api.telemetry.example",
                                         [("Content-Type", "application/msgpack")],
                                         msgpack.packb([{"sensor": "dock-3", "temp": 4.5, "ts": 1764000000 + i}
                                                        for i in range(20)])), OK)])
    exp["198.51.100.204"] = Expect("MessagePack telemetry", encodings={"msgpack"})
    cap.write(path)
    return exp
