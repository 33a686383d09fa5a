"""Example data sets, shipped inside the package and checked on every load.

The only data set so far is NAB's NYC taxi series (the Numenta Anomaly
Benchmark, ``data/realKnownCause/nyc_taxi.csv``, MIT License, Copyright
Numenta): total New York City taxi passengers in 30-minute buckets from
2014-07-01 to 2015-01-31, aggregated from the NYC Taxi & Limousine
Commission's trip records, with NAB's five labelled anomalies (the NYC
marathon, Thanksgiving, Christmas, New Year's Day and a January blizzard)
and the scoring windows around them. ``rcforest/data/`` holds it,
compressed, with its source and licence.

Where the files are read from, in order:

1. ``path``, when given: the csv itself or a directory holding it;
2. with ``download=True``: the data home (``data_home``, else the
   ``RCFOREST_DATA`` environment variable, else the user cache directory),
   filled from NAB's public repository the first time;
3. the data home named by ``data_home`` or ``RCFOREST_DATA``, when it holds
   ``nyc_taxi.csv``;
4. the copy bundled with rcforest: no network, no cache.

Labels are read from ``nyc_taxi_labels.json`` beside the csv, else from the
bundled copy. Every csv is checked before use: its columns, its row count
and the SHA-256 digest of its uncompressed content. A download that fails
the checks is not kept.
"""

import gzip
import hashlib
import importlib.resources
import io
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from rcforest.errors import DataUnavailableError

__all__ = [
    "Dataset",
    "DataUnavailableError",
    "NAB_BASE_URL",
    "NYC_TAXI_SHA256",
    "get_data_home",
    "load_nyc_taxi",
]

#: Root of NAB's public repository; the files sit at the same paths below it.
NAB_BASE_URL = "https://raw.githubusercontent.com/numenta/NAB/master"

#: SHA-256 of NAB's ``nyc_taxi.csv`` (10,320 rows plus a header).
NYC_TAXI_SHA256 = "d8fa6f7f0734bf5c8be12c52a94e20a82664c397d9dec4449156bd453d32856d"

_NYC_TAXI = {
    "csv": "nyc_taxi.csv",
    "labels": "nyc_taxi_labels.json",
    "key": "realKnownCause/nyc_taxi.csv",
    "rows": 10320,
    "columns": ["timestamp", "value"],
    "sha256": NYC_TAXI_SHA256,
}
_NAB_CSV_PATH = "data/realKnownCause/nyc_taxi.csv"
_NAB_LABELS_PATH = "labels/combined_labels.json"
_NAB_WINDOWS_PATH = "labels/combined_windows.json"
_TIMEOUT = 30.0
_ENVIRONMENT_VARIABLE = "RCFOREST_DATA"
# The package directory that holds the bundled files, gzip-compressed csv beside its labels.
_BUNDLED = "data"
_BUNDLED_LABEL = "the copy of the data bundled with rcforest"


class Dataset(NamedTuple):
    """A labelled time series.

    Attributes
    ----------
    series : pandas.Series
        The values, float64, with a :class:`pandas.DatetimeIndex` named
        ``timestamp``.
    anomalies : pandas.DatetimeIndex
        The labelled anomalies, one timestamp each.
    windows : list of tuple of pandas.Timestamp
        ``(start, end)`` of each scoring window, inclusive, in time order;
        NAB gives credit for detections inside a window and counts the rest
        as false positives.
    """

    series: pd.Series
    anomalies: pd.DatetimeIndex
    windows: list


def get_data_home(data_home=None):
    """Return the directory where downloaded data sets are kept.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Use this directory. By default the ``RCFOREST_DATA`` environment
        variable, else the user cache directory of the platform
        (``$XDG_CACHE_HOME/rcforest`` or ``~/.cache/rcforest`` on Linux,
        ``~/Library/Caches/rcforest`` on macOS,
        ``%LOCALAPPDATA%\\rcforest\\Cache`` on Windows).

    Returns
    -------
    pathlib.Path
        The directory; it is not created here.
    """
    if data_home is not None:
        return Path(data_home).expanduser()
    if os.environ.get(_ENVIRONMENT_VARIABLE):
        return Path(os.environ[_ENVIRONMENT_VARIABLE]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "rcforest" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "rcforest"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rcforest"


def load_nyc_taxi(path=None, data_home=None, *, download=False, base_url=NAB_BASE_URL):
    """Load NAB's NYC taxi passenger counts with their labelled anomalies.

    By default the copy bundled with rcforest is read: no network and no
    cache are needed.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A local ``nyc_taxi.csv`` or a directory holding it. Its labels are
        read from ``nyc_taxi_labels.json`` beside it, else from the bundled
        copy.
    data_home : str or os.PathLike, optional
        A directory whose ``nyc_taxi.csv`` (and labels) are read instead of
        the bundled copy when it holds one, and where ``download=True``
        saves the files. By default the ``RCFOREST_DATA`` environment
        variable; see :func:`get_data_home`.
    download : bool, default False
        Read the files from the data home, fetching the missing ones from
        ``base_url`` first, instead of the bundled copy.
    base_url : str, default :data:`NAB_BASE_URL`
        Root of a copy of NAB's repository: the csv is read from
        ``{base_url}/data/realKnownCause/nyc_taxi.csv`` and the labels from
        ``{base_url}/labels/combined_labels.json`` and
        ``combined_windows.json``.

    Returns
    -------
    Dataset
        ``series`` holds 10,320 half-hourly values from 2014-07-01 00:00 to
        2015-01-31 23:30; ``anomalies`` the 5 labelled timestamps;
        ``windows`` the 5 scoring windows.

    Raises
    ------
    DataUnavailableError
        If ``path`` does not exist, a download fails, or the bundled copy is
        missing from the installation; the message says where to put the
        files. A subclass of :class:`FileNotFoundError`.
    ValueError
        If a file fails its checks (columns, row count, SHA-256 digest,
        labels).

    Examples
    --------
    >>> from rcforest.datasets import load_nyc_taxi
    >>> series, anomalies, windows = load_nyc_taxi()
    >>> series.shape
    (10320,)
    >>> [f"{start:%Y-%m-%d}" for start, end in windows][:2]
    ['2014-10-30', '2014-11-25']
    """
    spec = _NYC_TAXI
    chosen = data_home is not None or bool(os.environ.get(_ENVIRONMENT_VARIABLE))
    home = get_data_home(data_home)
    if path is not None:
        csv_path = Path(path).expanduser()
        if csv_path.is_dir():
            csv_path = csv_path / spec["csv"]
        if not csv_path.is_file():
            raise DataUnavailableError(
                f"{csv_path} does not exist; pass the path of NAB's nyc_taxi.csv or a directory holding it"
            )
    elif download:
        base_url = base_url.rstrip("/")
        csv_path = home / spec["csv"]
        if not csv_path.is_file():
            _download_csv(f"{base_url}/{_NAB_CSV_PATH}", csv_path, spec)
        if not (home / spec["labels"]).is_file():
            _download_labels(base_url, home / spec["labels"], spec["key"])
    elif chosen and (home / spec["csv"]).is_file():
        csv_path = home / spec["csv"]
    else:
        return _load_bundled(spec)
    series = _read_series(csv_path.read_bytes(), csv_path, spec)
    labels_path = csv_path.parent / spec["labels"]
    if labels_path.is_file():
        anomalies, windows = _read_labels(labels_path.read_text(), labels_path, series)
    else:
        anomalies, windows = _read_labels(_bundled(spec["labels"]).read_text(), _BUNDLED_LABEL, series)
    return Dataset(series, anomalies, windows)


def _bundled(name):
    """The bundled file ``name``, as an :mod:`importlib.resources` traversable."""
    return importlib.resources.files("rcforest").joinpath(_BUNDLED, name)


def _load_bundled(spec):
    """Read and check the bundled csv and labels."""
    csv_file, labels_file = _bundled(spec["csv"] + ".gz"), _bundled(spec["labels"])
    if not (csv_file.is_file() and labels_file.is_file()):
        raise DataUnavailableError(
            f"this installation of rcforest lacks its bundled {spec['csv']} (rcforest/{_BUNDLED}/); reinstall "
            f"rcforest, pass load_nyc_taxi(download=True), or save NAB's {spec['csv']} and "
            f"{spec['labels']} in a directory named by {_ENVIRONMENT_VARIABLE}"
        )
    series = _read_series(gzip.decompress(csv_file.read_bytes()), _BUNDLED_LABEL, spec)
    anomalies, windows = _read_labels(labels_file.read_text(), _BUNDLED_LABEL, series)
    return Dataset(series, anomalies, windows)


# --------------------------------------------------------------------- files


def _fetch(url, destination):
    """Fetch ``url`` and return its bytes, or raise an error naming ``destination``."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            return response.read()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataUnavailableError(
            f"could not download {url} ({reason}); with no network, download the file elsewhere and save it as "
            f"{destination}, or set {_ENVIRONMENT_VARIABLE} to a directory that holds it"
        ) from None


def _write_atomically(destination, content):
    """Write ``content`` to ``destination`` through a temporary file in the same directory."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        partial.write_bytes(content)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def _download_csv(url, destination, spec):
    """Download the csv, check it, and only then move it into place."""
    content = _fetch(url, destination)
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec["sha256"]:
        raise ValueError(
            f"the file downloaded from {url} has SHA-256 {digest}, expected {spec['sha256']}; "
            f"it was not saved. Try again later, or save a verified copy as {destination}"
        )
    _write_atomically(destination, content)


def _download_labels(base_url, destination, key):
    """Download NAB's combined labels and windows and keep the entries for ``key``."""
    entries = {}
    for name, relative in (("anomalies", _NAB_LABELS_PATH), ("windows", _NAB_WINDOWS_PATH)):
        url = f"{base_url}/{relative}"
        try:
            combined = json.loads(_fetch(url, destination))
            entries[name] = combined[key]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{url} is not NAB's label file with an entry for {key!r} ({error!r})") from None
    labels = {
        "source": f"Numenta Anomaly Benchmark (NAB), data/{key}, {_NAB_LABELS_PATH} "
        f"and {_NAB_WINDOWS_PATH}; MIT License",
        **entries,
    }
    _write_atomically(destination, json.dumps(labels, indent=1).encode())


def _replace_hint(where):
    """How to replace a file that failed its checks."""
    if where == _BUNDLED_LABEL:
        return "reinstall rcforest"
    return f"delete it, or replace it with a copy of {NAB_BASE_URL}/{_NAB_CSV_PATH} and its labels"


def _read_series(content, where, spec):
    """Check the csv's bytes and read them; return the value series with a DatetimeIndex.

    ``where`` (a path, or the bundled copy's label) names the file in errors.
    """
    digest = hashlib.sha256(content).hexdigest()
    try:
        frame = pd.read_csv(io.BytesIO(content))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{where} is not a readable csv file ({error}); {_replace_hint(where)}") from None
    problem = None
    if list(frame.columns) != spec["columns"]:
        problem = f"has columns {list(frame.columns)}, expected {spec['columns']}"
    elif len(frame) != spec["rows"]:
        problem = f"has {len(frame)} rows, expected {spec['rows']}"
    elif digest != spec["sha256"]:
        problem = f"has SHA-256 {digest}, expected {spec['sha256']} (the file was changed)"
    if problem:
        raise ValueError(f"{where} {problem}; it is not NAB's {spec['csv']}: {_replace_hint(where)}")
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]), name="timestamp")
    return pd.Series(frame["value"].to_numpy(dtype=float), index=index, name="value")


def _read_labels(text, where, series):
    """Read the labels (JSON text) and check them against ``series``; ``where`` names them in errors."""
    try:
        labels = json.loads(text)
        anomalies = pd.DatetimeIndex(pd.to_datetime(labels["anomalies"]), name="timestamp")
        windows = [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in labels["windows"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{where} is not a labels file with 'anomalies' and 'windows' ({error!r}); {_replace_hint(where)}"
        ) from None
    first, last = series.index[0], series.index[-1]
    inside = all(any(start <= anomaly <= end for start, end in windows) for anomaly in anomalies)
    in_range = all(first <= start <= end <= last for start, end in windows)
    if len(anomalies) != len(windows) or not inside or not in_range:
        raise ValueError(
            f"{where} does not match the series: each of its {len(anomalies)} anomalies must lie in one "
            f"of its {len(windows)} windows, within {first} .. {last}; {_replace_hint(where)}"
        )
    return anomalies, sorted(windows)
