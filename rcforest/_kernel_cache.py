"""Where a compiled kernel is looked for: the package's prebuilt cache, then numba's cache.

numba compiles a kernel on its first call and, as rcforest asks it to,
keeps the machine code on disk (numba's cache: ``__pycache__`` beside the
module, or ``NUMBA_CACHE_DIR``), so that later processes load it instead
of compiling. rcforest's kernels look in one more place first: the
package's own ``_prebuilt`` folder, which the build of the package fills
(``setup.py`` runs :func:`rcforest.warmup.prebuild` when a wheel is built
or the package is installed from its source, editable or not). A process
with an empty numba cache then loads every kernel instead of compiling
it.

An entry of the prebuilt cache is used only when all of numba's own
checks pass: the same numba version and Python version, the same source
file (a hash of its contents), the same bytecode and argument types, and
the same CPU, by its name and its feature flags (numba's
``codegen.magic_tuple()``). numba checks only the file that defines a
kernel, while a kernel compiles in the functions and constants of other
modules: so both caches also key every entry on the contents of the
package's modules that kernels can draw on (:func:`kernel_sources`), and
an edit to any of them compiles the kernels anew instead of loading
kernels that no longer match the source. On any other machine the kernel is compiled
as before and saved to numba's cache, never to the package. The prebuilt
folder is only read, except by :func:`building`.

The environment variable ``RCFOREST_PREBUILT`` names another folder to
read (or build into), or, set to ``0``, turns the prebuilt cache off.
"""

import contextlib
import functools
import hashlib
import os

from numba.core import caching

__all__ = ["KernelCache", "building", "kernel_sources", "prebuilt_folder"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE_FOLDER = os.path.join(_PACKAGE, "_prebuilt")
_building = None
"""The folder :func:`building` compiles into, or None."""


def prebuilt_folder():
    """The folder of the prebuilt cache, or None when it is turned off.

    Returns
    -------
    str or None
        ``RCFOREST_PREBUILT`` if set (None if it is ``0``), else the
        package's ``_prebuilt`` folder.
    """
    if _building is not None:
        return _building
    chosen = os.environ.get("RCFOREST_PREBUILT", "")
    if chosen == "0":
        return None
    return chosen or _PACKAGE_FOLDER


@contextlib.contextmanager
def building(folder):
    """Within the block, kernels load from and save to ``folder`` only, not numba's cache.

    Parameters
    ----------
    folder : str
        The prebuilt cache to fill (created if missing).
    """
    global _building
    previous, _building = _building, os.path.abspath(folder)
    try:
        yield
    finally:
        _building = previous


@functools.cache
def kernel_sources(package=_PACKAGE):
    """A hash of the modules whose code and constants a kernel can compile in, read once per process.

    They are the package's top-level modules, where the kernels and the
    functions and constants they use live, and any other module that
    mentions numba.

    Parameters
    ----------
    package : str
        The package's folder.

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    for folder, subfolders, names in sorted(os.walk(package)):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        for name in sorted(name for name in names if name.endswith(".py")):
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                text = file.read()
            if folder == package or b"numba" in text or b"njit" in text:
                digest.update(os.path.relpath(path, package).encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


class _FunctionCache(caching.FunctionCache):
    """numba's cache of one kernel, its entries keyed on :func:`kernel_sources` too."""

    def _index_key(self, sig, codegen):
        return (*super()._index_key(sig, codegen), kernel_sources())


class _PrebuiltLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """numba's cache locator for one folder, whatever the path of the source file.

    The source file's stamp is numba's hash of its contents, so a copy of
    the package (a wheel unpacked elsewhere) finds its entries.
    """

    folder = None

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def get_cache_path(self):
        return self.folder

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file) if os.path.exists(py_file) else None


def _prebuilt_cache(py_func, folder):
    """A numba ``FunctionCache`` of ``py_func`` in ``folder``, or None if ``py_func`` has no source file."""
    locator = type("_Locator", (_PrebuiltLocator,), {"folder": folder})
    impl = type("_Impl", (caching.CompileResultCacheImpl,), {"_locator_classes": [locator]})
    cache = type("_Cache", (_FunctionCache,), {"_impl_class": impl})
    try:
        return cache(py_func)
    except RuntimeError:  # numba found no locator: the function has no source file
        return None


class KernelCache:
    """A kernel's cache: the prebuilt one first, then numba's usual one.

    It stands in a numba dispatcher's cache (see :func:`rcforest._jit.njit`).
    Both caches are opened on first use: a process that finds every kernel
    prebuilt never touches numba's cache folder.

    Parameters
    ----------
    py_func : function
        The kernel's Python function.
    """

    def __init__(self, py_func):
        self._py_func = py_func
        self._prebuilt = {}
        self._user = None
        self._enabled = True

    def _prebuilt_in(self, folder):
        if folder not in self._prebuilt:
            self._prebuilt[folder] = _prebuilt_cache(self._py_func, folder)
        return self._prebuilt[folder]

    def _numba_cache(self):
        if self._user is None:
            self._user = _FunctionCache(self._py_func)
            if not self._enabled:
                self._user.disable()
        return self._user

    @property
    def cache_path(self):
        """numba's cache folder of the kernel (as numba's own cache has it)."""
        return self._numba_cache().cache_path

    def enable(self):
        self._enabled = True
        if self._user is not None:
            self._user.enable()

    def disable(self):
        self._enabled = False
        if self._user is not None:
            self._user.disable()

    def flush(self):
        self._numba_cache().flush()

    def load_overload(self, sig, target_context):
        """The compiled kernel for ``sig`` from the prebuilt cache, else numba's; None if neither has it."""
        if not self._enabled:
            return None
        folder = prebuilt_folder()
        prebuilt = self._prebuilt_in(folder) if folder is not None else None
        if prebuilt is not None and (_building is not None or os.path.isdir(folder)):
            found = prebuilt.load_overload(sig, target_context)
            if found is not None or _building is not None:
                return found
        return self._numba_cache().load_overload(sig, target_context)

    def save_overload(self, sig, data):
        """Save a compiled kernel to numba's cache, or to the prebuilt cache while :func:`building`."""
        if not self._enabled:
            return
        if _building is not None:
            prebuilt = self._prebuilt_in(_building)
            if prebuilt is not None:
                prebuilt.save_overload(sig, data)
            return
        self._numba_cache().save_overload(sig, data)
