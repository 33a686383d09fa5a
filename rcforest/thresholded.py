"""The streaming detector, :class:`ThresholdedForest` (kept importable here; it lives in :mod:`rcforest.detector`)."""

from rcforest.detector import ThresholdedForest, estimate_period

__all__ = ["ThresholdedForest", "estimate_period"]
