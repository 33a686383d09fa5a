"""The ``rcforest`` command line: one program, a subcommand per job.

Each module of this package adds a group of subcommands with
``add_commands(subparsers)`` and sets ``func`` on each: a callable taking
the parsed arguments and returning an exit code.

- :mod:`rcforest.cli.score`: ``score`` and ``fit``, on a CSV file;
- :mod:`rcforest.cli.demo`: ``demo``, the NYC taxi example;
- :mod:`rcforest.cli.sagemaker`: ``serve`` and ``train``, the SageMaker
  container's programs;
- :mod:`rcforest.cli.aws`: ``aws``, the local AWS-compatible endpoint;
- :mod:`rcforest.cli.warmup`: ``warmup``, which compiles the kernels into
  numba's cache.

The commands import numpy, pandas and numba when they run, so that
``rcforest --help`` stays fast. Errors a user can fix (a missing file or
column, bad values, a model from another version) are reported in one line
on stderr with exit code 2, never as a traceback; so are failures of the
system (a full disk, an unwritable output) and inputs too large for memory.
"""

import argparse
import sys

from rcforest._version import __version__
from rcforest.cli import aws, demo, sagemaker, score, warmup
from rcforest.errors import UsageError

__all__ = ["UsageError", "build_parser", "main"]


def build_parser():
    """Return the ``rcforest`` argument parser with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(prog="rcforest", description="Random Cut Forest anomaly detection.")
    parser.add_argument("--version", action="version", version=f"rcforest {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (score, demo, sagemaker, aws, warmup):
        module.add_commands(subparsers)
    return parser


def main(argv=None):
    """Run the command line; return the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, TypeError, OverflowError, RecursionError, MemoryError, OSError) as error:
        print(f"rcforest {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _one_line(error):
    """An error's message on one line, naming the kind of failure where the message alone would not."""
    if isinstance(error, RecursionError):
        return "the input is nested too deeply"
    if isinstance(error, MemoryError):
        return "out of memory; use fewer trees, a smaller sample size or less data"
    return " ".join(str(error).split()) or type(error).__name__
