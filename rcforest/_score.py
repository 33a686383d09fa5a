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
a cycle in its links) stops, and the value it was computing is NaN; so is
a score whose walk back up finds parent links that disagree with the nodes
its walk down passed.

Notes
-----
Collusive displacement follows Guha, Mishra, Roy and Schrijvers, "Robust
Random Cut Forest Based Anomaly Detection on Streams", ICML 2016 (section
4). The expected-inverse-depth score and its attribution follow the AWS
reference implementation (random-cut-forest-by-aws, ``AnomalyScoreVisitor``
and ``AnomalyAttributionVisitor``).
"""

import numpy as np

from rcforest._box import box_gap, box_gap_fast, prefetch
from rcforest._jit import INLINE, JIT, njit
from rcforest._lanes import LANES, step_lanes
from rcforest._update import find_place

__all__ = []

AWS_MASS_OFFSET = 1.0
"""Each tree's score is scaled by ``log2(M + 1)``, ``M`` its mass (random-cut-forest-by-aws)."""
SAGEMAKER_MASS_OFFSET = 0.0
"""Each tree's score is scaled by ``log2(M)``, as SageMaker's built-in Random Cut Forest scales it."""


@njit(**INLINE)
def _child(tr, t, node, point):
    """The child of internal ``node`` of tree ``t`` on ``point``'s side of the node's cut: one step down.

    Both children are loaded and one is taken by arithmetic, without a
    branch on the side (which side a point goes is a coin toss for the
    branch predictor): measured faster than a branch loading only the
    child taken, by 3-20% on a walk down alone (a row at a time, or eight
    trees in lockstep), and the same for eight rows in lockstep.
    """
    left = tr.left[t, node]
    right_side = point[tr.cut_dim[t, node]] > tr.cut_value[t, node]
    return left + np.int32(right_side) * (tr.right[t, node] - left)


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
        node = _child(tr, t, node, point)
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
    total = tr.mass[t, root]
    return _score_from_leaf(tr, t, leaf, depth, point, total, _scale(total, mass_offset), None, 0)


@njit(**INLINE)
def _ancestor(tr, t, child, depth, path, lane):
    """The parent of ``child`` (a node at ``depth + 1``): ``-1`` above the root, ``-2`` for a corrupt tree.

    Without a ``path`` it is read from the links. With one, it is the node
    the walk down passed at ``depth``, ``path[lane, depth]``: known before
    any load, so that the walk back up does not wait on a chain of parent
    links; the links must agree with it (else ``-2``).
    """
    if path is None:
        return tr.parent[t, child]
    node = path[lane, depth] if depth >= 0 else -1
    return node if tr.parent[t, child] == node else -2


@njit(**INLINE)
def _score_from_leaf(tr, t, leaf, depth, point, total, scale, path, lane):
    """:func:`score_point` of ``point``, which reached ``leaf`` at ``depth`` in tree ``t`` of mass ``total``.

    ``scale`` is the tree's scaling, ``_scale(total, mass_offset)``, taken
    once per tree by a caller that scores several rows.
    ``path`` (or None) is the walk down, as :func:`_ancestor` reads it.
    The leaf's parent's gap is taken first: a point outside the parent's
    box is not the leaf's point (the box holds it), so the leaf's point,
    a row of the store that is cold in the caches, is read only for a
    point inside the box. Each value is the one the recursion of
    :func:`score_point` gives, the same operations in the same order.
    """
    if leaf == -1:
        return np.nan
    depth -= 1
    node = _ancestor(tr, t, leaf, depth, path, lane)
    if node == -2 or (node != -1 and depth < 0):
        return np.nan  # the links disagree with the walk, or more ancestors than levels: a cycle
    gap = 0.0 if node == -1 else box_gap_fast(tr, t, node, point)
    if gap == 0.0:  # the walk back up stops at once
        if _is_leaf_point(tr, t, leaf, point):
            return _seen_score(tr.mass[t, leaf], total, depth + 1) * scale
        return _unseen(depth + 1, 1.0) * scale
    score = _unseen(depth + 1, 1.0)
    while True:
        prob = gap / (tr.range_sum[t, node] + gap)
        score = _unseen(depth, prob) + (1.0 - prob) * score
        child = node
        depth -= 1
        node = _ancestor(tr, t, child, depth, path, lane)
        if node == -1:
            break
        if node == -2 or depth < 0:
            return np.nan
        gap = box_gap_fast(tr, t, node, point)
        if gap == 0.0:
            break
    return score * scale


_LINE_FLOATS = 16
"""float32 values in a 64-byte cache line: the step of :func:`_descend_pair`'s prefetches of a box."""


@njit(**INLINE)
def _descend_lanes(tr, first_tree, tree_step, points, first_row, row_step, count, node, depth, path):
    """:func:`_descend` of ``count`` walks together, each a row of ``points`` down a tree.

    Walk ``j`` takes row ``first_row + j * row_step`` of ``points`` down
    tree ``first_tree + j * tree_step``. Leaves go into ``node``, depths into ``depth`` and the nodes passed
    into ``path`` (``path[j, d]`` at depth ``d``). Each step moves every
    walk still above a leaf one level down, :func:`_child`'s step for each
    walk in turn, so the walks' dependent loads (cut, then child) overlap
    instead of waiting on each other: several rows down one tree warm in
    the caches (a batch), where vector gathers measured slower (118
    against 111 ns per tree and point at 4-D; a reading's trees, cold,
    take :func:`_descend_pair`). A walk that takes more steps than the
    tree has levels (a cycle) gets leaf ``-1``, as from :func:`_descend`;
    an empty tree's walk stays at ``-1``.
    """
    internal = tr.left.shape[1]
    for j in range(LANES):
        node[j] = tr.root[first_tree + j * tree_step] if j < count else -1
        depth[j] = 0
    for level in range(tr.parent.shape[1]):
        moving = False
        for j in range(count):
            here = node[j]
            if 0 <= here < internal:
                path[j, level] = here
                node[j] = _child(tr, first_tree + j * tree_step, here, points[first_row + j * row_step])
                depth[j] = level + 1
                moving = True
        if not moving:
            break
    for j in range(count):
        if 0 <= node[j] < internal:
            node[j] = -1  # still above a leaf after as many steps as the tree has levels: a cycle


@njit(**INLINE)
def score_rows(tr, t, points, out, mass_offset):
    """:func:`score_point` of every row of ``points`` in tree ``t``, into ``out``; read-only.

    Rows go down the tree :data:`LANES` at a time (:func:`_descend_lanes`),
    then each walks back up on its own along the nodes it passed: each
    row's value is the very one :func:`score_point` gives (the same
    operations in the same order).

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
    scale = _scale(total, mass_offset)
    node = np.empty(LANES, np.int64)
    depth = np.empty(LANES, np.int64)
    path = np.empty((LANES, tr.parent.shape[1]), np.int32)
    for first in range(0, points.shape[0], LANES):
        count = min(LANES, points.shape[0] - first)
        _descend_lanes(tr, t, 0, points, first, 1, count, node, depth, path)
        for j in range(count):
            out[first + j] = _score_from_leaf(tr, t, node[j], depth[j], points[first + j], total, scale, path, j)


@njit(**INLINE)
def _any_internal(node, count, internal):
    """Whether one of ``node[:count]`` is an internal node."""
    for j in range(count):
        if 0 <= node[j] < internal:
            return True
    return False


@njit(**INLINE)
def _descend_pair(tr, first, count, point, lanes, path):
    """:func:`_descend` of ``point`` (a row) down trees ``first .. first + count - 1`` (``count`` up to ``2 * LANES``).

    The trees are a reading's, cold in the caches. Each level of
    :data:`LANES` walks is one :func:`~rcforest._lanes.step_lanes` (vector
    gathers, measured 15% faster than a step per walk for a reading's
    whole score at 4-D), and two groups of walks, the trees ``first + j``
    and ``first + LANES + j``, take each level together: their gathers do
    not wait on each other, so the latencies overlap (13-20% off a 4-D
    reading's score; three or four groups gave no more). Leaves and depths
    go into ``lanes[0]``, ``lanes[1]`` (first group) and ``lanes[2]``,
    ``lanes[3]`` (second), the nodes passed into ``path[0]`` and
    ``path[1]``; the same walks as :func:`_descend_lanes`. Where a box
    fills a cache line or more, the boxes of the nodes passed are asked of
    the caches on the way down, and the walk back up finds them there
    (measured at 48-D; at 4-D a box is a quarter of a line and the
    prefetches cost more than they save).
    """
    internal = tr.left.shape[1]
    dim = point.shape[1]
    fetch = dim >= _LINE_FLOATS
    counts = (min(count, LANES), max(count - LANES, 0))
    for g in range(2):
        for j in range(LANES):
            lanes[2 * g, j] = tr.root[first + g * LANES + j] if j < counts[g] else -1
            lanes[2 * g + 1, j] = 0
    # Whether a walk of each group is still above a leaf: a group whose walks all stand on leaves steps no more.
    above = counts[0] > 0 and _any_internal(lanes[0], counts[0], internal)
    above_too = counts[1] > 0 and _any_internal(lanes[2], counts[1], internal)
    for level in range(tr.parent.shape[1]):
        if not (above or above_too):
            break
        if above:
            above = step_lanes(tr, first, 1, point, 0, 0, counts[0], lanes[0], lanes[1], path[0], level)
        if above_too:
            above_too = step_lanes(tr, first + LANES, 1, point, 0, 0, counts[1], lanes[2], lanes[3], path[1], level)
        if fetch:
            for g in range(2):
                for j in range(counts[g]):
                    if lanes[2 * g + 1, j] > level:
                        t = first + g * LANES + j
                        for i in range(0, dim, _LINE_FLOATS):
                            prefetch(tr.box_min, t, path[g, j, level], i)
                            prefetch(tr.box_max, t, path[g, j, level], i)
    for g in range(2):
        for j in range(counts[g]):
            if 0 <= lanes[2 * g, j] < internal:
                lanes[2 * g, j] = -1  # a cycle, as in _descend_lanes


@njit(**INLINE)
def score_trees(tr, first, count, point, mass_offset, lanes, path, out):
    """:func:`score_point` of ``point`` in trees ``first .. first + count - 1``, into ``out[first + j]``; read-only.

    The trees are walked down together (:func:`_descend_pair`), then each walks back up
    on its own along the nodes it passed: each tree's value is the very
    one :func:`score_point` gives. An entry of ``out`` already NaN (a
    tree found corrupt) is left NaN.

    Parameters
    ----------
    tr : TreeArrays
    first, count : int
        The trees; ``count`` at most ``2 * LANES``.
    point : ndarray of float64, shape (1, dim)
        The point, as a row.
    mass_offset : float
        As for :func:`score_point`.
    lanes : ndarray of int64, shape (4, LANES)
    path : ndarray of int32, shape (2, LANES, tr.parent.shape[1])
        Room for the walks down (allocating nothing, this kernel also runs
        without reference counts).
    out : ndarray of float64, shape (num_trees,)
    """
    _descend_pair(tr, first, count, point, lanes, path)
    last_total = -1  # the trees of a full forest share one mass: its scaling is taken once, not once per tree
    scale = 0.0
    for k in range(count):
        t = first + k
        g, j = k // LANES, k % LANES
        root = tr.root[t]
        if np.isnan(out[t]):
            continue
        if root == -1:
            out[t] = 0.0
        else:
            total = tr.mass[t, root]
            if total != last_total:
                last_total = total
                scale = _scale(total, mass_offset)
            out[t] = _score_from_leaf(tr, t, lanes[2 * g, j], lanes[2 * g + 1, j], point[0], total, scale, path[g], j)


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
