"""The import structure of the package: stages only import downwards, no import cycles, no private
names used across modules.  In the style of click's ``test_imports.py``, checked both statically
(every import statement of every module, including those inside functions, which run only when
called) and dynamically (each lower-stage module imported alone in a fresh interpreter).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import imports as I

REPO = Path(__file__).resolve().parents[1]

#: The stages below the analysis and output layers: packets to flows to protocol records, content and
#: enrichment, plus the shared pieces they use.  Each names a package or a module.
LOWER = ("inspector.decode", "inspector.flows", "inspector.protocols", "inspector.content", "inspector.enrich",
         "inspector.ingest", "inspector.sources.libpcap", "inspector.streams", "inspector.site",
         "inspector.dispatch",
         "inspector.community_id", "inspector.domain", "inspector.sniff", "inspector.mime",
         "inspector.severity", "inspector.yamlconf", "inspector.errors", "inspector.timeutil")
#: What a lower stage must never import: the policy, the reports, batch, live capture, alert delivery,
#: the command line and the pipeline that wires the stages together.
HIGHER = ("inspector.policy", "inspector.report", "inspector.batch", "inspector.sources.live", "inspector.delivery",
          "inspector.cli", "inspector.pipeline",
          "inspector.evidence")

#: Import cycles and cross-module private names another change is removing (inspector.protocols.quic
#: and gquic share per-direction state); entries may only be deleted from these sets.
PENDING_CYCLES: set = set()
PENDING_PRIVATE_IMPORTERS: set = set()


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = I.modules()
LOWER_MODULES = sorted(m for m in MODULES if _in(m, LOWER))


def test_the_stage_lists_name_real_modules():
    missing = [p for p in LOWER if p not in MODULES]
    assert not missing, f"LOWER names modules that do not exist: {missing}"
    assert len(LOWER_MODULES) > 40


def test_lower_stages_do_not_import_higher_ones_statically():
    known = set(MODULES)
    bad = []
    for imp in I.imports(MODULES):
        if not _in(imp.importer, LOWER):
            continue
        target = I.internal_module(imp.target, known) or imp.target
        if _in(target, HIGHER):
            where = "inside a function" if imp.lazy else "at module level"
            bad.append(f"{MODULES[imp.importer].relative_to(REPO)}:{imp.lineno}: {imp.importer} imports "
                       f"{target} {where}")
    assert not bad, "a lower stage imports a higher one:\n" + "\n".join(bad)


# One interpreter that loads no inspector module forks a child per module: each child starts with no
# inspector module loaded (a fresh import as far as the package is concerned) without paying for a
# new interpreter and the third-party libraries every time.
_PROBE = r"""
import importlib, json, os, sys
for lib in ("numpy", "yaml"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not any(m == "inspector" or m.startswith("inspector.") for m in sys.modules)
results = {}
for name in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            out = {"loaded": sorted(m for m in sys.modules if m == "inspector" or m.startswith("inspector."))}
        except BaseException as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    results[name] = json.loads(data or b'{"error": "child died"}')
print(json.dumps(results))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lower_stage_imported_alone_loads_no_higher_stage():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _PROBE, *LOWER_MODULES], capture_output=True, text=True, env=env,
                         cwd=str(REPO), timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(results) == set(LOWER_MODULES)
    errors = {m: r["error"] for m, r in results.items() if "error" in r}
    assert not errors
    bad = {m: h for m, r in results.items() if (h := [x for x in r["loaded"] if _in(x, HIGHER)])}
    assert not bad, f"importing a lower stage loads a higher one: {bad}"
    assert all(m in r["loaded"] for m, r in results.items())


def test_no_import_cycles_at_module_level():
    assert I.cycles(I.graph(lazy=False)) == []


def test_no_import_cycles_hidden_by_function_level_imports():
    """A function-level import only defers a cycle: the modules still depend on each other."""
    found = {tuple(c) for c in I.cycles(I.graph(lazy=True))}
    assert found <= PENDING_CYCLES, f"import cycles: {sorted(found - PENDING_CYCLES)}"


def test_no_private_names_across_modules():
    bad = [f"{MODULES[m].relative_to(REPO)}:{line}: {name}" for m, line, name in I.private_imports(MODULES)
           if m not in PENDING_PRIVATE_IMPORTERS]
    assert not bad, "private names used across modules (make them public or move them):\n" + "\n".join(bad)


# -- the analysis itself -------------------------------------------------------------------------

def test_analysis_sees_function_level_imports_and_cycles(tmp_path, monkeypatch):
    pkg = tmp_path / "inspector"
    (pkg / "policy").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "policy" / "__init__.py").write_text("")
    (pkg / "policy" / "a.py").write_text("from .b import x\n")
    (pkg / "policy" / "b.py").write_text("def f():\n    from .c import y\n    return y\nx = 1\n")
    (pkg / "policy" / "c.py").write_text("from . import a\nfrom ..sniff import _secret\nimport inspector.sniff as s\n"
                                         "z = s._other\n")
    (pkg / "sniff.py").write_text("def g():\n    from inspector.policy import a\n_secret = _other = 1\n")
    monkeypatch.setattr(I, "ROOT", pkg)
    mods = I.modules()
    assert set(mods) == {"inspector", "inspector.policy", "inspector.policy.a", "inspector.policy.b",
                         "inspector.policy.c", "inspector.sniff"}
    assert I.cycles(I.graph(lazy=False)) == []
    assert I.cycles(I.graph(lazy=True)) == [["inspector.policy.a", "inspector.policy.b", "inspector.policy.c",
                                             "inspector.sniff"]]
    lazy = [i for i in I.imports(mods) if i.importer == "inspector.sniff"]
    assert [(i.target, i.lazy) for i in lazy] == [("inspector.policy.a", True)]
    assert sorted(n for _, _, n in I.private_imports(mods)) == ["inspector.sniff._other", "inspector.sniff._secret"]
