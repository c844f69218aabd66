"""Scan captures through the CLI once per test session and read back every output file.

Shared by tests/test_outputs_schema.py and tests/test_weird_catalogue.py: the bundled
captures (one scan of all of them with the bundled site file, as ``make demo``) and a
deterministic sample of the shared corpus (one scan per file; empty without the corpus).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "captures"
SITE = CAPTURES / "site-dc-north.yaml"
BUNDLED = tuple(sorted(str(p) for p in CAPTURES.glob("*.pcap")))

# Corpus tags of the protocols and layers with logs or weirds of their own: a few files of each.
SAMPLE_TAGS = ("dns", "http", "tls", "quic", "ssh", "ftp", "smtp", "ntp", "dhcp", "snmp", "smb", "mqtt", "http2",
               "malformed", "snaplen_cut", "ipv4frag", "ipv6.fraghdr", "gre", "erspan", "geneve", "vxlan",
               "teredo", "mpls", "ppp", "sll", "sll2", "wlan", "radiotap", "nflog", "file-truncated",
               "file-corrupt", "gzip", "unsupported-linktype")
NAMED = ("syslog",)           # and files named after protocols the index has no tag for
PER_TAG = 3
EVERY_NTH = 50                # plus every 50th index row, whatever its tags
MAX_BYTES = 3_000_000

_TMP = tempfile.mkdtemp(prefix="inspector-outputs-test-")
atexit.register(shutil.rmtree, _TMP, True)


@dataclass
class Outputs:
    """What one scan wrote: records per JSONL file stem, stats.json, the file names."""
    out_dir: str
    records: dict = field(default_factory=dict)     # stem -> list of decoded records
    stats: dict = field(default_factory=dict)
    files: list = field(default_factory=list)


def corpus_root() -> Path:
    env = os.environ.get("INSPECTOR_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def corpus_sample() -> list:
    """Paths of the sampled corpus captures (smallest files of each tag first), sorted."""
    index = corpus_root() / "INDEX.jsonl"
    if not index.is_file():
        return []
    rows = [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if 0 < r["bytes"] <= MAX_BYTES]
    picked = {r["dest"] for i, r in enumerate(rows) if i % EVERY_NTH == 0}
    for tag in SAMPLE_TAGS:
        tagged = sorted((r for r in rows if tag in (r.get("tags") or ())), key=lambda r: (r["bytes"], r["dest"]))
        picked.update(r["dest"] for r in tagged[:PER_TAG])
    for word in NAMED:
        named = sorted((r for r in rows if word in r["dest"].rsplit("/", 1)[-1]), key=lambda r: (r["bytes"], r["dest"]))
        picked.update(r["dest"] for r in named[:PER_TAG])
    root = corpus_root()
    return sorted(str(root / d) for d in picked if (root / d).is_file())


def read_outputs(out_dir: str) -> Outputs:
    res = Outputs(out_dir=out_dir, files=sorted(os.listdir(out_dir)))
    for name in res.files:
        path = os.path.join(out_dir, name)
        if name.endswith(".jsonl"):
            with open(path, encoding="utf-8") as fh:
                res.records[name[:-len(".jsonl")]] = [json.loads(line) for line in fh if line.strip()]
        elif name == "stats.json":
            with open(path, encoding="utf-8") as fh:
                res.stats = json.load(fh)
    return res


@lru_cache(maxsize=None)
def scan(paths: tuple) -> Outputs:
    """``inspector scan PATHS --site captures/site-dc-north.yaml`` (in-process), outputs read back."""
    from inspector.cli import main
    out = tempfile.mkdtemp(dir=_TMP)
    os.rmdir(out)
    rc = main(["scan", *paths, "--site", str(SITE), "--out", out, "--hash-salt", "schema-test", "-q"], env={})
    assert rc == 0, f"scan of {paths} exited {rc}"
    return read_outputs(out)


def bundled() -> Outputs:
    return scan(BUNDLED)


def corpus() -> list:
    """(path, Outputs) for every sampled corpus capture; skips the calling test when there are none."""
    sample = corpus_sample()
    if not sample:
        import pytest
        pytest.skip("no corpus captures sampled")
    return [(p, scan((p,))) for p in sample]
