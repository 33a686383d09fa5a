"""Example data sets, downloaded once into a local cache and checked.

The only data set so far is NAB's NYC taxi series (the Numenta Anomaly
Benchmark, ``data/realKnownCause/nyc_taxi.csv``, MIT License): total New
York City taxi passengers in 30-minute buckets from 2014-07-01 to
2015-01-31, with NAB's five labelled anomalies (the NYC marathon,
Thanksgiving, Christmas, New Year's Day and a January blizzard) and the
scoring windows around them.

Where the files are looked for, in order:

1. ``path``, when given: the csv itself or a directory holding it;
2. ``data_home``, when given, else the directory named by the
   ``RCFOREST_DATA`` environment variable, else the user cache directory
   (``$XDG_CACHE_HOME/rcforest`` or ``~/.cache/rcforest`` on Linux,
   ``~/Library/Caches/rcforest`` on macOS, ``%LOCALAPPDATA%\\rcforest\\Cache``
   on Windows);
3. NAB's public repository, downloaded into the directory of step 2.

Every csv is checked before use: its columns, its row count and its
SHA-256 digest. A download that fails the checks is not kept.
"""

import hashlib
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
    """Return the directory where data sets are cached.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Use this directory. By default the ``RCFOREST_DATA`` environment
        variable, else the user cache directory of the platform.

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


def load_nyc_taxi(path=None, data_home=None, *, download=True, base_url=NAB_BASE_URL):
    """Load NAB's NYC taxi passenger counts with their labelled anomalies.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A local ``nyc_taxi.csv`` or a directory holding it. Its labels are
        read from ``nyc_taxi_labels.json`` beside it, else from the cache
        (downloading them if needed).
    data_home : str or os.PathLike, optional
        Cache directory; see :func:`get_data_home` for the default.
    download : bool, default True
        Fetch missing files from ``base_url`` into the cache directory.
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
        If the files are not on disk and cannot be downloaded; the message
        names the directory to put them in. A subclass of
        :class:`FileNotFoundError`.
    ValueError
        If a file fails its checks (columns, row count, SHA-256 digest,
        labels).

    Examples
    --------
    >>> from rcforest.datasets import load_nyc_taxi
    >>> series, anomalies, windows = load_nyc_taxi()  # doctest: +SKIP
    >>> series.shape  # doctest: +SKIP
    (10320,)
    """
    spec = _NYC_TAXI
    cache = get_data_home(data_home)
    base_url = base_url.rstrip("/")
    if path is not None:
        csv_path = Path(path).expanduser()
        if csv_path.is_dir():
            csv_path = csv_path / spec["csv"]
        if not csv_path.is_file():
            raise DataUnavailableError(
                f"{csv_path} does not exist; pass the path of NAB's nyc_taxi.csv or a directory holding it"
            )
    else:
        csv_path = cache / spec["csv"]
        if not csv_path.is_file():
            _need_download(download, csv_path, f"{base_url}/{_NAB_CSV_PATH}")
            _download_csv(f"{base_url}/{_NAB_CSV_PATH}", csv_path, spec)
    series = _read_series(csv_path, spec)

    labels_path = csv_path.parent / spec["labels"]
    if not labels_path.is_file():
        labels_path = cache / spec["labels"]
    if not labels_path.is_file():
        _need_download(download, labels_path, f"{base_url}/{_NAB_LABELS_PATH}")
        _download_labels(base_url, labels_path, spec["key"])
    anomalies, windows = _read_labels(labels_path, series)
    return Dataset(series, anomalies, windows)


# --------------------------------------------------------------------- files


def _need_download(download, destination, url):
    """Raise the "where to put the file" error when downloading is off."""
    if not download:
        raise DataUnavailableError(
            f"{destination} does not exist and download=False; download {url} and save it there, "
            f"or set {_ENVIRONMENT_VARIABLE} to a directory that holds it"
        )


def _sha256(path):
    """Hex SHA-256 digest of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _read_series(csv_path, spec):
    """Read and check the csv; return the value series with a DatetimeIndex."""
    digest = _sha256(csv_path)
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{csv_path} is not a readable csv file ({error})") from None
    problem = None
    if list(frame.columns) != spec["columns"]:
        problem = f"has columns {list(frame.columns)}, expected {spec['columns']}"
    elif len(frame) != spec["rows"]:
        problem = f"has {len(frame)} rows, expected {spec['rows']}"
    elif digest != spec["sha256"]:
        problem = f"has SHA-256 {digest}, expected {spec['sha256']} (the file was changed)"
    if problem:
        raise ValueError(
            f"{csv_path} {problem}; it is not NAB's {spec['csv']}. Delete it to download it again, "
            f"or replace it with a copy of {NAB_BASE_URL}/{_NAB_CSV_PATH}"
        )
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]), name="timestamp")
    return pd.Series(frame["value"].to_numpy(dtype=float), index=index, name="value")


def _read_labels(labels_path, series):
    """Read the labels file and check it against ``series``."""
    try:
        labels = json.loads(Path(labels_path).read_text())
        anomalies = pd.DatetimeIndex(pd.to_datetime(labels["anomalies"]), name="timestamp")
        windows = [(pd.Timestamp(start), pd.Timestamp(end)) for start, end in labels["windows"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{labels_path} is not a labels file with 'anomalies' and 'windows' ({error!r}); "
            "delete it to download it again"
        ) from None
    first, last = series.index[0], series.index[-1]
    inside = all(any(start <= anomaly <= end for start, end in windows) for anomaly in anomalies)
    in_range = all(first <= start <= end <= last for start, end in windows)
    if len(anomalies) != len(windows) or not inside or not in_range:
        raise ValueError(
            f"{labels_path} does not match the series: each of its {len(anomalies)} anomalies must lie in one "
            f"of its {len(windows)} windows, within {first} .. {last}; delete it to download it again"
        )
    return anomalies, sorted(windows)
