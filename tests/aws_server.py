"""``python -m rcforest aws`` in a child process, for the tests that talk to it as users do."""

import contextlib
import os
import queue
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import processes

__all__ = ["CLEARED", "Server", "exported"]

REPO = Path(__file__).resolve().parents[1]
# Settings the server's environment must not take from the caller's.
CLEARED = ("AWS_ENDPOINT_URL", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "AWS_CA_BUNDLE")


class Server:
    """A ``python -m rcforest aws --port 0`` child process and the environment it printed.

    Parameters
    ----------
    data_dir : str or os.PathLike
    *options : str
        More command-line options.
    file_size_limit : int, optional
        Bytes at which the files the server writes stop (``RLIMIT_FSIZE``: EFBIG).
    timeout : float, default 120
        Seconds to wait for ``ready``.

    Attributes
    ----------
    process : subprocess.Popen
    data_dir : pathlib.Path
    output : list of str
        The lines it printed so far.
    environment : dict of str to str
        The variables it asked to export.
    """

    def __init__(self, data_dir, *options, file_size_limit=None, timeout=120.0):
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.data_dir = Path(data_dir)
        command = [sys.executable, "-m", "rcforest", "aws", "--port", "0", "--data-dir", str(data_dir), *options]

        def limit():  # runs in the child before exec
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit if file_size_limit else None,
        )
        self.output = []
        lines = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        self.environment = {}
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError("rcforest aws did not start:\n" + "".join(self.output)) from None
            if line is None:
                raise RuntimeError("rcforest aws exited:\n" + "".join(self.output))
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                self.environment[name] = value
            if line.strip() == "ready":
                break

    def _read(self, lines):
        for line in self.process.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    @property
    def url(self):
        """str: the server's ``AWS_ENDPOINT_URL``."""
        return self.environment["AWS_ENDPOINT_URL"]

    def stop(self):
        """End the server (terminate, then kill after a bound)."""
        processes.stop(self.process)


@contextlib.contextmanager
def exported(running):
    """Export ``running``'s environment while in the block, as a user who pasted its ``export`` lines.

    boto3's default session keeps the first credentials it reads: it is dropped
    here, so that ``boto3.client`` reads this server's, and restored after.
    """
    import boto3

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3, "DEFAULT_SESSION", None)
        for name in CLEARED:
            patch.delenv(name, raising=False)
        for name, value in running.environment.items():
            patch.setenv(name, value)
        yield running
