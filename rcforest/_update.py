"""Changing a tree: insertion and deletion of a point.

Every walk through a tree takes at most as many steps as the tree has node
slots: a walk that would take more (a corrupt tree, with a cycle in its
links) stops and reports failure instead of spinning.

Notes
-----
Insertion follows Guha, Mishra, Roy and Schrijvers, ICML 2016, section
3.2, algorithm 2, drawn top-down; deletion section 3.1, algorithm 1.
"""

import numpy as np

from rcforest._box import (
    box_gap,
    box_gap_fast,
    cut_in_gap,
    prefetch,
    prefetch_box,
    range_of,
    refit_bounds,
    round_down,
    round_up,
    set_union,
)
from rcforest._jit import INLINE, JIT, njit
from rcforest._ranges import BOXES, WIDTH, ranges_of_eight
from rcforest._rng import uniform

__all__ = ["delete_leaf", "find_place", "insert_point", "prefetch_node"]


@njit(**INLINE)
def prefetch_node(tr, t, node, box_min, box_max):
    """Ask the caches for what a walk down reads of tree ``t``'s internal ``node``: box, cut, children, range sum.

    ``box_min`` and ``box_max`` are the tree's (``tr.box_min[t]`` and
    ``tr.box_max[t]``, taken once by the caller). Changes nothing.
    """
    prefetch_box(box_min, box_max, node)
    prefetch(tr.cut_dim, t, node)
    prefetch(tr.cut_value, t, node)
    prefetch(tr.left, t, node)
    prefetch(tr.right, t, node)
    prefetch(tr.range_sum, t, node)


@njit(**INLINE)
def _pop(stack, top, t):
    """Pop a node off tree ``t``'s free stack, leaving ``-1`` in its place."""
    last = top[t] - 1
    top[t] = last
    node = stack[t, last]
    stack[t, last] = -1
    return node


@njit(**INLINE)
def _push(stack, top, t, node):
    """Push ``node`` on tree ``t``'s free stack."""
    stack[t, top[t]] = node
    top[t] += 1


@njit(**INLINE)
def _replace_child(parent_of, left, right, root, t, parent, old, new):
    """Make ``new`` take ``old``'s place under ``parent`` (or as the root)."""
    parent_of[t, new] = parent
    if parent == -1:
        root[t] = new
    elif left[t, parent] == old:
        left[t, parent] = new
    else:
        right[t, parent] = new


@njit(**INLINE)
def _extend(box_min, box_max, node, point):
    """Extend internal ``node``'s box (of ``box_min`` and ``box_max``, one tree's) to hold ``point``."""
    for i in range(point.shape[0]):
        # Both bounds written, with selects rather than branches: which
        # dimensions grow follows the data.
        low = box_min[node, i]
        high = box_max[node, i]
        box_min[node, i] = round_down(point[i]) if point[i] < low else low
        box_max[node, i] = round_up(point[i]) if point[i] > high else high


@njit(**INLINE)
def _queue(box_min, box_max, range_sum, t, queue, count, node):
    """Add internal ``node`` to ``queue``, nodes whose range sums are due; the sums are set eight at a time.

    ``queue`` holds ``count`` nodes (its other places hold the first: the
    eight sums are taken together, in vectors). Returns the new queue and count.
    Boxes of fewer than :data:`~rcforest._ranges.WIDTH` dimensions get their
    sums at once, the queue left empty.
    """
    node = np.int64(node)
    if box_min.shape[1] < WIDTH:
        range_sum[t, node] = range_of(box_min, box_max, node)  # a short chain: no use waiting for others
        return queue, 0
    if count == 0:
        return (node, node, node, node, node, node, node, node), 1
    a, b, c, d, e, f, g, h = queue  # selects, not a store and load: the queue stays in registers
    queue = (
        a,
        node if count == 1 else b,
        node if count == 2 else c,
        node if count == 3 else d,
        node if count == 4 else e,
        node if count == 5 else f,
        node if count == 6 else g,
        node if count == 7 else h,
    )
    if count < BOXES - 1:
        return queue, count + 1
    ranges_of_eight(box_min, box_max, range_sum, t, queue)
    return queue, 0


@njit(**INLINE)
def _flush(box_min, box_max, range_sum, t, queue, count):
    """Set the range sums of the nodes :func:`_queue` holds."""
    if count:
        ranges_of_eight(box_min, box_max, range_sum, t, queue)


@njit(**INLINE)
def _no_queue():
    """An empty queue of :func:`_queue` (made here: a global tuple confuses numba's analysis of parallel loops)."""
    none = np.int64(-1)
    return (none, none, none, none, none, none, none, none)


@njit(**JIT, _nrt=False)
def _ordered_gap(low, high, row, point):
    """:func:`rcforest._box.box_gap` as a call of its own, for wide points (see :func:`_gap_in_order`)."""
    return box_gap(low, high, row, point)


@njit(**INLINE)
def _gap_in_order(low, high, row, point):
    """:func:`rcforest._box.box_gap`; for :data:`~rcforest._ranges.WIDTH` dimensions or more, called.

    The walk down needs the ordered gap once, where it stops; inlined into
    its loop, the long chain of a wide point's additions slowed every level.
    """
    if point.shape[0] < WIDTH:
        return box_gap(low, high, row, point)
    return _ordered_gap(low, high, row, point)


_MARGIN = 1e-12
"""Relative margin of :func:`_unclear`: far above the rounding of a reassociated sum of a few hundred terms."""


@njit(**INLINE)
def _unclear(first, second):
    """Whether ``first < second`` could come out otherwise with either side off by a few hundred roundings.

    Both are nonnegative. A reassociated sum of ``n`` nonnegative terms is
    within ``n`` units in the last place of the ordered one (relative
    ``n * 2**-53``); with :data:`_MARGIN` far above that, a comparison
    outside the margin is the one the ordered sums give.
    """
    return abs(first - second) <= _MARGIN * (first + second)


@njit(**INLINE)
def _descend(tr, t, point, rng, k, grow):
    """:func:`find_place`, and with ``grow`` each node passed on the way counts the point.

    The nodes passed are the ancestors of the place found: with ``grow``,
    each gains a unit of mass and its box is extended to hold ``point``,
    as :func:`insert_point` needs, on the way down rather than on a second
    walk up. Which nodes change, and how, does not depend on the order, so
    the tree ends as a walk up would leave it. Without ``grow`` nothing
    changes but ``rng[k]``. The range sums of the boxes extended are due
    (:func:`_queue`): the queue and its count come back after the place.
    Each node's parent link must be the node the walk came from (the
    root's ``-1``), else the walk stops as for a cycle (node ``-1``): a
    corrupt tree is reported, never extended.
    """
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    store = tr.store
    leaf_point = tr.leaf_point
    internal = tr.left.shape[1]
    node = tr.root[t]
    above = -1
    queue = _no_queue()
    due = 0
    for _ in range(tr.parent.shape[1]):
        if tr.parent[t, node] != above:
            break  # the links disagree with the walk: a corrupt tree
        leaf = node >= internal
        if leaf:
            row = leaf_point[t, node - internal]
            gap = _gap_in_order(store, store, row, point)
        else:
            # The child the walk goes to next, unless the cut separates
            # here: its box is asked for now, so that the wait for it
            # overlaps the work on this level.
            if point[tr.cut_dim[t, node]] <= tr.cut_value[t, node]:
                child = tr.left[t, node]
            else:
                child = tr.right[t, node]
            if child < internal:
                prefetch_node(tr, t, child, box_min, box_max)
                prefetch(tr.parent, t, child)
            # Summed in any order first (zero exactly where the ordered sum
            # is): the ordered sum only where its value is needed.
            gap = box_gap_fast(tr, t, node, point)
        if gap > 0.0:
            range_sum = 0.0 if leaf else tr.range_sum[t, node]
            u = uniform(rng, k)
            separates = u * (range_sum + gap) < gap
            if not leaf and (separates or _unclear(u * (range_sum + gap), gap)):
                gap = _gap_in_order(box_min, box_max, node, point)
                separates = u * (range_sum + gap) < gap
            if separates or leaf:
                r = uniform(rng, k) * gap
                if leaf:
                    cut_dim, cut_value = cut_in_gap(store, store, row, point, r)
                else:
                    cut_dim, cut_value = cut_in_gap(box_min, box_max, node, point, r)
                return node, cut_dim, cut_value, queue, due
        elif leaf:
            return node, -1, 0.0, queue, due  # inside a leaf's box: the same point again
        if grow:
            # The point goes below this node: one more unit of mass, and
            # the box extended if the point lies outside it (``gap > 0``).
            tr.mass[t, node] += 1
            if gap > 0.0:
                _extend(box_min, box_max, node, point)
                queue, due = _queue(box_min, box_max, tr.range_sum, t, queue, due, node)
        above = node
        node = child
    return -1, -1, 0.0, queue, due  # deeper than the tree has nodes (a cycle), or a parent link out of place


@njit(**INLINE)
def find_place(tr, t, point, rng, k):
    """Where :func:`insert_point` would put ``point``, without changing the tree.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index; the tree must not be empty.
    point : ndarray of float64, shape (dim,)
    rng : ndarray of uint64
        Generator states; ``rng[k]`` is advanced once per cut drawn.
    k : int

    Returns
    -------
    node : int
        The node the new leaf goes beside, or the leaf already holding
        ``point``; ``-1`` if the walk does not end at a leaf (a corrupt
        tree).
    cut_dim : int
        Dimension of the separating cut, ``-1`` for a duplicate point.
    cut_value : float

    Notes
    -----
    Guha et al. 2016, section 3.2: walking down from the root, a random cut
    of the node's box extended by the point is drawn; if it separates the
    point from the box, the point's leaf goes beside the node under that
    cut, otherwise the walk follows the node's own cut. The cut separates
    with probability ``gap / (range_sum + gap)``, and given that, it is
    uniform over the gaps; so one uniform decides whether it separates and
    a second, drawn only then, places it. Where the point is inside the box
    (``gap == 0``) nothing is drawn. A leaf has no range, so there the cut
    separates whatever the first uniform: the test could fail only by
    rounding (a gap of a few subnormals), and a leaf has no cut to follow.
    """
    node, cut_dim, cut_value, _, _ = _descend(tr, t, point, rng, k, False)
    return node, cut_dim, cut_value


@njit(**JIT)
def insert_point(tr, t, index, rng, k):
    """Insert the store's row ``index`` into tree ``t``.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    index : int
        Row of ``tr.store`` holding the point.
    rng : ndarray of uint64
        Generator states; ``rng[k]`` is used for the cuts.
    k : int

    Returns
    -------
    int
        The leaf that holds the point (an existing leaf for a duplicate,
        which keeps its own store row); ``-1`` for a corrupt tree.

    Notes
    -----
    The place is found as :func:`find_place` finds it, and the nodes above
    it gain the point's mass and box on the way down; a new internal node
    with the separating cut takes that node's place, with the new leaf
    beside it.
    """
    point = tr.store[index]
    internal = tr.left.shape[1]
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    if tr.root[t] == -1:
        leaf = _pop(tr.free_leaf, tr.free_leaf_top, t)
        tr.mass[t, leaf] = 1
        tr.leaf_point[t, leaf - internal] = index
        tr.root[t] = leaf
        return leaf
    node, cut_dim, cut_value, queue, due = _descend(tr, t, point, rng, k, True)  # the ancestors count the point
    if node == -1 or cut_dim == -1:
        _flush(box_min, box_max, tr.range_sum, t, queue, due)
        if node == -1:
            return -1
        tr.mass[t, node] += 1  # a duplicate: the leaf's "box" is the point itself
        return node
    leaf = _pop(tr.free_leaf, tr.free_leaf_top, t)
    tr.mass[t, leaf] = 1
    tr.leaf_point[t, leaf - internal] = index
    split = _pop(tr.free_internal, tr.free_internal_top, t)
    tr.cut_dim[t, split] = cut_dim
    tr.cut_value[t, split] = cut_value
    if point[cut_dim] <= cut_value:
        tr.left[t, split] = leaf
        tr.right[t, split] = node
    else:
        tr.left[t, split] = node
        tr.right[t, split] = leaf
    _replace_child(tr.parent, tr.left, tr.right, tr.root, t, tr.parent[t, node], node, split)
    tr.parent[t, node] = split
    tr.parent[t, leaf] = split
    tr.mass[t, split] = tr.mass[t, node] + 1
    if node >= internal:
        row = tr.leaf_point[t, node - internal]
        set_union(box_min, box_max, split, tr.store, tr.store, row, tr.store, tr.store, index)
    else:
        set_union(box_min, box_max, split, box_min, box_max, np.int64(node), tr.store, tr.store, index)
    queue, due = _queue(box_min, box_max, tr.range_sum, t, queue, due, split)
    _flush(box_min, box_max, tr.range_sum, t, queue, due)
    return leaf


@njit(**JIT)
def delete_leaf(tr, t, leaf):
    """Remove one copy of the point held by ``leaf`` from tree ``t``.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    leaf : int
        A leaf of tree ``t``.

    Returns
    -------
    bool
        False if a walk up the tree did not reach the root (a corrupt tree).

    Notes
    -----
    Guha et al. 2016, section 3.1, algorithm 1: the leaf's sibling takes
    the parent's place, then masses drop and boxes shrink up the path. Box
    updates stop at the first ancestor whose box does not change. The leaf
    and its parent go back on their free stacks, so insert-then-delete is
    exact.
    """
    steps = tr.parent.shape[1]
    tr.mass[t, leaf] -= 1
    if tr.mass[t, leaf] > 0:
        node = tr.parent[t, leaf]
        for _ in range(steps):
            if node == -1:
                return True
            tr.mass[t, node] -= 1
            node = tr.parent[t, node]
        return False
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    store = tr.store
    internal = tr.left.shape[1]
    parent = tr.parent[t, leaf]
    # The leaf goes back to its free stack, reset.
    tr.parent[t, leaf] = -1
    tr.leaf_point[t, leaf - internal] = -1
    _push(tr.free_leaf, tr.free_leaf_top, t, leaf)
    if parent == -1:
        tr.root[t] = -1
        return True
    sibling = tr.left[t, parent]
    if sibling == leaf:
        sibling = tr.right[t, parent]
    grandparent = tr.parent[t, parent]
    if grandparent != -1:
        prefetch_box(box_min, box_max, grandparent)  # read first on the way up (with the sibling's)
    if sibling < internal:
        prefetch_box(box_min, box_max, sibling)
    _replace_child(tr.parent, tr.left, tr.right, tr.root, t, grandparent, parent, sibling)
    # So does its parent.
    tr.parent[t, parent] = -1
    tr.mass[t, parent] = 0
    tr.left[t, parent] = -1
    tr.right[t, parent] = -1
    tr.cut_dim[t, parent] = -1
    tr.cut_value[t, parent] = 0.0
    tr.range_sum[t, parent] = 0.0
    for i in range(box_min.shape[1]):
        box_min[parent, i] = 0.0
        box_max[parent, i] = 0.0
    _push(tr.free_internal, tr.free_internal_top, t, parent)
    node = grandparent
    refit = True
    queue = _no_queue()
    due = 0
    for _ in range(steps):
        if node == -1:
            break
        tr.mass[t, node] -= 1
        up = tr.parent[t, node]
        if refit:
            if up != -1:
                # Refitted next if this box changes, from this node and its sibling.
                prefetch(tr.parent, t, up)
                prefetch(tr.mass, t, up)
                prefetch_box(box_min, box_max, up)
                other = tr.left[t, up]
                if other == node:
                    other = tr.right[t, up]
                if other < internal:
                    prefetch_box(box_min, box_max, other)
            # Boxes above change only if this one did; a box that did not keeps its range sum.
            refit = refit_bounds(tr.left, tr.right, tr.leaf_point, store, box_min, box_max, t, node)
            if refit:
                queue, due = _queue(box_min, box_max, tr.range_sum, t, queue, due, node)
        node = up
    _flush(box_min, box_max, tr.range_sum, t, queue, due)
    return node == -1
