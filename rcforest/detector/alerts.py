"""When a threshold crossing becomes an alert: one alert per anomaly, graded, small deviations ignored."""

import math

from rcforest._core import check_float, check_int

__all__ = ["AlertPolicy"]

ESCALATION = 0.25
"""An ongoing anomaly is reported again when its grade rises this much above its peak, after a full shingle."""

ALERT_MEMORY = 256
"""Rows over which a new anomaly must be about as strong as the last alert (the excess decays over them)."""

STRONG = 1.5
"""A score this many times the threshold is reported even when no single value deviates much."""

WEAK_GRADE = 0.1
"""A crossing graded below this is weak evidence, as is a likely anomaly whose score stays below the threshold."""

WEAK_DEVIATION = 1.2
"""Weak evidence (see :data:`WEAK_GRADE`) must deviate this many times ``min_deviation`` to be reported."""

DEVIATION_SPAN = 2.0
"""The deviation part of the grade reaches 1 at ``(1 + DEVIATION_SPAN) * min_deviation`` typical residuals."""


class AlertPolicy:
    """Turns graded threshold crossings into alerts, one per anomaly.

    Parameters
    ----------
    min_deviation : float
        Crossings whose driving value lies fewer than this many typical
        residuals from its expected value are not reported.
    ignore_relative : float
        Crossings whose deviation is below this fraction of the absolute
        expected value are not reported.

    Attributes
    ----------
    active : bool
        Whether an anomaly is being reported.
    peak : float
        The highest grade seen during the active anomaly.
    quiet : int
        Rows since the active anomaly last crossed the threshold.
    since : int
        Rows since the active anomaly was last reported.
    last_strength : float
        Score over threshold of the last alert.
    since_alert : int
        Rows since the last alert.

    Notes
    -----
    An anomaly starts with a reported crossing. Rows that cross the
    threshold while it lasts are not reported again, unless the grade
    reaches ``peak + ESCALATION`` at least a shingle after the last report;
    the anomaly ends after a shingle of rows below the threshold.

    A new anomaly soon after an alert must be about as strong: its score
    over threshold must reach ``1 + (s - 1) * exp(-rows / ALERT_MEMORY)``,
    where ``s`` is the last alert's and ``rows`` the rows since, so that a
    burst of after-shocks raises one alert, not one per shock. A score of
    ``STRONG`` times the threshold is reported even when no single value
    deviates ``min_deviation`` typical residuals (a contextual anomaly: the
    pattern is new, no value is).
    """

    def __init__(self, min_deviation, ignore_relative):
        self.min_deviation = min_deviation
        self.ignore_relative = ignore_relative
        self.forget()

    def reset(self):
        """Forget the active anomaly."""
        self.active = False
        self.peak = 0.0
        self.quiet = 0
        self.since = 0

    def forget(self):
        """Forget the active anomaly and the last alert."""
        self.reset()
        self.last_strength = 1.0
        self.since_alert = 0

    def state(self):
        """The active anomaly, JSON-ready."""
        return {
            "active": self.active,
            "peak": self.peak,
            "quiet": self.quiet,
            "since": self.since,
            "last_strength": self.last_strength,
            "since_alert": self.since_alert,
        }

    def restore(self, state):
        """Set the active anomaly from :meth:`state`'s output, checked: booleans, finite numbers, counts."""
        if not isinstance(state["active"], bool):
            raise TypeError(f"active must be true or false, got {state['active']!r:.40}")
        self.active = state["active"]
        self.peak = check_float(state["peak"], "peak", -math.inf)
        self.quiet = check_int(state["quiet"], "quiet", 0)
        self.since = check_int(state["since"], "since", 0)
        # Files of rcforest 0.1.0 have none of these.
        self.last_strength = check_float(state.get("last_strength", 1.0), "last_strength", -math.inf)
        self.since_alert = check_int(state.get("since_alert", 0), "since_alert", 0)

    def suppressed(self, explanation, factor=1.0):
        """Whether the explained deviation is too small to report (``factor * min_deviation``, ``ignore_relative``)."""
        if explanation["deviation"] < factor * self.min_deviation:
            return True
        deviation = abs(explanation["actual"] - explanation["expected_value"])
        return deviation < self.ignore_relative * abs(explanation["expected_value"])

    def alert_grade(self, grade, explanation):
        """The reported grade: the score's grade, raised for values far from their expected value."""
        scale = DEVIATION_SPAN * max(self.min_deviation, 1.0)
        return float(max(grade, min(1.0, (explanation["deviation"] - self.min_deviation) / scale)))

    def bar(self):
        """The score over threshold a new anomaly must reach (1 when the last alert is long past)."""
        return 1.0 + (self.last_strength - 1.0) * math.exp(-self.since_alert / ALERT_MEMORY)

    def decide(self, grade, strength, hold, explain, likely=0.0):
        """Decide on one row.

        Parameters
        ----------
        grade : float
            The score's grade (0 below the threshold, and for rows that may not alert).
        strength : float
            The score over the threshold.
        hold : int
            Rows (a shingle) before an ongoing anomaly may be reported again, or is over.
        explain : callable
            Returns the row's explanation (see :func:`rcforest.detector.explanation.explain`);
            called only when the row may be reported.
        likely : float, default 0.0
            The row's grade as a likely anomaly (see
            :meth:`~rcforest.detector.thresholder.Thresholder.likelihood`),
            used when the score does not pass the threshold: such a row is
            not held to the after-shock bar, must deviate
            ``WEAK_DEVIATION * min_deviation`` typical residuals (as must a
            crossing graded below :data:`WEAK_GRADE`), and resets the bar.

        Returns
        -------
        alert : float
            The reported grade, 0 for no alert.
        explanation : dict or None
            The explanation of a reported row.
        """
        if self.active:
            self.since += 1
        self.since_alert += 1
        weak = grade < WEAK_GRADE
        if grade <= 0 and likely > 0:
            grade, strength, weak = likely, 1.0, True
        elif not self.active and strength < self.bar():
            grade = 0.0
        alert, reported = 0.0, None
        if grade > 0:
            worse = self.active and self.since >= hold and grade >= self.peak + ESCALATION
            if not self.active or worse:
                explanation = explain()
                if strength >= STRONG or not self.suppressed(explanation, WEAK_DEVIATION if weak else 1.0):
                    alert, reported = self.alert_grade(grade, explanation), explanation
                    self.active, self.peak, self.quiet, self.since = True, grade, 0, 0
                    self.last_strength, self.since_alert = strength, 0
            if self.active:
                self.quiet = 0
                self.peak = max(self.peak, grade)
        elif self.active:
            self.quiet += 1
            if self.quiet >= hold:
                self.reset()
        return alert, reported
