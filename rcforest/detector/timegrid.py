"""Rows on the seasonal grid: how many missing rows a gap in the timestamps stands for.

The detector's seasonal reference is the values one, two and three periods
back *in rows*. When readings are dropped (a gap in the timestamps), the
rows after the gap sit at another phase of the period than their row count
says. Given timestamps, the detector inserts missing readings (imputed, as
NaN readings are, and not reported) so that rows stay in phase: a gap of
``g`` missing steps, with a period of ``P`` rows in use, gets ``g mod P``
of them. Whole periods need no filling (their phase is the same), so a
long outage adds less than a period of imputed rows; without a period
there is no phase to keep, and nothing is inserted.

The step is the median difference between the timestamps of the rows
before the first checkpoint (the first period estimate), so it does not
depend on how the stream is cut into calls. A difference within half a
step of the step (sampling jitter) is no gap; a non-positive one (a
repeated hour at a clock change, rows out of order) is none either.
"""

import numpy as np

__all__ = ["TimeGrid", "as_nanoseconds"]


def as_nanoseconds(timestamps, rows):
    """``timestamps`` as int64 nanoseconds (datetimes) or plain numbers (numeric time), one per row.

    Raises
    ------
    ValueError
        When the count differs from ``rows`` or a timestamp is missing.
    TypeError
        When the values are neither datetimes nor numbers.
    """
    import pandas as pd  # timestamps are pandas' business; rcforest's import does not load pandas

    values = pd.Index(timestamps) if not isinstance(timestamps, pd.Index) else timestamps
    if len(values) != rows:
        raise ValueError(f"got {len(values)} timestamps for {rows} rows; pass one per row")
    if values.hasnans:
        raise ValueError("a timestamp is missing; pass one for every row")
    if isinstance(values, pd.DatetimeIndex):
        return values.as_unit("ns").asi8.astype(np.int64)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        times = values.to_numpy(dtype=np.float64)
        if not np.isfinite(times).all():
            raise ValueError("the timestamps must be finite")
        return times
    try:
        return pd.DatetimeIndex(values).as_unit("ns").asi8.astype(np.int64)
    except (TypeError, ValueError):
        raise TypeError(
            f"timestamps must be datetimes or numbers, got {values.dtype}; pass a DatetimeIndex, say"
        ) from None


class TimeGrid:
    """The sampling step of a timestamped stream and the time of its last row.

    Parameters
    ----------
    step : float or None
        The step, once measured (nanoseconds for datetimes).
    last : float or None
        The timestamp of the last row seen with one.
    differences : list of float
        Differences seen before the step is measured.
    """

    def __init__(self, step=None, last=None, differences=None):
        self.step = step
        self.last = last
        self.differences = list(differences or [])

    def observe(self, times):
        """Record the differences of ``times`` (rows before the first checkpoint) and their last timestamp."""
        times = np.asarray(times, dtype=np.float64)
        if times.size:
            previous = np.r_[self.last, times[:-1]] if self.last is not None else times[:-1]
            current = times if self.last is not None else times[1:]
            self.differences += (current - previous).tolist()
            self.last = float(times[-1])

    def fix_step(self):
        """Measure the step from the differences seen (the median of the positive ones), once."""
        if self.step is None:
            positive = [d for d in self.differences if d > 0]
            self.step = float(np.median(positive)) if positive else None
            self.differences = []

    def fills(self, times, period, advance=True):
        """Missing rows to insert before each row of ``times`` for ``period``.

        Parameters
        ----------
        times : ndarray of shape (n,)
        period : int
            The period in use (0 for none: nothing is inserted).
        advance : bool, default True
            Record the last of ``times`` as the last timestamp seen.

        Returns
        -------
        ndarray of int, shape (n,)
        """
        times = np.asarray(times, dtype=np.float64)
        fills = np.zeros(times.shape[0], dtype=np.int64)
        if times.size and period and self.step:
            previous = np.r_[self.last if self.last is not None else times[0], times[:-1]]
            with np.errstate(over="ignore", invalid="ignore"):
                steps = np.round((times - previous) / self.step)
            missing = np.where(np.isfinite(steps) & (steps > 1), steps - 1, 0)
            fills = np.mod(missing, period).astype(np.int64)
        if advance and times.size:
            self.last = float(times[-1])
        return fills

    def state(self):
        """The grid as JSON-ready values."""
        return {"step": self.step, "last": self.last, "differences": self.differences}

    @classmethod
    def restore(cls, state):
        """A grid from :meth:`state`'s values (None for a state saved without one)."""
        if state is None:
            return cls()
        step, last = state.get("step"), state.get("last")
        differences = [float(d) for d in state.get("differences", [])]
        for name, value in (("step", step), ("last", last)):
            if value is not None and not np.isfinite(float(value)):
                raise ValueError(f"the time grid's {name} is not finite")
        if step is not None and not float(step) > 0:
            raise ValueError("the time grid's step is not positive")
        return cls(None if step is None else float(step), None if last is None else float(last), differences)
