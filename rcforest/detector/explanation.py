"""Why a row was flagged: the column and lag that drive its score, the value expected there, when it began."""

import numpy as np

from rcforest.detector.period import HISTORY

__all__ = ["explain"]

CANDIDATES = 33
"""Values tried per pass when looking for the expected value."""

START_FRACTION = 0.5
"""The anomaly starts at the oldest shingle position holding this fraction of the largest per-position attribution."""


def explain(forest, preprocessor, values, row, point, columns):
    """Attribution, start and expected value for ``values[row]``, scored as ``point`` by ``forest``.

    Parameters
    ----------
    forest : Forest
        The forest that scored the row (before learning it).
    preprocessor : Preprocessor
    values : ndarray of shape (n_rows, n_columns)
        Raw rows up to at least ``row``, imputed.
    row : int
    point : ndarray
        The row's shingled point.
    columns : list of str
        Names of the input columns.

    Returns
    -------
    dict
        ``attribution`` (``"column[t-k]"``, or the column's name for
        shingles of one), ``start_of_anomaly`` (rows back),
        ``expected_value`` (the value of the attributed entry that makes the
        score lowest), ``column``, ``actual`` (the entry's value),
        ``deviation`` (the distance between them, in typical residuals at the
        entry's phase, see :meth:`~rcforest.detector.preprocess.Preprocessor.phase_residual`)
        and ``residual`` (the column's typical residual).
    """
    size = preprocessor.shingle_size
    num_columns = values.shape[1]
    high, low = forest.attribution(point[None, :])
    per_dim = (high + low).reshape(size, preprocessor.channels, num_columns).sum(axis=1)
    position, column = np.unravel_index(int(np.argmax(per_dim)), per_dim.shape)
    lag = size - 1 - int(position)
    per_position = per_dim.sum(axis=1)
    strong = np.flatnonzero(per_position >= START_FRACTION * per_position.max())
    start = size - 1 - int(strong.min())
    target = row - lag
    history = values[max(0, row - HISTORY) : row + 1, column]
    trial = np.unique(
        np.r_[
            np.quantile(history, np.linspace(0, 1, CANDIDATES)),
            preprocessor.impute(values, target, column),
            values[target, column],
        ]
    )

    def best_of(trial):
        return int(np.argmin(forest.score(preprocessor.varied_points(values, row, target, column, trial, point))))

    # A coarse pass over the column's quantiles, then a fine one around the best.
    best = best_of(trial)
    fine = np.linspace(trial[max(best - 1, 0)], trial[min(best + 1, trial.size - 1)], CANDIDATES)
    expected = float(fine[best_of(fine)])
    name = columns[column]
    actual = float(values[target, column])
    return {
        "attribution": name if size == 1 else f"{name}[t-{lag}]" if lag else f"{name}[t]",
        "start_of_anomaly": start,
        "expected_value": expected,
        "column": int(column),
        "actual": actual,
        "deviation": abs(actual - expected) / preprocessor.phase_residual(values, target, column),
        "residual": float(preprocessor.residual[column]),
    }
