"""Where the time of a batch score goes, per tree and point, by stage.

Usage::

    python benchmarks/profile_score.py [--dim 48]

It fits a 100-tree, 256-sample forest on Gaussian data and times, on one
thread, the stages of :func:`rcforest._score.score_point`: following the
cuts down to a leaf, checking the leaf, and walking back up through the
ancestors whose boxes do not hold the point (summing ``dim`` gaps at each).
These loops are compiled without numba's reference counts, as the
library's kernels run (counted, the same loops take about twice as long,
and earlier versions of this script reported those times). It then times
the batch kernel itself, :func:`rcforest._kernels.score_batch` on one
thread, which takes the rows down each tree eight at a time, then each
back up along the nodes it passed (:func:`rcforest._score.score_rows`). It also counts the depth and the
ancestors visited, times the two stages of fitting 100,000 rows (the
reservoirs' sample selection, then building the trees), and times
scikit-learn's IsolationForest on the same data for comparison.
"""

import argparse
import sys
import time

import numba
import numpy as np
from numba import njit as _numba_njit

from rcforest import Forest, _kernels
from rcforest._box import box_gap_fast
from rcforest._score import AWS_MASS_OFFSET, LANES, _descend, _is_leaf_point, score_point

__all__ = ["main"]

njit = _numba_njit(_nrt=False)  # without reference counts, as rcforest's per-reading kernel runs


@njit
def _descend_only(tr, points):
    total = 0
    for t in range(tr.root.shape[0]):
        for row in range(points.shape[0]):
            total += _descend(tr, t, points[row])[1]
    return total


@njit
def _descend_and_check(tr, points):
    total = 0
    for t in range(tr.root.shape[0]):
        for row in range(points.shape[0]):
            leaf, depth = _descend(tr, t, points[row])
            total += depth + _is_leaf_point(tr, t, leaf, points[row])
    return total


@njit
def _ancestors_walked(tr, points):
    walked = 0
    for t in range(tr.root.shape[0]):
        for row in range(points.shape[0]):
            leaf, _ = _descend(tr, t, points[row])
            node = tr.parent[t, leaf]
            while node != -1:
                walked += 1
                if box_gap_fast(tr, t, node, points[row]) == 0.0:
                    break
                node = tr.parent[t, node]
    return walked


@njit
def _score_all(tr, points):
    total = 0.0
    for t in range(tr.root.shape[0]):
        for row in range(points.shape[0]):
            total += score_point(tr, t, points[row])
    return total


def _score_batch(tr, points):
    out = np.empty((tr.root.shape[0], points.shape[0]))
    _kernels.score_batch(tr, points, out, AWS_MASS_OFFSET)
    return out


def _ns_per_tree_point(fn, trees, points):
    fn(trees, points[:2])  # compile
    best = np.inf
    for _ in range(3):
        start = time.process_time()
        fn(trees, points)
        best = min(best, time.process_time() - start)
    return best / (points.shape[0] * trees.root.shape[0]) * 1e9


def _fit_stages(data):
    """Seconds of the two kernels of ``Forest.fit`` on ``data``, one thread (best of 3)."""
    forest = Forest(100, 256, random_state=0, n_jobs=1)
    forest.fit(data[:2000])  # compile
    best = [np.inf, np.inf]
    for _ in range(3):
        trees = forest._new_trees(data.shape[1])
        rows_kept = np.full_like(trees.heap_leaf, -1)
        start = time.process_time()
        _kernels.select_sample(trees.rng, trees.heap_weight, rows_kept, trees.heap_size, data.shape[0], 0, 0.0)
        selected = time.process_time()
        _kernels.build_from_rows(trees, data, rows_kept)
        built = time.process_time()
        best = [min(best[0], selected - start), min(best[1], built - selected)]
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20_000, args.dim))
    queries = rng.normal(size=(args.rows, args.dim))
    trees = Forest(100, 256, random_state=0, n_jobs=1).fit(data)._trees
    points = queries - trees.origin  # as the trees hold points: relative to the first
    visits = _descend_only(trees, points[:1000]) / (1000 * 100)
    walked = _ancestors_walked(trees, points[:1000]) / (1000 * 100)
    descend = _ns_per_tree_point(_descend_only, trees, points)
    checked = _ns_per_tree_point(_descend_and_check, trees, points)
    score = _ns_per_tree_point(_score_all, trees, points)
    print(f"{args.dim}-D points, 100 trees of 256, one thread, per tree and point:")
    print(
        f"  leaf depth {visits:.1f}, ancestors walked {walked:.1f} (each: {args.dim} gaps, 2 x {args.dim} floats read)"
    )
    print(f"  descend {descend:.0f} ns, + leaf check {checked - descend:.0f} ns, + walk up {score - checked:.0f} ns")
    print(f"  score_point total {score:.0f} ns (a row at a time)")
    numba.set_num_threads(1)
    batch = _ns_per_tree_point(_score_batch, trees, points)
    print(f"  score_batch: {batch:.0f} ns (rows {LANES} at a time down each tree, then each up its own path)")
    _print_isolation_forest(data, queries, args.rows)
    select, build = _fit_stages(np.random.default_rng(1).normal(size=(100_000, args.dim)))
    print(f"fit of 100,000 rows, one thread: sample selection {select:.3f} s, building the trees {build:.3f} s")
    return 0


def _print_isolation_forest(data, queries, rows):
    try:
        from sklearn.ensemble import IsolationForest
    except ImportError:
        return
    model = IsolationForest(n_estimators=100, max_samples=256, n_jobs=1, random_state=0).fit(data)
    model.score_samples(queries[:100])
    start = time.process_time()
    model.score_samples(queries)
    spent = time.process_time() - start
    per_tree_point = spent / (rows * 100) * 1e9
    print(f"  IsolationForest score_samples {per_tree_point:.0f} ns (depth limit 8, one comparison a level)")


if __name__ == "__main__":
    sys.exit(main())
