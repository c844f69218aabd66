"""Protocol log records on their way out: the one place where PII in them is masked.

Which fields carry people's addresses is declared by the protocol modules
(``PII_FIELDS``, see protocols/base.py); e-mail addresses in those fields (also
percent-encoded ones in URIs) are replaced by the content stage's masked form,
and a URI's query values that carry identifiers (also base64-, hex- or
percent-encoded ones) by ``[masked CLASS]``, unless the run shows raw values.
"""
from __future__ import annotations

import re

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _mask_match(m) -> str:
    from ..content.identifiers import mask   # deferred: a large module, needed only when an address shows up
    return mask("email", m.group(0).replace("%40", "@"))


def mask_text(text):
    """``text`` with every e-mail address masked, and every query value of a URI that carries an
    identifier, plainly or encoded (``content.params.mask_query``); anything but a string is returned
    as is."""
    if not isinstance(text, str):
        return text
    if "=" in text and ("?" in text or "#" in text):
        from ..content.params import mask_query   # deferred, as below: only URIs with a query pay
        text = mask_query(text)
    if "@" not in text and "%40" not in text.lower():
        return text
    return _EMAIL_RE.sub(_mask_match, text)


def mask_record(record: dict, fields) -> dict:
    """A copy of ``record`` with ``fields`` masked (list, set and tuple values become lists)."""
    out = dict(record)
    for k in fields:
        v = out.get(k)
        if isinstance(v, (list, set, tuple)):
            out[k] = [mask_text(x) for x in v]
        elif v is not None:
            out[k] = mask_text(v)
    return out


class ProtocolLogs:
    """Where analyzers' records go: masked per the declarations, then to ``sink(log, record)``,
    or kept in ``logs`` (log name -> records) when there is no sink."""

    def __init__(self, pii: dict, show_raw: bool = False, sink=None):
        self.pii = {} if show_raw else dict(pii)
        self.sink = sink
        self.logs: dict = {}
        self.capture_of = None     # uid -> the input file of its connection (every record says it)

    def __call__(self, log: str, record: dict) -> None:
        fields = self.pii.get(log)
        if fields is not None:
            record = mask_record(record, fields)
        if "capture" not in record:
            uid = record.get("uid") or (record.get("uids") or [None])[0]     # files: the first carrier
            record["capture"] = self.capture_of(uid) if self.capture_of is not None else None
        if self.sink is not None:
            self.sink(log, record)
        else:
            self.logs.setdefault(log, []).append(record)
