"""A :class:`~rcforest.detector.thresholded_forest.ThresholdedForest` in a file, and back.

The file is in rcforest's format (:mod:`rcforest._format`): a JSON header
with the detector's parameters, counters and threshold statistics, and the
history, transform statistics and forest as ``.npy`` arrays. Reading it
uses ``allow_pickle=False``, so loading runs no code.
"""

import os

import numpy as np

from rcforest import _format, _state
from rcforest._core import check_int, saved_named
from rcforest.detector.period import HISTORY, MAX_PERIOD
from rcforest.detector.preprocess import clip_readings
from rcforest.detector.timegrid import TimeGrid
from rcforest.forest import Forest

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "READ_VERSIONS", "read_detector", "write_detector"]

FORMAT_NAME = "rcforest-thresholded"
FORMAT_VERSION = 5
"""Version 2 adds the thresholder's likelihood state; files of version 1 still load (without it).
Version 3 stores the forest in its version 2 layout (:mod:`rcforest._state`). Version 4 adds the alert
policy's last reported grade and memory of alerts (files of versions 1 to 3 load without them).
Version 5 stores the forest in its version 3 layout, with the origin of its boxes."""
READ_VERSIONS = (1, 2, 3, 4, 5)
_FOREST_VERSIONS = {1: 1, 2: 1, 3: 2, 4: 2, 5: _state.VERSION}
"""The layout of the forest's arrays in a detector file of each version."""
# The forest's arrays sit in a detector file under this prefix.
_FOREST_PREFIX = "forest/"


def write_detector(detector, path):
    """Write a detector's full state to ``path`` (see :meth:`ThresholdedForest.save`).

    Parameters
    ----------
    detector : ThresholdedForest
    path : str or os.PathLike
    """
    preprocessor = detector._preprocessor
    state = {
        "params": detector._params(),
        "period_": preprocessor.period,
        "shingle_size_": preprocessor.shingle_size,
        "rows_seen_": detector.rows_seen_,
        "columns_": detector.columns_,
        "named_": detector._named,
        "stats": detector._thresholder.state(),
        "anomaly": detector._alerts.state(),
        "time_grid": detector._grid.state(),
    }
    arrays = {
        "history": detector._history,
        "mean": preprocessor.mean,
        "scale": preprocessor.scale,
        "residual": preprocessor.residual,
    }
    arrays = {name: value for name, value in arrays.items() if value is not None}
    forest = None
    if detector.forest_ is not None:
        forest, forest_arrays = _state.to_arrays(detector.forest_._parts())
        arrays.update({f"{_FOREST_PREFIX}{name}": value for name, value in forest_arrays.items()})
    header = {"detector": state, "forest": forest}
    _format.write(os.fspath(path), header, arrays, FORMAT_VERSION, kind=FORMAT_NAME)


def read_detector(cls, path):
    """Read a detector written by :func:`write_detector` (see :meth:`ThresholdedForest.load`).

    Parameters
    ----------
    cls : type
        The detector's class, called with the saved parameters.
    path : str or os.PathLike

    Returns
    -------
    ThresholdedForest

    Raises
    ------
    ValueError
        If the file is not a saved detector or is inconsistent.
    """
    path = os.fspath(path)
    header, arrays, version = _format.read(path, READ_VERSIONS, kind=FORMAT_NAME)
    try:
        state = header["detector"]
        detector = cls(**state["params"])
        if header["forest"] is not None:
            forest_arrays = _format.Prefixed(arrays, _FOREST_PREFIX)
            parts = _state.from_arrays(header["forest"], forest_arrays, _FOREST_VERSIONS[version])
            detector.forest_ = Forest._from_parts(parts, n_jobs=detector.n_jobs)
        _restore(detector, state, arrays)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid ThresholdedForest state: {error}") from None
    return detector


def _restore(detector, state, arrays):
    """Set a detector's fitted state from a saved header and arrays, checking that they agree."""
    preprocessor = detector._preprocessor
    preprocessor.period = check_int(state["period_"], "period_", 0, MAX_PERIOD)
    preprocessor.shingle_size = check_int(state["shingle_size_"], "shingle_size_", 0)
    detector.rows_seen_ = check_int(state["rows_seen_"], "rows_seen_", 0)
    columns = state["columns_"]
    detector.columns_ = None if columns is None else [str(c) for c in columns]
    if detector.columns_ is not None and len(set(detector.columns_)) != len(detector.columns_):
        raise ValueError("a column name occurs twice")
    detector._named = saved_named(state.get("named_"), detector.columns_, "value", "named_")
    detector._thresholder.restore(state["stats"])
    detector._alerts.restore(state["anomaly"])
    detector._grid = TimeGrid.restore(state.get("time_grid"))  # absent from states saved before timestamps
    width = len(detector.columns_) if detector.columns_ is not None else None
    for name in ("history", "mean", "scale", "residual"):
        value = arrays.get(name)
        if value is None:
            continue
        dimensions = 2 if name == "history" else 1
        if value.dtype != np.float64 or value.ndim != dimensions or value.shape[-1:] != (width,):
            raise ValueError(f"array {name} has dtype {value.dtype} and shape {value.shape}")
    history = arrays.get("history")
    if history is not None:
        # Before the first checkpoint, a column whose every reading was missing is NaN (see Preprocessor.impute).
        unknown = np.isnan(history).all(axis=0) if detector.forest_ is None else False
        if not (np.isfinite(history) | unknown).all():
            raise ValueError("the stored history holds NaN or infinite values")
        history = clip_readings(history.copy())  # as on ingest (states saved before the bound hold any value)
    detector._history = history
    preprocessor.mean = arrays.get("mean")
    preprocessor.scale = arrays.get("scale")
    preprocessor.residual = arrays.get("residual")
    preprocessor.check()
    if detector.rows_seen_ and (
        detector._history is None or detector._history.shape[0] != min(detector.rows_seen_, HISTORY)
    ):
        raise ValueError("the stored history does not match the number of rows seen")
    if detector.forest_ is not None:
        expected = preprocessor.shingle_size * preprocessor.channels * width
        if preprocessor.mean is None or preprocessor.residual is None or detector.forest_.dimensions_ != expected:
            raise ValueError(f"the forest has {detector.forest_.dimensions_} dimensions, expected {expected}")
