"""Protocol dispatch and what protocol modules declare (inspector/dispatch, protocols/base.py).

The dummy protocol (tests/dummy_protocol.py) is registered through the registry API only,
and everything the pipeline does for a protocol follows from its module: detection, its log
with the declared PII masked, its hostname naming the destination, its bodies inspected,
its EVE app_proto.  That is "one module plus one registry line".
"""
from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import dummy_protocol
from helpers.pkt import pcap_bytes, tcp_session
from inspector import protocols
from inspector.content.stage import ContentStage
from inspector.protocols import contributions
from inspector.protocols.base import Contributions
from inspector.pipeline import run_scan
from inspector.site import Site

PKG = Path(__file__).resolve().parent.parent / "inspector"

BODY = b"name,email\n" + b"".join(b"Ann Example%d,ann%d@example.com\n" % (i, i) for i in range(5))
REQUEST = (b"DUMMY HELLO Files.Dummy.Example. alice@example.com\n"
           + b"DUMMY DATA %d\n" % len(BODY) + BODY + b"DUMMY BYE\n")


def _scan(tmp_path, show_raw=False, **kw):
    path = tmp_path / "dummy.pcap"
    frames = tcp_session(client="10.0.0.1", server="203.0.113.10", cport=40001, sport=7777, req=REQUEST,
                         resp=b"OK\nOK\nOK\n")
    path.write_bytes(pcap_bytes(frames))
    return run_scan([str(path)], site=Site.default(), content=ContentStage(salt=b"t", show_raw=show_raw), **kw)


@pytest.fixture
def dummy():
    protocols.register(dummy_protocol)
    try:
        yield dummy_protocol
    finally:
        protocols.unregister(dummy_protocol)


def test_a_registered_protocol_is_detected_logged_masked_named_and_inspected(tmp_path, dummy):
    res = _scan(tmp_path)
    (flow,) = res.flows
    assert flow["service"] == "dummy"                                      # detected by its probe
    assert (flow["dst_name"], flow["dst_name_source"]) == ("files.dummy.example", "dummy_host")
    (rec,) = res.logs["dummy"]
    assert rec["host"] == "Files.Dummy.Example." and rec["bodies"] == 1
    assert "alice@example.com" not in rec["sender"] and "*" in rec["sender"]   # declared PII masked
    assert flow["data"].get("email") == 5                                  # its body went to content
    (content,) = res.logs["content"]
    assert content["uid"] == flow["uid"] and content["data"]["email"] == 5
    assert contributions().app_proto_of(flow["service"].split(",")) == "dummy"


def test_show_raw_leaves_the_declared_fields_alone(tmp_path, dummy):
    res = _scan(tmp_path, show_raw=True)
    assert res.logs["dummy"][0]["sender"] == "alice@example.com"


def test_unregistered_it_is_gone(tmp_path):
    res = _scan(tmp_path)
    assert "dummy" not in res.logs
    assert res.flows[0]["service"] is None and res.flows[0]["dst_name"] is None
    # the stream is unknown cleartext: its leaving bytes are still read raw
    assert res.flows[0]["data"].get("email") == 6          # the sender's address is in the stream too


def test_the_declarations_reproduce_the_former_tables():
    c = contributions(protocols.load())
    assert c.name_sources == ("sni", "sni_outer", "quic_sni", "http_host")   # sni_outer: ECH (issue 15)
    assert c.name_fallbacks == ("x509",)
    assert c.pii == {"http": ("uri", "referrer"), "ftp": ("arg",),
                     "smtp": ("mailfrom", "rcptto", "from", "to", "cc", "reply_to"),
                     "x509": ("certificate.subject", "certificate.issuer"),   # added since: client certificates
                     "mqtt": ("topic", "client_id")}                            # and the mqtt log
    assert c.encrypted == {"ssl": "tls-encrypted", "quic": "tls-encrypted", "ssh": "encrypted-or-compressed"}
    assert c.no_raw == {"http", "smtp", "ssl", "quic", "ssh", "dns", "ftp", "websocket", "mqtt"}   # + messages
    assert c.app_proto == {"ssl": "tls", "http": "http", "http2": "http2", "dns": "dns", "smtp": "smtp",
                           "ftp": "ftp", "ftp-data": "ftp-data", "ssh": "ssh", "quic": "quic", "ntp": "ntp",
                           "dhcp": "dhcp", "snmp": "snmp", "syslog": "syslog", "mqtt": "mqtt", "smb": "smb",
                           "gquic": "quic", "doh": "http2", "websocket": "websocket"}
    assert [m.NAME for m, _ in c.upgrades] == ["ssl"] and [m.NAME for m, _ in c.joined] == ["ssl"]
    assert set(c.log_content) == {"dns"} and c.file_channels == {"ftp-data"}
    assert {k: m.NAME for k, m in c.http_upgrades.items()} == {"websocket": "websocket"}


def _module(**attrs):
    m = types.ModuleType("fake_protocol")
    base = {"NAME": "fake", "TRANSPORTS": ("tcp",), "probe": lambda d, o: False, "Analyzer": object}
    base.update(attrs)
    for k, v in base.items():
        if v is not None:
            setattr(m, k, v)
    return m


def test_malformed_declarations_are_refused_at_registration():
    with pytest.raises(ValueError, match="CONTENT"):
        protocols.register(_module(CONTENT="sometimes"))
    with pytest.raises(ValueError, match="UPGRADE_PROBE"):
        protocols.register(_module(UPGRADE_PROBE="yes"))
    with pytest.raises(ValueError, match="probe"):
        protocols.register(_module(probe=None))
    with pytest.raises(ValueError, match="FACTS"):
        protocols.register(_module(FACTS={"no_layer": "a fact without its <layer>. prefix"}))
    assert all(m.__name__ != "fake_protocol" for m in protocols.load())


def test_registering_twice_is_one_registration(dummy):
    protocols.register(dummy)
    assert [m for m in protocols.load() if m is dummy] == [dummy]


def test_name_fallbacks_come_after_every_source():
    first = _module(NAME="a", NAME_SOURCES=("x",), NAME_FALLBACKS=("cert", "x"), FACTS={"a.one": "1"})
    second = _module(NAME="b", NAME_SOURCES=("y",), FACTS={"b.two": "2"})
    c = Contributions([first, second])
    assert c.name_sources == ("x", "y") and c.name_fallbacks == ("cert",)    # declared both ways: a source
    assert c.facts == {"a.one": "1", "b.two": "2"}


def test_name_precedence_follows_the_registry_order():
    first = _module(NAME="a", NAME_SOURCES=("x", "y"))
    second = _module(NAME="b", NAME_SOURCES=("y", "z"))
    assert Contributions([first, second]).name_sources == ("x", "y", "z")
    assert Contributions([second, first]).name_sources == ("y", "z", "x")


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield 0, a.name, []


def test_gquic_does_not_import_quic():
    """quic hands flows over to gquic; both share protocols/quic_wire.py, so no cycle."""
    for level, mod, names in _imports(PKG / "protocols" / "gquic.py"):
        assert not (level == 1 and (mod == "quic" or (mod == "" and "quic" in names))), (mod, names)
    for path in (PKG / "protocols" / "quic.py", PKG / "protocols" / "gquic.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(node)), \
                    f"{path.name}: import inside {node.name}()"


OWNED = [PKG / "dispatch", PKG / "protocols", PKG / "flows", PKG / "enrich" / "flows.py", PKG / "enrich" / "pdns.py",
         PKG / "content" / "sink.py", PKG / "content" / "stage.py", PKG / "scan.py"]


def test_no_private_names_imported_across_modules():
    files = []
    for p in OWNED:
        files.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    bad = []
    for path in files:
        if path.name == "smtp.py":        # its MIME helpers come with the shared MIME parser
            continue
        for _level, mod, names in _imports(path):
            if mod == "__future__":
                continue
            bad += [f"{path.relative_to(PKG)}: {mod}.{n}" for n in names if n.startswith("_")]
    assert not bad, bad


def test_no_protocol_is_named_by_the_dispatcher():
    names = {m.NAME for m in protocols.load()} | {"tls", "sni", "http_host", "quic_sni"}
    src = (PKG / "dispatch" / "dispatcher.py").read_text(encoding="utf-8")
    strings = {n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert not (strings & names), strings & names
