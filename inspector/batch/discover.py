"""Finding the captures of a nightly batch, and their content hashes.

Layout: ``DIR/<host>/...``: every capture under a first-level sub-folder of a
``DIR`` argument belongs to the host named by that sub-folder (deeper folders,
``DIR/wms01/2025-11-24/a.pcap``, are the host's own organisation).  A capture
directly in ``DIR`` belongs to the host named like ``DIR`` itself.  A file
given directly as an argument belongs to the host named by its parent folder.

Files are recognised as captures by magic number (pcap, pcapng, gzip, zstd),
never by name; hidden files and temporary files (``*.tmp``, ``*.part``) are
skipped, and so are the batch database and its Parquet folder when they lie
inside ``DIR``.  The identity of a capture is the SHA-256 of its bytes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

CAPTURE_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
                  b"\x0a\x0d\x0d\x0a", b"\x28\xb5\x2f\xfd")
GZIP_MAGIC = b"\x1f\x8b"
SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".swp", ".duckdb", ".wal", ".parquet")
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Capture:
    path: str            # absolute (workers may run elsewhere, in another directory)
    host: str            # site host: the first-level sub-folder under DIR
    rel: str             # path relative to DIR ("wms01/2025-11-24.pcap")
    size: int
    mtime_ns: int


def looks_like_capture(path: str) -> bool:
    """Magic number of a pcap/pcapng file, or of a gzip/zstd stream (unwrapped and checked by the scan)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in CAPTURE_MAGICS or head[:2] == GZIP_MAGIC


def _skip_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(SKIP_SUFFIXES) or ".tmp" in name


def discover(dirs: list[str], exclude: list[str] = ()) -> tuple[list[Capture], list[str]]:
    """Captures under ``dirs`` (recursively, sorted, deterministic) and one error line per bad argument.

    ``exclude``: paths (the database, its Parquet folder) never reported even when inside a DIR.
    """
    excl = {os.path.realpath(p) for p in exclude}
    found: list[Capture] = []
    errors: list[str] = []
    seen: set[str] = set()

    def add(path: str, host: str, rel: str) -> None:
        real = os.path.realpath(path)
        if real in seen or real in excl:
            return
        try:
            st = os.stat(path)
        except OSError as e:
            errors.append(f"{path}: {e.strerror or e}")
            return
        if not os.path.isfile(path) or not looks_like_capture(path):
            return
        seen.add(real)
        found.append(Capture(path=os.path.abspath(path), host=host, rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns))

    for d in dirs:
        if os.path.isfile(d):
            parent = os.path.basename(os.path.dirname(os.path.abspath(d))) or "-"
            add(d, parent, os.path.basename(d))
            continue
        if not os.path.isdir(d):
            errors.append(f"{d}: no such file or directory")
            continue
        root_host = os.path.basename(os.path.abspath(d).rstrip(os.sep)) or "-"
        for root, subdirs, files in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith(".")
                                and os.path.realpath(os.path.join(root, s)) not in excl)
            rel_root = os.path.relpath(root, d)
            host = root_host if rel_root == "." else rel_root.split(os.sep)[0]
            for f in sorted(files):
                if _skip_name(f):
                    continue
                rel = f if rel_root == "." else os.path.join(rel_root, f)
                add(os.path.join(root, f), host, rel)
    return found, errors


def file_sha256(path: str) -> str:
    """SHA-256 (hex) of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(HASH_CHUNK)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()
