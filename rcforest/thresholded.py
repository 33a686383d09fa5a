"""Streaming anomaly detection that decides: scores, thresholds, grades and explanations.

:class:`ThresholdedForest` wraps a streaming :class:`~rcforest.forest.Forest`
and turns its raw scores into alerts a user can act on, one row at a time
and without looking ahead:

1. **Transform.** Each input row is normalised and, with the default
   ``transform="auto"``, paired with its deviation from a reference: the
   median of the values one, two and three periods back (the previous
   value when no period is known). The period is estimated from the
   autocorrelation of the detrended history (:func:`estimate_period`).
2. **Shingle.** The last ``shingle_size`` transformed rows form the point
   the forest scores; the point is scored before it joins the forest.
3. **Threshold.** A discounted mean and deviation of past scores give an
   adaptive threshold, ``max(min_threshold, mean + z_factor * deviation)``,
   that follows drift (the idea of AWS's ``BasicThresholder``).
4. **Explain and decide.** A row whose score passes the threshold is
   explained: the attribution names the input column and shingle position
   that drive the score, and the forest's expected value for that entry is
   the value that would make the score lowest. Deviations from the
   expected value smaller than ``min_deviation`` typical residuals (and,
   optionally, smaller than a fraction of the expected value) are ignored.
   One alert is raised per anomaly: rows that merely continue it are not
   graded again unless it gets clearly worse after a full shingle.

Notes
-----
Rows before the first checkpoint (128 rows) only fill the history. At
checkpoints (128, 192, 256, 384, ... 4096 rows, then every 2048 rows) the
period and the typical residual are re-estimated; when the period
changes, the transform is refitted and the forest and the threshold
statistics are rebuilt by replaying the stored history (the last 4096
rows), so the detector behaves as if it had used that period from the
start. Every output for a row depends only on that row and the rows
before it, and on nothing else: a stream fed in any chunks, row by row
or restored from a saved state gives bit-identical results.

The design follows AWS's ThresholdedRandomCutForest (random-cut-forest-by-aws:
``BasicThresholder``, ``PredictorCorrector``) and OpenSearch anomaly
detection's rule of ignoring deviations small relative to the expected value.
"""

import copy
import math
import os

import numpy as np
import pandas as pd

from rcforest import _format, _state
from rcforest._core import check_float, check_int
from rcforest.forest import Forest

__all__ = ["ThresholdedForest", "estimate_period"]

_FORMAT_NAME = "rcforest-thresholded"
_FORMAT_VERSION = 1
_TRANSFORMS = ("auto", "normalize", "difference", "normalize_difference", "none")
# Row counts at which the period is re-estimated; the history keeps the last _HISTORY rows.
_CHECKPOINTS = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
_CHECKPOINT_EVERY = 2048  # after the last listed checkpoint
_HISTORY = 4096
_MAX_PERIOD = 1024  # three periods must fit in the history
_SEASONS = 3  # periods back used by the seasonal reference
# Below this many rows per call, rows are scored one by one; above it, on a copy of the forest.
_BATCH_ROWS = 32
_CANDIDATES = 33  # values tried when looking for the expected value
_INITIAL_THRESHOLD = 1.5  # AWS's initial threshold, used while few scores are known
_RAMP = 20
_COLUMNS = ["score", "grade", "threshold", "confidence", "attribution", "expected_value", "start_of_anomaly", "imputed"]


def _autocorrelation(values, max_lag):
    """Mean over columns of the autocorrelation of the linearly detrended columns.

    Each lag's sum is divided by its number of pairs (the unbiased
    estimator), so long periods are not penalised.
    """
    n = values.shape[0]
    time = np.arange(n) - (n - 1) / 2
    total = np.zeros(max_lag + 1)
    used = 0
    for column in values.T:
        slope = np.dot(time, column) / np.dot(time, time)
        residual = column - column.mean() - slope * time
        power = np.dot(residual, residual)
        if not power > 1e-300:
            continue
        spectrum = np.fft.rfft(residual, 2 * n)
        acf = np.fft.irfft(spectrum * np.conj(spectrum), 2 * n)[: max_lag + 1] / power
        total += acf * n / (n - np.arange(max_lag + 1))
        used += 1
    return total / used if used else total


def _explains(values, lag):
    """Whether values one ``lag`` back predict a series about as well as the previous value.

    A true period passes; the long "periods" that random walks and slow
    drifts show in their autocorrelation fail, since their values drift far
    over a lag.
    """
    seasonal = np.abs(values[lag:] - values[:-lag]).mean()
    previous = np.abs(values[1:] - values[:-1]).mean()
    return seasonal <= 4 * previous


def estimate_period(values, max_period=_MAX_PERIOD, min_strength=0.3, tolerance=0.03, current=0, switch=0.05):
    """Estimate the dominant period of a series from its autocorrelation.

    Parameters
    ----------
    values : array-like of shape (n_rows,) or (n_rows, n_columns)
        The series, oldest first, without missing values.
    max_period : int, default 1024
        Longest period considered; periods up to ``0.6 * n_rows`` can be
        found, so at least about 1.7 cycles must have been seen.
    min_strength : float, default 0.3
        Smallest autocorrelation that counts as periodic. At long lags,
        where fewer pairs are averaged, the bar rises to
        ``4 / sqrt(n_rows - lag)`` (four standard errors of white noise).
    tolerance : float, default 0.03
        Among peaks whose autocorrelation is within ``tolerance`` of the
        strongest, the shortest lag wins, so a period is preferred to its
        multiples unless a multiple (a week over a day) is clearly stronger.
    current : int, default 0
        The period in use, if any. It is kept unless the best peak's
        autocorrelation beats the one at ``current`` by more than ``switch``,
        anywhere within 5% of ``current`` by more than ``switch``, so estimates
        do not flip between near-equal lags; an estimate within 5% of
        ``current`` replaces it only when they differ by 2 rows or more and
        its autocorrelation is higher by more than 0.01.
    switch : float, default 0.05

    Returns
    -------
    int
        The period in rows; ``current`` when the series shows no other and
        ``current`` still predicts it; else 0.

    Notes
    -----
    The columns are detrended (least-squares line) first. A lag is a
    candidate when it is a local maximum of the autocorrelation that rises
    at least 0.15 above its lowest value between half the lag and the lag,
    which rules out the slowly decaying curves of trends and random walks,
    and when the value one period back predicts the series about as well
    as the previous value does (mean absolute error at most four times as
    large), which rules out the spurious long lags of random walks.

    Examples
    --------
    >>> t = np.arange(500)
    >>> estimate_period(np.sin(2 * np.pi * t / 24))
    24
    """
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    n = array.shape[0]
    max_lag = min(int(max_period), int(0.6 * (n - 1)))
    if max_lag < 4 or not np.isfinite(array).all():
        return int(current)
    if current and (current >= n or not _explains(array, current)):
        current = 0
    acf = _autocorrelation(array, max_lag + 1)
    peaks = []
    for lag in range(2, max_lag + 1):
        value = acf[lag]
        if value < max(min_strength, 4 / np.sqrt(n - lag)) or value < acf[lag - 1] or value < acf[lag + 1]:
            continue
        if value - acf[lag // 2 : lag + 1].min() < 0.15:
            continue
        peaks.append((lag, value))
    if not peaks:
        return int(current)
    best = max(value for _, value in peaks)
    lag = min(lag for lag, value in peaks if value >= best - tolerance)
    # The unbiased estimator picks the period; the biased one, less noisy
    # at long lags, places it.
    low, high = max(2, lag - lag // 10 - 1), min(max_lag, lag + lag // 10 + 1)
    biased = acf[low : high + 1] * (n - np.arange(low, high + 1)) / n
    lag = low + int(np.argmax(biased))
    if not _explains(array, lag):
        return int(current)
    if 2 <= current <= max_lag:
        near = acf[max(2, current - current // 20 - 1) : current + current // 20 + 2].max()
        if abs(lag - current) <= max(1, current // 20):
            better = abs(lag - current) >= 2 and acf[lag] > acf[current] + 0.01
            return int(lag if better else current)
        if near >= acf[lag] - switch:
            return int(current)
    return int(lag)


def _next_checkpoint(rows):
    """The first checkpoint after ``rows`` rows."""
    for checkpoint in _CHECKPOINTS:
        if checkpoint > rows:
            return checkpoint
    last = _CHECKPOINTS[-1]
    return last + (1 + (rows - last) // _CHECKPOINT_EVERY) * _CHECKPOINT_EVERY


def _as_table(data):
    """Convert input rows to float64 ``(values, index, columns)``, NaN allowed for missing."""
    if isinstance(data, pd.DataFrame):
        bad = [str(c) for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
        if bad:
            raise TypeError(f"columns {bad} are not numeric; select the numeric columns or convert them")
        return data.to_numpy(dtype=np.float64, na_value=np.nan), data.index, [str(c) for c in data.columns]
    if isinstance(data, pd.Series):
        if not pd.api.types.is_numeric_dtype(data):
            raise TypeError(f"the series holds {data.dtype} values; convert it with pd.to_numeric")
        name = str(data.name) if data.name is not None else "value"
        return data.to_numpy(dtype=np.float64, na_value=np.nan)[:, None], data.index, [name]
    if isinstance(data, (str, bytes, dict)) or data is None:
        raise TypeError(f"pass an array, a list or a pandas object, got {type(data).__name__}")
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError("the input must hold numbers (None or NaN for missing values)") from None
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"pass a 1-D series or a 2-D (rows x columns) table, got shape {array.shape}")
    return array, None, None


class ThresholdedForest:
    """Streaming anomaly detector with adaptive thresholds, grades and explanations.

    Parameters
    ----------
    shingle_size : int or None, default None
        Rows per forest point. None chooses it from the period:
        ``clip(period, 8, 48)``, or 8 when no period is known.
    num_trees : int, default 100
    sample_size : int, default 256
        Points each tree keeps.
    random_state : int, default 0
        Seed; the same seed and input give the same output.
    time_decay : float or None, default None
        Reservoir decay of the forest; None uses AWS's default
        ``1 / (10 * sample_size)``, which follows drift.
    period : "auto", int or None, default "auto"
        Seasonal period in rows: estimated from the stream ("auto"),
        fixed, or None (0) for no seasonal reference.
    transform : {"auto", "normalize", "difference", "normalize_difference", "none"}, default "auto"
        Input transform. "auto" feeds each normalised value together with
        its deviation from the seasonal reference (or from the previous
        value). The others feed one channel per column: the normalised
        value, the raw first difference, the normalised first difference,
        or the raw value.
    z_factor : float, default 3.0
        Deviations of the score above its discounted mean that make the
        threshold.
    min_threshold : float, default 0.9
        Floor of the threshold, on the score scale (about 1 for typical
        points), so that very regular series do not alert on noise.
    threshold_horizon : int, default 1024
        Rows over which the score mean and deviation are averaged (the
        discount is ``1 / threshold_horizon``).
    min_deviation : float, default 5.0
        Ignore candidate anomalies whose deviation from the expected value
        is below this many typical residuals of the column. A residual is a
        value minus its reference (the median of the values one to three
        periods back, or the previous value); the typical residual is their
        mean absolute deviation from their median over the history.
    ignore_relative : float, default 0.0
        Ignore candidate anomalies whose deviation is below this fraction
        of the absolute expected value (OpenSearch uses 0.2). Off by
        default because it depends on the series' offset.
    n_jobs : int or None, default None
        Threads for the forest's kernels.

    Attributes
    ----------
    forest_ : Forest or None
        The forest, once the first checkpoint is reached.
    period_ : int
        The seasonal period in use (0 for none).
    shingle_size_ : int
        The shingle size in use.
    rows_seen_ : int
        Rows processed so far.

    Notes
    -----
    Output columns of :meth:`run` (and keys of :meth:`process`):

    - ``score``: the forest's expected-inverse-depth score (NaN while warming up);
    - ``grade``: in [0, 1]; 0 means no alert. Only the row where an anomaly
      is first reported (or clearly worsens) is graded. The grade is the
      larger of ``(score - threshold) / (threshold - mean score)`` and
      ``(deviation - min_deviation) / (2 * min_deviation)``, with the
      deviation from the expected value in typical residuals, capped at 1;
    - ``threshold``: the adaptive threshold the score was compared with;
    - ``confidence``: in [0, 1], grows as the forest and the statistics fill;
    - ``attribution``: for alerts, the input column and lag that drive the
      score, as ``"column[t-k]"``; empty otherwise;
    - ``expected_value``: for alerts, what the forest expected for that
      entry (the attributed column at the attributed lag);
    - ``start_of_anomaly``: for alerts, how many rows back the anomaly began:
      the oldest shingle position holding at least half of the largest
      per-position attribution;
    - ``imputed``: True for rows with missing values, which are filled with
      their reference value, learned, and never alerted.

    Series that wander like random walks have no stable level for the
    normalised channel; ``transform="difference"`` suits them better.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1500)
    >>> series = 10 * np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(size=t.size)
    >>> series[1000] += 40
    >>> out = ThresholdedForest().run(series)
    >>> int(out["grade"].to_numpy().argmax())
    1000
    """

    def __init__(
        self,
        shingle_size=None,
        num_trees=100,
        sample_size=256,
        random_state=0,
        *,
        time_decay=None,
        period="auto",
        transform="auto",
        z_factor=3.0,
        min_threshold=0.9,
        threshold_horizon=1024,
        min_deviation=5.0,
        ignore_relative=0.0,
        n_jobs=None,
    ):
        self.shingle_size = None if shingle_size is None else check_int(shingle_size, "shingle_size", 1)
        self.num_trees = check_int(num_trees, "num_trees", 1)
        self.sample_size = check_int(sample_size, "sample_size", 4)
        self.random_state = check_int(random_state, "random_state", 0)
        self.time_decay = None if time_decay is None else check_float(time_decay, "time_decay")
        if period == "auto" or period is None:
            self.period = period
        else:
            self.period = check_int(period, "period", 0, _MAX_PERIOD)
        if transform not in _TRANSFORMS:
            raise ValueError(f"transform must be one of {list(_TRANSFORMS)}, got {transform!r}")
        self.transform = transform
        self.z_factor = check_float(z_factor, "z_factor")
        self.min_threshold = check_float(min_threshold, "min_threshold")
        self.threshold_horizon = check_int(threshold_horizon, "threshold_horizon", 2)
        self.min_deviation = check_float(min_deviation, "min_deviation")
        self.ignore_relative = check_float(ignore_relative, "ignore_relative")
        self.n_jobs = None if n_jobs is None else check_int(n_jobs, "n_jobs", 1)
        self._reset()

    def _reset(self):
        """Forget everything learned: the state of a detector that has seen no rows."""
        self.forest_ = None
        self.period_ = 0
        self.shingle_size_ = 0
        self.rows_seen_ = 0
        self.columns_ = None
        self._history = None
        self._mean = None
        self._scale = None
        self._residual = None
        self._stats = {"mean": 0.0, "var": 0.0, "count": 0}
        self._anomaly = {"active": False, "peak": 0.0, "quiet": 0, "since": 0}

    def __repr__(self):
        return (
            f"ThresholdedForest(shingle_size={self.shingle_size}, num_trees={self.num_trees}, "
            f"sample_size={self.sample_size}, random_state={self.random_state}, period={self.period!r}, "
            f"transform={self.transform!r})"
        )

    # ------------------------------------------------------------ transform

    @property
    def _decay(self):
        """The forest's reservoir decay (AWS's default unless ``time_decay`` is set)."""
        return 1.0 / (10 * self.sample_size) if self.time_decay is None else self.time_decay

    def _channels(self):
        """Transformed channels per input column."""
        return 2 if self.transform == "auto" else 1

    def _reference(self, values, first):
        """Reference values for rows ``first ..`` of ``values``, in raw units.

        The median of the values one, two and three periods back (those that
        exist), or the previous value before a full period or without one.
        """
        rows = np.arange(first, values.shape[0])
        reference = values[np.maximum(rows - 1, 0)].copy()
        period = self.period_
        if period:
            lagged = np.full((_SEASONS,) + reference.shape, np.nan)
            for k in range(1, _SEASONS + 1):
                source = rows - k * period
                ok = source >= 0
                lagged[k - 1, ok] = values[source[ok]]
            seasonal = rows >= period
            reference[seasonal] = np.nanmedian(lagged[:, seasonal], axis=0)
        return reference

    def _features(self, values, first):
        """Transformed rows ``first ..`` of ``values`` (raw rows, no NaN), shape (rows, channels * columns)."""
        mean, scale = self._mean, self._scale
        if self.transform == "none":
            return values[first:].copy()
        if self.transform in ("difference", "normalize_difference"):
            previous = values[np.maximum(np.arange(first, values.shape[0]) - 1, 0)]
            change = values[first:] - previous
            return change if self.transform == "difference" else change / scale
        z = (values[first:] - mean) / scale
        if self.transform == "normalize":
            return z
        return np.concatenate([z, (values[first:] - self._reference(values, first)) / scale], axis=1)

    def _points(self, values, first):
        """Shingled points for rows ``first ..`` of ``values``; needs ``shingle_size_ - 1`` rows before ``first``."""
        size = self.shingle_size_
        features = self._features(values, first - size + 1)
        windows = np.lib.stride_tricks.sliding_window_view(features, size, axis=0)
        return np.ascontiguousarray(windows.transpose(0, 2, 1)).reshape(windows.shape[0], -1)

    def _impute(self, values, row, column):
        """A value for ``values[row, column]``: its reference (see :meth:`_reference`), 0 for the first row."""
        if row == 0:
            return 0.0
        window = values[max(0, row - _SEASONS * self.period_ - 1) : row + 1, column : column + 1]
        return float(self._reference(window, window.shape[0] - 1)[0, 0])

    # ---------------------------------------------------------- thresholds

    def _threshold(self):
        """The current threshold: ``max(min_threshold, mean + z_factor * deviation)``, ramped in."""
        stats = self._stats
        adaptive = stats["mean"] + self.z_factor * math.sqrt(stats["var"])
        # The statistics take over from an initial threshold over the first _RAMP scores.
        weight = min(1.0, stats["count"] / _RAMP)
        return max(self.min_threshold, weight * adaptive + (1 - weight) * _INITIAL_THRESHOLD)

    def _learn_score(self, score):
        """Fold ``score`` into the discounted mean and variance.

        Scores beyond ``mean + 2 * z_factor * deviation`` are clipped there,
        so that a single extreme anomaly does not blind the threshold.
        """
        stats = self._stats
        if stats["count"] >= _RAMP:
            score = min(score, stats["mean"] + 2 * self.z_factor * math.sqrt(stats["var"]))
        alpha = max(1.0 / self.threshold_horizon, 1.0 / (stats["count"] + 1))
        delta = score - stats["mean"]
        stats["mean"] += alpha * delta
        stats["var"] = (1 - alpha) * (stats["var"] + alpha * delta * delta)
        stats["count"] += 1

    def _grade(self, score, threshold):
        """How far ``score`` passes ``threshold``, relative to the threshold's margin over the mean."""
        if not score > threshold:
            return 0.0
        spread = max(threshold - self._stats["mean"], 1e-12)
        return float(min(1.0, (score - threshold) / spread))

    def _confidence(self):
        """Fraction of the reservoir filled times the maturity of the score statistics."""
        filled = min(1.0, self.forest_.points_seen_ / self.sample_size)
        return filled * min(1.0, self._stats["count"] / self.sample_size)

    # ------------------------------------------------------------ checkpoint

    def _checkpoint(self):
        """Re-estimate the period; rebuild the forest from the history when it changes."""
        history = self._history
        period = self.period_
        if self.period == "auto":
            period = estimate_period(history, current=self.period_)
        elif self.period:
            period = self.period
        if self.forest_ is not None and period == self.period_:
            self._residual = self._typical_residual(history)
            return
        self.period_ = period
        if self.shingle_size is not None:
            self.shingle_size_ = self.shingle_size
        else:
            self.shingle_size_ = int(min(max(period, 8), 48)) if period else 8
        self._mean = history.mean(axis=0)
        spread = history.std(axis=0)
        self._scale = np.maximum(spread, 1e-9 * np.maximum(np.abs(self._mean), 1.0))
        self._residual = self._typical_residual(history)
        self.forest_ = Forest(
            num_trees=self.num_trees,
            sample_size=self.sample_size,
            time_decay=self._decay,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        points = self._points(history, self.shingle_size_ - 1)
        scores = self.forest_.score_update(points)
        self._stats = {"mean": 0.0, "var": 0.0, "count": 0}
        # Scores of a young forest (before it has seen half the history and a
        # full period) are inflated by novelty: the statistics skip them.
        for score in scores[max(points.shape[0] // 2, self.period_) :]:
            self._learn_score(float(score))

    def _typical_residual(self, history):
        """Mean absolute deviation of the residuals (value minus reference) from their median.

        Taking it around the median discounts a steady offset, such as a
        trend's growth over the periods the reference reaches back. The
        result is at least 1% of the column's spread.
        """
        residual = history[1:] - self._reference(history, 1)
        typical = np.abs(residual - np.median(residual, axis=0)).mean(axis=0)
        return np.maximum(typical, 0.01 * self._scale)

    # ---------------------------------------------------------------- core

    def _explain(self, forest, values, row, point):
        """Attribution, start and expected value for ``values[row]`` scored as ``point`` by ``forest``."""
        size = self.shingle_size_
        num_columns = values.shape[1]
        high, low = forest.attribution(point[None, :])
        per_dim = (high + low).reshape(size, self._channels(), num_columns).sum(axis=1)
        position, column = np.unravel_index(int(np.argmax(per_dim)), per_dim.shape)
        lag = size - 1 - int(position)
        per_position = per_dim.sum(axis=1)
        strong = np.flatnonzero(per_position >= 0.5 * per_position.max())
        start = size - 1 - int(strong.min())
        target = row - lag
        history = values[max(0, row - _HISTORY) : row + 1, column]
        trial = np.unique(
            np.r_[
                np.quantile(history, np.linspace(0, 1, _CANDIDATES)),
                self._impute(values, target, column),
                values[target, column],
            ]
        )
        window = values[: row + 1].copy()

        def best_of(trial):
            candidates = np.empty((trial.size, point.size))
            for k, value in enumerate(trial):
                window[target, column] = value
                candidates[k] = self._points(window, row)[-1]
            return int(np.argmin(forest.score(candidates)))

        # A coarse pass over the column's quantiles, then a fine one around the best.
        best = best_of(trial)
        fine = np.linspace(trial[max(best - 1, 0)], trial[min(best + 1, trial.size - 1)], _CANDIDATES)
        expected = float(fine[best_of(fine)])
        name = self.columns_[column]
        return {
            "attribution": name if size == 1 else f"{name}[t-{lag}]" if lag else f"{name}[t]",
            "start_of_anomaly": start,
            "expected_value": expected,
            "column": int(column),
            "actual": float(values[target, column]),
        }

    def _deviation(self, explanation):
        """Distance between the driving entry and its expected value, in typical residuals."""
        deviation = abs(explanation["actual"] - explanation["expected_value"])
        return deviation / self._residual[explanation["column"]]

    def _suppressed(self, explanation):
        """Whether the deviation is too small to report (see ``min_deviation``, ``ignore_relative``)."""
        if self._deviation(explanation) < self.min_deviation:
            return True
        deviation = abs(explanation["actual"] - explanation["expected_value"])
        return deviation < self.ignore_relative * abs(explanation["expected_value"])

    def _alert_grade(self, grade, explanation):
        """The reported grade: the score's grade, raised for values far from their expected value.

        The deviation part reaches 1 at ``3 * min_deviation`` typical residuals.
        """
        scale = 2 * max(self.min_deviation, 1.0)
        return float(max(grade, min(1.0, (self._deviation(explanation) - self.min_deviation) / scale)))

    def _score_rows(self, values, start, imputed, out, out_row):
        """Score rows ``start ..`` of ``values`` (the history plus the new rows), then learn them.

        Few rows are scored one by one (the forest runs single points on one
        thread); many rows go through the forest in one streaming call.
        """
        points = self._points(values, start)
        self._decide(values, start, imputed, out, out_row, points, points.shape[0] >= _BATCH_ROWS)

    def _decide(self, values, start, imputed, out, out_row, points, batch):
        """Score, threshold, explain and learn ``points`` (see :meth:`_score_rows`)."""
        forest = self.forest_
        count = points.shape[0]
        if batch:
            # The forest learns the whole block in one call; a copy taken before
            # it is advanced lazily to any row that needs explaining.
            before = copy.deepcopy(forest)
            scores = forest.score_update(points)
        explainer = forest
        learned = 0
        for i in range(count):
            if batch:
                score = float(scores[i])
            else:
                score = float(forest.score(points[i : i + 1])[0])
            threshold = self._threshold()
            grade = self._grade(score, threshold)
            anomaly = self._anomaly
            result = {"attribution": "", "expected_value": np.nan, "start_of_anomaly": 0}
            alert = 0.0
            if anomaly["active"]:
                anomaly["since"] += 1
            if grade > 0 and not imputed[i]:
                worse = anomaly["active"] and anomaly["since"] >= self.shingle_size_ and grade >= anomaly["peak"] + 0.25
                if not anomaly["active"] or worse:
                    if batch:
                        if learned < i:
                            before.update(points[learned:i])
                            learned = i
                        explainer = before
                    explanation = self._explain(explainer, values, start + i, points[i])
                    if not self._suppressed(explanation):
                        alert = self._alert_grade(grade, explanation)
                        result = explanation
                        anomaly.update(active=True, peak=grade, quiet=0, since=0)
                if anomaly["active"]:
                    anomaly["quiet"] = 0
                    anomaly["peak"] = max(anomaly["peak"], grade)
            elif anomaly["active"]:
                anomaly["quiet"] += 1
                if anomaly["quiet"] >= self.shingle_size_:
                    anomaly.update(active=False, peak=0.0, quiet=0, since=0)
            if not imputed[i]:
                self._learn_score(score)
            if not batch:
                forest.update(points[i : i + 1])
            j = out_row + i
            out["score"][j] = score
            out["grade"][j] = alert
            out["threshold"][j] = threshold
            out["confidence"][j] = self._confidence()
            out["attribution"][j] = result["attribution"]
            out["expected_value"][j] = result["expected_value"]
            out["start_of_anomaly"][j] = result["start_of_anomaly"]

    def _ingest(self, rows, out, out_row):
        """Impute, append to the history and (once the forest exists) score ``rows``."""
        history = self._history if self._history is not None else np.empty((0, rows.shape[1]))
        values = np.concatenate([history, rows])
        start = history.shape[0]
        missing = ~np.isfinite(rows)
        imputed = missing.any(axis=1)
        for r, c in np.argwhere(missing):
            values[start + r, c] = self._impute(values, start + r, c)
        out["imputed"][out_row : out_row + rows.shape[0]] = imputed
        if self.forest_ is not None:
            self._score_rows(values, start, imputed, out, out_row)
        self._history = values[-_HISTORY:].copy() if values.shape[0] > _HISTORY else values
        self.rows_seen_ += rows.shape[0]

    def _run_values(self, values):
        """Process rows in order, stopping at each checkpoint; return the output columns as arrays."""
        n = values.shape[0]
        out = {
            "score": np.full(n, np.nan),
            "grade": np.zeros(n),
            "threshold": np.full(n, np.nan),
            "confidence": np.zeros(n),
            "attribution": np.full(n, "", dtype=object),
            "expected_value": np.full(n, np.nan),
            "start_of_anomaly": np.zeros(n, dtype=np.int64),
            "imputed": np.zeros(n, dtype=bool),
        }
        position = 0
        while position < n:
            take = min(n - position, _next_checkpoint(self.rows_seen_) - self.rows_seen_)
            self._ingest(values[position : position + take], out, position)
            position += take
            if self.rows_seen_ == _next_checkpoint(self.rows_seen_ - 1):
                self._checkpoint()
        return out

    def _check_columns(self, values, columns):
        """Record the column names on the first call; check the column count afterwards."""
        if self.columns_ is None:
            self.columns_ = (
                columns
                if columns is not None
                else (["value"] if values.shape[1] == 1 else [f"x{i}" for i in range(values.shape[1])])
            )
        elif values.shape[1] != len(self.columns_):
            raise ValueError(
                f"got {values.shape[1]} columns but the detector was started on {len(self.columns_)} "
                f"({self.columns_}); pass rows with the same columns"
            )

    def run(self, data):
        """Process rows in order and report on each one.

        Parameters
        ----------
        data : array-like of shape (n_rows,) or (n_rows, n_columns), pandas Series or DataFrame
            The next rows of the stream, oldest first. NaN, None and
            infinite values count as missing and are imputed.

        Returns
        -------
        pandas.DataFrame
            One row per input row (the input's index for pandas input, else
            the stream positions) with the columns described in the class
            Notes.
        """
        values, index, columns = _as_table(data)
        self._check_columns(values, columns)
        if values.shape[0] == 0:
            return pd.DataFrame({name: [] for name in _COLUMNS})
        first = self.rows_seen_
        out = self._run_values(values)
        if index is None:
            index = pd.RangeIndex(first, first + values.shape[0])
        return pd.DataFrame(out, index=index, columns=_COLUMNS)

    def process(self, row):
        """Process one row of a live stream.

        Parameters
        ----------
        row : float, sequence of floats, dict or pandas.Series
            One value per column (a scalar for a single series); a dict or
            Series is read in the detector's column order. NaN is imputed.

        Returns
        -------
        dict
            The same fields as a row of :meth:`run`'s output.
        """
        if isinstance(row, dict) or isinstance(row, pd.Series):
            if self.columns_ is None:
                self.columns_ = [str(k) for k in (row.keys() if isinstance(row, dict) else row.index)]
            mapping = {str(k): v for k, v in dict(row).items()}
            missing = [c for c in self.columns_ if c not in mapping]
            if missing:
                raise ValueError(f"the row lacks columns {missing}; pass a value (or NaN) for each of {self.columns_}")
            values = np.array([[np.nan if mapping[c] is None else mapping[c] for c in self.columns_]], dtype=float)
        else:
            values = np.array(row, dtype=float).reshape(1, -1)
        self._check_columns(values, None)
        out = self._run_values(values)
        return {name: (out[name][0].item() if hasattr(out[name][0], "item") else out[name][0]) for name in _COLUMNS}

    # ------------------------------------------------------------------ I/O

    def _params(self):
        """The constructor's arguments, JSON-ready (``n_jobs`` is a runtime choice and is not saved)."""
        return {
            "shingle_size": self.shingle_size,
            "num_trees": self.num_trees,
            "sample_size": self.sample_size,
            "random_state": self.random_state,
            "time_decay": self.time_decay,
            "period": self.period,
            "transform": self.transform,
            "z_factor": self.z_factor,
            "min_threshold": self.min_threshold,
            "threshold_horizon": self.threshold_horizon,
            "min_deviation": self.min_deviation,
            "ignore_relative": self.ignore_relative,
        }

    def save(self, path):
        """Write the detector's full state to ``path``; :meth:`load` continues bit-identically.

        Parameters
        ----------
        path : str or os.PathLike

        Notes
        -----
        The file is in rcforest's format (:mod:`rcforest._format`): a JSON
        header with the parameters, counters and threshold statistics, and
        the history, transform statistics and forest as ``.npy`` arrays;
        reading it uses ``allow_pickle=False``, so loading runs no code.
        """
        state = {
            "params": self._params(),
            "period_": self.period_,
            "shingle_size_": self.shingle_size_,
            "rows_seen_": self.rows_seen_,
            "columns_": self.columns_,
            "stats": self._stats,
            "anomaly": self._anomaly,
        }
        arrays = {"history": self._history, "mean": self._mean, "scale": self._scale, "residual": self._residual}
        arrays = {name: value for name, value in arrays.items() if value is not None}
        forest = None
        if self.forest_ is not None:
            forest, forest_arrays = _state.to_arrays(self.forest_._parts())
            arrays.update({f"forest/{name}": value for name, value in forest_arrays.items()})
        header = {"detector": state, "forest": forest}
        _format.write(os.fspath(path), header, arrays, kind=_FORMAT_NAME, version=_FORMAT_VERSION)

    def _restore(self, state, arrays):
        """Set the fitted state from a saved header and arrays, checking that they agree."""
        self.period_ = check_int(state["period_"], "period_", 0, _MAX_PERIOD)
        self.shingle_size_ = check_int(state["shingle_size_"], "shingle_size_", 0)
        self.rows_seen_ = check_int(state["rows_seen_"], "rows_seen_", 0)
        columns = state["columns_"]
        self.columns_ = None if columns is None else [str(c) for c in columns]
        stats = state["stats"]
        self._stats = {"mean": float(stats["mean"]), "var": float(stats["var"]), "count": int(stats["count"])}
        anomaly = state["anomaly"]
        self._anomaly = {
            "active": bool(anomaly["active"]),
            "peak": float(anomaly["peak"]),
            "quiet": int(anomaly["quiet"]),
            "since": int(anomaly["since"]),
        }
        width = len(self.columns_) if self.columns_ is not None else None
        for name in ("history", "mean", "scale", "residual"):
            value = arrays.get(name)
            if value is None:
                continue
            dimensions = 2 if name == "history" else 1
            if value.dtype != np.float64 or value.ndim != dimensions or value.shape[-1:] != (width,):
                raise ValueError(f"array {name} has dtype {value.dtype} and shape {value.shape}")
        self._history = arrays.get("history")
        self._mean = arrays.get("mean")
        self._scale = arrays.get("scale")
        self._residual = arrays.get("residual")
        if self.rows_seen_ and (self._history is None or self._history.shape[0] != min(self.rows_seen_, _HISTORY)):
            raise ValueError("the stored history does not match the number of rows seen")
        if self.forest_ is not None:
            expected = self.shingle_size_ * self._channels() * width
            if self._mean is None or self._residual is None or self.forest_.dimensions_ != expected:
                raise ValueError(f"the forest has {self.forest_.dimensions_} dimensions, expected {expected}")

    @classmethod
    def load(cls, path):
        """Read a detector written by :meth:`save`.

        Parameters
        ----------
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
        header, arrays = _format.read(path, kind=_FORMAT_NAME, version=_FORMAT_VERSION)
        try:
            state = header["detector"]
            detector = cls(**state["params"])
            if header["forest"] is not None:
                prefix = "forest/"
                forest_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                parts = _state.from_arrays(header["forest"], forest_arrays)
                detector.forest_ = Forest._from_parts(parts, n_jobs=detector.n_jobs)
            detector._restore(state, arrays)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a valid ThresholdedForest state: {error}") from None
        return detector
