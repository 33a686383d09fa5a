"""Predictors for local endpoints, with the SageMaker SDK's ``Predictor`` interface.

:meth:`~rcforest.sagemaker.RandomCutForest.deploy` starts an endpoint (an
``rcforest`` HTTP server on 127.0.0.1, on a free port, in a background
thread) and registers it under its name in this process. A predictor finds
its endpoint by that name, or by an explicit ``endpoint_url`` such as
``http://127.0.0.1:8080`` for a server started with ``rcforest serve``, and
calls ``POST /endpoints/<name>/invocations`` over loopback.
"""

import io
import json
import threading
import urllib.error
import urllib.request

from rcforest.errors import InvocationError
from rcforest.sagemaker.deserializers import BytesDeserializer, RecordDeserializer
from rcforest.sagemaker.serializers import IdentitySerializer, RecordSerializer

__all__ = [
    "InvocationError",
    "Predictor",
    "RandomCutForestPredictor",
    "endpoint_names",
    "start_endpoint",
    "stop_endpoint",
]

_ENDPOINTS = {}
_REGISTRY_LOCK = threading.Lock()
# Loopback only: never route requests through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start_endpoint(forest, endpoint_name, host="127.0.0.1", port=0):
    """Serve ``forest`` in a background thread and register it as ``endpoint_name``.

    Parameters
    ----------
    forest : rcforest.Forest
    endpoint_name : str
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port.

    Returns
    -------
    str
        The endpoint's base URL.

    Raises
    ------
    ValueError
        If an endpoint of that name is already running.
    """
    from rcforest.sagemaker.server import BackgroundServer

    with _REGISTRY_LOCK:
        if endpoint_name in _ENDPOINTS:
            raise ValueError(f"endpoint {endpoint_name!r} is already running; delete it or pick another name")
        server = BackgroundServer(forest, host=host, port=port).start()
        _ENDPOINTS[endpoint_name] = server
    return server.url


def stop_endpoint(endpoint_name):
    """Stop the local endpoint registered as ``endpoint_name``; a no-op if there is none.

    Parameters
    ----------
    endpoint_name : str
    """
    with _REGISTRY_LOCK:
        server = _ENDPOINTS.pop(endpoint_name, None)
    if server is not None:
        server.stop()


def endpoint_names():
    """Return the names of the running local endpoints.

    Returns
    -------
    list of str
    """
    with _REGISTRY_LOCK:
        return sorted(_ENDPOINTS)


def _url_of(endpoint_name):
    """Return the base URL of a running local endpoint, or raise."""
    with _REGISTRY_LOCK:
        server = _ENDPOINTS.get(endpoint_name)
    if server is None:
        raise ValueError(
            f"no local endpoint named {endpoint_name!r} (running: {endpoint_names() or 'none'}); "
            "deploy one, or pass endpoint_url='http://127.0.0.1:PORT' for an 'rcforest serve' server"
        )
    return server.url


class Predictor:
    """Send data to an endpoint and decode the answer, as ``sagemaker.predictor.Predictor`` does.

    Parameters
    ----------
    endpoint_name : str
        Name of an endpoint deployed in this process, or any name when
        ``endpoint_url`` is given.
    sagemaker_session : object, optional
        Accepted for compatibility and unused.
    serializer : object, default :class:`~rcforest.sagemaker.serializers.IdentitySerializer`
        Anything with ``CONTENT_TYPE`` and ``serialize(data)``, including the
        SageMaker SDK's serializers.
    deserializer : object, default :class:`~rcforest.sagemaker.deserializers.BytesDeserializer`
        Anything with ``ACCEPT`` and ``deserialize(stream, content_type)``.
    component_name : str, optional
        Accepted for compatibility and unused.
    endpoint_url : str, optional
        Base URL of the server, such as ``"http://127.0.0.1:8080"``.
    timeout : float, default 60
        Seconds to wait for an answer.
    """

    def __init__(
        self,
        endpoint_name,
        sagemaker_session=None,
        serializer=None,
        deserializer=None,
        component_name=None,
        *,
        endpoint_url=None,
        timeout=60.0,
    ):
        self.endpoint_name = endpoint_name
        self.sagemaker_session = sagemaker_session
        self.serializer = serializer if serializer is not None else IdentitySerializer()
        self.deserializer = deserializer if deserializer is not None else BytesDeserializer()
        self.component_name = component_name
        self._endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.timeout = timeout
        self._content_type = None
        self._accept = None

    @property
    def endpoint(self):
        """str: the endpoint name (the SDK's deprecated alias of ``endpoint_name``)."""
        return self.endpoint_name

    @property
    def content_type(self):
        """str: the Content-Type sent, the serializer's unless set."""
        return self._content_type or self.serializer.CONTENT_TYPE

    @content_type.setter
    def content_type(self, value):
        self._content_type = value

    @property
    def accept(self):
        """str or tuple of str: the Accept types sent, the deserializer's unless set."""
        return self._accept or self.deserializer.ACCEPT

    @accept.setter
    def accept(self, value):
        self._accept = value

    @property
    def endpoint_url(self):
        """str: base URL of the endpoint's server, for boto3's or the SDK's ``endpoint_url``."""
        return self._endpoint_url or _url_of(self.endpoint_name)

    def predict(
        self,
        data,
        initial_args=None,
        target_model=None,
        target_variant=None,
        inference_id=None,
        custom_attributes=None,
        component_name=None,
    ):
        """Serialize ``data``, invoke the endpoint and deserialize the answer.

        Parameters
        ----------
        data : object
            Input for the serializer, such as an ndarray of shape
            (n_rows, n_features).
        initial_args : dict, optional
            ``ContentType`` and ``Accept`` here override the predictor's.
        target_model, target_variant, inference_id, custom_attributes, component_name : optional
            Accepted for compatibility; ``custom_attributes`` is sent in the
            ``X-Amzn-SageMaker-Custom-Attributes`` header, the rest are unused.

        Returns
        -------
        object
            What the deserializer returns: a list of ``Record`` for
            :class:`RandomCutForestPredictor` by default, ``{"scores": [...]}``
            with a JSON deserializer.

        Raises
        ------
        InvocationError
            If the endpoint answers with an error.
        """
        args = dict(initial_args or {})
        content_type = args.get("ContentType") or _joined(self.content_type)
        accept = args.get("Accept") or _joined(self.accept)
        body = self.serializer.serialize(data)
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {"Content-Type": content_type, "Accept": accept}
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        url = f"{self.endpoint_url}/endpoints/{self.endpoint_name}/invocations"
        request = urllib.request.Request(url, data=bytes(body), headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                answer = response.read()
                answer_type = response.headers.get("Content-Type", "application/octet-stream")
        except urllib.error.HTTPError as error:
            raise _invocation_error(error) from None
        return self.deserializer.deserialize(io.BytesIO(answer), answer_type)

    def delete_endpoint(self, delete_endpoint_config=True):
        """Stop the local endpoint this predictor calls.

        Parameters
        ----------
        delete_endpoint_config : bool, default True
            Accepted for compatibility.
        """
        stop_endpoint(self.endpoint_name)

    def delete_model(self):
        """Nothing to delete locally; kept for compatibility."""

    def delete_predictor(self, wait=False):
        """Stop the local endpoint, as :meth:`delete_endpoint`."""
        self.delete_endpoint()

    def __repr__(self):
        return f"{type(self).__name__}(endpoint_name={self.endpoint_name!r})"


def _joined(value):
    """Join a tuple of media types for a header."""
    return value if isinstance(value, str) else ", ".join(value)


def _invocation_error(error):
    """Turn an ``HTTPError`` with a JSON body into an :class:`InvocationError`."""
    text = error.read().decode("utf-8", "replace")
    try:
        document = json.loads(text)
        return InvocationError(error.code, document.get("error", "Error"), document.get("message", text))
    except (ValueError, AttributeError):
        return InvocationError(error.code, "Error", text)


class RandomCutForestPredictor(Predictor):
    """Predictor for Random Cut Forest endpoints: RecordIO-protobuf in and out by default.

    ``predict(ndarray)`` returns one ``Record`` per row, with the score in
    ``record.label["score"].float32_tensor.values[0]``.

    Parameters
    ----------
    endpoint_name : str
    sagemaker_session : object, optional
        Unused.
    serializer : object, default :class:`~rcforest.sagemaker.serializers.RecordSerializer`
    deserializer : object, default :class:`~rcforest.sagemaker.deserializers.RecordDeserializer`
    component_name : str, optional
        Unused.
    endpoint_url : str, optional
        Base URL of a server started with ``rcforest serve``.
    timeout : float, default 60
    """

    def __init__(
        self,
        endpoint_name,
        sagemaker_session=None,
        serializer=None,
        deserializer=None,
        component_name=None,
        *,
        endpoint_url=None,
        timeout=60.0,
    ):
        super().__init__(
            endpoint_name,
            sagemaker_session,
            serializer if serializer is not None else RecordSerializer(),
            deserializer if deserializer is not None else RecordDeserializer(),
            component_name,
            endpoint_url=endpoint_url,
            timeout=timeout,
        )
