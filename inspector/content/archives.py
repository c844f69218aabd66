"""Archives and documents opened for inspection: zip (nested), gzip, tar, 7z, OOXML, ODF, PDF.

``expand(data, ptype, budget) -> (members, problems)``: the inspectable members of one archive or
document, each ``Member(name, data, declared, kind)`` where ``declared`` is a Content-Type hint for the
sniffer (``text/csv`` for a spreadsheet rendered as CSV) and ``kind`` says what it is: ``"member"`` a
file stored in the archive or embedded in the document (an OOXML ``*/embeddings/*`` part, a PDF
attachment), listed in files.jsonl under its container; ``"rendered"`` text rendered from the
document (sheets as CSV, paragraphs, PDF page text), inspected but not a file.  The problems met are
each ``(weird name, detail)``:

* ``content.encrypted_archive``: a zip entry with the encryption flag (traditional PKWARE or AES,
  method 99); its bytes cannot be read, the fact that an encrypted archive leaves is itself reported;
* ``content.archive_bomb``: a member count, total expanded size, per-member compression ratio or
  time budget exceeded; expansion stops there and what was read so far is still inspected.

Documents become text the record counter understands: an xlsx or ods workbook becomes one CSV per
sheet (shared strings resolved, cells placed by their column reference, the first row is the header
and gives the cells their field context), a docx, pptx, odt or odp document its paragraphs' text, a
PDF its pages' text (pypdf; at most ``MAX_PDF_PAGES`` pages, an encrypted PDF that does not open with
the empty password is ``content.encrypted_archive``), a Parquet or Arrow file or a SQLite database one
CSV per table (pyarrow, sqlite3; column names as the header).  7z archives are read with py7zr (a
password-protected one is ``content.encrypted_archive``).
XML parts with a DOCTYPE are refused (no entity expansion).  Nothing here raises on hostile input:
every archive library error ends that archive's expansion and is reported as a problem.

``Budget`` is shared by all nesting levels of one body, so a zip of zips of zips cannot multiply the
bounds: ``max_members`` members, ``max_bytes`` expanded bytes, ``max_depth`` nesting levels,
``max_ratio`` expansion ratio per member (above ``RATIO_FLOOR`` bytes), ``max_seconds`` of work.
"""
from __future__ import annotations

import csv
import io
import re
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field

__all__ = ["Member", "Budget", "expand", "is_tar", "is_7z", "is_table_file", "pdf_tables", "ARCHIVE_TYPES"]

#: payload types (``inspector.sniff.classify``) whose bytes are opened here
ARCHIVE_TYPES = frozenset({"zip", "office", "gzip", "pdf"})
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
MAX_PDF_PAGES = 2000
MAX_TABLE_ROWS = 200_000            # rows read from one Parquet/Arrow/SQLite table
RATIO_FLOOR = 1 << 20                 # members expanding to less than this are never ratio bombs
MAX_XML_PART = 32 << 20               # an OOXML/ODF part larger than this is not parsed
MAX_SHEET_CELLS = 2_000_000


@dataclass
class Member:
    name: str
    data: bytes
    declared: str | None = None
    kind: str = "member"              # "member": a file inside; "rendered": text made from a document


@dataclass
class Budget:
    max_members: int = 1000
    max_bytes: int = 256 << 20
    max_depth: int = 4
    max_ratio: float = 200.0
    max_seconds: float = 5.0
    members: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    def over_time(self) -> bool:
        return time.monotonic() - self.started > self.max_seconds

    def room(self) -> int:
        return max(0, self.max_bytes - self.bytes)


class _Stop(Exception):
    """A bound was reached: expansion of this body ends."""


def is_tar(data: bytes) -> bool:
    """A POSIX/GNU tar archive: ``ustar`` magic at offset 257 of the first header block."""
    return len(data) >= 512 and data[257:262] == b"ustar"


def is_7z(data: bytes) -> bool:
    """A 7z archive: its six-byte signature."""
    return data[:6] == SEVEN_ZIP_MAGIC


def is_table_file(data: bytes) -> bool:
    """A data file of tables: Parquet (``PAR1`` at both ends), Arrow IPC (``ARROW1``), SQLite."""
    return (data[:4] == b"PAR1" and data[-4:] == b"PAR1") or data[:6] == b"ARROW1" or \
        data[:16] == b"SQLite format 3\x00"


def expand(data: bytes, ptype: str, budget: Budget) -> tuple[list[Member], list[tuple[str, str]]]:
    """Members and problems of one archive or document (see the module docstring)."""
    members: list[Member] = []
    problems: list[tuple[str, str]] = []
    try:
        if ptype in ("zip", "office") and data[:2] == b"PK":
            _zip(data, budget, members, problems)
        elif ptype == "gzip":
            _gzip(data, budget, members, problems)
        elif ptype == "pdf":
            _pdf(data, budget, members, problems)
        elif is_7z(data):
            _7z(data, budget, members, problems)
        elif is_table_file(data):
            _tables(data, budget, members, problems)
        elif is_tar(data):
            _tar(data, budget, members, problems)
    except _Stop:
        pass
    except Exception as e:  # hostile input: a library error ends this archive, never the scan
        problems.append(("content.decompression", f"archive not fully read ({type(e).__name__})"))
    return members, problems


def _take(budget: Budget, name: str, size: int, compressed: int | None, problems) -> None:
    """Account one member before it is read; raises _Stop past a bound (reported as a bomb)."""
    if budget.over_time():
        problems.append(("content.archive_bomb", f"time budget {budget.max_seconds:g}s exceeded"))
        raise _Stop
    if budget.members >= budget.max_members:
        problems.append(("content.archive_bomb", f"more than {budget.max_members} members"))
        raise _Stop
    if size > budget.room():
        problems.append(("content.archive_bomb",
                         f"expanded size over {budget.max_bytes} bytes at member {budget.members + 1}"))
        raise _Stop
    if compressed is not None and size > RATIO_FLOOR and size > budget.max_ratio * max(compressed, 1):
        problems.append(("content.archive_bomb",
                         f"member {budget.members + 1}: {size} bytes from {compressed} (ratio over "
                         f"{budget.max_ratio:g})"))
        raise _Stop
    budget.members += 1
    budget.bytes += size


# ------------------------------------------------------------------------------------------------
# zip and the documents inside zips

def _zip(data: bytes, budget: Budget, members: list, problems: list) -> None:
    zf = zipfile.ZipFile(io.BytesIO(data))
    infos = zf.infolist()
    names = {i.filename for i in infos}
    encrypted = [i for i in infos if i.flag_bits & 0x1 or i.compress_type == 99]
    if encrypted:
        problems.append(("content.encrypted_archive",
                         f"{len(encrypted)} of {len(infos)} zip entries encrypted"))
    if "xl/workbook.xml" in names or "word/document.xml" in names or "ppt/presentation.xml" in names \
            or "content.xml" in names and "mimetype" in names:
        _document(zf, infos, names, budget, members, problems)
        return
    for info in infos:
        if info.is_dir() or info in encrypted:
            continue
        _take(budget, info.filename, info.file_size, info.compress_size, problems)
        members.append(Member(info.filename, _read(zf, info, budget, problems)))


def _read(zf: zipfile.ZipFile, info, budget: Budget, problems) -> bytes:
    """A member's bytes, never more than its declared size (a header that understates it is a bomb)."""
    with zf.open(info) as fh:
        out = fh.read(info.file_size + 1)
    if len(out) > info.file_size:
        problems.append(("content.archive_bomb", f"member expands past its declared size {info.file_size}"))
        raise _Stop
    return out


def _xml_part(zf, info, budget, problems):
    if info.file_size > MAX_XML_PART:
        return None
    _take(budget, info.filename, info.file_size, info.compress_size, problems)
    raw = _read(zf, info, budget, problems)
    if b"<!DOCTYPE" in raw[:4096] or b"<!ENTITY" in raw[:4096]:
        return None
    try:
        return ET.fromstring(raw)
    except ET.ParseError:
        return None


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


_NUM_KEY = re.compile(r"(\d+)")


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in _NUM_KEY.split(name)]


_EMBEDDED = ("word/embeddings/", "xl/embeddings/", "ppt/embeddings/", "Object ", "word/media/",
             "xl/media/", "ppt/media/")


def _document(zf, infos, names, budget, members, problems) -> None:
    _document_text(zf, infos, names, budget, members, problems)
    # files embedded in the document (a workbook in a report, an attachment object): members of their own
    for info in infos:
        if info.filename.startswith(_EMBEDDED) and not info.is_dir() and not info.flag_bits & 0x1:
            _take(budget, info.filename, info.file_size, info.compress_size, problems)
            members.append(Member(info.filename, _read(zf, info, budget, problems)))


def _document_text(zf, infos, names, budget, members, problems) -> None:
    by_name = {i.filename: i for i in infos}
    if "xl/workbook.xml" in names:
        shared = []
        if "xl/sharedStrings.xml" in by_name:
            root = _xml_part(zf, by_name["xl/sharedStrings.xml"], budget, problems)
            if root is not None:
                for si in root:
                    if _local(si.tag) == "si":
                        shared.append("".join(t.text or "" for t in si.iter() if _local(t.tag) == "t"))
        sheets = sorted((n for n in names if n.startswith("xl/worksheets/sheet") and n.endswith(".xml")),
                        key=_natural)
        for n in sheets:
            root = _xml_part(zf, by_name[n], budget, problems)
            if root is not None:
                members.append(Member(n, _csv_bytes(_xlsx_rows(root, shared)), "text/csv", "rendered"))
        return
    if "content.xml" in names and "mimetype" in names:
        root = _xml_part(zf, by_name["content.xml"], budget, problems)
        if root is None:
            return
        tables = [e for e in root.iter() if _local(e.tag) == "table"]
        if tables:
            for k, table in enumerate(tables):
                members.append(Member(f"content.xml#table{k + 1}", _csv_bytes(_ods_rows(table)), "text/csv",
                                      "rendered"))
        else:
            members.append(Member("content.xml", _paragraphs(root).encode(), "text/plain", "rendered"))
        return
    parts = ["word/document.xml"] if "word/document.xml" in names else sorted(
        (n for n in names if n.startswith("ppt/slides/slide") and n.endswith(".xml")), key=_natural)
    for n in parts:
        root = _xml_part(zf, by_name[n], budget, problems)
        if root is not None:
            members.append(Member(n, _paragraphs(root).encode(), "text/plain", "rendered"))


def _col(ref: str) -> int:
    n = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            n = n * 26 + ord(ch) - 64
        else:
            break
    return n - 1


def _xlsx_rows(root, shared: list) -> list[list[str]]:
    rows = []
    cells = 0
    for row in root.iter():
        if _local(row.tag) != "row":
            continue
        out: list[str] = []
        for c in row:
            if _local(c.tag) != "c":
                continue
            cells += 1
            if cells > MAX_SHEET_CELLS:
                return rows
            t = c.get("t")
            v = ""
            if t == "inlineStr":
                v = "".join(x.text or "" for x in c.iter() if _local(x.tag) == "t")
            else:
                for x in c:
                    if _local(x.tag) == "v":
                        v = x.text or ""
                if t == "s":
                    try:
                        v = shared[int(v)]
                    except (ValueError, IndexError):
                        v = ""
            i = _col(c.get("r") or "")
            if 0 <= i < 16384:
                while len(out) < i:
                    out.append("")
            out.append(v)
        rows.append(out)
    return rows


def _ods_rows(table) -> list[list[str]]:
    rows = []
    for row in table.iter():
        if _local(row.tag) != "table-row":
            continue
        out = []
        for cell in row:
            if _local(cell.tag) not in ("table-cell", "covered-table-cell"):
                continue
            text = "\n".join("".join(p.itertext()) for p in cell if _local(p.tag) == "p")
            rep = cell.get("{urn:oasis:names:tc:opendocument:xmlns:table:1.0}number-columns-repeated")
            n = min(int(rep), 64) if rep and rep.isdigit() else 1
            out.extend([text] * n)
        while out and not out[-1]:
            out.pop()
        if out:
            rows.append(out)
    return rows


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        if any(x.strip() for x in r):
            w.writerow(r)
    return buf.getvalue().encode("utf-8")


def _paragraphs(root) -> str:
    """The text of a word-processing or presentation part, one line per paragraph."""
    lines = []
    for p in root.iter():
        if _local(p.tag) == "p":
            t = "".join(x.text or "" for x in p.iter() if _local(x.tag) == "t") if p.tag.startswith(
                "{http://schemas.openxmlformats.org") else "".join(p.itertext())
            if t.strip():
                lines.append(t)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# PDF and 7z

def _pdf(data: bytes, budget: Budget, members: list, problems: list) -> None:
    """The text of each page (one rendered member) and the embedded files (members of their own)."""
    import logging

    from pypdf import PdfReader
    logging.getLogger("pypdf").setLevel(logging.ERROR)     # damaged PDFs are common: no log noise
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")                    # many "protected" PDFs have no user password
        except Exception:
            opened = 0
        if not opened:
            problems.append(("content.encrypted_archive", "PDF encrypted with a password"))
            return
    texts = []
    size = 0
    for i, page in enumerate(reader.pages):
        if i >= MAX_PDF_PAGES:
            problems.append(("content.archive_bomb", f"more than {MAX_PDF_PAGES} PDF pages"))
            break
        if budget.over_time():
            problems.append(("content.archive_bomb", f"time budget {budget.max_seconds:g}s exceeded"))
            break
        try:
            t = page.extract_text(extraction_mode="layout") or ""   # columns kept apart by spaces
        except Exception:
            try:
                t = page.extract_text() or ""
            except Exception:
                continue                                   # one bad page does not end the document
        size += len(t)
        if size > budget.room():
            problems.append(("content.archive_bomb", f"PDF text over {budget.max_bytes} bytes"))
            break
        texts.append(t)
    joined = "\n".join(t for t in texts if t.strip())
    text = joined.encode("utf-8", "surrogatepass")
    if text:
        _take(budget, "pdf-text", len(text), None, problems)
        members.append(Member("pdf-text", text, "text/plain", "rendered"))
        for k, table in enumerate(pdf_tables(joined)):
            # the table's rows are the records; its values were scanned with the text already
            members.append(Member(f"pdf-table{k + 1}", table, "text/tab-separated-values", "rendered"))
    try:
        attachments = reader.attachments
        items = list(attachments.items())
    except Exception:
        items = []
    for name, blobs in items:
        for blob in blobs if isinstance(blobs, list) else [blobs]:
            if isinstance(blob, (bytes, bytearray)):
                _take(budget, name, len(blob), None, problems)
                members.append(Member(str(name), bytes(blob)))


def _tables(data: bytes, budget: Budget, members: list, problems: list) -> None:
    """Each table of a Parquet or Arrow IPC file (pyarrow) or of a SQLite database (sqlite3, opened
    from memory, read only) rendered as CSV with its column names as the header row."""
    if data[:16] == b"SQLite format 3\x00":
        import sqlite3
        con = sqlite3.connect(":memory:")
        try:
            con.deserialize(data)
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for name in names[:256]:
                cur = con.execute(f'SELECT * FROM "{name.replace(chr(34), chr(34) * 2)}"')
                header = [d[0] for d in cur.description or ()]
                rows = [header] + [["" if v is None else str(v) for v in row] for row in cur.fetchmany(MAX_TABLE_ROWS)]
                _table_member(f"sqlite:{name}", rows, budget, members, problems)
        finally:
            con.close()
        return
    import pyarrow as pa
    if data[:6] == b"ARROW1":
        reader = pa.ipc.open_file(pa.BufferReader(data))
        batches, size = [], 0
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            size += batch.nbytes
            if size > budget.room():
                problems.append(("content.archive_bomb", f"Arrow file expands past {budget.room()} bytes"))
                break
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        name = "arrow"
    else:
        import pyarrow.parquet as pq
        pf = pq.ParquetFile(pa.BufferReader(data))
        md = pf.metadata
        size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        if size > budget.room() or (size > RATIO_FLOOR and size > budget.max_ratio * len(data)):
            problems.append(("content.archive_bomb", f"Parquet file expands to {size} bytes from {len(data)}"))
            return
        batches, rows = [], 0
        for batch in pf.iter_batches(batch_size=65536):   # row by row group: RLE runs expand in steps
            batches.append(batch)
            rows += batch.num_rows
            if rows >= MAX_TABLE_ROWS or budget.over_time():
                break
        table = pa.Table.from_batches(batches, schema=pf.schema_arrow)
        name = "parquet"
    table = table.slice(0, MAX_TABLE_ROWS)
    cols = [[("" if v is None else str(v)) for v in c.to_pylist()] for c in table.columns]
    rows = [list(table.column_names)] + [list(r) for r in zip(*cols)]
    _table_member(name, rows, budget, members, problems)


def _table_member(name: str, rows: list, budget: Budget, members: list, problems: list) -> None:
    text = _csv_bytes(rows)
    _take(budget, name, len(text), None, problems)
    members.append(Member(name, text, "text/csv", "rendered"))


_CELL_GAP = re.compile(r"\s{2,}")
MIN_TABLE_ROWS = 3


def pdf_tables(text: str) -> list[bytes]:
    """Tables in a PDF's laid-out text, as TSV: runs of at least ``MIN_TABLE_ROWS`` consecutive lines
    that split on gaps of two or more spaces into the same number (two or more) of cells.  The run's
    first line is its header when ``records`` takes it for one (words, no identifiers), so a
    manifest's columns give their cells field context and each row is a record."""
    tables = []
    run: list[list[str]] = []

    def close():
        if len(run) >= MIN_TABLE_ROWS:
            tables.append("".join("\t".join(c.replace("\t", " ") for c in row) + "\n" for row in run)
                          .encode("utf-8", "surrogatepass"))
        run.clear()

    for line in text.splitlines():
        cells = [c for c in _CELL_GAP.split(line.strip()) if c]
        if len(cells) >= 2 and (not run or len(cells) == len(run[0])):
            run.append(cells)
            continue
        close()
        if len(cells) >= 2:
            run.append(cells)
    close()
    return tables


def _7z(data: bytes, budget: Budget, members: list, problems: list) -> None:
    import py7zr
    from py7zr.io import BytesIOFactory
    try:
        z = py7zr.SevenZipFile(io.BytesIO(data), mode="r")
    except py7zr.exceptions.PasswordRequired:
        problems.append(("content.encrypted_archive", "7z archive with encrypted headers"))
        return
    with z:
        if z.needs_password():
            problems.append(("content.encrypted_archive", "7z archive encrypted"))
            return
        infos = [i for i in z.list() if not i.is_directory]
        sizes = [int(i.uncompressed or 0) for i in infos]
        total = sum(sizes)
        # 7z compresses solid blocks, not members: the ratio bound applies to the whole archive
        if total > RATIO_FLOOR and total > budget.max_ratio * max(len(data), 1):
            problems.append(("content.archive_bomb", f"7z expands to {total} bytes from {len(data)} "
                                                     f"(ratio over {budget.max_ratio:g})"))
            raise _Stop
        for i, size in zip(infos, sizes):
            _take(budget, i.filename, size, None, problems)
        factory = BytesIOFactory(max(sizes, default=0) + 1)     # no member written past its declared size
        z.extractall(factory=factory)
        for i in infos:
            try:
                fh = factory.get(i.filename)
            except KeyError:
                continue
            fh.seek(0)
            members.append(Member(i.filename, fh.read()))


# ------------------------------------------------------------------------------------------------
# gzip and tar

def _gzip(data: bytes, budget: Budget, members: list, problems: list) -> None:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    cap = min(budget.room(), max(RATIO_FLOOR, int(len(data) * budget.max_ratio)))
    out = d.decompress(data, cap + 1)
    if len(out) > cap:
        problems.append(("content.archive_bomb", f"gzip expands past {cap} bytes from {len(data)}"))
        out = out[:cap]
    if is_tar(out):
        _tar(out, budget, members, problems)      # the tar members are what is counted
    else:
        _take(budget, "gzip", len(out), None, problems)
        members.append(Member("gzip", out))


def _tar(data: bytes, budget: Budget, members: list, problems: list) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for ti in tf:
            if not ti.isfile():
                continue
            _take(budget, ti.name, ti.size, None, problems)
            fh = tf.extractfile(ti)
            if fh is not None:
                members.append(Member(ti.name, fh.read(ti.size)))
