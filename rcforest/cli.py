"""The ``rcforest`` command line: one program, a subcommand per job.

Each module in ``_COMMAND_MODULES`` defines ``add_commands(subparsers)``,
which adds its subcommands and sets ``func`` on each: a callable taking the
parsed arguments and returning an exit code. Modules import their heavy
dependencies inside ``func``, so ``rcforest --help`` stays fast.

Errors a user can fix (a missing file or column, bad values, a model from
another version) are reported in one line on stderr with exit code 2,
never as a traceback.
"""

import argparse
import importlib
import sys

__all__ = ["main", "UsageError"]

_COMMAND_MODULES = ("rcforest.commands", "rcforest.server", "rcforest.sagemaker.container")


class UsageError(Exception):
    """A problem with the user's input, reported without a traceback (exit code 2)."""


def build_parser():
    """Return the ``rcforest`` argument parser with every subcommand."""
    from rcforest import __version__

    parser = argparse.ArgumentParser(prog="rcforest", description="Random Cut Forest anomaly detection.")
    parser.add_argument("--version", action="version", version=f"rcforest {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
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
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as error:
        print(f"rcforest {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run the imported module's main, so that its UsageError is the one
    # other modules raise (this file also loads as __main__ under -m).
    from rcforest.cli import main as _main

    sys.exit(_main())
