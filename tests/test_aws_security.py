"""``rcforest aws`` as a security boundary: hostile requests against a real server on loopback.

The server runs as ``python -m rcforest aws`` in a child process, as in
``tests/test_aws_server.py``; requests are sent with real boto3 clients and,
for what boto3 never sends (a foreign ``Host`` or ``Origin``, a 300 MB
announced body, broken JSON), with raw HTTP.
"""

import http.client
import json
import os
import re
import select
import socket
import ssl
import time
import xml.etree.ElementTree as ElementTree

import pytest

pytest.importorskip("moto.server")
pytest.importorskip("a2wsgi")
pytest.importorskip("cryptography")
boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.test_aws_server import _CLEARED, Server  # noqa: E402

pytestmark = pytest.mark.timeout(300)

GRANTED = "http://app.example:3000"
FOREIGN = "http://evil.example"
MAX_BODY_MB = 8
SAGEMAKER = {"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"}


def _client(service, **options):
    """A boto3 client of a fresh session: boto3's default session keeps the first credentials it reads."""
    return boto3.session.Session().client(service, **options)


def _signature(service):
    """An Authorization header naming ``service`` in its scope (the server checks no signature)."""
    scope = f"AKIDEXAMPLE/20260101/us-east-1/{service}/aws4_request"
    return {"Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_env):
    """``rcforest aws`` with one granted origin, one extra host name and an 8 MiB bound on S3 bodies."""
    options = ["--header-timeout", "2", "--body-timeout", "10", "--max-body-mb", str(MAX_BODY_MB)]
    options += ["--cors-origin", GRANTED, "--allow-host", "aws.internal"]
    running = Server(tmp_path_factory.mktemp("aws-security"), *options)
    with pytest.MonkeyPatch.context() as patch:
        for name in _CLEARED:
            patch.delenv(name, raising=False)
        for name, value in running.environment.items():
            patch.setenv(name, value)
        yield running
    running.stop()


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


def _threads(pid):
    with open(f"/proc/{pid}/status") as file:
        return int(next(line.split()[1] for line in file if line.startswith("Threads:")))


def _peak_memory_kb(pid):
    with open(f"/proc/{pid}/status") as file:
        return int(next(line.split()[1] for line in file if line.startswith("VmHWM:")))


@pytest.fixture(scope="module")
def bucket(server):
    """A bucket holding one object, with a CORS rule granting every origin (which must not reach browsers)."""
    s3 = _client("s3")
    s3.create_bucket(Bucket="rcforest-victim")
    s3.put_object(Bucket="rcforest-victim", Key="secret.csv", Body=b"1,2,3\n")
    rule = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT", "POST", "DELETE"], "AllowedHeaders": ["*"]}
    s3.put_bucket_cors(Bucket="rcforest-victim", CORSConfiguration={"CORSRules": [rule]})
    return "rcforest-victim"


# ------------------------------------------------------------ browsers


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


# ------------------------------------------------------------ errors


HOSTILE = [
    ("a target not SageMaker's", b"{}", {"X-Amz-Target": "Foo.Bar", **_signature("sagemaker")}, 400),
    ("a SageMaker target's prefix", b"{}", {"X-Amz-Target": "SageMakerX.ListModels", **_signature("sagemaker")}, 400),
    ("malformed JSON", b'{"a": ', SAGEMAKER, 400),
    ("invalid UTF-8", b'{"a": "\xff"}', SAGEMAKER, 400),
    ("lists nested 10^5 deep", b"[" * 100_000 + b"]" * 100_000, SAGEMAKER, 400),
    ("objects nested 10^5 deep", b'{"a":' * 100_000 + b"1" + b"}" * 100_000, SAGEMAKER, 400),
    ("a JSON list", b"[]", SAGEMAKER, 400),
    ("a JSON string", b'"x"', SAGEMAKER, 400),
    ("JSON null", b"null", SAGEMAKER, 400),
    ("an unknown action", b"{}", {**SAGEMAKER, "X-Amz-Target": "SageMaker.NoSuchAction"}, 400),
    ("an empty action", b"{}", {**SAGEMAKER, "X-Amz-Target": "SageMaker."}, 400),
    ("a NaN MaxResults", b'{"MaxResults": NaN}', SAGEMAKER, None),
    ("a 1e400 MaxResults", b'{"MaxResults": 1e400}', SAGEMAKER, None),
    ("a string MaxResults", b'{"MaxResults": "x"}', SAGEMAKER, None),
]


@pytest.mark.parametrize(("case", "body", "headers", "status"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_sagemaker_errors_are_aws_json(server, case, body, headers, status):
    answer_status, answer_headers, answer = _request(server, "POST", "/", body, headers)
    assert answer_headers["content-type"] == "application/x-amz-json-1.1"
    code = _error_code(answer_headers, answer)
    assert answer_status == status if status else answer_status in (400, 500), (answer_status, code)
    assert answer_status < 500 or code == "InternalFailure"
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


# ------------------------------------------------------------ the HTTPS proxy


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


# ------------------------------------------------------------ the certificate authority


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


def test_server_starts_on_a_truncated_ca(tmp_path, aws_env, monkeypatch):
    """A ca.pem cut short (a crash while it was written by an older version) no longer stops the server for good."""
    from rcforest.aws.proxy import certificate_authority

    certificate_authority(str(tmp_path))
    text = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "ca.pem").write_bytes(text[:100])
    running = Server(tmp_path)
    try:
        assert _loads(tmp_path).public_key()
        assert os.stat(tmp_path / "ca-key.pem").st_mode & 0o777 == 0o600
        for name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
        for name, value in running.environment.items():
            monkeypatch.setenv(name, value)
        sts = _client("sts", endpoint_url="https://sts.us-east-1.amazonaws.com")
        assert sts.get_caller_identity()["Account"] == "123456789012"  # through the proxy, with the new authority
    finally:
        running.stop()
    assert "ca.pem" in "".join(running.output)
