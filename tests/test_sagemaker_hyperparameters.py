"""Hyperparameter names, ranges and defaults, and the test-channel metrics, against SageMaker's contract."""

import logging

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from rcforest.sagemaker.hyperparameters import check_hyperparameters, check_value
from rcforest.sagemaker.metrics import evaluate, log_metrics, threshold


def test_defaults_and_string_values():
    checked = check_hyperparameters({"feature_dim": "3", "mini_batch_size": "1000"})
    assert checked == {
        "feature_dim": 3,
        "num_samples_per_tree": 256,
        "num_trees": 100,
        "eval_metrics": ["accuracy", "precision_recall_fscore"],
    }
    checked = check_hyperparameters(
        {"feature_dim": 1, "num_trees": "50", "num_samples_per_tree": "2048", "eval_metrics": '["accuracy"]'}
    )
    assert (checked["num_trees"], checked["num_samples_per_tree"], checked["eval_metrics"]) == (50, 2048, ["accuracy"])
    assert check_value("eval_metrics", "precision_recall_fscore") == ["precision_recall_fscore"]
    assert check_value("num_trees", 75.0) == 75


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("num_trees", 49, r"num_trees must be an integer in \[50, 1000\], got 49"),
        ("num_trees", "1001", r"num_trees must be an integer in \[50, 1000\], got 1001"),
        ("num_samples_per_tree", 0, r"num_samples_per_tree must be an integer in \[1, 2048\]"),
        ("num_samples_per_tree", "2049", r"num_samples_per_tree must be an integer in \[1, 2048\]"),
        ("feature_dim", 10001, r"feature_dim must be an integer in \[1, 10000\]"),
        ("feature_dim", "two", r"feature_dim must be an integer in \[1, 10000\], got 'two'"),
        ("num_trees", 50.5, r"num_trees must be an integer in \[50, 1000\]"),
        ("eval_metrics", ["auc"], "eval_metrics must be a list of"),
        ("mini_batch_size", 500, "fixed mini_batch_size of 1000"),
        ("sample_size", 10, "unknown hyperparameter 'sample_size'"),
    ],
)
def test_errors_name_parameter_and_range(name, value, message):
    with pytest.raises(ValueError, match=message):
        check_hyperparameters({"feature_dim": 2, name: value})


def test_feature_dim_required_and_reserved_names_ignored():
    with pytest.raises(ValueError, match=r"feature_dim is required: an integer in \[1, 10000\]"):
        check_hyperparameters({"num_trees": "50"})
    checked = check_hyperparameters({"feature_dim": "2", "_tuning_objective_metric": "test:f1"})
    assert "_tuning_objective_metric" not in checked


def test_feature_size_alias_warns():
    with pytest.warns(FutureWarning, match="feature_size is a deprecated alias"):
        checked = check_hyperparameters({"num_samples_per_tree": "200", "num_trees": "50", "feature_size": "1"})
    assert checked["feature_dim"] == 1
    with pytest.raises(ValueError, match="feature_dim only"):
        check_hyperparameters({"feature_dim": 1, "feature_size": 1})


def _naive_metrics(scores, labels):
    """Mean + 3 std rule, then scikit-learn's metrics: an independent reference."""
    cut = scores.mean() + 3 * scores.std()
    predicted = (scores > cut).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=[1, 0], zero_division=0)
    return {
        "accuracy": accuracy_score(labels, predicted),
        "precision": precision[0],
        "recall": recall[0],
        "f1": f1[0],
        "precision_normal": precision[1],
        "recall_normal": recall[1],
        "f1_normal": f1[1],
    }


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    labels = (rng.random(n) < 0.05).astype(int)
    scores = rng.gamma(2.0, 0.5, n) + labels * rng.uniform(0, 6, n)
    metrics = evaluate(scores, labels)
    expected = _naive_metrics(scores, labels)
    assert metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name


def test_metrics_selection_and_threshold():
    scores = np.r_[np.ones(99), 10.0]
    labels = np.r_[np.zeros(99), 1]
    assert threshold(scores) == pytest.approx(scores.mean() + 3 * scores.std())
    assert evaluate(scores, labels, ["accuracy"]) == {"accuracy": 1.0}
    assert evaluate(scores, labels, ["precision_recall_fscore"])["f1"] == 1.0
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        evaluate(scores, np.r_[np.zeros(99), 2])
    with pytest.raises(ValueError, match="labels for"):
        evaluate(scores, labels[:-1])


def test_metric_log_lines(caplog):
    logger = logging.getLogger("rcforest.test.metrics")
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_metrics({"accuracy": 0.75, "f1": 0.5}, logger)
    assert caplog.messages == ["#test_score (algo-1) : ('accuracy', 0.75)", "#test_score (algo-1) : ('f1', 0.5)"]
