"""GridFTP / FTP with GSSAPI (RFC 2228): the ADAT exchange carries TLS (inspector/protocols/ftp.py).

GSI's GSSAPI mechanism is a TLS handshake whose records travel base64-coded
in ``ADAT <token>`` commands and ``335 ADAT=<token>`` / ``235 ADAT=<token>``
replies.  Built here from the annotated TLS 1.2 handshake of test_proto_tls:
the handshake is decoded into ``tls.jsonl`` and the service gets ``ssl``; the
exchange ends as Zeek's FTP_ADAT analyzer ends it (235, refusals, protected
replies, a new AUTH, a first token that is not TLS).  Corpus: Zeek's gridftp
baselines (ssl.log and conn.log of globus-url-copy.pcap, weird.log of the
bad-encoding variant).
"""
from __future__ import annotations

import base64
import random

import pytest

import corpus as _corpus
from inspector.protocols import ftp
from test_proto_http import feed, make_analyzer
from test_proto_tls import tls12_events

SERVER = ("192.168.57.101", 2811)
CLIENT = ("192.168.57.103", 60108)


def new():
    return make_analyzer(ftp, orig=CLIENT, resp=SERVER)


def b64(b: bytes) -> bytes:
    return base64.b64encode(b)


def tls_tokens():
    """The TLS 1.2 handshake as GSI tokens: (client token 1, server token 1, client token 2, server token 2)."""
    ev = tls12_events()
    c1 = ev[0][1]                                  # ClientHello record
    s1 = ev[1][1]                                  # ServerHello, Certificate, ServerKeyExchange, Done
    c2 = ev[2][1] + ev[3][1] + ev[4][1]            # ClientKeyExchange, ChangeCipherSpec, Finished
    s2 = ev[5][1] + ev[6][1] + ev[7][1]            # NewSessionTicket, ChangeCipherSpec, Finished
    return c1, s1, c2, s2


GREETING = [
    (False, b"220 alpha GridFTP Server 5.4 ready.\r\n"),
    (True, b"AUTH GSSAPI\r\n"),
    (False, b"334 Using authentication type; ADAT must follow.\r\n"),
]


def exchange(last_reply_has_token=False):
    c1, s1, c2, s2 = tls_tokens()
    steps = GREETING + [
        (True, b"ADAT " + b64(c1) + b"\r\n"),
        (False, b"335 ADAT=" + b64(s1) + b"\r\n"),
        (True, b"ADAT " + b64(c2) + b"\r\n"),
    ]
    if last_reply_has_token:
        steps.append((False, b"235 ADAT=" + b64(s2) + b"\r\n"))
    else:
        steps += [(False, b"335 ADAT=" + b64(s2) + b"\r\n"),
                  (True, b"ADAT \r\n"),
                  (False, b"235 GSSAPI Authentication successful.\r\n")]
    return steps


def tls_record(sink):
    (r,) = sink.logs("tls")
    return r


# ===========================================================================
# The exchange
# ===========================================================================

@pytest.mark.parametrize("last_reply_has_token", [False, True])
def test_gsi_handshake_goes_to_tls(last_reply_has_token):
    an, sink, ctx = new()
    feed(an, exchange(last_reply_has_token))
    r = tls_record(sink)
    assert r["uid"] == ctx.uid
    assert r["server_name"] == "shop.example.com"
    assert r["version"] == "TLSv12" and r["cipher"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert r["established"] is True
    assert r["ssl_history"].startswith("Csxkn")
    assert ctx.service == ["ftp", "ssl"]
    # the FTP side still logs the commands, with their replies
    cmds = [(x["command"], x["reply_code"]) for x in sink.logs("ftp")]
    assert cmds[:3] == [("AUTH", 334), ("ADAT", 335), ("ADAT", 335 if not last_reply_has_token else 235)]
    assert sink.weirds == []


def test_byte_by_byte_and_multiline_reply():
    c1, s1, c2, s2 = tls_tokens()
    steps = GREETING + [
        (True, b"ADAT " + b64(c1) + b"\r\n"),
        (False, b"335-ADAT=" + b64(s1) + b"\r\n335 more to come\r\n"),     # token on the first line
        (True, b"ADAT " + b64(c2) + b"\r\n"),
        (False, b"235 ADAT=" + b64(s2) + b"\r\n"),
    ]
    an, sink, ctx = new()
    feed(an, steps, split=1)
    assert tls_record(sink)["established"] is True


def test_record_split_over_tokens():
    c1, s1, c2, s2 = tls_tokens()
    steps = GREETING + [
        (True, b"ADAT " + b64(c1) + b"\r\n"),
        (False, b"335 ADAT=" + b64(s1[:50]) + b"\r\n"),
        (True, b"ADAT \r\n"),
        (False, b"335 ADAT=" + b64(s1[50:]) + b"\r\n"),
    ]
    an, sink, _ = new()
    feed(an, steps)
    assert "x" in tls_record(sink)["ssl_history"]            # the server certificate, reassembled


def test_first_token_not_tls_ends_the_exchange():
    # A Kerberos GSSAPI initial context token (RFC 2743 framing, 0x60 ...) is not GSI's TLS.
    krb = bytes.fromhex("6082011306092a864886f71201020201006e82") + bytes(40)
    c1, s1, _, _ = tls_tokens()
    an, sink, ctx = new()
    feed(an, GREETING + [(True, b"ADAT " + b64(krb) + b"\r\n"),
                         (False, b"335 ADAT=" + b64(s1) + b"\r\n")])
    assert sink.logs("tls") == [] and ctx.service == ["ftp"]
    assert an.adat_tls is None


def test_bad_first_token_encoding():
    c1, _, _, _ = tls_tokens()
    bad = b64(c1)[:10] + b" " + b64(c1)[10:-1]               # a space and one character short
    an, sink, ctx = new()
    feed(an, GREETING + [(True, b"ADAT " + bad + b"\r\n")])
    assert sink.logs("tls") == [] and ctx.service == ["ftp"]
    assert "ftp.adat_bad_first_token_encoding" in sink.weird_names()


def test_no_exchange_without_334():
    c1, s1, _, _ = tls_tokens()
    an, sink, ctx = new()
    feed(an, [(True, b"AUTH GSSAPI\r\n"), (False, b"504 Unsupported mechanism\r\n"),
              (True, b"ADAT " + b64(c1) + b"\r\n"), (False, b"503 Bad sequence\r\n")])
    assert sink.logs("tls") == []


def test_auth_tls_is_not_gssapi():
    c1, _, _, _ = tls_tokens()
    an, sink, _ = new()
    feed(an, [(True, b"AUTH KERBEROS_V4\r\n"), (False, b"334 Send ADAT\r\n"),
              (True, b"ADAT " + b64(c1) + b"\r\n")])
    assert sink.logs("tls") == []


@pytest.mark.parametrize("ender", [b"535 Failed security check.\r\n", b"421 Service closing\r\n",
                                   b"632 ZW5jcnlwdGVk\r\n"])
def test_exchange_ends(ender):
    c1, s1, c2, s2 = tls_tokens()
    an, sink, _ = new()
    feed(an, GREETING + [(True, b"ADAT " + b64(c1) + b"\r\n"),
                         (False, ender),
                         (False, b"335 ADAT=" + b64(s1) + b"\r\n")])
    r = tls_record(sink)
    assert r["ssl_history"] == "C"                           # the server flight came too late


def test_reissued_auth_resets():
    c1, s1, _, _ = tls_tokens()
    an, sink, _ = new()
    feed(an, GREETING + [(True, b"ADAT " + b64(c1) + b"\r\n"),
                         (True, b"AUTH TLS\r\n"),
                         (False, b"335 ADAT=" + b64(s1) + b"\r\n")])
    assert tls_record(sink)["ssl_history"] == "C"


def test_later_auth_tls_flushes_the_gsi_record():
    # AUTH TLS accepted: the FTP analyzer wants no more data (the dispatcher drops it
    # without done()), so the TLS record of the ADAT exchange must be out already.
    an, sink, _ = new()
    feed(an, exchange() + [(True, b"AUTH TLS\r\n"), (False, b"234 Proceed\r\n")], finish=False)
    assert not an.wants_more()
    assert tls_record(sink)["established"] is True


def test_server_token_before_the_client_one_is_ignored():
    c1, s1, _, _ = tls_tokens()
    an, sink, _ = new()
    feed(an, GREETING + [(False, b"335 ADAT=" + b64(s1) + b"\r\n"),
                         (True, b"ADAT " + b64(c1) + b"\r\n")])
    assert tls_record(sink)["ssl_history"] == "C"


def test_protected_replies_are_replies():
    an, sink, _ = new()
    feed(an, exchange() + [(True, b"ENC ZW5jcnlwdGVkIGNvbW1hbmQ=\r\n"),
                           (False, b"632-ZW5jcnlwdGVk\r\n632 cmVwbHk=\r\n"),
                           (True, b"MIC aW50ZWdyaXR5\r\n"), (False, b"631 b2s=\r\n")])
    tail = [(x["command"], x["reply_code"]) for x in sink.logs("ftp")][-2:]
    assert tail == [("ENC", 632), ("MIC", 631)]
    assert not [w for w in sink.weird_names() if w.startswith("ftp.bad_reply")]
    assert len(sink.logs("tls")) == 1


def test_hostile_tokens_never_raise():
    rnd = random.Random(9)
    c1, s1, c2, s2 = tls_tokens()
    for _ in range(200):
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 120)))
        mangled = bytearray(b64(s1))
        for _ in range(rnd.randint(1, 6)):
            mangled[rnd.randrange(len(mangled))] = rnd.choice(b"=*- \x00\xffAz09+/")
        an, sink, _ = new()
        feed(an, GREETING + [(True, b"ADAT " + b64(c1) + b"\r\n"),
                             (False, b"335 ADAT=" + bytes(mangled) + b"\r\n"),
                             (True, b"ADAT " + junk.replace(b"\n", b"") + b"\r\n"),
                             (False, b"335 ADAT=" + b64(junk) + b"\r\n")],
             split=rnd.choice([None, 1, 13]))


# ===========================================================================
# Corpus: Zeek's gridftp baselines
# ===========================================================================

@pytest.mark.corpus
def test_globus_url_copy_matches_zeek(corpus):
    from inspector.pipeline import run_scan
    trace = corpus / "zeek/Traces/globus-url-copy.pcap"
    base = corpus / "zeek/Baseline/scripts.base.protocols.ftp.gridftp"
    if not trace.exists() or not (base / "ssl.log").exists():
        pytest.skip("not in corpus")
    res = run_scan([str(trace)])
    flows = {(f["id.orig_p"], f["id.resp_p"]): f for f in res.flows}
    mine = {(flows_by_uid["id.orig_p"], flows_by_uid["id.resp_p"]): r
            for r in res.logs["tls"]
            for flows_by_uid in [next(f for f in res.flows if f["uid"] == r["uid"])]}
    rows = _corpus.read_zeek_log(base / "ssl.log", typed=False)
    assert len(rows) == 2
    for z in rows:
        r = mine[(int(z["id.orig_p"]), int(z["id.resp_p"]))]
        assert r["version"] == z["version"] and r["cipher"] == z["cipher"], z
        assert r["ssl_history"] == z["ssl_history"], z
        assert r["established"] is (z["established"] == "T")
    # conn.log: 'ftp,ssl,gridftp' on the control channel (gridftp comes from a Zeek script)
    ctrl = flows[(60108, 2811)]
    assert ctrl["service"].split(",") == ["ftp", "ssl"]
    assert not [w for w in res.weirds if w["name"] == "ftp.bad_reply"]


@pytest.mark.corpus
def test_globus_url_copy_bad_encoding(corpus):
    from inspector.pipeline import run_scan
    trace = corpus / "zeek/Traces/globus-url-copy-bad-encoding.pcap"
    if not trace.exists():
        pytest.skip("not in corpus")
    res = run_scan([str(trace)])
    ctrl = next(f for f in res.flows if f["id.resp_p"] == 2811)
    # Zeek: ftp_adat_bad_first_token_encoding, and the exchange is not analysed
    assert "ftp.adat_bad_first_token_encoding" in {w["name"] for w in res.weirds if w["uid"] == ctrl["uid"]}
    assert not [r for r in res.logs.get("tls", []) if r["uid"] == ctrl["uid"]]
