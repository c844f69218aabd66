"""Archives and documents: members typed and inspected, counts exact, bounds hold, bombs and encrypted
archives reported as weirds (never an exception or a hang)."""
import gzip
import io
import tarfile
import zipfile

from inspector.content.archives import Budget, expand
from inspector.content.stage import ContentStage

N = 40
SURNAMES = [f"Lee{'abcdefghij'[i % 10]}{'klmnopqrst'[i // 10]}" for i in range(N)]
CSV = "first_name,last_name,email,phone\n" + "".join(
    f"Ann,{SURNAMES[i]},ann{i}@example.com,+44 20 7946 {i:04d}\n" for i in range(N))


def _zip(files: dict, method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def xlsx(rows: list[list[str]]) -> bytes:
    """A minimal SpreadsheetML workbook: every text cell a shared string, cells addressed A1-style."""
    shared, index = [], {}
    body = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, v in enumerate(row):
            ref = chr(65 + c) + str(r)
            if v.lstrip("+").replace(" ", "").isdigit() and not v.startswith("+"):
                cells.append(f'<c r="{ref}"><v>{v}</v></c>')
            else:
                k = index.setdefault(v, len(shared))
                if k == len(shared):
                    shared.append(v)
                cells.append(f'<c r="{ref}" t="s"><v>{k}</v></c>')
        body.append(f'<row r="{r}">{"".join(cells)}</row>')
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sst = "".join(f"<si><t>{s}</t></si>" for s in shared)
    return _zip({
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
                               '2006/content-types"/>',
        "xl/workbook.xml": f'<?xml version="1.0"?><workbook {ns}><sheets><sheet name="S" sheetId="1"/>'
                           f'</sheets></workbook>',
        "xl/sharedStrings.xml": f'<?xml version="1.0"?><sst {ns} count="{len(shared)}">{sst}</sst>',
        "xl/worksheets/sheet1.xml": f'<?xml version="1.0"?><worksheet {ns}><sheetData>{"".join(body)}'
                                    f'</sheetData></worksheet>',
    })


def docx(paragraphs: list[str]) -> bytes:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    ps = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    return _zip({"[Content_Types].xml": "<Types/>",
                 "word/document.xml": f'<?xml version="1.0"?><w:document xmlns:w="{w}"><w:body>{ps}'
                                      f'</w:body></w:document>'})


def run(data: bytes, ctype: str = "application/octet-stream"):
    weirds = []
    st = ContentStage(weird=lambda uid, name, detail: weirds.append(name))
    cf = st.new_flow()
    st.body(cf, {"source": "http", "content_type": ctype}, data, uid="C1")
    fields, _rec = st.finish(cf, "C1", 0.0, "outbound", len(data))
    return fields, weirds


def test_zipped_csv_counts_exactly():
    fields, weirds = run(_zip({"customers.csv": CSV}), "application/zip")
    assert fields["records"]["customer"] == N
    assert fields["data"]["email"] == N and fields["data"]["person_name"] == N and fields["data"]["phone"] == N
    assert "zip" in fields["payload_types"] and "csv" in fields["payload_types"] and not weirds


def test_nested_zip_gzip_tar():
    inner = _zip({"a/customers.csv": CSV})
    outer = _zip({"inner.zip": inner, "readme.txt": "nothing here"})
    fields, weirds = run(outer)
    assert fields["records"]["customer"] == N and not weirds
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        raw = CSV.encode()
        ti = tarfile.TarInfo("export/customers.csv")
        ti.size = len(raw)
        tf.addfile(ti, io.BytesIO(raw))
    fields, weirds = run(gzip.compress(buf.getvalue()), "application/gzip")
    assert fields["records"]["customer"] == N and fields["data"]["email"] == N and not weirds
    fields, _ = run(buf.getvalue(), "application/x-tar")
    assert fields["records"]["customer"] == N


def test_xlsx_header_row_gives_context():
    rows = [["Name", "Phone", "Email", "Note"]] + [
        [f"Ann {SURNAMES[i]}", f"(201) 011-{2300 + i}", f"a{i}@example.com", "ok"] for i in range(N)]
    fields, weirds = run(xlsx(rows), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert "office" in fields["payload_types"] and not weirds
    assert fields["records"]["customer"] == N
    # (201) 011-xxxx is only a *possible* US number: it counts because the header says Phone
    assert fields["data"]["phone"] == N and fields["data"]["email"] == N


def test_docx_text():
    fields, _ = run(docx(["Dear team,", "the customer is reachable at jane.roe@example.com.", "Regards"]))
    assert fields["data"] == {"email": 1}


def test_negatives_archives_without_identifiers():
    fields, weirds = run(_zip({"logo.txt": "no identifiers at all " * 50, "data.bin": bytes(range(256)) * 8}))
    assert fields["data"] == {} and fields["records"] == {"customer": 0, "shipment": 0} and not weirds
    fields, weirds = run(xlsx([["Product", "Qty"], ["Widget", "3"], ["Gadget", "5"]]))
    assert fields["data"] == {} and not weirds


def test_zip_bomb_is_a_weird():
    bomb = _zip({"zeros.csv": b"0" * (16 << 20)})
    assert len(bomb) < 200_000
    fields, weirds = run(bomb)
    assert weirds == ["content.archive_bomb"] and fields["records"]["customer"] == 0
    # many members
    members, problems = expand(_zip({f"f{i}.txt": "x" for i in range(50)}), "zip", Budget(max_members=10))
    assert len(members) == 10 and [p[0] for p in problems] == ["content.archive_bomb"]
    # nesting: a zip in a zip in a zip... stops at the depth bound
    data = _zip({"customers.csv": CSV})
    for _ in range(6):
        data = _zip({"x.zip": data}, zipfile.ZIP_STORED)
    fields, weirds = run(data)
    assert "content.archive_bomb" in weirds and fields["records"]["customer"] == 0


def _encrypt_flag(data: bytes) -> bytes:
    """Set the 'encrypted' general-purpose flag on every local and central directory header."""
    b = bytearray(data)
    pos = 0
    while (pos := b.find(b"PK\x03\x04", pos)) != -1:
        b[pos + 6] |= 1
        pos += 4
    pos = 0
    while (pos := b.find(b"PK\x01\x02", pos)) != -1:
        b[pos + 8] |= 1
        pos += 4
    return bytes(b)


def test_encrypted_zip_is_reported():
    fields, weirds = run(_encrypt_flag(_zip({"customers.csv": CSV})), "application/zip")
    assert weirds == ["content.encrypted_archive"]
    assert fields["payload_type"] == "zip" and fields["records"]["customer"] == 0


def test_hostile_archives_never_raise():
    good = _zip({"customers.csv": CSV})
    for cut in (10, 100, len(good) // 2, len(good) - 20):
        run(good[:cut])
    run(b"PK\x03\x04" + b"\xff" * 200)
    run(gzip.compress(b"x" * 1000)[:-12])
    run(b"\x1f\x8b\x08" + b"\x00" * 100)
    bad_xlsx = xlsx([["Email"], ["a@example.com"]]).replace(b"<sst", b"<!DOCTYPE x [<!ENTITY a 'b'>]><sst", 1)
    run(bad_xlsx)
