"""Extreme finite values and corrupt trees: the kernels end, scores are finite, trees stay valid.

Input values of magnitude up to ``MAX_ABS_VALUE`` (1e30) work, subnormals
included; larger finite values are refused before anything changes, and the
detector takes readings beyond ``MAX_READING`` (1e29) as that magnitude. Whatever
could hang runs in a child process with a timeout, so that a regression
fails the test instead of stalling the suite.
"""

import json

import numpy as np
import pandas as pd
import pytest

from rcforest import Forest, _kernels
from rcforest._core import MAX_ABS_VALUE
from rcforest._score import score_point
from rcforest._tree import allocate_trees
from rcforest.detector.period import estimate_period, estimate_period_robust
from rcforest.detector.preprocess import MAX_READING, SCALE_FLOOR, TRANSFORMS
from rcforest.thresholded import ThresholdedForest
from tests.naive import NaiveTree, check_invariants, describe_flat, insert_values
from tests.test_hostile import _bounded, _members, _rewrite

TINY = 5e-324  # the smallest subnormal float64
HUGE = np.finfo(np.float64).max  # about 1.8e308
BEYOND_VALUE = np.nextafter(MAX_ABS_VALUE, np.inf)  # the smallest magnitude the forest refuses
BEYOND_READING = np.nextafter(MAX_READING, np.inf)  # the smallest magnitude the detector clips


def _sound(forest):
    failures = np.empty(forest.num_trees, np.int64)
    _kernels.check_trees(forest._trees, failures)
    return not failures.any()


def _state(forest):
    return {name: value.copy() for name, value in forest._trees._asdict().items()}, forest._tail.copy()


def _same_state(forest, before):
    arrays, tail = before
    now = forest._trees._asdict()
    return all(np.array_equal(now[k], v) for k, v in arrays.items()) and np.array_equal(forest._tail, tail)


# ----------------------------------------------------------- refused values


@pytest.mark.parametrize("value", [HUGE, -HUGE, 1e308, -1e150, 3.5e38, BEYOND_VALUE, -BEYOND_VALUE, -1e31])
@pytest.mark.parametrize("call", ["fit", "update", "score", "codisp", "attribution", "score_update"])
def test_values_beyond_the_bound_are_refused_before_anything_changes(value, call):
    forest = Forest(num_trees=5, sample_size=16, shingle_size=2, random_state=0)
    forest.fit(np.random.default_rng(0).normal(size=(50, 2)))
    before = _state(forest)
    rows = [[0.5, 1.0], [value, 0.0], [1.0, 2.0]]
    with pytest.raises(ValueError, match=r"holds .* at row 1, column 0; rcforest accepts magnitudes up to 1e\+30"):
        getattr(forest, call)(rows)
    assert _same_state(forest, before)
    assert forest.points_seen_ == 49


def test_the_bound_is_named_with_a_pandas_label():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, -2e30]}, index=["x", "y"])
    with pytest.raises(ValueError, match=r"row 'y', column 1; .* rescale the data"):
        Forest(num_trees=2, sample_size=4).fit(frame)


def test_nan_and_inf_keep_their_own_message():
    with pytest.raises(ValueError, match="drop or impute NaN and infinite values"):
        Forest(num_trees=2, sample_size=4).fit([[1.0], [np.inf]])


@pytest.mark.parametrize("where", ["box", "tail"])
def test_a_model_file_with_values_beyond_the_bound_is_refused(tmp_path, monkeypatch, where):
    # A forest built while the bound was lifted: consistent trees, far values.
    monkeypatch.setattr("rcforest._core.MAX_ABS_VALUE", np.inf)
    series = np.arange(30.0)
    series[-1 if where == "tail" else 3] = 3e30  # beyond twice the bound from the origin (points are relative)
    forest = Forest(num_trees=3, sample_size=32, shingle_size=2, random_state=0).fit(series)
    path = tmp_path / "far.rcf"
    forest.save(path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"inconsistent forest: .*beyond [12]e\+30"):
        Forest.load(path)


# ---------------------------------------------------- values that work

WORKS = """
import tempfile
import numpy as np
from rcforest import Forest, _kernels
from rcforest._core import MAX_ABS_VALUE as BOUND

def sound(forest):
    failures = np.empty(forest.num_trees, np.int64)
    _kernels.check_trees(forest._trees, failures)
    assert not failures.any(), failures

{body}
print("done")
"""


def _works(body, timeout=300):
    assert _bounded(WORKS.format(body=body), timeout=timeout).splitlines()[-1] == "done"


def test_the_issue_reproducers_end_with_valid_trees():
    # 1e308 is refused; the largest accepted magnitude takes its place.
    _works(
        """
f = Forest(num_trees=10, sample_size=32, random_state=0).fit(np.random.default_rng(0).normal(size=(200, 2)))
for far in (BOUND, -BOUND):
    assert np.isfinite(f.score([[far, far]])).all()
    assert np.isfinite(f.codisp([[far, far]])).all()
    high, low = f.attribution([[far, -far]])
    assert np.isfinite(high).all() and np.isfinite(low).all()
    f.update([[far, far]])
    sound(f)
    assert np.isfinite(f.score([[far, far], [0.0, 0.0]])).all()
f = Forest(num_trees=10, sample_size=32, random_state=0).update([[0.0], [5e-324]] * 100)
sound(f)
assert np.isfinite(f.score_update([[0.0], [5e-324], [-5e-324]] * 30, kind="codisp")).all()
sound(f)
g = Forest(num_trees=10, sample_size=32, random_state=0).fit([[BOUND], [-BOUND]] * 100)
sound(g)
assert np.isfinite(g.score([[0.0], [BOUND], [-BOUND], [5e-324]])).all()
"""
    )


def test_a_48_value_shingle_of_extremes_ends_with_finite_scores():
    _works(
        """
rng = np.random.default_rng(1)
series = rng.choice([BOUND, -BOUND, 0.0, 5e-324, -5e-324, 1.0], size=400)
f = Forest(num_trees=10, sample_size=64, shingle_size=48, random_state=0)
scores = f.score_update(series)
assert np.isfinite(scores[47:]).all()
sound(f)
assert np.isfinite(f.codisp(series[:100])[47:]).all()
assert np.isfinite(f.score(np.tile([BOUND, -BOUND], 50))[47:]).all()
g = Forest(num_trees=10, sample_size=64, shingle_size=48, random_state=0).fit(np.tile([BOUND, -BOUND], 100))
sound(g)
assert np.isfinite(g.score(series)[47:]).all()
# A model file holds values at the bound: it loads and scores the same.
with tempfile.TemporaryDirectory() as folder:
    for forest in (f, g):
        forest.save(folder + "/edge.rcf")
        restored = Forest.load(folder + "/edge.rcf")
        sound(restored)
        assert np.array_equal(restored.score(series), forest.score(series), equal_nan=True)
"""
    )


def test_subnormal_spans_give_the_naive_reference_tree():
    # Points a subnormal apart: every insertion separates them, as the reference does.
    values = [0.0, TINY, -TINY, 2 * TINY, 0.0, TINY, 1e-310, MAX_ABS_VALUE, -MAX_ABS_VALUE, 1.0]
    for seed in range(20):
        rng = np.random.default_rng(seed)
        trees = allocate_trees(1, 64, 2, np.array([seed], np.uint64), store_rows=40)
        naive = NaiveTree(seed)
        for _ in range(40):
            point = [float(v) for v in rng.choice(values, size=2)]
            insert_values(trees, 0, np.array(point))
            naive.insert(point)
        assert describe_flat(trees, 0) == naive.structure()
        check_invariants(trees, 0)
        for q in [[TINY, 0.0], [3 * TINY, -TINY], [MAX_ABS_VALUE, 0.0], [0.5, 0.5]]:
            score = score_point(trees, 0, np.array(q))
            assert np.isfinite(score)
            assert score == pytest.approx(naive.score(q), rel=1e-12)


# ------------------------------------------------------------ corrupt trees

CORRUPT = """
import numpy as np
from rcforest import Forest

f = Forest(num_trees=4, sample_size=16, random_state=0).fit(np.random.default_rng(0).normal(size=(60, 2)))
tr = f._trees
root = int(tr.root[1])
if "{damage}" == "down":  # the root is its own child: every descent cycles
    tr.left[1, root] = tr.right[1, root] = root
else:  # the root's parent is one of its leaves: every walk up cycles
    tr.parent[1, root] = int(tr.heap_leaf[1, 0])
rows = np.vstack([[[40.0, -40.0]], np.random.default_rng(1).normal(size=(300, 2))])
outcomes = []
for call in ("score", "codisp", "attribution", "update", "score_update"):
    try:
        getattr(f, call)(rows)
        outcomes.append(call + " returned")
    except RuntimeError as error:
        assert "corrupt" in str(error), error
        outcomes.append(call + " raised")
print(" ".join(outcomes))
"""


@pytest.mark.parametrize("damage", ["down", "up"])
def test_a_corrupt_tree_raises_instead_of_spinning(damage):
    out = _bounded(CORRUPT.format(damage=damage), timeout=300)
    assert out.splitlines()[-1] == ("score raised codisp raised attribution raised update raised score_update raised")


# ----------------------------------------------------- the detector (item 5)


def _sine(n=1500, seed=0):
    t = np.arange(n)
    return 10 * np.sin(2 * np.pi * t / 50) + np.random.default_rng(seed).normal(size=n)


def _detector_state(detector, path):
    """Every byte of the detector's state, as its saved file."""
    detector.save(path)
    return path.read_bytes()


def test_saved_states_are_byte_comparable(tmp_path):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    detector.run(_sine(200))
    assert _detector_state(detector, tmp_path / "a") == _detector_state(detector, tmp_path / "b")


@pytest.mark.parametrize("value", [1e154, 1e200, -HUGE, HUGE])
def test_estimate_period_reads_any_finite_magnitude(value):
    series = _sine(600)
    series[100] = value
    # The scale is irrelevant: the outlier's magnitude changes nothing but itself.
    assert estimate_period(series) == estimate_period(np.ldexp(series, -1000))
    assert estimate_period_robust(series) == 50
    assert estimate_period(_sine(600) * 1e300) == estimate_period(_sine(600)) == 50


@pytest.mark.parametrize("row", [60, 700])
def test_an_outlier_in_or_after_warm_up_leaves_every_row_scored(row):
    series = _sine()
    series[row] = 1e300
    detector = ThresholdedForest(num_trees=20, sample_size=64)
    out = detector.run(series)
    scores = out["score"].to_numpy()
    assert np.isnan(scores[:128]).all() and np.isfinite(scores[128:]).all()
    assert detector.rows_seen_ == series.size
    assert detector.period_ == 50
    if row >= 128:
        assert out["grade"].iloc[row] > 0
    # Row by row, the same.
    again = ThresholdedForest(num_trees=20, sample_size=64)
    for value in series[:800]:
        again.process(value)
    assert again.rows_seen_ == 800


def test_a_huge_reading_on_a_quiet_series_is_scored_and_flagged():
    # The issue's reproducers: 1e307 failed with "X holds inf", 1e305 hung.
    out = _bounded(
        """
import numpy as np
from rcforest.thresholded import ThresholdedForest
quiet = 5 + np.random.default_rng(0).normal(scale=1e-3, size=400)
for value in (1e305, 1e307, -HUGE, HUGE):
    detector = ThresholdedForest(num_trees=20, sample_size=64)
    detector.run(quiet)
    result = detector.process(value)
    assert np.isfinite(result["score"]) and result["grade"] > 0, result
    after = detector.run(quiet[:50])
    assert np.isfinite(after["score"]).all()
    assert detector.rows_seen_ == 451
print("done")
""".replace("HUGE", repr(HUGE)),
        timeout=300,
    )
    assert out.splitlines()[-1] == "done"


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_readings_beyond_the_detector_bound_count_as_the_bound(transform):
    # After a constant warm-up the normalising scale has no spread to measure, and
    # readings of alternating sign at the bound give the largest transformed values
    # the forest is fed (2 * MAX_READING): they must stay within its bound.
    outs = []
    for magnitude in (MAX_READING, BEYOND_READING, 1e30, HUGE):
        detector = ThresholdedForest(num_trees=10, sample_size=32, transform=transform)
        detector.run(np.zeros(300))
        out = detector.run(np.tile([magnitude, -magnitude, 0.0], 40))
        assert np.isfinite(out["score"]).all() and np.isfinite(out["threshold"]).all()
        outs.append(out)
    assert (outs[0]["grade"] > 0).any()
    for out in outs[1:]:
        pd.testing.assert_frame_equal(out, outs[0])


@pytest.mark.parametrize(
    "call, args, message",
    [
        ("process", ({"value": "high"},), "must hold numbers"),
        ("process", ({"other": 1.0},), "lacks columns"),
        ("process", ([1.0, 2.0],), "got 2 columns"),
        ("process", ({"value": [1.0, 2.0]},), "one number per column"),
        ("run", (np.ones((10, 2)),), "got 2 columns"),
        ("run", (np.empty((5, 0)),), "is empty"),
        ("run", (["a", "b"],), "must hold numbers"),
    ],
)
def test_a_refused_call_leaves_the_detector_byte_identical(tmp_path, call, args, message):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    detector.run(_sine(300))
    before = _detector_state(detector, tmp_path / "before")
    with pytest.raises((ValueError, TypeError), match=message):
        getattr(detector, call)(*args)
    assert _detector_state(detector, tmp_path / "after") == before
    assert np.isfinite(detector.process(1.0)["score"])


# ------------------------------------------------ the detector (item 11)


@pytest.mark.parametrize("row", [{"a": "x"}, {}, {"a": [1.0, 2.0]}, {"a": None, "b": "?"}])
def test_a_bad_dict_on_a_fresh_detector_sets_no_columns(row):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    with pytest.raises((TypeError, ValueError)):  # text is a TypeError, a missing column a ValueError
        detector.process(row)
    assert detector.columns_ is None and detector.rows_seen_ == 0
    detector.process({"b": 1.0, "c": 2.0})
    assert detector.columns_ == ["b", "c"]


@pytest.mark.parametrize("data", [np.empty((4, 0)), np.empty((0, 0)), pd.DataFrame(index=range(3))])
def test_a_run_without_columns_is_refused_and_the_detector_carries_on(data):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    with pytest.raises(ValueError, match="is empty"):
        detector.run(data)
    assert detector.columns_ is None
    out = detector.run(np.random.default_rng(0).normal(size=(200, 2)))
    assert np.isfinite(out["score"].to_numpy()[128:]).all() and detector.columns_ == ["x0", "x1"]


@pytest.mark.parametrize("data", [[], np.empty((0, 3))])
def test_a_run_without_rows_changes_nothing(data):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    assert len(detector.run(data)) == 0
    assert detector.columns_ is None and detector.rows_seen_ == 0
    detector.run(np.random.default_rng(0).normal(size=(10, 2)))
    assert detector.columns_ == ["x0", "x1"]


@pytest.fixture
def detector_file(tmp_path):
    detector = ThresholdedForest(num_trees=5, sample_size=32)
    detector.run(_sine(300))
    path = tmp_path / "detector.zip"
    detector.save(path)
    return path


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("history", lambda a: a.__setitem__((5, 0), np.nan), "history holds NaN"),
        ("history", lambda a: a.__setitem__((5, 0), np.inf), "history holds NaN"),
        ("mean", lambda a: a.__setitem__(0, 1e300), "mean is not finite or beyond"),
        ("mean", lambda a: a.__setitem__(0, -BEYOND_READING), r"mean is not finite or beyond 1e\+29"),
        ("scale", lambda a: a.__setitem__(0, 1e-300), "scale is not finite or below"),
        ("scale", lambda a: a.__setitem__(0, np.nan), "scale is not finite or below"),
        ("residual", lambda a: a.__setitem__(0, 0.0), "residual is not finite and positive"),
    ],
)
def test_a_detector_file_with_statistics_that_would_overflow_is_refused(detector_file, name, change, message):
    header, arrays = _members(detector_file)
    change(arrays[name])
    _rewrite(detector_file, header, arrays)
    with pytest.raises(ValueError, match=message):
        ThresholdedForest.load(detector_file)


def test_a_detector_state_holding_a_huge_reading_loads_and_carries_on(detector_file):
    # States saved before readings were bounded hold them as they came.
    header, arrays = _members(detector_file)
    arrays["history"][-3, 0] = 1e300
    _rewrite(detector_file, header, arrays)
    detector = ThresholdedForest.load(detector_file)
    out = detector.run(_sine(100, seed=1))
    assert np.isfinite(out["score"]).all() and detector.rows_seen_ == 400


def test_a_detector_state_with_statistics_at_their_bounds_loads_and_carries_on(detector_file):
    header, arrays = _members(detector_file)
    arrays["mean"][0] = -MAX_READING
    arrays["scale"][0] = SCALE_FLOOR * MAX_READING  # the floor for this mean
    _rewrite(detector_file, header, arrays)
    detector = ThresholdedForest.load(detector_file)
    out = detector.run(np.tile([1e25, -1e25, 0.0], 40))
    assert np.isfinite(out["score"]).all() and detector.rows_seen_ == 420


DETECTOR_FUZZ = """
import io, json, sys, zipfile
import numpy as np
from rcforest.thresholded import ThresholdedForest

source, seed, trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with zipfile.ZipFile(source) as archive:
    members = {name: archive.read(name) for name in archive.namelist()}
rng = np.random.default_rng(seed)
numbers = [-1, 0, 1, 7, 2**31, -(2**63), 1e308, -1e308, 5e-324, 0.5, float("nan"), float("inf")]
json_values = numbers + ["x", True, None, [], {}]
paths = [("detector", k) for k in ("rows_seen_", "period_", "shingle_size_")]
paths += [("detector", "stats", k) for k in ("mean", "var", "count")]
anomaly = ("active", "reported", "quiet", "since", "last_strength", "since_alert", "memory", "reports")
paths += [("detector", "anomaly", k) for k in anomaly]
arrays = ["history.npy", "mean.npy", "scale.npy", "residual.npy"]
arrays += [f"forest/tree.{name}.npy" for name in ("left", "cut_value", "point", "leaf_mass", "points", "heap_weight")]
series = 10 * np.sin(2 * np.pi * np.arange(80) / 50)
outcome = {"refused": 0, "loaded": 0}
for trial in range(trials):
    mutated = dict(members)
    if trial % 2:
        header = json.loads(mutated["rcforest.json"])
        path = paths[rng.integers(len(paths))]
        node = header["params"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = json_values[rng.integers(len(json_values))]
        mutated["rcforest.json"] = json.dumps(header).encode()
    else:
        name = arrays[rng.integers(len(arrays))]
        array = np.load(io.BytesIO(mutated[name]), allow_pickle=False).copy()
        value = numbers[rng.integers(len(numbers))]
        if array.dtype.kind in "iu":  # the forest's links, rows and masses: an integer in the dtype's range
            info = np.iinfo(array.dtype)
            value = int(np.clip(value, info.min, info.max)) if np.isfinite(value) and value == int(value) else 3
        array.flat[rng.integers(array.size)] = value
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        mutated[name] = buffer.getvalue()
    target = source + ".mutated"
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in mutated.items():
            archive.writestr(name, data)
    try:
        detector = ThresholdedForest.load(target)
    except ValueError:
        outcome["refused"] += 1
        continue
    outcome["loaded"] += 1
    # A detector that loads must work: every row scored, every value finite.
    out = detector.run(series)
    assert np.isfinite(out["score"]).all() and np.isfinite(out["threshold"]).all(), trial
    assert np.isfinite(out["grade"]).all(), trial
    result = detector.process(1.0)
    assert np.isfinite(result["score"]) and np.isfinite(result["grade"]), trial
    detector.save(target)
print(json.dumps(outcome))
"""


def test_every_mutated_detector_file_loads_into_a_working_detector_or_is_refused(detector_file):
    code = DETECTOR_FUZZ.replace("sys.argv[1], int(sys.argv[2]), int(sys.argv[3])", f"{str(detector_file)!r}, 0, 200")
    outcome = json.loads(_bounded(code).splitlines()[-1])
    assert outcome["refused"] > 50 and outcome["loaded"] > 20, outcome
