"""The detector's output: one row per input row, with these columns and dtypes."""

import numpy as np

__all__ = ["COLUMNS", "empty_columns", "to_frame"]

COLUMNS = {
    "score": "float64",
    "grade": "float64",
    "threshold": "float64",
    "confidence": "float64",
    "attribution": "str",
    "expected_value": "float64",
    "start_of_anomaly": "int64",
    "imputed": "bool",
}
"""Output columns of :meth:`ThresholdedForest.run`, in order, and their pandas dtypes.

``"str"`` is pandas' string dtype from pandas 3 on, and ``object`` before.
"""

_FILL = {
    "score": np.nan,
    "grade": 0.0,
    "threshold": np.nan,
    "confidence": 0.0,
    "attribution": "",
    "expected_value": np.nan,
    "start_of_anomaly": 0,
    "imputed": False,
}


def empty_columns(num_rows):
    """Arrays for ``num_rows`` rows of output, filled with what a row without an alert holds."""
    return {
        name: np.full(num_rows, _FILL[name], dtype=object if dtype == "str" else dtype)
        for name, dtype in COLUMNS.items()
    }


def to_frame(columns, index):
    """A DataFrame of the output ``columns`` (from :func:`empty_columns`) with ``index``."""
    import pandas as pd  # imported on first output, not with rcforest

    return pd.DataFrame(columns, index=index, columns=list(COLUMNS)).astype(COLUMNS)
