"""The ``sagemaker-runtime`` error contract: what InvokeEndpoint answers when the container refuses a request.

On AWS, a container's 4xx or 5xx does not reach the caller as it is: the
runtime answers 424 ``ModelError`` (``X-Amzn-ErrorType: ModelError``) whose
JSON body carries the container's status and text::

    {"ErrorCode": "CLIENT_ERROR_FROM_MODEL",
     "LogStreamArn": "arn:aws:logs:<region>:<account>:log-group:/aws/sagemaker/Endpoints/<name>",
     "Message": "Received client error (400) from primary with message \\"<text>\\". See https://<region>.console
                 .aws.amazon.com/cloudwatch/home?region=<region>#logEventViewer:group=/aws/sagemaker/Endpoints/<name>
                 in account <account> for more information.",
     "OriginalMessage": "<text>", "OriginalStatusCode": 400}

A 5xx reads "Received server error (500) from primary ..." with
``ErrorCode`` ``INTERNAL_FAILURE_FROM_MODEL``. botocore raises it as
``runtime.exceptions.ModelError``, with ``OriginalStatusCode``,
``OriginalMessage`` and ``LogStreamArn`` in ``error.response``.

The runtime's own refusals are not the container's and keep their codes:
a body over InvokeEndpoint's 6 MB (413) and a body that does not arrive in
time (408). ``rcforest serve``, which is the container itself, answers with
the container's codes.
"""

import json
import uuid

from rcforest.aws.guard import MAX_MESSAGE_CHARS, clip

__all__ = ["RUNTIME_STATUSES", "ModelErrors", "model_error"]

# Statuses the runtime answers itself (its body bound, its body timeout): never wrapped.
RUNTIME_STATUSES = frozenset({408, 413})
# Bytes of a container's error body kept for the ModelError.
_ORIGINAL_BYTES = 16 * 1024


def model_error(status, original, endpoint, region, account):
    """The 424 ``ModelError`` answer wrapping a container's error.

    Parameters
    ----------
    status : int
        The container's status (4xx or 5xx).
    original : str
        The container's answer body, as text.
    endpoint : str
        The endpoint's name.
    region : str
        The region of the request.
    account : str
        The endpoint's account.

    Returns
    -------
    status : int
        424.
    headers : list of (bytes, bytes)
    body : bytes
    """
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    kind, code = ("client", "CLIENT_ERROR_FROM_MODEL") if status < 500 else ("server", "INTERNAL_FAILURE_FROM_MODEL")
    original = clip(original, MAX_MESSAGE_CHARS)
    message = (
        f'Received {kind} error ({status}) from primary with message "{original}". '
        f"See https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:group={group} "
        f"in account {account} for more information."
    )
    body = json.dumps(
        {
            "ErrorCode": code,
            "LogStreamArn": f"arn:aws:logs:{region}:{account}:log-group:{group}",
            "Message": message,
            "OriginalMessage": original,
            "OriginalStatusCode": status,
        }
    ).encode()
    headers = [
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        (b"x-amzn-errortype", b"ModelError"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return 424, headers, body


class ModelErrors:
    """An ASGI ``send`` in front of an endpoint's application: its 4xx and 5xx become :func:`model_error`.

    Parameters
    ----------
    send : ASGI send
        The request's (:class:`rcforest.aws.guard.Exchange`'s) send.
    endpoint, region, account : str
        As :func:`model_error` takes them.
    """

    def __init__(self, send, endpoint, region, account):
        self._send = send
        self.endpoint, self.region, self.account = endpoint, region, account
        self._status = None
        self._chunks = []
        self._size = 0

    async def send(self, message):
        """Pass a success or a runtime refusal on; hold a container error until its body ends, then wrap it."""
        if message["type"] == "http.response.start":
            status = message["status"]
            if status >= 400 and status not in RUNTIME_STATUSES:
                self._status = status
                return None
        elif message["type"] == "http.response.body" and self._status is not None:
            chunk = message.get("body", b"")[: max(0, _ORIGINAL_BYTES - self._size)]
            self._chunks.append(chunk)
            self._size += len(chunk)
            if not message.get("more_body", False):
                original = b"".join(self._chunks).decode("utf-8", "replace")
                status, headers, body = model_error(self._status, original, self.endpoint, self.region, self.account)
                self._status = None
                await self._send({"type": "http.response.start", "status": status, "headers": headers})
                await self._send({"type": "http.response.body", "body": body})
            return None
        return await self._send(message)
