"""What every request to ``rcforest aws`` must pass before it is served, and the AWS errors it gets otherwise.

The server answers loopback callers, not web pages. A page the user visits
can send requests to ``127.0.0.1`` (a simple cross-origin POST, or any
request after rebinding its own DNS name to ``127.0.0.1``), so that:

- a request whose ``Host`` is not a loopback name (``localhost``, a
  ``*.localhost`` name such as S3's ``bucket.localhost``, ``127.0.0.1``,
  ``[::1]``), the bound address or a name allowed by ``--allow-host`` gets
  403 (a rebound page's ``Host`` is its own name). The port is not
  checked: a page cannot choose another name's port. Requests that come
  through the HTTPS proxy's tunnels carry the AWS name they were sent to,
  and are let through;
- a request with an ``Origin`` other than the server's own or one named
  by ``--cors-origin`` gets 403, whatever its method, and so does a
  browser request marked cross-site by ``Sec-Fetch-Site`` without such an
  ``Origin``; preflights (``OPTIONS``) get 403 and no ``Access-Control-*``
  header unless their origin is named;
- no answer carries an ``Access-Control-*`` header of moto's (whose
  Flask application grants every origin, and whose S3 grants what a
  bucket's CORS rules say) or of anyone's: the only grants are those this
  module adds for the named origins.

Errors are shaped as the request's protocol expects them: JSON
``{"__type", "message"}`` for JSON protocols (``X-Amz-Target``, the
runtime's ``/endpoints/`` paths), CBOR for ``smithy-protocol: rpc-v2-cbor``
(CloudWatch), ``<ErrorResponse>`` XML for the query protocol (STS, IAM)
and ``<Error>`` XML for S3; messages are cut at
:data:`MAX_MESSAGE_CHARS` characters.
"""

import dataclasses
import json
import re
import uuid
from xml.sax.saxutils import escape

__all__ = [
    "DRAIN_BYTES",
    "MAX_MESSAGE_CHARS",
    "AccessPolicy",
    "BodyTooLarge",
    "Exchange",
    "announced_size",
    "bounded_receive",
    "clip",
    "drain",
    "error_response",
    "preflight",
    "protocol_of",
    "read_body",
]

MAX_MESSAGE_CHARS = 2048
# Characters of a client's string (a Host, an Origin) quoted in a message.
_QUOTED_CHARS = 100
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")
# Headers a granted origin's script may read.
_EXPOSED = b"x-amzn-requestid, x-amz-request-id, x-amz-id-2, x-amzn-errortype, etag, x-amz-version-id, content-length"
_PREFLIGHT_METHODS = b"GET, HEAD, PUT, POST, DELETE"
# Bytes of a body over its bound that are read and discarded, so that the client reads the answer.
DRAIN_BYTES = 64 * 1024 * 1024


def clip(text, limit=_QUOTED_CHARS):
    """``text`` cut to ``limit`` characters, with the number of characters cut said at its end."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _host_name(value):
    """The lower-case name of a ``Host`` header, without its port or brackets; None when malformed."""
    value = value.strip().lower()
    if value.count(":") > 1 and not value.startswith("["):
        return value  # an IPv6 address without brackets or port, as --host and --allow-host take it
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return None
        return name
    name, colon, port = value.partition(":")
    if colon and not re.fullmatch(r"\d{1,5}", port):
        return None
    name = name[:-1] if name.endswith(".") else name
    return name or None


@dataclasses.dataclass(frozen=True)
class AccessPolicy:
    """Which ``Host`` names and ``Origin`` values the server answers.

    Parameters
    ----------
    hosts : iterable of str, default ()
        Names (or addresses) allowed in ``Host`` besides the loopback ones;
        the server adds the address it binds.
    origins : iterable of str, default ()
        Origins (``scheme://host[:port]``) granted CORS access; none by default.
    tunnels : set of (str, int), optional
        Client addresses of the HTTPS proxy's tunnels, whose ``Host`` (an AWS
        name) is not checked; the proxy adds and removes them.

    Raises
    ------
    ValueError
        For an origin that is not ``scheme://host[:port]`` (``*`` included).
    """

    hosts: frozenset = frozenset()
    origins: frozenset = frozenset()
    tunnels: set = dataclasses.field(default_factory=set)

    def __post_init__(self):
        hosts = frozenset(name for name in (_host_name(host) for host in self.hosts) if name)
        origins = set()
        for origin in self.origins:
            normal = origin.strip().lower().rstrip("/")
            if not _ORIGIN.match(normal):
                raise ValueError(f"invalid origin {origin!r}: give scheme://host[:port], such as http://localhost:3000")
            origins.add(normal)
        object.__setattr__(self, "hosts", hosts)
        object.__setattr__(self, "origins", frozenset(origins))

    def host_allowed(self, host):
        """Whether a ``Host`` header value names this server."""
        name = _host_name(host) if host else None
        return name is not None and (name in _LOOPBACK or name.endswith(".localhost") or name in self.hosts)

    def check(self, scope, headers):
        """Refuse a request from a web page or for another host.

        Parameters
        ----------
        scope : dict
            The ASGI scope.
        headers : dict of str to str
            The request's headers, lower-case names.

        Returns
        -------
        refusal : (int, str, str) or None
            Status, error code and message of a refused request.
        grant : str or None
            The origin to grant in the answer's CORS headers.
        """
        host = headers.get("host", "")
        client = tuple(scope.get("client") or ())[:2]
        if client not in self.tunnels and not self.host_allowed(host):
            return (
                403,
                "AccessDenied",
                f"requests for host {clip(host)!r} are not served here; use 127.0.0.1 or "
                "localhost, or start the server with --allow-host NAME",
            ), None
        origin = headers.get("origin")
        if origin is not None:
            normal = origin.strip().lower().rstrip("/")
            if normal in self.origins:
                return None, origin.strip()
            if normal not in (f"http://{host.strip().lower()}", f"https://{host.strip().lower()}"):
                return (
                    403,
                    "AccessDenied",
                    f"requests from origin {clip(origin)!r} are not served here; start the "
                    "server with --cors-origin ORIGIN to allow a web application",
                ), None
        elif headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return (403, "AccessDenied", "requests from other sites' pages are not served here"), None
        if scope["method"] == "OPTIONS":
            return (403, "AccessDenied", "preflight requests are answered for origins of --cors-origin only"), None
        return None, None


def preflight(origin, headers):
    """The headers of a 200 answer to a preflight from a granted ``origin``."""
    requested = headers.get("access-control-request-headers", "")
    answer = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", _PREFLIGHT_METHODS),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    if requested:
        answer.append((b"access-control-allow-headers", requested.encode("latin-1")))
    return answer


def protocol_of(headers, path):
    """The AWS protocol of a request: ``"json"``, ``"cbor"``, ``"query"`` or ``"xml"`` (S3's REST-XML)."""
    content_type = headers.get("content-type", "").lower()
    if headers.get("smithy-protocol", "").lower() == "rpc-v2-cbor":
        return "cbor"
    if "x-amz-target" in headers or "json" in content_type or path.startswith("/endpoints/"):
        return "json"
    if content_type.startswith("application/x-www-form-urlencoded"):
        return "query"
    return "xml"


def _cbor_text(text):
    """A CBOR text string."""
    data = text.encode("utf-8")
    size = len(data)
    if size < 24:
        head = bytes([0x60 + size])
    elif size < 1 << 8:
        head = bytes([0x78, size])
    elif size < 1 << 16:
        head = bytes([0x79]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x7A]) + size.to_bytes(4, "big")
    return head + data


def error_response(protocol, status, code, message, close=False):
    """An AWS error answer for ``protocol``.

    Parameters
    ----------
    protocol : str
        As :func:`protocol_of` returns.
    status : int
    code : str
        AWS's error code, such as ``"ValidationException"``.
    message : str
        Cut at :data:`MAX_MESSAGE_CHARS` characters.
    close : bool, default False
        Whether to close the connection after the answer.

    Returns
    -------
    status : int
    headers : list of (bytes, bytes)
    body : bytes
    """
    message = clip(message, MAX_MESSAGE_CHARS)
    request_id = str(uuid.uuid4())
    headers = [(b"x-amzn-requestid", request_id.encode())]
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [(b"content-type", b"application/x-amz-json-1.1"), (b"x-amzn-errortype", code.encode())]
    elif protocol == "cbor":
        body = b"\xa2" + _cbor_text("__type") + _cbor_text(code) + _cbor_text("message") + _cbor_text(message)
        headers += [
            (b"content-type", b"application/cbor"),
            (b"smithy-protocol", b"rpc-v2-cbor"),
            (b"x-amzn-errortype", code.encode()),
        ]
    elif protocol == "query":
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append((b"content-type", b"text/xml"))
    else:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers += [(b"content-type", b"application/xml"), (b"x-amz-request-id", request_id.encode())]
    headers.append((b"content-length", str(len(body)).encode()))
    if close:
        headers.append((b"connection", b"close"))
    return status, headers, body


class BodyTooLarge(Exception):
    """A request body over its bound.

    Parameters
    ----------
    limit : int
        The bound, in bytes.
    ended : bool, default False
        Whether the whole body has been received.
    """

    def __init__(self, limit, ended=False):
        super().__init__(limit)
        self.limit = limit
        self.ended = ended


def announced_size(headers):
    """The ``Content-Length`` of a request as an int, or None (chunked, absent or malformed)."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def bounded_receive(receive, limit, failures):
    """Wrap an ASGI ``receive`` to raise :class:`BodyTooLarge` once the body passes ``limit`` bytes (None: no bound).

    Every exception it raises (its own, and those of ``receive``, such as a
    body timeout) is appended to ``failures``, so that the caller can tell
    them from an application's.
    """
    received = 0

    async def receive_within():
        nonlocal received
        try:
            message = await receive()
        except BaseException as failure:
            failures.append(failure)
            raise
        if message["type"] == "http.request" and limit is not None:
            received += len(message.get("body", b""))
            if received > limit:
                failure = BodyTooLarge(limit, ended=not message.get("more_body", False))
                failures.append(failure)
                raise failure
        return message

    return receive_within


async def read_body(receive):
    """Read a whole request body from ``receive`` (made by :func:`bounded_receive` to bound it)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def drain(receive, limit):
    """Read and discard the rest of a request body; return whether it ended within ``limit`` more bytes.

    A server that answers before reading the whole body, then closes the
    connection, makes the client's kernel drop the answer (a reset) while
    the client still sends: draining a bounded rest lets it read the answer.
    """
    received = 0
    while received <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return False
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return received <= limit
    return False


class Exchange:
    """One request's answer: CORS headers set here only, and no plain-text 5xx.

    Parameters
    ----------
    send : ASGI send
    protocol : str
        As :func:`protocol_of` returns, for the errors.
    grant : str or None
        The origin the answer grants, or None for no CORS header.

    Attributes
    ----------
    started : bool
        Whether the answer's status has been sent.
    """

    def __init__(self, send, protocol, grant=None):
        self._send = send
        self.protocol = protocol
        self.grant = grant
        self.started = False
        self._replaced = None

    async def send(self, message):
        """An ASGI ``send``: strips others' CORS headers and turns a plain-text or HTML error into an AWS error."""
        if message["type"] == "http.response.start":
            headers = [(name, value) for name, value in message.get("headers", []) if not _is_cors(name)]
            content_type = dict((name.lower(), value) for name, value in headers).get(b"content-type", b"").lower()
            if content_type.startswith((b"text/plain", b"text/html")):
                self._replaced = self._replacement(message["status"])
                if self._replaced:
                    return
            message = {**message, "headers": headers + self._grant_headers()}
            self.started = True
        elif message["type"] == "http.response.body" and self._replaced:
            if not message.get("more_body", False):
                replacement, self._replaced = self._replaced, None
                await self.error(*replacement)
            return
        await self._send(message)

    def _replacement(self, status):
        """The AWS error that replaces a plain-text or HTML answer of ``status``, or None to keep it.

        A 5xx is a failure of the server. A 404 or 405 to a request of a
        JSON, CBOR or query protocol names no action the server knows (moto
        answers an unknown action so); S3's answers, a HEAD's empty 404
        among them, are kept.
        """
        if status >= 500:
            return 500, "InternalFailure", "the server failed to answer this request"
        if status in (404, 405) and self.protocol != "xml":
            code = "UnknownOperationException" if self.protocol in ("json", "cbor") else "InvalidAction"
            return 400, code, "this request names no action of this service"
        return None

    def _grant_headers(self):
        if self.grant is None:
            return []
        return [
            (b"access-control-allow-origin", self.grant.encode("latin-1")),
            (b"access-control-expose-headers", _EXPOSED),
            (b"vary", b"Origin"),
        ]

    async def error(self, status, code, message, close=False):
        """Answer an AWS error in the request's protocol."""
        status, headers, body = error_response(self.protocol, status, code, message, close)
        await self._send({"type": "http.response.start", "status": status, "headers": headers + self._grant_headers()})
        await self._send({"type": "http.response.body", "body": body})
        self.started = True


def _is_cors(name):
    return name.lower().startswith(b"access-control-")
