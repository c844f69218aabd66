"""The data-class registry (inspector/content/classes.py): a class is one declaration.

``tests/dummy_data_class.py`` declares a class the way a new one is declared; registered through the
registry API only, it is followed from the wire to every place a class matters: the prefilter that
gates large text bodies, free text and labelled fields, record counting, flows and content.jsonl,
masking, a rule file naming it (one new file in signatures/rules/), its alert and its incident, the
``customer`` alias, exact data matching's normaliser and column guess.  Malformed declarations are
refused with the class named.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import dummy_data_class as dummy
from helpers.pkt import pcap_bytes, tcp_session
from inspector.cli import main
from inspector.content import classes, edm, identifiers, records
from inspector.content.classes import DataClass
from inspector.content.prefilter import Prefilter
from inspector.policy.rules import loads_rules
from inspector.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CARDS = [dummy.number(f"{40_000_000 + 7919 * i:08d}") for i in range(12)]
FILLER = ("The quarterly newsletter went out to members this morning and the store team thanks everyone "
          "who helped with the spring event. ") * 30          # > 2 KB, no identifier of any built-in class

RULE = """
- id: 2000901
  name: loyalty-cards-leaving
  message: Loyalty-card numbers sent off the site
  severity: high
  category: Customer data exfiltration
  match:
    direction: [outbound]
    data: [loyalty_card]
  threshold:
    data.loyalty_card: 3
"""


@pytest.fixture
def loyalty():
    classes.register(dummy.DECLARATION)
    try:
        yield dummy.DECLARATION
    finally:
        classes.unregister(dummy.DECLARATION.name)


def _post(path: str, ctype: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: members.loyalty.example\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _capture(tmp_path: Path) -> Path:
    text = (FILLER + " Enrolled: " + ", ".join(CARDS[:6]) + ". " + FILLER).encode()
    csv = ("member,loyalty_no,points\n" + "".join(f"M{i:03d},{c[3:]},{i * 10}\n"
                                                  for i, c in enumerate(CARDS[6:]))).encode()
    frames = (tcp_session(client="10.0.0.1", server="203.0.113.10", cport=40001, sport=80,
                          req=_post("/news", "text/plain", text), resp=b"HTTP/1.1 204 No Content\r\n\r\n")
              + tcp_session(client="10.0.0.1", server="203.0.113.10", cport=40002, sport=80,
                            t0_ns=1_764_000_010_000_000_000,
                            req=_post("/upload", "text/csv", csv), resp=b"HTTP/1.1 204 No Content\r\n\r\n"))
    path = tmp_path / "loyalty.pcap"
    path.write_bytes(pcap_bytes(frames))
    return path


def _signatures(tmp_path: Path) -> Path:
    sig = tmp_path / "signatures"
    shutil.copytree(ROOT / "signatures", sig)
    (sig / "rules" / "zz-loyalty.yaml").write_text(RULE)     # a rule is one file
    return sig


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _scan(tmp_path: Path, *extra) -> Path:
    out = tmp_path / "out"
    rc = main(["scan", str(_capture(tmp_path)), "--out", str(out), "--signatures", str(_signatures(tmp_path)),
               "-q", *extra])
    assert rc in (0, 1)
    return out


def test_a_registered_class_goes_from_the_wire_to_the_incident(tmp_path, loyalty):
    out = _scan(tmp_path)
    flows = {f["uid"]: f for f in _jsonl(out / "flows.jsonl")}
    text_flow, csv_flow = sorted(flows.values(), key=lambda f: f["id.orig_p"])
    # free text over 2 KB: the class's own prefilter pattern lets the body through to its finder
    assert text_flow["data"].get("loyalty_card") == 6
    assert text_flow["records"]["customer"] == 0                 # free text makes no record
    # a CSV whose header says loyalty: every row is a customer record
    assert csv_flow["data"].get("loyalty_card") == 6
    assert csv_flow["records"]["customer"] == 6
    content = {c["uid"]: c for c in _jsonl(out / "content.jsonl")}
    assert content[csv_flow["uid"]]["data"]["loyalty_card"] == 6
    # the rule file names the class; its alert and the incident carry it
    alerts = [a for a in _jsonl(out / "alerts.jsonl") if a["alert"]["signature_id"] == 2000901]
    assert alerts and all(a["incident_id"] for a in alerts)
    incidents = {i["incident_id"]: i for i in _jsonl(out / "incidents.jsonl")}
    inc = incidents[alerts[0]["incident_id"]]
    assert 2000901 in inc["signature_ids"]
    assert inc["data"]["loyalty_card"] == 12 and inc["records"]["customer"] == 6
    # masked everywhere: no raw number in any output
    for f in out.iterdir():
        if f.is_file():
            blob = f.read_bytes()
            for c in CARDS:
                assert c.encode() not in blob and ("LC" + c[3:]).encode() not in blob, f.name
    samples = inc["evidence"]["samples"]["loyalty_card"]
    assert samples and all(re.fullmatch(r"LC[0-9][*]{5}[0-9]{2}", s) for s in samples)   # its declared mask


def test_the_customer_alias_includes_it(tmp_path, loyalty):
    # the shipped rule 1000001 (customer records to a destination that is not allow-listed) says
    # data: [customer]; the CSV's loyalty rows alone make it fire
    out = _scan(tmp_path)
    sids = {a["alert"]["signature_id"] for a in _jsonl(out / "alerts.jsonl")}
    assert 1000001 in sids
    assert "loyalty_card" in classes.group("customer") and "loyalty_card" in classes.group("any")


def test_unregistered_nothing_is_found_and_the_rule_is_refused(tmp_path):
    assert classes.get("loyalty_card") is None
    text = FILLER + " Enrolled: " + ", ".join(CARDS) + ". " + FILLER
    assert "loyalty_card" not in identifiers.scan(text)
    assert not Prefilter().has_any(FILLER.encode())             # the filler alone passes no gate
    with pytest.raises(ConfigError, match="unknown data class 'loyalty_card'"):
        loads_rules(RULE, "zz-loyalty.yaml")


def test_finder_field_and_records_directly(loyalty):
    text = "see " + CARDS[0] + " and LC-123456789 (bad check digit) and " + CARDS[1]
    assert identifiers.scan(text)["loyalty_card"] == {"LC" + CARDS[0][3:], "LC" + CARDS[1][3:]}
    assert identifiers.scan_fields({"loyaltyNumber": CARDS[2][3:]})["loyalty_card"] == {"LC" + CARDS[2][3:]}
    assert identifiers.scan(CARDS[3][3:], {"field": "loyalty_id"})["loyalty_card"] == {"LC" + CARDS[3][3:]}
    rc = records.count_records(b'[{"loyalty": "%s"}, {"loyalty": "%s"}]' % (CARDS[4].encode(), CARDS[5].encode()),
                               "json")
    assert (rc.customer, rc.shipment) == (2, 0)
    assert identifiers.mask("loyalty_card", "LC" + CARDS[0][3:]) == "LC" + CARDS[0][3] + "*****" + CARDS[0][-2:]
    pf = Prefilter()
    assert "loyalty_card" in pf.names and pf.has_any(("x" * 3000 + CARDS[0]).encode())
    assert edm.class_for_column("Loyalty No") == "loyalty_card"
    assert edm.normaliser_for("loyalty_card") == "id"
    loads_rules(RULE, "zz-loyalty.yaml")                      # a rule may name it now


@pytest.mark.parametrize("kw, why", [
    (dict(prefilter=()), "needs a prefilter pattern"),
    (dict(group="customers"), "group must be one of"),
    (dict(record="both"), "record must be None or one of"),
    (dict(name="customer"), "rule alias"),
    (dict(name="Loyalty Card"), "lower-case"),
    (dict(validate=None), "'field' and 'validate' go together"),
    (dict(field="loyal(ty"), "field regex does not compile"),
    (dict(edm="fuzzy"), "edm must be one of"),
    (dict(prefilter=(("email", r"LC-[0-9]{9}", False),)), "already used for another pattern"),
])
def test_malformed_declarations_are_refused(kw, why):
    base = {f: getattr(dummy.DECLARATION, f) for f in DataClass.__dataclass_fields__}
    base.update(kw)
    with pytest.raises(ValueError, match=why):
        classes.register(DataClass(**base))
    assert "loyalty_card" not in classes.names()
    assert "email" in classes.names() and Prefilter().names        # the registry is left as it was


def test_registering_twice_is_refused_unless_replacing(loyalty):
    with pytest.raises(ValueError, match="already registered"):
        classes.register(dummy.DECLARATION)
    classes.register(dummy.DECLARATION, replace=True)
    assert classes.names().count("loyalty_card") == 1


def test_every_builtin_class_is_declared_and_reachable():
    # what the scanners can report is exactly what the registry declares; every class found in free text
    # has a prefilter pattern, so a large text body holding only that class is never skipped
    assert set(classes.names()) == {dc.name for dc in classes.BUILTIN}
    pats = {n for n, _r, _c in classes.prefilter_patterns()}
    for dc in classes.BUILTIN:
        assert dc.prefilter and {p[0] for p in dc.prefilter} <= pats, dc.name
    cust, ship = classes.record_sets()
    assert cust == set(classes.group("customer"))
    assert ship == {"tracking_s10", "tracking_ups", "tracking_other", "sscc"}
