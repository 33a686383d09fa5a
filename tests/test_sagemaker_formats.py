"""RecordIO-protobuf, CSV, JSON and JSON lines: framing, parsing, errors, and byte compatibility with the SDK."""

import io
import json
import struct

import numpy as np
import pytest
import scipy.sparse
from sagemaker.amazon.common import RecordDeserializer as SdkRecordDeserializer
from sagemaker.amazon.common import RecordSerializer as SdkRecordSerializer
from sagemaker.amazon.common import read_records as sdk_read_records
from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor
from sagemaker.amazon.record_pb2 import Record as SdkRecord

from rcforest.sagemaker import formats
from rcforest.sagemaker.deserializers import RecordDeserializer
from rcforest.sagemaker.record import Record
from rcforest.sagemaker.serializers import CSVSerializer, JSONLinesSerializer, JSONSerializer, RecordSerializer

RNG = np.random.default_rng(7)


def _sdk_bytes(array, labels=None):
    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def _ours(array, labels=None):
    buffer = io.BytesIO()
    formats.write_dense_records(buffer, array, labels)
    return buffer.getvalue()


# ------------------------------------------------------------------ framing


def test_framing_magic_length_and_padding():
    buffer = io.BytesIO()
    for payload in (b"", b"a", b"ab", b"abc", b"abcd", b"abcde"):
        formats.write_recordio(buffer, payload)
    data = buffer.getvalue()
    assert data[:4] == bytes.fromhex("0a23d7ce")  # 0xCED7230A little-endian
    assert struct.unpack_from("<I", data, 4)[0] == 0
    # Each record takes 8 header bytes plus its length rounded up to 4.
    assert len(data) == sum(8 + (n + 3) // 4 * 4 for n in range(6))
    assert formats.read_recordio(data) == [b"", b"a", b"ab", b"abc", b"abcd", b"abcde"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00\x00\x00\x04\x00\x00\x00abcd", "magic number"),
        (bytes.fromhex("0a23d7ce") + b"\x10\x00\x00\x00abc", "data ends first"),
        (bytes.fromhex("0a23d7ce") + b"\x01", "record header"),
    ],
)
def test_framing_errors(data, message):
    with pytest.raises(ValueError, match=message):
        formats.read_recordio(data)


# --------------------------------------------------- byte compatibility with the SDK


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_dense_writer_matches_sdk_bytes(dtype):
    array = (RNG.normal(size=(25, 3)) * 100).astype(dtype)
    labels = (RNG.random(25) < 0.2).astype(dtype)
    assert _ours(array) == _sdk_bytes(array)
    assert _ours(array, labels) == _sdk_bytes(array, labels)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_sdk_dense_tensors_read_by_ours(dtype):
    array = (RNG.normal(size=(40, 4)) * 10).astype(dtype)
    labels = (RNG.random(40) < 0.3).astype(dtype)
    features, read_labels = formats.read_records(_sdk_bytes(array, labels))
    np.testing.assert_array_equal(features, array.astype(np.float64))
    np.testing.assert_array_equal(read_labels, labels.astype(np.float64))
    features, read_labels = formats.read_records(_sdk_bytes(array))
    assert read_labels is None
    np.testing.assert_array_equal(features, array.astype(np.float64))


def test_sdk_sparse_tensors_read_by_ours():
    dense = np.where(RNG.random((12, 6)) < 0.3, RNG.normal(size=(12, 6)), 0.0)
    buffer = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buffer, scipy.sparse.csr_matrix(dense))
    features, labels = formats.read_records(buffer.getvalue())
    np.testing.assert_array_equal(features, dense)
    assert labels is None


@pytest.mark.parametrize("rows", [np.arange(3.0), RNG.normal(size=(9, 3)), RNG.normal(size=(9, 3)).astype(np.float32)])
def test_serializers_match_sdk_record_serializer(rows):
    ours = RecordSerializer()
    sdk = SdkRecordSerializer()
    assert ours.CONTENT_TYPE == sdk.CONTENT_TYPE == "application/x-recordio-protobuf"
    body = ours.serialize(rows).read()
    assert body == sdk.serialize(rows).read()
    np.testing.assert_array_equal(formats.decode_request(body, ours.CONTENT_TYPE), np.atleast_2d(rows))


def test_score_records_read_by_sdk_deserializer_and_read_records():
    scores = RNG.random(17) * 4
    body = formats.encode_scores(scores, formats.RECORDIO)
    for records in (
        SdkRecordDeserializer().deserialize(io.BytesIO(body), formats.RECORDIO),
        sdk_read_records(io.BytesIO(body)),
        RecordDeserializer().deserialize(io.BytesIO(body), formats.RECORDIO),
    ):
        assert len(records) == 17
        read = np.array([r.label["score"].float32_tensor.values[0] for r in records])
        np.testing.assert_array_equal(read, scores.astype(np.float32))
        assert all(list(r.label) == ["score"] and not r.features for r in records)


def test_record_message_round_trips_with_sdk_class():
    record = Record(uid="u1", metadata="m", configuration="{}")
    record.features["values"].float64_tensor.values.extend([1.5, -2.0])
    record.features["sparse"].float32_tensor.keys.extend([3, 7])
    record.features["sparse"].float32_tensor.values.extend([0.5, 0.25])
    record.features["sparse"].float32_tensor.shape.append(10)
    record.features["ints"].int32_tensor.values.extend([1, -2])
    record.features["raw"].bytes.value.append(b"\x00\x01")
    record.features["raw"].bytes.content_type = "application/octet-stream"
    record.label["values"].float32_tensor.values.append(1.0)
    payload = record.SerializeToString(deterministic=True)
    theirs = SdkRecord()
    theirs.ParseFromString(payload)
    assert theirs.SerializeToString(deterministic=True) == payload
    assert list(theirs.features["sparse"].float32_tensor.keys) == [3, 7]
    assert theirs.features["raw"].bytes.value[0] == b"\x00\x01"
    again = Record()
    again.ParseFromString(theirs.SerializeToString())
    assert again == record


# ----------------------------------------------------------------- text formats


def test_csv_label_size():
    text = "1,0.5,2\n0,1.5,-3\n\n"
    features, labels = formats.read_csv(text.encode(), label_size=1)
    np.testing.assert_array_equal(features, [[0.5, 2.0], [1.5, -3.0]])
    np.testing.assert_array_equal(labels, [1.0, 0.0])
    features, labels = formats.read_csv(text, label_size=0)
    assert features.shape == (2, 3) and labels is None
    np.testing.assert_array_equal(formats.decode_request(text.encode(), "text/csv; label_size=1"), features[:, 1:])


def test_csv_serializer_round_trip_is_exact():
    rows = RNG.normal(size=(30, 2)) * 1e3
    body = CSVSerializer().serialize(rows)
    np.testing.assert_array_equal(formats.decode_request(body.encode(), "text/csv"), rows)


def test_json_dense_sparse_and_lines():
    dense = {"instances": [{"features": [1.5, 16.0]}, {"data": {"features": {"values": [2.0, 3.0]}}}]}
    np.testing.assert_array_equal(formats.read_json(json.dumps(dense)), [[1.5, 16.0], [2.0, 3.0]])
    sparse = {"instances": [{"data": {"features": {"keys": [0, 3], "shape": [4], "values": [1.0, 2.0]}}}]}
    np.testing.assert_array_equal(formats.read_json(json.dumps(sparse).encode()), [[1.0, 0.0, 0.0, 2.0]])
    lines = '{"features": [1, 2]}\n{"data": {"features": {"values": [3, 4]}}}\n'
    np.testing.assert_array_equal(formats.read_jsonlines(lines.encode()), [[1.0, 2.0], [3.0, 4.0]])
    rows = RNG.normal(size=(5, 3))
    np.testing.assert_array_equal(formats.decode_request(JSONSerializer().serialize(rows), "application/json"), rows)
    body = JSONLinesSerializer().serialize(rows).encode()
    np.testing.assert_array_equal(formats.decode_request(body, "application/jsonlines"), rows)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"a,b\n1,2", "text/csv", "not all numbers"),
        (b"1,2\n3", "text/csv", "different lengths"),
        (b"", "text/csv", "empty"),
        (b"1,2", "text/csv;label_size=3", "label_size"),
        (b"{", "application/json", "not valid JSON"),
        (b'{"instances": [{"features": ["x"]}]}', "application/json", "list of numbers"),
        (b'{"rows": []}', "application/json", "instances"),
        (b'{"instances": [{"data": {"features": {"keys": [5], "values": [1.0]}}}]}', "application/json", "shape"),
        (
            b'{"instances": [{"data": {"features": {"keys": [5], "shape": [4], "values": [1.0]}}}]}',
            "application/json",
            "outside",
        ),
        (b'{"features": [1]}\nnope', "application/jsonlines", "JSON line 2"),
        (b"\xff\xfe", "text/csv", "UTF-8"),
        (b"12345678", "application/x-recordio-protobuf", "magic"),
    ],
)
def test_malformed_requests_raise_value_error(body, content_type, message):
    with pytest.raises(ValueError, match=message):
        formats.decode_request(body, content_type)


def test_unsupported_content_type():
    with pytest.raises(formats.UnsupportedContentType, match="text/csv"):
        formats.decode_request(b"1,2", "application/x-npy")
    with pytest.raises(formats.UnsupportedContentType):
        formats.decode_request(b"1,2", None)


def test_record_without_values_feature():
    record = Record()
    record.features["other"].float32_tensor.values.append(1.0)
    buffer = io.BytesIO()
    formats.write_recordio(buffer, record.SerializeToString())
    with pytest.raises(ValueError, match='features\\["values"\\]'):
        formats.read_records(buffer.getvalue())
    buffer = io.BytesIO()
    formats.write_recordio(buffer, b"\xff\xff\xff")
    with pytest.raises(ValueError, match="not a valid Record"):
        formats.read_records(buffer.getvalue())


# ------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/x-recordio-protobuf", "application/x-recordio-protobuf"),
        ("application/jsonlines, application/json", "application/jsonlines"),
        ("text/html;q=0.9, application/jsonlines;q=0.5", "application/jsonlines"),
        ("application/json;q=0.1, application/x-recordio-protobuf", "application/x-recordio-protobuf"),
    ],
)
def test_accept_negotiation(accept, chosen):
    assert formats.choose_response_type(accept) == chosen


def test_not_acceptable():
    with pytest.raises(formats.NotAcceptable, match="application/json"):
        formats.choose_response_type("text/html")


def test_json_responses_carry_exact_scores():
    scores = RNG.random(6) * 3
    document = json.loads(formats.encode_scores(scores, formats.JSON))
    assert [item["score"] for item in document["scores"]] == scores.tolist()
    lines = formats.encode_scores(scores, formats.JSONLINES).decode().splitlines()
    assert [json.loads(line)["score"] for line in lines] == scores.tolist()
    # A non-finite score is never written, as null or otherwise.
    for media_type in formats.RESPONSE_TYPES:
        for bad in (np.nan, np.inf):
            with pytest.raises(ValueError, match=r"rows \[0\] have no finite score"):
                formats.encode_scores([bad, 1.0], media_type)


def sparse_records(shapes, key=0):
    """RecordIO records, each with one sparse value 1.0 at ``key``, declaring the ``shapes``."""
    buffer = io.BytesIO()
    for shape in shapes:
        record = Record()
        tensor = record.features["values"].float32_tensor
        tensor.values.append(1.0)
        tensor.keys.append(key)
        tensor.shape.append(shape)
        formats.write_recordio(buffer, record.SerializeToString())
    return buffer.getvalue()


def test_sparse_channel_files_without_a_model_are_bounded_and_consistent():
    # Training reads channels before any model exists: shapes are bounded and must agree.
    with pytest.raises(ValueError, match=r"shape \[1000000000000\]; at most 10000 features"):
        formats.read_channel_file(sparse_records([10**12]), "train")
    with pytest.raises(ValueError, match=r"record 1 .* has shape \[4\] but the rows before it have 3 features"):
        formats.read_channel_file(sparse_records([3, 4]), "train")
    with pytest.raises(formats.PayloadTooLarge, match="more than 10 values"):
        formats.read_channel_file(sparse_records([4, 4, 4]), "train", max_values=10)
    features, _ = formats.read_channel_file(sparse_records([3, 3]), "train")
    np.testing.assert_array_equal(features, [[1, 0, 0], [1, 0, 0]])
    json_body = b'{"instances": [{"data": {"features": {"keys": [1], "values": [2], "shape": [10001]}}}]}'
    with pytest.raises(ValueError, match="at most 10000 features"):
        formats.read_json(json_body)
