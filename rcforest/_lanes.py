"""Eight walks down the trees at once, one level per call, as LLVM vector gathers.

:func:`step_lanes` is an intrinsic: numba has no vector gathers of its own,
and eight dependent walks (eight trees of one reading, or eight rows down
one tree) overlap their loads only when one instruction fetches a level for
all of them. The comparison and the child taken are those of
:func:`rcforest._score._child`, so the walks, and every score, are the same
to the bit as one walk at a time.

Walks that share one narrow point (a reading's trees, at most
:data:`NARROW` values) take the point's value in each walk's cut dimension
from registers, by a few selects, instead of a second gather that waits on
the gather of the cut dimensions: a reading's 4-D walks down measured 10%
faster, its whole score 6% (``benchmarks/README.md``, issue 23).
"""

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["LANES", "step_lanes"]

LANES = 8
"""Walks taken down together: rows down one tree, or one reading's trees (see :mod:`rcforest._score`)."""

_I1, _I8, _I32, _I64, _F64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64), ir.DoubleType()


def _vector(kind):
    """The LLVM vector of :data:`LANES` values of ``kind``."""
    return ir.VectorType(kind, LANES)


def _splat(builder, value, kind=_I64):
    """A vector of :data:`LANES` copies of ``value``, of LLVM type ``kind``."""
    vector = ir.Constant(_vector(kind), ir.Undefined)
    for j in range(LANES):
        vector = builder.insert_element(vector, value, _I32(j))
    return vector


def _addresses(builder, array, kind, first, second, element):
    """Vector of the addresses of ``array[first[j], second[j]]`` (a 2-D array of type ``kind``; int64 indices).

    In a C-contiguous array the second index's stride is the item's size,
    a constant: a multiplication by a variable stride, on the path from one
    level's node to the next, would cost a vector multiplication's latency.
    """
    strides = cgutils.unpack_tuple(builder, array.strides)
    inner = _I64(kind.dtype.bitwidth // 8) if kind.layout == "C" else strides[1]
    offsets = builder.add(builder.mul(first, _splat(builder, strides[0])), builder.mul(second, _splat(builder, inner)))
    base = _splat(builder, builder.ptrtoint(array.data, _I64))
    return builder.inttoptr(builder.add(base, offsets), _vector(element.as_pointer()))


def _gather(builder, addresses, mask, element):
    """The values at ``addresses`` where ``mask`` is set (zero elsewhere, and nothing read there)."""
    name = "llvm.masked.gather.v8%s.v8p0" % ("f64" if element == _F64 else "i32")
    kind = ir.FunctionType(_vector(element), [_vector(element.as_pointer()), _I32, _vector(_I1), _vector(element)])
    align = 8 if element == _F64 else 4
    function = cgutils.get_or_insert_function(builder.module, kind, name)
    return builder.call(function, [addresses, _I32(align), mask, _vector(element)(None)])


def _scatter(builder, values, addresses, mask):
    """Write the int32 ``values`` to ``addresses`` where ``mask`` is set."""
    kind = ir.FunctionType(ir.VoidType(), [_vector(_I32), _vector(_I32.as_pointer()), _I32, _vector(_I1)])
    function = cgutils.get_or_insert_function(builder.module, kind, "llvm.masked.scatter.v8i32.v8p0")
    builder.call(function, [values, addresses, _I32(4), mask])


NARROW = (4, 8)
"""Widths of a point shared by all walks whose values :func:`_point_values` picks by selects, not a gather."""


def _picked(builder, values, dim):
    """Vector of ``values[dim[j]]``: selects on the bits of the int64 vector ``dim`` (``len(values)`` a power of 2)."""
    level = [_splat(builder, value, _F64) for value in values]
    bit = 0
    while len(level) > 1:
        mask = _splat(builder, _I64(1 << bit))
        odd = builder.icmp_signed("!=", builder.and_(dim, mask), _splat(builder, _I64(0)))
        level = [builder.select(odd, level[2 * k + 1], level[2 * k]) for k in range(len(level) // 2)]
        bit += 1
    return level[0]


def _point_values(context, builder, points, kind, row, dim, inner, first_row, row_step):
    """Vector of ``points[row[j], dim[j]]`` where ``inner`` is set (anything elsewhere).

    When every walk reads one row (``row_step`` 0) of at most ``NARROW[-1]``
    values, the row's values are loaded once (the last repeated up to the
    tree's width) and each walk's is picked by :func:`_picked`; else one
    masked gather. The value is the same either way.
    """
    width = cgutils.unpack_tuple(builder, points.shape)[1]
    shared = builder.icmp_signed("==", row_step, _I64(0))
    done = builder.append_basic_block("point_values.done")
    incoming = []
    for narrow in NARROW:
        fits = builder.and_(shared, builder.icmp_signed("<=", width, _I64(narrow)))
        with builder.if_then(fits, likely=True):
            last = builder.sub(width, _I64(1))
            values = []
            for i in range(narrow):
                at = builder.select(builder.icmp_signed("<", _I64(i), width), _I64(i), last)
                values.append(builder.load(cgutils.get_item_pointer(context, builder, kind, points, [first_row, at])))
            incoming.append((_picked(builder, values, dim), builder.block))
            builder.branch(done)
    incoming.append((_gather(builder, _addresses(builder, points, kind, row, dim, _F64), inner, _F64), builder.block))
    builder.branch(done)
    builder.position_at_end(done)
    value = builder.phi(_vector(_F64))
    for vector, block in incoming:
        value.add_incoming(vector, block)
    return value


def _contiguous_int64(kind):
    return isinstance(kind, types.Array) and kind.layout == "C" and kind.dtype == types.int64


@intrinsic
def step_lanes(typingctx, tr, first_tree, tree_step, points, first_row, row_step, count, node, depth, path, level):
    """One level down for :data:`LANES` walks at once, as vectors; returns whether a walk is still above a leaf.

    Walk ``j`` (``j < count``) is at ``node[j]`` of tree
    ``first_tree + j * tree_step``, with row ``first_row + j * row_step``
    of ``points``. A walk at an internal node records it in
    ``path[j, level]``, takes :func:`rcforest._score._child`'s step (the same comparison,
    ``x > cut``, and the child taken by arithmetic) and deepens by one; a
    walk at a leaf, stopped (``-1``) or past ``count`` stays as it is and
    reads nothing. ``node`` and ``depth`` are contiguous int64 arrays of
    :data:`LANES` entries or more. The eight walks' children and cuts are
    each one masked gather (an instruction on machines with AVX2 or
    AVX-512, a loop of loads elsewhere), and so are their point values but
    for a shared narrow point (:func:`_point_values`): a level costs a few
    instructions for all walks, not a few dozen for each.
    """
    if not (_contiguous_int64(node) and _contiguous_int64(depth)):
        return None

    def codegen(context, builder, signature, args):
        kinds = signature.args
        (first_tree_, tree_step_, first_row_, row_step_, count_, level_) = (
            context.cast(builder, args[i], kinds[i], types.int64) for i in (1, 2, 4, 5, 6, 10)
        )

        def array(i, name=None):
            """Argument ``i``, or the field ``name`` of the TreeArrays, and its type."""
            if name is None:
                return context.make_array(kinds[i])(context, builder, args[i]), kinds[i]
            at = kinds[0].fields.index(name)
            kind = kinds[0][at]
            return context.make_array(kind)(context, builder, builder.extract_value(args[0], at)), kind

        def lanes_of(i):
            return builder.bitcast(array(i)[0].data, _vector(_I64).as_pointer())

        internal = cgutils.unpack_tuple(builder, array(0, "left")[0].shape)[1]
        lane = ir.Constant(_vector(_I64), [_I64(j) for j in range(LANES)])
        zero = ir.Constant(_vector(_I64), [_I64(0)] * LANES)
        node_at, depth_at = lanes_of(7), lanes_of(8)
        here = builder.load(node_at, align=8)
        live = builder.icmp_signed("<", lane, _splat(builder, count_))
        inner = builder.and_(
            builder.icmp_signed(">=", here, zero), builder.icmp_signed("<", here, _splat(builder, internal))
        )
        inner = builder.and_(inner, live)
        at = builder.select(inner, here, zero)
        # A lane past ``count`` reads nothing: its tree and row are the first walk's.
        tree = builder.select(live, builder.mul(lane, _splat(builder, tree_step_)), zero)
        tree = builder.add(_splat(builder, first_tree_), tree)
        row = builder.select(live, builder.mul(lane, _splat(builder, row_step_)), zero)
        row = builder.add(_splat(builder, first_row_), row)
        left = _gather(builder, _addresses(builder, *array(0, "left"), tree, at, _I32), inner, _I32)
        right = _gather(builder, _addresses(builder, *array(0, "right"), tree, at, _I32), inner, _I32)
        dim = _gather(builder, _addresses(builder, *array(0, "cut_dim"), tree, at, _I32), inner, _I32)
        cut = _gather(builder, _addresses(builder, *array(0, "cut_value"), tree, at, _F64), inner, _F64)
        dim = builder.sext(dim, _vector(_I64))
        value = _point_values(context, builder, *array(3), row, dim, inner, first_row_, row_step_)
        side = builder.zext(builder.fcmp_ordered(">", value, cut), _vector(_I32))
        child = builder.sext(builder.add(left, builder.mul(side, builder.sub(right, left))), _vector(_I64))
        there = builder.select(inner, child, here)
        builder.store(there, node_at, align=8)
        deeper = builder.add(builder.load(depth_at, align=8), builder.zext(inner, _vector(_I64)))
        builder.store(deeper, depth_at, align=8)
        slots = _addresses(builder, *array(9), lane, _splat(builder, level_), _I32)
        _scatter(builder, builder.trunc(here, _vector(_I32)), slots, inner)
        above = builder.and_(
            builder.icmp_signed(">=", there, zero), builder.icmp_signed("<", there, _splat(builder, internal))
        )
        return builder.icmp_unsigned("!=", builder.bitcast(builder.and_(above, live), _I8), _I8(0))

    signature = types.boolean(tr, first_tree, tree_step, points, first_row, row_step, count, node, depth, path, level)
    return signature, codegen
