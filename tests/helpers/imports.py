"""Static import analysis of the ``inspector`` package, for tests/test_imports.py.

Every module's source is parsed (never imported) and each ``import`` / ``from ... import``
statement is resolved to absolute module names, with where it sits: at module level (run when
the module is imported, including inside ``try``/``if``/class bodies) or inside a function
(run when the function is called: a lazy import, invisible to a plain import test).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Set

PACKAGE = "inspector"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


@dataclass(frozen=True)
class Import:
    importer: str           # the module that imports
    target: str             # the absolute name of the module imported
    names: tuple            # names taken from it (``from target import a, b``); () for ``import target``
    lineno: int
    lazy: bool              # inside a function body


def modules() -> Dict[str, Path]:
    """Every module of the package: dotted name -> path (packages by their ``__init__``)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@lru_cache(maxsize=None)
def _parse(path: Path, mtime_ns: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def parse(path: Path) -> ast.Module:
    """The syntax tree of a module (parsed once per version of the file)."""
    return _parse(path, path.stat().st_mtime_ns)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(importer: str, is_pkg: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if is_pkg else importer.split(".")[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


class _Visitor(ast.NodeVisitor):
    def __init__(self, importer: str, is_pkg: bool, known: Set[str]):
        self.importer, self.is_pkg, self.known = importer, is_pkg, known
        self.depth = 0
        self.out: List[Import] = []

    def _func(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _func

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.out.append(Import(self.importer, a.name, (), node.lineno, self.depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        target = _resolve(self.importer, self.is_pkg, node.level, node.module)
        names = tuple(a.name for a in node.names)
        subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in self.known]
        if len(subs) < len(names):  # names defined by the target module itself
            self.out.append(Import(self.importer, target, names, node.lineno, self.depth > 0))
        for sub in subs:            # ``from . import detectors``: the submodule is what is imported
            self.out.append(Import(self.importer, sub, (), node.lineno, self.depth > 0))


def imports(mods: Dict[str, Path] | None = None) -> List[Import]:
    """Every import statement of every module of the package."""
    mods = mods if mods is not None else modules()
    known = set(mods)
    out: List[Import] = []
    for name, path in mods.items():
        v = _Visitor(name, _is_package(path), known)
        v.visit(parse(path))
        out.extend(v.out)
    return out


def internal_module(target: str, known: Set[str]) -> str | None:
    """The package module an import statement's target names (``inspector.x.y`` or a parent of
    it that exists), None for a module outside the package."""
    if target != PACKAGE and not target.startswith(PACKAGE + "."):
        return None
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def graph(lazy: bool = False) -> Dict[str, Set[str]]:
    """Module -> package modules it imports (module-level imports only unless ``lazy``)."""
    mods = modules()
    known = set(mods)
    g: Dict[str, Set[str]] = {m: set() for m in mods}
    for imp in imports(mods):
        if imp.lazy and not lazy:
            continue
        t = internal_module(imp.target, known)
        if t is not None and t != imp.importer:
            g[imp.importer].add(t)
    return g


def cycles(g: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        # iterative Tarjan: the package's import chains are deep enough to worry the recursion limit
        work = [(v, iter(sorted(g.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return sorted(out)


def private_imports(mods: Dict[str, Path] | None = None) -> Iterator[tuple]:
    """``(importer, line, "module._name")`` for each private name of one package module used by
    another: ``from m import _name`` and ``m._name`` where ``m`` was bound by an import."""
    mods = mods if mods is not None else modules()
    known = set(mods)
    for name, path in mods.items():
        tree = parse(path)
        bound: Dict[str, str] = {}          # local alias -> package module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, _is_package(path), node.level, node.module)
                if internal_module(target, known) is None:
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in known:
                        bound[a.asname or a.name] = sub
                    elif _private(a.name) and target != name:
                        yield name, node.lineno, f"{target}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if internal_module(a.name, known) is not None and a.asname:
                        bound[a.asname] = a.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                base = node.value
                if isinstance(base, ast.Name) and base.id in bound and bound[base.id] != name:
                    yield name, node.lineno, f"{bound[base.id]}.{node.attr}"


def _private(n: str) -> bool:
    return n.startswith("_") and not (n.startswith("__") and n.endswith("__"))
