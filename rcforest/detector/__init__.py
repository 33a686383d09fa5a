"""Streaming detection that decides: :class:`ThresholdedForest` and its parts.

- :mod:`~rcforest.detector.period`: seasonal period estimation and the checkpoints that re-estimate it;
- :mod:`~rcforest.detector.preprocess`: normalisation, seasonal reference, residuals, imputation, shingles;
- :mod:`~rcforest.detector.thresholder`: the adaptive threshold on the scores;
- :mod:`~rcforest.detector.alerts`: which threshold crossings become alerts, and their grades;
- :mod:`~rcforest.detector.explanation`: attribution, expected value and start of an anomaly;
- :mod:`~rcforest.detector.output`: the output columns and their dtypes;
- :mod:`~rcforest.detector.thresholded_forest`: the detector that runs them over a stream;
- :mod:`~rcforest.detector.live`: its live readings, one row per call;
- :mod:`~rcforest.detector.pool`: many detectors in one process, keyed by entity, the idle ones on disk.
- :mod:`~rcforest.detector.forecaster`: forecasts with intervals calibrated on past errors.
"""

from rcforest.detector.forecaster import Forecaster
from rcforest.detector.output import COLUMNS
from rcforest.detector.period import estimate_period
from rcforest.detector.pool import DetectorPool
from rcforest.detector.thresholded_forest import ThresholdedForest

__all__ = ["COLUMNS", "DetectorPool", "Forecaster", "ThresholdedForest", "estimate_period"]
