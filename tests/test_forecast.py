"""Forest.extrapolate and the Forecaster: AWS's noisy sine, calibrated intervals, save/load, bad input."""

import numpy as np
import pytest

from rcforest import Forecaster, Forest
from tests import naive


def noisy_sine(seed, length, period=50, amplitude=50.0, noise=5.0):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + noise * rng.normal(size=length)


@pytest.mark.parametrize("row_by_row", [False, True])
def test_extrapolate_matches_the_steps_written_out(row_by_row):
    series = noisy_sine(0, 400, period=20, amplitude=1.0, noise=0.1)
    forest = Forest(num_trees=8, sample_size=32, shingle_size=4, random_state=0).update(series[:390])
    if row_by_row:  # single rows move the forest's last rows in place: the forecast starts from them
        forest.extrapolate(2)
        for value in series[390:]:
            forest.update([value])
    else:
        forest.update(series[390:])
    result = forest.extrapolate(5)
    trees, origin = forest._trees, forest._trees.origin
    history = list(series[-3:] - origin[:3])
    for step in range(5):
        point = history + [0.0]
        rows = [naive.conditional_choice(trees, t, point, [False] * 3 + [True])[0] for t in range(forest.num_trees)]
        column = [trees.store[row, 3] for row in rows]
        value = naive.prefix_pick(column, 0.5)
        assert result["value"][step, 0] == value + origin[3]
        assert result["lower"][step, 0] == naive.prefix_pick(column, 0.1) + origin[3]
        assert result["upper"][step, 0] == naive.prefix_pick(column, 0.9) + origin[3]
        history = history[1:] + [value]


def test_noisy_sine_error_under_four_times_the_noise_and_bounds_in_order(tmp_path):
    """AWS's forecast test: a sine of period 50, amplitude 50, noise 5, shingles of 20 (as its RCFCaster test)."""
    series = noisy_sine(1, 1800)
    horizon, noise = 5, 5.0
    forest = Forest(num_trees=50, sample_size=256, shingle_size=20, time_decay=1 / 2560, random_state=1)
    squared = np.zeros(horizon)
    count = np.zeros(horizon)
    for j, value in enumerate(series):
        forest.update([value])
        if j < 300:
            continue
        forecast = forest.extrapolate(horizon)
        assert (forecast["lower"] <= forecast["value"]).all() and (forecast["value"] <= forecast["upper"]).all()
        ahead = series[j + 1 : j + 1 + horizon]
        squared[: len(ahead)] += (ahead - forecast["value"][: len(ahead), 0]) ** 2
        count[: len(ahead)] += 1
        if j == 1000:
            forest.save(tmp_path / "f.rcf")
            loaded = Forest.load(tmp_path / "f.rcf")
            for name, values in loaded.extrapolate(horizon).items():
                np.testing.assert_array_equal(values, forecast[name])
    rmse = np.sqrt(squared / count)
    assert (rmse < 4 * noise).all(), rmse


def test_multivariate_streams_and_batch_fits_extrapolate():
    rng = np.random.default_rng(2)
    t = np.arange(1500)
    X = np.column_stack([np.sin(t / 8), np.cos(t / 8)]) + 0.02 * rng.normal(size=(1500, 2))
    forest = Forest(num_trees=30, sample_size=256, shingle_size=10, random_state=2).fit(X[:1400])
    forecast = forest.extrapolate(3)
    assert forecast["value"].shape == (3, 2)
    truth = np.column_stack([np.sin(t[1400:1403] / 8), np.cos(t[1400:1403] / 8)])
    assert np.abs(forecast["value"] - truth).max() < 0.2


def test_extrapolate_bad_input():
    with pytest.raises(ValueError, match="shingle_size >= 2"):
        Forest(num_trees=3, sample_size=8).fit(np.arange(50.0)).extrapolate(3)
    with pytest.raises(ValueError, match="holds no data"):
        Forest(num_trees=3, sample_size=8, shingle_size=3).extrapolate(3)
    forest = Forest(num_trees=3, sample_size=8, shingle_size=3).update(np.arange(50.0))
    with pytest.raises(ValueError, match="horizon must be"):
        forest.extrapolate(0)
    with pytest.raises(TypeError, match="horizon must be an integer"):
        forest.extrapolate(2.0)


@pytest.mark.parametrize(
    "seed, period, amplitude, noise",
    [(101, 24, 10.0, 1.0), (202, 60, 100.0, 15.0), (303, 36, 3.0, 0.5)],
)
def test_ninety_percent_intervals_cover_85_to_95_percent(seed, period, amplitude, noise):
    """Held-out noisy seasonal series (season, trend and noise drawn here), never used to choose a setting."""
    rng = np.random.default_rng(seed)
    t = np.arange(2500)
    season = amplitude * (np.sin(2 * np.pi * t / period) + 0.3 * np.sin(4 * np.pi * t / period + rng.uniform(0, 6)))
    series = season + 0.002 * amplitude * t + noise * rng.standard_t(8, size=t.size)
    caster = Forecaster(horizon=6, coverage=0.9, random_state=seed)  # the defaults: shingles of 20
    out = caster.process(series)
    inside = []
    for step in range(6):
        rows = np.arange(800, len(series) - step - 1)
        actual = series[rows + step + 1]
        inside.append((out["lower"][rows, step, 0] <= actual) & (actual <= out["upper"][rows, step, 0]))
    coverage = np.concatenate(inside).mean()
    assert 0.85 <= coverage <= 0.95, coverage
    precision = caster.interval_precision_
    assert precision.shape == (6, 1) and ((precision > 0.8) & (precision <= 1.0)).all()


def test_forecaster_save_load_continue_identical(tmp_path):
    series = noisy_sine(4, 700, period=30)
    caster = Forecaster(horizon=4, shingle_size=10, num_trees=20, sample_size=128, random_state=4)
    first = caster.process(series[:400])
    assert np.isnan(first["value"][:40]).all() and not np.isnan(first["value"][60:]).any()
    caster.save(tmp_path / "c.rcf")
    loaded = Forecaster.load(tmp_path / "c.rcf")
    np.testing.assert_array_equal(loaded.interval_precision_, caster.interval_precision_)
    a, b = caster.process(series[400:]), loaded.process(series[400:])
    for name in ("value", "lower", "upper"):
        np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(caster.forecast()["value"], loaded.forecast()["value"])
    np.testing.assert_array_equal(caster.error_rmse_, loaded.error_rmse_)
    Forest(num_trees=3, sample_size=8).fit([1.0, 2.0]).save(tmp_path / "m.rcf")
    with pytest.raises(ValueError, match="rcforest-model"):
        Forecaster.load(tmp_path / "m.rcf")


def test_forecaster_bad_input_changes_nothing():
    with pytest.raises(ValueError, match="coverage"):
        Forecaster(coverage=1.0)
    with pytest.raises(ValueError, match="shingle_size must be"):
        Forecaster(shingle_size=1)
    caster = Forecaster(horizon=2, shingle_size=4, num_trees=5, sample_size=16, random_state=0)
    caster.process(np.arange(50.0))
    seen = caster.rows_seen_
    with pytest.raises(ValueError, match="NaN"):
        caster.process([1.0, np.nan])
    with pytest.raises(ValueError, match="X has 2 features"):
        caster.process([[1.0, 2.0]])
    assert caster.rows_seen_ == seen
