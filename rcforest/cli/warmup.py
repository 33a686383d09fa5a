"""The ``warmup`` subcommand: compile every kernel into numba's cache.

Its work is done by :func:`rcforest.warmup.warmup`; this module only reads
the command line.
"""

from rcforest.cli.options import add_quiet
from rcforest.cli.report import say

__all__ = ["add_commands"]


def add_commands(subparsers):
    """Add ``warmup`` to the ``rcforest`` program.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    """
    warmup = subparsers.add_parser(
        "warmup",
        help="compile every kernel into numba's cache, so that first calls are fast",
        description="Compile rcforest's kernels (or find them in numba's cache) by running each kind of call "
        "once on a few rows. Run it when a Docker image is built or a worker starts, with the NUMBA_CACHE_DIR "
        "the later processes use.",
    )
    add_quiet(warmup)
    warmup.set_defaults(func=_run_warmup)


def _run_warmup(args):
    """``rcforest warmup``: compile, then say where the cache is and how long it took."""
    import os

    from rcforest._kernel_cache import prebuilt_folder
    from rcforest.warmup import warmup

    seconds = warmup()
    where = os.environ.get("NUMBA_CACHE_DIR") or "__pycache__ beside the rcforest package"
    prebuilt = prebuilt_folder()
    if prebuilt is not None and os.path.isdir(prebuilt):
        where += f"; read first, where they fit this machine: the prebuilt kernels in {prebuilt}"
    say(args, f"rcforest kernels compiled and cached in {seconds:.1f} s (cache: {where})")
    return 0
