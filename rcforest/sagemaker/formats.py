"""Readers and writers for the data formats of SageMaker's built-in Random Cut Forest.

Requests and training data: ``text/csv`` (with ``label_size``),
``application/json`` (dense and sparse), ``application/jsonlines`` and
``application/x-recordio-protobuf``. Responses: ``application/json``,
``application/jsonlines`` and ``application/x-recordio-protobuf``.

Each wire format has its module: :mod:`~rcforest.sagemaker.text_csv`,
:mod:`~rcforest.sagemaker.json_format` and :mod:`~rcforest.sagemaker.recordio`;
this one names the media types, negotiates them and dispatches on them.

Every reader raises a ``ValueError`` naming what is wrong with the data;
:class:`UnsupportedContentType`, :class:`NotAcceptable` and
:class:`PayloadTooLarge` (also ``ValueError``) tell a server to answer 415,
406 and 413. Numbers are plain: CSV cells are ASCII decimal numbers (no
``1_000``, no other digits, no ``nan`` or ``inf``), JSON numbers finite.
A sparse row's declared ``shape`` is checked against the model's feature
count (or, with no model yet, against :data:`MAX_FEATURES` and the rows
before it) before its dense row is allocated, and a reader stops once the
rows hold more than ``max_values`` numbers.
"""

import numpy as np

from rcforest.errors import NotAcceptable, PayloadTooLarge, UnsupportedContentType
from rcforest.sagemaker import json_format, recordio
from rcforest.sagemaker.feature_rows import MAX_FEATURES
from rcforest.sagemaker.json_format import read_json, read_jsonlines
from rcforest.sagemaker.recordio import RECORDIO_MAGIC, read_recordio, read_records, write_dense_records, write_recordio
from rcforest.sagemaker.text_csv import read_csv

__all__ = [
    "CSV",
    "JSON",
    "JSONLINES",
    "RECORDIO",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "CSV_LABEL_SIZE",
    "MAX_FEATURES",
    "RECORDIO_MAGIC",
    "NotAcceptable",
    "PayloadTooLarge",
    "UnsupportedContentType",
    "choose_response_type",
    "decode_request",
    "encode_scores",
    "parse_media_type",
    "read_channel_file",
    "read_csv",
    "read_json",
    "read_jsonlines",
    "read_recordio",
    "read_records",
    "write_dense_records",
    "write_recordio",
]

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"
REQUEST_TYPES = (CSV, JSON, JSONLINES, RECORDIO)
RESPONSE_TYPES = (JSON, JSONLINES, RECORDIO)
# label_size of a channel's text/csv data when its ContentType does not say:
# the test channel is labelled (1 = anomaly), the train channel is not.
CSV_LABEL_SIZE = {"train": 0, "test": 1}


def parse_media_type(header):
    """Split a Content-Type or Accept item into its type and parameters.

    Parameters
    ----------
    header : str or None
        For example ``"text/csv; label_size=1"``.

    Returns
    -------
    media_type : str
        Lower case, without parameters; ``""`` for an empty header.
    params : dict of str to str
    """
    parts = (header or "").split(";")
    params = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].strip().lower(), params


def choose_response_type(accept):
    """Pick the response type for an Accept header.

    Parameters
    ----------
    accept : str or None
        A comma-separated list of media types with optional ``q`` weights.
        Empty, missing or ``*/*`` means ``application/json``.

    Returns
    -------
    str
        One of :data:`RESPONSE_TYPES`.

    Raises
    ------
    NotAcceptable
        If no listed type can be written.
    """
    if not accept or not accept.strip():
        return JSON
    ranked = []
    for position, item in enumerate(accept.split(",")):
        media_type, params = parse_media_type(item)
        try:
            weight = float(params.get("q", 1))
        except ValueError:
            weight = 1.0
        if media_type and weight > 0:
            ranked.append((-weight, position, media_type))
    for _, _, media_type in sorted(ranked):
        if media_type in RESPONSE_TYPES:
            return media_type
        if media_type in ("*/*", "application/*"):
            return JSON
    raise NotAcceptable(f"cannot answer with Accept: {accept}; use one of {', '.join(RESPONSE_TYPES)}")


def read_channel_file(data, channel, content_type=None, n_features=None, max_values=None):
    """Read one file of a training channel as the built-in algorithm does.

    Parameters
    ----------
    data : bytes
    channel : {"train", "test"}
    content_type : str, optional
        The channel's ContentType: ``text/csv`` (with ``label_size``, default
        :data:`CSV_LABEL_SIZE` of the channel) or :data:`RECORDIO`. When
        None, RecordIO is recognised by :data:`RECORDIO_MAGIC`, anything
        else is read as CSV.
    n_features : int, optional
        The feature count the model will take (``feature_dim``), which
        sparse shapes must equal.
    max_values : int, optional
        The most numbers to read from the file.

    Returns
    -------
    features : ndarray of float64, shape (n_records, n_features)
    labels : ndarray of float64 of shape (n_records,), or None

    Raises
    ------
    ValueError
        For an unsupported ContentType, a bad ``label_size`` or bad data.
    """
    media_type, params = parse_media_type(content_type)
    kind = media_type or (RECORDIO if data[:4] == RECORDIO_MAGIC else CSV)
    if kind == CSV:
        label_size = params.get("label_size", str(CSV_LABEL_SIZE.get(channel, 0)))
        if label_size not in ("0", "1"):
            raise ValueError(f"label_size must be 0 or 1, got {label_size!r}")
        return read_csv(data, int(label_size), max_values)
    if kind == RECORDIO:
        return read_records(data, n_features, max_values)
    raise ValueError(f"ContentType {content_type} is not supported; use {CSV} or {RECORDIO}")


def decode_request(body, content_type, n_features=None, max_values=None):
    """Read a request body into a feature matrix according to its Content-Type.

    Parameters
    ----------
    body : bytes
    content_type : str or None
        One of :data:`REQUEST_TYPES`, with parameters (``label_size`` for
        CSV drops the leading label column).
    n_features : int, optional
        The model's feature count: sparse rows declaring another shape are
        refused before they are expanded.
    max_values : int, optional
        The most numbers (rows x features) a request may hold.

    Returns
    -------
    ndarray of float64, shape (n_rows, n_features)

    Raises
    ------
    UnsupportedContentType
        For another or a missing Content-Type.
    PayloadTooLarge
        For more than ``max_values`` numbers.
    ValueError
        For a malformed body.
    """
    media_type, params = parse_media_type(content_type)
    try:
        if media_type == CSV:
            try:
                label_size = int(params.get("label_size", 0))
            except ValueError:
                raise ValueError(f"label_size must be 0 or 1, got {params['label_size']!r}") from None
            return read_csv(body, label_size, max_values)[0]
        if media_type == JSON:
            return read_json(body, n_features, max_values)
        if media_type == JSONLINES:
            return read_jsonlines(body, n_features, max_values)
        if media_type == RECORDIO:
            return read_records(body, n_features, max_values)[0]
    except UnicodeDecodeError:
        raise ValueError(f"the {media_type} body is not UTF-8 text") from None
    raise UnsupportedContentType(
        f"cannot read Content-Type {content_type or '(none)'}; use one of {', '.join(REQUEST_TYPES)}"
    )


def encode_scores(scores, media_type):
    """Write anomaly scores as a response body.

    Parameters
    ----------
    scores : array-like of float
    media_type : str
        One of :data:`RESPONSE_TYPES` (see :func:`choose_response_type`).

    Returns
    -------
    bytes
        ``{"scores": [{"score": s}, ...]}`` for JSON, one ``{"score": s}`` per
        line for JSON lines, one ``Record`` per score with
        ``label["score"]`` a one-value ``float32_tensor`` for RecordIO.
        JSON carries the float64 scores exactly.

    Raises
    ------
    ValueError
        If a score is NaN or infinite: it is never written (as ``null`` or otherwise).
    """
    scores = np.asarray(scores, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(f"rows {bad[:10].tolist()} have no finite score; {bad.size} of {scores.size} in all")
    values = scores.tolist()
    writers = {
        JSON: json_format.write_scores,
        JSONLINES: json_format.write_score_lines,
        RECORDIO: recordio.write_scores,
    }
    if media_type not in writers:
        raise NotAcceptable(f"cannot write {media_type}; use one of {', '.join(RESPONSE_TYPES)}")
    return writers[media_type](values)
