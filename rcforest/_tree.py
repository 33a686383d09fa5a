"""Random cut trees on flat arrays: the single-tree kernels.

Every tree of a forest lives in one row of a set of stacked 2-D (or 3-D)
arrays held by :class:`TreeArrays`. A node is an ``int32`` index into its
tree's row; ``-1`` is the null index. Internal nodes and leaves have
separate ranges: with ``I`` internal slots (``left.shape[1]``), nodes
``0 .. I - 1`` are internal and node ``I + j`` is leaf slot ``j``.

Only internal nodes have a bounding box, kept in single precision and
rounded outwards (:func:`round_down`, :func:`round_up`), so that a box
always holds its points. The trees hold every point relative to the
forest's ``origin``, the first point it was given, subtracted from every
input row by :func:`relative`: so boxes keep their precision for data far
from zero, such as ``1e9 + noise``. A leaf holds the index of its point in
the forest's point store (``store``), which keeps each point once for all
trees, in double precision, and its mass is the number of copies of that
point in the tree. Free slots sit on a stack per range and hold canonical
values (links ``-1``, zero mass and box), so that an insertion followed by
the deletion of the same point leaves the trees bit-identical.

The kernels never add to the store: rows are appended before a call
(:func:`store_rows`), and :func:`compact` later drops the rows no leaf
refers to. So the trees of a parallel call only read the store, and which
rows it holds does not depend on the threads.

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
deletion (section 3.1, algorithm 1). As in AWS random-cut-forest-by-aws,
leaves point into a shared point store and only internal nodes keep boxes.
"""

from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from rcforest._jit import INLINE, JIT
from rcforest._rng import uniform

__all__ = [
    "TreeArrays",
    "allocate_trees",
    "compact",
    "internal_per_tree",
    "leaves_per_tree",
    "pack",
    "relative",
    "store_rows",
]


class TreeArrays(NamedTuple):
    """The state of every tree of a forest and their point store, as flat arrays.

    ``I`` is the number of internal slots and ``L`` of leaf slots per tree;
    node ``n < I`` is internal and node ``I + j`` is leaf slot ``j``.

    Attributes
    ----------
    parent : ndarray of int32, shape (num_trees, I + L)
        Parent of every node; ``-1`` for the root and free slots.
    mass : ndarray of int64, shape (num_trees, I + L)
        Number of points (duplicates counted) below a node.
    left, right : ndarray of int32, shape (num_trees, I)
        Children of an internal node; ``-1`` for free slots.
    cut_dim : ndarray of int32, shape (num_trees, I)
        Cut dimension (``-1`` for free slots).
    cut_value : ndarray of float64, shape (num_trees, I)
        Cut value: points with ``x[cut_dim] <= cut_value`` go left.
    box_min, box_max : ndarray of float32, shape (num_trees, I, dim)
        Bounding box of the points below an internal node, rounded
        outwards to single precision.
    range_sum : ndarray of float64, shape (num_trees, I)
        Sum over dimensions of the box's side lengths, summed in order in
        double precision.
    leaf_point : ndarray of int64, shape (num_trees, L)
        Row of ``store`` holding each leaf's point; ``-1`` for free slots.
    free_internal, free_leaf : ndarray of int32, shape (num_trees, I) and (num_trees, L)
        Stacks of free internal and leaf nodes (node indices); the first
        ``free_internal_top[t]`` and ``free_leaf_top[t]`` are free, the
        rest ``-1``.
    free_internal_top, free_leaf_top : ndarray of int32, shape (num_trees,)
        Number of free slots of each kind.
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
    store : ndarray of float64, shape (capacity, dim)
        The point store, shared by all trees; rows from ``store_size[0]``
        on are room for new points.
    store_size : ndarray of int64, shape (1,)
        Rows of ``store`` in use.
    origin : ndarray of float64, shape (dim,)
        The point subtracted from every input row (:func:`relative`): the
        store, the cuts and the boxes are relative to it. The first point
        the trees were given, fixed from then on.
    """

    parent: np.ndarray
    mass: np.ndarray
    left: np.ndarray
    right: np.ndarray
    cut_dim: np.ndarray
    cut_value: np.ndarray
    box_min: np.ndarray
    box_max: np.ndarray
    range_sum: np.ndarray
    leaf_point: np.ndarray
    free_internal: np.ndarray
    free_internal_top: np.ndarray
    free_leaf: np.ndarray
    free_leaf_top: np.ndarray
    root: np.ndarray
    rng: np.ndarray
    heap_weight: np.ndarray
    heap_leaf: np.ndarray
    heap_size: np.ndarray
    store: np.ndarray
    store_size: np.ndarray
    origin: np.ndarray


def internal_per_tree(sample_size):
    """Internal node slots of a tree: one fewer than its leaves.

    Parameters
    ----------
    sample_size : int
        Points kept per tree.

    Returns
    -------
    int
    """
    return sample_size


def leaves_per_tree(sample_size):
    """Leaf slots of a tree: ``sample_size`` distinct points, and one spare.

    Parameters
    ----------
    sample_size : int
        Points kept per tree.

    Returns
    -------
    int
    """
    return sample_size + 1


def allocate_trees(num_trees, sample_size, dim, seeds, store_rows=0):
    """Allocate empty trees and an empty point store.

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
    store_rows : int, default 0
        Room in the point store.

    Returns
    -------
    TreeArrays
    """
    internal = internal_per_tree(sample_size)
    leaves = leaves_per_tree(sample_size)
    nodes = (num_trees, internal + leaves)
    inner = (num_trees, internal)
    return TreeArrays(
        parent=np.full(nodes, -1, np.int32),
        mass=np.zeros(nodes, np.int64),
        left=np.full(inner, -1, np.int32),
        right=np.full(inner, -1, np.int32),
        cut_dim=np.full(inner, -1, np.int32),
        cut_value=np.zeros(inner, np.float64),
        box_min=np.zeros(inner + (dim,), np.float32),
        box_max=np.zeros(inner + (dim,), np.float32),
        range_sum=np.zeros(inner, np.float64),
        leaf_point=np.full((num_trees, leaves), -1, np.int64),
        free_internal=np.tile(np.arange(internal - 1, -1, -1, dtype=np.int32), (num_trees, 1)),
        free_internal_top=np.full(num_trees, internal, np.int32),
        free_leaf=np.tile(np.arange(internal + leaves - 1, internal - 1, -1, dtype=np.int32), (num_trees, 1)),
        free_leaf_top=np.full(num_trees, leaves, np.int32),
        root=np.full(num_trees, -1, np.int32),
        rng=np.asarray(seeds, dtype=np.uint64).copy(),
        heap_weight=np.zeros((num_trees, sample_size), np.float64),
        heap_leaf=np.full((num_trees, sample_size), -1, np.int32),
        heap_size=np.zeros(num_trees, np.int32),
        store=np.zeros((store_rows, dim), np.float64),
        store_size=np.zeros(1, np.int64),
        origin=np.zeros(dim, np.float64),
    )


# ------------------------------------------------------------ point store


def compact(tr):
    """Drop the store rows that no leaf refers to, in place.

    The rows kept move to the front in their order, and the leaves are
    renumbered; the points, and so every tree's meaning, are unchanged.

    Parameters
    ----------
    tr : TreeArrays
        Changed in place.
    """
    used = int(tr.store_size[0])
    held = tr.leaf_point >= 0
    refs = tr.leaf_point[held]
    keep = np.zeros(used, np.bool_)
    keep[refs] = True
    live = int(np.count_nonzero(keep))
    if live < used:
        tr.leaf_point[held] = (np.cumsum(keep) - 1)[refs]
        tr.store[:live] = tr.store[:used][keep]
        tr.store[live:used] = 0.0
        tr.store_size[0] = live


def _row_keys(bits):
    """A 64-bit hash of each row of ``bits``: rows that differ rarely share one."""
    mix = (np.arange(bits.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    return (bits * mix).sum(axis=1) if bits.shape[0] else np.zeros(0, np.uint64)


def _first_equal_rows(values):
    """For each row of ``values``, the number of the first row bit-identical to it."""
    bits = values.view(np.uint64)
    _, first, inverse = np.unique(_row_keys(bits), return_index=True, return_inverse=True)
    same = first[inverse.ravel()]
    if not (bits == bits[same]).all():  # two rows share a key: sort the rows themselves
        _, first, inverse = np.unique(bits, axis=0, return_index=True, return_inverse=True)
        same = first[inverse.ravel()]
    return same


def pack(tr):
    """The trees with a store of exactly their distinct points.

    Each distinct point (bit for bit) that a leaf holds is kept once, in
    the order in which the leaves, tree by tree and slot by slot, first
    hold it. So trees that hold the same points have the same store,
    whatever rows the points came from.

    Parameters
    ----------
    tr : TreeArrays
        Not changed.

    Returns
    -------
    TreeArrays
        ``tr`` with a new ``leaf_point``, ``store`` and ``store_size``.
    """
    held = tr.leaf_point >= 0
    refs = tr.leaf_point[held]  # tree by tree, slot by slot
    rows, first_use, row_of = np.unique(refs, return_index=True, return_inverse=True)
    values = tr.store[rows]  # one copy per row in use, not per leaf
    groups, group_of = np.unique(_first_equal_rows(values), return_inverse=True)
    group_use = np.full(groups.size, refs.size, np.int64)
    np.minimum.at(group_use, group_of, first_use)  # a point's first use, over its rows
    order = np.argsort(group_use)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    leaf_point = tr.leaf_point.copy()
    leaf_point[held] = rank[group_of[row_of.ravel()]]
    distinct = groups[order]
    return tr._replace(leaf_point=leaf_point, store=values[distinct], store_size=np.array([distinct.size], np.int64))


def relative(tr, values):
    """Input rows as the trees hold them: relative to their origin.

    Trees that hold no point yet take the first of ``values`` as their
    origin, for good: a point of the data keeps the single-precision boxes
    tight for data far from zero, and the first point (not a statistic of
    the first call) gives a stream the same trees whether it comes in one
    call or row by row. Scores, displacements and attributions do not
    depend on the origin, up to rounding.

    Parameters
    ----------
    tr : TreeArrays
        Its ``origin`` is set if it holds no point yet.
    values : ndarray of float64, shape (num_rows, dim)
        Not changed.

    Returns
    -------
    ndarray of float64, shape (num_rows, dim)
        ``values - tr.origin``; ``values`` itself for a zero origin.
    """
    if tr.store_size[0] == 0 and (tr.root == -1).all() and values.shape[0]:
        tr.origin[:] = values[0] + 0.0  # never -0.0
    if not tr.origin.any():
        return values
    return values - tr.origin


def store_rows(tr, values):
    """Append ``values`` to the point store, making room if needed.

    Room is made first by :func:`compact`, then by a store twice the size
    needed, so that appending one row at a time copies the store only now
    and then.

    Parameters
    ----------
    tr : TreeArrays
    values : ndarray of float64, shape (num_rows, dim)
        Rows relative to the origin (:func:`relative`).

    Returns
    -------
    trees : TreeArrays
        ``tr``, with a new ``store`` array if it grew.
    first : int
        Store row of ``values[0]``; ``values[i]`` is row ``first + i``.
    """
    rows = values.shape[0]
    if tr.store_size[0] + rows > tr.store.shape[0]:
        compact(tr)
        live = int(tr.store_size[0])
        if live + rows > tr.store.shape[0]:
            store = np.zeros((2 * (live + rows), tr.store.shape[1]))
            store[:live] = tr.store[:live]
            tr = tr._replace(store=store)
    first = int(tr.store_size[0])
    tr.store[first : first + rows] = values
    tr.store_size[0] = first + rows
    return tr, first


# ------------------------------------------------------------ node helpers


@intrinsic
def _bits_of(typingctx, value):
    """The bits of a float32 as an int32 (a bit cast, compiled inline)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return types.int32(types.float32), codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float32 with the bits of an int32 (the inverse of :func:`_bits_of`)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


@njit(**INLINE)
def _step_down(bound):
    """The float32 below a finite, nonzero or ``-0.0`` float32 ``bound``, without a branch.

    A positive float's bits step down, a negative one's up (away from zero).
    """
    bits = _bits_of(bound)
    return _float_of(bits + (np.int32(-1) if bits > 0 else np.int32(1)))


@njit(**INLINE)
def round_down(value):
    """The largest float32 at most ``value``: a box's lower bound for a point's coordinate.

    Parameters
    ----------
    value : float
        A coordinate relative to the origin: at most twice
        :data:`rcforest._core.MAX_ABS_VALUE` in magnitude.

    Returns
    -------
    numpy.float32
        ``-0.0`` comes back as ``0.0``, so that a box depends only on the
        values of its points.
    """
    nearest = np.float32(value)
    # Both candidates and a select rather than a branch: which one it is
    # follows the data, and a mispredicted branch costs more than the step.
    # ``nearest`` is never +0.0 above ``value``: a negative rounds to -0.0.
    below = _step_down(nearest)
    bound = below if nearest > value else nearest
    return bound + np.float32(0.0)


@njit(**INLINE)
def round_up(value):
    """The smallest float32 at least ``value``: a box's upper bound (see :func:`round_down`)."""
    return -round_down(-value) + np.float32(0.0)


# The helpers below take the arrays they touch, never the whole TreeArrays:
# inlined into a kernel, a helper taking ``tr`` counts references to every
# array of it at each call, which costs more than the work.


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
def _grow_ancestors(parent, mass, box_min, box_max, range_sum, t, node, point, internal):
    """Add one unit of mass and extend the boxes from ``node`` to the root.

    ``node`` is a leaf already holding the point (a duplicate) or the
    parent of a new split node (``-1`` at the root); ``box_min`` and
    ``box_max`` are tree ``t``'s. Once a box already holds the point, so do
    all the boxes above it: from there on only the masses change. Returns
    False if the walk does not reach the root (a corrupt tree).
    """
    dim = point.shape[0]
    grow = True
    if node >= internal:  # a duplicate: the leaf's "box" is the point itself
        mass[t, node] += 1
        grow = False
        node = parent[t, node]
    for _ in range(parent.shape[1]):
        if node == -1:
            return True
        mass[t, node] += 1
        if grow:
            grow = False
            for i in range(dim):
                if point[i] < box_min[node, i]:
                    box_min[node, i] = round_down(point[i])
                    grow = True
                if point[i] > box_max[node, i]:
                    box_max[node, i] = round_up(point[i])
                    grow = True
            if grow:
                range_sum[t, node] = range_of(box_min, box_max, node)
        node = parent[t, node]
    return node == -1


@njit(**INLINE)
def refit_box(left, right, leaf_point, store, box_min, box_max, range_sum, t, node):
    """Set internal ``node``'s box and range sum to the union of its children's (a leaf's box is its point).

    ``box_min`` and ``box_max`` are tree ``t``'s. Returns whether the box changed.
    """
    internal = box_min.shape[0]
    first = left[t, node]
    second = right[t, node]
    if first >= internal and second >= internal:
        first_row, second_row = leaf_point[t, first - internal], leaf_point[t, second - internal]
        changed = _set_union(box_min, box_max, node, store, store, first_row, store, store, second_row)
    elif first >= internal or second >= internal:
        leaf, inner = (first, second) if first >= internal else (second, first)
        row = leaf_point[t, leaf - internal]
        changed = _set_union(box_min, box_max, node, store, store, row, box_min, box_max, np.int64(inner))
    else:
        changed = _set_union(
            box_min, box_max, node, box_min, box_max, np.int64(first), box_min, box_max, np.int64(second)
        )
    range_sum[t, node] = range_of(box_min, box_max, node)
    return changed


@njit(**INLINE)
def _set_union(box_min, box_max, node, first_low, first_high, first_row, second_low, second_high, second_row):
    """Set ``node``'s box to the union of two boxes, rounded outwards; return whether it changed.

    Each box is a row of the float32 boxes or a point (a row of the store,
    twice). The union is taken before rounding, which gives the same box
    (rounding keeps order) with one rounding per bound; the loop has no
    branch, so that it runs on vectors.
    """
    changed = False
    for i in range(box_min.shape[1]):
        low = round_down(min(first_low[first_row, i], second_low[second_row, i]))
        high = round_up(max(first_high[first_row, i], second_high[second_row, i]))
        changed |= (low != box_min[node, i]) | (high != box_max[node, i])
        box_min[node, i] = low
        box_max[node, i] = high
    return changed


@njit(**INLINE)
def range_of(box_min, box_max, node):
    """The sum of ``node``'s box sides, in double precision and in order (its range sum)."""
    total = 0.0
    for i in range(box_min.shape[1]):
        total += np.float64(box_max[node, i]) - np.float64(box_min[node, i])
    return total


@njit(**INLINE)
def child_bounds(leaf_point, store, box_min, box_max, t, node, i):
    """Bounds in dimension ``i`` of ``node``'s box, in float32 (a leaf's box is its point, rounded outwards).

    ``box_min`` and ``box_max`` are tree ``t``'s.
    """
    internal = box_min.shape[0]
    if node >= internal:
        value = store[leaf_point[t, node - internal], i]
        return round_down(value), round_up(value)
    return box_min[node, i], box_max[node, i]


@njit(**INLINE)
def box_gap(low, high, row, point):
    """Total distance of ``point`` outside the box ``low[row], high[row]`` (0 inside), summed in order.

    The box is an internal node's (float32), or a leaf's point (a row of
    the store, twice).
    """
    gap = 0.0
    for i in range(point.shape[0]):
        gap += max(low[row, i] - point[i], 0.0) + max(point[i] - high[row, i], 0.0)
    return gap


@njit(**INLINE)
def _cut_in_gap(low, high, row, point, r):
    """The separating cut at offset ``r`` into the gaps between ``point`` and a box.

    Parameters
    ----------
    low, high : ndarray of float32 or float64, shape (rows, dim)
    row : int
        The box is ``low[row], high[row]``: an internal node's box, or a
        leaf's point (a row of the store, twice).
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
        lo = np.float64(low[row, i])
        hi = np.float64(high[row, i])
        p = point[i]
        if p < lo:
            # Cuts in [p, lo) put the point left, the box right.
            last_dim, last_value = i, np.nextafter(lo, -np.inf)
            if r < lo - p:
                return i, min(p + r, last_value)
            r -= lo - p
        elif p > hi:
            # Cuts in [hi, p) put the box left, the point right.
            last_dim, last_value = i, np.nextafter(p, -np.inf)
            if r < p - hi:
                return i, min(hi + r, last_value)
            r -= p - hi
    return last_dim, last_value  # r ran past the end by rounding


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
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    store = tr.store
    leaf_point = tr.leaf_point
    internal = tr.left.shape[1]
    node = tr.root[t]
    for _ in range(tr.parent.shape[1]):
        leaf = node >= internal
        if leaf:
            row = leaf_point[t, node - internal]
            gap = box_gap(store, store, row, point)
        else:
            gap = box_gap(box_min, box_max, node, point)
        if gap > 0.0:
            range_sum = 0.0 if leaf else tr.range_sum[t, node]
            separates = uniform(rng, k) * (range_sum + gap) < gap
            if separates or leaf:
                r = uniform(rng, k) * gap
                if leaf:
                    cut_dim, cut_value = _cut_in_gap(store, store, row, point, r)
                else:
                    cut_dim, cut_value = _cut_in_gap(box_min, box_max, node, point, r)
                return node, cut_dim, cut_value
        elif leaf:
            return node, -1, 0.0  # inside a leaf's box: the same point again
        if point[tr.cut_dim[t, node]] <= tr.cut_value[t, node]:
            node = tr.left[t, node]
        else:
            node = tr.right[t, node]
    return -1, -1, 0.0  # deeper than the tree has nodes: a cycle


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
    The place is found by :func:`find_place`; a new internal node with the
    separating cut takes that node's place, with the new leaf beside it.
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
    node, cut_dim, cut_value = find_place(tr, t, point, rng, k)
    if node == -1:
        return -1
    if cut_dim == -1:
        grown = _grow_ancestors(tr.parent, tr.mass, box_min, box_max, tr.range_sum, t, node, point, internal)
        return node if grown else -1
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
        _set_union(box_min, box_max, split, tr.store, tr.store, row, tr.store, tr.store, index)
    else:
        _set_union(box_min, box_max, split, box_min, box_max, np.int64(node), tr.store, tr.store, index)
    tr.range_sum[t, split] = range_of(box_min, box_max, split)
    grown = _grow_ancestors(tr.parent, tr.mass, box_min, box_max, tr.range_sum, t, tr.parent[t, split], point, internal)
    return leaf if grown else -1


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
    for _ in range(steps):
        if node == -1:
            return True
        tr.mass[t, node] -= 1
        if refit:
            # Boxes above change only if this one did.
            refit = refit_box(tr.left, tr.right, tr.leaf_point, store, box_min, box_max, tr.range_sum, t, node)
        node = tr.parent[t, node]
    return False
