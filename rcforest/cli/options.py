"""Options that several subcommands share, and the checks on their values."""

from rcforest.errors import UsageError

__all__ = [
    "DEFAULT_TIME_COLUMN",
    "FOREST_DEFAULTS",
    "add_column_options",
    "add_forest_options",
    "add_quiet",
    "check_parameters",
    "forest_parameters",
]

DEFAULT_TIME_COLUMN = "timestamp"
FOREST_DEFAULTS = {"num_trees": 100, "sample_size": 256, "shingle_size": 1}


def add_forest_options(parser):
    """Add --num-trees, --sample-size, --shingle-size (None: the defaults) and --random-state.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    group = parser.add_argument_group("forest")
    group.add_argument("--num-trees", type=int, help="number of trees (default: 100)")
    group.add_argument("--sample-size", type=int, help="points each tree keeps (default: 256)")
    group.add_argument(
        "--shingle-size",
        type=int,
        help="consecutive rows stacked into one point (default: 1; 48 for a day of half-hours)",
    )
    group.add_argument(
        "--random-state", type=int, default=0, help="seed; the same seed gives the same scores (default: 0)"
    )


def add_column_options(parser):
    """Add --column, --time-column, and --header and --no-header (``header``: None, True or False).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    group = parser.add_argument_group("columns")
    group.add_argument(
        "--column",
        action="append",
        metavar="NAME",
        help="column to score; repeat for several (default: every column but the time column)",
    )
    group.add_argument(
        "--time-column",
        metavar="NAME",
        help=f"column of timestamps, kept in the output and used to plot (default: {DEFAULT_TIME_COLUMN!r} if any)",
    )
    header = group.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_true",
        default=None,
        help="the first row holds the column names (default: unless all its cells are numbers)",
    )
    header.add_argument(
        "--no-header",
        dest="header",
        action="store_false",
        help="the first row is data; columns are named 0, 1, ... (as in SageMaker's text/csv)",
    )


def add_quiet(parser):
    """Add -q/--quiet.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    """
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary on stderr")


def forest_parameters(args):
    """The forest's parameters from the command line, with the defaults filled in.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    dict of str to int
    """
    return {
        name: getattr(args, name) if getattr(args, name) is not None else value
        for name, value in FOREST_DEFAULTS.items()
    }


def check_parameters(params):
    """Refuse parameters below 1, naming the option.

    Parameters
    ----------
    params : dict of str to int

    Raises
    ------
    UsageError
    """
    for name, value in params.items():
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
