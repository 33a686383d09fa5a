"""Trees as a model file stores them: their structure and one table of their distinct points.

Most of a forest's :class:`rcforest._tree.TreeArrays` follows from the
rest: a node's parent from its parent's links, an internal node's mass,
bounding box and range sum from its children's, the free count from the
nodes in use. A model file keeps only what cannot be rebuilt
(:class:`StoredTrees`): the internal nodes' links and cuts, each leaf's
mass and the row of its point in one table of the distinct points of all
trees, the free stacks, the reservoirs and the generators. A streamed
forest holds each point in many trees, so the table is several times
smaller than the leaves.

:func:`extract` makes the stored form of trees and :func:`assemble` rebuilds
them from it, bit for bit (input holds no ``-0.0``, see
:func:`rcforest._core.without_negative_zeros`, so a box is the union of its
points' values and nothing else): they are the one place that knows both
the file's form and the in-memory layout.
"""

from typing import NamedTuple

import numpy as np
from numba import prange

from rcforest._box import refit_box
from rcforest._jit import JIT, njit
from rcforest._store import pack
from rcforest._tree import allocate_trees, internal_per_tree, leaves_per_tree

__all__ = []


class StoredTrees(NamedTuple):
    """The state of a forest's trees that a model file keeps.

    A tree has :func:`node_count` slots, numbered as in
    :class:`rcforest._tree.TreeArrays` (internal nodes first, then leaves,
    then one spare). A slot holds an internal node (``left != -1``), a leaf
    (``point != -1``) or nothing; an unused value is ``-1`` for indices and
    cut dimensions and zero otherwise, so the stored form of a forest is
    unique. Files of rcforest 0.1 numbered internal nodes and leaves in one
    range: they load too.

    Attributes
    ----------
    left, right : ndarray of int32, shape (num_trees, num_nodes)
        An internal node's children.
    cut_dim : ndarray of int32, shape (num_trees, num_nodes)
    cut_value : ndarray of float64, shape (num_trees, num_nodes)
        An internal node's cut.
    point : ndarray of int32, shape (num_trees, num_nodes)
        A leaf's row of ``points``.
    leaf_mass : ndarray of int64, shape (num_trees, num_nodes)
        The copies of its point a leaf holds.
    free_stack : ndarray of int32, shape (num_trees, num_nodes)
        The free slots, ``-1`` after them: the free internal nodes, then the
        free leaves, each in the order of their stack in
        :class:`rcforest._tree.TreeArrays` (which decides where later
        insertions go), then the spare slot.
    root, rng, heap_weight, heap_leaf, heap_size
        As in :class:`TreeArrays`.
    points : ndarray of float64, shape (num_points, dim)
        The distinct points of all leaves, each once (compared bit for bit,
        so ``-0.0`` and ``0.0`` are two points), in order of first use.
    origin : ndarray of float64, shape (dim,)
        The point that ``points`` and the cuts are relative to (files before
        layout 3: zero).
    """

    left: np.ndarray
    right: np.ndarray
    cut_dim: np.ndarray
    cut_value: np.ndarray
    point: np.ndarray
    leaf_mass: np.ndarray
    free_stack: np.ndarray
    root: np.ndarray
    rng: np.ndarray
    heap_weight: np.ndarray
    heap_leaf: np.ndarray
    heap_size: np.ndarray
    points: np.ndarray
    origin: np.ndarray


def node_count(sample_size):
    """Node slots of a stored tree: ``sample_size`` internal nodes, ``sample_size + 1`` leaves and a spare."""
    return 2 * sample_size + 2


def layout(num_trees, sample_size, num_nodes, dim):
    """The dtype and shape of each :class:`StoredTrees` field.

    Each entry of a shape is a length or a range of allowed lengths (the
    table holds at most one point per reservoir slot).

    Returns
    -------
    dict of str to (numpy.dtype, tuple)
    """
    t, s, n = num_trees, sample_size, num_nodes
    return {
        "left": (np.int32, (t, n)),
        "right": (np.int32, (t, n)),
        "cut_dim": (np.int32, (t, n)),
        "cut_value": (np.float64, (t, n)),
        "point": (np.int32, (t, n)),
        "leaf_mass": (np.int64, (t, n)),
        "free_stack": (np.int32, (t, n)),
        "root": (np.int32, (t,)),
        "rng": (np.uint64, (t,)),
        "heap_weight": (np.float64, (t, s)),
        "heap_leaf": (np.int32, (t, s)),
        "heap_size": (np.int32, (t,)),
        "points": (np.float64, (range(t * s + 1), dim)),
        "origin": (np.float64, (dim,)),
    }


def extract(trees):
    """The stored form of ``trees``.

    Parameters
    ----------
    trees : TreeArrays

    Returns
    -------
    StoredTrees
    """
    trees = pack(trees)  # the store: each distinct point once, in order of first use
    num_trees, internal = trees.left.shape
    nodes = trees.parent.shape[1]
    n = nodes + 1
    leaves = slice(internal, nodes)

    def padded(values, fill):
        out = np.full((num_trees, n), fill, values.dtype)
        out[:, :internal] = values
        return out

    point = np.full((num_trees, n), -1, np.int32)
    point[:, leaves] = trees.leaf_point
    leaf_mass = np.zeros((num_trees, n), np.int64)
    leaf_mass[:, leaves] = trees.mass[:, leaves]
    free_stack = np.full((num_trees, n), -1, np.int32)
    for t in range(num_trees):
        internal_free = trees.free_internal[t, : trees.free_internal_top[t]]
        leaf_free = trees.free_leaf[t, : trees.free_leaf_top[t]]
        free = np.concatenate([internal_free, leaf_free, [n - 1]])
        free_stack[t, : free.size] = free
    return StoredTrees(
        left=padded(trees.left, -1),
        right=padded(trees.right, -1),
        cut_dim=padded(trees.cut_dim, -1),
        cut_value=padded(trees.cut_value, 0.0),
        point=point,
        leaf_mass=leaf_mass,
        free_stack=free_stack,
        root=trees.root,
        rng=trees.rng,
        heap_weight=trees.heap_weight,
        heap_leaf=trees.heap_leaf,
        heap_size=trees.heap_size,
        points=np.ascontiguousarray(trees.store),
        origin=trees.origin,
    )


def assemble(stored, sample_size):
    """Rebuild the trees from their stored form, checking its structure.

    Parameters
    ----------
    stored : StoredTrees
        Arrays of the dtypes and shapes of :func:`layout`.
    sample_size : int

    Returns
    -------
    TreeArrays
        Parents, masses, boxes and range sums rebuilt; what the structure
        does not decide (cuts separating the boxes, the reservoirs) is left
        for :func:`rcforest._kernels.check_trees`.

    Raises
    ------
    ValueError
        If a tree's links do not form a tree from its root (a node reached
        twice, an index out of range), a slot is neither a sound internal
        node, leaf nor reset free slot, a tree has more nodes of a kind than
        it has room for, or a row of the point table is unused.

    Notes
    -----
    Slots keep their numbers where internal nodes and leaves lie in their
    ranges of :class:`rcforest._tree.TreeArrays`, and the free slots in the
    order of the stored stack; otherwise (files of rcforest 0.1) internal
    nodes, then leaves, are numbered in their order.
    """
    st = stored
    num_trees, n = st.left.shape
    num_internal, num_leaves = internal_per_tree(sample_size), leaves_per_tree(sample_size)
    if n != num_internal + num_leaves + 1:
        raise ValueError(f"trees of {n} node slots, expected {num_internal + num_leaves + 1}")
    for name in ("left", "right", "point", "free_stack", "root", "heap_leaf"):
        values = getattr(st, name)
        fail((values < -1) | (values >= (st.points.shape[0] if name == "point" else n)), f"a {name} is out of range")
    internal = st.left != -1
    leaf = ~internal & (st.point != -1)
    fail(internal & ((st.point != -1) | (st.leaf_mass != 0)), "an internal node holds a point")
    fail(leaf & ((st.right != -1) | (st.cut_dim != -1) | (st.cut_value != 0)), "a leaf has a cut")
    fail(~internal & ~leaf & ((st.right != -1) | (st.cut_dim != -1) | (st.cut_value != 0) | (st.leaf_mass != 0)),
          "a free slot is not reset")  # fmt: skip
    fail(internal.sum(axis=1) > num_internal, "it has more internal nodes than it has room for")
    fail(leaf.sum(axis=1) > num_leaves, "it has more leaves than it has room for")
    keep = not internal[:, num_internal:].any() and not leaf[:, :num_internal].any() and not leaf[:, n - 1].any()
    used = internal | leaf
    if keep:
        number = np.full((num_trees, n + 1), -1, np.int64)  # column n: the null link -1
        number[:, :n][used] = np.nonzero(used)[1]
    else:
        number = numbering(internal, leaf, num_internal)
    trees = allocate_trees(num_trees, sample_size, st.points.shape[1], st.rng)
    trees.origin[:] = st.origin
    tree_of, old = np.nonzero(internal)
    new = number[tree_of, old]
    for name in ("left", "right"):
        getattr(trees, name)[tree_of, new] = renumber(number, getattr(st, name))[tree_of, old]
    for name in ("cut_dim", "cut_value"):
        getattr(trees, name)[tree_of, new] = getattr(st, name)[tree_of, old]
    tree_of, old = np.nonzero(leaf)
    new = number[tree_of, old]
    trees.leaf_point[tree_of, new - num_internal] = st.point[tree_of, old]
    trees.mass[tree_of, new] = st.leaf_mass[tree_of, old]
    trees.root[:] = renumber(number, st.root[:, None])[:, 0]
    fail((st.root != -1) & (trees.root == -1), "its root is a free slot")
    trees.heap_leaf[:] = renumber(number, st.heap_leaf)
    trees.heap_weight[:] = st.heap_weight
    trees.heap_size[:] = st.heap_size
    trees = trees._replace(store=np.ascontiguousarray(st.points), store_size=np.array([st.points.shape[0]], np.int64))
    taken = np.zeros(trees.parent.shape, bool)
    taken[np.nonzero(used)[0], number[:, :n][used]] = True
    for t in range(num_trees):
        if keep:  # the stored order
            set_free_stacks(trees, t, st.free_stack[t, : n - used[t].sum()])
        else:
            set_free_stacks(trees, t, np.flatnonzero(~taken[t])[::-1])
    rebuild(trees)
    rows = np.bincount(trees.leaf_point[trees.leaf_point >= 0], minlength=st.points.shape[0])
    if not rows.all():
        raise ValueError(f"row {int(np.argmin(rows))} of the point table is in no tree")
    return pack(trees)


def fail(bad, message):
    """Raise for the first tree flagged in ``bad`` (trees along axis 0), if any."""
    if np.any(bad):
        raise ValueError(f"tree {int(np.argwhere(bad)[0][0])} is inconsistent: {message}")


def numbering(internal, leaf, num_internal):
    """New slot numbers for trees that number internal nodes and leaves in one range (files of rcforest 0.1).

    Parameters
    ----------
    internal, leaf : ndarray of bool, shape (num_trees, n)
        Which slots hold an internal node, which a leaf.
    num_internal : int
        Internal slots of a tree (:func:`rcforest._tree.internal_per_tree`).

    Returns
    -------
    ndarray of int64, shape (num_trees, n + 1)
        Internal nodes numbered first, then leaves from ``num_internal``,
        each in their order; ``-1`` elsewhere, and in column ``n``, where
        :func:`renumber` sends the null link.
    """
    t, n = internal.shape
    number = np.full((t, n + 1), -1, np.int64)
    number[:, :n][internal] = (np.cumsum(internal, axis=1) - 1)[internal]
    number[:, :n][leaf] = num_internal + (np.cumsum(leaf, axis=1) - 1)[leaf]
    return number


def renumber(number, links):
    """``links`` (slots of each tree, ``-1`` for none) in the numbering ``number`` (see :func:`numbering`)."""
    n = number.shape[1] - 1
    return np.take_along_axis(number, np.where(links == -1, n, links), axis=1).astype(np.int32)


def set_free_stacks(trees, t, vacant):
    """Set tree ``t``'s free stacks: the internal slots and the leaf slots of ``vacant``, each in its order.

    Entries outside the tree's slots (``-1``, a stored tree's spare slot) are left out.
    """
    internal, nodes = trees.left.shape[1], trees.parent.shape[1]
    for stack, top, slots in (
        (trees.free_internal, trees.free_internal_top, vacant[(vacant >= 0) & (vacant < internal)]),
        (trees.free_leaf, trees.free_leaf_top, vacant[(vacant >= internal) & (vacant < nodes)]),
    ):
        stack[t, : slots.size] = slots
        stack[t, slots.size :] = -1
        top[t] = slots.size


def rebuild(trees):
    """Rebuild every tree's parents, masses, boxes and range sums from its links, cuts and leaves, in place.

    Parameters
    ----------
    trees : TreeArrays
        Links, cuts, leaf points and leaf masses set; changed in place.

    Raises
    ------
    ValueError
        If a tree's links do not form one tree or a leaf is out of range.
    """
    failures = np.empty(trees.root.shape[0], np.int64)
    _rebuild(trees, failures)
    if failures.any():
        bad = int(np.flatnonzero(failures)[0])
        raise ValueError(f"tree {bad} is inconsistent (stored check {failures[bad]} failed)")


@njit(**JIT)
def _rebuild_tree(tr, t):
    """Rebuild parents, masses, boxes and range sums of tree ``t``; 0, or the number of the failed check."""
    internal = tr.left.shape[1]
    num_nodes = tr.parent.shape[1]
    num_points, dim = tr.store.shape
    order = np.empty(num_nodes, np.int32)  # breadth first: a node before its children
    seen = np.zeros(num_nodes, np.bool_)
    count = 0
    root = tr.root[t]
    if root != -1:
        order[0] = root
        seen[root] = True
        count = 1
    i = 0
    while i < count:  # each node enters once (seen), so at most num_nodes steps
        node = order[i]
        i += 1
        if node >= internal:
            row = tr.leaf_point[t, node - internal]
            mass = tr.mass[t, node]
            if row < 0 or row >= num_points or mass < 1 or mass > tr.heap_leaf.shape[1]:
                return 3
            continue
        if tr.cut_dim[t, node] < 0 or tr.cut_dim[t, node] >= dim:
            return 5
        for child in (tr.left[t, node], tr.right[t, node]):
            if child < 0 or seen[child]:
                return 6
            seen[child] = True
            order[count] = child
            count += 1
            tr.parent[t, child] = node
    for node in range(num_nodes):
        if seen[node]:
            continue
        if node < internal and tr.left[t, node] != -1:
            return 7
        if node >= internal and (tr.mass[t, node] != 0 or tr.leaf_point[t, node - internal] != -1):
            return 7
    for j in range(count - 1, -1, -1):  # children before their parent
        node = order[j]
        if node >= internal:
            continue
        tr.mass[t, node] = tr.mass[t, tr.left[t, node]] + tr.mass[t, tr.right[t, node]]
        refit_box(tr.left, tr.right, tr.leaf_point, tr.store, tr.box_min[t], tr.box_max[t], tr.range_sum, t, node)
    return 0


@njit(**JIT, parallel=True)
def _rebuild(tr, failures):
    """Rebuild every tree of ``tr`` from its links, cuts and leaves, writing 0 or a failed check's number."""
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callee (prange's index is unsigned)
        failures[t] = _rebuild_tree(tr, t)
