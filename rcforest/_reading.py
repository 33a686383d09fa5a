"""One reading per call: a serial kernel for live streams, and the handle it reaches the trees through.

Through the batch drivers a call with one row spends most of its time
outside the trees: typing and unboxing the 22 arrays of
:class:`~rcforest._tree.TreeArrays` (about 10 µs), shingling, the thread
pool and per-tree buffers. Here a :class:`Reader` (a numba StructRef,
unboxed as one pointer) holds the trees, the rows a shingle still needs
and a buffer for the new row, so that a reading is one jitted call with
the handle and three scalars, on one thread, allocating nothing.

Each tree does what :func:`rcforest._kernels.stream` and
:func:`rcforest._kernels.score_batch` do for that row, in the same order,
and the score is their mean summed tree after tree, as
:func:`rcforest._kernels.tree_mean` sums it: the results are
bit-identical to the batch path's.
"""

import numpy as np
from numba.core import types
from numba.experimental import structref

from rcforest._borrowed import borrowed
from rcforest._box import prefetch, prefetch_box
from rcforest._compiled import for_reader
from rcforest._core import MAX_ABS_VALUE
from rcforest._jit import INLINE, JIT, njit
from rcforest._kernels import take
from rcforest._rng import uniform
from rcforest._sampler import admits, kept_cut, weight_of
from rcforest._score import LANES, score_trees
from rcforest._update import prefetch_node

__all__ = [
    "CORRUPT",
    "FEED",
    "FEED_SCORE",
    "FULL",
    "INVALID",
    "Reader",
    "SCORE",
    "SCORE_FEED",
    "compiled_read",
    "new_reader",
    "read",
]

SCORE = 0
"""Mode of :func:`read`: score the row, read-only (for forests without shingling)."""
FEED = 1
"""Mode of :func:`read`: offer the row's point to every tree's reservoir."""
SCORE_FEED = 2
"""Mode of :func:`read`: score the point in each tree, then offer it to that tree."""
FEED_SCORE = 3
"""Mode of :func:`read`: offer the row's point to each tree, then score ``query`` in that tree."""

FULL = 1
"""Status of :func:`read`: the store has no room (or no origin yet); nothing was changed."""
CORRUPT = 2
"""Status of :func:`read`: a tree's walk did not end (see :func:`rcforest._kernels.raise_if_corrupt`)."""
INVALID = 3
"""Status of :func:`read`: a value of the row is NaN or beyond :data:`~rcforest._core.MAX_ABS_VALUE`, nothing done."""


@structref.register
class _ReaderType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(kind)) for name, kind in fields)


class Reader(structref.StructRefProxy):
    """The arrays one reading needs, held for the jitted :func:`read`; made by :func:`new_reader`.

    Fields (read in jitted code): ``trees`` (:class:`~rcforest._tree.TreeArrays`),
    ``tail`` (the last ``shingle_size - 1`` rows, oldest first, changed in
    place as rows are fed), ``row`` (the new row, written by the caller),
    ``point`` (room for the shingled point), ``query`` (a point to score
    after the row is fed, written by the caller, made relative in place)
    ``scores`` (room for each tree's score), ``lanes`` and ``path`` (room
    for the walks down ``2 * LANES`` trees at a time, and the nodes they
    pass, see :func:`rcforest._score.score_trees`), ``cuts`` (each reservoir's rejection cut, kept
    between readings by :func:`rcforest._sampler.kept_cut`), ``chosen`` and ``weights`` (room for the
    trees that admit the point with :func:`rcforest._sampler.admits`' verdict in each, and its weight).
    """


structref.define_proxy(
    Reader,
    _ReaderType,
    ["trees", "tail", "row", "point", "query", "scores", "lanes", "path", "cuts", "chosen", "weights"],
)


@njit(**JIT)
def new_reader(trees, tail, row, point, query):
    """A :class:`Reader` holding these arrays (not copies).

    Parameters
    ----------
    trees : TreeArrays
    tail : ndarray of float64, shape (shingle_size - 1, num_features)
    row : ndarray of float64, shape (num_features,)
    point, query : ndarray of float64, shape (shingle_size * num_features,)

    Returns
    -------
    Reader
    """
    num_trees = trees.root.shape[0]
    path = np.zeros((2, LANES, trees.parent.shape[1]), np.int32)
    cuts = np.full((num_trees, 4), np.nan)
    lanes = np.zeros((4, LANES), np.int64)
    chosen = np.zeros((2, num_trees), np.int64)
    return Reader(trees, tail, row, point, query, np.zeros(num_trees), lanes, path, cuts, chosen, np.zeros(num_trees))


@njit(**JIT)
def read(reader, sequence, time_decay, mode, mass_offset):
    """Score and/or feed the row in ``reader.row`` to every tree, one tree after another.

    Parameters
    ----------
    reader : Reader
        Its ``row`` holds the new row; with a mode that feeds, its ``tail``
        (the rows before it) makes the shingle and then moves on by the row.
    sequence : int
        Sequence number of the row's point in the stream.
    time_decay : float
    mode : int
        :data:`SCORE`, :data:`FEED`, :data:`SCORE_FEED` or :data:`FEED_SCORE`.
    mass_offset : float
        Each tree's score is scaled by ``log2(M + mass_offset)``
        (:func:`rcforest._score.score_point`).

    Returns
    -------
    status : int
        0, :data:`FULL`, :data:`CORRUPT` or :data:`INVALID`.
    score : float
        The mean score over trees of the row's point before it joined them,
        or of ``query`` after it did (:data:`FEED_SCORE`); 0 unless scored.

    Notes
    -----
    The point is the shingle made of the tail and the row, with ``-0.0``
    read as ``0.0`` (:func:`rcforest._core.without_negative_zeros`),
    relative to the trees' origin (:func:`rcforest._store.relative`), and
    goes to the store's next row, as :func:`rcforest._store.store_rows`
    puts it; with :data:`FULL` the caller makes room and comes back.
    The row's values are checked here, before anything changes, so that a
    caller holding a float64 array need not check them one by one in
    Python. :data:`FEED_SCORE` is a live detector's reading: the previous reading
    joins each tree and the new one is scored there, the same operations
    in the same order as :data:`FEED` followed by :data:`SCORE`, in one
    pass over the trees.
    """
    tr = borrowed(reader, "trees")  # the reader holds them: no reference counts (rcforest._borrowed)
    tail = reader.tail
    row = reader.row
    point = reader.point
    width = row.shape[0]
    for c in range(width):
        if not abs(row[c]) <= MAX_ABS_VALUE:  # NaN compares false
            return INVALID, 0.0
    lags = tail.shape[0] if mode != SCORE else 0
    for lag in range(lags):
        for c in range(width):
            point[lag * width + c] = tail[lag, c] - tr.origin[lag * width + c]
    for c in range(width):
        point[lags * width + c] = (row[c] + 0.0) - tr.origin[lags * width + c]
    index = -1
    if mode != SCORE:
        index = tr.store_size[0]
        if index == 0 or index >= tr.store.shape[0]:
            return FULL, 0.0
        tr.store[index, :] = point
        tr.store_size[0] = index + 1
        if mode == FEED_SCORE:
            query = reader.query
            for i in range(query.shape[0]):
                query[i] = (query[i] + 0.0) - tr.origin[i]
    scores = reader.scores
    dim = point.shape[0]
    query = reader.query
    # The points as rows, as the trees' walks down read them (views: nothing is copied).
    _each_tree(
        tr,
        point.reshape((1, dim)),
        query.reshape((1, dim)),
        index,
        sequence,
        time_decay,
        mode,
        mass_offset,
        scores,
        reader.lanes,
        reader.path,
        reader.cuts,
        reader.chosen,
        reader.weights,
    )
    total = 0.0
    for t in range(scores.shape[0]):
        total += scores[t]  # in tree order, as rcforest._kernels.tree_mean adds
    mean = total / scores.shape[0]
    if np.isnan(mean):
        return CORRUPT, mean
    for lag in range(lags - 1):
        tail[lag, :] = tail[lag + 1, :]
    if lags:
        for c in range(width):
            tail[lags - 1, c] = row[c] + 0.0
    return 0, mean


def compiled_read(reader):
    """:func:`read` compiled for ``reader``: a call of it skips the dispatcher's typing of the arguments.

    numba's dispatcher types a :class:`Reader` anew on every call: a call
    that returns at once takes about 1 µs through it and half that through
    the compiled function (:func:`rcforest._compiled.for_reader`), which
    takes the same arguments, read as the types of its signature (a Python
    int for ``sequence`` and ``mode``, floats for the others).

    Parameters
    ----------
    reader : Reader

    Returns
    -------
    callable
        ``(reader, sequence, time_decay, mode, mass_offset) -> (status, score)``,
        for readers of this one's type.
    """
    return for_reader(read, reader, types.int64, types.float64, types.int64, types.float64)


@njit(**INLINE)
def _ask_for(tr, t):
    """Ask the caches for what tree ``t``'s deletion and insertion read first: the evicted leaf, the root's box."""
    internal = tr.left.shape[1]
    if tr.heap_size[t] == tr.heap_leaf.shape[1]:
        leaf = tr.heap_leaf[t, 0]
        prefetch(tr.parent, t, leaf)
        prefetch(tr.mass, t, leaf)
        prefetch(tr.leaf_point, t, leaf - internal)
    root = tr.root[t]
    if 0 <= root < internal:
        prefetch_node(tr, t, root, tr.box_min[t], tr.box_max[t])
        prefetch(tr.mass, t, root)


@njit(**INLINE)
def _ask_for_parent(tr, t):
    """Ask the caches for the evicted leaf's parent in tree ``t`` (the links of the leaf asked for before)."""
    if tr.heap_size[t] == tr.heap_leaf.shape[1]:
        parent = tr.parent[t, tr.heap_leaf[t, 0]]
        if parent >= 0:
            prefetch_box(tr.box_min[t], tr.box_max[t], parent)
            prefetch(tr.left, t, parent)
            prefetch(tr.right, t, parent)
            prefetch(tr.parent, t, parent)
            prefetch(tr.mass, t, parent)


@njit(**INLINE)
def _offer_trees(tr, first, count, index, sequence, time_decay, scores, cuts, chosen, weights):
    """Offer the store's row ``index`` to trees ``first`` to ``first + count - 1`` (NaN to ``scores`` if corrupt).

    Each tree draws its uniform first, all of them before any tree
    changes: a tree's draws, reservoir and cut are its own, so each tree
    sees the same operations in the same order as when it is offered the
    point at once. Most trees refuse; each that admits it has its first
    nodes asked for (:func:`_ask_for`) and then takes it after the draws
    (:func:`rcforest._kernels.take`, with the verdict of its draw), one
    after another, each asking for the next one's evicted leaf's parent
    before it starts its own work.
    """
    admitted = 0
    for t in range(first, first + count):
        u = uniform(tr.rng, t)
        if u < kept_cut(tr.heap_weight, tr.heap_size, cuts, t, sequence, time_decay):
            continue  # refused: the draw and decision of draw_weight and admits, without the logarithms
        w = weight_of(u, sequence, time_decay)
        verdict = admits(tr.heap_weight, tr.heap_size, t, w)
        if verdict == 0:
            continue
        chosen[0, admitted] = t
        chosen[1, admitted] = verdict
        weights[admitted] = w
        admitted += 1
        _ask_for(tr, t)
    for a in range(admitted):
        t = chosen[0, a]
        if a + 1 < admitted:
            _ask_for_parent(tr, chosen[0, a + 1])
        if not take(tr, t, index, weights[a], chosen[1, a]):
            scores[t] = np.nan


@njit(**JIT, _nrt=False)
def _each_tree(
    tr, point, query, index, sequence, time_decay, mode, mass_offset, scores, lanes, path, cuts, chosen, weights
):
    """The work of :func:`read` in each tree, its score (or NaN for a corrupt tree, 0 unscored) to ``scores``.

    Trees go ``2 * LANES`` at a time: the group's scores
    (:func:`rcforest._score.score_trees`, walking down the trees
    together), then each tree is offered the point, in tree order. The
    trees share nothing a score or an insertion changes but the store's
    new row, written before, so each tree sees the same operations in the
    same order as one tree at a time.

    Compiled without numba's reference counts: this loop takes every
    array from the NamedTuple again and again, and counting those
    references took more than half of a reading's time.
    """
    num_trees = tr.root.shape[0]
    if mode == FEED:
        for t in range(num_trees):
            scores[t] = 0.0
        _offer_trees(tr, 0, num_trees, index, sequence, time_decay, scores, cuts, chosen, weights)
        return
    for first in range(0, num_trees, 2 * LANES):
        count = min(2 * LANES, num_trees - first)
        for t in range(first, first + count):
            scores[t] = 0.0
        if mode == SCORE or mode == SCORE_FEED:
            score_trees(tr, first, count, point, mass_offset, lanes, path, scores)
        if mode != SCORE:
            _offer_trees(tr, first, count, index, sequence, time_decay, scores, cuts, chosen, weights)
            if mode == FEED_SCORE:
                score_trees(tr, first, count, query, mass_offset, lanes, path, scores)
