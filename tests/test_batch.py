"""Nightly batch (inspector.batch): discovery, atomic commits and crash/resume, local vs Dask, baselines,
the nightly HTML report.

The batch runs as ``python -m inspector.batch batch ...`` (the same parser ``inspector batch`` uses) so
that it can be killed with SIGKILL like a real nightly job.
"""
from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")

from inspector.batch import baseline as bl  # noqa: E402
from inspector.batch import run_batch  # noqa: E402
from inspector.batch.discover import discover, file_sha256  # noqa: E402
from inspector.batch.report import write_report  # noqa: E402
from inspector.batch.store import Store  # noqa: E402
from inspector.batch.worker import WorkerSettings, result_from_records  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CAPS = REPO / "captures"
SITE = CAPS / "site-dc-north.yaml"
PY = sys.executable

HAVE_POLICY = importlib.util.find_spec("inspector.policy") is not None


# ----------------------------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------------------------

def make_tree(root: Path) -> dict:
    """Captures of three hosts, plus a duplicate, a gzip copy, a broken file, a non-capture and a temp file."""
    h1, h2, h3 = root / "wms01", root / "gw02", root / "edge03"
    for d in (h1, h2, h3 / "2025-11-24"):
        d.mkdir(parents=True)
    for name in ("dc-north-day.pcap", "content-a-http-json.pcap", "content-b-http-json-reordered.pcap",
                 "content-c-http-gzip.pcap", "content-d-http-chunked-csv.pcap", "content-e-http-multipart.pcap"):
        shutil.copy(CAPS / name, h1 / name)
    for name in ("dc-north-exfil.pcap", "content-f-ftp.pcap", "content-g-edifact-http.pcap",
                 "content-h-x12-tcp.pcap", "content-i-dns-exfil.pcap", "content-j-smtp-attachment.pcap",
                 "content-k-negative.pcap"):
        shutil.copy(CAPS / name, h2 / name)
    shutil.copy(CAPS / "dc-north-ipv6-vlan.pcap", h3 / "dc-north-ipv6-vlan.pcap")
    (h3 / "day-copy.pcap.gz").write_bytes(gzip.compress((CAPS / "dc-north-day.pcap").read_bytes(), mtime=0))
    shutil.copy(CAPS / "content-a-http-json.pcap", h3 / "2025-11-24" / "dup-of-a.pcap")   # same bytes: skipped
    (h3 / "broken.pcap.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 20)                  # recorded as error
    (h3 / "notes.txt").write_text("not a capture\n")                                   # not a capture: ignored
    (h3 / "rotating.pcap.tmp").write_bytes((CAPS / "content-h-x12-tcp.pcap").read_bytes())  # being written
    return {"unique": 16, "done": 15, "error": 1}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("caps")
    info = make_tree(root)
    return root, info


def batch_cmd(caps: Path, db: Path, *extra) -> list:
    return [PY, "-m", "inspector", "batch", str(caps), "--db", str(db), "--site", str(SITE), *map(str, extra)]


def run_ok(cmd, timeout=120) -> str:
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p.stdout


def snapshot(db: Path) -> dict:
    """Everything a batch stores, order-independent, without wall-clock or worker columns."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        snap = {
            "captures": con.execute("SELECT * EXCLUDE (elapsed_s, processed_at, worker) FROM captures "
                                    "ORDER BY sha256").fetchall(),
            "flows": con.execute("SELECT * FROM flows ORDER BY capture_sha256, seq").fetchall(),
            "alerts": con.execute("SELECT * FROM alerts ORDER BY alert_id").fetchall(),
            "daily": con.execute("SELECT * FROM daily ORDER BY ALL").fetchall(),
            "pending": con.execute("SELECT * FROM baseline_pending").fetchall(),
            "evidence": con.execute("SELECT * FROM evidence ORDER BY capture_sha256, uid").fetchall(),
            "incidents": con.execute("SELECT * FROM incidents ORDER BY night, incident_id").fetchall(),
            "dup_flows": con.execute("SELECT count(*) FROM (SELECT capture_sha256, seq FROM flows GROUP BY ALL "
                                     "HAVING count(*) > 1)").fetchone()[0],
        }
    finally:
        con.close()
    pdir = db.parent / "parquet"
    snap["parquet_files"] = sorted(os.listdir(pdir))
    snap["parquet"] = {n: pq.read_table(pdir / n).to_pylist() for n in snap["parquet_files"]}
    return snap


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory):
    """One uninterrupted local batch over the tree (2 worker processes)."""
    caps, info = tree
    db = tmp_path_factory.mktemp("ref") / "batch.duckdb"
    out = run_ok(batch_cmd(caps, db, "--workers", 2))
    assert "16 to process" in out, out
    return db, snapshot(db), out


# ----------------------------------------------------------------------------------------------
# discovery, the reference run
# ----------------------------------------------------------------------------------------------

def test_discover_hosts_and_filters(tree):
    caps, _ = tree
    found, errors = discover([str(caps), str(caps / "missing")])
    assert errors == [f"{caps / 'missing'}: no such file or directory"]
    rels = {(c.host, c.rel) for c in found}
    assert ("wms01", "wms01/dc-north-day.pcap") in rels
    assert ("edge03", os.path.join("edge03", "2025-11-24", "dup-of-a.pcap")) in rels   # deeper folders: same host
    assert not any(r.endswith((".txt", ".tmp")) for _, r in rels)
    assert len(found) == 17                              # 16 distinct contents + 1 duplicate
    assert len({file_sha256(c.path) for c in found}) == 16
    assert all(os.path.isabs(c.path) for c in found)


def test_reference_run(reference, tree):
    db, snap, out = reference
    caps, info = tree
    statuses = [c[1] for c in snap["captures"]]
    assert statuses.count("done") == info["done"] and statuses.count("error") == info["error"]
    assert "duplicate wms01/content-a-http-json.pcap: same content as edge03/2025-11-24/dup-of-a.pcap" in out
    assert snap["dup_flows"] == 0 and snap["pending"] == []
    # one Parquet file per processed capture, named by hash, the flows table's rows
    done = sorted(c[0] for c in snap["captures"] if c[1] == "done")
    assert snap["parquet_files"] == [f"{h}.parquet" for h in done]
    assert sum(len(v) for v in snap["parquet"].values()) == len(snap["flows"]) > 0
    one = snap["parquet"][f"{done[0]}.parquet"][0]
    assert "id.orig_h" in one and one["capture_sha256"] == done[0]      # scan's column names + batch columns
    # hosts come from the sub-folders; daily aggregates sum to the flows
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert {r[0] for r in con.execute("SELECT DISTINCT host FROM flows").fetchall()} == \
            {"wms01", "gw02", "edge03"}
        assert con.execute("SELECT sum(flows) FROM daily").fetchone()[0] == len(snap["flows"])
        assert con.execute("SELECT sum(orig_bytes) FROM flows WHERE direction = 'outbound'").fetchone()[0] == \
            con.execute("SELECT sum(bytes_out) FROM daily WHERE direction = 'outbound'").fetchone()[0]
        if HAVE_POLICY:
            sids = {r[0] for r in con.execute("SELECT signature_id FROM alerts WHERE source = 'policy'").fetchall()}
            assert 1000030 in sids          # the large upload to Alibaba Cloud in dc-north-exfil.pcap
    finally:
        con.close()
    # every alert belongs to an incident of its night (baseline alerts too); the incidents hold all of them
    con = duckdb.connect(str(db), read_only=True)
    try:
        alerts = con.execute("SELECT alert_id, night, incident_id, eve FROM alerts").fetchall()
        incs = {(n, i): json.loads(r) for n, i, r in
                con.execute("SELECT night, incident_id, record FROM incidents").fetchall()}
        order = con.execute("SELECT severity, records_customer + records_shipment FROM incidents "
                            "ORDER BY severity, records_customer + records_shipment DESC").fetchall()
    finally:
        con.close()
    assert alerts and all(iid is not None for _a, _n, iid, _e in alerts)
    for _aid, night, iid, eve in alerts:
        assert (night, iid) in incs and json.loads(eve)["incident_id"] == iid
    assert order == sorted(order, key=lambda r: (r[0], -r[1]))
    from inspector.outputs.schema import INCIDENTS
    for inc in incs.values():
        assert list(inc) == list(INCIDENTS.names)
        assert inc["next_steps"] and inc["next_steps"][0].startswith("inspector scan ")
    # a second run finds nothing to do, and changes nothing
    out2 = run_ok(batch_cmd(caps, db, "--workers", 2))
    assert "17 captures found, 17 already processed, 0 duplicates, 0 to process" in out2, out2
    assert snapshot(db) == snap


# ----------------------------------------------------------------------------------------------
# crash and resume
# ----------------------------------------------------------------------------------------------

def _run_and_kill(cmd) -> list:
    """Start the batch, SIGKILL it right after its first committed capture; its output lines.

    Only the batch process is killed: its worker processes must notice and exit by themselves."""
    psutil = pytest.importorskip("psutil")
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    lines = []
    children = []
    try:
        deadline = time.monotonic() + 90
        for line in p.stdout:
            lines.append(line)
            if line.startswith("committed "):
                children = psutil.Process(p.pid).children(recursive=True)
                os.kill(p.pid, signal.SIGKILL)          # the batch process itself, mid-batch
                break
            assert time.monotonic() < deadline
        p.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"worker processes outlived the killed batch: {alive}"
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)            # clean up whatever is left (our process group)
        except ProcessLookupError:
            pass
        p.stdout.close()
        p.stderr.close()
        if p.poll() is None:
            p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, (lines, p.returncode)
    assert children, "the batch had no worker processes"
    return lines


def _committed(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM captures").fetchone()[0]
    finally:
        con.close()


def test_sigkill_and_resume_loses_and_duplicates_nothing(tree, reference, tmp_path):
    caps, info = tree
    _, ref, _ = reference
    db = tmp_path / "db" / "batch.duckdb"
    cmd = batch_cmd(caps, db, "--workers", 1)           # one worker: less start-up, more left to do when killed
    _run_and_kill(cmd)
    n1 = _committed(db)
    assert 1 <= n1 < info["unique"], n1                 # killed mid-batch
    # a leftover of a write in progress when killed: ignored and removed by the next run
    stale = db.parent / "parquet" / f".{'0' * 64}.parquet.999.tmp"
    stale.write_bytes(b"PAR1 half written")
    _run_and_kill(cmd)                                  # killed again, after its own first commit
    n2 = _committed(db)
    assert n1 < n2 < info["unique"] or n2 == info["unique"]
    out = run_ok(cmd)
    m = re.search(r"(\d+) already processed", out)
    assert m and int(m.group(1)) >= n2, out
    assert not stale.exists()
    got = snapshot(db)
    assert got["dup_flows"] == 0
    for key in ("captures", "flows", "alerts", "daily", "pending", "parquet_files", "parquet"):
        assert got[key] == ref[key], key


def test_parquet_written_but_not_committed_is_redone(tree, reference, tmp_path, monkeypatch):
    """A kill between the Parquet rename and the DuckDB commit: the capture is not marked done, so the
    next run processes it again and rewrites the same file."""
    caps, info = tree
    _, ref, _ = reference
    sub = tmp_path / "caps" / "wms01"
    sub.mkdir(parents=True)
    shutil.copy(CAPS / "content-g-edifact-http.pcap", sub / "g.pcap")
    db = tmp_path / "db" / "batch.duckdb"
    settings = WorkerSettings(site=str(SITE))
    real_commit = Store.commit

    def crash_after_parquet(self, res, tz="UTC"):
        self._write_parquet(res.sha256, res.flows)
        raise KeyboardInterrupt("killed before the transaction")
    monkeypatch.setattr(Store, "commit", crash_after_parquet)
    with pytest.raises(KeyboardInterrupt):
        run_batch([str(tmp_path / "caps")], str(db), settings=settings, workers=0, quiet=True)
    assert len(os.listdir(db.parent / "parquet")) == 1 and _committed(db) == 0
    monkeypatch.setattr(Store, "commit", real_commit)
    assert run_batch([str(tmp_path / "caps")], str(db), settings=settings, workers=0, quiet=True) == 0
    assert _committed(db) == 1
    sha = file_sha256(str(sub / "g.pcap"))
    assert pq.read_table(db.parent / "parquet" / f"{sha}.parquet").num_rows == \
        len(ref["parquet"][f"{sha}.parquet"])


# ----------------------------------------------------------------------------------------------
# Dask
# ----------------------------------------------------------------------------------------------

def test_dask_cluster_equals_local(tree, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    caps, _ = tree
    _, ref, _ = reference
    db = tmp_path / "dask" / "batch.duckdb"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        worker_pids = set(client.run(os.getpid).values())
        assert len(worker_pids) == 2
        out = run_ok(batch_cmd(caps, db, "--dask", address))
    assert f"on Dask cluster {address}" in out
    got = snapshot(db)
    for key in ("captures", "flows", "alerts", "daily", "pending", "parquet_files", "parquet"):
        assert got[key] == ref[key], key
    con = duckdb.connect(str(db), read_only=True)
    try:
        pids = {int(w.rsplit(":", 1)[1]) for (w,) in con.execute(
            "SELECT worker FROM captures WHERE status = 'done'").fetchall()}
    finally:
        con.close()
    assert pids and pids <= worker_pids                # scanned on the cluster's workers


def test_cli_usage_errors(tmp_path, capsys):
    from inspector.cli import main
    assert main(["batch", str(tmp_path), "--db", str(tmp_path / "x.duckdb"), "--workers", "2",
                 "--dask", "tcp://127.0.0.1:1"]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "--db", str(tmp_path / "x.duckdb"), "--site",
                 str(tmp_path / "nosuch.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nosuch.yaml" in err and len(err.strip().splitlines()) == 1
    assert main(["report", "--db", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "r.html")]) == 2
    assert "no such database" in capsys.readouterr().err


def test_cli_wiring():
    """``inspector batch``/``inspector report`` once inspector/cli.py registers them."""
    from inspector import cli
    if "batch" not in cli._build_parser().format_help():
        pytest.skip("inspector.cli does not register the batch commands yet")
    assert cli.main(["batch", "--help"]) == 0
    assert cli.main(["report", "--help"]) == 0


# ----------------------------------------------------------------------------------------------
# baselines
# ----------------------------------------------------------------------------------------------

NIGHT0 = dt.date(2025, 11, 14)


def _flow(ts, src, dst, org, cc, out_bytes, customer=0, shipment=0, uid="C1"):
    return {"ts": ts, "uid": uid, "id.orig_h": src, "id.orig_p": 40000, "id.resp_h": dst, "id.resp_p": 443,
            "proto": "tcp", "service": "ssl", "duration": 1.0, "orig_bytes": out_bytes, "resp_bytes": 1000,
            "conn_state": "SF", "local_orig": True, "local_resp": False, "orig_pkts": 10, "resp_pkts": 5,
            "direction": "outbound", "dst_org": org, "dst_country": cc,
            "records": {"customer": customer, "shipment": shipment}}


def _epoch(night: dt.date, hour: int) -> float:
    return dt.datetime.combine(night, dt.time(hour), tzinfo=dt.timezone.utc).timestamp()


HOSTILE = 'printer<01>&"x"'


def synthetic_nights(n_nights=10):
    """Steady hosts for ``n_nights``; on the last night wms01 sends ten times its records to a new country."""
    import random
    rnd = random.Random(7)
    caps = []
    for i in range(n_nights):
        night = NIGHT0 + dt.timedelta(days=i)
        last = i == n_nights - 1
        for host, src, dests in (
                ("wms01", "172.20.1.10", [("UNITED PARCEL SERVICE", "US", 3_000_000, 60, 60),
                                          ("DHL Information Services (Europe) s.r.o", "CZ", 2_000_000, 40, 40)]),
                ("scanner07", "172.20.50.7", [("Zebra Technologies", "US", 1_500_000, 0, 0)]),
                (HOSTILE, "172.20.60.3", [("HP Inc.", "US", 800_000, 0, 0)])):
            recs = []
            for j, (org, cc, b, cu, sh) in enumerate(dests):
                k = 1 + rnd.uniform(-0.1, 0.1)
                recs.append(_flow(_epoch(night, 8 + j), src, f"198.51.100.{j + 1}", org, cc, int(b * k),
                                  int(cu * k), int(sh * k), uid=f"C{host[:3]}{i}{j}"))
            if last and host == "wms01":
                recs.append(_flow(_epoch(night, 23), src, "47.246.23.17", "Alibaba Cloud", "CN", 2_500_000,
                                  customer=900, shipment=900, uid="Cburst"))
            sha = f"{i:02d}{host[:6].encode().hex()}".ljust(64, "0")
            caps.append(result_from_records(recs, sha, host, tz="UTC"))
        if i >= 7:      # a host with too little history to judge: never alerts
            recs = [_flow(_epoch(night, 9), "172.20.2.9", "203.0.113.9", f"NewOrg{i}", f"X{i}", 10_000_000)]
            caps.append(result_from_records(recs, f"{i:02d}newbie".ljust(64, "0"), "newbie", tz="UTC"))
    return caps


def test_robust_threshold():
    med, mad, scale, thr = bl.robust_threshold([100, 98, 103, 97, 102, 250], k=5, rel_floor=0.1, abs_floor=50)
    assert med == 101 and mad == 2.5
    assert scale == 50 and thr == 351           # floors keep a steady host from alerting on noise
    med, mad, scale, thr = bl.robust_threshold([1e9, 1.1e9, 0.9e9], k=5, rel_floor=0.1, abs_floor=1)
    assert scale == pytest.approx(1.4826e8) and thr == pytest.approx(1e9 + 5 * 1.4826e8)


def test_baselines_first_seen_and_volume(tmp_path):
    db = tmp_path / "b.duckdb"
    st = Store(str(db))
    try:
        st.set_meta("tz", "UTC")
        for res in synthetic_nights():
            st.commit(res, "UTC")
        cfg = bl.BaselineConfig(nights=14, k=5.0, min_nights=5)
        nights, n = bl.run_baselines(st, cfg)
        assert nights == 10
        rows = st.query("SELECT night, host, signature_id, severity, dst_org, dst_country, eve FROM alerts "
                        "WHERE source = 'batch' ORDER BY ALL")
        last = NIGHT0 + dt.timedelta(days=9)
        assert {(r[0], r[1]) for r in rows} == {(last, "wms01")}, rows      # steady hosts and newbie: silent
        sids = {r[2]: r for r in rows}
        assert set(sids) == {bl.SID_FIRST_ORG, bl.SID_FIRST_COUNTRY, bl.SID_VOLUME_RECORDS}
        assert sids[bl.SID_FIRST_COUNTRY][5] == "CN" and sids[bl.SID_FIRST_ORG][4] == "Alibaba Cloud"
        eve = json.loads(sids[bl.SID_VOLUME_RECORDS][6])
        assert eve["event_type"] == "alert" and eve["alert"]["severity"] == 2 and eve["host"] == "wms01"
        assert bl.BATCH_SID_MIN <= eve["alert"]["signature_id"] <= bl.BATCH_SID_MAX
        b = eve["evidence"]["baseline"]
        assert b["metric"] == "records" and b["value"] > 5 * b["median"] and b["nights"] == 9
        assert eve["destination"]["country"] == "CN"           # the night's top destination for that metric
        assert eve["records"] == {"customer": eve["records"]["customer"], "shipment": eve["records"]["shipment"]}
        assert eve["window"]["group"] == {"host": "wms01"} and eve["window"]["seconds"] == 86400
        # idempotent: recomputing everything gives the same alerts, no duplicates
        before = st.query("SELECT * FROM alerts ORDER BY alert_id")
        bl.run_baselines(st, cfg, everything=True)
        assert st.query("SELECT * FROM alerts ORDER BY alert_id") == before
        # the minimum history is honoured
        strict = bl.BaselineConfig(nights=14, k=5.0, min_nights=10)
        bl.run_baselines(st, strict, everything=True)
        assert st.query("SELECT count(*) FROM alerts WHERE source = 'batch'")[0][0] == 0
        bl.run_baselines(st, cfg, everything=True)
    finally:
        st.close()

    # one end-to-end night through a real capture: wms01's captures of 2025-11-25
    caps = tmp_path / "caps" / "wms01"
    caps.mkdir(parents=True)
    shutil.copy(CAPS / "dc-north-exfil.pcap", caps / "exfil.pcap")
    assert run_batch([str(tmp_path / "caps")], str(db), settings=WorkerSettings(site=str(SITE)),
                     cfg=bl.BaselineConfig(nights=14, k=5.0, min_nights=5), workers=0, quiet=True) == 0
    st = Store(str(db), read_only=True)
    try:
        rows = st.query("SELECT signature_id, dst_org FROM alerts WHERE source = 'batch' AND night = '2025-11-25' "
                        "ORDER BY ALL")
        assert (bl.SID_FIRST_ORG, "Zhejiang Taobao Network Co.,Ltd") in rows     # Alibaba Cloud's AS org
        assert all(sid == bl.SID_FIRST_ORG for sid, _ in rows), rows               # US was seen; volume is low
        # the report of the burst night: self-contained, trend charts, alerts, names escaped
        out = tmp_path / "night.html"
        info = write_report(st, NIGHT0 + dt.timedelta(days=9), str(out), nights=14)
        page = out.read_text(encoding="utf-8")
        assert info["alerts"] == 3 and info["hosts"] == 4
        assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page.lower()
        assert "http://" not in page and "https://" not in page and "<link" not in page
        assert "First-seen destination country for this host" in page and "Alibaba Cloud" in page
        assert "printer&lt;01&gt;&amp;&quot;x&quot;" in page and HOSTILE not in page
        assert page.count('class="spark"') >= 6
        with pytest.raises(ValueError, match="no data for night 2025-01-01"):
            write_report(st, dt.date(2025, 1, 1), str(tmp_path / "none.html"))
    finally:
        st.close()
    # the CLI: default night = the latest one (the real capture's), with its policy alerts
    from inspector.cli import main
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "latest.html")]) == 0
    page = (tmp_path / "latest.html").read_text(encoding="utf-8")
    assert "Nightly report: 2025-11-25" in page and "Zhejiang Taobao" in page
    if HAVE_POLICY:
        assert "1000030" in page


# ----------------------------------------------------------------------------------------------
# incidents across captures
# ----------------------------------------------------------------------------------------------

def _scan_incidents(tmp_path: Path, *caps) -> list:
    out = tmp_path / "scan-out"
    from inspector.cli import main
    assert main(["scan", *map(str, caps), "--site", str(SITE), "--out", str(out), "-q"]) in (0, 1)
    return [json.loads(x) for x in (out / "incidents.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.skipif(not HAVE_POLICY, reason="no policy stage")
def test_batch_incidents_match_scan_and_count_records_once_across_captures(tmp_path):
    """Two captures of one host holding the same 120 records sent twice (content-a, and content-b with
    the records reordered): batch scans each alone, yet the night has one incident that counts the
    records once, as a scan of both files together does.  A third capture (the exfiltration day) gives
    the same incidents as its own scan."""
    caps = tmp_path / "caps" / "gw02"
    caps.mkdir(parents=True)
    for name in ("content-a-http-json.pcap", "content-b-http-json-reordered.pcap", "dc-north-exfil.pcap"):
        shutil.copy(CAPS / name, caps / name)
    db = tmp_path / "b.duckdb"
    assert run_batch([str(tmp_path / "caps")], str(db), settings=WorkerSettings(site=str(SITE)), workers=0,
                     quiet=True) == 0
    st = Store(str(db), read_only=True)
    try:
        incs = [json.loads(r) for (r,) in st.query("SELECT record FROM incidents ORDER BY severity, incident_id")]
        unassigned = st.query("SELECT count(*) FROM alerts WHERE incident_id IS NULL")[0][0]
    finally:
        st.close()
    assert unassigned == 0
    both = _scan_incidents(tmp_path / "ab", caps / "content-a-http-json.pcap", caps / "content-b-http-json-reordered.pcap")
    (ab,) = both
    mine = [i for i in incs if set(i["src_hosts"]) == set(ab["src_hosts"])
            and {d["name"] for d in i["destinations"]} == {d["name"] for d in ab["destinations"]}]
    assert len(mine) == 1, incs
    inc = mine[0]
    assert inc["records"] == ab["records"] and inc["records"]["shipment"] == 120      # once, not 240
    assert inc["data"] == ab["data"] and inc["flows"] == 2 == ab["flows"]
    assert sorted(inc["captures"]) == sorted(str(caps / n) for n in ("content-a-http-json.pcap",
                                                                       "content-b-http-json-reordered.pcap"))
    assert sum(1 for x in inc["next_steps"] if x.startswith("inspector scan ")) == 2
    # the exfiltration day alone: the same stories, figures and words as its scan
    exfil = _scan_incidents(tmp_path / "x", caps / "dc-north-exfil.pcap")
    key = lambda i: (i["incident_id"], i["severity"], i["title"], i["records"], i["data"], i["uids"],   # noqa: E731
                     i["bytes_out"], i["signature_ids"], i["why"])
    rest = [i for i in incs if i is not inc]
    assert sorted(map(key, rest)) == sorted(map(key, exfil))


def test_an_older_database_is_brought_up_to_date(tmp_path):
    db = tmp_path / "old.duckdb"
    Store(str(db)).close()
    con = duckdb.connect(str(db))       # what schema version 1 had: no incidents, no evidence
    con.execute("DROP TABLE incidents")
    con.execute("DROP TABLE evidence")
    con.execute("ALTER TABLE alerts DROP COLUMN incident_id")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(Exception, match="run 'inspector batch' on it once"):
        Store(str(db), read_only=True)
    st = Store(str(db))
    try:
        assert st.meta("schema_version") == "2"
        assert st.query("SELECT count(*) FROM incidents")[0][0] == 0
        assert "incident_id" in {r[0] for r in st.query("DESCRIBE alerts")}
    finally:
        st.close()
