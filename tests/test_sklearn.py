"""RandomCutForestDetector: scikit-learn's estimator checks, pipelines and grid searches."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from rcforest import Forest
from rcforest.sklearn import RandomCutForestDetector


def _labelled(rows=600, outliers=30, seed=0):
    """Correlated normal rows on very different scales plus scattered outliers; label 1 = anomaly."""
    rng = np.random.default_rng(seed)
    normal = rng.multivariate_normal([0, 0, 0], [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]], size=rows)
    odd = rng.uniform(-5, 5, size=(outliers, 3))
    odd[:, 0] = -odd[:, 1]  # breaks the correlation
    X = np.vstack([normal, odd]) * np.array([1.0, 1000.0, 0.01])
    y = np.r_[np.zeros(rows, int), np.ones(outliers, int)]
    order = rng.permutation(y.size)
    return X[order], y[order]


def anomaly_auc(estimator, X, y):
    """ROC AUC of the anomaly labels (1 = anomaly) against the negated normality score."""
    return roc_auc_score(y, -estimator.score_samples(X))


@parametrize_with_checks([RandomCutForestDetector(n_estimators=8, sample_size=32, random_state=0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_scores_are_the_negated_forest_scores():
    X, _ = _labelled()
    detector = RandomCutForestDetector(n_estimators=20, sample_size=64, random_state=3).fit(X)
    forest = Forest(num_trees=20, sample_size=64, random_state=3).fit(X)
    assert np.array_equal(detector.score_samples(X), -forest.score(X))
    assert np.allclose(detector.decision_function(X), detector.score_samples(X) - detector.offset_)


def test_contamination_sets_the_share_of_outliers():
    X, y = _labelled()
    detector = RandomCutForestDetector(n_estimators=30, sample_size=128, contamination=0.05, random_state=0).fit(X)
    labels = detector.predict(X)
    assert set(np.unique(labels)) == {-1, 1}
    assert abs((labels == -1).sum() - 0.05 * len(X)) < 1
    auto = clone(detector).set_params(contamination="auto").fit(X)
    flagged = auto.predict(X) == -1
    assert 0 < flagged.sum() < 0.1 * len(X)
    # Most flagged rows are true anomalies.
    assert y[flagged].mean() > 0.5


def test_pipeline_with_a_scaler_finds_the_anomalies():
    X, y = _labelled()
    pipeline = make_pipeline(
        StandardScaler(), RandomCutForestDetector(n_estimators=50, sample_size=128, random_state=0)
    )
    pipeline.fit(X)
    assert roc_auc_score(y, -pipeline.score_samples(X)) > 0.95
    assert pipeline.predict(X).shape == (len(X),)
    # Without the scaler the second column (scale 1000) dominates the cuts.
    raw = RandomCutForestDetector(n_estimators=50, sample_size=128, random_state=0).fit(X)
    assert roc_auc_score(y, -raw.score_samples(X)) < roc_auc_score(y, -pipeline.score_samples(X))


def test_grid_search_with_a_labelled_scorer():
    X, y = _labelled()
    pipeline = make_pipeline(StandardScaler(), RandomCutForestDetector(n_estimators=20, random_state=0))
    search = GridSearchCV(
        pipeline,
        {"randomcutforestdetector__sample_size": [4, 128]},
        scoring=anomaly_auc,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    search.fit(X, y)
    assert search.best_params_ == {"randomcutforestdetector__sample_size": 128}
    assert search.best_score_ > 0.9
    # With sklearn's outlier labels (+1 inlier, -1 outlier) the built-in scorer agrees.
    builtin = GridSearchCV(
        pipeline,
        {"randomcutforestdetector__sample_size": [4, 128]},
        scoring="roc_auc",
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(X, np.where(y == 1, -1, 1))
    assert np.allclose(builtin.cv_results_["mean_test_score"], search.cv_results_["mean_test_score"])


def test_dataframe_input_keeps_feature_names():
    X, _ = _labelled(200, 10)
    frame = pd.DataFrame(X, columns=["cpu", "bytes", "latency"])
    detector = RandomCutForestDetector(n_estimators=10, sample_size=32, random_state=0).fit(frame)
    assert list(detector.feature_names_in_) == ["cpu", "bytes", "latency"]
    with pytest.warns(UserWarning, match="feature names"):
        unnamed = detector.score_samples(X)
    assert np.array_equal(detector.score_samples(frame), unnamed)


def test_shingled_rows_without_a_shingle_are_inliers():
    t = np.arange(400)
    series = np.sin(2 * np.pi * t / 40)
    series[300] = 4.0
    detector = RandomCutForestDetector(n_estimators=30, sample_size=128, shingle_size=4, random_state=0)
    detector.fit(series[:, None])
    scores = detector.score_samples(series[:, None])
    assert np.isnan(scores[:3]).all() and not np.isnan(scores[3:]).any()
    labels = detector.predict(series[:, None])
    assert (labels[:3] == 1).all()
    assert labels[300] == -1


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"contamination": 0.7}, ValueError, "contamination"),
        ({"contamination": "high"}, TypeError, "contamination"),
        ({"n_estimators": 0}, ValueError, "n_estimators"),
        ({"sample_size": 2.5}, TypeError, "sample_size"),
        ({"n_jobs": 0}, ValueError, "n_jobs"),
        ({"shingle_size": 50}, ValueError, "shingle_size"),
    ],
)
def test_bad_parameters_fail_in_fit_not_init(params, error, message):
    detector = RandomCutForestDetector(**params)
    assert detector.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(error, match=message):
        detector.fit(np.zeros((20, 2)) + np.arange(20)[:, None])
