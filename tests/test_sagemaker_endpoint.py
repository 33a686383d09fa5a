"""The scoring server on loopback, called with plain HTTP, boto3's sagemaker-runtime and the SageMaker SDK v2.

Every client talks to 127.0.0.1 only: boto3 gets ``endpoint_url`` and dummy
credentials, and ``AWS_ENDPOINT_URL`` points any other AWS client at a
closed loopback port.
"""

import http.client
import io
import json
from concurrent.futures import ThreadPoolExecutor, wait

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sagemaker.amazon.randomcutforest import RandomCutForestPredictor as SdkRandomCutForestPredictor
from sagemaker.deserializers import JSONDeserializer as SdkJSONDeserializer
from sagemaker.deserializers import JSONLinesDeserializer as SdkJSONLinesDeserializer
from sagemaker.predictor import Predictor as SdkPredictor
from sagemaker.serializers import CSVSerializer as SdkCSVSerializer
from sagemaker.serializers import JSONLinesSerializer as SdkJSONLinesSerializer
from sagemaker.serializers import JSONSerializer as SdkJSONSerializer
from sagemaker.session import Session as SdkSession

from rcforest import Forest
from rcforest.sagemaker import InvocationError, RandomCutForestPredictor
from rcforest.sagemaker.formats import encode_scores, read_recordio
from rcforest.sagemaker.record import Record
from rcforest.sagemaker.serializers import CSVSerializer, JSONLinesSerializer, JSONSerializer, RecordSerializer
from rcforest.sagemaker.server import MAX_PAYLOAD_BYTES, BackgroundServer

FEATURES = 3
SERIALIZERS = {
    "text/csv": CSVSerializer(),
    "application/json": JSONSerializer(),
    "application/jsonlines": JSONLinesSerializer(),
    "application/x-recordio-protobuf": RecordSerializer(),
}


@pytest.fixture(scope="module")
def forest():
    data = np.random.default_rng(0).normal(size=(2000, FEATURES))
    return Forest(num_trees=50, sample_size=64, random_state=0).fit(data)


@pytest.fixture(scope="module")
def server(forest):
    server = BackgroundServer(forest).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runtime(aws_env, server):
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=30, connect_timeout=5)
    return boto3.session.Session().client("sagemaker-runtime", endpoint_url=server.url, config=config)


@pytest.fixture(scope="module")
def sdk_session(aws_env, server, runtime):
    boto_session = boto3.session.Session()
    # The control-plane client also points at loopback: nothing can reach AWS.
    control = boto_session.client("sagemaker", endpoint_url=server.url)
    return SdkSession(boto_session=boto_session, sagemaker_client=control, sagemaker_runtime_client=runtime)


def _rows(seed, count=None):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count or int(rng.integers(1, 20)), FEATURES))
    rows[0] += rng.choice([0.0, 6.0])
    return rows


def _post(server, path, body, headers):
    host, port = server.url.rsplit("//", 1)[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def _get(server, path):
    host, port = server.url.rsplit("//", 1)[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _body(serializer, rows):
    body = serializer.serialize(rows)
    body = body.read() if hasattr(body, "read") else body
    return body.encode() if isinstance(body, str) else body


def _scores_of(body, media_type):
    if media_type.startswith("application/x-recordio-protobuf"):
        scores = []
        for payload in read_recordio(body):
            record = Record()
            record.ParseFromString(payload)
            scores.append(record.label["score"].float32_tensor.values[0])
        return np.array(scores, dtype=np.float32)
    if media_type.startswith("application/jsonlines"):
        return np.array([json.loads(line)["score"] for line in body.decode().splitlines()])
    return np.array([item["score"] for item in json.loads(body)["scores"]])


def _expected(forest, rows, media_type):
    scores = forest.score(rows)
    return scores.astype(np.float32) if media_type.startswith("application/x-recordio-protobuf") else scores


# ------------------------------------------------------------------- plain HTTP


def test_ping_and_execution_parameters(server):
    assert _get(server, "/ping")[0] == 200
    status, body = _get(server, "/execution-parameters")
    assert status == 200 and json.loads(body)["MaxPayloadInMB"] == 6


@pytest.mark.parametrize("content_type", list(SERIALIZERS))
@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines", "application/x-recordio-protobuf"])
@pytest.mark.parametrize("path", ["/invocations", "/endpoints/my-endpoint/invocations"])
def test_every_format_scores_exactly(server, forest, content_type, accept, path):
    rows = _rows(len(content_type) * 31 + len(accept), count=7)
    status, answer_type, body = _post(
        server, path, _body(SERIALIZERS[content_type], rows), {"Content-Type": content_type, "Accept": accept}
    )
    assert status == 200, body
    assert answer_type == accept
    np.testing.assert_array_equal(_scores_of(body, accept), _expected(forest, rows, accept))


def test_default_accept_is_json(server, forest):
    rows = _rows(1, count=4)
    status, answer_type, body = _post(
        server, "/invocations", _body(CSVSerializer(), rows), {"Content-Type": "text/csv"}
    )
    assert status == 200 and answer_type == "application/json"
    np.testing.assert_array_equal(_scores_of(body, answer_type), forest.score(rows))


def _assert_error(status, answer_type, body, expected_status, text):
    assert status == expected_status, body
    assert answer_type == "application/json"
    document = json.loads(body)
    assert set(document) == {"error", "message"}
    assert text in document["message"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "text"),
    [
        (b"1,2\n3,4", {"Content-Type": "text/csv"}, 400, "2 features but the forest was built on 3"),
        (b"1,2,x", {"Content-Type": "text/csv"}, 400, "not all numbers"),
        (b"1,2,nan", {"Content-Type": "text/csv"}, 400, "nan"),
        (b"", {"Content-Type": "text/csv"}, 400, "empty"),
        (b'{"instances": [', {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07", {"Content-Type": "application/x-recordio-protobuf"}, 400, "magic"),
        (b"1,2,3", {"Content-Type": "image/png"}, 415, "text/csv"),
        (b"1,2,3", {}, 415, "Content-Type"),
        (b"1,2,3", {"Content-Type": "text/csv", "Accept": "text/html"}, 406, "application/json"),
    ],
)
def test_bad_requests_get_json_errors_and_server_keeps_serving(server, forest, body, headers, status, text):
    _assert_error(*_post(server, "/invocations", body, headers), status, text)
    rows = _rows(2, count=3)
    ok, _, answer = _post(server, "/invocations", _body(CSVSerializer(), rows), {"Content-Type": "text/csv"})
    assert ok == 200
    np.testing.assert_array_equal(_scores_of(answer, "application/json"), forest.score(rows))


def test_unknown_route_and_method(server):
    _assert_error(*_post(server, "/nowhere", b"", {}), 404, "Not Found")
    status, body = _get(server, "/invocations")
    assert status == 405 and "message" in json.loads(body)


def test_payload_over_6_mb_is_refused(server, forest):
    row = b"1.00000000000000,2.00000000000000,3.00000000000000\n"
    body = row * (MAX_PAYLOAD_BYTES // len(row) + 1)
    assert len(body) > MAX_PAYLOAD_BYTES
    _assert_error(*_post(server, "/invocations", body, {"Content-Type": "text/csv"}), 413, "limit")
    # Just under the limit is scored.
    small = row * (MAX_PAYLOAD_BYTES // len(row))
    status, _, answer = _post(server, "/invocations", small, {"Content-Type": "text/csv"})
    assert status == 200
    assert len(json.loads(answer)["scores"]) == MAX_PAYLOAD_BYTES // len(row)


# ------------------------------------------------------------------------ boto3


def test_boto3_invoke_endpoint(runtime, forest):
    rows = _rows(3, count=9)
    for content_type, accept in [("text/csv", "application/json"), ("application/json", "application/jsonlines")]:
        response = runtime.invoke_endpoint(
            EndpointName="rcf-local",
            Body=_body(SERIALIZERS[content_type], rows),
            ContentType=content_type,
            Accept=accept,
        )
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert response["ContentType"] == accept
        assert response["InvokedProductionVariant"] == "AllTraffic"
        np.testing.assert_array_equal(_scores_of(response["Body"].read(), accept), forest.score(rows))
    response = runtime.invoke_endpoint(
        EndpointName="rcf-local", Body=_body(RecordSerializer(), rows), ContentType="application/x-recordio-protobuf"
    )
    np.testing.assert_array_equal(_scores_of(response["Body"].read(), response["ContentType"]), forest.score(rows))


def test_boto3_sees_client_errors(runtime, forest):
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="rcf-local", Body=b"1,2", ContentType="text/csv")
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationError"
    assert "forest was built on 3" in error["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="rcf-local", Body=b"1,2,3", ContentType="application/x-npy")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 415
    rows = _rows(4, count=2)
    response = runtime.invoke_endpoint(
        EndpointName="rcf-local", Body=_body(CSVSerializer(), rows), ContentType="text/csv"
    )
    np.testing.assert_array_equal(_scores_of(response["Body"].read(), "application/json"), forest.score(rows))


# -------------------------------------------------------------- SageMaker SDK v2


def test_sdk_random_cut_forest_predictor_default_recordio(sdk_session, forest):
    predictor = SdkRandomCutForestPredictor("rcf-local", sagemaker_session=sdk_session)
    rows = _rows(5, count=12)
    records = predictor.predict(rows)
    assert len(records) == 12
    scores = np.array([record.label["score"].float32_tensor.values[0] for record in records], dtype=np.float32)
    np.testing.assert_array_equal(scores, forest.score(rows).astype(np.float32))
    one = predictor.predict(rows[0])  # a 1-D array is one row
    assert one[0].label["score"].float32_tensor.values[0] == np.float32(forest.score(rows[:1])[0])


@pytest.mark.parametrize(
    ("serializer", "deserializer", "accept"),
    [
        (SdkCSVSerializer(), SdkJSONDeserializer(), "application/json"),
        (SdkJSONSerializer(), SdkJSONDeserializer(), "application/json"),
        (SdkJSONLinesSerializer(), SdkJSONLinesDeserializer(), "application/jsonlines"),
    ],
)
def test_sdk_predictor_with_csv_and_json(sdk_session, forest, serializer, deserializer, accept):
    predictor = SdkPredictor(
        "rcf-local", sagemaker_session=sdk_session, serializer=serializer, deserializer=deserializer
    )
    rows = _rows(6, count=8)
    data = [{"features": row} for row in rows.tolist()] if accept == "application/jsonlines" else rows
    answer = predictor.predict(data)
    scores = [item["score"] for item in (answer["scores"] if isinstance(answer, dict) else answer)]
    np.testing.assert_array_equal(scores, forest.score(rows))


def test_sdk_notebook_style_csv_json(sdk_session, forest):
    """The NYC taxi notebook: set serializer/deserializer on the predictor, pass a column array."""
    predictor = SdkRandomCutForestPredictor("rcf-local", sagemaker_session=sdk_session)
    predictor.serializer = SdkCSVSerializer()
    predictor.deserializer = SdkJSONDeserializer()
    rows = _rows(7, count=6)
    results = predictor.predict(rows)
    np.testing.assert_array_equal([datum["score"] for datum in results["scores"]], forest.score(rows))


def test_rcforest_predictor_with_endpoint_url(server, forest):
    predictor = RandomCutForestPredictor("anything", endpoint_url=server.url)
    rows = _rows(8, count=5)
    scores = [record.label["score"].float32_tensor.values[0] for record in predictor.predict(rows)]
    np.testing.assert_array_equal(np.array(scores, dtype=np.float32), forest.score(rows).astype(np.float32))
    with pytest.raises(InvocationError, match="forest was built on 3") as caught:
        predictor.predict(np.ones((2, 2)))
    assert caught.value.status == 400 and caught.value.code == "ValidationError"


# -------------------------------------------------------------------- load test


def test_concurrent_clients_all_answered_correctly(aws_env, server, forest):
    """8 clients x 25 requests over loopback, mixed formats; every answer checked, within a time bound."""
    clients, per_client, time_limit = 8, 25, 60.0
    formats_cycle = list(SERIALIZERS)
    accepts = ["application/json", "application/jsonlines", "application/x-recordio-protobuf"]
    # Requests and expected answers are made up front, so that only the server scores while clients run.
    plan = []
    for number in range(clients):
        requests = []
        for request in range(per_client):
            rows = _rows(number * 1000 + request)
            content_type = formats_cycle[(number + request) % len(formats_cycle)]
            accept = accepts[request % len(accepts)]
            requests.append(
                (_body(SERIALIZERS[content_type], rows), content_type, accept, _expected(forest, rows, accept))
            )
        plan.append(requests)

    def client(requests):
        runtime = boto3.session.Session().client(
            "sagemaker-runtime", endpoint_url=server.url, config=Config(retries={"max_attempts": 1}, read_timeout=30)
        )
        answered, wrong = 0, []
        for body, content_type, accept, expected in requests:
            response = runtime.invoke_endpoint(EndpointName="load", Body=body, ContentType=content_type, Accept=accept)
            answered += 1
            if not np.array_equal(_scores_of(response["Body"].read(), response["ContentType"]), expected):
                wrong.append((content_type, accept))
        return answered, wrong

    pool = ThreadPoolExecutor(max_workers=clients)
    try:
        futures = [pool.submit(client, requests) for requests in plan]
        done, not_done = wait(futures, timeout=time_limit)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    # The run is bounded in time by the wait; a client still running is a failure.
    assert not not_done, f"{len(not_done)} clients still running after {time_limit} s"
    results = [future.result() for future in done]
    assert sum(answered for answered, _ in results) == clients * per_client
    assert [failure for _, wrong in results for failure in wrong] == []
    assert _get(server, "/ping")[0] == 200


def test_recordio_response_bytes_are_the_formats_module(server, forest):
    rows = _rows(9, count=4)
    status, _, body = _post(
        server,
        "/invocations",
        _body(CSVSerializer(), rows),
        {"Content-Type": "text/csv", "Accept": "application/x-recordio-protobuf"},
    )
    assert status == 200
    assert body == encode_scores(forest.score(rows), "application/x-recordio-protobuf")
    assert io.BytesIO(body).read(4) == bytes.fromhex("0a23d7ce")


def test_the_listening_socket_is_tcp_so_asyncio_turns_nagle_off():
    # asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; without it each answer waits for a delayed ACK.
    import socket

    from rcforest.sagemaker.server import listen

    sock = listen("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
