"""Parallel drivers: one jitted call per batch or stream, a tree per task.

Each driver loops over trees with ``prange`` and writes each tree's output
to its own row, so results do not depend on the number of threads; the
Python layer then averages the rows in a fixed order. CoDisp is read
off where an insertion would put the point, with cuts drawn from a copy of
the tree's generator, so it leaves the state untouched.

A corrupt tree (a cycle in its links) never makes a kernel spin: its walks
are bounded, and the kernel writes NaN where the tree's output goes (an
insertion stops that tree's stream there; :func:`build` leaves the leaf
``-1`` in the reservoir). The Python layer turns that into an error.
"""

import numpy as np
from numba import prange

from rcforest._box import child_bounds, range_of
from rcforest._jit import INLINE, JIT, njit, uncounted
from rcforest._rng import uniform
from rcforest._sampler import admits, draw_weight, heap_push, heap_replace_top, rejection_cut, weight_of
from rcforest._score import AWS_MASS_OFFSET, attribute_point, displacement_of, score_point, score_rows
from rcforest._store import pack, relative
from rcforest._update import delete_leaf, insert_point

__all__ = []

MODE_NONE = 0
MODE_SCORE = 1
MODE_CODISP = 2
MODE_DISPLACEMENT = 3

_CUT_ROWS = 256
"""Rows over which :func:`select_sample` keeps one rejection cut (it is
recomputed after every admission)."""


def raise_if_corrupt(*outputs):
    """Raise ``RuntimeError`` if a kernel wrote NaN for a corrupt tree into one of ``outputs``.

    Parameters
    ----------
    *outputs : ndarray of float64
        Per-tree outputs of a kernel (scores, displacements, attributions).
    """
    for values in outputs:
        if np.isnan(values).any():
            raise RuntimeError(
                "a tree of this forest is corrupt (a walk through it does not end); "
                "fit the forest again or load a saved copy"
            )


@njit(**JIT, parallel=True)
def select_sample(rng, heap_weight, heap_row, heap_size, num_rows, sequence_start, time_decay):
    """Run every tree's reservoir over ``num_rows`` rows without building trees.

    Parameters
    ----------
    rng : ndarray of uint64, shape (num_trees,)
    heap_weight : ndarray of float64, shape (num_trees, sample_size)
    heap_row : ndarray of int32, shape (num_trees, sample_size)
        Filled with the row numbers each tree keeps.
    heap_size : ndarray of int32, shape (num_trees,)
    num_rows : int
    sequence_start : int
        Sequence number of the first row.
    time_decay : float

    Notes
    -----
    Keeping the rows of smallest weight is a sample without replacement
    (uniform when ``time_decay == 0``); the weights are kept, so a stream
    can continue from the fitted sample. Once a reservoir is full, a row
    whose uniform lies below :func:`rejection_cut` is refused without
    computing its weight; the draws and decisions are those of
    :func:`draw_weight` and :func:`admits` row by row.
    """
    for i in prange(rng.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        last = sequence_start - 1
        cut = -1.0
        for row in range(num_rows):
            if sequence_start + row > last:
                last = sequence_start + min(row + _CUT_ROWS, num_rows) - 1
                cut = rejection_cut(heap_weight, heap_size, t, last, time_decay)
            u = uniform(rng, t)
            if u < cut:
                continue  # refused: most rows once the reservoir is full
            w = weight_of(u, sequence_start + row, time_decay)
            verdict = admits(heap_weight, heap_size, t, w)
            if verdict == 1:
                heap_push(heap_weight, heap_row, heap_size, t, w, row)
            elif verdict == 2:
                heap_replace_top(heap_weight, heap_row, heap_size, t, w, row)
            if verdict != 0:
                cut = rejection_cut(heap_weight, heap_size, t, last, time_decay)


@njit(**JIT, parallel=True)
def select_blocks(rng, heap_weight, heap_row, heap_size, block, time_decay):
    """Give tree ``t`` the rows ``t * block`` to ``t * block + block - 1``: SageMaker's layout.

    Parameters
    ----------
    rng : ndarray of uint64, shape (num_trees,)
    heap_weight : ndarray of float64, shape (num_trees, sample_size)
    heap_row : ndarray of int32, shape (num_trees, sample_size)
        Filled with the row numbers each tree keeps.
    heap_size : ndarray of int32, shape (num_trees,)
        Empty reservoirs on entry; ``block`` on return.
    block : int
        Rows per tree, at most ``sample_size`` (:func:`rcforest._layout.block_size`).
    time_decay : float

    Notes
    -----
    Each row enters its tree's reservoir with the weight
    :func:`draw_weight` gives it as row number ``row``, as
    :func:`select_sample` would had it admitted the row, so a stream can
    continue from the fitted forest.
    """
    for i in prange(rng.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        for j in range(block):
            row = t * block + j
            heap_push(heap_weight, heap_row, heap_size, t, draw_weight(rng, t, row, time_decay), row)


@njit(**JIT, parallel=True)
def build(tr, heap_row):
    """Insert each tree's sampled rows and record their leaves in its heap.

    Parameters
    ----------
    tr : TreeArrays
        Empty trees whose reservoirs were filled by :func:`select_sample`.
    heap_row : ndarray of int32, shape (num_trees, sample_size)
        The store row of each reservoir point.
    """
    # Written through a local name: numba's parfor drops stores made to a
    # NamedTuple field directly in a prange body.
    heap_leaf = tr.heap_leaf
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        for j in range(tr.heap_size[t]):
            heap_leaf[t, j] = insert_point(tr, t, np.int64(heap_row[t, j]), tr.rng, t)


def build_from_rows(tr, points, heap_row):
    """Build empty trees from the rows their reservoirs kept.

    The rows kept by any tree go to the point store, each once and in
    order, relative to the origin they place (the first of them, see
    :func:`rcforest._store.relative`), the trees are built by :func:`build`, and the store is then
    packed to the distinct points the leaves hold (:func:`rcforest._store.pack`).

    Parameters
    ----------
    tr : TreeArrays
        Empty trees whose reservoirs were filled by :func:`select_sample`.
    points : ndarray of float64, shape (num_rows, dim)
    heap_row : ndarray of int32, shape (num_trees, sample_size)
        The row of ``points`` of each reservoir point.

    Returns
    -------
    TreeArrays
        The trees, with their store.
    """
    kept = np.unique(heap_row[heap_row >= 0])
    store = np.ascontiguousarray(relative(tr, points[kept]))
    tr = tr._replace(store=store, store_size=np.array([kept.size], np.int64))
    build(tr, np.searchsorted(kept, heap_row).astype(np.int32))
    return pack(tr)


_delete_leaf = uncounted(delete_leaf)
_insert_point = uncounted(insert_point)
_heap_push = uncounted(heap_push)
_heap_replace_top = uncounted(heap_replace_top)


@njit(**INLINE)
def take(tr, t, index, w, verdict):
    """Insert the store's row ``index`` into tree ``t`` with weight ``w`` in its reservoir; False for a corrupt tree.

    ``verdict`` is what :func:`rcforest._sampler.admits` said of ``w``: ``1``
    (the reservoir has room) or ``2`` (the heaviest point is evicted first).
    The insertion, deletion and heap kernels it calls are compiled without
    reference counts (:func:`rcforest._jit.uncounted`): they take the
    tree's arrays from the NamedTuple again and again, and counting those
    references took half of an insertion's time.
    """
    if verdict == 2 and not _delete_leaf(tr, t, tr.heap_leaf[t, 0]):
        return False
    leaf = _insert_point(tr, t, index, tr.rng, t)
    if leaf == -1:
        return False
    if verdict == 1:
        _heap_push(tr.heap_weight, tr.heap_leaf, tr.heap_size, t, w, leaf)
    else:
        _heap_replace_top(tr.heap_weight, tr.heap_leaf, tr.heap_size, t, w, leaf)
    return True


@njit(**INLINE)
def offer(tr, t, index, w):
    """Insert the store's row ``index`` if tree ``t``'s reservoir admits weight ``w``; False for a corrupt tree.

    The decision is :func:`rcforest._sampler.admits`', the work :func:`take`'s.
    """
    verdict = admits(tr.heap_weight, tr.heap_size, t, w)
    if verdict == 0:
        return True
    return take(tr, t, index, w, verdict)


@njit(**INLINE)
def _stream_tree(tr, t, points, first, sequence_start, time_decay, score, mass_offset, out):
    """Feed ``points`` (store rows ``first`` on) through tree ``t``, writing each score to ``out`` first if ``score``.

    A corrupt tree stops its stream with NaN in ``out``, whatever ``score``.
    As in :func:`select_sample`, a uniform below the reservoir's
    :func:`rejection_cut` is refused without computing its weight: the
    same draws and decisions as :func:`draw_weight` and :func:`offer`.
    """
    last = sequence_start - 1
    cut = -1.0
    for row in range(points.shape[0]):
        if score:
            out[row] = score_point(tr, t, points[row], mass_offset)
        sequence = sequence_start + row
        if sequence > last:
            last = sequence_start + min(row + _CUT_ROWS, points.shape[0]) - 1
            cut = rejection_cut(tr.heap_weight, tr.heap_size, t, last, time_decay)
        u = uniform(tr.rng, t)
        if u < cut:
            continue  # refused: most rows once the reservoir is full
        top = tr.heap_weight[t, 0]
        size = tr.heap_size[t]
        if not offer(tr, t, first + row, weight_of(u, sequence, time_decay)):
            out[row] = np.nan
            return
        if tr.heap_weight[t, 0] != top or tr.heap_size[t] != size:
            cut = rejection_cut(tr.heap_weight, tr.heap_size, t, last, time_decay)


_stream_tree_call = uncounted(_stream_tree)
"""One tree's stream, a call per tree and batch, without reference counts (a 4-D stream about 15% faster)."""


@njit(**JIT, parallel=True)
def _stream_scores(tr, points, first, sequence_start, time_decay, score, mass_offset, out):
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        _stream_tree_call(tr, t, points, first, sequence_start, time_decay, score, mass_offset, out[t])


@njit(**JIT, inline="always")
def _stream_displacement_tree(tr, t, points, first, sequence_start, time_decay, which, out):
    """Feed ``points`` (store rows ``first`` on) through tree ``t``, writing each CoDisp (``which == 0``) or Disp."""
    local_rng = np.empty(1, np.uint64)
    for row in range(points.shape[0]):
        local_rng[0] = tr.rng[t]  # a copy: the same point in the same tree always gets the same value
        out[row] = displacement_of(tr, t, points[row], local_rng, np.int64(0))[which]
        w = draw_weight(tr.rng, t, sequence_start + row, time_decay)
        if not offer(tr, t, first + row, w):
            out[row] = np.nan
            return


@njit(**JIT, parallel=True)
def _stream_displacements(tr, points, first, sequence_start, time_decay, which, out):
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        _stream_displacement_tree(tr, t, points, first, sequence_start, time_decay, which, out[t])


def stream(tr, points, first, sequence_start, time_decay, mode, out, mass_offset=AWS_MASS_OFFSET):
    """Feed rows in order through every tree's reservoir, scoring first.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_rows, dim)
        The rows, already appended to the store by
        :func:`rcforest._store.store_rows`.
    first : int
        Store row of ``points[0]``.
    sequence_start : int
        Sequence number of the first row.
    time_decay : float
    mode : int
        What to write to ``out`` for each row before it is offered to the
        tree: nothing, the score, CoDisp or Disp (``MODE_*``).
    out : ndarray of float64, shape (num_trees, num_rows)
        Zeros on entry when ``mode`` is ``MODE_NONE``, so that a corrupt
        tree's NaN stands out.
    mass_offset : float, default AWS_MASS_OFFSET
        How scores are scaled (:func:`rcforest._score.score_point`).

    Notes
    -----
    Scores and displacements have a kernel each, so that a stream of scores
    compiles no displacement code.
    """
    if mode in (MODE_NONE, MODE_SCORE):
        score = mode == MODE_SCORE
        _stream_scores(tr, points, first, sequence_start, float(time_decay), score, float(mass_offset), out)
    else:
        args = (tr, points, first, sequence_start, float(time_decay), 0 if mode == MODE_CODISP else 1, out)
        _stream_displacements(*args)


@njit(**JIT, parallel=True)
def score_batch(tr, points, out, mass_offset):
    """Score every row in every tree, read-only.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_rows, dim)
    out : ndarray of float64, shape (num_trees, num_rows)
    mass_offset : float
        How scores are scaled (:func:`rcforest._score.score_point`).
    """
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        score_rows(tr, t, points, out[t], mass_offset)


@njit(**JIT)
def _displacement_call(tr, t, point, local_rng):
    """:func:`rcforest._score.displacement_of` with a copy of tree ``t``'s generator, compiled as a call.

    Inlined into the batch loop it runs slower than called; in a stream,
    where the point is then offered to the tree, inlined runs faster.
    """
    local_rng[0] = tr.rng[t]  # a copy: the same point in the same tree always gets the same value
    return displacement_of(tr, t, point, local_rng, np.int64(0))  # int64, as insertion's index


@njit(**JIT, parallel=True)
def displacement_batch(tr, points, codisp, disp):
    """CoDisp and Disp of every row in every tree.

    Each row is placed as an insertion would place it, with a copy of the
    tree's generator, and measured without changing the tree.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_rows, dim)
    codisp, disp : ndarray of float64, shape (num_trees, num_rows)
    """
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        local_rng = np.empty(1, np.uint64)
        for row in range(points.shape[0]):
            codisp[t, row], disp[t, row] = _displacement_call(tr, t, points[row], local_rng)


@njit(**JIT, parallel=True)
def attribution_batch(tr, points, high, low, mass_offset):
    """Forest-mean attribution of every row, read-only.

    Parameters
    ----------
    tr : TreeArrays
    points : ndarray of float64, shape (num_rows, dim)
    high, low : ndarray of float64, shape (num_rows, dim)
        Overwritten with the mean over trees of :func:`attribute_point`.
    mass_offset : float
        How scores are scaled (:func:`rcforest._score.score_point`).
    """
    num_trees = tr.root.shape[0]
    dim = points.shape[1]
    for row in prange(points.shape[0]):
        tree_high = np.empty(dim)
        tree_low = np.empty(dim)
        high[row, :] = 0.0
        low[row, :] = 0.0
        for t in range(num_trees):
            attribute_point(tr, t, points[row], tree_high, tree_low, mass_offset)
            for i in range(dim):
                high[row, i] += tree_high[i]
                low[row, i] += tree_low[i]
        for i in range(dim):
            high[row, i] /= num_trees
            low[row, i] /= num_trees


@njit(**JIT)
def tree_mean(per_tree, out):
    """Mean over trees of a ``(num_trees, num_rows)`` output, into ``out``.

    Trees are added one after another, so a row's value does not depend on
    which other rows were computed with it.
    """
    out[:] = 0.0
    for t in range(per_tree.shape[0]):
        for row in range(per_tree.shape[1]):
            out[row] += per_tree[t, row]
    for row in range(per_tree.shape[1]):
        out[row] /= per_tree.shape[0]


@njit(**INLINE)
def _check_free(stack, top, low, high, free):
    """0 if ``stack[:top]`` holds distinct nodes in ``[low, high)`` and ``-1`` follows, marking them in ``free``."""
    if top < 0 or top > high - low:
        return 1
    for j in range(top):
        node = stack[j]
        if node < low or node >= high or free[node]:
            return 2
        free[node] = True
    for j in range(top, stack.shape[0]):
        if stack[j] != -1:
            return 2
    return 0


@njit(**JIT)
def _check_tree(tr, t):
    """Return 0 if tree ``t`` is structurally sound, else a failing check's number."""
    internal = tr.left.shape[1]
    num_nodes = tr.parent.shape[1]
    dim = tr.box_min.shape[2]
    box_min = tr.box_min[t]
    box_max = tr.box_max[t]
    used = tr.store_size[0]
    if used < 0 or used > tr.store.shape[0]:
        return 19
    free = np.zeros(num_nodes, np.bool_)
    failed = _check_free(tr.free_internal[t], tr.free_internal_top[t], 0, internal, free)
    if failed == 0:
        failed = _check_free(tr.free_leaf[t], tr.free_leaf_top[t], internal, num_nodes, free)
    if failed:
        return failed
    root = tr.root[t]
    seen = np.zeros(num_nodes, np.bool_)
    stack = np.empty(num_nodes, np.int32)
    depth = 0
    if root != -1:
        if root < 0 or root >= num_nodes or free[root] or tr.parent[t, root] != -1:
            return 3
        stack[0] = root
        depth = 1
    reached = 0
    while depth > 0:
        depth -= 1
        node = stack[depth]
        if seen[node]:
            return 4
        seen[node] = True
        reached += 1
        if node >= internal:
            index = tr.leaf_point[t, node - internal]
            if tr.mass[t, node] < 1 or index < 0 or index >= used:
                return 5
            continue
        left = tr.left[t, node]
        right = tr.right[t, node]
        for child in (left, right):
            if child < 0 or child >= num_nodes or free[child] or tr.parent[t, child] != node:
                return 7
        if depth + 2 > num_nodes:
            return 8
        stack[depth] = left
        stack[depth + 1] = right
        depth += 2
    if reached + tr.free_internal_top[t] + tr.free_leaf_top[t] != num_nodes:
        return 9
    for node in range(internal):
        if not seen[node]:
            continue
        left = tr.left[t, node]
        right = tr.right[t, node]
        cut = tr.cut_dim[t, node]
        if cut < 0 or cut >= dim:
            return 10
        if tr.mass[t, node] != tr.mass[t, left] + tr.mass[t, right]:
            return 11
        for i in range(dim):
            left_lo, left_hi = child_bounds(tr.leaf_point, tr.store, box_min, box_max, t, left, i)
            right_lo, right_hi = child_bounds(tr.leaf_point, tr.store, box_min, box_max, t, right, i)
            if min(left_lo, right_lo) != box_min[node, i] or max(left_hi, right_hi) != box_max[node, i]:
                return 12
        if range_of(box_min, box_max, node) != tr.range_sum[t, node]:
            return 18
    for node in range(internal, num_nodes):
        if not seen[node]:
            continue
        # A box's bounds are rounded: check each point against the cut of every ancestor.
        point = tr.store[tr.leaf_point[t, node - internal]]
        child = node
        above = tr.parent[t, node]
        while above != -1:  # the links form one tree (checked above): this reaches the root
            value = tr.cut_value[t, above]
            if (point[tr.cut_dim[t, above]] <= value) != (tr.left[t, above] == child):
                return 13
            child = above
            above = tr.parent[t, above]
    size = tr.heap_size[t]
    if size < 0 or size > tr.heap_leaf.shape[1]:
        return 14
    count = np.zeros(num_nodes, np.int64)
    for j in range(size):
        leaf = tr.heap_leaf[t, j]
        if leaf < internal or leaf >= num_nodes or not seen[leaf]:
            return 15
        count[leaf] += 1
        if j > 0 and tr.heap_weight[t, (j - 1) // 2] < tr.heap_weight[t, j]:
            return 16
    for node in range(internal, num_nodes):
        if seen[node] and count[node] != tr.mass[t, node]:
            return 17
    return 0


@njit(**JIT, parallel=True)
def check_trees(tr, out):
    """Check every tree's links, masses, boxes, free stacks, leaf points and reservoir.

    Parameters
    ----------
    tr : TreeArrays
    out : ndarray of int64, shape (num_trees,)
        0 for a sound tree, else the number of the first failed check.
    """
    for i in prange(tr.root.shape[0]):
        t = np.int64(i)  # one signature for the callees (prange's index is unsigned)
        out[t] = _check_tree(tr, t)
