"""Exact data matching (EDM): does a flow carry rows of the organisation's own records?

``inspector fingerprint FILE.csv --columns email,phone,name --out signatures/edm/NAME.edm`` reads the
site's own customer or shipment records and writes a fingerprint file that holds **only salted, truncated
hashes** of the normalised cells. The scan side, :class:`EDMIndex`, then counts how many of those rows
leave in a flow: a row counts when at least ``n`` of its ``m`` fingerprinted columns are among the values
seen in the flow (``n`` defaults to ``min(2, m)``; ``--min-columns`` per file).

Input
-----
CSV with a header line (``,``; ``;`` and ``|`` are detected from the header too) or TSV (``.tsv``/``.tab``
files, or a header with tabs; ``--delimiter`` overrides the detection). CSV follows RFC 4180 quoting
(quoted fields may hold the delimiter, quotes and newlines); TSV has no quoting. Text is UTF-8 (a BOM is
skipped) unless ``--encoding`` says otherwise. Blank lines are skipped. A row with a different number of
fields from the header, bad quoting, a NUL byte or undecodable bytes stops the run with one error line
``inspector: error: FILE:LINE: message``. Cell values are never echoed in messages.

Normalisation (the same function runs on both sides, and it is idempotent)
------------------------------------------------------------------------------
===========  =========================================================================================
``email``    trimmed, lower-cased; a ``mailto:`` prefix and surrounding ``<>`` dropped
``phone``    parsed with ``phonenumbers`` (``--region`` for numbers without ``+``, default US) and
             formatted E.164 (``+`` and digits). Text that does not parse as a possible number (length
             checked, validity not: fictional ranges stay usable) falls back to ``#`` + its digits, so
             equal unparsable numbers still match each other and never an E.164 value
``name``     Unicode NFKD with combining marks removed (accents stripped), casefolded, whitespace
             runs collapsed to one space, trimmed (also used for ``text`` and postal addresses)
``id``       tracking numbers, SSCC, IBAN, EORI, GTIN: upper-cased, whitespace and ``-`` removed
``digits``   payment cards: digits only
===========  =========================================================================================

The normaliser of a column follows its data class (``--classes email=email,phone=phone,name=person_name``);
columns without ``--classes`` get a class from their name (``e_mail`` -> ``email``, ``mobile`` -> ``phone``,
``tracking_number`` -> ``tracking_other``, ``sscc``, ``iban``...) or none (``text`` normaliser). An empty
cell (after normalisation) is no value: the row simply has fewer values in that column.

File format (version 1)
-----------------------
All integers little-endian. Hashes are the first 8 bytes of ``HMAC-SHA256(key=salt,
msg=UTF-8(normalised value))``, stored as raw bytes (equivalently: big-endian uint64).

=======  =================  ==============================================================================
offset   size               field
=======  =================  ==============================================================================
0        8                  magic ``b"\\x89EDM\\r\\n\\x1a\\n"``
8        2                  format version (1)
10       2                  flags (0)
12       16                 salt: 16 random bytes from ``os.urandom``, new for every file
28       4                  ``H``: length of the JSON header
32       H                  JSON header (UTF-8), then zero padding to a multiple of 8. Keys: ``format``
                            ("inspector-edm"), ``version``, ``hash`` ("hmac-sha256-64"), ``name``, ``source``
                            (file name only), ``created`` (UTC), ``rows`` (data rows read),
                            ``min_columns`` (the n of n-of-m), ``rows_below_min`` (rows with fewer
                            values than that: never matched), ``region``, ``columns``: a list, in file
                            order, of ``{"name", "class", "normaliser", "values", "distinct"}`` where
                            ``values`` counts non-empty cells and ``distinct`` distinct hashes
then,    per column, in header order, 8-aligned:
         4                  ``U``: distinct hashes in this column
         4                  ``P``: postings (rows with a value in this column)
         8 * U              the distinct hashes, sorted ascending (as bytes)
         4 * (U + 1)        CSR offsets: the rows of hash ``i`` are ``rowids[off[i]:off[i+1]]``
         4 * P              row ids (0-based data-row numbers), ascending within each hash
         0-4                zero padding to a multiple of 8
last     32                 SHA-256 of every byte before it (integrity check on load)
=======  =================  ==============================================================================

The per-hash row-id lists are what make n-of-m matching possible: a candidate value's hash is looked up
(binary search) in each column it may belong to, and every row it points at scores one column; a row whose
score reaches ``min_columns`` is a matched row. A row has at most one value per column, so a row is never
scored twice by one column. The file holds no cell value, no per-row plain data and no source line
numbers; ``tests/test_edm.py`` greps the bytes of a fingerprint for every raw and normalised value.

Security note: the salt is stored in the file so that the scanner can hash candidates. A fingerprint is
therefore a *keyed hash*, not encryption: whoever holds the file can test guesses, and low-entropy columns
(phone numbers, names) can be brute-forced offline. Protect ``.edm`` files like the source data's
access list; they only avoid keeping plaintext copies on sensors. Truncation to 64 bits makes an accidental
collision between one candidate and one stored hash about 1 in 2**64.

API
---
``build_fingerprint(path, columns, out, ...) -> dict`` (summary), ``EDMIndex.load(path)``,
``EDMIndex.match({column: {values}}) -> int``, ``EDMIndex.match_values({data_class: {values}}) -> int``,
``EDMIndex.matched_rows(...)`` (row ids), ``EDMIndex.accumulator()`` (per-flow incremental state).  The
command line (``inspector fingerprint``) is ``inspector.cli.fingerprint``.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import struct
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from ..errors import ConfigError

__all__ = ["EDMError", "EDMIndex", "EDMAccumulator", "build_fingerprint", "normalise", "NORMALISERS",
           "MAGIC", "VERSION"]

MAGIC = b"\x89EDM\r\n\x1a\n"
VERSION = 1
SALT_LEN = 16
HASH_LEN = 8
_FIXED = struct.Struct("<8sHH16sI")  # magic, version, flags, salt, header length
_SECTION = struct.Struct("<II")
_TRAILER = 32
MAX_ROWS = 2**32 - 2


class EDMError(ConfigError):
    """A fingerprint source or fingerprint file problem: ``str(e)`` is ``"path:line: message"``."""


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_ID_DROP = re.compile(r"[\s\-]+")
_NON_DIGIT = re.compile(r"\D+")


def _norm_email(v: str, region: str | None = None) -> str:
    v = v.strip()
    if v[:7].lower() == "mailto:":
        v = v[7:]
    if v.startswith("<") and v.endswith(">"):
        v = v[1:-1]
    return v.strip().lower()


def _norm_name(v: str, region: str | None = None) -> str:
    v = unicodedata.normalize("NFKD", v)
    v = "".join(ch for ch in v if not unicodedata.combining(ch))
    return _WS.sub(" ", v.casefold()).strip()


def _norm_id(v: str, region: str | None = None) -> str:
    return _ID_DROP.sub("", unicodedata.normalize("NFKC", v)).upper()


def _norm_digits(v: str, region: str | None = None) -> str:
    return _NON_DIGIT.sub("", v)


_PHONE_CACHE: dict = {}


def _norm_phone(v: str, region: str | None = None) -> str:
    v = unicodedata.normalize("NFKC", v).strip()
    if not v:
        return ""
    if v.startswith("#"):  # already a fallback value: idempotent
        d = _NON_DIGIT.sub("", v)
        return "#" + d if d else ""
    try:
        import phonenumbers
    except ImportError as e:  # pragma: no cover - phonenumbers is a dependency
        raise RuntimeError("the phonenumbers package is needed for phone columns (pip install phonenumbers)") from e
    try:
        num = phonenumbers.parse(v, (region or "US").upper())
        if phonenumbers.is_possible_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    d = _NON_DIGIT.sub("", v)
    return "#" + d if d else ""


NORMALISERS = {
    "email": _norm_email,
    "phone": _norm_phone,
    "name": _norm_name,
    "text": _norm_name,
    "id": _norm_id,
    "digits": _norm_digits,
}

#: (column-name pattern, class), first match wins; used for columns that --classes does not name
_NAME_RULES = [
    (re.compile(r"e[-_ ]?mail|^mail$"), "email"),
    (re.compile(r"phone|mobile|^tel|telephone|^fax|^cell"), "phone"),
    (re.compile(r"sscc"), "sscc"),
    (re.compile(r"s10"), "tracking_s10"),
    (re.compile(r"ups|^1z"), "tracking_ups"),
    (re.compile(r"track|awb|waybill|consignment_?(no|number|id)"), "tracking_other"),
    (re.compile(r"iban"), "iban"),
    (re.compile(r"eori"), "eori"),
    (re.compile(r"gtin|ean|upc"), "gtin"),
    (re.compile(r"card|^pan$"), "payment_card"),
    (re.compile(r"address|street|addr"), "postal_address"),
    (re.compile(r"name|contact|consignee|recipient"), "person_name"),
]


def class_for_column(name: str) -> str | None:
    """The data class guessed from a column name (``None`` when nothing fits)."""
    n = name.strip().lower()
    for pattern, cls in _NAME_RULES:
        if pattern.search(n):
            return cls
    from . import classes
    dc = classes.field_class(n) if classes.has_fields() else None   # a class that names its own fields
    return dc.name if dc is not None else None


def normaliser_for(cls: str | None) -> str:
    """The normaliser kind a class declares (``edm`` in ``inspector.content.classes``); "text" otherwise."""
    from . import classes
    dc = classes.get(cls or "")
    return dc.edm if dc is not None else "text"


def normalise(kind: str, value: str, region: str | None = "US") -> str:
    """Normalised form of ``value`` for normaliser ``kind`` ('' means no value)."""
    return NORMALISERS[kind](value, region)


def _classes_accepted(column_class: str | None) -> frozenset:
    """Candidate classes whose values are looked up in a column of ``column_class``."""
    if column_class is None:
        return frozenset()
    if column_class.startswith("tracking_"):
        # any tracking_* class goes to a tracking column: scanners may label a number differently
        from . import classes
        return frozenset(c for c in classes.group("shipment") if c.startswith("tracking_")) | {column_class}
    return frozenset({column_class})


# ---------------------------------------------------------------------------
# reading the source file
# ---------------------------------------------------------------------------

class _Lines:
    """Decoded lines of a file, with the number of the last line handed out in ``n``.

    ASCII-compatible encodings (UTF-8, Latin-1, cp1252...) are split on bytes and decoded line by line,
    so a decoding error or a NUL byte is reported on its own line. Other encodings (UTF-16/32) go through
    a text reader, and a decoding error is reported at the line after the last good one.
    """

    def __init__(self, fh, path: str, encoding: str):
        self.fh = fh
        self.path = path
        self.encoding = encoding
        self.n = 0
        self.ascii_compatible = "a,;|\t\r\n".encode(encoding, "ignore") == b"a,;|\t\r\n"

    def __iter__(self) -> Iterator[str]:
        if not self.ascii_compatible:
            yield from self._text_lines()
            return
        for raw in self.fh:
            self.n += 1
            enc = self.encoding
            if self.n == 1 and enc.replace("-", "").replace("_", "").lower() == "utf8":
                enc = "utf-8-sig"
            nul = raw.find(b"\0")
            if nul >= 0:
                raise EDMError(self.path, self.n, f"NUL byte at column {nul + 1}: not a "
                                                  f"{self.encoding} text file (UTF-16? use --encoding)")
            try:
                yield raw.decode(enc)
            except UnicodeDecodeError as e:
                raise EDMError(self.path, self.n, f"not valid {self.encoding} text (byte 0x{raw[e.start]:02x} "
                                                  f"at column {e.start + 1})") from None

    def _text_lines(self) -> Iterator[str]:
        import io
        text = io.TextIOWrapper(self.fh, encoding=self.encoding, errors="strict", newline="")
        try:
            for line in text:
                self.n += 1
                yield line
        except UnicodeDecodeError:
            raise EDMError(self.path, self.n + 1, f"not valid {self.encoding} text") from None
        finally:
            text.detach()


_DELIMS = {",": ",", "comma": ",", ";": ";", "semicolon": ";", "|": "|", "pipe": "|", "tab": "\t",
           "\\t": "\t", "\t": "\t"}


def _detect_delimiter(path: str, header: str) -> str:
    if os.path.splitext(path)[1].lower() in (".tsv", ".tab"):
        return "\t"
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


@dataclass
class _Column:
    name: str
    cls: str | None
    kind: str
    index: int = -1
    values: int = 0
    distinct: int = 0


def _read_rows(path: str, columns: list[_Column], *, delimiter: str | None, encoding: str,
               region: str):
    """Yield (row number, [hash or None per column]) for every data row; fills column indexes."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise EDMError(path, None, f"cannot read: {e.strerror}") from None
    with fh:
        lines = _Lines(fh, path, encoding)
        it = iter(lines)
        try:
            first = next(it)
        except StopIteration:
            raise EDMError(path, 1, "empty file: expected a header line") from None
        delim = _DELIMS[delimiter] if delimiter else _detect_delimiter(path, first)
        kw = dict(delimiter=delim, strict=True)
        if delim == "\t":
            kw["quoting"] = csv.QUOTE_NONE

        def chain():
            yield first
            yield from it

        reader = csv.reader(chain(), **kw)
        try:
            header = next(reader)
        except csv.Error as e:
            raise EDMError(path, 1, f"bad header: {e}") from None
        header = [h.strip() for h in header]
        if not any(header):
            raise EDMError(path, 1, "empty header line")
        lowered = [h.lower() for h in header]
        seen = set()
        for h in lowered:
            if h and h in seen:
                raise EDMError(path, 1, f"duplicate column name '{h}' in the header")
            seen.add(h)
        for col in columns:
            try:
                col.index = lowered.index(col.name.lower())
            except ValueError:
                raise EDMError(path, 1, f"no column '{col.name}' in the header (columns: "
                                        f"{', '.join(header)})") from None
        width = len(header)
        norms = [(col.index, NORMALISERS[col.kind]) for col in columns]
        while True:
            start = lines.n + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise EDMError(path, max(start, lines.n), f"bad CSV: {e}") from None
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != width:
                raise EDMError(path, start, f"expected {width} fields (as in the header), got {len(row)}")
            yield start, [norm(row[i], region) for i, norm in norms]


# ---------------------------------------------------------------------------
# writing a fingerprint
# ---------------------------------------------------------------------------

def _hasher(salt: bytes):
    base = hmac.new(salt, digestmod=hashlib.sha256)

    def h(value: str) -> int:
        m = base.copy()
        m.update(value.encode("utf-8"))
        return int.from_bytes(m.digest()[:HASH_LEN], "big")
    return h


def _pad8(n: int) -> bytes:
    return b"\0" * (-n % 8)


def build_fingerprint(path: str, columns: list[str], out: str, *, classes: Mapping[str, str] | None = None,
                      min_columns: int | None = None, region: str = "US", delimiter: str | None = None,
                      encoding: str = "utf-8", name: str | None = None, salt: bytes | None = None) -> dict:
    """Fingerprint ``columns`` of the CSV/TSV file ``path`` into ``out``; returns the header as a dict.

    Raises :class:`EDMError` (one line, with file and line) on bad input or arguments.
    ``salt`` is for tests only; by default 16 fresh random bytes.
    """
    import numpy as np

    path = os.fspath(path)
    out = os.fspath(out)
    classes = {k.strip().lower(): v.strip() for k, v in (classes or {}).items()}
    if not columns:
        raise EDMError(path, None, "no columns selected (--columns)")
    names = [c.strip() for c in columns]
    if len({n.lower() for n in names}) != len(names):
        raise EDMError(path, None, "a column is selected twice in --columns")
    from . import classes as data_classes
    unknown = sorted(set(classes) - {n.lower() for n in names})
    if unknown:
        raise EDMError(path, None, f"--classes names columns not in --columns: {', '.join(unknown)}")
    for col, cls in classes.items():
        if data_classes.get(cls) is None:
            raise EDMError(path, None, f"--classes {col}={cls}: unknown data class (one of: "
                                       f"{', '.join(data_classes.names())})")
    cols = []
    for n in names:
        cls = classes.get(n.lower()) or class_for_column(n)
        cols.append(_Column(n, cls, normaliser_for(cls)))
    m = len(cols)
    n_of_m = min(2, m) if min_columns is None else int(min_columns)
    if not 1 <= n_of_m <= m:
        raise EDMError(path, None, f"--min-columns must be between 1 and {m} (the number of columns)")
    if salt is None:
        salt = os.urandom(SALT_LEN)
    if len(salt) != SALT_LEN:
        raise ValueError("salt must be 16 bytes")
    h = _hasher(salt)

    per_col_hashes: list[list[int]] = [[] for _ in cols]
    per_col_rows: list[list[int]] = [[] for _ in cols]
    rows = 0
    short_rows = 0  # rows with fewer than n_of_m values: they can never match
    for _line, values in _read_rows(path, cols, delimiter=delimiter, encoding=encoding, region=region):
        if rows >= MAX_ROWS:
            raise EDMError(path, _line, f"too many rows (the format holds at most {MAX_ROWS})")
        filled = 0
        for j, v in enumerate(values):
            if v:
                per_col_hashes[j].append(h(v))
                per_col_rows[j].append(rows)
                filled += 1
        short_rows += filled < n_of_m
        rows += 1
    if rows == 0:
        raise EDMError(path, None, "no data rows after the header")

    sections = []
    for j, col in enumerate(cols):
        hs = np.array(per_col_hashes[j], dtype=np.uint64)
        rs = np.array(per_col_rows[j], dtype=np.uint32)
        order = np.lexsort((rs, hs))
        hs, rs = hs[order], rs[order]
        uniq, counts = np.unique(hs, return_counts=True)
        offsets = np.zeros(len(uniq) + 1, dtype="<u4")
        np.cumsum(counts, out=offsets[1:])
        col.values = int(len(hs))
        col.distinct = int(len(uniq))
        body = (_SECTION.pack(len(uniq), len(rs)) + uniq.astype(">u8").tobytes()
                + offsets.tobytes() + rs.astype("<u4").tobytes())
        sections.append(body + _pad8(len(body)))
        per_col_hashes[j] = per_col_rows[j] = []  # free memory early

    header = {
        "format": "inspector-edm",
        "version": VERSION,
        "hash": "hmac-sha256-64",
        "name": name or os.path.splitext(os.path.basename(out))[0],
        "source": os.path.basename(path),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": rows,
        "min_columns": n_of_m,
        "rows_below_min": short_rows,
        "region": region.upper(),
        "columns": [{"name": c.name, "class": c.cls, "normaliser": c.kind, "values": c.values,
                     "distinct": c.distinct} for c in cols],
    }
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head = _FIXED.pack(MAGIC, VERSION, 0, salt, len(hjson)) + hjson
    data = head + _pad8(len(head)) + b"".join(sections)
    data += hashlib.sha256(data).digest()

    parent = os.path.dirname(out)
    try:
        if parent:
            os.makedirs(parent, exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
    except OSError as e:
        raise EDMError(out, None, f"cannot write: {e.strerror}") from None
    header["bytes"] = len(data)
    return header


# ---------------------------------------------------------------------------
# loading and matching
# ---------------------------------------------------------------------------

@dataclass
class _ColumnIndex:
    name: str
    cls: str | None
    kind: str
    hashes: object   # np.ndarray uint64 (native), sorted
    offsets: object  # np.ndarray uint32
    rowids: object   # np.ndarray uint32
    accepts: frozenset


class EDMIndex:
    """A loaded fingerprint: look up candidate values, count rows with n-of-m columns seen."""

    def __init__(self, header: dict, salt: bytes, columns: list[_ColumnIndex], path: str = "<memory>"):
        self.header = header
        self.path = path
        self._salt = salt
        self._hash = _hasher(salt)
        self.columns = columns
        self._by_name = {c.name.lower(): c for c in columns}
        self.rows: int = header["rows"]
        self.min_columns: int = header["min_columns"]
        self.region: str = header.get("region", "US")
        self.name: str = header.get("name", "")

    def __repr__(self) -> str:
        cols = ", ".join(f"{c.name}:{c.cls}" for c in self.columns)
        return f"<EDMIndex {self.name!r} rows={self.rows} columns=[{cols}] min_columns={self.min_columns}>"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def classes(self) -> dict[str, str | None]:
        return {c.name: c.cls for c in self.columns}

    @classmethod
    def load(cls, path) -> "EDMIndex":
        import numpy as np

        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise EDMError(path, None, f"cannot read: {e.strerror}") from None
        if len(data) < _FIXED.size + _TRAILER or data[:8] != MAGIC:
            raise EDMError(path, None, "not an inspector EDM fingerprint (bad magic)")
        magic, version, _flags, salt, hlen = _FIXED.unpack_from(data, 0)
        if version != VERSION:
            raise EDMError(path, None, f"unsupported EDM format version {version} (this inspector reads {VERSION})")
        body, digest = data[:-_TRAILER], data[-_TRAILER:]
        if hashlib.sha256(body).digest() != digest:
            raise EDMError(path, None, "fingerprint file is corrupt or truncated (checksum mismatch)")
        pos = _FIXED.size
        try:
            header = json.loads(body[pos:pos + hlen].decode("utf-8"))
            pos += hlen
            pos += -pos % 8
            cols = []
            for c in header["columns"]:
                u, p = _SECTION.unpack_from(body, pos)
                pos += _SECTION.size
                hashes = np.frombuffer(body, dtype=">u8", count=u, offset=pos).astype(np.uint64)
                pos += 8 * u
                offsets = np.frombuffer(body, dtype="<u4", count=u + 1, offset=pos)
                pos += 4 * (u + 1)
                rowids = np.frombuffer(body, dtype="<u4", count=p, offset=pos)
                pos += 4 * p
                pos += -pos % 8
                if int(offsets[-1]) != p:
                    raise ValueError("offsets do not cover the row ids")
                cols.append(_ColumnIndex(c["name"], c.get("class"), c["normaliser"], hashes, offsets, rowids,
                                         _classes_accepted(c.get("class"))))
            if pos != len(body) or not cols:
                raise ValueError("trailing or missing sections")
            for c in cols:
                if c.kind not in NORMALISERS:
                    raise ValueError(f"unknown normaliser {c.kind!r}")
        except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:
            raise EDMError(path, None, f"malformed fingerprint file: {e}") from None
        return cls(header, salt, cols, path)

    # -- lookups ---------------------------------------------------------------
    def _column(self, name: str) -> _ColumnIndex:
        try:
            return self._by_name[name.lower()]
        except KeyError:
            raise KeyError(f"{self.path}: no column {name!r} in this fingerprint "
                           f"(columns: {', '.join(self.column_names)})") from None

    def _hits(self, col: _ColumnIndex, values: Iterable[str]):
        """Row ids (np.ndarray) that have one of ``values`` in column ``col``."""
        import numpy as np

        norm = NORMALISERS[col.kind]
        hs = set()
        for v in values:
            if v is None:
                continue
            n = norm(str(v), self.region)
            if n:
                hs.add(self._hash(n))
        if not hs or not len(col.hashes):
            return np.empty(0, dtype=np.uint32)
        cand = np.fromiter(hs, dtype=np.uint64, count=len(hs))
        pos = np.searchsorted(col.hashes, cand)
        inside = pos < len(col.hashes)
        found = np.zeros(len(cand), dtype=bool)
        found[inside] = col.hashes[pos[inside]] == cand[inside]
        idx = pos[found]
        if not len(idx):
            return np.empty(0, dtype=np.uint32)
        return np.concatenate([col.rowids[col.offsets[i]:col.offsets[i + 1]] for i in idx])

    def contains(self, column: str, value: str) -> bool:
        """Whether ``value`` (normalised like the column) is in ``column``."""
        return len(self._hits(self._column(column), [value])) > 0

    def matched_rows(self, candidates: Mapping[str, Iterable[str]], min_columns: int | None = None):
        """Sorted row ids with at least ``min_columns`` (default: the file's) columns among ``candidates``.

        ``candidates`` maps column name -> values seen in one flow (any format: they are normalised).
        """
        import numpy as np

        n = self.min_columns if min_columns is None else int(min_columns)
        parts = [self._hits(self._column(col), vals) for col, vals in candidates.items()]
        parts = [p for p in parts if len(p)]
        if not parts:
            return np.empty(0, dtype=np.uint32)
        rows, counts = np.unique(np.concatenate(parts), return_counts=True)
        return rows[counts >= n]

    def match(self, candidates: Mapping[str, Iterable[str]], min_columns: int | None = None) -> int:
        """Number of rows with at least n of their m columns among the candidate values of one flow."""
        return int(len(self.matched_rows(candidates, min_columns)))

    def candidates_from_classes(self, values: Mapping[str, Iterable[str]]) -> dict[str, set]:
        """Map ``{data_class: values}`` (from the identifier scanner) to ``{column: values}``."""
        out: dict[str, set] = {}
        for col in self.columns:
            acc = set()
            for cls in col.accepts:
                if cls in values:
                    acc.update(values[cls])
            if acc:
                out[col.name] = acc
        return out

    def match_values(self, values: Mapping[str, Iterable[str]], min_columns: int | None = None) -> int:
        """Like :meth:`match` with candidates given per data class (email, phone, person_name, tracking_*...)."""
        return self.match(self.candidates_from_classes(values), min_columns)

    def accumulator(self, min_columns: int | None = None) -> "EDMAccumulator":
        return EDMAccumulator(self, min_columns)


class EDMAccumulator:
    """Per-flow incremental matching: feed values as payloads are decoded, read the row count at the end.

    Keeps only matched row ids per column (no candidate values), so memory follows the number of hits.
    """

    def __init__(self, index: EDMIndex, min_columns: int | None = None):
        self.index = index
        self.min_columns = index.min_columns if min_columns is None else int(min_columns)
        self._rows: dict[str, set] = {}

    def add(self, column: str, values: Iterable[str]) -> None:
        col = self.index._column(column)
        hits = self.index._hits(col, values)
        if len(hits):
            self._rows.setdefault(col.name, set()).update(hits.tolist())

    def add_values(self, values: Mapping[str, Iterable[str]]) -> None:
        for col, vals in self.index.candidates_from_classes(values).items():
            self.add(col, vals)

    def matched_rows(self) -> list[int]:
        score: dict[int, int] = {}
        for rows in self._rows.values():
            for r in rows:
                score[r] = score.get(r, 0) + 1
        return sorted(r for r, s in score.items() if s >= self.min_columns)

    def rows_matched(self) -> int:
        return len(self.matched_rows())
