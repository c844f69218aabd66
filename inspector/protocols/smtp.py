"""SMTP: one ``smtp.jsonl`` record per mail transaction (Zeek's smtp.log fields).

Client side: command lines, or message content after ``DATA`` (dot-stuffed,
ended by ``<CRLF>.<CRLF>``) or ``BDAT <size> [LAST]`` (exactly ``size`` raw
bytes, RFC 3030).  Server side: replies, possibly multi-line (``250-...`` then
``250 ...``), matched in order to the pending commands (PIPELINING).

Content mode starts as soon as the client sends ``DATA`` (so one-sided
captures still work) and is undone when the server refuses ``DATA`` before
any content arrived.  A transaction starts with ``MAIL FROM`` (or a stray
``RCPT``/``DATA``/``BDAT``/``STARTTLS``) and is written when the server
acknowledges the end of the message, when the next ``MAIL FROM`` arrives, or
when the connection ends.  After ``STARTTLS`` is accepted (220) the record gets
``tls: true`` and parsing stops: the rest is TLS.

Field semantics follow Zeek: ``mailfrom`` is the address of ``MAIL FROM``,
``rcptto`` the addresses of every ``RCPT TO``, ``date``/``from``/``to``/``cc``/
``reply_to``/``msg_id``/``in_reply_to``/``subject``/``first_received``/
``second_received``/``user_agent``/``x_originating_ip`` come from the top-level
message headers, ``path`` is [server, client, then each Received header's
address], ``last_reply`` is the last server reply seen, ``trans_depth`` counts
messages the server acknowledged.

Content hook: when ``ctx.sink`` has a ``body`` attribute, each message's body
(after the header block, dot-unstuffed, still transfer-encoded, at most
``max_body`` bytes) goes to ``sink.body(ctx, True, info, body)``; ``info``
carries the mail headers and the envelope (see ``Analyzer._deliver_body``).
"""
from __future__ import annotations

import ipaddress
import re

from ..outputs.schema import ADDR, BOOL, CONN_ID, INT, ListOf, STRING, TIME, Field, Stream
from .base import Analyzer as _Base
from ..mime import boundary_of
from ..sniff import SNIFF_BYTES, sniff_mime

NAME = "smtp"
TRANSPORTS = ("tcp",)
PORTS = (25, 465, 587, 2525)
LOG = "smtp"
# ---- outputs (read by inspector.outputs): the smtp log's schema and this module's weird names ----
LOG_SCHEMA = Stream("smtp", "SMTP transactions, one record per message (Zeek smtp.log)", (
    Field("ts", TIME, "time the transaction started"),
    Field("uid", STRING, "the connection's uid"),
    *CONN_ID,
    Field("trans_depth", INT, "position of the message in the connection (1, 2...)"),
    Field("helo", STRING, "HELO/EHLO argument"),
    Field("mailfrom", STRING, "MAIL FROM address (masked unless --show-raw)"),
    Field("rcptto", ListOf(STRING), "RCPT TO addresses (masked unless --show-raw)"),
    Field("date", STRING, "Date header"),
    Field("from", STRING, "From header (masked unless --show-raw)"),
    Field("to", ListOf(STRING), "To header addresses (masked unless --show-raw)"),
    Field("cc", ListOf(STRING), "Cc header addresses (masked unless --show-raw)"),
    Field("reply_to", STRING, "Reply-To header (masked unless --show-raw)"),
    Field("msg_id", STRING, "Message-ID header"),
    Field("in_reply_to", STRING, "In-Reply-To header"),
    Field("subject", STRING, "Subject header"),
    Field("x_originating_ip", ADDR, "X-Originating-IP header"),
    Field("first_received", STRING, "first Received header"),
    Field("second_received", STRING, "second Received header"),
    Field("last_reply", STRING, "last server reply (code and text)"),
    Field("path", ListOf(STRING), "the message's path: addresses from the Received headers and the connection"),
    Field("user_agent", STRING, "User-Agent or X-Mailer header"),
    Field("tls", BOOL, "the session switched to TLS (STARTTLS)"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "smtp.bad_reply": "a reply line without a three-digit code",
    "smtp.bdat_invalid": "a BDAT command whose chunk size is not a number",
    "smtp.content_gap": "bytes missing from a message or BDAT chunk (capture loss)",
    "smtp.line_too_long": "a command or reply line over the line limit (cut)",
    "smtp.too_many_pending_commands": "more pipelined commands waiting for replies than the limit",
    "smtp.too_many_rcptto_addresses": "more RCPT TO addresses than the limit (rest not logged)",
    "smtp.unmatched_reply": "a reply with no command waiting for it",
}
# ---- end of outputs declarations ----

MAX_LINE = 8192                 # command / reply line
MAX_DATA_LINE = 4096            # a content line longer than this is passed on in pieces
MAX_HEADER_BLOCK = 64 * 1024
MAX_PENDING = 100
MAX_ADDRS = 1000
MAX_BDAT = 1 << 40

_SMTP_WORDS = (b"smtp", b"esmtp", b"postfix", b"sendmail", b"exim", b"lmtp", b"mail service",
               b"mailserver", b"mail server", b"qmail", b"exchange", b"haraka", b"zimbra")
_EMAIL_RE = re.compile(r"[^<>\s,;:\"'()\[\]]+@[^<>\s,;:\"'()\[\]]+")
_IPV4_RE = r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])"
_IPV6_RE = r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?![0-9A-Fa-f:])"
_IP_RE = re.compile(f"{_IPV4_RE}|{_IPV6_RE}")
_BLANK_LINE_RE = re.compile(rb"\r?\n\r?\n")


def _s(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        d = bytes(data)
        line = d.split(b"\n", 1)[0]
        if is_orig:
            verb = line[:5].upper()
            return verb in (b"EHLO ", b"HELO ", b"EHLO\r", b"HELO\r", b"LHLO ")
        if not (line[:3] == b"220" and line[3:4] in (b" ", b"-")):
            return False
        low = d[:1024].lower()
        return any(w in low for w in _SMTP_WORDS)
    except Exception:
        return False


def extract_addrs(text: str) -> list:
    """Every e-mail address in ``text``, in order, without duplicates."""
    out = []
    for a in _EMAIL_RE.findall(text):
        a = a.strip(".")
        if a and a not in out:
            out.append(a)
    return out


def extract_ips(text: str) -> list:
    out = []
    for cand in _IP_RE.findall(text):
        try:
            out.append(str(ipaddress.ip_address(cand)))
        except ValueError:
            continue
    return out


def split_addresses(value: str) -> list:
    """Split a To/Cc header on commas outside quotes and angle brackets."""
    parts, cur, quote, angle = [], [], False, 0
    for ch in value:
        if ch == '"':
            quote = not quote
        elif not quote and ch == "<":
            angle += 1
        elif not quote and ch == ">" and angle:
            angle -= 1
        if ch == "," and not quote and not angle:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    out = []
    for p in parts:
        p = p.strip()
        if p and p not in out:
            out.append(p)
    return out


class _Txn:
    __slots__ = ("ts", "depth", "helo", "mailfrom", "rcptto", "date", "from_", "to", "cc", "reply_to",
                 "msg_id", "in_reply_to", "subject", "x_originating_ip", "first_received",
                 "second_received", "last_reply", "path", "user_agent", "tls", "active")

    def __init__(self, ts, depth, helo, path, last_reply):
        self.ts, self.depth, self.helo, self.path, self.last_reply = ts, depth, helo, path, last_reply
        self.mailfrom = self.date = self.from_ = self.reply_to = self.msg_id = None
        self.in_reply_to = self.subject = self.x_originating_ip = None
        self.first_received = self.second_received = self.user_agent = None
        self.rcptto = self.to = self.cc = None
        self.tls = False
        self.active = False                # client activity seen (Zeek's has_client_activity)


class _Mail:
    """The content of one message: header block, then body."""
    __slots__ = ("ts", "in_headers", "hbuf", "scan", "headers", "body_len", "head", "keep", "truncated",
                 "incomplete", "max_body")

    def __init__(self, ts: float, keep: bool, max_body: int):
        self.ts = ts
        self.in_headers = True
        self.hbuf = bytearray()
        self.scan = 0
        self.headers: list = []
        self.body_len = 0
        self.head = bytearray()
        self.keep = bytearray() if keep and max_body > 0 else None
        self.truncated = self.incomplete = False
        self.max_body = max_body

    def feed(self, data: bytes) -> bool:
        """Content bytes; True when the header block just ended (headers parsed)."""
        if not data:
            return False
        if not self.in_headers:
            self._body(data)
            return False
        self.hbuf += data
        hb = self.hbuf
        if self.scan == 0 and (hb.startswith(b"\r\n") or hb.startswith(b"\n")):
            end, skip = 0, (2 if hb.startswith(b"\r\n") else 1)
        else:
            start = max(0, self.scan - 3)
            m = _BLANK_LINE_RE.search(hb, start)
            end, skip = (m.start(), m.end() - m.start()) if m else (-1, 0)
        if end < 0:
            self.scan = len(hb)
            if len(hb) > MAX_HEADER_BLOCK:      # no blank line: take it all as headers
                self._parse_headers(bytes(hb[:MAX_HEADER_BLOCK]))
                self.in_headers = False
                rest = bytes(hb[MAX_HEADER_BLOCK:])
                self.hbuf = bytearray()
                self._body(rest)
                return True
            return False
        self._parse_headers(bytes(hb[:end]))
        rest = bytes(hb[end + skip:])
        self.hbuf = bytearray()
        self.in_headers = False
        self._body(rest)
        return True

    def finish(self) -> bool:
        """End of content; True when the header block ended only now."""
        if self.in_headers:
            self._parse_headers(bytes(self.hbuf))
            self.hbuf = bytearray()
            self.in_headers = False
            return True
        return False

    def _parse_headers(self, block: bytes) -> None:
        cur = None
        for raw in block.split(b"\n"):
            line = raw.rstrip(b"\r")
            if line[:1] in (b" ", b"\t"):
                if cur is not None:
                    cur[1] += line            # unfold: drop the CRLF, keep the whitespace
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name.strip() or b" " in name.strip():
                cur = None
                continue
            cur = [name.strip().decode("latin-1").upper(), value.lstrip(b" \t")]
            self.headers.append(cur)
        for h in self.headers:
            h[1] = _s(h[1].strip())

    def _body(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.body_len += len(chunk)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[:SNIFF_BYTES - len(self.head)]
        if self.keep is not None and not self.truncated:
            room = self.max_body - len(self.keep)
            if len(chunk) > room:
                self.keep += chunk[:room]
                self.truncated = True
            else:
                self.keep += chunk

    def gap(self, length: int) -> None:
        self.incomplete = True
        if self.in_headers:
            self.finish()
        self.body_len += length
        if self.keep is not None:
            self.truncated = True

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None


_CMD, _DATA, _BDAT = 0, 1, 2
_EOD = "<end-of-data>"          # pending-command marker for the "." line closing DATA content
KNOWN_COMMANDS = frozenset(("HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN",
                            "HELP", "NOOP", "QUIT", "STARTTLS", "AUTH", "ETRN", "TURN", "ATRN", "XCLIENT",
                            "XFORWARD", "SEND", "SOML", "SAML"))


class Analyzer(_Base):
    NAME = NAME
    max_body = 8 << 20     # a message is what leaves: attachments (archives, workbooks) need their end

    def __init__(self, ctx):
        super().__init__(ctx)
        self._cbuf = bytearray()
        self._sbuf = bytearray()
        self._cdrop = self._sdrop = False      # skipping the rest of an over-long line
        self._ctainted = self._stainted = False  # the next line may start mid-line (after a gap)
        self._mode = _CMD
        self._mid_line = False                 # in DATA: the current content line started earlier
        self._data_consumed = 0
        self._bdat_left = 0
        self._bdat_last = False
        self._pending: list = []               # [verb, arg]
        self._ml_code = None
        self._ml_last = b""
        self.helo = None
        self.banner = None
        self._messages = 0
        self._txn: _Txn | None = None
        self._mail: _Mail | None = None
        self._last_reply = None
        self._stopped = False
        self._confirmed = False
        self._body_cb = getattr(ctx.sink, "body", None) if ctx.sink is not None else None

    # -- input -------------------------------------------------------------------------
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._stopped or not data:
            return
        data = bytes(data)
        if is_orig:
            self._client(data, ts)
        else:
            self._server(data, ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        if self._stopped or length <= 0:
            return
        if not is_orig:
            self._sbuf.clear()
            self._sdrop = False
            self._stainted = True
            self._ml_code = None
            return
        if self._mode == _DATA:
            self._data_line_flush()
            if self._mail is not None:
                self._mail.gap(length)
            self._mid_line = True
            self._data_consumed += length
            self.ctx.weird("smtp.content_gap", f"{length} bytes missing in message", ts)
        elif self._mode == _BDAT and length <= self._bdat_left:
            if self._mail is not None:
                self._mail.gap(length)
            self._bdat_left -= length
            if self._bdat_left == 0:
                self._bdat_done(ts)
            self.ctx.weird("smtp.content_gap", f"{length} bytes missing in BDAT chunk", ts)
        else:
            if self._mode == _BDAT:
                if self._mail is not None:
                    self._mail.gap(self._bdat_left)
                self._bdat_left = 0
                self._bdat_done(ts)
            self._mode = _CMD
            self._cbuf.clear()
            self._cdrop = False
            self._ctainted = True

    def done(self, ts: float) -> None:
        if self._mail is not None:
            if self._mode != _CMD:
                self._mail.incomplete = True
            self._end_mail(ts)
        self._flush()

    def wants_more(self) -> bool:
        return not self._stopped

    # -- client ------------------------------------------------------------------------
    def _client(self, data: bytes, ts: float) -> None:
        off, n = 0, len(data)
        while off < n and not self._stopped:
            if self._mode == _BDAT:
                take = min(self._bdat_left, n - off)
                if self._mail is not None:
                    self._mail_feed(data[off:off + take], ts)
                off += take
                self._bdat_left -= take
                if self._bdat_left == 0:
                    self._bdat_done(ts)
                continue
            if self._mode == _DATA:
                off = self._data_content(data, off, ts)
                continue
            nl = data.find(b"\n", off)
            if nl < 0:
                if not self._cdrop:
                    self._cbuf += data[off:]
                    if len(self._cbuf) > MAX_LINE:
                        self.ctx.weird("smtp.line_too_long", f"command line over {MAX_LINE} bytes", ts)
                        self._cbuf.clear()
                        self._cdrop = True
                return
            if self._cdrop:
                self._cdrop = False
                self._cbuf.clear()
                off = nl + 1
                continue
            if self._cbuf:
                self._cbuf += data[off:nl]
                line = bytes(self._cbuf)
                self._cbuf.clear()
            else:
                line = data[off:nl]
            off = nl + 1
            line = line.rstrip(b"\r")
            if self._ctainted:
                self._ctainted = False
                if line.split(b" ", 1)[0].upper().decode("latin-1") not in KNOWN_COMMANDS:
                    continue                    # the tail of a line cut by a gap
            self._command(line, ts)

    def _data_content(self, data: bytes, off: int, ts: float) -> int:
        """DATA mode: consume content from ``off``; returns the new offset.

        Only a line that starts with "." needs a look of its own (end marker or dot-stuffing);
        everything up to the next "<LF>." goes to the message in one piece."""
        n = len(data)
        buf = self._cbuf
        if buf:                                 # a dot line waiting for its end
            nl = data.find(b"\n", off)
            if nl < 0:
                buf += data[off:]
                self._data_consumed += n - off
                if len(buf) > MAX_DATA_LINE:
                    self._data_line_flush()
                return n
            buf += data[off:nl + 1]
            self._data_consumed += nl + 1 - off
            line = bytes(buf)
            buf.clear()
            self._dot_line(line, ts)
            return nl + 1
        if self._mid_line:                      # finish the current line
            nl = data.find(b"\n", off)
            end = n if nl < 0 else nl + 1
            self._data_consumed += end - off
            self._mail_feed(data[off:end], ts)
            self._mid_line = nl < 0
            return end
        if data[off:off + 1] == b".":           # a line starting with a dot
            nl = data.find(b"\n", off)
            if nl < 0:
                buf += data[off:]
                self._data_consumed += n - off
                if len(buf) > MAX_DATA_LINE:
                    self._data_line_flush()
                return n
            self._data_consumed += nl + 1 - off
            self._dot_line(data[off:nl + 1], ts)
            return nl + 1
        k = data.find(b"\n.", off)              # plain lines up to the next dot line
        end = n if k < 0 else k + 1
        self._data_consumed += end - off
        self._mail_feed(data[off:end], ts)
        self._mid_line = k < 0 and not data.endswith(b"\n")
        return end

    def _dot_line(self, line: bytes, ts: float) -> None:
        """A whole content line starting with ".": the end of the content, or dot-stuffed."""
        if line.rstrip(b"\r\n") == b".":
            self._mode = _CMD
            self._pending_push(_EOD, "", ts)    # the "." that ends the content
            self._end_mail(ts)
            return
        self._mid_line = False
        self._mail_feed(line[1:], ts)           # dot-unstuffing (RFC 5321 4.5.2)

    def _data_line_flush(self) -> None:
        """Pass on a long partial dot line (or the bytes before a gap) as content."""
        buf = self._cbuf
        if not buf:
            return
        line = bytes(buf)
        buf.clear()
        if line.startswith(b"."):
            if line.rstrip(b"\r") == b"." and len(line) <= 2:
                buf += line                     # might still be the end marker
                return
            line = line[1:]
        self._mid_line = True
        self._mail_feed(line, None)

    def _mail_feed(self, data: bytes, ts) -> None:
        m = self._mail
        if m is None:
            return
        if m.feed(data):
            self._apply_headers(m)

    def _command(self, line: bytes, ts: float) -> None:
        if not line.strip():
            return
        verb_b, _, arg_b = line.strip().partition(b" ")
        verb = _s(verb_b[:16]).upper()
        arg = _s(arg_b.strip())
        if verb in ("HELO", "EHLO", "LHLO"):
            self.helo = arg
            if self._txn is not None:
                self._txn.helo = arg
        elif verb == "MAIL" and arg[:5].upper() == "FROM:":
            self._flush()
            t = self._new_txn(ts)
            rest = arg[5:].strip()
            addrs = extract_addrs(rest.split(None, 1)[0] if rest.startswith("<") else rest)
            if addrs:
                t.mailfrom = addrs[0]
        elif verb == "RCPT" and arg[:3].upper() == "TO:":
            t = self._txn or self._new_txn(ts)
            t.active = True
            rc = t.rcptto if t.rcptto is not None else []
            for a in extract_addrs(re.sub(r"(?i)ORCPT=rfc822;?", " ", arg[3:])):
                if len(rc) >= MAX_ADDRS:
                    self.ctx.weird("smtp.too_many_rcptto_addresses", "", ts)
                    break
                if a not in rc:
                    rc.append(a)
            t.rcptto = rc
        elif verb == "DATA":
            t = self._txn or self._new_txn(ts)
            t.active = True
            self._pending_push(verb, arg, ts)
            self._mode = _DATA
            self._mid_line = False
            self._data_consumed = 0
            self._mail = _Mail(ts, self._body_cb is not None, self.max_body)
            return
        elif verb == "BDAT":
            parts = arg.split()
            size = int(parts[0]) if parts and parts[0].isdigit() and len(parts[0]) <= 15 else -1
            last = len(parts) > 1 and parts[1].upper() == "LAST"
            self._pending_push(verb, arg, ts)
            t = self._txn or self._new_txn(ts)
            t.active = True
            if size < 0 or size > MAX_BDAT or len(parts) > 2 or (len(parts) == 2 and not last):
                self.ctx.weird("smtp.bdat_invalid", arg[:40], ts)
                return
            if self._mail is None:
                self._mail = _Mail(ts, self._body_cb is not None, self.max_body)
            self._bdat_left, self._bdat_last = size, last
            if size == 0:
                self._bdat_done(ts)
            else:
                self._mode = _BDAT
            return
        elif verb == "STARTTLS":
            t = self._txn or self._new_txn(ts)
            t.active = True
        self._pending_push(verb, arg, ts)

    def _bdat_done(self, ts: float) -> None:
        self._mode = _CMD
        if self._bdat_last:
            self._end_mail(ts)
            self._bdat_last = False

    def _pending_push(self, verb: str, arg: str, ts: float) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.ctx.weird("smtp.too_many_pending_commands", str(len(self._pending)), ts)
            del self._pending[0]
        self._pending.append((verb, arg))

    # -- server ------------------------------------------------------------------------
    def _server(self, data: bytes, ts: float) -> None:
        off, n = 0, len(data)
        while off < n and not self._stopped:
            nl = data.find(b"\n", off)
            if nl < 0:
                if not self._sdrop:
                    self._sbuf += data[off:]
                    if len(self._sbuf) > MAX_LINE:
                        self.ctx.weird("smtp.line_too_long", f"reply line over {MAX_LINE} bytes", ts)
                        self._sbuf.clear()
                        self._sdrop = True
                return
            if self._sdrop:
                self._sdrop = False
                self._sbuf.clear()
                off = nl + 1
                continue
            if self._sbuf:
                self._sbuf += data[off:nl]
                line = bytes(self._sbuf)
                self._sbuf.clear()
            else:
                line = data[off:nl]
            off = nl + 1
            line = line.rstrip(b"\r")
            if self._stainted:
                self._stainted = False
                if not (line[:3].isdigit() and line[3:4] in (b" ", b"-", b"")):
                    continue
            self._reply_line(line, ts)

    def _reply_line(self, line: bytes, ts: float) -> None:
        code_b, sep = line[:3], line[3:4]
        if not (len(code_b) == 3 and code_b.isdigit()) or sep not in (b" ", b"-", b""):
            if line.strip():
                self.ctx.weird("smtp.bad_reply", _s(line[:40]), ts)
            return
        code = int(code_b)
        msg = line[4:]
        self._last_reply = f"{code} {_s(msg)}"
        if self._txn is not None:
            self._txn.last_reply = self._last_reply
        if sep == b"-":
            self._ml_code = code
            return
        self._ml_code = None
        self._reply(code, msg, ts)

    def _reply(self, code: int, msg: bytes, ts: float) -> None:
        if self.banner is None and code in (220, 554, 421):
            self.banner = _s(msg)
            low = msg.lower()
            if code == 220 and any(w in low for w in _SMTP_WORDS):
                self._confirm()
            return
        if not self._pending:
            if code != 421:
                self.ctx.weird("smtp.unmatched_reply", f"{code} {_s(msg[:40])}", ts)
            return
        verb, arg = self._pending.pop(0)
        if verb in ("EHLO", "HELO", "LHLO") and code == 250:
            self._confirm()
        if verb == "DATA":
            if code == 354:
                self._confirm()
            elif code >= 400 and self._mode == _DATA and self._data_consumed == 0:
                self._mode = _CMD                # refused: no content follows
                self._mail = None
        elif verb == _EOD or (verb == "BDAT" and arg.upper().endswith(" LAST")):
            self._messages += 1
            self._flush()
        elif verb == "STARTTLS" and code == 220:
            t = self._txn or self._new_txn(ts)
            t.tls = True
            t.active = True
            t.last_reply = self._last_reply
            self._flush()
            self._stopped = True

    # -- transactions ------------------------------------------------------------------
    def _new_txn(self, ts: float) -> _Txn:
        c = self.ctx
        t = _Txn(ts, self._messages + 1, self.helo, [c.resp_h, c.orig_h], self._last_reply)
        t.active = True
        self._txn = t
        return t

    def _apply_headers(self, m: _Mail) -> None:
        t = self._txn
        if t is None:
            return
        for name, value in m.headers:
            if name == "MESSAGE-ID":
                t.msg_id = value
            elif name == "RECEIVED":
                if t.first_received is not None:
                    t.second_received = t.first_received
                t.first_received = value
                ips = extract_ips(value)
                ip = ips[1] if len(ips) > 1 else ips[0] if ips else None
                if ip is not None and t.path[-1] != ip and len(t.path) < MAX_ADDRS:
                    t.path.append(ip)
            elif name == "IN-REPLY-TO":
                t.in_reply_to = value
            elif name == "SUBJECT":
                t.subject = value
            elif name == "FROM":
                t.from_ = value
            elif name == "REPLY-TO":
                t.reply_to = value
            elif name == "DATE":
                t.date = value
            elif name in ("TO", "CC"):
                cur = (t.to if name == "TO" else t.cc) or []
                for a in split_addresses(value):
                    if len(cur) >= MAX_ADDRS:
                        break
                    if a not in cur:
                        cur.append(a)
                if name == "TO":
                    t.to = cur
                else:
                    t.cc = cur
            elif name == "X-ORIGINATING-IP":
                ips = extract_ips(value)
                if ips:
                    t.x_originating_ip = ips[0]
            elif name in ("X-MAILER", "USER-AGENT", "X-USER-AGENT"):
                t.user_agent = value

    def _end_mail(self, ts: float) -> None:
        m = self._mail
        self._mail = None
        if m is None:
            return
        if m.finish():
            self._apply_headers(m)
        if m.body_len and self._body_cb is not None:
            self._deliver_body(m, ts)

    def _deliver_body(self, m: _Mail, ts: float) -> None:
        """sink.body(ctx, True, info, body): the body after the header block (transfer encoding kept)."""
        t = self._txn
        ct = m.header("CONTENT-TYPE")
        info = {
            "protocol": "smtp",
            "direction": "request",
            "ts": m.ts,
            "trans_depth": t.depth if t else self._messages + 1,
            "helo": self.helo,
            "mailfrom": t.mailfrom if t else None,
            "rcptto": list(t.rcptto or []) if t else [],
            "from": m.header("FROM"),
            "to": m.header("TO"),
            "cc": m.header("CC"),
            "subject": m.header("SUBJECT"),
            "date": m.header("DATE"),
            "msg_id": m.header("MESSAGE-ID"),
            "content_type": ct,
            "content_transfer_encoding": m.header("CONTENT-TRANSFER-ENCODING"),
            "boundary": boundary_of(ct) if ct and ct.lower().startswith("multipart/") else None,
            "headers": [(n, v) for n, v in m.headers],
            "mime_type": sniff_mime(bytes(m.head)),
            "body_len": m.body_len,
            "truncated": m.truncated,
            "incomplete": m.incomplete,
        }
        body = bytes(m.keep) if m.keep is not None else b""
        m.keep = None
        self._body_cb(self.ctx, True, info, body)

    def _flush(self) -> None:
        t = self._txn
        self._txn = None
        if t is None or not t.active:
            return
        c = self.ctx
        c.emit(LOG, {
            "ts": t.ts,
            "uid": c.uid,
            "id.orig_h": c.orig_h,
            "id.orig_p": c.orig_p,
            "id.resp_h": c.resp_h,
            "id.resp_p": c.resp_p,
            "trans_depth": t.depth,
            "helo": t.helo,
            "mailfrom": t.mailfrom,
            "rcptto": t.rcptto,
            "date": t.date,
            "from": t.from_,
            "to": t.to,
            "cc": t.cc,
            "reply_to": t.reply_to,
            "msg_id": t.msg_id,
            "in_reply_to": t.in_reply_to,
            "subject": t.subject,
            "x_originating_ip": t.x_originating_ip,
            "first_received": t.first_received,
            "second_received": t.second_received,
            "last_reply": t.last_reply,
            "path": t.path,
            "user_agent": t.user_agent,
            "tls": t.tls,
        })

    def _confirm(self) -> None:
        if not self._confirmed:
            self._confirmed = True
            self.ctx.confirm("smtp")


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "smtp"}
PII_FIELDS = {"smtp": ("mailfrom", "rcptto", "from", "to", "cc", "reply_to")}
CONTENT = "bodies"                 # message bodies go to ctx.sink.body
