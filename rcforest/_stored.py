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
from numba import njit, prange

from rcforest._jit import JIT
from rcforest._tree import TreeArrays

__all__ = []


class StoredTrees(NamedTuple):
    """The state of a forest's trees that a model file keeps.

    Node slots are numbered as in :class:`rcforest._tree.TreeArrays`. A
    slot holds an internal node (``left != -1``), a leaf (``point != -1``)
    or nothing; an unused value is ``-1`` for indices and cut dimensions
    and zero otherwise, so the stored form of a forest is unique.

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
        As in :class:`TreeArrays`, whole: the order decides where later
        insertions go.
    root, rng, heap_weight, heap_leaf, heap_size
        As in :class:`TreeArrays`.
    points : ndarray of float64, shape (num_points, dim)
        The distinct points of all leaves, each once (compared bit for bit,
        so ``-0.0`` and ``0.0`` are two points), in order of first use.
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
    }


def extract(trees):
    """The stored form of ``trees``.

    Arrays that the file keeps as they are in memory are not copied, and the
    points are told apart by their bytes' hash (and their bytes where two
    hashes agree): saving needs little more memory than the table itself.

    Parameters
    ----------
    trees : TreeArrays

    Returns
    -------
    StoredTrees
    """
    num_trees, num_nodes, dim = trees.box_min.shape
    leaf = (trees.left == -1) & (trees.mass > 0)
    point = np.full((num_trees, num_nodes), -1, np.int32)
    first = {}  # the hash of a point's bytes -> the row of the first point with that hash
    collided = {}  # a point's bytes -> its row, for a point whose hash an earlier point has
    sources = []  # each row's point: a view into the trees
    for t in range(num_trees):
        for node in np.flatnonzero(leaf[t]):
            value = trees.box_min[t, node]
            data = value.tobytes()
            row = first.setdefault(hash(data), len(sources))
            if row < len(sources) and sources[row].tobytes() != data:
                row = collided.setdefault(data, len(sources))
            if row == len(sources):
                sources.append(value)
            point[t, node] = row
    points = np.array(sources) if sources else np.empty((0, dim))
    return StoredTrees(
        left=trees.left,
        right=trees.right,
        cut_dim=trees.cut_dim,
        cut_value=trees.cut_value,
        point=point,
        leaf_mass=np.where(leaf, trees.mass, 0),
        free_stack=trees.free_stack,
        root=trees.root,
        rng=trees.rng,
        heap_weight=trees.heap_weight,
        heap_leaf=trees.heap_leaf,
        heap_size=trees.heap_size,
        points=points,
    )


def assemble(stored):
    """Rebuild the trees from their stored form, checking its structure.

    Parameters
    ----------
    stored : StoredTrees
        Arrays of the dtypes and shapes of :func:`layout`; they are used as
        they are, not copied.

    Returns
    -------
    TreeArrays
        Parents, masses, boxes, range sums and free counts rebuilt; what the
        structure does not decide (cuts separating the boxes, the
        reservoirs) is left for :func:`rcforest._kernels.check_trees`.

    Raises
    ------
    ValueError
        If a tree's links do not form a tree from its root (a node reached
        twice, an index out of range), a slot is neither a sound internal
        node, leaf nor reset free slot, or a row of the point table is
        unused.
    """
    num_trees, num_nodes = stored.left.shape
    dim = stored.points.shape[1]
    trees = TreeArrays(
        parent=np.full((num_trees, num_nodes), -1, np.int32),
        left=stored.left,
        right=stored.right,
        cut_dim=stored.cut_dim,
        cut_value=stored.cut_value,
        mass=np.zeros((num_trees, num_nodes), np.int64),
        box_min=np.zeros((num_trees, num_nodes, dim)),
        box_max=np.zeros((num_trees, num_nodes, dim)),
        range_sum=np.zeros((num_trees, num_nodes)),
        free_stack=stored.free_stack,
        free_top=np.zeros(num_trees, np.int32),
        root=stored.root,
        rng=stored.rng,
        heap_weight=stored.heap_weight,
        heap_leaf=stored.heap_leaf,
        heap_size=stored.heap_size,
    )
    failures = np.empty(num_trees, np.int64)
    _rebuild(stored, trees, failures)
    if failures.any():
        bad = int(np.flatnonzero(failures)[0])
        raise ValueError(f"tree {bad} is inconsistent (stored check {failures[bad]} failed)")
    used = np.bincount(stored.point[stored.point >= 0], minlength=stored.points.shape[0])
    if not used.all():
        raise ValueError(f"row {int(np.argmin(used))} of the point table is in no tree")
    return trees


@njit(**JIT)
def _rebuild_tree(st, tr, t):
    """Rebuild tree ``t`` of ``tr`` from ``st``; 0, or the number of the failed check."""
    num_nodes = st.left.shape[1]
    num_points, dim = st.points.shape
    order = np.empty(num_nodes, np.int32)  # breadth first: a node before its children
    seen = np.zeros(num_nodes, np.bool_)
    count = 0
    root = st.root[t]
    if root != -1:
        if root < 0 or root >= num_nodes:
            return 1
        order[0] = root
        seen[root] = True
        count = 1
    i = 0
    while i < count:  # each node enters once (seen), so at most num_nodes steps
        node = order[i]
        i += 1
        left = st.left[t, node]
        right = st.right[t, node]
        if left == -1:
            p = st.point[t, node]
            mass = st.leaf_mass[t, node]
            if right != -1 or st.cut_dim[t, node] != -1 or st.cut_value[t, node] != 0.0:
                return 2
            if p < 0 or p >= num_points or mass < 1 or mass > st.heap_leaf.shape[1]:
                return 3
            continue
        if st.point[t, node] != -1 or st.leaf_mass[t, node] != 0:
            return 4
        if st.cut_dim[t, node] < 0 or st.cut_dim[t, node] >= dim:
            return 5
        for child in (left, right):
            if child < 0 or child >= num_nodes or seen[child]:
                return 6
            seen[child] = True
            order[count] = child
            count += 1
            tr.parent[t, child] = node
    for node in range(num_nodes):
        if not seen[node] and (
            st.left[t, node] != -1
            or st.right[t, node] != -1
            or st.cut_dim[t, node] != -1
            or st.cut_value[t, node] != 0.0
            or st.point[t, node] != -1
            or st.leaf_mass[t, node] != 0
        ):
            return 7
    for j in range(count - 1, -1, -1):  # children before their parent
        node = order[j]
        left = st.left[t, node]
        if left == -1:
            tr.mass[t, node] = st.leaf_mass[t, node]
            for k in range(dim):
                tr.box_min[t, node, k] = st.points[st.point[t, node], k]
                tr.box_max[t, node, k] = st.points[st.point[t, node], k]
            continue
        right = st.right[t, node]
        tr.mass[t, node] = tr.mass[t, left] + tr.mass[t, right]
        range_sum = 0.0
        for k in range(dim):
            lo = min(tr.box_min[t, left, k], tr.box_min[t, right, k])
            hi = max(tr.box_max[t, left, k], tr.box_max[t, right, k])
            tr.box_min[t, node, k] = lo
            tr.box_max[t, node, k] = hi
            range_sum += hi - lo
        tr.range_sum[t, node] = range_sum
    tr.free_top[t] = num_nodes - count
    return 0


@njit(**JIT, parallel=True)
def _rebuild(st, tr, failures):
    """Rebuild every tree of ``tr`` from ``st``, writing 0 or a failed check's number to ``failures``."""
    for i in prange(st.root.shape[0]):
        t = np.int64(i)  # one signature for the callee (prange's index is unsigned)
        failures[t] = _rebuild_tree(st, tr, t)
