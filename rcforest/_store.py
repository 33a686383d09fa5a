"""The point store: each point of a forest once, for all its trees.

The trees hold every point relative to the forest's ``origin``, the first
point it was given, subtracted from every input row by :func:`relative`:
so boxes keep their precision for data far from zero, such as
``1e9 + noise``. The kernels never add to the store: rows are appended
before a call (:func:`store_rows`), and :func:`compact` later drops the
rows no leaf refers to. So the trees of a parallel call only read the
store, and which rows it holds does not depend on the threads.
"""

import numpy as np

__all__ = ["compact", "pack", "relative", "store_rows"]


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
