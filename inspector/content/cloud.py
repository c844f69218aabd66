"""Cloud upload APIs recognised in HTTP requests, so that what they carry is decoded and named.

``recognise(info) -> Upload | None`` from a request's method, target, Host and headers (the HTTP
analyzer's body ``info``: ``method``, ``uri``/``target``, ``host``, ``headers``):

=====================================  ==================================================================
``alibaba-sls:PutLogs``                Log Service: ``POST /logstores/NAME[/shards/lb]``, Host
                                       ``*.log.aliyuncs.com`` or ``x-log-apiversion``; body a protobuf
                                       ``LogGroup`` compressed as ``x-log-compresstype`` says (``lz4``: a
                                       raw LZ4 block of ``x-log-bodyrawsize`` bytes, ``deflate``: zlib)
``alibaba-sls:WebTracking``            Log Service web tracking: ``/logstores/NAME/track`` (the logs are
                                       the query string or a JSON body)
``alibaba-oss:PutObject``,             Object Storage Service: Host ``*.aliyuncs.com`` with ``oss-`` or
``:UploadPart``, ``:AppendObject``,    ``x-oss-*`` headers / ``Authorization: OSS...``; a PUT with
``:PostObject``,                       ``partNumber`` and ``uploadId`` is a part of a multipart upload
``:CompleteMultipartUpload``
``aws-s3:PutObject``, ``:UploadPart``,  S3: Host ``*.amazonaws.com`` with ``s3``, or SigV4 with
``:PostObject``,                       ``x-amz-content-sha256``; ``aws-chunked`` bodies (``STREAMING-*``
``:CompleteMultipartUpload``           payload hashes) are de-chunked (``aws_unchunk``)
``azure-blob:PutBlob``, ``:PutBlock``,  Blob Storage: Host ``*.blob.core.windows.net`` or ``x-ms-blob-type``
``:PutBlockList``, ``:AppendBlock``,   / ``x-ms-version`` with ``comp=``
``:PutPage``
``gcp-gcs:Upload``                     Cloud Storage JSON/XML uploads (``storage.googleapis.com``)
=====================================  ==================================================================

The API's name goes into the content record (``upload_apis``); the body is decoded (codec, framing)
before it is typed and counted like any other (``Upload.codec``, ``Upload.raw_size``).  The pieces
of one object sent on one connection (multipart parts by part number, Azure blocks and appends in
the order sent) are named by ``Upload.part`` so that the content stage joins them before counting:
a row or an address cut at a part boundary is read whole.  Recognition
reads only what the request says about itself; nothing here raises.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Upload", "recognise", "aws_unchunk", "header"]

_SLS_PATH = re.compile(r"^/logstores/[^/?#]+(?:/shards/[^/?#]+)?/?(?:[?#].*)?$")
_SLS_TRACK = re.compile(r"^/logstores/[^/?#]+/track(?:_ua\.gif)?(?:[?#].*)?$")
_CHUNK_HEAD = re.compile(rb"([0-9a-fA-F]{1,16})(;[^\r\n]{0,256})?\r\n")


@dataclass
class Upload:
    api: str                       # "alibaba-sls:PutLogs", "aws-s3:UploadPart"...
    codec: str | None = None       # compression of the body ("lz4", "deflate", "zstd"...)
    raw_size: int | None = None    # uncompressed size the request declares (LZ4 blocks need it)
    aws_chunked: bool = False      # the body is aws-chunked (signed chunks)
    part: tuple | None = None      # (object + upload id, position) of a piece of one object, or None


def header(info: dict, name: str) -> str | None:
    """The first value of request header ``name`` (lower case) in ``info["headers"]``."""
    for n, v in info.get("headers") or ():
        if isinstance(n, str) and n.lower() == name:
            return v if isinstance(v, str) else bytes(v).decode("latin-1")
    return None


def _query_keys(target: str) -> dict:
    q = target.partition("?")[2].partition("#")[0]
    out = {}
    for piece in q.split("&"):
        k, _eq, v = piece.partition("=")
        if k:
            out[k.lower()] = v
    return out


def _int(v) -> int | None:
    v = (v or "").strip()
    return int(v) if v.isdigit() and len(v) <= 15 else None


def recognise(info: dict) -> Upload | None:
    """The cloud upload API a request is (see the module docstring), or None."""
    try:
        return _recognise(info)
    except Exception:
        return None


def _recognise(info: dict) -> Upload | None:
    method = (info.get("method") or "").upper()
    if method not in ("PUT", "POST", "GET"):
        return None
    target = info.get("target") or info.get("uri") or ""
    if not isinstance(target, str):
        return None
    host = (info.get("host") or "").lower().rsplit(":", 1)[0] if not (info.get("host") or "").startswith("[") \
        else (info.get("host") or "").lower()
    path = target.partition("?")[0].partition("#")[0]
    if "://" in path:                                 # absolute form through a proxy
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    q = _query_keys(target)
    names = {n.lower() for n, _v in info.get("headers") or () if isinstance(n, str)}
    auth = (header(info, "authorization") or "")[:32]

    # Alibaba Cloud Log Service
    if host.endswith(".log.aliyuncs.com") or "x-log-apiversion" in names or "x-log-bodyrawsize" in names:
        if _SLS_TRACK.match(path):
            return Upload("alibaba-sls:WebTracking")
        if method == "POST" and _SLS_PATH.match(path):
            codec = (header(info, "x-log-compresstype") or "").strip().lower() or None
            return Upload("alibaba-sls:PutLogs", codec if codec not in ("none", "") else None,
                          _int(header(info, "x-log-bodyrawsize")))
        return None
    if method == "GET":
        return None
    amz_chunked = (header(info, "x-amz-content-sha256") or "").upper().startswith("STREAMING-") or \
        "aws-chunked" in (header(info, "content-encoding") or "").lower()
    codec = _codec(header(info, "content-encoding"))
    # Alibaba Cloud Object Storage Service
    if (host.endswith(".aliyuncs.com") and "oss-" in host) or any(n.startswith("x-oss-") for n in names) \
            or auth.startswith(("OSS ", "OSS4-HMAC-SHA256")):
        op = _object_op(method, q, info, append=True)
        return Upload("alibaba-oss:" + op, codec, part=_part("oss", op, path, q))
    # Azure Blob Storage
    if host.endswith(".blob.core.windows.net") or "x-ms-blob-type" in names or \
            ("x-ms-version" in names and "comp" in q):
        comp = q.get("comp", "").lower()
        op = {"block": "PutBlock", "blocklist": "PutBlockList", "appendblock": "AppendBlock",
              "page": "PutPage"}.get(comp, "PutBlob" if method == "PUT" else None)
        if not op or method != "PUT":
            return None
        part = ("azure:" + path, None) if op in ("PutBlock", "AppendBlock") else None   # in arrival order
        return Upload("azure-blob:" + op, codec, part=part)
    # Google Cloud Storage
    if host == "storage.googleapis.com" or host.endswith(".storage.googleapis.com"):
        return Upload("gcp-gcs:Upload", codec)
    # Amazon S3 (and S3-compatible stores signing with SigV4)
    if (host.endswith(".amazonaws.com") and "s3" in host) or amz_chunked or \
            ("x-amz-content-sha256" in names and auth.startswith("AWS4-HMAC-SHA256")):
        op = _object_op(method, q, info, append=False)
        return Upload("aws-s3:" + op, codec, aws_chunked=amz_chunked, part=_part("s3", op, path, q))
    return None


def _codec(content_encoding) -> str | None:
    for c in (content_encoding or "").lower().split(","):
        c = c.strip()
        if c and c not in ("aws-chunked", "identity"):
            return c
    return None


def _part(cloud: str, op: str, path: str, q: dict) -> tuple | None:
    """Where a multipart part or an append goes: (object + upload id, position)."""
    if op == "UploadPart":
        return f"{cloud}:{path}?{q.get('uploadid', '')}", _int(q.get("partnumber"))
    if op == "AppendObject":
        return f"{cloud}:{path}", _int(q.get("position"))
    return None


def _object_op(method: str, q: dict, info: dict, append: bool) -> str:
    if method == "PUT":
        return "UploadPart" if "partnumber" in q and "uploadid" in q else "PutObject"
    if "uploadid" in q:
        return "CompleteMultipartUpload"
    if "uploads" in q:
        return "InitiateMultipartUpload"
    if append and "append" in q:
        return "AppendObject"
    ct = (info.get("content_type") or "").lower()
    return "PostObject" if ct.startswith("multipart/form-data") else "PutObject"


def aws_unchunk(data: bytes) -> bytes | None:
    """The payload of an ``aws-chunked`` body (``hex-size;chunk-signature=...\\r\\n DATA \\r\\n`` ... a
    zero-size chunk, then optional trailers), or None when the body is not framed that way."""
    out = bytearray()
    pos = 0
    n = len(data)
    while pos < n:
        m = _CHUNK_HEAD.match(data, pos)
        if m is None:
            return None if not out else bytes(out)
        size = int(m.group(1), 16)
        pos = m.end()
        if size == 0:
            return bytes(out)
        out += data[pos:pos + size]
        pos += size
        if data[pos:pos + 2] == b"\r\n":
            pos += 2
    return bytes(out)
