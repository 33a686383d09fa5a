"""Mergeable reservoirs: entries against a naive reservoir, merged fits against Forest.fit."""

import math

import numpy as np
import pytest

from rcforest import Forest, _merge, _rng
from tests.naive import SplitMix64


def naive_entries(seed, sample_size, row_start, row_stop, time_decay):
    """Rows in ``[row_start, row_stop)`` that a reservoir over only those rows admits, with weights."""
    rng = SplitMix64(seed)
    for _ in range(row_start):
        rng.uniform()
    kept, rows, weights = [], [], []
    for row in range(row_start, row_stop):
        weight = -time_decay * row + math.log(-math.log(rng.uniform()))
        if len(kept) < sample_size or weight < max(kept):
            if len(kept) == sample_size:
                kept.remove(max(kept))
            kept.append(weight)
            rows.append(row)
            weights.append(weight)
    return rows, weights


def _split(num_rows, num_parts, rng):
    """Random part boundaries, empty parts allowed."""
    cuts = np.sort(rng.integers(0, num_rows + 1, size=num_parts - 1))
    return [0, *cuts.tolist(), num_rows]


@pytest.mark.parametrize(
    ("row_start", "num_rows", "time_decay"), [(0, 300, 0.0), (1234, 500, 0.0), (77, 200, 0.01), (5, 300, 0.5)]
)
def test_part_entries_match_a_naive_reservoir(row_start, num_rows, time_decay):
    values = np.random.default_rng(0).normal(size=(num_rows, 2))
    seeds = _rng.tree_seeds(5, 42)
    entries = _merge.part_entries(values, row_start, seeds, 16, time_decay)
    for t, seed in enumerate(seeds):
        segment = slice(entries.starts[t], entries.starts[t + 1])
        rows, weights = naive_entries(seed, 16, row_start, row_start + num_rows, time_decay)
        assert entries.entry_row[segment].tolist() == rows
        assert np.allclose(entries.entry_weight[segment], weights, rtol=1e-12, atol=1e-12)
    assert np.array_equal(entries.values, values[entries.rows - row_start])


@pytest.mark.parametrize("seed", range(6))
def test_merged_parts_build_the_trees_of_fit(seed):
    rng = np.random.default_rng(seed)
    num_rows = int(rng.integers(1, 3000))
    num_trees, sample_size = int(rng.integers(1, 12)), int(rng.choice([4, 32, 256]))
    time_decay = float(rng.choice([0.0, 0.001]))
    values = rng.normal(size=(num_rows, int(rng.integers(1, 4))))
    values[rng.integers(0, num_rows, size=num_rows // 10)] = values[0]  # duplicates
    expected = Forest(num_trees, sample_size, time_decay=time_decay, random_state=seed).fit(values)
    seeds = _rng.tree_seeds(num_trees, seed)
    bounds = _split(num_rows, int(rng.integers(1, 9)), rng)
    parts = [
        _merge.part_entries(values[a:b], a, seeds, sample_size, time_decay) for a, b in zip(bounds[:-1], bounds[1:])
    ]
    # Two merge orders: left to right, and pairwise (a tree reduction).
    left = parts[0]
    for part in parts[1:]:
        left = _merge.merge(left, part, sample_size)
    while len(parts) > 1:
        pairs = [_merge.merge(parts[i], parts[i + 1], sample_size) for i in range(0, len(parts) - 1, 2)]
        parts = pairs + parts[len(pairs) * 2 :]
    for merged in (left, parts[0]):
        trees = _merge.build_trees(merged, seeds, sample_size)
        for field in trees._fields:
            assert np.array_equal(getattr(trees, field), getattr(expected._trees, field)), field


def test_merge_needs_consecutive_parts():
    values = np.zeros((10, 1))
    seeds = _rng.tree_seeds(2, 0)
    first = _merge.part_entries(values, 0, seeds, 4, 0.0)
    third = _merge.part_entries(values, 20, seeds, 4, 0.0)
    with pytest.raises(ValueError, match="not consecutive"):
        _merge.merge(first, third, 4)
    with pytest.raises(ValueError, match="start at row 20"):
        _merge.build_trees(third, seeds, 4)


def test_advance_equals_drawing():
    seeds = _rng.tree_seeds(3, 9)
    for seed, moved in zip(seeds, _rng.advance(seeds, 1000)):
        rng = SplitMix64(seed)
        for _ in range(1000):
            rng.uniform()
        assert rng.state == int(moved)
