"""Alert delivery: alerts leave the machine as they fire, to syslog and to web hooks.

Options (``scan``, ``live`` and ``batch`` share them; ``add_arguments``)::

    --alert-syslog [udp://|tcp://]HOST:PORT   RFC 5424 over UDP (default) or TCP (RFC 6587 octet counting)
    --alert-syslog-facility NAME              syslog facility (default local0)
    --alert-webhook URL                       JSON POST of each alert (http:// or https://)
    --alert-webhook-header 'Name: value'      an extra request header (e.g. an API token), repeatable
    --alert-webhook-ca FILE                   CA certificates (PEM) for an https:// receiver
    --alert-spool DIR                         where undelivered alerts wait (default: DIR.alert-spool
                                              beside the output directory DIR); one sub-folder per URL
    --alert-spool-mb MB                       spool bound per web hook (default 64)
    --alert-flush-timeout S                   at exit, time to deliver what is queued (default 10)

Each sink runs its own thread behind a bounded queue (``base.AsyncSink``), so packet
processing never waits for the network or the disk.  ``AlertDelivery`` fans a list of
alerts out to every sink (it is the ``alert_sinks`` callable live mode takes), closes them
together within one deadline, and reports their counters for ``stats.json`` (key
``delivery``).  What each sink sends is in ``syslog`` and ``webhook``; the stable alert id
and the masked one-line summary they share are in ``message``.

The spool lives outside the run's output directory on purpose (``default_spool_root``): it
must outlive the run, whose output directory may be replaced as a whole at the end, so that
the next run sends what this one could not, before anything new.  A spool is held by one
process at a time (``spool.SpoolBusy``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import time

import importlib

__all__ = ["AlertDelivery", "add_arguments", "from_args", "default_spool_root", "alert_id", "packet_time", "summary",
           "SyslogSink", "WebhookSink", "SPOOL_DIRNAME", "DeliveryConfigError"]

SPOOL_DIRNAME = "alert-spool"
DEFAULT_FLUSH_TIMEOUT = 10.0
DEFAULT_SPOOL_MB = 64.0
TOTALS = ("sent", "retried", "spooled", "dropped", "failed")


#: names this package offers from its modules, imported when first asked for: building the command-line
#: parser (``add_arguments``) must not load the HTTP, TLS and e-mail modules the sinks use
_LAZY = {"alert_id": "message", "packet_time": "message", "summary": "message", "SpoolBusy": "spool",
         "SyslogSink": "syslog", "WebhookSink": "webhook"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


class DeliveryConfigError(ValueError):
    """A delivery option that cannot work (one line, for the CLI's exit status 2)."""


class AlertDelivery:
    """Every configured sink behind one call: ``delivery(alerts)`` queues, ``close()`` flushes."""

    def __init__(self, sinks, flush_timeout: float = DEFAULT_FLUSH_TIMEOUT):
        self.sinks = list(sinks)
        self.flush_timeout = flush_timeout
        self.closed = False
        for s in self.sinks:
            s.start()

    def __call__(self, alerts) -> None:
        alerts = [a for a in alerts if isinstance(a, dict)]
        if not alerts or self.closed:
            return
        for s in self.sinks:
            s.submit(alerts)

    submit = __call__

    def close(self, timeout: float | None = None) -> None:
        """Flush every sink within one shared ``timeout`` (default ``flush_timeout``); idempotent."""
        if self.closed:
            return
        self.closed = True
        t = self.flush_timeout if timeout is None else timeout
        for s in self.sinks:
            s.begin_close(t)
        for s in self.sinks:
            s.wait_closed()

    def stats(self) -> dict:
        """``{"sent": .., "retried": .., "spooled": .., "dropped": .., "failed": .., "sinks": [...]}``."""
        per = []
        for s in self.sinks:
            d = {"kind": s.kind}
            d.update(s.stats())
            per.append(d)
        out = {k: sum(int(d.get(k) or 0) for d in per) for k in TOTALS}
        out["sinks"] = per
        return out


def _number(strictly_positive: bool):
    """argparse ``type=``: a float above zero (or at least zero)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if not (v > 0 if strictly_positive else v >= 0):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'positive' if strictly_positive else 'at least 0'}")
        return v
    return parse


def _checked(module: str, check: str, keep_text: bool = True):
    """argparse ``type=`` from the parser ``check`` of this package's ``module`` (imported when an option
    is given), which raises ValueError: the text (or the parsed value)."""
    def parse(text: str):
        try:
            value = getattr(importlib.import_module(f"{__name__}.{module}"), check)(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e))
        return text if keep_text else value
    return parse


def default_spool_root(out_dir: str) -> str:
    """``OUT.alert-spool`` beside the output directory ``OUT`` (persistent across runs into ``OUT``)."""
    return os.path.abspath(out_dir).rstrip(os.sep) + "." + SPOOL_DIRNAME


def add_arguments(p, spool_default: str = "OUT.alert-spool beside the output directory OUT") -> None:
    """The delivery options (see the module docstring) on an argparse (sub)parser."""
    g = p.add_argument_group("alert delivery")
    g.add_argument("--alert-syslog", action="append", default=[], type=_checked("syslog", "parse_target"),
                   metavar="[udp://|tcp://]HOST:PORT",
                   help="send each alert as an RFC 5424 syslog message (UDP by default; tcp:// uses RFC 6587 "
                        "octet counting); repeatable")
    g.add_argument("--alert-syslog-facility", type=_checked("syslog", "parse_facility", False), default=16, metavar="NAME",
                   help="syslog facility (default local0)")
    g.add_argument("--alert-webhook", action="append", default=[], type=_checked("webhook", "parse_url"), metavar="URL",
                   help="POST each alert as JSON to URL (http/https), with retries; alerts wait in the spool "
                        "while the receiver is down; repeatable")
    g.add_argument("--alert-webhook-header", action="append", default=[], type=_checked("webhook", "parse_header"),
                   metavar="'NAME: VALUE'",
                   help="an extra header on every web hook request (e.g. an authorisation token); repeatable")
    g.add_argument("--alert-webhook-ca", metavar="FILE",
                   help="CA certificates (PEM) that sign the web hook server's certificate (default: the system's)")
    g.add_argument("--alert-spool", metavar="DIR", help=f"spool of undelivered alerts (default: {spool_default})")
    g.add_argument("--alert-spool-mb", type=_number(True), default=DEFAULT_SPOOL_MB, metavar="MB",
                   help=f"spool bound per web hook; alerts beyond it are dropped and counted "
                        f"(default {DEFAULT_SPOOL_MB:g})")
    g.add_argument("--alert-flush-timeout", type=_number(False), default=DEFAULT_FLUSH_TIMEOUT, metavar="S",
                   help=f"at exit, seconds to deliver what is queued; the rest stays spooled for the next run "
                        f"(default {DEFAULT_FLUSH_TIMEOUT:g})")


def webhook_spool_dir(root: str, url: str) -> str:
    """The spool folder of one web hook URL under ``root`` (a digest: the URL may hold a token)."""
    return os.path.join(root, "webhook-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16])


def from_args(args, spool_root: str, clock=time.monotonic) -> AlertDelivery | None:
    """The sinks the parsed options ask for, started; None when there are none.  ``spool_root``: the
    spool when ``--alert-spool`` is not given (``default_spool_root(out)`` for scan and live).
    Raises DeliveryConfigError (one line) when a sink cannot be set up (e.g. the spool is not writable)."""
    syslogs = list(dict.fromkeys(getattr(args, "alert_syslog", None) or ()))
    hooks = list(dict.fromkeys(getattr(args, "alert_webhook", None) or ()))
    if not syslogs and not hooks:
        return None
    from .spool import SpoolBusy
    from .syslog import SyslogSink
    from .webhook import WebhookSink
    sinks = []
    root = getattr(args, "alert_spool", None) or spool_root
    try:
        ctx = None
        cafile = getattr(args, "alert_webhook_ca", None)
        if cafile and hooks:
            import ssl
            try:
                ctx = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as e:
                raise ValueError(f"--alert-webhook-ca {cafile}: {getattr(e, 'strerror', None) or e}") from None
        for t in syslogs:
            sinks.append(SyslogSink(t, facility=getattr(args, "alert_syslog_facility", 16), clock=clock))
        mb = getattr(args, "alert_spool_mb", DEFAULT_SPOOL_MB)
        for url in hooks:
            sinks.append(WebhookSink(url, webhook_spool_dir(root, url), spool_bytes=int(mb * (1 << 20)),
                                     headers=list(getattr(args, "alert_webhook_header", None) or ()),
                                     ssl_context=ctx, clock=clock))
    except (OSError, ValueError) as e:
        for s in sinks:
            s.release()
        if isinstance(e, SpoolBusy) or not isinstance(e, OSError):
            raise DeliveryConfigError(str(e)) from None
        raise DeliveryConfigError(f"cannot use the alert spool {getattr(e, 'filename', None) or root}: "
                                  f"{e.strerror or e}") from None
    return AlertDelivery(sinks, flush_timeout=getattr(args, "alert_flush_timeout", DEFAULT_FLUSH_TIMEOUT))
