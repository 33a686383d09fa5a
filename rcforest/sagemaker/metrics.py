"""Test-channel metrics of SageMaker's Random Cut Forest and their log lines.

A test point counts as anomalous when its score is above the mean plus
three standard deviations of the test scores; it is compared with the
label (1 = anomaly). The tuning objective is ``test:f1``, the F1 score of
the anomalous class. SageMaker's built-in algorithms log each metric as::

    [11/30/2026 08:00:00 INFO 140026520049408] #test_score (algo-1) : ('f1', 0.5)
"""

import contextlib
import logging

import numpy as np

from rcforest._fitted import cutoff as threshold

__all__ = ["LOG_FORMAT", "LOG_DATE_FORMAT", "evaluate", "log_metrics", "log_to", "logger", "threshold"]

LOG_FORMAT = "[%(asctime)s %(levelname)s %(thread)d] %(message)s"
LOG_DATE_FORMAT = "%m/%d/%Y %H:%M:%S"
# The algorithm's log: training progress and the #test_score lines.
logger = logging.getLogger("rcforest.sagemaker")

# Which metrics each eval_metrics entry reports, in log order.
_GROUPS = {
    "accuracy": ("accuracy",),
    "precision_recall_fscore": ("precision", "recall", "f1", "precision_normal", "recall_normal", "f1_normal"),
}


def _precision_recall_f1(predicted, actual):
    """Precision, recall and F1 of the positive class; 0 where nothing is counted."""
    true_positive = float(np.sum(predicted & actual))
    precision = true_positive / predicted.sum() if predicted.any() else 0.0
    recall = true_positive / actual.sum() if actual.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)


def evaluate(scores, labels, eval_metrics=("accuracy", "precision_recall_fscore")):
    """Score a labelled test set the way SageMaker's Random Cut Forest does.

    Parameters
    ----------
    scores : array-like of float, shape (n,)
        Anomaly scores of the test points.
    labels : array-like, shape (n,)
        1 for an anomaly, 0 for a normal point.
    eval_metrics : sequence of str
        Any of ``"accuracy"`` and ``"precision_recall_fscore"``.

    Returns
    -------
    dict of str to float
        ``accuracy``; ``precision``, ``recall`` and ``f1`` of the anomalous
        class and ``precision_normal``, ``recall_normal``, ``f1_normal`` of
        the normal class, as requested. A precision or recall with nothing
        to count is 0.

    Raises
    ------
    ValueError
        If labels are not all 0 or 1, or the lengths differ.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.shape != labels.shape:
        raise ValueError(f"{labels.size} labels for {scores.size} test scores")
    if not np.isin(labels, (0.0, 1.0)).all():
        bad = labels[~np.isin(labels, (0.0, 1.0))][0]
        raise ValueError(f"test labels must be 0 (normal) or 1 (anomaly), found {bad}")
    predicted = scores > threshold(scores)
    actual = labels == 1.0
    values = {"accuracy": float(np.mean(predicted == actual))}
    values["precision"], values["recall"], values["f1"] = _precision_recall_f1(predicted, actual)
    normal = _precision_recall_f1(~predicted, ~actual)
    values["precision_normal"], values["recall_normal"], values["f1_normal"] = normal
    wanted = [name for group in eval_metrics for name in _GROUPS[group]]
    return {name: values[name] for name in wanted}


@contextlib.contextmanager
def log_to(stream):
    """Send the algorithm's info logs to ``stream`` in SageMaker's format while the block runs.

    Parameters
    ----------
    stream : text file-like
        Anything with ``write``, such as ``sys.stdout``.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def log_metrics(metrics, logger, host="algo-1"):
    """Log each metric as SageMaker's built-in algorithms do.

    Parameters
    ----------
    metrics : dict of str to float
    logger : logging.Logger
    host : str, default "algo-1"
    """
    for name, value in metrics.items():
        logger.log(logging.INFO, "#test_score (%s) : (%r, %r)", host, name, value)
