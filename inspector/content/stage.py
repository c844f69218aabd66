"""Per-flow content aggregation: what leaves, what kind of payload, which records.

The application layer hands this stage the payload that *leaves the site* (sent
by the local side to the non-local side, whichever side opened the connection):

* ``body(flow, info, data)``: an application message body (HTTP request body,
  SMTP DATA, an FTP data transfer, a DNS query name, a UDP datagram...);
* ``stream(flow, data)``: raw stream bytes of a protocol without message
  structure (unknown TCP protocols, FTP data channels), accumulated per flow up
  to a budget and inspected as one body at the end;
* ``opaque(flow, payload_type, nbytes)``: payload that cannot be inspected
  (TLS, SSH, QUIC), counted by type.

Each body is decoded (Content-Encoding, multipart, base64/base32/hex runs; archives and office
documents are opened by ``archives.expand`` and each member inspected, within one shared budget),
typed (``sniff.classify``), parsed for records (``records.count_records``) and
scanned for identifiers; values are kept per flow as DISTINCT normalised values
per class.  ``finish(flow)`` returns the flow fields and the ``content.jsonl``
record.  Evidence is masked and hashed (HMAC-SHA256 with the run's salt); raw
values only with ``show_raw``.

Hashes let later stages count DISTINCT values over several connections without
keeping raw values (``inspector.incidents``): ``hashes`` holds the salted hash
of up to ``HASHES_PER_CLASS`` distinct values per class (the first in sorted
order; ``data[class]`` minus the list's length is what was not listed), and
``record_hashes`` the salted hash of up to ``RECORD_HASHES_PER_KIND`` record
identities per kind (``records.record_identity``: the identifiers a record
carries), with ``record_hashes_more`` counting distinct identities not listed.
"""
from __future__ import annotations

import hashlib
import hmac
from collections import Counter

from ..outputs.schema import CONTENT, CONTENT_FLOW_FIELDS, names

# Field orders, from the stream declarations (inspector/outputs/schema.py owns them).
CONTENT_FIELDS = CONTENT.names
FLOW_CONTENT_FIELDS = names(CONTENT_FLOW_FIELDS)

SAMPLES_PER_CLASS = 3
_HTTP_CODINGS = ("gzip", "x-gzip", "deflate", "br", "zstd", "x-zstd")    # decoding.decompress
_CODECS = ("lz4", "snappy", "x-snappy-framed", "xz", "bzip2")           # binary.decompress
_NOTHING_TO_READ = ("tls-encrypted", "encrypted-or-compressed", "image", "zip", "office")
HASHES_PER_CLASS = 1000
RECORD_HASHES_PER_KIND = 10_000
MAX_VALUES_PER_CLASS = 1_000_000


class ContentFlow:
    """Accumulators of one connection's leaving payload.  ``uid``, ``ts`` (connection start) and
    ``leave`` (the ``is_orig`` value of the direction that leaves the site) are set by the
    pipeline's content sink (``content.sink``) when the connection opens."""
    __slots__ = ("bytes_by_type", "values", "records", "encodings", "edi", "stream", "stream_info", "notes",
                 "bodies", "types_seen", "uid", "ts", "leave", "record_counts", "apis", "parts")

    def __init__(self, uid: str | None = None, ts: float | None = None, leave: bool | None = None):
        self.uid = uid
        self.ts = ts
        self.leave = leave
        self.bytes_by_type = Counter()
        self.types_seen = set()
        self.values = {}              # class -> set of normalised values
        self.records = Counter()      # customer / shipment
        self.record_counts = None     # records.RecordCount: identities of the records counted so far
        self.encodings = set()
        self.edi = []
        self.stream = bytearray()
        self.stream_info = None
        self.notes = []
        self.bodies = 0
        self.apis = set()             # cloud upload APIs recognised (content.cloud)
        self.parts = {}               # object -> [info, [(position, bytes)]]: upload parts, joined at the end


class ContentStage:
    def __init__(self, salt: bytes = b"inspector", show_raw: bool = False, edm=(), stream_budget: int = 4 << 20,
                 body_budget: int = 64 << 20, weird=None):
        from .. import mime, sniff
        from . import archives, binary, cloud, decoding, identifiers, params, records
        from .prefilter import Prefilter
        self.prefilter = Prefilter()
        self.types = sniff
        self.archives = archives
        self.binary = binary
        self.cloud = cloud
        self.params = params
        self.mime = mime
        self.decoding = decoding
        self.identifiers = identifiers
        self.records_mod = records
        self.salt = salt
        self.show_raw = show_raw
        self.edm = list(edm)
        self.stream_budget = stream_budget
        self.body_budget = body_budget
        self.weird = weird            # callable(uid, name, detail) or None
        self.stats = Counter()
        from .files import FilesStage
        self.files = FilesStage()     # files.jsonl: every body / data channel, all directions

    def new_flow(self) -> ContentFlow:
        return ContentFlow()

    # -- input ------------------------------------------------------------------------
    def opaque(self, cf: ContentFlow, payload_type: str, nbytes: int) -> None:
        if nbytes > 0:
            cf.bytes_by_type[payload_type] += nbytes
            cf.types_seen.add(payload_type)

    def stream(self, cf: ContentFlow, data: bytes, info: dict | None = None) -> None:
        room = self.stream_budget - len(cf.stream)
        if room > 0:
            cf.stream += data[:room]
        if info is not None and cf.stream_info is None:
            cf.stream_info = info
        if room < len(data):
            cf.bytes_by_type["__over_budget__"] += len(data) - max(room, 0)

    def body(self, cf: ContentFlow, info: dict, data: bytes, uid: str | None = None) -> None:
        """One message body that leaves the site; ``info`` may carry content_type, content_encoding,
        boundary, source ("http", "smtp", "ftp-data", "dns", "udp", "tcp")."""
        cf.bodies += 1
        data = bytes(data[:self.body_budget])
        enc = (info.get("content_encoding") or "").lower().strip()
        upload = self.cloud.recognise(info) if info.get("direction") == "request" else None
        if upload is not None:
            cf.apis.add(upload.api)
            if upload.aws_chunked:
                data = self.cloud.aws_unchunk(data) or data
            enc = upload.codec or ""         # the API's own compression header, or Content-Encoding
        if enc in _HTTP_CODINGS:
            data, note = self.decoding.decompress(data, enc)
            if note:
                self._weird(uid, "content.decompression", note)
            elif upload is not None:
                cf.encodings.add(enc)
        elif enc in _CODECS:
            data = self._codec(cf, data, enc, upload.raw_size if upload is not None else None, uid)
        if upload is not None and upload.part is not None and self._part(cf, upload, info, data):
            return
        declared = info.get("content_type")
        boundary = info.get("boundary")
        if boundary or (declared and "multipart/" in declared.lower() and "boundary=" in declared.lower()):
            # no usable boundary parameter: multipart() takes it from the body's first line
            parts = self.mime.multipart(data, boundary or self.mime.boundary_of(declared))
            if parts:
                cf.bytes_by_type["multipart"] += len(data)
                cf.types_seen.add("multipart")
                for headers, part in parts:
                    sub = dict(info)
                    sub.pop("boundary", None)
                    sub["content_type"] = headers.get("content-type")
                    sub["content_encoding"] = None
                    self._inspect(cf, sub, part, uid, count_bytes=False)
                return
        self._inspect(cf, info, data, uid, count_bytes=True)

    def _inspect(self, cf: ContentFlow, info: dict, data: bytes, uid, count_bytes: bool, depth: int = 0,
                 budget=None, level: int = 0) -> None:
        if not data:
            return
        if data.startswith(self.binary.H2_PREFACE) and level < 8:
            # cleartext HTTP/2 read as a raw stream (gRPC, REST over h2c): each stream's DATA is a body
            cf.types_seen.add("http2")
            if count_bytes:
                cf.bytes_by_type["http2"] += len(data)
            for body in self.binary.h2c_bodies(data):
                self._inspect(cf, {"source": info.get("source")}, body, uid, False, depth, budget, level + 1)
            return
        ptype, note = self.types.classify(data, info.get("content_type"))
        if note and not level:
            self._weird(uid, "content.type_mismatch", note)
        cf.types_seen.add(ptype)
        if count_bytes:
            cf.bytes_by_type[ptype] += len(data)
        if ptype in self.archives.ARCHIVE_TYPES or (ptype in ("binary", "text", "encrypted-or-compressed") and (
                self.archives.is_tar(data) or self.archives.is_7z(data) or self.archives.is_table_file(data))):
            self._archive(cf, info, data, uid, ptype, budget, level)
            return
        if ptype in ("encrypted-or-compressed", "binary") and level < 8:
            codec = self.binary.codec_of(data)
            if codec is not None:
                # compressed by magic (zstd, LZ4 frame, framed Snappy, xz, bzip2): read what it holds
                out = self._codec(cf, data, codec, None, uid)
                if out is not data:
                    self._inspect(cf, {"source": info.get("source")}, out, uid, False, depth, budget, level + 1)
                return
        if ptype in ("protobuf", "binary") or (ptype == "text" and (
                self._declared_binary(info) or 0x80 <= data[0] < 0xC0 or data[:3] == b"\xd9\xd9\xf7")):
            # (text that starts with a byte no UTF-8 text starts with: a MessagePack/CBOR container)
            if self._structured(cf, info, data, uid, depth, budget, level):
                return
        if ptype in _NOTHING_TO_READ or ptype == "protobuf":
            return
        if ptype == "form":
            # form values decoded (URL, base64, hex, nested JSON or forms) before they are counted
            self._pairs(cf, self.params.parse_form(data), uid, depth, budget, level)
            return
        # One multi-pattern pass first: unstructured payloads with no candidate at all skip the
        # validators (the bulk of logs, pages and binaries leaving a site).
        if ptype in ("text", "html", "binary") and len(data) > 2048 and not self.prefilter.has_any(data):
            self.stats["prefilter_skipped"] += 1
            if ptype == "text" and depth < 2:
                self._encoded(cf, data, depth, uid)
            return
        rc = self.records_mod.count_records(data, ptype)
        self._count(cf, rc)
        if rc.edi:
            cf.edi.extend(rc.edi[:1000 - len(cf.edi)] if len(cf.edi) < 1000 else [])
        # Encoded data (base64/base32/hex in text, JSON strings, DNS labels) is decoded and inspected too.
        if depth < 2:
            self._encoded(cf, data, depth, uid)

    def _part(self, cf: ContentFlow, upload, info: dict, data: bytes) -> bool:
        """Keep one piece of an object uploaded in parts (``cloud.Upload.part``) to be joined with the
        others of this connection when it ends; False when the pieces would pass the body budget
        (then this one is inspected on its own)."""
        key, position = upload.part
        entry = cf.parts.get(key)
        if entry is None:
            entry = cf.parts[key] = [dict(info), []]
        if sum(len(d) for _p, d in entry[1]) + len(data) > self.body_budget:
            return False
        entry[1].append((len(entry[1]) if position is None else position, data))
        return True

    def _join_parts(self, cf: ContentFlow, uid) -> None:
        """Inspect each object uploaded in parts as one body: its pieces in position order."""
        for info, pieces in cf.parts.values():
            joined = b"".join(d for _p, d in sorted(pieces, key=lambda x: x[0]))
            self._inspect(cf, info, joined, uid, count_bytes=True)
        cf.parts = {}

    def request(self, cf: ContentFlow, info: dict, uid: str | None = None) -> None:
        """A request that leaves the site, whatever its body: the values in its query string, cookies
        and custom headers (``params``) are decoded and counted as one form record; a cloud upload
        API it calls is named even when it has no body (``cloud``)."""
        upload = self.cloud.recognise(info)
        if upload is not None:
            cf.apis.add(upload.api)
        pairs = self.params.request_pairs(info.get("target") or info.get("uri"), info.get("headers"))
        if pairs and self._pairs(cf, pairs, uid, 0, None, 1):
            cf.types_seen.add("request-params")

    def _pairs(self, cf: ContentFlow, pairs, uid, depth: int, budget, level: int) -> bool:
        """Decode named values (``params.decode_pairs``) and count them as one form record; values
        that decode to whole documents are inspected as bodies.  True when something was found."""
        documents: list = []
        decoded, encodings = self.params.decode_pairs(pairs, documents)
        text = self.params.render(decoded)
        before = _found(cf)
        if text and (len(text) <= 2048 or self.prefilter.has_any(text)):
            rc = self.records_mod.count_records(text, "form")
            if rc.data:
                self._count(cf, rc)
        for doc in documents[:16]:
            self._inspect(cf, {"source": "http"}, doc, uid, False, depth + 1, budget, level + 1)
        if _found(cf) == before:
            return False
        cf.encodings.update(encodings - {"url"})   # percent-encoding is HTTP's own, not a disguise
        return True

    def openable(self, head: bytes) -> bool:
        """Do these first bytes start something the stage opens (an archive or document, a
        compression format, a MessagePack/CBOR container)?  A raw stream that does is read on."""
        return self._container(head) or 0x80 <= head[0] < 0xC0 or head[:3] == b"\xd9\xd9\xf7"

    def _container(self, head: bytes) -> bool:
        """An archive, a document or a compression format by its magic bytes."""
        return (head[:4] in (b"PK\x03\x04", b"%PDF", b"PAR1") or head[:2] == b"\x1f\x8b" or self.archives.is_7z(head)
                or self.archives.is_tar(head) or head[:6] == b"ARROW1" or head[:16] == b"SQLite format 3\x00"
                or self.binary.codec_of(head) is not None)

    def _declared_binary(self, info: dict) -> bool:
        ct = (info.get("content_type") or "").lower()
        return any(t in ct for t in ("protobuf", "grpc", "msgpack", "cbor"))

    def _codec(self, cf: ContentFlow, data: bytes, codec: str, raw_size, uid) -> bytes:
        """``data`` with one compression undone (``binary.decompress``) within the body budget; the
        input itself when it does not decode (a weird says why)."""
        try:
            out = self.binary.decompress(data, codec, raw_size, self.body_budget)
        except self.binary.Bomb as e:
            self._weird(uid, "content.decompression", f"{e} (possible decompression bomb); not expanded")
            return data
        except Exception as e:
            self._weird(uid, "content.decompression", f"{codec} data does not decode ({type(e).__name__})")
            return data
        cf.encodings.add(codec)
        self.stats["decoded_" + codec] += 1
        return out

    def _structured(self, cf: ContentFlow, info: dict, data: bytes, uid, depth: int, budget, level: int) -> bool:
        """gRPC messages, protobuf, MessagePack or CBOR read without a schema (``binary``) and counted as
        the JSON they become; True when ``data`` was one of them."""
        declared = info.get("content_type")
        if "grpc-web-text" in (declared or "").lower():
            got = self.decoding.decode_token(data.replace(b"\r", b"").replace(b"\n", b""), 4)
            if got is not None and got[0].startswith("base64"):
                data = got[1]                    # gRPC-Web text mode: the frames in base64
        msgs = self.binary.grpc_messages(data) if data[:1] in (b"\x00", b"\x01") else None
        if msgs:
            cf.encodings.add("grpc")
            grpc_enc = (self.cloud.header(info, "grpc-encoding") or "").strip().lower()
            for compressed, msg in msgs:
                if compressed:
                    codec = grpc_enc or self.binary.codec_of(msg) or ("gzip" if msg[:2] == b"\x1f\x8b" else "")
                    if not codec:
                        continue
                    out = self._codec(cf, msg, codec, None, uid)
                    if out is msg:
                        continue
                    msg = out
                got = self.binary.structured(msg, "application/grpc")
                if got is not None:
                    self._count(cf, self.records_mod.count_records(got[1], "json"))
                elif msg:
                    self._inspect(cf, {"source": info.get("source")}, msg, uid, False, depth, budget, level + 1)
            return True
        got = self.binary.structured(data, declared)
        if got is None:
            return False
        cf.encodings.add(got[0])
        self._count(cf, self.records_mod.count_records(got[1], "json"))
        return True

    def _archive(self, cf: ContentFlow, info: dict, data: bytes, uid, ptype: str, budget, level: int) -> None:
        """Open an archive or document (``archives.expand``) and inspect each member as a body of its
        own.  One ``Budget`` bounds all nesting levels of a body; a bound reached or an encrypted entry
        is a weird (``content.archive_bomb``, ``content.encrypted_archive``), never an exception."""
        if budget is None:
            budget = self.archives.Budget()
        if level >= budget.max_depth:
            self._weird(uid, "content.archive_bomb", f"archives nested deeper than {budget.max_depth} levels")
            return
        members, problems = self.archives.expand(data, ptype, budget)
        for name, detail in problems:
            self._weird(uid, name, detail)
        sub = {"source": info.get("source")}
        for m in members:
            self.stats["archive_members"] += 1
            self._inspect(cf, dict(sub, content_type=m.declared), m.data, uid, count_bytes=False,
                          budget=budget, level=level + 1)

    def _encoded(self, cf: ContentFlow, data: bytes, depth: int, uid=None) -> None:
        """base64/base32/hex runs inside a text body: text is counted as it is; an archive, a
        compressed stream or a binary encoding (a zip or gzip in base64 inside JSON, a protobuf in a
        string) is inspected as a body of its own, one level deeper."""
        for encoding, decoded in self.decoding.encoded_runs(data):
            cf.encodings.add(encoding)
            sub_type, _ = self.types.classify(decoded)
            if sub_type in ("zip", "gzip", "office", "pdf") or self._container(decoded):
                self._inspect(cf, {}, decoded, uid, False, depth + 1, None, 1)
                continue
            if sub_type in ("protobuf", "binary"):
                # gRPC frames, protobuf, MessagePack or CBOR (a gRPC-Web text body, a token payload)
                self._structured(cf, {}, decoded, uid, depth + 1, None, 1)
                continue
            if sub_type in ("tls-encrypted", "encrypted-or-compressed", "image", "binary"):
                continue
            self._count(cf, self.records_mod.count_records(decoded, sub_type))

    def _count(self, cf: ContentFlow, rc) -> None:
        """Add one ``RecordCount`` to the flow: record counts, their identities, identifier values."""
        cf.records["customer"] += rc.customer
        cf.records["shipment"] += rc.shipment
        if rc.customer or rc.shipment:
            if cf.record_counts is None:
                cf.record_counts = self.records_mod.RecordCount()
            cf.record_counts.merge(rc)
        self._merge(cf, rc.data)

    def _merge(self, cf: ContentFlow, found: dict) -> None:
        for cls, vals in found.items():
            if not vals:
                continue
            s = cf.values.get(cls)
            if s is None:
                s = cf.values[cls] = set()
            if len(s) < MAX_VALUES_PER_CLASS:
                s.update(vals)

    def _weird(self, uid, name: str, detail: str) -> None:
        self.stats[name] += 1
        if self.weird is not None:
            self.weird(uid, name, detail)

    # -- output ---------------------------------------------------------------------
    def finish(self, cf: ContentFlow, uid: str, ts: float, direction: str, app_bytes_out: int) -> tuple[dict, dict]:
        """(flow fields, content.jsonl record or None) for a connection that ended."""
        if cf.parts:
            self._join_parts(cf, uid)
        if cf.stream:
            info = cf.stream_info or {"source": "tcp"}
            self._inspect(cf, info, bytes(cf.stream), uid, count_bytes=True)
            cf.stream = bytearray()
        over = cf.bytes_by_type.pop("__over_budget__", 0)
        types = {k: v for k, v in cf.bytes_by_type.items() if v > 0}
        if over and types:
            # bytes past the inspection budget count for the type seen so far
            top = max(types, key=types.get)
            types[top] += over
        ptype = max(sorted(types), key=types.get) if types else None
        data = {cls: len(v) for cls, v in sorted(cf.values.items()) if v}
        edi_counts = Counter(f"{m.get('standard')}:{m.get('type')}" for m in cf.edi)
        if cf.edi:
            data["edifact_message"] = sum(1 for m in cf.edi if m.get("standard") == "edifact") or \
                data.get("edifact_message", 0)
            data["x12_transaction"] = sum(1 for m in cf.edi if m.get("standard") == "x12") or \
                data.get("x12_transaction", 0)
            data = {k: v for k, v in data.items() if v}
        records = {"customer": int(cf.records.get("customer", 0)), "shipment": int(cf.records.get("shipment", 0))}
        edm = {}
        for index in self.edm:
            rows = index.match_values(cf.values)
            if rows:
                edm[index.name] = rows
        fields = {
            "payload_type": ptype,
            "payload_types": sorted(set(types) | cf.types_seen),
            "payload_encoding": ",".join(sorted(cf.encodings)) if cf.encodings else None,
            "app_bytes_out": int(app_bytes_out),
            "data": data,
            "records": records,
            "edm": edm,
        }
        if not data and not any(records.values()) and not edm and not cf.edi and not cf.apis:
            return fields, None
        samples = {}
        hashes = {}
        for cls, vals in sorted(cf.values.items()):
            ordered = sorted(vals)
            if self.show_raw:
                samples[cls] = ordered[:SAMPLES_PER_CLASS]
            else:
                samples[cls] = [self.identifiers.mask(cls, v) for v in ordered[:SAMPLES_PER_CLASS]]
            hashes[cls] = [self.hash(v) for v in ordered[:HASHES_PER_CLASS]]
        record_hashes, more = {}, {}
        rcs = cf.record_counts
        for kind in ("customer", "shipment"):
            keys = sorted(rcs.keys[kind]) if rcs is not None else []
            if keys:
                record_hashes[kind] = sorted(self.hash(k) for k in keys[:RECORD_HASHES_PER_KIND])
            extra = max(0, len(keys) - RECORD_HASHES_PER_KIND) + (rcs.keys_dropped[kind] if rcs is not None else 0)
            if extra:
                more[kind] = extra
        record = {
            "ts": ts, "uid": uid, "direction": direction, "payload_type": ptype,
            "payload_types": fields["payload_types"], "payload_encoding": fields["payload_encoding"],
            "app_bytes_out": fields["app_bytes_out"], "data": data, "records": records, "samples": samples,
            "hashes": hashes,
            "record_hashes": record_hashes,
            "record_hashes_more": more,
            "edi": [{k: m.get(k) for k in ("standard", "type", "ref", "sender", "recipient")}
                    for m in cf.edi[:100]],
            "edi_counts": dict(edi_counts),
            "edm": edm,
            "upload_apis": sorted(cf.apis),
        }
        return fields, record

    def hash(self, value: str) -> str:
        return hmac.new(self.salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def _found(cf: ContentFlow) -> tuple[int, int]:
    """How much a flow has found so far (distinct values, records): did a decoding step add any?"""
    return sum(len(v) for v in cf.values.values()), sum(cf.records.values())


def empty_fields() -> dict:
    return {"payload_type": None, "payload_types": [], "payload_encoding": None, "app_bytes_out": 0, "data": {},
            "records": {"customer": 0, "shipment": 0}, "edm": {}}
