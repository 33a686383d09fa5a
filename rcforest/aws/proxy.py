"""An HTTPS proxy for the AWS endpoints that clients reach by a fixed ``https://`` address.

boto3 honours ``AWS_ENDPOINT_URL``, but the SageMaker SDK builds its STS
client with an explicit ``https://sts.<region>.amazonaws.com`` (for
``Session().default_bucket()`` and ``get_execution_role()``), which no
environment variable overrides, except a proxy. With ``HTTPS_PROXY``
pointing here and ``AWS_CA_BUNDLE`` at this proxy's certificate authority,
such a request is tunnelled (``CONNECT host:443``), its TLS ended here with a
certificate for ``host`` signed by that authority, and the plain HTTP inside
is passed to the local AWS server, which answers it as it answers any other
request.

The authority is made once per data directory (``ca.pem``, with its key in
``ca-key.pem``, mode 0600), each file written whole or not at all (a
temporary file renamed over it); a file that cannot be read, or a key that
is not the certificate's, is replaced by a new authority, with a warning.
It signs only for this proxy and nothing leaves the machine.

The proxy tunnels only to the addresses it is meant for, STS's
(``sts.amazonaws.com`` and ``sts.<region>.amazonaws.com``, port 443), and
refuses other ``CONNECT`` requests with 403; it keeps the certificates of
the last :data:`MAX_CERTIFICATES` names. It serves at most
:data:`MAX_CONNECTIONS` connections at once and closes further ones as
soon as they open; a client has ``header_timeout`` seconds (of
:class:`~rcforest.sagemaker.connections.ServerLimits`) to send its
``CONNECT`` and end its TLS handshake, and a tunnel idle for
``body_timeout`` seconds is closed.
"""

import collections
import contextlib
import datetime
import logging
import os
import re
import select
import socket
import ssl
import tempfile
import threading
import time

__all__ = ["CA_FILE", "MAX_CERTIFICATES", "MAX_CONNECTIONS", "TunnelProxy", "certificate_authority", "tunnelled"]

CA_FILE = "ca.pem"
MAX_CERTIFICATES = 64
MAX_CONNECTIONS = 64
_CA_KEY_FILE = "ca-key.pem"
_VALIDITY = datetime.timedelta(days=3650)
_MAX_HEAD_BYTES = 16384
# The hosts that clients reach by a fixed https:// address whatever AWS_ENDPOINT_URL says: STS, global and regional.
_TUNNELLED = re.compile(r"^sts(-fips)?(\.[a-z]{2}(-[a-z]+)+-\d{1,2})?\.amazonaws\.com(\.cn)?$")
logger = logging.getLogger("rcforest.aws")


def tunnelled(host, port):
    """Whether the proxy tunnels ``CONNECT host:port``: STS's names, on port 443.

    Parameters
    ----------
    host : str
    port : int

    Returns
    -------
    bool
    """
    return port == 443 and _TUNNELLED.match(host.lower()) is not None


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem(key):
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_atomically(path, data):
    """Write ``data`` to ``path`` (mode 0600) through a temporary file renamed over it."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _load_authority(cert_path, key_path):
    """The stored (certificate, key); None when either is missing, cannot be read or they do not match."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if not (os.path.exists(cert_path) and os.path.exists(key_path)):
        return None
    try:
        with open(cert_path, "rb") as file:
            certificate = x509.load_pem_x509_certificate(file.read())
        with open(key_path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
        public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        if certificate.public_key().public_bytes(*public) != key.public_key().public_bytes(*public):
            raise ValueError("the key is not the certificate's")
    except (OSError, ValueError, TypeError) as error:
        logger.warning(
            "the proxy's certificate authority in %s cannot be used (%s); making a new one there",
            cert_path,
            getattr(error, "strerror", None) or error,
        )
        return None
    return certificate, key


def certificate_authority(directory):
    """Return the (certificate, key) of the proxy's authority in ``directory``, made on first use.

    A certificate or key that cannot be read, or a key that is not the
    certificate's, is replaced by a new authority, with a warning. Each file
    is written through a temporary file renamed over it, the key with mode
    0600.

    Parameters
    ----------
    directory : str

    Returns
    -------
    certificate : cryptography.x509.Certificate
    key : private key

    Raises
    ------
    ValueError
        When the files cannot be written, naming them.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    cert_path, key_path = os.path.join(directory, CA_FILE), os.path.join(directory, _CA_KEY_FILE)
    stored = _load_authority(cert_path, key_path)
    if stored is not None:
        return stored
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rcforest aws local authority")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    try:
        os.makedirs(directory, exist_ok=True)
        # The key first: the certificate on disk never names a key that is not there.
        _write_atomically(key_path, _pem(key))
        _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    except OSError as error:
        raise ValueError(
            f"cannot write the proxy's certificate authority to {cert_path}: {error.strerror or error}"
        ) from None
    return certificate, key


def _host_context(host, authority, directory):
    """An SSL server context presenting a certificate for ``host`` signed by ``authority``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert, ca_key = authority
    key = _key()
    alternative = x509.DNSName(host)
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alternative]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only: write them to a private temporary file.
    with tempfile.NamedTemporaryFile("wb", dir=directory, suffix=".pem", delete=False) as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM))
        file.write(_pem(key))
    try:
        context.load_cert_chain(file.name)
    finally:
        os.unlink(file.name)
    return context


class TunnelProxy:
    """Accept ``CONNECT`` tunnels to STS, end their TLS here and pass the requests to ``target``.

    Parameters
    ----------
    target : (str, int)
        Address of the plain-HTTP AWS server.
    directory : str
        Where the certificate authority is kept.
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port.
    limits : rcforest.sagemaker.connections.ServerLimits, optional
        ``header_timeout`` bounds the ``CONNECT`` and the TLS handshake,
        ``body_timeout`` an idle tunnel; the defaults when None.
    tunnels : set, optional
        Filled with the client address, as the target sees it, of each open
        tunnel: the target lets their ``Host`` (an AWS name) through.
    max_connections : int, default 64
        Connections served at once; further ones are closed as they open.
    """

    def __init__(
        self,
        target,
        directory,
        host="127.0.0.1",
        port=0,
        limits=None,
        tunnels=None,
        max_connections=MAX_CONNECTIONS,
    ):
        from rcforest.sagemaker.connections import ServerLimits

        limits = limits or ServerLimits()
        self.target = target
        self.directory = directory
        self.host = host
        self.port = port
        self.handshake_timeout = limits.header_timeout
        self.idle_timeout = limits.body_timeout
        self.max_connections = max_connections
        self.tunnels = tunnels if tunnels is not None else set()
        self._authority = certificate_authority(directory)
        self._contexts = collections.OrderedDict()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._sock = None
        self._thread = None
        self._closing = threading.Event()

    @property
    def ca_file(self):
        """str: the authority's certificate, for ``AWS_CA_BUNDLE``."""
        return os.path.join(self.directory, CA_FILE)

    @property
    def url(self):
        """str: the proxy's address, for ``HTTPS_PROXY``."""
        return f"http://{self.host}:{self.port}"

    @property
    def certificates(self):
        """int: the number of host certificates kept (at most :data:`MAX_CERTIFICATES`)."""
        with self._lock:
            return len(self._contexts)

    def start(self, sock=None):
        """Listen (on ``sock`` if given) and serve in a daemon thread; return ``self``."""
        if sock is None:
            sock = socket.create_server((self.host, self.port))
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"rcforest-aws-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop accepting tunnels."""
        self._closing.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._thread is not None:
            self._thread.join(5)

    def _serve(self):
        while not self._closing.is_set():
            try:
                client, address = self._sock.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                logger.warning(
                    "proxy: connection from %s closed at once: %d connections are open, the limit",
                    address[0],
                    self.max_connections,
                )
                client.close()
                continue
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _context(self, host):
        with self._lock:
            if host in self._contexts:
                self._contexts.move_to_end(host)
            else:
                self._contexts[host] = _host_context(host, self._authority, self.directory)
                if len(self._contexts) > MAX_CERTIFICATES:
                    self._contexts.popitem(last=False)
            return self._contexts[host]

    def _tunnel(self, client):
        """Answer one CONNECT, end its TLS and relay the bytes to the AWS server."""
        try:
            self._open(client)
        finally:
            self._slots.release()

    def _open(self, client):
        deadline = time.monotonic() + self.handshake_timeout
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                client.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = client.recv(4096)
                if not chunk or len(head) > _MAX_HEAD_BYTES:
                    client.close()
                    return
                head += chunk
            method, authority = (head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
            if method.upper() != b"CONNECT":
                _refuse(client, "405 Method Not Allowed", "this proxy answers CONNECT only")
                return
            host, _, port = authority.decode("ascii", "replace").rpartition(":")
            if not (port.isdigit() and tunnelled(host, int(port))):
                _refuse(client, "403 Forbidden", "this proxy tunnels to STS's addresses (port 443) only")
                return
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            client.settimeout(max(0.01, deadline - time.monotonic()))
            secure = self._context(host.lower()).wrap_socket(client, server_side=True)
            upstream = socket.create_connection(self.target, timeout=self.idle_timeout)
        except (OSError, ValueError, ssl.SSLError):
            client.close()
            return
        address = upstream.getsockname()[:2]
        self.tunnels.add(address)
        try:
            secure.settimeout(self.idle_timeout)
            _relay(secure, upstream, self.idle_timeout)
        finally:
            self.tunnels.discard(address)


def _refuse(client, status, message):
    """Answer a refused CONNECT and close the connection."""
    body = (message + "\n").encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with contextlib.suppress(OSError):
        client.sendall(head.encode() + body)
    client.close()


def _relay(left, right, timeout):
    """Copy bytes both ways until one side closes, or nothing passes for ``timeout`` seconds."""
    sockets = [left, right]
    for sock in sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            pending = [s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()]
            readable = pending or select.select(sockets, [], [], timeout)[0]
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (right if source is left else left).sendall(data)
    except (OSError, ssl.SSLError):
        return
    finally:
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass
