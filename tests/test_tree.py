"""The single-tree kernels against the naive pointer-based reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforest import _kernels
from rcforest._score import attribute_point, displacement_of, score_point
from rcforest._tree import allocate_trees, delete_leaf, insert_point
from tests.naive import NaiveTree, check_invariants, describe_flat, displacement_at


def _pair(seed, dim, capacity=64):
    trees = allocate_trees(1, capacity, dim, np.array([seed], np.uint64))
    return trees, NaiveTree(seed)


def _insert_both(trees, naive, point):
    leaf = insert_point(trees, 0, np.asarray(point, np.float64), trees.rng, 0)
    naive_leaf = naive.insert(point)
    return leaf, naive_leaf


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dim", [1, 3, 7])
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
        insert_point(trees, 0, point, trees.rng, 0)
    queries = np.vstack([data[:15], rng.normal(scale=3, size=(30, 3))])
    for q in queries:
        virtual = displacement_of(trees, 0, q, trees.rng.copy(), 0)
        real_rng = trees.rng.copy()
        leaf = insert_point(trees, 0, q, real_rng, 0)
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
        insert_point(trees, 0, point, trees.rng, 0)
    before = _snapshot(trees)
    # New points, duplicates of stored ones, and points far outside the data.
    queries = np.vstack([rng.normal(size=(20, 3)), data[:10], rng.normal(scale=50, size=(5, 3))])
    for q in queries:
        leaf = insert_point(trees, 0, q, trees.rng, 0)
        delete_leaf(trees, 0, leaf)
        trees.rng[0] = before["rng"][0]
        after = _snapshot(trees)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)


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
        insert_point(trees, 0, point, trees.rng, 0)
    failures = np.empty(1, np.int64)
    for name, node_value in [("mass", 7), ("parent", 5), ("box_max", 100.0)]:
        damaged = trees._replace(**{name: getattr(trees, name).copy()})
        root = trees.root[0]
        getattr(damaged, name)[0, root] = node_value
        _kernels.check_trees(damaged, failures)
        assert failures[0] != 0, name
