"""rcforest's model file: a zip of numpy arrays with a JSON header, no pickle.

The archive holds ``rcforest.json`` (the format name and version, the
library version and the model's parameters) and one ``.npy`` member per
array. Reading uses ``allow_pickle=False``, so a model file cannot run
code; a file that is not a zip, lacks the header, or has another format
name or version is refused with a ``ValueError``.
"""

import io
import json
import zipfile

import numpy as np

__all__ = []

FORMAT_NAME = "rcforest-model"
FORMAT_VERSION = 1
_HEADER = "rcforest.json"


def write(path, params, arrays):
    """Write ``params`` (JSON-serialisable) and ``arrays`` to ``path``.

    Parameters
    ----------
    path : str
    params : dict
    arrays : dict of str to ndarray
    """
    from rcforest import __version__

    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "rcforest": __version__, "params": params}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(_HEADER, json.dumps(header, indent=1))
        for name, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def read(path):
    """Read a model file written by :func:`write`.

    Parameters
    ----------
    path : str

    Returns
    -------
    params : dict
    arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an rcforest model of a supported version.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            header = json.loads(archive.read(_HEADER))
            if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
                raise ValueError("it has no rcforest header")
            if header.get("version") != FORMAT_VERSION:
                raise ValueError(
                    f"it uses model format version {header.get('version')!r}, written by rcforest "
                    f"{header.get('rcforest')!r}; this rcforest reads version {FORMAT_VERSION}: "
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
        raise ValueError(f"{path} is not an rcforest model file ({error})") from None
    except ValueError as error:
        raise ValueError(f"{path} is not a readable rcforest model: {error}") from None
    return params, arrays
