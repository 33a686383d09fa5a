"""A kernel's compiled function for a :class:`rcforest._reading.Reader`'s type: calls that skip numba's typing.

numba's dispatcher types every argument of every call; a
:class:`~rcforest._reading.Reader` alone takes about 1 µs, as long as a
one-row query's Python path. The compiled function of a signature takes
the same arguments, read as its types, so a one-row query looks it up
once per reader type and calls it directly.
"""

from numba.core import types

__all__ = ["ARRAY_1D", "ARRAY_2D", "ARRAY_3D", "for_reader"]

ARRAY_1D = types.float64[::1]
"""A C-ordered float64 vector, as numba types one."""
ARRAY_2D = types.float64[:, ::1]
"""A C-ordered float64 matrix."""
ARRAY_3D = types.float64[:, :, ::1]
"""A C-ordered three-dimensional float64 array."""

_FOUND = {}


def for_reader(kernel, reader, *others):
    """``kernel`` compiled for ``reader``'s type followed by the types ``others``.

    Parameters
    ----------
    kernel : numba dispatcher
        A jitted function whose first argument is a Reader.
    reader : rcforest._reading.Reader
    *others : numba types
        The types of the other arguments, the same at every call of
        ``kernel`` through here (the look-up is by kernel and reader type):
        the caller must pass exactly such arguments (C-ordered float64
        arrays of those dimensions, for the ``ARRAY_*`` types).

    Returns
    -------
    callable
        The compiled function (loaded from numba's cache, or compiled, the
        first time).
    """
    kind = reader._numba_type_
    key = (kernel, kind)
    found = _FOUND.get(key)
    if found is None:
        signature = (kind, *others)
        compiled = kernel.overloads.get(signature)  # a look-up; compile() takes numba's compiler lock first
        found = _FOUND[key] = kernel.compile(signature) if compiled is None else compiled.entry_point
    return found
