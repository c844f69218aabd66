"""Counting precision: phones in labelled fields, organisations that are not persons, commodity codes.

Payloads are written from the segment specifications (UN/EDIFACT CST, GIS, PIA, NAD; X12 N1, L5, L13, TC2)
and annotated with what each planted value must (or must not) count as."""
from inspector.content.identifiers import is_organisation, phone_possible_e164, scan, scan_fields
from inspector.content.records import count_records

# +1 201 011 2345 has the length of a US number, but no US exchange code starts with 0: possible, not valid
UNALLOCATED = "+1 201 011 2345"


def test_labelled_phone_counts_possible_numbers():
    assert scan(UNALLOCATED) == {}                     # free text: a valid number is still required
    assert scan(f"call me on {UNALLOCATED}") == {}
    assert scan_fields({"phone": UNALLOCATED}) == {"phone": {"+12010112345"}}
    assert scan_fields({"Telefon": "(201) 011-2345", "country": "US"}) == {"phone": {"+12010112345"}}
    # the UK drama range 01632 960xxx is reserved, never allocated: possible in a phone field
    assert scan_fields({"tel": "01632 960123", "country": "GB"}) == {"phone": {"+441632960123"}}
    # a placeholder or a number of impossible length is never a phone, whatever the label
    assert scan_fields({"phone": "0000000000"}) == {}
    assert scan_fields({"phone": "+49 1"}) == {}
    assert phone_possible_e164("+1 202 555 01", None) is None


def test_labelled_phone_in_csv_json_xml_edifact():
    csv = "name,phone,email\nAnna Berg,+1 201 011 2345,anna@example.com\nOle Dahl,+1 201 011 2346,\n"
    rc = count_records(csv.encode(), "csv")
    assert rc.data["phone"] == {"+12010112345", "+12010112346"} and rc.customer == 2
    js = '[{"contact": {"mobile": "+1 201 011 2347"}}, {"note": "+1 201 011 2348"}]'
    rc = count_records(js.encode(), "json")
    assert rc.data.get("phone") == {"+12010112347"}   # the unlabelled one is free text: not counted
    xml = "<r><c><tel>+1 201 011 2349</tel></c><c><tel>+1 201 011 2350</tel></c></r>"
    assert count_records(xml.encode(), "xml").data["phone"] == {"+12010112349", "+12010112350"}
    edi = ("UNB+UNOC:3+S+R+240501:1200+1'UNH+1+IFTMIN:D:96A:UN'"
           "NAD+CN+++Anna Berg+1 Main St+Springfield++62701+US'COM+(201) 011-2351:TE'UNT+4+1'UNZ+1+1'")
    assert count_records(edi.encode(), "edifact").data["phone"] == {"+12010112351"}


def test_organisations_are_not_person_names():
    for org in ("Nordlicht Logistik GmbH", "Acme Ltd", "Transco B.V.", "Globex S.A.", "Rhône Fret SARL",
                "Spedycja Polska Sp. z o.o.", "Initech Inc.", "Hooli LLC", "Kaufhaus Nord AG", "Smith & Co"):
        assert is_organisation(org), org
        assert "person_name" not in scan_fields({"shipper": org, "shipper_phone": "+442079460000"}), org
    for person in ("Anna Schmidt", "Inca Lopez", "Sven Asp", "Agnes Agata", "Spa Karl", "Maria Sa"):
        assert not is_organisation(person), person
        assert scan_fields({"consignee": person, "email": "x@example.com"})["person_name"] == {person.lower()}
    # a party identified by a GLN is an organisation, whatever its name looks like
    rec = {"shipper.name": "Nordlicht Logistik", "shipper.gln": "4012345000009",
           "consignee.name": "Anna Schmidt", "consignee.email": "anna@example.com"}
    assert scan_fields(rec)["person_name"] == {"anna schmidt"}


def test_edifact_organisation_parties():
    # NAD+CZ/SH/DT are organisations by qualifier; NAD+ZZ with a GLN (C082 agency 9) by identification;
    # NAD+CN is the consignee person. CA/FW are transport providers (no customer record at all).
    edi = ("UNB+UNOC:3+S+R+240501:1200+1'UNH+1+IFTMIN:D:96A:UN'BGM+610+C1+9'"
           "NAD+CZ+++Nordlicht Logistik+Kai 1+Hamburg++20457+DE'"
           "NAD+SH+++Baltic Export+Kai 2+Hamburg++20457+DE'"
           "NAD+DT+++Lager Nord+Kai 3+Hamburg++20457+DE'"
           "NAD+ZZ+4012345000009::9++Depot Elbe+Kai 4+Hamburg++20457+DE'"
           "NAD+FW+++Fast Forwarding+Kai 5+Hamburg++20457+DE'"
           "NAD+CN+++Anna Berg+Hauptstr. 1+Berlin++10115+DE'"
           "UNT+9+1'UNZ+1+1'")
    rc = count_records(edi.encode(), "edifact")
    assert rc.data["person_name"] == {"anna berg"}
    assert rc.customer == 5       # every party with an address but the forwarder


def test_x12_organisation_parties():
    isa = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240501*1200*U*00401*000000001*0*P*>~"
    x12 = (isa + "GS*SH*S*R*20240501*1200*1*X*004010~ST*856*0001~"
           "N1*SH*Midwest Shipping~N3*1 Dock St~N4*Chicago*IL*60601*US~"
           "N1*BY*Corner Store*UL*0614141000012~N3*2 Main St~N4*Springfield*IL*62701*US~"
           "N1*ST*Jane Roe~N3*12 Oak Avenue~N4*Springfield*IL*62701*US~SE*11*0001~GE*1*1~IEA*1*000000001~")
    rc = count_records(x12.encode(), "x12")
    assert rc.data["person_name"] == {"jane roe"} and rc.customer == 3


def test_edifact_commodity_codes():
    # CUSDEC goods items: CST C246 7361 customs goods identifier (numeric = tariff number), PIA with item
    # type HS, GIS with a tariff code list; a procedure code (CST++A:117:ZZZ, 4000) and a product number
    # (PIA SA) are not commodity codes
    edi = ("UNB+UNOC:3+S+R+240501:1200+1'UNH+1+CUSDEC:D:96B:UN'BGM+830+D1+9'"
           "CST+1+847130:122+A:117:ZZZ'"
           "CST+2+8517.12.00.00'"
           "CST+3+4000'"
           "PIA+5+62034231:HS'"
           "PIA+5+12345678:SA'"
           "GIS+94033000:TAR'"
           "UNT+9+1'UNZ+1+1'")
    rc = count_records(edi.encode(), "edifact")
    assert rc.data["hs_code"] == {"847130", "8517120000", "62034231", "94033000"}


def test_x12_commodity_codes():
    isa = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *240501*1200*U*00401*000000001*0*P*>~"
    x12 = (isa + "GS*SM*S*R*20240501*1200*1*X*004010~ST*309*0001~"
           "L5*1*LAPTOPS*8471300000*A~"          # HTSUSA
           "L5*2*TOYS*950300*J~"                 # HS-based Schedule B
           "L5*3*FREIGHT*1234567*N~"             # NMFC class: not a tariff number
           "L13*H*620342*39*10*1*100*1~"         # Brussels nomenclature
           "TC2*B*8703231915~"                   # Schedule B
           "SE*7*0001~GE*1*1~IEA*1*000000001~")
    rc = count_records(x12.encode(), "x12")
    assert rc.data["hs_code"] == {"8471300000", "950300", "620342", "8703231915"}
