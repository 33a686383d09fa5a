"""``application/json`` and ``application/jsonlines``: dense and sparse instances, and scores.

Numbers are finite JSON numbers: Python's ``NaN`` and ``Infinity`` are refused.
"""

import json

import numpy as np

from rcforest.sagemaker.feature_rows import FeatureRows, finite, sparse_to_dense

__all__ = ["read_json", "read_jsonlines", "write_scores", "write_score_lines"]


def _json_row(instance, where, rows):
    """Read one JSON instance: a list, ``{"features": [...]}`` or ``{"data": {"features": {...}}}``."""
    if isinstance(instance, list):
        return _numbers(instance, where)
    if not isinstance(instance, dict):
        raise ValueError(f'{where} must be an object with "features" or "data", got {type(instance).__name__}')
    if "features" in instance:
        return _numbers(instance["features"], f"{where} features")
    data = instance.get("data")
    if isinstance(data, dict) and isinstance(data.get("features"), dict):
        tensor = data["features"]
        values = _numbers(tensor.get("values"), f"{where} data.features.values")
        if "keys" not in tensor:
            return values
        shape = tensor.get("shape")
        if not (isinstance(shape, list) and len(shape) == 1 and _is_int(shape[0]) and shape[0] >= 0):
            raise ValueError(f"{where} is sparse (has keys) and needs a shape like [n_features], got {shape!r}"[:300])
        keys = tensor["keys"]
        if not (isinstance(keys, list) and all(_is_int(k) for k in keys)):
            raise ValueError(f"{where} data.features.keys must be a list of integers")
        return sparse_to_dense(keys, values, shape[0], where, rows)
    raise ValueError(f'{where} must have "features": [...] or "data": {{"features": {{"values": [...]}}}}')


def _is_int(value):
    """Whether a JSON value is an integer (``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(values, where):
    """Return a JSON list of numbers as a finite float64 vector, or raise naming ``where``."""
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{where} must be a list of numbers")
    try:
        vector = np.asarray(values, dtype=np.float64)
    except OverflowError:
        vector = np.asarray([float("inf")])
    return finite(vector, where)


def read_json(data, n_features=None, max_values=None):
    """Read an ``application/json`` request.

    Parameters
    ----------
    data : bytes or str
        ``{"instances": [...]}`` where each instance is ``{"features": [...]}``
        or ``{"data": {"features": {"values": [...]}}}``, the latter sparse
        with ``"keys"`` and ``"shape"``; a bare list of rows is also read.
    n_features : int, optional
        The model's feature count, which sparse shapes must equal.
    max_values : int, optional
        The most numbers (rows x features) to read.

    Returns
    -------
    ndarray of float64, shape (n_rows, n_features)
    """
    document = _parse_json(data, "the JSON body")
    instances = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(instances, list):
        raise ValueError('application/json must be {"instances": [{"features": [...]}, ...]}')
    rows = FeatureRows("instances", n_features, max_values)
    for number, instance in enumerate(instances):
        rows.add(_json_row(instance, f"instance {number}", rows))
    return rows.matrix()


def read_jsonlines(data, n_features=None, max_values=None):
    """Read an ``application/jsonlines`` request: one instance per line.

    Parameters
    ----------
    data : bytes or str
    n_features, max_values : int, optional
        As for :func:`read_json`.

    Returns
    -------
    ndarray of float64, shape (n_rows, n_features)
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    rows = FeatureRows("JSON lines", n_features, max_values)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            where = f"JSON line {number}"
            rows.add(_json_row(_parse_json(line, where), where, rows))
    return rows.matrix()


def _parse_json(data, where):
    """Parse JSON text, raising ``ValueError`` naming ``where``; NaN and Infinity are not JSON."""
    try:
        return json.loads(data, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply") from None


def _not_json(name):
    """Refuse the ``NaN``, ``Infinity`` and ``-Infinity`` that Python's json module would read."""
    raise ValueError(f"{name} is not a JSON number")


def write_scores(scores):
    """Anomaly scores as ``application/json``: ``{"scores": [{"score": s}, ...]}``, float64 exactly.

    Parameters
    ----------
    scores : list of float

    Returns
    -------
    bytes
    """
    return json.dumps({"scores": [{"score": s} for s in scores]}).encode()


def write_score_lines(scores):
    """Anomaly scores as ``application/jsonlines``: one ``{"score": s}`` per line.

    Parameters
    ----------
    scores : list of float

    Returns
    -------
    bytes
    """
    return "".join(json.dumps({"score": s}) + "\n" for s in scores).encode()
