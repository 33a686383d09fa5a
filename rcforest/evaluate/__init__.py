"""Detection quality: point and event metrics for labelled streams, and NAB's benchmark score.

- :mod:`~rcforest.evaluate.events`: point metrics (precision, recall, F1),
  window (event) metrics in NAB's sense, alert events, top-ranked days;
- :mod:`~rcforest.evaluate.nab`: :func:`nab_score`, the Numenta Anomaly
  Benchmark's normalised score, computed as NAB computes it;
- :mod:`~rcforest.evaluate.synthetic`: generated series with labelled
  anomalies, one family per property of real data (:func:`stress_suite`);
- :mod:`~rcforest.evaluate.periods`: generated series with a known seasonal
  period, or none, for checking period estimation.
"""

from rcforest.evaluate.events import alert_events, point_metrics, precision_at_k, top_days, window_mask, window_metrics
from rcforest.evaluate.nab import nab_score
from rcforest.evaluate.synthetic import make_series, stress_suite

__all__ = [
    "point_metrics",
    "window_mask",
    "alert_events",
    "window_metrics",
    "precision_at_k",
    "top_days",
    "nab_score",
    "make_series",
    "stress_suite",
]
