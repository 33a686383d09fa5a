"""Forest.impute and conditional_summary: the kernel against AWS's visitor written out, AWS's two clusters, peers."""

import numpy as np
import pytest

from rcforest import Forest
from rcforest._conditional import conditional_batch, impute_batch
from tests import naive


def _two_clusters(seed, rows=2000, dim=30):
    """AWS's ConditionalFieldTest data: tiny noise, the first coordinate at +5 or -5."""
    rng = np.random.default_rng(seed)
    data = 0.01 * rng.normal(size=(rows, dim))
    data[:, 0] += np.where(rng.random(rows) < 0.5, 5.0, -5.0)
    return data


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("missing_dims", [(0,), (1, 2), (0, 1, 2)])
def test_kernel_matches_the_visitor_written_out(seed, missing_dims):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3)) * [1.0, 2.0, 0.5]
    X[1::7] = X[::7][: len(X[1::7])]  # duplicates, so that leaves have mass > 1
    forest = Forest(num_trees=8, sample_size=48, random_state=seed).fit(X)
    trees = forest._trees
    queries = rng.normal(size=(5, 3)) - trees.origin
    queries[0] = trees.store[trees.leaf_point[0, trees.leaf_point[0] >= 0][0]]  # a stored point
    missing = np.zeros(queries.shape, bool)
    missing[:, list(missing_dims)] = True
    rows = np.empty((forest.num_trees, len(queries)), np.int64)
    distances = np.empty((forest.num_trees, len(queries)))
    conditional_batch(trees, np.where(missing, 0.0, queries), missing, rows, distances)
    for t in range(forest.num_trees):
        for q in range(len(queries)):
            expected, _ = naive.conditional_choice(trees, t, list(queries[q]), list(missing[q]))
            assert rows[t, q] == expected
            known = ~missing[q]
            assert distances[t, q] == pytest.approx(np.linalg.norm(trees.store[expected][known] - queries[q][known]))
    out = np.empty_like(queries)
    impute_batch(trees, np.where(missing, 0.0, queries), missing, out)
    for q in range(len(queries)):
        for i in range(3):
            if missing[q, i]:
                assert out[q, i] == naive.prefix_pick(trees.store[rows[:, q], i], 0.5)
            else:
                assert out[q, i] == queries[q, i]


def test_many_rows_give_what_each_row_gives_alone():
    # The kernel works tree after tree over blocks of queries, each with its own missing entries.
    rng = np.random.default_rng(9)
    X = rng.normal(size=(600, 4))
    forest = Forest(num_trees=9, sample_size=32, random_state=9).fit(X)
    holes = rng.normal(size=(200, 4))
    holes[rng.random(holes.shape) < 0.3] = np.nan
    holes[np.isnan(holes).all(axis=1), 0] = 0.0
    filled = forest.impute(holes)
    for row, alone in zip(filled, (forest.impute(hole[None, :])[0] for hole in holes)):
        assert list(row) == list(alone)


def test_one_row_as_an_array_a_list_or_a_row_gives_its_batch_values():
    # One plain row takes a serial kernel through the forest's handle: the same values as in a batch.
    rng = np.random.default_rng(19)
    forest = Forest(num_trees=9, sample_size=32, random_state=19).fit(rng.normal(size=(600, 3)))
    holes = rng.normal(size=(40, 3))
    holes[rng.random(holes.shape) < 0.3] = np.nan
    holes[::7, 1] = np.inf  # infinite values count as missing
    filled = forest.impute(holes)
    for hole, expected in zip(holes, filled):
        for row in (hole, list(hole), hole[None, :]):
            alone = forest.impute(row)
            assert alone.shape == (1, 3)
            assert list(alone[0]) == list(expected)
    assert np.isfinite(filled).all()


def test_two_clusters_representatives_within_001_of_the_centres():
    data = _two_clusters(101)
    forest = Forest(num_trees=100, sample_size=256, random_state=101).update(data)
    for query in (np.zeros(30), np.eye(30)[1]):
        query = query.copy()
        query[0] = np.nan
        summary = forest.conditional_summary(query)
        points = summary["points"]
        assert points.shape == (2, 30) and summary["weights"].shape == (2,)
        assert np.abs(np.abs(points[:, 0]) - 5.0).max() < 0.01
        assert points[0, 0] * points[1, 0] < 0  # one each side
        assert (summary["weights"] > 0.25).all() and summary["weights"].sum() == pytest.approx(1.0)
        np.testing.assert_array_equal(points[:, 1:], np.repeat(query[None, 1:], 2, axis=0))
        assert summary["lower"][0] <= summary["median"][0] <= summary["upper"][0]


def test_impute_fills_only_the_missing_values_within_the_noise():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 3))
    X[:, 2] = X[:, 0] + X[:, 1] + 0.05 * rng.normal(size=3000)
    forest = Forest(num_trees=50, sample_size=256, random_state=2).fit(X)
    test = rng.normal(size=(200, 3))
    test[:, 2] = test[:, 0] + test[:, 1]
    holes = test.copy()
    holes[:, 2] = np.nan
    holes[::10, 0] = np.nan  # some rows miss two values
    filled = forest.impute(holes)
    known = ~np.isnan(holes)
    np.testing.assert_array_equal(filled[known], test[known])
    single = ~np.isnan(holes[:, 0])
    error = np.abs(filled[single, 2] - test[single, 2])
    assert np.median(error) < 0.25  # the sample's spacing, not the spread of x2 (about 1.4)
    assert not np.isnan(filled).any()


def test_imputed_values_agree_with_rcf3_within_the_noise():
    rcf3 = pytest.importorskip("rcf3")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 2))
    X[:, 1] = 2.0 * X[:, 0] + 0.1 * rng.normal(size=2000)
    ours = Forest(num_trees=50, sample_size=256, random_state=3).update(X)
    peer = rcf3.Forest(2, num_trees=50, capacity=256, seed=3)
    for x in X:
        peer.update(x.tolist())
    for x0 in (-1.5, -0.5, 0.0, 0.7, 1.2):
        mine = ours.impute([[x0, np.nan]])[0, 1]
        theirs = peer.impute([x0, 0.0], [1])[1]
        assert abs(mine - 2 * x0) < 0.35 and abs(mine - theirs) < 0.35


def test_shingled_impute_reads_each_row_from_the_shingle_ending_there(tmp_path):
    rng = np.random.default_rng(4)
    t = np.arange(3000)
    series = np.sin(2 * np.pi * t / 40) + 0.02 * rng.normal(size=3000)
    forest = Forest(num_trees=40, sample_size=256, shingle_size=8, random_state=4).update(series[:2500])
    test = series[2500:2600].copy()
    holes = test.copy()
    holes[[0, 3, 30, 31, 60]] = np.nan
    filled = forest.impute(holes)
    assert filled.shape == (100, 1)
    np.testing.assert_array_equal(filled[~np.isnan(holes), 0], test[~np.isnan(holes)])
    assert np.abs(filled[np.isnan(holes), 0] - test[np.isnan(holes)]).max() < 0.3
    forest.save(tmp_path / "f.rcf")
    np.testing.assert_array_equal(Forest.load(tmp_path / "f.rcf").impute(holes), filled)


def test_pandas_in_pandas_out():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(5).normal(size=(500, 2)), columns=["a", "b"])
    forest = Forest(num_trees=10, sample_size=64, random_state=5).fit(X)
    holes = pd.DataFrame({"b": [np.nan, 0.5], "a": [0.1, np.nan]}, index=[10, 11])
    filled = forest.impute(holes)
    assert list(filled.columns) == ["a", "b"] and list(filled.index) == [10, 11]
    assert filled.loc[10, "a"] == 0.1 and not filled.isna().any().any()


def test_one_bad_row_is_refused_as_in_a_batch():
    # One plain row's values are checked by the serial kernel: a row it refuses gets the general path's message.
    forest = Forest(num_trees=5, sample_size=32, random_state=6).fit(np.random.default_rng(6).normal(size=(100, 2)))
    for row in (np.array([np.nan, 1e40]), np.array([[1e40, np.inf]]), [np.nan, 1e40], [-1e40, 0.0], [np.nan, 10**40]):
        with pytest.raises(ValueError, match="magnitudes up to"):
            forest.impute(row)
    # A row that is not C-ordered goes the general way: the same values.
    rows = np.array([[np.nan, 9.0, 0.5, 9.0], [0.0, 9.0, np.nan, 9.0]])
    assert list(forest.impute(rows[0, ::2])[0]) == list(forest.impute(rows[:, ::2])[0])


def test_bad_input_is_refused_and_changes_nothing():
    forest = Forest(num_trees=5, sample_size=32, random_state=6).fit(np.random.default_rng(6).normal(size=(100, 2)))
    store = forest._trees.store.copy()
    with pytest.raises(ValueError, match="holds no data"):
        Forest().impute([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="X has 3 features"):
        forest.impute([[np.nan, 1.0, 2.0]])
    with pytest.raises(ValueError, match="empty"):
        forest.impute(np.empty((0, 2)))
    with pytest.raises(ValueError, match="magnitudes up to"):
        forest.impute([[np.nan, 1e40]])
    with pytest.raises(TypeError, match="not text"):
        forest.impute([["a", 1.0]])
    with pytest.raises(ValueError, match="no missing values"):
        forest.conditional_summary([0.0, 1.0])
    with pytest.raises(ValueError, match="centrality"):
        forest.conditional_summary([np.nan, 1.0], centrality=2.0)
    with pytest.raises(ValueError, match="fewer than shingle_size"):
        Forest(num_trees=3, sample_size=8, shingle_size=4).update(np.arange(20.0)).impute([np.nan, 1.0])
    np.testing.assert_array_equal(forest._trees.store, store)
