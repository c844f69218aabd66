"""A test-only protocol module: the whole of what adding a protocol takes (see protocols/base.py).

Wire format (one command per line, client to server)::

    DUMMY HELLO <host> <sender>     names the server and the sender (an e-mail address)
    DUMMY DATA <n>\\n<n bytes>       a message body that leaves with the connection
    DUMMY BYE

The server answers ``OK`` to each.  One ``dummy`` log record per connection.
"""
from __future__ import annotations

from inspector.protocols.base import Analyzer as BaseAnalyzer

NAME = "dummy"
LOG = "dummy"
TRANSPORTS = ("tcp",)
PORTS = (7777,)
FIELDS = ("ts", "uid", "host", "sender", "bodies")


def probe(data: bytes, is_orig: bool) -> bool:
    return data.startswith(b"DUMMY HELLO ") if is_orig else False


class Analyzer(BaseAnalyzer):
    NAME = NAME

    def __init__(self, ctx):
        super().__init__(ctx)
        self.buf = b""
        self.want = 0                  # body bytes still expected
        self.body = b""
        self.rec = {"ts": ctx.ts, "uid": ctx.uid, "host": None, "sender": None, "bodies": 0}
        self.ended = False

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if not is_orig:
            return
        self.buf += data
        while self.buf:
            if self.want:
                take = self.buf[:self.want]
                self.body += take
                self.buf = self.buf[len(take):]
                self.want -= len(take)
                if not self.want:
                    self.ctx.sink.body(self.ctx, True, {"source": "dummy"}, self.body)
                    self.rec["bodies"] += 1
                    self.body = b""
                continue
            line, sep, rest = self.buf.partition(b"\n")
            if not sep:
                return
            self.buf = rest
            words = line.decode("latin-1").split()
            if words[:2] == ["DUMMY", "HELLO"] and len(words) == 4:
                self.ctx.confirm(NAME)
                self.rec["host"], self.rec["sender"] = words[2], words[3]
                self.ctx.hostname("dummy_host", words[2], ts)
            elif words[:2] == ["DUMMY", "DATA"] and len(words) == 3 and words[2].isdigit():
                self.want = int(words[2])
            elif words[:2] == ["DUMMY", "BYE"]:
                self.done(ts)
            else:
                self.ctx.weird("dummy.bad_command", line[:40].decode("latin-1"), ts)

    def done(self, ts: float) -> None:
        if not self.ended:
            self.ended = True
            self.ctx.emit(LOG, dict(self.rec))

    def wants_more(self) -> bool:
        return not self.ended


# ---------------------------------------------------------------------------
# Contributions to the pipeline (the contract is in inspector/protocols/base.py)
# ---------------------------------------------------------------------------
APP_PROTO = {NAME: "dummy"}
PII_FIELDS = {"dummy": ("sender",)}
NAME_SOURCES = ("dummy_host",)
CONTENT = "bodies"
