"""Writing files so that a failed write never destroys the previous one."""

import contextlib
import os
import tempfile

__all__ = []


def _umask():
    """The process's file-creation mask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path):
    """Open a binary stream whose content replaces ``path`` only once fully written.

    The stream is a temporary file in ``path``'s folder. When the block ends
    without an error the file is flushed, synced to disk and renamed over
    ``path``; when it raises, the temporary file is removed and ``path`` is
    left as it was.

    Parameters
    ----------
    path : str or os.PathLike

    Yields
    ------
    file object
        Open for binary writing.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file (a device or a pipe); give a file name")
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder):
    """Make a rename in ``folder`` durable, where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
