"""The seasonal period on generated series with a known period, as the detector's checkpoints estimate it.

The estimator in use has known faults on such series (benchmarks/README.md, "The period, second round"): a
period of 2 kept on counts, multiples of the period, long periods placed short, long periods lost under a
trend. An estimator that fixes them was measured and not kept (it costs NAB's dev folds, through one alert of
``rogue_agent_key_updown`` under the alert-rate bound); the tests of those faults are strict expected failures
here, so that a fix shows as an unexpected pass.
"""

import numpy as np
import pytest

from rcforest import ThresholdedForest
from rcforest.detector.period import HISTORY, MAX_PERIOD, estimate_period, estimate_period_robust
from rcforest.evaluate.periods import NO_PERIOD_KINDS, period_case, period_track, true_period
from rcforest.evaluate.synthetic import make_series

N = HISTORY + 2048
PERIODS = (12, 24, 48, 96, 144, 288, 720)


def known_miss(reason):
    """A strict expected failure: a fault of the estimator in use (see the module's docstring)."""
    return pytest.mark.xfail(strict=True, reason=reason)


MISPLACED = known_miss("the estimate in use misses some periods by more than 3% (multiples, short placements)")


@MISPLACED
@pytest.mark.parametrize("kind", ["plain", "counts", "heteroscedastic", "trend", "level_shifts"])
def test_period_found_within_3_percent(kind):
    missed = []
    for period in PERIODS:
        for seed in range(2):
            rows, found = period_track(period_case(kind, period, seed, N))[-1]
            if abs(found - period) > max(1, 0.03 * period):
                missed.append((period, seed, found))
    assert not missed


@pytest.mark.parametrize("period", [pytest.param(p, marks=MISPLACED) for p in (24, 288, 720)] + [96])
def test_drifting_period_followed(period):
    # The history holds the last 4096 rows: the estimate is the period about halfway back.
    for seed in range(3):
        track = period_track(period_case("drift", period, seed, N))
        rows, found = track[-1]
        truth = true_period("drift", period, seed, N, rows - HISTORY // 2)
        assert abs(found - truth) <= max(1, 0.05 * truth), (seed, found, truth)


NEAR_UNIT_ROOT = pytest.mark.xfail(
    strict=True,
    reason="AR(1) noise with a coefficient near 0.95 shows a spurious peak (lag 160) in a window of its history; "
    "once no peak shows, the period in use is kept while it predicts the series about as well as the previous value",
)


@pytest.mark.parametrize(
    "kind, seed",
    [(kind, seed) for kind in NO_PERIOD_KINDS for seed in range(3) if (kind, seed) != ("none_ar", 2)]
    + [pytest.param("none_ar", 2, marks=NEAR_UNIT_ROOT)],
)
def test_no_period_found_where_there_is_none(kind, seed):
    assert period_track(period_case(kind, 0, seed, N))[-1][1] == 0


@known_miss("a lag-2 wiggle of the noise on a sub-day history is taken as the period, and kept")
def test_counts_with_a_daily_cycle_of_288_rows_get_288_not_2():
    # 5-minute Poisson counts (mean rate 4): on 256 rows (less than a day) the autocorrelation of the
    # noise at lag 2 rose 0.26 above lag 1, a "period" of 2 was taken, and kept at every later checkpoint.
    series = make_series("counts", 0, clean=True)
    assert series.info["period"] == 288
    track = period_track(series.values)
    assert all(found == 0 or found >= 12 for _, found in track)
    assert abs(track[-1][1] - 288) <= 3
    detector = ThresholdedForest(num_trees=20, sample_size=64)
    detector.run(series.values)
    assert abs(detector.period_ - 288) <= 3


def test_short_lag_noise_is_no_period():
    # Independent Poisson counts on a slow ramp: high autocorrelation at every short lag, no period.
    rng = np.random.default_rng(5)
    for seed in range(20):
        rate = np.linspace(0.5, 8, 256) + rng.uniform(0, 1)
        counts = np.random.default_rng(seed).poisson(rate).astype(float)
        assert estimate_period_robust(counts[:, None]) == 0


@known_miss("a multiple of the period in use does not give way to its divisor")
def test_a_multiple_gives_way_to_its_divisor_and_a_clearly_stronger_week_does_not():
    t = np.arange(4096)
    rng = np.random.default_rng(0)
    daily = 3 * np.sin(2 * np.pi * t / 24) + rng.normal(size=t.size)
    assert estimate_period(daily) == 24
    assert estimate_period(daily, current=72) == 24  # a multiple in use gives way
    weekly = np.sin(2 * np.pi * t / 24) + 0.8 * (t % 168 >= 120)
    assert estimate_period(weekly[:2000]) == 168


def test_period_near_the_longest_is_placed_not_pulled_short():
    # The biased autocorrelation (each lag's sum over n rows) placed a period of 720 at 700-716 on short histories.
    for seed in range(3):
        series = period_case("plain", 720, seed, 2048)
        assert abs(estimate_period(series) - 720) <= 14
    assert MAX_PERIOD * 3 <= HISTORY


@known_miss("a trend's growth over a long period fails the test that the period predicts the series")
def test_trend_does_not_hide_a_long_period():
    for seed in range(3):
        series = period_case("trend", 720, seed, HISTORY)
        assert abs(estimate_period(series) - 720) <= 7
