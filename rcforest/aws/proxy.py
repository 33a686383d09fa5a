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
``ca-key.pem``); it signs only for this proxy and nothing leaves the machine.
"""

import datetime
import ipaddress
import os
import select
import socket
import ssl
import tempfile
import threading

__all__ = ["CA_FILE", "TunnelProxy", "certificate_authority"]

CA_FILE = "ca.pem"
_CA_KEY_FILE = "ca-key.pem"
_VALIDITY = datetime.timedelta(days=3650)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem(key):
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate_authority(directory):
    """Return the (certificate, key) of the proxy's authority in ``directory``, made on first use.

    Parameters
    ----------
    directory : str

    Returns
    -------
    certificate : cryptography.x509.Certificate
    key : private key
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    cert_path, key_path = os.path.join(directory, CA_FILE), os.path.join(directory, _CA_KEY_FILE)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        with open(cert_path, "rb") as file:
            certificate = x509.load_pem_x509_certificate(file.read())
        with open(key_path, "rb") as file:
            key = serialization.load_pem_private_key(file.read(), password=None)
        return certificate, key
    os.makedirs(directory, exist_ok=True)
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
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(_pem(key))
    with open(cert_path, "wb") as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def _host_context(host, authority, directory):
    """An SSL server context presenting a certificate for ``host`` signed by ``authority``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert, ca_key = authority
    key = _key()
    try:
        alternative = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
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
    """Accept ``CONNECT`` tunnels, end their TLS here and pass the requests to ``target``.

    Parameters
    ----------
    target : (str, int)
        Address of the plain-HTTP AWS server.
    directory : str
        Where the certificate authority is kept.
    host : str, default "127.0.0.1"
    port : int, default 0
        0 picks a free port.
    """

    def __init__(self, target, directory, host="127.0.0.1", port=0):
        self.target = target
        self.directory = directory
        self.host = host
        self.port = port
        self._authority = certificate_authority(directory)
        self._contexts = {}
        self._lock = threading.Lock()
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
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _context(self, host):
        with self._lock:
            if host not in self._contexts:
                self._contexts[host] = _host_context(host, self._authority, self.directory)
            return self._contexts[host]

    def _tunnel(self, client):
        """Answer one CONNECT, end its TLS and relay the bytes to the AWS server."""
        try:
            client.settimeout(30)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk or len(head) > 16384:
                    client.close()
                    return
                head += chunk
            method, authority = head.split(b" ", 2)[:2]
            if method.upper() != b"CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                client.close()
                return
            host = authority.decode("ascii", "replace").rsplit(":", 1)[0].strip("[]")
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            secure = self._context(host).wrap_socket(client, server_side=True)
            upstream = socket.create_connection(self.target, timeout=30)
        except (OSError, ValueError, ssl.SSLError):
            client.close()
            return
        _relay(secure, upstream)


def _relay(left, right):
    """Copy bytes both ways until one side closes."""
    sockets = [left, right]
    for sock in sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            pending = [s for s in sockets if isinstance(s, ssl.SSLSocket) and s.pending()]
            readable = pending or select.select(sockets, [], [], 60)[0]
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
