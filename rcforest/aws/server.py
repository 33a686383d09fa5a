"""``rcforest aws``: one local server that boto3 and the SageMaker SDK reach through ``AWS_ENDPOINT_URL``.

One port answers:

- the SageMaker API (``X-Amz-Target: SageMaker.<Action>``), served by
  :class:`rcforest.aws.sagemaker_api.SageMakerApi` for the Random Cut Forest image;
- ``sagemaker-runtime`` InvokeEndpoint (``POST /endpoints/<name>/invocations``),
  answered by the endpoint's scoring application
  (:func:`rcforest.sagemaker.server.create_app`), whose errors reach the
  caller as the runtime's ``ModelError`` (:mod:`rcforest.aws.runtime`);
- IAM ``SimulatePrincipalPolicy`` (:mod:`rcforest.aws.simulation`) and, with
  ``--any-keys-are-role``, STS ``GetCallerIdentity``;
- everything else (S3, STS, IAM, CloudWatch Logs and metrics, the services
  supported; and every other service moto implements, unsupported) by
  moto's server mode, mounted as a WSGI application, with AWS's managed IAM
  policies loaded. moto's own API (``/moto-api/``: reset, dump, seed and
  record the server's state, replay requests to another host) is not
  served: it would let any caller undo or read every other caller's work.

A second port is an HTTPS proxy (:mod:`rcforest.aws.proxy`) for the calls
the SageMaker SDK sends to a fixed ``https://sts.<region>.amazonaws.com``.
At start the server makes an IAM role for SageMaker (with
``AmazonSageMakerFullAccess`` attached) and assumes it: the printed
credentials make ``sagemaker.get_execution_role()`` return the role. It
keeps them in ``<data_dir>/environment.json`` while it runs, for
``rcforest aws env`` (:func:`read_environment`).

Before any of them, a request passes :mod:`rcforest.aws.guard`: a ``Host``
that is not loopback's or the bound address, an ``Origin`` that is not the
server's own, and bodies over their bound are refused; every error is
shaped as the request's AWS protocol expects it.
"""

import functools
import json
import logging
import os
import re
import signal
import threading
import time
import types
import urllib.parse
import uuid
from xml.sax.saxutils import escape

from rcforest.aws.environment import (
    ENVIRONMENT_FILE,
    default_data_dir,
    read_environment,
    remove_environment,
    write_environment,
)

__all__ = [
    "DEFAULT_MAX_BODY_MB",
    "DEFAULT_PORT",
    "ENVIRONMENT_FILE",
    "ROLE_NAME",
    "SAGEMAKER_MAX_BODY_BYTES",
    "AwsServer",
    "create_app",
    "read_environment",
    "serve",
]

DEFAULT_PORT = 4566
ROLE_NAME = "AmazonSageMaker-ExecutionRole-rcforest"
ACCOUNT = "123456789012"  # moto's default account
SAGEMAKER_POLICY = "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
# The SageMaker API's requests are small (a CreateTrainingJob is a few kB).
SAGEMAKER_MAX_BODY_BYTES = 5 * 1024 * 1024
# Bound of other services' request bodies, in MiB: an S3 PUT holds its body in memory once.
DEFAULT_MAX_BODY_MB = 512
_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
# moto's own API, however the path is spelt (moto's router merges repeated slashes).
_MOTO_API = re.compile(r"^/+moto-api(/|$)")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/")
logger = logging.getLogger("uvicorn.error")
_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def create_app(
    api, fallback, region, policy=None, max_body_bytes=DEFAULT_MAX_BODY_MB << 20, identity=None, simulator=None
):
    """Build the ASGI application routing SageMaker, the runtime and the other services.

    Every request first passes :meth:`rcforest.aws.guard.AccessPolicy.check`
    (its ``Host`` and ``Origin``); then bodies are bounded while they are read:
    :data:`SAGEMAKER_MAX_BODY_BYTES` for the SageMaker API, SageMaker's 6 MB
    for InvokeEndpoint (by the endpoint's application), ``max_body_bytes`` for
    the other services. Every error is AWS-shaped: an exception of the
    SageMaker API is a 500 ``InternalFailure``, an action moto does not
    implement a 501 ``NotImplemented``.

    Parameters
    ----------
    api : rcforest.aws.sagemaker_api.SageMakerApi
    fallback : ASGI application
        Answers every other request (moto).
    region : str
        The region of requests that carry none.
    policy : rcforest.aws.guard.AccessPolicy, optional
        Loopback hosts and no origin when None.
    max_body_bytes : int, default 512 MiB
        Bound of a request body to the other services (an S3 PUT).
    identity : callable, optional
        ``identity()`` returns the ``(Arn, UserId, Account)`` that STS
        GetCallerIdentity answers for any keys (``--any-keys-are-role``), or
        None to let moto answer; moto answers every call when None.
    simulator : rcforest.aws.simulation.PolicySimulator, optional
        Answers IAM SimulatePrincipalPolicy, which moto does not implement.

    Returns
    -------
    ASGI application
    """
    from botocore.model import OperationNotFoundError
    from starlette.concurrency import run_in_threadpool

    from rcforest.aws.guard import (
        DRAIN_BYTES,
        AccessPolicy,
        BodyTooLarge,
        Exchange,
        announced_size,
        bounded_receive,
        clip,
        drain,
        preflight,
        protocol_of,
        read_body,
    )
    from rcforest.aws.runtime import ModelErrors
    from rcforest.aws.sagemaker_api import ApiError

    policy = policy or AccessPolicy()

    async def sagemaker(receive, exchange, action, region):
        try:
            raw = await read_body(receive)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise ApiError("SerializationException", "the request body is not valid JSON") from None
            except RecursionError:
                raise ApiError("SerializationException", "the request body's JSON is nested too deeply") from None
            answer = await run_in_threadpool(api.handle, action, body, region)
            content = json.dumps(answer).encode()
        except ApiError as failure:
            return await exchange.error(failure.status, failure.code, str(failure))
        headers = [(b"content-type", b"application/x-amz-json-1.1"), (b"content-length", str(len(content)).encode())]
        await exchange.send({"type": "http.response.start", "status": 200, "headers": headers})
        await exchange.send({"type": "http.response.body", "body": content})

    async def invocations(scope, receive, exchange, name, where):
        endpoint = api.endpoint_app(name)
        if endpoint is None:
            message = f"Endpoint {clip(name)} of account {api.account} not found."
            return await exchange.error(400, "ValidationError", message)
        # The container's 4xx and 5xx reach the caller as the runtime's ModelError.
        return await endpoint(scope, receive, ModelErrors(exchange.send, name, where, api.account).send)

    async def answered_here(scope, receive, exchange, service):
        """STS GetCallerIdentity (with ``identity``) and IAM SimulatePrincipalPolicy; other actions go to moto."""
        raw = await read_body(receive)
        query = scope["query_string"].decode("latin-1")
        fields = urllib.parse.parse_qs(raw.decode("latin-1")) | urllib.parse.parse_qs(query)
        action = (fields.get("Action") or [""])[0]
        answer = identity() if service == "sts" and action == "GetCallerIdentity" and identity else None
        if service == "iam" and action == "SimulatePrincipalPolicy" and simulator is not None:
            try:
                content = await run_in_threadpool(simulator.answer, fields)
            except ApiError as failure:
                return await exchange.error(failure.status, failure.code, str(failure))
            return await xml_answer(exchange, content)
        if answer is None:
            delivered = False

            async def replay():
                nonlocal delivered
                if delivered:
                    return await receive()
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}

            return await fallback(scope, replay, exchange.send)
        arn, user_id, account = (escape(value) for value in answer)
        content = (
            '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
            f"<Arn>{arn}</Arn><UserId>{user_id}</UserId><Account>{account}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ).encode()
        await xml_answer(exchange, content)

    async def xml_answer(exchange, content):
        headers = [(b"content-type", b"text/xml"), (b"content-length", str(len(content)).encode())]
        await exchange.send({"type": "http.response.start", "status": 200, "headers": headers})
        await exchange.send({"type": "http.response.body", "body": content})

    def route(scope, headers):
        """The answering coroutine's maker and its body bound."""
        target = headers.get("x-amz-target", "")
        signed = _SCOPE.search(headers.get("authorization", ""))
        where = signed.group(1) if signed else region
        if target.startswith("SageMaker."):
            action = target.split(".", 1)[1]
            return (lambda receive, exchange: sagemaker(receive, exchange, action, where)), SAGEMAKER_MAX_BODY_BYTES
        if _MOTO_API.match(scope["path"]):
            message = "rcforest aws does not serve moto's own API (/moto-api/)"
            return (lambda receive, exchange: refuse(receive, exchange, 403, "AccessDenied", message)), None
        match = _INVOCATIONS.match(scope["path"])
        if match and scope["method"] == "POST":
            return (lambda receive, exchange: invocations(scope, receive, exchange, match.group(1), where)), None
        service = signed.group(2) if signed else None
        if (service == "sts" and identity is not None) or (service == "iam" and simulator is not None):
            answer = lambda receive, exchange: answered_here(scope, receive, exchange, service)  # noqa: E731
            return answer, SAGEMAKER_MAX_BODY_BYTES
        if signed and signed.group(2) == "sagemaker":
            what = f"X-Amz-Target {target}" if target else f"{scope['method']} {scope['path']}"
            message = f"rcforest aws does not serve {clip(what)}: SageMaker's actions are SageMaker.<Action> targets"
            return (lambda receive, exchange: exchange.error(400, "UnknownOperationException", message)), None
        if "content-length" not in headers and "transfer-encoding" in headers:
            # moto reads no body without a Content-Length (S3 would store an empty object): S3's answer.
            message = "You must provide the Content-Length HTTP header."
            return (lambda receive, exchange: refuse(receive, exchange, 411, "MissingContentLength", message)), None
        return (lambda receive, exchange: fallback(scope, receive, exchange.send)), max_body_bytes

    async def refuse(receive, exchange, status, code, message, rest=DRAIN_BYTES, waiting=False):
        """Answer an error while the body is not read (``rest`` bytes of it at most, 0 when read).

        A body of at most DRAIN_BYTES is read and discarded first, so that the
        client reads the answer; otherwise the connection is closed after it.
        """
        read = rest == 0 or (not waiting and rest <= DRAIN_BYTES and await drain(receive, DRAIN_BYTES))
        await exchange.error(status, code, message, close=not read)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await fallback(scope, receive, send)
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        exchange = Exchange(send, protocol_of(headers, scope["path"]))
        refusal, exchange.grant = policy.check(scope, headers)
        if refusal is not None:
            status, code, message = refusal
            code = f"{code}Exception" if exchange.protocol in ("json", "cbor") else code
            return await exchange.error(status, code, message, close=True)
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 200, "headers": preflight(exchange.grant, headers)})
            return await send({"type": "http.response.body", "body": b""})
        answer, limit = route(scope, headers)
        failures = []
        size = announced_size(headers)
        try:
            if limit is not None and size is not None and size > limit:
                raise BodyTooLarge(limit)
            await answer(bounded_receive(receive, limit, failures), exchange)
        except BodyTooLarge as failure:
            if not exchange.started:
                status, code = (400, "EntityTooLarge") if exchange.protocol == "xml" else (413, "RequestEntityTooLarge")
                message = f"the request body is over {failure.limit} bytes, the limit of this service here"
                # A client waiting for "100 Continue" reads the answer without sending its body.
                waiting = headers.get("expect", "").lower() == "100-continue" and size is not None
                rest = 0 if failure.ended else DRAIN_BYTES if size is None else size
                await refuse(receive, exchange, status, code, message, rest, waiting)
        except Exception as failure:
            if any(failure is raised for raised in failures):
                raise  # the body's timeout or the client's disconnect, for RequestGuard
            if isinstance(failure, OperationNotFoundError):
                status, message = 400, f"{clip(failure, 300)} is not an action of this service"
                code = "UnknownOperationException" if exchange.protocol in ("json", "cbor") else "InvalidAction"
            elif isinstance(failure, NotImplementedError):
                logger.warning("not implemented: %s %s: %s", scope["method"], clip(scope["path"]), clip(failure, 300))
                status, code, message = 501, "NotImplemented", f"moto does not implement this request: {failure}"
            else:
                logger.exception("error answering %s %s", scope["method"], clip(scope["path"]))
                status, code, message = 500, "InternalFailure", "the server failed to answer this request"
            if not exchange.started:
                await exchange.error(status, code, message)

    return app


class AwsServer:
    """The ``rcforest aws`` server, run on uvicorn in a daemon thread.

    Parameters
    ----------
    host : str, default "127.0.0.1"
    port : int, default 4566
        0 picks a free port.
    proxy_port : int, optional
        The HTTPS proxy's port; ``port + 1`` by default, a free port when
        ``port`` is 0 (0 picks a free port too).
    data_dir : str, optional
        Jobs' folders and the proxy's certificate authority; a folder in the
        user's cache by default.
    region : str, default "us-east-1"
    s3_endpoint : str, optional
        An S3-compatible store to use instead of the embedded one: jobs and
        endpoints reach it with the credentials of this process's
        environment, and :meth:`environment` sends clients there with
        ``AWS_ENDPOINT_URL_S3``.
    limits : rcforest.sagemaker.connections.ServerLimits, optional
        Timeouts, connection cap and request bounds of the port and of
        every endpoint; the defaults when None.
    allowed_hosts : iterable of str, default ()
        Names accepted in requests' ``Host`` besides the loopback names and
        the bound address (see :mod:`rcforest.aws.guard`).
    cors_origins : iterable of str, default ()
        Origins (``scheme://host[:port]``) granted CORS access; none by default.
    max_body_mb : int, default 512
        Bound, in MiB, of a request body to S3 and moto's other services.
    any_keys_are_role : bool, default False
        Whether STS GetCallerIdentity answers the execution role's session
        for any access keys (the user's own among them), so that
        ``sagemaker.get_execution_role()`` returns the role as it does in a
        SageMaker notebook; by default, only the printed keys are the role's.

    Attributes
    ----------
    url : str
        The AWS endpoint, for ``AWS_ENDPOINT_URL``.
    credentials : dict
        Keys of the assumed SageMaker execution role.
    role_arn : str
        The execution role's ARN.
    """

    def __init__(
        self,
        host="127.0.0.1",
        port=DEFAULT_PORT,
        proxy_port=None,
        data_dir=None,
        region="us-east-1",
        s3_endpoint=None,
        limits=None,
        allowed_hosts=(),
        cors_origins=(),
        max_body_mb=DEFAULT_MAX_BODY_MB,
        any_keys_are_role=False,
    ):
        from rcforest.aws.guard import AccessPolicy

        if isinstance(max_body_mb, bool) or not isinstance(max_body_mb, int) or max_body_mb < 1:
            raise ValueError(f"max_body_mb must be a positive whole number of MiB, got {max_body_mb!r}")
        bound = () if host in ("0.0.0.0", "::", "") else (host,)
        self.policy = AccessPolicy(hosts=frozenset([*bound, *allowed_hosts]), origins=frozenset(cors_origins))
        self.max_body_mb = max_body_mb
        self.host = host
        self.port = port
        self.proxy_port = proxy_port
        self.data_dir = os.path.abspath(data_dir or default_data_dir())
        self.region = region
        self.s3_endpoint = s3_endpoint
        self.limits = limits
        self.any_keys_are_role = bool(any_keys_are_role)
        self._identity = None
        self.url = None
        self.role_arn = None
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

        # AWS's managed policies (AmazonSageMakerFullAccess, ...) exist in IAM, as on AWS: about 1,500 of them, read
        # into each of the account's 6 partitions when its IAM is first used (at start): 1.5-2 s and 30 MiB more.
        # MOTO_IAM_LOAD_MANAGED_POLICIES=false leaves them out.
        os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        from rcforest.aws.proxy import TunnelProxy
        from rcforest.aws.sagemaker_api import SageMakerApi
        from rcforest.aws.simulation import PolicySimulator
        from rcforest.sagemaker.server import SCORING_LOCK, BackgroundServer, listen
        from rcforest.sagemaker.server import create_app as scoring_app

        sock = listen(self.host, self.port)
        proxy_port = self.proxy_port if self.proxy_port is not None else (self.port + 1 if self.port else 0)
        self.port = sock.getsockname()[1]
        try:
            proxy_sock = listen(self.host, proxy_port)
        except ValueError as error:
            sock.close()
            if self.proxy_port is not None:
                raise
            raise ValueError(
                f"{error} (the HTTPS proxy's port, PORT+1 by default): choose another with --proxy-port"
            ) from None
        proxy_sock.listen(128)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"
        os.makedirs(self.data_dir, exist_ok=True)
        clients = types.SimpleNamespace(
            s3=self._client("s3", self.s3_endpoint),
            logs=self._client("logs"),
            cloudwatch=self._client("cloudwatch"),
            iam=self._client("iam"),
        )
        endpoint_app = functools.partial(scoring_app, limits=self.limits)
        self.api = SageMakerApi(clients, os.path.join(self.data_dir, "work"), ACCOUNT, SCORING_LOCK, endpoint_app)
        moto = WSGIMiddleware(DomainDispatcherApplication(create_backend_app), workers=8)
        identity = (lambda: self._identity) if self.any_keys_are_role else None
        simulator = PolicySimulator(clients.iam)
        app = create_app(self.api, moto, self.region, self.policy, self.max_body_mb << 20, identity, simulator)
        self._http = BackgroundServer(None, self.host, self.port, app=app, limits=self.limits)
        try:
            self._http.start(timeout, sock=sock)
        except RuntimeError:
            proxy_sock.close()
            raise
        self._proxy = TunnelProxy(
            (self.host, self.port), self.data_dir, self.host, limits=self.limits, tunnels=self.policy.tunnels
        ).start(proxy_sock)
        session = self._execution_role()
        self.role_arn = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
        self.credentials = session["Credentials"]
        user = session["AssumedRoleUser"]
        self._identity = (user["Arn"], user["AssumedRoleId"], ACCOUNT)
        self._write_environment()
        return self

    @property
    def environment_file(self):
        """str: where the running server keeps :meth:`environment` for ``rcforest aws env`` (mode 0600)."""
        return os.path.join(self.data_dir, ENVIRONMENT_FILE)

    def _write_environment(self):
        """Write the environment file (mode 0600) for ``rcforest aws env``."""
        write_environment(self.data_dir, self.url, self.environment())

    def _remove_environment(self):
        """Remove the environment file if it is this server's (another may have started on the same folder)."""
        remove_environment(self.data_dir, self.url)

    def _execution_role(self):
        """Make the SageMaker execution role (once) and return AssumeRole's answer: a session in it."""
        iam = self._client("iam")
        try:
            role = iam.get_role(RoleName=ROLE_NAME)["Role"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(
                RoleName=ROLE_NAME,
                AssumeRolePolicyDocument=json.dumps(_TRUST),
                Description="The execution role of SageMaker jobs and endpoints on rcforest aws",
            )["Role"]
            # As the role SageMaker's console makes: AmazonSageMakerFullAccess, when AWS's managed policies are loaded.
            try:
                iam.attach_role_policy(RoleName=ROLE_NAME, PolicyArn=SAGEMAKER_POLICY)
            except iam.exceptions.NoSuchEntityException:
                logger.warning("%s is not loaded (MOTO_IAM_LOAD_MANAGED_POLICIES): the role has none", SAGEMAKER_POLICY)
        sts = self._client("sts")
        return sts.assume_role(RoleArn=role["Arn"], RoleSessionName="rcforest", DurationSeconds=43200)

    @property
    def running(self):
        """bool: whether the server thread is serving."""
        return self._http is not None and self._http.running

    def stop(self, timeout=10.0):
        """Stop serving and wait for the thread to end."""
        if self.url is not None:
            self._remove_environment()
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
    allowed_hosts=(),
    cors_origins=(),
    max_body_mb=DEFAULT_MAX_BODY_MB,
    any_keys_are_role=False,
):
    """Start the server, print the environment to export and serve until interrupted: ``rcforest aws``.

    Parameters
    ----------
    host, port, proxy_port, data_dir, region, s3_endpoint, limits, allowed_hosts, cors_origins, max_body_mb
        As for :class:`AwsServer`.
    any_keys_are_role : bool, default False
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
        allowed_hosts=allowed_hosts,
        cors_origins=cors_origins,
        max_body_mb=max_body_mb,
        any_keys_are_role=any_keys_are_role,
    ).start()
    print(f"rcforest aws on {server.url} (SageMaker for Random Cut Forest; S3, STS, IAM, CloudWatch by moto)")
    if server.any_keys_are_role:
        print(f"Any access keys are a session of the execution role {server.role_arn}.")
    print('Send boto3 and the SageMaker SDK here with these lines, or eval "$(rcforest aws env)":')
    for name, value in server.environment().items():
        print(f"export {name}={value}")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # a terminated server stops as an interrupted one: its file goes
    try:
        print("ready", flush=True)
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt
