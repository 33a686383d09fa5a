"""Random cut trees on flat arrays: their layout and allocation.

Every tree of a forest lives in one row of a set of stacked 2-D (or 3-D)
arrays held by :class:`TreeArrays`. A node is an ``int32`` index into its
tree's row; ``-1`` is the null index. Internal nodes and leaves have
separate ranges: with ``I`` internal slots (``left.shape[1]``), nodes
``0 .. I - 1`` are internal and node ``I + j`` is leaf slot ``j``.

Only internal nodes have a bounding box, kept in single precision and
rounded outwards (:mod:`rcforest._box`), so that a box always holds its
points. A leaf holds the index of its point in the forest's point store
(``store``, :mod:`rcforest._store`), which keeps each point once for all
trees, in double precision, relative to the forest's ``origin``; its mass
is the number of copies of that point in the tree. Free slots sit on a
stack per range and hold canonical values (links ``-1``, zero mass and
box), so that an insertion followed by the deletion of the same point
leaves the trees bit-identical.

Each tree draws from its own splitmix64 generator (:mod:`rcforest._rng`),
so a tree's history does not depend on the thread that runs it.

The kernels that change a tree (insertion and deletion) are in
:mod:`rcforest._update`; the read-only kernels (scores, attribution,
displacement) in :mod:`rcforest._score`; the drivers that loop over trees
in :mod:`rcforest._kernels`.

Notes
-----
The algorithm is that of Guha, Mishra, Roy and Schrijvers, "Robust Random
Cut Forest Based Anomaly Detection on Streams", ICML 2016. As in AWS
random-cut-forest-by-aws, leaves point into a shared point store and only
internal nodes keep boxes.
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "TreeArrays",
    "allocate_trees",
    "internal_per_tree",
    "leaves_per_tree",
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


def _on_lines(shape, dtype):
    """Zeros of ``shape`` and ``dtype``, the first starting a 64-byte cache line (numpy's own start 16 bytes in).

    Rows whose size is a multiple of 64 bytes then each fill whole lines:
    a 48-D box (192 bytes) takes 3 lines instead of 4, a 96-D one 6
    instead of 7, and a score's walk back up, which reads a box per level
    from memory, loads that much less (measured 6-10% of a reading's
    score at 48 and 96-D).
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + size].view(dtype).reshape(shape)


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
        box_min=_on_lines(inner + (dim,), np.float32),
        box_max=_on_lines(inner + (dim,), np.float32),
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
