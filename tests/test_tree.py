"""The single-tree kernels against the naive pointer-based reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from rcforest import _kernels
from rcforest._box import box_gap, box_gap_fast, range_of, round_down, round_up
from rcforest._ranges import ranges_of_eight
from rcforest._sampler import heap_push
from rcforest._score import attribute_point, displacement_of, score_point
from rcforest._tree import allocate_trees
from rcforest._update import _MARGIN, delete_leaf, insert_point
from tests.naive import NaiveTree, check_invariants, describe_flat, displacement_at, insert_values


def _pair(seed, dim, capacity=64):
    trees = allocate_trees(1, capacity, dim, np.array([seed], np.uint64), store_rows=1000)
    return trees, NaiveTree(seed)


def _insert_both(trees, naive, point):
    leaf = insert_values(trees, 0, np.asarray(point, np.float64))
    naive_leaf = naive.insert(point)
    return leaf, naive_leaf


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dim", [1, 3, 7, 48])  # 48: the insertion's gaps summed in any order first
def test_same_draws_give_the_same_tree_and_scores(seed, dim):
    rng = np.random.default_rng(seed)
    trees, naive = _pair(seed, dim)
    data = rng.normal(size=(40, dim)).round(1)  # rounding makes duplicates
    for point in data:
        _insert_both(trees, naive, list(point))
        assert describe_flat(trees, 0) == naive.structure()
    assert trees.rng[0] == naive.rng.state
    check_invariants(trees, 0)
    queries = np.vstack([data[:10], rng.normal(scale=3, size=(20, dim))])
    for q in queries:
        assert score_point(trees, 0, q) == pytest.approx(naive.score(list(q)), rel=1e-12)
        high, low = np.empty(dim), np.empty(dim)
        attribute_point(trees, 0, q, high, low)
        naive_high, naive_low = naive.attribution(list(q))
        np.testing.assert_allclose(high, naive_high, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(low, naive_low, rtol=1e-12, atol=1e-15)
        assert high.sum() + low.sum() == pytest.approx(score_point(trees, 0, q), rel=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.floats(-2e30, 2e30), st.floats(-2e30, 2e30))
def test_rounded_bounds_are_the_nearest_float32_outside(a, b):
    low, high = sorted([a, b])
    for value in (low, high):
        down, up = np.float32(round_down(value)), np.float32(round_up(value))
        assert float(round_down(value)) == float(down) and float(round_up(value)) == float(up)  # float32 values
        assert float(down) <= value <= float(up)
        assert float(np.nextafter(down, np.float32(np.inf))) > value  # the largest below
        assert float(np.nextafter(up, np.float32(-np.inf))) < value  # the smallest above
    assert round_down(low) <= round_down(high) and round_up(low) <= round_up(high)


@pytest.mark.parametrize("seed", range(6))
def test_single_precision_boxes_move_scores_by_less_than_1e_5(seed):
    """Scores with float32 boxes against a reference with exact float64 boxes, on the same draws.

    Rounding a box outwards by a float32 step (about 6e-8 of its points'
    magnitude, relative to the forest's origin) moves the gaps and range
    sums by as little; the structure of the trees does not change.
    """
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(60, 5))
    trees = allocate_trees(1, 64, 5, np.array([seed], np.uint64), store_rows=100)
    exact = NaiveTree(seed, rounded=False)
    for point in data:
        insert_values(trees, 0, point)
        exact.insert(list(point))
    for q in rng.normal(scale=2, size=(40, 5)):
        assert score_point(trees, 0, q) == pytest.approx(exact.score(list(q)), rel=1e-5)
        high, low = np.empty(5), np.empty(5)
        attribute_point(trees, 0, q, high, low)
        exact_high, exact_low = exact.attribution(list(q))
        np.testing.assert_allclose(high, exact_high, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(low, exact_low, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("offset", [1e3, 1e6, 1e9])
def test_data_far_from_zero_scores_as_data_near_it(offset):
    """Trees hold points relative to the first: single-precision boxes keep their precision far from zero."""
    from rcforest import Forest

    data = np.random.default_rng(0).normal(size=(600, 4))
    near, far = (Forest(num_trees=20, sample_size=64, random_state=1).fit(data + shift) for shift in (0.0, offset))
    np.testing.assert_array_equal(far._trees.origin, data[0] + offset)
    queries = np.random.default_rng(1).normal(scale=2, size=(200, 4))
    np.testing.assert_allclose(far.score(queries + offset), near.score(queries), rtol=1e-5)
    streamed_near = Forest(num_trees=20, sample_size=64, shingle_size=2, random_state=1).score_update(data[:, 0])
    streamed_far = Forest(num_trees=20, sample_size=64, shingle_size=2, random_state=1).score_update(
        data[:, 0] + offset
    )
    np.testing.assert_allclose(streamed_far, streamed_near, rtol=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_codisp_matches_reference(seed):
    rng = np.random.default_rng(seed)
    trees, naive = _pair(seed, 2)
    leaves = []
    for point in rng.normal(size=(30, 2)).round(1):
        leaves.append(_insert_both(trees, naive, list(point)))
    for leaf, naive_leaf in leaves:
        assert displacement_at(trees, 0, leaf) == pytest.approx(NaiveTree.displacement(naive_leaf))


@pytest.mark.parametrize("seed", range(6))
def test_displacement_without_inserting_matches_a_real_insertion(seed):
    rng = np.random.default_rng(seed)
    trees, _ = _pair(seed, 3)
    empty_query = np.zeros(3)
    assert displacement_of(trees, 0, empty_query, trees.rng.copy(), 0) == (0.0, 0.0)
    data = rng.integers(-3, 4, size=(60, 3)).astype(float)  # many duplicates
    for point in data:
        insert_values(trees, 0, point)
    queries = np.vstack([data[:15], rng.normal(scale=3, size=(30, 3))])
    for q in queries:
        virtual = displacement_of(trees, 0, q, trees.rng.copy(), 0)
        real_rng = trees.rng.copy()
        leaf = insert_values(trees, 0, q, real_rng)
        assert virtual == displacement_at(trees, 0, leaf)
        delete_leaf(trees, 0, leaf)


def _snapshot(trees):
    return {k: v.copy() for k, v in trees._asdict().items()}


@pytest.mark.parametrize("seed", range(5))
def test_insert_then_delete_restores_the_exact_state(seed):
    rng = np.random.default_rng(seed)
    trees, _ = _pair(seed, 3)
    data = rng.normal(size=(50, 3)).round(1)
    for point in data:
        insert_values(trees, 0, point)
    # New points, duplicates of stored ones, and points far outside the data,
    # put in the store first: the trees alone must come back bit-identical.
    queries = np.vstack([rng.normal(size=(20, 3)), data[:10], rng.normal(scale=50, size=(5, 3))])
    first = int(trees.store_size[0])
    trees.store[first : first + len(queries)] = queries
    trees.store_size[0] += len(queries)
    before = _snapshot(trees)
    for index in range(first, first + len(queries)):
        leaf = insert_point(trees, 0, index, trees.rng, 0)
        delete_leaf(trees, 0, leaf)
        trees.rng[0] = before["rng"][0]
        after = _snapshot(trees)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)


@pytest.mark.parametrize("where", ["root", "below"])
def test_insertion_refuses_a_tree_whose_parent_links_disagree_with_its_walk(where):
    trees, _ = _pair(4, 2)
    for point in np.random.default_rng(4).normal(size=(30, 2)):
        insert_values(trees, 0, point)
    root = int(trees.root[0])
    internal = trees.left.shape[1]
    if where == "root":  # the root's parent one of its own leaves: a cycle up
        trees.parent[0, root] = int(np.flatnonzero(trees.leaf_point[0] >= 0)[0]) + internal
    else:  # each child of the root names no parent
        trees.parent[0, trees.left[0, root]] = trees.parent[0, trees.right[0, root]] = -1
    index = int(trees.store_size[0])
    trees.store[index] = 0.0  # inside the root's box: the walk goes on to a child
    trees.store_size[0] += 1
    mass = trees.mass[0].copy()
    assert insert_point(trees, 0, index, trees.rng, 0) == -1
    if where == "root":
        np.testing.assert_array_equal(trees.mass[0], mass)  # found before anything changed


def test_deleting_matches_reference():
    rng = np.random.default_rng(11)
    trees, naive = _pair(11, 2)
    stored = []
    for point in rng.integers(0, 5, size=(60, 2)).astype(float):
        stored.append((*_insert_both(trees, naive, list(point)), list(point)))
    order = rng.permutation(len(stored))
    for i in order:
        leaf, naive_leaf, point = stored[i]
        delete_leaf(trees, 0, leaf)
        naive.delete(naive_leaf)
        assert describe_flat(trees, 0) == naive.structure()
        check_invariants(trees, 0)
    assert trees.root[0] == -1


operations = st.lists(
    st.tuples(st.sampled_from(["insert", "duplicate", "delete"]), st.integers(0, 10**6)),
    min_size=1,
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(ops=operations, seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 5))
def test_invariants_hold_after_random_inserts_and_deletes(ops, seed, dim):
    capacity = 40
    trees, naive = _pair(seed, dim, capacity)
    rng = np.random.default_rng(seed)
    stored = []  # (leaf, naive leaf, point): one entry per copy
    for op, pick in ops:
        if op == "delete" and stored:
            leaf, naive_leaf, _ = stored.pop(pick % len(stored))
            delete_leaf(trees, 0, leaf)
            naive.delete(naive_leaf)
        elif len(stored) < capacity:
            if op == "duplicate" and stored:
                point = stored[pick % len(stored)][2]
            else:
                point = list(rng.normal(size=dim).round(2))
            leaf, naive_leaf = _insert_both(trees, naive, point)
            stored.append((leaf, naive_leaf, point))
    check_invariants(trees, 0)
    assert describe_flat(trees, 0) == naive.structure()
    root = trees.root[0]
    assert (trees.mass[0, root] if root != -1 else 0) == len(stored)
    failures = np.empty(1, np.int64)
    # The library's checker also matches leaf masses against the reservoir.
    trees.heap_size[0] = len(stored)
    trees.heap_leaf[0, : len(stored)] = [leaf for leaf, _, _ in stored]
    _kernels.check_trees(trees, failures)
    assert failures[0] == 0


def test_library_checker_spots_damage():
    trees, _ = _pair(3, 2)
    for point in np.random.default_rng(3).normal(size=(20, 2)):
        leaf = insert_values(trees, 0, point)
        heap_push(trees.heap_weight, trees.heap_leaf, trees.heap_size, 0, 0.0, leaf)
    failures = np.empty(1, np.int64)
    for name, node_value in [("mass", 7), ("parent", 5), ("box_max", 100.0)]:
        damaged = trees._replace(**{name: getattr(trees, name).copy()})
        root = trees.root[0]
        getattr(damaged, name)[0, root] = node_value
        _kernels.check_trees(damaged, failures)
        assert failures[0] != 0, name
    leaf = int(trees.heap_leaf[0, 0]) if trees.heap_size[0] else int(trees.left.shape[1])
    slot = leaf - trees.left.shape[1]
    damages = {
        "a leaf's store row out of range": lambda d: d.leaf_point.__setitem__((0, slot), 10**6),
        "a leaf's point moved": lambda d: d.store.__setitem__((d.leaf_point[0, slot], 0), 1e3),
        "a stale free stack entry": lambda d: d.free_leaf.__setitem__((0, d.free_leaf.shape[1] - 1), 0),
        "a store size beyond the store": lambda d: d.store_size.__setitem__(0, d.store.shape[0] + 1),
    }
    for name, damage in damages.items():
        damaged = trees._replace(**{k: v.copy() for k, v in trees._asdict().items()})
        damage(damaged)
        _kernels.check_trees(damaged, failures)
        assert failures[0] != 0, name


def _store_is_packed(trees):
    held = trees.leaf_point[trees.leaf_point >= 0]
    rows = trees.store[: trees.store_size[0]]
    assert trees.store.shape[0] == trees.store_size[0]
    assert np.array_equal(np.unique(held), np.arange(len(rows)))  # every row held by a leaf
    assert len(np.unique(rows.view(np.uint64), axis=0)) == len(rows)  # each point once, bit for bit


def test_the_point_store_stays_bounded_and_packs_to_distinct_points():
    from rcforest import Forest

    rng = np.random.default_rng(4)
    data = rng.integers(0, 4, size=(1100, 2)).astype(float)  # many duplicates; one call of it packs
    data[::50] = -0.0  # signed zeros are distinct points for the store, equal ones for the trees
    forest = Forest(num_trees=5, sample_size=16, time_decay=0.01, random_state=0)
    for i, row in enumerate(data):
        forest.update(row[None])
        trees = forest._trees
        # Room for at most twice the leaves and the new row: not one row per row seen.
        assert trees.store_size[0] <= trees.store.shape[0] <= 2 * (5 * 17 + 1)
        for t in range(5 if i % 10 == 0 else 0):
            check_invariants(trees, t)
    one_call = Forest(num_trees=5, sample_size=16, time_decay=0.01, random_state=0).update(data)
    _store_is_packed(one_call._trees)  # a long call ends packed
    for name, value in one_call._trees._asdict().items():
        if name not in ("leaf_point", "store", "store_size"):
            np.testing.assert_array_equal(getattr(forest._trees, name), value, err_msg=name)
    packed = forest._parts().trees  # packed before it is saved or pickled
    _store_is_packed(packed)
    for name in ("leaf_point", "store", "store_size"):
        np.testing.assert_array_equal(getattr(packed, name), getattr(one_call._trees, name), err_msg=name)
    for t in range(5):
        assert describe_flat(packed, t) == describe_flat(one_call._trees, t)


@pytest.mark.parametrize("dim", [1, 4, 48, 200])
def test_gap_summed_in_any_order_is_zero_exactly_where_and_close_to_the_ordered_sum(dim):
    rng = np.random.default_rng(dim)
    trees = allocate_trees(1, 300, dim, np.array([0], np.uint64))
    low, high = trees.box_min[0], trees.box_max[0]
    low[:] = rng.normal(size=(300, dim))
    high[:] = low + rng.exponential(size=(300, dim)).astype(np.float32)
    points = rng.normal(scale=1.5, size=(300, dim))
    points[:100] = (low[:100] + high[:100]) / 2.0  # inside their boxes: a gap of 0
    points[100:200, 1:] = (low[100:200, 1:] + high[100:200, 1:]) / 2.0  # outside in one dimension only
    for node, point in enumerate(points):
        ordered = box_gap(low, high, node, point)
        fast = box_gap_fast(trees, 0, node, point)
        assert (fast == 0.0) == (ordered == 0.0)
        # find_place's margin is far above the rounding of a reassociated sum of dim nonnegative terms.
        assert abs(fast - ordered) <= dim * 2.0**-52 * ordered < _MARGIN * ordered or ordered == 0.0


@njit
def _eight_and_one_by_one(low, high, nodes):
    sums = np.full((1, low.shape[0]), np.nan)
    ranges_of_eight(low, high, sums, 0, nodes)
    alone = np.zeros(len(nodes))
    for j in range(len(nodes)):
        alone[j] = range_of(low, high, nodes[j])
    return sums[0], alone


@pytest.mark.parametrize("dim", [1, 4, 7, 8, 9, 17, 48, 96])
def test_eight_range_sums_at_once_are_each_box_summed_in_order(dim):
    rng = np.random.default_rng(dim)
    for _ in range(20):
        # Sides from 1e-30 to 1e30: a reassociated sum would differ in its last bits.
        low = (rng.normal(size=(40, dim)) * 10.0 ** rng.uniform(-30, 30, size=(40, dim))).astype(np.float32)
        side = np.abs(rng.normal(size=(40, dim))) * 10.0 ** rng.uniform(-30, 30, size=(40, dim))
        high = (low + side).astype(np.float32)
        nodes = tuple(int(node) for node in rng.integers(0, 40, 8))  # repeats allowed
        sums, alone = _eight_and_one_by_one(low, high, nodes)
        np.testing.assert_array_equal(sums[list(nodes)].view(np.int64), alone.view(np.int64))
