"""A data class declared the way a new built-in class or a site's own class is declared: one
``DataClass`` and the two functions it names.

Loyalty-card numbers of an invented retailer: ``LC-`` then 8 digits and a check digit (weights
3,7,1 repeated, sum mod 10).  In free text only with the ``LC-`` prefix; in a field whose name says
``loyalty`` the bare 9 digits count too.  A record carrying one is a customer record.
"""
from __future__ import annotations

import re

from inspector.content.classes import DataClass

_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])LC-([0-9]{8})([0-9])(?![0-9])")
_IN_FIELD = re.compile(r"(?:LC-?)?([0-9]{8})([0-9])")


def check_digit(body8: str) -> int:
    return sum(int(c) * w for c, w in zip(body8, (3, 7, 1) * 3)) % 10


def number(body8: str) -> str:
    """A valid number for an 8-digit body (test data)."""
    return f"LC-{body8}{check_digit(body8)}"


def find(text: str):
    for m in _IN_TEXT.finditer(text):
        if check_digit(m[1]) == int(m[2]):
            yield "LC" + m[1] + m[2]


def validate(value: str):
    m = _IN_FIELD.fullmatch(value.strip().upper())
    if m and check_digit(m[1]) == int(m[2]):
        return "LC" + m[1] + m[2]
    return None


DECLARATION = DataClass(
    "loyalty_card", "customer", "loyalty-card number of the test retailer (LC- + 8 digits + check digit)",
    record="customer",
    prefilter=(("loyalty_card", r"LC-[0-9]{9}", False),),
    mask=lambda v: v[:3] + "*****" + v[-2:],
    find=find, field=r"loyalty", validate=validate)
