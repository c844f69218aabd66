"""Content stage: what kind of payload leaves the site, and which shipment and customer records are in it.

Modules (one job each):

* ``decoding.py``    bounded decoders: ``decompress(data, encoding, limit)`` (gzip, deflate, br, with size
                     and ratio limits against bombs), ``encoded_runs(data)`` (base64, base32, hex runs
                     found in text, decoded).
* ``classes.py``     the data-class registry: one ``DataClass`` declaration per class (group, record kind,
                     prefilter patterns, mask, exact-matching normaliser, optional finder/field validator).
* ``identifiers.py`` data identifiers with validators: ``scan(text, context)`` -> {class: {normalised value}}
                     for the classes in ``DATA_CLASSES``; ``mask(cls, value)``.
* ``records.py``     structured payloads parsed into records: ``count_records(data, payload_type)`` ->
                     customer and shipment record counts, EDI messages by type with sender/recipient.
* ``edm.py``         exact data matching against fingerprint files made by ``inspector fingerprint``.
* ``prefilter.py``   one multi-pattern pass (Hyperscan where it installs, a compiled alternation otherwise)
                     marking the regions worth running validators on.
* ``stage.py``       per-flow aggregation fed by the application layer; flow fields and content.jsonl.

Shared with the protocol analyzers, one level down: payload typing (``inspector.sniff.classify``,
one of ``PAYLOAD_TYPES``) and MIME parsing (``inspector.mime``: multipart parts with headers).
"""
from ..sniff import PAYLOAD_TYPES

__all__ = ["PAYLOAD_TYPES", "SHIPMENT_CLASSES", "CUSTOMER_CLASSES", "EDI_CLASSES", "DATA_CLASSES"]

_GROUP_OF = {"SHIPMENT_CLASSES": "shipment", "CUSTOMER_CLASSES": "customer", "EDI_CLASSES": "edi",
             "DATA_CLASSES": "any"}


def __getattr__(name):
    """``DATA_CLASSES`` and the per-group tuples, read from the data-class registry (``classes.py``) at the
    time they are asked for: code that must see classes registered later calls ``classes.group(...)``."""
    g = _GROUP_OF.get(name)
    if g is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import classes
    return classes.group(g)
