"""Reading the CSV file that ``score`` and ``fit`` work on, with a clear error for each problem.

A first row whose cells are all numbers is data, not a header: SageMaker's
training files (``text/csv``) have no header row. ``--header`` and
``--no-header`` force either reading. Columns without a header are named
``0``, ``1``, ... in the order of the file.
"""

import warnings
from pathlib import Path

from rcforest.cli.options import DEFAULT_TIME_COLUMN
from rcforest.errors import UsageError

__all__ = ["Table", "read_table"]


class Table:
    """A CSV file read for scoring: the whole table, the features and the time axis.

    Parameters
    ----------
    frame : pandas.DataFrame
        The file as read, every column kept.
    features : pandas.DataFrame
        The selected columns, as float64.
    time : pandas.DatetimeIndex or None
        The time column, when there is one.
    reading : str
        How the first row was read, for the user: as names or as data.
    header : bool
        Whether the first row held the column names (else they are ``0``,
        ``1``, ..., positions rather than names).
    """

    def __init__(self, frame, features, time, reading, header=True):
        self.frame = frame
        self.features = features
        self.time = time
        self.reading = reading
        self.header = header

    @property
    def series(self):
        """The features as a Series (one column) or DataFrame, indexed by time or row number."""
        data = self.features.set_axis(self.time if self.time is not None else self.features.index)
        return data.iloc[:, 0] if data.shape[1] == 1 else data


def read_table(path, columns=None, time_column=None, model_columns=None, allow_empty=False, header=None):
    """Read ``path`` and check the selected columns.

    Parameters
    ----------
    path : str or os.PathLike
    columns : list of str, optional
        The columns to score; by default every column but the time column.
    time_column : str, optional
        The column of timestamps; by default ``timestamp`` when there is one.
    model_columns : list of str, optional
        The columns a saved model was fitted on, chosen when all are present
        and ``columns`` is not given.
    allow_empty : bool, default False
        Keep empty cells as NaN (the streaming detector imputes them);
        non-numeric values are refused either way.
    header : bool, optional
        Whether the first row holds the column names. By default it does
        unless all its cells are numbers.

    Returns
    -------
    Table

    Raises
    ------
    UsageError
        Naming the problem and its fix.
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise UsageError(f"input file {path} does not exist")
    if path.is_dir():
        raise UsageError(f"{path} is a directory; pass a CSV file")
    if not path.is_file():
        raise UsageError(f"{path} is not a regular file (a device or a pipe); pass a CSV file")
    try:
        forced = header is not None
        if not forced:
            first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
            header = not all(_is_number(cell) for cell in first.iloc[0])
        with warnings.catch_warnings():
            # A row with more cells than the header: never read its first cell as an index.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, header=0 if header else None, index_col=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty; expected a CSV file with one row per observation") from None
    except pd.errors.ParserWarning:
        raise UsageError(
            f'{path} has rows with more cells than its header; quote values that hold commas, such as "1,012"'
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UsageError(f"{path} is not a readable CSV file: {str(error).strip()}") from None
    if frame.empty:
        raise UsageError(f"{path} has a header ({', '.join(map(str, frame.columns))}) but no data rows")
    frame.columns = [str(c) for c in frame.columns]
    reading = _reading(path, frame.columns, header, forced)

    if time_column is not None and time_column not in frame.columns:
        raise UsageError(f"time column {time_column!r} is not in {path}; its columns are {list(frame.columns)}")
    if time_column is None and DEFAULT_TIME_COLUMN in frame.columns:
        time_column = DEFAULT_TIME_COLUMN
    time = None
    if time_column is not None:
        try:
            time = pd.DatetimeIndex(_to_datetime(frame[time_column]), name=time_column)
        except (ValueError, TypeError, OverflowError) as error:
            raise UsageError(
                f"time column {time_column!r} of {path} holds values that are not dates ({error}); "
                "name the right column with --time-column"
            ) from None

    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise UsageError(
                f"column {missing[0]!r} is not in {path}; its columns are {list(frame.columns)}; choose with --column"
            )
    elif model_columns and all(c in frame.columns for c in model_columns):
        columns = list(model_columns)
    else:
        columns = [c for c in frame.columns if c != time_column]
        if not columns:
            raise UsageError(f"{path} has no column to score besides the time column {time_column!r}")
    if time_column in columns:
        raise UsageError(f"column {time_column!r} is the time column; it cannot also be scored")

    features = {}
    for name in columns:
        raw = frame[name]
        try:
            values = pd.to_numeric(raw, errors="coerce").astype(float)
        except OverflowError:  # integers too large for float64: infinite, refused below
            values = pd.to_numeric(raw.astype(str), errors="coerce").astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if allow_empty:
            bad &= ~raw.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "an empty value" if pd.isna(raw.iloc[row]) else f"the non-numeric value {str(raw.iloc[row])!r:.60}"
            if pd.isna(raw.iloc[row]):
                hint = "fill or drop the empty rows"
            elif _is_number(str(raw.iloc[row])) and str(raw.iloc[row]).strip().lstrip("+-")[:1].isdigit():
                what = f"the value {str(raw.iloc[row]):.60}, beyond the range of float64"
                hint = "rescale the column"
            elif _looks_like_time(raw):
                hint = f"if it holds timestamps, pass --time-column {name}; or choose numeric columns with --column"
            else:
                hint = "choose numeric columns with --column, or clean the file"
            line = row + 1 + header
            raise UsageError(f"column {name!r} of {path} has {what} on data row {row + 1} (line {line}); {hint}")
        features[name] = values
    return Table(frame, pd.DataFrame(features), time, reading, bool(header))


def _is_number(cell):
    """Whether a CSV cell (text) is a number."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _reading(path, columns, header, forced):
    """One line saying how the first row of ``path`` was read, and how to read it the other way."""
    names = ", ".join(columns) if len(columns) <= 6 else f"{', '.join(columns[:3])}, ..., {columns[-1]}"
    if header:
        why = "--header" if forced else "its first row is not all numbers"
        other = "" if forced else "; --no-header reads that row as data"
        return f"read {path} with a header row ({why}): columns {names}{other}"
    why = "--no-header" if forced else "its first row is all numbers"
    other = "" if forced else "; --header reads that row as column names"
    return f"read {path} without a header row ({why}): columns named {names}{other}"


def _looks_like_time(column):
    """Whether the first values of a text column parse as dates."""
    try:
        _to_datetime(column.head(5))
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _to_datetime(column):
    """``pandas.to_datetime`` without its warning about guessing each value's format."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
        return pd.to_datetime(column)
