"""One pipeline, one Settings: ``inspector.pipeline.run`` is what scan, live and batch run, and
``Settings.from_args(args, env)`` loads everything once from the arguments and the injected env."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from inspector import cli
from inspector.settings import Settings, SettingsError, SettingsSpec

REPO = Path(__file__).resolve().parents[1]
CAPS = REPO / "captures"
SITE = CAPS / "site-dc-north.yaml"
EXFIL = CAPS / "dc-north-exfil.pcap"


def scan_args(*argv):
    p = argparse.ArgumentParser(prog="inspector")
    cli.command_module("scan").add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["scan", "x.pcap", "--out", "o", *map(str, argv)])


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------

def test_spec_takes_the_salt_from_the_injected_env_not_os_environ(monkeypatch):
    monkeypatch.setenv("INSPECTOR_HASH_SALT", "from-os-environ")
    assert SettingsSpec.from_args(scan_args(), {}).hash_salt is None
    assert SettingsSpec.from_args(scan_args(), {"INSPECTOR_HASH_SALT": "injected"}).hash_salt == "injected"
    # the command line wins over the environment
    spec = SettingsSpec.from_args(scan_args("--hash-salt", "cli"), {"INSPECTOR_HASH_SALT": "injected"})
    assert spec.hash_salt == "cli"


def test_settings_from_args_loads_everything_once(monkeypatch):
    import inspector.site as site_mod
    calls = []
    real = site_mod.load_site

    def counting(path):
        calls.append(path)
        return real(path)
    monkeypatch.setattr(site_mod, "load_site", counting)
    s = Settings.from_args(scan_args("--site", SITE, "--max-flows", 1234), {"INSPECTOR_HASH_SALT": "pepper"})
    assert calls == [str(SITE)]
    assert s.site.name == "dc-north" and s.max_flows == 1234 and s.analysis
    assert s.enricher is not None and s.content is not None and s.rules
    assert s.content.salt == b"pepper"
    assert s.spec.site == str(SITE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_flows = 1
    e1, e2 = s.new_policy(), s.new_policy()          # a fresh engine per run, the same rules
    assert e1 is not e2 and e1.rules == e2.rules


def test_salt_without_env_is_derived_from_the_site(monkeypatch):
    monkeypatch.setenv("INSPECTOR_HASH_SALT", "ignored")
    a = Settings.from_args(scan_args("--site", SITE), {})
    b = Settings.from_args(scan_args("--site", SITE), {"INSPECTOR_HASH_SALT": "x"})
    assert a.content.salt != b"ignored" and len(a.content.salt) == 32 and b.content.salt == b"x"


def test_flows_only_loads_no_analysis_stage():
    s = Settings.from_args(scan_args("--flows-only"), {})
    assert (s.enricher, s.content, s.rules, s.analysis) == (None, None, None, False)
    assert s.new_policy() is None


def test_settings_errors_are_one_line(tmp_path):
    with pytest.raises(SettingsError) as ei:
        Settings.from_args(scan_args("--site", tmp_path / "nope.yaml"), {})
    assert "nope.yaml" in ei.value.line() and "\n" not in ei.value.line()
    assert ei.value.line("inspector live").startswith("inspector live: ")
    with pytest.raises(SettingsError) as ei:
        Settings.from_args(scan_args("--geoip", tmp_path / "none.mmdb"), {})
    assert "none.mmdb" in ei.value.line() and "\n" not in ei.value.line()


def test_worker_settings_are_a_picklable_spec():
    from inspector.batch.worker import WorkerSettings
    ns = argparse.Namespace(site=str(SITE), geoip=None, asn_db=None, signatures=None, rules=None, hash_salt=None,
                            no_policy=False, max_flows=None)
    spec = WorkerSettings.from_args(ns, {"INSPECTOR_HASH_SALT": "s"}, tz="Europe/Berlin")
    assert isinstance(spec, SettingsSpec) and spec.hash_salt == "s" and spec.max_flows == 1_000_000
    assert pickle.loads(pickle.dumps(spec)) == spec and hash(spec) == hash(pickle.loads(pickle.dumps(spec)))


# ----------------------------------------------------------------------------------------------
# one pipeline for every mode
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def pipeline_runs(monkeypatch):
    """Every call of ``inspector.pipeline.run``: (source type, sink types)."""
    import inspector.pipeline as pl
    real = pl.run
    calls = []

    def spy(source, settings, sinks=(), **kw):
        calls.append((type(source).__name__, tuple(type(s).__name__ for s in sinks)))
        return real(source, settings, sinks, **kw)
    monkeypatch.setattr(pl, "run", spy)
    return calls


def test_scan_live_and_batch_all_run_the_pipeline(pipeline_runs, tmp_path):
    from test_live import FileSource, live_args

    from inspector.batch.discover import file_sha256
    from inspector.batch.worker import WorkerSettings, process_capture
    from inspector.cli import live as live_cli
    assert cli.main(["scan", str(EXFIL), "--site", str(SITE), "--out", str(tmp_path / "scan"), "-q"]) == 0
    args = live_args(["-i", "fake0", "--out", tmp_path / "live", "--site", SITE, "--duration", "1", "-q"])
    assert live_cli.run(args, {}, capture=FileSource(EXFIL)) == 0
    task = {"sha256": file_sha256(str(EXFIL)), "path": str(EXFIL), "host": "h", "rel": "h/x.pcap", "size": 1}
    res = process_capture(task, WorkerSettings(site=str(SITE)))
    assert res.status == "done", res.error
    assert [c[0] for c in pipeline_runs] == ["FileSource", "LiveSource", "FileSource"]
    assert pipeline_runs[0][1][0] == "FileSource" or "FileSink" in pipeline_runs[0][1]
    assert "LiveSink" in pipeline_runs[1][1] and pipeline_runs[2][1] == ("FlowCollector",)


def _norm(recs, drop=("incident_id",)):
    """Records as JSON would give them back; ``incident_id`` left out: scan groups its alerts into
    incidents at the end of the run, batch once the night's captures are stored (across captures;
    ``tests/test_batch.py`` compares those incidents with scan's)."""
    return [json.loads(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True, default=str))
            for r in recs]


def test_batch_equals_scan_flows_and_alerts(tmp_path):
    """The same capture through batch's worker and through scan: the same flows, the same alerts."""
    from inspector.batch.discover import file_sha256
    from inspector.batch.worker import BATCH_COLUMNS, WorkerSettings, process_capture
    out = tmp_path / "scan"
    assert cli.main(["scan", str(EXFIL), "--site", str(SITE), "--out", str(out), "-q"]) == 0
    task = {"sha256": file_sha256(str(EXFIL)), "path": str(EXFIL), "host": "h", "rel": "h/x.pcap", "size": 1}
    res = process_capture(task, WorkerSettings(site=str(SITE)))
    assert res.status == "done" and res.policy
    scan_flows = read_jsonl(out / "flows.jsonl")
    batch_flows = res.flows.to_pylist()
    assert [f["uid"] for f in batch_flows] == [f["uid"] for f in scan_flows]
    for b, s in zip(batch_flows, scan_flows):
        for k in BATCH_COLUMNS:
            b.pop(k)
        assert set(b) == set(s)
        for k in ("id.orig_h", "id.resp_h", "id.resp_p", "orig_bytes", "resp_bytes", "conn_state", "direction",
                  "dst_org", "dst_country", "service"):
            assert b[k] == s[k], k
    scan_alerts = read_jsonl(out / "alerts.jsonl")
    assert scan_alerts, "the exfil capture raises alerts"
    assert _norm(res.alerts) == _norm(scan_alerts)


def test_many_scans_in_one_process_do_not_accumulate_garbage():
    """A process that runs scan after scan (the test suite, a batch worker) keeps a flat heap: the
    garbage collector settings of a run must not hide the previous runs' garbage from it.  A run once
    froze every object at its start, the earlier runs' uncollected cycles included, and each run's
    flow table (numpy arrays held by such a cycle) stayed: 33 MB more per scan, whatever the capture."""
    code = (
        "import json, resource\n"
        "from inspector.pipeline import run_scan\n"
        f"cap = {str(EXFIL)!r}\n"
        "peak = []\n"
        "for i in range(8):\n"
        "    run_scan([cap])\n"
        "    peak.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
        "print(json.dumps(peak))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=REPO)
    assert p.returncode == 0, p.stderr
    peak = json.loads(p.stdout.strip().splitlines()[-1])      # MB after each scan
    assert peak[-1] - peak[1] < 60, peak                     # six more scans: 200 MB with the leak
