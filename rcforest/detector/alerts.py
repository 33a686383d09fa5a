"""When a threshold crossing becomes an alert: one alert per anomaly, graded, small deviations ignored."""

__all__ = ["AlertPolicy"]

ESCALATION = 0.25
"""An ongoing anomaly is reported again when its grade rises this much above its peak, after a full shingle."""

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

    Notes
    -----
    An anomaly starts with a reported crossing. Rows that cross the
    threshold while it lasts are not reported again, unless the grade
    reaches ``peak + ESCALATION`` at least a shingle after the last report;
    the anomaly ends after a shingle of rows below the threshold.
    """

    def __init__(self, min_deviation, ignore_relative):
        self.min_deviation = min_deviation
        self.ignore_relative = ignore_relative
        self.reset()

    def reset(self):
        """Forget the active anomaly."""
        self.active = False
        self.peak = 0.0
        self.quiet = 0
        self.since = 0

    def state(self):
        """The active anomaly, JSON-ready."""
        return {"active": self.active, "peak": self.peak, "quiet": self.quiet, "since": self.since}

    def restore(self, state):
        """Set the active anomaly from :meth:`state`'s output."""
        self.active = bool(state["active"])
        self.peak = float(state["peak"])
        self.quiet = int(state["quiet"])
        self.since = int(state["since"])

    def suppressed(self, explanation):
        """Whether the explained deviation is too small to report (``min_deviation``, ``ignore_relative``)."""
        if explanation["deviation"] < self.min_deviation:
            return True
        deviation = abs(explanation["actual"] - explanation["expected_value"])
        return deviation < self.ignore_relative * abs(explanation["expected_value"])

    def alert_grade(self, grade, explanation):
        """The reported grade: the score's grade, raised for values far from their expected value."""
        scale = DEVIATION_SPAN * max(self.min_deviation, 1.0)
        return float(max(grade, min(1.0, (explanation["deviation"] - self.min_deviation) / scale)))

    def decide(self, grade, hold, explain):
        """Decide on one row.

        Parameters
        ----------
        grade : float
            The score's grade (0 below the threshold, and for rows that may not alert).
        hold : int
            Rows (a shingle) before an ongoing anomaly may be reported again, or is over.
        explain : callable
            Returns the row's explanation (see :func:`rcforest.detector.explanation.explain`);
            called only when the row may be reported.

        Returns
        -------
        alert : float
            The reported grade, 0 for no alert.
        explanation : dict or None
            The explanation of a reported row.
        """
        if self.active:
            self.since += 1
        alert, reported = 0.0, None
        if grade > 0:
            worse = self.active and self.since >= hold and grade >= self.peak + ESCALATION
            if not self.active or worse:
                explanation = explain()
                if not self.suppressed(explanation):
                    alert, reported = self.alert_grade(grade, explanation), explanation
                    self.active, self.peak, self.quiet, self.since = True, grade, 0, 0
            if self.active:
                self.quiet = 0
                self.peak = max(self.peak, grade)
        elif self.active:
            self.quiet += 1
            if self.quiet >= hold:
                self.reset()
        return alert, reported
