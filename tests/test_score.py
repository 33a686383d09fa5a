"""The read-only score's three walks give the same bits; a walk back up checks the parent links it does not follow."""

import numpy as np
import pytest
from numba import njit

from rcforest import Forest, _kernels
from rcforest._score import AWS_MASS_OFFSET, LANES, SAGEMAKER_MASS_OFFSET, score_point, score_trees


@njit(cache=False)
def _scores_one_tree_at_a_time(tr, points, mass_offset, out):
    for t in range(tr.root.shape[0]):
        for row in range(points.shape[0]):
            out[t, row] = score_point(tr, t, points[row], mass_offset)


@njit(cache=False)
def _scores_trees_together(tr, points, mass_offset, out):
    lanes = np.empty((4, LANES), np.int64)
    path = np.empty((2, LANES, tr.parent.shape[1]), np.int32)
    scores = np.empty(tr.root.shape[0])
    for row in range(points.shape[0]):
        scores[:] = 0.0
        for first in range(0, tr.root.shape[0], 2 * LANES):
            count = min(2 * LANES, tr.root.shape[0] - first)
            score_trees(tr, first, count, points[row : row + 1], mass_offset, lanes, path, scores)
        out[:, row] = scores


def _queries(forest, data, rng):
    """Stored points (a walk ending at their own leaf), points near and far, relative to the trees' origin."""
    near = data[rng.integers(0, len(data), 200)] + rng.normal(scale=1e-3, size=(200, data.shape[1]))
    far = rng.normal(scale=50, size=(100, data.shape[1]))
    return np.vstack([data[:300], near, far]) - forest._trees.origin


# Up to 8 values the walks down trees in lockstep pick the point's values by selects (over 4 or 8 values),
# 48 gathers them; 48: boxes of three cache lines, prefetched on the way down.
@pytest.mark.parametrize("dim", [1, 3, 4, 6, 8, 48])
@pytest.mark.parametrize("mass_offset", [AWS_MASS_OFFSET, SAGEMAKER_MASS_OFFSET])
@pytest.mark.parametrize("num_trees", [5, 11, 27])  # groups of 16 trees: 5 (one short group), 8 + 3, 16 then 8 + 3
def test_rows_in_lockstep_trees_in_lockstep_and_one_walk_give_the_same_bits(dim, mass_offset, num_trees):
    rng = np.random.default_rng(dim)
    data = rng.normal(size=(1500, dim)).round(1)  # rounding makes duplicates: leaves of mass above 1
    forest = Forest(num_trees=num_trees, sample_size=64, random_state=dim).fit(data)
    tr = forest._trees
    points = _queries(forest, data, rng)
    batch = np.empty((tr.root.shape[0], len(points)))
    _kernels.score_batch(tr, points, batch, mass_offset)
    one = np.empty_like(batch)
    _scores_one_tree_at_a_time(tr, points, mass_offset, one)
    together = np.empty_like(batch)
    _scores_trees_together(tr, points, mass_offset, together)
    assert batch.tobytes() == one.tobytes() == together.tobytes()
    assert np.isfinite(batch).all() and (batch > 0).all()


@pytest.mark.parametrize("call", ["batch", "one reading"])
def test_a_parent_link_that_disagrees_with_the_walk_down_is_reported(call):
    data = np.random.default_rng(0).normal(size=(300, 2))
    forest = Forest(num_trees=4, sample_size=32, random_state=0).fit(data)
    tr = forest._trees
    query = np.array([30.0, -30.0])  # far outside: every walk back up goes to the root
    t = 2
    leaf, internal = int(tr.root[t]), tr.left.shape[1]
    relative = query - tr.origin
    while leaf < internal:  # the leaf the query reaches, by the cuts
        leaf = int(tr.right[t, leaf] if relative[tr.cut_dim[t, leaf]] > tr.cut_value[t, leaf] else tr.left[t, leaf])
    parent = int(tr.parent[t, leaf])
    other = next(n for n in range(tr.left.shape[1]) if tr.left[t, n] != -1 and n != parent)
    tr.parent[t, leaf] = other  # no cycle: a walk following the links would just go astray
    with pytest.raises(RuntimeError, match="corrupt"):
        if call == "batch":
            forest.score(np.vstack([query, query]))
        else:
            forest.score(query)
