"""Structured payloads parsed into records: how many customer and shipment records leave in a body.

``count_records(data, payload_type) -> RecordCount``. The payload type comes from ``types.classify``
(one of ``PAYLOAD_TYPES``); a type this module does not parse is scanned as free text.

Records
-------
=========  ==========================================================================================
csv, tsv   delimiter sniffed (``,`` ``;`` tab ``|``) from the first lines; a header row gives the field
           names and every following row is a record. Without a header each row is still a record,
           scanned as free text (no names or addresses then).
json       every object that is an element of an array, at any depth, is a record (its nested objects
           belong to it, its nested arrays of objects are records of their own); a top-level object is
           a record too. NDJSON: one record tree per line. A truncated document is read up to the
           break (array elements that are complete).
xml        repeated sibling elements (two or more with the same tag that have children or
           attributes) are records; attributes and leaf texts are fields. DOCTYPE and ENTITY
           declarations are refused (no entity expansion, no external resources): such a document is
           scanned as text. Truncated documents count the elements read so far.
form       ``application/x-www-form-urlencoded``: one record, or one per index for
           ``items[0][name]=..`` / ``items.0.name=..`` keys.
edifact    one record per message (UNH..UNT): a shipment record for the transport/customs/despatch
           message types in ``EDIFACT_SHIPMENT_TYPES``; each NAD party with a name or address is a
           customer record (with its COM phone/e-mail). Sender and recipient from UNB S002/S003.
x12        one record per transaction set (ST..SE), a shipment record for ``X12_SHIPMENT_SETS``; N1
           loops (N1/N2/N3/N4/PER) with a name or address are customer records. Element separator
           from ISA byte 4, component separator ISA16, segment terminator after ISA16 (byte 106).
multipart  parts (inspector.mime, boundary from the first line, transfer encodings undone), each counted
           by its declared type, else by its sniffed one (inspector.sniff).
other      text, html, binary...: no records, identifiers only (``data``).
=========  ==========================================================================================

A record is a *customer* record when it carries a customer identifier (a class declared with
``record="customer"`` in ``inspector.content.classes``: e-mail, phone, person name, postal address, IBAN,
payment card, EORI) and a *shipment* record when it carries a consignment/parcel/pallet identifier
(``record="shipment"``: S10, UPS, other tracking, SSCC) or is an EDI shipment message. A record may be both. GTIN and HS code values are reported in ``data`` but
alone do not make a shipment record (they identify products: an item line or a product catalogue is
not a shipment).
Every counted record also leaves its *identity* in ``RecordCount.keys`` (``customer`` / ``shipment`` ->
set of strings): the sorted identifiers the record carries (plus the message type and reference for EDI
messages).  The content stage turns them into salted hashes, so that records can be counted DISTINCT over
several bodies and connections (a record sent twice counts once; see ``inspector.incidents``).  At most
``MAX_RECORD_KEYS`` identities per kind are kept; ``keys_dropped`` counts the identities beyond.
Parsing is bounded: ``MAX_RECORDS`` records, ``MAX_DEPTH`` levels of nesting, ``MAX_FIELDS`` fields per
record; past a bound ``truncated`` is set and the rest is not parsed.
"""
from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from ..mime import multipart
from ..sniff import classify
from . import classes as _classes
from .identifiers import field_role, scan, scan_fields, to_text

__all__ = ["RecordCount", "count_records", "EDIFACT_SHIPMENT_TYPES", "X12_SHIPMENT_SETS",
           "shipment_record_classes", "record_identity",
           "MAX_RECORDS", "MAX_DEPTH", "MAX_RECORD_KEYS"]

MAX_RECORDS = 1_000_000
MAX_RECORD_KEYS = 100_000
MAX_DEPTH = 64
MAX_FIELDS = 2_000
MAX_FIELDS_SEEN = 1_000
MAX_EDI = 100_000

EDIFACT_SHIPMENT_TYPES = frozenset({
    "IFTMIN", "IFTMAN", "IFTMBC", "IFTMBF", "IFTMBP", "IFTMCS", "IFTMCA", "IFTSTA", "IFTSTQ", "IFTSAI",
    "IFTDGN", "IFTFCC", "IFTRIN", "IFTICL", "IFTCCA", "IFCSUM", "IFTIAG", "DESADV", "CUSDEC", "CUSCAR",
    "CUSRES", "CUSREP", "CUSEXP", "COPARN", "COARRI", "CODECO", "COPRAR", "COREOR", "COSTCO", "COSTOR",
    "BAPLIE", "MOVINS", "INSDES", "RECADV", "SHPADV", "HANMOV", "TRANST",
})
X12_SHIPMENT_SETS = frozenset({
    "856", "857", "858", "204", "210", "211", "212", "213", "214", "215", "216", "217", "218", "219", "220",
    "300", "301", "303", "304", "309", "310", "311", "312", "313", "315", "317", "319", "322", "323", "324",
    "325", "326", "350", "353", "354", "355", "356", "357", "358", "361", "404", "410", "414", "417", "418",
    "419", "420", "421", "425", "426", "429", "431", "440", "451", "452", "453", "456", "490", "492", "494",
    "601", "603", "753", "754", "858", "869", "870", "940", "943", "944", "945", "947", "990", "996",
})


@dataclass
class RecordCount:
    """What ``count_records`` found in one payload."""
    customer: int = 0                       # records carrying a customer identifier
    shipment: int = 0                       # records carrying a shipment identifier / EDI shipment messages
    data: dict = field(default_factory=dict)  # class -> {normalised value} (DISTINCT), records and free text
    edi: list = field(default_factory=list)   # {standard, type, ref, sender, recipient} per EDI message
    fields_seen: set = field(default_factory=set)  # field names (keys, headers, tags) met while parsing
    records: int = 0                        # records parsed (with or without identifiers)
    truncated: bool = False                 # a bound was reached, or the document was cut off
    note: str = ""                          # why structured parsing was not done or stopped
    keys: dict = field(default_factory=lambda: {"customer": set(), "shipment": set()})  # record identities
    keys_dropped: dict = field(default_factory=lambda: {"customer": 0, "shipment": 0})  # past MAX_RECORD_KEYS

    def count(self, found: dict, customer: bool, shipment: bool, label: str = "") -> None:
        """Count one record (a customer record, a shipment record, or both) and keep its identity."""
        if not (customer or shipment):
            return
        key = record_identity(found, label)
        for kind, yes in (("customer", customer), ("shipment", shipment)):
            if not yes:
                continue
            setattr(self, kind, getattr(self, kind) + 1)
            ks = self.keys[kind]
            if len(ks) < MAX_RECORD_KEYS:
                ks.add(key)
            elif key not in ks:
                self.keys_dropped[kind] += 1

    def merge(self, other: "RecordCount") -> None:
        self.customer += other.customer
        self.shipment += other.shipment
        for kind in ("customer", "shipment"):
            ks = self.keys[kind]
            for k in other.keys[kind]:
                if len(ks) < MAX_RECORD_KEYS:
                    ks.add(k)
                elif k not in ks:
                    self.keys_dropped[kind] += 1
            self.keys_dropped[kind] += other.keys_dropped[kind]
        self.records += other.records
        _merge(self.data, other.data)
        self.edi.extend(other.edi[:max(0, MAX_EDI - len(self.edi))])
        if len(self.fields_seen) < MAX_FIELDS_SEEN:
            self.fields_seen.update(list(other.fields_seen)[:MAX_FIELDS_SEEN - len(self.fields_seen)])
        self.truncated = self.truncated or other.truncated
        if other.note and not self.note:
            self.note = other.note


def shipment_record_classes() -> frozenset:
    """Classes that make a record a shipment record: they identify a consignment, parcel or pallet
    (``record="shipment"`` in their declaration, ``inspector.content.classes``). GTIN and HS code identify a
    product (a catalogue of 10,000 products is not 10,000 shipments): they are kept in ``data`` but do not
    on their own make a shipment record."""
    return _classes.record_sets()[1]


def record_identity(found: dict, label: str = "") -> str:
    """What identifies one record: ``label`` then every ``class=value`` it carries, sorted.  The same
    record sent twice (another request, another connection, another encoding) gives the same string."""
    parts = [f"{cls}={v}" for cls in sorted(found) for v in sorted(found[cls] or ())]
    return label + "\x1f" + "\x1e".join(parts)


def _merge(dst: dict, src: dict) -> None:
    for cls, vals in src.items():
        if vals:
            s = dst.get(cls)
            if s is None:
                dst[cls] = set(vals)
            else:
                s.update(vals)


class _Tally:
    """Counts records as they are produced."""
    __slots__ = ("rc", "limit")

    def __init__(self, rc: RecordCount):
        self.rc = rc
        self.limit = MAX_RECORDS

    def full(self) -> bool:
        return self.rc.records >= self.limit

    def record(self, found: dict, shipment: bool = False) -> None:
        rc = self.rc
        rc.records += 1
        customer, shipping = _classes.record_sets()
        rc.count(found, not customer.isdisjoint(found), shipment or not shipping.isdisjoint(found))
        _merge(rc.data, found)

    def fields(self, names) -> None:
        fs = self.rc.fields_seen
        if len(fs) < MAX_FIELDS_SEEN and not fs.issuperset(names):
            for n in names:
                fs.add(str(n)[:100])
                if len(fs) >= MAX_FIELDS_SEEN:
                    break


def _scan_record(t: _Tally, rec: dict, context: dict | None = None, seen: bool = False) -> None:
    if len(rec) > MAX_FIELDS:
        rec = dict(list(rec.items())[:MAX_FIELDS])
        t.rc.truncated = True
    if not seen:
        t.fields(rec.keys())
    t.record(scan_fields(rec, context))


# ---------------------------------------------------------------------------------------------------------
# CSV / TSV
# ---------------------------------------------------------------------------------------------------------

_HEADER_CELL = re.compile(r"^[^\W\d][\w .\-/()#:]{0,63}$", re.UNICODE)


def _sniff_delimiter(sample: str, prefer_tab: bool) -> str | None:
    lines = [ln for ln in sample.splitlines()[:30] if ln.strip()]
    if not lines:
        return None
    best = None
    best_score = 0.0
    cands = ("\t", ",", ";", "|") if prefer_tab else (",", ";", "\t", "|")
    for d in cands:
        try:
            rows = list(csv.reader(lines if len(lines) < 30 else lines[:-1], delimiter=d))
        except csv.Error:
            continue
        widths = [len(r) for r in rows if r]
        if not widths or widths[0] < 2:
            continue
        mode = max(set(widths), key=widths.count)
        score = widths.count(mode) / len(widths) * (1 + min(mode, 20) / 20)
        if mode >= 2 and score > best_score:
            best, best_score = d, score
    return best


def _is_header(row: list[str]) -> bool:
    cells = [c.strip() for c in row]
    if not cells or any(not c for c in cells):
        return False
    if len(set(c.lower() for c in cells)) != len(cells):
        return False
    good = sum(1 for c in cells if _HEADER_CELL.match(c) and "@" not in c)
    return good == len(cells) or (good >= 0.8 * len(cells) and any(field_role(c)[0] for c in cells))


def _csv(text: str, t: _Tally, prefer_tab: bool) -> None:
    delim = _sniff_delimiter(text[:65536], prefer_tab)
    if delim is None:
        _text_only(text, t)
        return
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    header = None
    errors = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            errors += 1
            if errors > 100:
                t.rc.truncated = True
                t.rc.note = "csv: too many malformed rows"
                break
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            if _is_header(row):
                header = [c.strip() for c in row]
                t.fields(header)
                continue
            header = False
        if t.full():
            t.rc.truncated = True
            break
        if header:
            rec = dict(zip(header, row))
            if len(row) > len(header):
                rec["_extra"] = " ".join(row[len(header):])
            _scan_record(t, rec, seen=True)
        else:
            t.record(scan("\t".join(row)))


# ---------------------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------------------

try:  # orjson is a dependency of the project; the standard library is the fallback
    import orjson as _orjson

    def _loads(s: str):
        return _orjson.loads(s)
except ImportError:  # pragma: no cover
    _orjson = None

    def _loads(s: str):
        return json.loads(s)


def _json_scalar(v) -> str | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _json_walk(node, prefix: str, depth: int, t: _Tally, fields: dict) -> None:
    """Flatten ``node`` into ``fields`` (keys relative to the record); arrays of objects become records."""
    if depth > MAX_DEPTH:
        t.rc.truncated = True
        return
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                _json_walk(v, key, depth + 1, t, fields)
            elif isinstance(v, list):
                _json_list(v, key, depth + 1, t, fields)
            else:
                s = _json_scalar(v)
                if s is not None and len(fields) < MAX_FIELDS:
                    fields[key] = s
    elif isinstance(node, list):
        _json_list(node, prefix, depth + 1, t, fields)
    else:
        s = _json_scalar(node)
        if s is not None:
            fields[prefix or "value"] = s


def _json_list(lst: list, key: str, depth: int, t: _Tally, fields: dict) -> None:
    if depth > MAX_DEPTH:
        t.rc.truncated = True
        return
    scalars = []
    for item in lst:
        if isinstance(item, dict):
            if t.full():
                t.rc.truncated = True
                return
            _json_record(item, key, depth, t)
        elif isinstance(item, list):
            _json_list(item, key, depth + 1, t, fields)
        else:
            s = _json_scalar(item)
            if s is not None and len(scalars) < 1000:
                scalars.append(s)
    if scalars:
        fields[key] = "\n".join(scalars) if key not in fields else fields[key] + "\n" + "\n".join(scalars)


def _json_record(obj: dict, key: str, depth: int, t: _Tally) -> None:
    """One record: an object in an array; ``key`` (the array's key) keeps the context of its fields."""
    fields: dict = {}
    last = key.rsplit(".", 1)[-1] if key else ""
    _json_walk(obj, last, depth + 1, t, fields)
    _scan_record(t, fields)


def _json_root(doc, t: _Tally) -> None:
    if isinstance(doc, dict):
        fields: dict = {}
        _json_walk(doc, "", 0, t, fields)
        if fields:
            _scan_record(t, fields)
    elif isinstance(doc, list):
        fields = {}
        _json_list(doc, "", 1, t, fields)
        if fields:
            _scan_record(t, fields)
    else:
        s = _json_scalar(doc)
        if s:
            t.record(scan(s))


_ARRAY_OF_OBJECTS = re.compile(r"\[\s*\{")


def _json(text: str, t: _Tally) -> None:
    body = text.strip()
    try:
        doc = _loads(body)
    except Exception:
        doc = _NOTHING
    if doc is not _NOTHING:
        _json_root(doc, t)
        return
    # NDJSON / JSON lines
    lines = body.splitlines()
    if len(lines) > 1:
        ok = 0
        bad = 0
        for ln in lines:
            ln = ln.strip()
            if not ln:
                continue
            try:
                d = _loads(ln)
            except Exception:
                bad += 1
                if ok == 0 and bad > 3:
                    break
                continue
            ok += 1
            _json_root(d, t)
            if t.full():
                t.rc.truncated = True
                return
        if ok and bad <= 1:
            if bad:
                t.rc.truncated = True
            return
        if ok:
            t.rc.truncated = True
            t.rc.note = "json: some lines did not parse"
            return
    # truncated or broken document: the complete objects of the first array of objects, then text
    _json_salvage(body, t)


_NOTHING = object()


def _json_salvage(body: str, t: _Tally) -> None:
    t.rc.truncated = True
    t.rc.note = "json: document did not parse; complete array elements read"
    dec = json.JSONDecoder()
    m = _ARRAY_OF_OBJECTS.search(body)
    end = 0
    if m:
        pos = m.start() + 1
        key = ""
        km = re.search(r'"([^"\\]{1,100})"\s*:\s*$', body[max(0, m.start() - 120):m.start()])
        if km:
            key = km.group(1)
        n = len(body)
        while pos < n:
            while pos < n and body[pos] in " \t\r\n,":
                pos += 1
            if pos >= n or body[pos] != "{":
                break
            try:
                obj, pos = dec.raw_decode(body, pos)
            except ValueError:
                break
            if isinstance(obj, dict):
                _json_record(obj, key, 1, t)
            if t.full():
                return
        end = pos
    rest = (body[:m.start()] if m else "") + "\n" + body[end:]
    if rest.strip():
        _merge(t.rc.data, scan(rest))


# ---------------------------------------------------------------------------------------------------------
# XML
# ---------------------------------------------------------------------------------------------------------

_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


def _local(tag) -> str:
    if not isinstance(tag, str):
        return ""
    if tag[:1] == "{":
        tag = tag.rsplit("}", 1)[-1]
    return tag.rsplit(":", 1)[-1]


def _structured(e) -> bool:
    return len(e) > 0 or bool(e.attrib)


def _xml_walk(e, path: str, depth: int, t: _Tally, fields: dict) -> None:
    if depth > MAX_DEPTH:
        t.rc.truncated = True
        return
    for k, v in e.attrib.items():
        if len(fields) < MAX_FIELDS and v and v.strip():
            fields[f"{path}.{_local(k)}" if path else _local(k)] = v
    children = list(e)
    if not children:
        txt = (e.text or "").strip()
        if txt and len(fields) < MAX_FIELDS:
            key = path or _local(e.tag)
            fields[key] = fields[key] + "\n" + txt if key in fields else txt
        return
    txt = (e.text or "").strip()
    if txt and len(fields) < MAX_FIELDS:
        fields[(path or _local(e.tag)) + "._text"] = txt
    counts: dict = {}
    for c in children:
        if _structured(c):
            tag = _local(c.tag)
            counts[tag] = counts.get(tag, 0) + 1
    for c in children:
        tag = _local(c.tag)
        if counts.get(tag, 0) >= 2:
            # repeated structured siblings: records of their own
            if t.full():
                t.rc.truncated = True
                return
            rec: dict = {}
            _xml_walk(c, tag, depth + 1, t, rec)
            _scan_record(t, rec)
        else:
            _xml_walk(c, f"{path}.{tag}" if path else tag, depth + 1, t, fields)
        tail = (c.tail or "").strip()
        if tail and len(fields) < MAX_FIELDS:
            fields[(path or _local(e.tag)) + "._tail"] = tail


def _xml(text: str, t: _Tally) -> None:
    if _DTD.search(text):
        t.rc.note = "xml: DOCTYPE/ENTITY declarations refused; scanned as text"
        t.rc.truncated = True
        _text_only(text, t)
        return
    body = _XML_DECL.sub("", text, count=1)
    parser = ET.XMLPullParser(events=("start",))
    root = None
    try:
        parser.feed(body)
        for _ev, el in parser.read_events():
            root = el
            break
        parser.close()
    except ET.ParseError:
        t.rc.truncated = True
        t.rc.note = "xml: document did not parse to the end"
    if root is None:
        try:
            for _ev, el in parser.read_events():
                root = el
                break
        except Exception:
            pass
    if root is None:
        _text_only(text, t)
        return
    fields: dict = {}
    rtag = _local(root.tag)
    t.fields([rtag])
    _xml_walk(root, "", 0, t, fields)
    if fields:
        _scan_record(t, fields)
    _collect_xml_names(root, t)


def _collect_xml_names(root, t: _Tally) -> None:
    fs = t.rc.fields_seen
    n = 0
    for el in root.iter():
        if len(fs) >= MAX_FIELDS_SEEN or n > 100_000:
            break
        fs.add(_local(el.tag)[:100])
        n += 1


# ---------------------------------------------------------------------------------------------------------
# form
# ---------------------------------------------------------------------------------------------------------

_INDEXED = re.compile(r"^(?P<base>[^\[\].]+)(?:\[(?P<i1>\d+)\]|\.(?P<i2>\d+))(?:\[(?P<f1>[^\]]*)\]|\.(?P<f2>.+))?$")


def _form(text: str, t: _Tally) -> None:
    try:
        pairs = parse_qsl(text.strip(), keep_blank_values=False, max_num_fields=100_000)
    except ValueError:
        t.rc.truncated = True
        pairs = parse_qsl(text.strip()[:1_000_000], keep_blank_values=False)
    main: dict = {}
    groups: dict = {}
    for k, v in pairs:
        m = _INDEXED.match(k)
        if m:
            base = m.group("base")
            idx = m.group("i1") or m.group("i2")
            fld = m.group("f1") or m.group("f2") or base
            groups.setdefault((base, idx), {})[f"{base}.{fld}"] = v
        elif k in main:
            main[k] += "\n" + v
        else:
            main[k] = v
    if main:
        _scan_record(t, main)
    for rec in groups.values():
        if t.full():
            t.rc.truncated = True
            break
        _scan_record(t, rec)


# ---------------------------------------------------------------------------------------------------------
# EDIFACT
# ---------------------------------------------------------------------------------------------------------

def _unrelease(s: str, rel: str | None) -> str:
    if not rel or rel not in s:
        return s
    return re.sub(re.escape(rel) + "(.)", r"\1", s)


def _edifact_segments(text: str):
    """(tag, [elements as lists of components]) with the UNA service characters."""
    comp, elem, rel, term = ":", "+", "?", "'"
    start = text.find("UNA")
    unb = text.find("UNB")
    if start != -1 and (unb == -1 or start < unb) and len(text) >= start + 9:
        una = text[start + 3:start + 9]
        comp, elem, rel, term = una[0], una[1], una[3], una[5]
        if rel == " ":
            rel = None
        body = text[start + 9:]
    else:
        body = text[unb:] if unb != -1 else text
    for seg in _split_release_keep(body, term, rel):
        seg = seg.strip("\r\n\t ")
        if not seg:
            continue
        parts = _split_release_keep(seg, elem, rel)
        tag = parts[0][-3:] if parts else ""
        elements = [[_unrelease(c, rel) for c in _split_release_keep(p, comp, rel)] for p in parts[1:]]
        yield tag, elements


_SPLITTERS: dict = {}


def _split_release_keep(s: str, sep: str, rel: str | None) -> list[str]:
    """Split on ``sep`` not escaped by the release character; release sequences are kept."""
    if not rel or rel not in s:
        return s.split(sep)
    rx = _SPLITTERS.get((sep, rel))
    if rx is None:
        e, r = re.escape(sep), re.escape(rel)
        rx = _SPLITTERS[(sep, rel)] = re.compile(f"(?:[^{e}{r}]|{r}.|{r}$)*", re.S)
    out = []
    pos = 0
    n = len(s)
    while True:
        m = rx.match(s, pos)
        out.append(m.group())
        pos = m.end()
        if pos >= n:
            break
        pos += 1  # the separator
        if pos == n:
            out.append("")
            break
    return out


def _el(elements: list, i: int, j: int = 0) -> str:
    try:
        return elements[i][j].strip()
    except IndexError:
        return ""


# carrier and forwarder parties are transport providers, not customers
_NOT_CUSTOMER_PARTIES = frozenset({"CA", "FW"})
# parties that are organisations (EDIFACT 3035: CZ consignor, SH shipper, DT despatch party, SU supplier,
# MF manufacturer; X12 98: SH shipper, SF ship from, SU supplier, VN vendor, MF manufacturer): their name is
# a company name, never a person name (their address and contacts still count)
_EDI_ORG_PARTIES = frozenset({"CZ", "SH", "DT", "SU", "MF"})
_X12_ORG_PARTIES = frozenset({"SH", "SF", "SU", "VN", "MF"})
# a party identified by a GLN (EDIFACT 3055 agency 9 = GS1) or D-U-N-S (agency 16; X12 66: 1, 9 DUNS,
# UL GLN) is an organisation
_EDI_ORG_AGENCIES = frozenset({"9", "16"})
_X12_ORG_ID_QUAL = frozenset({"1", "9", "UL"})
# commodity codes: EDIFACT CST C246 7361 (customs goods identifier: numeric is the tariff number), GIS and
# PIA item type codes (7143 HS harmonised system; TAR/CC as used by customs guides); X12 23 commodity code
# qualifiers based on the Harmonized System (A HTSUSA, B Schedule B, H Brussels nomenclature, J HS-based
# Schedule B) in L5, L13 and TC2
_EDI_HS_CODES = frozenset({"HS", "CC", "TAR", "HTS", "CN", "TARIC"})
_X12_HS_QUAL = frozenset({"A", "B", "H", "J"})
_DOTS = re.compile(r"[ .]")
_EDI_TRACK_RFF = frozenset({"CN", "AAS", "SRN", "BM", "AWB", "ABT", "CU", "ACD", "AAM", "ZZZ", "TN", "PK"})
_EDI_GTIN_CODES = frozenset({"SRV", "EN", "UP", "EAN", "UPC", "GTIN"})


class _Party:
    __slots__ = ("fields",)

    def __init__(self):
        self.fields = {}


def _edifact(text: str, t: _Tally) -> None:
    sender = recipient = None
    msg = None           # current message: dict
    party = None
    rc = t.rc

    def close_party():
        nonlocal party
        if party is not None and party.fields:
            found = scan_fields(party.fields)
            if not _classes.record_sets()[0].isdisjoint(found):
                t.record(found)
        party = None

    def close_msg():
        nonlocal msg
        if msg is None:
            return
        close_party()
        found: dict = {}
        _merge(found, scan(msg["text"]) if msg["text"] else {})
        for cls, vals in msg["ids"].items():
            found.setdefault(cls, set()).update(vals)
        mtype = msg["type"]
        ship = mtype in EDIFACT_SHIPMENT_TYPES
        ref = msg["ref"]
        # the message itself: a shipment record when it is a shipment message or carries shipment ids
        rc.records += 1
        rc.count(found, False, ship or not shipment_record_classes().isdisjoint(found), f"edifact:{mtype}:{ref}")
        _merge(rc.data, found)
        _merge(rc.data, {"edifact_message": {f"{mtype}:{ref}"}})
        if len(rc.edi) < MAX_EDI:
            rc.edi.append({"standard": "edifact", "type": mtype, "ref": ref, "sender": sender,
                           "recipient": recipient})
        msg = None

    for tag, els in _edifact_segments(text):
        if t.full():
            rc.truncated = True
            break
        if tag == "UNB":
            sender = _el(els, 1) or None
            recipient = _el(els, 2) or None
        elif tag == "UNH":
            close_msg()
            mtype = _el(els, 1).upper() or "UNKNOWN"
            msg = {"ref": _el(els, 0), "type": mtype, "text": "", "ids": {}}
            t.fields([mtype])
        elif tag in ("UNT",):
            close_msg()
        elif msg is not None:
            if tag == "NAD":
                # NAD+qualifier+C082 id+C058 name and address+C080 name+C059 street+city+C819+postcode+country
                close_party()
                qual = _el(els, 0).upper()
                if qual in _NOT_CUSTOMER_PARTIES:
                    continue
                party = _Party()
                f = party.fields
                name = " ".join(c.strip() for c in (els[3] if len(els) > 3 else []) if c.strip())
                lines = [c.strip() for c in (els[2] if len(els) > 2 else []) if c.strip()]
                if not name and lines:
                    name = lines.pop(0)
                org = qual in _EDI_ORG_PARTIES or (bool(_el(els, 1)) and _el(els, 1, 2) in _EDI_ORG_AGENCIES)
                if name:
                    f["party.company" if org else "party.name"] = name
                street = " ".join(c.strip() for c in (els[4] if len(els) > 4 else []) if c.strip())
                if street:
                    f["party.street"] = street
                elif lines:
                    f["party.address"] = ", ".join(lines)
                for key, idx in (("city", 5), ("postcode", 7), ("country", 8)):
                    if _el(els, idx):
                        f[f"party.{key}"] = _el(els, idx)
            elif tag == "CTA" and party is not None:
                nm = _el(els, 1, 1)
                if nm and not nm.isdigit():
                    party.fields.setdefault("contact.name", nm)
            elif tag == "COM":
                val, qual = _el(els, 0, 0), _el(els, 0, 1).upper()
                target = party.fields if party is not None else None
                key = {"TE": "phone", "FX": "fax", "MO": "mobile", "AL": "mobile", "EM": "email"}.get(qual)
                if key and val:
                    if target is not None:
                        target[f"com_{len(target)}.{key}"] = val
                    else:
                        _merge(msg["ids"], scan_fields({key: val}))
            else:
                if party is not None and tag not in ("CTA", "COM", "LOC", "RFF", "DTM"):
                    close_party()
                if tag == "RFF":
                    q, v = _el(els, 0, 0).upper(), _el(els, 0, 1)
                    if v:
                        role = "tracking_number" if q in _EDI_TRACK_RFF else None
                        if role:
                            _merge(msg["ids"], scan(v, {"field": role}))
                        msg["text"] += "\n" + v
                elif tag == "GIN":
                    q = _el(els, 0).upper()
                    for e in els[1:]:
                        for v in e[:2]:
                            if v:
                                role = "sscc" if q in ("BJ", "AW") else "tracking_number" if q in (
                                    "AAA", "ML", "BN") else None
                                _merge(msg["ids"], scan(v, {"field": role}) if role else scan(v))
                elif tag == "CST":
                    # CST+goods item+C246 x5: a numeric customs goods identifier is the tariff number
                    for e in els[1:6]:
                        v = _DOTS.sub("", e[0]) if e else ""
                        if 6 <= len(v) <= 10 and v.isdigit():
                            _merge(msg["ids"], scan(v, {"field": "hs_code"}))
                elif tag == "GIS":
                    # GIS+C529 (indicator:code list:agency): a commodity code when the list is a tariff
                    for e in els[:1]:
                        if len(e) > 1 and e[1].strip().upper() in _EDI_HS_CODES and e[0]:
                            _merge(msg["ids"], scan(_DOTS.sub("", e[0]), {"field": "hs_code"}))
                elif tag in ("LIN", "PIA"):
                    start = 2 if tag == "LIN" else 1
                    for e in els[start:]:
                        if e and e[0]:
                            code = e[1].upper() if len(e) > 1 else ""
                            if code in _EDI_GTIN_CODES:
                                _merge(msg["ids"], scan(e[0], {"field": "gtin"}))
                            elif code in _EDI_HS_CODES:
                                _merge(msg["ids"], scan(_DOTS.sub("", e[0]), {"field": "hs_code"}))
                            else:
                                msg["text"] += "\n" + e[0]
                elif tag in ("FTX", "CNI", "BGM", "DOC", "TDT", "EQD", "SEL", "GID", "PCI"):
                    msg["text"] += "\n" + " ".join(c for e in els for c in e if c)
                if len(msg["text"]) > 1_000_000:
                    msg["text"] = msg["text"][-500_000:]
    close_msg()


# ---------------------------------------------------------------------------------------------------------
# X12
# ---------------------------------------------------------------------------------------------------------

_X12_GTIN_QUAL = frozenset({"UP", "EN", "UK", "UA", "EO", "UD", "UI", "UN", "UX"})
_X12_TRACK_REF = frozenset({"2I", "CN", "BM", "PRO", "AW", "TN", "08", "WY", "ZH", "CP", "PK"})


def _x12(text: str, t: _Tally) -> None:
    rc = t.rc
    i = text.find("ISA")
    if i == -1 or len(text) < i + 106:
        _text_only(text, t)
        rc.note = "x12: no complete ISA segment"
        return
    pos = i
    while pos != -1 and not t.full():
        nxt = _x12_interchange(text, pos, t)
        if nxt is None:
            break
        pos = text.find("ISA", nxt)
        while pos != -1 and (len(text) < pos + 106 or text[pos + 3].isalnum()):
            pos = text.find("ISA", pos + 3)


def _x12_interchange(text: str, i: int, t: _Tally):
    rc = t.rc
    el = text[i + 3]
    isa = text[i:i + 106]
    parts = isa.split(el)
    if len(parts) < 17:
        rc.note = "x12: malformed ISA"
        _text_only(text[i:], t)
        return None
    comp = parts[16][:1] if parts[16] else ">"
    term = text[i + 105]
    if term.isalnum() or term == el:
        rc.note = "x12: bad segment terminator"
        return None
    sender = parts[6].strip() or None
    receiver = parts[8].strip() or None
    end = text.find("IEA" + el, i)
    seg_end = text.find(term, end) if end != -1 else -1
    body = text[i:seg_end + 1 if seg_end != -1 else len(text)]
    tx = None
    party = None

    def close_party():
        nonlocal party
        if party:
            party.pop("_org", None)
            found = scan_fields(party, {"regions": ("US", "CA", "GB", "DE", "FR")})
            if not _classes.record_sets()[0].isdisjoint(found):
                t.record(found)
        party = None

    def close_tx():
        nonlocal tx
        if tx is None:
            return
        close_party()
        found: dict = {}
        if tx["text"]:
            _merge(found, scan(tx["text"]))
        _merge(found, tx["ids"])
        code = tx["code"]
        ship = code in X12_SHIPMENT_SETS
        rc.records += 1
        rc.count(found, False, ship or not shipment_record_classes().isdisjoint(found), f"x12:{code}:{tx['ref']}")
        _merge(rc.data, found)
        _merge(rc.data, {"x12_transaction": {f"{code}:{tx['ref']}"}})
        if len(rc.edi) < MAX_EDI:
            rc.edi.append({"standard": "x12", "type": code, "ref": tx["ref"], "sender": sender,
                           "recipient": receiver})
        tx = None

    for seg in body.split(term):
        seg = seg.strip("\r\n\t ")
        if not seg:
            continue
        els = seg.split(el)
        tag = els[0]
        if t.full():
            rc.truncated = True
            break
        if tag == "ST":
            close_tx()
            code = els[1].strip() if len(els) > 1 else "?"
            tx = {"code": code, "ref": els[2].strip() if len(els) > 2 else "", "text": "", "ids": {}}
        elif tag == "SE":
            close_tx()
        elif tag in ("IEA", "GE", "GS", "ISA"):
            if tag == "IEA":
                close_tx()
        elif tx is not None:
            if tag == "N1":
                close_party()
                q = els[1].upper() if len(els) > 1 else ""
                party = {} if q not in _NOT_CUSTOMER_PARTIES else None
                org = q in _X12_ORG_PARTIES or (len(els) > 4 and els[3].strip().upper() in _X12_ORG_ID_QUAL
                                                and els[4].strip() != "")
                if party is not None and len(els) > 2 and els[2].strip():
                    party["party.company" if org else "party.name"] = els[2]
                if party is not None and org:
                    party["_org"] = True
            elif tag in ("N2", "N3", "N4", "PER"):
                if party is None:
                    continue
                if tag == "N2":
                    party.setdefault("party.company" if party.get("_org") else "party.name",
                                     " ".join(e for e in els[1:] if e))
                elif tag == "N3":
                    party["party.street"] = " ".join(e for e in els[1:3] if e)
                elif tag == "N4":
                    for k, idx in (("city", 1), ("state", 2), ("postcode", 3), ("country", 4)):
                        if len(els) > idx and els[idx].strip():
                            party[f"party.{k}"] = els[idx]
                elif tag == "PER":
                    if len(els) > 2 and els[2].strip():
                        party.setdefault("contact.name", els[2])
                    for j in range(3, len(els) - 1, 2):
                        q, v = els[j].upper(), els[j + 1]
                        key = {"TE": "phone", "CP": "mobile", "FX": "fax", "EM": "email"}.get(q)
                        if key and v:
                            party[f"per_{j}.{key}"] = v
            else:
                if party is not None:
                    close_party()
                if tag == "LIN" or tag == "SLN" or tag == "PO1":
                    start = 2 if tag == "LIN" else 6
                    for j in range(start, len(els) - 1, 2):
                        q, v = els[j].upper(), els[j + 1]
                        if q in _X12_GTIN_QUAL and v:
                            _merge(tx["ids"], scan(v, {"field": "gtin"}))
                        elif q in ("HS", "HC", "A") and v:
                            _merge(tx["ids"], scan(v, {"field": "hs_code"}))
                elif tag == "MAN":
                    q = els[1].upper() if len(els) > 1 else ""
                    for v in els[2:4]:
                        if v:
                            role = "sscc" if q in ("GM", "W") else "tracking_number" if q in ("CP", "SM", "CA",
                                                                                             "AA") else None
                            _merge(tx["ids"], scan(v, {"field": role}) if role else scan(v))
                elif tag in ("REF", "L11"):
                    if tag == "REF":
                        q, v = (els[1].upper() if len(els) > 1 else ""), (els[2] if len(els) > 2 else "")
                    else:
                        q, v = (els[2].upper() if len(els) > 2 else ""), (els[1] if len(els) > 1 else "")
                    if v:
                        if q in _X12_TRACK_REF:
                            _merge(tx["ids"], scan(v, {"field": "tracking_number"}))
                        else:
                            tx["text"] += "\n" + v
                elif tag in ("B10", "B2", "BOL", "BSN"):
                    vals = [e for e in els[1:4] if e]
                    for v in vals:
                        _merge(tx["ids"], scan(v, {"field": "tracking_number"}) if tag == "B10" else scan(v))
                elif tag in ("L5", "L13", "TC2"):
                    # commodity code + qualifier (23): L503/L504, L1302/L1301, TC202/TC201
                    q, v = {"L5": (4, 3), "L13": (1, 2), "TC2": (1, 2)}[tag]
                    q = els[q].strip().upper() if len(els) > q else ""
                    v = _DOTS.sub("", els[v]) if len(els) > v else ""
                    if q in _X12_HS_QUAL and v:
                        _merge(tx["ids"], scan(v, {"field": "hs_code"}))
                    if tag == "L5":
                        tx["text"] += "\n" + " ".join(e for e in els[1:3] if e).replace(comp, " ")
                elif tag in ("TD1", "TD5", "MSG", "NTE", "K1", "AT8", "PRF", "CUR"):
                    tx["text"] += "\n" + " ".join(e for e in els[1:] if e).replace(comp, " ")
                if len(tx["text"]) > 1_000_000:
                    tx["text"] = tx["text"][-500_000:]
    close_tx()
    return i + len(body)


# ---------------------------------------------------------------------------------------------------------
# multipart
# ---------------------------------------------------------------------------------------------------------

def _multipart(data: bytes, t: _Tally, depth: int) -> None:
    """Each part of a multipart body (boundary from its first line) counted by its declared type,
    else by its sniffed one; media and archives are skipped."""
    parts = multipart(data)
    if not parts:
        _text_only(to_text(data), t)
        return
    for headers, body in parts:
        ct = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        ptype = None
        if ct:
            ptype = ("json" if "json" in ct else "xml" if "xml" in ct else "csv" if "csv" in ct else
                     "tsv" if "tab-separated" in ct else "form" if "urlencoded" in ct else
                     "edifact" if "edifact" in ct else "x12" if "x12" in ct else "html" if "html" in ct else
                     None)
            if ct.startswith(("image/", "video/", "audio/")) or ct in ("application/zip", "application/pdf",
                                                                       "application/octet-stream"):
                continue
        t.rc.merge(_count(body, ptype or classify(body)[0], depth + 1))


# ---------------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------------

_NO_TEXT = frozenset({"tls-encrypted", "encrypted-or-compressed", "image", "zip", "gzip", "pdf", "office"})


def _text_only(text: str, t: _Tally) -> None:
    _merge(t.rc.data, scan(text))


def count_records(data, payload_type: str | None = None) -> RecordCount:
    """Records in one payload of type ``payload_type`` (``PAYLOAD_TYPES``; None: sniffed)."""
    return _count(data, payload_type, 0)


def _count(data, payload_type, depth: int) -> RecordCount:
    rc = RecordCount()
    if not data:
        return rc
    if isinstance(data, str):
        raw = None
        text = data
    else:
        raw = bytes(data)
        text = None
    ptype = (payload_type or "").lower() or classify(raw if raw is not None else text.encode("utf-8", "replace"))[0]
    t = _Tally(rc)
    if ptype in _NO_TEXT:
        return rc
    if ptype == "multipart":
        if depth > 3:
            rc.truncated = True
            return rc
        _multipart(raw if raw is not None else text.encode("utf-8", "surrogatepass"), t, depth)
        return rc
    if text is None:
        text = to_text(raw)
    if ptype in ("text", "binary", "protobuf") and depth == 0:
        # a mislabelled EDI interchange is still EDI
        head = text[:64].lstrip()
        if head.startswith(("UNA", "UNB+")):
            ptype = "edifact"
        elif head.startswith("ISA") and len(head) > 3 and not head[3].isalnum():
            ptype = "x12"
    if ptype in ("csv", "tsv"):
        _csv(text, t, prefer_tab=(ptype == "tsv"))
    elif ptype == "json":
        _json(text, t)
    elif ptype == "xml":
        _xml(text, t)
    elif ptype == "form":
        _form(text, t)
    elif ptype == "edifact":
        _edifact(text, t)
    elif ptype == "x12":
        _x12(text, t)
    else:
        _text_only(text, t)
    return rc
