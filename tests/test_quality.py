"""Detection quality on the cases of the RRCF paper and rrcf's documentation."""

import numpy as np
from scipy.stats import rankdata

from rcforest import Forest


def auc(labels, scores):
    """Area under the ROC curve (Mann-Whitney U), ties counted half."""
    labels = np.asarray(labels, bool)
    ranks = rankdata(scores)
    positives = labels.sum()
    negatives = labels.size - positives
    return (ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives)


def test_auc_helper():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5


def test_sine_anomaly_holds_the_top_streaming_codisp():
    t = np.arange(730)
    series = 50 * np.sin(2 * np.pi * t / 100) + 100
    series[235:255] = 80
    forest = Forest(num_trees=100, sample_size=256, shingle_size=4, random_state=0)
    codisp = forest.score_update(series, kind="codisp")
    # Shingles ending at 235..257 contain anomalous values. The first period
    # (t < 100) is the forest's warm-up: every shingle is new there.
    in_segment = (t >= 235) & (t < 235 + 20 + 3)
    after_warm_up = t >= 100
    ranked = np.argsort(-np.where(after_warm_up, codisp, -np.inf))
    assert in_segment[ranked[:6]].all(), ranked[:6]
    assert codisp[in_segment].max() > 3 * codisp[after_warm_up & ~in_segment].max()


def _clusters(seed, dim=30):
    """rrcf's batch example in 30 dimensions: two tight clusters, ten outliers between.

    1000 points at +5 and 1000 at -5 in the first dimension, 0 elsewhere, and
    10 at the origin, all plus Gaussian noise of scale 0.01. The outliers
    collude: they sit together, so each one alone hides behind the others.
    """
    rng = np.random.default_rng(seed)
    data = np.zeros((2010, dim))
    data[:1000, 0] = 5
    data[1000:2000, 0] = -5
    data += 0.01 * rng.normal(size=data.shape)
    labels = np.r_[np.zeros(2000), np.ones(10)]
    return data, labels


def test_colluding_outliers_between_two_clusters():
    data, labels = _clusters(0)
    forest = Forest(num_trees=100, sample_size=256, random_state=0).fit(data)
    score_auc = auc(labels, forest.score(data))
    codisp_auc = auc(labels, forest.codisp(data))
    print(f"AUC score {score_auc:.4f}, codisp {codisp_auc:.4f}")
    assert score_auc >= 0.95
    assert codisp_auc >= 0.95
