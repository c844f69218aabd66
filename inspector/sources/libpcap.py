"""Live packet source: libpcap through ctypes, no compiled extension needed.

Packets never go through Python one by one.  libpcap's own ``pcap_dump`` is the
``pcap_dispatch`` callback and writes each packet, as a classic pcap record
(16-byte header + bytes), into a C ``open_memstream`` buffer; ``take()`` hands
that buffer to Python as one ``bytes`` object holding a run of pcap records.
That is exactly the layout ``ingest`` walks in capture files, so the live path
turns it into the same ``PacketBatch`` (``records_to_batch``) and the ring of
raw capture files is those bytes behind the same file header.

The handle is non-blocking; ``wait(timeout)`` polls its selectable descriptor,
so the capture loop wakes up at least every ``timeout`` seconds (signals, idle
sweeps, batch deadlines) even on a silent link.  ``stats()`` returns libpcap's
counters (``ps_recv``, ``ps_drop``: dropped by the kernel because the capture
buffer was full, ``ps_ifdrop``: dropped by the interface or driver) widened to
64 bits.  A handle must be used from one thread (libpcap is not thread-safe).

Needs the libpcap shared library (Debian/Ubuntu: ``libpcap0.8``) and, to
capture, root or CAP_NET_RAW + CAP_NET_ADMIN.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct

import numpy as np

from ..ingest import MAX_RECORD, PCAP_MAGICS, PacketBatch, walk_pcap

PCAP_ERRBUF_SIZE = 256
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
PCAP_ERROR_BREAK = -2

# pcap_activate() results with a message that is clearer than libpcap's own (see pcap/pcap.h)
_ACTIVATE_ERRORS = {
    -5: "no such device",                                 # PCAP_ERROR_NO_SUCH_DEVICE
    -8: "permission denied (run as root or grant CAP_NET_RAW and CAP_NET_ADMIN)",   # PCAP_ERROR_PERM_DENIED
    -9: "the interface is not up",                        # PCAP_ERROR_IFACE_NOT_UP
    -11: "promiscuous mode not permitted",                # PCAP_ERROR_PROMISC_PERM_DENIED
}


class CaptureError(Exception):
    """The capture could not be opened or failed while running (one line, for the user)."""


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _PcapStat(ctypes.Structure):
    # struct pcap_stat on Unix; the padding leaves room for platforms that append fields.
    _fields_ = [("ps_recv", ctypes.c_uint), ("ps_drop", ctypes.c_uint), ("ps_ifdrop", ctypes.c_uint),
                ("_pad", ctypes.c_uint * 8)]


_LIB = None
_LIBC = None


def _libs():
    """(libpcap, libc) as ctypes libraries, loaded once; CaptureError when libpcap is missing."""
    global _LIB, _LIBC
    if _LIB is not None:
        return _LIB, _LIBC
    names = [ctypes.util.find_library("pcap"), "libpcap.so.1", "libpcap.so.0.8", "libpcap.so"]
    lib = None
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            break
        except OSError:
            continue
    if lib is None:
        raise CaptureError("libpcap not found (install it: apt-get install libpcap0.8)")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    vp, ip, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sig = {
        "pcap_create": (vp, [cp, cp]),
        "pcap_set_snaplen": (ip, [vp, ip]),
        "pcap_set_promisc": (ip, [vp, ip]),
        "pcap_set_timeout": (ip, [vp, ip]),
        "pcap_set_buffer_size": (ip, [vp, ip]),
        "pcap_activate": (ip, [vp]),
        "pcap_geterr": (cp, [vp]),
        "pcap_statustostr": (cp, [ip]),
        "pcap_compile": (ip, [vp, ctypes.POINTER(_BpfProgram), cp, ip, ctypes.c_uint32]),
        "pcap_setfilter": (ip, [vp, ctypes.POINTER(_BpfProgram)]),
        "pcap_freecode": (None, [ctypes.POINTER(_BpfProgram)]),
        "pcap_setnonblock": (ip, [vp, ip, cp]),
        "pcap_get_selectable_fd": (ip, [vp]),
        "pcap_datalink": (ip, [vp]),
        "pcap_snapshot": (ip, [vp]),
        "pcap_dump_fopen": (vp, [vp, vp]),
        "pcap_dump_close": (None, [vp]),
        "pcap_dispatch": (ip, [vp, ip, vp, vp]),
        "pcap_stats": (ip, [vp, ctypes.POINTER(_PcapStat)]),
        "pcap_close": (None, [vp]),
        "pcap_lib_version": (cp, []),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    if hasattr(lib, "pcap_set_immediate_mode"):     # libpcap >= 1.5
        lib.pcap_set_immediate_mode.restype = ip
        lib.pcap_set_immediate_mode.argtypes = [vp, ip]
    for name, res, args in (("open_memstream", vp, [ctypes.POINTER(ctypes.c_void_p),
                                                   ctypes.POINTER(ctypes.c_size_t)]),
                            ("fflush", ip, [vp]), ("fclose", ip, [vp]), ("ftell", ctypes.c_long, [vp]),
                            ("fseek", ip, [vp, ctypes.c_long, ip]), ("free", None, [vp])):
        fn = getattr(libc, name)
        fn.restype = res
        fn.argtypes = args
    _LIB, _LIBC = lib, libc
    return lib, libc


def libpcap_version() -> str:
    lib, _ = _libs()
    return lib.pcap_lib_version().decode("ascii", "replace")


def sysfs_rx_dropped(iface: str) -> int | None:
    """The interface's ``rx_dropped`` counter from sysfs (None when there is none, e.g. ``any``)."""
    try:
        with open(f"/sys/class/net/{iface}/statistics/rx_dropped", "rb") as fh:
            return int(fh.read().strip() or 0)
    except (OSError, ValueError):
        return None


class LibpcapCapture:
    """One libpcap capture handle whose packets are collected as pcap records in C memory.

    ``open()`` activates it (CaptureError with one line on failure); then, from a
    single thread: ``wait(timeout)``, ``dispatch(cnt)`` (packets moved from the
    kernel into the record buffer), ``pending_bytes()``, ``take()`` (the records as
    bytes; the buffer is emptied), ``stats()``, ``close()``.
    """

    def __init__(self, iface: str, bpf: str | None = None, snaplen: int = 262144, promisc: bool = True,
                 buffer_mb: int = 128, timeout_ms: int = 50, immediate: bool = False):
        self.iface = iface
        self.bpf = bpf
        self.snaplen = snaplen
        self.promisc = promisc
        self.buffer_mb = buffer_mb
        self.timeout_ms = timeout_ms
        self.immediate = immediate
        self.immediate_set = False
        self.warnings: list = []
        self._p = None
        self._dumper = None
        self._mptr = ctypes.c_void_p()
        self._msize = ctypes.c_size_t()
        self._mfile = None
        self._poll = None
        self._fd = -1
        self._stat = _PcapStat()
        self._raw = [0, 0, 0]           # last 32-bit readings, to widen the counters
        self._tot = [0, 0, 0]
        self.header = b""               # the 24-byte pcap file header for these records
        self.linktype = 0
        self.big_endian = False
        self.tsres = 1e-6

    # -- open / close ---------------------------------------------------------------
    def open(self) -> "LibpcapCapture":
        lib, libc = _libs()
        err = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        p = lib.pcap_create(self.iface.encode(), err)
        if not p:
            raise CaptureError(f"{self.iface}: {err.value.decode(errors='replace') or 'cannot open'}")
        self._p = p
        lib.pcap_set_snaplen(p, int(self.snaplen))
        lib.pcap_set_promisc(p, 1 if self.promisc else 0)
        lib.pcap_set_timeout(p, int(self.timeout_ms))
        lib.pcap_set_buffer_size(p, int(self.buffer_mb) << 20)
        if self.immediate and hasattr(lib, "pcap_set_immediate_mode"):
            self.immediate_set = lib.pcap_set_immediate_mode(p, 1) == 0
        rc = lib.pcap_activate(p)
        if rc < 0:
            detail = (lib.pcap_geterr(p) or b"").decode(errors="replace")
            msg = _ACTIVATE_ERRORS.get(rc) or detail or lib.pcap_statustostr(rc).decode(errors="replace")
            if detail and rc in _ACTIVATE_ERRORS and detail not in msg:
                msg = f"{msg} ({detail})"
            self.close()
            raise CaptureError(f"{self.iface}: {msg}")
        if rc > 0:
            self.warnings.append(f"{self.iface}: {lib.pcap_statustostr(rc).decode(errors='replace')}: "
                                 f"{(lib.pcap_geterr(p) or b'').decode(errors='replace')}")
        if self.bpf:
            prog = _BpfProgram()
            if lib.pcap_compile(p, ctypes.byref(prog), self.bpf.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
                msg = (lib.pcap_geterr(p) or b"").decode(errors="replace")
                self.close()
                raise CaptureError(f"bad --bpf expression {self.bpf!r}: {msg}")
            rc = lib.pcap_setfilter(p, ctypes.byref(prog))
            lib.pcap_freecode(ctypes.byref(prog))
            if rc != 0:
                msg = (lib.pcap_geterr(p) or b"").decode(errors="replace")
                self.close()
                raise CaptureError(f"{self.iface}: cannot set the filter: {msg}")
        if lib.pcap_setnonblock(p, 1, err) != 0:
            msg = err.value.decode(errors="replace")
            self.close()
            raise CaptureError(f"{self.iface}: cannot set non-blocking mode: {msg}")
        self._fd = lib.pcap_get_selectable_fd(p)
        if self._fd >= 0:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        self.snaplen = lib.pcap_snapshot(p)
        # Records go into a C memory stream, written by libpcap's own pcap_dump callback.
        self._mfile = libc.open_memstream(ctypes.byref(self._mptr), ctypes.byref(self._msize))
        if not self._mfile:
            self.close()
            raise CaptureError("open_memstream failed: " + os.strerror(ctypes.get_errno()))
        self._dumper = lib.pcap_dump_fopen(p, self._mfile)
        if not self._dumper:
            msg = (lib.pcap_geterr(p) or b"").decode(errors="replace")
            libc.fclose(self._mfile)
            libc.free(self._mptr)
            self._mptr = ctypes.c_void_p()
            self._mfile = None
            self.close()
            raise CaptureError(f"pcap_dump_fopen failed: {msg}")
        self._dump_cb = ctypes.cast(lib.pcap_dump, ctypes.c_void_p).value
        self.header = self._take_all()
        if len(self.header) != 24:
            self.close()
            raise CaptureError("unexpected pcap dump header")
        endian, self.tsres = PCAP_MAGICS[self.header[:4]]
        self.big_endian = endian == ">"
        self.linktype = struct.unpack(endian + "I", self.header[20:24])[0] & 0xFFFF
        return self

    def close(self) -> None:
        lib, libc = _libs()
        if self._dumper:
            lib.pcap_dump_close(self._dumper)     # also closes the memory stream
            self._dumper = None
            self._mfile = None
            if self._mptr.value:
                libc.free(self._mptr)
                self._mptr = ctypes.c_void_p()
        if self._p:
            lib.pcap_close(self._p)
            self._p = None

    def __enter__(self):
        return self.open() if self._p is None else self

    def __exit__(self, *exc):
        self.close()

    # -- reading -----------------------------------------------------------------------
    def fileno(self) -> int:
        return self._fd

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for packets (True: the descriptor is readable)."""
        if self._poll is None:
            import time
            time.sleep(timeout)
            return True
        try:
            return bool(self._poll.poll(max(0, int(timeout * 1000))))
        except InterruptedError:
            return False

    def dispatch(self, cnt: int) -> int:
        """Move up to ``cnt`` waiting packets into the record buffer; returns how many (0: none).

        Raises CaptureError when the capture fails (interface gone, socket error)."""
        lib, _ = _libs()
        n = lib.pcap_dispatch(self._p, int(cnt), self._dump_cb, self._dumper)
        if n >= 0:
            return n
        if n == PCAP_ERROR_BREAK:
            return 0
        raise CaptureError(f"{self.iface}: capture failed: "
                           f"{(lib.pcap_geterr(self._p) or b'').decode(errors='replace')}")

    def pending_bytes(self) -> int:
        _, libc = _libs()
        return int(libc.ftell(self._mfile))

    def _take_all(self) -> bytes:
        _, libc = _libs()
        libc.fflush(self._mfile)
        n = int(libc.ftell(self._mfile))
        data = ctypes.string_at(self._mptr.value, n) if n else b""
        libc.fseek(self._mfile, 0, 0)
        return data

    def take(self) -> bytes:
        """The records dispatched since the last call, as one bytes object."""
        return self._take_all()

    def stats(self) -> dict:
        """libpcap counters, widened to 64 bits: ps_recv, ps_drop, ps_ifdrop."""
        lib, _ = _libs()
        if self._p and lib.pcap_stats(self._p, ctypes.byref(self._stat)) == 0:
            for i, v in enumerate((self._stat.ps_recv, self._stat.ps_drop, self._stat.ps_ifdrop)):
                self._tot[i] += (v - self._raw[i]) % (1 << 32)
                self._raw[i] = v
        return {"ps_recv": self._tot[0], "ps_drop": self._tot[1], "ps_ifdrop": self._tot[2]}


def parse_header(header: bytes) -> tuple[bool, float, int, int]:
    """(big_endian, timestamp resolution, snaplen, linktype) of a 24-byte pcap file header."""
    endian, tsres = PCAP_MAGICS[header[:4]]
    _m, _vmaj, _vmin, _tz, _sig, snaplen, network = struct.unpack(endian + "4sHHiIII", header)
    return endian == ">", tsres, snaplen, network & 0xFFFF


def records_to_batch(raw: bytes, count: int, big_endian: bool, tsres: float, linktype: int,
                     source: str = "") -> tuple[PacketBatch, int]:
    """A run of classic-pcap records -> (PacketBatch, bytes of ``raw`` not consumed).

    The same record walk and timestamp arithmetic as ``ingest`` uses on files,
    so a batch built here equals the one a scan of the same records builds."""
    cap = max(1, count)
    sec = np.empty(cap, dtype=np.int64)
    frac = np.empty(cap, dtype=np.int64)
    incl = np.empty(cap, dtype=np.int64)
    orig = np.empty(cap, dtype=np.int64)
    off = np.empty(cap, dtype=np.int64)
    arr = np.frombuffer(raw, dtype=np.uint8)
    n, pos, _stop = walk_pcap(arr, 0, len(raw), len(raw), cap, big_endian, MAX_RECORD, sec, frac, incl, orig,
                               off)
    ts = sec[:n] + frac[:n] * tsres
    batch = PacketBatch(buf=raw, ts=ts, caplen=incl[:n].copy(), wirelen=orig[:n].copy(), offset=off[:n].copy(),
                        linktype=np.full(n, linktype, dtype=np.int32), source=source)
    return batch, len(raw) - pos
