"""Range sums of eight boxes at once, each summed in order, as LLVM vectors.

A box's range sum is a chain of additions in dimension order (the bits of
:func:`rcforest._box.range_of`): at 48 dimensions, 48 additions each
waiting on the last. Eight boxes' chains run side by side here, one
vector addition per dimension for all eight, so that they take about the
time of one. Each box's sides are read as contiguous vectors of
:data:`WIDTH` dimensions and turned into one vector per dimension (a
transposition by shuffles), so the sums are the same to the bit as eight
sums taken one after another.
"""

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from rcforest._jit import INLINE, JIT, njit

__all__ = ["BOXES", "WIDTH", "ranges_of_eight"]

BOXES = 8
"""Boxes whose range sums :func:`ranges_of_eight` takes together."""

WIDTH = 8
"""Dimensions read at a time from each box."""

_I32, _I64, _F32, _F64 = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.DoubleType()


def _shuffle(builder, first, second, mask):
    """The elements of ``first`` and ``second`` (numbered on from ``first``'s) at ``mask``."""
    return builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(_I32, len(mask)), [_I32(i) for i in mask]))


def _transpose(builder, rows):
    """Eight vectors of eight, transposed: element ``j`` of vector ``k`` is element ``k`` of ``rows[j]``."""
    pairs = []
    for j in range(0, BOXES, 2):  # (r[j][0], r[j+1][0], r[j][1], r[j+1][1], ...)
        pairs.append(_shuffle(builder, rows[j], rows[j + 1], [0, 8, 1, 9, 2, 10, 3, 11]))
        pairs.append(_shuffle(builder, rows[j], rows[j + 1], [4, 12, 5, 13, 6, 14, 7, 15]))
    quads = []  # quads[q][h]: boxes 4q..4q+3 at dimensions 2h, 2h+1
    for q in range(2):
        low, high = pairs[4 * q : 4 * q + 2], pairs[4 * q + 2 : 4 * q + 4]
        quad = []
        for half in range(2):
            quad.append(_shuffle(builder, low[half], high[half], [0, 1, 8, 9, 2, 3, 10, 11]))
            quad.append(_shuffle(builder, low[half], high[half], [4, 5, 12, 13, 6, 7, 14, 15]))
        quads.append(quad)
    columns = []
    for h in range(4):
        columns.append(_shuffle(builder, quads[0][h], quads[1][h], [0, 1, 2, 3, 8, 9, 10, 11]))
        columns.append(_shuffle(builder, quads[0][h], quads[1][h], [4, 5, 6, 7, 12, 13, 14, 15]))
    return columns


@intrinsic
def _leading_sums(typingctx, box_min, box_max, nodes):
    """Each box's sum over its first ``WIDTH * (dim // WIDTH)`` dimensions, in order (a tuple of eight floats).

    ``box_min`` and ``box_max`` are one tree's C-contiguous float32 arrays
    of shape ``(nodes, dim)``; ``nodes`` is a tuple of eight int64 rows.
    """
    good = all(
        isinstance(kind, types.Array) and kind.ndim == 2 and kind.layout == "C" and kind.dtype == types.float32
        for kind in (box_min, box_max)
    )
    if not good or not (isinstance(nodes, types.UniTuple) and len(nodes) == BOXES):
        return None
    if not isinstance(nodes.dtype, types.Integer):
        return None
    result = types.UniTuple(types.float64, BOXES)

    def codegen(context, builder, signature, args):
        low_kind, high_kind, nodes_kind = signature.args
        low = context.make_array(low_kind)(context, builder, args[0])
        high = context.make_array(high_kind)(context, builder, args[1])
        dim = cgutils.unpack_tuple(builder, low.shape)[1]
        row_bytes = cgutils.unpack_tuple(builder, low.strides)[0]
        given = cgutils.unpack_tuple(builder, args[2])
        rows = [context.cast(builder, value, nodes_kind.dtype, types.int64) for value in given]
        floats = ir.VectorType(_F32, WIDTH)
        doubles = ir.VectorType(_F64, WIDTH)

        def starts(array):
            base = builder.ptrtoint(array.data, _I64)
            return [builder.add(base, builder.mul(row, row_bytes)) for row in rows]

        low_rows, high_rows = starts(low), starts(high)
        total = cgutils.alloca_once_value(builder, ir.Constant(ir.VectorType(_F64, BOXES), [_F64(0.0)] * BOXES))
        with cgutils.for_range(builder, builder.udiv(dim, _I64(WIDTH))) as loop:
            offset = builder.mul(loop.index, _I64(WIDTH * 4))
            sides = []

            def side(start):
                address = builder.inttoptr(builder.add(start, offset), floats.as_pointer())
                return builder.fpext(builder.load(address, align=4), doubles)

            for j in range(BOXES):
                sides.append(builder.fsub(side(high_rows[j]), side(low_rows[j])))  # in doubles, as range_of
            sum_ = builder.load(total)
            for column in _transpose(builder, sides):
                sum_ = builder.fadd(sum_, column)  # dimension after dimension, as range_of adds
            builder.store(sum_, total)
        sum_ = builder.load(total)
        values = [builder.extract_element(sum_, _I32(j)) for j in range(BOXES)]
        return context.make_tuple(builder, result, values)

    return result(box_min, box_max, nodes), codegen


@njit(**JIT, _nrt=False)
def _leading_sums_call(box_min, box_max, nodes):
    """:func:`_leading_sums` as a call of its own, without reference counts.

    Inlined into a tree walk's loop, its vectors slowed every level of the walk.
    """
    return _leading_sums(box_min, box_max, nodes)


@njit(**INLINE)
def ranges_of_eight(box_min, box_max, range_sum, t, nodes):
    """Set the range sums of tree ``t``'s eight internal ``nodes``, each summed in dimension order.

    Parameters
    ----------
    box_min, box_max : ndarray of float32, shape (internal, dim)
        Tree ``t``'s boxes.
    range_sum : ndarray of float64, shape (num_trees, internal)
    t : int
    nodes : tuple of eight int64
        Rows of ``box_min`` (repeats allowed: a node repeated gets the same sum).
    """
    dim = box_min.shape[1]
    lead = dim - dim % WIDTH
    if lead:
        a, b, c, d, e, f, g, h = _leading_sums_call(box_min, box_max, nodes)
    else:
        a = b = c = d = e = f = g = h = 0.0
    first, second, third, fourth, fifth, sixth, seventh, eighth = nodes
    for i in range(lead, dim):  # the last dimensions, fewer than WIDTH: eight chains side by side
        a += np.float64(box_max[first, i]) - np.float64(box_min[first, i])
        b += np.float64(box_max[second, i]) - np.float64(box_min[second, i])
        c += np.float64(box_max[third, i]) - np.float64(box_min[third, i])
        d += np.float64(box_max[fourth, i]) - np.float64(box_min[fourth, i])
        e += np.float64(box_max[fifth, i]) - np.float64(box_min[fifth, i])
        f += np.float64(box_max[sixth, i]) - np.float64(box_min[sixth, i])
        g += np.float64(box_max[seventh, i]) - np.float64(box_min[seventh, i])
        h += np.float64(box_max[eighth, i]) - np.float64(box_min[eighth, i])
    range_sum[t, first] = a
    range_sum[t, second] = b
    range_sum[t, third] = c
    range_sum[t, fourth] = d
    range_sum[t, fifth] = e
    range_sum[t, sixth] = f
    range_sum[t, seventh] = g
    range_sum[t, eighth] = h
