"""The model artefact of the Random Cut Forest algorithm, as training writes it and hosting reads it.

Training writes the forest to ``model.rcf`` in the model directory
(``/opt/ml/model`` in a container). A SageMaker training job uploads that
directory as ``model.tar.gz``; a model's ``ModelDataUrl`` points at it, and
an endpoint or a transform job unpacks it before serving.
"""

import io
import os
import shutil
import tarfile
import tempfile

from rcforest._core import memory_bytes
from rcforest._files import read_regular
from rcforest._fitted import load_fitted
from rcforest._format import max_file_bytes

__all__ = ["MODEL_ARCHIVE", "MODEL_FILE", "load_model", "pack_model", "unpack_model"]

MODEL_FILE = "model.rcf"
MODEL_ARCHIVE = "model.tar.gz"


def load_model(path):
    """Load a model file, the model in a model directory such as ``/opt/ml/model``, or a ``model.tar.gz``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    rcforest.Forest

    Raises
    ------
    FileNotFoundError
        If there is no model at ``path``.
    ValueError
        If the file is not a valid rcforest model or holds no data.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        candidates = sorted(name for name in os.listdir(path) if name.endswith(".rcf"))
        if MODEL_FILE in candidates:
            candidates = [MODEL_FILE]
        if len(candidates) != 1:
            found = candidates or "none"
            raise FileNotFoundError(f"{path} must hold one .rcf model file ({MODEL_FILE}), found {found}")
        path = os.path.join(path, candidates[0])
    elif path.endswith((".tar.gz", ".tgz")) and os.path.lexists(path):
        data = read_regular(path, _max_model_bytes(), "model archive")
        with tempfile.TemporaryDirectory(prefix="rcforest-model-") as directory:
            return load_fitted(unpack_model(data, directory))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model at {path}")
    return load_fitted(path)


def _max_model_bytes():
    """The largest model file a reader of half this machine's memory could load (:func:`max_file_bytes`)."""
    return max_file_bytes(memory_bytes() // 2)


def pack_model(model_dir):
    """Return the bytes of ``model.tar.gz`` holding the files of a model directory.

    Parameters
    ----------
    model_dir : str or os.PathLike

    Returns
    -------
    bytes
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in sorted(os.listdir(model_dir)):
            archive.add(os.path.join(model_dir, name), arcname=name)
    return buffer.getvalue()


def unpack_model(data, directory):
    """Extract the model file of a ``model.tar.gz`` into ``directory``; return its path.

    Parameters
    ----------
    data : bytes
        The archive.
    directory : str or os.PathLike

    Returns
    -------
    str
        Path of the extracted ``.rcf`` file.

    Raises
    ------
    ValueError
        If ``data`` is not a gzipped tar archive holding one ``.rcf`` file,
        or that file is larger than a model this machine could load.
    """
    limit = _max_model_bytes()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".rcf")]
            if MODEL_FILE in {os.path.basename(m.name) for m in members}:
                members = [m for m in members if os.path.basename(m.name) == MODEL_FILE]
            if len(members) != 1:
                names = [m.name for m in members]
                raise ValueError(f"the model archive must hold one .rcf file ({MODEL_FILE}), found {names or 'none'}")
            if members[0].size > limit:
                raise ValueError(
                    f"its model file takes {members[0].size} bytes, more than the {limit} a model may take"
                )
            source = archive.extractfile(members[0])
            target = os.path.join(os.fspath(directory), MODEL_FILE)
            with open(target, "wb") as file:
                shutil.copyfileobj(source, file)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ValueError(f"the model artefact is not a model.tar.gz: {error}") from None
    return target
