"""Files: written so that a failed write never destroys the previous one, read only when they are regular files."""

import contextlib
import os
import stat
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
    left as it was. A symbolic link at ``path`` is replaced, never followed.

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
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise ValueError(f"{path} is {_kind(mode)}, not a regular file; give a file name")
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


def _kind(mode):
    """What a file that is not regular is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _check_regular(path, status, limit, what):
    """Raise ``ValueError`` unless ``status`` is a regular file's of at most ``limit`` bytes."""
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"{what} {path} is {_kind(status.st_mode)}, not a regular file; give the path of a file")
    if limit is not None and status.st_size > limit:
        raise ValueError(
            f"{what} {path} takes {status.st_size} bytes, more than the {limit} bytes such a file may take"
        )


def open_regular(path, limit=None, what="file"):
    """Open a regular file for binary reading, refusing anything else before it is read.

    A folder, a pipe, a device (``/dev/zero``) or a socket is refused from
    its ``os.stat``, before it is opened, so that reading never blocks or
    runs without end; the file is then opened without blocking and checked
    again (by ``os.fstat``), so that it cannot be swapped in between. A
    file larger than ``limit`` bytes is refused too.

    Parameters
    ----------
    path : str or os.PathLike
    limit : int, optional
        Most bytes the file may hold.
    what : str
        What the file is, for messages ("model file").

    Returns
    -------
    file object
        Open for binary reading.

    Raises
    ------
    FileNotFoundError
        If there is nothing at ``path``.
    ValueError
        If ``path`` is not a regular file, or is larger than ``limit``.
    """
    path = os.fspath(path)
    _check_regular(path, os.stat(path), limit, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    try:
        _check_regular(path, os.fstat(descriptor), limit, what)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_regular(path, limit, what="file"):
    """The bytes of a regular file of at most ``limit`` bytes (see :func:`open_regular`).

    At most ``limit + 1`` bytes are read, so a file that grows while it is
    read is refused as well.

    Parameters
    ----------
    path : str or os.PathLike
    limit : int
    what : str

    Returns
    -------
    bytes
    """
    with open_regular(path, limit, what) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} {os.fspath(path)} holds more than {limit} bytes")
    return data


def real_folder(path, what="folder"):
    """Make the folder ``path`` if needed and return it; refuse it if it is a symbolic link or not a folder.

    For writing where a link could send the files elsewhere: the check
    uses ``os.lstat``, which does not follow a link. Only the last
    component is checked; the folders above it are the caller's.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the folder is, for messages.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``path`` is a symbolic link or something other than a folder.
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        os.makedirs(path, exist_ok=True)
    mode = os.lstat(path).st_mode
    if not stat.S_ISDIR(mode):
        raise ValueError(f"{what} {path} is {_kind(mode)}, not a folder; rcforest writes only into a real folder")
    return path
