"""``--alert-syslog [udp://|tcp://]HOST:PORT``: alerts as RFC 5424 syslog messages.

One message per alert (RFC 5424 section 6)::

    <PRI>1 TIMESTAMP HOSTNAME inspector PROCID alert [inspector@32473 alert_id="..." signature_id="1000001"
        severity="high" src="10.40.1.12:52114" dst="203.0.113.5:443" incident_id="..."] BOM summary

* PRI = facility * 8 + syslog severity.  Facility: ``local0`` unless ``--alert-syslog-facility``
  says otherwise (the names and codes of RFC 5424 table 1).  Alert severity -> syslog
  severity (table 2): critical -> 2 Critical, high -> 3 Error, medium -> 4 Warning,
  low -> 5 Notice.
* VERSION 1.  TIMESTAMP: the alert's packet time, RFC 3339 in UTC with microseconds
  (``message.packet_time``), ``-`` (NILVALUE) when the alert has none.
* HOSTNAME: this machine's name (``socket.gethostname()``, printable US-ASCII, at most 255
  characters), APP-NAME ``inspector``, PROCID the process id, MSGID ``alert``.
* STRUCTURED-DATA: one SD-ELEMENT, SD-ID ``inspector@32473`` (32473 is the private
  enterprise number RFC 5612 reserves for documentation; ``sd_id`` changes it), with
  ``alert_id``, ``signature_id``, ``severity``, ``src``, ``dst``, ``incident_id`` when
  present, ``app_proto``.  PARAM-VALUE is UTF-8 with ``"``, ``\\`` and ``]`` escaped by a
  backslash (section 6.3.3).
* MSG: the UTF-8 BOM and ``message.summary(alert)``: one line, evidence masked.

Transport: UDP (RFC 5426, one message per datagram; the default) or TCP with octet-counting
framing ``MSG-LEN SP SYSLOG-MSG`` (RFC 6587 section 3.4.1, the framing RFC 5425 uses for
TLS).  A message is cut to ``max_udp`` octets over UDP (2048: what RFC 5426 says receivers
SHOULD accept) and ``max_tcp`` over TCP (8192), at a UTF-8 character boundary of MSG.
The TCP connection is kept open; a peer that closed it is noticed before the next send and
the sink reconnects with bounded back-off, holding the message (never more than one) until
the server is back or the flush deadline passes.  Syslog has no acknowledgement: delivery is
best effort, counted ``sent`` / ``retried`` / ``dropped`` (queue full) / ``failed``.
"""
from __future__ import annotations

import os
import select
import socket
import time
from typing import Callable
from urllib.parse import urlsplit

from .base import AsyncSink, backoff
from .message import alert_id, endpoints, packet_time, severity_of, summary

__all__ = ["FACILITIES", "SEVERITY_TO_SYSLOG", "parse_target", "format_message", "frame_octet_counted",
           "escape_param", "SyslogSink", "SD_ID"]

#: RFC 5424 table 1.
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
              "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
              "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22,
              "local7": 23}
#: Alert severity (1 critical .. 4 low) -> RFC 5424 table 2 severity.
SEVERITY_TO_SYSLOG = {1: 2, 2: 3, 3: 4, 4: 5}
SD_ID = "inspector@32473"
BOM = b"\xef\xbb\xbf"
NIL = "-"


def parse_facility(text) -> int:
    """A facility name (``local0``) or code (0-23) -> its code; ValueError otherwise."""
    t = str(text).strip().lower()
    if t in FACILITIES:
        return FACILITIES[t]
    if t.isdigit() and 0 <= int(t) <= 23:
        return int(t)
    raise ValueError(f"unknown syslog facility {text!r} (use one of {', '.join(FACILITIES)} or 0-23)")


def parse_target(text: str) -> tuple:
    """``HOST:PORT``, ``udp://HOST:PORT`` or ``tcp://HOST:PORT`` (IPv6 as ``[addr]:port``)
    -> ``(transport, host, port)``; ValueError with a one-line reason otherwise."""
    t = str(text).strip()
    if "://" not in t:
        t = "udp://" + t
    try:
        u = urlsplit(t)
        port = u.port
    except ValueError as e:
        raise ValueError(f"bad syslog target {text!r}: {e}") from None
    scheme = u.scheme.lower()
    if scheme not in ("udp", "tcp"):
        raise ValueError(f"bad syslog target {text!r}: transport must be udp or tcp")
    if not u.hostname or port is None or port == 0 or (u.path not in ("", "/")) or u.query or u.username:
        raise ValueError(f"bad syslog target {text!r}: expected [udp://|tcp://]HOST:PORT")
    return scheme, u.hostname, port


def _printusascii(text, limit: int) -> str:
    """RFC 5424 header field: PRINTUSASCII (33-126), at most ``limit`` chars; NILVALUE when empty."""
    s = "".join(c for c in str(text or "") if 33 <= ord(c) <= 126)[:limit]
    return s or NIL


def _sd_name(text) -> str:
    """SD-NAME: 1-32 PRINTUSASCII except ``=``, SP, ``]`` and ``"``."""
    s = "".join(c for c in str(text) if 33 <= ord(c) <= 126 and c not in '= ]"')[:32]
    if not s:
        raise ValueError(f"bad SD-NAME {text!r}")
    return s


def escape_param(value) -> str:
    """PARAM-VALUE escaping of RFC 5424 section 6.3.3: ``"``, ``\\`` and ``]`` get a backslash.
    Control characters become spaces so that the message stays one line."""
    out = []
    for c in str(value):
        if c in '"\\]':
            out.append("\\" + c)
        elif ord(c) < 32 or ord(c) == 127:
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


def structured_data(alert: dict, sd_id: str = SD_ID) -> str:
    """The alert's SD-ELEMENT (see the module docstring)."""
    a = alert.get("alert") if isinstance(alert.get("alert"), dict) else {}
    src, dst = endpoints(alert)
    params = [("alert_id", alert.get("alert_id") or alert_id(alert)), ("signature_id", a.get("signature_id")),
              ("severity", {1: "critical", 2: "high", 3: "medium", 4: "low"}[severity_of(alert)]),
              ("src", src), ("dst", dst), ("incident_id", alert.get("incident_id")),
              ("app_proto", alert.get("app_proto"))]
    body = "".join(f' {_sd_name(k)}="{escape_param(v)}"' for k, v in params if v is not None and v != "")
    return f"[{_sd_name(sd_id)}{body}]"


def format_message(alert: dict, facility: int = 16, hostname: str | None = None, app_name: str = "inspector",
                   procid=None, msgid: str = "alert", sd_id: str = SD_ID, max_bytes: int = 2048) -> bytes:
    """The RFC 5424 message for ``alert``, at most ``max_bytes`` octets (MSG cut at a character)."""
    pri = facility * 8 + SEVERITY_TO_SYSLOG[severity_of(alert)]
    header = " ".join((f"<{pri}>1", packet_time(alert) or NIL,
                       _printusascii(hostname if hostname is not None else socket.gethostname(), 255),
                       _printusascii(app_name, 48), _printusascii(procid if procid is not None else os.getpid(), 128),
                       _printusascii(msgid, 32)))
    head = f"{header} {structured_data(alert, sd_id)} ".encode("utf-8")
    msg = summary(alert).encode("utf-8")
    room = max_bytes - len(head) - len(BOM)
    if room < len(msg):
        msg = msg[:max(0, room)].decode("utf-8", "ignore").encode("utf-8")
    return head + BOM + msg


def frame_octet_counted(msg: bytes) -> bytes:
    """RFC 6587 section 3.4.1: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(msg)).encode("ascii") + b" " + msg


class SyslogSink(AsyncSink):
    """Alerts to a syslog server over UDP or TCP (see the module docstring)."""

    kind = "syslog"

    def __init__(self, target: str, facility=16, hostname: str | None = None, procid=None, sd_id: str = SD_ID,
                 timeout: float = 5.0, max_udp: int = 2048, max_tcp: int = 8192, queue_size: int = 10_000,
                 max_retries: int = 8, clock: Callable[[], float] = time.monotonic):
        super().__init__(queue_size=queue_size, clock=clock)
        self.transport, self.host, self.port = parse_target(target)
        self.facility = parse_facility(facility)
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.procid = procid if procid is not None else os.getpid()
        self.sd_id = _sd_name(sd_id)
        self.timeout = timeout
        self.max_bytes = max_tcp if self.transport == "tcp" else max_udp
        self.max_retries = max(0, int(max_retries))
        self._sock: socket.socket | None = None
        self._addr = None

    def describe(self) -> dict:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return {"target": f"{self.transport}://{h}:{self.port}", "facility": self.facility}

    def grace(self) -> float:
        return self.timeout + 1.0

    def prepare(self, alert: dict) -> bytes:
        return self.format(alert)

    def format(self, alert: dict) -> bytes:
        return format_message(alert, self.facility, self.hostname, "inspector", self.procid, "alert", self.sd_id,
                              self.max_bytes)

    # -- transport -------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        err = None
        for fam, typ, proto, _, addr in socket.getaddrinfo(self.host, self.port, type=kind):
            s = socket.socket(fam, typ, proto)
            try:
                s.settimeout(self.timeout)
                s.connect(addr)
                return s
            except OSError as e:
                err = e
                s.close()
        raise err or OSError(f"cannot resolve {self.host}")

    def _peer_closed(self, s: socket.socket) -> bool:
        """A TCP peer that closed (or reset) the connection shows as readable with no data."""
        try:
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                return False
            return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def _drop_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def send(self, msg: bytes) -> None:
        """One message on the wire; OSError when it could not be handed to the network."""
        if self._sock is not None and self.transport == "tcp" and self._peer_closed(self._sock):
            self._drop_socket()
        if self._sock is None:
            self._sock = self._connect()
        try:
            if self.transport == "udp":
                self._sock.send(msg)
            else:
                self._sock.sendall(frame_octet_counted(msg))
        except OSError:
            self._drop_socket()
            raise

    # -- the delivery thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                msg = self._take(None if self._deadline is None else max(0.0, self._time_left() or 0.0))
                if msg is None:
                    if self._closing:
                        return
                    continue
                if self._expired():
                    with self._cv:
                        self.counters["failed"] += 1
                    continue
                self._deliver(msg)
        finally:
            self._drop_socket()

    def _deliver(self, msg: bytes) -> None:
        attempt = 0
        while True:
            try:
                self.send(msg)
                with self._cv:
                    self.counters["sent"] += 1
                return
            except OSError as e:
                self.last_error = f"{type(e).__name__}: {e.strerror or e}"
            if attempt >= self.max_retries or self._expired():
                with self._cv:
                    self.counters["failed"] += 1
                return
            self._sleep(backoff(attempt, base=0.2, cap=10.0))
            attempt += 1
            with self._cv:
                self.counters["retried"] += 1
