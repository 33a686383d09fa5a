"""Forecasts of a stream with intervals calibrated on the forecaster's own past errors.

:class:`Forecaster` feeds a series, row by row, to a shingled streaming
:class:`~rcforest.forest.Forest` and after each row forecasts the next
``horizon`` rows with :meth:`~rcforest.forest.Forest.extrapolate`. When a
row arrives it is compared with every earlier forecast of it: the error
and whether the row fell inside the forecast's interval are kept, per
horizon step, for the last ``error_horizon`` forecasts. The interval of a
new forecast at step ``i`` is its value plus the ``(1 - coverage) / 2``
and ``(1 + coverage) / 2`` quantiles of the past errors at step ``i``
(the trees' own 10th and 90th percentiles until ``min_errors`` errors are
known), so the share of rows inside the intervals follows ``coverage``.

Notes
-----
AWS random-cut-forest-by-aws, ``RCFCaster`` and its ``ErrorHandler``:
forecasts by ``extrapolate``, errors per horizon step over an error
horizon, and the interval precision (the share of past values inside past
intervals).
"""

import os

import numpy as np

from rcforest import _format, _state
from rcforest._core import as_rows, check_float, check_int
from rcforest.forest import Forest

__all__ = ["Forecaster"]

FORMAT_NAME = "rcforest-forecaster"
FORMAT_VERSION = 1
_FOREST_PREFIX = "forest/"
_PARTS = ("value", "lower", "upper")


class Forecaster:
    """Streaming forecaster with calibrated intervals, in the manner of AWS's RCFCaster.

    Parameters
    ----------
    horizon : int, default 15
        Rows forecast after each row.
    shingle_size : int, default 20
        Rows per forest point; at least 2. About a season works well.
    num_trees : int, default 50
    sample_size : int, default 256
    time_decay : float or None, default None
        The forest's; None is AWS's default ``1 / (10 * sample_size)``.
    coverage : float, default 0.9
        Share of future rows the intervals aim to hold, in (0, 1).
    error_horizon : int, default 256
        Past forecasts per horizon step whose errors calibrate the
        intervals and measure :attr:`interval_precision_`.
    min_errors : int, default 32
        Errors a step needs before its interval is calibrated on them.
    output_after : int, default 32
        Shingles the forest must have seen before the first forecast.
    random_state : int or None, default None
    n_jobs : int or None, default None

    Attributes
    ----------
    rows_seen_ : int
        Rows processed so far. Columns are read by position.
    n_features_ : int or None
    interval_precision_ : ndarray of shape (horizon, n_features)
        Share of the past rows (of the last ``error_horizon`` forecasts of
        each step) that fell inside their forecast's interval; NaN for a
        step with none yet.
    error_rmse_ : ndarray of shape (horizon, n_features)
        Root mean squared error of those forecasts, per step.

    Examples
    --------
    >>> import numpy as np
    >>> from rcforest import Forecaster
    >>> t = np.arange(1500)
    >>> series = 50 * np.sin(2 * np.pi * t / 50) + np.random.default_rng(0).normal(0, 5, t.size)
    >>> caster = Forecaster(horizon=5, random_state=0)
    >>> out = caster.process(series)
    >>> out["value"].shape
    (1500, 5, 1)
    """

    def __init__(
        self,
        horizon=15,
        shingle_size=20,
        num_trees=50,
        sample_size=256,
        time_decay=None,
        coverage=0.9,
        error_horizon=256,
        min_errors=32,
        output_after=32,
        random_state=None,
        *,
        n_jobs=None,
    ):
        self.horizon = check_int(horizon, "horizon", 1, 10000)
        self.shingle_size = check_int(shingle_size, "shingle_size", 2)
        self.coverage = check_float(coverage, "coverage")
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage}")
        self.error_horizon = check_int(error_horizon, "error_horizon", 1, 1 << 20)
        self.min_errors = check_int(min_errors, "min_errors", 1)
        self.output_after = check_int(output_after, "output_after", 1)
        sample_size = check_int(sample_size, "sample_size", 1)
        if time_decay is None:
            time_decay = 1.0 / (10 * sample_size)
        self.forest_ = Forest(num_trees, sample_size, self.shingle_size, time_decay, random_state, n_jobs=n_jobs)
        self.num_trees = self.forest_.num_trees
        self.sample_size = self.forest_.sample_size
        self.time_decay = self.forest_.time_decay
        self.random_state = self.forest_.random_state
        self.n_jobs = n_jobs
        self.rows_seen_ = 0
        self.n_features_ = None
        self._errors = None  # (horizon, error_horizon, n_features): ring of past errors per step
        self._inside = None  # the same for "the row fell inside the interval"
        self._filled = np.zeros(self.horizon, np.int64)  # errors recorded per step (all time)
        self._recent = None  # (3, horizon, horizon, n_features): the last forecasts, newest first

    def __repr__(self):
        return (
            f"Forecaster(horizon={self.horizon}, shingle_size={self.shingle_size}, num_trees={self.num_trees}, "
            f"sample_size={self.sample_size}, coverage={self.coverage}, random_state={self.random_state})"
        )

    # ------------------------------------------------------------ state

    def _start(self, width):
        self.n_features_ = width
        self._errors = np.zeros((self.horizon, self.error_horizon, width))
        self._inside = np.zeros((self.horizon, self.error_horizon, width))
        self._recent = np.full((3, self.horizon, self.horizon, width), np.nan)

    def _window(self, step):
        """The recorded part of step ``step``'s rings."""
        count = min(int(self._filled[step]), self.error_horizon)
        return self._errors[step, :count], self._inside[step, :count]

    @property
    def interval_precision_(self):
        if self.n_features_ is None:
            return None
        out = np.full((self.horizon, self.n_features_), np.nan)
        for step in range(self.horizon):
            _, inside = self._window(step)
            if inside.shape[0]:
                out[step] = inside.mean(axis=0)
        return out

    @property
    def error_rmse_(self):
        if self.n_features_ is None:
            return None
        out = np.full((self.horizon, self.n_features_), np.nan)
        for step in range(self.horizon):
            errors, _ = self._window(step)
            if errors.shape[0]:
                out[step] = np.sqrt((errors**2).mean(axis=0))
        return out

    # ------------------------------------------------------------ stream

    def _record(self, row):
        """Compare ``row`` with every earlier forecast of it."""
        steps = np.arange(self.horizon)
        value, lower, upper = (self._recent[j, steps, steps] for j in range(3))  # made step + 1 rows ago
        made = ~np.isnan(value).any(axis=1)
        steps = steps[made]
        slots = self._filled[steps] % self.error_horizon
        self._errors[steps, slots] = row - value[made]
        self._inside[steps, slots] = (lower[made] <= row) & (row <= upper[made])
        self._filled[steps] += 1

    def _calibrated(self, raw):
        """Intervals from the past errors of each step (the trees' percentiles until enough are known)."""
        value, lower, upper = raw["value"], raw["lower"].copy(), raw["upper"].copy()
        tail = (1.0 - self.coverage) / 2.0
        if (self._filled >= self.error_horizon).all() and self.error_horizon >= self.min_errors:
            low, high = np.quantile(self._errors, [tail, 1.0 - tail], axis=1)  # every window full: all at once
            lower, upper = value + low, value + high
        else:
            for step in range(self.horizon):
                errors, _ = self._window(step)
                if errors.shape[0] >= self.min_errors:
                    low, high = np.quantile(errors, [tail, 1.0 - tail], axis=0)
                    lower[step] = value[step] + low
                    upper[step] = value[step] + high
        return value, np.minimum(lower, value), np.maximum(upper, value)

    def process(self, X):
        """Feed rows in order; after each, forecast the next ``horizon`` rows.

        Parameters
        ----------
        X : array-like of shape (n_rows,) or (n_rows, n_features)
            The next rows of the series.

        Returns
        -------
        dict
            ``"value"``, ``"lower"``, ``"upper"``: ndarrays of shape
            (n_rows, horizon, n_features), the forecast made after each row
            of the rows that follow it, and its interval; NaN until the
            forest has seen ``output_after`` shingles.
        """
        rows = as_rows(X)
        values = rows.values
        if self.n_features_ is not None and values.shape[1] != self.n_features_:
            raise ValueError(
                f"X has {values.shape[1]} features but the forecaster was fed {self.n_features_}; "
                f"pass rows with {self.n_features_} columns"
            )
        if self.n_features_ is None:
            self._start(values.shape[1])
        out = np.full((3, values.shape[0], self.horizon, self.n_features_), np.nan)
        for r in range(values.shape[0]):
            row = values[r]
            self._record(row)
            self.forest_.update(values[r : r + 1])
            self.rows_seen_ += 1
            self._recent[:, 1:] = self._recent[:, :-1]
            self._recent[:, 0] = np.nan
            if self.forest_.points_seen_ >= self.output_after:
                calibrated = self._calibrated(self.forest_.extrapolate(self.horizon))
                for j, part in enumerate(calibrated):
                    self._recent[j, 0] = part
                    out[j, r] = part
        return dict(zip(_PARTS, out))

    def forecast(self):
        """The forecast made after the last row: ``"value"``, ``"lower"``, ``"upper"`` of shape (horizon, n_features).

        Returns
        -------
        dict or None
            None until the first forecast.
        """
        if self._recent is None or np.isnan(self._recent[0, 0]).any():
            return None
        return {name: self._recent[j, 0].copy() for j, name in enumerate(_PARTS)}

    # --------------------------------------------------------------- I/O

    def _params(self):
        return {
            "horizon": self.horizon,
            "shingle_size": self.shingle_size,
            "num_trees": self.num_trees,
            "sample_size": self.sample_size,
            "time_decay": self.time_decay,
            "coverage": self.coverage,
            "error_horizon": self.error_horizon,
            "min_errors": self.min_errors,
            "output_after": self.output_after,
            "random_state": self.random_state,
        }

    def save(self, path):
        """Write the forecaster's state to ``path``; :meth:`load` continues bit-identically.

        Parameters
        ----------
        path : str or os.PathLike

        Notes
        -----
        rcforest's file format (:mod:`rcforest._format`): JSON parameters
        and counters, the error rings and the last forecasts as ``.npy``
        arrays, and the forest's arrays; loading runs no code.
        """
        state = {"params": self._params(), "rows_seen_": self.rows_seen_}
        arrays = {"filled": self._filled}
        if self.n_features_ is not None:
            arrays.update(errors=self._errors, inside=self._inside, recent=self._recent)
        forest = None
        if self.forest_.points_seen_ or self.forest_.n_features_ is not None:
            forest, forest_arrays = _state.to_arrays(self.forest_._parts())
            arrays.update({f"{_FOREST_PREFIX}{name}": value for name, value in forest_arrays.items()})
        _format.write(os.fspath(path), {"forecaster": state, "forest": forest}, arrays, FORMAT_VERSION, FORMAT_NAME)

    @classmethod
    def load(cls, path):
        """Read a forecaster written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        Forecaster

        Raises
        ------
        ValueError
            If the file is not a saved forecaster or is inconsistent.
        """
        path = os.fspath(path)
        header, arrays, _ = _format.read(path, (FORMAT_VERSION,), kind=FORMAT_NAME)
        try:
            state = header["forecaster"]
            caster = cls(**state["params"])
            caster.rows_seen_ = check_int(state["rows_seen_"], "rows_seen_", 0)
            filled = arrays["filled"]
            if filled.dtype != np.int64 or filled.shape != (caster.horizon,) or (filled < 0).any():
                raise ValueError(f"array filled has dtype {filled.dtype} and shape {filled.shape}")
            caster._filled = filled.copy()
            if header["forest"] is not None:
                parts = _state.from_arrays(header["forest"], _format.Prefixed(arrays, _FOREST_PREFIX), _state.VERSION)
                caster.forest_ = Forest._from_parts(parts, n_jobs=caster.n_jobs)
                width = caster.forest_.n_features_
                caster._start(width)
                for name in ("errors", "inside", "recent"):
                    value = arrays[name]
                    target = getattr(caster, f"_{name}")
                    if value.dtype != np.float64 or value.shape != target.shape:
                        raise ValueError(f"array {name} has dtype {value.dtype} and shape {value.shape}")
                    if name != "recent" and not np.isfinite(value).all():
                        raise ValueError(f"array {name} holds NaN or infinite values")
                    target[...] = value
            elif caster.rows_seen_:
                raise ValueError("rows were seen but no forest is stored")
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a valid Forecaster state: {error}") from None
        return caster
