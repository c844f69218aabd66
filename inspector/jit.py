"""Numba kernels compiled on first use: importing a kernel module does not import numba.

``@njit(**options)`` marks a kernel of a module (``ingest``, ``decode.fastpath``, ``flows.kernel``).
Until one of the module's kernels is called, the functions stay plain Python and numba is not
imported, so ``inspector --help``, ``signatures check`` or a scan of a capture without a packet do
not pay the half second numba takes to import.  The first call of any kernel of a module imports
numba and puts every kernel of that module through ``numba.njit`` at once (kernels call each other:
numba resolves those calls through the module's globals when it compiles, so they must all be
dispatchers by then); with ``cache=True`` the machine code comes from the on-disk cache that
``inspector.warmup`` fills at install time.

What a decorated name holds is an entry point that forwards to the module's dispatcher: code that
imported it by name (``from ..ingest import walk_pcap``) keeps working, at the cost of one Python
call per kernel call (kernels are called once per batch, not per packet).  The plain function is
``entry.py_func``, as with numba.  ``NUMBA_DISABLE_JIT=1`` (the fuzz targets) makes numba return the
Python functions themselves.
"""
from __future__ import annotations

import functools
import sys
import threading

__all__ = ["njit", "compile_module", "compiled"]

_KERNELS: dict = {}          # module name -> [(function name, function, numba options)]
_DONE: set = set()
_LOCK = threading.Lock()


def njit(**options):
    """Mark a module-level function as a numba kernel compiled on first use (``numba.njit(**options)``)."""
    def mark(fn):
        module = fn.__module__
        _KERNELS.setdefault(module, []).append((fn.__name__, fn, options))

        @functools.wraps(fn)
        def entry(*args):
            if module not in _DONE:
                compile_module(module)
            return sys.modules[module].__dict__[fn.__name__](*args)
        entry.py_func = fn
        return entry
    return mark


def compile_module(module: str) -> None:
    """Replace every kernel of ``module`` by its numba dispatcher (imports numba; idempotent)."""
    with _LOCK:
        if module in _DONE:
            return
        import numba
        g = sys.modules[module].__dict__
        for name, fn, options in _KERNELS.get(module, ()):
            g[name] = numba.njit(**options)(fn)
        _DONE.add(module)


def compiled(module: str) -> bool:
    """Whether ``module``'s kernels have been handed to numba in this process."""
    return module in _DONE
