"""rcforest: Random Cut Forest anomaly detection on batches and streams, with numba."""

from rcforest._version import __version__
from rcforest.detector import DetectorPool, Forecaster, ThresholdedForest
from rcforest.forest import Forest

__all__ = ["DetectorPool", "Forecaster", "Forest", "ThresholdedForest", "__version__"]
