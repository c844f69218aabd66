"""Protocol modules (see ``base.py`` for the shape every module has).

``MODULES`` is the registry: one line per protocol, in probe order (more
specific probes first).  Adding a protocol = one module, one line here, one
test module, one capture, one golden case.
"""
from __future__ import annotations

import importlib

MODULES = (
    "tls", "quic", "gquic", "ssh", "http2", "http", "ftp", "smtp", "mqtt", "smb2",
    "dns", "ntp", "dhcp", "snmp", "syslog",
)


def load():
    """The protocol modules, imported, in registry order."""
    return [importlib.import_module(f"{__name__}.{m}") for m in MODULES]
