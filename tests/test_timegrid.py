"""Timestamps keep the rows on the seasonal grid: gaps get missing rows, so the reference stays in phase."""

import pickle

import numpy as np
import pandas as pd
import pytest

from rcforest import ThresholdedForest
from rcforest.detector.timegrid import TimeGrid
from rcforest.evaluate.synthetic import make_series

SMALL = {"num_trees": 20, "sample_size": 64}


def _gapped(n=1500, period=48, seed=0, cuts=((600, 70), (900, 30)), spike=1200):
    """A daily sine on a 30-minute grid with stretches of rows dropped, and a spike of 8 after the gaps."""
    rng = np.random.default_rng(seed)
    grid = np.arange(n)
    for at, length in cuts:
        grid[at:] += length
    values = 20 + 5 * np.sin(2 * np.pi * grid / period) + rng.normal(size=n)
    values[spike] += 8
    times = pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=30) * grid
    return values, pd.DatetimeIndex(times)


def test_gap_gets_the_rows_that_put_it_back_in_phase():
    values, times = _gapped()
    detector = ThresholdedForest()
    out = detector.run(values, timestamps=times)
    assert detector.period_ == 48
    # 70 missing steps are 22 rows off the phase of a 48-row period, 30 are 30 rows off.
    assert detector.rows_seen_ == len(values) + 70 % 48 + 30
    assert out.index.equals(times) and len(out) == len(values)
    assert not out["imputed"].any()  # the inserted rows are not reported
    alerts = np.flatnonzero(out["grade"] > 0)
    assert len(alerts) == 1 and 1200 <= alerts[0] <= 1205  # the spike, within its shingle
    # Rows counted without their times: the first gap shifts the phase, raises an alert, and the spike is missed.
    blind = np.flatnonzero(ThresholdedForest().run(values)["grade"] > 0)
    assert any(600 <= a < 700 for a in blind) and not any(1200 <= a <= 1205 for a in blind)


def test_the_seasonal_reference_follows_the_clock_after_a_gap():
    values, times = _gapped(spike=0)
    timed, blind = ThresholdedForest(**SMALL), ThresholdedForest(**SMALL)
    timed.run(values, timestamps=times)
    blind.run(values)
    # The typical residual (value less the median of one to three periods back): in phase, the noise's
    # (0.8 for unit Gaussian noise, a little more for a median of three); a phase off after each gap, more.
    assert timed._preprocessor.residual[0] < 1.0 < blind._preprocessor.residual[0]


@pytest.mark.parametrize("cut", [1, 7, 128, 300, 333])
def test_any_cut_of_the_stream_gives_the_same_output(cut):
    series = make_series("gap", 2)
    whole = ThresholdedForest(**SMALL).run(series.values, timestamps=series.timestamps)
    detector = ThresholdedForest(**SMALL)
    parts = [
        detector.run(series.values[i : i + cut], timestamps=series.timestamps[i : i + cut])
        for i in range(0, len(series.values), cut)
    ]
    pd.testing.assert_frame_equal(pd.concat(parts), whole)


def test_a_detector_pickled_before_timestamps_takes_them():
    detector = ThresholdedForest(**SMALL)
    detector.run(np.arange(50.0))
    state = detector.__getstate__() if hasattr(detector, "__getstate__") else detector.__dict__
    state = {key: value for key, value in dict(state).items() if key != "_grid"}
    old = ThresholdedForest.__new__(ThresholdedForest)
    old.__setstate__(state)
    out = old.run(np.arange(50.0, 60.0), timestamps=np.arange(50, 60))
    assert len(out) == 10 and old.rows_seen_ == 60


@pytest.mark.parametrize("how", ["pickle", "file"])
def test_state_with_a_time_grid_restores(tmp_path, how):
    values, times = _gapped()
    detector = ThresholdedForest(**SMALL)
    detector.run(values[:800], timestamps=times[:800])
    if how == "pickle":
        restored = pickle.loads(pickle.dumps(detector))
    else:
        detector.save(tmp_path / "detector.zip")
        restored = ThresholdedForest.load(tmp_path / "detector.zip")
    expected = detector.run(values[800:], timestamps=times[800:])
    pd.testing.assert_frame_equal(restored.run(values[800:], timestamps=times[800:]), expected)
    assert restored.rows_seen_ == detector.rows_seen_


def test_jitter_and_clock_changes_are_no_gaps():
    grid = TimeGrid(step=300.0, last=0.0)
    times = np.array([310.0, 590.0, 900.0, 900.0, 600.0, 1200.0, 2400.0])
    # Within half a step of the grid, repeated or earlier times: nothing; 1200 -> 2400 is 3 missing steps.
    assert grid.fills(times, period=288).tolist() == [0, 0, 0, 0, 0, 1, 3]
    assert grid.fills(np.array([2400.0 + 300 * 300]), period=288).tolist() == [299 % 288]
    assert grid.fills(np.array([1e9]), period=0).tolist() == [0]  # no period: no phase to keep


def test_numeric_timestamps_and_no_period():
    rng = np.random.default_rng(3)
    values = rng.normal(size=600)
    times = np.arange(600) * 2.0
    times[400:] += 50
    detector = ThresholdedForest(**SMALL)
    out = detector.run(values, timestamps=times)
    assert detector.period_ == 0 and detector.rows_seen_ == 600  # white noise has no phase to keep
    assert out.index.tolist() == times.tolist()


def test_bad_timestamps_are_refused_and_nothing_changes():
    fresh = ThresholdedForest(**SMALL)
    with pytest.raises(ValueError, match="got 1 timestamps for 2 rows"):
        fresh.run([1.0, 2.0], timestamps=[1])
    assert fresh.columns_ is None and fresh.rows_seen_ == 0
    detector = ThresholdedForest(**SMALL)
    detector.run(np.arange(10.0), timestamps=np.arange(10))
    before = pickle.dumps(detector)
    with pytest.raises(ValueError, match="got 3 timestamps for 2 rows"):
        detector.run([1.0, 2.0], timestamps=[1, 2, 3])
    with pytest.raises(ValueError, match="a timestamp is missing"):
        detector.run([1.0, 2.0], timestamps=[1.0, np.nan])
    with pytest.raises(TypeError, match="timestamps must be datetimes or numbers"):
        detector.run([1.0, 2.0], timestamps=["soon", "later"])
    assert pickle.dumps(detector) == before
