"""Read-only kernels on one tree: the anomaly score, its attribution, CoDisp.

Each function reads tree ``t`` of a :class:`rcforest._tree.TreeArrays` and
changes nothing in it (displacement draws from a generator state passed in).
The score's rule, ``1 / (d + 1)`` for a point unseen at depth ``d`` and the
scaling by ``log2(M + offset)`` for a tree of mass ``M``, is written once
here, in :func:`_unseen` and :func:`_scale`. The ``mass_offset`` of the
scaling is :data:`AWS_MASS_OFFSET` (1, the AWS reference implementation's
``log2(M + 1)``) or :data:`SAGEMAKER_MASS_OFFSET` (0: SageMaker's built-in
algorithm scales each tree by ``log2(M)``, see
:mod:`rcforest._layout`).

A walk that takes more steps than the tree has levels (a corrupt tree, with
a cycle in its links) stops, and the value it was computing is NaN.

Notes
-----
Collusive displacement follows Guha, Mishra, Roy and Schrijvers, "Robust
Random Cut Forest Based Anomaly Detection on Streams", ICML 2016 (section
4). The expected-inverse-depth score and its attribution follow the AWS
reference implementation (random-cut-forest-by-aws, ``AnomalyScoreVisitor``
and ``AnomalyAttributionVisitor``).
"""

import numpy as np

from rcforest._box import box_gap, box_gap_fast
from rcforest._jit import INLINE, JIT, njit
from rcforest._update import find_place

__all__ = []

AWS_MASS_OFFSET = 1.0
"""Each tree's score is scaled by ``log2(M + 1)``, ``M`` its mass (random-cut-forest-by-aws)."""
SAGEMAKER_MASS_OFFSET = 0.0
"""Each tree's score is scaled by ``log2(M)``, as SageMaker's built-in Random Cut Forest scales it."""


@njit(**INLINE)
def _descend(tr, t, point):
    """Follow the stored cuts to a leaf; return the leaf and its depth (leaf ``-1`` for a cycle)."""
    node = tr.root[t]
    depth = 0
    steps = tr.parent.shape[1]
    internal = tr.left.shape[1]
    while node < internal:
        if depth == steps:
            return -1, depth
        # A branch on the side, each side loading only its child: measured
        # faster than loading both and selecting one without a branch.
        if point[tr.cut_dim[t, node]] <= tr.cut_value[t, node]:
            node = tr.left[t, node]
        else:
            node = tr.right[t, node]
        depth += 1
    return node, depth


@njit(**INLINE)
def _is_leaf_point(tr, t, leaf, point):
    """Whether ``point`` is the one ``leaf`` holds."""
    row = tr.leaf_point[t, leaf - tr.left.shape[1]]
    for i in range(point.shape[0]):
        if tr.store[row, i] != point[i]:
            return False
    return True


@njit(**INLINE)
def _seen_score(mass, total, depth):
    """Score of a point stored ``mass`` times in a leaf at ``depth``, before scaling.

    ``damp(m, M) * scoreSeen(d, m) = (1 - m / (2 M)) / (d + log2(m + 1))``.
    """
    return (1.0 - mass / (2.0 * total)) / (depth + np.log2(mass + 1.0))


@njit(**INLINE)
def _unseen(depth, weight):
    """``weight`` times the score of a point separated at depth ``depth``, before scaling.

    ``scoreUnseen(d) = 1 / (d + 1)``, weighted by the probability of the
    separation (1 at the leaf).
    """
    return weight / (depth + 1.0)


@njit(**INLINE)
def _scale(total, mass_offset):
    """Scaling of a tree's score by its mass ``M``: ``log2(M + mass_offset)``."""
    return np.log2(total + mass_offset)


@njit(**INLINE)
def score_point(tr, t, point, mass_offset=AWS_MASS_OFFSET):
    """Expected-inverse-depth anomaly score of ``point`` in tree ``t``.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    point : ndarray of float64, shape (dim,)
    mass_offset : float, default AWS_MASS_OFFSET
        The tree's score is scaled by ``log2(M + mass_offset)``, ``M`` its
        mass: :data:`AWS_MASS_OFFSET` or :data:`SAGEMAKER_MASS_OFFSET`.

    Returns
    -------
    float
        The tree's score, ``0.0`` for an empty tree. Read-only.

    Notes
    -----
    AWS random-cut-forest-by-aws, ``AnomalyScoreVisitor``: at the leaf the
    score is ``damp(m, M) / (d + log2(m + 1))`` for a stored point and
    ``1 / (d + 1)`` otherwise; each ancestor at depth ``d`` mixes in
    ``1 / (d + 1)`` with the probability ``p`` that a random cut of its box
    extended by the point separates the point. The walk stops where ``p``
    is 0. The result is scaled by ``log2(M + mass_offset)``.
    """
    root = tr.root[t]
    if root == -1:
        return 0.0
    leaf, depth = _descend(tr, t, point)
    return _score_from_leaf(tr, t, leaf, depth, point, tr.mass[t, root], mass_offset)


@njit(**INLINE)
def _score_from_leaf(tr, t, leaf, depth, point, total, mass_offset):
    """:func:`score_point` of ``point``, which reached ``leaf`` at ``depth`` in tree ``t`` of mass ``total``."""
    if leaf == -1:
        return np.nan
    if _is_leaf_point(tr, t, leaf, point):
        return _seen_score(tr.mass[t, leaf], total, depth) * _scale(total, mass_offset)
    score = _unseen(depth, 1.0)
    node = tr.parent[t, leaf]
    depth -= 1
    while node != -1:
        if depth < 0:
            return np.nan  # more ancestors than levels: a cycle
        gap = box_gap_fast(tr, t, node, point)
        if gap == 0.0:
            break
        prob = gap / (tr.range_sum[t, node] + gap)
        score = _unseen(depth, prob) + (1.0 - prob) * score
        node = tr.parent[t, node]
        depth -= 1
    return score * _scale(total, mass_offset)


LANES = 8
"""Rows that :func:`score_rows` takes down a tree together, and trees that :func:`score_trees` walks together."""


@njit(**INLINE)
def _descend_lanes(tr, t, points, first, count, node, depth):
    """:func:`_descend` of rows ``first .. first + count - 1`` together: leaves into ``node``, depths into ``depth``.

    Each step moves every row still above a leaf one level down, so the
    rows' dependent loads (cut, then child) overlap instead of waiting on
    each other. A row whose walk takes more steps than the tree has levels
    (a cycle) gets leaf ``-1``, as from :func:`_descend`.
    """
    internal = tr.left.shape[1]
    steps = tr.parent.shape[1]
    root = tr.root[t]
    for j in range(count):
        node[j] = root
        depth[j] = 0
    moving = True
    while moving:
        moving = False
        for j in range(count):
            here = node[j]
            if here < 0 or here >= internal:
                continue  # at a leaf, or stopped
            if depth[j] == steps:
                node[j] = -1
                continue
            if points[first + j, tr.cut_dim[t, here]] <= tr.cut_value[t, here]:
                node[j] = tr.left[t, here]
            else:
                node[j] = tr.right[t, here]
            depth[j] += 1
            moving = True


@njit(**INLINE)
def score_rows(tr, t, points, out, mass_offset):
    """:func:`score_point` of every row of ``points`` in tree ``t``, into ``out``; read-only.

    Rows go down the tree :data:`LANES` at a time (:func:`_descend_lanes`),
    then each walks back up on its own: each row's value is the very one
    :func:`score_point` gives (the same operations in the same order).

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    points : ndarray of float64, shape (num_rows, dim)
    out : ndarray of float64, shape (num_rows,)
    mass_offset : float
        As for :func:`score_point`.
    """
    root = tr.root[t]
    if root == -1:
        for row in range(points.shape[0]):
            out[row] = 0.0
        return
    total = tr.mass[t, root]
    node = np.empty(LANES, np.int64)
    depth = np.empty(LANES, np.int64)
    for first in range(0, points.shape[0], LANES):
        count = min(LANES, points.shape[0] - first)
        _descend_lanes(tr, t, points, first, count, node, depth)
        for j in range(count):
            out[first + j] = _score_from_leaf(tr, t, node[j], depth[j], points[first + j], total, mass_offset)


@njit(**INLINE)
def _descend_trees(tr, first, count, point, node, depth):
    """:func:`_descend` of ``point`` in trees ``first .. first + count - 1`` together, as :func:`_descend_lanes`.

    One point's walks down several trees: where a single reading visits
    trees that are cold in the caches, each step's loads wait on memory,
    and taking :data:`LANES` trees a level at a time overlaps those waits
    (measured: a descent in half the time at 4-D).
    """
    internal = tr.left.shape[1]
    steps = tr.parent.shape[1]
    for j in range(count):
        node[j] = tr.root[first + j]
        depth[j] = 0
    moving = True
    while moving:
        moving = False
        for j in range(count):
            here = node[j]
            if here < 0 or here >= internal:
                continue  # at a leaf, stopped, or an empty tree
            if depth[j] == steps:
                node[j] = -1
                continue
            t = first + j
            if point[tr.cut_dim[t, here]] <= tr.cut_value[t, here]:
                node[j] = tr.left[t, here]
            else:
                node[j] = tr.right[t, here]
            depth[j] += 1
            moving = True


@njit(**INLINE)
def score_trees(tr, first, count, point, mass_offset, node, depth, out):
    """:func:`score_point` of ``point`` in trees ``first .. first + count - 1``, into ``out[first + j]``; read-only.

    The trees are walked down together (:func:`_descend_trees`), then each
    walks back up on its own: each tree's value is the very one
    :func:`score_point` gives. An entry of ``out`` already NaN (a tree
    found corrupt) is left NaN.

    Parameters
    ----------
    tr : TreeArrays
    first, count : int
        The trees; ``count`` at most :data:`LANES`.
    point : ndarray of float64, shape (dim,)
    mass_offset : float
        As for :func:`score_point`.
    node, depth : ndarray of int64, shape (LANES,)
        Room for the walks down (allocating nothing, this kernel also runs
        without reference counts).
    out : ndarray of float64, shape (num_trees,)
    """
    _descend_trees(tr, first, count, point, node, depth)
    for j in range(count):
        t = first + j
        root = tr.root[t]
        if np.isnan(out[t]):
            continue
        if root == -1:
            out[t] = 0.0
        else:
            out[t] = _score_from_leaf(tr, t, node[j], depth[j], point, tr.mass[t, root], mass_offset)


@njit(**JIT)
def attribute_point(tr, t, point, high, low, mass_offset=AWS_MASS_OFFSET):
    """Split tree ``t``'s score of ``point`` by dimension and direction.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    point : ndarray of float64, shape (dim,)
    high, low : ndarray of float64, shape (dim,)
        Overwritten with the parts of the score due to ``point`` lying above
        (``high``) or below (``low``) the data in each dimension. They sum
        to :func:`score_point`'s value; NaN for a corrupt tree.
    mass_offset : float, default AWS_MASS_OFFSET
        As for :func:`score_point`.

    Notes
    -----
    AWS random-cut-forest-by-aws, ``AnomalyAttributionVisitor`` (DiVector):
    the score recursion of :func:`score_point`, with the separation
    probability split over the dimensions and sides that make it up. At the
    leaf, the leaf score is spread in proportion to ``|point - leaf|``, or
    evenly over all dimensions and both sides for a stored point.
    """
    dim = point.shape[0]
    for i in range(dim):
        high[i] = 0.0
        low[i] = 0.0
    root = tr.root[t]
    if root == -1:
        return
    total = tr.mass[t, root]
    scale = _scale(total, mass_offset)
    leaf, depth = _descend(tr, t, point)
    if leaf == -1:
        high[:] = np.nan
        low[:] = np.nan
        return
    row = tr.leaf_point[t, leaf - tr.left.shape[1]]
    if _is_leaf_point(tr, t, leaf, point):
        share = _seen_score(tr.mass[t, leaf], total, depth) * scale / (2.0 * dim)
        for i in range(dim):
            high[i] = share
            low[i] = share
        return
    leaf_score = _unseen(depth, 1.0)
    spread = 0.0
    for i in range(dim):
        spread += abs(point[i] - tr.store[row, i])
    for i in range(dim):
        diff = point[i] - tr.store[row, i]
        if diff > 0.0:
            high[i] = leaf_score * diff / spread
        elif diff < 0.0:
            low[i] = -leaf_score * diff / spread
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    node = tr.parent[t, leaf]
    depth -= 1
    while node != -1:
        if depth < 0:
            high[:] = np.nan  # more ancestors than levels: a cycle
            low[:] = np.nan
            return
        gap = box_gap(box_min, box_max, node, point)
        if gap == 0.0:
            break
        new_range = tr.range_sum[t, node] + gap
        prob = gap / new_range
        unseen = _unseen(depth, 1.0)
        for i in range(dim):
            above = max(point[i] - box_max[node, i], 0.0)
            below = max(box_min[node, i] - point[i], 0.0)
            high[i] = above / new_range * unseen + (1.0 - prob) * high[i]
            low[i] = below / new_range * unseen + (1.0 - prob) * low[i]
        node = tr.parent[t, node]
        depth -= 1
    for i in range(dim):
        high[i] *= scale
        low[i] *= scale


@njit(**INLINE)
def displacement_of(tr, t, point, rng, k):
    """CoDisp and Disp of ``point`` as if inserted into tree ``t``, read-only.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    point : ndarray of float64, shape (dim,)
    rng : ndarray of uint64
        Generator states for the insertion's cuts; ``rng[k]`` is advanced.
    k : int

    Returns
    -------
    codisp, disp : float
        CoDisp and Disp of the point's leaf after
        ``insert_point(tr, t, point, rng, k)``, computed without inserting:
        the new leaf (mass 1) has the insertion node as sibling, and every
        node above gains one unit of mass. NaN for a corrupt tree.
    """
    if tr.root[t] == -1:
        return 0.0, 0.0
    node, cut_dim, _ = find_place(tr, t, point, rng, k)
    if node == -1:
        return np.nan, np.nan
    duplicate = cut_dim == -1
    codisp = 0.0
    disp = 0.0
    if not duplicate:
        # The new leaf, of mass 1, has ``node`` as its sibling.
        codisp = float(tr.mass[t, node])
        disp = codisp
    # Above: ``node`` (or the split node in its place) and each ancestor
    # carry one more unit of mass; their siblings are unchanged.
    child = node
    parent = tr.parent[t, child]
    for _ in range(tr.parent.shape[1]):
        if parent == -1:
            return codisp, disp
        sibling = tr.left[t, parent]
        if sibling == child:
            sibling = tr.right[t, parent]
        if duplicate and child == node:
            disp = float(tr.mass[t, sibling])
        ratio = tr.mass[t, sibling] / (tr.mass[t, child] + 1.0)
        if ratio > codisp:
            codisp = ratio
        child = parent
        parent = tr.parent[t, child]
    return np.nan, np.nan  # more ancestors than nodes: a cycle
