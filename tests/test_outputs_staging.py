"""Outputs written safely (inspector/outputs/staging.py and its use by ``inspector scan``).

* a run writes into a staging folder next to ``--out`` and replaces ``--out`` whole at the end:
  scanning A then B into one folder leaves only B's outputs;
* a folder that is not ours (non-empty, no stats.json) is refused before anything is written;
* a read-only or full output location is one line on stderr and exit status 2, with nothing left
  behind: tested for real in a private mount namespace (a read-only tmpfs, a 64 KiB tmpfs) where
  ``unshare -m`` works, and with injected ``OSError``s (EROFS, ENOSPC mid-run) everywhere;
* SIGTERM mid-scan: what was processed is written and moved into place.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers.pkt import pcap_header, udp_frame
from inspector.cli import main
from inspector.outputs import OutputDir, OutputError

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "captures"
SITE = str(CAPTURES / "site-dc-north.yaml")
A = str(CAPTURES / "content-f-ftp.pcap")            # writes ftp.jsonl
B = str(CAPTURES / "dc-north-day.pcap")             # no ftp
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _scan(out, *paths, extra=()) -> int:
    return main(["scan", *paths, "--site", SITE, "--out", str(out), "-q", *extra], env={})


def _leftovers(parent: Path) -> list:
    return sorted(p.name for p in parent.iterdir() if ".inspector-" in p.name)


# ----------------------------------------------------------------------------------------------
# OutputDir
# ----------------------------------------------------------------------------------------------

def test_commit_creates_and_replaces(tmp_path):
    out = tmp_path / "out"
    with OutputDir(str(out)) as od:
        assert Path(od.path).parent == tmp_path and not out.exists()
        (Path(od.path) / "stats.json").write_text("{}")
        (Path(od.path) / "old.jsonl").write_text("1\n")
        od.commit()
    assert sorted(os.listdir(out)) == ["old.jsonl", "stats.json"]
    with OutputDir(str(out)) as od:
        (Path(od.path) / "stats.json").write_text("{}")
        od.commit()
    assert os.listdir(out) == ["stats.json"]
    assert _leftovers(tmp_path) == []


def test_error_in_the_block_leaves_the_old_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.json").write_text('{"old": 1}')
    with pytest.raises(RuntimeError):
        with OutputDir(str(out)) as od:
            (Path(od.path) / "stats.json").write_text("{}")
            raise RuntimeError("boom")
    assert (out / "stats.json").read_text() == '{"old": 1}'
    assert _leftovers(tmp_path) == []


def test_leaving_without_commit_discards(tmp_path):
    with OutputDir(str(tmp_path / "out")) as od:
        (Path(od.path) / "x").write_text("x")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_a_folder_that_is_not_ours_is_refused(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    with pytest.raises(OutputError) as e:
        OutputDir(str(mine)).open()
    assert str(mine) in str(e.value) and "\n" not in str(e.value)
    assert (mine / "chapter1.tex").read_text() == "precious" and _leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        OutputDir(str(tmp_path / "file")).open()
    empty = tmp_path / "empty"
    empty.mkdir()
    with OutputDir(str(empty)) as od:
        od.commit()
    assert empty.is_dir()


def test_symlinked_out_is_written_through(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with OutputDir(str(link)) as od:
        (Path(od.path) / "stats.json").write_text("{}")
        od.commit()
    assert link.is_symlink() and (real / "stats.json").is_file()


def test_stale_staging_of_a_dead_run_is_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.inspector-staging-{dead.pid}"
    stale.mkdir()
    (stale / "flows.jsonl.tmp").write_text("half")
    with OutputDir(str(tmp_path / "out")) as od:
        od.commit()
    assert _leftovers(tmp_path) == []


def test_staging_inside_a_mount_point(tmp_path, monkeypatch):
    """--out is a mount point (cannot be renamed): staged inside, contents swapped on commit."""
    out = tmp_path / "vol"
    out.mkdir()
    (out / "stats.json").write_text("{}")
    (out / "ftp.jsonl").write_text("old\n")
    (out / "sub").mkdir()
    monkeypatch.setattr("inspector.outputs.staging.os.path.ismount", lambda p: str(p) == str(out))
    with OutputDir(str(out)) as od:
        assert od.inside and Path(od.path).parent == out
        (Path(od.path) / "stats.json").write_text('{"new": 1}')
        (Path(od.path) / "flows.jsonl").write_text("")
        od.commit()
    assert sorted(os.listdir(out)) == ["flows.jsonl", "stats.json"]
    assert (out / "stats.json").read_text() == '{"new": 1}'
    with OutputDir(str(out)) as od:          # an aborted run leaves the folder as it was
        (Path(od.path) / "stats.json").write_text("{}")
    assert sorted(os.listdir(out)) == ["flows.jsonl", "stats.json"] and _leftovers(tmp_path) == []


def test_os_errors_become_one_line(tmp_path, monkeypatch):
    def refuse(path, *a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    monkeypatch.setattr("inspector.outputs.staging.os.mkdir", refuse)
    with pytest.raises(OutputError) as e:
        OutputDir(str(tmp_path / "out")).open()
    assert str(e.value) == f"inspector: error: cannot write outputs to {tmp_path / 'out'}: Read-only file system"


# ----------------------------------------------------------------------------------------------
# inspector scan
# ----------------------------------------------------------------------------------------------

def test_second_scan_leaves_only_its_own_outputs(tmp_path):
    out = tmp_path / "out"
    assert _scan(out, A) == 0
    assert (out / "ftp.jsonl").is_file()
    assert _scan(out, B) == 0
    fresh = tmp_path / "fresh"
    assert _scan(fresh, B) == 0
    assert sorted(os.listdir(out)) == sorted(os.listdir(fresh))
    assert not (out / "ftp.jsonl").exists()
    assert _leftovers(tmp_path) == []


def test_scan_refuses_a_foreign_folder(tmp_path, capsys):
    mine = tmp_path / "docs"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert _scan(mine, B) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(mine) in err[0]
    assert os.listdir(mine) == ["notes.txt"] and _leftovers(tmp_path) == []


def test_extracted_files_may_not_live_inside_out(tmp_path, capsys):
    """Each run replaces --out: an extraction folder inside it would be lost, so it is refused."""
    out = tmp_path / "out"
    assert _scan(out, A, extra=("--extract-files", str(out / "files"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--extract-files" in err[0]
    assert os.listdir(tmp_path) == []


def test_injected_erofs_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    def refuse(path, *a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    monkeypatch.setattr("inspector.outputs.staging.os.mkdir", refuse)
    assert _scan(tmp_path / "out", B) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"inspector: error: cannot write outputs to {tmp_path / 'out'}: Read-only file system"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["flows", "log", "close"])
def test_injected_enospc_mid_run(tmp_path, monkeypatch, capsys, where):
    """A full disk while writing flows (writer thread), a protocol log, or at the end: one line,
    exit 2, the staging folder removed, the previous run's folder untouched."""
    from inspector.outputs import writers
    out = tmp_path / "out"
    assert _scan(out, A) == 0
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class FullFile:
        """ftp.jsonl's file: writes fail as on a full disk (raised inside the FTP analyzer, whose
        guard swallows it: the log writer must still fail the run)."""
        def __init__(self, path, mode):
            self.f = open(path, mode)

        def write(self, data):
            full()

        def close(self):
            self.f.close()

    if where == "flows":
        monkeypatch.setattr(writers.FlowWriter, "_write", full)
    elif where == "log":
        monkeypatch.setattr(writers, "open", lambda path, mode="r", *a, **k: (
            FullFile(path, mode) if os.path.basename(path).startswith("ftp.") else open(path, mode, *a, **k)),
            raising=False)
    else:                               # stats.json, at the very end
        import inspector.outputs as pkg
        monkeypatch.setattr(writers, "write_json", full)
        monkeypatch.setattr(pkg, "write_json", full, raising=False)
    assert _scan(out, A, B) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"inspector: error: cannot write outputs to {out}: No space left on device"], err
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before
    assert _leftovers(tmp_path) == []


def _unshare_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return r.returncode == 0


needs_mount_ns = pytest.mark.skipif(not _unshare_works(), reason="no mount namespaces here (unshare -m)")


def _in_mount_ns(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                          text=True, env=ENV, cwd=REPO, timeout=600)


def _cli(out: str, *paths) -> str:
    return " ".join([sys.executable, "-m", "inspector", "scan", *paths, "--site", SITE, "--out", out, "-q"])


@needs_mount_ns
def test_read_only_filesystem(tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = _in_mount_ns(f"mount -t tmpfs -o ro,size=1m tmpfs {mnt} && {_cli(str(mnt / 'out'), B)}; "
                     f"echo rc=$?; ls -A {mnt}")
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "rc=2", (r.stdout, r.stderr)
    assert lines[1:] == []                                   # nothing written
    assert r.stderr.strip() == f"inspector: error: cannot write outputs to {mnt / 'out'}: Read-only file system"


@needs_mount_ns
def test_full_filesystem(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    all_pcaps = sorted(str(p) for p in CAPTURES.glob("*.pcap"))
    r = _in_mount_ns(f"mount -t tmpfs -o size=64k tmpfs {mnt} && {_cli(str(mnt / 'out'), *all_pcaps)}; "
                     f"echo rc=$?; ls -A {mnt}")
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "rc=2", (r.stdout, r.stderr)
    assert lines[1:] == []                                   # no staging folder, no half-written out
    assert r.stderr.strip() == f"inspector: error: cannot write outputs to {mnt / 'out'}: No space left on device"


@needs_mount_ns
def test_out_is_a_mount_point(tmp_path):
    """A container volume: --out is a mount point; two scans, the second's outputs only."""
    vol = tmp_path / "vol"
    vol.mkdir()
    fresh = tmp_path / "fresh"
    assert _scan(fresh, B) == 0
    r = _in_mount_ns(f"mount -t tmpfs -o size=64m tmpfs {vol} && {_cli(str(vol), A)} && {_cli(str(vol), B)}; "
                     f"echo rc=$?; ls -A {vol}")
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "rc=0", (r.stdout, r.stderr)
    assert sorted(lines[1:]) == sorted(os.listdir(fresh))


# ----------------------------------------------------------------------------------------------
# SIGTERM mid-scan
# ----------------------------------------------------------------------------------------------

FRAMES = [udp_frame(src=f"10.1.{i // 250}.{i % 250 + 1}", dst="192.0.2.9", sport=20000 + i, dport=514,
                    payload=b"<13>x" * 8) for i in range(512)]


def _records(first: int, n: int) -> bytes:
    """``n`` pcap records, one per millisecond from packet number ``first``."""
    out = bytearray()
    t0 = 1_764_000_000_000
    for k in range(first, first + n):
        ms = t0 + k
        fr = FRAMES[k % len(FRAMES)]
        out += struct.pack("<IIII", ms // 1000, (ms % 1000) * 1000, len(fr), len(fr)) + fr
    return bytes(out)


def test_sigterm_mid_scan_commits_what_was_processed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.json").write_text("{}")
    (out / "ftp.jsonl").write_text("from an earlier run\n")
    proc = subprocess.Popen([sys.executable, "-m", "inspector", "scan", "-", "--out", str(out), "-q",
                             "--flows-only"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
    chunk = 100_000
    sent = 0
    proc.stdin.write(pcap_header())
    # Past the reader's first reads (16 MiB at most each): once these writes return, the scan has
    # taken in most of them, so it is mid-stream when the signal comes.
    while sent < 400_000:
        proc.stdin.write(_records(sent, chunk))
        sent += chunk
    proc.stdin.flush()
    proc.send_signal(signal.SIGTERM)
    stop = threading.Event()

    def keep_feeding():                # the stream goes on: the scan must stop by itself
        nonlocal sent
        try:
            while not stop.is_set():
                proc.stdin.write(_records(sent, 10_000))
                sent += 10_000
        except (BrokenPipeError, ValueError, OSError):
            pass
    feeder = threading.Thread(target=keep_feeding, daemon=True)
    feeder.start()
    try:
        rc = proc.wait(timeout=300)
    finally:
        stop.set()
        proc.kill() if proc.poll() is None else None
    err = proc.stderr.read().decode()
    assert rc == 128 + signal.SIGTERM, err
    stats = json.loads((out / "stats.json").read_text())
    assert 0 < stats["packets_read"] < sent
    assert stats["stopped_by"] == "SIGTERM"
    assert not (out / "ftp.jsonl").exists()                  # the earlier run's file is gone
    flows = (out / "flows.jsonl").read_text().splitlines()
    assert len(flows) == stats["flows"] > 0
    assert (out / "flows.parquet").is_file()
    assert _leftovers(tmp_path) == []
    assert "interrupted" in err and len(err.strip().splitlines()) == 1, err
