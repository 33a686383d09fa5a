"""``rcforest aws``: one local server that boto3 and the SageMaker SDK reach through ``AWS_ENDPOINT_URL``.

One port answers:

- the SageMaker API (``X-Amz-Target: SageMaker.<Action>``), served by
  :class:`rcforest.aws.sagemaker_api.SageMakerApi` for the Random Cut Forest image;
- ``sagemaker-runtime`` InvokeEndpoint (``POST /endpoints/<name>/invocations``),
  answered by the endpoint's scoring application
  (:func:`rcforest.sagemaker.server.create_app`);
- everything else (S3, STS, IAM, CloudWatch Logs and metrics) by moto's
  server mode, mounted as a WSGI application.

A second port is an HTTPS proxy (:mod:`rcforest.aws.proxy`) for the calls
the SageMaker SDK sends to a fixed ``https://sts.<region>.amazonaws.com``.
At start the server makes an IAM role for SageMaker and assumes it: the
printed credentials make ``sagemaker.get_execution_role()`` return the role.
"""

import functools
import json
import os
import re
import time
import types

__all__ = ["DEFAULT_PORT", "ROLE_NAME", "AwsServer", "create_app", "serve"]

DEFAULT_PORT = 4566
ROLE_NAME = "AmazonSageMaker-ExecutionRole-rcforest"
ACCOUNT = "123456789012"  # moto's default account
_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def create_app(api, fallback, region):
    """Build the ASGI application routing SageMaker, the runtime and the other services.

    Parameters
    ----------
    api : rcforest.aws.sagemaker_api.SageMakerApi
    fallback : ASGI application
        Answers every other request (moto).
    region : str
        The region of requests that carry none.

    Returns
    -------
    ASGI application
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from rcforest.aws.sagemaker_api import ApiError

    def error(status, code, message, runtime=False):
        body = {"error": code, "message": message} if runtime else {"__type": code, "message": message}
        return JSONResponse(
            body,
            status_code=status,
            headers={"x-amzn-ErrorType": code},
            media_type=None if runtime else "application/x-amz-json-1.1",
        )

    async def sagemaker(scope, receive, send, target):
        request = Request(scope, receive)
        action = target.split(".", 1)[1]
        match = _SCOPE.search(request.headers.get("authorization", ""))
        try:
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise ApiError("SerializationException", "the request body is not valid JSON") from None
            answer = await run_in_threadpool(api.handle, action, body, match.group(1) if match else region)
            response = Response(json.dumps(answer), media_type="application/x-amz-json-1.1")
        except ApiError as failure:
            response = error(failure.status, failure.code, str(failure))
        await response(scope, receive, send)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await fallback(scope, receive, send)
        headers = dict(scope["headers"])
        target = headers.get(b"x-amz-target", b"").decode("latin-1")
        if target.startswith("SageMaker."):
            return await sagemaker(scope, receive, send, target)
        match = _INVOCATIONS.match(scope["path"])
        if match and scope["method"] == "POST":
            endpoint = api.endpoint_app(match.group(1))
            if endpoint is None:
                message = f"Endpoint {match.group(1)} of account {api.account} not found."
                response = error(400, "ValidationError", message, runtime=True)
                return await response(scope, receive, send)
            return await endpoint(scope, receive, send)
        return await fallback(scope, receive, send)

    return app


class AwsServer:
    """The ``rcforest aws`` server, run on uvicorn in a daemon thread.

    Parameters
    ----------
    host : str, default "127.0.0.1"
    port : int, default 4566
        0 picks a free port.
    proxy_port : int, optional
        The HTTPS proxy's port; ``port + 1`` by default (a free port when ``port`` is 0).
    data_dir : str, optional
        Jobs' folders and the proxy's certificate authority; a folder in the
        user's cache by default.
    region : str, default "us-east-1"
    s3_endpoint : str, optional
        An S3-compatible store to use instead of the embedded one: jobs and
        endpoints reach it with the credentials of this process's
        environment, and :meth:`environment` sends clients there with
        ``AWS_ENDPOINT_URL_S3``.
    job_wait : float, default 20
        Seconds a Create call for a job waits for the job to finish.
    limits : rcforest.sagemaker.connections.ServerLimits, optional
        Timeouts, connection cap and request bounds of the port and of
        every endpoint; the defaults when None.

    Attributes
    ----------
    url : str
        The AWS endpoint, for ``AWS_ENDPOINT_URL``.
    credentials : dict
        Keys of the assumed SageMaker execution role.
    """

    def __init__(
        self,
        host="127.0.0.1",
        port=DEFAULT_PORT,
        proxy_port=None,
        data_dir=None,
        region="us-east-1",
        s3_endpoint=None,
        job_wait=20.0,
        limits=None,
    ):
        self.host = host
        self.port = port
        self.proxy_port = proxy_port
        self.data_dir = os.path.abspath(data_dir or os.path.join(os.path.expanduser("~"), ".cache", "rcforest", "aws"))
        self.region = region
        self.s3_endpoint = s3_endpoint
        self.job_wait = job_wait
        self.limits = limits
        self.url = None
        self.credentials = None
        self.api = None
        self._http = None
        self._proxy = None

    def environment(self):
        """Return the environment variables that send boto3 and the SageMaker SDK here.

        Returns
        -------
        dict of str to str
        """
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": self.credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": self.credentials["SessionToken"],
            "HTTPS_PROXY": self._proxy.url,
            "AWS_CA_BUNDLE": self._proxy.ca_file,
            "NO_PROXY": "127.0.0.1,localhost",
            **({"AWS_ENDPOINT_URL_S3": self.s3_endpoint} if self.s3_endpoint else {}),
        }

    def _client(self, service, endpoint=None):
        """A boto3 client of the local services, or of ``endpoint`` with this process's own credentials."""
        import boto3
        from botocore.config import Config

        keys = {} if endpoint else {"aws_access_key_id": "rcforest", "aws_secret_access_key": "rcforest"}
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint or self.url,
            region_name=self.region,
            config=Config(retries={"max_attempts": 2}, proxies={}),
            **keys,
        )

    def start(self, timeout=60.0):
        """Bind, start serving, make the execution role and wait until ready; return ``self``."""
        try:
            from a2wsgi import WSGIMiddleware
            from moto.server import DomainDispatcherApplication, create_backend_app
        except ImportError as error:
            raise ValueError(f"rcforest aws needs the aws extra: pip install 'rcforest[aws]' ({error})") from None

        from rcforest.aws.proxy import TunnelProxy
        from rcforest.aws.sagemaker_api import SageMakerApi
        from rcforest.sagemaker.server import SCORING_LOCK, BackgroundServer, listen
        from rcforest.sagemaker.server import create_app as scoring_app

        sock = listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        proxy_port = self.proxy_port if self.proxy_port is not None else (self.port + 1 if self.port else 0)
        proxy_sock = listen(self.host, proxy_port)
        proxy_sock.listen(128)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        os.makedirs(self.data_dir, exist_ok=True)
        clients = types.SimpleNamespace(
            s3=self._client("s3", self.s3_endpoint), logs=self._client("logs"), cloudwatch=self._client("cloudwatch")
        )
        endpoint_app = functools.partial(scoring_app, limits=self.limits)
        self.api = SageMakerApi(
            clients, os.path.join(self.data_dir, "work"), ACCOUNT, SCORING_LOCK, endpoint_app, self.job_wait
        )
        moto = WSGIMiddleware(DomainDispatcherApplication(create_backend_app), workers=8)
        app = create_app(self.api, moto, self.region)
        self._http = BackgroundServer(None, self.host, self.port, app=app, limits=self.limits)
        try:
            self._http.start(timeout, sock=sock)
        except RuntimeError:
            proxy_sock.close()
            raise
        self._proxy = TunnelProxy((self.host, self.port), self.data_dir, self.host).start(proxy_sock)
        self.credentials = self._execution_role()
        return self

    def _execution_role(self):
        """Make the SageMaker execution role (once) and return credentials of a session in it."""
        iam = self._client("iam")
        try:
            role = iam.get_role(RoleName=ROLE_NAME)["Role"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(
                RoleName=ROLE_NAME,
                AssumeRolePolicyDocument=json.dumps(_TRUST),
                Description="The execution role of SageMaker jobs and endpoints on rcforest aws",
            )["Role"]
        sts = self._client("sts")
        return sts.assume_role(RoleArn=role["Arn"], RoleSessionName="rcforest", DurationSeconds=43200)["Credentials"]

    @property
    def running(self):
        """bool: whether the server thread is serving."""
        return self._http is not None and self._http.running

    def stop(self, timeout=10.0):
        """Stop serving and wait for the thread to end."""
        if self._proxy is not None:
            self._proxy.stop()
        if self._http is not None:
            self._http.stop(timeout)
        if self.api is not None:
            self.api.close()


def serve(
    host="127.0.0.1",
    port=DEFAULT_PORT,
    proxy_port=None,
    data_dir=None,
    region="us-east-1",
    s3_endpoint=None,
    limits=None,
):
    """Start the server, print the environment to export and serve until interrupted: ``rcforest aws``.

    Parameters
    ----------
    host, port, proxy_port, data_dir, region, s3_endpoint, limits
        As for :class:`AwsServer`.
    """
    server = AwsServer(
        host=host,
        port=port,
        proxy_port=proxy_port,
        data_dir=data_dir,
        region=region,
        s3_endpoint=s3_endpoint,
        limits=limits,
    ).start()
    print(f"rcforest aws on {server.url} (SageMaker for Random Cut Forest; S3, STS, IAM, CloudWatch by moto)")
    print("Send boto3 and the SageMaker SDK here with:")
    for name, value in server.environment().items():
        print(f"export {name}={value}")
    print("ready", flush=True)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
