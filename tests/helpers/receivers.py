"""Real alert receivers on 127.0.0.1 for the delivery tests, and a strict RFC 5424 parser.

* ``parse_rfc5424(data)``: parses one syslog message by the ABNF of RFC 5424 section 6,
  strictly (every field's alphabet and length, the timestamp's ranges, SD-NAME rules, the
  PARAM-VALUE escapes of section 6.3.3, unique SD-IDs, a BOM-led MSG that is UTF-8), and
  returns its fields with PARAM-VALUEs unescaped.  Any deviation raises ``SyslogParseError``.
* ``UdpReceiver``: a bound UDP socket; ``messages(n)`` waits for n datagrams.
* ``TcpReceiver``: a TCP server that splits its streams into RFC 6587 octet-counted frames
  (``MSG-LEN SP SYSLOG-MSG``) and refuses anything else; ``stop()``/``start()`` on the same port.
* ``HookReceiver``: an ``http.server`` recording every POST (headers, JSON body, the status it
  answered); ``plan`` lists the statuses of the next answers (then 200), ``hang`` makes it hold
  each answer that many seconds; ``stop()``/``start()`` take it down and up on the same port;
  ``tls=(cert, key)`` serves HTTPS (``self_signed_cert`` makes a pair for 127.0.0.1).

Every wait is bounded.
"""
from __future__ import annotations

import calendar
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NIL = b"-"
BOM = b"\xef\xbb\xbf"


class SyslogParseError(ValueError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a receiver that is down, then up)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout: float = 30.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


# ----------------------------------------------------------------------------------------------
# RFC 5424 (strict)
# ----------------------------------------------------------------------------------------------

_TS = re.compile(rb"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


def _fail(msg: str):
    raise SyslogParseError(msg)


def _printusascii(tok: bytes, limit: int, what: str) -> str | None:
    if tok == NIL:
        return None
    if not 1 <= len(tok) <= limit or any(not 33 <= b <= 126 for b in tok):
        _fail(f"{what}: not 1*{limit}PRINTUSASCII: {tok!r}")
    return tok.decode("ascii")


def _timestamp(tok: bytes) -> str | None:
    if tok == NIL:
        return None
    m = _TS.match(tok)
    if not m:
        _fail(f"TIMESTAMP: {tok!r}")
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    if not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(y, mo)[1]:
        _fail(f"TIMESTAMP date out of range: {tok!r}")
    if h > 23 or mi > 59 or s > 59:
        _fail(f"TIMESTAMP time out of range: {tok!r}")
    off = m.group(8)
    if off != b"Z" and (int(off[1:3]) > 23 or int(off[4:6]) > 59):
        _fail(f"TIME-NUMOFFSET out of range: {tok!r}")
    return tok.decode("ascii")


def _sd_name(data: bytes, i: int, what: str):
    j = i
    while j < len(data) and 33 <= data[j] <= 126 and data[j] not in b'= ]"':
        j += 1
    if not 1 <= j - i <= 32:
        _fail(f"{what}: SD-NAME of {j - i} characters at {i}")
    return data[i:j].decode("ascii"), j


def _param_value(data: bytes, i: int):
    out = bytearray()
    while True:
        if i >= len(data):
            _fail("PARAM-VALUE not terminated")
        c = data[i]
        if c == 0x5C:       # backslash
            if i + 1 < len(data) and data[i + 1] in b'"\\]':
                out.append(data[i + 1])
                i += 2
                continue
            out.append(c)   # a backslash before anything else is itself (6.3.3)
            i += 1
            continue
        if c == 0x22:       # closing quote
            break
        if c == 0x5D:
            _fail(f"unescaped ']' in PARAM-VALUE at {i}")
        out.append(c)
        i += 1
    try:
        return out.decode("utf-8"), i + 1
    except UnicodeDecodeError:
        _fail("PARAM-VALUE is not UTF-8")


def parse_rfc5424(data: bytes) -> dict:
    """One RFC 5424 SYSLOG-MSG -> its fields (see the module docstring)."""
    if not data.startswith(b"<"):
        _fail("no PRI")
    end = data.find(b">", 1, 5)
    if end < 2:
        _fail("bad PRI")
    prival = data[1:end]
    if not prival.isdigit() or not 1 <= len(prival) <= 3 or int(prival) > 191:
        _fail(f"PRIVAL {prival!r}")
    i = end + 1
    j = i
    while j < len(data) and 48 <= data[j] <= 57:
        j += 1
    version = data[i:j]
    if not 1 <= len(version) <= 3 or version[0] == 0x30:
        _fail(f"VERSION {version!r}")
    fields = []
    i = j
    for _ in range(5):   # SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID, then SP
        if data[i:i + 1] != b" ":
            _fail(f"expected SP at {i}")
        j = data.find(b" ", i + 1)
        if j < 0:
            _fail("header cut short")
        fields.append(data[i + 1:j])
        i = j
    ts = _timestamp(fields[0])
    host = _printusascii(fields[1], 255, "HOSTNAME")
    app = _printusascii(fields[2], 48, "APP-NAME")
    procid = _printusascii(fields[3], 128, "PROCID")
    msgid = _printusascii(fields[4], 32, "MSGID")
    i += 1   # past the SP before STRUCTURED-DATA
    sd: dict = {}
    if data[i:i + 1] == b"-":
        i += 1
    elif data[i:i + 1] == b"[":
        while data[i:i + 1] == b"[":
            sd_id, i = _sd_name(data, i + 1, "SD-ID")
            if "@" in sd_id and not re.fullmatch(r"[^@]+@\d+(\.\d+)*", sd_id):
                _fail(f"SD-ID {sd_id!r}: name@<enterprise number> expected")
            if sd_id in sd:
                _fail(f"SD-ID {sd_id!r} twice")
            params = []
            while data[i:i + 1] == b" ":
                name, i = _sd_name(data, i + 1, "PARAM-NAME")
                if data[i:i + 2] != b'="':
                    _fail(f"expected =\" after PARAM-NAME {name}")
                value, i = _param_value(data, i + 2)
                params.append((name, value))
            if data[i:i + 1] != b"]":
                _fail(f"SD-ELEMENT not closed at {i}")
            i += 1
            sd[sd_id] = params
    else:
        _fail("no STRUCTURED-DATA")
    msg = None
    bom = False
    if i < len(data):
        if data[i:i + 1] != b" ":
            _fail(f"expected SP before MSG at {i}")
        raw = data[i + 1:]
        if raw.startswith(BOM):
            bom = True
            try:
                msg = raw[len(BOM):].decode("utf-8")
            except UnicodeDecodeError:
                _fail("MSG-UTF8 is not UTF-8")
        else:
            msg = raw.decode("utf-8", "replace")
    pri = int(prival)
    return {"pri": pri, "facility": pri // 8, "severity": pri % 8, "version": int(version), "timestamp": ts,
            "hostname": host, "app_name": app, "procid": procid, "msgid": msgid, "sd": sd, "msg": msg, "bom": bom}


def split_octet_counted(buf: bytearray) -> list:
    """Take the complete RFC 6587 octet-counted frames off the front of ``buf``."""
    out = []
    while buf:
        sp = buf.find(b" ")
        if sp < 0:
            if len(buf) > 10 or not bytes(buf).isdigit():
                _fail(f"bad MSG-LEN {bytes(buf[:12])!r}")
            break
        length = bytes(buf[:sp])
        if not length.isdigit() or length[:1] == b"0":
            _fail(f"bad MSG-LEN {length!r}")
        n = int(length)
        if len(buf) < sp + 1 + n:
            break
        out.append(bytes(buf[sp + 1:sp + 1 + n]))
        del buf[:sp + 1 + n]
    return out


# ----------------------------------------------------------------------------------------------
# receivers
# ----------------------------------------------------------------------------------------------

class UdpReceiver:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)   # room for a burst (UDP drops)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list = []

    def messages(self, n: int, timeout: float = 20.0) -> list:
        end = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < end:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            self.received.append(data)
        return list(self.received)

    def close(self):
        self.sock.close()


class TcpReceiver:
    def __init__(self, port: int = 0):
        self.port = port
        self.frames: list = []
        self.errors: list = []
        self.connections = 0
        self._lock = threading.Lock()
        self._srv = None
        self._stop = threading.Event()
        self._threads: list = []
        self._conns: list = []
        self.start()

    def start(self):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(8)
        srv.settimeout(0.1)
        self.port = srv.getsockname()[1]
        self._srv = srv
        self._stop = threading.Event()
        t = threading.Thread(target=self._accept, args=(srv, self._stop), daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self, srv, stop):
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._read, args=(conn, stop), daemon=True)
            t.start()
            self._threads.append(t)

    def _read(self, conn, stop):
        buf = bytearray()
        conn.settimeout(0.1)
        try:
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buf.extend(data)
                try:
                    frames = split_octet_counted(buf)
                except SyslogParseError as e:
                    self.errors.append(str(e))
                    return
                with self._lock:
                    self.frames.extend(frames)
        finally:
            conn.close()

    def stop(self):
        """Stop listening and close every connection (a server restart)."""
        self._stop.set()
        self._srv.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._conns.clear()
        for t in self._threads:
            t.join(5)
        self._threads = []


def self_signed_cert(directory) -> tuple:
    """A key and a self-signed certificate for 127.0.0.1 (PEM files in ``directory``): ``(cert, key)``."""
    import datetime as dt
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inspector test receiver")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(str(directory), "cert.pem"), os.path.join(str(directory), "key.pem")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return cert_path, key_path


class HookReceiver:
    def __init__(self, port: int = 0, tls: tuple | None = None):
        self.tls = tls               # (cert, key): serve HTTPS
        self.port = port
        self.posts: list = []        # every request: {"key", "body", "status", "path", "headers"}
        self.plan: list = []         # statuses of the next answers (then 200)
        self.hang = 0.0              # seconds to hold each answer
        self._lock = threading.Lock()
        self._srv = None
        self._thread = None
        self.start()

    def start(self):
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True     # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with recv._lock:
                    status = recv.plan.pop(0) if recv.plan else 200
                    try:
                        doc = json.loads(body)
                    except ValueError:
                        doc = None
                    recv.posts.append({"key": self.headers.get("Idempotency-Key"), "body": doc, "status": status,
                                       "path": self.path, "headers": dict(self.headers)})
                    hang = recv.hang
                if hang:
                    time.sleep(hang)
                payload = b"{}"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:       # the client gave up waiting (the hang tests)
                    self.close_connection = True

            def log_message(self, *a):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        srv.daemon_threads = True
        if self.tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self.port = srv.server_address[1]
        self._srv = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hook?token=secret"

    def accepted(self) -> list:
        """Idempotency keys of the requests answered 2xx, in order."""
        with self._lock:
            return [p["key"] for p in self.posts if 200 <= p["status"] < 300]

    def stop(self):
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(5)
