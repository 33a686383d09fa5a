"""A feature matrix read row by row, its width and size checked before each row is allocated.

Shared by the readers of every SageMaker wire format (:mod:`rcforest.sagemaker.formats`).
"""

import numpy as np

from rcforest.errors import PayloadTooLarge

__all__ = ["MAX_FEATURES", "FeatureRows", "finite", "sparse_to_dense", "stack_rows"]

# The widest sparse row read without a model to compare with: SageMaker's
# feature_dim ends at 10,000.
MAX_FEATURES = 10_000


class FeatureRows:
    """The rows of one feature matrix, their width and count checked as they come.

    Parameters
    ----------
    what : str
        What the rows are, for messages ("instances", "records").
    n_features : int, optional
        The feature count of the model the rows are for; sparse rows
        declaring another are refused. Without it, sparse rows wider than
        :data:`MAX_FEATURES` are.
    max_values : int, optional
        The most numbers (rows x features) the matrix may hold.
    """

    def __init__(self, what, n_features=None, max_values=None):
        self.what = what
        self.n_features = n_features
        self.max_values = max_values
        self.rows = []
        self.values = 0

    def check_width(self, size, where):
        """Refuse a sparse row's declared ``size`` before a row of that size is allocated."""
        if self.n_features is not None and size != self.n_features:
            raise ValueError(f"{where} has shape [{size}] but the model takes {self.n_features} features")
        if size > MAX_FEATURES and self.n_features is None:
            raise ValueError(
                f"{where} has shape [{size}]; at most {MAX_FEATURES} features are read (SageMaker's feature_dim limit)"
            )
        if self.rows and size != self.rows[0].shape[0]:
            raise ValueError(
                f"{where} has shape [{size}] but the rows before it have {self.rows[0].shape[0]} features; "
                "every row needs the same feature count"
            )

    def add(self, row):
        """Append one row, refusing it if the matrix would hold more than ``max_values`` numbers."""
        self.values += row.shape[0]
        if self.max_values is not None and self.values > self.max_values:
            raise PayloadTooLarge(
                f"the {self.what} hold more than {self.max_values} values (rows x features); send fewer rows at a time"
            )
        self.rows.append(row)

    def matrix(self):
        """Return the rows stacked, or raise if they are none or of different lengths."""
        return stack_rows(self.rows, self.what)


def finite(values, where):
    """Return ``values``, or raise if one is NaN or infinite."""
    if not np.isfinite(values).all():
        raise ValueError(f"{where} holds NaN, an infinity or a number beyond the range of float64")
    return values


def sparse_to_dense(keys, values, size, where, rows):
    """Expand sparse ``keys``/``values`` into a dense vector of length ``size``, once ``rows`` accepts the size."""
    rows.check_width(size, where)
    if len(keys) != values.size:
        raise ValueError(f"{where} has {len(keys)} keys but {values.size} values")
    if keys and (min(keys) < 0 or max(keys) >= size):
        raise ValueError(f"{where} has keys outside [0, {size}) for shape [{size}]")
    dense = np.zeros(size)
    dense[np.asarray(keys, dtype=np.int64)] = values
    return dense


def stack_rows(rows, what):
    """Stack equal-length vectors into a matrix, or raise naming ``what``."""
    if not rows:
        raise ValueError(f"no {what} found: the data is empty")
    lengths = {row.shape[0] for row in rows}
    if len(lengths) > 1:
        raise ValueError(f"{what} have different lengths {sorted(lengths)}; every row needs the same feature count")
    return np.vstack(rows)
