"""FTP control channel: one ``ftp.jsonl`` record per command (Zeek's ftp.log fields).

The originator sends command lines (``CMD arg``); the responder sends replies,
possibly multi-line (``123-first`` ... ``123 last``).  Commands wait in a
pending list; each final reply (2xx-5xx) completes the best-matching pending
command (Zeek's rule: a reply code that fits the command scores highest, then
the command name / argument appearing in the reply text, ties to the oldest),
a preliminary reply (1xx) is recorded but leaves the command pending.  The
record is written when the command completes, or when the connection ends.

Differences from Zeek's default ftp.log: every command is logged (Zeek logs
only APPE DELE RETR STOR STOU ACCT PORT PASV EPRT EPSV unless configured), and
the password is ``<hidden>`` unless the user is a guest id (anonymous, ftp,
ftpuser, guest), as with Zeek's default.  ``arg`` of file commands is Zeek's
``ftp://<resp_h>/<cwd>/<file>`` URL, with the working directory tracked from
CWD/CDUP/PWD.  ``mime_type`` stays null (the control channel never carries
the file); ``file_size`` comes from the ``150 ... (N bytes)`` and ``213`` replies.

Data channels: PORT/EPRT (active: the server connects from its side to the
client's announced address) and 227 PASV / 229 EPSV replies (passive: the
client connects to the announced address, for EPSV the control connection's
server address) each call ``ctx.expect(orig_h, resp_h, resp_p, "ftp-data", ts)``.
After ``AUTH TLS``/``AUTH SSL`` is accepted (234) the channel is encrypted and
parsing stops.

GridFTP / GSI (``AUTH GSSAPI``, RFC 2228): once the server asks for the
security data exchange (334), the base64 tokens of ``ADAT`` commands and of
the ``ADAT=`` in 334/335/235 replies are decoded and fed to a TLS analyzer on
the same connection (GSI's GSSAPI tokens are TLS records), as Zeek's
FTP_ADAT analyzer does: ``tls.jsonl`` gets the handshake and the service
``ssl``.  The exchange ends with 235 (after its token), 232/234, a refusal
(421 431 500 501 503 535), a protected reply (631-633) or a new AUTH; a first
token that is not a TLS handshake record ends it too.  Protected replies
(631-633) are valid reply codes.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re

from . import tls
from ..outputs.schema import ADDR, BOOL, CONN_ID, INT, PORT, STRING, TIME, Field, Stream
from .base import Analyzer as _Base

NAME = "ftp"
TRANSPORTS = ("tcp",)
PORTS = (21, 2121, 2811)
LOG = "ftp"
# ---- outputs (read by inspector.outputs): the ftp log's schema and this module's weird names ----
LOG_SCHEMA = Stream("ftp", "FTP commands and their replies, one record per command (Zeek ftp.log)", (
    Field("ts", TIME, "time of the command"),
    Field("uid", STRING, "the control connection's uid"),
    *CONN_ID,
    Field("user", STRING, "user name of the session"),
    Field("password", STRING, "password: shown only for anonymous logins, else <hidden>"),
    Field("command", STRING, "the command (RETR, STOR, USER...)"),
    Field("arg", STRING, "the command's argument (a file name becomes a URL, as Zeek)"),
    Field("mime_type", STRING, "MIME type of the transferred file (not sniffed: always null)"),
    Field("file_size", INT, "file size from a SIZE reply or a 150/213 reply"),
    Field("reply_code", INT, "the server's reply code"),
    Field("reply_msg", STRING, "the server's reply text"),
    Field("data_channel.passive", BOOL, "the data channel was opened in passive mode"),
    Field("data_channel.orig_h", ADDR, "data channel originator"),
    Field("data_channel.resp_h", ADDR, "data channel responder"),
    Field("data_channel.resp_p", PORT, "data channel responder port"),
))
FIELDS = LOG_SCHEMA.names
WEIRDS = {
    "ftp.adat_bad_encoding": "an ADAT (RFC 2228 security data) argument that is not valid base64",
    "ftp.adat_bad_first_token_encoding": "the first ADAT token of a session is not valid base64",
    "ftp.bad_command": "a command line that is not a command word and argument",
    "ftp.bad_epsv_reply": "a 229 reply whose (|||port|) cannot be parsed",
    "ftp.bad_pasv_reply": "a 227 reply whose h1,h2,h3,h4,p1,p2 cannot be parsed",
    "ftp.bad_port": "a PORT or EPRT argument that cannot be parsed",
    "ftp.bad_reply": "a reply line without a three-digit code",
    "ftp.line_too_long": "a command or reply line over the line limit (cut)",
    "ftp.missing_space_after_reply_code": "a reply code not followed by a space or hyphen",
    "ftp.too_many_pending_commands": "more commands waiting for replies than the limit (oldest dropped)",
    "ftp.unmatched_reply": "a reply with no command waiting for it",
    "ftp.unterminated_multiline_reply": "a multi-line reply that never ended",
}
# ---- end of outputs declarations ----

GUEST_IDS = frozenset(("anonymous", "ftp", "ftpuser", "guest"))
HIDDEN = "<hidden>"
MAX_LINE = 8192
MAX_PENDING = 20
MAX_USER = 128
MAX_ARG = 4096
MAX_REPLY_LINES = 500

# Commands whose argument names a file or directory (logged as a URL, like Zeek).
TRANSFER_CMDS = frozenset(("RETR", "STOR", "STOU", "APPE", "LIST", "NLST", "MLSD"))
FILE_CMDS = frozenset(("APPE", "CWD", "DELE", "MKD", "RETR", "RMD", "RNFR", "RNTO",
                       "STOR", "STOU", "REST", "SIZE", "MDTM"))

# Reply codes each command may receive (RFC 959 section 5.4 and the extension RFCs).
_REPLIES = {
    "USER": (230, 331, 332, 421, 530, 500, 501), "PASS": (230, 202, 332, 421, 530, 500, 501, 503),
    "ACCT": (230, 202, 421, 530, 500, 501, 503), "CWD": (250, 421, 500, 501, 502, 530, 550),
    "CDUP": (200, 250, 421, 500, 501, 502, 530, 550), "SMNT": (202, 250, 421, 500, 501, 502, 530, 550),
    "REIN": (120, 220, 421, 500, 502), "QUIT": (221, 500), "PORT": (200, 421, 500, 501, 530),
    "PASV": (227, 421, 500, 501, 502, 530), "MODE": (200, 421, 500, 501, 502, 504, 530),
    "TYPE": (200, 421, 500, 501, 504, 530), "STRU": (200, 421, 500, 501, 504, 530),
    "ALLO": (200, 202, 421, 500, 501, 504, 530), "REST": (200, 350, 421, 500, 501, 502, 530),
    "STOR": (110, 125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 452, 553, 500, 501, 530, 550),
    "STOU": (110, 125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 452, 553, 500, 501, 530, 550),
    "RETR": (110, 125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 530, 550),
    "LIST": (125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 502, 530, 550),
    "NLST": (125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 502, 530, 550),
    "APPE": (125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 550, 452, 553, 500, 501, 502, 530),
    "RNFR": (350, 421, 450, 550, 500, 501, 502, 530), "RNTO": (250, 421, 532, 553, 500, 501, 502, 503, 530),
    "DELE": (250, 421, 450, 550, 500, 501, 502, 530), "RMD": (250, 421, 500, 501, 502, 530, 550),
    "MKD": (257, 421, 500, 501, 502, 530, 550), "PWD": (257, 421, 500, 501, 502, 550),
    "XPWD": (257, 421, 500, 501, 502, 550), "ABOR": (225, 226, 421, 500, 501, 502),
    "SYST": (215, 421, 500, 501, 502, 530), "STAT": (211, 212, 213, 421, 450, 500, 501, 502, 530),
    "HELP": (200, 211, 214, 421, 500, 501, 502), "SITE": (200, 202, 214, 500, 501, 502, 530),
    "NOOP": (200, 421, 500), "LPRT": (500, 501, 521), "FEAT": (211, 500, 502),
    "OPTS": (200, 451, 501), "EPSV": (229, 500, 501), "EPRT": (200, 500, 501, 522),
    "SIZE": (213, 500, 501, 550), "MDTM": (213, 500, 501, 550),
    "MLST": (150, 226, 250, 500, 501, 550), "MLSD": (150, 226, 250, 500, 501, 550),
    "AUTH": (234, 334, 431, 500, 501, 502, 504, 534), "PBSZ": (200, 500, 501, 503, 530),
    "PROT": (200, 431, 500, 501, 503, 504, 530, 534, 536), "CLNT": (200, 500),
    "MACB": (200, 500, 550),
    # RFC 2228 security extensions
    "ADAT": (235, 335, 421, 500, 501, 503, 535), "CCC": (200, 500, 533, 534),
    "MIC": (631, 632, 633, 500, 533, 535, 537), "CONF": (631, 632, 633, 500, 533, 535, 537),
    "ENC": (631, 632, 633, 500, 533, 535, 537),
}

KNOWN_COMMANDS = frozenset(_REPLIES) | {"LPSV", "EPSV", "XCWD", "XMKD", "XRMD", "XCUP", "MFMT", "MFCT",
                                        "MFF", "HOST", "LANG", "CCC", "ADAT", "CONF", "ENC", "MIC"}
_CMD_RE = re.compile(rb"^[A-Za-z]{1,12}$")
_PASV_RE = re.compile(rb"(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})")
_EPSV_RE = re.compile(rb"\(([!-~])([^()]{0,8}?)\1([^()]{0,64}?)\1(\d{1,5})\1\)")
_SIZE_RE = re.compile(rb"\((\d{1,19})\s+bytes?\)", re.I)
_FIRST_NUM_RE = re.compile(rb"\d{1,19}")
_PWD_RE = re.compile(rb'"((?:[^"]|"")*)"')
_PROTECTED = (b"631", b"632", b"633")          # RFC 2228 protected replies (integrity/confidentiality)
# Replies that end a GSSAPI security data exchange (Zeek's FTP_ADAT analyzer): done or refused.
_ADAT_DONE = frozenset((232, 234, 421, 431, 500, 501, 503, 535, 631, 632, 633))


def _s(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _looks_smtp(line: bytes) -> bool:
    low = line.lower()
    return any(w in low for w in (b"smtp", b"esmtp", b"postfix", b"sendmail", b"exim", b"lmtp",
                                  b"mail service", b"mailserver"))


def probe(data: bytes, is_orig: bool) -> bool:
    try:
        d = bytes(data)
        line = d.split(b"\n", 1)[0]
        if is_orig:
            verb = line.split(None, 1)[0].upper() if line.strip() else b""
            if verb in (b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS", b"CLNT"):
                return verb != b"AUTH" or (b"TLS" in line.upper() or b"SSL" in line.upper())
            return False
        # "220" also opens SMTP: claim only banners that say FTP (the client's USER decides the rest)
        low = d[:512].lower()
        return (len(line) >= 3 and line[:3] in (b"220", b"120") and line[3:4] in (b" ", b"-", b"\r", b"")
                and any(w in low for w in (b"ftp", b"filezilla", b"serv-u")) and not _looks_smtp(low))
    except Exception:
        return False


def parse_port(arg: str):
    """``h1,h2,h3,h4,p1,p2`` -> (addr, port) or None."""
    m = _PASV_RE.search(arg.encode("latin-1", "replace"))
    if not m:
        return None
    n = [int(x) for x in m.groups()]
    if any(x > 255 for x in n):
        return None
    port = n[4] * 256 + n[5]
    if port == 0:
        return None
    return "%d.%d.%d.%d" % tuple(n[:4]), port


def parse_eprt(arg: str):
    """``|1|132.235.1.2|6275|`` / ``|2|::1|6275|`` -> (addr, port) or None (RFC 2428)."""
    arg = arg.strip()
    if len(arg) < 7:
        return None
    delim = arg[0]
    parts = arg.split(delim)
    if len(parts) != 5 or parts[4] != "":
        return None
    proto, addr, port = parts[1], parts[2], parts[3]
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if (proto == "1" and ip.version != 4) or (proto == "2" and ip.version != 6) or proto not in ("1", "2"):
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return str(ip), int(port)


def parse_epsv(msg: bytes):
    """``229 Entering Extended Passive Mode (|||6446|)`` -> (addr or None, port) or None."""
    m = _EPSV_RE.search(msg)
    if not m:
        return None
    port = int(m.group(4))
    if not 0 < port < 65536:
        return None
    addr = None
    if m.group(3):                          # RFC 2428 leaves it empty; some servers fill it in
        try:
            addr = str(ipaddress.ip_address(m.group(3).decode("latin-1")))
        except ValueError:
            addr = None
    return addr, port


def compress_path(path: str) -> str:
    """Zeek's compress_path: fold ``dir/..``, collapse ``//`` and ``/./``, drop a trailing ``/``."""
    absolute = path.startswith("/")
    out: list[str] = []
    segs = path.split("/")
    for i, seg in enumerate(segs):
        if seg == "" or (seg == "." and (i > 0 or absolute)):
            continue
        if seg == ".." and out and out[-1] not in ("..", "."):
            out.pop()
            continue
        out.append(seg)
    res = "/".join(out)
    if absolute:
        res = "/" + res
    return res or ("/" if absolute else ".")


def build_path(cwd: str, name: str) -> str:
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name) or cwd == "":
        return compress_path(name)
    return compress_path(cwd + ("" if cwd.endswith("/") else "/") + name)


class _Cmd:
    __slots__ = ("ts", "seq", "cmd", "arg", "reply_code", "reply_msg", "file_size", "dc", "cwd_done", "url")

    def __init__(self, ts: float, seq: int, cmd: str, arg: str):
        self.ts, self.seq, self.cmd, self.arg = ts, seq, cmd, arg
        self.url = None
        self.reply_code = self.reply_msg = self.file_size = self.dc = None
        self.cwd_done = False


class Analyzer(_Base):
    NAME = NAME

    def __init__(self, ctx):
        super().__init__(ctx)
        self._buf = {True: bytearray(), False: bytearray()}
        self._drop = {True: False, False: False}     # discarding the rest of an over-long line
        self._tainted = {True: False, False: False}  # the next line may start mid-line (after a gap)
        self._pending: list[_Cmd] = []
        self._seq = 0
        self.user = None
        self.password = None
        self.cwd = "."
        self.banner = None
        self._ml_code = None              # code of the multi-line reply in progress
        self._ml_lines: list[bytes] = []
        self._confirmed = False
        self._stopped = False             # AUTH TLS accepted: the rest is encrypted
        self._auth = None                 # mechanism of the last AUTH command
        self.adat_tls = None              # tls.Analyzer fed the GSSAPI (GSI) tokens, once any
        self._adat_on = False             # security data exchange in progress
        self._adat_first = True
        self._size = None                 # (argument, size) of the last SIZE answered with 213

    # -- input -------------------------------------------------------------------------
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._stopped or not data:
            return
        buf = self._buf[is_orig]
        data = bytes(data)
        start = 0
        while not self._stopped:
            nl = data.find(b"\n", start)
            if nl < 0:
                rest = data[start:]
                if self._drop[is_orig]:
                    return
                buf += rest
                if len(buf) > MAX_LINE:
                    self.ctx.weird("ftp.line_too_long", f"{'command' if is_orig else 'reply'} line over {MAX_LINE} bytes", ts)
                    line = bytes(buf[:MAX_LINE])
                    buf.clear()
                    self._drop[is_orig] = True
                    self._line(is_orig, line, ts)
                return
            if self._drop[is_orig]:
                self._drop[is_orig] = False
                buf.clear()
                start = nl + 1
                continue
            tainted = self._tainted[is_orig]
            self._tainted[is_orig] = False
            if buf:
                buf += data[start:nl]
                line = bytes(buf)
                buf.clear()
            else:
                line = data[start:nl]
            start = nl + 1
            line = line.rstrip(b"\r")
            if tainted and not self._plausible(is_orig, line):
                continue                    # the tail of a line cut by the gap
            self._line(is_orig, line, ts)

    def gap(self, is_orig: bool, length: int, ts: float) -> None:
        if self._stopped:
            return
        self._buf[is_orig].clear()
        self._drop[is_orig] = False
        self._tainted[is_orig] = True       # maybe mid-line after the hole
        if not is_orig:
            self._ml_code = None
            self._ml_lines = []

    def done(self, ts: float) -> None:
        for c in self._pending:
            self._emit(c)
        self._pending = []
        if self.adat_tls is not None:
            self.adat_tls.done(ts)

    def wants_more(self) -> bool:
        return not self._stopped

    def current_transfer(self) -> dict | None:
        """The data transfer in progress: the newest pending RETR/STOR/STOU/APPE/LIST/NLST/MLSD
        (``command``, ``arg`` as sent, ``size`` from its 150 reply or an earlier SIZE of the same
        argument), or None.  A data channel's bytes flow while this command waits for its 226."""
        for c in reversed(self._pending):
            if c.cmd in TRANSFER_CMDS:
                size = c.file_size
                if size is None and self._size is not None and self._size[0] == c.arg:
                    size = self._size[1]
                return {"command": c.cmd, "arg": c.arg, "size": size}
        return None

    @staticmethod
    def _plausible(is_orig: bool, line: bytes) -> bool:
        """After a gap: does this line look like a whole command / reply line?"""
        if is_orig:
            verb = line.split(b" ", 1)[0].upper()
            return verb.decode("latin-1") in KNOWN_COMMANDS
        return len(line) >= 3 and line[:3].isdigit() and line[3:4] in (b" ", b"-", b"")

    # -- lines ---------------------------------------------------------------------------
    def _line(self, is_orig: bool, line: bytes, ts: float) -> None:
        if is_orig:
            self._command(line, ts)
        else:
            self._reply_line(line, ts)

    def _command(self, line: bytes, ts: float) -> None:
        # Telnet IP/DM/synch bytes (IAC ...) may precede ABOR and friends.
        if b"\xff" in line:
            line = re.sub(rb"\xff[\xf0-\xfe]?", b"", line)
        line = line.strip(b" \t\r\x00")
        if not line:
            return
        verb, _, arg = line.partition(b" ")
        if not _CMD_RE.match(verb):
            self.ctx.weird("ftp.bad_command", _s(line[:40]), ts)
            return
        cmd = verb.decode("ascii").upper()
        arg_s = _s(arg.strip(b" "))
        if len(self._pending) >= MAX_PENDING:
            self.ctx.weird("ftp.too_many_pending_commands", str(len(self._pending)), ts)
            self._emit(self._pending.pop(0))
        self._seq += 1
        c = _Cmd(ts, self._seq, cmd, arg_s)
        if cmd in FILE_CMDS and arg_s:
            c.url = self._url(arg_s)            # against the directory current when it was sent
        self._pending.append(c)
        if cmd == "AUTH":
            self._auth = arg_s.upper()
            self._adat_on = False           # a reissued AUTH resets the security state
        elif cmd == "ADAT" and self._adat_on:
            self._adat_token(True, arg, ts)
        if cmd == "USER":
            self.user = arg_s[:MAX_USER]
        elif cmd == "PASS":
            self.password = arg_s[:MAX_USER]
        elif cmd in ("PORT", "EPRT"):
            hp = parse_port(arg_s) if cmd == "PORT" else parse_eprt(arg_s)
            if hp is None:
                self.ctx.weird("ftp.bad_port", f"{cmd} {arg_s[:60]}", ts)
            else:
                # active mode: the server connects from its side to the client's address
                c.dc = (False, self.ctx.resp_h, hp[0], hp[1])
                self.ctx.expect(self.ctx.resp_h, hp[0], hp[1], "ftp-data", ts)

    def _reply_line(self, line: bytes, ts: float) -> None:
        code_b, sep = line[:3], line[3:4]
        valid = len(code_b) == 3 and code_b.isdigit() and (code_b[:1] in b"12345" or code_b in _PROTECTED)
        if valid and (self._adat_on or (code_b == b"334" and self._auth == "GSSAPI")):
            self._adat_reply(int(code_b), line, ts)
        if self._ml_code is not None:
            # inside a multi-line reply: ends at "<same code> " (or a bare "<code>")
            if valid and int(code_b) == self._ml_code and sep in (b" ", b""):
                msgs = self._ml_lines + [line[4:]]
                self._ml_code, self._ml_lines = None, []
                self._reply(int(code_b), msgs, ts)
            elif valid and sep == b" " and int(code_b) != self._ml_code:
                # A server that never closed its multi-line reply (seen in the wild: "150 ...",
                # "230- warning", text, "226 Transfer complete."): drop the open one, keep this.
                self.ctx.weird("ftp.unterminated_multiline_reply", str(self._ml_code), ts)
                self._ml_code, self._ml_lines = None, []
                self._reply(int(code_b), [line[4:]], ts)
            elif len(self._ml_lines) < MAX_REPLY_LINES:
                self._ml_lines.append(line)
            return
        if not valid:
            if line.strip():
                self.ctx.weird("ftp.bad_reply", _s(line[:40]), ts)
            return
        code = int(code_b)
        if sep == b"-":
            self._ml_code, self._ml_lines = code, [line[4:]]
            return
        if sep not in (b" ", b""):
            self.ctx.weird("ftp.missing_space_after_reply_code", _s(line[:40]), ts)
            self._reply(code, [line[3:]], ts)
            return
        self._reply(code, [line[4:]], ts)

    # -- a complete reply ------------------------------------------------------------
    def _reply(self, code: int, msgs: list, ts: float) -> None:
        text = msgs[-1] if msgs else b""
        msg = _s(text.strip())
        if self.banner is None and code in (120, 220, 421):
            # the greeting (Zeek's "<init>" pseudo command); 120 = "ready in nnn minutes"
            if code != 120:
                self.banner = msg
            if code == 220 and not _looks_smtp(text):
                self._confirm()
            return
        c = self._match(code, msg)
        if c is None:
            if code != 421:                 # 421: unsolicited "service closing"
                self.ctx.weird("ftp.unmatched_reply", f"{code} {msg[:40]}", ts)
            return
        self._confirm()
        c.reply_code, c.reply_msg = code, msg
        whole = b" ".join(msgs)
        cmd = c.cmd
        if (code == 150 and cmd == "RETR") or (code == 213 and cmd == "SIZE"):
            m = _SIZE_RE.search(whole) if code == 150 else _FIRST_NUM_RE.search(whole)
            if m:
                c.file_size = int(m.group(1) if code == 150 else m.group(0))
                if cmd == "SIZE":
                    self._size = (c.arg, c.file_size)
        elif code == 227 and cmd == "PASV":
            hp = parse_port(_s(whole))
            if hp is None:
                self.ctx.weird("ftp.bad_pasv_reply", msg[:60], ts)
            else:
                addr = hp[0]
                if addr == "0.0.0.0":
                    addr = self.ctx.resp_h
                c.dc = (True, self.ctx.orig_h, addr, hp[1])
                self.ctx.expect(self.ctx.orig_h, addr, hp[1], "ftp-data", ts)
        elif code == 229 and cmd == "EPSV":
            hp = parse_epsv(whole)
            if hp is None:
                self.ctx.weird("ftp.bad_epsv_reply", msg[:60], ts)
            else:
                addr = hp[0] or self.ctx.resp_h
                c.dc = (True, self.ctx.orig_h, addr, hp[1])
                self.ctx.expect(self.ctx.orig_h, addr, hp[1], "ftp-data", ts)
        elif code == 234 and cmd == "AUTH":
            self._stopped = True            # TLS from here on
        if not c.cwd_done:
            if cmd == "CWD" and code == 250:
                c.cwd_done = True
                self.cwd = build_path(self.cwd, c.arg)
            elif cmd == "CDUP" and code in (200, 250):
                c.cwd_done = True
                self.cwd = build_path(self.cwd, "..")
            elif cmd in ("PWD", "XPWD") and code == 257:
                c.cwd_done = True
                m = _PWD_RE.search(whole)
                if m:
                    self.cwd = _s(m.group(1).replace(b'""', b'"'))
        if code >= 200:
            self._pending.remove(c)
            self._emit(c)
        if self._stopped:
            for p in self._pending:
                self._emit(p)
            self._pending = []
            if self.adat_tls is not None:      # wants_more() turns False: nothing comes after
                self.adat_tls.done(ts)

    def _match(self, code: int, msg: str) -> _Cmd | None:
        best, best_score = None, -1
        for c in self._pending:
            score = 0
            if code == 500 or code in _REPLIES.get(c.cmd, ()):
                score += 100
            if c.cmd and c.cmd in msg:
                score += 20
            if c.arg and c.arg in msg:
                score += 10
            if score > best_score:
                best, best_score = c, score
        return best

    # -- GSSAPI (GSI) security data exchange: TLS in base64 ----------------------------
    def _adat_reply(self, code: int, line: bytes, ts: float) -> None:
        """One reply line during (or opening) the ADAT exchange."""
        if code == 334 and not self._adat_on and self._auth == "GSSAPI":
            self._adat_on = True            # the server wants the exchange: TLS follows
            self._adat_first = True
        if code in (334, 335, 235):
            rest = line[3:]
            if rest[:1] == b"-":
                rest = rest[1:]
            rest = rest.lstrip(b" \t")
            if rest[:5] == b"ADAT=":
                self._adat_token(False, rest[5:], ts)
            if code == 235:
                self._adat_on = False       # exchange complete (this token was the last)
        elif code in _ADAT_DONE:
            self._adat_on = False

    def _adat_token(self, is_orig: bool, b64: bytes, ts: float) -> None:
        if not is_orig and self._adat_first:
            return                          # nothing from the server before the client's first token
        try:
            token = base64.b64decode(b64.strip() + b"=" * (-len(b64.strip()) % 4), validate=False)
        except (binascii.Error, ValueError):
            self.ctx.weird("ftp.adat_bad_first_token_encoding" if is_orig and self._adat_first
                           else "ftp.adat_bad_encoding", _s(b64[:40]), ts)
            token = b""
        if is_orig and self._adat_first:
            self._adat_first = False
            # GSI starts right in on a TLS handshake (no RFC 2743 token framing): check that
            # the first token is one TLS handshake record, else this is another mechanism.
            if len(token) < 5 or token[0] != 0x16 or len(token) - 5 != int.from_bytes(token[3:5], "big"):
                self._adat_on = False
                return
        if not token:
            return
        if self.adat_tls is None:
            self.adat_tls = tls.Analyzer(self.ctx)
        self.adat_tls.data(is_orig, token, ts)

    # -- output ------------------------------------------------------------------------
    def _confirm(self) -> None:
        if not self._confirmed:
            self._confirmed = True
            self.ctx.confirm("ftp")

    def _hide(self) -> bool:
        return (self.user or "").lower() not in GUEST_IDS

    def _url(self, arg: str) -> str:
        """Zeek's build_url_ftp: ftp://<server>/<cwd>/<arg>, path compressed."""
        path = build_path(self.cwd, arg)
        if not path.startswith("/"):
            path = "/" + path
        host = str(self.ctx.resp_h)
        host = f"[{host}]" if ":" in host else host
        return f"ftp://{host}{path}"

    def _emit(self, c: _Cmd) -> None:
        arg = c.url or c.arg
        if c.cmd == "PASS" and self._hide():
            arg = HIDDEN
        if len(arg) > MAX_ARG:
            arg = arg[:MAX_ARG]
        password = self.password
        if password is not None and self._hide():
            password = HIDDEN
        dc = c.dc
        ctx = self.ctx
        ctx.emit(LOG, {
            "ts": c.ts,
            "uid": ctx.uid,
            "id.orig_h": ctx.orig_h,
            "id.orig_p": ctx.orig_p,
            "id.resp_h": ctx.resp_h,
            "id.resp_p": ctx.resp_p,
            "user": self.user,
            "password": password,
            "command": c.cmd,
            "arg": arg or None,
            "mime_type": None,
            "file_size": c.file_size,
            "reply_code": c.reply_code,
            "reply_msg": c.reply_msg,
            "data_channel.passive": dc[0] if dc else None,
            "data_channel.orig_h": dc[1] if dc else None,
            "data_channel.resp_h": dc[2] if dc else None,
            "data_channel.resp_p": dc[3] if dc else None,
        })


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "ftp", "ftp-data": "ftp-data"}
PII_FIELDS = {"ftp": ("arg",)}     # USER/RCPT-style arguments may be addresses
FILE_CHANNELS = ("ftp-data",)      # announced data channels carry files; Analyzer.current_transfer() names them
CONTENT = "none"                   # the control channel; data channels (ctx.expect) are read raw
