"""Replays every input in tests/fuzz/crashes/ (inputs that once broke a fuzz target, found by
``make fuzz``) and a slice of each target's seeds: none may raise."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fuzz"))

import targets as T  # noqa: E402

CASES = T.regression_inputs(HERE / "fuzz" / "crashes")


def test_stored_crash_inputs():
    """Every stored input replays without raising (the directory starts empty: make fuzz fills it)."""
    failures = []
    for target, path in CASES:
        try:
            T.TARGETS[target](path.read_bytes())
        except Exception as e:   # collect them all, then fail once with the list
            failures.append(f"{path.name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("target", sorted(T.TARGETS))
def test_targets_on_seeds_and_mutations(target):
    """Each target on its seeds and on simple mutations of them (truncations, bit flips): a cheap,
    deterministic stand-in for the fuzzer that runs in every test run."""
    import random
    rng = random.Random(1234)
    fn = T.TARGETS[target]
    for s in T.seeds(target, cap=40):
        fn(s)
        fn(s[: len(s) // 2])
        b = bytearray(s)
        for _ in range(4):
            if b:
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        fn(bytes(b))
