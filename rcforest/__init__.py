"""rcforest: Random Cut Forest anomaly detection on batches and streams, with numba."""

from rcforest.forest import Forest
from rcforest.thresholded import ThresholdedForest

__version__ = "0.1.0"

__all__ = ["Forest", "ThresholdedForest", "__version__"]
