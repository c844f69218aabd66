"""Shared pytest setup: the ``corpus`` fixture and marker registration."""
import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent
for _p in (str(_TESTS.parent), str(_TESTS)):  # repo root (inspector), tests/ (corpus.py)
    if _p not in sys.path:
        sys.path.insert(0, _p)

import corpus as _corpus  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="regenerate tests/golden/ baselines from the current code (review the diff)")


def pytest_configure(config):
    config.addinivalue_line("markers", "corpus: needs the shared pcap corpus (../shared/corpus or $INSPECTOR_CORPUS)")
    config.addinivalue_line("markers", "slow: scans many corpus captures")


@pytest.fixture(scope="session")
def corpus():
    """Path of the shared corpus; skips the test when the directory is absent."""
    root = _corpus.corpus_root()
    if not root.is_dir():
        pytest.skip(f"corpus not found at {root} (set INSPECTOR_CORPUS)")
    return root
