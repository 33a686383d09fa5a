"""The file where a running ``rcforest aws`` keeps its environment, for ``rcforest aws env``.

The server writes ``<data_dir>/environment.json`` (readable by its user
only) when it starts and removes it when it stops; ``rcforest aws env``
reads it back, and refuses it once that server has stopped.
"""

import contextlib
import json
import os
import tempfile
import urllib.parse

__all__ = ["ENVIRONMENT_FILE", "default_data_dir", "read_environment", "remove_environment", "write_environment"]

ENVIRONMENT_FILE = "environment.json"
"""The file in the data folder where a running server keeps its environment."""


def default_data_dir():
    """The data folder of ``rcforest aws`` without ``--data-dir``: ``~/.cache/rcforest/aws``."""
    return os.path.join(os.path.expanduser("~"), ".cache", "rcforest", "aws")


def write_environment(data_dir, url, environment):
    """Write this process's environment file whole (a temporary file renamed over it), readable by this user only.

    Parameters
    ----------
    data_dir : str
        The server's data folder.
    url : str
        The server's address.
    environment : dict of str to str
        The variables to export.
    """
    record = {"pid": os.getpid(), "url": url, "environment": environment}
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".environment-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.replace(temporary, os.path.join(data_dir, ENVIRONMENT_FILE))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_environment(data_dir, url):
    """Remove the environment file if this process at ``url`` wrote it (another server may have started since)."""
    path = os.path.join(data_dir, ENVIRONMENT_FILE)
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
        if record.get("pid") == os.getpid() and record.get("url") == url:
            os.unlink(path)


def read_environment(data_dir=None):
    """The environment of the server running on ``data_dir``, as :meth:`AwsServer.environment` gives it.

    Parameters
    ----------
    data_dir : str, optional
        The server's ``--data-dir``; the default folder when None.

    Returns
    -------
    dict of str to str

    Raises
    ------
    ValueError
        When no server is running on that folder.
    """
    folder = os.path.abspath(data_dir or default_data_dir())
    path = os.path.join(folder, ENVIRONMENT_FILE)
    advice = "start one with: rcforest aws" + (f" --data-dir {folder}" if data_dir else "")
    try:
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
        pid, url, environment = record["pid"], record["url"], record["environment"]
    except FileNotFoundError:
        raise ValueError(f"no rcforest aws is running on the data folder {folder}; {advice}") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"cannot read {path}: {error}; {advice}") from None
    if not _answers(pid, url):
        raise ValueError(f"the rcforest aws that ran on the data folder {folder} ({url}) has stopped; {advice}")
    return {str(name): str(value) for name, value in environment.items()}


def _answers(pid, url):
    """Whether process ``pid`` lives and something accepts connections at ``url``."""
    import socket

    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    address = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((address.hostname, address.port), timeout=2):
            return True
    except (OSError, ValueError):
        return False
