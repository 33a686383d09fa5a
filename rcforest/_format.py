"""rcforest's files: a zip of numpy arrays with a JSON header, no pickle.

The archive holds ``rcforest.json`` (the kind of file and its version, the
library version and the parameters) and one ``.npy`` member per array.
Forests (kind ``rcforest-model``) and streaming detectors
(``rcforest-thresholded``) use it. Writing is atomic: a failed save keeps
the previous file.

Reading is defensive: it opens only a regular file no larger than its
decompression budget allows (never a pipe, a device or a folder, which
could block or never end); it accepts only plain numeric ``.npy`` members,
so a file cannot run code; it decompresses a member only when asked for it
and only after checking its declared dtype, shape and size, within a total
budget, so a small file cannot exhaust memory. A file that is not a zip,
lacks the header, has another kind or version, or holds a damaged member
is refused with a ``ValueError``.
"""

import contextlib
import json
import math
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

from rcforest._core import memory_bytes
from rcforest._files import atomic_write, open_regular
from rcforest._version import __version__

__all__ = []

FORMAT_NAME = "rcforest-model"
_HEADER = "rcforest.json"
MAX_HEADER_BYTES = 1 << 24
"""Largest JSON header read (16 MiB)."""
MAX_MEMBERS = 4096
"""Most members a file may hold: a model holds about twenty."""


def max_file_bytes(budget):
    """The largest file whose arrays can decompress within ``budget`` bytes.

    Arrays are stored deflated or as they are; deflate adds at most 5
    bytes per 16 KiB block to data it cannot compress, and each member
    adds a few hundred bytes of zip headers: a file beyond this size holds
    more than a reader of that budget could load, and is refused before
    it is read.

    Parameters
    ----------
    budget : int
        Most bytes of array data to decompress.

    Returns
    -------
    int
    """
    return budget + budget // 1024 + MAX_HEADER_BYTES + MAX_MEMBERS * 1024


@contextlib.contextmanager
def _archive(path, limit):
    """The zip archive at ``path``, once it is known to be a regular file of at most ``limit`` bytes."""
    with open_regular(path, limit, "rcforest file") as stream, zipfile.ZipFile(stream) as archive:
        yield archive


def _label(kind):
    """``"rcforest-model"`` -> ``"model"``, for messages."""
    return kind.removeprefix("rcforest-")


def write(path, params, arrays, version, kind=FORMAT_NAME):
    """Write ``params`` (JSON-serialisable) and ``arrays`` to ``path``, atomically.

    The file is written beside ``path`` under a temporary name, flushed to
    disk and renamed over ``path`` (:func:`rcforest._files.atomic_write`): a
    failed write leaves any previous file at ``path`` intact.

    Parameters
    ----------
    path : str
    params : dict
    arrays : dict of str to ndarray
    version : int
        Version of the layout of ``kind``.
    kind : str
        What the file holds.
    """
    header = {"format": kind, "version": version, "rcforest": __version__, "params": params}
    with atomic_write(path) as stream:
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            # Dated like the array members (zipfile's default of 1980), so that a
            # state saved twice is the same bytes whenever it is saved.
            archive.writestr(zipfile.ZipInfo(_HEADER), json.dumps(header, indent=1), zipfile.ZIP_DEFLATED, 1)
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    _write_npy(member, value)


_WRITE_BYTES = 1 << 20
"""Bytes of an array handed to the compressor (or read back from it) at a time."""


def _write_npy(stream, value):
    """Write ``value`` to ``stream`` as ``np.save`` would, a slice at a time.

    The bytes are those of ``np.save(stream, value, allow_pickle=False)``
    (a version 1.0 header, then the data in C order), streamed through the
    compressor in slices: saving needs no second copy of a large array.
    """
    value = np.ascontiguousarray(value)
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(value))
    data = memoryview(value.reshape(-1)).cast("B")
    for start in range(0, len(data), _WRITE_BYTES):
        stream.write(data[start : start + _WRITE_BYTES])


def _read_into(stream, buffer):
    """Fill ``buffer`` from ``stream`` a slice at a time; return the bytes read.

    Reading needs no second copy of a large array: each slice is
    decompressed and copied into place.
    """
    filled = 0
    while filled < len(buffer):
        data = stream.read(min(_WRITE_BYTES, len(buffer) - filled))
        if not data:
            break
        buffer[filled : filled + len(data)] = data
        filled += len(data)
    return filled


_DAMAGED = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError)
"""What reading a damaged zip member raises."""


class Arrays(Mapping):
    """The ``.npy`` members of a model file, each read only when asked for.

    Reading a member first parses its ``.npy`` header and checks that it
    holds a plain numeric array whose size matches the member's declared
    size, and that the members read so far stay within ``budget`` bytes;
    :meth:`describe` gives a member's dtype and shape without reading its
    data, so a caller can check them first.

    Parameters
    ----------
    path : str
    names : list of str
        Names of the ``.npy`` members (without the suffix).
    budget : int
        Most bytes of array data that reading may decompress in all.
    """

    def __init__(self, path, names, budget):
        self._path = path
        self._names = list(names)
        self._budget = budget
        self._limit = max_file_bytes(budget)

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __contains__(self, name):
        return name in self._names

    def _header(self, archive, name):
        """Open member ``name`` and parse its ``.npy`` header: (stream, dtype, shape)."""
        if name not in self._names:
            raise KeyError(name)
        info = archive.getinfo(f"{name}.npy")
        stream = archive.open(info)
        try:
            major, minor = np.lib.format.read_magic(stream)
            if (major, minor) == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif (major, minor) == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise ValueError(f"npy version {major}.{minor}")
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError) as error:
            stream.close()
            raise ValueError(f"member {name}.npy is not a plain .npy array ({error})") from None
        if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None or fortran:
            stream.close()
            raise ValueError(f"member {name}.npy holds dtype {dtype}, not plain numbers")
        size = math.prod(shape) * dtype.itemsize
        if size != info.file_size - stream.tell():
            stream.close()
            raise ValueError(f"member {name}.npy declares shape {shape} but holds {info.file_size} bytes")
        return stream, dtype, tuple(shape)

    def describe(self, name):
        """The dtype and shape that member ``name`` declares, without reading its data.

        Returns
        -------
        dtype : numpy.dtype
        shape : tuple of int
        """
        try:
            with _archive(self._path, self._limit) as archive:
                stream, dtype, shape = self._header(archive, name)
                stream.close()
        except _DAMAGED as error:
            raise ValueError(f"member {name}.npy is damaged ({type(error).__name__}: {error})") from None
        return dtype, shape

    def __getitem__(self, name):
        try:
            with _archive(self._path, self._limit) as archive:
                stream, dtype, shape = self._header(archive, name)
                with stream:
                    size = math.prod(shape) * dtype.itemsize
                    if size > self._budget:
                        raise ValueError(f"member {name}.npy takes {size} bytes, more than the {self._budget} left")
                    self._budget -= size
                    value = np.empty(shape, dtype)
                    filled = _read_into(stream, memoryview(value.reshape(-1)).cast("B"))
                    stream.read(1)  # reach the end, where the checksum is checked
        except _DAMAGED as error:
            raise ValueError(f"member {name}.npy is damaged ({type(error).__name__}: {error})") from None
        if filled != size:
            raise ValueError(f"member {name}.npy is truncated")
        return value


class Prefixed(Mapping):
    """The arrays of ``arrays`` whose names start with ``prefix``, named without it.

    A view: each array is read only when asked for, through ``arrays``
    (so a model file's :class:`Arrays` keeps its checks and its budget),
    and :meth:`describe` is passed on.

    Parameters
    ----------
    arrays : Arrays
    prefix : str
    """

    def __init__(self, arrays, prefix):
        self._arrays = arrays
        self._prefix = prefix

    def __iter__(self):
        return (name[len(self._prefix) :] for name in self._arrays if name.startswith(self._prefix))

    def __len__(self):
        return sum(1 for _ in self)

    def __contains__(self, name):
        return self._prefix + name in self._arrays

    def __getitem__(self, name):
        return self._arrays[self._prefix + name]

    def describe(self, name):
        """The dtype and shape of array ``name``, as ``arrays.describe`` gives them."""
        return self._arrays.describe(self._prefix + name)


def read(path, versions, kind=FORMAT_NAME, budget=None):
    """Read a file written by :func:`write`.

    Only the header is read here; the arrays are read when asked for (see
    :class:`Arrays`), so members a caller does not use are never
    decompressed.

    Parameters
    ----------
    path : str
    versions : tuple of int
        The layout versions this rcforest reads.
    kind : str
        The kind of file expected.
    budget : int, optional
        Most bytes of array data to decompress; by default, half of this
        machine's memory.

    Returns
    -------
    params : dict
    arrays : Arrays
        A mapping from array names to arrays.
    version : int
        The file's layout version, one of ``versions``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is not a regular file (a folder, a pipe, a device), is
        larger than :func:`max_file_bytes` allows, or is not a file of the
        expected kind and version.
    """
    if budget is None:
        budget = memory_bytes() // 2
    with open_regular(path, max_file_bytes(budget), f"rcforest {_label(kind)} file") as stream:
        try:
            with zipfile.ZipFile(stream) as archive:
                if len(archive.infolist()) > MAX_MEMBERS:
                    raise ValueError(f"it holds {len(archive.infolist())} members, more than {MAX_MEMBERS}")
                info = archive.getinfo(_HEADER)
                if info.file_size > MAX_HEADER_BYTES:
                    raise ValueError(f"its header takes {info.file_size} bytes, more than {MAX_HEADER_BYTES}")
                header = json.loads(archive.read(info))
                names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
            if not isinstance(header, dict) or header.get("format") != kind:
                found = header.get("format") if isinstance(header, dict) else None
                raise ValueError(f"it holds {found!r}, not {kind!r}")
            found = header.get("version")
            if isinstance(found, bool) or found not in versions:
                raise ValueError(
                    f"it uses {kind} format version {found!r}, written by rcforest "
                    f"{header.get('rcforest')!r}; this rcforest reads version {' or '.join(map(str, versions))}: "
                    "install the matching rcforest or refit the model"
                )
            if len(set(names)) != len(names):
                raise ValueError("it holds a member twice")
            params = header["params"]
            if not isinstance(params, dict):
                raise ValueError("its header has no parameters")
        except (*_DAMAGED, KeyError, RecursionError) as error:
            raise ValueError(
                f"{path} is not an rcforest {_label(kind)} file ({type(error).__name__}: {error})"
            ) from None
        except ValueError as error:
            raise ValueError(f"{path} is not a readable rcforest {_label(kind)} file: {error}") from None
    return params, Arrays(path, names, budget), found
