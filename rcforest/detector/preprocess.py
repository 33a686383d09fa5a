"""From raw rows to the forest's points: normalisation, seasonal reference, residuals, imputation, shingles.

With the default ``"auto"`` transform each input column gives two
channels: the normalised value, and its deviation from a reference (the
median of the values one, two and three periods back, or the previous
value when no period is known), in the same units. The last
``shingle_size`` transformed rows form one point of the forest.
"""

import numpy as np

from rcforest.detector.period import HISTORY, SEASONS

__all__ = [
    "Preprocessor",
    "TRANSFORMS",
    "clip_readings",
    "fill_unknown",
    "reference",
    "seasonal_median",
    "shingle_size_for",
    "spread_of",
    "trim",
]

TRANSFORMS = ("auto", "normalize", "difference", "normalize_difference", "none")

MIN_SHINGLE = 8
"""Shingle size chosen without a period, and the smallest chosen with one."""

MAX_SHINGLE = 48
"""Largest shingle size chosen from a period."""

RESIDUAL_FLOOR = 0.01
"""The typical residual is at least this fraction of the column's spread."""

SCALE_FLOOR = 64 * np.finfo(np.float64).eps
"""The normalising scale is at least this fraction of the column's magnitude (64 steps of float64 at that
magnitude, about 1.4e-14): a smaller spread is rounding, not variation. Nothing else bounds it, so that the
detector works in the series' own units whatever its scale and offset."""

MAX_READING = 1e29
"""Readings beyond this magnitude are taken as this magnitude: as anomalous, and
small enough that the statistics (squares summed over the history) stay
finite and the transformed values stay within the forest's input bound,
:data:`rcforest._core.MAX_ABS_VALUE` (1e30). A value less its mean or its
reference, or a change between rows, is at most ``2 * MAX_READING``, and
every transformed value is clipped to :data:`MAX_FEATURE`."""

MAX_FEATURE = 2 * MAX_READING
"""Transformed values are clipped to this magnitude (reached only when a column's spread is a tiny fraction of
a later reading: a flat history at its rounding floor, say)."""


def clip_readings(values):
    """``values`` (no NaN) with readings beyond :data:`MAX_READING` in magnitude taken as that magnitude, in place.

    ``-0.0`` is read as ``0.0`` (as :func:`rcforest._core.as_rows` reads
    input), so that the history never holds it (see :func:`seasonal_median`).
    """
    np.clip(values, -MAX_READING, MAX_READING, out=values)
    values += 0.0
    return values


def seasonal_median(lagged):
    """The median over the first axis of ``lagged``, ignoring NaN: the reference of :meth:`Preprocessor.reference`.

    Parameters
    ----------
    lagged : ndarray of shape (SEASONS, ...)
        The values one, two, ... periods back; a missing value (NaN) is
        followed only by missing ones, and the first is never missing.

    Returns
    -------
    ndarray of shape ``lagged.shape[1:]``

    Notes
    -----
    Bit for bit ``numpy.nanmedian(lagged, axis=0)`` for values without
    ``-0.0`` (which the history never holds, see :func:`clip_readings`): for
    three seasons the middle value, the mean of two or the one value, with
    ``minimum`` and ``maximum`` instead of the masked-array sort numpy runs
    on small arrays, which took a third of a live reading's time.
    """
    if lagged.shape[0] != 3:
        return np.nanmedian(lagged, axis=0)
    first, second, third = lagged
    middle = np.maximum(np.minimum(first, second), np.minimum(np.maximum(first, second), third))
    return np.where(np.isnan(second), first, np.where(np.isnan(third), (first + second) / 2, middle))


def spread_of(history):
    """The normalising scale of each column of ``history``: its standard deviation, measured around its mean.

    A spread below :data:`SCALE_FLOOR` times the column's mean magnitude is
    rounding: that floor takes its place. An all-zero column, which has no
    unit at all, gets 1.
    """
    # Measured on the columns scaled by a power of two (exactly) to at most 1, so that the squares neither
    # overflow nor underflow whatever the magnitude; this changes no bit of the result otherwise.
    return _spread(history)[0]


def _spread(history):
    """:func:`spread_of` and, per column, whether it was measured (the standard deviation is above its floor)."""
    exponent = np.frexp(np.abs(history).max(axis=0, initial=0.0))[1]
    scaled = np.ldexp(history, -exponent)
    deviation, floor = scaled.std(axis=0), SCALE_FLOOR * np.abs(scaled.mean(axis=0))
    spread = np.maximum(deviation, floor)
    return np.where(spread > 0, np.ldexp(spread, exponent), 1.0), deviation > floor


def shingle_size_for(period):
    """The shingle size chosen for ``period``: ``clip(period, 8, 48)``, or 8 without a period."""
    return int(min(max(period, MIN_SHINGLE), MAX_SHINGLE)) if period else MIN_SHINGLE


def reference(values, first, period):
    """Reference values for rows ``first ..`` of ``values``, in raw units.

    Parameters
    ----------
    values : ndarray of shape (n,) or (n, columns)
        The rows, oldest first.
    first : int
        The first row given a reference.
    period : int
        The period in rows, or 0 for none.

    Returns
    -------
    ndarray of shape ``values[first:].shape``
        The median of the values one, two and three periods back (those
        that exist), or the previous value before a full period or without
        one (the first row's own value for row 0).
    """
    rows = np.arange(first, values.shape[0])
    result = values[np.maximum(rows - 1, 0)].copy()
    if period:
        lagged = np.full((SEASONS,) + result.shape, np.nan)
        for k in range(1, SEASONS + 1):
            source = rows - k * period
            ok = source >= 0
            lagged[k - 1, ok] = values[source[ok]]
        seasonal = rows >= period
        result[seasonal] = seasonal_median(lagged[:, seasonal])
    return result


class Preprocessor:
    """The input transform of a streaming detector and the statistics it was fitted with.

    Parameters
    ----------
    transform : {"auto", "normalize", "difference", "normalize_difference", "none"}
    period : int
        Seasonal period in rows (0 for none).
    shingle_size : int
    mean, scale, residual : ndarray of shape (n_columns,) or None
        Per-column mean and spread (the normalisation) and typical
        residual (the unit of deviations), set by :meth:`fit`.
    """

    def __init__(self, transform="auto", period=0, shingle_size=0, mean=None, scale=None, residual=None):
        self.transform = transform
        self.period = period
        self.shingle_size = shingle_size
        self.mean = mean
        self.scale = scale
        self.residual = residual

    @property
    def channels(self):
        """Transformed channels per input column."""
        return 2 if self.transform == "auto" else 1

    def fit(self, history, period, shingle_size):
        """Adopt ``period`` and ``shingle_size``; fit the normalisation and typical residual on ``history``."""
        self.period = period
        self.shingle_size = shingle_size
        self.mean = history.mean(axis=0)
        self.scale = spread_of(history)
        self.residual = self.typical_residual(history)

    def outgrown(self, history):
        """Whether a column fitted on no variation (its scale a floor, see :func:`spread_of`) varies in ``history``.

        A series flat until the first checkpoint is fitted with a scale that
        measures nothing; once it varies, the transform is to be refitted.
        """
        if self.mean is None:
            return False
        fitted_flat = (self.scale <= SCALE_FLOOR * np.abs(self.mean) * (1 + 1e-9)) | (
            (self.mean == 0) & (self.scale == 1)
        )
        return bool((fitted_flat & _spread(history)[1]).any())

    def check(self):
        """Raise ``ValueError`` unless the fitted statistics are what :meth:`fit` can give (for a loaded state).

        The mean is finite and within :data:`MAX_READING`, the scale is at
        least its floor and positive, the typical residual positive, all
        finite.
        """
        mean, scale, residual = self.mean, self.scale, self.residual
        if mean is None:
            return
        if scale is None or residual is None or not mean.shape == scale.shape == residual.shape:
            raise ValueError("the normalisation statistics are incomplete")
        floor = SCALE_FLOOR * np.abs(mean)
        if not (np.abs(mean) <= MAX_READING).all():
            raise ValueError(f"the mean is not finite or beyond {MAX_READING:g}")
        if not (np.isfinite(scale) & (scale >= floor) & (scale > 0)).all():
            raise ValueError("the scale is not finite or below its floor")
        if not (np.isfinite(residual) & (residual > 0)).all():
            raise ValueError("the typical residual is not finite and positive")

    def reference(self, values, first):
        """Reference values for rows ``first ..`` of ``values``, in raw units: :func:`reference` at this period."""
        return reference(values, first, self.period)

    def typical_residual(self, history):
        """Mean absolute deviation of the residuals (value minus reference) from their median.

        Taking it around the median discounts a steady offset, such as a
        trend's growth over the periods the reference reaches back. The
        result is at least 1% of the column's spread.
        """
        residual = history[1:] - self.reference(history, 1)
        typical = np.abs(residual - np.median(residual, axis=0)).mean(axis=0)
        return np.maximum(typical, RESIDUAL_FLOOR * self.scale)

    def phase_residual(self, values, row, column):
        """Typical residual of ``column`` at the phase of ``row``: the noise where the row lies in its period.

        The residuals (value minus reference) are taken in windows of a
        shingle (half a shingle either side) centred one, two, ... periods
        before ``row``, as many as the last :data:`HISTORY` rows hold; each
        window gives its residuals' mean absolute deviation from their median
        (as :meth:`typical_residual` does over the whole history), and the
        result is the median over the windows, so that a period disturbed by
        an earlier anomaly does not set it. It is at least the typical
        residual's floor (``RESIDUAL_FLOOR`` of the spread). Without a period,
        or before a full period and half a shingle, it is the typical residual.
        """
        period = self.period
        half = max(1, self.shingle_size // 2)
        first = max(1, row - HISTORY)
        if not period or row - period - half < first:
            return float(self.residual[column])
        head = values[: row + 1]
        residual = head[first:, column] - self.reference(head, first)[:, column]
        last = residual.size - 1
        lags = np.arange(period, last - half + 1, period)
        # Windows that would reach the row itself end before it; the others, all of a shingle's width, go at once.
        short = (residual[last - lag - half : last] for lag in lags[lags <= half])
        spreads = [np.abs(window - np.median(window)).mean() for window in short]
        full = residual[(last - half - lags[lags > half])[:, None] + np.arange(2 * half + 1)]
        spreads = np.concatenate([spreads, np.abs(full - np.median(full, axis=1)[:, None]).mean(axis=1)])
        return max(float(np.median(spreads)), RESIDUAL_FLOOR * float(self.scale[column]))

    def features(self, values, first):
        """Transformed rows ``first ..`` of ``values`` (raw rows, no NaN), shape (rows, channels * columns).

        Values are clipped to :data:`MAX_FEATURE` in magnitude.
        """
        with np.errstate(over="ignore"):
            return np.clip(self._features(values, first), -MAX_FEATURE, MAX_FEATURE)

    def _features(self, values, first):
        """:meth:`features` before clipping (infinite where a division overflows)."""
        mean, scale = self.mean, self.scale
        if self.transform == "none":
            return values[first:].copy()
        if self.transform in ("difference", "normalize_difference"):
            previous = values[np.maximum(np.arange(first, values.shape[0]) - 1, 0)]
            change = values[first:] - previous
            return change if self.transform == "difference" else change / scale
        z = (values[first:] - mean) / scale
        if self.transform == "normalize":
            return z
        return np.concatenate([z, (values[first:] - self.reference(values, first)) / scale], axis=1)

    def row_features(self, values, row):
        """:meth:`features` of the one row ``values[row]``, as a list of floats: a live reading's.

        The same operations on the same numbers, in plain Python instead of
        numpy (whose calls on arrays of one row cost more than the
        arithmetic), so bit for bit the row of :meth:`features`.
        """
        transform = self.transform
        if transform == "none":
            return values[row].tolist()
        if values.shape[1] == 1:
            return self._lone_row_features(values, row)
        current = values[row].tolist()
        scale = self.scale.tolist()
        if transform in ("difference", "normalize_difference"):
            features = [v - p for v, p in zip(current, values[max(row - 1, 0)].tolist())]
            if transform == "normalize_difference":
                features = [f / s for f, s in zip(features, scale)]
        else:
            features = [(v - m) / s for v, m, s in zip(current, self.mean.tolist(), scale)]
            if transform == "auto":
                reference = self._row_reference(values, row)
                features += [(v - r) / s for v, r, s in zip(current, reference, scale)]
        return [min(max(f, -MAX_FEATURE), MAX_FEATURE) for f in features]

    def _lone_row_features(self, values, row):
        """:meth:`row_features` of a single column (a transform other than ``"none"``), read value by value."""
        transform, value, scale = self.transform, values.item(row, 0), self.scale.item(0)
        if transform == "difference":
            return [min(max(value - values.item(max(row - 1, 0), 0), -MAX_FEATURE), MAX_FEATURE)]
        if transform == "normalize_difference":
            return [min(max((value - values.item(max(row - 1, 0), 0)) / scale, -MAX_FEATURE), MAX_FEATURE)]
        level = min(max((value - self.mean.item(0)) / scale, -MAX_FEATURE), MAX_FEATURE)
        if transform == "normalize":
            return [level]
        (reference,) = self._row_reference(values, row)
        return [level, min(max((value - reference) / scale, -MAX_FEATURE), MAX_FEATURE)]

    def _row_reference(self, values, row):
        """:meth:`reference` of the one row ``values[row]``, as a list of floats (see :func:`seasonal_median`)."""
        period = self.period
        if not period or row < period or SEASONS != 3:
            if period and row >= period:  # any other number of seasons: numpy's way
                return self.reference(values[: row + 1], row)[0].tolist()
            return values[max(row - 1, 0)].tolist()
        if row < 2 * period:
            return values[row - period].tolist()
        if row < 3 * period:
            second, first = values[row - 2 * period : row : period].tolist()
            return [(a + b) / 2 for a, b in zip(first, second)]
        third, second, first = values[row - 3 * period : row : period].tolist()  # one slice, one conversion
        return [max(min(a, b), min(max(a, b), c)) for a, b, c in zip(first, second, third)]

    def points(self, values, first):
        """Shingled points for rows ``first ..`` of ``values``; needs ``shingle_size - 1`` rows before ``first``."""
        size = self.shingle_size
        features = self.features(values, first - size + 1)
        if features.shape[0] == size:  # one point (a live reading): its rows, oldest first
            return features.reshape(1, -1)
        windows = np.lib.stride_tricks.sliding_window_view(features, size, axis=0)
        return np.ascontiguousarray(windows.transpose(0, 2, 1)).reshape(windows.shape[0], -1)

    def varied_points(self, values, row, target, column, trial, point=None):
        """The point of ``values[row]`` with ``values[target, column]`` set to each value of ``trial`` in turn.

        Parameters
        ----------
        values : ndarray of shape (n_rows, n_columns)
            Raw rows up to at least ``row``, no NaN.
        row : int
        target : int
            A row of the shingle of ``row``: ``row - shingle_size < target <= row``.
        column : int
        trial : ndarray of shape (n_trials,)
        point : ndarray of shape (shingle_size * channels * n_columns,), optional
            The point of ``values[row]`` (:meth:`points` at ``row``), if known.

        Returns
        -------
        ndarray of shape (n_trials, shingle_size * channels * n_columns)
            Bit for bit :meth:`points` of ``values[: row + 1]`` at ``row``
            with the value replaced, one trial after another, computed at
            once: the trials are the columns of one window of the column
            (features are computed column by column), cut to the rows the
            shingle's features read, which sit at the same distances from
            its start as in ``values`` or far enough that every lag exists.
        """
        size, count = self.shingle_size, trial.shape[0]
        first = row - size + 1
        start = max(0, first - SEASONS * self.period - 1)
        base = self.points(values[start : row + 1], row - start)[-1] if point is None else point
        window = np.repeat(values[start : row + 1, column : column + 1], count, axis=1)
        window[target - start] = trial
        mean, scale = (None if a is None else np.full(count, a[column]) for a in (self.mean, self.scale))
        single = Preprocessor(self.transform, self.period, size, mean, scale)
        features = single.features(window, first - start).reshape(size, self.channels, count)
        points = np.repeat(base[None, :], count, axis=0).reshape(count, size, self.channels, values.shape[1])
        points[:, :, :, column] = features.transpose(2, 0, 1)
        return points.reshape(count, -1)

    def impute(self, values, row, column):
        """A value for ``values[row, column]``: its reference (see :meth:`reference`), NaN for the first row.

        Nothing is known of a missing first reading: it stays NaN (as do the
        missing readings after it, imputed from it) until :meth:`append`
        back-fills the run with the column's first reading, or
        :func:`fill_unknown` sets it at the first checkpoint.
        """
        if row == 0:
            return np.nan
        window = values[max(0, row - SEASONS * self.period - 1) : row + 1, column : column + 1]
        return float(self.reference(window, window.shape[0] - 1)[0, 0])

    def append(self, history, rows):
        """Impute the missing values of ``rows``, clip them to :data:`MAX_READING` and append them to ``history``.

        Returns
        -------
        values : ndarray
            The history followed by the imputed rows.
        imputed : ndarray of bool
            Per new row, whether a value was missing.
        """
        history = history if history is not None else np.empty((0, rows.shape[1]))
        values = np.concatenate([history, rows])
        start = history.shape[0]
        missing = ~np.isfinite(rows)
        imputed = missing.any(axis=1)
        if imputed.any():
            for r, c in np.argwhere(missing):
                values[start + r, c] = self.impute(values, start + r, c)
        if values.shape[0] and np.isnan(values[0]).any():
            for c in np.flatnonzero(np.isnan(values[0])):
                known = np.flatnonzero(~np.isnan(values[:, c]))
                if known.size:  # the leading run of missing readings takes the first reading, in the column's units
                    values[: known[0], c] = values[known[0], c]
        clip_readings(values[start:])
        return values, imputed


def fill_unknown(history):
    """Set the columns of ``history`` that hold no reading yet (all missing so far) to 0, in place.

    A column whose every reading so far was missing has neither level nor
    unit; the detector needs numbers at its first checkpoint, and 0 is as
    good as any.
    """
    history[np.isnan(history)] = 0.0
    return history


def trim(values):
    """The last :data:`HISTORY` rows of ``values`` (a copy when trimmed)."""
    return values[-HISTORY:].copy() if values.shape[0] > HISTORY else values
