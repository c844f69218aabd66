"""``--alert-webhook URL``: each alert as a JSON POST, retried, spooled to disk while the receiver is down.

The request: ``POST URL`` with the alert as the JSON body (the EVE record of alerts.jsonl, with
``alert_id`` added when the policy stage did not set one; see ``message.alert_id``) and the
headers ``Content-Type: application/json``, ``Idempotency-Key: <alert_id>``,
``User-Agent: inspector/<version>``, any ``--alert-webhook-header``, and HTTP Basic
authorisation when the URL carries ``user:password@``.  One alert per request keeps the
idempotency key exact: a receiver that saw a key already can answer 2xx and ignore the body.

Outcome of a request: 2xx = delivered.  408, 425, 429 and 5xx, a timeout or a connection
error = try again: up to ``attempts`` tries per alert, waiting ``backoff(n)`` (exponential,
full jitter, at most ``backoff_cap`` seconds; a ``Retry-After`` of a 429/503 is honoured up to
that cap) between tries.  Any other status (3xx, 4xx: the receiver refuses this alert) =
given up, counted ``failed``; retrying would not change the answer.

When the tries run out the receiver is taken to be down: the alert goes to the spool
(``spool.Spool``, fsync-ed) and so does every alert behind it, in order, until the spool
is empty again.  The delivery thread offers the oldest spooled alert every
``backoff(n)`` seconds; when it is taken, the rest follow at once, oldest first, each
acknowledged in the spool as it is taken, and fresh alerts are posted directly again.  A
new run opens the same spool and sends what is in it before anything new.  The ids
delivered (or refused for good) are journaled beside the spool (``spool.Journal``, the last
``remember`` of them), so an alert raised again (a re-run over the same captures, a nightly
batch recomputing a night) is not sent twice, in this run or a later one; it is counted
``duplicates``.

``close(timeout)``: the thread keeps delivering until the queue is empty or ``timeout``
seconds have passed; what is still queued then is spooled for the next run.  When the
thread is stuck in a request past the deadline, the caller's thread spools the queue and
the alert in flight (which the receiver may then see twice, under the same
``Idempotency-Key``: a possible duplicate is preferred to a possible loss).

Counters: ``sent`` (delivered, ``from_spool`` of them out of the spool), ``retried`` (tries
after the first), ``spooled`` (written to the spool), ``dropped`` (refused: queue or spool
full, or the disk failed), ``failed`` (refused by the receiver), ``duplicates`` (skipped,
already delivered or spooled), ``spool_pending``.  Only ``http`` and ``https`` URLs; HTTPS
verifies the server against the system's CA store.
"""
from __future__ import annotations

import base64
import http.client
import ssl
import time
from typing import Callable
from urllib.parse import unquote, urlsplit

import orjson

from .base import AsyncSink, backoff
from .message import alert_id
from .spool import Journal, Spool

__all__ = ["WebhookSink", "parse_url", "redact_url", "parse_header", "RETRYABLE"]

RETRYABLE = frozenset({408, 425, 429}) | frozenset(range(500, 600))
MAX_RESPONSE = 64 << 10          # bytes of a response body read (then the connection is dropped)
_OK, _RETRY, _REFUSED = "ok", "retry", "refused"


def parse_url(url: str):
    """Validate a web hook URL: ``http``/``https``, a host, a valid port; returns ``urlsplit(url)``."""
    try:
        u = urlsplit(str(url).strip())
        u.port
    except ValueError as e:
        raise ValueError(f"bad web hook URL: {e}") from None
    if u.scheme.lower() not in ("http", "https"):
        raise ValueError("bad web hook URL: only http:// and https:// URLs")
    if not u.hostname:
        raise ValueError("bad web hook URL: no host")
    if u.fragment:
        raise ValueError("bad web hook URL: a fragment (#...) is not sent to the server")
    return u


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``: no credentials, no query string (they may hold tokens)."""
    u = urlsplit(url)
    host = f"[{u.hostname}]" if u.hostname and ":" in u.hostname else (u.hostname or "")
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path or '/'}"


def parse_header(text: str) -> tuple:
    """``"Name: value"`` -> ``(name, value)``; ValueError for anything else."""
    name, sep, value = str(text).partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n()<>@,;\\\"/[]?={}") or any(
            c in value for c in "\r\n\0"):
        raise ValueError(f"bad web hook header {text!r}: expected 'Name: value'")
    return name, value.strip()


def encode_alert(alert: dict) -> tuple:
    """``(key, JSON body)`` of an alert: the body is the alert, with ``alert_id`` added when it has none;
    the key is ``message.alert_id`` (the alert's own id, or its digest when it cannot be a header)."""
    aid = alert_id(alert)
    if not alert.get("alert_id"):
        alert = dict(alert, alert_id=aid)
    body = orjson.dumps(alert, option=orjson.OPT_NON_STR_KEYS, default=str)
    return aid, body


class WebhookSink(AsyncSink):
    """See the module docstring."""

    kind = "webhook"

    def __init__(self, url: str, spool_dir: str, spool_bytes: int = 64 << 20, headers=(), timeout: float = 5.0,
                 attempts: int = 3, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 queue_size: int = 10_000, remember: int = 100_000, clock: Callable[[], float] = time.monotonic,
                 rng=None, ssl_context: ssl.SSLContext | None = None):
        super().__init__(queue_size=queue_size, clock=clock)
        u = parse_url(url)
        self.url = url
        self.scheme = u.scheme.lower()
        self.host = u.hostname
        self.port = u.port
        self.target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        from .. import __version__
        self.headers = {"Content-Type": "application/json", "User-Agent": f"inspector/{__version__}"}
        if u.username is not None:
            cred = f"{unquote(u.username)}:{unquote(u.password or '')}".encode("utf-8")
            self.headers["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
        for h in headers:
            name, value = parse_header(h) if isinstance(h, str) else h
            self.headers[name] = value
        self.timeout = float(timeout)
        self.attempts = max(1, int(attempts))
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rng = rng
        self._ssl = ssl_context
        self.counters.update(from_spool=0, duplicates=0)
        self.spool = Spool(spool_dir, spool_bytes)
        self.sent_ids = Journal(spool_dir, keep=remember)
        self._conn: http.client.HTTPConnection | None = None
        self._inflight = None               # (id, body, from_spool) while a request is out
        self._abandoned = False
        self._failures = 0                  # consecutive failed tries (drives the back-off)
        self._next_try = 0.0                # monotonic time of the next offer to a receiver that is down

    # -- reporting ----------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"url": redact_url(self.url), "spool": self.spool.dir, "spool_pending": len(self.spool),
                "spool_bytes": self.spool.bytes, "spool_loaded": self.spool.loaded,
                "spool_corrupt": self.spool.corrupt}

    def grace(self) -> float:
        return self.timeout + 1.0

    def prepare(self, alert: dict) -> tuple:
        return encode_alert(alert)

    def _wait(self, attempt: int, retry_after: float | None = None) -> float:
        kw = {"rng": self._rng} if self._rng is not None else {}
        w = backoff(attempt, self.backoff_base, self.backoff_cap, **kw)
        if retry_after is not None:
            w = max(w, min(retry_after, self.backoff_cap))
        return w

    # -- HTTP ---------------------------------------------------------------------------------
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.scheme == "https":
                ctx = self._ssl or ssl.create_default_context()
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        else:
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def post(self, aid: str, body: bytes) -> tuple:
        """One try: ``(outcome, retry_after)``, outcome ``ok`` / ``retry`` / ``refused``."""
        left = self._time_left()
        timeout = self.timeout if left is None else max(0.2, min(self.timeout, left))
        headers = dict(self.headers)
        headers["Idempotency-Key"] = aid
        try:
            conn = self._connection(timeout)
            conn.request("POST", self.target, body=body, headers=headers)
            resp = conn.getresponse()
            status = resp.status
            resp.read(MAX_RESPONSE)
            retry_after = _retry_after(resp.getheader("Retry-After"))
            if resp.will_close or not resp.isclosed():
                self._drop_connection()
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            self._drop_connection()
            self.last_error = f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
            return _RETRY, None
        if 200 <= status < 300:
            return _OK, None
        self.last_error = f"HTTP {status}"
        return (_RETRY if status in RETRYABLE else _REFUSED), retry_after

    # -- the delivery thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._abandoned and not self._expired():
                if len(self.spool):
                    if not self._drain_spool_once():
                        break
                    continue
                item = self._take(None if self._deadline is None else max(0.0, self._time_left() or 0.0))
                if item is None:
                    if self._closing:
                        break
                    continue
                self._send_fresh(*item)
            if not self._abandoned:
                self._spool_queue()
        finally:
            self._drop_connection()

    def _drain_spool_once(self) -> bool:
        """Offer the oldest spooled alert when its time has come; False: stop (closing, no time left)."""
        now = self.clock()
        if now < self._next_try:
            self._spool_queue()          # fresh alerts wait behind the backlog, on disk
            if self._closing and (self._deadline is None or self._next_try >= self._deadline):
                return False
            self._sleep(min(self._next_try - now, 1.0))   # wake every second to spool what came in
            return True
        try:
            head = self.spool.peek()
        except OSError as e:
            self.last_error = f"spool: {e}"
            return False
        if head is None:
            return True
        aid, body = head
        if aid in self.sent_ids:        # delivered, but the run ended before the spool heard of it
            self._ack(aid)
            with self._cv:
                self.counters["duplicates"] += 1
            return True
        outcome, retry_after = self._try(aid, body, from_spool=True)
        if outcome is None:
            return False
        if outcome == _RETRY:
            self._failures += 1
            self._next_try = self.clock() + self._wait(self._failures, retry_after)
            with self._cv:
                self.counters["retried"] += 1
            return True
        self._remember_id(aid)
        self._ack(aid)
        with self._cv:
            if outcome == _OK:
                self.counters["sent"] += 1
                self.counters["from_spool"] += 1
            else:
                self.counters["failed"] += 1
        return True

    def _send_fresh(self, aid: str, body: bytes) -> None:
        if aid in self.sent_ids or aid in self.spool:
            with self._cv:
                self.counters["duplicates"] += 1
            return
        for attempt in range(self.attempts):
            outcome, retry_after = self._try(aid, body, from_spool=False)
            if outcome is None:
                return
            if outcome != _RETRY:
                with self._cv:
                    self.counters["sent" if outcome == _OK else "failed"] += 1
                self._failures = 0
                self._remember_id(aid)
                return
            if attempt + 1 >= self.attempts or self._expired():
                break
            with self._cv:
                self.counters["retried"] += 1
            self._sleep(self._wait(attempt, retry_after))
            if self._abandoned:
                return
        self._failures += 1
        self._next_try = self.clock() + self._wait(self._failures)
        self._to_spool([(aid, body)])

    def _try(self, aid: str, body: bytes, from_spool: bool):
        """One POST with the in-flight bookkeeping; outcome None when the caller gave up on this thread."""
        with self._cv:
            if self._abandoned:
                return None, None
            self._inflight = (aid, body, from_spool)
        outcome, retry_after = self.post(aid, body)
        with self._cv:
            if self._abandoned:
                return None, None
            self._inflight = None
        if outcome == _OK:
            self._failures = 0
        return outcome, retry_after

    def _ack(self, aid: str) -> None:
        try:
            self.spool.ack(aid)
        except OSError as e:    # the alert went out; the next run may send it again (same key)
            self.last_error = f"spool: {e}"

    def _remember_id(self, aid: str) -> None:
        """``aid`` was delivered (or refused for good): never again, in this run or the next."""
        try:
            self.sent_ids.add(aid)
        except OSError as e:
            self.last_error = f"spool: {e}"

    def _to_spool(self, items: list) -> None:
        """Spool ``(id, body)`` pairs (called from either thread)."""
        fresh, seen = [], set()
        for a, b in items:
            if a in self.sent_ids or a in self.spool or a in seen:
                with self._cv:
                    self.counters["duplicates"] += 1
                continue
            seen.add(a)
            fresh.append((a, b))
        if not fresh:
            return
        try:
            refused = self.spool.append(fresh)
        except (OSError, ValueError) as e:
            self.last_error = f"spool: {e}"
            with self._cv:
                self.counters["dropped"] += len(fresh)
            return
        with self._cv:
            self.counters["spooled"] += len(fresh) - len(refused)
            self.counters["dropped"] += len(refused)

    def _spool_queue(self) -> None:
        with self._cv:
            items = list(self._q)
            self._q.clear()
        if items:
            self._to_spool(items)

    def _abandon(self) -> None:
        """The thread is stuck past the deadline (or never ran): spool the queue and the alert in flight."""
        with self._cv:
            self._abandoned = True
            inflight = self._inflight
            self._inflight = None
        if inflight is not None and not inflight[2]:
            self._to_spool([inflight[:2]])
        self._spool_queue()
        self._close_files()

    def wait_closed(self) -> None:
        super().wait_closed()
        self._close_files()

    def release(self) -> None:
        self._close_files()

    def _close_files(self) -> None:
        self.spool.close()
        self.sent_ids.close()


def _retry_after(value) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds form only), or None."""
    if value is None:
        return None
    try:
        v = float(str(value).strip())
    except ValueError:
        return None
    return v if v >= 0 else None
