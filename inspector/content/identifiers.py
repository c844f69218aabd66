"""Data identifiers with validators: which shipment and customer identifiers a payload carries.

``scan(data, context=None) -> {class: {normalised value}}`` finds DISTINCT normalised values per data class
(``inspector.content.DATA_CLASSES``) in free text; only classes with at least one value are keys.
``scan_fields(record)`` does the same for one structured record ``{field name: value}``: the field names
give the context (names, postal addresses, GTIN, HS codes, EORI, national phone numbers).
``mask(cls, value)`` makes a value safe to show as evidence. Everything here is a pure function on
``bytes``/``str``: no I/O, precompiled patterns, validators run only on candidates.

What is reported, and when
--------------------------
==================  ====================================================================================
``tracking_s10``    UPU S10: 2 letters (a UPU service indicator) + 8 digits + check digit (weights
                    8,6,4,2,3,5,9,7, mod 11) + ISO 3166 country; free text
``tracking_ups``    ``1Z`` + 6 shipper + 2 service + 7 package + check (UPS mod 10, letters
                    ``(ord - 3) % 10``, odd positions doubled); free text
``sscc``            18 digits, GS1 mod 10: after AI ``(00)``, in a GS1 element string, or with context
                    (field name or keyword sscc/NVE/LPN/license plate/pallet id within 40 chars before)
``gtin``            GTIN-8/12/13/14, GS1 mod 10: ONLY after AI ``(01)``, in a GS1 element string, or with
                    context (gtin/ean/upc/barcode/gs1); a GTIN-14 with a leading 0 is reported as GTIN-13
``tracking_other``  only with context (field name or keyword tracking/awb/waybill/carrier name...):
                    FedEx Express 12 (weights 3,1,7 mod 11 mod 10), FedEx 15 / 96-22 / 34, USPS 20/22/26
                    and 420+ZIP 30/34 (IMpb mod 10), DHL Express 10/11 (mod 7), DPD 27+1 (ISO 7064
                    MOD 37,36; reported as the 14-digit parcel number). No checksum -> not reported.
``hs_code``         6-10 digits (``8471.30.00`` style too), chapter 01-97, only with context: field name
                    or keyword (HS code, HTS, tariff, TARIC, commodity code...) within 30 chars before
``email``           RFC-ish; TLD letters (2-letter TLDs must be ISO countries), no file-name look-alikes
                    (``logo@2x.png``); HTML ``&#64;`` and ``%40`` are undone; lower-cased
``phone``           ``+`` numbers validated with ``phonenumbers`` -> E.164; national numbers only with
                    context (field name or keyword tel/phone/mobile/fax...), region from ``context``;
                    in a field labelled as a phone (``role``/``field``: CSV header, JSON key, XML
                    element, EDIFACT ``COM..:TE``) a *possible* number (``is_possible_number``) counts
``iban``            ISO 13616: country length table + mod 97; spaces allowed; free text
``payment_card``    Luhn + IIN prefix/length (Visa, Mastercard 51-55/2221-2720, Amex, Discover, JCB,
                    Diners, UnionPay, Maestro). Visa-16, Mastercard, Amex, Discover-16 and JCB-16 in free
                    text; the other brands/lengths need context (card/pan/visa... keyword or field).
                    Grouped numbers must use the usual 4-4-4-4 / 4-6-5 / 4-6-4 grouping.
``eori``            EU/GB/XI country code + 5-15 alphanumerics with a digit, only with context
``person_name``,    only from structured fields (``scan_fields``); see ``field_role``. A name with a
                    legal form (GmbH, Ltd, B.V., Sp. z o.o....; ``is_organisation``) or in a group
                    identified by a GLN / D-U-N-S key is an organisation, never a person name
``postal_address``
==================  ====================================================================================

``context`` (all keys optional): ``field`` (a field name, e.g. ``"tracking_number"``; its role puts the
whole text in that class's validators), ``role`` (a role directly, see ``ROLES``), ``region`` (ISO
country for national phone numbers), ``regions`` (fallback regions to try, default
``DEFAULT_REGIONS``).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from types import SimpleNamespace

from . import classes as _classes

__all__ = ["scan", "scan_fields", "mask", "to_text", "field_role", "validators", "ROLES", "DEFAULT_REGIONS",
           "s10_ok", "ups_ok", "gs1_ok", "iban_ok", "luhn_ok", "card_brand", "card_ok", "fedex12_ok",
           "fedex34_ok", "usps_ok", "dhl_ok", "mod37_36", "dpd_ok", "tracking_other_ok", "email_ok",
           "phone_e164", "phone_possible_e164", "is_organisation", "hs_ok", "eori_ok", "sscc_ok", "gtin_ok", "gtin_norm"]

# ---------------------------------------------------------------------------------------------------------
# reference tables
# ---------------------------------------------------------------------------------------------------------

ISO_COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
""".split())

# two-letter TLDs beyond ISO 3166 alpha-2
_EXTRA_CC_TLDS = frozenset({"UK", "EU", "AC", "SU"})

# IBAN lengths by country (SWIFT IBAN registry)
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

# EORI issuing countries: EU member states (Greece uses GR), GB, and XI (Northern Ireland)
EORI_COUNTRIES = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR EL HR HU IE IT LT LU LV MT NL PL PT RO SE SI "
                           "SK GB XI".split())

# UPU S10 service indicators (first letter, or exact pairs)
_S10_FIRST = frozenset("ELMRUVCHBDNPZ")
_S10_PAIRS = frozenset({"AV", "AW", "AX", "AY", "AZ", "GA", "GD"} | {"Q" + c for c in "ABCDEFGHIJKLM"})

# e-mail "TLDs" that are file extensions (image@2x.png, bundle@1.2.js ...); ccTLDs such as .sh .py .md
# are not listed here
_FILE_TLDS = frozenset("png jpg jpeg gif svg webp bmp ico tif tiff avif heic css js mjs cjs json xml html htm "
                       "xhtml php asp aspx jsp txt pdf woff woff2 ttf eot otf map scss less vue jsx tsx "
                       "gz tgz bz2 xz rar 7z exe dll so dylib jar war class wasm yml yaml ini cfg conf log csv "
                       "tsv xls xlsx doc docx ppt pptx odt ods mp3 mp4 m4a wav ogg webm avi mkv flv".split())

# common generic TLDs; another 3+ letter TLD is accepted only in text (no control or replacement
# character next to the address), which keeps random bytes from producing addresses like ic@m.mfx
_COMMON_TLDS = frozenset("""
com net org edu gov mil int info biz name pro aero coop museum mobi asia tel travel jobs cat post app dev
online site store shop tech xyz top club live email cloud digital agency company solutions services group
global world life today blog news media network systems space website fun icu vip work pub rocks guru expert
studio design art family team center support consulting ltd gmbh llc inc email mail bank insurance law
legal health care clinic hospital school academy university education college eco energy solar green
london berlin paris amsterdam wien nyc tokyo moscow istanbul swiss bayern hamburg koeln nrw scot wales
cymru africa lat berlin photo photography pictures gallery events social chat zone link click help
host hosting server domains computer software systems technology engineering industries international
express logistics delivery shipping parcel cargo freight auto cars car trade market markets marketing
business enterprises holdings partners ventures capital finance financial fund investments money
""".split())

_COMMON_TLDS |= frozenset("uk de fr nl it es be at ch se no dk fi pl cz pt ie ru ua cn jp kr in au nz ca us br "
                          "mx ar za io co me tv ai eu hu ro gr tr il sg hk tw my th vn id ph sk si hr bg lt lv ee "
                          "lu is".split())

DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "NL")

#: candidates validated per pattern and scan() call at most (hostile input like "a@a@a@..." stays linear
#: and bounded); far above what a real body holds
MAX_CANDIDATES = 2_000_000

# ---------------------------------------------------------------------------------------------------------
# validators
# ---------------------------------------------------------------------------------------------------------

_S10_W = (8, 6, 4, 2, 3, 5, 9, 7)


def s10_check(serial8: str) -> int:
    """UPU S10 check digit of the 8-digit serial number."""
    r = sum(int(c) * w for c, w in zip(serial8, _S10_W)) % 11
    c = 11 - r
    return 0 if c == 10 else 5 if c == 11 else c


def s10_ok(value: str, strict: bool = True) -> bool:
    """``RA123456785GB``: service indicator, 8 digits, check digit, ISO country (spaces ignored)."""
    v = value.replace(" ", "").upper()
    if len(v) != 13 or not (v[:2].isalpha() and v[2:11].isdigit() and v[11:].isalpha() and v.isascii()):
        return False
    if strict:
        if not (v[0] in _S10_FIRST or v[:2] in _S10_PAIRS) or v[11:] not in ISO_COUNTRIES:
            return False
    return s10_check(v[2:10]) == int(v[10])


def _ups_val(c: str) -> int:
    return int(c) if c.isdigit() else (ord(c) - 3) % 10


def ups_ok(value: str) -> bool:
    """``1Z`` + 15 alphanumerics + check digit (UPS mod 10)."""
    v = value.replace(" ", "").upper()
    if len(v) != 18 or not v.startswith("1Z") or not v.isalnum() or not v.isascii() or not v[-1].isdigit():
        return False
    body = v[2:17]
    if not body[8:].isdigit():  # package identifier: digits in practice
        return False
    total = 0
    for i, c in enumerate(body):
        x = _ups_val(c)
        total += x * 2 if i % 2 else x
    return (10 - total % 10) % 10 == int(v[17])


def gs1_check(body: str) -> int:
    """GS1 mod 10 check digit for the digits before it (weights 3,1,... from the right)."""
    b = body.encode("ascii")
    w3 = b[::-2]      # rightmost, then every second to the left: weight 3
    w1 = b[-2::-2]
    total = 3 * (sum(w3) - 48 * len(w3)) + sum(w1) - 48 * len(w1)
    return -total % 10


def gs1_ok(digits: str) -> bool:
    """GS1 mod 10 over a digit string whose last digit is the check digit (GTIN, SSCC, GLN...)."""
    return (len(digits) >= 2 and digits.isascii() and digits.isdigit()
            and gs1_check(digits[:-1]) == ord(digits[-1]) - 48)


def sscc_ok(digits: str) -> bool:
    return len(digits) == 18 and gs1_ok(digits)


def gtin_ok(digits: str) -> bool:
    return len(digits) in (8, 12, 13, 14) and gs1_ok(digits) and digits.strip("0") != ""


def gtin_norm(digits: str) -> str:
    """GTIN-14 with a leading indicator 0 -> GTIN-13 (``(01)04006381333931`` == ``4006381333931``)."""
    return digits[1:] if len(digits) == 14 and digits[0] == "0" else digits


_LUHN_DOUBLE = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_ok(digits: str) -> bool:
    if len(digits) < 2 or not digits.isascii() or not digits.isdigit():
        return False
    b = digits.encode("ascii")
    plain = b[::-2]
    dbl = b[-2::-2].translate(_LUHN_DOUBLE)
    return (sum(plain) + sum(dbl) - 48 * len(b)) % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card brand from IIN prefix and length (no Luhn), or None."""
    n = len(digits)
    if n < 12 or n > 19 or not digits.isdigit():
        return None
    p2 = int(digits[:2])
    p3 = int(digits[:3])
    p4 = int(digits[:4])
    p6 = int(digits[:6])
    if digits[0] == "4":
        return "visa" if n in (13, 16, 19) else None
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return "mastercard" if n == 16 else None
    if p2 in (34, 37):
        return "amex" if n == 15 else None
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:
        return "discover" if 16 <= n <= 19 else None
    if 3528 <= p4 <= 3589:
        return "jcb" if 16 <= n <= 19 else None
    if 300 <= p3 <= 305 or p4 == 3095 or p2 in (36, 38, 39):
        return "diners" if 14 <= n <= 19 else None
    if p2 == 62:
        return "unionpay" if 16 <= n <= 19 else None
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763):
        return "maestro" if 12 <= n <= 19 else None
    return None


_STRONG_CARD = {("visa", 16), ("mastercard", 16), ("amex", 15), ("discover", 16), ("jcb", 16)}


def card_ok(digits: str) -> bool:
    return card_brand(digits) is not None and luhn_ok(digits)


def iban_ok(value: str) -> bool:
    v = value.replace(" ", "").upper()
    cc = v[:2]
    if IBAN_LENGTHS.get(cc) != len(v) or not v.isalnum() or not v.isascii() or not v[2:4].isdigit():
        return False
    s = v[4:] + v[:4]
    num = "".join(c if c.isdigit() else str(ord(c) - 55) for c in s)
    return int(num) % 97 == 1


def fedex12_ok(digits: str) -> bool:
    """FedEx Express 12 digits: weights 3,1,7 over the first 11, sum mod 11 mod 10 = check digit."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    b = digits.encode("ascii")
    total = (3 * (sum(b[0:11:3]) - 48 * 4) + (sum(b[1:11:3]) - 48 * 4) + 7 * (sum(b[2:11:3]) - 48 * 3))
    return total % 11 % 10 == b[11] - 48


def fedex34_ok(digits: str) -> bool:
    """FedEx Express 34 (``100..``) and Ground GSN (``96..``, 34 digits): weights 1,7,3 over the last 13+1."""
    if len(digits) != 34 or not digits.isdigit():
        return False
    serial = digits[20:33]
    w = (1, 7, 3)
    total = sum((ord(c) - 48) * w[i % 3] for i, c in enumerate(serial))
    return total % 11 % 10 == ord(digits[33]) - 48


def usps_ok(digits: str) -> bool:
    """USPS IMpb / 20-digit numbers (GS1-style mod 10 over the serial)."""
    n = len(digits)
    if not digits.isdigit():
        return False
    if n == 20:
        return gs1_ok(digits) or gs1_ok("91" + digits)
    if n == 22:
        return digits[0] == "9" and digits[1] in "12345" and gs1_ok(digits)
    if n == 26:
        return digits[0] == "9" and digits[1] in "12345" and gs1_ok(digits)
    if n in (30, 34) and digits.startswith("420"):
        return usps_ok(digits[-22:])
    return False


def dhl_ok(digits: str) -> bool:
    """DHL Express waybill: 10 (or 11) digits, check digit = the rest mod 7."""
    if len(digits) not in (10, 11) or not digits.isdigit() or digits.strip("0") == "":
        return False
    return int(digits[:-1]) % 7 == ord(digits[-1]) - 48


_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def mod37_36(body: str) -> str:
    """ISO/IEC 7064 MOD 37,36 (hybrid) check character over alphanumerics."""
    m = 36
    p = m
    for c in body.upper():
        p = (p + _B36.index(c)) % m
        if p == 0:
            p = m
        p = (p * 2) % (m + 1)
    return _B36[(m + 1 - p) % m]


def dpd_ok(value: str) -> bool:
    """DPD parcel label barcode: 7 postcode + 14 parcel + 3 service + 3 country digits + MOD 37,36 char."""
    v = value.replace(" ", "").upper()
    return len(v) == 28 and v[:27].isdigit() and v[27] in _B36 and mod37_36(v[:27]) == v[27]


def tracking_other_ok(digits: str) -> str | None:
    """Carrier of a numeric tracking number with a valid check digit, or None (context is the caller's)."""
    n = len(digits)
    if not digits.isdigit() or digits.strip("0") == "":
        return None
    if n == 12 and fedex12_ok(digits):
        return "fedex"
    if n in (10, 11) and dhl_ok(digits):
        return "dhl"
    if n == 15 and gs1_ok(digits):
        return "fedex"
    if n == 22 and digits.startswith("96") and gs1_ok(digits[7:]):
        return "fedex"
    if n == 34 and (digits.startswith("100") or digits.startswith("96")) and fedex34_ok(digits):
        return "fedex"
    if n in (20, 22, 26, 30, 34) and usps_ok(digits):
        return "usps"
    if n == 20 and gs1_ok("92" + digits):
        return "fedex"  # SmartPost without its 92 application identifier
    return None


_CHAPTERS = frozenset(f"{i:02d}" for i in range(1, 98)) - {"77"}


def hs_ok(digits: str) -> bool:
    return 6 <= len(digits) <= 10 and digits.isdigit() and digits[:2] in _CHAPTERS


def eori_ok(value: str) -> bool:
    v = value.replace(" ", "").upper()
    return (7 <= len(v) <= 17 and v.isalnum() and v.isascii() and v[:2] in EORI_COUNTRIES
            and any(c.isdigit() for c in v[2:]))


_EMAIL_FULL = re.compile(r"[A-Za-z0-9._%+\-']{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                         r"[A-Za-z]{2,24}")


def _tld_ok(domain: str) -> bool:
    labels = domain.split(".")
    tld = labels[-1]
    if not tld.isalpha() or not tld.isascii():
        return False
    if len(tld) == 2:
        if tld.upper() not in ISO_COUNTRIES and tld.upper() not in _EXTRA_CC_TLDS:
            return False
    elif tld.lower() in _FILE_TLDS:
        return False
    first = labels[0].lower()
    if len(labels) == 2 and first[:-1].replace(".", "").isdigit() and first.endswith("x"):
        return False  # logo@2x.whatever
    return True


def _email_parts_ok(local: str, domain: str) -> bool:
    """Syntax beyond the pattern: dots, and no one-character local part at a one- or two-character
    domain label (``6@o.smn`` turns up in random bytes; real addresses that short are very rare)."""
    if not local or local[0] == "." or local[-1] == "." or ".." in local or ".." in domain:
        return False
    if len(local) < 2 and len(domain.split(".", 1)[0]) < 3:
        return False
    return _tld_ok(domain)


def email_ok(value: str) -> bool:
    v = value.strip()
    if not _EMAIL_FULL.fullmatch(v):
        return False
    local, _, domain = v.rpartition("@")
    return _email_parts_ok(local, domain)


_pn = None


def _phonenumbers():
    global _pn
    if _pn is None:
        import phonenumbers
        _pn = phonenumbers
    return _pn


def _parse_phone(value: str, region: str | None, min_distinct: int = 1):
    """``phonenumbers`` parse of ``value`` (``00`` read as ``+``; a national number needs ``region``),
    or None for a value of 6-17 digits that does not parse or has fewer than ``min_distinct`` distinct
    digits."""
    pn = _phonenumbers()
    v = value.strip()
    digits = _NON_DIGITS.sub("", v)
    if not 6 <= len(digits) <= 17 or len(set(digits)) < min_distinct:
        return None
    if v.startswith("00") and not v.startswith("000"):
        v = "+" + v[2:]
    if not v.startswith("+") and not region:
        return None
    try:
        return pn.parse(v, None if v.startswith("+") else region.upper())
    except Exception:
        return None


@lru_cache(maxsize=65536)
def phone_e164(value: str, region: str | None = None) -> str | None:
    """E.164 form of a valid phone number (``+`` numbers need no region), else None."""
    pn = _phonenumbers()
    num = _parse_phone(value, region)
    if num is None or not pn.is_valid_number(num):
        return None
    return pn.format_number(num, pn.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)
def phone_possible_e164(value: str, region: str | None = None) -> str | None:
    """E.164 form of a *possible* phone number (right length for its country, ``is_possible_number``),
    else None. Only for a value whose field says it is a phone: the number need not be in an allocated
    range of the libphonenumber metadata (new ranges, reserved ranges, synthetic data), but a run of one
    or two repeated digits is a placeholder, not a number."""
    pn = _phonenumbers()
    num = _parse_phone(value, region, min_distinct=3)
    if num is None or not pn.is_possible_number(num):
        return None
    return pn.format_number(num, pn.PhoneNumberFormat.E164)


validators = SimpleNamespace(
    s10_ok=s10_ok, s10_check=s10_check, ups_ok=ups_ok, gs1_ok=gs1_ok, gs1_check=gs1_check, sscc_ok=sscc_ok,
    gtin_ok=gtin_ok, gtin_norm=gtin_norm, luhn_ok=luhn_ok, card_brand=card_brand, card_ok=card_ok, iban_ok=iban_ok,
    fedex12_ok=fedex12_ok, fedex34_ok=fedex34_ok, usps_ok=usps_ok, dhl_ok=dhl_ok, mod37_36=mod37_36,
    dpd_ok=dpd_ok, tracking_other_ok=tracking_other_ok, hs_ok=hs_ok, eori_ok=eori_ok, email_ok=email_ok,
    phone_e164=phone_e164, phone_possible_e164=phone_possible_e164,
)

# ---------------------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------------------


def to_text(data) -> str:
    """``bytes`` -> ``str``: UTF-16 when a BOM says so or NULs dominate, else UTF-8 (errors replaced)."""
    if isinstance(data, str):
        return data
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not data:
        return ""
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:].decode("utf-8", "replace")
    if data[:2] == b"\xff\xfe":
        return data[2:].decode("utf-16-le", "replace")
    if data[:2] == b"\xfe\xff":
        return data[2:].decode("utf-16-be", "replace")
    head = data[:4096]
    nul = head.count(0)
    if nul * 4 > len(head) and len(head) >= 4:
        odd = head[1::2].count(0)
        even = head[0::2].count(0)
        if odd > 2 * even:
            return data.decode("utf-16-le", "replace")
        if even > 2 * odd:
            return data.decode("utf-16-be", "replace")
    return data.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------
# field roles
# ---------------------------------------------------------------------------------------------------------

ROLES = ("phone", "email", "card", "iban", "eori", "hs", "gtin", "sscc", "tracking", "first_name",
         "last_name", "middle_name", "full_name", "name", "street", "address", "line2", "postcode", "city",
         "state", "country", "company")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NONALNUM = re.compile(r"[^a-z0-9.]+")

_PERSONISH = re.compile(r"customer|consignee|recipient|receiver|shipper|sender|contact|person|buyer|client|"
                        r"addressee|ship_?to|bill_?to|sold_?to|deliver|billing|shipping|user|employee|driver|"
                        r"owner|holder|passenger|patient|member|party|pickup|return|invoicee|payer|kunde|"
                        r"empfaenger|empfanger|absender|destinatario|destinataire|expediteur|notify")

_ROLE_RULES = [
    ("eori", re.compile(r"eori")),
    ("iban", re.compile(r"iban")),
    ("card", re.compile(r"card_?(number|no|num|nr|pan)$|^cc(_?(num|number|no))?$|credit_?card|^pan$|"
                        r"kreditkarte|card$")),
    ("email", re.compile(r"e_?mail|^mail$|_mail$|mail_?address")),
    ("phone", re.compile(r"phone|(^|_)tel(_|$)|telephone|telefon|mobile|(^|_)mob(_|$)|(^|_)cell(_|$)|"
                         r"cellphone|(^|_)fax(_|$)|msisdn|(^|_)handy(_|$)|contact_?number")),
    ("sscc", re.compile(r"sscc|(^|_)nve(_|$)|(^|_)lpn(_|$)|license_?plate|pallet_?(id|label|no|number)")),
    ("gtin", re.compile(r"gtin|(^|_)ean(13|8|_|$)|(^|_)upc(_|$|a)|barcode|bar_code|(^|_)gs1")),
    ("hs", re.compile(r"(^|_)hs(_|$)|hs_?code|hscode|(^|_)hts(_|$|us|code)|tariff|taric|commodity_?code|"
                      r"customs_?code|harmoni[sz]ed|zolltarif|warentarif")),
    ("tracking", re.compile(r"track|(^|_)awb(_|$)|airwaybill|air_?way_?bill|waybill|airbill|"
                            r"consignment_?(no|number|id|nr)|parcel_?(no|number|id|nr)|sendungs?_?nummer|"
                            r"paket_?nummer|shipment_?(no|number|nr)$|(^|_)pro_?(no|number)$")),
    ("first_name", re.compile(r"first_?name|given_?name|fore_?name|vorname|prenom|nombre$|(^|_)fname$")),
    ("middle_name", re.compile(r"middle_?name")),
    ("last_name", re.compile(r"last_?name|sur_?name|family_?name|nach_?name|(^|_)nom$|apellido|(^|_)lname$")),
    ("company", re.compile(r"company|organi[sz]ation|(^|_)org(_|$)|firma|business_?name|(^|_)firm")),
    ("full_name", re.compile(r"full_?name|person_?name|contact_?name|customer_?name|consignee(_?name)?$|"
                             r"recipient(_?name)?$|receiver(_?name)?$|shipper_?name|sender_?name|addressee|"
                             r"(^|_)attn$|attention|buyer_?name|client_?name|card_?holder(_?name)?|"
                             r"holder_?name|ship_?to_?name|bill_?to_?name|deliver(y)?_?to_?name|"
                             r"passenger_?name|driver_?name|account_?holder|empfaenger_?name|"
                             r"(^|_)kunde$|kunden_?name|(^|_)contact$")),
    ("street", re.compile(r"street|strasse|stra(ss|ß)e|address_?line_?1$|addr(ess)?_?1$|(^|_)line_?1$|"
                          r"house_?(no|number|nr)|hausnummer|(^|_)building$")),
    ("line2", re.compile(r"address_?line_?[23]$|addr(ess)?_?[23]$|(^|_)line_?[23]$")),
    ("postcode", re.compile(r"post_?code|postal_?code|(^|_)zip(_?code)?$|zipcode|(^|_)plz$|postleitzahl|"
                            r"code_?postal|(^|_)cap$|(^|_)postal$")),
    ("city", re.compile(r"(^|_)city$|(^|_)town$|locality|(^|_)ort$|(^|_)stadt$|(^|_)ville$|(^|_)ciudad$|"
                        r"city_?name")),
    ("state", re.compile(r"(^|_)(state|province|county)(_?code)?$")),
    ("country", re.compile(r"(^|_)country(_?code|_?iso|_?name)?$|(^|_)land$|(^|_)pays$|(^|_)ctry$")),
    ("address", re.compile(r"(^|_)addr(ess)?(_|$)|anschrift|adresse|direccion")),
    ("name", re.compile(r"(^|_)name$|^nm$")),
]

# keys with "address" that are not postal addresses
_NOT_POSTAL = re.compile(r"(^|_)(ip|mac|email|e_mail|mail|web|url|uri|server|host|wallet|bitcoin|btc|eth|remote|"
                         r"local|bind|listen|memory|mem|hw|net|network|ipv4|ipv6|v4|v6|gateway|proxy|peer|src|dst|"
                         r"source|destination|socket|ethernet|broadcast|multicast|router|dns|smtp|contract|"
                         r"public|private|base|return_?address|sender_?address)(_|$)|ip_?addr")
# words in a "name" key that make it a thing, not a person
_NOT_PERSON = re.compile(r"(^|_)(file|host|user|product|item|sku|article|artikel|brand|company|org|"
                         r"organisation|organization|domain|server|app|application|service|device|display|"
                         r"field|table|column|event|class|type|method|function|package|module|project|bucket|"
                         r"key|queue|topic|tag|label|image|store|shop|site|city|country|street|region|state|"
                         r"carrier|warehouse|depot|location|zone|route|vessel|ship|port|model|category|group|"
                         r"team|role|plan|tier|status|step|task|job|param|property|attribute|metric|index|"
                         r"db|database|schema|variable|var|cookie|header|font|layer|node|cluster|pod|"
                         r"container|namespace|resource|account)(_|$)|username|hostname|filename|nickname|"
                         r"screen_?name|login")


_NON_DIGITS = re.compile(r"[^0-9]+")
_NON_PHONE_CHARS = re.compile(r"[^0-9 ()./\-]")
_PHONE_META = re.compile(r"phone_?(type|verified|country|ext|extension)$")
_COMPACT = re.compile(r"[\s\-.]")
_PHONE_LIST = re.compile(r"[;,/|]|\bor\b")


def _norm_key(name: str) -> str:
    k = _CAMEL.sub("_", str(name).strip())
    k = _NONALNUM.sub("_", k.lower())
    k = re.sub(r"_*\._*", ".", k)
    return k.strip("_.")


@lru_cache(maxsize=8192)
def field_role(name: str) -> tuple[str | None, str]:
    """``(role, group)`` of a field name (a path ``a.b.c`` for nested keys): role is one of ``ROLES`` or None;
    group is the key prefix that ties components of one name/address together (``ship_to``)."""
    key = _norm_key(name)
    if not key:
        return None, ""
    parts = key.split(".")
    last = parts[-1]
    parent = ".".join(parts[:-1])
    role = None
    for r, rx in _ROLE_RULES:
        if rx.search(last):
            role = r
            break
    if role is None and last in ("value", "text", "number", "no", "nr", "id", "code", "line") and parent:
        # <Phone><Number>..</Number></Phone>, {"tracking": {"number": ...}}
        prole, _ = field_role(parent)
        if prole in ("phone", "email", "card", "iban", "eori", "hs", "gtin", "sscc", "tracking"):
            return prole, parent
    if role == "address" and _NOT_POSTAL.search(last):
        role = None
    if role == "email" and last in ("email_verified", "email_opt_in", "email_optin"):
        role = None
    if role == "phone" and _PHONE_META.search(last):
        role = "country" if last.endswith("country") else None
    if role == "name":
        if _NOT_PERSON.search(last) or _NOT_PERSON.search(parts[-2] if len(parts) > 1 else ""):
            role = None
        elif parent and _PERSONISH.search(parent):
            role = "full_name"
    elif role in ("full_name", "first_name", "last_name", "middle_name") and _NOT_PERSON.search(last):
        role = None
    if role is None and last in ("consignee", "recipient", "receiver", "addressee", "customer", "shipper",
                                 "sender", "buyer", "contact") and not parent:
        role = "full_name"
    group = parent
    if role in ("first_name", "last_name", "middle_name", "full_name", "name", "street", "address", "line2",
                "postcode", "city", "state", "country"):
        rx = dict(_ROLE_RULES)[role]
        m = rx.search(last)
        pre = last[:m.start()] if m else ""
        pre = re.sub(r"(^|_)(address|addr|postal|adresse|anschrift|name|person)(_|$)", "_", pre).strip("_")
        if role in ("full_name",) and not pre and parent:
            pre = ""
        group = (parent + "." + pre) if (parent and pre) else (parent or pre)
        group = re.sub(r"(^|\.)(address|addr|adresse|anschrift|postal_address|name)$", "", group).strip(".")
    return role, group


# ---------------------------------------------------------------------------------------------------------
# patterns
# ---------------------------------------------------------------------------------------------------------

_NUM = re.compile(r"[0-9][0-9 \-]{6,}[0-9]")
_UPS = re.compile(r"1[Zz](?: ?[0-9A-Za-z]){16}")
_S10 = re.compile(r"[A-Z]{2} ?[0-9]{3} ?[0-9]{3} ?[0-9]{3} ?[A-Z]{2}")
_AZ_DIGIT = re.compile(r"[A-Z][A-Z] ?[0-9]")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}")
_PLUS_PHONE = re.compile(r"\+ ?[1-9](?:[ \-.]?\(?\d\)?){6,16}")
_NAT_PHONE = re.compile(r"(?:\+|00)?\(?\d[\d \-./()]{5,20}\d")
_GS1_BRACKET = re.compile(r"\((0[01])\) ?(\d[\d ]{12,22}\d)")
_GS1_SYMB = re.compile(r"\][CdQe][0-9](\d{16,})")
_DIGITS16 = re.compile(r"[0-9]{16,}")
_EORI = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2} ?[A-Za-z0-9]{5,15})(?![A-Za-z0-9])")
_HS_VAL = re.compile(r"(?<![\d.])(\d{4}(?:[ .]?\d{2}){1,3}(?:\d{1,2})?)(?![\d])")
_AT = re.compile(r"@(?=[A-Za-z0-9])")
_EMAIL_CH = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-'")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-']{1,64}$")
_EMAIL_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
                           r"(?![A-Za-z0-9\-])")

# Context keywords. Numbers are found first and the 48 characters before a number that passed its
# checksum are searched for these (cost per candidate, not per byte of text):
_KW_TRACK = re.compile(r"track|awb|waybill|airbill|fedex|usps|dhl|dpd|parcel|consignment|sendung|paket|colis|"
                       r"shipment[ _]?(?:id|no|num)|(?<![a-z])pro[ _]?(?:no|num)")
_KW_CARD = re.compile(r"card|credit|visa|master|amex|american express|discover|jcb|diners|unionpay|maestro|"
                      r"(?<![a-z])pan(?![a-z])|(?<![a-z])cc(?![a-mo-z])|kreditkarte|carte|tarjeta|payment|"
                      r"cvv|cvc|expir")
_KW_GTIN = re.compile(r"gtin|(?<![a-z])ean|(?<![a-z])upc|bar[ _]?code|gs1|\(01\)")
_KW_SSCC = re.compile(r"sscc|(?<![a-z])nve(?![a-z])|(?<![a-z])lpn(?![a-z])|licen[cs]e plate|serial shipping|"
                      r"pallet[ _]?(?:id|label|no|num)|gs1|\(00\)")
# ... while phone numbers, HS codes and EORI numbers are looked for after their keywords, found with
# str.find (one fast C pass per literal); "<" asks for a non-letter just before the keyword, ">" for a
# non-letter just after it, "|a|b" lists continuations accepted instead of that non-letter.
_KEYWORDS = {
    "phone": ("phone", "<tel", "<mobil", "<cell", "<fax>", "<handy>", "msisdn", "<ph>"),
    "hs": ("<hs>|code|no|nr", "<hts", "tari>|f|c", "commodity", "customs>|code|_code| code", "harmoni"),
    "eori": ("eori",),
}


def _compile_keywords():
    out = {}
    for group, words in _KEYWORDS.items():
        entries = []
        for w in words:
            w, *follow = w.split("|")
            entries.append((w.strip("<>"), w.startswith("<"), w.endswith(">"), tuple(follow)))
        out[group] = tuple(entries)
    return out


_KW = _compile_keywords()
# presence test for short texts (no boundary rules: a hit sends the text to the exact find-based pass)
_KW_RX = {g: re.compile("|".join(re.escape(w) for w, _lb, _rb, _f in entries)) for g, entries in _KW.items()}
_WINDOW_RX = {"track": _KW_TRACK, "card": _KW_CARD, "gtin": _KW_GTIN, "sscc": _KW_SSCC}
_WORDCH = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _add(out: dict, cls: str, value: str) -> None:
    s = out.get(cls)
    if s is None:
        out[cls] = {value}
    else:
        s.add(value)


def _card_grouping_ok(raw: str, n: int) -> bool:
    groups = [len(g) for g in _SEP_SPLIT.split(raw) if g]
    if len(groups) == 1:
        return True
    if all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4:
        return True
    return groups in ([4, 6, 5], [4, 6, 4])


# ---------------------------------------------------------------------------------------------------------
# scanning
# ---------------------------------------------------------------------------------------------------------

class _Ctx:
    """Lower-cased text and keyword positions, computed once per scan and only when a candidate asks."""
    __slots__ = ("text", "_low", "_hits")

    def __init__(self, text: str):
        self.text = text
        self._low = None
        self._hits = {}

    @property
    def low(self) -> str:
        if self._low is None:
            self._low = self.text.lower()
        return self._low

    def hits(self, group: str) -> list:
        """Sorted (end, start) positions of the group's keywords."""
        h = self._hits.get(group)
        if h is not None:
            return h
        low = self.low
        n = len(low)
        found = []
        if n < 2048:
            # short text: one regex pass beats a str.find per keyword
            if _KW_RX[group].search(low) is None:
                self._hits[group] = found
                return found
        find = low.find
        for word, lb, rb, follow in _KW[group]:
            L = len(word)
            pos = find(word)
            while pos != -1:
                end = pos + L
                if not lb or pos == 0 or not low[pos - 1].isalpha():
                    if not rb or end >= n or not low[end].isalpha():
                        found.append((end, pos))
                    else:
                        for f in follow:
                            if low.startswith(f, end):
                                found.append((end + len(f), pos))
                                break
                pos = find(word, pos + 1)
        found.sort()
        self._hits[group] = found
        return found

    def near(self, group: str, pos: int, width: int) -> bool:
        """A keyword of ``group`` in the ``width`` characters before ``pos``."""
        low = self.low
        return _WINDOW_RX[group].search(low, max(0, pos - width), pos) is not None


def _scan_emails(text: str, out: dict) -> None:
    if "&#" in text or "&commat;" in text:
        text = text.replace("&#64;", "@").replace("&#x40;", "@").replace("&#X40;", "@").replace("&commat;", "@")
    if "%40" in text:
        text = text.replace("%40", "@")
    if "." not in text:
        return
    find = text.find
    budget = MAX_CANDIDATES
    for at in _AT.finditer(text):
        pos = at.start()
        budget -= 1
        if budget < 0:
            break
        if pos > 0 and text[pos - 1] in _EMAIL_CH and find(".", pos + 2, pos + 256) != -1:
            m = _EMAIL_LOCAL.search(text, max(0, pos - 64), pos)
            if m:
                d = _EMAIL_DOMAIN.match(text, pos + 1)
                if d:
                    local = m.group().lstrip("._%+-'")
                    if local.lower().startswith("mailto:"):
                        local = local[7:]
                    domain = d.group()
                    if _email_parts_ok(local, domain) and (
                            _texty(text, pos - len(local) - 1, d.end()) or _known_tld(domain)):
                        _add(out, "email", (local + "@" + domain).lower())


def _known_tld(domain: str) -> bool:
    return domain.rsplit(".", 1)[-1].lower() in _COMMON_TLDS


def _texty(text: str, before: int, after: int) -> bool:
    """No control or replacement character right before or after an address (binary noise)."""
    for i in (before, after):
        if 0 <= i < len(text):
            c = text[i]
            if c == "\ufffd" or (c < " " and c not in "\t\r\n") or "\x7f" <= c <= "\x9f":
                return False
    return True


def _scan_plus_phones(text: str, out: dict) -> None:
    n = len(text)
    for i, m in enumerate(_PLUS_PHONE.finditer(text)):
        if i >= MAX_CANDIDATES:
            break
        s, e = m.span()
        if s > 0 and text[s - 1] in _WORDCH:
            continue  # base64, a+123...
        if e < n and text[e] in _ALNUM:
            continue
        v = phone_e164(m.group())
        if v:
            _add(out, "phone", v)


def _phone_value(raw: str, regions) -> str | None:
    raw = raw.strip().rstrip(".-/")
    if raw.startswith("+") or (raw.startswith("00") and not raw.startswith("000")):
        return phone_e164(raw)
    for r in regions:
        v = phone_e164(raw, r)
        if v:
            return v
    return None


def _phone_possible(raw: str, regions, intl: bool, intl_first: bool) -> str | None:
    """A possible number in a phone field: ``+``/``00`` numbers as dialled; else the national number in
    the first region where it is possible, and an international number written without ``+`` (``intl``)
    as such, that reading first when no region is known (``intl_first``)."""
    raw = raw.strip().rstrip(".-/")
    if raw.startswith("+") or (raw.startswith("00") and not raw.startswith("000")):
        return phone_possible_e164(raw)
    plus = "+" + _NON_DIGITS.sub("", raw) if intl else None
    if plus and intl_first:
        v = phone_possible_e164(plus)
        if v:
            return v
    for r in regions:
        v = phone_possible_e164(raw, r)
        if v:
            return v
    return phone_possible_e164(plus) if plus and not intl_first else None


def _scan_context_phones(text: str, cx: _Ctx, regions, out: dict) -> None:
    last = -1
    for end, _start in cx.hits("phone"):
        if end <= last:
            continue
        m = _NAT_PHONE.search(text, end, end + 40)
        if m is None:
            continue
        gap = text[end:m.start()]
        if len(gap) > 20 or any(c.isdigit() for c in gap):
            continue
        last = m.end()
        v = _phone_value(m.group(), regions)
        if v:
            _add(out, "phone", v)


def _scan_ups(text: str, out: dict) -> None:
    n = len(text)
    for m in _UPS.finditer(text):
        s, e = m.span()
        if (s > 0 and text[s - 1] in _ALNUM) or (e < n and text[e] in _ALNUM):
            continue
        v = m.group().replace(" ", "").upper()
        if ups_ok(v):
            _add(out, "tracking_ups", v)


def _scan_alnum(text: str, out: dict) -> None:
    """S10 and IBAN: two capital letters, then digits; one pass finds both."""
    n = len(text)
    for c in _AZ_DIGIT.finditer(text):
        s = c.start()
        if s > 0 and text[s - 1] in _ALNUM:
            continue
        m = _S10.match(text, s)
        if m is not None:
            e = m.end()
            if e >= n or text[e] not in _ALNUM:
                v = m.group().replace(" ", "")
                if s10_ok(v):
                    _add(out, "tracking_s10", v)
                    continue
        m = _IBAN.match(text, s)
        if m is None:
            continue
        raw = m.group()
        L = IBAN_LENGTHS.get(raw[:2])
        if L is None:
            continue
        count = 0
        end = None
        for i, ch in enumerate(raw):
            if ch != " ":
                count += 1
                if count == L:
                    end = i + 1
                    break
        if end is None:
            continue
        after = s + end
        if after < n and text[after] in _ALNUM:
            continue
        v = raw[:end].replace(" ", "")
        if iban_ok(v):
            _add(out, "iban", v)


def _gs1_element(s: str, out: dict) -> None:
    """A GS1 element string without brackets (``0104006381333931...``): AI 00 and 01/02 at the start."""
    i = 0
    while i + 2 <= len(s):
        ai = s[i:i + 2]
        if ai == "00" and len(s) >= i + 20:
            d = s[i + 2:i + 20]
            if sscc_ok(d):
                _add(out, "sscc", d)
            i += 20
        elif ai in ("01", "02") and len(s) >= i + 16:
            d = s[i + 2:i + 16]
            if gtin_ok(d):
                _add(out, "gtin", gtin_norm(d))
            i += 16
        elif ai in ("11", "12", "13", "15", "16", "17") and len(s) >= i + 8:
            i += 8
        else:
            break


def _scan_gs1(text: str, out: dict) -> None:
    if "(0" in text:
        for m in _GS1_BRACKET.finditer(text):
            ai, raw = m.groups()
            d = raw.replace(" ", "")
            if ai == "00" and len(d) >= 18 and sscc_ok(d[:18]) and (len(d) == 18 or not raw[18:19].isdigit()):
                _add(out, "sscc", d[:18])
            elif ai == "01" and len(d) >= 14 and gtin_ok(d[:14]):
                _add(out, "gtin", gtin_norm(d[:14]))
    if "]" in text:
        for m in _GS1_SYMB.finditer(text):
            _gs1_element(m.group(1), out)
    pos = text.find("\x1d")
    if pos != -1:
        # FNC1-separated element strings: the digits that open the string and each field
        m = _DIGITS16.match(text)
        if m:
            _gs1_element(m.group(), out)
        while pos != -1:
            m = _DIGITS16.match(text, pos + 1)
            if m:
                _gs1_element(m.group(), out)
            pos = text.find("\x1d", pos + 1)


def _numeric_candidates(text: str, cx: _Ctx, out: dict, role: str | None) -> None:
    n = len(text)
    for i, m in enumerate(_NUM.finditer(text)):
        if i >= MAX_CANDIDATES:
            break
        s, e = m.span()
        L = e - s
        if L == 9 or L > 45:
            if L > 45:
                _long_run(m.group(), s, cx, out, role)
            continue
        if s > 0:
            p = text[s - 1]
            if p in _WORDCH or p == "+" or (p == "." and s > 1 and text[s - 2] in _DIGITS):
                continue
        raw = m.group()
        if e < n:
            q = text[e]
            if q in _WORDCH or (q == "." and e + 1 < n and text[e + 1] in _DIGITS):
                if q in _ALNUM and L >= 27:
                    _dpd_candidate(raw, text, e, s, cx, out, role)
                continue
        if L in _PLAIN_SKIP and raw.isdigit():
            continue
        if "  " in raw or "--" in raw or " -" in raw or "- " in raw:
            _long_run(raw, s, cx, out, role)
            continue
        digits = raw.replace(" ", "").replace("-", "") if L > 8 and not raw.isdigit() else raw
        nd = len(digits)
        if nd == 27 and e < n:
            _dpd_candidate(raw, text, e, s, cx, out, role)
            continue
        _numeric(digits, raw, s, cx, out, role)
        if nd != L:
            for piece in _SEP_SPLIT.split(raw):
                if len(piece) >= 8 and len(piece) != nd:
                    _numeric(piece, piece, s + raw.find(piece), cx, out, role)


def _long_run(raw: str, s: int, cx: _Ctx, out: dict, role) -> None:
    """A run of numbers with separators (a table row, a list): each separated number on its own."""
    off = 0
    for piece in _SEP_SPLIT.split(raw):
        i = raw.find(piece, off)
        off = i + len(piece)
        if 8 <= len(piece) <= 34:
            _numeric(piece, piece, s + i, cx, out, role)


# lengths of plain digit runs that no class can have: 9, 23-25, 28, 29, 31-33, 35+
_PLAIN_SKIP = frozenset((9, 23, 24, 25, 28, 29, 31, 32, 33) + tuple(range(35, 46)))
_DIGITS = frozenset("0123456789")
_SEP_SPLIT = re.compile(r"[ \-]+")
_GTIN_LENS = frozenset((8, 12, 13, 14))
_TRACK_LENS = frozenset((10, 11, 12, 15, 20, 22, 26, 30, 34))


def _dpd_candidate(raw: str, text: str, e: int, s: int, cx: _Ctx, out: dict, role) -> None:
    """27 digits (7 postcode, 14 parcel, 3 service, 3 country) then the MOD 37,36 character."""
    digits = raw.replace(" ", "").replace("-", "")
    if len(digits) != 27:
        return
    j = e + 1 if text[e] == " " else e
    if j >= len(text) or text[j] not in _B36 or (j + 1 < len(text) and text[j + 1] in _ALNUM):
        return
    if (role == "tracking" or cx.near("track", s, 48)) and mod37_36(digits) == text[j]:
        _add(out, "tracking_other", digits[7:21])


def _numeric(digits: str, raw: str, pos: int, cx: _Ctx, out: dict, role: str | None) -> None:
    n = len(digits)
    if n == 13 and digits[0] == "1" and digits[1] in "456789" and role is None:
        return  # epoch milliseconds: GS1 prefixes 140-199 are unassigned, no card or tracking has 13 digits
    if 12 <= n <= 19 and digits[0] in "23456":
        brand = card_brand(digits)
        if brand and luhn_ok(digits) and _card_grouping_ok(raw, n):
            if (brand, n) in _STRONG_CARD or role == "card" or cx.near("card", pos, 48):
                _add(out, "payment_card", digits)
                return
    if n in _GTIN_LENS and gtin_ok(digits) and (role == "gtin" or cx.near("gtin", pos, 40)):
        _add(out, "gtin", gtin_norm(digits))
        return
    if n == 18 and sscc_ok(digits) and (role == "sscc" or cx.near("sscc", pos, 40)):
        _add(out, "sscc", digits)
        return
    if n >= 16 and digits[:2] in ("00", "01", "02") and (
            role in ("gtin", "sscc") or cx.near("gtin", pos, 40) or cx.near("sscc", pos, 40)):
        size = sum(len(v) for v in out.values())
        _gs1_element(digits, out)
        if sum(len(v) for v in out.values()) != size:
            return
    if n in _TRACK_LENS and tracking_other_ok(digits) and (role == "tracking" or cx.near("track", pos, 48)):
        _add(out, "tracking_other", digits)


def _scan_hs(text: str, cx: _Ctx, out: dict) -> None:
    last = -1
    for end, _start in cx.hits("hs"):
        if end <= last:
            continue
        m = _HS_VAL.search(text, end, end + 30)
        if m:
            last = m.end()
            d = m.group(1).replace(" ", "").replace(".", "")
            if hs_ok(d):
                _add(out, "hs_code", d)


def _scan_eori(text: str, cx: _Ctx, out: dict) -> None:
    for end, _start in cx.hits("eori"):
        for m in _EORI.finditer(text, end, end + 40):
            v = m.group(1).replace(" ", "").upper()
            if v.startswith("EORI"):
                continue
            if eori_ok(v):
                _add(out, "eori", v)
                break


def _scan_role(text: str, role: str, region, regions, out: dict) -> None:
    """The whole text as one value of ``role``'s classes (field context)."""
    v = text.strip()
    if not v or len(v) > 200:
        return
    compact = _COMPACT.sub("", v).upper()
    if role == "phone":
        for part in _PHONE_LIST.split(v) if len(v) > 22 else (v,):
            # a phone field may hold the international number without "+" (4915112345678): tried first
            # when no region is known and the number is too long for a national number without trunk 0
            digits = _NON_DIGITS.sub("", part)
            intl = (10 <= len(digits) <= 15 and digits[0] != "0" and part.lstrip()[:1] != "+"
                    and _NON_PHONE_CHARS.search(part) is None)
            p = phone_e164("+" + digits) if intl and not region and len(digits) >= 11 else None
            if p is None:
                p = _phone_value(part, regions)
            if p is None and intl:
                p = phone_e164("+" + digits)
            if p is None:
                # the field says phone: a possible number (right length) is one, valid or not
                p = _phone_possible(part, regions, intl, intl_first=not region)
            if p:
                _add(out, "phone", p)
    elif role == "hs":
        if compact.isdigit() and hs_ok(compact):
            _add(out, "hs_code", compact)
    elif role == "eori":
        if eori_ok(compact):
            _add(out, "eori", compact)
    elif role == "gtin":
        if compact.isdigit() and gtin_ok(compact):
            _add(out, "gtin", gtin_norm(compact))
        elif compact.isdigit() and len(compact) >= 16 and compact[:2] in ("00", "01", "02"):
            _gs1_element(compact, out)
    elif role == "sscc":
        if compact.isdigit():
            if sscc_ok(compact):
                _add(out, "sscc", compact)
            elif len(compact) == 20 and compact.startswith("00") and sscc_ok(compact[2:]):
                _add(out, "sscc", compact[2:])
    elif role == "tracking":
        if compact.isdigit():
            if tracking_other_ok(compact):
                _add(out, "tracking_other", compact)
            elif len(compact) == 18 and sscc_ok(compact):
                _add(out, "sscc", compact)
        elif dpd_ok(compact):
            _add(out, "tracking_other", compact[7:21])
    elif role == "card":
        if compact.isdigit() and card_ok(compact):
            _add(out, "payment_card", compact)


def scan(data, context: dict | None = None) -> dict[str, set[str]]:
    """Distinct normalised identifiers per data class in ``data`` (bytes or str): the built-in classes'
    scanners, then every registered class's own finder and field validator."""
    text = to_text(data)
    out: dict[str, set[str]] = {}
    if not text:
        return out
    ctx = context or {}
    _scan_builtin(text, ctx, out)
    if _classes.finders() or ctx.get("field"):
        _scan_declared(text, out, ctx.get("field"))
    return out


def _scan_builtin(text: str, ctx: dict, out: dict) -> None:
    role = ctx.get("role")
    if role is None and ctx.get("field"):
        role = field_role(ctx["field"])[0]
    region = ctx.get("region")
    regions = tuple(ctx.get("regions") or DEFAULT_REGIONS)
    if region:
        region = str(region).upper()
        regions = (region,)  # a known region is the only one tried for national numbers
    cx = _Ctx(text)
    if role:
        _scan_role(text, role, region, regions, out)
        if out and len(text) <= 64:
            return  # a short field value that its field's validators accepted is that value
    if "@" in text or "%40" in text or "&#" in text:
        _scan_emails(text, out)
    if "+" in text:
        _scan_plus_phones(text, out)
    if _HAS_DIGIT.search(text) is None:
        return
    if role != "phone" and cx.hits("phone"):
        _scan_context_phones(text, cx, regions, out)
    if "1Z" in text or "1z" in text:
        _scan_ups(text, out)
    _scan_alnum(text, out)
    _scan_gs1(text, out)
    _numeric_candidates(text, cx, out, role)
    if cx.hits("hs"):
        _scan_hs(text, cx, out)
    if cx.hits("eori"):
        _scan_eori(text, cx, out)


def _scan_declared(text: str, out: dict, field: str | None) -> None:
    """The registered classes that bring their own finder or field validator (``classes.DataClass``)."""
    if field is not None:
        dc = _classes.field_class(_norm_key(field))
        if dc is not None:
            v = dc.validate(text.strip()) if len(text) <= 200 else None
            if v:
                _add(out, dc.name, v)
    for dc in _classes.finders():
        for v in dc.find(text):
            if v:
                _add(out, dc.name, v)


_HAS_DIGIT = re.compile(r"\d")

# ---------------------------------------------------------------------------------------------------------
# structured records
# ---------------------------------------------------------------------------------------------------------

_PLACEHOLDER = frozenset({"", "-", "--", "n/a", "na", "none", "null", "nil", "unknown", "test", "tbd", "x", "xx",
                          "xxx", ".", "?", "undefined", "nan", "false", "true", "0", "default", "anonymous"})
_IP_MAC = re.compile(r"[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$|\d{1,3}(\.\d{1,3}){3}(:\d+)?$")
_HAS_LETTER = re.compile(r"[^\W\d_]")
_HEX_START = frozenset("0123456789abcdefABCDEF")


def _urlish(v: str) -> bool:
    """A URL, e-mail, host, IP or MAC address: not a name or postal address."""
    if "://" in v or "@" in v or v[:4].lower() == "www.":
        return True
    return v[:1] in _HEX_START and _IP_MAC.match(v) is not None


def _norm_text(v: str) -> str:
    """Accents stripped, casefolded, whitespace collapsed (the EDM ``name``/``text`` normaliser)."""
    if not v.isascii():
        v = unicodedata.normalize("NFKD", v)
        v = "".join(ch for ch in v if not unicodedata.combining(ch))
    return " ".join(v.casefold().split())


def _name_part_ok(v: str) -> bool:
    if not v or len(v) > 80 or v.lower() in _PLACEHOLDER:
        return False
    if _HAS_DIGIT.search(v) is not None or _HAS_LETTER.search(v) is None or _urlish(v):
        return False
    return v.count(" ") < 8 or len(v.split()) <= 8


def _addr_part(v: str) -> str:
    if not v or len(v) > 200 or v.lower() in _PLACEHOLDER or _urlish(v):
        return ""
    return _norm_text(v).strip(" ,;")


# Legal-form designations: a name carrying one is an organisation, never a person. Distinctive forms match
# in any case; short ones that are also words or initials (AG, AB, AS, SA, NV, BV, KG...) only as written.
_LEGAL_FORM_CI = re.compile(
    r"(?<![^\W_])(?:gmbh|mbh|ggmbh|ltd|limited|plc|llc|l\.l\.c|llp|inc|incorporated|corp|corporation|"
    r"co\.? ?kg|e\.k|ohg|gbr|b\.v|n\.v|s\.a|s\.a\.s|sarl|s\.a\.r\.l|s\.à r\.l|s\.r\.l|srl|s\.p\.a|"
    r"s\.l|s\.l\.u|sp\. ?z ?o\.? ?o|sp\.k|s\.r\.o|a\.s|a/s|aps|oyj|pty|k\.k|kgaa|s\.c\.a|"
    r"s\.n\.c|e\.v|pvt|ltda|s\. de r\.l)(?:\.|(?![^\W_]))", re.IGNORECASE)
_LEGAL_FORM_CS = re.compile(r"(?<![^\W_-])(?:AG|AB|AS|SA|NV|BV|KG|SE|SAS|SpA|Oy|UG|Kft|Zrt|GIE|SCS|LP)\.?"
                            r"(?![^\W_])|(?<![^\W_])Co\.|& ?Co(?![^\W_])")


def is_organisation(name: str) -> bool:
    """Whether ``name`` carries a legal-form designation (``Nordlicht Logistik GmbH``, ``Acme Ltd``,
    ``Transco B.V.``, ``Spedycja Sp. z o.o.``): an organisation name, never a person name."""
    if not name or len(name) > 300:
        return False
    words = name.split()
    if len(words) < 2:
        return False  # a legal form alone, or one word, is no company name either way
    return _LEGAL_FORM_CI.search(name) is not None or _LEGAL_FORM_CS.search(name) is not None


_MAYBE_ID = re.compile(r"[0-9@]|%40|&#")

# between free-text fields: wider than any keyword-context window, so a keyword in one field never
# qualifies a number in another
_FIELD_SEP = "\n" + " " * 63

_ADDR_ORDER = ("address", "street", "line2", "postcode", "city", "state", "country")


_ORG_ID_KEY = re.compile(r"(^|_)(gln|iln|bbn|global_?location_?number|duns(_?(no|number))?)$")


def _org_id_group(key: str, value: str) -> str | None:
    """The group (key prefix, as ``field_role`` forms it) of a party identified by a GLN or a D-U-N-S
    number (``shipper.gln``, ``consignor_gln``): a location or company identifier, so that party is an
    organisation; None for any other key or a value that is not such a number."""
    k = _norm_key(key)
    parts = k.split(".")
    m = _ORG_ID_KEY.search(parts[-1])
    if m is None:
        return None
    digits = _NON_DIGITS.sub("", value)
    if not ((len(digits) == 13 and gs1_ok(digits)) or len(digits) == 9):
        return None
    pre = parts[-1][:m.start()].strip("_")
    parent = ".".join(parts[:-1])
    return (parent + "." + pre) if (parent and pre) else (parent or pre)


def scan_fields(record: dict, context: dict | None = None) -> dict[str, set]:
    """Identifiers of one structured record ``{field name: value}`` (field names give context).

    Besides the free-text classes: ``person_name`` (first+last or a name field, per group of keys),
    ``postal_address`` (one distinct normalised address per group of address keys: street/address with
    letters, or postcode + city), GTIN/SSCC/HS/EORI/tracking/national phones from the field names.
    ``context`` may carry ``region``/``regions`` for phone numbers."""
    out: dict[str, set] = {}
    ctx = dict(context or {})
    free: list[str] = []
    names: dict[str, dict[str, str]] = {}
    weak_names: dict[str, str] = {}
    addrs: dict[str, dict[str, str]] = {}
    phones: list[str] = []
    org_groups: set[str] = set()  # groups identified by a GLN / DUNS: organisations
    customerish = False
    region = ctx.get("region")
    for k, v in record.items():
        if v is None:
            continue
        if not isinstance(v, str):
            if isinstance(v, (bytes, bytearray)):
                v = to_text(v)
            elif isinstance(v, bool):
                continue
            else:
                v = str(v)
        v = v.strip()
        if not v:
            continue
        role, group = field_role(k)
        if role is None:
            dc = _classes.field_class(_norm_key(k)) if _classes.has_fields() else None
            if dc is not None:
                d = dc.validate(v) if len(v) <= 200 else None
                if d:
                    _add(out, dc.name, d)
                    continue
            og = _org_id_group(k, v)
            if og is not None:
                org_groups.add(og)
            if len(v) >= 8 and _MAYBE_ID.search(v) is not None:
                free.append(v)  # shorter values, and values without a digit or "@", hold no identifier
            continue
        if role in ("first_name", "last_name", "middle_name", "full_name"):
            if _name_part_ok(v):
                names.setdefault(group, {})[role] = v
            else:
                free.append(v)
        elif role == "name":
            if _name_part_ok(v):
                weak_names[group] = v
        elif role in _ADDR_ORDER:
            if role == "country":
                c = v.upper()
                if len(c) == 2 and c in ISO_COUNTRIES and not region:
                    region = c
            if role == "address" and len(v) > 300:
                free.append(v)
                continue
            if role == "address" and "@" in v:
                free.append(v)
                continue
            addrs.setdefault(group, {})[role] = v
        elif role == "phone":
            phones.append(v)
            customerish = True
        elif role == "company":
            free.append(v)
        elif role == "email":
            customerish = True
            e = v.lower()
            if e.startswith("mailto:"):
                e = e[7:]
            if email_ok(e):
                _add(out, "email", e)
            else:
                free.append(v)
        else:
            sub = scan(v, {"role": role, "region": region})
            for c, vals in sub.items():
                out.setdefault(c, set()).update(vals)
    if region:
        ctx["region"] = region
    for v in phones:
        sub = scan(v, {"role": "phone", "region": region, "regions": ctx.get("regions")})
        if "phone" not in sub:
            free.append(v)
        for c, vals in sub.items():
            out.setdefault(c, set()).update(vals)
    if free:
        sub = scan(_FIELD_SEP.join(free), ctx)
        for c, vals in sub.items():
            out.setdefault(c, set()).update(vals)
    # postal addresses
    for group, parts in addrs.items():
        street = parts.get("street") or ""
        full = parts.get("address") or ""
        has_street = len(street) >= 3 and _HAS_LETTER.search(street) is not None
        has_full = (len(full) >= 5 and _HAS_LETTER.search(full) is not None and not _urlish(full)
                    and (_HAS_DIGIT.search(full) is not None or "," in full or "\n" in full))
        pc = parts.get("postcode", "")
        pc_city = bool(parts.get("city")) and pc.strip(" -.") != ""
        if not (has_street or has_full or pc_city):
            continue
        comps = [_addr_part(parts[r]) for r in _ADDR_ORDER if r in parts]
        comps = [c for c in comps if c]
        if comps:
            _add(out, "postal_address", ", ".join(comps))
            customerish = True
    # person names
    for group, parts in names.items():
        if "full_name" in parts:
            v = parts["full_name"]
        else:
            v = " ".join(parts[r] for r in ("first_name", "middle_name", "last_name") if r in parts)
        if is_organisation(v) or group in org_groups:
            continue
        v = _norm_text(v)
        if v:
            _add(out, "person_name", v)
    if weak_names and (customerish or names or any(c in out for c in ("email", "phone", "iban", "payment_card"))):
        for group, v in weak_names.items():
            if group in names or group in org_groups or is_organisation(v):
                continue
            _add(out, "person_name", _norm_text(v))
    return out


# ---------------------------------------------------------------------------------------------------------
# masking
# ---------------------------------------------------------------------------------------------------------

def mask(cls: str, value: str) -> str:
    """Evidence form of a value: enough to recognise it, never enough to rebuild it (the class's
    declared mask, ``inspector.content.classes``)."""
    return _classes.mask(cls, value)
