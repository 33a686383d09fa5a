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
from numba import njit

from rcforest._jit import INLINE, JIT
from rcforest._rng import uniform

__all__ = []


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
    u = uniform(rng, t)
    return -time_decay * sequence + np.log(-np.log(u))


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
