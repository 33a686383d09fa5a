"""How rcforest's kernels are compiled, cached and run.

Every jitted function is made by :func:`njit` with :data:`JIT`
(``@njit(**JIT)``), so the options and the cache live in one place;
:func:`threads` sets the thread count of the parallel kernels for one
call.

A kernel is looked for in the package's prebuilt cache, then in numba's
cache (:mod:`rcforest._kernel_cache`), and compiled only if neither has
it. While compiling rcforest's kernels has taken more than a second, one
line on stderr says what is happening and that it happens once (once per
process; ``RCFOREST_COMPILE_NOTICE=0`` hides it).
"""

import contextlib
import os
import sys
import threading
import time
import types

import numba
from numba.core import event

from rcforest._kernel_cache import KernelCache

__all__ = []

JIT = {"cache": True, "error_model": "numpy"}
"""Options of every kernel: cached on disk; numpy's error model (a division
by zero gives inf or NaN, with no check compiled in)."""

INLINE = {**JIT, "inline": "always"}
"""Options of the small building blocks (generator draws, node bookkeeping,
box gaps, heap sift, reservoir test): numba inlines them into the function
that calls them. Each separately compiled function costs a cold start
about half a second, whatever its size."""

NOTICE_VARIABLE = "RCFOREST_COMPILE_NOTICE"
"""Environment variable that, set to ``0``, hides the compile notice."""

NOTICE_AFTER = 1.0
"""Seconds of compiling after which the notice is written."""

NOTICE = (
    "rcforest: compiling its numba kernels for this machine; this happens once, later runs load them from "
    f"numba's cache ({NOTICE_VARIABLE}=0 hides this line)"
)


def njit(**options):
    """``numba.njit(**options)``, with rcforest's cache when ``cache`` is set.

    Parameters
    ----------
    **options
        numba's options, usually :data:`JIT` or :data:`INLINE`.

    Returns
    -------
    callable
        The decorator.
    """
    caching = options.pop("cache", False)

    def decorate(function):
        dispatcher = numba.njit(**options)(function)
        if caching:
            # numba's dispatcher keeps its cache in ``_cache`` (``enable_caching`` sets numba's own there).
            dispatcher._cache = KernelCache(dispatcher.py_func)
        return dispatcher

    return decorate


def uncounted(kernel):
    """The jitted ``kernel`` compiled again without numba's reference counts, and cached apart from it.

    Kernels that walk trees take the arrays of
    :class:`~rcforest._tree.TreeArrays` from the NamedTuple again and
    again, and counting those references took about half of their time.
    Without them the code is the same, but it cannot allocate: the copy is
    for kernels that allocate nothing (their callers pass any buffers).

    Parameters
    ----------
    kernel : numba dispatcher
        Made by :func:`njit`; the functions it inlines are inlined into the copy.

    Returns
    -------
    numba dispatcher
        Compiled as a call of its own (never inlined), with :data:`JIT`.
    """
    function = kernel.py_func
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__)
    copy.__qualname__ = f"{function.__qualname__}_uncounted"  # names its cache files
    copy.__module__ = function.__module__
    copy.__doc__ = function.__doc__
    return njit(**JIT, _nrt=False)(copy)


class _CompileNotice(event.Listener):
    """Writes :data:`NOTICE` to stderr once rcforest's kernels have been compiling for :data:`NOTICE_AFTER` s.

    The seconds add up over the compiles of a process (a first call often
    compiles a few kernels one after another). numba compiles one function
    at a time, under its compiler lock, so the events nest and never
    interleave. The notice is written at most once per process.
    """

    def __init__(self):
        self._depth = 0
        self._started = None
        self._spent = 0.0
        self._timer = None
        self.shown = False

    def on_start(self, event):
        self._depth += 1
        module = getattr(event.data["dispatcher"].py_func, "__module__", None) or ""
        if self._depth > 1 or not module.startswith("rcforest."):
            return
        self._started = time.perf_counter()
        if not self.shown and os.environ.get(NOTICE_VARIABLE) != "0":
            self._timer = threading.Timer(max(NOTICE_AFTER - self._spent, 0.0), self._show)
            self._timer.daemon = True
            self._timer.start()

    def on_end(self, event):
        self._depth -= 1
        if self._depth > 0 or self._started is None:
            return
        self._spent += time.perf_counter() - self._started
        self._started = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _show(self):
        if not self.shown:
            self.shown = True
            print(NOTICE, file=sys.stderr, flush=True)


_notice = _CompileNotice()
event.register("numba:compile", _notice)


SERIAL_ROWS = 8
"""Below this many rows a call runs on one thread (:func:`threads_for`): waking the others costs more than the work."""


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


def threads_for(n_jobs, num_rows):
    """:func:`threads` for a call on ``num_rows`` rows: ``n_jobs`` threads, or one below :data:`SERIAL_ROWS` rows."""
    return threads(1 if num_rows < SERIAL_ROWS else n_jobs)
