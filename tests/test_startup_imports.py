"""Start-up stays light: the CLI imports heavy libraries only in the commands that use them
(in the style of click's import tests: a clean interpreter, then a look at ``sys.modules``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "pyarrow", "numba", "dask", "distributed", "duckdb", "numpy", "rich", "scapy", "pyshark",
         "phonenumbers", "cryptography", "geoip2fast", "llvmlite")


def imported_after(code: str) -> set:
    """The heavy top-level modules loaded by ``code`` in a fresh interpreter."""
    probe = (code + "\nimport json, sys\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    return set(json.loads(p.stdout.strip().splitlines()[-1]))


def test_import_inspector_cli_is_light():
    assert imported_after("import inspector.cli") == set()


def test_help_of_every_command_is_light():
    code = ("import contextlib, io\nfrom inspector import cli\n"
            "for argv in (['--help'], *[[c, '--help'] for c in cli.COMMANDS]):\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        assert cli.main(argv, {}) == 0, argv\n")
    assert imported_after(code) == set()


def test_import_inspector_and_pipeline_need_no_dataframes():
    assert imported_after("import inspector") == set()
    loaded = imported_after("import inspector.pipeline, inspector.settings")
    assert not loaded & {"pandas", "dask", "distributed", "duckdb", "rich", "scapy", "pyshark", "phonenumbers"}


def test_a_scan_without_packets_never_loads_numba(tmp_path):
    """The kernels (``inspector.jit``) are handed to numba on their first call: a scan of a capture
    holding no packet (and every command's parser) runs without importing numba or llvmlite; a
    capture with packets does import it, and gives the same flows the kernels always gave."""
    import struct
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    code = ("from inspector.cli import main\n"
            f"assert main(['scan', {str(empty)!r}, '--out', {str(tmp_path / 'o1')!r}, '-q'], {{}}) == 0\n")
    assert imported_after(code) & {"numba", "llvmlite"} == set()
    cap = REPO / "captures" / "content-a-http-json.pcap"
    code = ("from inspector.cli import main\nfrom inspector import jit\n"
            f"assert main(['scan', {str(cap)!r}, '--out', {str(tmp_path / 'o2')!r}, '-q'], {{}}) in (0, 1)\n"
            "assert jit.compiled('inspector.flows.kernel') and jit.compiled('inspector.ingest')\n")
    assert "numba" in imported_after(code)
    assert (tmp_path / "o1" / "flows.jsonl").read_text() == ""
    assert (tmp_path / "o2" / "flows.jsonl").read_text().count("\n") == 1


def test_lazy_kernels_compile_once_and_keep_their_python():
    from inspector import jit
    from inspector.flows import kernel
    assert kernel.seq_delta.py_func(5, 3) == 2             # entry point or dispatcher: the Python is there
    jit.compile_module("inspector.flows.kernel")
    first = kernel.seq_delta
    jit.compile_module("inspector.flows.kernel")
    assert kernel.seq_delta is first and jit.compiled("inspector.flows.kernel")
    assert kernel.seq_delta(5, 3) == kernel.seq_delta.py_func(5, 3)
