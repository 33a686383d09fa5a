"""Detection quality: point metrics and event (window) metrics for labelled streams.

Two views of the same alerts:

- **Point metrics** compare an alert flag with a label row by row
  (precision, recall, F1 and accuracy of the anomalous class), as
  SageMaker's test channel reports them.
- **Event metrics** follow the Numenta Anomaly Benchmark (NAB): anomalies
  are labelled as windows of rows; a window is *hit* when at least one
  row inside it is alerted, the *time to detect* is the delay from the
  window's opening to its first alert, and every run of consecutive
  alerted rows outside all windows is one *false-positive event*. Rows
  in an initial probation period (NAB: the first 15% of a file, 750 rows
  for NYC taxi) can be left out of the false-positive count.

Everything here is plain numpy and pandas; inputs may be arrays, lists or
pandas objects, and nothing is modified in place.
"""

import numpy as np
import pandas as pd

__all__ = [
    "point_metrics",
    "window_mask",
    "alert_events",
    "window_metrics",
    "precision_at_k",
    "top_days",
]


def _flags(values, name):
    """Return ``values`` as a 1-D boolean array (non-zero, non-NaN means True)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.dtype.kind == "f":
        return np.nan_to_num(array, nan=0.0) > 0
    if array.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold booleans or numbers, got dtype {array.dtype}")
    return array > 0


def point_metrics(labels, alerts):
    """Precision, recall, F1 and accuracy of per-row alerts.

    Parameters
    ----------
    labels : array-like of bool or {0, 1}, shape (n_rows,)
        True for anomalous rows.
    alerts : array-like of shape (n_rows,)
        The detector's decisions: booleans, or grades/scores where any
        value above 0 counts as an alert.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``accuracy`` (floats; precision
        is 0 when nothing is alerted, recall is 0 when nothing is labelled)
        and the counts ``tp``, ``fp``, ``fn``, ``tn``.

    Examples
    --------
    >>> m = point_metrics([0, 1, 1, 0], [0, 1, 0, 1])
    >>> m["precision"], m["recall"], m["accuracy"]
    (0.5, 0.5, 0.5)
    """
    truth = _flags(labels, "labels")
    predicted = _flags(alerts, "alerts")
    if truth.shape != predicted.shape:
        raise ValueError(f"labels has {truth.size} rows but alerts has {predicted.size}; pass one value per row")
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    tn = int(np.sum(~truth & ~predicted))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (tp + tn) / truth.size if truth.size else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": accuracy,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def _window_positions(windows, index, num_rows):
    """Translate windows to inclusive ``(first, last)`` row positions.

    Windows given as labels (timestamps, say) are looked up in ``index``;
    windows given as integers without an index are row positions.
    """
    positions = []
    for window in windows:
        if len(window) != 2:
            raise ValueError(f"each window must be a (start, end) pair, got {window!r}")
        start, end = window
        if index is None:
            first, last = int(start), int(end)
        else:
            index = pd.Index(index)
            if isinstance(index, pd.DatetimeIndex):
                start, end = pd.Timestamp(start), pd.Timestamp(end)
            first = int(index.searchsorted(start, side="left"))
            last = int(index.searchsorted(end, side="right")) - 1
        if last < first:
            raise ValueError(f"window {window!r} is empty or reversed")
        positions.append((max(first, 0), min(last, num_rows - 1)))
    return positions


def window_mask(num_rows, windows, index=None):
    """Boolean mask of the rows that lie inside any window.

    Parameters
    ----------
    num_rows : int
    windows : sequence of (start, end)
        Inclusive bounds: index labels (for example timestamps) when
        ``index`` is given, else row positions.
    index : array-like, optional
        The rows' labels, sorted ascending (a DatetimeIndex, say).

    Returns
    -------
    ndarray of bool, shape (num_rows,)
    """
    mask = np.zeros(num_rows, bool)
    for first, last in _window_positions(windows, index, num_rows):
        mask[first : last + 1] = True
    return mask


def alert_events(alerts):
    """Runs of consecutive alerted rows.

    Parameters
    ----------
    alerts : array-like of shape (n_rows,)
        Booleans, or grades where any value above 0 is an alert.

    Returns
    -------
    list of (int, int)
        Inclusive ``(first, last)`` row positions of each run, in order.

    Examples
    --------
    >>> alert_events([0, 1, 1, 0, 0, 1])
    [(1, 2), (5, 5)]
    """
    flags = _flags(alerts, "alerts").astype(np.int8)
    edges = np.diff(np.r_[0, flags, 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def window_metrics(alerts, windows, index=None, probation=0):
    """NAB-style event metrics: windows hit, false-positive events, time to detect.

    Parameters
    ----------
    alerts : array-like of shape (n_rows,)
        Booleans, or grades where any value above 0 is an alert.
    windows : sequence of (start, end)
        Labelled anomaly windows, inclusive; index labels when ``index``
        is given (timestamps, say), else row positions.
    index : array-like, optional
        Labels of the rows, sorted ascending; by default the index of
        ``alerts`` when it is a pandas Series. When it is a DatetimeIndex,
        times to detect are also given as ``pandas.Timedelta``.
    probation : int, default 0
        Number of leading rows not counted as false positives (NAB's
        probation period). Hits inside windows count wherever they are.

    Returns
    -------
    dict
        ``windows``: number of windows; ``windows_hit``: how many hold an
        alert; ``hit``: list of bool per window; ``detect_rows``: per
        window, the row position of its first alert (None if missed);
        ``time_to_detect``: per window, rows from the window's opening to
        that alert (None if missed); ``time_to_detect_time``: the same as
        Timedeltas when the index holds times, else None;
        ``false_positive_events``: number of runs of alerted rows outside
        the windows that end at or after ``probation`` (a run is cut at
        ``probation``: only its part after it counts); ``false_positive_rows``:
        alerted rows outside windows after probation; ``false_positive_spans``:
        the inclusive row ranges of those events.

    Examples
    --------
    >>> alerts = [0, 0, 1, 1, 0, 0, 1, 0, 0, 1]
    >>> m = window_metrics(alerts, [(1, 4), (7, 8)])
    >>> m["windows_hit"], m["time_to_detect"], m["false_positive_events"]
    (1, [1, None], 2)
    """
    if index is None and isinstance(alerts, pd.Series):
        index = alerts.index
    flags = _flags(alerts, "alerts")
    num_rows = flags.size
    if index is not None and len(index) != num_rows:
        raise ValueError(f"index has {len(index)} labels but alerts has {num_rows} rows")
    probation = int(probation)
    if probation < 0:
        raise ValueError(f"probation must be >= 0, got {probation}")
    spans = _window_positions(windows, index, num_rows)
    inside = np.zeros(num_rows, bool)
    detect_rows, delays, delay_times = [], [], []
    times = pd.Index(index) if index is not None else None
    for first, last in spans:
        inside[first : last + 1] = True
        hits = np.flatnonzero(flags[first : last + 1])
        if hits.size:
            row = first + int(hits[0])
            detect_rows.append(row)
            delays.append(row - first)
            delay_times.append(times[row] - times[first] if isinstance(times, pd.DatetimeIndex) else None)
        else:
            detect_rows.append(None)
            delays.append(None)
            delay_times.append(None)
    outside = flags & ~inside
    outside[:probation] = False
    fp_spans = alert_events(outside)
    return {
        "windows": len(spans),
        "windows_hit": sum(row is not None for row in detect_rows),
        "hit": [row is not None for row in detect_rows],
        "detect_rows": detect_rows,
        "time_to_detect": delays,
        "time_to_detect_time": delay_times if isinstance(times, pd.DatetimeIndex) else None,
        "false_positive_events": len(fp_spans),
        "false_positive_rows": int(outside.sum()),
        "false_positive_spans": fp_spans,
    }


def precision_at_k(ranking, relevant, k):
    """Fraction of the ``k`` highest-ranked items that are relevant.

    Parameters
    ----------
    ranking : array-like of shape (n_items,)
        Higher ranks first. Ties are broken by position (earlier first).
    relevant : array-like of bool, shape (n_items,)
    k : int
        Must be at least 1; when fewer than ``k`` items exist, all are used.

    Returns
    -------
    float

    Examples
    --------
    >>> precision_at_k([0.9, 0.1, 0.8, 0.3], [True, False, False, True], k=2)
    0.5
    """
    values = np.asarray(ranking, dtype=float)
    truth = _flags(relevant, "relevant")
    if values.shape != truth.shape:
        raise ValueError(f"ranking has {values.size} items but relevant has {truth.size}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[: int(k)]
    return float(truth[order].mean()) if order.size else 0.0


def top_days(index, grades, scores=None, windows=None, k=10, probation=0):
    """The ``k`` calendar days with the highest grade, and whether each lies in a window.

    A day's rank is its highest grade; ties (typically days without any
    alert, all at grade 0) are broken by the day's highest score when
    ``scores`` is given. A day counts as inside a window when the row that
    gives it its rank lies inside one.

    Parameters
    ----------
    index : DatetimeIndex or array-like of datetimes, shape (n_rows,)
    grades : array-like of shape (n_rows,)
    scores : array-like of shape (n_rows,), optional
        Tie-breaker, typically the raw anomaly score.
    windows : sequence of (start, end), optional
        Labelled windows as timestamps.
    k : int, default 10
    probation : int, default 0
        Leading rows left out of the ranking.

    Returns
    -------
    pandas.DataFrame
        One row per day, best first, with columns ``day``, ``grade``,
        ``score``, ``row`` (the ranked row's position), ``time`` and
        ``in_window``; ``frame.attrs["precision"]`` holds the fraction of
        the days inside windows (NaN without windows).
    """
    times = pd.DatetimeIndex(pd.to_datetime(index))
    grade = np.nan_to_num(np.asarray(grades, dtype=float), nan=0.0)
    score = np.zeros_like(grade) if scores is None else np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    if grade.shape != (len(times),) or score.shape != grade.shape:
        raise ValueError(f"index, grades and scores must have one value per row ({len(times)} rows)")
    frame = pd.DataFrame({"day": times.normalize(), "grade": grade, "score": score, "row": np.arange(len(times))})
    frame = frame.iloc[int(probation) :]
    frame = frame.sort_values(["grade", "score", "row"], ascending=[False, False, True], kind="stable")
    best = frame.drop_duplicates("day").head(int(k)).reset_index(drop=True)
    best["time"] = times[best["row"].to_numpy()]
    if windows is None:
        best["in_window"] = False
        best.attrs["precision"] = float("nan")
    else:
        inside = window_mask(len(times), windows, times)
        best["in_window"] = inside[best["row"].to_numpy()]
        best.attrs["precision"] = float(best["in_window"].mean()) if len(best) else 0.0
    return best
