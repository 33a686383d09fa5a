"""Conditional estimates: missing values filled from the trees, and forecasts built on them.

Each tree answers a query with missing entries with one of its points: the
query walks down the tree, following both children wherever a node cuts a
missing dimension, and of the leaves it reaches keeps the one whose
completed query scores lowest (most typical). A leaf's rank is
``1 / (d + log2(m + 1))`` at depth ``d`` for a leaf of mass ``m`` that
equals the query on its known entries (0 at the root), else
``1 / (d + 1)``; going up, each node mixes in ``1 / (d + 1)`` with the
chance that a random cut of its box separates the query's known entries.
Ties go to the left child.

The forest's estimate of a missing entry is the median over trees of the
trees' values (a weighted pick: the first value, in increasing order, at
which the count of trees reaches half); the 10th and 90th percentiles
bound it. A forecast fills the next row of a shingle, one step at a time,
each step's median becoming part of the next step's query.

Notes
-----
AWS random-cut-forest-by-aws: ``ImputeVisitor`` (rank, the split on
missing dimensions, ``combine`` keeping the lower rank),
``imputeMissingValues`` (the median over trees), ``SampleSummary`` (the
percentiles, ``prefixPick``) and ``extrapolateFromShingle`` (filling one
block at a time).
"""

import numpy as np
from numba import prange

from rcforest._core import MAX_ABS_VALUE
from rcforest._jit import INLINE, JIT, njit

__all__ = [
    "CORRUPT",
    "INVALID",
    "LOWER",
    "UPPER",
    "conditional_batch",
    "extrapolate",
    "impute_batch",
    "impute_one",
    "pick_quantile",
]

_WIDE = 8
"""Points of at least this many entries compute a box gap's terms on vectors first."""

CORRUPT = 1
"""Status of :func:`impute_one`: a tree is corrupt or empty; nothing was filled."""
INVALID = 2
"""Status of :func:`impute_one`: a finite value of the row is beyond :data:`~rcforest._core.MAX_ABS_VALUE`."""

LOWER = 0.1
"""Quantile of the trees' values reported as the lower bound (AWS's ``1 - DEFAULT_PERCENTILE``)."""
UPPER = 0.9
"""Quantile reported as the upper bound (AWS's ``SampleSummary.DEFAULT_PERCENTILE``)."""


@njit(**INLINE)
def _mixed(rank, point, missing, box_min, box_max, range_sum, node, depth, terms):
    """``rank`` mixed, at ``node`` (of depth ``depth``), with the chance that a random cut of its box separates.

    The chance that a random cut of the box separates the query's known
    entries is ``gap / (range_sum + gap)``, ``gap`` the query's distance
    from the box summed over the known entries (at most one side of a box
    is positive: one addition per entry, the same sum as adding both
    sides); the node's rank is ``chance / (depth + 1) + (1 - chance) *
    rank``, and ``rank`` itself where the box holds them.
    """
    gap = 0.0
    if point.shape[0] < _WIDE:
        for i in range(point.shape[0]):
            if not missing[i]:
                gap += max(np.float64(box_min[node, i]) - point[i], point[i] - np.float64(box_max[node, i]), 0.0)
    else:
        # Wide points: every entry's term in one loop without a branch (on vectors), then added in order.
        for i in range(point.shape[0]):
            terms[i] = max(np.float64(box_min[node, i]) - point[i], point[i] - np.float64(box_max[node, i]), 0.0)
        for i in range(point.shape[0]):
            if not missing[i]:
                gap += terms[i]
    if gap > 0.0:
        chance = gap / (range_sum[node] + gap)
        return chance / (depth + 1.0) + (1.0 - chance) * rank
    return rank


@njit(**INLINE)
def conditional_in_tree(tr, t, point, missing, node, depth, stack, phase, depth_of, ranks, leaves, terms):
    """The leaf of tree ``t`` that best completes ``point``'s missing entries.

    Parameters
    ----------
    tr : TreeArrays
    t : int
    point : ndarray of float64, shape (dim,)
        Relative to the origin; its missing entries are ignored.
    missing : ndarray of bool, shape (dim,)
    node, depth : int
        Where the search starts: the first node of ``point``'s path that
        cuts a missing entry, or the leaf that ends the path, and its depth
        (:func:`_path`); ``-1`` for an empty tree, ``-2`` for a corrupt one.
    stack, phase, depth_of : ndarray of int32, shape (num_nodes,)
        Work space: the nodes above the one searched, each with its kind
        (0: it cuts a known entry, its one child is searched; 1 and 2: it
        cuts a missing entry, its left or right child is searched) and
        depth. Below the first node, every node's rank decides a choice
        above it; that node's own rank decides nothing.
    ranks : ndarray of float64, shape (num_nodes,)
    leaves : ndarray of int64, shape (num_nodes,)
    terms : ndarray of float64, shape (dim,)
        Work space.

    Returns
    -------
    int
        Store row of the chosen leaf's point; ``-1`` for an empty tree,
        ``-2`` for a corrupt one.

    Notes
    -----
    The nodes that follow one child are gone down in an inner loop, each
    put on the stack only to mix its chance into the rank of its child's
    choice on the way up, bottom up: one turn of a loop per node.
    """
    if node < 0:
        return node
    internal = tr.left.shape[1]
    num_nodes = tr.parent.shape[1]
    limit = stack.shape[0]
    # One tree's arrays, taken once (each access through ``tr`` costs reference counts).
    left = tr.left[t]
    right = tr.right[t]
    cut_dim = tr.cut_dim[t]
    cut_value = tr.cut_value[t]
    leaf_point = tr.leaf_point[t]
    mass = tr.mass[t]
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    range_sum = tr.range_sum[t]
    store = tr.store
    if node >= internal:
        return leaf_point[node - internal]
    stack[0] = node
    phase[0] = 1
    depth_of[0] = depth
    top = 1
    node = left[node]
    depth += 1
    results = 0
    visits = 1
    while True:
        # Down the nodes that cut a known entry, to a leaf or a node that cuts a missing one.
        while node < internal and not missing[cut_dim[node]]:
            visits += 1
            if visits > num_nodes or top + 1 > limit:
                return -2
            stack[top] = node
            phase[top] = 0
            depth_of[top] = depth
            top += 1
            node = left[node] + np.int32(point[cut_dim[node]] > cut_value[node]) * (right[node] - left[node])
            depth += 1
        visits += 1
        if visits > num_nodes or top + 1 > limit:
            return -2
        if node < internal:
            # Both sides, the left first.
            stack[top] = node
            phase[top] = 1
            depth_of[top] = depth
            top += 1
            node = left[node]
            depth += 1
            continue
        row = leaf_point[node - internal]
        separated = False
        for i in range(point.shape[0]):
            if not missing[i] and store[row, i] != point[i]:
                separated = True
                break
        if separated:
            rank = 1.0 / (depth + 1.0)
        elif depth == 0:
            rank = 0.0
        else:
            rank = 1.0 / (depth + np.log2(mass[node] + 1.0))
        ranks[results] = rank
        leaves[results] = row
        results += 1
        # Up, to the first node whose right side is still to search.
        while True:
            above = stack[top - 1]
            kind = phase[top - 1]
            if kind == 1:
                phase[top - 1] = 2
                node = right[above]
                depth = depth_of[top - 1] + 1
                break
            top -= 1
            if kind == 2:
                results -= 1  # the right child's result, over the left's
                if ranks[results] < ranks[results - 1]:
                    ranks[results - 1] = ranks[results]
                    leaves[results - 1] = leaves[results]
                if top == 0:
                    return leaves[0]
            ranks[results - 1] = _mixed(
                ranks[results - 1], point, missing, box_min, box_max, range_sum, above, depth_of[top], terms
            )


@njit(**INLINE)
def _step(tr, t, point, missing, node):
    """One step down ``point``'s path in tree ``t`` from ``node``, or -1 where the search starts (see :func:`_path`)."""
    if node < 0 or node >= tr.left.shape[1]:
        return -1
    dim_cut = tr.cut_dim[t, node]
    if missing[dim_cut]:
        return -1
    # Without a branch (its outcome is a coin toss): left, or right past the cut.
    left = tr.left[t, node]
    return left + np.int32(point[dim_cut] > tr.cut_value[t, node]) * (tr.right[t, node] - left)


@njit(**INLINE)
def _path(tr, t, point, missing):
    """Where the search of tree ``t`` starts: down the one path above the first node that cuts a missing entry.

    No choice is made above it, so no rank is needed there.

    Returns
    -------
    node, depth : int
        The first node that cuts a missing entry, or the leaf ending the
        path, and its depth; ``-1`` for an empty tree, ``-2`` for a
        corrupt one.
    """
    node = tr.root[t]
    depth = 0
    while True:
        child = _step(tr, t, point, missing, node)
        if child < 0:
            return node, depth
        if depth == tr.parent.shape[1]:
            return -2, depth
        node = child
        depth += 1


@njit(**JIT, parallel=True)
def conditional_batch(tr, points, missing, rows, distances):
    """Every tree's completion of every query.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_queries, dim)
        Relative to the origin.
    missing : ndarray of bool, shape (num_queries, dim)
    rows : ndarray of int64, shape (num_trees, num_queries)
        Store row of each tree's choice; ``-1`` for an empty tree, ``-2``
        for a corrupt one.
    distances : ndarray of float64, shape (num_trees, num_queries)
        Euclidean distance of the choice from the query on its known
        entries.
    """
    num_nodes = tr.parent.shape[1]
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        stack = np.empty(num_nodes + 2, np.int32)
        phase = np.empty(num_nodes + 2, np.int32)
        depth_of = np.empty(num_nodes + 2, np.int32)
        ranks = np.empty(num_nodes + 2)
        leaves = np.empty(num_nodes + 2, np.int64)
        terms = np.empty(points.shape[1])
        for q in range(points.shape[0]):
            node, depth = _path(tr, t, points[q], missing[q])
            row = conditional_in_tree(
                tr, t, points[q], missing[q], node, depth, stack, phase, depth_of, ranks, leaves, terms
            )
            rows[t, q] = row
            total = 0.0
            if row >= 0:
                for j in range(points.shape[1]):
                    if not missing[q, j]:
                        diff = tr.store[row, j] - points[q, j]
                        total += diff * diff
            distances[t, q] = np.sqrt(total)


@njit(**INLINE)
def _quantile(sorted_values, fraction):
    """:func:`pick_quantile`, inlined where it is used."""
    target = fraction * sorted_values.shape[0]
    for j in range(sorted_values.shape[0]):
        if j + 1.0 >= target:
            return sorted_values[j]
    return sorted_values[sorted_values.shape[0] - 1]


@njit(**JIT)
def pick_quantile(sorted_values, fraction):
    """AWS's ``prefixPick`` with unit weights: the first sorted value where the count reaches ``fraction`` of all."""
    return _quantile(sorted_values, fraction)


@njit(**INLINE)
def _sort(values):
    """Sort a short array in place (insertion sort: the trees' values of one entry, allocating nothing)."""
    for j in range(1, values.shape[0]):
        value = values[j]
        i = j - 1
        while i >= 0 and values[i] > value:
            values[i + 1] = values[i]
            i -= 1
        values[i + 1] = value


@njit(**INLINE)
def _choose_in_trees(tr, point, missing, chosen, starts, depths, stack, phase, depth_of, ranks, leaves, terms):
    """Every tree's completion of one query, into ``chosen``; whether a tree was corrupt or empty.

    The trees' paths go down together, one level at a time (independent
    walks overlap), then each tree is searched below its path
    (:func:`conditional_in_tree`). ``starts`` and ``depths`` (int64, shape
    (num_trees,)) are work space, as are the search's buffers.
    """
    num_trees = tr.root.shape[0]
    for t in range(num_trees):
        starts[t] = tr.root[t]
        depths[t] = 0
    for level in range(tr.parent.shape[1] + 1):
        moved = False
        for t in range(num_trees):
            child = _step(tr, t, point, missing, starts[t])
            if child >= 0:
                starts[t] = child if level < tr.parent.shape[1] else -2
                depths[t] += 1
                moved = True
        if not moved:
            break
    broken = False
    for t in range(num_trees):
        chosen[t] = conditional_in_tree(
            tr, t, point, missing, starts[t], depths[t], stack, phase, depth_of, ranks, leaves, terms
        )
        broken |= chosen[t] < 0
    return broken


@njit(**JIT, _nrt=False)
def _impute_block(
    tr, points, missing, out, chosen, values, starts, depths, stack, phase, depth_of, ranks, leaves, terms
):
    """:func:`impute_batch` for a block of queries, tree after tree (each tree's arrays stay in cache).

    ``chosen`` (int64, shape (block, num_trees)), ``values`` (float64,
    shape (num_trees,)), ``starts`` and ``depths`` (int64, shape (block,))
    are work space, as are the search's buffers.
    Compiled without numba's reference counts: it allocates nothing.
    """
    num_trees = tr.root.shape[0]
    dim = points.shape[1]
    for t in range(num_trees):
        # The queries go down their paths together, one level at a time: independent walks overlap.
        for q in range(points.shape[0]):
            starts[q] = tr.root[t]
            depths[q] = 0
        for level in range(tr.parent.shape[1] + 1):
            moved = False
            for q in range(points.shape[0]):
                child = _step(tr, t, points[q], missing[q], starts[q])
                if child >= 0:
                    starts[q] = child if level < tr.parent.shape[1] else -2
                    depths[q] += 1
                    moved = True
            if not moved:
                break
        for q in range(points.shape[0]):
            chosen[q, t] = conditional_in_tree(
                tr, t, points[q], missing[q], starts[q], depths[q], stack, phase, depth_of, ranks, leaves, terms
            )
    for q in range(points.shape[0]):
        broken = False
        for t in range(num_trees):
            broken |= chosen[q, t] < 0
        for i in range(dim):
            if not missing[q, i]:
                out[q, i] = points[q, i]
            elif broken:
                out[q, i] = np.nan
            else:
                for t in range(num_trees):
                    values[t] = tr.store[chosen[q, t], i]
                _sort(values)
                out[q, i] = _quantile(values, 0.5)


_BLOCK = 64
"""Queries per block of :func:`impute_batch` (tree-major within a block)."""


@njit(**JIT, parallel=True)
def impute_batch(tr, points, missing, out):
    """Fill each query's missing entries with the median over trees of the trees' values.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_queries, dim)
        Relative to the origin.
    missing : ndarray of bool, shape (num_queries, dim)
    out : ndarray of float64, shape (num_queries, dim)
        ``points`` with the missing entries filled; NaN for a query met by
        a corrupt or empty tree.
    """
    num_trees = tr.root.shape[0]
    num_nodes = tr.parent.shape[1]
    num_blocks = (points.shape[0] + _BLOCK - 1) // _BLOCK
    for b in prange(num_blocks):
        start = b * _BLOCK
        stop = min(start + _BLOCK, points.shape[0])
        _impute_block(
            tr,
            points[start:stop],
            missing[start:stop],
            out[start:stop],
            np.empty((stop - start, num_trees), np.int64),
            np.empty(num_trees),
            np.empty(stop - start, np.int64),
            np.empty(stop - start, np.int64),
            np.empty(num_nodes + 2, np.int32),
            np.empty(num_nodes + 2, np.int32),
            np.empty(num_nodes + 2, np.int32),
            np.empty(num_nodes + 2),
            np.empty(num_nodes + 2, np.int64),
            np.empty(points.shape[1]),
        )


@njit(**INLINE)
def _workspace(num_trees, num_nodes, dim):
    """The work arrays of one query's search in every tree, as :func:`_choose_in_trees` takes them.

    Returns
    -------
    tuple of ndarray
        ``chosen`` (int64, shape (num_trees,)), ``values`` (float64, shape
        (num_trees,): one entry's values over trees), ``starts`` and
        ``depths`` (int64, shape (num_trees,)), ``stack``, ``phase`` and
        ``depth_of`` (int32, shape (num_nodes + 2,)), ``ranks`` (float64)
        and ``leaves`` (int64) of that shape, and ``terms`` (float64,
        shape (dim,)).
    """
    return (
        np.empty(num_trees, np.int64),
        np.empty(num_trees),
        np.empty(num_trees, np.int64),
        np.empty(num_trees, np.int64),
        np.empty(num_nodes + 2, np.int32),
        np.empty(num_nodes + 2, np.int32),
        np.empty(num_nodes + 2, np.int32),
        np.empty(num_nodes + 2),
        np.empty(num_nodes + 2, np.int64),
        np.empty(dim),
    )


@njit(**JIT, _nrt=False)
def _impute_one(tr, point, missing, out, work):
    """:func:`impute_one`'s work, the trees' paths down together; allocates nothing.

    ``point`` is relative to the origin, 0 where missing; ``out`` gets each
    missing entry's median (relative to the origin); ``work`` is
    :func:`_workspace`. Returns whether a tree was corrupt or empty.
    """
    chosen, values, starts, depths, stack, phase, depth_of, ranks, leaves, terms = work
    num_trees = tr.root.shape[0]
    broken = _choose_in_trees(tr, point, missing, chosen, starts, depths, stack, phase, depth_of, ranks, leaves, terms)
    for i in range(point.shape[0]):
        if missing[i] and not broken:
            for t in range(num_trees):
                values[t] = tr.store[chosen[t], i]
            _sort(values)
            out[i] = _quantile(values, 0.5)
    return broken


@njit(**JIT)
def impute_one(reader, row, out):
    """:func:`impute_batch` for one row, on the calling thread, through the forest's handle.

    Parameters
    ----------
    reader : rcforest._reading.Reader
        Holds the trees (``reader.trees``): one pointer to unbox instead of
        the trees' twenty-odd arrays.
    row : ndarray of float64, shape (dim,)
        In the input's coordinates, NaN or infinite where missing,
        unchecked.
    out : ndarray of float64, shape (1, dim)
        ``row`` with its missing entries filled (the median over trees,
        as :func:`impute_batch` fills them, plus the origin).

    Returns
    -------
    int
        :data:`INVALID` for a finite value beyond
        :data:`~rcforest._core.MAX_ABS_VALUE` in magnitude (nothing
        done), :data:`CORRUPT` when a tree was corrupt or empty (nothing is
        filled), else 0.
    """
    tr = reader.trees
    dim = row.shape[0]
    missing = np.empty(dim, np.bool_)
    point = np.empty(dim)
    gaps = False
    for i in range(dim):
        value = row[i]
        missing[i] = not np.isfinite(value)
        if not missing[i] and not abs(value) <= MAX_ABS_VALUE:
            return INVALID
        gaps |= missing[i]
        point[i] = 0.0 if missing[i] else value - tr.origin[i]
        out[0, i] = np.nan if missing[i] else value
    if not gaps:
        return 0
    filled = np.empty(dim)
    if _impute_one(tr, point, missing, filled, _workspace(tr.root.shape[0], tr.parent.shape[1], dim)):
        return CORRUPT
    for i in range(dim):
        if missing[i]:
            out[0, i] = filled[i] + tr.origin[i]
    return 0


@njit(**JIT, _nrt=False)
def _forecast(tr, point, missing, block, values, lower, upper, work):
    """The steps of :func:`extrapolate`; ``point`` holds the first query (its last ``block`` entries missing).

    ``work`` is :func:`_workspace`. Compiled without numba's reference
    counts: it allocates nothing.
    """
    chosen, column, starts, depths, stack, phase, depth_of, ranks, leaves, terms = work
    dim = point.shape[0]
    num_trees = tr.root.shape[0]
    for step in range(values.shape[0]):
        broken = _choose_in_trees(
            tr, point, missing, chosen, starts, depths, stack, phase, depth_of, ranks, leaves, terms
        )
        for j in range(block):
            if broken:
                values[step, j] = lower[step, j] = upper[step, j] = np.nan
                continue
            for t in range(num_trees):
                column[t] = tr.store[chosen[t], dim - block + j]
            _sort(column)
            values[step, j] = _quantile(column, 0.5)
            lower[step, j] = _quantile(column, LOWER)
            upper[step, j] = _quantile(column, UPPER)
        # Shift the shingle by one row and put the forecast in as the newest known row.
        for i in range(dim - 2 * block):
            point[i] = point[i + block]
        for j in range(block):
            point[dim - 2 * block + j] = values[step, j]


@njit(**JIT)
def extrapolate(reader, out):
    """Forecast ``horizon`` rows after the forest's last ``shingle_size - 1`` rows, in one call.

    Parameters
    ----------
    reader : rcforest._reading.Reader
        Holds the trees (``reader.trees``) and the last rows seen
        (``reader.tail``, oldest first, in the input's coordinates).
    out : ndarray of float64, shape (3, horizon, block)
        Overwritten with each step's median and its 10th and 90th
        percentiles over trees, in the input's coordinates; NaN when a
        tree is corrupt or empty.

    Returns
    -------
    bool
        Whether a tree was corrupt or empty (the forecast is NaN).

    Notes
    -----
    Each step's query is the last ``shingle_size - 1`` rows followed by a
    missing row; the row's median joins the query of the next step. The
    trees run one after another: a step is too short to share among
    threads.
    """
    tr = reader.trees
    tail = reader.tail
    block = tail.shape[1]
    dim = tr.store.shape[1]
    point = np.zeros(dim)
    for lag in range(tail.shape[0]):
        for c in range(block):
            point[lag * block + c] = tail[lag, c] - tr.origin[lag * block + c]
    missing = np.zeros(dim, np.bool_)
    missing[dim - block :] = True
    _forecast(tr, point, missing, block, out[0], out[1], out[2], _workspace(tr.root.shape[0], tr.parent.shape[1], dim))
    broken = False
    for part in range(3):
        for step in range(out.shape[1]):
            for j in range(block):
                out[part, step, j] += tr.origin[dim - block + j]
                broken |= np.isnan(out[part, step, j])
    return broken
