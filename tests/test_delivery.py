"""Alert delivery (inspector.delivery) against real receivers on 127.0.0.1.

Syslog messages are parsed by a strict RFC 5424 parser written from the ABNF
(tests/helpers/receivers.py); TCP streams are split by RFC 6587 octet counting; the web hook
receiver is an http.server that can answer 500, hang, or be down (nothing listening).
Every wait is bounded; no traffic leaves the loopback interface.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from helpers.receivers import (HookReceiver, SyslogParseError, TcpReceiver, UdpReceiver, free_port, parse_rfc5424,
                               split_octet_counted, wait_for)
from inspector.delivery import AlertDelivery, alert_id
from inspector.delivery.message import packet_time, summary
from inspector.delivery.spool import Journal, Spool, SpoolBusy
from inspector.delivery.syslog import (SEVERITY_TO_SYSLOG, SyslogSink, escape_param, format_message,
                                       frame_octet_counted, parse_target)
from inspector.delivery.webhook import WebhookSink, redact_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAW_EMAIL = "alice.smith@example.org"


def make_alert(i=0, sev=2, **extra):
    a = {
        "timestamp": f"2025-11-25T09:30:{i % 60:02d}.123456+0000", "event_type": "alert",
        "src_ip": "10.40.1.12", "src_port": 52000 + i, "dest_ip": "203.0.113.5", "dest_port": 443,
        "proto": "TCP", "app_proto": "tls", "community_id": "1:abc=", "uids": [f"C{i:05d}"],
        "alert": {"action": "allowed", "gid": 1, "signature_id": 1000001 + i, "rev": 1,
                  "signature": "Customer records sent to a destination that is not allow-listed",
                  "category": "exfiltration", "severity": sev, "metadata": {}},
        "destination": {"name": "api.example.net", "address": "203.0.113.5", "country": "HK", "asn": 45102,
                        "org": "Alibaba Cloud", "group": None, "category": None, "allowed": False},
        "data": {"email": 3}, "records": {"customer": 120 + i, "shipment": 0},
        "bytes_out": 59224, "bytes_in": 171, "flows": 1,
        "evidence": {"samples": {"email": [RAW_EMAIL, "bob@example.org"]}},
        "site": "dc-north",
    }
    a.update(extra)
    return a


def sd_params(parsed) -> dict:
    return dict(parsed["sd"]["inspector@32473"])


# ----------------------------------------------------------------------------------------------
# message contents
# ----------------------------------------------------------------------------------------------

def test_alert_id_stable_and_prefers_the_alerts_own():
    a = make_alert(1)
    assert alert_id(a) == alert_id(json.loads(json.dumps(a)))          # same content, same id
    assert alert_id(a) != alert_id(make_alert(2))
    assert alert_id(make_alert(1, alert_id="A-123_x")) == "A-123_x"
    assert alert_id(make_alert(1, alert_id="x1\n")) == alert_id({"alert_id": "x1\n"}) != "x1\n"
    odd = alert_id(make_alert(1, alert_id="batch:2025-11-25:1100001:host=dc 1:bytes_out"))
    assert odd.startswith("a-") and odd == alert_id(make_alert(2, alert_id="batch:2025-11-25:1100001:host=dc 1:"
                                                                            "bytes_out"))   # its digest, stable


def test_packet_time_is_rfc3339_utc():
    assert packet_time(make_alert(5)) == "2025-11-25T09:30:05.123456Z"
    assert packet_time({"timestamp": "2025-11-25T10:30:00+01:00"}) == "2025-11-25T09:30:00.000000Z"
    assert packet_time({"timestamp": 1764063000.5}) == "2025-11-25T09:30:00.500000Z"
    assert packet_time({"timestamp": "yesterday"}) is None
    assert packet_time({}) is None


def test_summary_is_one_line_and_masks_evidence():
    a = make_alert(0, evidence={"samples": {"email": [RAW_EMAIL], "phone": ["+4915112345678"]}})
    a["alert"]["signature"] = "line one\nline two\r\x00"
    s = summary(a)
    assert "\n" not in s and "\r" not in s and "\x00" not in s
    assert RAW_EMAIL not in s and "+4915112345678" not in s
    assert "a***" in s and "[high]" in s and "api.example.net" in s and "120 customer records" in s


# ----------------------------------------------------------------------------------------------
# syslog
# ----------------------------------------------------------------------------------------------

def test_parse_target():
    assert parse_target("127.0.0.1:514") == ("udp", "127.0.0.1", 514)
    assert parse_target("tcp://[::1]:6514") == ("tcp", "::1", 6514)
    for bad in ("127.0.0.1", "http://x:1", "udp://x:0", "udp://x:99999", "tcp://x:1/path", ""):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_strict_parser_rejects_what_the_rfc_forbids():
    good = b'<134>1 2025-11-25T09:30:00.1Z h app 1 ID [a@32473 k="v\\]"] \xef\xbb\xbfhi'
    assert parse_rfc5424(good)["sd"]["a@32473"] == [("k", "v]")]
    for bad in (b'<192>1 - h a p m -', b'<13>0 - h a p m -', b'<13>1 2025-13-01T00:00:00Z h a p m -',
                b'<13>1 2025-02-30T00:00:00Z h a p m -', b'<13>1 2025-01-01T00:00:00.1234567Z h a p m -',
                b'<13>1 - h a p m [x k="a]b"]', b'<13>1 - h a p m [x k="v"][x k="w"]',
                b'<13>1 - h a p m [x=y k="v"]', b'<13>1 - h a p m [x@ab k="v"]',
                b'<13>1 - ' + b"h" * 256 + b' a p m -', b'<13>1 - h a p m - \xef\xbb\xbf\xff',
                b'<13>1 - h a p ' + b"m" * 33 + b' -'):
        with pytest.raises(SyslogParseError):
            parse_rfc5424(bad)


def test_sd_escaping_round_trips():
    nasty = 'in"c\\id]ent"]\\'
    assert escape_param(nasty) == 'in\\"c\\\\id\\]ent\\"\\]\\\\'
    a = make_alert(0, incident_id=nasty)
    a["alert"]["signature_id"] = 'x"]\\'
    p = parse_rfc5424(format_message(a, hostname="h", procid=1))
    params = sd_params(p)
    assert params["incident_id"] == nasty
    assert params["signature_id"] == 'x"]\\'


def test_syslog_udp_messages_are_rfc5424():
    rx = UdpReceiver()
    alerts = [make_alert(0, sev=1, incident_id="I-1"), make_alert(1, sev=2), make_alert(2, sev=3),
              make_alert(3, sev=4)]
    del alerts[3]["timestamp"]
    d = AlertDelivery([SyslogSink(f"127.0.0.1:{rx.port}", facility="local3", hostname="sensor-1")])
    try:
        d(alerts)
        got = rx.messages(4)
    finally:
        d.close(5)
        rx.close()
    assert len(got) == 4
    parsed = sorted((parse_rfc5424(m) for m in got), key=lambda p: sd_params(p)["signature_id"])
    for a, p in zip(alerts, parsed):
        assert p["version"] == 1
        assert p["facility"] == 19
        assert p["severity"] == SEVERITY_TO_SYSLOG[a["alert"]["severity"]]
        assert p["timestamp"] == packet_time(a)
        assert p["hostname"] == "sensor-1" and p["app_name"] == "inspector" and p["msgid"] == "alert"
        assert p["procid"] == str(os.getpid())
        params = sd_params(p)
        assert params["signature_id"] == str(a["alert"]["signature_id"])
        assert params["severity"] == {1: "critical", 2: "high", 3: "medium", 4: "low"}[a["alert"]["severity"]]
        assert params["src"] == f"10.40.1.12:{a['src_port']}" and params["dst"] == "203.0.113.5:443"
        assert params["alert_id"] == alert_id(a)
        assert params.get("incident_id") == a.get("incident_id")
        assert p["bom"] and "\n" not in p["msg"]
        assert RAW_EMAIL not in p["msg"] and "a***" in p["msg"]
    assert parsed[3]["timestamp"] is None                     # no packet time: NILVALUE
    st = d.stats()
    assert st["sent"] == 4 and st["failed"] == 0 and st["sinks"][0]["target"].startswith("udp://127.0.0.1:")


def test_syslog_udp_message_is_cut_to_2048_octets_at_a_character():
    rx = UdpReceiver()
    a = make_alert(0)
    a["alert"]["signature"] = "é€" * 3000
    d = AlertDelivery([SyslogSink(f"udp://127.0.0.1:{rx.port}")])
    try:
        d([a])
        got = rx.messages(1)
    finally:
        d.close(5)
        rx.close()
    assert len(got) == 1 and len(got[0]) <= 2048
    assert parse_rfc5424(got[0])["msg"].startswith("[high]")


def test_syslog_tcp_octet_counting_and_reconnect():
    rx = TcpReceiver()
    sink = SyslogSink(f"tcp://127.0.0.1:{rx.port}", hostname="sensor-1")
    d = AlertDelivery([sink])
    try:
        d([make_alert(i) for i in range(5)])
        assert wait_for(lambda: len(rx.frames) >= 5)
        rx.stop()                                  # the server goes away; the sink must notice
        d([make_alert(i) for i in range(5, 7)])
        wait_for(lambda: sink.stats()["retried"] >= 1, timeout=10)
        rx.start()                                 # back on the same port
        assert wait_for(lambda: len(rx.frames) >= 7)
    finally:
        d.close(5)
        rx.stop()
    assert not rx.errors
    assert rx.connections >= 2
    ids = [sd_params(parse_rfc5424(f))["signature_id"] for f in rx.frames]
    assert sorted(ids) == sorted(str(1000001 + i) for i in range(7))
    assert d.stats()["sent"] == 7 and d.stats()["failed"] == 0


def test_octet_counting_framing():
    msg = format_message(make_alert(0), hostname="h", procid=1)
    buf = bytearray(frame_octet_counted(msg) + frame_octet_counted(msg)[:10])
    assert split_octet_counted(buf) == [msg]
    with pytest.raises(SyslogParseError):
        split_octet_counted(bytearray(b"012 abc"))


# ----------------------------------------------------------------------------------------------
# web hook
# ----------------------------------------------------------------------------------------------

def spool_files(path) -> list:
    """Files of a spool directory other than its lock and the journal of delivered ids."""
    return sorted(n for n in os.listdir(path) if n not in ("sent", "lock"))


def hook(url, spool, **kw):
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_cap", 0.2)
    kw.setdefault("timeout", 3.0)
    return WebhookSink(url, str(spool), **kw)


def test_webhook_posts_json_with_idempotency_key(tmp_path):
    rx = HookReceiver()
    d = AlertDelivery([hook(rx.url, tmp_path / "spool", headers=["Authorization: Bearer t0ken"])])
    alerts = [make_alert(i) for i in range(3)] + [make_alert(9, alert_id="given-id")]
    try:
        d(alerts)
        assert wait_for(lambda: len(rx.accepted()) == 4)
    finally:
        d.close(5)
        rx.stop()
    assert rx.accepted() == [alert_id(a) for a in alerts]
    for a, p in zip(alerts, rx.posts):
        assert p["path"] == "/hook?token=secret"
        assert p["headers"]["Content-Type"] == "application/json"
        assert p["headers"]["Authorization"] == "Bearer t0ken"
        assert p["body"]["alert_id"] == p["key"] == alert_id(a)
        assert p["body"]["alert"]["signature_id"] == a["alert"]["signature_id"]
    st = d.stats()
    assert (st["sent"], st["retried"], st["spooled"], st["dropped"], st["failed"]) == (4, 0, 0, 0, 0)
    assert "secret" not in json.dumps(st) and st["sinks"][0]["url"] == redact_url(rx.url)
    assert spool_files(tmp_path / "spool") == []


def test_webhook_retries_500_twice_then_200(tmp_path):
    rx = HookReceiver()
    rx.plan = [500, 500]
    d = AlertDelivery([hook(rx.url, tmp_path / "spool")])
    a = make_alert(0)
    try:
        d([a])
        assert wait_for(lambda: rx.accepted() == [alert_id(a)])
    finally:
        d.close(5)
        rx.stop()
    assert [p["status"] for p in rx.posts] == [500, 500, 200]
    assert {p["key"] for p in rx.posts} == {alert_id(a)}
    st = d.stats()
    assert (st["sent"], st["retried"], st["spooled"], st["failed"]) == (1, 2, 0, 0)


def test_webhook_gives_up_on_a_4xx(tmp_path):
    rx = HookReceiver()
    rx.plan = [400]
    d = AlertDelivery([hook(rx.url, tmp_path / "spool")])
    try:
        d([make_alert(0), make_alert(1)])
        assert wait_for(lambda: len(rx.posts) == 2)
    finally:
        d.close(5)
        rx.stop()
    st = d.stats()
    assert (st["sent"], st["failed"], st["retried"], st["spooled"]) == (1, 1, 0, 0)


def test_webhook_down_then_up_spools_then_delivers_in_order(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    sink = hook(url, tmp_path / "spool", attempts=2)
    d = AlertDelivery([sink])
    alerts = [make_alert(i) for i in range(6)]
    rx = None
    try:
        d(alerts[:4])                                    # nothing listens: connection refused
        assert wait_for(lambda: sink.stats()["spooled"] == 4)
        assert len(sink.spool) == 4 and any(n.startswith("spool-") for n in os.listdir(tmp_path / "spool"))
        rx = HookReceiver(port)                          # the receiver comes back
        d(alerts[4:])
        assert wait_for(lambda: len(rx.accepted()) == 6)
    finally:
        d.close(5)
        if rx is not None:
            rx.stop()
    assert rx.accepted() == [alert_id(a) for a in alerts]      # in order, each once
    st = d.stats()
    assert st["sent"] == 6 and st["dropped"] == 0 and st["failed"] == 0 and st["retried"] >= 1
    assert st["sinks"][0]["from_spool"] >= 4 and st["sinks"][0]["spool_pending"] == 0
    assert spool_files(tmp_path / "spool") == []


_CHILD = textwrap.dedent("""
    import json, sys
    from inspector.delivery import AlertDelivery
    from inspector.delivery.webhook import WebhookSink
    url, spool, alerts_path, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    alerts = json.load(open(alerts_path))
    d = AlertDelivery([WebhookSink(url, spool, backoff_base=0.01, backoff_cap=0.2, timeout=2.0, attempts=2)])
    d(alerts)
    d.close(timeout)
    print(json.dumps(d.stats()))
""")


def run_child(url, spool, alerts, tmp_path, timeout=3.0) -> dict:
    path = tmp_path / f"alerts-{len(os.listdir(tmp_path))}.json"
    path.write_text(json.dumps(alerts))
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", _CHILD, url, str(spool), str(path), str(timeout)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_webhook_spool_survives_a_process_restart(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    spool = tmp_path / "spool"
    first = [make_alert(i) for i in range(5)]
    st1 = run_child(url, spool, first, tmp_path, timeout=1.0)       # receiver down for the whole run
    assert st1["sent"] == 0 and st1["spooled"] == 5 and st1["sinks"][0]["spool_pending"] == 5
    rx = HookReceiver(port)
    try:
        second = first[2:] + [make_alert(i) for i in range(5, 8)]    # a re-run: 3 of them fire again
        st2 = run_child(url, spool, second, tmp_path, timeout=60.0)
    finally:
        rx.stop()
    keys = rx.accepted()
    assert keys[:5] == [alert_id(a) for a in first]                    # the spool goes first, in order
    assert sorted(keys) == sorted({alert_id(a) for a in first + second})   # every alert once
    assert st2["sinks"][0]["spool_loaded"] == 5 and st2["sinks"][0]["from_spool"] == 5
    assert st2["sinks"][0]["duplicates"] == 3 and st2["sinks"][0]["spool_pending"] == 0
    assert spool_files(spool) == []
    # a third run raising the same alerts again sends none of them: the journal remembers
    rx = HookReceiver(port)
    try:
        st3 = run_child(url, spool, first + second, tmp_path, timeout=60.0)
    finally:
        rx.stop()
    assert rx.posts == [] and st3["sent"] == 0 and st3["sinks"][0]["duplicates"] == 11


def test_webhook_close_spools_the_queue_and_the_request_in_flight(tmp_path):
    rx = HookReceiver()
    rx.hang = 3.0                                   # answers after the flush deadline
    sink = hook(rx.url, tmp_path / "spool", timeout=2.5)
    d = AlertDelivery([sink])
    alerts = [make_alert(i) for i in range(4)]
    d(alerts)
    assert wait_for(lambda: len(rx.posts) >= 1)
    d.close(0.2)
    assert len(sink.spool) + sink.counters["sent"] == 4
    sp = Spool(str(tmp_path / "spool"))
    pending = sp.pending_ids()
    sp.close()
    assert set(pending) | set(rx.accepted()) >= {alert_id(a) for a in alerts}
    rx.hang = 0.0
    d2 = AlertDelivery([hook(rx.url, tmp_path / "spool")])
    try:
        assert wait_for(lambda: set(rx.accepted()) >= {alert_id(a) for a in alerts})
    finally:
        d2.close(5)
        rx.stop()
    # a request the receiver saw but did not answer in time may come again, under the same key
    assert len(rx.accepted()) <= len(alerts) + 1
    assert {p["key"] for p in rx.posts} == {alert_id(a) for a in alerts}


def test_webhook_queue_is_bounded_and_submit_never_waits(tmp_path):
    rx = HookReceiver()
    rx.hang = 1.0
    sink = hook(rx.url, tmp_path / "spool", queue_size=5)
    d = AlertDelivery([sink])
    d([make_alert(i) for i in range(20)])          # the delivery thread holds at most one, the queue five
    st = sink.stats()
    assert st["submitted"] == 20 and st["dropped"] >= 14 and st["queued"] <= 5
    d.close(0.1)
    rx.stop()


# ----------------------------------------------------------------------------------------------
# the spool
# ----------------------------------------------------------------------------------------------

def test_spool_is_bounded(tmp_path):
    sp = Spool(str(tmp_path), max_bytes=4096, segment_bytes=1024)
    body = b'{"x":"' + b"y" * 200 + b'"}'
    refused = []
    for i in range(40):
        refused += sp.append([(f"id-{i}", body)])
    assert refused and len(sp) + len(refused) == 40
    assert sp.bytes <= 4096 and sp.disk_bytes() <= 4096 + 1024
    for aid in sp.pending_ids()[:5]:
        sp.ack(aid)
    assert sp.append([("late", body)]) == []        # room again after acknowledgements
    sp.close()


def test_spool_recovers_from_torn_and_corrupt_lines(tmp_path):
    sp = Spool(str(tmp_path))
    sp.append([(f"id-{i}", b'{"n":%d}' % i) for i in range(5)])
    sp.ack("id-0")
    sp.append([("id-1", b'{"n":1}')])              # already pending: not twice
    sp.close()
    seg = sorted(n for n in os.listdir(tmp_path) if n.startswith("spool-"))[-1]
    with open(tmp_path / seg, "r+b") as fh:
        data = fh.read()
        lines = data.split(b"\n")
        lines[2] = lines[2].replace(b'"n":2', b'"n":7')     # a flipped byte: CRC mismatch
        fh.seek(0)
        fh.write(b"\n".join(lines) + b"0000abcd id-9 {\"cut")   # and a torn last line
        fh.truncate()
    sp2 = Spool(str(tmp_path))
    assert sp2.pending_ids() == ["id-1", "id-3", "id-4"]
    assert sp2.corrupt == 2 and sp2.loaded == 3
    assert sp2.peek() == ("id-1", b'{"n":1}')
    assert len(spool_files(tmp_path)) == 1                 # compacted into one segment
    for aid in sp2.pending_ids():
        sp2.ack(aid)
    assert spool_files(tmp_path) == []
    sp2.close()


def test_spool_is_held_by_one_process_at_a_time(tmp_path):
    sp = Spool(str(tmp_path))
    with pytest.raises(SpoolBusy, match=f"pid {os.getpid()}"):
        Spool(str(tmp_path))
    sp.close()
    Spool(str(tmp_path)).close()


def test_journal_remembers_the_newest_ids_across_reopening(tmp_path):
    j = Journal(str(tmp_path), keep=10)
    for i in range(35):
        j.add(f"id-{i}")
    j.close()
    with open(tmp_path / "sent", "ab") as fh:
        fh.write(b"id-torn")                      # a crash in the middle of a line
    j2 = Journal(str(tmp_path), keep=10)
    assert "id-34" in j2 and "id-25" in j2 and "id-24" not in j2 and "id-torn" not in j2
    assert len(j2) == 10 and (tmp_path / "sent").read_bytes().count(b"\n") == 10
    j2.close()


def test_what_is_sent_is_fixed_at_submit_and_a_bad_alert_is_counted(tmp_path):
    rx = HookReceiver()
    rx.hang = 0.3                                   # the thread is still busy when the alert changes
    d = AlertDelivery([hook(rx.url, tmp_path / "spool")])
    first, second = make_alert(0), make_alert(1)
    bad = make_alert(2, weird={(1, 2): "a tuple key cannot be JSON"})
    try:
        d([first, bad, second])
        second["incident_id"] = "set-later"         # a later stage annotating alerts in place
        assert wait_for(lambda: len(rx.accepted()) == 2)
    finally:
        d.close(5)
        rx.stop()
    assert [p["body"].get("incident_id") for p in rx.posts] == [None, None]
    st = d.stats()
    assert st["sent"] == 2 and st["failed"] == 1 and "cannot encode" in st["sinks"][0]["last_error"]


def test_https_receiver_verified_against_the_given_ca(tmp_path):
    import argparse

    from helpers.receivers import self_signed_cert
    from inspector.delivery import add_arguments, from_args
    cert, key = self_signed_cert(tmp_path)
    rx = HookReceiver(tls=(cert, key))
    p = argparse.ArgumentParser()
    add_arguments(p)
    try:
        for ca, expect in ((None, 0), (cert, 1)):
            argv = ["--alert-webhook", rx.url, "--alert-spool", str(tmp_path / f"spool-{expect}")]
            d = from_args(p.parse_args(argv + (["--alert-webhook-ca", cert] if ca else [])), str(tmp_path))
            d([make_alert(0)])
            if expect:
                assert wait_for(lambda: len(rx.accepted()) == 1)
            d.close(1)
            st = d.stats()
            assert st["sent"] == expect and st["spooled"] == 1 - expect
            if not expect:
                assert "CERTIFICATE_VERIFY_FAILED" in st["sinks"][0]["last_error"] and rx.posts == []
    finally:
        rx.stop()
