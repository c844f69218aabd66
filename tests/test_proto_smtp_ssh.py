"""SMTP and SSH analyzers (inspector/protocols/smtp.py, ssh.py): annotated-bytes tests + Zeek cross-check."""
from __future__ import annotations

import base64
import hashlib
import struct
from collections import Counter

import pytest

import corpus as _corpus
from inspector.protocols import http, smtp, ssh
from inspector.protocols.base import FlowContext
from test_proto_http import (FakeSink, case_id, chunks, feed, make_analyzer, run_on_capture, tcp_connections,
                             zeek_cases)

MTA = ("192.0.2.25", 25)
MUA = ("10.0.0.7", 51000)


def new_smtp(**kw):
    return make_analyzer(smtp, orig=MUA, resp=MTA, **kw)


# ===========================================================================
# SMTP
# ===========================================================================

@pytest.mark.parametrize("data,is_orig,ok", [
    (b"220 mx.example.com ESMTP Postfix (Debian)\r\n", False, True),
    (b"220-mail.example.com Microsoft ESMTP MAIL Service ready\r\n", False, True),
    (b"220 ProFTPD Server ready\r\n", False, False),
    (b"EHLO client.example\r\n", True, True),
    (b"HELO x\r\n", True, True),
    (b"USER bob\r\n", True, False),
    (b"GET / HTTP/1.1\r\n", True, False),
])
def test_smtp_probe(data, is_orig, ok):
    assert smtp.probe(data, is_orig) is ok


MESSAGE = (b"Received: from relay.example.net (relay.example.net [198.51.100.7])\r\n"
           b"\tby mx.example.com with ESMTP id 123; Mon, 2 Jun 2025 10:00:00 +0000\r\n"   # folded header
           b"Received: from [10.0.0.7] (unknown [10.0.0.7]) by relay.example.net\r\n"
           b"From: \"Alice, Shipping\" <alice@dc.example>\r\n"
           b"To: bob@partner.example, \"Carol\" <carol@partner.example>\r\n"
           b"Cc: dave@partner.example\r\n"
           b"Subject: Manifest\r\n for truck 12\r\n"                                    # folded subject
           b"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n"
           b"Message-ID: <m1@dc.example>\r\n"
           b"X-Mailer: WMS-Mailer 2.1\r\n"
           b"Content-Type: text/plain; charset=us-ascii\r\n"
           b"\r\n"
           b"line one\r\n"
           b"..leading dot is stuffed\r\n"                      # dot-stuffed on the wire
           b".\r\n")                                           # end of data
BODY = b"line one\r\n.leading dot is stuffed\r\n"


def smtp_session(message=MESSAGE):
    return [
        (False, b"220 mx.example.com ESMTP ready\r\n"),
        (True, b"EHLO wms01.dc.example\r\n"),
        (False, b"250-mx.example.com\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"),   # multi-line reply
        (True, b"MAIL FROM:<alice@dc.example> SIZE=512\r\n"),
        (False, b"250 2.1.0 Ok\r\n"),
        (True, b"RCPT TO:<bob@partner.example>\r\n"),
        (False, b"250 2.1.5 Ok\r\n"),
        (True, b"RCPT TO:<carol@partner.example> ORCPT=rfc822;carol@partner.example\r\n"),
        (False, b"250 2.1.5 Ok\r\n"),
        (True, b"DATA\r\n"),
        (False, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (True, message),
        (False, b"250 2.0.0 Ok: queued as ABC123\r\n"),
        (True, b"QUIT\r\n"),
        (False, b"221 2.0.0 Bye\r\n"),
    ]


def check_message_record(r):
    assert r["trans_depth"] == 1 and r["helo"] == "wms01.dc.example"
    assert r["mailfrom"] == "alice@dc.example"
    assert r["rcptto"] == ["bob@partner.example", "carol@partner.example"]
    assert r["from"] == '"Alice, Shipping" <alice@dc.example>'
    assert r["to"] == ["bob@partner.example", '"Carol" <carol@partner.example>']
    assert r["cc"] == ["dave@partner.example"]
    assert r["subject"] == "Manifest for truck 12"
    assert r["date"] == "Mon, 2 Jun 2025 10:00:00 +0000" and r["msg_id"] == "<m1@dc.example>"
    assert r["user_agent"] == "WMS-Mailer 2.1"
    assert r["last_reply"] == "250 2.0.0 Ok: queued as ABC123"
    assert r["path"] == ["192.0.2.25", "10.0.0.7", "198.51.100.7", "10.0.0.7"]
    assert r["first_received"].startswith("from [10.0.0.7]")
    assert r["second_received"].startswith("from relay.example.net")
    assert r["tls"] is False


def test_smtp_transaction_and_body():
    an, sink, ctx = new_smtp()
    feed(an, smtp_session())
    (r,) = sink.logs("smtp")
    check_message_record(r)
    assert list(r) == list(smtp.FIELDS)
    (is_orig, info, body), = sink.bodies
    assert is_orig is True and body == BODY                   # dot-unstuffed, headers not included
    assert info["subject"] == "Manifest for truck 12" and info["mailfrom"] == "alice@dc.example"
    assert info["rcptto"] == ["bob@partner.example", "carol@partner.example"]
    assert info["content_type"] == "text/plain; charset=us-ascii" and info["mime_type"] == "text/plain"
    assert ("X-MAILER", "WMS-Mailer 2.1") in info["headers"]
    assert ctx.service == ["smtp"] and sink.weirds == []


def test_smtp_data_split_at_every_byte():
    for cut in range(1, len(MESSAGE)):
        steps = smtp_session()
        i = steps.index((True, MESSAGE))
        steps[i:i + 1] = [(True, MESSAGE[:cut]), (True, MESSAGE[cut:])]
        an, sink, _ = new_smtp()
        feed(an, steps)
        (r,) = sink.logs("smtp")
        assert r["subject"] == "Manifest for truck 12", cut
        assert sink.bodies[0][2] == BODY, cut


def test_smtp_byte_by_byte():
    an, sink, _ = new_smtp()
    feed(an, smtp_session(), split=1)
    check_message_record(sink.logs("smtp")[0])
    assert sink.bodies[0][2] == BODY


def test_smtp_pipelining():
    an, sink, _ = new_smtp()
    feed(an, [(False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250 PIPELINING\r\n"),
              (True, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"),
              (False, b"250 ok\r\n250 ok\r\n550 no such user\r\n354 go\r\n"),
              (True, b"Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n"),
              (False, b"250 queued\r\n221 bye\r\n")])
    (r,) = sink.logs("smtp")
    assert r["rcptto"] == ["b@y", "c@y"] and r["subject"] == "s" and r["last_reply"] == "250 queued"


def test_smtp_two_messages_trans_depth():
    an, sink, _ = new_smtp()
    msg = b"Subject: %d\r\n\r\nx\r\n.\r\n"
    steps = [(False, b"220 mx ESMTP\r\n"), (True, b"HELO c\r\n"), (False, b"250 ok\r\n")]
    for i in (1, 2):
        steps += [(True, b"MAIL FROM:<a@x>\r\n"), (False, b"250 ok\r\n"), (True, b"RCPT TO:<b@y>\r\n"),
                  (False, b"250 ok\r\n"), (True, b"DATA\r\n"), (False, b"354 go\r\n"), (True, msg % i),
                  (False, b"250 ok %d\r\n" % i)]
    feed(an, steps)
    rows = sink.logs("smtp")
    assert [(r["trans_depth"], r["subject"], r["last_reply"]) for r in rows] == [(1, "1", "250 ok 1"), (2, "2", "250 ok 2")]


def test_smtp_data_refused_reverts_to_commands():
    an, sink, _ = new_smtp()
    feed(an, [(False, b"220 mx ESMTP\r\n"), (True, b"HELO c\r\n"), (False, b"250 ok\r\n"),
              (True, b"MAIL FROM:<a@x>\r\n"), (False, b"250 ok\r\n"),
              (True, b"DATA\r\n"), (False, b"503 5.5.1 Error: need RCPT command\r\n"),
              (True, b"RCPT TO:<b@y>\r\n"), (False, b"250 ok\r\n"),
              (True, b"DATA\r\n"), (False, b"354 go\r\n"), (True, b"Subject: ok\r\n\r\n.\r\n"), (False, b"250 q\r\n")])
    (r,) = sink.logs("smtp")
    assert r["rcptto"] == ["b@y"] and r["subject"] == "ok"


def test_smtp_one_sided_client_only():
    an, sink, _ = new_smtp()
    feed(an, [(True, b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: one\r\n\r\n.\r\n"
                     b"MAIL FROM:<a@x>\r\nRCPT TO:<c@y>\r\nDATA\r\nSubject: two\r\n\r\n.\r\nQUIT\r\n")])
    rows = sink.logs("smtp")
    assert [(r["rcptto"], r["subject"], r["trans_depth"], r["last_reply"]) for r in rows] == \
        [(["b@y"], "one", 1, None), (["c@y"], "two", 1, None)]         # no server: Zeek counts no message


def test_smtp_starttls_stops_parsing():
    an, sink, _ = new_smtp()
    feed(an, [(False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250-mx\r\n250 STARTTLS\r\n"),
              (True, b"STARTTLS\r\n"), (False, b"220 2.0.0 Ready to start TLS\r\n"),
              (True, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), (False, b"\x16\x03\x03\x00\x7a")])
    (r,) = sink.logs("smtp")
    assert r["tls"] is True and r["helo"] == "c" and r["last_reply"] == "220 2.0.0 Ready to start TLS"
    assert r["mailfrom"] is None and not an.wants_more() and sink.weirds == []


def test_smtp_starttls_refused_keeps_parsing():
    an, sink, _ = new_smtp()
    feed(an, [(False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250 ok\r\n"),
              (True, b"STARTTLS\r\n"), (False, b"454 TLS not available\r\n"),
              (True, b"MAIL FROM:<a@x>\r\n"), (False, b"250 ok\r\n")])
    assert an.wants_more()
    assert [r["mailfrom"] for r in sink.logs("smtp")] == [None, "a@x"]


def test_smtp_bdat_chunks():
    an, sink, _ = new_smtp()
    part1 = b"Subject: chunked\r\n\r\nhello "       # 27 bytes
    part2 = b"world\r\n"                             # 7 bytes
    feed(an, [(False, b"220 mx ESMTP\r\n"), (True, b"EHLO c\r\n"), (False, b"250 CHUNKING\r\n"),
              (True, b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n"), (False, b"250 ok\r\n250 ok\r\n"),
              (True, b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2),
              (False, b"250 27 octets received\r\n250 Message OK, 34 octets received\r\n")], split=3)
    (r,) = sink.logs("smtp")
    assert r["subject"] == "chunked" and r["last_reply"] == "250 Message OK, 34 octets received"
    assert sink.bodies[0][2] == b"hello world\r\n"


@pytest.mark.parametrize("arg", [b"-5", b"12x", b"99999999999999999999", b"5 FIRST", b""])
def test_smtp_bdat_invalid(arg):
    an, sink, _ = new_smtp()
    feed(an, [(True, b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT " + arg + b"\r\nQUIT\r\n"),
              (False, b"220 mx ESMTP\r\n250 ok\r\n250 ok\r\n250 ok\r\n521 5.5.4 Syntax: BDAT count [LAST]\r\n221 bye\r\n")])
    assert "smtp.bdat_invalid" in sink.weird_names()
    (r,) = sink.logs("smtp")
    assert r["last_reply"] == "221 bye" and r["mailfrom"] == "a@x"


def test_smtp_gap_in_data_keeps_looking_for_end():
    an, sink, _ = new_smtp()
    steps = smtp_session()
    i = steps.index((True, MESSAGE))
    steps[i:i + 1] = [(True, MESSAGE[:40]), ("gap", True, 300), (True, b"tail of a line\r\nmore\r\n.\r\n")]
    feed(an, steps)
    (r,) = sink.logs("smtp")
    assert r["last_reply"] == "250 2.0.0 Ok: queued as ABC123" and r["mailfrom"] == "alice@dc.example"
    (_o, info, kept), = sink.bodies
    assert info["incomplete"] is True and info["truncated"] is True
    assert kept == b""                            # the hole cut the header block: no clean body prefix
    assert "smtp.content_gap" in sink.weird_names()


def test_smtp_gap_in_body_keeps_prefix():
    an, sink, _ = new_smtp()
    msg = b"Subject: s\r\n\r\nfirst part\r\n"
    feed(an, smtp_session(b"")[:11] + [(True, msg), ("gap", True, 50), (True, b"rest\r\n.\r\n"),
                                       (False, b"250 ok\r\n")])
    (r,) = sink.logs("smtp")
    assert r["subject"] == "s"
    (_o, info, kept), = sink.bodies
    assert kept == b"first part\r\n" and info["incomplete"] is True and info["body_len"] == 12 + 50 + 6


def test_smtp_long_data_line_and_dot_at_line_start():
    long_line = b"." + b"x" * 10000 + b"\r\n"                 # stuffed: a line starting with a dot
    an, sink, _ = new_smtp()
    steps = smtp_session(b"Subject: long\r\n\r\n" + long_line + b".\r\n")
    feed(an, steps, split=1000)
    assert sink.bodies[0][2] == long_line[1:]


def test_smtp_body_budget():
    an, sink, _ = new_smtp()
    an.max_body = 100
    feed(an, smtp_session(b"Subject: big\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n"))
    (_o, info, body), = sink.bodies
    assert body == b"y" * 100 and info["truncated"] is True and info["body_len"] == 5002


def test_smtp_hostile_inputs_never_raise():
    import random
    rng = random.Random(5)
    parts = [b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"DATA\r\n", b".\r\n", b"..\r\n", b"BDAT 3\r\n",
             b"BDAT 1 LAST\r\n", b"354 go\r\n", b"250-x\r\n", b"250 y\r\n", b"STARTTLS\r\n", b"220 ok\r\n",
             b"Subject: x\r\n", b"\r\n", b" folded\r\n", b"\x00\xff" * 3, b"x" * 300, b"Received: [1.2.3.4]\r\n"]
    for _ in range(300):
        an, sink, _ = new_smtp()
        for _ in range(rng.randrange(1, 25)):
            if rng.random() < 0.1:
                an.gap(rng.random() < 0.5, rng.randrange(1, 100), 1.0)
                continue
            blob = b"".join(rng.choice(parts) for _ in range(rng.randrange(1, 5)))
            for c in chunks(blob, rng.choice([None, 1, 2, 7])):
                an.data(rng.random() < 0.6, c, 1.0)
        an.done(2.0)
        for _log, rec in sink.records:
            assert list(rec) == list(smtp.FIELDS)


# ===========================================================================
# SSH
# ===========================================================================

def name_list(names):
    s = ",".join(names).encode()
    return struct.pack("!I", len(s)) + s                      # uint32 length + comma-separated names


def kexinit(kex, hostkey, enc, mac, comp=("none",)):
    payload = (bytes([20])                                   # SSH_MSG_KEXINIT
               + b"\x11" * 16                                # cookie
               + name_list(kex) + name_list(hostkey)
               + name_list(enc) + name_list(enc)             # encryption c2s, s2c
               + name_list(mac) + name_list(mac)             # mac c2s, s2c
               + name_list(comp) + name_list(comp)           # compression c2s, s2c
               + name_list([]) + name_list([])               # languages
               + b"\x00"                                     # first_kex_packet_follows
               + b"\x00\x00\x00\x00")                        # reserved
    return packet(payload)


def packet(payload, block=8):
    pad = block - ((len(payload) + 5) % block)
    pad = pad + block if pad < 4 else pad
    return (struct.pack("!IB", len(payload) + pad + 1, pad)  # packet_length, padding_length
            + payload + b"\x00" * pad)


ED25519_BLOB = struct.pack("!I", 11) + b"ssh-ed25519" + struct.pack("!I", 32) + bytes(range(32))
KEX_REPLY = packet(bytes([31])                               # SSH_MSG_KEX_ECDH_REPLY
                   + struct.pack("!I", len(ED25519_BLOB)) + ED25519_BLOB
                   + struct.pack("!I", 32) + b"\x22" * 32     # server ephemeral key
                   + struct.pack("!I", 20) + b"\x33" * 20)    # signature (shortened)
CLIENT_KEX = kexinit(["curve25519-sha256", "ecdh-sha2-nistp256"], ["ssh-ed25519", "rsa-sha2-512"],
                     ["chacha20-poly1305@openssh.com", "aes128-ctr"], ["hmac-sha2-256"], ["none", "zlib@openssh.com"])
SERVER_KEX = kexinit(["ecdh-sha2-nistp256", "curve25519-sha256"], ["rsa-sha2-512", "ssh-ed25519"],
                     ["aes128-ctr", "chacha20-poly1305@openssh.com"], ["umac-64@openssh.com", "hmac-sha2-256"])
EXPECTED_FP = "SHA256:" + base64.b64encode(hashlib.sha256(ED25519_BLOB).digest()).decode().rstrip("=")


def ssh_session():
    return [
        (True, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3\r\n"),
        (False, b"SSH-2.0-OpenSSH_8.9\r\n" + SERVER_KEX),
        (True, CLIENT_KEX),
        (True, packet(bytes([30]) + struct.pack("!I", 32) + b"\x44" * 32)),   # KEX_ECDH_INIT
        (False, KEX_REPLY + packet(bytes([21]))),                                # reply + NEWKEYS
        (True, b"\x8f\x1a encrypted from here"),
    ]


def new_ssh():
    return make_analyzer(ssh, orig=("10.0.0.9", 52000), resp=("203.0.113.22", 22))


@pytest.mark.parametrize("data,is_orig,ok", [
    (b"SSH-2.0-OpenSSH_9.6\r\n", True, True),
    (b"SSH-1.99-Cisco-1.25\r\n", False, True),
    (b"Welcome to host\r\nSSH-2.0-dropbear\r\n", False, True),   # lines before the server banner
    (b"Welcome\r\n", False, False),
    (b"GET / HTTP/1.1\r\n", True, False),
])
def test_ssh_probe(data, is_orig, ok):
    assert ssh.probe(data, is_orig) is ok


def check_ssh_record(r):
    assert r["version"] == 2
    assert r["client"] == "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3" and r["server"] == "SSH-2.0-OpenSSH_8.9"
    assert r["kex_alg"] == "curve25519-sha256"                  # first client algorithm the server knows
    assert r["host_key_alg"] == "ssh-ed25519"
    assert r["cipher_alg"] == "chacha20-poly1305@openssh.com"
    assert r["mac_alg"] == "hmac-sha2-256" and r["compression_alg"] == "none"
    assert r["host_key_fingerprint"] == EXPECTED_FP


def test_ssh_banners_and_kexinit():
    an, sink, ctx = new_ssh()
    feed(an, ssh_session(), finish=False)
    assert not an.wants_more()                                 # complete before the encrypted data
    an.done(2.0)
    (r,) = sink.logs("ssh")
    check_ssh_record(r)
    assert list(r) == list(ssh.FIELDS) and ctx.service == ["ssh"] and sink.weirds == []


@pytest.mark.parametrize("split", [1, 3, 13])
def test_ssh_split(split):
    an, sink, _ = new_ssh()
    feed(an, ssh_session(), split=split)
    check_ssh_record(sink.logs("ssh")[0])


def test_ssh_server_pre_banner_lines():
    an, sink, _ = new_ssh()
    feed(an, [(False, b"Authorised users only\r\nbanner line 2\r\nSSH-2.0-dropbear_2022.83\r\n"),
              (True, b"SSH-2.0-PuTTY_Release_0.80\r\n")])
    (r,) = sink.logs("ssh")
    assert r["server"] == "SSH-2.0-dropbear_2022.83" and r["client"] == "SSH-2.0-PuTTY_Release_0.80"
    assert r["version"] == 2 and r["kex_alg"] is None


@pytest.mark.parametrize("client,server,version", [
    (b"SSH-1.5-OpenSSH_6.2", b"SSH-1.99-OpenSSH_6.6.1p1", 1),
    (b"SSH-2.0-OpenSSH_6.2", b"SSH-1.99-OpenSSH_6.6.1p1", 2),
    (b"SSH-1.99-x", b"SSH-2.0-y", 2),
])
def test_ssh_versions(client, server, version):
    an, sink, _ = new_ssh()
    feed(an, [(True, client + b"\r\n"), (False, server + b"\n")])
    assert sink.logs("ssh")[0]["version"] == version


def test_ssh_version_mismatch_is_weird():
    an, sink, _ = new_ssh()
    feed(an, [(True, b"SSH-1.5-old\r\n"), (False, b"SSH-2.0-new\r\n")])
    assert sink.logs("ssh")[0]["version"] is None and "ssh.version_mismatch" in sink.weird_names()


def test_ssh_half_duplex_client_only():
    an, sink, _ = new_ssh()
    feed(an, [(True, b"SSH-2.0-OpenSSH_5.9\r\n" + CLIENT_KEX)])
    (r,) = sink.logs("ssh")
    assert r["client"] == "SSH-2.0-OpenSSH_5.9" and r["server"] is None and r["version"] is None


def test_ssh_bad_packet_length_is_weird():
    an, sink, _ = new_ssh()
    feed(an, [(True, b"SSH-2.0-a\r\n\xff\xff\xff\xff\x04garbage"), (False, b"SSH-2.0-b\r\n" + SERVER_KEX)])
    assert "ssh.bad_packet" in sink.weird_names()
    assert sink.logs("ssh")[0]["server"] == "SSH-2.0-b"


def test_ssh_gap_before_kexinit():
    an, sink, _ = new_ssh()
    feed(an, [(True, b"SSH-2.0-a\r\n"), ("gap", True, 100), (False, b"SSH-2.0-b\r\n" + SERVER_KEX)])
    (r,) = sink.logs("ssh")
    assert r["client"] == "SSH-2.0-a" and r["kex_alg"] is None


def test_ssh_not_ssh_at_all():
    an, sink, _ = new_ssh()
    feed(an, [(True, b"\x00" * 20000), (False, b"x" * 20000)])
    assert sink.logs("ssh") == [] and "ssh.no_banner" in sink.weird_names()


def test_ssh_hostile_inputs_never_raise():
    import random
    rng = random.Random(3)
    parts = [b"SSH-2.0-x\r\n", b"SSH-1.5-y\n", CLIENT_KEX, SERVER_KEX, KEX_REPLY, b"\x00\x00\x00\x0c\x0a",
             b"\x00\x00\x00\x05\x04\x14", b"line\r\n", bytes(range(256))]
    for _ in range(300):
        an, sink, _ = new_ssh()
        for _ in range(rng.randrange(1, 12)):
            blob = b"".join(rng.choice(parts) for _ in range(rng.randrange(1, 4)))
            if rng.random() < 0.4:
                blob = bytes(b ^ 0x5A if rng.random() < 0.05 else b for b in blob)
            for c in chunks(blob, rng.choice([None, 1, 5])):
                an.data(rng.random() < 0.5, c, 1.0)
        an.done(2.0)
        assert len(sink.logs("ssh")) <= 1


# ===========================================================================
# Zeek corpus cross-check
# ===========================================================================

SMTP_CASES = zeek_cases(("smtp.log",))
SSH_CASES = zeek_cases(("ssh.log",))

SMTP_KNOWN = {
    "scripts.base.protocols.smtp.mail-transactions-invalid-disable-analyzer":
        "the test sets max_invalid_mail_transactions low and Zeek disables its analyzer: one record fewer",
}
SMTP_DETAIL_KNOWN = {
    "scripts.base.protocols.smtp.bdat-gap":
        "after a capture gap inside a BDAT chunk Zeek's MIME parser never resyncs on the following DATA "
        "message; we parse that message's headers (From/To/Subject)",
}


def run_smtp_conn(conn, uid="C"):
    """SMTP on a connection; through an HTTP CONNECT tunnel when the stream starts with one
    (how a dispatcher hands the tunnelled stream over: http.Analyzer.tunnel_leftover)."""
    sink = FakeSink()
    ctx = FlowContext(uid=uid, ts=conn.ts, orig_h=str(conn.orig[0]), orig_p=conn.orig[1],
                      resp_h=str(conn.resp[0]), resp_p=conn.resp[1], transport="tcp", sink=sink)
    outer = http.Analyzer(FlowContext(uid=uid, ts=conn.ts, orig_h=ctx.orig_h, orig_p=ctx.orig_p,
                                      resp_h=ctx.resp_h, resp_p=ctx.resp_p, transport="tcp", sink=FakeSink()))
    first = conn.first_payload(True)
    tunnelled = first.startswith(b"CONNECT ")
    an = smtp.Analyzer(ctx)
    for kind, is_orig, x, ts in conn.events:
        if tunnelled and not outer.tunnel:
            (outer.data if kind == "data" else outer.gap)(is_orig, x, ts)
            if outer.tunnel:
                for o in (False, True):
                    if outer.tunnel_leftover[o]:
                        an.data(o, outer.tunnel_leftover[o], ts)
            continue
        if not an.wants_more():
            break
        (an.data if kind == "data" else an.gap)(is_orig, x, ts)
    an.done(conn.last_ts)
    return sink.logs("smtp")


def smtp_records(path):
    out = []
    for i, c in enumerate(tcp_connections(path)):
        po, pr = c.first_payload(True), c.first_payload(False)
        if po.startswith(b"CONNECT ") or smtp.probe(po[:2048], True) or smtp.probe(pr[:2048], False):
            out.extend(run_smtp_conn(c, uid=f"C{i}"))
    return out


def _norm(v, path=False):
    if isinstance(v, list):
        return tuple(v) if path else tuple(sorted(v))        # Zeek sets are unordered; path is a vector
    return v


SMTP_KEY = ("id.orig_p", "mailfrom", "rcptto")
SMTP_DETAIL = ("id.orig_p", "trans_depth", "helo", "mailfrom", "rcptto", "date", "from", "to", "cc", "reply_to",
               "msg_id", "in_reply_to", "subject", "x_originating_ip", "first_received", "second_received",
               "last_reply", "path", "user_agent", "tls")


def smtp_agreement(case, cols):
    row, path = case
    expected = Counter(tuple(_norm(r.get(k), k == "path") if r.get(k) != [] else None for k in cols)
                       for r in _corpus.read_zeek_log(path))
    got = Counter(tuple(_norm(r.get(k), k == "path") for k in cols) for r in smtp_records(row["abspath"]))
    return sum((expected & got).values()), sum(expected.values()), sum(got.values()), expected, got


@pytest.mark.corpus
@pytest.mark.parametrize("case", SMTP_CASES, ids=case_id)
def test_corpus_smtp_mailfrom_rcptto(case, corpus):
    name = case_id(case)
    both, n_exp, n_got, e, g = smtp_agreement(case, SMTP_KEY)
    if name in SMTP_KNOWN:
        return
    assert both == n_exp == n_got, (name, e - g, g - e)


@pytest.mark.corpus
@pytest.mark.parametrize("case", SMTP_CASES, ids=case_id)
def test_corpus_smtp_all_fields(case, corpus):
    """Every smtp.log column we fill (not fuids): helo, headers, last_reply, path, tls..."""
    name = case_id(case)
    if name in SMTP_KNOWN or name in SMTP_DETAIL_KNOWN:
        pytest.skip(SMTP_KNOWN.get(name) or SMTP_DETAIL_KNOWN[name])
    both, n_exp, n_got, e, g = smtp_agreement(case, SMTP_DETAIL)
    assert both == n_exp == n_got, (name, e - g, g - e)


SSH_KEY = ("id.orig_p", "version", "client", "server", "cipher_alg", "mac_alg", "compression_alg", "kex_alg",
           "host_key_alg")


def ssh_agreement(case):
    row, path = case
    base = _corpus.read_zeek_log(path)
    got, _ = run_on_capture(ssh, row["abspath"])
    expected = Counter(tuple(r.get(k) for k in SSH_KEY) for r in base)
    mine = Counter(tuple(r.get(k) for k in SSH_KEY) for r in got)
    return sum((expected & mine).values()), sum(expected.values()), sum(mine.values()), expected, mine, base, got


@pytest.mark.corpus
@pytest.mark.parametrize("case", SSH_CASES, ids=case_id)
def test_corpus_ssh(case, corpus):
    both, n_exp, n_got, e, g, base, got = ssh_agreement(case)
    assert both == n_exp == n_got, (case_id(case), e - g, g - e)
    # Zeek's baseline shows the fingerprint cut to 32 characters: ours must extend it
    fp = {r["id.orig_p"]: r["host_key_fingerprint"] for r in got}
    for r in base:
        if r["host_key_fingerprint"]:
            assert (fp.get(r["id.orig_p"]) or "").startswith(r["host_key_fingerprint"]), r["id.orig_p"]


@pytest.mark.corpus
def test_corpus_smtp_ssh_agreement_summary(corpus, capsys):
    lines = []
    for label, cases, fn in (("smtp mailfrom/rcptto", SMTP_CASES, lambda c: smtp_agreement(c, SMTP_KEY)),
                             ("smtp all fields", SMTP_CASES, lambda c: smtp_agreement(c, SMTP_DETAIL)),
                             ("ssh", SSH_CASES, ssh_agreement)):
        b = n = 0
        for case in cases:
            res = fn(case)
            b, n = b + res[0], n + res[1]
        lines.append(f"{label}: {b}/{n} records over {len(cases)} baselines")
        assert n > 0 and b / n >= 0.9, lines[-1]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
