"""``text/csv``: rows of plain numbers, the first ``label_size`` columns a label."""

import re

import numpy as np

from rcforest.sagemaker.feature_rows import FeatureRows

__all__ = ["read_csv"]

# A CSV cell as SageMaker reads it: ASCII digits, optional sign, point and exponent.
_PLAIN_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


def read_csv(data, label_size=0, max_values=None):
    """Read CSV rows of numbers, the first ``label_size`` columns being the label.

    Parameters
    ----------
    data : bytes or str
        No header row; one record per line; each cell a plain ASCII decimal
        number (sign, digits, point, exponent).
    label_size : int, default 0
        0 or 1.
    max_values : int, optional
        The most numbers to read; more raise :class:`PayloadTooLarge`.

    Returns
    -------
    features : ndarray of float64, shape (n_rows, n_features)
    labels : ndarray of float64 of shape (n_rows,), or None

    Raises
    ------
    ValueError
        Naming the line and column of the first cell that is not a plain
        number or is beyond the range of float64.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    rows, numbers = FeatureRows("CSV lines", max_values=max_values), []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = [float(cell) for cell in line.split(",")]
        except ValueError:
            row = None
        # float() also reads "1_000", other scripts' digits, "nan" and "inf".
        if row is None or not line.isascii() or "_" in line:
            raise ValueError(_csv_cell_error(number, line))
        rows.add(np.asarray(row))
        numbers.append(number)
    matrix = rows.matrix()
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        number = numbers[int(np.argmin(finite))]
        raise ValueError(_csv_cell_error(number, text.splitlines()[number - 1]))
    if label_size not in (0, 1):
        raise ValueError(f"label_size must be 0 or 1, got {label_size}")
    if label_size and matrix.shape[1] < 2:
        raise ValueError("text/csv;label_size=1 needs a label column followed by at least one feature column")
    if label_size:
        return matrix[:, 1:], matrix[:, 0].copy()
    return matrix, None


def _csv_cell_error(number, line):
    """The message for CSV line ``number`` (1-based), naming its first cell that is not a plain finite number."""
    for column, cell in enumerate(line.split(","), start=1):
        if not _PLAIN_NUMBER.fullmatch(cell):
            return (
                f"CSV line {number} is not all numbers: column {column} is {cell[:40]!r}; text/csv takes "
                "plain ASCII numbers (digits, sign, point, exponent) and no header row"
            )
        if not np.isfinite(float(cell)):
            return f"CSV line {number}, column {column} holds {cell[:40]}..., beyond the range of float64"
    return f"CSV line {number} is not all numbers: {line[:80]!r}"
