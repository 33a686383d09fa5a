"""Child processes of the tests: stopping them within a bound."""

import subprocess

__all__ = ["stop"]


def stop(process, timeout=15):
    """Terminate ``process`` if it still runs, and kill it if it has not ended within ``timeout`` seconds.

    Parameters
    ----------
    process : subprocess.Popen
    timeout : float
        Seconds to wait after the terminate signal.
    """
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
