"""Request serializers with the SageMaker SDK's interface, for :class:`~rcforest.sagemaker.Predictor`.

Each has a ``CONTENT_TYPE`` and a ``serialize(data)`` returning the request
body, like ``sagemaker.serializers``; the SDK's own serializer objects work
with rcforest's predictors too.
"""

import io
import json

import numpy as np

from rcforest.sagemaker import formats

__all__ = ["CSVSerializer", "IdentitySerializer", "JSONLinesSerializer", "JSONSerializer", "RecordSerializer"]


def _matrix(data):
    """Return array-like or pandas ``data`` as a 2-D array (a 1-D input is one row)."""
    values = np.asarray(getattr(data, "values", data))
    if values.ndim == 1:
        values = values.reshape(1, -1)
    if values.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got {values.ndim} dimensions")
    return values


class _Serializer:
    def __init__(self, content_type=None):
        self.content_type = content_type or self.DEFAULT_CONTENT_TYPE

    @property
    def CONTENT_TYPE(self):
        """str: the Content-Type sent with the request."""
        return self.content_type


class IdentitySerializer(_Serializer):
    """Send bytes or text as they are.

    Parameters
    ----------
    content_type : str, default "application/octet-stream"
    """

    DEFAULT_CONTENT_TYPE = "application/octet-stream"

    def serialize(self, data):
        """Return ``data`` unchanged."""
        return data


class CSVSerializer(_Serializer):
    """Write rows as ``text/csv``, one line per row.

    Parameters
    ----------
    content_type : str, default "text/csv"
    """

    DEFAULT_CONTENT_TYPE = formats.CSV

    def serialize(self, data):
        """Return ``data`` as CSV text; strings pass through.

        Parameters
        ----------
        data : str, array-like or pandas object

        Returns
        -------
        str
        """
        if isinstance(data, (str, bytes)):
            return data
        return "\n".join(",".join(str(value) for value in row) for row in _matrix(data).tolist())


class JSONSerializer(_Serializer):
    """Write ``{"instances": [{"features": [...]}, ...]}`` for arrays; other objects as plain JSON.

    Parameters
    ----------
    content_type : str, default "application/json"
    """

    DEFAULT_CONTENT_TYPE = formats.JSON

    def serialize(self, data):
        """Return ``data`` as JSON text.

        Parameters
        ----------
        data : ndarray, pandas object, str or JSON-serializable object

        Returns
        -------
        str
        """
        if isinstance(data, str):
            return data
        if isinstance(data, np.ndarray) or hasattr(data, "to_numpy"):
            return json.dumps({"instances": [{"features": row} for row in _matrix(data).tolist()]})
        return json.dumps(data)


class JSONLinesSerializer(_Serializer):
    """Write one ``{"features": [...]}`` line per row.

    Parameters
    ----------
    content_type : str, default "application/jsonlines"
    """

    DEFAULT_CONTENT_TYPE = formats.JSONLINES

    def serialize(self, data):
        """Return ``data`` as JSON lines text; strings pass through."""
        if isinstance(data, str):
            return data
        return "".join(json.dumps({"features": row}) + "\n" for row in _matrix(data).tolist())


class RecordSerializer(_Serializer):
    """Write rows as RecordIO-protobuf ``Record`` messages, as the SDK's ``RecordSerializer`` does.

    Parameters
    ----------
    content_type : str, default "application/x-recordio-protobuf"
    """

    DEFAULT_CONTENT_TYPE = formats.RECORDIO

    def serialize(self, data):
        """Return a buffer holding one record per row.

        Parameters
        ----------
        data : ndarray of shape (n_features,) or (n_rows, n_features)

        Returns
        -------
        io.BytesIO
        """
        buffer = io.BytesIO()
        formats.write_dense_records(buffer, _matrix(data))
        buffer.seek(0)
        return buffer
