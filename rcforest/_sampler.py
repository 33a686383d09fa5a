"""The time-decayed weighted reservoir that decides which points a tree keeps.

Each arriving point at sequence number ``s`` gets, in each tree, the weight
``-time_decay * s + log(-log(u))`` with ``u`` uniform; the tree keeps the
``sample_size`` points of smallest weight in a max-heap. With
``time_decay == 0`` every point is equally likely to be kept (a uniform
reservoir); a positive decay favours recent points.

Notes
-----
Efraimidis and Spirakis, "Weighted random sampling with a reservoir", 2006,
in the exponential-clock form used by AWS random-cut-forest-by-aws
(``CompactSampler``).
"""

import numpy as np

from rcforest._jit import INLINE, JIT, njit
from rcforest._rng import uniform

__all__ = []


@njit(**INLINE)
def weight_of(u, sequence, time_decay):
    """Reservoir weight of a point with number ``sequence`` that drew the uniform ``u``.

    Parameters
    ----------
    u : float
        A uniform draw in ``[0, 1)``.
    sequence : int
        The point's position in the stream.
    time_decay : float

    Returns
    -------
    float
        Smaller weights are kept; ``log(-log(u))`` falls as ``u`` grows.
    """
    return -time_decay * sequence + np.log(-np.log(u))


@njit(**INLINE)
def draw_weight(rng, t, sequence, time_decay):
    """Reservoir weight of the point with number ``sequence`` in tree ``t``.

    Parameters
    ----------
    rng : ndarray of uint64
        Generator states; ``rng[t]`` is advanced once.
    t : int
    sequence : int
        The point's position in the stream.
    time_decay : float

    Returns
    -------
    float
        Smaller weights are kept.
    """
    return weight_of(uniform(rng, t), sequence, time_decay)


@njit(**INLINE)
def rejection_cut(weight, size, t, last, time_decay):
    """A uniform below which tree ``t``'s full reservoir surely refuses a point.

    Parameters
    ----------
    weight : ndarray of float64, shape (num_trees, sample_size)
    size : ndarray of int32, shape (num_trees,)
    t : int
    last : int
        The largest sequence number the cut is used for: it holds for every
        point numbered ``last`` or less.
    time_decay : float

    Returns
    -------
    float
        ``-1.0`` while the reservoir has room.

    Notes
    -----
    A point is refused when its :func:`weight_of` is at least the heaviest
    kept, ``top``: when ``u <= exp(-exp(top + time_decay * s))``, a bound
    that falls as ``s`` grows. The cut is that bound at ``last``, lowered by
    a margin far wider than the rounding of either side, so a uniform below
    it is refused by :func:`admits` as well: skipping :func:`weight_of`'s two
    logarithms for it changes no decision.
    """
    if size[t] < weight.shape[1]:
        return -1.0
    top = weight[t, 0]
    decayed = time_decay * last
    slack = 1e-12 * (1.0 + abs(top) + abs(decayed))
    return np.exp(-np.exp(top + decayed + slack)) * (1.0 - 1e-12)


KEPT_CUT_ROWS = 256
"""Sequence numbers over which :func:`kept_cut` keeps one cut (it is recomputed when the heap's top changes)."""


@njit(**INLINE)
def kept_cut(weight, size, kept, t, sequence, time_decay):
    """:func:`rejection_cut` for the point numbered ``sequence``, kept in ``kept[t]`` from one call to the next.

    Parameters
    ----------
    weight : ndarray of float64, shape (num_trees, sample_size)
    size : ndarray of int32, shape (num_trees,)
    kept : ndarray of float64, shape (num_trees, 4)
        Per tree: the heaviest weight kept when the cut was computed, the
        last sequence number it holds for, the time decay, and the cut.
        Rows of NaN (nothing kept) are valid.
    t, sequence : int
    time_decay : float

    Returns
    -------
    float
        A cut that holds for ``sequence``: computed again, for the next
        :data:`KEPT_CUT_ROWS` sequence numbers, unless the one kept was
        computed for this reservoir's heaviest weight and decay and holds
        for ``sequence``. ``-1.0`` while the reservoir has room.
    """
    if size[t] < weight.shape[1]:
        return -1.0
    top = weight[t, 0]
    if top == kept[t, 0] and sequence <= kept[t, 1] and time_decay == kept[t, 2]:
        return kept[t, 3]
    last = sequence + KEPT_CUT_ROWS - 1
    cut = rejection_cut(weight, size, t, last, time_decay)
    kept[t, 0] = top
    kept[t, 1] = last
    kept[t, 2] = time_decay
    kept[t, 3] = cut
    return cut


@njit(**INLINE)
def _sift_down(weight, item, t, size):
    """Restore the max-heap property below the root, after the root changed."""
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and weight[t, child + 1] > weight[t, child]:
            child += 1
        if weight[t, child] <= weight[t, pos]:
            return
        weight[t, pos], weight[t, child] = weight[t, child], weight[t, pos]
        item[t, pos], item[t, child] = item[t, child], item[t, pos]
        pos = child


@njit(**JIT)
def heap_push(weight, item, size, t, w, value):
    """Push ``(w, value)`` on tree ``t``'s heap, which must not be full."""
    pos = size[t]
    size[t] = pos + 1
    weight[t, pos] = w
    item[t, pos] = value
    while pos > 0:
        up = (pos - 1) // 2
        if weight[t, up] >= weight[t, pos]:
            return
        weight[t, pos], weight[t, up] = weight[t, up], weight[t, pos]
        item[t, pos], item[t, up] = item[t, up], item[t, pos]
        pos = up


@njit(**JIT)
def heap_replace_top(weight, item, size, t, w, value):
    """Replace the heaviest entry of tree ``t``'s heap by ``(w, value)``."""
    weight[t, 0] = w
    item[t, 0] = value
    _sift_down(weight, item, t, size[t])


@njit(**INLINE)
def admits(weight, size, t, w):
    """Whether a point of weight ``w`` enters tree ``t``'s reservoir.

    Returns
    -------
    int
        ``0``: it does not; ``1``: the reservoir has room; ``2``: it takes
        the place of the heaviest point, which must be evicted first.
    """
    if size[t] < weight.shape[1]:
        return 1
    if w < weight[t, 0]:
        return 2
    return 0
