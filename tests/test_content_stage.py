"""ContentStage: declared type mismatches and decompression limits become weirds; counts per flow."""
from __future__ import annotations

import gzip
import json

from inspector.content.sink import ContentSink
from inspector.content.stage import ContentStage
from inspector.site import Site


def _stage():
    seen = []
    st = ContentStage(salt=b"t", weird=lambda uid, name, detail: seen.append((uid, name, detail)))
    return st, seen


def test_declared_json_that_is_gzip_is_a_weird_and_still_inspected():
    st, seen = _stage()
    cf = st.new_flow()
    rows = [{"name": f"Ann Example{i}", "email": f"ann{i}@example.com"} for i in range(5)]
    body = gzip.compress(json.dumps(rows).encode())
    st.body(cf, {"content_type": "application/json", "source": "http"}, body, "Cabc")
    assert any(name == "content.type_mismatch" for _uid, name, _d in seen)
    fields, rec = st.finish(cf, "Cabc", 1.0, "outbound", len(body))
    assert fields["data"]["email"] == 5          # the gzip was opened and its JSON read
    assert fields["records"]["customer"] == 5
    assert rec["samples"]["email"][0].count("*") >= 3


def test_decompression_bomb_is_bounded_and_reported():
    st, seen = _stage()
    cf = st.new_flow()
    bomb = gzip.compress(b"\0" * (20 << 20))
    st.body(cf, {"content_encoding": "gzip", "source": "http"}, bomb, "Cbomb")
    assert any(name == "content.decompression" for _uid, name, _d in seen)


def test_content_sink_wires_content_weirds():
    st = ContentStage(salt=b"t")
    sink = ContentSink(st, Site.default())
    assert st.weird is not None
    st.weird("Cx", "content.type_mismatch", "declared application/json, content is gzip")
    assert sink.weirds[-1][1:] == ("Cx", "content.type_mismatch", "declared application/json, content is gzip")


def test_a_reused_stage_reports_to_the_current_run():
    """batch mode keeps one stage for many scans: each scan's sink gets that scan's weirds."""
    st = ContentStage(salt=b"t")
    first = ContentSink(st, Site.default())
    second = ContentSink(st, Site.default())
    st.weird("Cy", "content.decompression", "limit")
    assert not first.weirds and second.weirds[-1][1] == "Cy"
