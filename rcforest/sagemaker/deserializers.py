"""Response deserializers with the SageMaker SDK's interface, for :class:`~rcforest.sagemaker.Predictor`.

Each has an ``ACCEPT`` tuple and a ``deserialize(stream, content_type)``
that reads and closes a binary stream, like ``sagemaker.deserializers``;
the SDK's own deserializer objects work with rcforest's predictors too.
"""

import json

from rcforest.sagemaker import formats
from rcforest.sagemaker.record import Record

__all__ = ["BytesDeserializer", "JSONDeserializer", "JSONLinesDeserializer", "RecordDeserializer", "StringDeserializer"]


class _Deserializer:
    def __init__(self, accept=None):
        self.accept = accept or self.DEFAULT_ACCEPT

    @property
    def ACCEPT(self):
        """tuple of str: the types sent in the Accept header."""
        return (self.accept,) if isinstance(self.accept, str) else tuple(self.accept)

    def deserialize(self, stream, content_type):
        """Read and close ``stream``; return the decoded response.

        Parameters
        ----------
        stream : binary file-like
        content_type : str
            The response's Content-Type.
        """
        try:
            return self._decode(stream.read())
        finally:
            stream.close()


class BytesDeserializer(_Deserializer):
    """Return the response body as bytes."""

    DEFAULT_ACCEPT = "*/*"

    def _decode(self, data):
        return data


class StringDeserializer(_Deserializer):
    """Return the response body as text."""

    DEFAULT_ACCEPT = "application/json"

    def _decode(self, data):
        return data.decode("utf-8")


class JSONDeserializer(_Deserializer):
    """Return the parsed JSON response, such as ``{"scores": [{"score": 0.9}]}``."""

    DEFAULT_ACCEPT = formats.JSON

    def _decode(self, data):
        return json.loads(data)


class JSONLinesDeserializer(_Deserializer):
    """Return a list with one parsed object per response line."""

    DEFAULT_ACCEPT = formats.JSONLINES

    def _decode(self, data):
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


class RecordDeserializer(_Deserializer):
    """Return a list of ``Record`` messages; a score is ``record.label["score"].float32_tensor.values[0]``."""

    DEFAULT_ACCEPT = formats.RECORDIO

    def _decode(self, data):
        records = []
        for payload in formats.read_recordio(data):
            record = Record()
            record.ParseFromString(payload)
            records.append(record)
        return records
