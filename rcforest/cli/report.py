"""What the commands show and write: messages, progress bars, CSV files and plots."""

import sys
from pathlib import Path

from rcforest.errors import UsageError

__all__ = ["check_output_folder", "draw", "progress", "say", "write_csv"]

# A progress bar appears only once the work has taken this long (seconds).
_PROGRESS_DELAY = 2.0


def say(args, message):
    """Print ``message`` on stderr unless --quiet.

    Parameters
    ----------
    args : argparse.Namespace
    message : str
    """
    if not args.quiet:
        print(message, file=sys.stderr)


def progress(args, total, description):
    """A tqdm bar on stderr, shown only on a terminal, without --quiet, once the work is slow.

    Parameters
    ----------
    args : argparse.Namespace
    total : int
        Rows to go.
    description : str

    Returns
    -------
    tqdm.tqdm
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit="row",
        unit_scale=True,
        file=sys.stderr,
        delay=_PROGRESS_DELAY,
        leave=False,
        disable=args.quiet or not sys.stderr.isatty(),
    )


def write_csv(frame, output):
    """Write ``frame`` to the path ``output``, or to stdout for ``-``.

    Parameters
    ----------
    frame : pandas.DataFrame
    output : str

    Raises
    ------
    UsageError
        If the directory to write in does not exist.
    """
    if output == "-":
        frame.to_csv(sys.stdout, index=False)
        return
    check_output_folder(output)
    frame.to_csv(Path(output), index=False)


def check_output_folder(output):
    """Refuse an output path whose folder does not exist or is a file.

    Parameters
    ----------
    output : str

    Raises
    ------
    UsageError
    """
    folder = Path(output).parent
    if folder != Path("") and not folder.is_dir():
        problem = "is a file, not a directory" if folder.exists() else "does not exist"
        raise UsageError(f"cannot write {output}: directory {folder} {problem}")


def draw(series, output, threshold, flags, destination, title, windows=None):
    """Draw ``series``, the scores and flagged rows (and grades, when streaming) to ``destination``.

    Parameters
    ----------
    series : pandas.Series
    output : dict of str to ndarray
        ``score``, and ``grade`` when streaming.
    threshold : float or ndarray
    flags : ndarray of bool
    destination : str
        The image file.
    title : str
    windows : list of tuple, optional
        Labelled windows to shade.

    Raises
    ------
    UsageError
        If matplotlib is missing or the image cannot be written.
    """
    try:
        import matplotlib
    except ImportError:
        raise UsageError('--plot needs matplotlib: pip install "rcforest[plot]"') from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from rcforest.plot import plot_detection

    index = series.index
    scores = pd.Series(output["score"], index=index, name="score")
    if not isinstance(threshold, float):
        threshold = pd.Series(threshold, index=index)
    grades = pd.Series(output["grade"], index=index) if "grade" in output else None
    figure = plot_detection(
        series, scores, threshold=threshold, flags=flags, grades=grades, windows=windows, title=title
    )
    try:
        figure.savefig(destination, dpi=100)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot write the plot to {destination}: {error}") from None
    finally:
        plt.close(figure)
