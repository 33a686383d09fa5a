"""An HTTP scoring endpoint with SageMaker's container and runtime contracts: ``rcforest serve``.

Routes:

- ``GET /ping``: 200 when the model is loaded;
- ``POST /invocations``: the container contract SageMaker hosting calls;
- ``POST /endpoints/<name>/invocations``: the runtime API path, so boto3's
  ``sagemaker-runtime`` ``invoke_endpoint`` and the SageMaker SDK's
  ``Predictor`` reach the server through ``endpoint_url``;
- ``GET /execution-parameters``: batch transform settings.

Requests are read according to Content-Type and answered according to
Accept (see :mod:`rcforest.sagemaker.formats`). Bodies over 6 MB, malformed
bodies and wrong feature counts get a 4xx answer with a JSON body
``{"error": <code>, "message": <text>}`` and an ``x-amzn-ErrorType`` header
that botocore turns into a ``ClientError``. Scores are those of
:meth:`rcforest.Forest.score` on the loaded model: exact in JSON, rounded
to float32 in RecordIO-protobuf.

The application runs on uvicorn (ASGI) with starlette; both are imported
only when a server is built.
"""

import socket
import threading
import time

__all__ = ["MAX_PAYLOAD_BYTES", "SCORING_LOCK", "BackgroundServer", "create_app", "listen", "serve"]

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Bodies announced above this are refused without reading them.
_DRAIN_LIMIT = 16 * MAX_PAYLOAD_BYTES
# One scoring call at a time in this process, whatever the number of servers:
# numba's workqueue threading layer must not be entered from two threads at
# once. Scoring runs in a worker thread, so the event loop keeps answering.
SCORING_LOCK = threading.Lock()


class _RequestError(Exception):
    """An error answered with an HTTP status and a JSON message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code


def create_app(forest, max_payload_bytes=MAX_PAYLOAD_BYTES):
    """Build the ASGI application that scores with ``forest``.

    Parameters
    ----------
    forest : rcforest.Forest
        A fitted forest; it is only read.
    max_payload_bytes : int, default 6 MB
        Larger request bodies are answered with 413.

    Returns
    -------
    starlette.applications.Starlette
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rcforest.sagemaker import formats

    variant = {"x-Amzn-Invoked-Production-Variant": "AllTraffic"}

    def error_response(status, code, message):
        headers = {"x-amzn-ErrorType": code}
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    def answer(body, content_type, accept):
        """Decode, score and encode one request; runs in a worker thread, off the event loop."""
        try:
            media_type = formats.choose_response_type(accept)
        except formats.NotAcceptable as error:
            raise _RequestError(406, "NotAcceptable", str(error)) from None
        try:
            features = formats.decode_request(body, content_type)
            with SCORING_LOCK:
                scores = forest.score(features)
        except formats.UnsupportedContentType as error:
            raise _RequestError(415, "UnsupportedMediaType", str(error)) from None
        except (ValueError, TypeError) as error:
            raise _RequestError(400, "ValidationError", str(error)) from None
        return formats.encode_scores(scores, media_type), media_type

    async def read_body(request):
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > _DRAIN_LIMIT:
            raise _RequestError(413, "PayloadTooLarge", f"the request body is over {max_payload_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= max_payload_bytes:
                chunks.append(chunk)
        if size > max_payload_bytes:
            raise _RequestError(
                413, "PayloadTooLarge", f"the request body has {size} bytes; the limit is {max_payload_bytes}"
            )
        return b"".join(chunks)

    async def invocations(request):
        headers = request.headers
        try:
            body = await read_body(request)
            content, media_type = await run_in_threadpool(
                answer, body, headers.get("content-type"), headers.get("accept")
            )
        except _RequestError as error:
            return error_response(error.status, error.code, str(error))
        return Response(content, media_type=media_type, headers=variant)

    async def ping(request):
        return JSONResponse({"status": "healthy"})

    async def execution_parameters(request):
        return JSONResponse(
            {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": max_payload_bytes >> 20}
        )

    async def http_error(request, error):
        codes = {404: "NotFound", 405: "MethodNotAllowed"}
        return error_response(error.status_code, codes.get(error.status_code, "BadRequest"), error.detail)

    routes = [
        Route("/ping", ping, methods=["GET"]),
        Route("/execution-parameters", execution_parameters, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/endpoints/{name}/invocations", invocations, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


class BackgroundServer:
    """Run the scoring application on uvicorn in a daemon thread.

    Parameters
    ----------
    forest : rcforest.Forest
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port.
    app : ASGI application, optional
        Served instead of the scoring application of ``forest``.

    Attributes
    ----------
    url : str
        ``http://host:port`` once started.

    Notes
    -----
    Requests are scored one at a time per process. While the server runs,
    avoid scoring the same process's forests from other threads yourself:
    numba's fallback threading layer (workqueue) aborts on concurrent
    parallel calls; the OpenMP and TBB layers do not.

    Examples
    --------
    >>> server = BackgroundServer(forest).start()  # doctest: +SKIP
    >>> server.url  # doctest: +SKIP
    'http://127.0.0.1:40213'
    >>> server.stop()  # doctest: +SKIP
    """

    def __init__(self, forest, host="127.0.0.1", port=0, app=None):
        self.forest = forest
        self.app = app
        self.host = host
        self.port = port
        self.url = None
        self._server = None
        self._thread = None

    def start(self, timeout=30.0, sock=None):
        """Bind the port, start serving and wait until the server accepts connections.

        Parameters
        ----------
        timeout : float, default 30
            Seconds to wait for the server to start.
        sock : socket.socket, optional
            A socket from :func:`listen` to serve on, instead of binding ``port``.

        Returns
        -------
        BackgroundServer
            ``self``.
        """
        import uvicorn

        sock = sock if sock is not None else listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        app = self.app if self.app is not None else create_app(self.forest)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"rcforest-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                sock.close()
                raise RuntimeError(f"the server on {self.host}:{self.port} stopped while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start within {timeout} s")
            time.sleep(0.01)
        host = f"[{self.host}]" if sock.family == socket.AF_INET6 else self.host
        self.url = f"http://{host}:{self.port}"
        return self

    @property
    def running(self):
        """bool: whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout=10.0):
        """Stop serving and wait for the thread to end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None


def listen(host, port):
    """Return a socket bound to ``(host, port)``, or raise ValueError saying why it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted connections (no 40 ms delayed-ACK stalls).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


def serve(model="/opt/ml/model", host="127.0.0.1", port=8080, log_level="info"):
    """Load a model, bind and serve it until stopped: ``rcforest serve``.

    Parameters
    ----------
    model : str or os.PathLike, default "/opt/ml/model"
        A model file, or a directory holding ``model.rcf``.
    host : str, default "127.0.0.1"
    port : int, default 8080
    log_level : str, default "info"
        uvicorn's log level.
    """
    import uvicorn

    from rcforest.sagemaker.model import load_model

    forest = load_model(model)
    sock = listen(host, port)
    print(
        f"serving {model} ({forest.n_features_} features, {forest.num_trees} trees) "
        f"on http://{host}:{sock.getsockname()[1]}",
        flush=True,
    )
    config = uvicorn.Config(create_app(forest), log_level=log_level, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
