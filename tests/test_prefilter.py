"""The identifier prefilter (inspector.content.prefilter): what it marks, and that every engine
(Hyperscan, re2 + re, plain re) gives exactly the same regions, ends and has_any answers."""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from inspector.content.prefilter import Prefilter, available_engines, default_patterns

ENGINES = available_engines()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pfs():
    return {e: Prefilter(engine=e) for e in ENGINES}


def _covered(regions, start, end) -> bool:
    return any(s <= start and end <= e for s, e in regions)


IDENTIFIERS = [
    b"jane.doe@example.com", b"1Z999AA10123456784", b"1z 999 aa1 01 2345 6784", b"RR123456785GB",
    b"RR 123 456 785 GB", b"340123450000000018", b"4006381333931", b"4111 1111 1111 1111",
    b"DE89 3704 0044 0532 0130 00", b"GB29NWBK60161331926819", b"+44 20 7946 0958", b"+1 (555) 123-4567",
    b"UNH+1+IFTMIN:D:04A:UN'", b"ST*856*0001~", b"(00)340123450000000018", b"(01)04006381333931",
    b"Consignee", b"RECIPIENT", b"street", b"PostCode", b"postal_code", b"zip code", b"phone", b"E-Mail",
    b"EORI", b"hs_code", b"HS-Code", b"tariff", b"first name", b"Last_Name",
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("ident", IDENTIFIERS, ids=[i.decode() for i in IDENTIFIERS])
def test_each_identifier_marked(pfs, engine, ident):
    filler = b"lorem ipsum dolor sit amet " * 20
    data = filler + ident + b" " + filler
    regions = pfs[engine].regions(data)
    start = len(filler)
    assert _covered(regions, start, start + len(ident)), (ident, regions)
    assert pfs[engine].has_any(data)
    assert all(e - s < 400 for s, e in regions)


@pytest.mark.parametrize("engine", ENGINES)
def test_nothing_in_plain_text(pfs, engine):
    text = (b"The quick brown fox jumps over the lazy dog. Shipping times vary by region; "
            b"order 4711 was packed on 2025-01-01 at 12:00 (UTC). ") * 100
    assert pfs[engine].regions(text) == []
    assert not pfs[engine].has_any(text)
    assert pfs[engine].regions(b"") == [] and not pfs[engine].has_any(b"")


@pytest.mark.parametrize("engine", ENGINES)
def test_regions_are_merged_sorted_and_clipped(pfs, engine):
    data = b"email a@b.example phone +49 40 12345678 " * 50 + b"x" * 5000 + b"consignee"
    regions = pfs[engine].regions(data, pad=64)
    assert regions == sorted(regions)
    assert all(0 <= s < e <= len(data) for s, e in regions)
    assert all(regions[i][1] < regions[i + 1][0] for i in range(len(regions) - 1))
    assert len(regions) == 2
    assert regions[-1][1] == len(data)


@pytest.mark.parametrize("engine", ENGINES)
def test_digit_run_at_end_of_data(pfs, engine):
    # a run that ends the buffer still matches (the data is scanned as if followed by a newline)
    data = b"x" * 300 + b"340123450000000018"
    assert _covered(pfs[engine].regions(data), 300, len(data))


@pytest.mark.parametrize("engine", ENGINES)
def test_input_types(pfs, engine):
    pf = pfs[engine]
    data = b"mail: jane@example.com"
    assert pf.regions(bytearray(data)) == pf.regions(memoryview(data)) == pf.regions(data.decode()) \
        == pf.regions(data)
    assert pf.regions(None) == []


def test_pattern_validation():
    for bad in ("a+", "a*b", "^abc", "abc$", r"\bword", "(?=x)y", r"(a)\1", "", "a?", "(?i)x*"):
        with pytest.raises(ValueError):
            Prefilter([("bad", bad)], engine="re")
    with pytest.raises(ValueError):
        Prefilter([], engine="re")
    with pytest.raises(ValueError):
        Prefilter(engine="nope")
    pf = Prefilter({"k": "key[0-9]{2}", "w": b"(?i)word"}, engine="re")
    assert pf.names == ("k", "w") and pf.width == 5
    # windows reach back the widest pattern's width (5) from each match end
    assert pf.regions(b"..key12..WoRd..", pad=0) == [(2, 7), (8, 13)]


# ------------------------------------------------------------------------------------------------
# engine equality

def _realistic(rng: random.Random) -> bytes:
    recs = [{"consignee": {"name": f"Jane Doe {i}", "street": f"Main Street {i}", "postcode": f"{20000 + i}",
                           "phone": f"+44 20 {rng.randrange(10**7, 10**8)}", "email": f"jane{i}@example.com"},
             "tracking": rng.choice(["1Z999AA10123456784", "RR123456785GB"]), "sscc": f"{rng.randrange(10**17, 10**18)}",
             "hs_code": "847130", "iban": "DE89370400440532013000"} for i in range(rng.randrange(1, 40))]
    kind = rng.randrange(4)
    if kind == 0:
        return json.dumps(recs).encode()
    if kind == 1:
        return "\n".join(",".join(str(v) for v in (r["consignee"]["name"], r["consignee"]["email"], r["sscc"],
                                                  r["iban"])) for r in recs).encode()
    if kind == 2:
        return b"".join(b"UNH+%d+IFTMIN:D:04A:UN'NAD+CN+++%s'GIN+BJ+%s'" % (i, r["consignee"]["name"].encode(),
                                                                           r["sscc"].encode())
                        for i, r in enumerate(recs))
    return rng.randbytes(rng.randrange(100, 5000))


FRAGMENTS = [b"consignee", b"PHONE", b"+44 20 7946 0958", b"+1-2-3-4-5-6-7-8", b"a@b", b"123456789012345678",
             b"1234567890123", b"RR123456785GB", b"1Z999AA10123456784", b"UNH+", b"ST*856*", b"(00)", b"(421)",
             b"DE89 3704 0044", b"4111-1111-1111-1", b"hs_code", b"postal code", b"@", b"+", b"1Z", b"\n"]


def _fuzz(rng: random.Random, frags, alpha: bytes) -> bytes:
    parts = []
    for _ in range(rng.randrange(1, 40)):
        if rng.random() < 0.6:
            parts.append(rng.choice(frags))
        else:
            parts.append(bytes(rng.choice(alpha) for _ in range(rng.randrange(0, 30))))
    return b"".join(parts)


def _assert_same(pfs_by_engine, data, pad):
    ref_engine = next(iter(pfs_by_engine))
    ref = pfs_by_engine[ref_engine]
    r_regions, r_ends, r_any = ref.regions(data, pad=pad), ref.ends(data), ref.has_any(data)
    for eng, pf in pfs_by_engine.items():
        assert pf.regions(data, pad=pad) == r_regions, (eng, ref_engine, pad, data[:200])
        assert pf.ends(data) == r_ends, (eng, ref_engine, data[:200])
        assert pf.has_any(data) == r_any, (eng, ref_engine, data[:200])
    return r_regions


@pytest.mark.skipif(len(ENGINES) < 2, reason="one engine only")
def test_engines_equal_on_default_patterns(pfs):
    rng = random.Random(20251126)
    alpha = b"0123456789" * 3 + b"ABCDEFZ1az@+ -.()*\n" + b"UNHST"
    nonempty = 0
    for i in range(400):
        r = rng.random()
        if r < 0.3:
            data = rng.randbytes(rng.randrange(0, 3000))
        elif r < 0.5:
            data = bytes(rng.choice(alpha) for _ in range(rng.randrange(0, 1500)))
        elif r < 0.75:
            data = _realistic(rng)
        else:
            data = _fuzz(rng, FRAGMENTS, alpha)
        pad = rng.choice([0, 1, 5, 11, 12, 13, 30, 64, 200])
        nonempty += bool(_assert_same(pfs, data, pad))
    assert nonempty > 200


SMALL_SETS = [
    ([("a", "ab{3,5}c"), ("b", "x"), ("c", "(?:bc|cb){1,3}")],
     [b"abbbc", b"abbbbbc", b"x", b"bcbc", b"cbcbcb", b"ab", b"c"]),
    ([("a", "a[bc]{2}"), ("b", "c{4}a"), ("k", "(?i)abc")], [b"abc", b"ABC", b"ccccA", b"cccca", b"acb", b"a"]),
    ([("d", "[0-9]{4}[^0-9]"), ("e", "[a-c]@[a-c]"), ("p", r"\+[1-9](?:[ -]{0,2}[0-9]){3}")],
     [b"1234 ", b"12345678", b"a@b", b"+1  2--3 4", b"+123", b"@", b"+"]),
    ([("w", r"\w{3}\s\d"), ("n", "[^a]b."), ("dot", "x.y")], [b"abc 1", b"bb\n", b"x\ny", b"xay", b"Z_9\t0"]),
]


@pytest.mark.skipif(len(ENGINES) < 2, reason="one engine only")
@pytest.mark.parametrize("idx", range(len(SMALL_SETS)))
def test_engines_equal_on_small_alphabets(idx):
    # tiny alphabets and patterns close to the maximum width exercise overlapping and chained matches
    pats, frags = SMALL_SETS[idx]
    pfs = {e: Prefilter(pats, engine=e) for e in ENGINES}
    rng = random.Random(idx)
    alpha = b"abcxyABC0123@+ -\n\t_Z"
    for _ in range(500):
        data = _fuzz(rng, frags, alpha)
        _assert_same(pfs, data, rng.choice([0, 1, 2, 3, 4, 6, 10, 40]))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("idx", [0, 3])
def test_regions_match_definition(engine, idx):
    """regions() == windows [e - W - pad, e + pad] around every match end e, merged (computed naively)."""
    import re
    pats, frags = SMALL_SETS[idx]
    pf = Prefilter(pats, engine=engine)
    singles = [re.compile(p.encode()) for _n, p in pats]
    rng = random.Random(99 + idx)
    for _ in range(150):
        data = _fuzz(rng, frags, b"abcx _Z1\n\t")
        ext = data + b"\n"
        ends = {e for rx in singles for s in range(len(ext))
                for e in range(s + 1, min(len(ext), s + pf.width) + 1) if rx.fullmatch(ext, s, e)}
        pad = rng.choice([0, 2, 9])
        want = []
        for e in sorted(ends):
            s, t = max(0, e - pf.width - pad), min(len(data), e + pad)
            if want and s <= want[-1][1]:
                want[-1] = (want[-1][0], max(want[-1][1], t))
            else:
                want.append((s, t))
        want = [(s, t) for s, t in want if s < t]
        assert pf.ends(data) == sorted(ends)
        assert pf.regions(data, pad=pad) == want


def test_large_buffer_all_engines(pfs):
    rng = random.Random(5)
    data = b"".join(_realistic(rng) for _ in range(60))
    regions = None
    for eng, pf in pfs.items():
        r = pf.regions(data)
        regions = r if regions is None else regions
        assert r == regions, eng
    assert regions


def test_default_engine_prefers_hyperscan():
    pf = Prefilter()
    assert pf.engine == ENGINES[0]
    assert [n for n, _p, _c in default_patterns()] == list(pf.names)


# ------------------------------------------------------------------------------------------------
# the benchmark script, at a tiny size

def test_bench_content_smoke(capsys):
    spec = importlib.util.spec_from_file_location("bench_content", ROOT / "bench" / "bench_content.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--mb", "0.3", "--json", "--full-scan-mb", "0.1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["regions_equal"] is True
    names = [r["name"] for r in out["rows"]]
    assert any(n.startswith("(b)") for n in names) and any(n.startswith("(c)") for n in names)
    assert all(r.get("mb_s", 1) > 0 for r in out["rows"])
    a = mod.build_corpus(0.2, 3)
    assert a == mod.build_corpus(0.2, 3)           # deterministic
    assert {k for k, _ in a} == {"json", "csv", "html", "binary", "edifact"}


def test_falls_back_to_re_without_optional_engines(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "hyperscan", None)   # import now fails
    monkeypatch.setitem(sys.modules, "re2", None)
    assert available_engines() == ["re"]
    pf = Prefilter()
    assert pf.engine == "re"
    assert pf.regions(b"x" * 100 + b"consignee" + b"x" * 100) == [(100 + 9 - pf.width - 64, 100 + 9 + 64)]
    with pytest.raises(ImportError):
        Prefilter(engine="hyperscan")
