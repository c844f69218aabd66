"""Application layer end to end: detection by content, related connections, destination names."""
from __future__ import annotations

import os

import pytest

from inspector.pipeline import run_scan
from inspector.site import load_site

from corpus import corpus_root

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAP = os.path.join(REPO, "captures")


def _flows(path, **kw):
    return run_scan([path], **kw).flows


def test_ftp_data_channels_active_and_passive():
    """PORT (the server connects from port 20 to the client) and PASV (the client connects to the
    announced port) data connections are labelled ftp-data."""
    svc = {(f["id.orig_h"], f["id.orig_p"], f["id.resp_h"], f["id.resp_p"]): f["service"]
           for f in _flows(os.path.join(CAP, "content-f-ftp.pcap"))}
    assert svc[("192.0.2.21", 20, "172.20.1.12", 54191)] == "ftp-data"      # active mode (PORT)
    assert svc[("172.20.1.11", 48152, "192.0.2.21", 40036)] == "ftp-data"   # passive mode (PASV)
    assert svc[("172.20.1.12", 54184, "192.0.2.21", 21)] == "ftp"


def test_protocol_on_a_non_standard_port():
    """HTTP on port 22 is HTTP, not SSH: detection is by content."""
    path = corpus_root() / "zeek/Traces/http/http-single-conn-22.pcap"
    if not path.exists():
        pytest.skip("../shared/corpus absent")
    res = run_scan([str(path)])
    tcp = [f for f in res.flows if f["proto"] == "tcp" and 22 in (f["id.resp_p"], f["id.orig_p"])]
    assert tcp and all(f["service"] == "http" for f in tcp)
    assert res.logs.get("http"), "no http.log records"
    assert "ssh" not in res.logs


def test_x12_on_port_5000_is_typed_by_content():
    site = load_site(os.path.join(CAP, "site-dc-north.yaml"))
    from inspector.settings import build_content
    flows = _flows(os.path.join(CAP, "content-h-x12-tcp.pcap"), site=site, content=build_content(site))
    f = next(f for f in flows if f["id.resp_p"] == 5000)
    assert f["payload_type"] == "x12"
    assert f["data"]["x12_transaction"] == 2


def test_destination_names_and_their_sources():
    site = load_site(os.path.join(CAP, "site-dc-north.yaml"))
    flows = _flows(os.path.join(CAP, "dc-north-day.pcap"), site=site)
    by = {}
    for f in flows:
        if f["direction"] == "outbound":
            by.setdefault((f["id.resp_h"], f["id.resp_p"]), set()).add((f["dst_name"], f["dst_name_source"]))
    # TLS: the SNI names the destination
    assert ("api.ups.com", "sni") in by[("153.2.238.50", 443)]
    # plain HTTP: the Host header
    assert ("api.partner.example", "http_host") in by[("198.51.100.20", 80)]
    # NTP: only the DNS answer seen before the connection names it
    assert ("time.cloudflare.com", "dns") in by[("162.159.200.123", 123)]


def test_tls_after_starttls_and_preamble():
    root = corpus_root()
    cases = {"zeek/Traces/tls/smtp-starttls.pcap": "smtp", "zeek/Traces/mysql/encrypted.pcap": None}
    if not (root / "zeek").exists():
        pytest.skip("../shared/corpus absent")
    for rel, first in cases.items():
        res = run_scan([str(root / rel)])
        svcs = [f["service"] or "" for f in res.flows if f["proto"] == "tcp"]
        assert any("ssl" in s for s in svcs), (rel, svcs)
        if first:
            assert any(first in s for s in svcs), (rel, svcs)
        assert res.logs.get("tls"), rel
