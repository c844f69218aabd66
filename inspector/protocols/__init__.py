"""Protocol modules (see ``base.py`` for the shape every module has and what it declares).

``MODULES`` is the registry: one line per protocol, in probe order (more
specific probes first).  Adding a protocol = one module, one line here, one
test module, one capture, one golden case.  Modules that live outside this
package (plug-ins, test doubles) join with :func:`register` and leave with
:func:`unregister`; they come after the bundled ones in probe order.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .base import Contributions

MODULES = (
    "tls", "quic", "gquic", "ssh", "http2", "http", "websocket", "ftp", "smtp", "mqtt", "smb2",
    "dns", "ntp", "dhcp", "snmp", "syslog",
)

_REGISTERED: list = []     # modules added with register(), in registration order

_REQUIRED = ("NAME", "TRANSPORTS", "probe", "Analyzer")


def register(module: ModuleType | str) -> ModuleType:
    """Add a protocol module (or its dotted import path) to the registry; returns the module.

    The module must have the shape ``base.py`` describes; its declarations are checked
    at once (a malformed one raises ``ValueError`` here, not in the middle of a scan).
    Registering a module twice is a no-op.
    """
    if isinstance(module, str):
        module = importlib.import_module(module)
    missing = [a for a in _REQUIRED if not hasattr(module, a)]
    if missing:
        raise ValueError(f"{module.__name__} is not a protocol module: no {', '.join(missing)}")
    Contributions([module])
    if module not in _REGISTERED:
        _REGISTERED.append(module)
    return module


def unregister(module: ModuleType) -> None:
    """Remove a module added with :func:`register` (unknown modules are ignored)."""
    if module in _REGISTERED:
        _REGISTERED.remove(module)


def load() -> list:
    """The protocol modules, imported, in probe order: ``MODULES`` then the registered ones."""
    return [importlib.import_module(f"{__name__}.{m}") for m in MODULES] + list(_REGISTERED)


_MERGED: dict = {}          # registered modules (tuple) -> Contributions of the whole registry


def contributions(modules=None) -> Contributions:
    """The merged declarations of ``modules`` (default: the registry, merged once per state of it)."""
    if modules is not None:
        return Contributions(modules)
    key = tuple(_REGISTERED)
    merged = _MERGED.get(key)
    if merged is None:
        _MERGED.clear()
        merged = _MERGED[key] = Contributions(load())
    return merged
