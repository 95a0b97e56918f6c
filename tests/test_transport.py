"""TLS verification and HTTP proxies, with real sockets: a TLS front and a CONNECT proxy on loopback."""

import shutil
import socket
import ssl
import subprocess
import threading

import pytest

import livecall
from livecall.testing import Simulator
from livecall.testing._wire import read_request


def _pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Relay:
    """Accepts on loopback and relays each connection to ``upstream``.

    ``wrap`` turns the accepted socket into something else first (a TLS
    server side, or a CONNECT handshake); what it saw is kept in ``seen``.
    """

    def __init__(self, upstream, wrap):
        self.upstream = upstream
        self.wrap = wrap
        self.seen = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="test-relay", daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            client = self.wrap(self, client)
        except (OSError, ssl.SSLError):
            client.close()
            return
        server = socket.create_connection(self.upstream)
        threading.Thread(target=_pipe, args=(client, server), daemon=True).start()
        _pipe(server, client)

    def close(self):
        self.listener.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.fail("these tests need the openssl command to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_front(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def wrap(relay, sock):
        return context.wrap_socket(sock, server_side=True)

    relays = []

    def front(sim):
        relay = Relay(("127.0.0.1", sim.port), wrap)
        relays.append(relay)
        return f"wss://127.0.0.1:{relay.port}"

    yield front
    for relay in relays:
        relay.close()


def test_tls_is_verified_by_default(tls_front, plugin_manager):
    with Simulator("phonic", "conversation") as sim:
        kwargs = dict(sim.client_kwargs(), url=tls_front(sim))
        client = livecall.PhonicClient(**kwargs, plugin_manager=plugin_manager, max_retries=3)
        with pytest.raises(livecall.ProtocolError, match="could not be verified"):
            client.start()
        assert sim.accepted == 0
    assert client.call.end_reason is livecall.EndReason.ERROR, "a bad certificate is not retried"


def test_a_custom_ssl_context_is_used(tls_front, certificate, plugin_manager, recorder):
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with Simulator("phonic", "conversation") as sim:
        kwargs = dict(sim.client_kwargs(), url=tls_front(sim))
        livecall.PhonicClient(**kwargs, ssl_context=context, plugin_manager=plugin_manager).run()
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]
    assert recorder.events(livecall.Transcript)


def _connect_handshake(relay, sock):
    request = read_request(sock)
    relay.seen.append(request.split(b"\r\n")[0].decode())
    sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    return sock


def test_an_http_proxy_carries_the_connection(plugin_manager, recorder):
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        proxy = Relay(("127.0.0.1", sim.port), _connect_handshake)
        # 127.0.0.2 is loopback too, and unlike 127.0.0.1 not exempt from proxying.
        kwargs = dict(sim.client_kwargs(), url=f"ws://127.0.0.2:{sim.port}")
        client = livecall.HiyaClient(
            **kwargs,
            proxy=livecall.ProxySettings(host="127.0.0.1", port=proxy.port),
            plugin_manager=plugin_manager,
        )
        client.run()
        proxy.close()
    assert proxy.seen == [f"CONNECT 127.0.0.2:{sim.port} HTTP/1.1"]
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]
