"""The Numenta Anomaly Benchmark's score (NAB 1.1), computed as NAB's own scorer computes it.

A detector reports an anomaly score in [0, 1] for every row of every file
of a corpus. For each cost profile, NAB:

1. drops each file's *probation* rows (the first 15%, at most 750 rows);
2. gives every remaining row a *sweep score*: inside a labelled window,
   the scaled sigmoid of its position (the window's first row earns
   almost ``tpWeight``, its last almost nothing); outside, a penalty of
   ``fpWeight`` times the scaled sigmoid of the distance past the previous
   window (in window widths), the full ``-fpWeight`` before any window;
3. for a threshold, counts every row whose score is at or above it as a
   detection: a window earns the sweep score of its earliest detection,
   or ``-fnWeight`` when it has none, and every detection outside windows
   adds its (negative) sweep score;
4. chooses the one threshold that maximises the corpus's total (the
   detector's scores, all files at once);
5. normalises: ``100 * (total - null) / (perfect - null)``, where the
   null detector (a constant score of 0.5, at its own best threshold)
   gives ``null`` and ``perfect = tpWeight * windows``.

This follows NAB's ``sweeper.py`` (sweep scores, the threshold sweep),
``optimizer.py`` (one threshold per detector and profile over the corpus)
and ``runner.py`` (normalisation), so that the published scores are
reproduced from the published detector outputs.
"""

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["PROFILES", "nab_score", "scaled_sigmoid", "probation_length"]

PROFILES = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0},
}
"""NAB's three cost profiles (``config/profiles.json``)."""

PROBATION = 0.15
"""Fraction of each file in probation."""

PROBATION_ROWS = 5000
"""Probation never exceeds ``PROBATION * PROBATION_ROWS`` rows (750)."""

NULL_SCORE = 0.5
"""The null detector's constant anomaly score."""

_NO_DETECTION = 1.1
"""The sweep's first threshold, above every score: nothing is detected."""


def scaled_sigmoid(position):
    """NAB's reward at a relative position: ``2 * sigmoid(-5 * position) - 1``, and -1 beyond 3.

    Parameters
    ----------
    position : float or array-like
        -1 is a window's first row, 0 just past its last row; positive
        values are distances past a window, in window widths.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.5)
    (0.98661, 0.0, -1.0)
    """
    x = np.asarray(position, dtype=float)
    with np.errstate(over="ignore"):
        value = np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0)
    return float(value) if value.ndim == 0 else value


def probation_length(num_rows, fraction=PROBATION):
    """Rows in probation for a file of ``num_rows`` rows: ``min(floor(fraction * n), fraction * 5000)``."""
    return int(min(math.floor(fraction * num_rows), fraction * PROBATION_ROWS))


class NABScores(dict):
    """Normalised NAB scores per profile (a dict), with the detail behind them.

    Attributes
    ----------
    files : pandas.DataFrame
        One row per profile and file: the corpus threshold, the file's raw
        score, windows detected and missed, and NAB's row counts (``tp``,
        ``fp``, ``fn``, ``tn``: rows after probation inside windows with or
        without a detection at or above the threshold, and outside them).
    thresholds : dict
        Per profile, the threshold chosen over the corpus.
    raw : dict
        Per profile, the corpus's raw score at that threshold.
    null, perfect : dict
        Per profile, the raw scores of the null detector and of a perfect one.
    """

    def __init__(self, scores, files, thresholds, raw, null, perfect):
        super().__init__(scores)
        self.files = files
        self.thresholds = thresholds
        self.raw = raw
        self.null = null
        self.perfect = perfect


class _File:
    """One file's scores, windows (as inclusive row positions) and probation."""

    def __init__(self, name, times, scores, windows, fraction):
        self.name = name
        self.scores = scores
        self.probation = probation_length(len(scores), fraction)
        self.windows = []
        for start, end in windows:
            first = int(times.searchsorted(pd.Timestamp(start), side="left"))
            last = int(times.searchsorted(pd.Timestamp(end), side="right")) - 1
            if last < first:
                raise ValueError(f"{name}: window ({start}, {end}) holds no row")
            self.windows.append((first, last))
        self.windows.sort()

    def sweep(self, costs):
        """Per row: the sweep score and the window it lies in (-1 outside, -2 in probation)."""
        n = len(self.scores)
        sweep = np.full(n, -costs["fpWeight"])
        window = np.full(n, -1)
        top = scaled_sigmoid(-1.0)
        rows = np.arange(n)
        for k, (first, last) in enumerate(self.windows):
            width = last - first + 1
            inside = rows[first : last + 1]
            sweep[first : last + 1] = scaled_sigmoid(-(last - inside + 1) / width) * costs["tpWeight"] / top
            window[first : last + 1] = k
            end = self.windows[k + 1][0] if k + 1 < len(self.windows) else n
            after = rows[last + 1 : end]
            with np.errstate(divide="ignore"):
                # A window of one row puts every later row infinitely far (NAB divides by zero there).
                position = np.abs(last - after) / float(width - 1) if width > 1 else np.full(after.size, np.inf)
            sweep[last + 1 : end] = scaled_sigmoid(position) * costs["fpWeight"]
        window[: self.probation] = -2
        return sweep, window


def _by_threshold(scores, sweep, window, num_windows, fn_weight):
    """NAB's threshold sweep over scorable rows: every distinct score and the total it gives.

    Returns the thresholds (descending, starting above every score) and
    the corpus total when the rows scoring at least each one are detections.
    """
    order = np.argsort(-scores, kind="stable")
    scores, sweep, window = scores[order], sweep[order], window[order]
    # Windows whose rows all lie in probation are not scored (NAB leaves them out).
    best = np.zeros(num_windows)
    best[np.unique(window[window >= 0])] = -fn_weight
    total_fp = 0.0
    thresholds, totals = [], []
    current = _NO_DETECTION
    for score, value, k in zip(scores.tolist(), sweep.tolist(), window.tolist()):
        if score != current:
            thresholds.append(current)
            totals.append(total_fp + best.sum())
            current = score
        if k < 0:
            total_fp += value
        elif value > best[k]:
            best[k] = value
    thresholds.append(current)
    totals.append(total_fp + best.sum())
    return np.array(thresholds), np.array(totals)


def _file_score(scores, sweep, window, num_windows, threshold, fn_weight):
    """A file's raw score and counts when rows scoring at least ``threshold`` are detections."""
    keep = window != -2
    detected = keep & (scores >= threshold)
    outside = window == -1
    best = np.full(num_windows, -fn_weight)
    for k in range(num_windows):
        hits = detected & (window == k)
        if hits.any():
            best[k] = sweep[hits].max()
    present = np.unique(window[keep & ~outside])
    hit = int(sum(bool((detected & (window == k)).any()) for k in present))
    return {
        "score": float(sweep[detected & outside].sum() + best[present].sum()),
        "windows": int(present.size),
        "detected": hit,
        "missed": int(present.size - hit),
        "tp": int((detected & ~outside).sum()),
        "fp": int((detected & outside).sum()),
        "fn": int((keep & ~outside & ~detected).sum()),
        "tn": int((keep & outside & ~detected).sum()),
    }


def _read_scores(scores):
    """``{"<category>/<file>.csv": (timestamps, scores)}`` from a folder or a dict of frames."""
    if isinstance(scores, (str, os.PathLike)):
        root = Path(scores)
        if not root.is_dir():
            raise ValueError(f"{root} is not a folder of detector outputs (<category>/<file>.csv[.gz])")
        frames = {}
        for path in sorted(root.rglob("*.csv*")):
            if path.suffix not in (".csv", ".gz") or (path.suffix == ".gz" and not path.name.endswith(".csv.gz")):
                continue
            key = path.relative_to(root).as_posix().removesuffix(".gz")
            frames[key] = pd.read_csv(path)
        if not frames:
            raise ValueError(f"{root} holds no <category>/<file>.csv files")
    elif isinstance(scores, dict):
        frames = scores
    else:
        raise TypeError(f"scores must be a folder or a dict of DataFrames, got {type(scores).__name__}")
    out = {}
    for key, frame in frames.items():
        if isinstance(frame, pd.Series):
            times, values = frame.index, frame.to_numpy()
        elif isinstance(frame, pd.DataFrame) and {"timestamp", "anomaly_score"} <= set(frame.columns):
            times, values = frame["timestamp"], frame["anomaly_score"].to_numpy()
        else:
            raise ValueError(f"{key}: pass a DataFrame with 'timestamp' and 'anomaly_score' columns")
        values = np.asarray(values, dtype=float)
        if not np.isfinite(values).all():
            raise ValueError(f"{key}: anomaly scores must be finite numbers")
        times = pd.DatetimeIndex(pd.to_datetime(times))
        if not times.is_monotonic_increasing:
            raise ValueError(f"{key}: timestamps must be in ascending order")
        out[str(key).replace(os.sep, "/")] = (times, values)
    return out


def _read_json(value, what):
    """A dict from a dict or from the path of a JSON file (gzipped or not)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            return json.load(handle)
    raise TypeError(f"{what} must be a dict or the path of a JSON file, got {type(value).__name__}")


def _cost_matrices(profiles):
    """Cost matrices per profile from ``None`` (NAB's), a dict or a ``profiles.json`` path."""
    if profiles is None:
        return dict(PROFILES)
    profiles = _read_json(profiles, "profiles")
    costs = {}
    for name, profile in profiles.items():
        matrix = profile.get("CostMatrix", profile) if isinstance(profile, dict) else None
        if not isinstance(matrix, dict) or not {"tpWeight", "fpWeight", "fnWeight"} <= set(matrix):
            raise ValueError(f"profile {name!r} needs tpWeight, fpWeight and fnWeight (optionally under CostMatrix)")
        costs[name] = {key: float(matrix[key]) for key in ("tpWeight", "fpWeight", "fnWeight")}
    return costs


def _raw_scores(files, costs):
    """Per file: sweep scores and windows; corpus threshold, raw total and per-file detail."""
    parts = [(f, *f.sweep(costs)) for f in files]
    offsets = np.cumsum([0] + [len(f.windows) for f in files])
    keep = [window != -2 for _, _, window in parts]
    scores = np.concatenate([f.scores[k] for (f, _, _), k in zip(parts, keep)])
    sweep = np.concatenate([s[k] for (_, s, _), k in zip(parts, keep)])
    window = np.concatenate([np.where(w[k] >= 0, w[k] + o, w[k]) for (_, _, w), k, o in zip(parts, keep, offsets)])
    thresholds, totals = _by_threshold(scores, sweep, window, int(offsets[-1]), costs["fnWeight"])
    best = int(np.argmax(totals))  # the first (highest) threshold among equal totals, as NAB's sort keeps
    threshold = float(thresholds[best])
    detail = [
        {"file": f.name, **_file_score(f.scores, s, w, len(f.windows), threshold, costs["fnWeight"])}
        for f, s, w in parts
    ]
    return threshold, float(totals[best]), detail


def nab_score(scores, windows, profiles=None, *, probation=PROBATION):
    """Score a detector's outputs on a NAB corpus, normalised as NAB does (null = 0, perfect = 100).

    Parameters
    ----------
    scores : str, os.PathLike or dict
        A folder laid out like NAB's results (``<category>/<file>.csv`` or
        ``.csv.gz`` with ``timestamp`` and ``anomaly_score`` columns), or a
        dict from ``"<category>/<file>.csv"`` to such a DataFrame (or to a
        Series of scores indexed by timestamp). Scores should lie in [0, 1].
    windows : str, os.PathLike or dict
        NAB's ``combined_windows.json`` (its path or its content): per file,
        a list of ``[start, end]`` timestamps, inclusive. Every scored file
        needs an entry; entries of files not scored are ignored.
    profiles : None, str, os.PathLike or dict, default None
        Cost profiles: NAB's three (:data:`PROFILES`) by default, or
        NAB's ``profiles.json`` (path or content).
    probation : float, default 0.15
        Fraction of each file in probation (at most ``probation * 5000`` rows).

    Returns
    -------
    NABScores
        A dict from profile name to normalised score, with ``.files`` (a
        DataFrame of per-file detail), ``.thresholds``, ``.raw``, ``.null``
        and ``.perfect``.

    Notes
    -----
    Rows are matched to windows by time: a window covers the rows from its
    start to its end timestamp, inclusive (NAB's windows start and end on
    rows of their file). The null detector's baseline is computed on the
    same files and timestamps, so scoring NAB's ``null`` outputs gives 0.

    Examples
    --------
    >>> times = pd.date_range("2024-01-01", periods=100, freq="h")
    >>> windows = {"demo/a.csv": [[str(times[50]), str(times[59])]]}
    >>> found = pd.DataFrame({"timestamp": times, "anomaly_score": (np.arange(100) == 50) * 1.0})
    >>> nab_score({"demo/a.csv": found}, windows)["standard"]
    100.0
    """
    outputs = _read_scores(scores)
    labels = {str(k): v for k, v in _read_json(windows, "windows").items()}
    costs_by_profile = _cost_matrices(profiles)
    if not 0 <= float(probation) < 1:
        raise ValueError(f"probation must be a fraction in [0, 1), got {probation}")
    missing = [name for name in outputs if name not in labels]
    if missing:
        raise ValueError(f"no windows for {missing}; windows must name every scored file")
    files, nulls = [], []
    for name, (times, values) in sorted(outputs.items()):
        files.append(_File(name, times, values, labels[name], probation))
        nulls.append(_File(name, times, np.full(len(values), NULL_SCORE), labels[name], probation))
    num_windows = sum(len(f.windows) for f in files)
    result, raw, null, perfect, thresholds, detail = {}, {}, {}, {}, {}, []
    for profile, costs in costs_by_profile.items():
        thresholds[profile], raw[profile], rows = _raw_scores(files, costs)
        _, null[profile], _ = _raw_scores(nulls, costs)
        perfect[profile] = num_windows * costs["tpWeight"]
        span = perfect[profile] - null[profile]
        result[profile] = 100.0 * (raw[profile] - null[profile]) / span if span else float("nan")
        detail += [{"profile": profile, "threshold": thresholds[profile], **row} for row in rows]
    return NABScores(result, pd.DataFrame(detail), thresholds, raw, null, perfect)
