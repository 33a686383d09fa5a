"""Streaming anomaly detection that decides: scores, thresholds, grades and explanations.

:class:`ThresholdedForest` wraps a streaming :class:`~rcforest.forest.Forest`
and turns its raw scores into alerts a user can act on, one row at a time
and without looking ahead:

1. **Transform.** Each input row is normalised and, with the default
   ``transform="auto"``, paired with its deviation from a reference: the
   median of the values one, two and three periods back (the previous
   value when no period is known). The period is estimated from the
   autocorrelation of the detrended history, or of its ranks when the
   values show none (:func:`~rcforest.detector.period.estimate_period_robust`).
2. **Shingle.** The last ``shingle_size`` transformed rows form the point
   the forest scores; the point is scored before it joins the forest.
3. **Threshold.** A discounted mean and deviation of past scores give an
   adaptive threshold, ``max(min_threshold, mean + z_factor * deviation)``,
   that follows drift (the idea of AWS's ``BasicThresholder``). While the
   statistics are young (fewer than ``threshold_horizon`` scores), a row
   is also a likely anomaly when the average of its score and the 7 before
   it lies 2 deviations above such averages' discounted mean (the idea of
   HTM's anomaly likelihood): a young threshold is inflated by the novelty
   scores of a young forest, a sustained rise of the score is not.
4. **Explain and decide.** A row whose score passes the threshold is
   explained: the attribution names the input column and shingle position
   that drive the score, and the forest's expected value for that entry is
   the value that would make the score lowest. Deviations from the
   expected value smaller than ``min_deviation`` typical residuals at the
   row's phase (and, optionally, smaller than a fraction of the expected
   value) are ignored;
   weak evidence (a likely anomaly whose score stays below the threshold,
   or a crossing graded below 0.1) must deviate 1.2 times as much.
   One alert is raised per anomaly: rows that merely continue it are not
   graded again unless, a full shingle or more after its last report, it
   is clearly worse than reported (its grade 0.25 higher); a new anomaly
   soon after an alert must be about as strong as that alert; and a new
   anomaly that repeats a departure reported in the last 4096 rows (its
   value and expected value each within half a typical residual of that
   alert's) is not reported again, nor is one that three anomalies
   reported in the last 4096 rows outscored over their thresholds (a bound
   on the rate of alerts, measured on the detector's own)
   (:class:`~rcforest.detector.alerts.AlertPolicy`).

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

import numpy as np

from rcforest._core import (
    as_rows,
    check_float,
    check_int,
    check_time_decay,
    names_are_given,
)
from rcforest.detector.alerts import AlertPolicy
from rcforest.detector.explanation import explain
from rcforest.detector.live import LiveReadings
from rcforest.detector.output import empty_columns, to_frame
from rcforest.detector.period import CHECKPOINTS, MAX_PERIOD, estimate_period_robust, next_checkpoint
from rcforest.detector.preprocess import (
    TRANSFORMS,
    Preprocessor,
    fill_unknown,
    shingle_size_for,
    trim,
)
from rcforest.detector.saved import read_detector, write_detector
from rcforest.detector.thresholder import Thresholder
from rcforest.detector.timegrid import TimeGrid, as_nanoseconds
from rcforest.forest import Forest

__all__ = ["ThresholdedForest"]

BATCH_ROWS = 32
"""From this many rows per call, rows are scored on a copy of the forest in one streaming call; below, one by one."""


class ThresholdedForest(LiveReadings):
    """Streaming anomaly detector with adaptive thresholds, grades and explanations.

    Parameters
    ----------
    shingle_size : int or None, default None
        Rows per forest point, at most 128. None chooses it from the
        period: ``clip(period, 8, 48)``, or 8 when no period is known.
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
        mean absolute deviation from their median at the row's phase: the
        median of it over windows of a shingle one, two, ... periods back
        in the history (over the whole history without a period).
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
    columns_ : list of str or None
        Names of the input columns, set by the first rows: a DataFrame's
        column names or a dict's keys (later DataFrames are then read by
        these names, in any order), else ``value`` or ``x0``, ``x1``, ...
        (later input is read by position).

    Notes
    -----
    Output columns of :meth:`run` (and keys of :meth:`process`):

    - ``score``: the forest's expected-inverse-depth score (NaN while warming up);
    - ``grade``: in [0, 1]; 0 means no alert. Only the row where an anomaly
      is first reported (or is again, clearly worse) is graded. The grade is the
      larger of ``(score - threshold) / (threshold - mean score)`` and
      ``(deviation - min_deviation) / (2 * min_deviation)``, with the
      deviation from the expected value in typical residuals, capped at 1
      (for a likely anomaly below the threshold, the likelihood's grade,
      at most 0.5, takes the place of the first);
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
        # The first forest is built at the first checkpoint, from that many rows.
        self.shingle_size = None if shingle_size is None else check_int(shingle_size, "shingle_size", 1, CHECKPOINTS[0])
        self.num_trees = check_int(num_trees, "num_trees", 1)
        self.sample_size = check_int(sample_size, "sample_size", 4)
        self.random_state = check_int(random_state, "random_state", 0)
        self.time_decay = None if time_decay is None else check_time_decay(time_decay)
        if period == "auto" or period is None:
            self.period = period
        else:
            self.period = check_int(period, "period", 0, MAX_PERIOD)
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {list(TRANSFORMS)}, got {transform!r}")
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
        self.rows_seen_ = 0
        self.columns_ = None
        self._named = None  # whether columns_ names the columns of DataFrames (see rcforest._core.as_rows)
        self._history = None
        self._ring = None  # (buffer, rows used, the history's view of it): see _append_reading
        self._last = None  # (rows_seen_, buffer, start of the last row's point in it): see _next_point
        self._preprocessor = Preprocessor(self.transform)
        self._thresholder = Thresholder(self.z_factor, self.min_threshold, self.threshold_horizon)
        self._alerts = AlertPolicy(self.min_deviation, self.ignore_relative)
        self._grid = TimeGrid()

    def __getstate__(self):
        """Pickle (and copy) the detector without the buffers of live readings, which are made again when needed."""
        return {**self.__dict__, "_ring": None, "_last": None}

    def __setstate__(self, state):
        """Unpickle; a detector pickled before columns were matched by name gets the rule of :meth:`load`."""
        state = dict(state)
        if "forest_" in state:  # pickled before a live reading's point could wait to join the forest
            state["_forest"] = state.pop("forest_")
        state.setdefault("_pending", None)
        state.setdefault("_ring", None)
        state.setdefault("_last", None)
        state.setdefault("_grid", TimeGrid())  # pickled before timestamps were taken
        self.__dict__.update(state)
        if "_named" not in state:
            self._named = names_are_given(self.columns_, "value")

    def __repr__(self):
        return (
            f"ThresholdedForest(shingle_size={self.shingle_size}, num_trees={self.num_trees}, "
            f"sample_size={self.sample_size}, random_state={self.random_state}, period={self.period!r}, "
            f"transform={self.transform!r})"
        )

    @property
    def period_(self):
        """The seasonal period in use (0 for none)."""
        return self._preprocessor.period

    @property
    def shingle_size_(self):
        """The shingle size in use (0 before the first checkpoint)."""
        return self._preprocessor.shingle_size

    @property
    def forest_(self):
        """The forest (None before the first checkpoint), holding every row processed so far."""
        self._flush()
        return self._forest

    @forest_.setter
    def forest_(self, forest):
        self._forest = forest
        self._pending = None

    @property
    def _decay(self):
        """The forest's reservoir decay (AWS's default unless ``time_decay`` is set)."""
        return 1.0 / (10 * self.sample_size) if self.time_decay is None else self.time_decay

    def _confidence(self, taken=None):
        """Fraction of the reservoir filled by ``taken`` points times the maturity of the score statistics.

        ``taken`` defaults to the points the forest holds and the one waiting to join it (:meth:`_learn_then_score`).
        """
        if taken is None:
            taken = self._forest.points_seen_ + (self._pending is not None)
        return min(1.0, taken / self.sample_size) * min(1.0, self._thresholder.count / self.sample_size)

    # ------------------------------------------------------------ checkpoint

    def _checkpoint(self):
        """Re-estimate the period; rebuild the forest from the history when it changes."""
        self._last = None  # the next live reading shingles its point afresh, with what is fitted now
        history = self._history
        preprocessor = self._preprocessor
        if self.forest_ is None:
            fill_unknown(history)
        period = preprocessor.period
        if self.period == "auto":
            period = estimate_period_robust(history, current=preprocessor.period)
        elif self.period:
            period = self.period
        if self.forest_ is not None and period == preprocessor.period and not preprocessor.outgrown(history):
            preprocessor.residual = preprocessor.typical_residual(history)
            return
        size = self.shingle_size if self.shingle_size is not None else shingle_size_for(period)
        preprocessor.fit(history, period, size)
        self.forest_ = Forest(
            num_trees=self.num_trees,
            sample_size=self.sample_size,
            time_decay=self._decay,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        points = preprocessor.points(history, size - 1)
        scores = self.forest_.score_update(points)
        self._thresholder.reset()
        # Scores of a young forest (before it has seen half the history and a
        # full period) are inflated by novelty: the statistics skip them.
        for score in scores[max(points.shape[0] // 2, period) :]:
            self._thresholder.learn(float(score))

    # ---------------------------------------------------------------- core

    def _decide(self, values, start, imputed, out, out_row):
        """Score, threshold, explain and learn rows ``start ..`` of ``values`` (the history plus the new rows).

        Few rows are scored one by one (the forest runs single points on one
        thread); many rows go through the forest in one streaming call, and
        a copy of the forest taken before it is advanced lazily to any row
        that needs explaining.
        """
        preprocessor = self._preprocessor
        points = preprocessor.points(values, start)
        count = points.shape[0]
        batch = count >= BATCH_ROWS
        forest = self.forest_ if batch else self._forest  # one by one, each row's point joins with the next
        if batch:
            before = copy.deepcopy(forest)
            taken = forest.points_seen_
            scores = forest.score_update(points)
        state = {"learned": 0}

        def explainer(i):
            def run():
                scorer = forest
                if batch:
                    if state["learned"] < i:
                        before.update(points[state["learned"] : i])
                        state["learned"] = i
                    scorer = before
                return explain(scorer, preprocessor, values, start + i, points[i], self.columns_)

            return run

        for i in range(count):
            if batch:  # the forest has taken every row already: the reservoir's fill is counted to row i
                score, filled = float(scores[i]), taken + i + 1
            else:
                score, filled = self._learn_then_score(points[i]), None
            threshold, alert, confidence, explanation = self._judge(score, imputed[i], explainer(i), filled)
            j = out_row + i
            out["score"][j] = score
            out["grade"][j] = alert
            out["threshold"][j] = threshold
            out["confidence"][j] = confidence
            if explanation is not None:
                out["attribution"][j] = explanation["attribution"]
                out["expected_value"][j] = explanation["expected_value"]
                out["start_of_anomaly"][j] = explanation["start_of_anomaly"]

    def _judge(self, score, imputed, explainer, taken=None):
        """Threshold, grade, decide on and learn the score of one row; return what the row reports.

        Parameters
        ----------
        score : float
        imputed : bool
            Whether the row had a missing value: it is neither graded nor learned by the threshold.
        explainer : callable
            Returns the row's explanation (see :func:`~rcforest.detector.explanation.explain`).
        taken : int, optional
            Points the forest has taken, the row's own included, when the
            forest has moved past the row (a batch); see :meth:`_confidence`.

        Returns
        -------
        threshold, alert, confidence : float
        explanation : dict or None
        """
        thresholder = self._thresholder
        threshold = thresholder.threshold()
        grade = likely = 0.0
        if not imputed:
            grade, likely = thresholder.grade(score, threshold), thresholder.likelihood(score)
        strength = score / threshold
        hold = self._preprocessor.shingle_size
        alert, explanation = self._alerts.decide(grade, strength, hold, explainer, likely)
        if not imputed:
            thresholder.learn(score)
        return threshold, alert, self._confidence(taken), explanation

    def _ingest(self, rows, out, out_row):
        """Impute, append to the history and (once the forest exists) score ``rows``."""
        values, imputed = self._preprocessor.append(self._history, rows)
        out["imputed"][out_row : out_row + rows.shape[0]] = imputed
        if self._forest is not None:
            self._decide(values, values.shape[0] - rows.shape[0], imputed, out, out_row)
        self._history = trim(values)
        self.rows_seen_ += rows.shape[0]

    def _run_values(self, values):
        """Process rows in order, stopping at each checkpoint; return the output columns as arrays."""
        n = values.shape[0]
        out = empty_columns(n)
        position = 0
        while position < n:
            take = min(n - position, next_checkpoint(self.rows_seen_) - self.rows_seen_)
            self._ingest(values[position : position + take], out, position)
            position += take
            if self.rows_seen_ == next_checkpoint(self.rows_seen_ - 1):
                self._checkpoint()
        return out

    def _check_columns(self, rows):
        """Record the column names on the first call with rows; check the column count afterwards."""
        values = rows.values
        if self.columns_ is None:
            if values.shape[0]:
                self.columns_ = list(rows.columns)
                self._named = rows.named
        elif values.shape[1] != len(self.columns_):
            raise ValueError(
                f"got {values.shape[1]} columns but the detector was started on {len(self.columns_)} "
                f"({self.columns_}); pass rows with the same columns"
            )

    def _as_rows(self, data, name):
        """Convert input rows; a DataFrame is read by the names of the first columns seen, if they were named."""
        names = self.columns_ if self._named else None
        return as_rows(data, name, missing=True, lone_name="value", names=names)

    def _run_timed(self, values, times):
        """:meth:`_run_values` for timestamped rows: missing rows inserted where a gap shifts the phase.

        Each row's inserted rows (see :mod:`~rcforest.detector.timegrid`)
        are decided with the period in use when they start, so any cut of
        the stream into calls gives the same rows; the output holds the
        input rows only.
        """
        grid, n = self._grid, values.shape[0]
        out = empty_columns(n)
        position = 0
        while position < n:
            room = next_checkpoint(self.rows_seen_) - self.rows_seen_
            fills = grid.fills(times[position:], self._preprocessor.period, advance=False)
            starts = np.cumsum(fills + 1) - fills - 1  # where each row's inserted rows start
            take = int(np.searchsorted(starts, room))  # rows whose inserted rows start before the checkpoint
            if grid.step is None:
                grid.observe(times[position : position + take])
            grid.last = float(times[position + take - 1])
            rows = np.full((take + int(fills[:take].sum()), values.shape[1]), np.nan)
            real = starts[:take] + fills[:take]
            rows[real] = values[position : position + take]
            block = self._run_values(rows)
            for name, column in block.items():
                out[name][position : position + take] = column[real]
            position += take
            if grid.step is None and self.rows_seen_ >= CHECKPOINTS[0]:
                grid.fix_step()
        return out

    def run(self, data, timestamps=None):
        """Process rows in order and report on each one.

        Parameters
        ----------
        data : array-like of shape (n_rows,) or (n_rows, n_columns), pandas Series or DataFrame
            The next rows of the stream, oldest first. NaN, None and
            infinite values count as missing and are imputed; finite values
            beyond 1e29 in magnitude count as 1e29
            (:data:`~rcforest.detector.preprocess.MAX_READING`). Once the
            detector has seen a DataFrame (or a dict) with named columns,
            DataFrames are read by those names, in any column order.
        timestamps : array-like of shape (n_rows,), optional
            The rows' times (datetimes, or numbers in any unit), ascending.
            Where a gap in them shifts the phase of the period in use,
            missing readings are inserted before the row (imputed, learned,
            never reported, and counted in ``rows_seen_``) so that the
            seasonal reference stays in phase: ``g mod period`` of them for
            ``g`` missing steps (:mod:`~rcforest.detector.timegrid`). The
            step is the median difference of the timestamps before the
            first checkpoint. Without timestamps, rows are taken as evenly
            spaced.

        Returns
        -------
        pandas.DataFrame
            One row per input row (the input's index for pandas input, else
            the stream positions) with the columns described in the class
            Notes.
        """
        rows = self._as_rows(data, "data")
        times = None if timestamps is None else as_nanoseconds(timestamps, rows.values.shape[0])
        self._check_columns(rows)
        values, index = rows.values, rows.index
        first = self.rows_seen_
        if times is None:
            self._grid.last = None  # rows without times: the next timestamp starts afresh
            out = self._run_values(values)
        else:
            out = self._run_timed(values, times)
        if index is None:
            import pandas as pd  # the output is a DataFrame; rcforest's import does not load pandas

            index = pd.RangeIndex(first, first + values.shape[0]) if timestamps is None else pd.Index(timestamps)
        return to_frame(out, index)

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
        reading it uses ``allow_pickle=False``, so loading runs no code
        (:mod:`rcforest.detector.saved`).
        """
        write_detector(self, path)

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
        return read_detector(cls, path)
