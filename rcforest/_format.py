"""rcforest's files: a zip of numpy arrays with a JSON header, no pickle.

The archive holds ``rcforest.json`` (the kind of file and its version, the
library version and the parameters) and one ``.npy`` member per array.
Forests (kind ``rcforest-model``) and streaming detectors
(``rcforest-thresholded``) use it. Reading uses ``allow_pickle=False``, so
a file cannot run code; a file that is not a zip, lacks the header, or has
another kind or version is refused with a ``ValueError``.
"""

import io
import json
import zipfile

import numpy as np

from rcforest._version import __version__

__all__ = []

FORMAT_NAME = "rcforest-model"
FORMAT_VERSION = 1
_HEADER = "rcforest.json"


def _label(kind):
    """``"rcforest-model"`` -> ``"model"``, for messages."""
    return kind.removeprefix("rcforest-")


def write(path, params, arrays, kind=FORMAT_NAME, version=FORMAT_VERSION):
    """Write ``params`` (JSON-serialisable) and ``arrays`` to ``path``.

    Parameters
    ----------
    path : str
    params : dict
    arrays : dict of str to ndarray
    kind : str
        What the file holds.
    version : int
        Version of that kind's layout.
    """
    header = {"format": kind, "version": version, "rcforest": __version__, "params": params}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(_HEADER, json.dumps(header, indent=1))
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def read(path, kind=FORMAT_NAME, version=FORMAT_VERSION):
    """Read a file written by :func:`write`.

    Parameters
    ----------
    path : str
    kind : str
        The kind of file expected.
    version : int
        The layout version this rcforest reads.

    Returns
    -------
    params : dict
    arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not of the expected kind and version.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(archive.read(_HEADER))
            if not isinstance(header, dict) or header.get("format") != kind:
                found = header.get("format") if isinstance(header, dict) else None
                raise ValueError(f"it holds {found!r}, not {kind!r}")
            if header.get("version") != version:
                raise ValueError(
                    f"it uses {kind} format version {header.get('version')!r}, written by rcforest "
                    f"{header.get('rcforest')!r}; this rcforest reads version {version}: "
                    "install the matching rcforest or refit the model"
                )
            arrays = {}
            for name in archive.namelist():
                if name.endswith(".npy"):
                    arrays[name[:-4]] = np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            params = header["params"]
            if not isinstance(params, dict):
                raise ValueError("its header has no parameters")
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not an rcforest {_label(kind)} file ({error})") from None
    except ValueError as error:
        raise ValueError(f"{path} is not a readable rcforest {_label(kind)} file: {error}") from None
    return params, arrays
