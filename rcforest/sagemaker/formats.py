"""Readers and writers for the data formats of SageMaker's built-in Random Cut Forest.

Requests and training data: ``text/csv`` (with ``label_size``),
``application/json`` (dense and sparse), ``application/jsonlines`` and
``application/x-recordio-protobuf``. Responses: ``application/json``,
``application/jsonlines`` and ``application/x-recordio-protobuf``.

RecordIO framing, per record: the little-endian uint32 magic ``0xCED7230A``,
the little-endian uint32 length of the serialized ``Record``, the record,
then zero bytes up to a multiple of 4. The writers produce the same bytes
as the SageMaker SDK's ``write_numpy_to_dense_tensor`` for the same array.

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

import io
import json
import re
import struct

import numpy as np
from google.protobuf.message import DecodeError

from rcforest.errors import NotAcceptable, PayloadTooLarge, UnsupportedContentType
from rcforest.sagemaker.record import Record

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

_MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
# The first bytes of every RecordIO file: the magic number, little-endian.
RECORDIO_MAGIC = struct.pack("<I", _MAGIC)
# label_size of a channel's text/csv data when its ContentType does not say:
# the test channel is labelled (1 = anomaly), the train channel is not.
CSV_LABEL_SIZE = {"train": 0, "test": 1}
_INT32 = np.iinfo(np.int32)
# The widest sparse row read without a model to compare with: SageMaker's
# feature_dim ends at 10,000.
MAX_FEATURES = 10_000
# A CSV cell as SageMaker reads it: ASCII digits, optional sign, point and exponent.
_PLAIN_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)


# ------------------------------------------------------------------ media types


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


# --------------------------------------------------------------------- RecordIO


def write_recordio(file, payload):
    """Write one RecordIO-framed record to a binary file.

    Parameters
    ----------
    file : binary file-like
    payload : bytes
        A serialized ``Record``.
    """
    file.write(_HEADER.pack(_MAGIC, len(payload)))
    file.write(payload)
    file.write(b"\x00" * (-len(payload) % 4))


def read_recordio(data):
    """Split RecordIO-framed bytes into the records' payloads.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    list of bytes

    Raises
    ------
    ValueError
        On a wrong magic number or a truncated record.
    """
    payloads = []
    position = 0
    view = memoryview(data)
    while position < len(data):
        if len(data) - position < _HEADER.size:
            raise ValueError(f"RecordIO data ends inside a record header at byte {position}")
        magic, length = _HEADER.unpack_from(view, position)
        if magic != _MAGIC:
            raise ValueError(
                f"not RecordIO-protobuf: magic number {magic:#010x} at byte {position}, expected {_MAGIC:#010x}"
            )
        start = position + _HEADER.size
        if start + length > len(data):
            raise ValueError(f"RecordIO record at byte {position} claims {length} bytes but the data ends first")
        payloads.append(bytes(view[start : start + length]))
        position = start + length + (-length % 4)
    return payloads


def _tensor_of(value, where):
    """Return the numeric tensor held by a ``Value`` message, or raise naming ``where``."""
    kind = value.WhichOneof("value")
    if kind not in ("float32_tensor", "float64_tensor", "int32_tensor"):
        raise ValueError(f"{where} must hold a float32, float64 or int32 tensor, not {kind or 'nothing'}")
    return getattr(value, kind)


def _dense_vector(tensor, where, rows):
    """Return a tensor's values as a dense float64 vector, expanding sparse keys."""
    values = _finite(np.asarray(tensor.values, dtype=np.float64), where)
    if not len(tensor.keys):
        return values
    if len(tensor.shape) != 1:
        raise ValueError(f"{where} is sparse (has keys) and needs a one-element shape, got {list(tensor.shape)}")
    return _sparse_to_dense(list(tensor.keys), values, int(tensor.shape[0]), where, rows)


def _sparse_to_dense(keys, values, size, where, rows):
    """Expand sparse ``keys``/``values`` into a dense vector of length ``size``, once ``rows`` accepts the size."""
    rows.check_width(size, where)
    if len(keys) != values.size:
        raise ValueError(f"{where} has {len(keys)} keys but {values.size} values")
    if keys and (min(keys) < 0 or max(keys) >= size):
        raise ValueError(f"{where} has keys outside [0, {size}) for shape [{size}]")
    dense = np.zeros(size)
    dense[np.asarray(keys, dtype=np.int64)] = values
    return dense


def _finite(values, where):
    """Return ``values``, or raise if one is NaN or infinite."""
    if not np.isfinite(values).all():
        raise ValueError(f"{where} holds NaN, an infinity or a number beyond the range of float64")
    return values


class _Rows:
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
        return _stack(self.rows, self.what)


def read_records(data, n_features=None, max_values=None):
    """Read RecordIO-protobuf bytes into a feature matrix and optional labels.

    Parameters
    ----------
    data : bytes
        Records with the features under ``features["values"]`` (dense, or
        sparse with ``keys`` and ``shape``) and an optional label under
        ``label["values"]``.
    n_features : int, optional
        The model's feature count, which sparse shapes must equal.
    max_values : int, optional
        The most numbers (rows x features) to read.

    Returns
    -------
    features : ndarray of float64, shape (n_records, n_features)
    labels : ndarray of float64 of shape (n_records,), or None
        None when no record has a label.

    Raises
    ------
    ValueError
        On bad framing, an unparsable record, a missing ``values`` feature or
        records of different lengths; :class:`PayloadTooLarge` past ``max_values``.
    """
    rows, labels = _Rows("records", n_features, max_values), []
    for number, payload in enumerate(read_recordio(data)):
        record = Record()
        try:
            record.ParseFromString(payload)
        except DecodeError as error:
            raise ValueError(f"record {number} is not a valid Record protobuf: {error}") from None
        if "values" not in record.features:
            raise ValueError(f'record {number} has no features["values"]; it has {sorted(record.features)}')
        where = f'record {number} features["values"]'
        rows.add(_dense_vector(_tensor_of(record.features["values"], where), where, rows))
        if "values" in record.label:
            where = f'record {number} label["values"]'
            label = _tensor_of(record.label["values"], where).values
            if len(label) != 1:
                raise ValueError(f"{where} must hold one value, got {len(label)}")
            labels.append(float(label[0]))
    if labels and len(labels) != len(rows.rows):
        raise ValueError(f"{len(labels)} of {len(rows.rows)} records have a label; label all or none")
    return rows.matrix(), (np.asarray(labels) if labels else None)


def write_dense_records(file, array, labels=None):
    """Write each row of a matrix as a RecordIO-framed ``Record``.

    Parameters
    ----------
    file : binary file-like
    array : ndarray of shape (n_rows, n_features)
        float32 rows go to ``float32_tensor``, float64 to ``float64_tensor``
        and integers to ``int32_tensor``, as in the SageMaker SDK.
    labels : ndarray of shape (n_rows,), optional
        Written to ``label["values"]`` with the same type rule.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"array must be 2-D (rows, features), got shape {array.shape}")
    field = _tensor_field(array, "array")
    label_field = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (array.shape[0],):
            raise ValueError(f"labels must have shape ({array.shape[0]},), got {labels.shape}")
        label_field = _tensor_field(labels, "labels")
    record = Record()
    for index, row in enumerate(array):
        record.Clear()
        getattr(record.features["values"], field).values.extend(row.tolist())
        if label_field is not None:
            getattr(record.label["values"], label_field).values.append(labels[index].item())
        write_recordio(file, record.SerializeToString())


def _tensor_field(array, name):
    """Return the ``Value`` field the SDK uses for ``array``'s dtype."""
    if array.dtype == np.float32:
        return "float32_tensor"
    if array.dtype == np.float64:
        return "float64_tensor"
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < _INT32.min or array.max() > _INT32.max):
            raise ValueError(f"{name} has integers outside the int32 range; convert it to float")
        return "int32_tensor"
    raise TypeError(f"{name} must be float32, float64 or integer, got dtype {array.dtype}")


# ------------------------------------------------------------------- text formats


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
    rows, numbers = _Rows("CSV lines", max_values=max_values), []
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
        return _sparse_to_dense(keys, values, shape[0], where, rows)
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
    return _finite(vector, where)


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
    rows = _Rows("instances", n_features, max_values)
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
    rows = _Rows("JSON lines", n_features, max_values)
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


def _stack(rows, what):
    """Stack equal-length vectors into a matrix, or raise naming ``what``."""
    if not rows:
        raise ValueError(f"no {what} found: the data is empty")
    lengths = {row.shape[0] for row in rows}
    if len(lengths) > 1:
        raise ValueError(f"{what} have different lengths {sorted(lengths)}; every row needs the same feature count")
    return np.vstack(rows)


# ----------------------------------------------------------------- dispatching


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
    if media_type == JSON:
        return json.dumps({"scores": [{"score": s} for s in values]}).encode()
    if media_type == JSONLINES:
        return "".join(json.dumps({"score": s}) + "\n" for s in values).encode()
    if media_type == RECORDIO:
        buffer = io.BytesIO()
        record = Record()
        for score in values:
            record.Clear()
            record.label["score"].float32_tensor.values.append(score)
            write_recordio(buffer, record.SerializeToString())
        return buffer.getvalue()
    raise NotAcceptable(f"cannot write {media_type}; use one of {', '.join(RESPONSE_TYPES)}")
