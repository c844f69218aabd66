"""End-to-end CLI: inspector.cli.main(argv) in-process, one subprocess smoke run, the
Python API (inspector.read_flows) and the golden test against captures/expected/*.json."""
from __future__ import annotations

import ipaddress
import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import inspector
from inspector import cli
from inspector.scan import FLOW_FIELDS

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted((REPO / "captures").glob("dc-north-*.pcap"))   # the content-*.pcap have tests of their own
SITE = REPO / "captures" / "site-dc-north.yaml"
INSPECTOR_BIN = REPO / ".venv" / "bin" / "inspector"
OUTPUTS = ("flows.jsonl", "flows.parquet", "weird.jsonl", "stats.json")


def run_cli(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """One in-process scan of the bundled captures with the site file (shared by several tests)."""
    out = tmp_path_factory.mktemp("scan")
    rc = cli.main(["scan", *map(str, CAPTURES), "--site", str(SITE), "--out", str(out), "-q"])
    assert rc == 0
    return out


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------

def test_scan_writes_all_outputs(scanned):
    for name in OUTPUTS:
        assert (scanned / name).is_file(), name
    assert not list(scanned.glob("*.tmp")), "temporary files left behind"
    stats = json.loads((scanned / "stats.json").read_text())
    assert stats["packets_read"] == 799 + 569 + 34
    assert sum(stats["outcomes"].values()) == stats["packets_read"]
    assert stats.get("site") == "dc-north"
    for w in read_jsonl(scanned / "weird.jsonl"):
        assert list(w) == ["ts", "uid", "name", "detail"]


def test_flow_records_keys_in_order(scanned):
    recs = read_jsonl(scanned / "flows.jsonl")
    assert len(recs) > 50
    for r in recs:
        assert tuple(r.keys()) == FLOW_FIELDS


def _norm(v):
    """Comparable plain-Python value for a JSON or parquet/pandas cell."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "tolist"):          # numpy scalars and arrays (list columns)
        v = v.tolist()
    if isinstance(v, dict):           # struct columns; JSON objects
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        items = [_norm(x) for x in v]
        # a Parquet map column comes back as [(key, value), ...]
        if items and all(isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) for x in items):
            return dict(items)
        return items
    return v


def test_parquet_same_records_as_jsonl(scanned):
    pq = pd.read_parquet(scanned / "flows.parquet")
    assert list(pq.columns) == list(FLOW_FIELDS)
    js = read_jsonl(scanned / "flows.jsonl")
    assert len(pq) == len(js)
    pq_recs = pq.to_dict(orient="records")
    for i, (a, b) in enumerate(zip(js, pq_recs)):
        for k in FLOW_FIELDS:
            va, vb = _norm(a[k]), _norm(b[k])
            if k in ("data", "edm") and vb == []:
                vb = {}                    # an empty Parquet map reads back as an empty list
            if isinstance(va, float) or isinstance(vb, float):
                assert va == pytest.approx(vb, rel=0, abs=1e-9), (i, k, va, vb)
            else:
                assert va == vb, (i, k, va, vb)
    # and through pandas' own JSON reader (same frame modulo dtypes)
    pj = pd.read_json(scanned / "flows.jsonl", lines=True, dtype=False)
    assert list(pj.columns) == list(FLOW_FIELDS)
    assert pj["uid"].tolist() == pq["uid"].tolist()
    assert pj["orig_bytes"].fillna(-1).astype("int64").tolist() == pq["orig_bytes"].fillna(-1).astype("int64").tolist()


def test_determinism(tmp_path, capsys):
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        rc, _, err = run_cli(["scan", *CAPTURES, "--site", SITE, "--out", out, "-q"], capsys)
        assert rc == 0, err
        outs.append(out)
    for name in ("flows.jsonl", "weird.jsonl", "stats.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_summary_on_stdout_without_quiet(tmp_path, capsys):
    rc, out, err = run_cli(["scan", CAPTURES[0], "--out", tmp_path / "o"], capsys)
    assert rc == 0
    assert "flows" in out and err == ""


# ---------------------------------------------------------------------------
# usage and configuration errors
# ---------------------------------------------------------------------------

USAGE_ERRORS = {
    "no-args": [],
    "scan-no-paths": ["scan", "--out", "OUT"],
    "missing-out": ["scan", "CAP"],
    "unknown-option": ["scan", "CAP", "--out", "OUT", "--frobnicate"],
    "unknown-command": ["frobnicate"],
    "bad-max-flows": ["scan", "CAP", "--out", "OUT", "--max-flows", "lots"],
}


@pytest.mark.parametrize("argv", list(USAGE_ERRORS.values()), ids=list(USAGE_ERRORS))
def test_usage_errors(argv, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else str(CAPTURES[0]) if a == "CAP" else a for a in argv]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].strip()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_site_file(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text("site: test\n"
                    "local_nets:\n"
                    "  - 172.20.1.0/16\n")         # line 3: host bits set
    rc, out, err = run_cli(["scan", CAPTURES[0], "--site", site, "--out", tmp_path / "o"], capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{site}:3: "), lines[0]
    assert "Traceback" not in err


def test_missing_site_file(tmp_path, capsys):
    site = tmp_path / "nope.yaml"
    rc, out, err = run_cli(["scan", CAPTURES[0], "--site", site, "--out", tmp_path / "o"], capsys)
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and str(site) in lines[0]


def test_version(capsys):
    rc, out, err = run_cli(["--version"], capsys)
    assert rc == 0 and inspector.__version__ in out


# ---------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------

def test_read_flows_columns():
    df = inspector.read_flows(str(CAPTURES[0]))
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(FLOW_FIELDS)
    assert len(df) > 10


def test_read_flows_with_site_matches_cli(scanned):
    df = inspector.read_flows([str(p) for p in CAPTURES], site=str(SITE))
    assert list(df.columns) == list(FLOW_FIELDS)
    js = read_jsonl(scanned / "flows.jsonl")
    assert df["uid"].tolist() == [r["uid"] for r in js]
    assert df["direction"].tolist() == [r["direction"] for r in js]


# ---------------------------------------------------------------------------
# subprocess smoke run
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not INSPECTOR_BIN.exists(), reason="console script not installed in .venv")
def test_subprocess_smoke(tmp_path, scanned):
    out = tmp_path / "smoke"
    r = subprocess.run([str(INSPECTOR_BIN), "scan", *map(str, CAPTURES), "--site", str(SITE), "--out", str(out)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    for name in OUTPUTS:
        assert (out / name).is_file()
    assert (out / "flows.jsonl").read_bytes() == (scanned / "flows.jsonl").read_bytes()
    r = subprocess.run([str(INSPECTOR_BIN), "scan"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------
# golden test: captures/expected/<name>.json
# ---------------------------------------------------------------------------

LOCAL = [ipaddress.ip_network("172.20.0.0/16"), ipaddress.ip_network("fd00:20::/48")]


def _is_local(a: str) -> bool:
    ip = ipaddress.ip_address(a)
    return any(ip.version == n.version and ip in n for n in LOCAL)


@pytest.fixture(scope="module")
def golden_flows(scanned):
    return read_jsonl(scanned / "flows.jsonl")


@pytest.mark.parametrize("cap", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_golden(cap, golden_flows):
    manifest = json.loads((REPO / "captures" / "expected" / f"{cap.stem}.json").read_text())
    index: dict = {}
    for f in golden_flows:
        index.setdefault((f["proto"], f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"]), []).append(f)
    problems = []
    for c in manifest["conversations"]:
        key = (c["proto"], c["orig_h"], c["orig_p"], c["resp_h"], c["resp_p"])
        got = index.get(key, [])
        if len(got) != 1:
            problems.append(f"{c['id']} {key}: {len(got)} matching flows")
            continue
        f = got[0]
        want = {k: c[k] for k in ("orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes", "conn_state", "vlan")}
        have = {k: f[k] for k in want}
        if (f["duration"] or 0) == 0:
            have["orig_bytes"] = have["orig_bytes"] or 0
            have["resp_bytes"] = have["resp_bytes"] or 0
        if have != want:
            problems.append(f"{c['id']} {key}: {have} != {want}")
        if _is_local(c["orig_h"]):
            expect_dir = "internal" if _is_local(c["resp_h"]) else "outbound"
            if f["direction"] != expect_dir:
                problems.append(f"{c['id']} {key}: direction {f['direction']} != {expect_dir}")
        if f["local_orig"] is not _is_local(c["orig_h"]) or f["local_resp"] is not _is_local(c["resp_h"]):
            problems.append(f"{c['id']} {key}: local_orig/local_resp {f['local_orig']}/{f['local_resp']}")
    assert not problems, "\n".join(problems)


def test_golden_directions_present(golden_flows):
    dirs = {f["direction"] for f in golden_flows}
    assert {"outbound", "internal"} <= dirs
    for f in golden_flows:
        if f["id.orig_h"].startswith("172.20.") and f["id.resp_h"].startswith("172.20."):
            assert f["direction"] == "internal", f
        if f["id.orig_h"].startswith("172.20.") and ipaddress.ip_address(f["id.resp_h"]).is_global:
            assert f["direction"] == "outbound", f
