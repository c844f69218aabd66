"""Scores for the behaviour detectors: numbers between 0 and 1 instead of cliffs.

Beaconing follows RITA's published method (activecm/rita, ``analysis/beacons.go``, v5), whose pieces are
reproduced here so that its unit tests' cases hold (``tests/test_scoring.py``):

* **Bowley skew** of a sorted sample, quartiles by the median-of-halves method (the lower half leaves
  out the median of an odd-length sample): ``(Q1 + Q3 - 2 Q2) / (Q3 - Q1)``, taken as 0 when the
  inter-quartile range is below ``min_iqr`` (10 in RITA) or the median sits on a quartile; score
  ``1 - |skew|``.  Symmetric intervals (a beacon with jitter) score 1.
* **MADM**, the median absolute deviation about the median; score ``(median - MADM) / median``, floored
  at 0: the dispersion relative to the beacon's own period, so a 60 s beacon with 10 % jitter (MADM
  about 3 s) still scores 0.95.  A median below 1 gives ``default`` (1 for intervals, 0 for sizes).
* **timing score** = mean of the skew and MADM scores of the intervals between the pair's distinct
  connection times (whole seconds); **size score** the same of the bytes sent per connection.

RITA adds a histogram score and a duration score computed over a 24-hour data set (a pair seen for
less than six hours gets no duration score).  The inspector looks at captures and live windows that
can be an hour long, so it replaces those two by:

* **regularity over time**: RITA's coefficient-of-variation histogram score, over the pair's own span
  cut into bins of at least ``bin_periods`` median intervals (so each bin holds several beats): a
  beacon's bins hold the same count (score near 1), a burst of activity does not;
* **count**: ``connections / ideal_connections``, capped at 1 (RITA's connection-count idea: an hour
  of one-per-minute, 60 connections, is well past the default ideal of 30).

The overall score is the weighted mean (weights from the rule's ``params``; they need not sum to 1,
they are normalised).  All inputs are plain lists; nothing here keeps state.
"""
from __future__ import annotations

import math
from collections import Counter

__all__ = ["quartiles", "bowley_skew", "madm", "madm_score", "statistical_score", "cv_score", "histogram_score",
           "beacon_score", "weighted", "ramp", "round3"]


def round3(x: float) -> float:
    """Rounded to 3 decimals, as RITA stores its scores."""
    return math.floor(x * 1000 + 0.5) / 1000


def _median_sorted(v) -> float:
    n = len(v)
    if n == 0:
        raise ValueError("empty sample")
    m = n // 2
    return float(v[m]) if n % 2 else (float(v[m - 1]) + float(v[m])) / 2.0


def quartiles(sorted_vals) -> tuple:
    """(Q1, Q2, Q3) by the median-of-halves method (montanaflynn/stats ``Quartile``, used by RITA):
    for an odd-length sample the median is left out of both halves.  Needs at least 3 values."""
    v = list(sorted_vals)
    n = len(v)
    if n < 3:
        raise ValueError("quartiles need at least 3 values")
    half = n // 2
    lower = v[:half]
    upper = v[half + 1:] if n % 2 else v[half:]
    return _median_sorted(lower), _median_sorted(v), _median_sorted(upper)


def bowley_skew(sorted_vals, min_iqr: float = 10.0) -> tuple:
    """(skew, score) of a sorted sample of at least 3 values (see the module docstring)."""
    q1, q2, q3 = quartiles(sorted_vals)
    den = q3 - q1
    skew = 0.0
    if den >= min_iqr and q2 != q1 and q2 != q3:
        skew = (q1 + q3 - 2 * q2) / den
    return skew, 1.0 - abs(skew)


def madm(sorted_vals) -> tuple:
    """(median, median absolute deviation about the median) of a sorted, non-empty sample."""
    med = _median_sorted(sorted_vals)
    return med, _median_sorted(sorted(abs(x - med) for x in sorted_vals))


def madm_score(median: float, mad: float, default: float) -> float:
    """RITA's dispersion score: ``(median - MADM) / median``, 0 when negative; ``default`` when median < 1."""
    score = default if median < 1 else (median - mad) / median
    return 0.0 if (score < 0 or math.isnan(score)) else score


def statistical_score(values, default_mad_score: float, min_iqr: float = 10.0) -> dict:
    """RITA's ``calculateStatisticalScore``: mean of the Bowley skew score and the MADM score, 3 decimals."""
    v = sorted(values)
    skew, skew_sc = bowley_skew(v, min_iqr)
    med, mad = madm(v)
    mad_sc = madm_score(med, mad, default_mad_score)
    return {"score": round3((skew_sc + mad_sc) / 2.0), "skew": skew, "skew_score": skew_sc, "median": med,
            "madm": mad, "madm_score": mad_sc}


def cv_score(counts) -> float:
    """RITA's coefficient-of-variation score of a histogram: ``1 - sd/mean`` (population sd), 0 beyond 1."""
    counts = list(counts)
    total = sum(counts)
    if not counts or total <= 0:
        return 0.0
    mean = total / len(counts)
    sd = math.sqrt(sum((c - mean) ** 2 for c in counts) / len(counts))
    cv = sd / mean
    return 0.0 if cv > 1.0 else min(1.0, round3(1.0 - cv))


def histogram_score(timestamps, median_interval: float, max_bins: int = 24, bin_periods: float = 10.0) -> tuple:
    """(score, bins) of the connection times over their own span (see the module docstring).  Fewer than
    two bins (a span shorter than two bins' worth of beats) gives the score 1 for a span covered by
    at least ``bin_periods`` beats and 0 otherwise: too short to say more."""
    ts = sorted(timestamps)
    span = ts[-1] - ts[0] if ts else 0.0
    if span <= 0 or median_interval <= 0:
        return 0.0, 0
    bins = min(int(max_bins), int(span // (bin_periods * median_interval)))
    if bins < 2:
        return (1.0 if len(ts) >= bin_periods else 0.0), 1
    width = span / bins             # equal bins that tile the span exactly
    counts = [0] * bins
    for t in ts:
        counts[min(bins - 1, int((t - ts[0]) // width))] += 1
    return cv_score(counts), bins


def weighted(parts: dict, weights: dict) -> float:
    """Weighted mean of the sub-scores ``parts`` (weights normalised; sub-scores without a weight, or
    with weight 0, do not count)."""
    total = sum(w for k, w in weights.items() if k in parts and w > 0)
    if total <= 0:
        return 0.0
    return round3(sum(parts[k] * w for k, w in weights.items() if k in parts and w > 0) / total)


def ramp(value: float, ideal: float) -> float:
    """``value / ideal`` capped to [0, 1]: how much of the ideal amount is there."""
    if ideal <= 0:
        return 1.0
    return max(0.0, min(1.0, float(value) / float(ideal)))


def beacon_score(timestamps, sizes, *, weights: dict | None = None, ideal_connections: int = 30,
                 min_iqr: float = 10.0, bin_periods: float = 10.0, max_bins: int = 24) -> dict:
    """The beacon score of one (source, destination) pair.

    ``timestamps``: connection start times (seconds; RITA keeps whole seconds and scores the intervals
    between distinct times); ``sizes``: bytes sent per connection.  Returns the sub-scores, the overall
    ``score`` and the figures behind them; ``score`` is 0 when there are fewer than 3 non-zero
    intervals or 3 sizes (RITA refuses those)."""
    weights = weights if weights is not None else {"timing": 0.5, "size": 0.2, "regularity": 0.15, "count": 0.15}
    uniq = sorted({int(math.floor(float(t))) for t in timestamps})
    res = {"connections": len(list(sizes)), "distinct_times": len(uniq), "score": 0.0}
    deltas = [b - a for a, b in zip(uniq, uniq[1:]) if b > a]
    sizes = [int(s) for s in sizes]
    if len(deltas) < 3 or len(sizes) < 3:
        return res
    ts = statistical_score(deltas, 1.0, min_iqr)
    ds = statistical_score(sizes, 0.0, min_iqr)
    hist, bins = histogram_score(uniq, ts["median"], max_bins, bin_periods)
    counts = Counter(sizes)
    top = max(counts.values())
    parts = {"timing": ts["score"], "size": ds["score"], "regularity": hist,
             "count": round3(ramp(len(uniq), ideal_connections))}
    res.update({
        "score": weighted(parts, weights), "parts": parts,
        "interval_median": ts["median"], "interval_madm": ts["madm"], "interval_skew": round3(ts["skew"]),
        "size_median": ds["median"], "size_madm": ds["madm"], "size_skew": round3(ds["skew"]),
        "size_mode": min(v for v, c in counts.items() if c == top), "span": uniq[-1] - uniq[0], "bins": bins,
    })
    return res
