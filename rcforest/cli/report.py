"""What the commands show and write: messages, progress bars, CSV files and plots.

A file the commands write is written whole or not at all: to a temporary
file beside it, renamed over it at the end
(:func:`rcforest._files.atomic_write`), so a failure leaves any previous
file as it was and no half-written one. A device, a pipe or a symbolic
link given as the output (``/dev/stdout``) is written to directly, as
given. :func:`check_outputs` refuses an output that is one of the
command's inputs before any work is done.
"""

import contextlib
import io
import os
import stat
import sys
from pathlib import Path

from rcforest.errors import UsageError

__all__ = ["check_output_folder", "check_outputs", "draw", "open_output", "progress", "say", "write_csv"]

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
    with open_output(output) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        frame.to_csv(text, index=False)
        text.flush()
        text.detach()  # the stream is closed (and renamed into place) by open_output


@contextlib.contextmanager
def open_output(path):
    """Open ``path`` for binary writing, whole or not at all where it is (or will be) a regular file.

    A path that does not exist or holds a regular file is written through
    :func:`rcforest._files.atomic_write`: a temporary file renamed over it
    once complete. Anything else (a device such as ``/dev/stdout``, a pipe,
    a symbolic link) is opened and written as given.

    Parameters
    ----------
    path : str

    Yields
    ------
    file object
    """
    from rcforest._files import atomic_write

    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None or stat.S_ISREG(mode):
        with atomic_write(path) as stream:
            yield stream
    else:
        with open(path, "wb") as stream:
            yield stream


def _same_file(one, other):
    """Whether two paths name the same file (or would: the same path once links are resolved)."""
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # one of them does not exist (yet)
        return False


def check_outputs(inputs, outputs):
    """Refuse an output that is one of the inputs, or two outputs that are one file.

    Writing a command's output over its input would destroy the input
    (silently, the input being read first); two outputs on one file would
    leave only the last.

    Parameters
    ----------
    inputs : dict of str to str or None
        What each input is (``"input"``, ``"--model"``) and its path.
    outputs : dict of str to str or None
        The option that names each output (``"-o"``, ``"--plot"``) and its
        path; None and ``-`` (standard output) are skipped.

    Raises
    ------
    UsageError
    """
    written = {option: path for option, path in outputs.items() if path not in (None, "-")}
    for option, path in written.items():
        for what, source in inputs.items():
            if source is not None and _same_file(path, source):
                raise UsageError(
                    f"{option} {path} is the {what} file {source}; writing it would overwrite the {what}: "
                    f"give {option} another file name"
                )
    options = list(written)
    for i, option in enumerate(options):
        for other in options[i + 1 :]:
            if _same_file(written[option], written[other]):
                raise UsageError(f"{option} and {other} name the same file {written[option]}; give each its own")


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
        with open_output(destination) as stream:
            figure.savefig(stream, dpi=100, format=Path(destination).suffix.lstrip(".").lower() or None)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot write the plot to {destination}: {error}") from None
    finally:
        plt.close(figure)
