"""One reading per call (rcforest._reading): the same results as the batch path, bit for bit, and the same errors."""

import pickle

import numpy as np
import pandas as pd
import pytest

from rcforest import Forest, _reading
from tests.naive import check_invariants


def _series(n=900, width=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    values = 20 * np.sin(2 * np.pi * t / 50 + np.arange(width)) + rng.normal(size=(n, width))
    values[n // 2] += 30  # an anomaly
    values[::97] = -0.0  # negative zeros are read as zeros on both paths
    return values if width > 1 else values[:, 0]


def _forest(shingle_size, time_decay=0.01):
    return Forest(num_trees=20, sample_size=32, shingle_size=shingle_size, time_decay=time_decay, random_state=5)


def _as_reading(value, kind):
    """One reading in one of the forms a live stream passes."""
    if kind == "float":
        return float(value) if np.ndim(value) == 0 else value.tolist()
    if kind == "numpy":
        return np.float64(value) if np.ndim(value) == 0 else np.asarray(value, np.float64)
    return [value] if np.ndim(value) == 0 else [value.tolist()]  # one row of a table


@pytest.mark.parametrize("kind", ["float", "numpy", "row"])
@pytest.mark.parametrize(
    ("shingle_size", "width", "time_decay"), [(1, 1, 0.0), (4, 1, 0.01), (3, 2, 0.05), (1, 3, 1.0), (1, 70, 0.01)]
)
def test_a_stream_fed_one_reading_at_a_time_equals_the_bulk_call(shingle_size, width, time_decay, kind):
    series = _series(width=width)
    bulk = _forest(shingle_size, time_decay)
    expected = bulk.score_update(series)
    one = _forest(shingle_size, time_decay)
    # The first call names the columns: a flat list would be read as a column of rows before it.
    got = np.concatenate([one.score_update(series[:1])] + [one.score_update(_as_reading(v, kind)) for v in series[1:]])
    np.testing.assert_array_equal(got, expected)
    assert pickle.dumps(one) == pickle.dumps(bulk)
    fed = _forest(shingle_size, time_decay).update(series[:1])
    for value in series[1:]:
        fed.update(_as_reading(value, kind))
    assert pickle.dumps(fed) == pickle.dumps(bulk)
    for t in range(fed.num_trees):
        check_invariants(fed._trees, t)
    if shingle_size == 1:
        queries = _series(60, width, seed=1) * 1.5
        together = bulk.score(queries)
        np.testing.assert_array_equal([bulk.score(_as_reading(q, kind))[0] for q in queries], together)


def test_the_single_reading_kernel_runs_and_makes_room_when_the_store_is_full(monkeypatch):
    series = _series(3000)
    forest = _forest(4)
    forest.score_update(series[:100])
    calls = {"read": 0, "full": 0}
    compiled_read = _reading.compiled_read

    def counting_read(reader):
        read = compiled_read(reader)

        def counting(*args):
            status, score = read(*args)
            calls["read"] += 1
            calls["full"] += status == _reading.FULL
            return status, score

        return counting

    monkeypatch.setattr(_reading, "compiled_read", counting_read)
    got = [forest.score_update(value)[0] for value in series[100:]]
    assert calls["read"] == 2900 and 0 < calls["full"] < 50  # the kernel took all but the few store-full calls
    np.testing.assert_array_equal(got, _forest(4).score_update(series)[100:])


def test_scores_returned_by_one_reading_are_fresh_arrays():
    forest = _forest(1).fit(_series(200))
    first = forest.score(1.0)
    assert first[0] == forest.score(pd.Series([1.0])).iloc[0]  # the general path's
    second = forest.score_update(2.0)
    assert first is not second and first.shape == second.shape == (1,)


BAD_READINGS = [
    (np.nan, ValueError, "nan at row 0, column 0"),
    (float("inf"), ValueError, "inf"),
    (1e31, ValueError, "magnitudes up to"),
    (10**40, ValueError, "magnitudes up to"),
    ([np.nan], ValueError, "nan"),
    (np.array([np.inf]), ValueError, "inf"),
    ("1.0", TypeError, "text"),
    (np.ones((1, 2)), ValueError, "2 features but the forest was built on 1"),
    (None, TypeError, "array"),
    (1 + 2j, TypeError, "real"),
    (np.datetime64("2020-01-01"), TypeError, "dates"),
    (np.ma.masked_array([1.0], mask=[True]), ValueError, "masked"),
]


@pytest.mark.parametrize(("bad", "error", "match"), BAD_READINGS)
@pytest.mark.parametrize("shingle_size", [1, 4])
def test_a_bad_reading_gets_the_batch_paths_error_and_changes_nothing(shingle_size, bad, error, match):
    forest = _forest(shingle_size)
    forest.score_update(_series(300))
    forest.score_update(1.0)  # the single-reading kernel's handle exists
    before = pickle.dumps(forest)
    seen = forest.points_seen_
    for method in (forest.score_update, forest.update) + ((forest.score,) if shingle_size == 1 else ()):
        with pytest.raises(error, match=match):
            method(bad)
        assert pickle.dumps(forest) == before and forest.points_seen_ == seen
    np.testing.assert_array_equal(forest.score_update(2.0), _forest_after(shingle_size, [1.0, 2.0])[-1:])


@pytest.mark.parametrize("width", [3, 70])
@pytest.mark.parametrize(
    ("bad", "match"), [(np.nan, "nan"), (-np.inf, "inf"), (1e31, "magnitudes up to"), (-1e300, "up to")]
)
def test_a_float64_reading_is_checked_in_the_kernel_and_refused_unchanged(width, bad, match):
    forest = _forest(1)
    forest.score_update(_series(300, width))
    forest.score_update(_series(5, width, seed=3)[1])  # the single-reading kernel's handle exists
    before = pickle.dumps(forest)
    seen = forest.points_seen_
    row = _series(5, width, seed=4)[1].copy()
    row[-1] = bad
    for method in (forest.score_update, forest.update, forest.score):
        with pytest.raises(ValueError, match=f"column {width - 1}.*{match}|{match}.*column {width - 1}"):
            method(row)
        assert pickle.dumps(forest) == before and forest.points_seen_ == seen
    # The kernel itself refuses the row before changing anything.
    reader = forest._reader
    reader[2][:] = row
    status, _ = _reading.read(reader[4], forest.points_seen_, forest.time_decay, _reading.SCORE_FEED, 1.0)
    assert status == _reading.INVALID
    assert pickle.dumps(forest) == before
    good = _series(5, width, seed=4)[1]
    reference = pickle.loads(before)
    np.testing.assert_array_equal(forest.score_update(good), reference.score_update(good[None, :]))


def _forest_after(shingle_size, readings):
    forest = _forest(shingle_size)
    forest.score_update(_series(300))
    return forest.score_update(readings)


def test_readings_that_are_not_plain_numbers_still_go_through():
    forest = _forest(2)
    forest.score_update(_series(300))
    reference = _forest(2)
    reference.score_update(_series(300))
    readings = [True, np.float32(1.5), np.int64(3), pd.Series([4.0]), np.array(5), [[6.0]], 7]
    got = [np.asarray(forest.score_update(r))[0] for r in readings]
    np.testing.assert_array_equal(got, reference.score_update([1.0, 1.5, 3.0, 4.0, 5.0, 6.0, 7.0]))
    assert isinstance(forest.score_update(pd.Series([8.0], index=[9])), pd.Series)  # pandas in, pandas out


@pytest.mark.parametrize("call", ["score", "update", "score_update"])
def test_a_corrupt_tree_is_reported_by_the_single_reading_kernel(call):
    forest = _forest(1).fit(_series(200))
    forest.score(0.0)  # the single-reading kernel's handle exists
    trees = forest._trees
    root = int(trees.root[1])
    trees.left[1, root] = trees.right[1, root] = root  # the root is its own child: every descent cycles
    with pytest.raises(RuntimeError, match="corrupt"):  # an update finds it once the tree admits a point
        for value in _series(300, seed=2):
            getattr(forest, call)(value)


def test_copies_and_pickles_drop_the_kernel_handle():
    forest = _forest(3)
    forest.score_update(_series(300))
    forest.score_update(1.0)
    assert forest._reader is not None
    clone = pickle.loads(pickle.dumps(forest))
    assert clone._reader is None
    np.testing.assert_array_equal(clone.score_update(2.0), forest.score_update(2.0))


def test_one_reading_scores_a_forest_in_sagemakers_layout_as_the_batch_path_does():
    # Trees of SageMaker's layout are scaled by log2(M), not log2(M + 1): one reading must use their rule.
    series = _series(n=400, width=2)
    forest = Forest(num_trees=10, sample_size=64, random_state=3, sampling="sagemaker").fit(series)
    batch = forest.score(series[:20])
    single = np.array([forest.score(row.tolist())[0] for row in series[:20]])
    np.testing.assert_array_equal(single, batch)
    fed = pickle.loads(pickle.dumps(forest))
    bulk = pickle.loads(pickle.dumps(forest)).score_update(series[20:40])
    np.testing.assert_array_equal([fed.score_update(row.tolist())[0] for row in series[20:40]], bulk)


@pytest.mark.parametrize(("time_decay", "sequence_start"), [(0.0, 0), (1 / 2560, 0), (0.05, 10**9), (1e-3, 10**12)])
def test_the_kept_rejection_cut_refuses_only_what_the_reservoir_refuses(time_decay, sequence_start):
    """kept_cut keeps a tree's cut from one reading to the next: below it, admits must refuse, whatever came between."""
    from rcforest._rng import uniform
    from rcforest._sampler import KEPT_CUT_ROWS, admits, heap_push, heap_replace_top, kept_cut, weight_of

    num_trees, sample_size = 3, 16
    rng = np.random.SeedSequence(4).generate_state(num_trees, np.uint64)
    weight = np.zeros((num_trees, sample_size))
    rows = np.full((num_trees, sample_size), -1, np.int32)
    size = np.zeros(num_trees, np.int32)
    kept = np.full((num_trees, 4), np.nan)
    refused = 0
    for row in range(6_000):
        sequence = sequence_start + row
        decay = time_decay * (2.0 if row >= 3_000 else 1.0)  # a change of decay is seen, not kept
        for t in range(num_trees):
            u = uniform(rng, t)
            w = weight_of(u, sequence, decay)
            verdict = admits(weight, size, t, w)
            if u < kept_cut(weight, size, kept, t, sequence, decay):
                assert verdict == 0
                refused += 1
            if verdict == 1:
                heap_push(weight, rows, size, t, w, row)
            elif verdict == 2:
                heap_replace_top(weight, rows, size, t, w, row)
    if time_decay * KEPT_CUT_ROWS < 1:  # faster decays move the weights too far over the rows a cut is kept for
        assert refused > 6_000  # the cut does refuse most points once the reservoirs are full


def test_one_reading_at_a_time_follows_a_change_of_time_decay():
    series = _series()
    bulk, one = _forest(1, 0.01), _forest(1, 0.01)
    expected = [bulk.score_update(series[:450]), None]
    got = [one.score_update(series[:1])] + [one.score_update(float(v)) for v in series[1:450]]
    bulk.time_decay = one.time_decay = 0.2
    expected[1] = bulk.score_update(series[450:])
    got += [one.score_update(float(v)) for v in series[450:]]
    np.testing.assert_array_equal(np.concatenate(got), np.concatenate(expected))
    assert pickle.dumps(one) == pickle.dumps(bulk)
