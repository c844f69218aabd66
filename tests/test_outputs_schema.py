"""The output schema (inspector/outputs/schema.py and each protocol's LOG_SCHEMA) against what
scans actually write.

* every record of every stream, on the bundled captures and a sample of the shared corpus,
  fits its declaration: no undeclared field, no missing field, no value of another type, keys
  in the declared order;
* every stream's records convert to its declared Arrow schema (what a Parquet writer needs),
  and ``flows.parquet`` has exactly that schema;
* ``stats.json`` fits ``STATS``;
* the README's generated field tables equal ``python -m inspector.outputs.schema --markdown``;
* the flow field lists of the stages are the schema's (one owner).
"""
from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import outputs_scan as scans
from inspector.outputs import schema as S

REPO = scans.REPO
NOT_STREAMS = {"stats.json", "report.html", "flows.parquet"}


def _problems(outputs: scans.Outputs, label: str) -> list:
    declared = S.streams()
    problems = []
    for name in outputs.files:
        if name not in NOT_STREAMS and not name.endswith(".jsonl"):
            problems.append(f"{label}: unexpected output file {name}")
    for stem, recs in sorted(outputs.records.items()):
        decl = declared.get(stem)
        if decl is None:
            problems.append(f"{label}: {stem}.jsonl is not a declared stream")
            continue
        for i, rec in enumerate(recs):
            for p in decl.problems(rec):
                problems.append(f"{label}: {stem}.jsonl line {i + 1}: {p}")
        if recs:
            try:
                pa.Table.from_pylist([decl.arrow_row(r) for r in recs], schema=decl.arrow_schema())
            except (pa.ArrowException, TypeError, ValueError) as e:
                problems.append(f"{label}: {stem}.jsonl does not convert to its Arrow schema: {e}")
    for p in S.STATS.problems(outputs.stats):
        problems.append(f"{label}: stats.json: {p}")
    return problems


def test_bundled_captures_fit_the_schema():
    out = scans.bundled()
    # the bundled captures exercise the core streams and most protocol logs
    assert {"flows", "content", "weird", "alerts", "dns", "http", "tls", "ftp", "smtp", "ssh", "ntp"} <= \
        set(out.records), sorted(out.records)
    problems = _problems(out, "bundled")
    assert not problems, "\n".join(problems[:40])


def test_flows_parquet_has_the_declared_schema():
    out = scans.bundled()
    table = pq.read_table(f"{out.out_dir}/flows.parquet")
    assert table.schema.equals(S.FLOWS.arrow_schema()), table.schema
    assert table.num_rows == len(out.records["flows"])


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_sample_fits_the_schema(corpus):
    sample = scans.corpus()
    problems = []
    seen = set()
    for path, out in sample:
        seen.update(out.records)
        problems.extend(_problems(out, path.rsplit("/corpus/", 1)[-1]))
    assert not problems, f"{len(problems)} problems; first:\n" + "\n".join(problems[:40])
    # the sample reaches the protocol logs the bundled captures do not have
    assert {"quic", "dhcp", "snmp", "syslog"} <= seen, sorted(seen)


def test_checker_rejects_bad_records():
    flows = S.FLOWS
    good = {f: None for f in flows.names}
    assert flows.problems(good) == []
    assert any("not declared" in p for p in flows.problems(good | {"surprise": 1}))
    assert any("declared int" in p for p in flows.problems(good | {"orig_bytes": "12"}))
    assert any("declared int" in p for p in flows.problems(good | {"orig_bytes": True}))
    assert any("missing" in p for p in flows.problems({k: v for k, v in good.items() if k != "uid"}))
    assert any("order" in p for p in flows.problems(dict(reversed(list(good.items())))))
    assert any("data.email" in p for p in flows.problems(good | {"data": {"email": "x"}}))
    assert any("records.customer" in p for p in flows.problems(good | {"records": {"customer": 1.5,
                                                                                   "shipment": 0}}))
    assert S.FLOWS.problems(good | {"duration": 3}) == []       # an integer is a valid float


def test_every_protocol_log_is_declared():
    from inspector import protocols
    for mod in protocols.load():
        if mod.LOG is not None:
            decl = S.stream(mod.LOG)
            assert mod.FIELDS + ("capture",) == decl.names, mod.__name__   # the app layer adds capture
            assert decl.names[0] == "ts", mod.__name__
    for decl in S.streams().values():
        for f in decl.fields:
            assert f.doc and "\n" not in f.doc, f"{decl.name}.{f.name}: one-line doc required"


def test_stage_field_lists_come_from_the_schema():
    from inspector import scan
    from inspector.batch import worker
    from inspector.content import stage
    from inspector.enrich import flows as enrich
    from inspector.outputs import writers
    assert scan.FLOW_FIELDS == S.FLOWS.names
    assert scan.CONN_FIELDS + ("capture",) + enrich.ENRICH_FIELDS + stage.FLOW_CONTENT_FIELDS == S.FLOWS.names
    assert stage.CONTENT_FIELDS == S.CONTENT.names
    assert scan.WEIRD_FIELDS == S.WEIRD.names
    assert writers.FLOW_TYPES is S.FLOWS.types
    base = worker.flow_schema()
    assert base.names[:len(S.FLOWS.names)] == list(S.FLOWS.names)


def test_schema_module_does_not_import_pyarrow():
    code = ("import sys; from inspector.outputs import schema as s, weirds as w; s.streams(); "
            "w.catalogue(); print('pyarrow' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stdout.strip() == "False"


def test_readme_tables_match_the_schema():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = S.readme_section(readme)
    assert section is not None, "README.md has no generated schema section"
    assert section == S.markdown(), ("README field tables differ from the schema: run "
                                     "python -m inspector.outputs.schema --update README.md")


def test_markdown_command():
    res = subprocess.run([sys.executable, "-m", "inspector.outputs.schema", "--markdown"], capture_output=True,
                         text=True, cwd=REPO, check=True)
    assert res.stdout == S.markdown()
    assert "| `id.orig_h` | addr |" in res.stdout and "#### `dns.jsonl`" in res.stdout


def test_adding_a_stream_is_one_declaration(monkeypatch, tmp_path):
    """A new stream (incidents, files...) declared in the schema module is a stream everywhere: the
    registry, the README tables, the record checker and the writers."""
    import json

    from inspector.outputs import write_jsonl
    dummy = S.Stream("dummy", "a stream added by a test", (
        S.Field("ts", S.TIME, "when"),
        S.Field("uid", S.STRING, "which connection"),
        S.Field("count", S.INT, "how many"),
    ))
    monkeypatch.setattr(S, "DUMMY", dummy, raising=False)
    monkeypatch.setattr(S, "_STREAMS", None)
    try:
        assert S.stream("dummy") is dummy
        assert "#### `dummy.jsonl`" in S.markdown() and "| `count` | int | how many |" in S.markdown()
        recs = [{"ts": 1.0, "uid": "C1", "count": 3}, {"count": 4, "uid": "C2", "ts": 2.5}]
        write_jsonl(str(tmp_path / "dummy.jsonl"), recs, dummy)
        back = [json.loads(line) for line in (tmp_path / "dummy.jsonl").read_text().splitlines()]
        assert [list(r) for r in back] == [["ts", "uid", "count"]] * 2
        assert all(dummy.problems(r) == [] for r in back)
        assert dummy.problems({"ts": 1.0, "uid": "C1", "count": "3"})
        assert dummy.arrow_schema().names == ["ts", "uid", "count"]
    finally:
        monkeypatch.undo()
        S._STREAMS = None
    assert "dummy" not in S.streams()
