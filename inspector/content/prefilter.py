"""One multi-pattern pass marking the regions of a payload worth running the identifier validators on.

``Prefilter(patterns=None, engine=None).regions(data, pad=64) -> [(start, end), ...]`` and
``.has_any(data) -> bool``.

Semantics, identical for every engine: the data is scanned as if followed by one newline
(``SENTINEL``: a pattern may then require the byte that ends a run, e.g. ``[0-9]{13}[^0-9]``, and
match once per run).  Let E be the set of offsets at which some match of some pattern ends (all
matches, overlapping ones included) and W the largest match width of any pattern.  Each end e gives
the window [e - W - pad, e + pad], clipped to the data; the regions are these windows merged
(touching or overlapping windows become one), sorted.  Only end offsets are needed, so Hyperscan
runs without start-of-match tracking and the windows reach back W + pad instead.

Engines:

* ``hyperscan``: block mode, all patterns in one database; Hyperscan reports every end offset of
  every match natively (one Python callback each: dense data costs more than sparse data).
* ``re2`` / ``re``: one compiled alternation of all patterns scans the data (leftmost-first,
  non-overlapping).  No match of any pattern can start outside the reported spans, so every match
  lies in [span start, span end + W); those windows (merged) are rescanned with the *reversed*
  alternation, in a lookahead on the reversed bytes, which yields every end offset exactly.  When
  W <= 2 * pad the ends of one window form one chain, and only its first and last end are looked
  for (``_Re.intervals``).  With ``re2`` the first pass matches whole chains of matches (the
  wrapper costs microseconds per match) and also finds the last end; the rest is Python's ``re``,
  on a pattern factored into a trie on leading bytes.

Patterns are bounded regular expressions (no anchors, lookarounds, backreferences or unbounded
repeats); each is parsed and rewritten into one canonical byte-level form (explicit byte classes,
``\\xHH`` escapes, case folded into the classes) so that the engines see exactly the same language.
Not thread-safe with Hyperscan (one scratch space per database): one Prefilter per thread.
"""
from __future__ import annotations

import importlib
import re

import numpy as np
from re import _constants as _C
from re import _parser as _P

__all__ = ["Prefilter", "default_patterns", "available_engines"]

# Data is scanned as if followed by this byte, so that a pattern may require the byte that ends a run
# (fewer, non-overlapping matches: Hyperscan reports every end offset, and each costs a callback).
SENTINEL = b"\n"


def default_patterns() -> tuple:
    """The patterns of every registered data class (``inspector.content.classes``), each name once:
    ``(name, regex, caseless)``."""
    from . import classes
    return classes.prefilter_patterns()


_CAT = {
    _C.CATEGORY_DIGIT: frozenset(range(0x30, 0x3A)),
    _C.CATEGORY_WORD: frozenset(list(range(0x30, 0x3A)) + list(range(0x41, 0x5B)) + list(range(0x61, 0x7B)) + [0x5F]),
    _C.CATEGORY_SPACE: frozenset(b" \t\n\r\x0b\x0c"),
}
_ALL = frozenset(range(256))
_CAT[_C.CATEGORY_NOT_DIGIT] = _ALL - _CAT[_C.CATEGORY_DIGIT]
_CAT[_C.CATEGORY_NOT_WORD] = _ALL - _CAT[_C.CATEGORY_WORD]
_CAT[_C.CATEGORY_NOT_SPACE] = _ALL - _CAT[_C.CATEGORY_SPACE]


def _byte(c: int) -> str:
    ch = chr(c)
    return ch if ch.isascii() and ch.isalnum() else "\\x%02x" % c


def _byteclass(s) -> str:
    if not s:
        raise ValueError("empty character class")
    if len(s) == 1:
        return _byte(next(iter(s)))
    out = []
    vals = sorted(s)
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append("\\x%02x" % vals[i] if i == j else "\\x%02x-\\x%02x" % (vals[i], vals[j]))
        i = j + 1
    return "[" + "".join(out) + "]"


def _fold(s, caseless: bool) -> frozenset:
    if not caseless:
        return frozenset(s)
    out = set(s)
    for c in s:
        if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
            out.add(c ^ 0x20)
    return frozenset(out)


def _set_of(items, caseless: bool) -> frozenset:
    s = set()
    neg = False
    for op, av in items:
        if op is _C.NEGATE:
            neg = True
        elif op is _C.LITERAL:
            s.add(av)
        elif op is _C.RANGE:
            s.update(range(av[0], av[1] + 1))
        elif op is _C.CATEGORY:
            if av not in _CAT:
                raise ValueError(f"unsupported class category {av}")
            s |= _CAT[av]
        else:
            raise ValueError(f"unsupported class item {op}")
    s = _fold({c for c in s if c < 256}, caseless)
    return frozenset(_ALL - s) if neg else s


def _items(seq) -> list:
    return [(op, av) for op, av in seq]


def _reverse(seq) -> list:
    out = []
    for op, av in reversed(_items(seq)):
        if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
            av = (av[0], av[1], _reverse(av[2]))
        elif op is _C.SUBPATTERN:
            av = (av[0], av[1], av[2], _reverse(av[3]))
        elif op is _C.BRANCH:
            av = (av[0], [_reverse(br) for br in av[1]])
        out.append((op, av))
    return out


def _ser(seq, dotall: bool, ci: bool) -> str:
    return "".join(_ser_item(op, av, dotall, ci) for op, av in seq)


def _ser_item(op, av, dotall, ci) -> str:
    if op is _C.LITERAL:
        return _byteclass(_fold({av}, ci))
    if op is _C.NOT_LITERAL:
        return _byteclass(_ALL - _fold({av}, ci))
    if op is _C.ANY:
        return _byteclass(_ALL if dotall else _ALL - {10})
    if op is _C.IN:
        return _byteclass(_set_of(av, ci))
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        lo, hi, sub = av
        if hi is _C.MAXREPEAT or hi > 1000:
            raise ValueError("unbounded repeat: prefilter patterns must have a bounded width")
        if hi == 0:
            return ""
        body = _ser(sub, dotall, ci)
        sub = _items(sub)
        if len(sub) != 1 or sub[0][0] in (_C.SUBPATTERN, _C.BRANCH, _C.MAX_REPEAT, _C.MIN_REPEAT):
            body = "(?:%s)" % body
        return body + ("{%d}" % lo if lo == hi else "{%d,%d}" % (lo, hi))
    if op is _C.SUBPATTERN:
        _group, add, dele, sub = av
        if add or dele:
            raise ValueError("inline flags inside a prefilter pattern are not supported")
        return "(?:%s)" % _ser(sub, dotall, ci)
    if op is _C.BRANCH:
        return "(?:%s)" % "|".join(_ser(br, dotall, ci) for br in av[1])
    raise ValueError(f"unsupported construct in prefilter pattern: {op}")


_MAX_FIRSTS = 4000


def _firsts(items: list, dotall: bool, ci: bool, budget: list) -> list:
    """[(first byte set, remaining items)] covering every way the sequence can start; a None set means
    the sequence can be empty."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("pattern too complex to factor")
    if not items:
        return [(None, [])]
    op, av = items[0]
    rest = items[1:]
    if op is _C.LITERAL:
        return [(_fold({av}, ci), rest)]
    if op is _C.NOT_LITERAL:
        return [(_ALL - _fold({av}, ci), rest)]
    if op is _C.ANY:
        return [(_ALL if dotall else _ALL - {10}, rest)]
    if op is _C.IN:
        return [(_set_of(av, ci), rest)]
    if op is _C.SUBPATTERN:
        return _firsts(_items(av[3]) + rest, dotall, ci, budget)
    if op is _C.BRANCH:
        out = []
        for br in av[1]:
            out.extend(_firsts(_items(br) + rest, dotall, ci, budget))
        return out
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        lo, hi, sub = av
        if hi == 0:
            return _firsts(rest, dotall, ci, budget)
        cont = [(_C.MAX_REPEAT, (max(lo - 1, 0), hi - 1, sub))] if hi > 1 else []
        out = _firsts(_items(sub) + cont + rest, dotall, ci, budget)
        if lo == 0:
            out.extend(_firsts(rest, dotall, ci, budget))
        return out
    raise ValueError(f"unsupported construct in prefilter pattern: {op}")


def _factor(seqs: list, depth: int) -> str:
    """Alternation of ``seqs`` ((items, dotall, caseless) triples) as a trie on leading bytes, ``depth``
    levels deep: ``[class](?:...)|[class](?:...)``.  Same language as the plain alternation; Python's
    ``re`` then tries one branch per byte class instead of every pattern at every position."""
    if depth <= 0 or len(seqs) <= 1:
        alts = sorted({_ser(items, d, ci) for items, d, ci in seqs})
        if "" in alts:  # an empty alternative last
            alts.remove("")
            alts.append("")
        return "|".join(alts)
    table: dict[int, dict] = {}
    for items, d, ci in seqs:
        for first, rest in _firsts(items, d, ci, [_MAX_FIRSTS]):
            if first is None:
                raise ValueError("empty match")
            key = _ser(rest, d, ci)
            for c in first:
                table.setdefault(c, {})[key] = (rest, d, ci)
    groups: dict[frozenset, tuple] = {}
    for c, rests in table.items():
        k = frozenset(rests)
        if k in groups:
            groups[k][0].add(c)
        else:
            groups[k] = ({c}, list(rests.values()))
    alts = []
    for chars, rests in sorted(groups.values(), key=lambda g: min(g[0])):
        body = _factor(rests, depth - 1)
        alts.append(_byteclass(chars) + ("(?:%s)" % body if body else ""))
    return "|".join(alts)


def _factored(specs, reverse: bool, depth: int = 4) -> bytes:
    """Python ``re`` form of the alternation of ``specs`` (of the reversed patterns when ``reverse``)."""
    seqs = [(sp.rev_items if reverse else sp.fwd_items, sp.dotall, sp.caseless) for sp in specs]
    return _factor(seqs, depth).encode("ascii")


class _Spec:
    __slots__ = ("name", "fwd", "rev", "caseless", "width", "min_width", "dotall", "fwd_items", "rev_items")

    def __init__(self, name: str, pattern, caseless: bool):
        if isinstance(pattern, bytes):
            pattern = pattern.decode("latin-1")
        else:  # non-ASCII literals in a str pattern stand for their UTF-8 bytes
            pattern = str(pattern).encode("utf-8").decode("latin-1")
        parsed = _P.parse(pattern, 0)
        flags = parsed.state.flags
        if flags & re.IGNORECASE:
            caseless = True
        self.dotall = bool(flags & re.DOTALL)
        lo, hi = parsed.getwidth()
        if hi >= _C.MAXREPEAT or hi == 0:
            raise ValueError(f"pattern {name!r} must match a non-empty, bounded width")
        if lo == 0:
            raise ValueError(f"pattern {name!r} can match the empty string")
        self.name = name
        self.caseless = bool(caseless)   # folded into the byte classes: no engine flag needed
        self.fwd_items = _items(parsed)
        self.rev_items = _reverse(parsed)
        self.fwd = _ser(self.fwd_items, self.dotall, self.caseless).encode("ascii")
        self.rev = _ser(self.rev_items, self.dotall, self.caseless).encode("ascii")
        self.width = int(hi)
        self.min_width = int(lo)


def _wrap(p: bytes) -> bytes:
    return b"(?:" + p + b")"


def available_engines() -> list[str]:
    out = []
    for name in ("hyperscan", "re2"):
        try:
            importlib.import_module(name)
            out.append(name)
        except Exception:
            pass
    out.append("re")
    return out


def _normalise_patterns(patterns):
    if patterns is None:
        patterns = default_patterns()
    if isinstance(patterns, dict):
        patterns = list(patterns.items())
    out = []
    for i, p in enumerate(patterns):
        if isinstance(p, (str, bytes)):
            out.append((f"p{i}", p, False))
        elif len(p) == 2:
            out.append((str(p[0]), p[1], False))
        else:
            out.append((str(p[0]), p[1], bool(p[2])))
    if not out:
        raise ValueError("no patterns")
    return out


def _merge_ends(ends, width: int, pad: int, n: int) -> list[tuple[int, int]]:
    if not ends:
        return []
    back = width + pad
    if len(ends) > 2000:
        arr = np.asarray(ends, dtype=np.int64)
        if len(arr) > 1 and bool((arr[1:] < arr[:-1]).any()):
            arr.sort()
        starts = np.maximum(arr - back, 0)
        stops = np.minimum(arr + pad, n)
        brk = np.flatnonzero(starts[1:] > stops[:-1]) + 1
        first = np.concatenate(([0], brk))
        last = np.concatenate((brk - 1, [len(arr) - 1]))
        return list(zip(starts[first].tolist(), stops[last].tolist()))
    out = []
    cs = ce = -1
    for e in sorted(set(ends)):
        s = e - back
        if s < 0:
            s = 0
        t = e + pad
        if t > n:
            t = n
        if cs >= 0 and s <= ce:
            if t > ce:
                ce = t
        else:
            if cs >= 0:
                out.append((cs, ce))
            cs, ce = s, t
    out.append((cs, ce))
    return out


class _Hyperscan:
    name = "hyperscan"

    def __init__(self, specs):
        import hyperscan as hs
        self._hs = hs
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(expressions=[s.fwd for s in specs], ids=list(range(len(specs))), elements=len(specs),
                   flags=[0] * len(specs))
        self.db = db

    def ends(self, data: bytes) -> list[int]:
        ends: list[int] = []
        append = ends.append

        def on_match(_id, _frm, to, _flags, _ctx):
            append(to)

        self.db.scan(data, match_event_handler=on_match)
        return ends

    def has_any(self, data: bytes) -> bool:
        try:
            self.db.scan(data, match_event_handler=lambda *a: True)
        except self._hs.ScanTerminated:
            return True
        return False


class _Re:
    def __init__(self, specs, use_re2: bool):
        fwd = b"|".join(_wrap(s.fwd) for s in specs)
        rev_plain = b"|".join(_wrap(s.rev) for s in specs)
        try:  # same languages, faster for Python's re
            fwd_f, rev = _factored(specs, False), _factored(specs, True)
        except ValueError:
            fwd_f, rev = fwd, None
        self.width = max(s.width for s in specs)
        self.name = "re"
        self.fwd = None
        self.rev_last = None
        if use_re2:
            import re2
            opts = re2.Options()
            opts.encoding = re2.Options.Encoding.LATIN1
            opts.log_errors = False
            # One re2 match per chain of matches less than W apart: the Python wrapper costs
            # microseconds per match, and every match still starts inside a reported span.
            chain = rb"(?:%s)(?:[\x00-\xff]{0,%d}(?:%s))*" % (fwd, self.width, fwd)
            self.fwd = re2.compile(chain, opts)
            # leftmost match in reversed bytes = the match with the largest end
            self.rev_last = re2.compile(rev_plain, opts)
            self.name = "re2"
        if self.fwd is None:
            self.fwd = re.compile(fwd_f)
        self.rev = re.compile(b"(?=" + (rev if rev is not None else rev_plain) + b")")
        if self.rev_last is None:
            self.rev_last = self.rev
        self.rev_anchored = re.compile(rev if rev is not None else rev_plain)
        self.min_width = min(s.min_width for s in specs)

    def _windows(self, data: bytes) -> list:
        """Merged [span start, span end + W) windows of the forward pass, with the first and last
        span end of each: every match of every pattern lies inside one of them."""
        n = len(data)
        w = self.width
        windows = []
        ws = we = e0 = el = -1
        for m in self.fwd.finditer(data):
            s, e = m.span()
            if ws >= 0 and s <= we:
                el = e
                we = e + w if e + w < n else n
            else:
                if ws >= 0:
                    windows.append((ws, we, e0, el))
                ws, e0, el = s, e, e
                we = e + w if e + w < n else n
        if ws >= 0:
            windows.append((ws, we, e0, el))
        return windows

    def ends(self, data: bytes) -> list[int]:
        ends: list[int] = []
        finditer = self.rev.finditer
        for a, b, _e0, _el in self._windows(data):
            seg = data[a:b][::-1]
            ends.extend(b - m.start() for m in finditer(seg))
        return ends

    def intervals(self, data: bytes, pad: int, clip: int) -> list[tuple[int, int]]:
        """Regions without finding every end (valid when W <= 2 * pad): consecutive ends in one
        window are at most 2W apart (spans of chained matches: each link at most W past the
        previous match), so they form one chain and only the smallest and the largest end matter.
        The smallest lies within W of the window start, the largest within W of the last span end;
        each is found by rescanning just that stretch."""
        w = self.width
        wmin = self.min_width
        anchored = self.rev_anchored.match
        back = w + pad
        out = []
        for a, b, e0, el in self._windows(data):
            f = e0 if e0 < a + w else a + w   # the first match starts at a and ends by a + W
            lo = f
            if f - a > wmin:                   # else no match can end before f
                seg = data[a:f][::-1]
                for end in range(a + wmin, f):
                    if anchored(seg, f - end):
                        lo = end
                        break
            hi = el
            t0 = el - w if el - w > a else a
            m = self.rev_last.search(data[t0:b][::-1])
            if m is not None and b - m.start() > hi:
                hi = b - m.start()
            s = lo - back if lo > back else 0
            t = hi + pad if hi + pad < clip else clip
            if out and s <= out[-1][1]:
                if t > out[-1][1]:
                    out[-1] = (out[-1][0], t)
            else:
                out.append((s, t))
        return out

    def has_any(self, data: bytes) -> bool:
        return self.fwd.search(data) is not None


class Prefilter:
    """Candidate regions for the identifier validators, from one multi-pattern pass.

    ``patterns``: None for ``default_patterns()`` (every data class's), else a dict name -> regex or an iterable of regexes,
    (name, regex) or (name, regex, caseless).  ``engine``: "hyperscan", "re2" or "re"; None picks the
    first available in that order."""

    def __init__(self, patterns=None, engine: str | None = None):
        specs = [_Spec(name, pat, ci) for name, pat, ci in _normalise_patterns(patterns)]
        self.specs = specs
        self.names = tuple(s.name for s in specs)
        self.width = max(s.width for s in specs)
        if engine is not None and engine not in ("hyperscan", "re2", "re"):
            raise ValueError(f"unknown prefilter engine {engine!r}")
        last_error = None
        for eng in ([engine] if engine else available_engines()):
            try:
                self._engine = _Hyperscan(specs) if eng == "hyperscan" else _Re(specs, use_re2=(eng == "re2"))
            except ImportError:
                raise
            except Exception as e:  # a pattern this engine cannot compile: next engine (when picking)
                last_error = e
                continue
            self.engine = eng
            break
        else:
            raise ValueError(f"prefilter patterns do not compile: {last_error}")

    @staticmethod
    def _bytes(data) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        if isinstance(data, str):
            return data.encode("utf-8", "surrogatepass")
        return b""

    def ends(self, data) -> list[int]:
        """Sorted distinct end offsets of all matches (an end may be ``len(data) + 1``: a match that
        takes the sentinel byte)."""
        data = self._bytes(data)
        if not data:
            return []
        return sorted(set(self._engine.ends(data + SENTINEL)))

    def regions(self, data, pad: int = 64) -> list[tuple[int, int]]:
        """Merged windows [e - W - pad, e + pad] around every match end e, clipped to the data (see
        the module doc)."""
        data = self._bytes(data)
        if not data:
            return []
        n = len(data)
        pad = max(0, int(pad))
        scan = data + SENTINEL
        if self.width <= 2 * pad and hasattr(self._engine, "intervals"):
            out = self._engine.intervals(scan, pad, n)
        else:
            out = _merge_ends(self._engine.ends(scan), self.width, pad, n)
        return [(s, e) for s, e in out if s < e]

    def has_any(self, data) -> bool:
        data = self._bytes(data)
        if not data:
            return False
        return self._engine.has_any(data + SENTINEL)
