"""Detector scores against the published method: RITA's beacon scoring (activecm/rita v5,
``analysis/beacons_test.go``) case by case, then the inspector's additions and every detector's boundary
cases (the sub-score at and around each ideal amount, min_score just met and just missed)."""
from __future__ import annotations

import random

import pytest

from inspector.policy import scoring
from inspector.policy.scoring import beacon_score, bowley_skew, cv_score, madm, quartiles, statistical_score

T0 = 1764000000


def _intervals(ts):
    u = sorted(set(ts))
    return [b - a for a, b in zip(u, u[1:])]


# -- RITA's timestamp cases (getTimestampScore) -------------------------------------------------------

@pytest.mark.parametrize("ts, skew, mad, score", [
    (list(range(1, 11)), 0.0, 0.0, 1.0),                                                   # simple list
    ([1517338924 + 60 * i for i in range(10)], 0.0, 0.0, 1.0),                             # perfect intervals
    ([1517338924, 1517339022, 1517339121, 1517339220, 1517339320, 1517339420, 1517339520, 1517339621,
      1517339722, 1517339824], 0.0, 1.0, 0.995),                                           # closely valued
    ([1517338924, 1517339022, 1517339322, 1517339420, 1517339720, 1517339818, 1517340118, 1517340216,
      1517340516, 1517340614, 1517340914], 0.0, 101.0, 0.746),                             # bi-modal
    ([1517338924, 1517338925, 1517339224, 1517339249, 1517344224, 1517344314, 1517344316, 1517344358,
      1517344858, 1517346358], 0.845, 89.0, 0.083),                                        # random
])
def test_rita_timestamp_cases(ts, skew, mad, score):
    r = statistical_score(_intervals(ts), 1.0)
    assert r["skew"] == pytest.approx(skew, abs=0.001)
    assert r["madm"] == pytest.approx(mad, abs=0.001)
    assert r["score"] == pytest.approx(score, abs=0.001)


# -- RITA's data size cases (getDataSizeScore) --------------------------------------------------------

@pytest.mark.parametrize("sizes, skew, mad, score", [
    (list(range(1, 11)), 0.0, 2.5, 0.773),
    ([60] * 9, 0.0, 0.0, 1.0),
    ([98, 99, 99, 100, 100, 100, 101, 101, 102], 0.0, 1.0, 0.995),
])
def test_rita_data_size_cases(sizes, skew, mad, score):
    r = statistical_score(sizes, 0.0)
    assert r["skew"] == pytest.approx(skew, abs=0.001)
    assert r["madm"] == pytest.approx(mad, abs=0.001)
    assert r["score"] == pytest.approx(score, abs=0.001)


def test_quartiles_median_of_halves():
    # odd length: the median is left out of both halves (RITA's random-interval case: Q1 13.5, Q3 1000)
    assert quartiles([1, 2, 25, 42, 90, 299, 500, 1500, 4975]) == (13.5, 90.0, 1000.0)
    assert quartiles([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == (3.0, 5.5, 8.0)
    with pytest.raises(ValueError):
        quartiles([1, 2])


def test_bowley_skew_boundaries():
    # an inter-quartile range below 10 counts as no skew (RITA: den >= 10), at 10 it counts
    assert bowley_skew([50, 51, 52, 59, 60, 61, 62])[0] == pytest.approx(-0.6)   # Q1 51, Q2 59, Q3 61: IQR 10
    assert bowley_skew([0, 0, 1, 2, 9, 9, 9])[0] == 0.0                 # IQR 9 < 10
    skew, score = bowley_skew([0, 0, 1, 2, 10, 10, 10])                 # IQR 10: (0 + 10 - 4) / 10
    assert skew == pytest.approx(0.6) and score == pytest.approx(0.4)
    assert bowley_skew([0, 0, 1, 2, 10, 10, 10], min_iqr=11)[0] == 0.0
    # the median on a quartile: no skew
    assert bowley_skew([1, 1, 1, 1, 50, 80, 99])[0] == 0.0


def test_madm_score_boundaries():
    assert madm([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == (5.5, 2.5)
    assert scoring.madm_score(100.0, 100.0, 1.0) == 0.0                  # dispersion as large as the median
    assert scoring.madm_score(100.0, 150.0, 1.0) == 0.0                  # floored at 0
    assert scoring.madm_score(0.5, 0.0, 1.0) == 1.0                      # median < 1: the default
    assert scoring.madm_score(0.5, 0.0, 0.0) == 0.0


def test_cv_score_boundaries():
    assert cv_score([5, 5, 5, 5]) == 1.0
    assert cv_score([0, 0, 0, 20]) == 0.0           # cv = sqrt(3) > 1
    assert cv_score([10, 0]) == 0.0                 # cv = 1 exactly: 1 - 1
    assert cv_score([]) == 0.0 and cv_score([0, 0]) == 0.0


def test_rita_weighted_score_cases():
    """RITA's getBeaconScore cases (weights summing to 1 give the plain weighted sum)."""
    w = {"a": 0.2, "b": 0.2, "c": 0.3, "d": 0.3}
    assert scoring.weighted({"a": 0.8, "b": 0.7, "c": 0.6, "d": 0.5}, w) == pytest.approx(0.63, abs=0.001)
    w = {"a": 0.173, "b": 0.325, "c": 0.299, "d": 0.203}
    assert scoring.weighted({"a": 0.111, "b": 0.222, "c": 0.333, "d": 0.444}, w) == pytest.approx(0.281, abs=0.001)
    assert scoring.weighted({"a": 0.25, "b": 1, "c": 1, "d": 1}, {"a": 1, "b": 0, "c": 0, "d": 0}) == 0.25
    assert scoring.weighted({"a": 1.0}, {"a": 0}) == 0.0


# -- the inspector's beacon score: what the issue measured ---------------------------------------------

def _beacon(rnd, n, period, jitter, size_lo, size_hi, loss=0.0):
    t, ts, sizes = T0, [], []
    for _ in range(n):
        t += period * (1 + rnd.uniform(-jitter, jitter))
        if rnd.random() < loss:
            continue
        ts.append(t)
        sizes.append(rnd.randint(size_lo, size_hi))
    return ts, sizes


@pytest.mark.parametrize("seed", range(10))
def test_missed_beacon_of_the_issue_scores_high(seed):
    """63 connections 57.5-62.5 s apart sending 750-850 bytes (TLS padding): found on every draw."""
    rnd = random.Random(seed)
    ts, sizes = [], []
    t = T0
    for _ in range(63):
        t += rnd.uniform(57.5, 62.5)
        ts.append(t)
        sizes.append(rnd.randint(750, 850))
    r = beacon_score(ts, sizes)
    assert r["score"] >= 0.9, r


@pytest.mark.parametrize("jitter, floor", [(0.0, 0.9), (0.1, 0.85), (0.2, 0.8)])
def test_jitter_with_padding_and_loss(jitter, floor):
    """One per minute for 70 minutes, 10% of the check-ins lost, 700-900 bytes (TLS record padding):
    jitter up to 10% stays above the default min_score 0.85 on every draw; 20% stays above 0.8."""
    for seed in range(30):
        ts, sizes = _beacon(random.Random(seed), 70, 60, jitter, 700, 900, loss=0.1)
        assert beacon_score(ts, sizes)["score"] >= floor, (jitter, seed)


def test_count_boundary_an_hour_of_one_per_minute():
    """The count sub-score reaches 1 at ideal_connections; an hour at one per minute is twice that."""
    ts = [T0 + 60 * i for i in range(60)]
    assert beacon_score(ts, [500] * 60)["parts"]["count"] == 1.0
    ts = [T0 + 60 * i for i in range(15)]
    r = beacon_score(ts, [500] * 15)
    assert r["parts"]["count"] == 0.5 and r["score"] >= 0.85
    assert beacon_score(ts[:3], [500] * 3)["score"] == 0.0             # 2 intervals: RITA refuses


def test_random_traffic_scores_low():
    """Connections at Poisson times with log-normal sizes (browsing, API calls): below min_score."""
    for seed in range(50):
        rnd = random.Random(seed)
        t, ts, sizes = T0, [], []
        for _ in range(40):
            t += rnd.expovariate(1 / 240)
            ts.append(t)
            sizes.append(int(rnd.lognormvariate(7, 0.8)))
        assert beacon_score(ts, sizes)["score"] < 0.8, seed


def test_histogram_regularity():
    even = [T0 + 60 * i for i in range(120)]
    assert scoring.histogram_score(even, 60)[0] >= 0.95
    burst = [T0 + i for i in range(60)] + [T0 + 3600 + i for i in range(60)]
    assert scoring.histogram_score(burst, 1)[0] == 0.0
    assert scoring.histogram_score([T0, T0 + 10], 10) == (0.0, 1)      # too short: 2 < bin_periods beats
