"""An adaptive threshold on a stream of scores: a discounted mean and deviation (AWS's ``BasicThresholder``).

While the statistics are young, a second test watches the average of the
last few scores against its own discounted mean and deviation (the idea of
the anomaly likelihood of HTM's scorer): a young ``mean + z * deviation``
threshold is inflated by the novelty scores of a young forest, and a
sustained rise of the score is a surer sign than a single high one.
"""

import math

from rcforest._core import check_float, check_int

__all__ = ["Thresholder"]

INITIAL_THRESHOLD = 1.5
"""AWS's initial threshold, used while few scores are known."""

RAMP = 20
"""Scores over which the statistics take over from the initial threshold."""

CLIP_FACTOR = 2.0
"""Scores beyond ``mean + CLIP_FACTOR * z_factor * deviation`` are clipped there when learned."""

SHORT_WINDOW = 8
"""Scores (the row's and the last ones learned) in the short-window average of the likelihood test."""

LIKELIHOOD_Z = 2.0
"""Deviations of the short-window average above its discounted mean that make a row a likely anomaly."""

LIKELIHOOD_WARMUP = 50
"""Short-window averages learned before the likelihood test starts."""

LIKELIHOOD_GRADE = 0.5
"""The likelihood grade rises by this from :data:`MIN_GRADE` at :data:`LIKELIHOOD_Z` to twice it."""

MIN_GRADE = 1e-3
"""The smallest grade of a likely anomaly, so that it counts as a crossing."""


class Thresholder:
    """Threshold ``max(min_threshold, mean + z_factor * deviation)`` over a discounted history of scores.

    Parameters
    ----------
    z_factor : float
        Deviations of the score above its discounted mean that make the threshold.
    min_threshold : float
        Floor of the threshold.
    horizon : int
        Rows over which the mean and deviation are averaged (the discount is ``1 / horizon``).

    Attributes
    ----------
    mean, var : float
        The discounted mean and variance of the scores learned.
    count : int
        Scores learned.
    recent : list of float
        The last scores learned (at most :data:`SHORT_WINDOW` - 1).
    average_mean, average_var : float
        The discounted mean and variance of the short-window averages.
    averages : int
        Short-window averages learned (fewer than ``count`` after loading a
        file of format version 1, which has none).
    """

    def __init__(self, z_factor, min_threshold, horizon):
        self.z_factor = z_factor
        self.min_threshold = min_threshold
        self.horizon = horizon
        self.reset()

    def reset(self):
        """Forget the scores learned."""
        self.mean = 0.0
        self.var = 0.0
        self.count = 0
        self.recent = []
        self.average_mean = 0.0
        self.average_var = 0.0
        self.averages = 0

    def state(self):
        """The learned statistics, JSON-ready."""
        return {
            "mean": self.mean,
            "var": self.var,
            "count": self.count,
            "recent": list(self.recent),
            "average_mean": self.average_mean,
            "average_var": self.average_var,
            "averages": self.averages,
        }

    def restore(self, state):
        """Set the statistics from :meth:`state`'s output, checked: finite, variances and counts not negative.

        Files of format version 1 have no likelihood state: it starts afresh.
        """
        self.mean = check_float(state["mean"], "the score mean", -math.inf)
        self.var = check_float(state["var"], "the score variance")
        self.count = check_int(state["count"], "the score count", 0)
        recent = state.get("recent", [])
        if not isinstance(recent, list) or len(recent) >= SHORT_WINDOW:
            raise ValueError(f"the recent scores must be a list of fewer than {SHORT_WINDOW}")
        self.recent = [check_float(score, "a recent score", -math.inf) for score in recent]
        self.average_mean = check_float(state.get("average_mean", 0.0), "the average mean", -math.inf)
        self.average_var = check_float(state.get("average_var", 0.0), "the average variance")
        self.averages = check_int(state.get("averages", 0), "the average count", 0)

    def threshold(self):
        """The current threshold, ramped in from :data:`INITIAL_THRESHOLD` over the first :data:`RAMP` scores."""
        adaptive = self.mean + self.z_factor * math.sqrt(self.var)
        weight = min(1.0, self.count / RAMP)
        return max(self.min_threshold, weight * adaptive + (1 - weight) * INITIAL_THRESHOLD)

    def learn(self, score):
        """Fold ``score`` into the discounted mean and variance.

        Scores beyond ``mean + 2 * z_factor * deviation`` are clipped there,
        so that a single extreme anomaly does not blind the threshold.
        """
        alpha = max(1.0 / self.horizon, 1.0 / (self.averages + 1))
        delta = self._average(score) - self.average_mean
        self.average_mean += alpha * delta
        self.average_var = (1 - alpha) * (self.average_var + alpha * delta * delta)
        self.averages += 1
        recent = self.recent
        recent.append(score)
        if len(recent) >= SHORT_WINDOW:
            del recent[0]
        alpha = max(1.0 / self.horizon, 1.0 / (self.count + 1))
        if self.count >= RAMP:
            score = min(score, self.mean + CLIP_FACTOR * self.z_factor * math.sqrt(self.var))
        delta = score - self.mean
        self.mean += alpha * delta
        self.var = (1 - alpha) * (self.var + alpha * delta * delta)
        self.count += 1

    def _average(self, score):
        """The average of ``score`` and the last scores learned."""
        return (sum(self.recent) + score) / (len(self.recent) + 1)

    def likelihood(self, score):
        """The grade of ``score`` as a likely anomaly while the statistics are young, else 0.

        From :data:`LIKELIHOOD_WARMUP` averages learned until ``horizon``
        scores are learned, a row whose short-window average (see
        :data:`SHORT_WINDOW`) lies more than :data:`LIKELIHOOD_Z` deviations
        above the averages' discounted mean is graded from :data:`MIN_GRADE`
        up to :data:`LIKELIHOOD_GRADE` at twice that.
        """
        if self.averages < LIKELIHOOD_WARMUP or self.count >= self.horizon:
            return 0.0
        z = (self._average(score) - self.average_mean) / max(math.sqrt(self.average_var), 1e-12)
        if not z > LIKELIHOOD_Z:
            return 0.0
        return MIN_GRADE + LIKELIHOOD_GRADE * min(1.0, (z - LIKELIHOOD_Z) / LIKELIHOOD_Z)

    def grade(self, score, threshold):
        """How far ``score`` passes ``threshold``, relative to the threshold's margin over the mean, capped at 1."""
        if not score > threshold:
            return 0.0
        spread = max(threshold - self.mean, 1e-12)
        return float(min(1.0, (score - threshold) / spread))
