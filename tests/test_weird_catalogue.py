"""The weird catalogue (inspector/outputs/weirds.py and each protocol module's WEIRDS) covers every
weird name the code can emit.

(a) dynamically: every name in weird.jsonl and stats.json of scans of the bundled captures, a
    sample of the shared corpus, and hostile inputs (seeded truncations and byte flips of real
    captures; content bodies that lie about their type or encoding);
(b) statically: every weird-name string literal in the source (arguments of weird-emitting calls,
    tuples appended to weird lists, and any literal in a catalogued layer), every name prefix
    completed at run time (``"ssl.client_hello_" + problem``) and every f-string template
    (``f"{name}.analyzer_error"``).
"""
from __future__ import annotations

import ast
import random
import re
import zlib
from functools import lru_cache
from pathlib import Path

import pytest

from helpers import outputs_scan as scans
from inspector.outputs import weirds as W

REPO = scans.REPO
SOURCE = REPO / "inspector"
NAME_RE = re.compile(r"^[a-z][a-z0-9]*\.[a-z][a-z0-9_]*[a-z0-9]$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]*\.[a-z0-9_]*$")

# Calls whose string arguments are weird names (the emitters and the exceptions that carry one).
WEIRD_CALLS = {"weird", "_weird", "add_weird", "_event", "_content_weird", "_lose", "_drop", "Weird", "_Stop",
               "IngestEvent"}
# Name-shaped literals in a catalogued layer that are not weird names.
NOT_WEIRDS = {
    "ip.fragment",        # a decode outcome (a fragment held for reassembly), counted in stats.json outcomes
    "ip6.arpa",           # the reverse-DNS zone
    "content.jsonl",      # a file name
    "content.xml",        # the ODF part holding a document's text and tables
}
OUTPUT_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".html")   # output file names (dns.jsonl), not weirds


def _undeclared(names) -> list:
    return sorted(n for n in set(names) if W.lookup(n) is None)


def _emitted(out: scans.Outputs) -> set:
    names = set(out.stats.get("weirds") or {})
    names.update(r["name"] for r in out.records.get("weird", ()))
    return names


# ----------------------------------------------------------------------------------------------
# the catalogue itself
# ----------------------------------------------------------------------------------------------

def test_catalogue_entries_are_well_formed():
    cat = W.catalogue()
    assert len(cat) > 150
    for w in cat:
        assert re.fullmatch(r"(<[a-z_]+>|[a-z][a-z0-9]*)\.[a-z0-9_<>]+", w.name), w.name
        assert w.layer == w.name.split(".", 1)[0]
        assert w.meaning and "\n" not in w.meaning and len(w.meaning) < 120, w.name
    assert W.lookup("ssl.client_hello_bad_extension_16").name == "ssl.client_hello_bad_extension_<n>"
    assert W.lookup("ssl.client_hello_bad_extension_x") is None
    assert W.lookup("dns.analyzer_error").name == "<analyzer>.analyzer_error"
    assert W.lookup("dns.no_such_thing") is None


def test_protocol_weirds_are_in_their_own_layer():
    from inspector import protocols
    for mod in protocols.load():
        layers = {mod.NAME, getattr(mod, "LOG", None), "quic" if mod.NAME == "quic" else None}
        for name in getattr(mod, "WEIRDS", {}):
            assert name.split(".", 1)[0] in layers, f"{mod.__name__}: {name}"


# ----------------------------------------------------------------------------------------------
# (a) names emitted by scans
# ----------------------------------------------------------------------------------------------

def test_bundled_captures_emit_only_catalogued_names():
    assert _undeclared(_emitted(scans.bundled())) == []


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_sample_emits_only_catalogued_names(corpus):
    sample = scans.corpus()
    seen = set()
    problems = []
    for path, out in sample:
        names = _emitted(out)
        seen |= names
        bad = _undeclared(names)
        if bad:
            problems.append(f"{path}: {bad}")
    assert not problems, "\n".join(problems)
    assert len(seen) >= 20, sorted(seen)       # the sample does reach many layers


def _mutants(data: bytes, seed: int, n: int = 8):
    rng = random.Random(seed)
    for off in sorted(rng.sample(range(24, len(data)), n)):
        yield data[:off]
    for _ in range(n):
        buf = bytearray(data)
        for _ in range(rng.choice([1, 4, 16, 64])):
            i = rng.randrange(24, len(buf))
            buf[i] ^= rng.randrange(1, 256)
        yield bytes(buf)


HOSTILE_SOURCES = ("dc-north-day.pcap", "dc-north-exfil.pcap", "dc-north-ipv6-vlan.pcap", "content-f-ftp.pcap",
                   "content-j-smtp-attachment.pcap")


def test_hostile_inputs_emit_only_catalogued_names(tmp_path):
    from inspector.pipeline import run_scan
    seen = set()
    for name in HOSTILE_SOURCES:
        data = (scans.CAPTURES / name).read_bytes()
        for k, blob in enumerate(_mutants(data, zlib.crc32(name.encode()))):
            p = tmp_path / f"{name}.{k}.pcap"
            p.write_bytes(blob)
            res = run_scan([str(p)])
            seen |= set(res.stats["weirds"])
            p.unlink()
    assert _undeclared(seen) == []
    assert len(seen) >= 5, sorted(seen)      # the mutants do provoke weirds


def test_content_anomalies_are_catalogued():
    from inspector.content.stage import ContentStage
    names = []
    stage = ContentStage(weird=lambda uid, name, detail: names.append(name))
    cf = stage.new_flow()
    stage.body(cf, {"content_type": "application/json", "source": "http"}, b"\x89PNG\r\n\x1a\n" + bytes(200), "C1")
    stage.body(cf, {"content_encoding": "gzip", "source": "http"}, b"\x1f\x8b\x08\x00garbage" * 10, "C1")
    assert set(names) >= {"content.type_mismatch", "content.decompression"}, names
    assert _undeclared(names) == []


# ----------------------------------------------------------------------------------------------
# (b) names in the source
# ----------------------------------------------------------------------------------------------

def _callee(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def _receiver(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        v = f.value
        if isinstance(v, ast.Attribute):
            return v.attr
        if isinstance(v, ast.Name):
            return v.id
    return ""


def _template(node: ast.JoinedStr) -> str:
    return "".join(v.value if isinstance(v, ast.Constant) else "<>" for v in node.values)


@lru_cache(maxsize=None)
def source_names(root: Path = SOURCE) -> dict:
    """Weird names in the source under ``root``: {"exact": {name: where}, "prefix": {...},
    "template": {...}}."""
    found = {"exact": {}, "prefix": {}, "template": {}}
    layers = {w.layer for w in W.catalogue() if not w.layer.startswith("<")}

    def note(kind, value, where):
        found[kind].setdefault(value, where)

    def in_weird_context(expr, where):
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str) and NAME_RE.match(expr.value):
            note("exact", expr.value, where)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add) and isinstance(expr.left, ast.Constant) \
                and isinstance(expr.left.value, str) and PREFIX_RE.match(expr.left.value):
            note("prefix", expr.left.value, where)
        elif isinstance(expr, ast.JoinedStr):
            t = _template(expr)
            if re.fullmatch(r"[a-z0-9_<>]+\.[a-z0-9_<>]+", t):
                note("template", t, where)
        elif isinstance(expr, ast.IfExp):
            in_weird_context(expr.body, where)
            in_weird_context(expr.orelse, where)
        elif isinstance(expr, ast.Tuple):
            for e in expr.elts:
                in_weird_context(e, where)

    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).as_posix() == "outputs/weirds.py":
            continue                     # the catalogue itself declares, it does not emit
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root.parent)
        declared = {id(k) for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
                    and any(isinstance(t, ast.Name) and t.id == "WEIRDS" for t in n.targets)
                    for k in n.value.keys}          # a protocol module's WEIRDS keys: declarations too
        for node in ast.walk(tree):
            if id(node) in declared:
                continue
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                callee = _callee(node)
                if callee in WEIRD_CALLS:
                    for a in list(node.args) + [k.value for k in node.keywords]:
                        in_weird_context(a, where)
                elif callee in ("append", "extend") and ("weird" in _receiver(node) or _receiver(node) == "w"):
                    for a in node.args:
                        in_weird_context(a, where)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME_RE.match(node.value) \
                    and node.value.split(".", 1)[0] in layers and node.value not in NOT_WEIRDS \
                    and not node.value.endswith(OUTPUT_FILE_SUFFIXES):
                note("exact", node.value, where)     # a name in a catalogued layer, wherever it appears
    return found


def test_source_names_are_catalogued():
    found = source_names()
    assert len(found["exact"]) > 150, "the source walk found too few names: is it still finding the emitters?"
    problems = [f"{where}: {name!r} is not in the weird catalogue"
                for name, where in sorted(found["exact"].items()) if W.lookup(name) is None]
    problems += [f"{where}: names built from {prefix!r} + ... are not in the weird catalogue"
                 for prefix, where in sorted(found["prefix"].items()) if not W.covers_prefix(prefix)]
    templates = {W.template_of(w.name) for w in W.catalogue()}
    problems += [f"{where}: f-string name {t!r} has no catalogue pattern"
                 for t, where in sorted(found["template"].items()) if t not in templates]
    assert not problems, "\n".join(problems)


def test_every_catalogued_name_is_emitted_somewhere():
    """No dead entries: each exact name appears in the source (patterns: their fixed prefix does)."""
    found = source_names()
    exact = set(found["exact"])
    prefixes = set(found["prefix"])
    templates = set(found["template"])
    dead = []
    for w in W.catalogue():
        if "<" in w.name:
            if W.template_of(w.name) in templates or any(w.name.startswith(p) for p in prefixes):
                continue
            dead.append(w.name)
        elif w.name not in exact and not any(w.name.startswith(p) for p in prefixes):
            dead.append(w.name)
    assert not dead, f"catalogued but never emitted: {dead}"


def test_static_check_catches_an_undeclared_name(tmp_path):
    """The walker is not vacuous: an emitter with an uncatalogued literal is reported."""
    pkg = tmp_path / "inspector"
    pkg.mkdir()
    (pkg / "fake.py").write_text('def f(ctx, x):\n    ctx.weird("dns.made_up_name", "")\n'
                                 '    ctx.weird("zz.brand_new_layer", "")\n    ctx.weird(f"{x}.never_declared")\n')
    found = source_names(pkg)
    assert {"dns.made_up_name", "zz.brand_new_layer"} <= set(found["exact"])
    assert W.lookup("dns.made_up_name") is None and W.lookup("zz.brand_new_layer") is None
    assert "<>.never_declared" in found["template"]
