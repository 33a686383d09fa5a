"""Bounding boxes in single precision, rounded outwards, and the geometry of cuts.

An internal node's box is kept as float32: each bound is the nearest
float32 on the outer side of its points' extreme (:func:`round_down`,
:func:`round_up`), so a box always holds its points. A leaf's "box" is its
point, a row of the double-precision store, passed twice as ``low`` and
``high``.

The helpers take the arrays they touch, never the whole TreeArrays:
inlined into a kernel, a helper taking ``tr`` counts references to every
array of it at each call, which costs more than the work.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rcforest._jit import INLINE, JIT, njit

__all__ = [
    "box_gap",
    "box_gap_fast",
    "child_bounds",
    "prefetch",
    "prefetch_box",
    "cut_in_gap",
    "range_of",
    "refit_bounds",
    "refit_box",
    "round_down",
    "round_up",
    "set_union",
]


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


@intrinsic
def prefetch(typingctx, array, *index):
    """Ask the caches for ``array[index]`` (one index per dimension), without waiting for it or changing anything.

    A read, kept in every level of the caches (an LLVM prefetch).
    """
    if not isinstance(array, types.Array) or len(index) != array.ndim:
        return None
    if not all(isinstance(kind, types.Integer) for kind in index):
        return None

    def codegen(context, builder, signature, args):
        kind = signature.args[0]
        values = context.make_array(kind)(context, builder, args[0])
        given = cgutils.unpack_tuple(builder, args[1])
        at = [context.cast(builder, value, of, types.intp) for value, of in zip(given, index)]
        pointer = cgutils.get_item_pointer(context, builder, kind, values, at)
        byte = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, int32, int32, int32]), "llvm.prefetch.p0i8"
        )
        builder.call(function, [builder.bitcast(pointer, byte), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.none(array, types.StarArgTuple.from_types(index)), codegen


@njit(**INLINE)
def prefetch_box(box_min, box_max, node):
    """Ask for internal ``node``'s box (of one tree's ``box_min`` and ``box_max``) to be loaded into the caches.

    A descent knows a child's number a level before it reads the child's
    box; asking for it early overlaps its wait on memory with the work on
    the level above. Changes nothing.
    """
    for i in range(0, box_min.shape[1], 16):  # 16 float32 to a 64-byte line
        prefetch(box_min, node, i)
        prefetch(box_max, node, i)


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


@njit(**INLINE)
def refit_box(left, right, leaf_point, store, box_min, box_max, range_sum, t, node):
    """Set internal ``node``'s box and range sum to the union of its children's (a leaf's box is its point).

    ``box_min`` and ``box_max`` are tree ``t``'s. Returns whether the box changed.
    """
    changed = refit_bounds(left, right, leaf_point, store, box_min, box_max, t, node)
    range_sum[t, node] = range_of(box_min, box_max, node)
    return changed


@njit(**INLINE)
def refit_bounds(left, right, leaf_point, store, box_min, box_max, t, node):
    """:func:`refit_box` without the range sum: the caller sets it (a box that did not change keeps its own)."""
    internal = box_min.shape[0]
    first = left[t, node]
    second = right[t, node]
    if first >= internal and second >= internal:
        first_row, second_row = leaf_point[t, first - internal], leaf_point[t, second - internal]
        return set_union(box_min, box_max, node, store, store, first_row, store, store, second_row)
    if first >= internal or second >= internal:
        leaf, inner = (first, second) if first >= internal else (second, first)
        row = leaf_point[t, leaf - internal]
        return set_union(box_min, box_max, node, store, store, row, box_min, box_max, np.int64(inner))
    return set_union(box_min, box_max, node, box_min, box_max, np.int64(first), box_min, box_max, np.int64(second))


@njit(**INLINE)
def set_union(box_min, box_max, node, first_low, first_high, first_row, second_low, second_high, second_row):
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


@njit(**JIT, fastmath={"reassoc", "nsz"})
def box_gap_fast(tr, t, node, point):
    """:func:`box_gap` of internal ``node`` of tree ``t`` of ``tr`` (a TreeArrays), summed in any order.

    Within ``dim`` rounding errors of :func:`box_gap`, and zero exactly
    where it is zero. Letting the compiler reassociate the sum vectorises
    it: several times faster at 48 dimensions, where :func:`box_gap`'s
    additions wait on each other. Scores sum their gaps this way;
    insertion decides with it where the decision is clear by a wide
    margin, and sums in order where a value is kept
    (:func:`rcforest._update.find_place`). Compiled as a call of its own,
    so that the reassociation stays with it. Unlike the inlined helpers
    here it takes the whole TreeArrays: called, not inlined, that measured
    faster than passing the two box arrays (a batch score 160 against
    110 ns per tree and point at 4-D).
    """
    gap = 0.0
    for i in range(point.shape[0]):
        gap += max(tr.box_min[t, node, i] - point[i], 0.0) + max(point[i] - tr.box_max[t, node, i], 0.0)
    return gap


@njit(**INLINE)
def cut_in_gap(low, high, row, point, r):
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
    last_end = 0.0  # the end of the last gap passed: the cut is at most the float below it
    for i in range(point.shape[0]):
        lo = np.float64(low[row, i])
        hi = np.float64(high[row, i])
        p = point[i]
        if p < lo:
            # Cuts in [p, lo) put the point left, the box right.
            last_dim, last_end = i, lo
            if r < lo - p:
                return i, min(p + r, np.nextafter(lo, -np.inf))
            r -= lo - p
        elif p > hi:
            # Cuts in [hi, p) put the box left, the point right.
            last_dim, last_end = i, p
            if r < p - hi:
                return i, min(hi + r, np.nextafter(p, -np.inf))
            r -= p - hi
    if last_dim == -1:
        return last_dim, 0.0
    return last_dim, np.nextafter(last_end, -np.inf)  # r ran past the end by rounding
