"""An adaptive threshold on a stream of scores: a discounted mean and deviation (AWS's ``BasicThresholder``)."""

import math

from rcforest._core import check_float, check_int

__all__ = ["Thresholder"]

INITIAL_THRESHOLD = 1.5
"""AWS's initial threshold, used while few scores are known."""

RAMP = 20
"""Scores over which the statistics take over from the initial threshold."""

CLIP_FACTOR = 2.0
"""Scores beyond ``mean + CLIP_FACTOR * z_factor * deviation`` are clipped there when learned."""


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

    def state(self):
        """The learned statistics, JSON-ready."""
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def restore(self, state):
        """Set the statistics from :meth:`state`'s output, checked: finite, the variance and count not negative."""
        self.mean = check_float(state["mean"], "the score mean", -math.inf)
        self.var = check_float(state["var"], "the score variance")
        self.count = check_int(state["count"], "the score count", 0)

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
        if self.count >= RAMP:
            score = min(score, self.mean + CLIP_FACTOR * self.z_factor * math.sqrt(self.var))
        alpha = max(1.0 / self.horizon, 1.0 / (self.count + 1))
        delta = score - self.mean
        self.mean += alpha * delta
        self.var = (1 - alpha) * (self.var + alpha * delta * delta)
        self.count += 1

    def grade(self, score, threshold):
        """How far ``score`` passes ``threshold``, relative to the threshold's margin over the mean, capped at 1."""
        if not score > threshold:
            return 0.0
        spread = max(threshold - self.mean, 1e-12)
        return float(min(1.0, (score - threshold) / spread))
