"""An HTTP scoring endpoint with SageMaker's container and runtime contracts: ``rcforest serve``.

Routes:

- ``GET /ping``: 200 when the model is loaded;
- ``POST /invocations``: the container contract SageMaker hosting calls;
- ``POST /endpoints/<name>/invocations``: the runtime API path, so boto3's
  ``sagemaker-runtime`` ``invoke_endpoint`` and the SageMaker SDK's
  ``Predictor`` reach the server through ``endpoint_url``;
- ``GET /execution-parameters``: batch transform settings.

Requests are read according to Content-Type and answered according to
Accept (see :mod:`rcforest.sagemaker.formats`). Bodies over 6 MB or over
``max_values`` numbers, malformed bodies, non-finite or non-ASCII numbers
and wrong feature counts get a 4xx answer with a JSON body
``{"error": <code>, "message": <text>}`` and an ``x-amzn-ErrorType`` header
that botocore turns into a ``ClientError``. Scores are those of
:meth:`rcforest.Forest.score` on the loaded model: exact in JSON, rounded
to float32 in RecordIO-protobuf; a request the forest gives a non-finite
score is answered 400, never with ``null``.

Parsing and writing run in worker threads without a lock; the forest is
scored in slices of rows, each under :data:`SCORING_LOCK`, which serves
waiting requests in turn, so a 1-row request waits for at most one slice
of a large one. Timeouts and the connection cap are those of
:class:`rcforest.sagemaker.connections.ServerLimits`.

The application runs on uvicorn (ASGI) with starlette; both are imported
only when a server is built.
"""

import collections
import socket
import threading
import time

import numpy as np

from rcforest.sagemaker.connections import ServerLimits, uvicorn_config

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "SCORING_LOCK",
    "BackgroundServer",
    "FairLock",
    "ServerLimits",
    "create_app",
    "listen",
    "score_in_turns",
    "serve",
]

MAX_PAYLOAD_BYTES = ServerLimits.max_payload_bytes
# Rows scored per turn of the scoring lock.
_TURN_ROWS = 1024


class FairLock:
    """A lock granted in the order it is asked for (``threading.Lock`` makes no such promise).

    A thread that releases it and asks again goes behind the threads
    already waiting. It is a context manager, like ``threading.Lock``.
    """

    def __init__(self):
        self._guard = threading.Lock()
        self._waiting = collections.deque()
        self._held = False

    def acquire(self):
        """Wait for the lock in turn; return True."""
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by release(), which hands the lock over
        return True

    def release(self):
        """Hand the lock to the longest-waiting thread, or free it."""
        with self._guard:
            if not self._held:
                raise RuntimeError("release of an unheld FairLock")
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


# One scoring call at a time in this process, whatever the number of servers:
# numba's workqueue threading layer must not be entered from two threads at
# once. Scoring runs in worker threads, so the event loop keeps answering.
SCORING_LOCK = FairLock()


def score_in_turns(forest, features, lock=SCORING_LOCK, rows=_TURN_ROWS):
    """Score ``features`` with ``forest`` in slices of ``rows`` rows, each under ``lock``.

    Parameters
    ----------
    forest : rcforest.Forest
        An unshingled forest (each row scored on its own).
    features : ndarray of shape (n_rows, n_features)
    lock : FairLock, default SCORING_LOCK
    rows : int, default 1024

    Returns
    -------
    ndarray of float64, shape (n_rows,)
        Equal to ``forest.score(features)``.
    """
    scores = np.empty(features.shape[0])
    for start in range(0, features.shape[0], rows):
        part = features[start : start + rows]
        with lock:
            scores[start : start + part.shape[0]] = forest.score(part)
    return scores


class _RequestError(Exception):
    """An error answered with an HTTP status and a JSON message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code


def create_app(forest, limits=None):
    """Build the ASGI application that scores with ``forest``.

    Parameters
    ----------
    forest : rcforest.Forest
        A fitted forest without shingling (the endpoint scores each row as
        a point, as SageMaker's does); it is only read.
    limits : ServerLimits, optional
        ``max_payload_bytes`` (413 above), ``max_values`` (413 above) and
        ``body_timeout`` (408 after) apply; the defaults when None.

    Returns
    -------
    starlette.applications.Starlette

    Raises
    ------
    ValueError
        For a shingled forest.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rcforest.sagemaker import formats
    from rcforest.sagemaker.connections import RequestGuard

    if forest.shingle_size > 1:
        raise ValueError(
            f"the endpoint scores each row as one point, as SageMaker's does, but this forest makes shingles of "
            f"{forest.shingle_size} rows; serve a forest fitted with shingle_size=1 on rows shingled beforehand"
        )
    limits = limits or ServerLimits()
    max_payload_bytes = limits.max_payload_bytes
    # Bodies announced above this are refused without reading them.
    drain_limit = 16 * max_payload_bytes

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
            features = formats.decode_request(body, content_type, forest.n_features_, limits.max_values)
            scores = score_in_turns(forest, features)
        except formats.UnsupportedContentType as error:
            raise _RequestError(415, "UnsupportedMediaType", str(error)) from None
        except formats.PayloadTooLarge as error:
            raise _RequestError(413, "PayloadTooLarge", str(error)) from None
        except (ValueError, TypeError) as error:
            raise _RequestError(400, "ValidationError", str(error)) from None
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise _RequestError(
                400,
                "ValidationError",
                f"the forest gives no finite score to rows {bad[:10].tolist()} ({bad.size} in all): "
                "their values are too extreme for it; rescale the data",
            )
        return formats.encode_scores(scores, media_type), media_type

    async def read_body(request):
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > drain_limit:
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
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(RequestGuard, body_timeout=limits.body_timeout)],
    )


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
    limits : ServerLimits, optional
        Timeouts, connection cap and request bounds; the defaults when None.

    Attributes
    ----------
    url : str
        ``http://host:port`` once started.

    Notes
    -----
    Requests are scored in turns of 1,024 rows per process. While the server runs,
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

    def __init__(self, forest, host="127.0.0.1", port=0, app=None, limits=None):
        self.forest = forest
        self.app = app
        self.limits = limits or ServerLimits()
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

        app = self.app if self.app is not None else create_app(self.forest, self.limits)
        sock = sock if sock is not None else listen(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn_config(app, self.limits, log_level="warning", access_log=False)
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


def serve(model="/opt/ml/model", host="127.0.0.1", port=8080, log_level="info", limits=None):
    """Load a model, bind and serve it until stopped: ``rcforest serve``.

    Parameters
    ----------
    model : str or os.PathLike, default "/opt/ml/model"
        A model file, or a directory holding ``model.rcf``.
    host : str, default "127.0.0.1"
    port : int, default 8080
    log_level : str, default "info"
        uvicorn's log level.
    limits : ServerLimits, optional
        Timeouts, connection cap and request bounds; the defaults when None.
    """
    import uvicorn

    from rcforest.sagemaker.model import load_model

    forest = load_model(model)
    app = create_app(forest, limits)
    sock = listen(host, port)
    print(
        f"serving {model} ({forest.n_features_} features, {forest.num_trees} trees) "
        f"on http://{host}:{sock.getsockname()[1]}",
        flush=True,
    )
    uvicorn.Server(uvicorn_config(app, limits, log_level=log_level)).run(sockets=[sock])
