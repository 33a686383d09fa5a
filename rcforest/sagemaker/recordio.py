"""``application/x-recordio-protobuf``: SageMaker's RecordIO framing of ``Record`` protobufs.

RecordIO framing, per record: the little-endian uint32 magic ``0xCED7230A``,
the little-endian uint32 length of the serialized ``Record``, the record,
then zero bytes up to a multiple of 4. The writers produce the same bytes
as the SageMaker SDK's ``write_numpy_to_dense_tensor`` for the same array.
"""

import io
import struct

import numpy as np
from google.protobuf.message import DecodeError

from rcforest.sagemaker.feature_rows import FeatureRows, finite, sparse_to_dense
from rcforest.sagemaker.record import Record

__all__ = ["RECORDIO_MAGIC", "read_recordio", "read_records", "write_dense_records", "write_recordio", "write_scores"]

_MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
# The first bytes of every RecordIO file: the magic number, little-endian.
RECORDIO_MAGIC = struct.pack("<I", _MAGIC)
_INT32 = np.iinfo(np.int32)


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
    values = finite(np.asarray(tensor.values, dtype=np.float64), where)
    if not len(tensor.keys):
        return values
    if len(tensor.shape) != 1:
        raise ValueError(f"{where} is sparse (has keys) and needs a one-element shape, got {list(tensor.shape)}")
    return sparse_to_dense(list(tensor.keys), values, int(tensor.shape[0]), where, rows)


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
    rows, labels = FeatureRows("records", n_features, max_values), []
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


def write_scores(scores):
    """Anomaly scores as RecordIO: one ``Record`` per score, ``label["score"]`` a one-value ``float32_tensor``.

    Parameters
    ----------
    scores : list of float

    Returns
    -------
    bytes
    """
    buffer = io.BytesIO()
    record = Record()
    for score in scores:
        record.Clear()
        record.label["score"].float32_tensor.values.append(score)
        write_recordio(buffer, record.SerializeToString())
    return buffer.getvalue()
