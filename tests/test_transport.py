"""TLS verification and HTTP proxies, with real sockets: a TLS front and a CONNECT proxy on loopback."""

import ssl

import pytest
from relay import Relay

import livecall
from livecall.testing import Simulator
from livecall.testing._wire import read_request


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
