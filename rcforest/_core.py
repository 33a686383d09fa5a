"""Input checks and conversions shared by the public classes.

Every check raises a ``ValueError`` or ``TypeError`` that names the
offending value and says how to fix it.
"""

import datetime
import numbers
import os
import sys
from typing import NamedTuple

import numpy as np

from rcforest._jit import JIT, njit

__all__ = []


class Rows(NamedTuple):
    """Input rows as a float64 array plus what is needed to return pandas.

    Attributes
    ----------
    values : ndarray of float64, shape (num_rows, num_features), C order
    index : pandas.Index or None
        The input's index, when the input was a pandas object.
    columns : list of str
        Names of the input's columns (``x0``, ``x1``, ... for arrays).
    named : bool
        Whether the columns came with names that identify them: a
        DataFrame's whose column labels are all strings (as scikit-learn
        reads ``feature_names_in_``). Other inputs are read by position.
    """

    values: np.ndarray
    index: object
    columns: list
    named: bool = False


def check_int(value, name, low, high=None):
    """Return ``value`` as an int in ``[low, high]`` or raise.

    Parameters
    ----------
    value : object
    name : str
        Parameter name used in the message.
    low : int
    high : int, optional

    Returns
    -------
    int
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def check_float(value, name, low=0.0):
    """Return ``value`` as a finite float ``>= low`` or raise.

    Parameters
    ----------
    value : object
    name : str
    low : float

    Returns
    -------
    float
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low}, got {value}")
    return value


MAX_TIME_DECAY = 1e6
"""Largest ``time_decay``: from about 41 on, a reservoir keeps the latest points whatever the decay."""


def check_time_decay(value):
    """Return ``value`` as a reservoir decay in ``[0, MAX_TIME_DECAY]`` or raise.

    A reservoir weight is ``-time_decay * sequence`` plus a random term
    that spans less than 41, so every decay above 41 keeps the same, most
    recent, points; a decay far larger would overflow the weights to
    ``-inf`` and freeze the sample.

    Parameters
    ----------
    value : object

    Returns
    -------
    float
    """
    value = check_float(value, "time_decay")
    if value > MAX_TIME_DECAY:
        raise ValueError(
            f"time_decay must be at most {MAX_TIME_DECAY:g}, got {value:g}; "
            "every decay above about 41 already keeps only the most recent points"
        )
    return value


FLOAT64 = np.dtype(np.float64)
"""numpy's one float64 dtype: a float64 array's ``dtype`` is this object, so an identity test tells it."""

MAX_ABS_VALUE = 1e30
"""Largest magnitude of an input value: far beyond real data, and small enough
that the forest's single-precision bounding boxes (float32, up to 3.4e38)
hold every point, and that the sums of box sides over many dimensions stay
finite, so that every score is finite and every cut separates."""


MAX_SAMPLE_SIZE = 2**30 - 2
"""Largest ``sample_size``: a tree's ``2 * sample_size + 2`` nodes are numbered in int32."""


def memory_bytes():
    """This machine's physical memory in bytes (1 TiB where the platform does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 1 << 40


def check_model_size(num_trees, sample_size, dimensions):
    """Raise if trees of this size would not fit in this machine's memory.

    Parameters
    ----------
    num_trees, sample_size, dimensions : int
        Trees, points per tree and dimensions per point (after shingling).

    Returns
    -------
    int
        The bytes the trees take.
    """
    nodes = 2 * sample_size + 2
    size = num_trees * (nodes * (16 * dimensions + 48) + sample_size * 12 + 24)
    limit = memory_bytes() // 2
    if size > limit:
        raise ValueError(
            f"{num_trees} trees of {sample_size} points with {dimensions} dimensions need "
            f"{size / 2**30:.1f} GiB, more than half of this machine's memory ({limit / 2**30:.1f} GiB); "
            "use fewer trees, a smaller sample size or fewer features"
        )
    return size


def loaded_pandas():
    """The pandas module if it is imported, else None.

    rcforest imports pandas only to make pandas output for pandas input;
    whether an input is a pandas object is asked of the loaded module (an
    object can only be one once pandas is imported), so NumPy users never
    pay for importing pandas.
    """
    return sys.modules.get("pandas")


def positional_names(count, lone_name="x0"):
    """The names of ``count`` columns that came without names: ``lone_name`` for one, else ``x0``, ``x1``, ...

    Parameters
    ----------
    count : int
    lone_name : str

    Returns
    -------
    list of str
    """
    return [lone_name] if count == 1 else [f"x{i}" for i in range(count)]


def names_are_given(columns, lone_name="x0"):
    """Whether saved column names, kept without saying where they came from, came from a DataFrame.

    Model files, detector states and pickles from before columns were
    matched by name do not say whether their names came from a DataFrame;
    names other than the ones an array gets (:func:`positional_names`)
    are taken as a DataFrame's.

    Parameters
    ----------
    columns : list of str or None
    lone_name : str
        The name a single unnamed column gets.

    Returns
    -------
    bool
    """
    return columns is not None and list(columns) != positional_names(len(columns), lone_name)


def saved_named(named, columns, lone_name="x0", what="named"):
    """Whether saved column names are a DataFrame's: the flag saved with them, checked, or inferred when absent.

    Model files, detector states and pickles from before columns were
    matched by name hold no flag (None): the rule of
    :func:`names_are_given` decides for them.

    Parameters
    ----------
    named : bool or None
        The flag as saved.
    columns : list of str or None
    lone_name : str
        The name a single unnamed column gets.
    what : str
        The flag's name, for messages.

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        If ``named`` is neither a boolean nor None.
    """
    if named is None:
        return names_are_given(columns, lone_name)
    if not isinstance(named, bool):
        raise TypeError(f"{what} must be true, false or null, got {named!r:.40}")
    return named


def name_mismatch(columns, names):
    """What ``columns`` lack of ``names`` and hold beyond them, in words; empty when they are the same set.

    The one statement of the rule that matches columns by name, shared by
    :func:`as_rows` and the command line's ``score --model``.

    Parameters
    ----------
    columns : list of str
        The columns given.
    names : list of str
        The columns expected.

    Returns
    -------
    str
        For example ``"missing ['b']; unexpected ['c']"``; ``""`` when
        ``columns`` holds each of ``names`` and nothing else.
    """
    given, expected = set(columns), set(names)
    missing = [c for c in names if c not in given]
    extra = [c for c in columns if c not in expected]
    parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
    return "; ".join(parts)


def _duplicates(labels):
    """The column labels that occur more than once, once each, as text."""
    seen, repeated = set(), []
    for label in labels:
        key = str(label)
        if key in seen and key not in repeated:
            repeated.append(key)
        seen.add(key)
    return repeated


def _numeric_frame(frame, name):
    """A DataFrame's values as float64, refusing columns that do not hold real numbers."""
    import pandas as pd

    dtypes = {str(label): frame.dtypes.iloc[i] for i, label in enumerate(frame.columns)}
    dates = [c for c, dtype in dtypes.items() if dtype.kind in "mM" or isinstance(dtype, pd.DatetimeTZDtype)]
    if dates:
        raise TypeError(
            f"{name} columns {dates} hold dates or durations, not numbers; "
            "drop them (keep the times as the index) or convert them to numbers first"
        )
    complex_ = [c for c, dtype in dtypes.items() if dtype.kind == "c"]
    if complex_:
        raise TypeError(
            f"{name} columns {complex_} hold complex numbers; pass their real and imaginary parts "
            "as separate columns (for example df[c].to_numpy().real and .imag)"
        )
    bad = [c for c, dtype in dtypes.items() if not pd.api.types.is_numeric_dtype(dtype)]
    if bad:
        raise TypeError(
            f"columns {bad} are not numeric; select the numeric columns "
            "(for example df[['value']]) or convert them with pd.to_numeric"
        )
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _unmasked(data, name, missing):
    """A masked array's values, its masked entries as NaN when ``missing`` allows, else refused."""
    mask = np.ma.getmaskarray(data)
    if not mask.any():
        return data.data
    if not missing:
        raise ValueError(
            f"{name} has {int(mask.sum())} masked entries; drop or fill them first (for example X.filled(value))"
        )
    if data.dtype.kind in "mM":
        return data.data
    return np.where(mask, np.nan, data.data.astype(np.float64))


_TIMES = (np.datetime64, np.timedelta64, datetime.date, datetime.time, datetime.timedelta)
"""Types of dates, times and durations (pandas' Timestamp, Timedelta and NaT included): never read as numbers."""


def _check_kind(kind, name, detail):
    """Raise ``TypeError`` for a dtype kind (or the type of a value) that is not a real number."""
    if kind == "c":
        raise TypeError(
            f"{name} must hold real numbers, not complex ones ({detail}); "
            "pass their real and imaginary parts as separate columns"
        )
    if kind in "mM":
        raise TypeError(
            f"{name} must hold numbers, not dates or durations ({detail}); "
            "pass the values and keep the times as a pandas index"
        )
    if kind in "SU":
        raise TypeError(
            f"{name} must hold numbers, not text ({detail}); convert it with float() or pd.to_numeric first"
        )


def _check_value(value, name):
    """Raise ``TypeError`` unless ``value`` (from an object array) is a real number or a boolean."""
    if isinstance(value, _TIMES):
        _check_kind("M", name, f"a value of type {type(value).__name__}")
    if isinstance(value, (str, bytes)):
        _check_kind("U", name, f"the value {value!r:.40}")
    if isinstance(value, (numbers.Real, np.bool_)):
        return
    if isinstance(value, numbers.Complex):
        _check_kind("c", name, f"the value {value!r}")
    if not isinstance(value, numbers.Number):  # Decimal is a number, if not a Real
        raise TypeError(f"{name} must hold numbers, got a value of type {type(value).__name__}")


def as_numbers(data, name="X"):
    """Convert an array-like to float64, refusing anything that is not a real number.

    The one check of values for every entry point: an array's dtype, or
    each value of an object array (lists of mixed values), must be a real
    number, a boolean (read as 0 or 1) or a missing value (None or
    ``pandas.NA``, read as NaN). Dates, times, durations, text and complex
    numbers are refused, never read as numbers.

    Parameters
    ----------
    data : array-like
        Not a pandas object (see :func:`as_rows`).
    name : str
        Argument name used in messages.

    Returns
    -------
    ndarray of float64
        Of ``data``'s shape.

    Raises
    ------
    TypeError
        For values that are not real numbers.
    ValueError
        For nested sequences of different lengths.
    """
    if isinstance(data, (str, bytes)):
        raise TypeError(
            f"{name} must hold numbers, not the text {data!r:.40}; pass an array, a list or a pandas object "
            "of numbers (convert text with float() or pd.to_numeric)"
        )
    if isinstance(data, dict) or data is None:
        raise TypeError(f"{name} must be an array, a list or a pandas object, got {type(data).__name__}")
    try:
        array = np.asarray(data)
    except ValueError as error:
        raise ValueError(f"{name} must be a rectangular table of numbers (rows of one length): {error}") from None
    _check_kind(array.dtype.kind, name, f"dtype {array.dtype}")
    if array.dtype.kind == "O":
        pd = loaded_pandas()
        values = np.empty(array.shape)
        flat = values.reshape(-1)
        for i, value in enumerate(array.ravel()):
            if value is None or (pd is not None and value is pd.NA):
                flat[i] = np.nan
            else:
                _check_value(value, name)
                flat[i] = float(value)
        return values
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got values of dtype {array.dtype}; convert them to float first")
    return array.astype(np.float64)


def as_rows(data, name="X", *, missing=False, lone_name="x0", names=None):
    """Convert user input to :class:`Rows`.

    Parameters
    ----------
    data : array-like, pandas.Series or pandas.DataFrame
        One row per observation: a 1-D series or an ``(n, d)`` table. A
        NumPy masked array's masked entries are missing values.
    name : str
        Argument name used in messages.
    missing : bool, default False
        Accept NaN, None and infinite values (as NaN, for the caller to
        impute), finite values of any magnitude and input without rows,
        instead of raising.
    lone_name : str, default "x0"
        Name of a single column that has none (an array or an unnamed Series).
    names : list of str, optional
        The column names a model was fitted on, when it was fitted on named
        columns. A DataFrame with named columns (see :attr:`Rows.named`)
        is then read by name: its columns are put in this order, and
        refused unless they are exactly these. Other inputs are read by
        position.

    Returns
    -------
    Rows

    Raises
    ------
    TypeError
        For values that are not real numbers: dates, durations, text and
        complex numbers included (see :func:`as_numbers`).
    ValueError
        For empty input, more than two dimensions, NaN, infinite or masked
        values, or values beyond :data:`MAX_ABS_VALUE` in magnitude (unless
        ``missing``); for a DataFrame with duplicate column names, or
        whose named columns are not ``names``.
    """
    index = None
    named = False
    pd = loaded_pandas()
    if pd is not None and isinstance(data, pd.DataFrame):
        repeated = _duplicates(data.columns)
        if repeated:
            raise ValueError(
                f"{name} has duplicate column names {repeated}; each column needs its own name "
                "(rename them, or drop the repeats)"
            )
        named = all(isinstance(c, str) for c in data.columns)
        if named and names is not None and list(data.columns) != list(names):
            mismatch = name_mismatch(list(data.columns), list(names))
            if mismatch:
                raise ValueError(
                    f"{name} has columns {list(data.columns)} but the model was fitted on {list(names)}: {mismatch}; "
                    "pass a DataFrame with those columns (in any order), or an array with them in that order"
                )
            data = data[list(names)]
        index = data.index
        columns = [str(c) for c in data.columns]
        values = _numeric_frame(data, name)
    elif pd is not None and isinstance(data, pd.Series):
        index = data.index
        columns = [str(data.name) if data.name is not None else lone_name]
        values = _numeric_frame(data.to_frame(), name)
    else:
        if isinstance(data, np.ma.MaskedArray):
            data = _unmasked(data, name, missing)
        values = as_numbers(data, name)
        columns = None
    if values.ndim == 0:
        values = values.reshape(1, 1)
    elif values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{name} must be 1-D (a series) or 2-D (rows x features), got shape {values.shape}")
    if missing:
        values = np.where(np.isfinite(values), values, np.nan)
    if values.shape[1] == 0 or (values.shape[0] == 0 and not missing):
        raise ValueError(f"{name} is empty (shape {values.shape}); pass at least one row and one feature")
    if not missing:
        bad = ~(np.abs(values) <= MAX_ABS_VALUE)  # NaN compares false
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            label = index[row] if index is not None else row
            value = values[row, col]
            fix = (
                f"rcforest accepts magnitudes up to {MAX_ABS_VALUE:g}: rescale the data "
                "(for example divide it by a power of ten)"
                if np.isfinite(value)
                else "drop or impute NaN and infinite values first"
            )
            raise ValueError(f"{name} holds {value} at row {label!r}, column {col}; {fix}")
    if columns is None:
        columns = positional_names(values.shape[1], lone_name)
    return Rows(np.ascontiguousarray(without_negative_zeros(values)), index, columns, named)


def without_negative_zeros(values):
    """``values`` with each ``-0.0`` made ``0.0``; a copy only if there is one.

    A point is a value: trees built from ``0.0`` and ``-0.0`` would hold one
    or the other in their boxes depending on their history, and a model
    file, which rebuilds the boxes from the points, could not restore them
    bit for bit.

    Parameters
    ----------
    values : ndarray of float64

    Returns
    -------
    ndarray of float64
    """
    if np.signbit(values[values == 0]).any():
        return values + 0.0
    return values


@njit(**JIT)
def shingle_rows(values, size, out):
    """Fill ``out[j]`` with rows ``j .. j + size - 1`` of ``values``, oldest first."""
    num_features = values.shape[1]
    for j in range(out.shape[0]):
        for lag in range(size):
            for c in range(num_features):
                out[j, lag * num_features + c] = values[j + lag, c]


def shingle(values, size):
    """Stack ``size`` consecutive rows into one point.

    Parameters
    ----------
    values : ndarray of float64, shape (num_rows, num_features)
    size : int

    Returns
    -------
    ndarray of float64, shape (num_rows - size + 1, size * num_features)
        Row ``j`` holds rows ``j .. j + size - 1``, oldest first. Empty when
        there are fewer than ``size`` rows.
    """
    num_rows, num_features = values.shape
    if size == 1:
        return values
    points = np.empty((max(num_rows - size + 1, 0), size * num_features))
    shingle_rows(values, size, points)
    return points


def shingle_names(columns, size):
    """Names of the shingled dimensions, oldest lag first.

    Parameters
    ----------
    columns : list of str
    size : int

    Returns
    -------
    list of str
        ``columns`` unchanged for ``size == 1``, else ``"col[t-k]"``.
    """
    if size == 1:
        return list(columns)
    return [f"{c}[t-{lag}]" if lag else f"{c}[t]" for lag in range(size - 1, -1, -1) for c in columns]
