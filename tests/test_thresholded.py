"""ThresholdedForest: quality on NYC taxi, the sine wave and synthetic series; streaming contracts."""

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcforest import Forest
from rcforest.datasets import load_nyc_taxi
from rcforest.detector import COLUMNS
from rcforest.evaluate import top_days, window_metrics
from rcforest.thresholded import ThresholdedForest, estimate_period
from tests.naive import assert_similar, check_invariants, flat_absolute, leaf_of

PROBATION = 750  # NAB's probation period for NYC taxi (15% of the file)
FIXTURES = Path(__file__).resolve().parent / "data"


# ------------------------------------------------------------------ NYC taxi


@pytest.fixture(scope="module")
def nyc():
    series, _, windows = load_nyc_taxi()  # the copy bundled with rcforest
    frame = series.to_frame()
    detector = ThresholdedForest()
    out = detector.run(frame["value"])
    return frame, windows, detector, out


def test_nyc_taxi_defaults_hit_all_five_windows(nyc):
    frame, windows, detector, out = nyc
    m = window_metrics(out["grade"].to_numpy(), windows, index=frame.index, probation=PROBATION)
    delays = [str(d) for d in m["time_to_detect_time"]]
    print(f"period {detector.period_}, shingle {detector.shingle_size_}; time to detect per window: {delays}")
    assert m["windows_hit"] == 5, m["hit"]


def test_nyc_taxi_defaults_raise_few_false_positive_events(nyc):
    frame, windows, _, out = nyc
    m = window_metrics(out["grade"].to_numpy(), windows, index=frame.index, probation=PROBATION)
    spans = [(str(frame.index[a]), str(frame.index[b])) for a, b in m["false_positive_spans"]]
    print(f"false-positive events after probation: {spans}")
    assert m["false_positive_events"] <= 2


def test_nyc_taxi_top_graded_days_lie_in_windows(nyc):
    frame, windows, _, out = nyc
    best = top_days(frame.index, out["grade"], out["score"], windows, k=10, probation=PROBATION)
    print(best[["day", "grade", "score", "in_window"]].to_string())
    assert best["in_window"].sum() >= 9


def test_nyc_taxi_one_alert_per_anomaly(nyc):
    frame, windows, _, out = nyc
    alerts = np.flatnonzero(out["grade"].to_numpy() > 0)
    # No window holds more than two alerts, and alerts are never on consecutive rows.
    assert np.all(np.diff(alerts) > 1)
    for start, end in windows:
        inside = (frame.index[alerts] >= pd.Timestamp(start)) & (frame.index[alerts] <= pd.Timestamp(end))
        assert 1 <= inside.sum() <= 2


def test_nyc_taxi_output_contract(nyc):
    frame, _, detector, out = nyc
    assert out.dtypes.to_dict() == {name: pd.Series([], dtype=dtype).dtype for name, dtype in COLUMNS.items()}
    assert out.index.equals(frame.index)
    assert detector.period_ == 336  # one week of half-hours
    grade = out["grade"].to_numpy()
    assert ((grade >= 0) & (grade <= 1)).all()
    alerts = out[out["grade"] > 0]
    assert (alerts["score"] > alerts["threshold"]).all()
    assert alerts["attribution"].str.match(r"value\[t(-\d+)?\]$").all()
    assert alerts["expected_value"].notna().all()
    assert (alerts["start_of_anomaly"] >= 0).all()
    quiet = out[out["grade"] == 0]
    assert (quiet["attribution"] == "").all() and quiet["expected_value"].isna().all()
    assert out["score"].iloc[:128].isna().all() and out["score"].iloc[128:].notna().all()
    confidence = out["confidence"].to_numpy()
    assert (np.diff(confidence[128:]) >= -1e-12).sum() > 0.99 * (len(out) - 129)
    assert confidence[-1] == 1.0


# ------------------------------------------------------------------ sine wave


def _sine():
    t = np.arange(730)
    series = 50 * np.sin(2 * np.pi * t / 100) + 100
    series[235:255] = 80
    return series


def test_sine_wave_alerts_once_at_the_anomaly():
    out = ThresholdedForest().run(_sine())
    alerts = np.flatnonzero(out["grade"].to_numpy() > 0)
    assert alerts.tolist() == [235]
    row = out.loc[235]
    # The forest expected the sine's value (about 140), not the flat 80.
    assert abs(row["expected_value"] - (50 * np.sin(2 * np.pi * 2.35) + 100)) < 10
    assert row["attribution"] == "value[t]"


# ------------------------------------------------------------ synthetic cases


def _synthetic(kind, period, scale=1.0, offset=0.0, seed=0, n=1100, at=800):
    """A seasonal (or noise-only) series with one labelled anomaly.

    Two harmonics of ``period`` (none when 0) plus Gaussian noise of 0.1,
    then ``offset + scale * x``. The anomaly starts at ``at``: a spike or a
    dip of 3, a fivefold noise burst, a stuck (flat) stretch of half a
    period, a frequency doubling or a lasting level shift of 2. Returns the
    series and the anomaly's (start, end) window: one period past the end
    of a stretch, where the series snaps back, and 50 rows for a shift.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)

    def seasonal(times, p):
        return np.sin(2 * np.pi * times / p) + 0.3 * np.sin(4 * np.pi * times / p + 1)

    x = seasonal(t, period) if period else np.zeros(n)
    x += 0.1 * rng.normal(size=n)
    length = min(3 * period, 150) if period else 60
    if kind == "spike":
        x[at] += 3.0
        window = (at, at + 5)
    elif kind == "dip":
        x[at] -= 3.0
        window = (at, at + 5)
    elif kind == "noise":
        x[at : at + length] += 0.5 * rng.normal(size=length)
        window = (at, at + length + period)
    elif kind == "flat":
        x[at : at + period // 2] = x[at]
        window = (at, at + period)
    elif kind == "frequency":
        x[at : at + length] = seasonal(t[at : at + length], period / 2) + 0.1 * rng.normal(size=length)
        window = (at, at + length + period)
    elif kind == "level":
        x[at:] += 2.0
        window = (at, at + 50)
    else:
        raise ValueError(kind)
    return offset + scale * x, window


# Each anomaly on two series of different periods, scales and offsets.
SYNTHETIC = [
    ("spike", 24, 1e4, 5e4, 1),
    ("spike", 0, 1.0, 10.0, 2),
    ("dip", 50, 1.0, 0.0, 3),
    ("dip", 168, 10.0, 100.0, 4),
    ("noise", 100, 1e-3, 0.0, 5),
    ("noise", 0, 1.0, -10.0, 6),
    ("flat", 24, 1e4, 5e4, 7),
    ("flat", 100, 1e-3, 0.0, 8),
    ("frequency", 50, 1.0, 0.0, 9),
    ("frequency", 168, 10.0, 100.0, 10),
    ("level", 100, 1e-3, 0.0, 11),
    ("level", 0, 1.0, 10.0, 12),
]


@pytest.mark.parametrize("kind, period, scale, offset, seed", SYNTHETIC)
def test_synthetic_anomalies_are_caught_with_defaults(kind, period, scale, offset, seed):
    series, window = _synthetic(kind, period, scale, offset, seed)
    detector = ThresholdedForest()
    out = detector.run(series)
    m = window_metrics(out["grade"].to_numpy(), [window], probation=400)
    print(
        f"{kind} period {period} -> {detector.period_}: delay {m['time_to_detect']}, "
        f"false positives {m['false_positive_spans']}"
    )
    assert abs(detector.period_ - period) <= 1
    assert m["windows_hit"] == 1
    assert m["false_positive_events"] == 0


@pytest.mark.parametrize("period, seed", [(0, 21), (37, 22), (96, 23)])
def test_no_alerts_on_normal_series(period, seed):
    series, _ = _synthetic("level", period, seed=seed, n=1500, at=1499)
    out = ThresholdedForest().run(series[:1499])
    assert (out["grade"].iloc[300:] == 0).all()


def test_estimate_period():
    t = np.arange(2000)
    assert estimate_period(np.sin(2 * np.pi * t / 24)) == 24
    weekly = np.sin(2 * np.pi * t / 24) + 0.8 * (t % 168 >= 120)  # quiet "weekends"
    assert estimate_period(weekly) == 168
    assert estimate_period(np.random.default_rng(0).normal(size=2000)) == 0
    assert estimate_period(np.cumsum(np.random.default_rng(1).normal(size=300))) == 0
    assert estimate_period(np.sin(2 * np.pi * t[:30] / 24)) == 0  # too short to tell


# --------------------------------------------------------- streaming contract


def _stream(n=1300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 10 * np.sin(2 * np.pi * t / 40) + rng.normal(size=n)
    x[900] += 30
    return x


def test_run_in_pieces_and_process_match_one_run():
    x = _stream()
    x[[300, 301, 700]] = np.nan
    whole = ThresholdedForest(num_trees=30, sample_size=64).run(x)
    detector = ThresholdedForest(num_trees=30, sample_size=64)
    first = detector.run(x[:500])
    rows = pd.DataFrame([detector.process(v) for v in x[500:540]], index=range(500, 540))
    rest = detector.run(x[540:])
    pieces = pd.concat([first, rows, rest])
    pd.testing.assert_frame_equal(pieces, whole, check_dtype=False)
    assert whole["imputed"].to_numpy().nonzero()[0].tolist() == [300, 301, 700]
    assert (whole.loc[[300, 301, 700], "grade"] == 0).all()
    assert np.flatnonzero(whole["grade"] > 0).tolist() == [900]


def test_warm_up_is_the_same_however_the_stream_is_cut():
    # While the reservoir fills (sample_size rows), confidence follows the rows the forest has taken:
    # a batch of rows, reading by reading, or pieces that straddle a checkpoint all report the same.
    x = _stream()[:700]
    whole = ThresholdedForest(num_trees=30, sample_size=256).run(x)
    assert 0 < whole["confidence"].iloc[200] < whole["confidence"].iloc[600] <= 1
    live = ThresholdedForest(num_trees=30, sample_size=256)
    rows = pd.DataFrame([live.process(v) for v in x])
    pd.testing.assert_frame_equal(rows, whole, check_dtype=False, check_exact=True)
    detector = ThresholdedForest(num_trees=30, sample_size=256)
    pieces = pd.concat([detector.run(x[a:b]) for a, b in [(0, 130), (130, 137), (137, 300), (300, 700)]])
    pd.testing.assert_frame_equal(pieces, whole, check_exact=True)


def test_live_readings_report_plain_python_values_as_run_does():
    x = _stream()
    whole = ThresholdedForest(num_trees=30, sample_size=64).run(x)
    detector = ThresholdedForest(num_trees=30, sample_size=64)
    detector.run(x[:850])
    rows = [detector.process(value) for value in x[850:950].tolist()]
    kinds = {"score": float, "grade": float, "threshold": float, "confidence": float}
    kinds.update(attribution=str, expected_value=float, start_of_anomaly=int, imputed=bool)
    assert [list(row) for row in rows] == [list(kinds)] * len(rows)
    assert all(type(row[name]) is kind for row in rows for name, kind in kinds.items())
    pd.testing.assert_frame_equal(pd.DataFrame(rows, index=range(850, 950)), whole.iloc[850:950], check_dtype=False)
    assert rows[50]["grade"] > 0 and rows[50]["attribution"] == "value[t]"


@pytest.mark.parametrize("how", ["pickle", "file"])
def test_state_restores_mid_stream_bit_identically(tmp_path, how):
    x = _stream()
    detector = ThresholdedForest(num_trees=30, sample_size=64)
    detector.run(x[:700])
    if how == "pickle":
        restored = pickle.loads(pickle.dumps(detector))
    else:
        detector.save(tmp_path / "detector.zip")
        restored = ThresholdedForest.load(tmp_path / "detector.zip")
    expected = detector.run(x[700:])
    got = restored.run(x[700:])
    pd.testing.assert_frame_equal(got, expected)
    assert restored.rows_seen_ == detector.rows_seen_ == len(x)


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "not-a-detector.zip"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not an rcforest thresholded file"):
        ThresholdedForest.load(path)
    Forest(num_trees=2, sample_size=4).save(path)
    with pytest.raises(ValueError, match="holds 'rcforest-model', not 'rcforest-thresholded'"):
        ThresholdedForest.load(path)


def test_load_rejects_an_inconsistent_state(tmp_path):
    detector = ThresholdedForest(num_trees=10, sample_size=32)
    detector.run(_stream()[:300])
    detector.save(tmp_path / "good.zip")
    with zipfile.ZipFile(tmp_path / "good.zip") as source, zipfile.ZipFile(tmp_path / "bad.zip", "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "rcforest.json":
                header = json.loads(data)
                header["params"]["detector"]["rows_seen_"] = 5000
                data = json.dumps(header)
            target.writestr(name, data)
    with pytest.raises(ValueError, match="history does not match"):
        ThresholdedForest.load(tmp_path / "bad.zip")


def _fixture_series():
    """The series the stored detector fixture was made from (the first 200 rows) and continues on."""
    t = np.arange(260)
    x = 10 * np.sin(2 * np.pi * t / 20) + np.cos(t * 0.37)
    x[150] = np.nan
    x[230] += 25
    return x


@pytest.mark.parametrize("name", ["thresholded-v1.zip", "thresholded-v2.zip"])
def test_files_saved_by_earlier_versions_still_load(tmp_path, name):
    # ThresholdedForest(shingle_size=4, num_trees=3, sample_size=16, random_state=3) after the first 200 rows,
    # saved by rcforest 0.1.0: v1 with the single-module detector, v2 with the thresholder's likelihood state;
    # both with every array of the forest's trees (forest layout version 1).
    x = _fixture_series()
    restored = ThresholdedForest.load(FIXTURES / name)
    assert restored.rows_seen_ == 200 and restored.period_ == 20 and restored.shingle_size_ == 4
    fresh = ThresholdedForest(shingle_size=4, num_trees=3, sample_size=16, random_state=3)
    fresh.run(x[:200])
    fresh.save(tmp_path / "again.zip")
    # The history and transform statistics are saved as they were, array for array; the forest holds
    # the same trees, now stored as structure and points, its node numbers keeping leaves apart.
    with zipfile.ZipFile(FIXTURES / name) as old, zipfile.ZipFile(tmp_path / "again.zip") as new:
        arrays = [name for name in old.namelist() if name.endswith(".npy") and not name.startswith("forest/")]
        assert arrays == ["history.npy", "mean.npy", "scale.npy", "residual.npy"]
        for member in arrays:
            assert old.read(member) == new.read(member), member
        assert "forest/tree.box_min.npy" in old.namelist() and "forest/tree.points.npy" in new.namelist()
    old_trees, new_trees = restored.forest_._trees, fresh.forest_._trees
    for field in ("rng", "heap_weight", "heap_size"):
        assert getattr(old_trees, field).tobytes() == getattr(new_trees, field).tobytes(), field
    for t in range(3):
        check_invariants(old_trees, t)
        # The same trees, but for the cuts (drawn from exact boxes then, from single-precision ones
        # now) and the origin the points are relative to (none then, the first point now).
        assert_similar(flat_absolute(old_trees, t), flat_absolute(new_trees, t), abs=1e-6)
        old_kept = [leaf_of(old_trees, t, leaf) for leaf in old_trees.heap_leaf[t]]
        new_kept = [leaf_of(new_trees, t, leaf) + new_trees.origin for leaf in new_trees.heap_leaf[t]]
        np.testing.assert_allclose(old_kept, new_kept, rtol=1e-12)
    # The restored detector continues as one that saw the same rows, to the precision of the boxes.
    got = restored.run(x[200:])
    pd.testing.assert_frame_equal(got, fresh.run(x[200:]), rtol=1e-5)
    assert got.index[got["grade"] > 0].tolist() == [230]


def test_a_saved_detector_continues_bit_identically(tmp_path):
    x = _fixture_series()
    detector = ThresholdedForest(shingle_size=4, num_trees=3, sample_size=16, random_state=3)
    detector.run(x[:200])
    detector.save(tmp_path / "detector.zip")
    restored = ThresholdedForest.load(tmp_path / "detector.zip")
    for field in detector.forest_._trees._fields:
        got, expected = getattr(restored.forest_._trees, field), getattr(detector.forest_._trees, field)
        assert got.tobytes() == expected.tobytes(), field
    pd.testing.assert_frame_equal(restored.run(x[200:]), detector.run(x[200:]), check_exact=True)
    restored.save(tmp_path / "restored.zip")
    detector.save(tmp_path / "detector.zip")
    with zipfile.ZipFile(tmp_path / "restored.zip") as one, zipfile.ZipFile(tmp_path / "detector.zip") as other:
        assert one.namelist() == other.namelist()
        for member in one.namelist():
            assert one.read(member) == other.read(member), member


def test_save_and_load_before_any_data(tmp_path):
    ThresholdedForest(period=24).save(tmp_path / "empty.zip")
    restored = ThresholdedForest.load(tmp_path / "empty.zip")
    assert restored.period == 24 and restored.forest_ is None and restored.rows_seen_ == 0
    assert len(restored.run(_stream()[:200])) == 200


def test_multivariate_frame_names_the_column():
    rng = np.random.default_rng(3)
    t = np.arange(1500)
    frame = pd.DataFrame(
        {
            "cpu": 50 + 20 * np.sin(2 * np.pi * t / 60) + rng.normal(size=t.size),
            "latency": 5 + np.cos(2 * np.pi * t / 60) + 0.05 * rng.normal(size=t.size),
        },
        index=pd.date_range("2024-01-01", periods=t.size, freq="min"),
    )
    frame.iloc[1000, 1] += 3.0  # a latency spike, small against cpu's scale
    frame.iloc[1200, 0] = np.nan  # a gap
    out = ThresholdedForest().run(frame)
    assert out.index.equals(frame.index)
    alerts = out[out["grade"] > 0]
    assert list(alerts.index) == [frame.index[1000]]
    assert alerts["attribution"].iloc[0].startswith("latency")
    assert out["imputed"].iloc[1200]


def test_process_accepts_dicts_and_scalars():
    detector = ThresholdedForest(num_trees=20, sample_size=32)
    for i in range(200):
        result = detector.process({"a": np.sin(i / 5), "b": np.cos(i / 5)})
    assert set(result) == set(COLUMNS)
    assert np.isfinite(result["score"])
    with pytest.raises(ValueError, match="lacks columns"):
        detector.process({"a": 1.0})
    with pytest.raises(ValueError, match="started on 2"):
        detector.process([1.0, 2.0, 3.0])
    single = ThresholdedForest(num_trees=20, sample_size=32)
    assert single.process(1.0)["grade"] == 0.0
    assert single.process(None)["imputed"] is True


def test_bad_parameters_and_input():
    with pytest.raises(ValueError, match="transform"):
        ThresholdedForest(transform="log")
    with pytest.raises(TypeError, match="num_trees"):
        ThresholdedForest(num_trees=2.5)
    with pytest.raises(TypeError, match="numbers"):
        ThresholdedForest().run(["a", "b"])
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        ThresholdedForest().run(np.zeros((3, 2, 2)))


@pytest.mark.parametrize("transform", ["normalize", "difference", "normalize_difference", "none"])
def test_other_transforms_catch_a_spike(transform):
    x = _stream()
    out = ThresholdedForest(transform=transform, num_trees=50, sample_size=128).run(x)
    alerts = np.flatnonzero(out["grade"].to_numpy() > 0)
    assert 900 in alerts
    assert len(alerts) <= 3
