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
