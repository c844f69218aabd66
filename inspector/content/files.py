"""Files: one ``files.jsonl`` record per file a protocol carried (Zeek's files.log), and extraction.

What counts as a file follows Zeek's file analysis framework:

* HTTP: each request or response body, after de-chunking and Content-Encoding (gzip, deflate, br...);
  a multipart body is not itself a file, each of its leaf parts is (form fields and uploads alike);
* SMTP: each leaf MIME entity of a message, Content-Transfer-Encoding (base64, quoted-printable)
  undone; a message without multipart structure is one file;
* FTP_DATA: each direction of an FTP data connection that carries bytes (RETR, STOR, LIST...), hashed
  incrementally as the stream is reassembled; reassembly gaps are ``missing_bytes``.

Fields (``FILES_FIELDS``): ``fuid`` is deterministic (a hash of the connection uid, the direction and
the file's ordinal in that direction), so the same input gives the same ids, unlike Zeek's random ones.
``uid``/``uids`` and ``id.*`` name the connection; ``is_orig`` says whether its originator sent the file;
``leaving`` whether the sender is inside the site and the receiver outside (the content stage's notion
of "leaves the site"; files are logged for every direction).  ``mime_type`` is sniffed from the file's
first bytes (``inspector.sniff.sniff_mime``, the sniffer the protocol logs use); ``filename`` comes from
Content-Disposition / Content-Type ``name`` / the FTP command's argument, e-mail addresses in it are
masked unless ``--show-raw`` (``PII_FIELDS`` below).  ``seen_bytes`` are the file bytes seen,
``total_bytes`` the size announced (Content-Length of an unencoded single-entity HTTP body, the FTP
``150 ... (N bytes)`` or ``213`` SIZE reply), ``missing_bytes`` the bytes lost in reassembly gaps.
``md5``/``sha1``/``sha256`` cover the whole file and are null when part of it was not seen (a gap, or
an SMTP part or an encoded or multipart HTTP body longer than the analyzers retain: 8 MiB of a message
or a request, 1 MiB of a response), as Zeek
drops a hash after a gap.  Plain HTTP bodies and data channels are hashed as they stream past
(``body_data``/``body_gap``, ``channel_events``), so their size is not bounded by that retention.

Archive members: a file that leaves the site and is an archive or a document with files inside (zip,
gzip, tar, 7z, OOXML/ODF embedded objects, PDF attachments; ``content.archives``) has each member
listed as a file of its own, ``parent_fuid`` naming the container (nested archives: the member
archive), ``filename`` the member's path, its own sniffed ``mime_type``, size and hashes; members of
a whole body only (not of a cut one), within the archive bounds (``archives.Budget``: member count,
expanded size, ratio, depth, time).  ``parent_fuid`` is null for a file a protocol carried.  Members are
not extracted on their own (their archive is).

Extraction (``Extractor``, ``scan --extract-files DIR``): the files that left the site (every file with
``extract_all``) are written as ``DIR/<sha256>``; a file cut by a size cap or with bytes missing is
written as ``DIR/<sha256 of the bytes written>.partial`` and has ``extracted_cutoff`` true (in a
streamed file, HTTP or FTP, a hole is zero-filled so later bytes keep their offsets).  A name that
exists already holds the same bytes (content-addressed): it is never overwritten, the file counts as a
duplicate.  Records carry ``extracted`` (the name within DIR), ``extracted_cutoff`` and
``extracted_size``; totals go to ``stats.json`` (``extracted``).

Cost: hashing is hashlib's C code over bytes the analyzers already hold; a data channel keeps only
the sniffing head and, when it is being extracted, at most the per-file extraction cap.
"""
from __future__ import annotations

import email.message
import hashlib
import os
import posixpath
from collections import Counter

from ..outputs.schema import FILES

FILES_FIELDS = FILES.names          # declared in inspector/outputs/schema.py

# Fields masked before files.jsonl is written: read by the pipeline's log masking, as the protocol
# modules' PII_FIELDS declarations are.
PII_FIELDS = {"files": ("filename",)}

SOURCES = {"http": "HTTP", "smtp": "SMTP", "ftp-data": "FTP_DATA"}
SNIFF_BYTES = 4096
MAX_FILENAME = 255
FUID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_EXTRACT_MAX_BYTES = 64 << 20        # per file
DEFAULT_EXTRACT_TOTAL_BYTES = 1 << 30       # per run
# first bytes of the containers whose members are listed (zip, gzip, 7z, PDF; tar by its ustar magic)
_CONTAINER_HEADS = frozenset((b"PK\x03\x04", b"PK\x05\x06", b"7z\xbc\xaf", b"%PDF")) | frozenset(
    b"\x1f\x8b\x08" + bytes((f,)) for f in range(256))


def fuid(uid: str, is_orig: bool, ordinal: int) -> str:
    """A Zeek-shaped file id (``F`` + 17 base-62 characters) derived from the connection uid, the
    direction and the file's ordinal in it: stable across runs over the same input."""
    h = int.from_bytes(hashlib.sha256(f"{uid}|{'orig' if is_orig else 'resp'}|{ordinal}".encode()).digest()[:16],
                       "big")
    out = []
    for _ in range(17):
        h, r = divmod(h, 62)
        out.append(FUID_ALPHABET[r])
    return "F" + "".join(out)


def part_filename(headers: dict) -> str | None:
    """The file name of a MIME entity: Content-Disposition ``filename`` (RFC 2231 forms included),
    else Content-Type ``name``."""
    msg = email.message.Message()
    try:
        if headers.get("content-disposition"):
            msg["Content-Disposition"] = headers["content-disposition"]
        if headers.get("content-type"):
            msg["Content-Type"] = headers["content-type"]
        name = msg.get_filename() or msg.get_param("name")
    except Exception:                 # a malformed header names nothing
        return None
    if isinstance(name, tuple):       # an undecodable RFC 2231 value: (charset, language, text)
        name = name[2]
    return clean_filename(name)


def clean_filename(name) -> str | None:
    """A file name as logged: control characters dropped, bounded length, None when empty."""
    if not isinstance(name, str):
        return None
    name = "".join(c for c in name if c >= " " and c != "\x7f").strip()
    return name[:MAX_FILENAME] or None


class _Digest:
    """md5, sha1 and sha256 over a file, fed in order; invalid once a byte is missing."""
    __slots__ = ("md5", "sha1", "sha256", "valid")

    def __init__(self):
        self.md5, self.sha1, self.sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
        self.valid = True

    def update(self, data) -> None:
        if self.valid:
            self.md5.update(data)
            self.sha1.update(data)
            self.sha256.update(data)

    def fields(self) -> dict:
        if not self.valid:
            return {"md5": None, "sha1": None, "sha256": None}
        return {"md5": self.md5.hexdigest(), "sha1": self.sha1.hexdigest(), "sha256": self.sha256.hexdigest()}


class FilesFlow:
    """Per connection: file ordinals per direction and the open data-channel files."""
    __slots__ = ("ctx", "leave", "ordinal", "streams", "pending", "source", "filename", "total_bytes")

    def __init__(self, ctx, leave):
        self.ctx = ctx
        self.leave = leave            # is_orig of the direction that leaves the site, or None
        self.ordinal = [0, 0]         # files so far: [resp, orig]
        self.streams = {}             # is_orig -> _Stream (data channels)
        self.pending = {}             # is_orig -> _Stream of the HTTP body in progress
        self.source = None            # a data channel's source ("FTP_DATA")
        self.filename = None          # the data channel's file name (the FTP command's argument)
        self.total_bytes = None


class _Stream:
    """One direction of a data channel being seen as a file."""
    __slots__ = ("ts", "digest", "head", "seen", "missing", "keep")

    def __init__(self, ts, keep: bool):
        self.ts = ts
        self.digest = _Digest()
        self.head = bytearray()
        self.seen = 0
        self.missing = 0
        self.keep = bytearray() if keep else None


class FilesStage:
    """Turns body and data-channel events into ``files`` records (``emit(log, record)``)."""

    def __init__(self, emit=None, extractor=None):
        self.emit = emit              # callable(log, record); the pipeline's content sink sets it
        self.extractor = extractor    # Extractor or None
        self.stats = Counter()
        from .. import mime
        from ..sniff import classify, sniff_mime
        from . import decoding
        self._sniff = sniff_mime
        self._classify = classify
        self._decoding = decoding
        self._mime = mime

    def new_flow(self, ctx, leave) -> FilesFlow:
        return FilesFlow(ctx, leave)

    # -- message bodies (HTTP, SMTP) -------------------------------------------------------
    def body_data(self, ff: FilesFlow, is_orig: bool, chunk) -> None:
        """A piece of the message body in progress in one direction, as it streams past (HTTP):
        a plain single-entity body is hashed whole from these, however much of it the analyzer
        retains for ``body``."""
        st = ff.pending.get(is_orig)
        if st is None:
            st = ff.pending[is_orig] = self._stream(ff, is_orig, None)
        self._feed(st, chunk)

    def body_gap(self, ff: FilesFlow, is_orig: bool, length: int) -> None:
        """Bytes of the body in progress that were never seen."""
        st = ff.pending.get(is_orig)
        if st is None:
            st = ff.pending[is_orig] = self._stream(ff, is_orig, None)
        self._hole(st, length)

    def body(self, ff: FilesFlow, is_orig: bool, info: dict, data: bytes) -> None:
        """A message body as the HTTP / SMTP analyzers deliver it (see their ``_deliver_body``)."""
        streamed = ff.pending.pop(is_orig, None)
        source = SOURCES.get(info.get("protocol") or "", (info.get("protocol") or "unknown").upper())
        ts = info.get("ts") if info.get("ts") is not None else ff.ctx.ts
        body_len = int(info.get("body_len") or len(data))
        whole = not info.get("truncated") and not info.get("incomplete")
        missing = max(body_len - len(data), 0) if info.get("incomplete") else 0
        seen_wire = body_len - missing
        ctype = info.get("content_type")
        boundary = info.get("boundary") or (self._mime.boundary_of(ctype)
                                            if ctype and "multipart/" in ctype.lower() else None)
        data = bytes(data)
        if source == "HTTP":
            enc = (info.get("content_encoding") or "").strip().lower()
            if enc and enc != "identity":
                decoded, note = self._decoding.decompress(data, enc)
                if note and "left as is" not in note:
                    whole = False     # cut by the decompression limits, or not valid
                data = decoded
            elif streamed is not None and not boundary:
                self._streamed_body(ff, is_orig, ts, info, body_len, streamed, data if whole else None)
                return
        if boundary:
            parts = self._mime.multipart(data, boundary)
            if parts:
                for headers, part in parts:
                    if part:
                        self._file(ff, is_orig, ts, source, part_filename(headers), part, len(part), None, 0,
                                   whole)
                return
        if source == "SMTP":
            data = self._mime.decode_transfer_encoding(info.get("content_transfer_encoding"), data)
            fn = part_filename({"content-type": ctype or "", "content-disposition": _header(info, "content-disposition")})
            total = None
            seen = len(data)
        else:
            fns = info.get("filenames") or []
            fn = clean_filename(fns[0]) if fns else None
            cl = info.get("content_length")
            plain = not (info.get("content_encoding") or "").strip() or \
                (info.get("content_encoding") or "").strip().lower() == "identity"
            total = cl if isinstance(cl, int) and plain else None
            seen = len(data) if whole or not plain else seen_wire
        self._file(ff, is_orig, ts, source, fn, data, seen, total, missing, whole)

    def _streamed_body(self, ff, is_orig, ts, info, body_len: int, st: _Stream, data: bytes | None) -> None:
        """A plain HTTP body from the bytes that streamed past: whole-file hashes past the retention
        cap; the bytes the analyzer counted but never delivered (gaps, lost sync) are missing.
        ``data``: the whole body when the analyzer retained all of it (archive members are listed)."""
        fns = info.get("filenames") or []
        cl = info.get("content_length")
        missing = max(body_len - st.seen, 0)
        if missing or info.get("incomplete"):
            st.digest.valid = False   # a hole, or the connection ended before the body did
        rec = self._record(ff, is_orig, ts, "HTTP", clean_filename(fns[0]) if fns else None,
                           self._sniff(bytes(st.head)) if st.head else None, st.seen,
                           cl if isinstance(cl, int) else None, missing, st.digest, self._kept(st))
        if data is not None and st.digest.valid and len(data) == st.seen:
            self._members(ff, is_orig, ts, "HTTP", rec, data)

    def _file(self, ff, is_orig, ts, source, filename, data: bytes, seen: int, total, missing: int,
              whole: bool) -> None:
        digest = _Digest()
        if whole and not missing:
            digest.update(data)
        else:
            digest.valid = False
        mime = self._sniff(data[:SNIFF_BYTES]) if data else None
        rec = self._record(ff, is_orig, ts, source, filename, mime, seen, total, missing, digest, data)
        if whole and not missing:
            self._members(ff, is_orig, ts, source, rec, data)

    # -- archive members ----------------------------------------------------------------------
    def _members(self, ff, is_orig, ts, source, parent: dict, data: bytes, budget=None, level: int = 0) -> None:
        """List the members of a leaving archive or document as files under ``parent`` (recursively,
        within one ``archives.Budget``).  Problems (bombs, encryption) are the content stage's to
        report; here a bound only ends the listing."""
        if not parent["leaving"] or not data or data[:4] not in _CONTAINER_HEADS and not (
                len(data) > 262 and data[257:262] == b"ustar"):
            return
        from . import archives
        if budget is None:
            budget = archives.Budget()
        if level >= budget.max_depth:
            return
        ptype, _note = self._classify(data)
        members, _problems = archives.expand(data, ptype, budget)
        for k, m in enumerate(members):
            if m.kind != "member":
                continue
            digest = _Digest()
            digest.update(m.data)
            rec = self._record(ff, is_orig, ts, source, clean_filename(m.name), self._sniff(m.data[:SNIFF_BYTES]),
                               len(m.data), None, 0, digest, None, parent=parent["fuid"], ordinal=k)
            self._members(ff, is_orig, ts, source, rec, m.data, budget, level + 1)

    # -- data channels (FTP) ------------------------------------------------------------------
    def open_channel(self, ff: FilesFlow, source: str, filename=None, total_bytes=None) -> None:
        """This connection is a data channel: each direction's bytes are a file."""
        ff.source = source
        ff.filename = clean_filename(filename)
        ff.total_bytes = total_bytes

    def channel_events(self, ff: FilesFlow, is_orig: bool, events, ts) -> None:
        """In-order ``("data", bytes)`` / ``("gap", n)`` events of one direction of a data channel."""
        st = ff.streams.get(is_orig)
        for kind, val in events:
            if st is None:
                st = ff.streams[is_orig] = self._stream(ff, is_orig, ts)
            if kind == "data":
                self._feed(st, val)
            else:
                self._hole(st, val)

    def _stream(self, ff: FilesFlow, is_orig: bool, ts) -> _Stream:
        ex = self.extractor
        return _Stream(ts, ex is not None and ex.wants(is_orig == ff.leave))

    def _feed(self, st: _Stream, data) -> None:
        st.digest.update(data)
        st.seen += len(data)
        if len(st.head) < SNIFF_BYTES:
            st.head += data[:SNIFF_BYTES - len(st.head)]
        if st.keep is not None:
            room = self.extractor.room() - len(st.keep)
            if room > 0:
                st.keep += data[:room]

    def _hole(self, st: _Stream, length) -> None:
        """Bytes never seen: counted, the hashes dropped, and zeros in the kept copy so that what
        follows stays at its offset (as Zeek's extraction leaves holes)."""
        length = int(length)
        st.missing += length
        st.digest.valid = False
        if st.keep is not None:
            room = self.extractor.room() - len(st.keep)
            if room > 0:
                st.keep += bytes(min(room, length))

    @staticmethod
    def _kept(st: _Stream):
        """What was kept of a stream for extraction (a ``_Cut`` when shorter than the file), or None."""
        if st.keep is None:
            return None
        return bytes(st.keep) if len(st.keep) >= st.seen + st.missing else _Cut(st.keep)

    def end_flow(self, ff: FilesFlow, ts) -> None:
        """The connection ended: write its data-channel files."""
        for is_orig in (True, False):
            st = ff.streams.pop(is_orig, None)
            if st is None:
                continue
            mime = self._sniff(bytes(st.head)) if st.head else None
            self._record(ff, is_orig, st.ts, ff.source or "TCP", ff.filename, mime, st.seen, ff.total_bytes,
                         st.missing, st.digest, self._kept(st))

    # -- records ------------------------------------------------------------------------------
    def _record(self, ff, is_orig, ts, source, filename, mime, seen, total, missing, digest, data,
                parent: str | None = None, ordinal: int = 0) -> dict:
        """Write one files record; a member of ``parent`` (a fuid) takes its id from the parent's and
        its position in it, and is not extracted on its own."""
        ctx = ff.ctx
        if parent is None:
            n = ff.ordinal[is_orig]
            ff.ordinal[is_orig] = n + 1
            file_id = fuid(ctx.uid, is_orig, n)
        else:
            file_id = fuid(parent, True, ordinal)
        leaving = ff.leave is not None and is_orig == ff.leave
        rec = {
            "ts": ts, "fuid": file_id, "uid": ctx.uid, "uids": [ctx.uid],
            "id.orig_h": ctx.orig_h, "id.orig_p": ctx.orig_p, "id.resp_h": ctx.resp_h, "id.resp_p": ctx.resp_p,
            "source": source, "is_orig": bool(is_orig), "leaving": leaving, "mime_type": mime,
            "filename": filename, "seen_bytes": int(seen), "total_bytes": total, "missing_bytes": int(missing),
        }
        rec.update(digest.fields())
        rec.update(parent_fuid=parent, extracted=None, extracted_cutoff=None, extracted_size=None)
        ex = self.extractor
        if ex is not None and data is not None and parent is None and ex.wants(leaving):
            cut = isinstance(data, _Cut) or not digest.valid
            got = ex.write(bytes(data), None if cut else rec["sha256"])
            if got is not None:
                rec["extracted"], rec["extracted_cutoff"], rec["extracted_size"] = got
        self.stats["files"] += 1
        if self.emit is not None:
            self.emit("files", rec)
        return rec


class _Cut(bytes):
    """The kept prefix of a file longer than the extraction cap."""


def _header(info: dict, name: str) -> str:
    for n, v in info.get("headers") or ():
        if isinstance(n, str) and n.lower() == name:
            return v if isinstance(v, str) else bytes(v).decode("latin-1")
    return ""


class ExtractError(Exception):
    """The extraction directory cannot be created or written."""


class Extractor:
    """Writes files content-addressed into a directory, within per-file and total caps."""

    def __init__(self, directory: str, max_bytes: int = DEFAULT_EXTRACT_MAX_BYTES,
                 total_bytes: int = DEFAULT_EXTRACT_TOTAL_BYTES, extract_all: bool = False):
        self.directory = directory
        self.max_bytes = max(0, int(max_bytes))
        self.total_bytes = max(0, int(total_bytes))
        self.extract_all = extract_all
        self.written = 0
        self.error = None             # the first write error (extraction stops there)
        self.stats = Counter()

    def check(self) -> None:
        """Create the directory and prove it writable; ExtractError (one line) otherwise."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            probe = os.path.join(self.directory, f".inspector-probe-{os.getpid()}")
            with open(probe, "xb"):
                pass
            os.unlink(probe)
        except OSError as e:
            raise ExtractError(f"cannot write extracted files to {self.directory}: {e.strerror or e}") from None

    def wants(self, leaving: bool) -> bool:
        return self.error is None and (leaving or self.extract_all)

    def room(self) -> int:
        """Bytes one more file may take: the per-file cap, within what the total cap leaves (a
        streamed file keeps no more than this in memory)."""
        return max(0, min(self.max_bytes, self.total_bytes - self.written))

    def write(self, data: bytes, sha256: str | None):
        """Store one file; (name, cutoff, size) or None when skipped.  ``sha256`` is the whole
        file's digest, or None when ``data`` is not the whole file (then it is a ``.partial``)."""
        if self.error is not None:
            return None
        room = self.room()
        if room <= 0 or not data:
            self.stats["skipped_cap" if data else "skipped_empty"] += 1
            return None
        cutoff = sha256 is None or len(data) > room
        if len(data) > room:
            data = data[:room]
        if cutoff:
            name = hashlib.sha256(data).hexdigest() + ".partial"
        else:
            name = sha256
        final = os.path.join(self.directory, name)
        if os.path.exists(final):
            self.stats["duplicates"] += 1
            return name, cutoff, len(data)
        tmp = os.path.join(self.directory, f".{name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
            try:
                os.link(tmp, final)           # atomic, and never replaces an existing name
            except FileExistsError:
                self.stats["duplicates"] += 1
                return name, cutoff, len(data)
            finally:
                os.unlink(tmp)
        except OSError as e:
            self.error = f"cannot write extracted file {final}: {e.strerror or e}"
            self.stats["errors"] += 1
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return None
        self.written += len(data)
        self.stats["files"] += 1
        self.stats["bytes"] += len(data)
        if cutoff:
            self.stats["partial"] += 1
        return name, cutoff, len(data)

    def summary(self) -> dict:
        out = {k: int(self.stats.get(k, 0)) for k in ("files", "bytes", "partial", "duplicates", "skipped_cap",
                                                       "errors")}
        out["directory"] = self.directory
        if self.error:
            out["error"] = self.error
        return out


def ftp_filename(arg) -> str | None:
    """The file name an FTP transfer command names (its argument, without the directory part)."""
    if not isinstance(arg, str) or not arg.strip():
        return None
    return clean_filename(posixpath.basename(arg.strip().rstrip("/")) or arg.strip())
