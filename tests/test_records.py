"""Structured payloads counted as customer and shipment records: CSV/TSV, JSON/NDJSON, XML, forms,
EDIFACT, X12, multipart; bounds and hostile input."""
import json
import random

import pytest

from inspector.content import records as R
from inspector.content.records import RecordCount, count_records
from inspector.sniff import classify

FIRST = "John Jane Alice Bob Maria Peter Anna Lukas Sofia Max".split()
LAST = "Smith Miller Müller Schmidt Garcia Rossi Dubois Jones Brown Novak".split()


def customers_csv(n: int, delim: str = ",", seed: int = 5) -> str:
    rnd = random.Random(seed)
    head = delim.join(["customer_id", "first_name", "last_name", "email", "phone", "street", "zip", "city",
                       "country"])
    rows = [head]
    for i in range(n):
        rows.append(delim.join([str(100000 + i), rnd.choice(FIRST), rnd.choice(LAST), f"cust{i}@example.com",
                                f"+44 20 7946 {i % 10000:04d}", f"{i % 300 + 1} High Street", "SW1A 1AA",
                                "London", "GB"]))
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------------------------------------
# CSV / TSV
# ---------------------------------------------------------------------------------------------------------

def test_csv_10000_customers():
    rc = count_records(customers_csv(10_000).encode(), "csv")
    assert rc.customer == 10_000
    assert rc.shipment == 0
    assert rc.records == 10_000
    assert len(rc.data["email"]) == 10_000
    assert len(rc.data["phone"]) == 10_000
    assert 50 <= len(rc.data["person_name"]) <= 100     # 10 first x 10 last names, distinct values
    assert len(rc.data["postal_address"]) == 300
    assert {"email", "first_name", "zip"} <= rc.fields_seen


def test_csv_semicolon_tsv_quoted():
    assert count_records(customers_csv(50, ";").encode(), "csv").customer == 50
    assert count_records(customers_csv(50, "\t").encode(), "tsv").customer == 50
    quoted = 'name,address,email\n"Smith, John","1 Main St, Springfield",js@example.com\n' \
             '"Lee, Ann","2 Oak Ave\nApt 3",al@example.com\n'
    rc = count_records(quoted.encode(), "csv")
    assert rc.customer == 2
    assert rc.data["postal_address"] == {"1 main st, springfield", "2 oak ave apt 3"}


def test_csv_shipments_and_no_header():
    rows = ["order,tracking_number,carrier,weight"] + [f"{i},1Z999AA1012345678{4},UPS,1.5" for i in range(3)]
    rows += [f"{i},986578788855,FedEx,2.0" for i in range(3, 5)]
    rc = count_records("\n".join(rows).encode(), "csv")
    assert rc.shipment == 5 and rc.customer == 0
    assert rc.data == {"tracking_ups": {"1Z999AA10123456784"}, "tracking_other": {"986578788855"}}
    # no header row: each row is still a record, scanned as free text
    rc = count_records(b"1,a@example.com,x\n2,b@example.com,y\n3,c@example.com,z\n", "csv")
    assert rc.customer == 3 and rc.records == 3


# ---------------------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------------------

def shipments_json(n: int) -> bytes:
    rnd = random.Random(9)
    ships = []
    for i in range(n):
        ships.append({
            "shipmentId": f"SH{i:06d}",
            "trackingNumber": "1Z999AA10123456784" if i % 2 else "RA123456785GB",
            "sscc": "106141411234567897",
            "consignee": {"name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                          "address": {"line1": f"{i} Harbour Road", "postalCode": "LS1 1AA", "city": "Leeds",
                                      "country": "GB"},
                          "phone": "020 7946 0123"},
            "lines": [{"sku": "A-1", "gtin": "4006381333931", "qty": 2, "hsCode": "8471.30"},
                      {"sku": "B-2", "name": "Widget", "qty": 1}],
            "weightKg": 1.25, "insured": False,
        })
    return json.dumps({"meta": {"count": n}, "shipments": ships}).encode()


def test_json_array_of_500_shipments():
    rc = count_records(shipments_json(500), "json")
    assert rc.shipment == 500
    assert rc.customer == 500
    assert len(rc.data["postal_address"]) == 500
    assert rc.data["phone"] == {"+442079460123"}      # national number, region GB from the address
    assert rc.data["gtin"] == {"4006381333931"} and rc.data["hs_code"] == {"847130"}
    assert rc.data["tracking_ups"] == {"1Z999AA10123456784"} and rc.data["tracking_s10"] == {"RA123456785GB"}
    # item lines are records of their own, but a GTIN alone does not make a shipment record
    assert rc.records == 500 * 3 + 1


def test_json_top_level_array_ndjson_truncated():
    arr = [{"email": f"u{i}@example.com", "name": f"User {FIRST[i % 10]}"} for i in range(20)]
    assert count_records(json.dumps(arr).encode(), "json").customer == 20
    nd = "\n".join(json.dumps(o) for o in arr).encode()
    assert count_records(nd, "json").customer == 20
    cut = json.dumps({"customers": arr})[:-60].encode()
    rc = count_records(cut, "json")
    assert 15 <= rc.customer < 20 and rc.truncated
    one = json.dumps({"order": {"id": 7, "customer": {"firstName": "Ann", "lastName": "Lee",
                                                      "email": "ann@example.com"}}}).encode()
    rc = count_records(one, "json")
    assert rc.customer == 1 and rc.data["person_name"] == {"ann lee"}


def test_json_name_heuristics():
    products = json.dumps([{"name": "Blue Widget", "price": 3}, {"name": "Red Widget", "price": 4}]).encode()
    assert count_records(products, "json").customer == 0
    people = json.dumps([{"name": "Ann Lee", "email": "ann@example.com"}]).encode()
    assert count_records(people, "json").data["person_name"] == {"ann lee"}
    recipients = json.dumps({"recipients": [{"name": "Ann Lee"}, {"name": "Bo Chu"}]}).encode()
    assert count_records(recipients, "json").customer == 2


def test_json_deep_nesting_is_bounded():
    deep = b"[" * 100_000 + b"]" * 100_000
    rc = count_records(deep, "json")
    assert rc.customer == 0
    deep_obj = ('{"a":' * 5000 + '{"email":"x1@example.com"}' + "}" * 5000).encode()
    rc = count_records(deep_obj, "json")
    assert isinstance(rc, RecordCount)


# ---------------------------------------------------------------------------------------------------------
# XML
# ---------------------------------------------------------------------------------------------------------

NESTED_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ns:Export xmlns:ns="urn:example:wms">
  <ns:Header><ns:Site>DC-North</ns:Site></ns:Header>
  <ns:Orders>
    <ns:Order id="1">
      <ns:Customer><ns:FirstName>John</ns:FirstName><ns:LastName>Smith</ns:LastName>
        <ns:Email>john@example.com</ns:Email>
        <ns:Address><ns:Street>1 Main St</ns:Street><ns:City>Leeds</ns:City><ns:PostCode>LS1 1AA</ns:PostCode></ns:Address>
      </ns:Customer>
      <ns:Parcels>
        <ns:Parcel><ns:TrackingNumber>1Z999AA10123456784</ns:TrackingNumber></ns:Parcel>
        <ns:Parcel><ns:TrackingNumber>1Z5R89390357567127</ns:TrackingNumber></ns:Parcel>
      </ns:Parcels>
    </ns:Order>
    <ns:Order id="2">
      <ns:Customer><ns:Name>Ann Lee</ns:Name><ns:Phone>+49 30 901820</ns:Phone></ns:Customer>
      <ns:Parcels><ns:Parcel><ns:TrackingNumber>RR473124829GB</ns:TrackingNumber></ns:Parcel></ns:Parcels>
    </ns:Order>
    <ns:Order id="3"><ns:Note>nothing to see</ns:Note></ns:Order>
  </ns:Orders>
</ns:Export>
"""


def test_nested_xml():
    rc = count_records(NESTED_XML.encode(), "xml")
    assert rc.customer == 2
    assert rc.shipment == 3       # the two parcels of order 1 (records of their own) and order 2
    assert rc.data["person_name"] == {"john smith", "ann lee"}
    assert rc.data["postal_address"] == {"1 main st, ls1 1aa, leeds"}
    assert rc.data["tracking_ups"] == {"1Z999AA10123456784", "1Z5R89390357567127"}
    assert {"Order", "Customer", "TrackingNumber"} <= rc.fields_seen


def test_xml_attributes_and_truncation():
    doc = "<rows>" + "".join(f'<row name="Ann {LAST[i]}" email="a{i}@example.com" zip="1000{i}"/>'
                             for i in range(10)) + "</rows>"
    assert count_records(doc.encode(), "xml").customer == 10
    rc = count_records(doc[:-30].encode(), "xml")
    assert rc.truncated and 8 <= rc.customer <= 10


def test_xml_doctype_and_entities_refused():
    bomb = """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">
    <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>
    <lolz><a>&lol3;</a><b>x1@example.com</b></lolz>"""
    rc = count_records(bomb.encode(), "xml")
    assert "refused" in rc.note and rc.records == 0
    assert rc.data == {"email": {"x1@example.com"}}       # still scanned as text
    xxe = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    assert count_records(xxe.encode(), "xml").records == 0


def test_xml_utf16_and_deep():
    doc = '<?xml version="1.0" encoding="UTF-16"?><c><p><e>ann@example.com</e></p><p><e>bo@example.com</e></p></c>'
    assert count_records(doc.encode("utf-16"), "xml").customer == 2
    deep = ("<a>" * 20000 + "<email>x1@example.com</email>" + "</a>" * 20000).encode()
    rc = count_records(deep, "xml")
    assert rc.truncated


# ---------------------------------------------------------------------------------------------------------
# EDIFACT
# ---------------------------------------------------------------------------------------------------------

def edifact_interchange(una: str = ":+.? '", nl: str = "\n") -> str:
    c, e, d, r, _sp, t = una
    segs = [f"UNA{una}", f"UNB{e}UNOC{c}3{e}WMS-DCNORTH{c}ZZ{e}CARRIER01{c}ZZ{e}240501{c}1200{e}IC0001"]
    for i, (name, street) in enumerate([("John Smith", "1 Main Street"), ("Ann Lee", "2 Oak Avenue"),
                                        ("Bo Chu", "3 Elm Road")], start=1):
        segs += [f"UNH{e}M{i}{e}IFTMIN{c}D{c}96A{c}UN", f"BGM{e}610{e}CONS{i}{e}9",
                 f"RFF{e}CN{c}986578788855", f"TDT{e}20{e}{e}30",
                 f"NAD{e}CZ{e}{e}{e}ACME Warehouse{e}1 Dock Road{e}Leeds{e}{e}LS1 1AA{e}GB",
                 f"NAD{e}CN{e}{e}{e}{name}{e}{street}{e}London{e}{e}NW1 6XE{e}GB",
                 f"CTA{e}IC{e}{c}{name}", f"COM{e}020 7946 012{i}{c}TE", f"COM{e}c{i}@example.com{c}EM",
                 f"NAD{e}CA{e}{e}{e}Speedy Carrier Ltd{e}9 Depot Way{e}Leeds{e}{e}LS9 9ZZ{e}GB",
                 f"GID{e}1{e}2{c}CT", f"GIN{e}BJ{e}106141411234567897",
                 f"FTX{e}AAI{e}{e}{e}Fragile{r}{e} handle with care{r}{t} thanks",
                 f"UNT{e}12{e}M{i}"]
    segs += [f"UNH{e}M4{e}IFTSTA{c}D{c}01B{c}UN", f"BGM{e}23{e}STAT1{e}9", f"UNT{e}3{e}M4",
             f"UNZ{e}4{e}IC0001"]
    return (t + nl).join(segs) + t


def test_edifact_three_iftmin_one_iftsta():
    rc = count_records(edifact_interchange().encode(), "edifact")
    types = [m["type"] for m in rc.edi]
    assert types == ["IFTMIN", "IFTMIN", "IFTMIN", "IFTSTA"]
    assert all(m["standard"] == "edifact" and m["sender"] == "WMS-DCNORTH" and m["recipient"] == "CARRIER01"
               for m in rc.edi)
    assert [m["ref"] for m in rc.edi] == ["M1", "M2", "M3", "M4"]
    assert rc.shipment == 4
    # per IFTMIN: consignor + consignee parties (the carrier party is not a customer)
    assert rc.customer == 6
    # the consignor (NAD+CZ) is an organisation: its name is no person name, its address still counts
    assert rc.data["person_name"] == {"john smith", "ann lee", "bo chu"}
    assert rc.data["email"] == {"c1@example.com", "c2@example.com", "c3@example.com"}
    assert rc.data["phone"] == {"+442079460121", "+442079460122", "+442079460123"}
    assert rc.data["tracking_other"] == {"986578788855"} and rc.data["sscc"] == {"106141411234567897"}
    assert rc.data["edifact_message"] == {"IFTMIN:M1", "IFTMIN:M2", "IFTMIN:M3", "IFTSTA:M4"}


def test_edifact_custom_separators_and_release():
    rc = count_records(edifact_interchange(una="|*,!#~", nl="").encode(), "edifact")
    assert [m["type"] for m in rc.edi] == ["IFTMIN", "IFTMIN", "IFTMIN", "IFTSTA"]
    assert rc.customer == 6 and rc.edi[0]["sender"] == "WMS-DCNORTH"
    # no UNA: default separators
    plain = edifact_interchange().split("\n", 1)[1]
    assert count_records(plain.encode(), "edifact").shipment == 4
    # mislabelled as text, still EDI
    assert count_records(plain.encode(), "text").shipment == 4


# ---------------------------------------------------------------------------------------------------------
# X12
# ---------------------------------------------------------------------------------------------------------

def isa(sender: str, receiver: str, el: str = "*", comp: str = ">", term: str = "~") -> str:
    f = ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", sender.ljust(15), "ZZ", receiver.ljust(15), "240501", "1200",
         "U", "00401", "000000001", "0", "P", comp]
    s = el.join(f) + term
    assert len(s) == 106
    return s


def x12_interchange(el: str = "*", term: str = "~", nl: str = "\n") -> str:
    segs = [isa("WMSDCNORTH", "RETAILER02", el, ">", term)[:-1],
            el.join(["GS", "SH", "WMS", "RT", "20240501", "1200", "1", "X", "004010"])]
    for n, (name, street) in enumerate([("Jane Roe", "12 Oak Avenue"), ("Rick Poe", "7 Pine Street")], start=1):
        segs += [el.join(["ST", "856", f"000{n}"]), el.join(["BSN", "00", f"SHIP{n}", "20240501", "1200"]),
                 el.join(["HL", "1", "", "S"]),
                 el.join(["N1", "ST", name, "92", f"STORE{n}"]), el.join(["N3", street]),
                 el.join(["N4", "Springfield", "IL", "62701", "US"]),
                 el.join(["PER", "IC", name, "TE", f"20255501{40 + n}", "EM", f"{name.split()[0].lower()}@example.com"]),
                 el.join(["N1", "CA", "Speedy Freight"]),
                 el.join(["MAN", "GM", "00106141411234567897"]), el.join(["REF", "2I", "1Z999AA10123456784"]),
                 el.join(["LIN", "", "UP", "036000291452"]), el.join(["SE", "10", f"000{n}"])]
    segs += [el.join(["ST", "850", "0003"]), el.join(["BEG", "00", "SA", "PO1"]), el.join(["SE", "3", "0003"]),
             el.join(["GE", "3", "1"]), el.join(["IEA", "1", "000000001"])]
    return (term + nl).join(segs) + term


def test_x12_two_856():
    rc = count_records(x12_interchange().encode(), "x12")
    assert [(m["standard"], m["type"]) for m in rc.edi] == [("x12", "856"), ("x12", "856"), ("x12", "850")]
    assert all(m["sender"] == "WMSDCNORTH" and m["recipient"] == "RETAILER02" for m in rc.edi)
    assert rc.shipment == 2          # the two ASNs; the purchase order is not a shipment
    assert rc.customer == 2          # the ship-to parties (the carrier is not a customer)
    assert rc.data["person_name"] == {"jane roe", "rick poe"}
    assert rc.data["phone"] == {"+12025550141", "+12025550142"}
    assert rc.data["sscc"] == {"106141411234567897"} and rc.data["gtin"] == {"036000291452"}
    assert rc.data["x12_transaction"] == {"856:0001", "856:0002", "850:0003"}


def test_x12_other_separators():
    rc = count_records(x12_interchange(el="|", term="\n", nl="").encode(), "x12")
    assert [m["type"] for m in rc.edi] == ["856", "856", "850"] and rc.customer == 2
    rc = count_records(x12_interchange(el="^", term="'", nl="\r\n").encode(), "x12")
    assert [m["type"] for m in rc.edi] == ["856", "856", "850"]
    assert classify(x12_interchange().encode())[0] == "x12"


# ---------------------------------------------------------------------------------------------------------
# forms, multipart, text, binary
# ---------------------------------------------------------------------------------------------------------

def test_form_and_multipart():
    form = (b"name=John+Smith&email=john%40example.com&phone=%2B442079460123"
            b"&items[0][tracking]=1Z999AA10123456784&items[1][tracking]=1Z5R89390357567127")
    rc = count_records(form, "form")
    assert rc.customer == 1 and rc.shipment == 2
    mp = (b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"c.csv\"\r\nContent-Type: text/csv\r\n\r\n"
          b"email,name\r\na@example.com,Al Bo\r\nb@example.com,Cy Do\r\n--XyZ\r\nContent-Type: application/json\r\n\r\n"
          b"{\"tracking\":\"1Z999AA10123456784\"}\r\n--XyZ\r\nContent-Type: image/png\r\n\r\n\x89PNG x@example.com\r\n"
          b"--XyZ--\r\n")
    rc = count_records(mp, "multipart")
    assert rc.customer == 2 and rc.shipment == 1


def test_text_and_opaque_types():
    text = b"Please ship to john@example.com, tracking 1Z999AA10123456784."
    rc = count_records(text, "text")
    assert rc.customer == 0 and rc.shipment == 0 and rc.records == 0
    assert rc.data == {"email": {"john@example.com"}, "tracking_ups": {"1Z999AA10123456784"}}
    assert count_records(b"<html><body>a1@example.com</body></html>", "html").data == {"email": {"a1@example.com"}}
    for opaque in ("tls-encrypted", "encrypted-or-compressed", "image", "zip", "gzip", "pdf", "office"):
        assert count_records(text, opaque) == RecordCount()
    assert count_records(b"", "json") == RecordCount()


def test_untyped_payloads_are_typed_by_the_one_sniffer():
    """count_records without a type (and multipart parts without one) use inspector.sniff.classify."""
    for data, want in ((b'  {"a": 1}', "json"), (b"<?xml version='1.0'?><a/>", "xml"),
                       (b"<!doctype html><html></html>", "html"),
                       (b"UNA:+.? 'UNB+UNOC:3+A+B+240101:1200+1'", "edifact"), (b"a=1&b=2", "form"),
                       (b"a,b,c\n1,2,3\n4,5,6\n", "csv"), (b"hello world", "text")):
        assert classify(data)[0] == want, data


def test_record_bound(monkeypatch):
    monkeypatch.setattr(R, "MAX_RECORDS", 100)
    rc = count_records(customers_csv(1000).encode(), "csv")
    assert rc.records == 100 and rc.customer == 100 and rc.truncated
    rc = count_records(json.dumps([{"email": f"a{i}@example.com"} for i in range(1000)]).encode(), "json")
    assert rc.records <= 101 and rc.truncated


@pytest.mark.parametrize("ptype", ["csv", "tsv", "json", "xml", "form", "edifact", "x12", "multipart", "text",
                                   "html", "binary", "protobuf"])
def test_hostile_bytes_never_raise(ptype):
    rnd = random.Random(hash(ptype) & 0xFFFF)
    for n in (1, 7, 300, 5000):
        blob = rnd.randbytes(n)
        for data in (blob, b"ISA" + blob, b"UNA:+.? '" + blob, b"[{" + blob, b"<a>" + blob, b"--b\r\n" + blob):
            assert isinstance(count_records(data, ptype), RecordCount)
