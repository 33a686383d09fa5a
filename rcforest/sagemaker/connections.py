"""Connection limits of the scoring servers: timeouts, a connection cap and quiet disconnects.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and
bounds the size of request headers (h11's ``max_incomplete_event_size``),
but it waits for ever for headers that arrive slowly and for a body that
never ends. :class:`ServerLimits` gathers every bound; :func:`uvicorn_config`
applies them with

- an h11 protocol that closes a connection whose request headers are not
  complete ``header_timeout`` seconds after the connection opened or the
  request's first byte arrived, and closes at once a connection beyond
  ``max_connections``;
- :class:`RequestGuard`, an ASGI middleware that answers 408 to a body not
  received ``body_timeout`` seconds after its headers, and logs one line,
  not a traceback, for a client that leaves in the middle of its body.

Both servers (``rcforest serve`` and ``rcforest aws``) run with them.
"""

import asyncio
import dataclasses
import json
import logging

__all__ = ["ServerLimits", "RequestGuard", "uvicorn_config"]

logger = logging.getLogger("uvicorn.error")


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """The bounds a scoring server puts on each connection and request.

    Parameters
    ----------
    header_timeout : float, default 10
        Seconds for a request's headers to arrive, from the connection's
        opening or the request's first byte; then the connection is closed.
    body_timeout : float, default 30
        Seconds for a request's body to arrive once its headers have; then
        the answer is 408 and the connection is closed.
    keep_alive_timeout : float, default 5
        Seconds an idle keep-alive connection stays open (uvicorn's
        ``timeout_keep_alive``).
    max_connections : int, default 512
        Connections open at once; the server closes further ones as soon
        as they open.
    max_header_bytes : int, default 16384
        Size of a request's headers (h11's ``max_incomplete_event_size``);
        larger ones get 400.
    max_payload_bytes : int, default 6 MB
        Size of a request body, SageMaker's limit; larger ones get 413.
    max_values : int, default 8388608
        Numbers (rows x features) in one request, 64 MiB as float64; more
        get 413. Within 6 MB, only sparse rows can reach it.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 512
    max_header_bytes: int = 16384
    max_payload_bytes: int = 6 * 1024 * 1024
    max_values: int = 1 << 23

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{field.name} must be a positive number, got {value!r}")


def _address(client):
    """``host:port`` of a client, for log lines; ``client`` is a (host, port) pair or None."""
    return f"{client[0]}:{client[1]}" if client else "a client"


class _BodyTimeout(Exception):
    """The request body did not arrive in time."""


class RequestGuard:
    """ASGI middleware bounding the time a request body takes, and quiet about clients that leave.

    Parameters
    ----------
    app : ASGI application
    body_timeout : float
        Seconds, from the call, for the whole request body to arrive.

    Notes
    -----
    A late body is answered ``408 RequestTimeout`` with a JSON body and
    ``Connection: close``; a client that disconnects before its body is
    complete is logged in one line (uvicorn's ``uvicorn.error`` logger, level
    INFO). In a Starlette application, add it as a middleware so that it
    sits inside Starlette's error handler.
    """

    def __init__(self, app, body_timeout):
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send):
        from starlette.requests import ClientDisconnect

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        state = {"body_done": False, "started": False}

        async def bounded_receive():
            if state["body_done"]:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimeout from None
            if message["type"] == "http.request" and not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except _BodyTimeout:
            logger.warning(
                "%s: the request body did not arrive within %g s; closing the connection",
                _address(scope.get("client")),
                self.body_timeout,
            )
            if not state["started"]:
                await _send_json(send, 408, "RequestTimeout", f"the request body took over {self.body_timeout:g} s")
        except ClientDisconnect:
            client = _address(scope.get("client"))
            logger.info("%s: the client disconnected before sending the whole request body", client)


async def _send_json(send, status, code, message):
    """Send a JSON error answer that closes the connection."""
    body = json.dumps({"error": code, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-errortype", code.encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _protocol_class(limits):
    """uvicorn's h11 protocol with a header timeout and a connection cap."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        """Closes connections beyond the cap, and those whose headers are late."""

        _header_timer = None

        def connection_made(self, transport):
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                logger.warning(
                    "%s: connection closed at once: %d connections are open, the limit",
                    _address(self.client),
                    limits.max_connections,
                )
                transport.close()
                return
            self._arm_header_timer()

        def data_received(self, data):
            super().data_received(data)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                # Part of the next request's headers: their clock starts now.
                if self._header_timer is None:
                    self._arm_header_timer()
            else:
                self._cancel_header_timer()

        def connection_lost(self, exc):
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self):
            self._header_timer = self.loop.call_later(limits.header_timeout, self._header_timeout)

        def _cancel_header_timer(self):
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self):
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                logger.info(
                    "%s: no complete request headers within %g s; closing the connection",
                    _address(self.client),
                    limits.header_timeout,
                )
                self.transport.close()

    return BoundedH11Protocol


def uvicorn_config(app, limits=None, **options):
    """Build a ``uvicorn.Config`` serving ``app`` within ``limits``.

    Parameters
    ----------
    app : ASGI application
        Wrapped in :class:`RequestGuard`.
    limits : ServerLimits, optional
        The defaults when None.
    **options
        Passed to ``uvicorn.Config`` (``log_level``, ``access_log``...).

    Returns
    -------
    uvicorn.Config
    """
    import uvicorn

    limits = limits or ServerLimits()
    return uvicorn.Config(
        RequestGuard(app, limits.body_timeout),
        http=_protocol_class(limits),
        timeout_keep_alive=limits.keep_alive_timeout,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        lifespan="off",
        **options,
    )
