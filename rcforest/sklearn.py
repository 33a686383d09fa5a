"""A scikit-learn outlier detector backed by a Random Cut Forest.

:class:`RandomCutForestDetector` follows the conventions of
``sklearn.ensemble.IsolationForest``, so it drops into pipelines, grid
searches and model selection code written for it.

Sign convention: rcforest's own scores grow with anomaly; scikit-learn's
``score_samples`` grows with normality. Here ``score_samples`` is the
*negative* of :meth:`rcforest.Forest.score`, ``decision_function`` is
``score_samples - offset_`` (negative for outliers) and ``predict`` is -1 for
outliers and +1 for inliers.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from rcforest._core import check_int
from rcforest._fitted import cutoff
from rcforest.forest import Forest

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)


__all__ = ["RandomCutForestDetector"]


class RandomCutForestDetector(OutlierMixin, BaseEstimator):
    """Random Cut Forest outlier detector with scikit-learn's interface.

    Parameters
    ----------
    n_estimators : int, default 100
        Number of trees (``num_trees`` of :class:`rcforest.Forest`).
    sample_size : int, default 256
        Points each tree keeps, sampled without replacement from the
        training rows (all of them when there are fewer).
    shingle_size : int, default 1
        Consecutive rows stacked into one point. With ``shingle_size > 1``
        the rows must be a time-ordered series, and the first
        ``shingle_size - 1`` rows of every call have no score (NaN, and
        ``predict`` calls them inliers).
    contamination : "auto" or float in (0, 0.5], default "auto"
        Expected share of outliers in the training data, which sets
        ``offset_``: with a float, that share of training rows falls below
        the threshold; with "auto", rows whose rcforest score exceeds the
        training scores' mean by more than three standard deviations are
        outliers (the rule the SageMaker RCF documentation suggests).
    random_state : int, RandomState instance or None, default None
        Seed of the forest. An int gives the same forest as
        ``rcforest.Forest(random_state=...)``.
    n_jobs : int or None, default None
        Threads for the forest's kernels; None or -1 uses all cores.

    Attributes
    ----------
    forest_ : rcforest.Forest
        The fitted forest.
    offset_ : float
        Threshold on ``score_samples``: ``decision_function`` is
        ``score_samples(X) - offset_``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from rcforest.sklearn import RandomCutForestDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> detector = RandomCutForestDetector(n_estimators=50, random_state=0).fit(X)
    >>> detector.predict([[0.0, 0.0], [8.0, 8.0]]).tolist()
    [1, -1]
    """

    def __init__(
        self,
        *,
        n_estimators=100,
        sample_size=256,
        shingle_size=1,
        contamination="auto",
        random_state=None,
        n_jobs=None,
    ):
        self.n_estimators = n_estimators
        self.sample_size = sample_size
        self.shingle_size = shingle_size
        self.contamination = contamination
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self):
        """Validate the parameters; return the forest's seed and thread count."""
        check_int(self.n_estimators, "n_estimators", 1)
        check_int(self.sample_size, "sample_size", 1)
        check_int(self.shingle_size, "shingle_size", 1)
        contamination = self.contamination
        if not (isinstance(contamination, str) and contamination == "auto"):
            if isinstance(contamination, (bool, np.bool_)) or not isinstance(contamination, numbers.Real):
                raise TypeError(f"contamination must be 'auto' or a float in (0, 0.5], got {contamination!r}")
            if not 0.0 < contamination <= 0.5:
                raise ValueError(f"contamination must be 'auto' or a float in (0, 0.5], got {contamination}")
        n_jobs = self.n_jobs
        if n_jobs is not None and n_jobs != -1:
            n_jobs = check_int(n_jobs, "n_jobs", 1)
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, (bool, np.bool_)):
            seed = check_int(self.random_state, "random_state", 0)
        elif self.random_state is None:
            seed = None
        else:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return seed, None if n_jobs == -1 else n_jobs

    def fit(self, X, y=None):
        """Build the forest on ``X`` and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows, without missing values.
        y : ignored
            Present for API consistency.

        Returns
        -------
        RandomCutForestDetector
            ``self``.
        """
        seed, n_jobs = self._check_params()
        X = validate_data(self, X, dtype=np.float64)
        if X.shape[0] < self.shingle_size:
            raise ValueError(
                f"X has {X.shape[0]} rows, fewer than shingle_size={self.shingle_size}; "
                "pass more rows or a smaller shingle_size"
            )
        self.forest_ = Forest(
            num_trees=self.n_estimators,
            sample_size=self.sample_size,
            shingle_size=self.shingle_size,
            random_state=seed,
            n_jobs=n_jobs,
        ).fit(X)
        scores = self._score_samples(X)
        if isinstance(self.contamination, str):
            anomaly = -scores
            self.offset_ = -cutoff(anomaly)
        else:
            self.offset_ = float(np.nanpercentile(scores, 100.0 * self.contamination))
        return self

    def _score_samples(self, X):
        """``score_samples`` of validated rows."""
        return -np.asarray(self.forest_.score(X), dtype=np.float64)

    def score_samples(self, X):
        """Normality of each row: the negative rcforest score.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Higher means more normal: about -1 for rows like the training
            data, down to about ``-log2(sample_size)`` for outliers.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._score_samples(X)

    def decision_function(self, X):
        """Shifted normality: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label each row: -1 for an outlier, +1 for an inlier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of int of shape (n_samples,)
        """
        decision = self.decision_function(X)
        return np.where(decision < 0, -1, 1)
