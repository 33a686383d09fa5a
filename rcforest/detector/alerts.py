"""When a threshold crossing becomes an alert: one alert per anomaly, graded, small deviations and repeats ignored."""

import math

from rcforest._core import check_float, check_int
from rcforest.detector.period import HISTORY

__all__ = ["AlertPolicy"]

ESCALATION = 0.25
"""An ongoing anomaly is reported again, after a shingle, when its grade rises this much above the last reported."""

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

REPEAT = 0.5
"""A new anomaly repeats a reported one when its value and its expected value each lie within this many typical
residuals of that report's (same column)."""

REPEAT_MEMORY = HISTORY
"""Rows over which reported departures are remembered (counted from the last time each was seen)."""

OUTRANKED = 3
"""A new anomaly is not reported when this many of the anomalies reported in the last :data:`REPEAT_MEMORY` rows
were at least as strong (score over threshold): a bound on the rate of alerts, measured on the detector's own."""


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
    reported : float
        The grade last reported for the active anomaly.
    quiet : int
        Rows since the active anomaly last crossed the threshold.
    since : int
        Rows since the active anomaly was last reported.
    last_strength : float
        Score over threshold of the last alert.
    since_alert : int
        Rows since the last alert.
    memory : list of [int, int, float, float]
        The departures reported (see :data:`REPEAT_MEMORY`): the row each
        was last seen (on the policy's clock, ``clock``, of rows decided),
        column, value and expected value.
    reports : list of [int, float]
        The anomalies reported in the last :data:`REPEAT_MEMORY` rows: the
        row of each first report (on ``clock``) and its score over threshold.

    Notes
    -----
    An anomaly starts with a reported crossing. Rows that cross the
    threshold while it lasts are not reported again, unless, a shingle or
    more after the last report, the grade the row would be reported with
    (see :meth:`alert_grade`) reaches the grade last reported plus
    ``ESCALATION``: a weak first report of an anomaly that then departs
    much further (a longer or larger event) is followed by a second one.
    The anomaly ends after a shingle of rows below the threshold.

    A new anomaly soon after an alert must be about as strong: its score
    over threshold must reach ``1 + (s - 1) * exp(-rows / ALERT_MEMORY)``,
    where ``s`` is the last alert's and ``rows`` the rows since, so that a
    burst of after-shocks raises one alert, not one per shock. A score of
    ``STRONG`` times the threshold is reported even when no single value
    deviates ``min_deviation`` typical residuals (a contextual anomaly: the
    pattern is new, no value is).

    A new anomaly that repeats a departure reported in the last
    ``REPEAT_MEMORY`` rows (its value and its expected value each within
    ``REPEAT`` typical residuals of that report's) is not reported again:
    the user knows of it, and a recurring event the forest cannot learn (a
    daily job whose time drifts) raises one alert, not one a day. Each
    repeat refreshes the memory of the departure.

    The rate of alerts is bounded by the detector's own: a new anomaly is
    not reported when :data:`OUTRANKED` anomalies reported in the last
    :data:`REPEAT_MEMORY` rows scored at least as high over their
    thresholds (a likely anomaly below the threshold counts as 1). On a
    series that keeps producing crossings of one size (bursts, a noisy
    tail) the alerts thin out to the strongest; an anomaly stronger than
    the recent ones is always a candidate.
    """

    def __init__(self, min_deviation, ignore_relative):
        self.min_deviation = min_deviation
        self.ignore_relative = ignore_relative
        self.forget()

    def reset(self):
        """Forget the active anomaly."""
        self.active = False
        self.reported = 0.0
        self.quiet = 0
        self.since = 0

    def forget(self):
        """Forget the active anomaly, the last alert and the departures reported."""
        self.reset()
        self.last_strength = 1.0
        self.since_alert = 0
        self.clock = 0
        self.memory = []
        self.reports = []

    def state(self):
        """The active anomaly and the memory of alerts, JSON-ready."""
        return {
            "active": self.active,
            "reported": self.reported,
            "quiet": self.quiet,
            "since": self.since,
            "last_strength": self.last_strength,
            "since_alert": self.since_alert,
            "memory": [[self.clock - seen, *departure] for seen, *departure in self._remembered()],
            "reports": [[self.clock - row, strength] for row, strength in self._recent()],
        }

    def restore(self, state):
        """Set the state from :meth:`state`'s output, checked: booleans, finite numbers, counts.

        States of detector format versions 1 to 3 hold ``peak`` (the highest
        score grade of the active anomaly) in place of ``reported``, and no
        memory; states written before the rate bound hold no reports.
        The memory and the reports hold ages in rows; the clock restarts at 0.
        """
        if not isinstance(state["active"], bool):
            raise TypeError(f"active must be true or false, got {state['active']!r:.40}")
        self.active = state["active"]
        reported = state["reported"] if "reported" in state else state["peak"]
        self.reported = check_float(reported, "reported", -math.inf)
        self.quiet = check_int(state["quiet"], "quiet", 0)
        self.since = check_int(state["since"], "since", 0)
        # Files of rcforest 0.1.0 have none of these.
        self.last_strength = check_float(state.get("last_strength", 1.0), "last_strength", -math.inf)
        self.since_alert = check_int(state.get("since_alert", 0), "since_alert", 0)
        memory = state.get("memory", [])
        if not isinstance(memory, list) or not all(isinstance(entry, list) and len(entry) == 4 for entry in memory):
            raise ValueError("the memory of alerts must be a list of [age, column, value, expected value]")
        self.clock = 0
        self.memory = [
            [
                -check_int(age, "an alert's age", 0),
                check_int(column, "an alert's column", 0),
                check_float(actual, "an alert's value", -math.inf),
                check_float(expected, "an alert's expected value", -math.inf),
            ]
            for age, column, actual, expected in memory
        ]
        reports = state.get("reports", [])
        if not isinstance(reports, list) or not all(isinstance(entry, list) and len(entry) == 2 for entry in reports):
            raise ValueError("the reports must be a list of [age, score over threshold]")
        self.reports = [
            [-check_int(age, "a report's age", 0), check_float(strength, "a report's score over threshold", -math.inf)]
            for age, strength in reports
        ]

    def suppressed(self, explanation, factor=1.0):
        """Whether the explained deviation is too small to report (``factor * min_deviation``, ``ignore_relative``)."""
        if explanation["deviation"] < factor * self.min_deviation:
            return True
        deviation = abs(explanation["actual"] - explanation["expected_value"])
        return deviation < self.ignore_relative * abs(explanation["expected_value"])

    def _remembered(self):
        """The memory without the departures last seen more than :data:`REPEAT_MEMORY` rows ago."""
        return [entry for entry in self.memory if self.clock - entry[0] <= REPEAT_MEMORY]

    def _recent(self):
        """The reports without those made more than :data:`REPEAT_MEMORY` rows ago."""
        return [entry for entry in self.reports if self.clock - entry[0] <= REPEAT_MEMORY]

    def outranked(self, strength):
        """Whether :data:`OUTRANKED` recent reports were at least as strong as ``strength``."""
        self.reports = self._recent()
        return sum(reported >= strength for _, reported in self.reports) >= OUTRANKED

    def repeats(self, explanation):
        """Whether the explained departure repeats one in the memory (which is then seen now)."""
        self.memory = self._remembered()
        reach = REPEAT * explanation["residual"]
        for entry in self.memory:
            _, column, actual, expected = entry
            if (
                column == explanation["column"]
                and abs(actual - explanation["actual"]) < reach
                and abs(expected - explanation["expected_value"]) < reach
            ):
                entry[0] = self.clock
                return True
        return False

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
        self.clock += 1
        weak = grade < WEAK_GRADE
        if grade <= 0 and likely > 0:
            grade, strength, weak = likely, 1.0, True
        elif not self.active and strength < self.bar():
            grade = 0.0
        alert, reported = 0.0, None
        if grade > 0:
            # An ongoing anomaly reported at a grade of 1 - ESCALATION or more cannot get clearly worse.
            if not self.active or (self.since >= hold and self.reported + ESCALATION <= 1.0):
                explanation = explain()
                graded = self.alert_grade(grade, explanation)
                if self.active:
                    report = graded >= self.reported + ESCALATION
                else:
                    report = not self.repeats(explanation) and not self.outranked(strength)
                if report and (strength >= STRONG or not self.suppressed(explanation, WEAK_DEVIATION if weak else 1.0)):
                    alert, reported = graded, explanation
                    departure = [explanation["column"], explanation["actual"], explanation["expected_value"]]
                    self.memory = [*self._remembered(), [self.clock, *departure]]
                    if not self.active:
                        self.reports = [*self._recent(), [self.clock, strength]]
                    self.active, self.reported, self.quiet, self.since = True, graded, 0, 0
                    self.last_strength, self.since_alert = strength, 0
            if self.active:
                self.quiet = 0
        elif self.active:
            self.quiet += 1
            if self.quiet >= hold:
                self.reset()
        return alert, reported
