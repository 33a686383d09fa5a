"""Forest.near_neighbors: the kernel against a full scan, the forest against the sample, peers, bad input."""

import math

import numpy as np
import pytest

from rcforest import Forest
from rcforest._neighbors import near_neighbors
from tests import naive


def _forest(seed, rows=300, dim=3, **kwargs):
    X = np.random.default_rng(seed).normal(size=(rows, dim))
    return Forest(num_trees=12, sample_size=64, random_state=seed, **kwargs).fit(X), X


def _full_scan(trees, query, k, limit=np.inf):
    """The ``k`` nearest distinct points of every tree's leaves (by distance, then value) and their tree counts."""
    held = {}
    for t in range(trees.root.shape[0]):
        for row, _ in naive.tree_leaves(trees, t):
            distance = math.sqrt(sum((a - b) ** 2 for a, b in zip(trees.store[row], query)))  # as the kernel sums
            if distance <= limit:
                key = tuple(trees.store[row])
                held[key] = (distance, held.get(key, (0, 0))[1] + 1)
    ordered = sorted(held.items(), key=lambda item: (item[1][0], item[0]))[:k]
    return [(np.array(point), distance, count) for point, (distance, count) in ordered]


def _kernel(forest, query, k, limit2=np.inf):
    size = min(k, forest.num_trees * forest._trees.leaf_point.shape[1])
    points, distances, trees = np.empty((size, len(query))), np.empty(size), np.empty(size, np.int64)
    count = near_neighbors(forest._handle(), query, k, limit2, points, distances, trees)
    return points[:count], distances[:count], trees[:count]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 64, 1000])
def test_kernel_matches_full_scan(seed, k):
    forest, _ = _forest(seed)
    queries = np.random.default_rng(seed + 10).normal(size=(6, 3)) * 1.5
    for query in queries:
        points, distances, trees = _kernel(forest, query, k)
        expected = _full_scan(forest._trees, query, k)
        np.testing.assert_array_equal(points, [p + forest._trees.origin for p, _, _ in expected])
        np.testing.assert_allclose(distances, [d for _, d, _ in expected], rtol=1e-12)
        assert list(trees) == [c for _, _, c in expected]


def test_kernel_with_ties_and_duplicates_matches_full_scan():
    # Points on a grid (many equal distances) and repeated rows: ties go by value, counts by tree.
    X = np.random.default_rng(7).integers(-3, 4, size=(400, 2)).astype(float)
    forest = Forest(num_trees=20, sample_size=64, random_state=7).fit(X)
    for query, k in (([0.0, 0.0], 5), ([0.5, 0.5], 4), ([10.0, 0.0], 3), ([0.0, 0.0], 49)):
        query = np.array(query) - forest._trees.origin
        points, distances, trees = _kernel(forest, query, k)
        expected = _full_scan(forest._trees, query, k)
        np.testing.assert_array_equal(points, [p + forest._trees.origin for p, _, _ in expected])
        assert list(trees) == [c for _, _, c in expected]


def test_kernel_respects_the_distance_limit():
    forest, _ = _forest(3)
    query = np.zeros(3) - forest._trees.origin
    points, distances, trees = _kernel(forest, query, 10, 0.5**2)
    expected = _full_scan(forest._trees, query, 10, 0.5)
    assert len(expected) < 10 and (distances <= 0.5).all()
    np.testing.assert_array_equal(points, [p + forest._trees.origin for p, _, _ in expected])
    assert list(trees) == [c for _, _, c in expected]


@pytest.mark.parametrize("shingle_size", [1, 3])
def test_forest_neighbors_are_the_nearest_of_the_sample(shingle_size):
    rng = np.random.default_rng(4)
    series = rng.normal(size=(500, 2))
    forest = Forest(num_trees=10, sample_size=32, shingle_size=shingle_size, random_state=4).fit(series)
    held = {}  # point -> trees holding it
    trees = forest._trees
    for t in range(forest.num_trees):
        for row, _ in naive.tree_leaves(trees, t):
            key = tuple(trees.store[row] + trees.origin)
            held[key] = held.get(key, 0) + 1
    query = rng.normal(size=2 * shingle_size)
    result = forest.near_neighbors(query, k=7)
    expected = sorted(held, key=lambda p: math.dist(p, query))[:7]
    np.testing.assert_allclose(result["points"], expected, rtol=1e-12)
    np.testing.assert_allclose(result["distances"], [math.dist(p, query) for p in expected], rtol=1e-9)
    assert list(result["trees"]) == [held[p] for p in expected]
    assert np.all(np.diff(result["distances"]) >= 0)
    near = forest.near_neighbors(query, k=100, max_distance=float(result["distances"][2]))
    assert len(near["distances"]) == 3


def test_streaming_forest_and_save_load_continue(tmp_path):
    rng = np.random.default_rng(5)
    series = np.sin(np.arange(900) / 7) + 0.1 * rng.normal(size=900)
    forest = Forest(num_trees=15, sample_size=64, shingle_size=4, time_decay=0.01, random_state=5)
    forest.update(series[:600])
    forest.save(tmp_path / "f.rcf")
    loaded = Forest.load(tmp_path / "f.rcf")
    query = series[596:600]
    for a, b in zip(forest.near_neighbors(query).values(), loaded.near_neighbors(query).values()):
        np.testing.assert_array_equal(a, b)
    forest.update(series[600:])
    loaded.update(series[600:])
    for a, b in zip(forest.near_neighbors(query).values(), loaded.near_neighbors(query).values()):
        np.testing.assert_array_equal(a, b)


def test_same_neighbours_in_the_same_order_as_krcf():
    krcf = pytest.importorskip("krcf")
    X = np.random.default_rng(0).normal(size=(100, 2))
    ours = Forest(num_trees=50, sample_size=256, random_state=1).fit(X)  # every tree holds every point
    peer = krcf.RandomCutForest(
        {"dimensions": 2, "shingle_size": 1, "num_trees": 50, "sample_size": 256, "random_seed": 1}
    )
    for x in X:
        peer.update(x.tolist())
    for query in ([0.1, 0.2], [1.0, -1.0], [-2.0, 0.5]):
        result = ours.near_neighbors(query, k=len(X))
        truth = X[np.argsort(np.linalg.norm(X - query, axis=1))]
        np.testing.assert_allclose(result["points"], truth)
        assert (result["trees"] == 50).all()
        # krcf reports the leaf each tree's path reaches (float32 points): the distinct ones, by distance,
        # come in our order, and its nearest is ours.
        seen = {}
        for neighbor in peer.near_neighbor_list(query, 50):
            seen.setdefault(tuple(neighbor["point"]), math.dist(neighbor["point"], query))
        theirs = [p for p, _ in sorted(seen.items(), key=lambda item: item[1])]
        rank = [int(np.argmin(np.abs(result["points"] - p).sum(axis=1))) for p in theirs]
        np.testing.assert_allclose(result["points"][rank], theirs, atol=1e-6)
        assert rank == sorted(rank) and rank[0] == 0


def test_bad_input_is_refused_and_changes_nothing():
    forest, _ = _forest(6)
    before = forest._trees.store.copy()
    with pytest.raises(ValueError, match="values but the forest's points have 3"):
        forest.near_neighbors([0.0, 0.0])
    with pytest.raises(ValueError, match="holds nan"):
        forest.near_neighbors([0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="k must be"):
        forest.near_neighbors([0.0, 0.0, 0.0], k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        forest.near_neighbors([0.0, 0.0, 0.0], k=2.5)
    with pytest.raises(ValueError, match="max_distance"):
        forest.near_neighbors([0.0, 0.0, 0.0], max_distance=-1.0)
    with pytest.raises(TypeError, match="not the text"):
        forest.near_neighbors("abc")
    with pytest.raises(ValueError, match="holds no data"):
        Forest().near_neighbors([0.0])
    np.testing.assert_array_equal(forest._trees.store, before)
