"""How rcforest's kernels are compiled and run.

Every jitted function takes :data:`JIT` (``@njit(**JIT)``), so the options
live in one place; :func:`threads` sets the thread count of the parallel
kernels for one call.
"""

import contextlib

import numba

__all__ = []

JIT = {"cache": True, "error_model": "numpy"}
"""Options of every kernel: cached on disk; numpy's error model (a division
by zero gives inf or NaN, with no check compiled in)."""

INLINE = {**JIT, "inline": "always"}
"""Options of the small building blocks (generator draws, node bookkeeping,
box gaps, heap sift, reservoir test): numba inlines them into the function
that calls them. Each separately compiled function costs a cold start
about half a second, whatever its size."""


@contextlib.contextmanager
def threads(count):
    """Run the parallel kernels called inside the block on ``count`` threads.

    Parameters
    ----------
    count : int or None
        Thread count, capped at numba's pool size; None leaves numba's
        setting (all cores) unchanged.
    """
    if count is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
