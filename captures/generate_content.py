#!/usr/bin/env python3
"""Deterministic content scenarios: captures with shipment and customer records planted at known counts.

Runs beside ``captures/generate.py`` and reuses its machinery (hosts, TCP simulation, framing, Zeek-style
conversation rows, TLS records, UPS/SSCC check digits). It writes, into ``--out`` (default: the directory
of this script):

* ``content-<scenario>.pcap``            one capture per scenario (a-k, see ``SCENARIOS``)
* ``expected/content-<scenario>.json``   the dc-north manifest fields plus a ``content`` section with,
                                         per conversation, the planted identifiers and records and what
                                         the inspector must report as leaving the site

``--customers-csv FILE`` also writes the synthetic customer master (1,000 customers) that the planted
records come from; fingerprint it with ``inspector fingerprint FILE --columns email,phone,name`` to
check exact data matching against the ``edm_rows`` of the manifests.

Everything is a pure function of the constants here and in generate.py (seed, base time): no clock, no
``random`` beyond ``Rng``, and compression is done by the small deflate encoder below rather than zlib, so
that the bytes do not depend on the zlib build. ``tests/test_content_golden.py`` regenerates and compares.

The identifiers are fake but valid: UPS 1Z numbers and GS1 SSCCs (GS1's example company prefix 0614141)
with correct check digits, IBANs with correct mod-97 check digits (the ISO 13616 example bank code
``WEST``), Visa test-range card numbers (400000...) passing Luhn, phone numbers from the ranges set aside
for fiction (US NPA-555-01xx, UK Ofcom drama numbers 020 7946 0xxx and 0113 496 0xxx) that the
``phonenumbers`` library accepts as valid, e-mail addresses at example.com/example.org.
"""
from __future__ import annotations

import argparse
import base64
import json
import struct
import sys
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as g  # noqa: E402  (captures/generate.py, imported as a module)
from generate import MS, SEC, Capture, Conversation, Host, Rng, TcpFlow, _host  # noqa: E402
from scapy.layers.dns import DNS, DNSQR  # noqa: E402
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Dot1Q, Ether  # noqa: E402

GENERATOR = "captures/generate_content.py"
CONTENT_FORMAT = 1
#: 2025-11-25T09:30:00Z, the morning after the dc-north day capture
T_CONTENT = (17 * 3600 + 30 * 60) * SEC

DATA_CLASSES = ("tracking_s10", "tracking_ups", "sscc", "gtin", "tracking_other", "hs_code",
                "email", "phone", "person_name", "postal_address", "iban", "payment_card", "eori",
                "edifact_message", "x12_transaction")  # = inspector.content.DATA_CLASSES (checked by the tests)

# --------------------------------------------------------------------------
# Hosts (the dc-north ones from generate.py plus the content scenarios' peers)
# --------------------------------------------------------------------------

H = dict(g.H)
H.update({
    "ops_pc": _host("ops-pc-25", "172.20.10.25", None),  # office PC: no role in the site file
    "freight_hub": _host("api.freight-hub.example", "192.0.2.80", "external", ttl=52),
    "filedrop": _host("upload.filedrop.example", "203.0.113.91", "external", ttl=50),
    "crm_forms": _host("import.crm-cloud.example", "203.0.113.92", "external", ttl=50),
    "ftp_archive": _host("ftp.partner-archive.example", "192.0.2.21", "external", ttl=54),
    "edi_fwd": _host("edi.forwarder.example", "198.51.100.60", "external", ttl=55),
    "x12_gw": _host("x12-gw.retailer.example", "192.0.2.56", "external", ttl=53),
    "ext_dns": _host("ns1.tunnel.example.net", "203.0.113.53", "external", ttl=49),
    "mx": _host("mx.crm-import.example.org", "192.0.2.25", "external", ttl=51),
    "web": _host("www.parts-supplier.example", "203.0.113.120", "external", ttl=47),
})

RTT = {"freight_hub": 21 * MS, "filedrop": 38 * MS, "crm_forms": 36 * MS, "ftp_archive": 27 * MS,
       "edi_fwd": 19 * MS, "x12_gw": 33 * MS, "ext_dns": 29 * MS, "mx": 24 * MS, "web": 41 * MS,
       "oss": 176 * MS}
LAN_RTT = 260

# --------------------------------------------------------------------------
# The customer master: 1,000 synthetic customers every planted record comes from
# --------------------------------------------------------------------------

FIRST = ["Jane", "John", "Erika", "Alex", "Sam", "Chris", "José", "Zoë", "Renée", "Björn", "Chloé", "Søren",
         "Mary Ann", "Liam", "Olivia", "Noah", "Emma", "Lucas", "Mia", "Ethan", "Amélie", "Jürgen", "Inès",
         "Oscar", "Grace", "Henry", "Isla", "Jack", "Lily", "Leo", "Ava", "Max", "Ella", "Finn", "Ruby",
         "Théo", "Nora", "Hugo", "Lena", "Felix"]
LAST = ["Example", "Placeholder", "Mustermann", "Doe", "Sample", "Testperson", "Núñez", "Müller", "O'Brien",
        "Lindqvist", "Fernández", "Dubois", "Van Dam", "Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans",
        "Thomas", "Johnson", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes",
        "Edwards", "Green", "Hall", "Wood", "Harris", "Lewis", "Martin", "Jackson", "Clarke", "Clark",
        "Turner", "Hill"]
STREETS = ["Maple", "Oak", "Cedar", "Elm", "Willow", "Birch", "Aspen", "Juniper", "Sycamore", "Hawthorn",
           "Chestnut", "Magnolia"]
US_SUFFIX = ["Avenue", "Street", "Lane", "Drive", "Road", "Court"]
US_CITIES = [("Springfield", "IL", "62704"), ("Riverton", "WY", "82501"), ("Fairview", "TN", "37062"),
             ("Greenville", "SC", "29601"), ("Franklin", "TN", "37064"), ("Madison", "WI", "53703"),
             ("Clinton", "MS", "39056"), ("Salem", "OR", "97301"), ("Georgetown", "TX", "78626"),
             ("Arlington", "VA", "22201")]
GB_CITIES = [("London", "SE1 7PB"), ("London", "N1 9GU"), ("Leeds", "LS1 4AP"), ("Leeds", "LS6 2UE")]
US_NPAS = [202, 212, 312, 415, 617, 713]


def ascii_fold(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c)).replace("ø", "o").replace("Ø", "O")
    return "".join(c for c in s.lower() if c.isalnum())


def luhn_digit(body: str) -> str:
    total = 0
    for i, d in enumerate(reversed(body)):
        v = int(d) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return str((10 - total % 10) % 10)


def iban_gb(account: int, bank: str = "WEST", sort_code: str = "123456") -> str:
    bban = f"{bank}{sort_code}{account:08d}"
    digits = "".join(str(int(c, 36)) for c in bban + "GB00")
    return f"GB{98 - int(digits) % 97:02d}{bban}"


assert iban_gb(98765432, sort_code="123456") == "GB82WEST12345698765432"  # the ISO 13616 example


@dataclass(frozen=True)
class Customer:
    idx: int
    customer_id: str
    name: str
    email: str
    phone_e164: str
    phone_intl: str      # phonenumbers INTERNATIONAL style, e.g. "+1 202-555-0143"
    street: str
    city: str
    region: str          # US state or "" (GB)
    postal_code: str
    country: str
    iban: str
    card: str

    def address_line(self) -> str:
        if self.country == "US":
            return f"{self.street}, {self.city}, {self.region} {self.postal_code}"
        return f"{self.street}, {self.city} {self.postal_code}"

    def phone_dashed(self) -> str:  # "+1 (202) 555-0143" / "+44 (0)20 7946 0123"
        p = self.phone_e164
        if p.startswith("+1"):
            return f"+1 ({p[2:5]}) {p[5:8]}-{p[8:]}"
        return self.phone_intl.replace("+44 ", "+44 (0)")


def _phone(idx: int) -> tuple[str, str]:
    if idx % 5 < 3:  # US: 600 customers, 100 per NPA, 555-0100..0199
        k = (idx // 5) * 3 + idx % 5
        npa, line = US_NPAS[k // 100], 100 + k % 100
        return f"+1{npa}555{line:04d}", f"+1 {npa}-555-{line:04d}"
    k = (idx // 5) * 2 + (idx % 5 - 3)  # GB: 400 customers
    if k < 200:
        return f"+44207946{k:04d}", f"+44 20 7946 {k:04d}"
    return f"+441134960{k - 200:03d}", f"+44 113 496 0{k - 200:03d}"


def customer(idx: int) -> Customer:
    a, b = idx % 40, idx // 40
    first, last = FIRST[a], LAST[(b + 3 * a) % 40]
    name = f"{first} {last}"
    fa, la = ascii_fold(first), ascii_fold(last)
    if idx % 3 == 0:
        email = f"{fa}.{la}@example.com"
    elif idx % 3 == 1:
        email = f"{fa[0]}{la}{idx % 1000:03d}@example.org"
    else:
        email = f"{la}.{fa}{idx // 100}@example.com"
    e164, intl = _phone(idx)
    street_name = STREETS[idx % len(STREETS)]
    if e164.startswith("+1"):
        city, st, zipc = US_CITIES[(idx * 7) % len(US_CITIES)]
        street = f"{100 + (idx * 37) % 9800} {street_name} {US_SUFFIX[idx % len(US_SUFFIX)]}"
        if idx % 7 == 0:
            street += f", Apt {1 + idx % 40}"
        country = "US"
    else:
        city, zipc = GB_CITIES[idx % len(GB_CITIES)]
        st = ""
        street = f"{1 + idx // 3} {street_name} Road"
        country = "GB"
    card_body = f"400000{idx:09d}"
    return Customer(idx, f"C-{100000 + idx}", name, email, e164, intl, street, city, st, zipc, country,
                    iban_gb(10000000 + idx * 7919 % 90000000), card_body + luhn_digit(card_body))


MASTER = [customer(i) for i in range(1000)]
for _attr in ("name", "email", "phone_e164", "iban", "card"):
    assert len({getattr(c, _attr) for c in MASTER}) == len(MASTER), _attr
assert len({c.address_line() for c in MASTER}) == len(MASTER)
assert all(len(c.email) <= 39 for c in MASTER)  # base32 of it fits one 63-byte DNS label

# which customers each scenario uses
RANGE_SHIP = range(0, 120)        # a, b, c: consignees of 120 shipments
RANGE_CHUNKED = range(120, 370)   # d (and k: the internal copy)
RANGE_MULTIPART = range(370, 670)  # e
RANGE_FTP = range(670, 870)       # f
RANGE_EDIFACT = range(870, 873)   # g
RANGE_X12 = range(880, 882)       # h
RANGE_DNS = range(890, 930)       # i
RANGE_SMTP = range(930, 980)      # j


def master_csv() -> bytes:
    """The customer master as the organisation would export it (input for ``inspector fingerprint``)."""
    return customers_csv(MASTER, ["customer_id", "name", "email", "phone", "street", "city", "region",
                                  "postal_code", "country", "iban"], phone="e164")


def _csv_cell(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(ch in v for ch in ',"\r\n') else v


def customers_csv(custs, columns: list[str], phone: str = "e164") -> bytes:
    lines = [",".join(columns)]
    for c in custs:
        vals = {"customer_id": c.customer_id, "name": c.name, "email": c.email, "street": c.street,
                "city": c.city, "region": c.region, "postal_code": c.postal_code, "country": c.country,
                "iban": c.iban, "card_number": c.card,
                "phone": {"e164": c.phone_e164, "intl": c.phone_intl, "dashed": c.phone_dashed()}[phone]}
        lines.append(",".join(_csv_cell(vals[k]) for k in columns))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# --------------------------------------------------------------------------
# Shipments
# --------------------------------------------------------------------------

def tracking_for(c: Customer) -> str:
    return g.ups_tracking("999AA1", "01", 3000000 + 7 * c.idx)


def ssccs_for(c: Customer, n: int = 1) -> list[str]:
    return [g.sscc(5000000 + 10 * c.idx + k) for k in range(n)]


def shipment_json(c: Customer) -> dict:
    return {
        "shipment_id": f"SHP-DCN-2025-{200000 + c.idx}",
        "carrier": "UPS",
        "service": "GROUND",
        "tracking_number": tracking_for(c),
        "sscc": ssccs_for(c)[0],
        "pieces": 1,
        "weight_kg": round(1.2 + (c.idx % 17) * 0.85, 2),
        "consignee": {
            "name": c.name,
            "address": {"line1": c.street, "city": c.city, "state": c.region, "postal_code": c.postal_code,
                        "country": c.country},
            "phone": c.phone_intl,
            "email": c.email,
        },
        "reference": f"PO-88{9000 + c.idx}",
    }


# --------------------------------------------------------------------------
# Planted-value bookkeeping: manifest counts are computed from what was built
# --------------------------------------------------------------------------

@dataclass
class Planted:
    """Distinct identifiers and records put into one side of one conversation."""

    values: dict = field(default_factory=dict)      # class -> {value as written}
    incidental: dict = field(default_factory=dict)  # class -> {value}, not part of any record
    records: dict = field(default_factory=lambda: {"customer": 0, "shipment": 0})
    customers: set = field(default_factory=set)      # master indexes whose email+phone+name are all present

    def add(self, cls: str, value: str, incidental: bool = False) -> None:
        assert cls in DATA_CLASSES, cls
        (self.incidental if incidental else self.values).setdefault(cls, set()).add(value)

    def customer(self, c: Customer, *, iban=False, card=False, address=True, phone=True) -> None:
        self.add("person_name", c.name)
        self.add("email", c.email)
        if phone:
            self.add("phone", c.phone_e164)
        if address:
            self.add("postal_address", c.address_line())
        if iban:
            self.add("iban", c.iban)
        if card:
            self.add("payment_card", c.card)
        if phone:
            self.customers.add(c.idx)

    def shipment(self, c: Customer, n_sscc: int = 1) -> None:
        self.customer(c)
        self.add("tracking_ups", tracking_for(c))
        for s in ssccs_for(c, n_sscc):
            self.add("sscc", s)

    def counts(self) -> dict:
        """Distinct planted values per class (all classes; incidental values are not included)."""
        return {cls: len(self.values.get(cls, set())) for cls in DATA_CLASSES}


EMPTY = Planted()


@dataclass
class ContentSpec:
    """The content truth of one conversation, turned into a manifest row."""

    conv: Conversation
    data_sender: str | None           # "orig" | "resp" | None
    payload_type: str | None
    planted: Planted = field(default_factory=Planted)
    layers: list = field(default_factory=list)
    transfer: dict = field(default_factory=dict)
    edi: dict | None = None
    notes: str = ""
    examples: dict = field(default_factory=dict)


# --------------------------------------------------------------------------
# Capture / TCP extensions
# --------------------------------------------------------------------------

class ContentCapture(Capture):
    """A dc-north Capture whose manifest carries a ``content`` section."""

    def __init__(self, scenario: str, name: str, description: str):
        super().__init__(f"content-{name}.pcap", f"c{scenario}", description)
        self.scenario = scenario
        self.specs: list[ContentSpec] = []

    def frame(self, conv: Conversation, from_orig: bool, l4) -> Ether:
        """As Capture.frame, but also right for conversations an outside host opens (active FTP data).

        The tap is on the local host's segment: frames from outside come from the router's MAC with the
        TTL they arrive with; frames of a local host leave with its own MAC and TTL.
        """
        src, dst = (conv.orig, conv.resp) if from_orig else (conv.resp, conv.orig)
        if conv.orig.local and conv.resp.local:
            return super().frame(conv, from_orig, l4)
        if src.local:
            smac, dmac, ttl = src.mac, g.ROUTER_MAC, src.ttl
        else:
            smac, dmac, ttl = g.ROUTER_MAC, dst.mac, src.ttl
        if src.v6:
            l3 = IPv6(src=src.ip, dst=dst.ip, hlim=ttl) / l4
        else:
            df = "DF" if conv.proto == "tcp" else 0
            l3 = IP(src=src.ip, dst=dst.ip, ttl=ttl, id=self.next_ip_id(src), flags=df) / l4
        if conv.vlan is not None:
            frame = Ether(src=smac, dst=dmac) / Dot1Q(vlan=conv.vlan) / l3
        else:
            frame = Ether(src=smac, dst=dmac) / l3
        return Ether(bytes(frame))

    def spec(self, conv: Conversation, data_sender, payload_type, **kw) -> ContentSpec:
        s = ContentSpec(conv, data_sender, payload_type, **kw)
        self.specs.append(s)
        return s

    def manifest(self, frames) -> dict:
        m = super().manifest(frames)
        m["generator"] = GENERATOR
        m["content_format"] = CONTENT_FORMAT
        m["scenario"] = self.scenario
        m["edm_reference"] = {
            "customers_csv": f"python {GENERATOR} --customers-csv FILE (1,000 rows)",
            "fingerprint": "inspector fingerprint FILE --columns email,phone,name "
                           "--classes email=email,phone=phone,name=person_name --region US",
            "min_columns": 2,
        }
        ids = {(r["proto"], r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"]): r["id"]
               for r in m["conversations"]}
        specs = {s.conv.key(): s for s in self.specs}
        rows = []
        for r in m["conversations"]:
            key = (r["proto"], r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"])
            conv = next(c for c in self.convs if c.key() == key)
            rows.append(content_row(ids[key], conv, specs.get(key)))
        m["content"] = rows
        m["content_totals"] = {
            "leaving_records": {k: sum(r["leaving"]["records"][k] for r in rows) for k in ("customer", "shipment")},
            "leaving_edm_rows": sum(r["leaving"]["edm_rows"] for r in rows),
            "flows_with_records_leaving": sum(1 for r in rows if r["expect"] == "records"),
            "flows_expected_empty": sum(1 for r in rows if r["expect"] == "nothing"),
        }
        return m


def _direction(conv: Conversation) -> str:
    if conv.orig.local and conv.resp.local:
        return "internal"
    return "outbound" if conv.orig.local else "inbound"


def content_row(conv_id: str, conv: Conversation, spec: ContentSpec | None) -> dict:
    direction = _direction(conv)
    planted = spec.planted if spec else EMPTY
    sender = spec.data_sender if spec else None
    sender_host = None if sender is None else (conv.orig if sender == "orig" else conv.resp)
    receiver_host = None if sender is None else (conv.resp if sender == "orig" else conv.orig)
    counts = planted.counts()
    has_any = any(counts.values())
    leaves = bool(sender_host and sender_host.local and not receiver_host.local and has_any)
    records = dict(planted.records)
    edm_rows = len(planted.customers)
    zero_ids = {k: 0 for k in DATA_CLASSES}
    if leaves:
        expect = "records" if any(records.values()) else "identifiers"
        leaving = {"identifiers": counts, "records": records, "edm_rows": edm_rows}
    else:
        expect = "nothing"
        leaving = {"identifiers": zero_ids, "records": {"customer": 0, "shipment": 0}, "edm_rows": 0}
    return {
        "id": conv_id,
        "proto": conv.proto, "orig_h": conv.orig.ip, "orig_p": conv.orig_p, "resp_h": conv.resp.ip,
        "resp_p": conv.resp_p,
        "app": conv.app,
        "direction": direction,
        "data_sender": sender,
        "leaves_site": leaves,
        "expect": expect,
        "payload_type": spec.payload_type if spec else None,
        "layers": spec.layers if spec else [],
        "transfer": spec.transfer if spec else {},
        "identifiers": counts,
        "incidental": {k: sorted(v) for k, v in sorted(planted.incidental.items())},
        "records": records,
        "edm_rows": edm_rows,
        "edi": spec.edi if spec else None,
        "leaving": leaving,
        "examples": spec.examples if spec else {},
        "notes": spec.notes if spec else "",
    }


@dataclass
class _Em:
    t: int
    seq: int
    payload: bytes
    psh: bool
    lost: bool = False
    retrans: bool = False
    ooo: bool = False


class CFlow(TcpFlow):
    """TcpFlow with a fixed client port (active FTP data from port 20) and more loss/reordering options."""

    def __init__(self, cap: Capture, client: Host, server: Host, sport: int, *, cport: int | None = None, **kw):
        if cport is None:
            super().__init__(cap, client, server, sport, **kw)
            return
        # same as TcpFlow.__init__ apart from the port
        t = kw.pop("t")
        self.cap = cap
        self.rng = Rng(f"tcp:{cap.name}:{client.ip}:{server.ip}:{sport}:{t}")
        mss = 1440 if client.v6 else 1460
        self.c = g._Side(client, cport, self.rng.u32(), window=2053, mss=mss)
        self.s = g._Side(server, sport, self.rng.u32(), window=4101, mss=mss)
        self.t = t
        self.srv_rtt = kw.pop("srv_rtt")
        self.cli_rtt = kw.pop("cli_rtt", 120)
        self.gap = kw.pop("gap", 15)
        self._pending = None
        self.conv = cap.add(Conversation("tcp", client, server, cport, sport, kw.pop("conn_state", "SF"),
                                         kw.pop("app"), kw.pop("description"), vlan=kw.pop("vlan", None),
                                         server_name=kw.pop("server_name", None)))
        assert not kw, kw

    def send(self, from_client: bool, data: bytes, *, think: int = 0, gap: int | None = None,
             lose_last: bool = False, swap: int | None = None, sni: str | None = None,
             lose: tuple = (), swaps: tuple = (), max_seg: int | None = None):
        """TcpFlow.send plus: ``lose=(i, ...)`` segments lost after the tap and fast-retransmitted after
        the receiver's third duplicate ACK; ``swaps=(k, ...)`` several reordered pairs; ``max_seg`` writes
        smaller segments than the MSS (an application flushing small writes)."""
        if not lose and not swaps and max_seg is None:
            return super().send(from_client, data, think=think, gap=gap, lose_last=lose_last, swap=swap, sni=sni)
        assert not lose_last and swap is None and sni is None
        snd, rcv = (self.c, self.s) if from_client else (self.s, self.c)
        rtt_recv = self._rtt_of(not from_client)
        rtt_send = self._rtt_of(from_client)
        gap = self.gap if gap is None else gap
        t = self.t + think
        self._flush_pending({from_client: t, not from_client: t + rtt_recv})
        seg = min(snd.mss, max_seg or snd.mss)
        chunks = [data[i:i + seg] for i in range(0, len(data), seg)]
        ems: list[_Em] = []
        seq = snd.nxt
        tt = t
        for i, ch in enumerate(chunks):
            ems.append(_Em(tt, seq, ch, psh=i == len(chunks) - 1))
            seq += len(ch)
            tt += max(1, gap * len(ch) // snd.mss)
        for k in swaps:
            a, b = ems[k], ems[k + 1]
            a.t, b.t = b.t + max(1, gap // 4), a.t
            a.ooo = True
        extra = []
        for i in lose:
            e = ems[i]
            e.lost = True
            later = sorted(x.t for x in ems if x.seq > e.seq)
            if len(later) >= 3:  # fast retransmit on the third duplicate ACK
                t_re = later[2] + rtt_recv + rtt_send
            else:
                t_re = e.t + g.RTO_MIN_US + 2 * (self.srv_rtt + self.cli_rtt)
            extra.append(_Em(t_re, e.seq, e.payload, psh=e.psh, retrans=True))
        ems += extra
        snd.nxt = seq
        for e in ems:
            meta = {}
            if e.retrans:
                meta["retransmission"] = True
            if e.ooo:
                meta["out_of_order"] = True
            self._emit(e.t, from_client, "PA" if e.psh else "A", e.seq, snd.rcv, e.payload, **meta)
        # receiver, as in TcpFlow.send
        rcv_nxt = rcv.rcv
        ooo: dict[int, int] = {}
        pending = 0
        first_pending_t = None
        last_arrival = t
        for e in sorted(ems, key=lambda e: e.t):
            if e.lost:
                continue
            ta = e.t + rtt_recv
            if pending and first_pending_t + g.DELACK_US < ta:
                self._emit(first_pending_t + g.DELACK_US, not from_client, "A", rcv.nxt, rcv_nxt)
                pending = 0
            end = e.seq + len(e.payload)
            if e.seq == rcv_nxt:
                rcv_nxt = end
                filled = False
                while rcv_nxt in ooo:
                    rcv_nxt = ooo.pop(rcv_nxt)
                    filled = True
                if filled:
                    self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                    pending = 0
                else:
                    if pending == 0:
                        first_pending_t = ta
                    pending += 1
                    if pending >= 2:
                        self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                        pending = 0
            elif e.seq > rcv_nxt:
                ooo[e.seq] = end
                self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                pending = 0
            else:
                self._emit(ta, not from_client, "A", rcv.nxt, rcv_nxt)
                pending = 0
            last_arrival = max(last_arrival, ta)
        assert rcv_nxt == snd.nxt and not ooo
        rcv.rcv = rcv_nxt
        if pending:
            self._pending = (not from_client, first_pending_t + g.DELACK_US, rcv_nxt)
        self.t = max([last_arrival] + [p[0] for p in self.conv.packets])
        return self


def n_data_segments(conv: Conversation, from_orig: bool) -> int:
    return sum(1 for _t, fo, pkt, meta in conv.packets
               if fo == from_orig and len(pkt[TCP].payload) and not meta.get("retransmission"))


# --------------------------------------------------------------------------
# Payload builders
# --------------------------------------------------------------------------

def http_req(method: str, path: str, host: str, headers: list[tuple[str, str]], body: bytes = b"",
             content_length: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers]
    if content_length and (body or method in ("POST", "PUT")):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_resp(t: int, status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    return g.http_response(status, headers, body, g.http_date(t))


# -- a tiny deterministic DEFLATE encoder (RFC 1951, one fixed-Huffman block) -----------------------

_LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
             131, 163, 195, 227, 258]
_LEN_EXTRA = [0] * 8 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + [0]
_DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
              2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
_DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]


class _Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, nbits: int):  # LSB first
        self.acc |= value << self.n
        self.n += nbits
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def huff(self, code: int, nbits: int):  # Huffman codes go MSB first
        self.put(int(f"{code:0{nbits}b}"[::-1], 2), nbits)

    def done(self) -> bytes:
        if self.n:
            self.out.append(self.acc & 0xFF)
        return bytes(self.out)


def _lit(bits: _Bits, sym: int):
    if sym <= 143:
        bits.huff(0x30 + sym, 8)
    elif sym <= 255:
        bits.huff(0x190 + sym - 144, 9)
    elif sym <= 279:
        bits.huff(sym - 256, 7)
    else:
        bits.huff(0xC0 + sym - 280, 8)


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE, greedy LZ77 (32 KiB window, hash chains) + fixed Huffman codes: slow but the same bytes
    everywhere (zlib's output depends on its version and build)."""
    bits = _Bits()
    bits.put(1, 1)  # BFINAL
    bits.put(1, 2)  # BTYPE = 01, fixed Huffman
    heads: dict[bytes, list[int]] = {}
    i, n = 0, len(data)
    while i < n:
        best_len = best_dist = 0
        if i + 3 <= n:
            key = data[i:i + 3]
            chain = heads.get(key, [])
            for j in reversed(chain[-48:]):
                if i - j > 32768:
                    break
                ln = 3
                limit = min(258, n - i)
                while ln < limit and data[j + ln] == data[i + ln]:
                    ln += 1
                if ln > best_len:
                    best_len, best_dist = ln, i - j
                    if ln == limit:
                        break
        if best_len >= 3:
            li = max(k for k in range(len(_LEN_BASE)) if _LEN_BASE[k] <= best_len)
            _lit(bits, 257 + li)
            bits.put(best_len - _LEN_BASE[li], _LEN_EXTRA[li])
            di = max(k for k in range(len(_DIST_BASE)) if _DIST_BASE[k] <= best_dist)
            bits.huff(di, 5)
            bits.put(best_dist - _DIST_BASE[di], _DIST_EXTRA[di])
            step = best_len
        else:
            _lit(bits, data[i])
            step = 1
        for k in range(i, min(i + step, n - 2)):
            heads.setdefault(data[k:k + 3], []).append(k)
        i += step
    _lit(bits, 256)
    return bits.done()


def gzip_bytes(data: bytes) -> bytes:
    """gzip member (RFC 1952): no name, mtime 0, OS 'unknown'."""
    header = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"
    return header + deflate(data) + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


# -- EDIFACT ---------------------------------------------------------------------------------------

def edi_escape(v: str) -> str:
    return "".join("?" + ch if ch in "?:+'" else ch for ch in v)


def edifact_interchange(custs: list[Customer], t: int, icref: str) -> tuple[bytes, dict]:
    stamp = g._utc(t)
    d6, hm, d12 = stamp.strftime("%y%m%d"), stamp.strftime("%H%M"), stamp.strftime("%Y%m%d%H%M")
    segs = ["UNA:+.? '", f"UNB+UNOC:3+DCNORTH:ZZZ+FWDEXAMPLE:ZZZ+{d6}:{hm}+{icref}++IFTMIN'"]
    msgs = []
    for k, c in enumerate(custs, 1):
        m = [f"UNH+{k}+IFTMIN:D:04A:UN:BIG14'",
             f"BGM+610+SHP-DCN-2025-{200000 + c.idx}+9'",
             f"DTM+137:{d12}:203'",
             "TSR+30+2'",
             f"CNT+7:{2.4 + c.idx % 5:.1f}:KGM'",
             "CNT+11:2'",
             f"RFF+CU:PO-88{9000 + c.idx}'",
             f"RFF+CN:{tracking_for(c)}'",
             "TDT+20++3++UPSN:172:ZZZ'",
             "NAD+CZ+DCNORTH::ZZZ'",
             f"NAD+CN+++{edi_escape(c.name)}+{edi_escape(c.street)}+{edi_escape(c.city)}+"
             f"{c.region}+{c.postal_code}+{c.country}'",
             f"CTA+IC+:{edi_escape(c.name)}'",
             f"COM+{edi_escape(c.phone_intl)}:TE'",
             f"COM+{edi_escape(c.email)}:EM'"]
        for p, s in enumerate(ssccs_for(c, 2), 1):
            m += [f"GID+{p}+1:PK'", "PCI+33E'", f"GIN+BJ+{s}'"]
        m.append(f"UNT+{len(m) + 1}+{k}'")
        msgs.append(("IFTMIN", k, m))
    k = len(custs) + 1
    m = [f"UNH+{k}+IFTSTA:D:04A:UN:BIG14'", f"BGM+23+STA-DCN-{icref}+9'", f"DTM+137:{d12}:203'",
         "NAD+CZ+DCNORTH::ZZZ'"]
    for j, c in enumerate(custs, 1):
        m += [f"CNI+{j}+SHP-DCN-2025-{200000 + c.idx}'", "STS+1+21'", f"RFF+CN:{tracking_for(c)}'",
              f"DTM+334:{d12}:203'"]
    m.append(f"UNT+{len(m) + 1}+{k}'")
    msgs.append(("IFTSTA", k, m))
    for _typ, _k, m in msgs:
        segs += m
    segs.append(f"UNZ+{len(msgs)}+{icref}'")
    info = {"standard": "EDIFACT", "syntax": "UNOC:3", "sender": "DCNORTH", "recipient": "FWDEXAMPLE",
            "interchange_ref": icref, "messages": {"IFTMIN": len(custs), "IFTSTA": 1},
            "message_refs": [str(k) for _t, k, _m in msgs]}
    return ("\n".join(segs) + "\n").encode("utf-8"), info


# -- X12 -------------------------------------------------------------------------------------------

def x12_interchange(custs: list[Customer], t: int, icn: int) -> tuple[bytes, dict]:
    stamp = g._utc(t)
    d6, d8, hm = stamp.strftime("%y%m%d"), stamp.strftime("%Y%m%d"), stamp.strftime("%H%M")
    segs = [f"ISA*00*          *00*          *ZZ*{'DCNORTH':<15}*ZZ*{'RETAILEREX':<15}*{d6}*{hm}*U*00401*"
            f"{icn:09d}*0*P*>",
            f"GS*SH*DCNORTH*RETAILEREX*{d8}*{hm}*{icn}*X*004010"]
    controls = []
    for k, c in enumerate(custs, 1):
        ctl = f"{k:04d}"
        controls.append(ctl)
        packs = ssccs_for(c, 3)
        body = [f"ST*856*{ctl}",
                f"BSN*00*SHP-DCN-2025-{200000 + c.idx}*{d8}*{hm}",
                "HL*1**S",
                f"TD1*CTN*{len(packs)}****G*{12.5 + c.idx % 7:.1f}*LB",
                "TD5**2*UPSN*M*UPS GROUND",
                f"REF*CN*{tracking_for(c)}",
                f"DTM*011*{d8}",
                f"N1*ST*{c.name}",
                f"N3*{c.street}",
                f"N4*{c.city}*{c.region}*{c.postal_code}*{c.country}",
                f"PER*IC*{c.name}*TE*{c.phone_intl}*EM*{c.email}",
                "HL*2*1*O",
                f"PRF*PO-88{9000 + c.idx}"]
        hl = 3
        for p, s in enumerate(packs):
            body += [f"HL*{hl}*2*P", f"MAN*GM*{s}", f"HL*{hl + 1}*{hl}*I",
                     f"LIN**VP*SKU-{400100 + 10 * c.idx + p}", f"SN1**{1 + p}*EA"]
            hl += 2
        body.append(f"CTT*{hl - 1}")
        body.append(f"SE*{len(body) + 1}*{ctl}")
        segs += body
    segs += [f"GE*{len(custs)}*{icn}", f"IEA*1*{icn:09d}"]
    info = {"standard": "X12", "version": "004010", "sender": "DCNORTH", "recipient": "RETAILEREX",
            "interchange_ref": f"{icn:09d}", "messages": {"856": len(custs)}, "message_refs": controls}
    return ("~\n".join(segs) + "~\n").encode("ascii"), info


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------

def _examples(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def _json_post_scenario(cap: ContentCapture, *, lose=(), swaps=(), gzip_body=False, description: str):
    custs = [MASTER[i] for i in RANGE_SHIP]
    body = json.dumps([shipment_json(c) for c in custs], ensure_ascii=False, indent=1).encode("utf-8")
    headers = [("User-Agent", "wms-connector/2.4.1"), ("Content-Type", "application/json; charset=utf-8"),
               ("Accept", "application/json")]
    layers = ["http", "json"]
    transfer = {"method": "POST", "path": "/v1/shipments/bulk", "content_type": "application/json",
                "body_bytes": len(body)}
    if gzip_body:
        body = gzip_bytes(body)
        headers.append(("Content-Encoding", "gzip"))
        layers = ["http", "gzip", "json"]
        transfer.update(content_encoding="gzip", body_bytes=len(body),
                        decoded_bytes=transfer["body_bytes"])
    t = T_CONTENT
    flow = CFlow(cap, H["wms1"], H["freight_hub"], 80, t=t, srv_rtt=RTT["freight_hub"], gap=900, app="http",
                 description=description)
    flow.connect()
    req = http_req("POST", "/v1/shipments/bulk", "api.freight-hub.example", headers, body)
    flow.send(True, req, think=300, lose=lose, swaps=swaps, max_seg=None if not (lose or swaps) else 1460)
    flow.send(False, http_resp(flow.t, "201 Created", [("Content-Type", "application/json"),
                                                        ("Server", "envoy")],
                               g.jbytes({"accepted": len(custs), "batch": "FH-20251125-0007"})), think=48 * MS)
    flow.close(by_client=True, think=200 * MS)
    p = Planted()
    for c in custs:
        p.shipment(c)
    p.records = {"customer": len(custs), "shipment": len(custs)}  # each object is both (records.py)
    transfer["segments"] = n_data_segments(flow.conv, True)
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "json", planted=p, layers=layers, transfer=transfer,
             examples=_examples(tracking_ups=tracking_for(c0), sscc=ssccs_for(c0)[0], email=c0.email,
                                phone=c0.phone_intl, person_name=c0.name, postal_address=c0.address_line()),
             notes="JSON array of 120 shipment objects; consignee name, address, phone and e-mail "
                   "are customers 0-119 of the master; each object carries a tracking number and customer "
                   "identifiers, so it is both a shipment and a customer record")
    return flow


def build_a() -> ContentCapture:
    cap = ContentCapture("a", "a-http-json",
                         "content (a): HTTP POST of a JSON array of 120 UPS shipments to an outside API, "
                         "body split over many TCP segments")
    _json_post_scenario(cap, description="POST /v1/shipments/bulk: JSON array of 120 shipments (~60 KB)")
    return cap


def build_b() -> ContentCapture:
    cap = ContentCapture("b", "b-http-json-reordered",
                         "content (b): the POST of (a) with one segment lost after the tap and fast-"
                         "retransmitted, and two pairs of segments reordered before the tap")
    _json_post_scenario(cap, lose=(9,), swaps=(20, 31),
                        description="POST /v1/shipments/bulk (as in a): segment 10 retransmitted, segments "
                                    "21/22 and 32/33 out of order")
    return cap


def build_c() -> ContentCapture:
    cap = ContentCapture("c", "c-http-gzip",
                         "content (c): the 120-shipment JSON of (a) sent with Content-Encoding: gzip")
    _json_post_scenario(cap, gzip_body=True,
                        description="POST /v1/shipments/bulk, Content-Encoding: gzip (JSON of 120 shipments)")
    return cap


def _chunked(body: bytes, rng: Rng) -> tuple[bytes, int]:
    """(chunked encoding of body, number of data chunks)."""
    out = []
    i = 0
    while i < len(body):
        n = rng.randint(700, 5000)
        part = body[i:i + n]
        out.append(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        i += n
    return b"".join(out) + b"0\r\n\r\n", len(out)


CSV_COLUMNS = ["customer_id", "name", "email", "phone", "street", "city", "region", "postal_code", "country"]


def build_d() -> ContentCapture:
    cap = ContentCapture("d", "d-http-chunked-csv",
                         "content (d): HTTP POST with Transfer-Encoding: chunked of a CSV of 250 customers")
    custs = [MASTER[i] for i in RANGE_CHUNKED]
    csv_body = customers_csv(custs, CSV_COLUMNS, phone="e164")
    chunked, n_chunks = _chunked(csv_body, Rng("content:d:chunks"))
    flow = CFlow(cap, H["wms2"], H["filedrop"], 80, t=T_CONTENT + 600 * SEC, srv_rtt=RTT["filedrop"], gap=110,
                 app="http", description="POST /upload (chunked): customers.csv, 250 customers")
    flow.connect()
    req = http_req("POST", "/upload?name=customers-20251125.csv", "upload.filedrop.example",
                   [("User-Agent", "curl/8.5.0"), ("Accept", "*/*"), ("Content-Type", "text/csv"),
                    ("Transfer-Encoding", "chunked")], chunked, content_length=False)
    flow.send(True, req, think=250)
    flow.send(False, http_resp(flow.t, "200 OK", [("Content-Type", "text/plain")], b"stored 1 file\n"),
              think=61 * MS)
    flow.close(by_client=True, think=5 * MS)
    p = Planted()
    for c in custs:
        p.customer(c)
    p.records["customer"] = len(custs)
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "csv", planted=p, layers=["http", "chunked", "csv"],
             transfer={"method": "POST", "path": "/upload?name=customers-20251125.csv", "content_type": "text/csv",
                       "transfer_encoding": "chunked", "body_bytes": len(chunked), "decoded_bytes": len(csv_body),
                       "chunks": n_chunks, "segments": n_data_segments(flow.conv, True)},
             examples=_examples(email=c0.email, phone=c0.phone_e164, person_name=c0.name,
                                postal_address=c0.address_line()),
             notes="CSV header + 250 rows (customers 120-369), phones in E.164; chunk boundaries cut rows")
    return cap


def build_e() -> ContentCapture:
    cap = ContentCapture("e", "e-http-multipart",
                         "content (e): multipart/form-data upload with a CSV file part of 300 customers (with IBAN)")
    custs = [MASTER[i] for i in RANGE_MULTIPART]
    csv_body = customers_csv(custs, CSV_COLUMNS + ["iban"], phone="intl")
    boundary = "----WebKitFormBoundary" + base64.b32encode(g.det_bytes("content:e:boundary", 10)).decode()[:16]
    parts = [
        b'Content-Disposition: form-data; name="import_type"\r\n\r\n' + b"customers",
        b'Content-Disposition: form-data; name="dedupe"\r\n\r\n' + b"true",
        b'Content-Disposition: form-data; name="file"; filename="customers-export-20251125.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + csv_body,
    ]
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    flow = CFlow(cap, H["wms3"], H["crm_forms"], 80, t=T_CONTENT + 1200 * SEC, srv_rtt=RTT["crm_forms"], gap=110,
                 app="http", description="POST /imports (multipart/form-data): customers CSV, 300 customers")
    flow.connect()
    req = http_req("POST", "/imports", "import.crm-cloud.example",
                   [("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                                   "Gecko) Chrome/131.0.0.0 Safari/537.36"),
                    ("Accept", "text/html,application/xhtml+xml"),
                    ("Content-Type", f"multipart/form-data; boundary={boundary}"),
                    ("Origin", "http://import.crm-cloud.example")], body)
    flow.send(True, req, think=400)
    flow.send(False, http_resp(flow.t, "303 See Other", [("Location", "/imports/7731"), ("Server", "nginx")], b""),
              think=120 * MS)
    flow.close(by_client=True, think=1 * SEC)
    p = Planted()
    for c in custs:
        p.customer(c, iban=True)
    p.records["customer"] = len(custs)
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "multipart", planted=p, layers=["http", "multipart", "csv"],
             transfer={"method": "POST", "path": "/imports", "content_type": "multipart/form-data",
                       "boundary": boundary, "parts": ["import_type", "dedupe", "file:text/csv"],
                       "body_bytes": len(body), "segments": n_data_segments(flow.conv, True)},
             examples=_examples(email=c0.email, phone=c0.phone_intl, iban=c0.iban, person_name=c0.name,
                                postal_address=c0.address_line()),
             notes="payload_type is the HTTP body's (multipart); the file part is text/csv with 300 rows "
                   "(customers 370-669), phones in international format, IBAN column")
    return cap


def _ftp_session(cap: ContentCapture, client: Host, t: int, passive: bool, custs, filename: str):
    srv = H["ftp_archive"]
    rtt = RTT["ftp_archive"]
    rng = Rng(f"content:f:{client.ip}:{passive}")
    csv_body = customers_csv(custs, CSV_COLUMNS, phone="dashed")
    mode = "passive (PASV)" if passive else "active (PORT)"
    ctrl = CFlow(cap, client, srv, 21, t=t, srv_rtt=rtt, gap=110, app="ftp",
                 description=f"FTP control, {mode} upload of {filename}")
    ctrl.connect()
    ctrl.send(False, b"220 (vsFTPd 3.0.5)\r\n", think=4 * MS)
    ctrl.send(True, b"USER dcn-export\r\n", think=3 * MS)
    ctrl.send(False, b"331 Please specify the password.\r\n", think=300)
    ctrl.send(True, b"PASS Wh1teb0ard-Export\r\n", think=2 * MS)
    ctrl.send(False, b"230 Login successful.\r\n", think=9 * MS)
    ctrl.send(True, b"TYPE I\r\n", think=1 * MS)
    ctrl.send(False, b"200 Switching to Binary mode.\r\n", think=200)
    if not passive:
        dport = cap.ports.take(client)
        h = client.ip.replace(".", ",")
        ctrl.send(True, f"PORT {h},{dport >> 8},{dport & 0xFF}\r\n".encode(), think=1 * MS)
        ctrl.send(False, b"200 PORT command successful. Consider using PASV.\r\n", think=200)
        ctrl.send(True, f"STOR {filename}\r\n".encode(), think=1 * MS)
        data = CFlow(cap, srv, client, dport, cport=20, t=ctrl.t + 600, srv_rtt=LAN_RTT, cli_rtt=rtt, gap=110,
                     app="ftp-data", description=f"FTP data (active: server port 20 connects to the client) "
                                                 f"carrying {filename}: {len(custs)} customers")
        data.connect()
        ctrl.t = max(ctrl.t, data.t)
        ctrl.send(False, b"150 Ok to send data.\r\n", think=100)
        data.t = max(data.t, ctrl.t)
        data.send(False, csv_body, think=300)
        data.close(by_client=False, think=200)
        sender = "resp"
    else:
        ctrl.send(True, b"PASV\r\n", think=1 * MS)
        pport = rng.randint(40000, 40100)
        ctrl.send(False, f"227 Entering Passive Mode ({srv.ip.replace('.', ',')},{pport >> 8},{pport & 0xFF}).\r\n"
                  .encode(), think=200)
        data = CFlow(cap, client, srv, pport, t=ctrl.t + 300, srv_rtt=rtt, gap=110, app="ftp-data",
                     description=f"FTP data (passive: client connects to the announced port) carrying "
                                 f"{filename}: {len(custs)} customers")
        data.connect()
        ctrl.t = max(ctrl.t, data.t)
        ctrl.send(True, f"STOR {filename}\r\n".encode(), think=200)
        ctrl.send(False, b"150 Ok to send data.\r\n", think=300)
        data.t = max(data.t, ctrl.t)
        data.send(True, csv_body, think=200)
        data.close(by_client=True, think=200)
        sender = "orig"
    ctrl.t = max(ctrl.t, data.t)
    ctrl.send(False, b"226 Transfer complete.\r\n", think=2 * MS)
    ctrl.send(True, b"QUIT\r\n", think=3 * MS)
    ctrl.send(False, b"221 Goodbye.\r\n", think=200)
    ctrl.close(by_client=False, think=300)
    cap.spec(ctrl.conv, None, None, layers=["ftp"], transfer={"mode": "passive" if passive else "active"},
             notes="control connection: commands and replies only, no records")
    p = Planted()
    for c in custs:
        p.customer(c)
    p.records["customer"] = len(custs)
    c0 = custs[0]
    cap.spec(data.conv, sender, "csv", planted=p, layers=["ftp-data", "csv"],
             transfer={"mode": "passive" if passive else "active", "command": f"STOR {filename}",
                       "control": [ctrl.conv.orig.ip, ctrl.conv.orig_p, srv.ip, 21],
                       "bytes": len(csv_body), "segments": n_data_segments(data.conv, sender == "orig")},
             examples=_examples(email=c0.email, phone=c0.phone_dashed(), person_name=c0.name,
                                postal_address=c0.address_line()),
             notes=("active mode: the outside server opened the connection (direction inbound) but the data "
                    "is sent by the local responder, so it leaves the site" if not passive else
                    "passive mode data connection") + f"; customers {custs[0].idx}-{custs[-1].idx}, phones as "
                                                      "'+1 (202) 555-0143' / '+44 (0)20 7946 0123'")


def build_f() -> ContentCapture:
    cap = ContentCapture("f", "f-ftp",
                         "content (f): FTP upload of a 200-customer CSV, once in active mode (PORT, wms-03) and "
                         "once in passive mode (PASV, wms-02), to an outside FTP server")
    custs = [MASTER[i] for i in RANGE_FTP]
    _ftp_session(cap, H["wms3"], T_CONTENT + 1800 * SEC, False, custs, "customers-20251125.csv")
    _ftp_session(cap, H["wms2"], T_CONTENT + 1860 * SEC, True, custs, "customers-20251125.csv")
    return cap


def build_g() -> ContentCapture:
    cap = ContentCapture("g", "g-edifact-http",
                         "content (g): EDIFACT interchange with 3 IFTMIN and 1 IFTSTA messages over HTTP POST")
    custs = [MASTER[i] for i in RANGE_EDIFACT]
    t = T_CONTENT + 2400 * SEC
    edi, info = edifact_interchange(custs, t, "000000417")
    flow = CFlow(cap, H["wms1"], H["edi_fwd"], 80, t=t, srv_rtt=RTT["edi_fwd"], gap=110, app="http",
                 description="POST /edi/inbound: EDIFACT IFTMIN x3 + IFTSTA x1")
    flow.connect()
    flow.send(True, http_req("POST", "/edi/inbound", "edi.forwarder.example",
                             [("User-Agent", "edi-bridge/1.9"), ("Content-Type", "application/EDIFACT")], edi),
              think=200)
    flow.send(False, http_resp(flow.t, "202 Accepted", [("Content-Type", "text/plain")], b"queued 000000417\n"),
              think=35 * MS)
    flow.close(by_client=True, think=100 * MS)
    p = Planted()
    for c in custs:
        p.shipment(c, n_sscc=2)
    for ref in info["message_refs"]:
        p.add("edifact_message", f"000000417/{ref}")
    # one record per message, all four are transport messages (shipment records); each NAD+CN party with
    # a name and address is a customer record (NAD+CZ is a coded party id only)
    p.records = {"customer": len(custs), "shipment": len(info["message_refs"])}
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "edifact", planted=p, layers=["http", "edifact"], edi=info,
             transfer={"method": "POST", "path": "/edi/inbound", "content_type": "application/EDIFACT",
                       "body_bytes": len(edi)},
             examples=_examples(tracking_ups=tracking_for(c0), sscc=ssccs_for(c0)[0], email=c0.email,
                                phone=c0.phone_intl, person_name=c0.name, postal_address=c0.address_line()),
             notes="3 IFTMIN (one consignment each, 2 SSCC-marked packages, consignee NAD+CN/CTA/COM) + 1 IFTSTA "
                   "reporting the same 3 consignments: 4 shipment records (one per message) and 3 customer "
                   "records (the NAD+CN parties); edifact_message counts the 4 messages (UNH references); "
                   "'+' in phone numbers is released as '?+'")
    return cap


def build_h() -> ContentCapture:
    cap = ContentCapture("h", "h-x12-tcp",
                         "content (h): X12 interchange with two 856 ship notices over plain TCP to port 5000")
    custs = [MASTER[i] for i in RANGE_X12]
    t = T_CONTENT + 3000 * SEC
    x12, info = x12_interchange(custs, t, 912)
    flow = CFlow(cap, H["wms1"], H["x12_gw"], 5000, t=t, srv_rtt=RTT["x12_gw"], gap=110, app="x12",
                 description="raw TCP :5000: X12 856 x2 (ISA/GS envelope)")
    flow.connect()
    flow.send(True, x12, think=150)
    flow.close(by_client=True, think=500 * MS)
    p = Planted()
    for c in custs:
        p.shipment(c, n_sscc=3)
    for ref in info["message_refs"]:
        p.add("x12_transaction", f"{info['interchange_ref']}/{ref}")
    # one record per transaction set (856: shipment), the N1*ST loop of each is a customer record
    p.records = {"customer": len(custs), "shipment": len(custs)}
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "x12", planted=p, layers=["x12"], edi=info,
             transfer={"bytes": len(x12), "segments": n_data_segments(flow.conv, True)},
             examples=_examples(tracking_ups=tracking_for(c0), sscc=ssccs_for(c0)[0], email=c0.email,
                                phone=c0.phone_intl, person_name=c0.name, postal_address=c0.address_line()),
             notes="2 transaction sets 856 (ST control numbers 0001, 0002), each one shipment to a person "
                   "(N1*ST/N3/N4/PER) with 3 SSCC-labelled packs (MAN*GM); no reply from the server")
    return cap


def build_i() -> ContentCapture:
    cap = ContentCapture("i", "i-dns-exfil",
                         "content (i): 40 customer e-mail addresses, one per DNS query, base32 or base64url "
                         "encoded in the first label, sent straight to an outside resolver")
    custs = [MASTER[i] for i in RANGE_DNS]
    client, srv = H["wms3"], H["ext_dns"]
    rng = Rng("content:i")
    t = T_CONTENT + 3600 * SEC
    cport = cap.ports.take(client)
    exchanges = []
    encodings = {"base32": 0, "base64url": 0}
    for k, c in enumerate(custs):
        raw = c.email.encode()
        if k % 2 == 0:
            label = base64.b32encode(raw).decode().rstrip("=")
            encodings["base32"] += 1
        else:
            label = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            encodings["base64url"] += 1
        assert len(label) <= 63
        qname = f"{label}.{k:04x}.t.tunnel.example.net."
        txid = rng.randint(1, 0xFFFF)
        q = DNS(id=txid, rd=1, qd=[DNSQR(qname=qname, qtype="A")])
        a = DNS(id=txid, qr=1, aa=1, rd=1, rcode=3, qd=[DNSQR(qname=qname, qtype="A")])
        exchanges.append((t, q, RTT["ext_dns"] + rng.randint(0, 3 * MS), a))
        t += 250 * MS + rng.randint(0, 60 * MS)
    conv = g.udp_exchange(cap, client, srv, cport, 53, exchanges, app="dns",
                          description="DNS tunnel: 40 A queries from one socket, e-mails encoded in the qname")
    p = Planted()
    for c in custs:
        p.add("email", c.email)
    c0 = custs[0]
    cap.spec(conv, "orig", None, planted=p, layers=["dns", "qname", "base32|base64url"],
             transfer={"queries": len(custs), "qtype": "A", "encodings": encodings,
                       "qname_pattern": "<encoded email>.<counter hex>.t.tunnel.example.net",
                       "responses": "NXDOMAIN, question echoed"},
             examples=_examples(email=c0.email, qname=exchanges[0][1].qd[0].qname.decode()),
             notes="only e-mails (no record structure): customer records 0, EDM rows 0 with 2-of-3 matching; "
                   "even queries use base32 (upper case, padding dropped), odd ones base64url (padding dropped); "
                   "the NXDOMAIN answers echo the names (inbound)")
    return cap


def build_j() -> ContentCapture:
    cap = ContentCapture("j", "j-smtp-attachment",
                         "content (j): SMTP to an outside MX with a base64 MIME attachment: CSV of 50 customers "
                         "with card numbers")
    custs = [MASTER[i] for i in RANGE_SMTP]
    t = T_CONTENT + 4200 * SEC
    sender, rcpt = "exports@dc-north.example.com", "crm-import@example.org"
    csv_body = customers_csv(custs, CSV_COLUMNS + ["card_number"], phone="intl")
    b64 = base64.encodebytes(csv_body).decode().replace("\n", "\r\n")
    boundary = "=_dcn_" + g.det_bytes("content:j:boundary", 8).hex()
    date = g._utc(t).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg = (f"Date: {date}\r\nFrom: DC North Exports <{sender}>\r\nTo: <{rcpt}>\r\n"
           f"Subject: Customer export 2025-11-25\r\nMessage-ID: <20251125.{t // SEC}.7741@wms-02>\r\n"
           f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
           f"This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
           f"Nightly customer export attached (50 rows).\r\n\r\n--{boundary}\r\n"
           f"Content-Type: text/csv; name=\"customers-20251125.csv\"\r\nContent-Transfer-Encoding: base64\r\n"
           f"Content-Disposition: attachment; filename=\"customers-20251125.csv\"\r\n\r\n{b64}\r\n"
           f"--{boundary}--\r\n").encode()
    assert b"\r\n." not in msg
    flow = CFlow(cap, H["wms2"], H["mx"], 25, t=t, srv_rtt=RTT["mx"], gap=110, app="smtp",
                 description="SMTP to mx.crm-import.example.org: message with a base64 CSV attachment")
    flow.connect()
    flow.send(False, b"220 mx.crm-import.example.org ESMTP Postfix\r\n", think=6 * MS)
    flow.send(True, b"EHLO wms-02.dc-north.example.com\r\n", think=1 * MS)
    flow.send(False, b"250-mx.crm-import.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                     b"250-8BITMIME\r\n250 SMTPUTF8\r\n", think=300)
    flow.send(True, f"MAIL FROM:<{sender}> SIZE={len(msg)}\r\n".encode(), think=500)
    flow.send(False, b"250 2.1.0 Ok\r\n", think=300)
    flow.send(True, f"RCPT TO:<{rcpt}>\r\n".encode(), think=300)
    flow.send(False, b"250 2.1.5 Ok\r\n", think=2 * MS)
    flow.send(True, b"DATA\r\n", think=300)
    flow.send(False, b"354 End data with <CR><LF>.<CR><LF>\r\n", think=200)
    flow.send(True, msg + b".\r\n", think=400)
    flow.send(False, b"250 2.0.0 Ok: queued as 4F2A1C0D3E\r\n", think=18 * MS)
    flow.send(True, b"QUIT\r\n", think=500)
    flow.send(False, b"221 2.0.0 Bye\r\n", think=200)
    flow.close(by_client=False, think=300)
    p = Planted()
    for c in custs:
        p.customer(c, card=True)
    p.add("email", sender, incidental=True)
    p.add("email", rcpt, incidental=True)
    p.records["customer"] = len(custs)
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "multipart", planted=p, layers=["smtp", "mime", "base64", "csv"],
             transfer={"mail_from": sender, "rcpt_to": [rcpt], "message_bytes": len(msg),
                       "attachment": "customers-20251125.csv (text/csv, base64)", "csv_bytes": len(csv_body)},
             examples=_examples(email=c0.email, phone=c0.phone_intl, payment_card=c0.card, person_name=c0.name,
                                postal_address=c0.address_line()),
             notes="identifiers.email counts the 50 customers; the 2 envelope/header addresses (MAIL FROM, "
                   "RCPT TO, From:, To:) are listed in incidental and not counted; the Message-ID has no "
                   "domain with a dot and is not an e-mail address; payload_type is the message body's "
                   "(multipart/mixed), the attachment is csv")
    return cap


def build_k() -> ContentCapture:
    cap = ContentCapture("k", "k-negative",
                         "content (k): flows that must show nothing leaving: an inbound web page with 30 e-mail "
                         "addresses, an internal copy of the 250-customer CSV, and a TLS upload to a foreign cloud")
    t = T_CONTENT + 4800 * SEC
    # 1. inbound HTML page full of e-mail addresses
    contacts = []
    for k in range(30):
        first, last = FIRST[(k * 11) % 40], LAST[(k * 17 + 5) % 40]
        contacts.append((f"{first} {last}", f"{ascii_fold(first)}.{ascii_fold(last)}.sales{k:02d}@example.org"))
    rows = "\n".join(f"    <tr><td>{n}</td><td><a href=\"mailto:{e}\">{e}</a></td><td>Region {1 + k % 6}</td></tr>"
                     for k, (n, e) in enumerate(contacts))
    html = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Sales contacts - Parts "
            f"Supplier</title></head>\n<body>\n  <h1>Our sales team</h1>\n  <table>\n    <tr><th>Name</th>"
            f"<th>E-mail</th><th>Region</th></tr>\n{rows}\n  </table>\n</body>\n</html>\n").encode()
    flow = CFlow(cap, H["ops_pc"], H["web"], 80, t=t, srv_rtt=RTT["web"], gap=110, app="http",
                 description="browser GET of a supplier's contact page (30 e-mail addresses come in)")
    flow.connect()
    flow.send(True, http_req("GET", "/contacts.html", "www.parts-supplier.example",
                             [("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 "
                                             "Firefox/133.0"), ("Accept", "text/html"),
                              ("Accept-Encoding", "identity")]), think=200)
    flow.send(False, http_resp(flow.t, "200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                                  ("Server", "Apache")], html), think=55 * MS)
    flow.close(by_client=True, think=3 * SEC)
    p = Planted()
    for _n, e in contacts:
        p.add("email", e)
    cap.spec(flow.conv, "resp", "html", planted=p, layers=["http", "html"],
             transfer={"method": "GET", "path": "/contacts.html", "body_bytes": len(html)},
             examples=_examples(email=contacts[0][1]),
             notes="the 30 addresses travel inbound (server to local browser): nothing leaves")
    # 2. internal copy of the chunked-upload CSV (d) to the backup server
    custs = [MASTER[i] for i in RANGE_CHUNKED]
    csv_body = customers_csv(custs, CSV_COLUMNS, phone="e164")
    flow = CFlow(cap, H["wms2"], H["backup"], 80, t=t + 20 * SEC, srv_rtt=LAN_RTT, gap=14, app="http",
                 description="HTTP PUT of customers.csv (250 customers) to backup-01: internal")
    flow.connect()
    flow.send(True, http_req("PUT", "/exports/customers-20251125.csv", "backup-01.dc-north.corp",
                             [("User-Agent", "curl/8.5.0"), ("Content-Type", "text/csv")], csv_body), think=150)
    flow.send(False, http_resp(flow.t, "201 Created", [("Server", "nginx")], b""), think=4 * MS)
    flow.close(by_client=True, think=2 * MS)
    p = Planted()
    for c in custs:
        p.customer(c)
    p.records["customer"] = len(custs)
    c0 = custs[0]
    cap.spec(flow.conv, "orig", "csv", planted=p, layers=["http", "csv"],
             transfer={"method": "PUT", "path": "/exports/customers-20251125.csv", "body_bytes": len(csv_body)},
             examples=_examples(email=c0.email, phone=c0.phone_e164, person_name=c0.name),
             notes="same CSV bytes as the body of (d), but 172.20.1.11 -> 172.20.2.20 stays inside the site")
    # 3. TLS upload of about the same size to a foreign cloud
    flow = g.tls_session(CFlow(cap, H["wms3"], H["oss"], 443, t=t + 40 * SEC, srv_rtt=RTT["oss"], gap=290,
                               app="tls", server_name=g.EXFIL_NAME,
                               description="TLS 1.3 upload (~34 KB) to Alibaba Cloud OSS: encrypted"),
                         "content:k:tls", g.EXFIL_NAME, [(len(csv_body) + 600, 380, 90 * MS)])
    cap.spec(flow.conv, "orig", "tls-encrypted", layers=["tls"],
             transfer={"sni": g.EXFIL_NAME, "application_data_bytes": len(csv_body) + 600},
             notes="encrypted: no identifier can be seen; must report nothing (the destination is another "
                   "matter)")
    return cap


SCENARIOS = {"a": build_a, "b": build_b, "c": build_c, "d": build_d, "e": build_e, "f": build_f, "g": build_g,
             "h": build_h, "i": build_i, "j": build_j, "k": build_k}


def generate(out_dir: Path, only: list[str] | None = None) -> list[dict]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [SCENARIOS[s]().write(out_dir) for s in (only or SCENARIOS)]


def planted_values(scenario: str) -> list[tuple[tuple, str | None, dict]]:
    """(5-tuple, data_sender, {class: {values}}) per content spec of a scenario, built in memory (for tests)."""
    cap = SCENARIOS[scenario]()
    out = []
    for s in cap.specs:
        vals: dict = {}
        for src in (s.planted.values, s.planted.incidental):
            for k, v in src.items():
                vals.setdefault(k, set()).update(v)
        out.append((s.conv.key(), s.data_sender, vals))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="output directory (default: the captures/ directory)")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="build only these scenarios")
    ap.add_argument("--customers-csv", type=Path, metavar="FILE",
                    help="also write the synthetic customer master (input for inspector fingerprint)")
    args = ap.parse_args(argv)
    for m in generate(args.out, args.only):
        lv = m["content_totals"]["leaving_records"]
        print(f"{m['capture']}: {m['packet_count']} packets, {len(m['conversations'])} conversations; "
              f"leaving: {lv['customer']} customer / {lv['shipment']} shipment records")
    if args.customers_csv:
        args.customers_csv.write_bytes(master_csv())
        print(f"{args.customers_csv}: {len(MASTER)} customers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
