"""Live readings: :meth:`ThresholdedForest.process <rcforest.detector.ThresholdedForest.process>`, one row at a time.

A live reading is checked in plain Python when it is one float per known
column, joins the history in place (a buffer with room beyond it), and
gets its point by moving the last reading's point on by its features; its
point joins the forest with the next reading, in the same forest call
that scores it. The output is that of
:meth:`~rcforest.detector.ThresholdedForest.run` for the same row.
"""

import numpy as np

from rcforest._core import as_numbers, as_rows, loaded_pandas
from rcforest.detector.explanation import explain
from rcforest.detector.output import COLUMNS
from rcforest.detector.period import HISTORY, next_checkpoint
from rcforest.detector.preprocess import MAX_READING

__all__ = ["RING_SPARE", "LiveReadings"]

RING_SPARE = 256
"""Rows of room beyond the history in the buffer of live readings (see :meth:`LiveReadings._append_reading`)."""


_QUIET = {"attribution": "", "expected_value": np.nan, "start_of_anomaly": 0, "imputed": False}
"""The fields of a live reading that raised no alert, beyond its score, grade, threshold and confidence."""


def _first_row(out):
    """The first row of output columns (see :func:`~rcforest.detector.output.empty_columns`) as Python values."""
    return {name: (out[name][0].item() if hasattr(out[name][0], "item") else out[name][0]) for name in COLUMNS}


class LiveReadings:
    """The live side of :class:`~rcforest.detector.ThresholdedForest`: :meth:`process` and what it uses.

    A base of :class:`~rcforest.detector.ThresholdedForest`, which holds the
    state these methods read and write (the history, the forest, the point
    waiting to join it) and the decisions they call (``_judge``,
    ``_checkpoint``, ``_run_values``).
    """

    def _flush(self):
        """Let the point of the last live reading join the forest (see :meth:`_learn_then_score`)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._forest.update(pending[None, :])

    def _learn_then_score(self, point):
        """The forest's score of ``point`` after the last reading's point joined it, in one forest call.

        A live reading's point joins the forest with the next reading
        (:meth:`rcforest.forest.Forest._feed_then_score`: one pass over the
        trees, as for a batch), or when the forest is next read
        (:attr:`forest_`, :meth:`save`): a decision may still explain the
        row with the forest that scored it, and the results are those of
        scoring each row and then learning it.
        """
        pending, self._pending = self._pending, point
        if pending is None:
            return float(self._forest.score(point[None, :])[0])
        return self._forest._feed_then_score(pending, point)

    def process(self, row):
        """Process one row of a live stream.

        Parameters
        ----------
        row : float, sequence of floats, dict or pandas.Series
            One value per column (a scalar for a single series); a dict or
            Series is read in the detector's column order (its keys set the
            order on the first row). NaN and None are imputed, as in
            :meth:`run`; booleans count as 0 and 1. Dates, durations, text
            and complex numbers are refused with a ``TypeError``, and the
            detector is left as it was.

        Returns
        -------
        dict
            The same fields as a row of :meth:`run`'s output.
        """
        reading = self._plain_row(row)
        if reading is not None:
            if self._forest is not None:
                return self._live_reading(reading)
            return _first_row(self._run_values(np.array([reading], np.float64)))
        # Nothing changes until the row is checked: the first row's keys name the columns.
        columns = None
        pd = loaded_pandas()
        if isinstance(row, dict) or (pd is not None and isinstance(row, pd.Series)):
            mapping = {str(k): v for k, v in dict(row).items()}
            columns = self.columns_ if self.columns_ is not None else list(mapping)
            missing = [c for c in columns if c not in mapping]
            if missing:
                raise ValueError(f"the row lacks columns {missing}; pass a value (or NaN) for each of {columns}")
            row = [mapping[c] for c in columns]
            if any(np.ndim(value) for value in row):
                raise ValueError(f"the row must hold one number per column of {columns}, got {row!r:.80}")
        values = as_numbers([None] if row is None else row, "the row").reshape(1, -1)
        if columns is not None and values.shape[1] != len(columns):
            raise ValueError(f"the row must hold one number per column of {columns}, got {values.shape[1]} numbers")
        rows = as_rows(values, "row", missing=True, lone_name="value")
        if columns is not None:
            rows = rows._replace(columns=columns, named=True)  # a mapping names its values
        self._check_columns(rows)
        return _first_row(self._run_values(rows.values))

    def _plain_row(self, row):
        """``row`` as a list of Python floats when it holds a float or int per known column, else None.

        The common reading of a live stream, checked in plain Python: each
        value within :data:`~rcforest.detector.preprocess.MAX_READING` (NaN
        is not), ``-0.0`` read as ``0.0`` (as :func:`rcforest._core.as_rows`
        reads input). Any other reading (the first, a mapping, NaN, other
        types) takes the general way of :meth:`process`, which accepts or
        refuses it.
        """
        columns = self.columns_
        if columns is None:
            return None
        values = (row,) if len(columns) == 1 else row
        if not isinstance(values, (list, tuple)) or len(values) != len(columns):
            return None
        for value in values:
            if not ((isinstance(value, float) or type(value) is int) and -MAX_READING <= value <= MAX_READING):
                return None
        return [float(value) + 0.0 for value in values]

    def _live_reading(self, reading):
        """:meth:`process` for a checked reading (see :meth:`_plain_row`) once the forest exists.

        What :meth:`_run_values` does for one complete row, without its
        arrays: the row joins the history in place (:meth:`_append_reading`),
        its point is the last one moved on by the row's features
        (:meth:`_next_point`), and the output is a dict built at once.
        """
        values = self._append_reading(reading)
        row = values.shape[0] - 1
        buffer, start = self._next_point(values, row)
        point = buffer[start : start + buffer.shape[0] // 2]
        score = self._learn_then_score(point)
        forest, preprocessor, columns = self._forest, self._preprocessor, self.columns_
        threshold, alert, confidence, explanation = self._judge(
            score, False, lambda: explain(forest, preprocessor, values, row, point, columns)
        )
        seen = self.rows_seen_ = self.rows_seen_ + 1
        self._last = (seen, buffer, start)
        # The thresholder and the alert policy give Python floats; so do explanations.
        output = {"score": score, "grade": alert, "threshold": threshold, "confidence": confidence}
        if explanation is None:
            output.update(_QUIET)
        else:
            output["attribution"] = explanation["attribution"]
            output["expected_value"] = explanation["expected_value"]
            output["start_of_anomaly"] = explanation["start_of_anomaly"]
            output["imputed"] = False
        if seen == next_checkpoint(seen - 1):
            self._checkpoint()
        return output

    def _append_reading(self, reading):
        """Append one row of floats to the history; return the history before trimming, with the row last.

        The history is a view of a buffer with room for :data:`RING_SPARE`
        rows beyond :data:`~rcforest.detector.period.HISTORY`: a row is
        written in place, and the last rows move to the front only when the
        buffer is full. The rows returned (at most ``HISTORY + 1``) are those
        :meth:`_ingest` would give: the history, then the row.
        """
        history = self._history
        buffer, used, view = self._ring if self._ring is not None else (None, 0, None)
        if view is not history:  # the history was set another way: copy it in
            used = history.shape[0]
            buffer = np.empty((HISTORY + RING_SPARE, history.shape[1]))
            buffer[:used] = history
        elif used == buffer.shape[0]:
            buffer[:HISTORY] = buffer[used - HISTORY : used]
            used = HISTORY
        buffer[used] = reading
        used += 1
        values = buffer[max(used - HISTORY - 1, 0) : used]
        self._history = values[1:] if values.shape[0] > HISTORY else values
        self._ring = (buffer, used, self._history)
        return values

    def _next_point(self, values, row):
        """The shingled point of ``values[row]``: the last row's point moved on by this row's features.

        Points are written into a buffer with room for two, so that a
        reading makes no array: the point is moved on in place, and its last
        values move to the front only when the buffer is full. The point
        before it (the one waiting to join the forest) is left as it was.

        Returns
        -------
        buffer : ndarray of shape (2 * dimensions,)
        start : int
            Where the point starts in ``buffer``.
        """
        last = self._last
        if last is None or last[0] != self.rows_seen_:
            fresh = self._preprocessor.points(values, row)[0]
            buffer = np.empty(2 * fresh.shape[0])
            buffer[: fresh.shape[0]] = fresh
            return buffer, 0
        _, buffer, start = last
        features = self._preprocessor.row_features(values, row)
        width, step = buffer.shape[0] // 2, len(features)
        if start + step + width > buffer.shape[0]:
            buffer[: width - step] = buffer[start + step : start + width]
            start = 0
        else:
            start += step
        buffer[start + width - step : start + width] = features
        return buffer, start
