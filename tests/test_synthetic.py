"""The stress suite's generator: deterministic draws, labels that cover the anomalies, and each declared property."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rcforest.evaluate import make_series, stress_suite
from rcforest.evaluate.synthetic import (
    ANOMALY_KINDS,
    BACKGROUNDS,
    JITTER_MINUTES,
    LENGTHS,
    PERIODS,
    PLACEMENT,
    PROPERTIES,
    WINDOW_FRACTION,
    label_windows,
)

SUITE = stress_suite()


def _same(a, b):
    assert a.name == b.name
    np.testing.assert_array_equal(a.values, b.values)  # NaN compare equal here
    assert a.timestamps.equals(b.timestamps)
    assert a.anomalies == b.anomalies and a.windows == b.windows and a.info == b.info


def test_the_suite_holds_every_property_and_seed_once():
    names = [s.name for s in SUITE]
    assert len(names) == len(set(names))
    with_anomalies = [p for p in PROPERTIES if p != "plain"]
    assert len(SUITE) == 3 * len(with_anomalies) + 2 * (len(BACKGROUNDS) + 1)
    assert {s.property for s in SUITE if not s.clean} == set(with_anomalies)
    assert {s.property for s in SUITE if s.clean} == set(BACKGROUNDS) | {"plain"}


@pytest.mark.parametrize("prop", PROPERTIES)
def test_a_draw_is_deterministic_and_seeds_differ(prop):
    clean = prop == "plain"
    _same(make_series(prop, 4, clean), make_series(prop, 4, clean))
    assert not np.array_equal(make_series(prop, 4, clean).values, make_series(prop, 5, clean).values)
    if not clean:
        assert not np.array_equal(make_series(prop, 4).values[:100], make_series(prop, 4, True).values[:100])


def test_a_draw_does_not_depend_on_the_process():
    # The generator's key must not come from Python's salted hash of strings.
    code = (
        "from rcforest.evaluate import make_series; s = make_series('gap', 3);"
        "print(repr(float(s.values.sum())), s.windows, list(s.timestamps[[0, -1]].astype(str)))"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
        for env in ({"PYTHONHASHSEED": "1"}, {"PYTHONHASHSEED": "2"})
    ]
    assert runs[0] == runs[1] != ""
    series = make_series("gap", 3)
    assert runs[0].startswith(repr(float(series.values.sum())))


@pytest.mark.parametrize("series", SUITE, ids=lambda s: s.name)
def test_labels_cover_the_anomalies_as_nab_places_windows(series):
    n = len(series.values)
    assert LENGTHS[0] <= n <= LENGTHS[1]
    assert len(series.timestamps) == n and series.timestamps.is_monotonic_increasing
    assert series.info["period"] in PERIODS
    if series.clean:
        assert series.anomalies == [] and series.windows == []
        assert not series.label_mask().any()
        return
    assert 1 <= len(series.anomalies) == len(series.windows) <= 3
    width = int(WINDOW_FRACTION * n / len(series.windows))
    for (kind, first, last), (start, end) in zip(series.anomalies, series.windows):
        assert kind == series.property if series.property in ANOMALY_KINDS else kind in ("spike", "dip")
        assert PLACEMENT[0] * n - 1 <= first < PLACEMENT[1] * n
        assert start <= first <= last <= end, "every injected row lies in its window"
        assert end - start + 1 == width
        assert abs((first - start) - (end - first)) <= 1, "the window is centred on the anomaly's start"
    assert all(a[1] < b[0] for a, b in zip(series.windows, series.windows[1:])), "windows are apart and in order"
    assert series.label_mask().sum() == width * len(series.windows)
    assert series.window_times()[0][0] == str(series.timestamps[series.windows[0][0]])


def test_label_windows_split_a_tenth_of_the_rows():
    assert label_windows([], 1000) == []
    assert label_windows([500], 2000) == [(400, 599)]
    assert label_windows([300, 700], 1000) == [(275, 324), (675, 724)]


def _seasonal_residual(values, period, rows):
    """Each row's value less the median of the same phase one to three periods before."""
    return np.array([values[r] - np.median(values[[r - period, r - 2 * period, r - 3 * period]]) for r in rows])


@pytest.mark.parametrize("prop", ["spike", "dip", "level_shift", "burst"])
def test_injected_anomalies_stand_out_of_their_background(prop):
    for seed in range(3):
        series = make_series(prop, seed)
        period = series.info["period"]
        for kind, first, _ in series.anomalies:
            residual = _seasonal_residual(series.values, period, [first])[0]
            if kind in ("spike", "burst"):
                assert residual > 3
            elif kind == "dip":
                assert residual < -3
            else:
                assert abs(residual) > 3


def test_contextual_anomalies_are_normal_values_at_the_wrong_phase():
    for seed in range(3):
        series = make_series("contextual", seed)
        values, period = series.values, series.info["period"]
        for _, first, last in series.anomalies:
            stretch = values[first : last + 1]
            assert values.min() <= stretch.min() and stretch.max() < np.percentile(values, 99), "values stay normal"
            residual = _seasonal_residual(values, period, range(first, last + 1))
            assert residual.mean() < -2 * series.info["amplitude"] / 2, "the stretch sits at the trough's level"


def test_variance_change_multiplies_the_noise_from_its_start():
    for seed in range(3):
        series = make_series("variance", seed)
        (_, start, _), period = series.anomalies[0], series.info["period"]
        before = _seasonal_residual(series.values, period, range(3 * period, start))
        after = _seasonal_residual(series.values, period, range(start + 3 * period, len(series.values)))
        assert np.std(after) > 2 * np.std(before)


@pytest.mark.parametrize("clean", [False, True])
def test_scale_and_offset_series_carry_their_factor(clean):
    for seed in range(3):
        scaled = make_series("scale", seed, clean)
        assert 1e-12 <= scaled.info["scale"] <= 1e15
        spread = np.median(np.abs(np.diff(scaled.values)))
        assert 0.05 < spread / scaled.info["scale"] < 20
        shifted = make_series("offset", seed, clean)
        assert 1e6 <= abs(shifted.info["offset"]) <= 1e12
        assert np.all(np.abs(shifted.values - shifted.info["offset"]) < 200)


def test_counts_are_low_non_negative_integers():
    for series in [make_series("counts", seed, clean) for seed in range(3) for clean in (False, True)]:
        values = series.values
        assert np.all(values == np.round(values)) and values.min() >= 0
        assert series.info["mean_rate"] <= 10 and np.median(values) <= 10


def test_missing_stretches_are_nan_and_nothing_else_is():
    for seed in range(3):
        series = make_series("missing", seed)
        missing = np.isnan(series.values)
        assert missing.sum() == series.info["missing_rows"] > 0
        for _, first, last in series.anomalies:
            assert not missing[first : last + 1].any()
    for series in SUITE:
        if series.property != "missing":
            assert np.isfinite(series.values).all(), series.name


def test_gaps_are_timestamps_jumping_by_the_rows_dropped():
    for seed in range(3):
        series = make_series("gap", seed, seed == 2)
        step = pd.Timedelta(days=1) / series.info["period"]
        jumps = np.diff(series.timestamps) / step
        gaps = sorted(int(j) - 1 for j in jumps if j != 1)
        assert gaps == sorted(series.info["dropped"])
    for series in SUITE:
        if series.property != "gap":
            assert (np.diff(series.timestamps) == np.diff(series.timestamps[:2])[0]).all(), series.name


def test_flat_series_hold_long_constant_runs():
    for seed in range(2):
        series = make_series("flat", seed, True)
        values = series.values
        constant = np.r_[False, np.diff(values) == 0]
        edges = np.diff(np.r_[0, constant.astype(int), 0])
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1) + 1
        assert runs.max() >= 48 and series.info["flat_rows"] >= 96


def test_trend_period_and_heteroscedastic_series():
    for seed in range(3):
        trend = make_series("trend", seed, True)
        tenth = len(trend.values) // 10
        rise = trend.values[-tenth:].mean() - trend.values[:tenth].mean()
        assert np.sign(rise) == np.sign(trend.info["rise"]) and abs(rise) > 0.5 * abs(trend.info["rise"])
        chirp = make_series("period", seed, True)
        ratio = chirp.info["final_period"] / chirp.info["period"]
        assert 0.59 <= ratio <= 0.86 or 1.19 <= ratio <= 1.61
        noisy = make_series("heteroscedastic", seed, True)
        values, period = noisy.values, noisy.info["period"]
        residual = _seasonal_residual(values, period, range(3 * period, len(values)))
        high = values[3 * period :] > np.median(values)
        assert np.std(residual[high]) > 1.5 * np.std(residual[~high])


def test_jitter_series_keep_their_anomaly_away_from_the_daily_spike():
    for seed in range(3):
        series = make_series("jitter", seed)
        period, at = series.info["period"], series.info["daily_spike_row"]
        assert period * JITTER_MINUTES / 1440 >= 1, "the jitter moves the spike by at least one row"
        for _, first, _ in series.anomalies:
            phase = (first - at) % period
            assert min(phase, period - phase) >= period // 4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown property"):
        make_series("sawtooth")
    with pytest.raises(ValueError, match="clean only"):
        make_series("plain")
    with pytest.raises(ValueError, match="seed"):
        make_series("spike", -1)
