"""Rules about fitted forests that the adapters (CLI, SageMaker, scikit-learn) share.

- :func:`load_fitted`: read a model file and refuse one that cannot score;
- :func:`named_columns`: the column names a forest reads DataFrames by;
- :func:`cutoff`: the anomaly cut-off of SageMaker's Random Cut Forest, the
  mean of the scores plus three standard deviations.
"""

import os

import numpy as np

__all__ = ["CUTOFF_DEVIATIONS", "cutoff", "load_fitted", "named_columns"]

CUTOFF_DEVIATIONS = 3.0


def load_fitted(path):
    """Load a fitted forest from a model file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    rcforest.Forest

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If ``path`` is not a regular file (a folder, a pipe, a device) or
        not an rcforest model, or its forest holds no data.
    """
    from rcforest.forest import Forest

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    forest = Forest.load(path)
    if forest.n_features_ is None:
        raise ValueError(f"model {path} holds no data; fit it on some rows first")
    return forest


def named_columns(forest):
    """The names a fitted forest matches DataFrame columns by, or an empty list when it reads them by position.

    A forest fitted (or first fed) on a DataFrame whose column names are
    all strings reads later DataFrames by those names (see
    ``Forest.feature_names_in_``); one fitted on an array reads by
    position.

    Parameters
    ----------
    forest : rcforest.Forest

    Returns
    -------
    list of str
    """
    return list(forest.feature_names_in_) if forest._named else []


def cutoff(scores, deviations=CUTOFF_DEVIATIONS):
    """Return the mean of ``scores`` plus ``deviations`` standard deviations, NaN ignored.

    Parameters
    ----------
    scores : array-like of float
    deviations : float, default 3

    Returns
    -------
    float
        NaN when no score is finite.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).all():
        return float("nan")
    return float(np.nanmean(scores) + deviations * np.nanstd(scores))
