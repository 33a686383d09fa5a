"""A StructRef's arrays read without numba's reference counts, for a call that holds the StructRef.

numba counts a reference each time a jitted function takes an array out
of a StructRef, and again when it lets it go: two atomic operations per
array. For :class:`rcforest._reading.Reader`'s trees, 22 arrays, that is
about 0.2 us of every one-row reading. :func:`borrowed` gives the same
arrays with no count to keep (their memory-info pointers cleared, as for
an array numba does not own): safe while the StructRef, which holds the
counted references, outlives the call, and the arrays are not kept.
"""

from numba.core import cgutils, types
from numba.experimental import structref
from numba.extending import intrinsic

__all__ = ["borrowed"]


@intrinsic
def borrowed(typingctx, ref, name):
    """Field ``name`` (a literal string) of the StructRef ``ref``: a tuple of arrays, none of them counted.

    The arrays are the field's own (the same data, shapes and strides),
    without the reference the caller would otherwise take and give back.
    """
    if not isinstance(ref, types.StructRef) or not isinstance(name, types.StringLiteral):
        return None
    kind = ref.field_dict.get(name.literal_value)
    if not isinstance(kind, types.BaseTuple) or not all(isinstance(item, types.Array) for item in kind):
        return None

    def codegen(context, builder, signature, args):
        data = structref._Utils(context, builder, signature.args[0]).get_data_struct(args[0])
        value = getattr(data, name.literal_value)
        for i, item in enumerate(kind):
            array = context.make_array(item)(context, builder, builder.extract_value(value, i))
            array.meminfo = cgutils.get_null_value(array.meminfo.type)
            array.parent = cgutils.get_null_value(array.parent.type)
            value = builder.insert_value(value, array._getvalue(), i)
        return value

    return kind(ref, name), codegen
