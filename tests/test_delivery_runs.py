"""Alert delivery wired into ``scan`` and ``live``, and live's report.html, end to end in-process.

The receivers are real sockets on 127.0.0.1 (tests/helpers/receivers.py); live runs on a
test double of the libpcap capture serving a bundled capture (tests/test_live.py's
``FileSource``).  Every wait is bounded.
"""
import json
import os
import re
import signal
import threading

from helpers.receivers import (HookReceiver, TcpReceiver, UdpReceiver, free_port, parse_rfc5424, self_signed_cert,
                               wait_for)
from inspector import cli
from inspector.cli import live as live_cli
from inspector.delivery import alert_id, default_spool_root
from test_live import CAPTURES, DAY, SITE, FileSource, live_args, load_stats, read_jsonl, read_rotated

X12 = CAPTURES["content-h-x12-tcp"]          # 3 alerts
JSON_HTTP = CAPTURES["content-a-http-json"]  # 2 alerts


def scan(paths, out, *extra) -> int:
    # a generous flush bound (a loaded test machine); the tests that need a short one give it after
    return cli.main(["scan", *map(str, paths), "--out", str(out), "-q", "--alert-flush-timeout", "120",
                     *map(str, extra)])


def ids_of(out) -> list:
    return [alert_id(a) for a in read_jsonl(out / "alerts.jsonl")]


def test_scan_sends_its_alerts_to_syslog_udp_tcp_and_a_webhook(tmp_path):
    udp, tcp, rx = UdpReceiver(), TcpReceiver(), HookReceiver()
    out = tmp_path / "out"
    try:
        rc = scan([X12], out, "--alert-syslog", f"127.0.0.1:{udp.port}",
                  "--alert-syslog", f"tcp://127.0.0.1:{tcp.port}", "--alert-syslog-facility", "local4",
                  "--alert-webhook", rx.url, "--alert-spool", tmp_path / "spool")
        assert rc == 0
        ids = ids_of(out)
        assert len(ids) == 3
        got_udp = udp.messages(3)
        assert wait_for(lambda: len(tcp.frames) >= 3)
    finally:
        udp.close()
        tcp.stop()
        rx.stop()
    assert rx.accepted() == ids                                    # in order, each once
    for msgs in (got_udp, tcp.frames):
        parsed = [parse_rfc5424(m) for m in msgs]
        assert sorted(dict(p["sd"]["inspector@32473"])["alert_id"] for p in parsed) == sorted(ids)
        assert {p["facility"] for p in parsed} == {20}
    st = json.loads((out / "stats.json").read_text())["delivery"]
    assert (st["sent"], st["spooled"], st["dropped"], st["failed"]) == (9, 0, 0, 0)
    assert [s["kind"] for s in st["sinks"]] == ["syslog", "syslog", "webhook"]
    assert "secret" not in json.dumps(st)


def test_scan_without_delivery_options_has_no_delivery_stats(tmp_path):
    assert scan([X12], tmp_path / "out") == 0
    assert "delivery" not in json.loads((tmp_path / "out" / "stats.json").read_text())
    assert not os.path.exists(default_spool_root(str(tmp_path / "out")))


def test_scan_spools_while_the_receiver_is_down_and_the_next_run_sends_it_first(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/alerts"
    out1, out2, out3 = tmp_path / "run1", tmp_path / "run2", tmp_path / "run3"
    # run 1: nobody listens; the default spool is beside the output directory
    assert scan([X12], out1, "--alert-webhook", url, "--alert-flush-timeout", "1") == 0
    st1 = json.loads((out1 / "stats.json").read_text())["delivery"]
    assert st1["sent"] == 0 and st1["spooled"] == 3 and st1["sinks"][0]["spool_pending"] == 3
    spool = st1["sinks"][0]["spool"]
    assert spool.startswith(default_spool_root(str(out1)))
    rx = HookReceiver(port)
    try:
        # run 2 (another capture, the same spool): the three spooled alerts go first
        assert scan([JSON_HTTP], out2, "--alert-webhook", url, "--alert-spool", default_spool_root(str(out1))) == 0
        # run 3: the first capture again: its alerts were delivered already
        assert scan([X12], out3, "--alert-webhook", url, "--alert-spool", default_spool_root(str(out1))) == 0
    finally:
        rx.stop()
    assert rx.accepted() == ids_of(out1) + ids_of(out2)
    st2 = json.loads((out2 / "stats.json").read_text())["delivery"]["sinks"][0]
    assert st2["from_spool"] == 3 and st2["spool_loaded"] == 3 and st2["spool_pending"] == 0
    st3 = json.loads((out3 / "stats.json").read_text())["delivery"]["sinks"][0]
    assert st3["sent"] == 0 and st3["duplicates"] == 3


def test_scan_posts_over_https_to_a_receiver_signed_by_a_private_ca(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    rx = HookReceiver(tls=(cert, key))
    try:
        # without the CA the server cannot be verified: nothing is sent, everything is spooled
        assert scan([X12], tmp_path / "out1", "--alert-webhook", rx.url, "--alert-flush-timeout", "1") == 0
        st1 = json.loads((tmp_path / "out1" / "stats.json").read_text())["delivery"]
        assert rx.posts == [] and st1["spooled"] == 3 and "CERTIFICATE_VERIFY_FAILED" in st1["sinks"][0]["last_error"]
        assert scan([X12], tmp_path / "out2", "--alert-webhook", rx.url, "--alert-webhook-ca", cert,
                    "--alert-spool", default_spool_root(str(tmp_path / "out1"))) == 0
    finally:
        rx.stop()
    assert rx.accepted() == ids_of(tmp_path / "out1")
    st2 = json.loads((tmp_path / "out2" / "stats.json").read_text())["delivery"]["sinks"][0]
    assert st2["from_spool"] == 3 and st2["duplicates"] == 3 and st2["spool_pending"] == 0


def test_scan_rejects_bad_delivery_options(tmp_path, capsys):
    for bad in (["--alert-webhook", "ftp://x/y"], ["--alert-syslog", "host-without-port"],
                ["--alert-syslog-facility", "local9"], ["--alert-webhook-header", "no colon"],
                ["--alert-webhook", "https://127.0.0.1:9/", "--alert-webhook-ca", tmp_path / "missing.pem"]):
        assert scan([X12], tmp_path / "out", *bad) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert scan([X12], tmp_path / "out", "--alert-webhook", "http://127.0.0.1:9/", "--alert-spool", blocker) == 2
    assert "alert spool" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# live
# ----------------------------------------------------------------------------------------------

def run_live(tmp_path, source, extra=()):
    out = tmp_path / "out"
    args = live_args(["-i", "fake0", "--out", out, "--site", SITE, "--stats-interval", "0.2", "-q",
                      "--alert-flush-timeout", "120", *extra])
    n = len(source.records)

    def stopper():
        try:
            wait_for(lambda: load_stats(out).get("packets_read") == n, 120)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)
    t = threading.Thread(target=stopper, daemon=True)
    t.start()
    rc = live_cli.run(args, {}, capture=source)
    t.join()
    return rc, out


def test_live_sends_alerts_as_they_fire(tmp_path):
    rx = HookReceiver()
    udp = UdpReceiver()
    try:
        rc, out = run_live(tmp_path, FileSource(X12), ["--alert-webhook", rx.url, "--alert-syslog",
                                                       f"127.0.0.1:{udp.port}"])
        assert rc == 0
        ids = [alert_id(a) for a in read_rotated(out, "alerts")]
        assert len(ids) == 3
        got = udp.messages(3)
    finally:
        rx.stop()
        udp.close()
    assert rx.accepted() == ids
    assert sorted(dict(parse_rfc5424(m)["sd"]["inspector@32473"])["alert_id"] for m in got) == sorted(ids)
    st = load_stats(out)
    assert st["delivery"]["sent"] == 6 and st["delivery"]["failed"] == 0
    assert os.path.isdir(default_spool_root(str(out)))


def flows_in_report(path) -> int:
    m = re.search(r"<b>([\d,]+)</b> flows", path.read_text(encoding="utf-8"))
    assert m, path
    return int(m.group(1).replace(",", ""))


def test_live_writes_report_html_on_rotation_and_at_exit(tmp_path):
    rc, out = run_live(tmp_path, FileSource(DAY, per_dispatch=25), ["--rotate-mb", "0.004", "--batch-packets", "50"])
    assert rc == 0
    rotated = sorted(out.glob("flows-*.jsonl"))
    assert len(rotated) >= 2
    for p in rotated:
        suffix = p.name[len("flows-"):-len(".jsonl")]
        report = out / f"report-{suffix}.html"
        assert report.exists(), report
        assert flows_in_report(report) == len(read_jsonl(p))      # the same period as the flow file
    assert flows_in_report(out / "report.html") == len(read_jsonl(out / "flows.jsonl"))
    st = load_stats(out)
    assert st["reports_written"] == len(rotated) + 1 and st["report_errors"] == 0
    assert not list(out.glob("*.tmp"))


def test_live_session_retires_an_earlier_report_with_its_flows(tmp_path):
    from test_live import _feed_file, _session
    s = _session(tmp_path)
    _feed_file(s, X12, chunk=10)
    s.finish()
    assert (tmp_path / "report.html").exists()
    s2 = _session(tmp_path)                                     # a second run into the same directory
    suffix = s2.sink.flow_log.retired_suffix
    assert suffix and (tmp_path / f"flows-{suffix}.jsonl").exists()
    assert (tmp_path / f"report-{suffix}.html").exists() and not (tmp_path / "report.html").exists()
    s2.finish()
    assert (tmp_path / "report.html").exists()


# ----------------------------------------------------------------------------------------------
# batch
# ----------------------------------------------------------------------------------------------

def db_alert_ids(db, source) -> list:
    from inspector.batch.store import Store
    st = Store(str(db), read_only=True)
    try:
        return [r[0] for r in st.query(f"SELECT alert_id FROM alerts WHERE source = '{source}' ORDER BY alert_id")]
    finally:
        st.close()


def test_batch_sends_each_committed_captures_alerts_once(tmp_path):
    import shutil

    from inspector.cli import main as batch_main
    host = tmp_path / "caps" / "wms01"
    host.mkdir(parents=True)
    for p in (X12, JSON_HTTP):
        shutil.copy(p, host / p.name)
    db = tmp_path / "db" / "batch.duckdb"
    db.parent.mkdir()
    rx = HookReceiver()
    argv = ["batch", str(tmp_path / "caps"), "--db", str(db), "--site", str(SITE), "--workers", "0", "-q",
            "--alert-webhook", rx.url, "--alert-flush-timeout", "120"]
    try:
        assert batch_main(argv) == 0
        shutil.copy(CAPTURES["content-i-dns-exfil"], host / "later.pcap")     # the next night's new capture
        assert batch_main(argv) == 0
    finally:
        rx.stop()
    ids = db_alert_ids(db, "policy")
    assert len(ids) == 7 and sorted(rx.accepted()) == ids                # the database's ids, each once
    assert os.path.isdir(db.parent / "alert-spool")


def test_batch_baseline_alerts_are_delivered_with_their_ids(tmp_path):
    from inspector.batch import baseline as bl
    from inspector.batch.store import Store
    from inspector.delivery import AlertDelivery
    from inspector.delivery.webhook import WebhookSink
    from test_batch import synthetic_nights
    rx = HookReceiver()
    db = tmp_path / "b.duckdb"
    st = Store(str(db))
    d = AlertDelivery([WebhookSink(rx.url, str(tmp_path / "spool"))])
    try:
        st.set_meta("tz", "UTC")
        for res in synthetic_nights():
            st.commit(res, "UTC")
        cfg = bl.BaselineConfig(nights=14, k=5.0, min_nights=5)
        bl.run_baselines(st, cfg, on_alerts=d)
        bl.run_baselines(st, cfg, everything=True, on_alerts=d)       # recomputed: the same alerts again
        d.close(120)
    finally:
        st.close()
        rx.stop()
    ids = db_alert_ids(db, "batch")
    assert len(ids) == 3
    assert sorted(p["body"]["alert_id"] for p in rx.posts) == ids       # sent once, with the database's id
    assert sorted(rx.accepted()) == sorted(alert_id({"alert_id": i}) for i in ids)
    assert d.stats()["sinks"][0]["duplicates"] == 3
