"""Data classes: one declaration each, in one registry.

A data class is a kind of identifier the content stage counts (``tracking_s10``, ``email``...). Everything
the rest of the program needs to know about a class is in its ``DataClass`` declaration:

==================  ====================================================================================
``name``            the key in ``data`` (flows, content.jsonl, alerts, incidents) and in rules
``group``           ``shipment``, ``customer`` or ``edi``: the rule alias it belongs to (``data: [customer]``)
``record``          ``customer`` / ``shipment`` / None: a record (CSV row, JSON object, EDI message)
                    carrying a value of this class counts as a record of that kind. GTIN and HS code
                    identify products: they are reported but make no shipment record on their own.
``prefilter``       the patterns (name, bounded regex, caseless) marking where a value may be. Text
                    bodies over 2 KB in which no pattern of any class matches are not scanned at all, so
                    a class found in free text must declare at least one (``register`` refuses it
                    otherwise).
``mask``            evidence form of a value (``j***@e***.com``): enough to recognise it, never enough to
                    rebuild it.
``edm``             the normaliser exact data matching uses for a fingerprint column of this class.
``find``            (classes with a finder of their own) ``find(text) -> iterable of normalised values``
                    over free text; the built-in classes are found by the tuned scanners of
                    ``identifiers.py`` instead (``find`` is None for them).
``field``           (optional) a regex over normalised field names (``tracking_no``, ``ship_to.phone``)
                    naming fields whose whole value is one candidate of the class, given to ``validate``
                    (``validate(value) -> normalised value or None``).
==================  ====================================================================================

Adding a data class is one declaration: a ``DataClass(...)`` appended to ``BUILTIN`` below (with its
``find``/``validate`` functions beside it), or ``register(DataClass(...))`` from a site's own module.
The prefilter, the scanners (free text and structured fields), record counting, masking, rule
validation (``data: [...]`` and ``data.NAME`` metrics), the rule aliases and exact data matching all
read the registry; ``tests/test_data_classes.py`` registers a dummy class and follows it from a
payload on the wire to the flow, content.jsonl, the alert and the incident.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

__all__ = ["DataClass", "register", "unregister", "get", "names", "group", "record_sets", "prefilter_patterns",
           "finders", "has_fields", "field_class", "mask", "GROUPS", "BUILTIN"]

GROUPS = ("shipment", "customer", "edi")
RECORD_KINDS = ("customer", "shipment")
EDM_KINDS = ("email", "phone", "name", "text", "id", "digits")


# ---------------------------------------------------------------------------------------------------------
# masks: evidence forms
# ---------------------------------------------------------------------------------------------------------

def _mask_word(w: str) -> str:
    return (w[0] + "***") if w else ""


def mask_default(v: str) -> str:
    if len(v) >= 12:
        return v[:2] + "******" + v[-4:]
    if len(v) >= 6:
        return v[:1] + "****" + v[-2:]
    return v[:1] + "***"


def mask_email(v: str) -> str:
    local, _, domain = v.rpartition("@")
    labels = domain.split(".")
    tld = labels[-1] if len(labels) > 1 else ""
    return f"{_mask_word(local)}@{_mask_word(labels[0])}" + (f".{tld}" if tld else "")


def mask_words(v: str) -> str:
    words = v.replace(",", " ").split()
    return " ".join(_mask_word(w) for w in words[:6]) + (" ..." if len(words) > 6 else "")


def mask_phone(v: str) -> str:
    return v[:2] + "******" if len(v) <= 7 else v[:3] + "******" + v[-3:]


def mask_edi(v: str) -> str:
    if ":" not in v:
        return mask_default(v)
    kind, _, ref = v.partition(":")   # "IFTMIN:REF001": the message type is not sensitive
    return kind + ":" + (ref[:1] + "***" if ref else "")


def mask_hs(v: str) -> str:
    return v[:4] + "*" * max(2, len(v) - 4)


def mask_account(v: str) -> str:
    return v[:4] + "****" + v[-4:] if len(v) >= 12 else v[:2] + "****" + v[-2:]


def mask_card(v: str) -> str:
    return v[:1] + "******" + v[-4:]


def mask_s10(v: str) -> str:
    return v[:2] + "******" + v[-4:]


# ---------------------------------------------------------------------------------------------------------
# the declaration
# ---------------------------------------------------------------------------------------------------------

Pattern = tuple  # (name, regex, caseless)


@dataclass(frozen=True)
class DataClass:
    name: str
    group: str
    doc: str
    record: Optional[str] = None
    prefilter: tuple = ()
    mask: Callable[[str], str] = mask_default
    edm: str = "id"
    find: Optional[Callable[[str], Iterable[str]]] = None
    field: Optional[str] = None
    validate: Optional[Callable[[str], Optional[str]]] = None

    def check(self) -> None:
        """Refuse a declaration the pipeline could not honour (raised as ValueError naming the class)."""
        def bad(why):
            raise ValueError(f"data class {self.name!r}: {why}")
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,39}", self.name or ""):
            bad("a name is 2-40 lower-case letters, digits and '_', starting with a letter")
        if self.name in ("customer", "shipment", "edi", "any"):
            bad("the name is a rule alias")
        if self.group not in GROUPS:
            bad(f"group must be one of {', '.join(GROUPS)}")
        if self.record not in (None,) + RECORD_KINDS:
            bad(f"record must be None or one of {', '.join(RECORD_KINDS)}")
        if self.edm not in EDM_KINDS:
            bad(f"edm must be one of {', '.join(EDM_KINDS)}")
        for p in self.prefilter:
            if not (isinstance(p, tuple) and len(p) == 3 and isinstance(p[0], str) and isinstance(p[1], str)):
                bad("prefilter entries are (name, regex, caseless) tuples")
        if self.find is not None and not self.prefilter:
            bad("a class found in free text needs a prefilter pattern (text bodies over 2 KB that match no "
                "pattern are never scanned)")
        if (self.field is None) != (self.validate is None):
            bad("'field' and 'validate' go together")
        if self.field is not None:
            try:
                re.compile(self.field)
            except re.error as e:
                bad(f"field regex does not compile: {e}")


# ---------------------------------------------------------------------------------------------------------
# prefilter patterns shared by the built-in classes
# ---------------------------------------------------------------------------------------------------------

#: context words near which identifiers are looked for (caseless; one pattern)
KEYWORDS = (
    "consignee", "consignor", "recipient", "shipper", "street", "postcode", "postal[ _-]?code",
    "zip[ _-]?code", "phone", "e-?mail", "eori", "hs[ _-]?code", "tariff", "address", "surname",
    "first[ _-]?name", "last[ _-]?name", "date[ _-]?of[ _-]?birth", "iban", "customer[ _-]?(?:id|no|number)",
    "tracking", "waybill", "awb", "sscc", "gtin",
)
_KW = ("keywords", "|".join(KEYWORDS), True)
# a run of >= 13 digits (GTIN-13/14, card numbers, 18-digit SSCC), matched with the byte that ends it: one
# match per run, however long (the prefilter scans data as if followed by a newline)
_DIGIT_RUN = ("digit_run", r"[0-9]{13}[^0-9]", False)
_DIGITS_GROUPED = ("digits_grouped", r"[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]", False)
_GS1_AI = ("gs1_ai", r"\((?:00|01|02|10|17|21|41[0-5]|42[01])\)", False)

BUILTIN = (
    DataClass("tracking_s10", "shipment", "UPU S10 item identifier (2 letters, 8 digits, check digit, country)",
              record="shipment", mask=mask_s10,
              prefilter=(("s10", r"[A-Z]{2}[0-9]{9}[A-Z]{2}", False),
                         ("s10_spaced", r"[A-Z]{2} [0-9]{3} [0-9]{3} [0-9]{3} [A-Z]{2}", False))),
    DataClass("tracking_ups", "shipment", "UPS 1Z tracking number (mod 10 check)", record="shipment",
              prefilter=(("ups", r"1[Zz] ?[0-9A-Za-z]{3} ?[0-9A-Za-z]{3}", False),)),
    DataClass("sscc", "shipment", "GS1 Serial Shipping Container Code (18 digits, mod 10)", record="shipment",
              prefilter=(_DIGIT_RUN, _GS1_AI, _KW)),
    DataClass("gtin", "shipment", "GS1 GTIN-8/12/13/14 trade item number (with context)",
              prefilter=(_DIGIT_RUN, _GS1_AI, _KW)),
    DataClass("tracking_other", "shipment", "FedEx, USPS, DHL, DPD numbers with a valid check digit (with context)",
              record="shipment", prefilter=(_DIGIT_RUN, _KW)),
    DataClass("hs_code", "shipment", "Harmonized System commodity code (with context)", mask=mask_hs,
              prefilter=(_KW,)),
    DataClass("email", "customer", "e-mail address", record="customer", mask=mask_email, edm="email",
              prefilter=(("email", r"[A-Za-z0-9._%+\-]@[A-Za-z0-9]", False),)),
    DataClass("phone", "customer", "telephone number, E.164", record="customer", mask=mask_phone, edm="phone",
              prefilter=(("phone", r"\+[1-9](?:[ \-.()/]{0,2}[0-9]){7}", False), _KW)),
    DataClass("person_name", "customer", "a person's name (structured fields only)", record="customer",
              mask=mask_words, edm="name", prefilter=(_KW,)),
    DataClass("postal_address", "customer", "a postal address (structured fields only)", record="customer",
              mask=mask_words, edm="text", prefilter=(_KW,)),
    DataClass("iban", "customer", "ISO 13616 IBAN (mod 97)", record="customer", mask=mask_account,
              prefilter=(("iban", r"[A-Z]{2}[0-9]{2} ?[A-Z0-9]{4} ?[0-9]{4}", False),)),
    DataClass("payment_card", "customer", "payment card number (Luhn, IIN ranges)", record="customer",
              mask=mask_card, edm="digits", prefilter=(_DIGIT_RUN, _DIGITS_GROUPED)),
    DataClass("eori", "customer", "EU/GB Economic Operators Registration and Identification number (with context)",
              record="customer", mask=mask_account, prefilter=(_KW,)),
    DataClass("edifact_message", "edi", "UN/EDIFACT message (type:reference)", mask=mask_edi,
              prefilter=(("edifact_unh", r"UNH\+", False),)),
    DataClass("x12_transaction", "edi", "ANSI X12 transaction set (code:control number)", mask=mask_edi,
              prefilter=(("x12_st", r"ST\*[0-9]{3}\*", False),)),
)


# ---------------------------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------------------------

class _Registry:
    """Declarations by name, in registration order, and what is derived from them (rebuilt on change)."""

    def __init__(self):
        self.classes: dict[str, DataClass] = {}
        self.version = 0
        self._derive()

    def add(self, dc: DataClass, replace: bool = False) -> None:
        dc.check()
        if dc.name in self.classes and not replace:
            raise ValueError(f"data class {dc.name!r} is already registered")
        before = dict(self.classes)
        self.classes[dc.name] = dc
        try:
            self._derive()
        except ValueError:
            self.classes = before     # left as it was
            self._derive()
            raise

    def remove(self, name: str) -> None:
        if self.classes.pop(name, None) is not None:
            self._derive()

    def _derive(self) -> None:
        cs = list(self.classes.values())
        self.version += 1
        self.names = tuple(c.name for c in cs)
        self.groups = {g: tuple(c.name for c in cs if c.group == g) for g in GROUPS}
        self.records = (frozenset(c.name for c in cs if c.record == "customer"),
                        frozenset(c.name for c in cs if c.record == "shipment"))
        seen: dict[str, Pattern] = {}
        for c in cs:
            for p in c.prefilter:
                prev = seen.setdefault(p[0], p)
                if prev != p:
                    raise ValueError(f"data class {c.name!r}: prefilter pattern name {p[0]!r} is already used "
                                     f"for another pattern")
        self.patterns = tuple(seen.values())
        self.finders = tuple(c for c in cs if c.find is not None)
        self.fields = tuple((re.compile(c.field), c) for c in cs if c.field is not None)
        self._field_cache: dict[str, Optional[DataClass]] = {}


_R = _Registry()
for _dc in BUILTIN:
    _R.add(_dc)


def register(dc: DataClass, replace: bool = False) -> None:
    """Add a data class (ValueError naming the class when the declaration is not usable)."""
    _R.add(dc, replace)


def unregister(name: str) -> None:
    _R.remove(name)


def version() -> int:
    """Changes whenever a class is registered or removed (stages that cache derived data compare it)."""
    return _R.version


def get(name: str) -> Optional[DataClass]:
    return _R.classes.get(name)


def names() -> tuple:
    """Every data class name, in registration order."""
    return _R.names


def group(name: str) -> tuple:
    """The classes of one group (``shipment``, ``customer``, ``edi``), or every class for ``any``."""
    return _R.names if name == "any" else _R.groups.get(name, ())


def record_sets() -> tuple:
    """(classes making a customer record, classes making a shipment record)."""
    return _R.records


def prefilter_patterns() -> tuple:
    """Every class's prefilter patterns, each name once, in registration order."""
    return _R.patterns


def finders() -> tuple:
    """The classes with a free-text finder of their own."""
    return _R.finders


def has_fields() -> bool:
    """Whether any registered class names fields of its own (``field``)."""
    return bool(_R.fields)


def field_class(normalised_key: str) -> Optional[DataClass]:
    """The class whose ``field`` regex names this (normalised) field, if any."""
    if not _R.fields:
        return None
    cache = _R._field_cache
    hit = cache.get(normalised_key, cache)
    if hit is not cache:
        return hit
    found = next((c for rx, c in _R.fields if rx.search(normalised_key)), None)
    if len(cache) < 8192:
        cache[normalised_key] = found
    return found


def mask(cls: str, value: str) -> str:
    """Evidence form of a value of class ``cls`` (the default form for an unknown class)."""
    v = str(value)
    if not v:
        return ""
    dc = _R.classes.get(cls)
    return (dc.mask if dc is not None else mask_default)(v)
