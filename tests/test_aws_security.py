"""``rcforest aws`` as a security boundary: issue 21's findings against a real server on loopback.

The server runs as ``python -m rcforest aws`` in a child process
(:mod:`tests.aws_server`); requests are sent with real boto3 clients and,
for what boto3 never sends (a foreign ``Host`` or ``Origin``, a 300 MB
announced body, broken JSON), with raw HTTP. One server serves the module;
the tests that need a server of their own (a job flood, a small disk, a
damaged certificate authority) start one.

boto3's default session keeps the first credentials it reads, so clients
here come from fresh sessions (:func:`_client`), and :func:`exported` drops
the default session while a server's environment is exported: no server is
sent another's credentials.

Sections, by finding: names and paths; browsers (``Origin``, ``Host``,
CORS); starvation and latency (the job queue, tuning, InvokeEndpoint under a
flood); bodies; errors and fuzz; the HTTPS proxy and its certificate
authority; the low items.
"""

import http.client
import json
import math
import os
import random
import re
import select
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("moto.server")
pytest.importorskip("a2wsgi")
pytest.importorskip("cryptography")
boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.aws_server import REPO, Server, exported  # noqa: E402

pytestmark = pytest.mark.timeout(900)

GRANTED = "http://app.example:3000"
FOREIGN = "http://evil.example"
MAX_BODY_MB = 8
SAGEMAKER = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"
ROLE = "arn:aws:iam::123456789012:role/AmazonSageMaker-ExecutionRole-rcforest"
BUCKET = "rcforest-security"


def _client(service, **options):
    """A boto3 client of a fresh session: boto3's default session keeps the first credentials it reads."""
    return boto3.session.Session().client(service, **options)


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A folder beside the server's data folder, with a file that must stay as it is."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "keep.txt").write_text("intact\n")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_env):
    """``rcforest aws`` with one granted origin, one extra host name and an 8 MiB bound on S3 bodies."""
    options = ["--header-timeout", "2", "--body-timeout", "10", "--max-body-mb", str(MAX_BODY_MB)]
    options += ["--cors-origin", GRANTED, "--allow-host", "aws.internal"]
    running = Server(tmp_path_factory.mktemp("aws-security"), *options)
    with exported(running):
        yield running
    running.stop()


def _signature(service):
    """An Authorization header naming ``service`` in its scope (the server checks no signature)."""
    scope = f"AKIDEXAMPLE/20260101/us-east-1/{service}/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"}


def _address(server):
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _request(server, method, path, body=b"", headers=None, host=None):
    """Send one request with exactly these headers (and ``Host``); return status, lower-case headers and body."""
    address = _address(server)
    connection = http.client.HTTPConnection(*address, timeout=30)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host if host is not None else f"{address[0]}:{address[1]}")
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body or None)
    response = connection.getresponse()
    answer = response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    connection.close()
    return answer


def _call(server, action, body):
    """POST ``body`` to SageMaker ``action`` as it is; return the status and the body."""
    status, _, answer = _request(server, "POST", "/", body, {**SAGEMAKER, "X-Amz-Target": f"SageMaker.{action}"})
    return status, answer


def _cors(headers):
    return {name: value for name, value in headers.items() if name.startswith("access-control-")}


def _error_code(headers, body):
    """The AWS error code of an answer, read as botocore reads it: JSON ``__type`` or XML ``Code``."""
    if headers.get("content-type", "").startswith("application/x-amz-json") or body.startswith(b"{"):
        parsed = json.loads(body)
        assert set(parsed) == {"__type", "message"}, parsed
        assert headers["x-amzn-errortype"] == parsed["__type"]
        return parsed["__type"]
    root = ElementTree.fromstring(body)
    error = root if root.tag == "Error" else root.find("Error")
    assert error.find("Message").text
    return error.find("Code").text


def _error(failure):
    response = failure.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def _threads(pid):
    with open(f"/proc/{pid}/status") as file:
        return int(next(line.split()[1] for line in file if line.startswith("Threads:")))


def _peak_memory_kb(pid):
    with open(f"/proc/{pid}/status") as file:
        return int(next(line.split()[1] for line in file if line.startswith("VmHWM:")))


def sagemaker(validate=False):
    """A boto3 SageMaker client; without client-side validation, so the server's own is what answers."""
    return _client("sagemaker", config=Config(parameter_validation=validate, retries={"total_max_attempts": 1}))


def _put(key, body, bucket=BUCKET):
    s3 = _client("s3")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError:
        pass
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _series_csv(rows=300, seed=0):
    return "".join(f"{v:.6f}\n" for v in np.random.default_rng(seed).normal(size=rows)).encode()


def _labelled_csv(rows=100, seed=1):
    values = np.random.default_rng(seed).normal(size=rows)
    labels = np.zeros(rows)
    labels[::25] = 1
    values[labels == 1] += 8
    return "".join(f"{int(label)},{value:.6f}\n" for label, value in zip(labels, values)).encode()


def _training_request(name, train_uri, **hyperparameters):
    params = {"feature_dim": "1", "num_samples_per_tree": "64", "num_trees": "50", **hyperparameters}
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train_uri}},
                "ContentType": "text/csv",
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": params,
    }


def _tuning_request(name, train_uri, test_uri, max_jobs=3, parallel=1):
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "test:f1"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": {"IntegerParameterRanges": [{"Name": "num_trees", "MinValue": "50", "MaxValue": "60"}]},
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"feature_dim": "1", "num_samples_per_tree": "64"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
                    "ContentType": content_type,
                }
                for channel, uri, content_type in (
                    ("train", train_uri, "text/csv"),
                    ("test", test_uri, "text/csv;label_size=1"),
                )
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/tuning"},
            "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }


def _transform_request(name, model, uri):
    return {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}},
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/transform"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


def _wait(name, timeout=180):
    client = sagemaker()
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_training_job(TrainingJobName=name)
        if description["TrainingJobStatus"] not in ("InProgress", "Stopping") or time.monotonic() > deadline:
            return description
        time.sleep(0.2)


def _model(name, seed=0):
    """Train a model (waiting for the job as a waiter would) and register it; return the artefact's URI."""
    client = sagemaker()
    uri = _put(f"data/{name}/train.csv", _series_csv(seed=seed))
    client.create_training_job(**_training_request(name, uri))
    description = _wait(name)
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    artefact = description["ModelArtifacts"]["S3ModelArtifacts"]
    client.create_model(
        ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": artefact}, ExecutionRoleArn=ROLE
    )
    return artefact


def _config(name, model, **variant):
    sagemaker().create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
            | variant
        ],
    )


def _tree(folder):
    """Every path under ``folder`` with its size (files) or None (folders)."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size if path.is_file() else None)
        for path in Path(folder).rglob("*")
    }


# ------------------------------------------------------------ names and paths


BAD_NAMES = ["", "a b", "naïve", "a\x00b", "-a", "a-", "a_b", "a.b", "x" * 64, "y" * 200_000]


def _create(kind, name, server_models):
    """Send the Create call of ``kind`` with ``name``; everything else valid."""
    client = sagemaker()
    model, config, uri = server_models
    if kind == "TrainingJobName":
        client.create_training_job(**_training_request(name, uri))
    elif kind == "ModelName":
        client.create_model(ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": uri})
    elif kind == "EndpointConfigName":
        client.create_endpoint_config(
            EndpointConfigName=name, ProductionVariants=[{"VariantName": "v", "ModelName": model}]
        )
    elif kind == "EndpointName":
        client.create_endpoint(EndpointName=name, EndpointConfigName=config)
    elif kind == "TransformJobName":
        client.create_transform_job(**_transform_request(name, model, uri))
    elif kind == "HyperParameterTuningJobName":
        client.create_hyper_parameter_tuning_job(**_tuning_request(name, uri, uri))
    elif kind == "VariantName":
        client.create_endpoint_config(
            EndpointConfigName=f"variant-{time.time_ns()}",
            ProductionVariants=[{"VariantName": name, "ModelName": model}],
        )


KINDS = [
    "TrainingJobName",
    "ModelName",
    "EndpointConfigName",
    "EndpointName",
    "TransformJobName",
    "HyperParameterTuningJobName",
    "VariantName",
]


@pytest.fixture(scope="module")
def served(server):
    """A model, an endpoint configuration and a data URI the name tests refer to."""
    name = f"named-{time.time_ns()}"
    artefact = _model(name)
    _config(name, name)
    return name, name, artefact


def _listing(client):
    return {
        "TrainingJob": {
            j["TrainingJobName"] for j in client.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        },
        "Model": {m["ModelName"] for m in client.list_models(MaxResults=100)["Models"]},
        "EndpointConfig": {c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"]},
        "Endpoint": {e["EndpointName"] for e in client.list_endpoints()["Endpoints"]},
        "TransformJob": {j["TransformJobName"] for j in client.list_transform_jobs()["TransformJobSummaries"]},
    }


@pytest.mark.parametrize("kind", KINDS)
def test_names_break_aws_rules_get_a_validation_exception(server, served, kind):
    client = sagemaker()
    before = _listing(client)
    longest = 32 if kind == "HyperParameterTuningJobName" else 63
    names = BAD_NAMES + ["z" * (longest + 1)]
    for name in names:
        with pytest.raises(ClientError) as failure:
            _create(kind, name, served)
        code, status, message = _error(failure)
        assert (code, status) == ("ValidationException", 400), (name[:80], message)
        member = kind[:1].lower() + kind[1:]
        assert f"at '{member}'" in message or f"{member}'" in message, message
        assert "regular expression pattern" in message or "length" in message, message
        assert len(message) < 2000  # a 200,000-character name is not echoed back
    assert _listing(client) == before  # nothing was half-created


def test_longest_names_are_accepted(server, served):
    client = sagemaker()
    model, config, uri = served
    name = "m" + "-a" * 31  # 63 characters, dashes inside
    client.create_model(ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": uri})
    assert client.describe_model(ModelName=name)["ModelName"] == name
    tuning = "t" * 32
    client.create_hyper_parameter_tuning_job(**_tuning_request(tuning, uri, uri, max_jobs=1))
    client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning)
        if status["HyperParameterTuningJobStatus"] == "Stopped":
            break
        time.sleep(0.2)
    assert status["HyperParameterTuningJobStatus"] == "Stopped"


TRAVERSAL = ["/{outside}", "../../../{outside_name}", ".", "..", "../..", "a/../../b", "%2e%2e"]


@pytest.mark.parametrize("kind", KINDS)
def test_traversal_names_touch_no_folder(server, served, outside, kind):
    """Names that would be paths outside (or the server's own folders) are refused; nothing on disk moves."""
    client = sagemaker()
    # An endpoint in service: its model and work folders must survive.
    endpoint = f"keep-{kind.lower()[:10]}-{time.time_ns()}"
    client.create_endpoint(EndpointName=endpoint, EndpointConfigName=served[1])
    before = _tree(server.data_dir)
    outside_before = _tree(outside)
    for template in TRAVERSAL:
        name = template.format(outside=str(outside).lstrip("/"), outside_name=outside.name)
        with pytest.raises(ClientError) as failure:
            _create(kind, name, served)
        assert _error(failure)[:2] == ("ValidationException", 400)
    time.sleep(0.5)
    assert _tree(outside) == outside_before and (outside / "keep.txt").read_text() == "intact\n"
    assert _tree(server.data_dir) == before
    answer = _client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, Body=b"0.5\n", ContentType="text/csv")
    assert json.loads(answer["Body"].read())["scores"][0]["score"] > 0
    client.delete_endpoint(EndpointName=endpoint)


def test_no_client_string_becomes_a_path(server, served):
    """A job's, a model's and an endpoint's names appear nowhere under the data folder; S3 keys are made safe."""
    client = sagemaker()
    name = f"pathless-{time.time_ns()}"
    keys = ["odd/...", "odd/..x", "odd/ü name ~$(x).csv", "odd/" + "k" * 900]
    for key in keys:
        _put(key, _series_csv(100, seed=len(key)))
    client.create_training_job(**_training_request(name, f"s3://{BUCKET}/odd/"))
    description = _wait(name)
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    client.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": description["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    _config(name, name)
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert client.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    everything = list(_tree(server.data_dir))
    assert not [path for path in everything if "pathless" in path or "kkkkkkkk" in path or "name" in path]
    # The job's folder is gone once it ended, and the endpoint keeps no copy of its model on disk.
    assert not [path for path in everything if path.startswith(("work/training-jobs/", "work/endpoints/"))]
    client.delete_endpoint(EndpointName=name)


def test_local_names_of_s3_keys_stay_in_their_folder():
    from rcforest.aws.jobs import local_name

    for number, key in enumerate(["..", "a/..", "/abs/path", "../../../x", "", "k" * 5000, "ü\x00\n/.hidden"]):
        name = local_name(number, key)
        assert "/" not in name and "\x00" not in name and not name.startswith(".")
        assert name.startswith(f"part-{number:05d}-") and len(name) <= 80


# ------------------------------------------------------------ browsers: Origin, Host, CORS


@pytest.fixture(scope="module")
def bucket(server):
    """A bucket holding one object, with a CORS rule granting every origin (which must not reach browsers)."""
    s3 = _client("s3")
    s3.create_bucket(Bucket="rcforest-victim")
    s3.put_object(Bucket="rcforest-victim", Key="secret.csv", Body=b"1,2,3\n")
    rule = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT", "POST", "DELETE"], "AllowedHeaders": ["*"]}
    s3.put_bucket_cors(Bucket="rcforest-victim", CORSConfiguration={"CORSRules": [rule]})
    return "rcforest-victim"


ROUTES = [
    ("POST", "/", b"{}", SAGEMAKER),  # the SageMaker API
    ("POST", "/endpoints/any/invocations", b"1\n", {"Content-Type": "text/csv"}),  # InvokeEndpoint
    ("GET", "/rcforest-victim", None, {}),  # S3 ListObjects, unsigned
    ("PUT", "/rcforest-victim/dropped", b"x", {}),  # S3 PutObject, unsigned
    ("GET", "/moto-api/data.json", None, {}),  # moto's own API
    ("POST", "/moto-api/reset", b"", {}),
]


@pytest.mark.parametrize("path", ["/", "/moto-api/", "/rcforest-victim", "/endpoints/any/invocations"])
def test_preflights_get_no_grant(server, bucket, path):
    preflight = {
        "Origin": FOREIGN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-amz-target,content-type",
    }
    status, headers, body = _request(server, "OPTIONS", path, None, preflight)
    assert status == 403 and _cors(headers) == {}
    assert _error_code(headers, body).startswith("AccessDenied")


@pytest.mark.parametrize(("method", "path", "body", "headers"), ROUTES)
@pytest.mark.parametrize("origin", [FOREIGN, "null", "http://127.0.0.1:1", "http://localhost"])
def test_foreign_origins_are_refused_on_every_route(server, bucket, method, path, body, headers, origin):
    status, answer_headers, answer = _request(server, method, path, body, {**headers, "Origin": origin})
    assert status == 403 and _cors(answer_headers) == {}
    assert _error_code(answer_headers, answer).startswith("AccessDenied")
    assert b"secret.csv" not in answer


def test_cross_site_requests_without_origin_are_refused(server, bucket):
    """A browser's no-cors request (an <img>, a <script>) has no Origin but says where it comes from."""
    status, headers, body = _request(server, "GET", f"/{bucket}", None, {"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and _error_code(headers, body) == "AccessDenied" and b"secret.csv" not in body
    status, _, body = _request(server, "GET", f"/{bucket}", None, {"Sec-Fetch-Site": "none"})  # typed by the user
    assert status == 200 and b"secret.csv" in body


MOTO_API = [
    ("GET", "/moto-api/data.json", None),  # every backend's state, objects' keys included
    ("POST", "/moto-api/reset", b""),  # forget every bucket, role and log
    ("POST", "//moto-api/reset", b""),
    ("POST", "/moto-api/recorder/start-recording", b""),  # append every request to a file in the server's folder
    ("POST", "/moto-api/recorder/upload-recording", b'{"method": "GET"}\n'),  # write the body to that file
    ("POST", "/moto-api/recorder/replay-recording", b""),  # send the recorded requests to another host
    ("POST", "/moto-api/proxy/passthrough", b'{"http_urls": ["http://example.com"]}'),
    ("GET", "/moto-api", None),
]


@pytest.mark.parametrize(("method", "path", "body"), MOTO_API)
def test_motos_own_api_is_not_served(server, bucket, method, path, body):
    """moto's API would reset, dump or record the server's state for any caller: refused, and the state stays."""
    status, headers, answer = _request(server, method, path, body, {})
    assert status == 403 and _error_code(headers, answer) == "AccessDenied"
    assert b"secret.csv" not in answer
    assert not (REPO / "moto_recording").exists()  # the server runs in the repository's folder
    assert _client("s3").get_object(Bucket=bucket, Key="secret.csv")["Body"].read() == b"1,2,3\n"


def test_moto_grants_are_stripped(server, bucket):
    """moto grants every origin (flask-cors) and S3 what the bucket's CORS rule says: none of it reaches a client."""
    s3 = _client("s3")
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedOrigins"] == ["*"]
    for method, path, body, headers in ROUTES[:3]:
        status, answer_headers, _ = _request(server, method, path, body, headers)
        assert _cors(answer_headers) == {}, (path, status)
    status, headers, body = _request(server, "GET", f"/{bucket}", None, {})
    assert status == 200 and b"secret.csv" in body and _cors(headers) == {}


def test_same_origin_and_named_origins_are_served(server, bucket):
    host, port = _address(server)
    status, headers, body = _request(server, "GET", f"/{bucket}", None, {"Origin": f"http://{host}:{port}"})
    assert status == 200 and b"secret.csv" in body and _cors(headers) == {}
    # --cors-origin: a preflight and a request of that origin get a grant naming it, and only it.
    preflight = {
        "Origin": GRANTED,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-amz-target",
    }
    status, headers, _ = _request(server, "OPTIONS", "/", None, preflight)
    assert status == 200 and headers["access-control-allow-origin"] == GRANTED
    assert headers["access-control-allow-headers"] == "x-amz-target"
    status, headers, body = _request(server, "POST", "/", b"{}", {**SAGEMAKER, "Origin": GRANTED})
    assert status == 200 and "Models" in json.loads(body)
    assert headers["access-control-allow-origin"] == GRANTED
    status, headers, body = _request(server, "GET", f"/{bucket}", None, {"Origin": GRANTED})
    assert status == 200 and headers["access-control-allow-origin"] == GRANTED


@pytest.mark.parametrize(("method", "path", "body", "headers"), ROUTES[:5])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}", "[::2]", ""])
def test_foreign_hosts_are_refused_on_every_route(server, bucket, method, path, body, headers, host):
    """DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own name as Host."""
    host = host.format(port=_address(server)[1])
    status, answer_headers, answer = _request(server, method, path, body, headers, host=host)
    assert status == 403 and _error_code(answer_headers, answer).startswith("AccessDenied")
    assert b"secret.csv" not in answer


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "aws.internal:{port}", "127.0.0.1"]
)
def test_loopback_hosts_are_served(server, host):
    host = host.format(port=_address(server)[1])
    status, _, body = _request(server, "POST", "/", b"{}", SAGEMAKER, host=host)
    assert status == 200 and "Models" in json.loads(body)


def test_boto3_through_localhost(server, bucket):
    """boto3 sent to http://localhost:PORT works, and so does S3's virtual-host addressing (bucket.localhost)."""
    port = _address(server)[1]
    s3 = _client("s3", endpoint_url=f"http://localhost:{port}")
    s3.put_object(Bucket=bucket, Key="through-localhost", Body=b"data")
    assert s3.get_object(Bucket=bucket, Key="through-localhost")["Body"].read() == b"data"
    sagemaker = _client("sagemaker", endpoint_url=f"http://localhost:{port}")
    assert "Models" in sagemaker.list_models()
    # *.localhost names need not resolve here: send the virtual-host request to 127.0.0.1 by hand.
    status, _, body = _request(server, "GET", "/", None, {}, host=f"{bucket}.localhost:{port}")
    assert status == 200 and b"through-localhost" in body


# ------------------------------------------------------------ starvation and latency: the queue, InvokeEndpoint


def test_create_answers_at_once_and_the_queue_is_bounded(server, served):
    """Create calls do not wait for jobs; beyond the backlog: ResourceLimitExceeded; a stopped waiting job: Stopped."""
    client = sagemaker()
    uri = _put("data/queue/train.csv", _series_csv())
    names, refused, slowest = [], 0, 0.0
    for number in range(130):
        name = f"flood-{number}-{time.time_ns()}"
        started = time.monotonic()
        try:
            client.create_training_job(**_training_request(name, uri))
            names.append(name)
        except ClientError as error:
            assert error.response["Error"]["Code"] == "ResourceLimitExceeded"
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            refused += 1
        slowest = max(slowest, time.monotonic() - started)
    # Jobs that end during the flood make room (fewer on a busy machine), so only the bound itself is exact.
    assert refused >= 1 and len(names) >= 100
    assert slowest < 2.0  # no Create call waited for a job
    waiting = [n for n in names if client.describe_training_job(TrainingJobName=n)["SecondaryStatus"] == "Starting"]
    assert 90 < len(waiting) <= 100
    stopped = []
    for name in names:
        try:
            client.stop_training_job(TrainingJobName=name)
            stopped.append(name)
        except ClientError as error:  # it ended meanwhile
            assert "is in status" in error.response["Error"]["Message"]
    # A waiting job is Stopped at once; only the one running (one job thread) waits for its training to end.
    statuses = [client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] for name in names]
    assert statuses.count("Stopping") <= 1 and "InProgress" not in statuses, statuses
    ended = [_wait(name, timeout=120)["TrainingJobStatus"] for name in names]
    assert set(ended) <= {"Stopped", "Completed"}, ended
    # Every job stopped while it waited ends Stopped; the one running may complete first.
    assert len(stopped) > 50 and ended.count("Stopped") >= len(stopped) - 1, (len(stopped), ended)


@pytest.mark.parametrize(
    ("limits", "member"),
    [
        ({"MaxNumberOfTrainingJobs": 0, "MaxParallelTrainingJobs": 1}, "maxNumberOfTrainingJobs"),
        ({"MaxNumberOfTrainingJobs": -5, "MaxParallelTrainingJobs": 1}, "maxNumberOfTrainingJobs"),
        ({"MaxNumberOfTrainingJobs": 10**6, "MaxParallelTrainingJobs": 1}, "maxNumberOfTrainingJobs"),
        ({"MaxNumberOfTrainingJobs": "5", "MaxParallelTrainingJobs": 1}, "maxNumberOfTrainingJobs"),
        ({"MaxNumberOfTrainingJobs": 5, "MaxParallelTrainingJobs": 0}, "maxParallelTrainingJobs"),
        ({"MaxNumberOfTrainingJobs": 5, "MaxParallelTrainingJobs": 101}, "maxParallelTrainingJobs"),
    ],
)
def test_tuning_limits_are_aws_limits(server, served, limits, member):
    client = sagemaker()
    name = f"limits-{time.time_ns() % 10**12}"
    request = _tuning_request(name, served[2], served[2])
    request["HyperParameterTuningJobConfig"]["ResourceLimits"] = limits
    with pytest.raises(ClientError) as failure:
        client.create_hyper_parameter_tuning_job(**request)
    code, status, message = _error(failure)
    assert (code, status) == ("ValidationException", 400) and member in message
    with pytest.raises(ClientError) as failure:
        client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert _error(failure)[0] == "ResourceNotFound"


def test_stop_hyper_parameter_tuning_job(server):
    client = sagemaker()
    name = f"stop-{time.time_ns() % 10**12}"
    train, test = _put(f"tune/{name}/train.csv", _series_csv()), _put(f"tune/{name}/test.csv", _labelled_csv())
    client.create_hyper_parameter_tuning_job(**_tuning_request(name, train, test, max_jobs=50, parallel=5))
    deadline = time.monotonic() + 120
    while (
        client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)["TrainingJobStatusCounters"][
            "Completed"
        ]
        < 1
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    deadline = time.monotonic() + 120
    while True:
        described = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if described["HyperParameterTuningJobStatus"] != "Stopping" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert described["HyperParameterTuningJobStatus"] == "Stopped"
    jobs = client.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert 1 <= len(jobs["TrainingJobSummaries"]) < 50
    assert all(j["TrainingJobStatus"] in ("Completed", "Stopped") for j in jobs["TrainingJobSummaries"])
    time.sleep(1)
    again = client.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert len(again["TrainingJobSummaries"]) == len(jobs["TrainingJobSummaries"])  # nothing started after the stop
    with pytest.raises(ClientError) as failure:
        client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert _error(failure)[:2] == ("ValidationException", 400)


def _latencies(runtime, endpoint, count, raw=False):
    """Seconds of ``count`` 1-row InvokeEndpoint calls in sequence; or their p50 and p99."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"0.5\n", ContentType="text/csv")["Body"].read()
        times.append(time.perf_counter() - started)
    return times if raw else (np.percentile(times, 50), np.percentile(times, 99))


def test_invoke_endpoint_keeps_its_latency_under_a_job_flood(tmp_path, aws_env):
    """While 50 jobs and 50 tuning jobs arrive, the 1-row p99 stays within 2x of idle (or idle + 100 ms)."""
    running = Server(tmp_path / "flood")
    try:
        with exported(running):
            client = sagemaker()
            runtime = _client("sagemaker-runtime", config=Config(retries={"total_max_attempts": 1}))
            name = f"latency-{time.time_ns()}"
            uri = _put(f"data/{name}/train.csv", _series_csv())
            test_uri = _put(f"data/{name}/test.csv", _labelled_csv())
            _model(name)
            _config(name, name)
            client.create_endpoint(EndpointName=name, EndpointConfigName=name)
            _latencies(runtime, name, 50)  # warm
            idle_p50, idle_p99 = _latencies(runtime, name, 300)

            answers, api_times = [], []

            def flood():
                for number in range(50):
                    started = time.monotonic()
                    try:
                        client.create_training_job(**_training_request(f"job-{number}-{name}"[:63], uri))
                        answers.append("ok")
                    except ClientError as error:
                        answers.append(error.response["Error"]["Code"])
                    api_times.append(time.monotonic() - started)
                for number in range(50):
                    started = time.monotonic()
                    tuning = f"tune-{number}-{time.time_ns() % 10**9}"
                    try:
                        client.create_hyper_parameter_tuning_job(
                            **_tuning_request(tuning, uri, test_uri, max_jobs=500, parallel=10)
                        )
                        answers.append("ok")
                    except ClientError as error:
                        answers.append(error.response["Error"]["Code"])
                    api_times.append(time.monotonic() - started)

            flooding = threading.Thread(target=flood)
            flooding.start()
            time.sleep(0.5)
            # Measure while the flood arrives and until jobs have run (at least 5 more have completed).
            done_before = len(
                client.list_training_jobs(MaxResults=100, StatusEquals="Completed")["TrainingJobSummaries"]
            )
            busy, deadline = [], time.monotonic() + 120
            while time.monotonic() < deadline:
                busy.extend(_latencies(runtime, name, 50, raw=True))
                completed = client.list_training_jobs(MaxResults=100, StatusEquals="Completed")["TrainingJobSummaries"]
                if len(busy) >= 300 and not flooding.is_alive() and len(completed) >= done_before + 5:
                    break
            busy_p50, busy_p99 = np.percentile(busy, 50), np.percentile(busy, 99)
            flooding.join(120)
            jobs = client.list_training_jobs(MaxResults=100, StatusEquals="Completed")["TrainingJobSummaries"]
            print(
                f"\nInvokeEndpoint 1 row: idle p50 {idle_p50 * 1e3:.2f} ms p99 {idle_p99 * 1e3:.2f} ms; "
                f"under the flood p50 {busy_p50 * 1e3:.2f} ms p99 {busy_p99 * 1e3:.2f} ms; "
                f"{len(busy)} calls; {answers.count('ok')} of {len(answers)} creates accepted, "
                f"slowest {max(api_times) * 1e3:.0f} ms; "
                f"{len(jobs) - done_before} jobs completed meanwhile"
            )
            assert len(answers) == 100 and set(answers) <= {"ok", "ResourceLimitExceeded"}
            assert answers.count("ok") >= 50
            assert max(api_times) < 2.0
            assert len(jobs) >= done_before + 5  # jobs did run during the measurement
            # Other work on the machine moves both windows: on 2 cores at a load average of 10 to 17, five runs
            # measured an idle p99 of 6 to 40 ms and a p99 under the flood of 21 to 57 ms, so 50 ms over an idle
            # window that fell in a lull can be exceeded with nothing starved; calls that waited for jobs would
            # take far longer than 100 ms.
            assert busy_p99 <= max(2 * idle_p99, idle_p99 + 0.100)
            training = _children(running.process.pid)
            assert training  # the training process
    finally:
        running.stop()
    # The training process ends with the server, even one stopped by a signal in the middle of a flood.
    deadline = time.monotonic() + 30
    while [pid for pid in training if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in training if Path(f"/proc/{pid}").exists()]


def _children(parent):
    """Process ids of ``parent``'s multiprocessing children (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


# ------------------------------------------------------------ bodies


def _send_head(server, method, path, headers):
    sock = socket.create_connection(_address(server), timeout=30)
    host, port = _address(server)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall((head + "\r\n").encode())
    return sock


def _read_answer(sock):
    """Status, lower-case headers and body of one answer (with a Content-Length) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def big_bucket(server):
    _client("s3").create_bucket(Bucket="rcforest-big")
    return "rcforest-big"


def test_a_300_mb_body_is_refused_unread(server, big_bucket):
    """The announced size is refused at once: nothing is read, the server's peak memory does not move."""
    peak = _peak_memory_kb(server.process.pid)
    for path, headers, status, code in [
        ("/", SAGEMAKER, 413, "RequestEntityTooLarge"),
        ("/rcforest-big/key", {}, 400, "EntityTooLarge"),  # S3's answer to a PUT over its bound
    ]:
        method = "POST" if path == "/" else "PUT"
        with _send_head(server, method, path, {**headers, "Content-Length": str(300 * 1024 * 1024)}) as sock:
            assert select.select([sock], [], [], 10)[0], "no answer before the body"
            answer_status, answer_headers, body = _read_answer(sock)
        assert (answer_status, _error_code(answer_headers, body)) == (status, code)
        assert len(body) < 1000
    assert _peak_memory_kb(server.process.pid) - peak < 50_000


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/", 413, "RequestEntityTooLarge"), ("/rcforest-big/chunked", 411, "MissingContentLength")],
)
def test_chunked_bodies_are_counted_or_refused(server, big_bucket, path, status, code):
    """The SageMaker API counts a body without Content-Length as it arrives; S3 asks for the length, as AWS's does."""
    headers = {**(SAGEMAKER if path == "/" else {}), "Transfer-Encoding": "chunked"}
    part = b"a" * (1 << 20)
    with _send_head(server, "POST" if path == "/" else "PUT", path, headers) as sock:
        for _ in range(MAX_BODY_MB + 2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sock.sendall(b"0\r\n\r\n")
        answer_status, answer_headers, body = _read_answer(sock)
    assert (answer_status, _error_code(answer_headers, body)) == (status, code)
    with pytest.raises(ClientError, match="404"):
        _client("s3").head_object(Bucket=big_bucket, Key="chunked")  # moto stored an empty object before


def test_boto3_reads_the_size_errors(server, big_bucket):
    """Bodies a little over the bounds: boto3 gets AWS's error, and S3 stores nothing."""
    sagemaker = _client("sagemaker", config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as failure:
        sagemaker.list_models(NameContains="a" * (6 * 1024 * 1024))
    assert failure.value.response["Error"]["Code"] == "RequestEntityTooLarge"
    assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    s3 = _client("s3", config=Config(retries={"max_attempts": 1}))
    s3.put_object(Bucket="rcforest-big", Key="fits", Body=b"x" * ((MAX_BODY_MB - 1) << 20))
    with pytest.raises(ClientError) as failure:
        s3.put_object(Bucket="rcforest-big", Key="over", Body=b"x" * ((MAX_BODY_MB << 20) + 1))
    assert failure.value.response["Error"]["Code"] == "EntityTooLarge"
    assert s3.head_object(Bucket="rcforest-big", Key="fits")["ContentLength"] == (MAX_BODY_MB - 1) << 20
    with pytest.raises(ClientError, match="404"):
        s3.head_object(Bucket="rcforest-big", Key="over")


# ------------------------------------------------------------ errors and fuzz


DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000  # nested past any parser's recursion
HOSTILE = [
    (
        "a target not SageMaker's",
        b"{}",
        {"X-Amz-Target": "Foo.Bar", **_signature("sagemaker")},
        "UnknownOperationException",
    ),
    (
        "a SageMaker target's prefix",
        b"{}",
        {"X-Amz-Target": "SageMakerX.ListModels", **_signature("sagemaker")},
        "UnknownOperationException",
    ),
    ("malformed JSON", b'{"a": ', SAGEMAKER, "SerializationException"),
    ("invalid UTF-8", b'{"a": "\xff"}', SAGEMAKER, "SerializationException"),
    ("lists nested 10^5 deep", b"[" * 100_000 + b"]" * 100_000, SAGEMAKER, "SerializationException"),
    ("objects nested 10^5 deep", DEEP, SAGEMAKER, "SerializationException"),
    ("a JSON list", b"[]", SAGEMAKER, "SerializationException"),
    ("a JSON string", b'"x"', SAGEMAKER, "SerializationException"),
    ("JSON null", b"null", SAGEMAKER, "SerializationException"),
    ("an unknown action", b"{}", {**SAGEMAKER, "X-Amz-Target": "SageMaker.NoSuchAction"}, "UnknownOperationException"),
    ("an empty action", b"{}", {**SAGEMAKER, "X-Amz-Target": "SageMaker."}, "UnknownOperationException"),
    ("a NaN MaxResults", b'{"MaxResults": NaN}', SAGEMAKER, "ValidationException"),
    ("a 1e400 MaxResults", b'{"MaxResults": 1e400}', SAGEMAKER, "ValidationException"),
    ("a -1e400 MaxResults", b'{"MaxResults": -1e400}', SAGEMAKER, "ValidationException"),
    ("a string MaxResults", b'{"MaxResults": "x"}', SAGEMAKER, "ValidationException"),
]


@pytest.mark.parametrize(("case", "body", "headers", "code"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_sagemaker_errors_are_aws_json(server, case, body, headers, code):
    """Each answers AWS's 400 and error code in JSON, and the server keeps serving."""
    status, answer_headers, answer = _request(server, "POST", "/", body, headers)
    assert answer_headers["content-type"] == "application/x-amz-json-1.1"
    assert (status, _error_code(answer_headers, answer)) == (400, code)
    status, _, answer = _request(server, "POST", "/", b"{}", SAGEMAKER)
    assert status == 200 and "Models" in json.loads(answer)


@pytest.mark.parametrize(
    "path", ["/endpoints/any/invocations/", "/endpoints/any/invocations-response-stream", "/endpoints/"]
)
def test_sagemaker_paths_it_does_not_serve_are_aws_json(server, path):
    status, headers, body = _request(
        server, "POST", path, b"1\n", {"Content-Type": "text/csv", **_signature("sagemaker")}
    )
    assert (status, _error_code(headers, body)) == (400, "UnknownOperationException")
    status, headers, body = _request(server, "POST", path, b"1\n", {"Content-Type": "text/csv"})  # unsigned: moto's
    assert status >= 400 and _error_code(headers, body)


def test_errors_do_not_echo_huge_strings(server):
    for headers in [
        {**SAGEMAKER, "X-Amz-Target": "SageMaker.DescribeModel"},
        {**SAGEMAKER, "X-Amz-Target": "SageMaker." + "A" * 8000},
    ]:
        status, answer_headers, body = _request(
            server, "POST", "/", json.dumps({"ModelName": "m" * 200_000}).encode(), headers
        )
        assert status == 400 and _error_code(answer_headers, body) and len(body) < 4096
    status, headers, body = _request(server, "POST", "/", b"{}", SAGEMAKER, host="e" * 8000)
    assert status == 403 and len(body) < 1024


def test_moto_actions_it_does_not_implement_get_parseable_errors(server):
    """JSON (CloudWatch Logs), CBOR (CloudWatch) and query XML (STS): botocore reads each error."""
    calls = [
        (_client("logs"), "get_log_anomaly_detector", {"anomalyDetectorArn": "arn:aws:logs:us-east-1:1:x:y"}),
        (_client("cloudwatch"), "describe_anomaly_detectors", {}),
        (_client("sts"), "get_delegated_access_token", {"TradeInToken": "x" * 40}),
    ]
    for client, operation, parameters in calls:
        with pytest.raises(ClientError) as failure:
            getattr(client, operation)(**parameters)
        assert failure.value.response["Error"]["Code"] == "NotImplemented", operation
        assert failure.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        assert operation in failure.value.response["Error"]["Message"]
    form = {"Content-Type": "application/x-www-form-urlencoded", **_signature("sts")}
    status, headers, body = _request(server, "POST", "/", b"Action=NoSuchAction&Version=2011-06-15", form)
    assert (status, _error_code(headers, body)) == (400, "InvalidAction")
    assert _client("sts").get_caller_identity()["Account"] == "123456789012"


@pytest.mark.parametrize("value", [-1, 0, 101, "abc", float("nan"), float("inf"), 2.5, [1], {"a": 1}, True])
def test_bad_max_results_are_refused(server, served, value):
    client = sagemaker()
    for call in (client.list_models, client.list_training_jobs, client.list_endpoint_configs, client.list_endpoints):
        with pytest.raises(ClientError) as failure:
            call(MaxResults=value)
        assert _error(failure)[:2] == ("ValidationException", 400)
    assert len(client.list_models(MaxResults=1)["Models"]) == 1


def test_bad_tags_create_nothing(server, served):
    client = sagemaker()
    uri = served[2]
    for tags in (
        [{"Key": "k\x00", "Value": "v"}],
        [{"Key": "", "Value": "v"}],
        [{"Key": "k", "Value": "v" * 257}],
        [{"Key": "k"}, "not a tag"],
        [{"Key": f"k{n}", "Value": "v"} for n in range(51)],
        {"Key": "k", "Value": "v"},
    ):
        name = f"tagged-{time.time_ns()}"
        request = {"ModelName": name, "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": uri}, "Tags": tags}
        status, answer = _call(server, "CreateModel", json.dumps(request).encode())
        assert (status, json.loads(answer)["__type"]) == (400, "ValidationException"), answer
        with pytest.raises(ClientError, match="Could not find model"):
            client.describe_model(ModelName=name)
    model_arn = client.describe_model(ModelName=served[0])["ModelArn"]
    with pytest.raises(ClientError) as failure:
        client.add_tags(ResourceArn=model_arn, Tags=[{"Key": "a b\x01", "Value": "v"}])
    assert _error(failure)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as failure:
        client.add_tags(ResourceArn=model_arn.replace(served[0], "no-such-model"), Tags=[{"Key": "k", "Value": "v"}])
    assert _error(failure)[:2] == ("ValidationException", 400)


def test_bad_endpoint_configs_leave_the_endpoint_as_it_was(server, served):
    client = sagemaker()
    model = served[0]
    name = f"cfg-{time.time_ns()}"
    for variants in (
        [],
        [{"VariantName": "v", "ModelName": model, "InitialInstanceCount": "abc"}],
        [{"VariantName": "v", "ModelName": model, "InitialInstanceCount": 0}],
        [{"VariantName": "v", "ModelName": model, "InitialVariantWeight": math.nan}],
        [{"VariantName": "v", "ModelName": "no-such-model"}],
        [{"VariantName": "v"}],
        {"VariantName": "v", "ModelName": model},
        ["abc"],
    ):
        request = {"EndpointConfigName": name, "ProductionVariants": variants}
        status, answer = _call(server, "CreateEndpointConfig", json.dumps(request).encode())
        assert (status, json.loads(answer)["__type"]) == (400, "ValidationException"), answer
    with pytest.raises(ClientError, match="Could not find endpoint configuration"):
        client.describe_endpoint_config(EndpointConfigName=name)

    # An endpoint in service refuses configurations that cannot serve, and stays in service.
    client.create_endpoint(EndpointName=name, EndpointConfigName=served[1])
    gone = f"gone-{time.time_ns()}"
    client.create_model(ModelName=gone, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": served[2]})
    _config(gone, gone)
    client.delete_model(ModelName=gone)
    for config in (gone, "no-such-config"):
        with pytest.raises(ClientError) as failure:
            client.update_endpoint(EndpointName=name, EndpointConfigName=config)
        assert _error(failure)[:2] == ("ValidationException", 400)
        assert client.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
        with pytest.raises(ClientError) as failure:
            client.create_endpoint(EndpointName=f"{name}-new", EndpointConfigName=config)
        assert _error(failure)[:2] == ("ValidationException", 400)
        with pytest.raises(ClientError, match="Could not find endpoint"):
            client.describe_endpoint(EndpointName=f"{name}-new")
    # A model that cannot be loaded: the update fails with a reason, the endpoint goes back in service.
    broken = f"broken-{time.time_ns()}"
    client.create_model(
        ModelName=broken, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": _put("broken/model.tar.gz", b"not a tar")}
    )
    _config(broken, broken)
    client.update_endpoint(EndpointName=name, EndpointConfigName=broken)
    described = client.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == served[1]
    assert "cannot be loaded" in described["FailureReason"] and str(server.data_dir) not in described["FailureReason"]
    # Later updates are allowed.
    second = f"second-{time.time_ns()}"
    client.create_model(ModelName=second, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": served[2]})
    _config(second, second)
    client.update_endpoint(EndpointName=name, EndpointConfigName=second)
    described = client.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == second
    assert not (server.data_dir / "work" / "endpoints").exists() or not any(
        (server.data_dir / "work" / "endpoints").iterdir()
    )
    client.delete_endpoint(EndpointName=name)


def _wrong_values(kind, rng):
    values = {
        "string": [7, 1.5, True, ["x"], {"a": "b"}],
        "integer": ["7", 1.5, float("nan"), float("inf"), -(10**30), [1], {"a": 1}, True],
        "long": ["7", 1.5, [1], {}],
        "float": ["1.0", [1.0], {}, True],
        "double": ["1.0", [1.0], {}, True],
        "boolean": ["true", 1, [True], {}],
        "structure": ["x", 5, [{}], True],
        "list": ["x", 5, {"a": 1}, True],
        "map": ["x", 5, [["a", "b"]], True],
        "timestamp": [[1], {}, True],
        "blob": [5, [1], {}],
    }[kind]
    return rng.choice(values)


def _valid_requests(served):
    model, config, uri = served
    stamp = time.time_ns() % 10**9
    training = _training_request(f"fuzz-{stamp}", uri)
    return {
        "CreateTrainingJob": training,
        "DescribeTrainingJob": {"TrainingJobName": "fuzz"},
        "ListTrainingJobs": {"MaxResults": 5, "NameContains": "x", "SortOrder": "Ascending"},
        "StopTrainingJob": {"TrainingJobName": "fuzz"},
        "CreateModel": {"ModelName": f"fuzz-{stamp}", "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": uri}},
        "DescribeModel": {"ModelName": model},
        "ListModels": {"MaxResults": 5},
        "CreateEndpointConfig": {
            "EndpointConfigName": f"fuzz-{stamp}",
            "ProductionVariants": [{"VariantName": "v", "ModelName": model, "InitialInstanceCount": 1}],
        },
        "DescribeEndpointConfig": {"EndpointConfigName": config},
        "CreateEndpoint": {"EndpointName": f"fuzz-{stamp}", "EndpointConfigName": config},
        "UpdateEndpoint": {"EndpointName": "fuzz", "EndpointConfigName": config},
        "ListEndpoints": {"MaxResults": 5, "StatusEquals": "InService"},
        "CreateTransformJob": _transform_request(f"fuzz-{stamp}", model, uri),
        "ListTransformJobs": {"MaxResults": 5},
        "CreateHyperParameterTuningJob": _tuning_request(f"fuzz-{stamp}", uri, uri),
        "ListTrainingJobsForHyperParameterTuningJob": {"HyperParameterTuningJobName": "fuzz", "MaxResults": 5},
        "StopHyperParameterTuningJob": {"HyperParameterTuningJobName": "fuzz"},
        "AddTags": {
            "ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x",
            "Tags": [{"Key": "k", "Value": "v"}],
        },
        "ListTags": {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x", "MaxResults": 5},
        "DeleteTags": {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x", "TagKeys": ["k"]},
    }


def _members(shapes, shape_name, value, path=()):
    """Every (path, shape type) of the members present in ``value``."""
    shape = shapes[shape_name]
    found = []
    if shape["type"] == "structure" and isinstance(value, dict):
        for member, spec in shape["members"].items():
            if member in value:
                child = shapes[spec["shape"]]
                found.append(((*path, member), child["type"]))
                found.extend(_members(shapes, spec["shape"], value[member], (*path, member)))
    elif shape["type"] == "list" and isinstance(value, list) and value:
        child = shapes[shape["member"]["shape"]]
        found.append(((*path, 0), child["type"]))
        found.extend(_members(shapes, shape["member"]["shape"], value[0], (*path, 0)))
    return found


def _replaced(value, path, new):
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


def test_fuzz_of_wrong_json_types(server, served):
    """Hundreds of requests, each with one member of the wrong JSON type: each gets a 4xx AWS-shaped JSON error."""
    import botocore.loaders

    model = botocore.loaders.create_loader().load_service_model("sagemaker", "service-2")
    shapes, operations = model["shapes"], model["operations"]
    rng = random.Random(21)
    before = _listing(sagemaker())
    sent = 0
    for action, request in _valid_requests(served).items():
        members = _members(shapes, operations[action]["input"]["shape"], request)
        for path, kind in members:
            for _ in range(3):
                wrong = _wrong_values(kind, rng)
                body = json.dumps(_replaced(request, path, wrong)).encode()
                status, answer = _call(server, action, body)
                sent += 1
                error = json.loads(answer)
                assert 400 <= status < 500 and error["__type"] and error["message"], (action, path, wrong, answer[:300])
        for body in (b"[]", b'"x"', b"5", b"null", json.dumps({"MaxResults": math.nan}).encode()):
            status, answer = _call(server, action, body)
            sent += 1
            assert 400 <= status < 500 and json.loads(answer)["__type"], (action, body[:80], answer[:300])
        status, answer = _call(server, action, DEEP)
        assert (status, json.loads(answer)["__type"]) == (400, "SerializationException"), (action, answer[:300])
    assert sent >= 300
    assert _listing(sagemaker()) == before  # nothing created by a rejected request
    assert sagemaker().list_models(MaxResults=1)["Models"]  # and the server keeps serving


# ------------------------------------------------------------ the HTTPS proxy and its certificate authority


def _proxy_address(server):
    host, port = server.environment["HTTPS_PROXY"].removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(server, authority):
    """Send CONNECT ``authority``; return the socket and the proxy's status line."""
    sock = socket.create_connection(_proxy_address(server), timeout=10)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return sock, answer.split(b"\r\n", 1)[0]


def test_proxy_tunnels_to_sts_only(server):
    for authority in [
        "evil.example:443",
        "sts.us-east-1.amazonaws.com:80",
        "s3.us-east-1.amazonaws.com:443",
        "127.0.0.1:22",
    ]:
        sock, status = _connect(server, authority)
        with sock:
            assert status.startswith(b"HTTP/1.1 403"), authority
            assert sock.recv(4096) in (b"", b"this proxy tunnels to STS's addresses (port 443) only\n")
    # A tunnel's requests carry the AWS name as Host, and are served; the same Host sent directly is not.
    name = "sts.eu-west-3.amazonaws.com"
    call = b"Action=GetCallerIdentity&Version=2011-06-15"
    headers = {"Content-Type": "application/x-www-form-urlencoded", **_signature("sts")}
    request = f"POST / HTTP/1.1\r\nHost: {name}\r\nContent-Length: {len(call)}\r\n"
    request += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    context = ssl.create_default_context(cafile=server.environment["AWS_CA_BUNDLE"])
    sock, status = _connect(server, f"{name}:443")
    assert status == b"HTTP/1.1 200 Connection Established"
    with context.wrap_socket(sock, server_hostname=name) as secure:
        secure.sendall(request.encode() + call)
        status, _, body = _read_answer(secure)
    assert status == 200 and b"<Account>123456789012</Account>" in body
    status, headers, body = _request(server, "POST", "/", call, headers, host=name)
    assert (status, _error_code(headers, body)) == (403, "AccessDenied")


def test_proxy_caps_connections_and_closes_idle_ones(server):
    """300 idle connections make at most 64 threads; the others are closed at once, all after the header timeout."""
    pid = server.process.pid
    sts = _client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com")
    assert sts.get_caller_identity()["Account"] == "123456789012"  # through the proxy
    before = _threads(pid)
    idle = [socket.create_connection(_proxy_address(server), timeout=10) for _ in range(300)]
    try:
        time.sleep(1)
        assert _threads(pid) <= before + 64 + 2
        closed = sum(1 for sock in idle if select.select([sock], [], [], 0)[0] and sock.recv(1) == b"")
        assert closed >= 300 - 64
        time.sleep(2 + 1)  # --header-timeout 2
        assert all(select.select([sock], [], [], 0)[0] and sock.recv(1) == b"" for sock in idle)
    finally:
        for sock in idle:
            sock.close()
    assert sts.get_caller_identity()["Account"] == "123456789012"
    assert _threads(pid) <= before + 4


def test_proxy_keeps_at_most_64_certificates(tmp_path):
    from rcforest.aws.proxy import MAX_CERTIFICATES, TunnelProxy

    proxy = TunnelProxy(("127.0.0.1", 9), str(tmp_path)).start()
    try:
        context = ssl.create_default_context(cafile=proxy.ca_file)
        for region in range(MAX_CERTIFICATES + 16):
            name = f"sts.xx-test-{region}.amazonaws.com"
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            sock.sendall(f"CONNECT {name}:443 HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            with context.wrap_socket(sock, server_hostname=name):
                pass
        assert proxy.certificates == MAX_CERTIFICATES
    finally:
        proxy.stop()


def _loads(directory):
    from cryptography import x509

    with open(directory / "ca.pem", "rb") as file:
        return x509.load_pem_x509_certificate(file.read())


@pytest.mark.parametrize("damage", ["truncated certificate", "garbage key", "empty key", "another authority's key"])
def test_a_damaged_authority_is_made_again(tmp_path, damage):
    from rcforest.aws.proxy import certificate_authority

    first, _ = certificate_authority(str(tmp_path))
    certificate, key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    os.link(key, tmp_path / "old-key.pem")
    if damage == "truncated certificate":
        text = certificate.read_bytes()
        certificate.write_bytes(text[: len(text) // 2])
    elif damage == "garbage key":
        key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
    elif damage == "empty key":
        key.write_bytes(b"")
    else:
        certificate_authority(str(tmp_path / "other"))
        key.write_bytes((tmp_path / "other" / "ca-key.pem").read_bytes())
    again, _ = certificate_authority(str(tmp_path))
    assert again.serial_number != first.serial_number and _loads(tmp_path).serial_number == again.serial_number
    assert os.stat(key).st_mode & 0o777 == 0o600
    # The files were replaced by renaming, not rewritten in place; no temporary file is left.
    assert (tmp_path / "old-key.pem").read_bytes() != key.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["ca-key.pem", "ca.pem", "old-key.pem"]
    assert certificate_authority(str(tmp_path))[0].serial_number == again.serial_number  # kept from now on


def test_an_authority_that_cannot_be_written_is_named(tmp_path):
    from rcforest.aws.proxy import certificate_authority

    (tmp_path / "ca.pem").mkdir()
    (tmp_path / "ca-key.pem").write_bytes(b"x")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "ca.pem"))):
        certificate_authority(str(tmp_path))


def test_server_starts_on_a_truncated_ca(tmp_path, aws_env):
    """A ca.pem cut short (a crash while it was written by an older version) no longer stops the server for good."""
    from rcforest.aws.proxy import certificate_authority

    certificate_authority(str(tmp_path))
    text = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "ca.pem").write_bytes(text[:100])
    running = Server(tmp_path)
    try:
        assert _loads(tmp_path).public_key()
        assert os.stat(tmp_path / "ca-key.pem").st_mode & 0o777 == 0o600
        with exported(running):
            sts = _client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com")
            assert sts.get_caller_identity()["Account"] == "123456789012"  # through the proxy, with the new authority
    finally:
        running.stop()
    assert "ca.pem" in "".join(running.output)


# ------------------------------------------------------------ low items: failure reasons, local disk


def test_failure_reasons_show_no_server_path(server):
    client = sagemaker()
    name = f"reason-{time.time_ns()}"
    client.create_training_job(**_training_request(name, _put(f"bad/{name}/x.csv", b"1\nnot a number\n")))
    description = _wait(name)
    assert description["TrainingJobStatus"] == "Failed"
    assert "CSV line 2" in description["FailureReason"]
    assert str(server.data_dir) not in description["FailureReason"] and "/tmp" not in description["FailureReason"]
    # A model object that is no model: the endpoint and the transform job fail with reasons naming no local path.
    garbage = _put(f"garbage/{name}/model.rcf", b"garbage" * 10)
    client.create_model(ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": garbage})
    _config(name, name)
    client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = client.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "Failed" and "is not an rcforest model file" in endpoint["FailureReason"]
    client.create_transform_job(**_transform_request(name, name, garbage))
    deadline = time.monotonic() + 60
    while (transform := client.describe_transform_job(TransformJobName=name))["TransformJobStatus"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert transform["TransformJobStatus"] == "Failed" and "is not an rcforest model file" in transform["FailureReason"]
    for reason in (endpoint["FailureReason"], transform["FailureReason"]):
        assert str(server.data_dir) not in reason and "/tmp" not in reason, reason
    client.delete_endpoint(EndpointName=name)


def test_local_write_failures_are_not_s3_failures(tmp_path, aws_env):
    """A server that cannot write a file (here: a 1 MB file-size limit, EFBIG) says so, not "cannot read s3://"."""
    running = Server(tmp_path / "small-disk", file_size_limit=1024 * 1024)
    try:
        with exported(running):
            client = sagemaker()
            name = f"disk-{time.time_ns()}"
            uri = _put(f"big/{name}/train.csv", _series_csv(rows=150_000))
            client.create_training_job(**_training_request(name, uri))
            description = _wait(name)
            assert description["TrainingJobStatus"] == "Failed"
            reason = description["FailureReason"]
            assert "cannot write channel train on the server's disk" in reason and "cannot read s3://" not in reason
            assert str(tmp_path) not in reason
    finally:
        running.stop()
