"""Random cut trees on flat arrays: the single-tree kernels.

Every tree of a forest lives in one row of a set of stacked 2-D (or 3-D)
arrays held by :class:`TreeArrays`. A node is an ``int32`` index into its
tree's row; ``-1`` is the null index. A node is a leaf when ``left == -1``;
a leaf's bounding box is its point (``box_min == box_max``) and its mass is
the number of copies of that point in the tree. Free nodes sit on a
per-tree stack and hold canonical values (links ``-1``, zero mass and box),
so that an insertion followed by the deletion of the same point leaves the
arrays bit-identical.

Every walk through a tree takes at most as many steps as the tree has node
slots: a walk that would take more (a corrupt tree, with a cycle in its
links) stops and reports failure instead of spinning.

Each tree draws from its own splitmix64 generator (:mod:`rcforest._rng`),
so a tree's history does not depend on the thread that runs it.

The functions here change a tree (index ``t``): insertion and deletion.
The read-only kernels (scores, attribution, displacement) are in
:mod:`rcforest._score`; the drivers that loop over trees are in
:mod:`rcforest._kernels`.

Notes
-----
The algorithm is that of Guha, Mishra, Roy and Schrijvers, "Robust Random
Cut Forest Based Anomaly Detection on Streams", ICML 2016: cuts (section 3,
definition 1), insertion (section 3.2, algorithm 2, drawn top-down) and
deletion (section 3.1, algorithm 1).
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from rcforest._jit import INLINE, JIT
from rcforest._rng import uniform

__all__ = ["TreeArrays", "allocate_trees", "nodes_per_tree"]


class TreeArrays(NamedTuple):
    """The state of every tree of a forest, as stacked flat arrays.

    Attributes
    ----------
    parent, left, right : ndarray of int32, shape (num_trees, num_nodes)
        Links; ``-1`` is null. A node with ``left == -1`` is a leaf.
    cut_dim : ndarray of int32, shape (num_trees, num_nodes)
        Cut dimension of an internal node (``-1`` for leaves and free nodes).
    cut_value : ndarray of float64, shape (num_trees, num_nodes)
        Cut value: points with ``x[cut_dim] <= cut_value`` go left.
    mass : ndarray of int64, shape (num_trees, num_nodes)
        Number of points (duplicates counted) below a node.
    box_min, box_max : ndarray of float64, shape (num_trees, num_nodes, dim)
        Bounding box of the points below a node; for a leaf, its point.
    range_sum : ndarray of float64, shape (num_trees, num_nodes)
        Sum over dimensions of the box's side lengths, summed in order.
    free_stack : ndarray of int32, shape (num_trees, num_nodes)
        Stack of free node indices; the first ``free_top[t]`` are free.
    free_top : ndarray of int32, shape (num_trees,)
        Number of free nodes.
    root : ndarray of int32, shape (num_trees,)
        Root node, ``-1`` for an empty tree.
    rng : ndarray of uint64, shape (num_trees,)
        splitmix64 state of each tree.
    heap_weight : ndarray of float64, shape (num_trees, sample_size)
        Reservoir weights, a max-heap per tree.
    heap_leaf : ndarray of int32, shape (num_trees, sample_size)
        The leaf holding each reservoir point.
    heap_size : ndarray of int32, shape (num_trees,)
        Number of points in each reservoir.
    """

    parent: np.ndarray
    left: np.ndarray
    right: np.ndarray
    cut_dim: np.ndarray
    cut_value: np.ndarray
    mass: np.ndarray
    box_min: np.ndarray
    box_max: np.ndarray
    range_sum: np.ndarray
    free_stack: np.ndarray
    free_top: np.ndarray
    root: np.ndarray
    rng: np.ndarray
    heap_weight: np.ndarray
    heap_leaf: np.ndarray
    heap_size: np.ndarray


def nodes_per_tree(sample_size):
    """Number of node slots a tree needs.

    A tree holds at most ``sample_size`` distinct points plus one point
    inserted temporarily for CoDisp, hence ``sample_size + 1`` leaves and
    ``sample_size`` internal nodes.

    Parameters
    ----------
    sample_size : int
        Points kept per tree.

    Returns
    -------
    int
    """
    return 2 * sample_size + 2


def allocate_trees(num_trees, sample_size, dim, seeds):
    """Allocate empty trees.

    Parameters
    ----------
    num_trees : int
        Number of trees.
    sample_size : int
        Points kept per tree.
    dim : int
        Dimension of the points (after shingling).
    seeds : ndarray of uint64, shape (num_trees,)
        Initial RNG state of each tree.

    Returns
    -------
    TreeArrays
    """
    num_nodes = nodes_per_tree(sample_size)
    shape = (num_trees, num_nodes)
    stack = np.arange(num_nodes - 1, -1, -1, dtype=np.int32)
    return TreeArrays(
        parent=np.full(shape, -1, np.int32),
        left=np.full(shape, -1, np.int32),
        right=np.full(shape, -1, np.int32),
        cut_dim=np.full(shape, -1, np.int32),
        cut_value=np.zeros(shape, np.float64),
        mass=np.zeros(shape, np.int64),
        box_min=np.zeros(shape + (dim,), np.float64),
        box_max=np.zeros(shape + (dim,), np.float64),
        range_sum=np.zeros(shape, np.float64),
        free_stack=np.tile(stack, (num_trees, 1)),
        free_top=np.full(num_trees, num_nodes, np.int32),
        root=np.full(num_trees, -1, np.int32),
        rng=np.asarray(seeds, dtype=np.uint64).copy(),
        heap_weight=np.zeros((num_trees, sample_size), np.float64),
        heap_leaf=np.full((num_trees, sample_size), -1, np.int32),
        heap_size=np.zeros(num_trees, np.int32),
    )


@njit(**INLINE)
def _alloc(tr, t):
    """Pop a free node of tree ``t``."""
    top = tr.free_top[t] - 1
    tr.free_top[t] = top
    return tr.free_stack[t, top]


@njit(**INLINE)
def _free(tr, t, node):
    """Reset ``node`` to its canonical free values and push it on the stack."""
    tr.parent[t, node] = -1
    tr.left[t, node] = -1
    tr.right[t, node] = -1
    tr.cut_dim[t, node] = -1
    tr.cut_value[t, node] = 0.0
    tr.mass[t, node] = 0
    for i in range(tr.box_min.shape[2]):
        tr.box_min[t, node, i] = 0.0
        tr.box_max[t, node, i] = 0.0
    tr.range_sum[t, node] = 0.0
    tr.free_stack[t, tr.free_top[t]] = node
    tr.free_top[t] += 1


@njit(**INLINE)
def _set_box(tr, t, leaf, point):
    """Make ``leaf``'s box the point ``point``."""
    for i in range(point.shape[0]):
        tr.box_min[t, leaf, i] = point[i]
        tr.box_max[t, leaf, i] = point[i]


@njit(**INLINE)
def _replace_child(tr, t, parent, old, new):
    """Make ``new`` take ``old``'s place under ``parent`` (or as the root)."""
    tr.parent[t, new] = parent
    if parent == -1:
        tr.root[t] = new
    elif tr.left[t, parent] == old:
        tr.left[t, parent] = new
    else:
        tr.right[t, parent] = new


@njit(**INLINE)
def _grow_ancestors(tr, t, node, point):
    """Add one unit of mass and extend the boxes from ``node`` to the root.

    Once a box already holds the point, so do all the boxes above it: from
    there on only the masses change. Returns False if the walk does not
    reach the root (a corrupt tree).
    """
    dim = point.shape[0]
    grow = True
    for _ in range(tr.parent.shape[1]):
        if node == -1:
            return True
        tr.mass[t, node] += 1
        if grow:
            grow = False
            range_sum = 0.0
            for i in range(dim):
                if point[i] < tr.box_min[t, node, i]:
                    tr.box_min[t, node, i] = point[i]
                    grow = True
                if point[i] > tr.box_max[t, node, i]:
                    tr.box_max[t, node, i] = point[i]
                    grow = True
                range_sum += tr.box_max[t, node, i] - tr.box_min[t, node, i]
            if grow:
                tr.range_sum[t, node] = range_sum
        node = tr.parent[t, node]
    return node == -1


@njit(**INLINE)
def box_gap(tr, t, node, point):
    """Total distance of ``point`` outside ``node``'s box (0 inside), summed in order."""
    gap = 0.0
    for i in range(point.shape[0]):
        gap += max(tr.box_min[t, node, i] - point[i], 0.0) + max(point[i] - tr.box_max[t, node, i], 0.0)
    return gap


@njit(**INLINE)
def _cut_in_gap(tr, t, node, point, r):
    """The separating cut at offset ``r`` into the gaps between ``point`` and a box.

    Parameters
    ----------
    tr : TreeArrays
    t, node : int
        Tree and node.
    point : ndarray of float64, shape (dim,)
    r : float
        Offset in ``[0, gap)``, where ``gap`` is :func:`box_gap`'s value.

    Returns
    -------
    dim : int
    value : float
        A cut with ``point`` on one side and the whole box on the other.

    Notes
    -----
    The gaps are laid end to end, dimension by dimension, the gap below the
    box before the gap above it.
    """
    last_dim = -1
    last_value = 0.0
    for i in range(point.shape[0]):
        low = tr.box_min[t, node, i]
        high = tr.box_max[t, node, i]
        p = point[i]
        if p < low:
            # Cuts in [p, low) put the point left, the box right.
            last_dim, last_value = i, np.nextafter(low, -np.inf)
            if r < low - p:
                return i, min(p + r, last_value)
            r -= low - p
        elif p > high:
            # Cuts in [high, p) put the box left, the point right.
            last_dim, last_value = i, np.nextafter(p, -np.inf)
            if r < p - high:
                return i, min(high + r, last_value)
            r -= p - high
    return last_dim, last_value  # r ran past the end by rounding


@njit(**JIT)
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
    node = tr.root[t]
    for _ in range(tr.parent.shape[1]):
        gap = box_gap(tr, t, node, point)
        is_leaf = tr.left[t, node] == -1
        if gap > 0.0:
            separates = uniform(rng, k) * (tr.range_sum[t, node] + gap) < gap
            if separates or is_leaf:
                cut_dim, cut_value = _cut_in_gap(tr, t, node, point, uniform(rng, k) * gap)
                return node, cut_dim, cut_value
        elif is_leaf:
            return node, -1, 0.0  # inside a leaf's box: the same point again
        if point[tr.cut_dim[t, node]] <= tr.cut_value[t, node]:
            node = tr.left[t, node]
        else:
            node = tr.right[t, node]
    return -1, -1, 0.0  # deeper than the tree has nodes: a cycle


@njit(**JIT)
def insert_point(tr, t, point, rng, k):
    """Insert ``point`` into tree ``t``.

    Parameters
    ----------
    tr : TreeArrays
    t : int
        Tree index.
    point : ndarray of float64, shape (dim,)
    rng : ndarray of uint64
        Generator states; ``rng[k]`` is used for the cuts.
    k : int

    Returns
    -------
    int
        The leaf that holds the point (an existing leaf for a duplicate);
        ``-1`` for a corrupt tree.

    Notes
    -----
    The place is found by :func:`find_place`; a new internal node with the
    separating cut takes that node's place, with the new leaf beside it.
    """
    if tr.root[t] == -1:
        leaf = _alloc(tr, t)
        tr.mass[t, leaf] = 1
        _set_box(tr, t, leaf, point)
        tr.root[t] = leaf
        return leaf
    node, cut_dim, cut_value = find_place(tr, t, point, rng, k)
    if node == -1:
        return -1
    if cut_dim == -1:
        return node if _grow_ancestors(tr, t, node, point) else -1
    leaf = _alloc(tr, t)
    split = _alloc(tr, t)
    tr.mass[t, leaf] = 1
    _set_box(tr, t, leaf, point)
    tr.cut_dim[t, split] = cut_dim
    tr.cut_value[t, split] = cut_value
    if point[cut_dim] <= cut_value:
        tr.left[t, split] = leaf
        tr.right[t, split] = node
    else:
        tr.left[t, split] = node
        tr.right[t, split] = leaf
    _replace_child(tr, t, tr.parent[t, node], node, split)
    tr.parent[t, node] = split
    tr.parent[t, leaf] = split
    tr.mass[t, split] = tr.mass[t, node]
    for i in range(point.shape[0]):
        tr.box_min[t, split, i] = tr.box_min[t, node, i]
        tr.box_max[t, split, i] = tr.box_max[t, node, i]
    return leaf if _grow_ancestors(tr, t, split, point) else -1


@njit(**INLINE)
def _refit_box(tr, t, node):
    """Set ``node``'s box to the union of its children's; report a change."""
    left = tr.left[t, node]
    right = tr.right[t, node]
    changed = False
    range_sum = 0.0
    for i in range(tr.box_min.shape[2]):
        lo = min(tr.box_min[t, left, i], tr.box_min[t, right, i])
        hi = max(tr.box_max[t, left, i], tr.box_max[t, right, i])
        if lo != tr.box_min[t, node, i] or hi != tr.box_max[t, node, i]:
            changed = True
            tr.box_min[t, node, i] = lo
            tr.box_max[t, node, i] = hi
        range_sum += hi - lo
    tr.range_sum[t, node] = range_sum
    return changed


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
    and its parent go back on the free stack in the reverse order of
    :func:`insert_point`'s allocation, so insert-then-delete is exact.
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
    parent = tr.parent[t, leaf]
    if parent == -1:
        tr.root[t] = -1
        _free(tr, t, leaf)
        return True
    sibling = tr.left[t, parent]
    if sibling == leaf:
        sibling = tr.right[t, parent]
    grandparent = tr.parent[t, parent]
    _replace_child(tr, t, grandparent, parent, sibling)
    _free(tr, t, parent)
    _free(tr, t, leaf)
    node = grandparent
    refit = True
    for _ in range(steps):
        if node == -1:
            return True
        tr.mass[t, node] -= 1
        if refit:
            refit = _refit_box(tr, t, node)
        node = tr.parent[t, node]
    return False
