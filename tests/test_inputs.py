"""What the library reads as rows: DataFrames by their column names, and only real numbers.

A forest or detector fitted (or first fed) on a DataFrame whose column names
are all strings reads later DataFrames by those names; arrays are read by
position. Dates, durations, text and complex numbers are refused at every
entry point, and a refused call leaves the model as it was.
"""

import datetime
import decimal
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rcforest import Forest, ThresholdedForest

DATA = Path(__file__).parent / "data"
SMALL = {"num_trees": 20, "sample_size": 64, "random_state": 0}


@pytest.fixture(scope="module")
def frame():
    """Two columns on very different scales, so that swapping them changes every score."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"small": rng.normal(0, 1, 600), "large": rng.normal(1000, 100, 600)})


def _scores(forest, rows):
    return np.asarray(forest.score(rows), dtype=float)


def _detector_frame(rows=400, seed=0):
    """A seasonal pair of columns on different scales, with a spike in ``large`` at row 300."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    small = np.sin(2 * np.pi * t / 40) + rng.normal(0, 0.05, rows)
    large = 1000 + 100 * np.cos(2 * np.pi * t / 40) + rng.normal(0, 5, rows)
    large[300] += 800
    return pd.DataFrame({"small": small, "large": large})


def _same(one, other):
    """Whether two outputs of ``process`` are equal, NaN equal to NaN."""
    return one.keys() == other.keys() and all(
        one[k] == other[k] or (isinstance(one[k], float) and np.isnan(one[k]) and np.isnan(other[k])) for k in one
    )


def _detector_bytes(detector, path):
    detector.save(path)
    return path.read_bytes()


# --------------------------------------------------------- columns by name


def test_a_forest_reads_a_dataframe_by_its_column_names(frame):
    forest = Forest(**SMALL).fit(frame)
    assert forest.feature_names_in_ == ["small", "large"]
    rows = frame.iloc[:50]
    swapped = rows[["large", "small"]]
    np.testing.assert_array_equal(_scores(forest, swapped), _scores(forest, rows))
    np.testing.assert_array_equal(forest.codisp(swapped), forest.codisp(rows))
    np.testing.assert_array_equal(forest.displacement(swapped), forest.displacement(rows))
    high, low = forest.attribution(swapped)
    assert list(high.columns) == ["small", "large"]  # in the forest's order, whatever the input's
    pd.testing.assert_frame_equal(high, forest.attribution(rows)[0])
    # Read by position, the swapped frame would score differently: the test can fail.
    assert not np.allclose(_scores(forest, swapped.to_numpy()), _scores(forest, rows))


def test_streaming_reads_by_name_too(frame):
    by_name, in_order = Forest(**SMALL), Forest(**SMALL)
    by_name.update(frame.iloc[:300])
    in_order.update(frame.iloc[:300])
    swapped = frame.iloc[300:400][["large", "small"]]
    np.testing.assert_array_equal(by_name.score_update(swapped), in_order.score_update(frame.iloc[300:400]))
    assert pickle.dumps(by_name) == pickle.dumps(in_order)


@pytest.mark.parametrize(
    ("columns", "phrases"),
    [
        (["small", "other"], ["missing ['large']", "unexpected ['other']"]),
        (["small"], ["missing ['large']"]),
        (["small", "large", "extra"], ["unexpected ['extra']"]),
    ],
    ids=["renamed", "missing", "extra"],
)
def test_other_columns_are_refused_by_name_and_change_nothing(frame, columns, phrases):
    forest = Forest(**SMALL).fit(frame)
    probe = frame.iloc[:20]
    before, scores = pickle.dumps(forest), _scores(forest, probe)
    bad = pd.DataFrame(np.ones((5, len(columns))), columns=columns)
    for method in (forest.score, forest.codisp, forest.displacement, forest.attribution, forest.update):
        with pytest.raises(ValueError, match="fitted on") as refused:
            method(bad)
        for phrase in phrases:
            assert phrase in str(refused.value)
    assert pickle.dumps(forest) == before
    np.testing.assert_array_equal(_scores(forest, probe), scores)


def test_arrays_and_unnamed_frames_are_read_by_position(frame):
    forest = Forest(**SMALL).fit(frame)
    rows = frame.iloc[:30]
    np.testing.assert_array_equal(_scores(forest, rows.to_numpy()), _scores(forest, rows))
    by_position = pd.DataFrame(rows.to_numpy())  # integer labels are positions, not names
    np.testing.assert_array_equal(_scores(forest, by_position), _scores(forest, rows))
    on_array = Forest(**SMALL).fit(frame.to_numpy())
    assert on_array.feature_names_in_ == ["x0", "x1"]
    renamed = rows.set_axis(["p", "q"], axis=1)  # a forest fitted on an array has no names to match
    np.testing.assert_array_equal(_scores(on_array, renamed), _scores(on_array, rows.to_numpy()))


def test_a_frame_with_duplicate_names_is_refused_as_such(frame):
    twice = frame.set_axis(["a", "a"], axis=1)
    with pytest.raises(ValueError, match=r"duplicate column names \['a'\]"):
        Forest(**SMALL).fit(twice)
    forest = Forest(**SMALL).fit(frame)
    before = pickle.dumps(forest)
    with pytest.raises(ValueError, match="duplicate column names"):
        forest.score(frame.set_axis(["small", "small"], axis=1))
    assert pickle.dumps(forest) == before
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    with pytest.raises(ValueError, match="duplicate column names"):
        detector.run(twice)
    assert detector.rows_seen_ == 0 and detector.columns_ is None


def test_names_survive_saving_and_pickling(frame, tmp_path):
    forest = Forest(**SMALL).fit(frame)
    forest.save(tmp_path / "model.rcf")
    for copy in (Forest.load(tmp_path / "model.rcf"), pickle.loads(pickle.dumps(forest))):
        assert copy.feature_names_in_ == ["small", "large"]
        swapped = frame.iloc[:40][["large", "small"]]
        np.testing.assert_array_equal(_scores(copy, swapped), _scores(forest, frame.iloc[:40]))
        with pytest.raises(ValueError, match="missing"):
            copy.score(frame.iloc[:5][["small"]])
    on_array = Forest(**SMALL).fit(frame.to_numpy())
    on_array.save(tmp_path / "array.rcf")
    loaded = Forest.load(tmp_path / "array.rcf")
    renamed = frame.iloc[:10].set_axis(["x1", "x0"], axis=1)  # an array's default names are not matched
    np.testing.assert_array_equal(_scores(loaded, renamed), _scores(on_array, frame.iloc[:10].to_numpy()))


def _without_named(source, target, section=None):
    """Copy a saved file, dropping the field that says whether its columns are named (as older files lack it)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as copy:
        for name in archive.namelist():
            content = archive.read(name)
            if name == "rcforest.json":
                header = json.loads(content)
                params = header["params"] if section is None else header["params"][section]
                params.pop("named" if section is None else "named_")
                content = json.dumps(header)
            copy.writestr(name, content)
    return target


def test_files_without_the_field_still_load(frame, tmp_path):
    forest = Forest(**SMALL).fit(frame)
    forest.save(tmp_path / "new.rcf")
    old = Forest.load(_without_named(tmp_path / "new.rcf", tmp_path / "old.rcf"))
    swapped = frame.iloc[:20][["large", "small"]]
    np.testing.assert_array_equal(_scores(old, swapped), _scores(forest, frame.iloc[:20]))  # real names: by name
    v1 = Forest.load(DATA / "forest-v1.rcf")  # fitted on an array (x0, x1): by position
    rows = np.random.default_rng(1).normal(size=(10, 2))
    np.testing.assert_array_equal(_scores(v1, pd.DataFrame(rows, columns=["b", "a"])), _scores(v1, rows))
    detector = ThresholdedForest.load(DATA / "thresholded-v2.zip")
    assert detector.columns_ == ["value"]
    detector.run(pd.DataFrame({"other": [1.0, 2.0]}))  # a lone unnamed column: by position


def test_pickles_from_before_names_were_matched_load(frame):
    forest = Forest(**SMALL).fit(frame)
    state = forest.__getstate__().copy()
    del state["_named"]
    old = Forest.__new__(Forest)
    old.__setstate__(state)
    swapped = frame.iloc[:20][["large", "small"]]
    np.testing.assert_array_equal(_scores(old, swapped), _scores(forest, frame.iloc[:20]))
    detector, reference = (
        ThresholdedForest(num_trees=10, sample_size=32),
        ThresholdedForest(num_trees=10, sample_size=32),
    )
    detector.run(frame.iloc[:200])
    reference.run(frame.iloc[:200])
    state = detector.__dict__.copy()
    del state["_named"]
    old_detector = ThresholdedForest.__new__(ThresholdedForest)
    old_detector.__setstate__(pickle.loads(pickle.dumps(state)))
    pd.testing.assert_frame_equal(
        old_detector.run(frame.iloc[200:260][["large", "small"]]), reference.run(frame.iloc[200:260])
    )


def test_a_detector_reads_a_dataframe_by_its_column_names(tmp_path):
    data = _detector_frame()
    by_name, in_order = ThresholdedForest(num_trees=20, sample_size=64), ThresholdedForest(num_trees=20, sample_size=64)
    by_name.run(data.iloc[:200])
    in_order.run(data.iloc[:200])
    swapped = by_name.run(data.iloc[200:][["large", "small"]])
    expected = in_order.run(data.iloc[200:])
    pd.testing.assert_frame_equal(swapped, expected)
    assert expected["grade"].idxmax() == 300 and expected.loc[300, "attribution"].startswith("large")
    # Read by position the spike would be missed or blamed on the wrong column: the test can fail.
    positional = ThresholdedForest(num_trees=20, sample_size=64)
    positional.run(data.iloc[:200])
    wrong = positional.run(data.iloc[200:][["large", "small"]].to_numpy())
    assert not wrong["score"].equals(expected["score"])
    # Kept by a saved state, with the reading by name.
    by_name.save(tmp_path / "state.zip")
    in_order.save(tmp_path / "state2.zip")
    more = _detector_frame(seed=1).iloc[:50]
    expected = in_order.run(more)
    loaded = ThresholdedForest.load(tmp_path / "state.zip")
    pd.testing.assert_frame_equal(loaded.run(more[["large", "small"]]), expected)
    old = ThresholdedForest.load(_without_named(tmp_path / "state2.zip", tmp_path / "old.zip", "detector"))
    pd.testing.assert_frame_equal(old.run(more[["large", "small"]]), expected)


@pytest.mark.parametrize("call", ["run", "process"])
def test_a_detector_refuses_other_columns_and_changes_nothing(tmp_path, call):
    detector = ThresholdedForest(num_trees=20, sample_size=64)
    detector.run(_detector_frame().iloc[:300])
    before = _detector_bytes(detector, tmp_path / "before.zip")
    bad = pd.DataFrame({"small": [1.0], "other": [2.0]})
    with pytest.raises(ValueError, match="missing|lacks"):
        detector.run(bad) if call == "run" else detector.process(bad.iloc[0])
    assert _detector_bytes(detector, tmp_path / "after.zip") == before
    twin = ThresholdedForest.load(tmp_path / "before.zip")
    row = {"large": 1000.0, "small": 0.5}
    assert _same(detector.process(row), twin.process(row))


def test_a_dict_names_the_columns_for_later_frames():
    data = _detector_frame()
    by_dict, by_frame = ThresholdedForest(num_trees=10, sample_size=32), ThresholdedForest(num_trees=10, sample_size=32)
    for _, row in data.iloc[:150].iterrows():
        by_dict.process({"small": row["small"], "large": row["large"]})
    by_frame.run(data.iloc[:150])
    pd.testing.assert_frame_equal(by_dict.run(data.iloc[150:200][["large", "small"]]), by_frame.run(data.iloc[150:200]))


# ----------------------------------------------------- only real numbers


NOT_NUMBERS = [
    np.datetime64("2024-01-01"),
    datetime.datetime(2024, 1, 1),
    datetime.date(2024, 1, 1),
    pd.Timestamp("2024-01-01"),
    datetime.timedelta(days=1),
    np.timedelta64(3, "D"),
    pd.Timedelta("1h"),
    pd.NaT,
    "1.5",
    b"1.5",
    1 + 2j,
    np.complex128(1),
    [1.0, np.datetime64("2024-01-01")],
    [1.0, "2"],
    [1.0, object()],
]


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_process_refuses_what_is_not_a_number_and_changes_nothing(tmp_path, value):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    detector.run(np.sin(np.arange(300) / 5))
    before = _detector_bytes(detector, tmp_path / "before.zip")
    with pytest.raises(TypeError, match="must hold"):
        detector.process(value)
    assert _detector_bytes(detector, tmp_path / "after.zip") == before
    fresh = ThresholdedForest(num_trees=5, sample_size=32)
    with pytest.raises(TypeError):
        fresh.process(value)
    assert fresh.rows_seen_ == 0 and fresh.columns_ is None


@pytest.mark.parametrize("value", [True, np.bool_(True), decimal.Decimal("1"), 1, np.float32(1)], ids=repr)
def test_booleans_and_other_real_numbers_are_numbers(value):
    detector, reference = ThresholdedForest(num_trees=5, sample_size=32), ThresholdedForest(num_trees=5, sample_size=32)
    for row in np.sin(np.arange(200) / 5):
        detector.process(row)
        reference.process(row)
    assert _same(detector.process(value), reference.process(1.0))


def test_pandas_missing_values_are_missing():
    detector, reference = ThresholdedForest(num_trees=5, sample_size=32), ThresholdedForest(num_trees=5, sample_size=32)
    detector.run(np.sin(np.arange(200) / 5))
    reference.run(np.sin(np.arange(200) / 5))
    out = detector.process(pd.NA)
    assert out["imputed"] and _same(out, reference.process(np.nan))
    assert _same(detector.process({"value": None}), reference.process(float("nan")))


FOREST_METHODS = ["fit", "score", "codisp", "displacement", "attribution", "update", "score_update"]


@pytest.mark.parametrize("method", FOREST_METHODS)
@pytest.mark.parametrize(
    "bad",
    [
        [[0.5, np.datetime64("2024-01-01")]],
        [[0.5, datetime.timedelta(1)]],
        [[0.5, "1"]],
        np.array([["0.5", "1"]]),
        [[0.5, 1j]],
        pd.DataFrame({"a": [0.5], "b": [1 + 1j]}),
        pd.DataFrame({"a": [0.5], "b": pd.to_datetime(["2024-01-01"])}),
        pd.DataFrame({"a": [0.5], "b": pd.to_timedelta([1], "D")}),
    ],
    ids=[
        "datetime64",
        "timedelta",
        "text",
        "text-array",
        "complex",
        "complex-column",
        "date-column",
        "duration-column",
    ],
)
def test_every_forest_entry_point_refuses_non_numbers(frame, method, bad):
    forest = Forest(**SMALL).fit(frame.to_numpy())
    probe = frame.to_numpy()[:20]
    before, scores = pickle.dumps(forest), _scores(forest, probe)
    with pytest.raises(TypeError, match="must hold|hold complex|hold dates"):
        getattr(forest, method)(bad)
    assert pickle.dumps(forest) == before
    np.testing.assert_array_equal(_scores(forest, probe), scores)


def test_a_complex_column_is_refused_by_the_detector(tmp_path):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    detector.run(pd.DataFrame({"value": np.sin(np.arange(300) / 5)}))
    before = _detector_bytes(detector, tmp_path / "before.zip")
    with pytest.raises(TypeError, match="complex"):
        detector.run(pd.DataFrame({"value": np.ones(3) + 1j}))
    with pytest.raises(TypeError, match="complex"):
        detector.run(np.ones(3) + 1j)
    assert _detector_bytes(detector, tmp_path / "after.zip") == before
