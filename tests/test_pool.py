"""DetectorPool (many detectors keyed by entity) and the live path of ThresholdedForest.process."""

import copy
import pickle

import numpy as np
import pandas as pd
import pytest

from rcforest import DetectorPool, ThresholdedForest
from rcforest.detector.live import RING_SPARE
from rcforest.detector.period import HISTORY
from rcforest.detector.pool import MAX_KEY_LENGTH, file_name
from rcforest.detector.preprocess import TRANSFORMS, Preprocessor, seasonal_median

PARAMS = {"num_trees": 12, "sample_size": 32}


def _series(n, seed, period=25):
    t = np.arange(n)
    values = 5 * np.sin(2 * np.pi * t / period) + np.random.default_rng(seed).normal(size=n)
    values[n // 2] += 25  # an anomaly, so that some rows are explained
    return values


def _frame(outputs, start=0):
    return pd.DataFrame(outputs, index=range(start, start + len(outputs)))


# ------------------------------------------------------------- live readings


def test_process_reading_by_reading_equals_run_through_checkpoints_alerts_and_gaps(tmp_path):
    series = _series(1300, 0)
    series[700:703] = np.nan  # imputed rows
    expected = ThresholdedForest(**PARAMS).run(series)
    assert (expected["grade"] > 0).any()  # the comparison covers explained alerts
    live = ThresholdedForest(**PARAMS)
    got = []
    for i, value in enumerate(series):
        got.append(live.process(float(value)))
        if i == 900:  # a saved, pickled and copied detector continues the same, its last point still to join
            live.save(tmp_path / "live.rcfd")
            live = pickle.loads(pickle.dumps(ThresholdedForest.load(tmp_path / "live.rcfd")))
        if i == 1000:
            live = copy.deepcopy(live)
    pd.testing.assert_frame_equal(_frame(got).astype(expected.dtypes), expected, check_exact=True)


def test_process_is_run_bit_for_bit_over_a_long_stream_of_two_columns():
    # Longer than the buffer of live readings (it wraps), with a change of period (the forest is rebuilt), gaps,
    # a reading pickled mid-stream, and alerts (explained rows).
    n = HISTORY + RING_SPARE + 700
    t = np.arange(n)
    rng = np.random.default_rng(11)
    phase = np.where(t < 2500, 2 * np.pi * t / 25, 2 * np.pi * 2500 / 25 + 2 * np.pi * (t - 2500) / 40)
    series = np.column_stack([5 * np.sin(phase) + rng.normal(size=n), 100 + 3 * np.cos(phase) + rng.normal(size=n)])
    series[[1200, 3900, 4700], 0] += 30
    series[[900, 901, 4500], 1] = np.nan
    batch = ThresholdedForest(**PARAMS)
    expected = batch.run(series)
    alerts = np.flatnonzero(expected["grade"] > 0)
    assert alerts.size >= 2 and alerts[-1] > HISTORY + RING_SPARE
    live = ThresholdedForest(**PARAMS)
    got = []
    for i, row in enumerate(series.tolist()):
        got.append(live.process(row))
        if i == 4400:
            live = pickle.loads(pickle.dumps(live))
    pd.testing.assert_frame_equal(_frame(got).astype(expected.dtypes), expected, check_exact=True)
    np.testing.assert_array_equal(live._history, batch._history)
    assert live._history.shape[0] == HISTORY and live.forest_.points_seen_ == batch.forest_.points_seen_
    packed = batch.forest_._parts().trees  # the saved model: its points in the order the trees hold them
    for name, array in live.forest_._parts().trees._asdict().items():
        np.testing.assert_array_equal(array, getattr(packed, name))
    alert = got[alerts[-1]]
    assert [type(value) for value in alert.values()] == [float, float, float, float, str, float, int, bool]


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_live_readings_give_run_s_output_for_every_transform(transform):
    series = _series(700, 6)
    expected = ThresholdedForest(**PARAMS, transform=transform).run(series)
    live = ThresholdedForest(**PARAMS, transform=transform)
    got = [live.process(value) for value in series.tolist()]
    pd.testing.assert_frame_equal(_frame(got).astype(expected.dtypes), expected, check_exact=True)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_a_rows_features_alone_are_its_row_of_the_features_bit_for_bit(transform):
    rng = np.random.default_rng(8)
    values = np.column_stack([rng.normal(size=230) * 1e6, np.round(rng.normal(size=230) * 2), np.full(230, 3.0)]) + 0.0
    values[200, 2] = 1e29  # a flat column's scale is its floor: the features overflow and are clipped
    for period in (0, 1, 7, 40, 70):  # 70: rows with one, two and three periods back
        preprocessor = Preprocessor(transform)
        preprocessor.fit(values[:150], period, 8)
        expected = preprocessor.features(values, 0)
        for row in range(values.shape[0]):
            got = np.array(preprocessor.row_features(values, row))
            np.testing.assert_array_equal(got.view(np.uint64), expected[row].view(np.uint64))
    if transform in ("auto", "normalize", "normalize_difference"):  # the clipped features were compared
        assert np.abs(expected).max() == 2e29


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_an_explanations_trial_points_are_those_of_the_window_with_each_value_bit_for_bit(transform):
    rng = np.random.default_rng(9)
    values = np.column_stack([rng.normal(size=400) * 1e3, np.round(rng.normal(size=400) * 2) + 0.0])
    trial = np.r_[np.linspace(-5e3, 5e3, 30), 0.0, 1e29, -1e29]
    for period, size in ((0, 8), (7, 8), (40, 40), (100, 16)):
        preprocessor = Preprocessor(transform)
        preprocessor.fit(values[:200], period, size)
        for row in (size - 1, size + 3, 150, 399):
            for target, column in ((row, 0), (row - size + 1, 1), (row - size // 2, 0)):
                window = values[: row + 1].copy()
                expected = []
                for value in trial:
                    window[target, column] = value
                    expected.append(preprocessor.points(window, row)[-1])
                got = preprocessor.varied_points(values, row, target, column, trial)
                np.testing.assert_array_equal(got.view(np.uint64), np.array(expected).view(np.uint64))
                point = preprocessor.points(values[: row + 1], row)[-1]  # the row's point, as explain passes it
                got = preprocessor.varied_points(values, row, target, column, trial, point)
                np.testing.assert_array_equal(got.view(np.uint64), np.array(expected).view(np.uint64))


def test_the_forest_of_a_live_detector_holds_every_row_processed():
    series = _series(400, 1)
    live = ThresholdedForest(**PARAMS)
    for value in series:
        live.process(float(value))
    batch = ThresholdedForest(**PARAMS)
    batch.run(series)
    assert live.forest_.points_seen_ == batch.forest_.points_seen_
    assert pickle.dumps(live.forest_) == pickle.dumps(batch.forest_)


def test_the_seasonal_median_is_numpys_nanmedian_bit_for_bit():
    rng = np.random.default_rng(3)
    for trial in range(300):
        lagged = rng.normal(size=(3, 50, 2)) * 10.0 ** rng.integers(-300, 29)
        if trial % 3 == 0:
            lagged = rng.integers(-2, 3, size=lagged.shape).astype(float) + 0.0  # ties, zeros
        exists = rng.integers(1, 4, size=50)
        for k in range(3):
            lagged[k, exists <= k] = np.nan
        expected = np.nanmedian(lagged, axis=0)
        np.testing.assert_array_equal(seasonal_median(lagged).view(np.uint64), expected.view(np.uint64))


# ------------------------------------------------------------------- pool


def test_a_pool_gives_each_entity_what_a_standalone_detector_gives(tmp_path):
    streams = {"host-a": _series(320, 1), 7: _series(320, 2, period=40), "../../etc/passwd": _series(320, 3)}
    pool = DetectorPool(tmp_path / "pool", max_in_memory=2, **PARAMS)
    outputs = {entity: [] for entity in streams}
    for t in range(320):
        for entity, series in streams.items():
            outputs[entity].append(pool.process(entity, float(series[t])))
    assert pool.in_memory == 2 and len(pool) == 3
    assert pool.saves_ >= 300 and pool.loads_ >= 300  # round robin over 3 entities with room for 2
    for entity, series in streams.items():
        expected = ThresholdedForest(**PARAMS, n_jobs=1).run(series)
        pd.testing.assert_frame_equal(_frame(outputs[entity]).astype(expected.dtypes), expected, check_exact=True)
    assert sorted(p.name for p in (tmp_path / "pool").iterdir()) == sorted(file_name(e) for e in streams)
    assert not (tmp_path / "etc").exists()


def test_evicted_detectors_reload_in_a_new_pool_and_continue_bit_identically(tmp_path):
    series = _series(600, 4)
    pool = DetectorPool(tmp_path, **PARAMS)
    first = pool.run("sensor-1", series[:350])
    pool.evict("sensor-1")
    assert pool.in_memory == 0 and "sensor-1" in pool and "sensor-2" not in pool
    later = DetectorPool(tmp_path, **PARAMS)  # a new process: the detector is found by its key
    assert "sensor-1" in later
    rest = [later.process("sensor-1", float(v)) for v in series[350:]]
    expected = ThresholdedForest(**PARAMS).run(series)
    pd.testing.assert_frame_equal(first, expected.iloc[:350])
    pd.testing.assert_frame_equal(_frame(rest, 350).astype(expected.dtypes), expected.iloc[350:], check_exact=True)
    assert later.loads_ == 1
    later.save_all()
    assert ThresholdedForest.load(tmp_path / file_name("sensor-1")).rows_seen_ == 600


def test_file_names_are_hashes_of_the_key_and_its_type():
    names = {file_name(key) for key in ("7", 7, "a", "A", "a/b", "..", "\ud800", "x" * MAX_KEY_LENGTH)}
    assert len(names) == 8
    for name in names:
        stem, suffix = name.split(".")
        assert len(stem) == 64 and set(stem) <= set("0123456789abcdef") and suffix == "rcfd"
    assert file_name("a") == file_name("a")


@pytest.mark.parametrize(
    ("key", "error", "match"),
    [
        (None, TypeError, "string or an integer"),
        (1.5, TypeError, "string or an integer"),
        (True, TypeError, "string or an integer"),
        (("a", 1), TypeError, "string or an integer"),
        (b"host", TypeError, "string or an integer"),
        ("", ValueError, "1 to 1024 characters"),
        ("x" * (MAX_KEY_LENGTH + 1), ValueError, "1 to 1024 characters"),
    ],
)
def test_bad_keys_are_refused_and_change_nothing(tmp_path, key, error, match):
    pool = DetectorPool(tmp_path, **PARAMS)
    pool.process("ok", 1.0)
    for call in (lambda: pool.process(key, 1.0), lambda: pool.detector(key), lambda: key in pool):
        with pytest.raises(error, match=match):
            call()
    with pytest.raises(error, match=match):
        pool.evict(key)
    assert len(pool) == 1 and pool.in_memory == 1 and [p.name for p in tmp_path.iterdir()] == []


def test_bad_pool_parameters_are_refused_at_once(tmp_path):
    with pytest.raises(ValueError, match="max_in_memory"):
        DetectorPool(tmp_path, max_in_memory=0)
    with pytest.raises(ValueError, match="num_trees"):
        DetectorPool(tmp_path, num_trees=0)
    with pytest.raises(TypeError):
        DetectorPool(tmp_path, colour="red")


def test_a_bad_reading_leaves_the_entitys_detector_unchanged(tmp_path):
    pool = DetectorPool(tmp_path, **PARAMS)
    for value in _series(200, 5):
        pool.process("a", float(value))
    before = pickle.dumps(pool.detector("a"))
    with pytest.raises(TypeError, match="text"):
        pool.process("a", "high")
    assert pickle.dumps(pool.detector("a")) == before
