"""TLS verification and proxies, with real sockets: a TLS front, a CONNECT and a SOCKS proxy on loopback."""

import base64
import logging
import socket
import ssl
import sys
import traceback

import pytest
from relay import Relay
from socks_proxy import Seen, SocksProxy

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


def _connect_garbled(relay, sock):
    """A proxy that answers the CONNECT with something that is not HTTP; it keeps the request."""
    relay.seen.append(read_request(sock).decode())
    sock.sendall(b"SOCKS? no, not HTTP either\r\n\r\n")
    raise ConnectionRefusedError("no tunnel")


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


@pytest.mark.parametrize("scheme", ["", "http://", "https://"])
def test_the_http_proxy_variable_is_a_connect_proxy(scheme, plugin_manager, recorder, monkeypatch):
    with _screening() as sim, Relay(("127.0.0.1", sim.port), _connect_handshake) as proxy:
        _proxy_variable(monkeypatch, f"{scheme}127.0.0.1:{proxy.port}")
        kwargs = dict(sim.client_kwargs(), url=f"ws://127.0.0.2:{sim.port}")
        livecall.HiyaClient(**kwargs, plugin_manager=plugin_manager).run()
    assert proxy.seen == [f"CONNECT 127.0.0.2:{sim.port} HTTP/1.1"]
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]


def test_a_socks_url_in_the_proxy_variable_is_a_socks_proxy(plugin_manager, recorder, monkeypatch):
    """As curl and requests read it; it used to be spoken to as an HTTP proxy."""
    wrap = SocksProxy(credentials=("watcher", "pass word/@x"))
    with _screening() as sim, Relay(("127.0.0.1", sim.port), wrap) as proxy:
        _proxy_variable(monkeypatch, f"socks5h://watcher:pass%20word%2F%40x@127.0.0.1:{proxy.port}")
        kwargs = dict(sim.client_kwargs(), url=f"ws://calls.example.invalid:{sim.port}")
        livecall.HiyaClient(**kwargs, plugin_manager=plugin_manager).run()
    assert proxy.seen == [Seen(5, "domain", "calls.example.invalid", sim.port, user="watcher")]
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]


def test_a_proxy_variable_livecall_cannot_speak_is_a_configuration_error(plugin_manager, monkeypatch):
    _proxy_variable(monkeypatch, "ftp://127.0.0.1:2121")
    with Simulator("hiya", "screening") as sim:
        kwargs = dict(sim.client_kwargs(), url=f"ws://127.0.0.2:{sim.port}", max_retries=3)
        client = livecall.HiyaClient(**kwargs, plugin_manager=plugin_manager)
        with pytest.raises(livecall.ConfigurationError, match=r"\$http_proxy names a ftp:// proxy"):
            client.run()
    assert client.call.end_reason is livecall.EndReason.ERROR


def _proxy_variable(monkeypatch, value):
    """``http_proxy`` set to ``value``, and nothing else of the environment's proxies in the way."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("http_proxy", value)


def _screening():
    """A Hiya call to watch, over soon after the watcher leaves."""
    return Simulator("hiya", "screening", join_timeout=0.2)


def test_an_http_proxy_gets_basic_credentials_and_a_bad_answer_shows_them_nowhere(plugin_manager, caplog):
    """The error raised while reading the proxy's answer carries the frames of the handshake."""
    password = "proxy-pass-SECRET-91d2"
    caplog.set_level(logging.DEBUG)
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        with Relay(("127.0.0.1", sim.port), _connect_garbled) as proxy:
            kwargs = dict(sim.client_kwargs(), url=f"ws://127.0.0.2:{sim.port}", max_retries=0)
            settings = livecall.ProxySettings("127.0.0.1", proxy.port, auth=("watcher", password))
            client = livecall.HiyaClient(**kwargs, proxy=settings, plugin_manager=plugin_manager)
            with pytest.raises(livecall.ProtocolError, match="not HTTP") as raised:
                client.run()
    basic = base64.b64encode(f"watcher:{password}".encode()).decode()
    assert f"Proxy-Authorization: Basic {basic}\r\n" in proxy.seen[0]
    for text in (_livecall_frames_with_locals(raised.value), caplog.text):
        assert "SECRET" not in text and basic not in text


def _livecall_frames_with_locals(error):
    """What a traceback printing locals shows of livecall's own frames, the whole chain included."""
    shown, seen = [], traceback.TracebackException.from_exception(error, capture_locals=True)
    while seen is not None:
        shown += [f"{frame.name} {frame.locals}" for frame in seen.stack if "livecall" in frame.filename]
        seen = seen.__cause__ or seen.__context__
    assert shown, "the error passed through livecall"
    return "\n".join(shown)


def _through_socks(sim, proxy, plugin_manager, proxy_type, host="127.0.0.2", auth=None, **options):
    """A Hiya client for ``sim`` at ``ws://host``, through the SOCKS proxy ``proxy`` (a ``Relay``).

    127.0.0.2 is loopback, and unlike 127.0.0.1 not exempt from proxying;
    the proxy reaches the simulator whatever host it is asked for.
    """
    return livecall.HiyaClient(
        **dict(sim.client_kwargs(), url=f"ws://{host}:{sim.port}"),
        proxy=livecall.ProxySettings("127.0.0.1", proxy.port, auth=auth, type=proxy_type),
        plugin_manager=plugin_manager,
        **options,
    )


def test_a_socks5_proxy_carries_the_connection(plugin_manager, recorder):
    with _screening() as sim, Relay(("127.0.0.1", sim.port), SocksProxy()) as proxy:
        _through_socks(sim, proxy, plugin_manager, "socks5").run()
    assert proxy.seen == [Seen(5, "ipv4", "127.0.0.2", sim.port)]
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]
    assert recorder.events(livecall.Transcript)


def test_socks5h_leaves_the_host_name_to_the_proxy(plugin_manager, recorder):
    """A name only the proxy's side can resolve (``.invalid`` resolves nowhere, here included)."""
    with _screening() as sim, Relay(("127.0.0.1", sim.port), SocksProxy()) as proxy:
        _through_socks(sim, proxy, plugin_manager, "socks5h", host="calls.example.invalid").run()
    assert proxy.seen == [Seen(5, "domain", "calls.example.invalid", sim.port)]
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]


def test_socks5_resolves_the_host_name_itself(plugin_manager, recorder):
    host = socket.gethostname().lower()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None, socket.AF_INET)}
    except socket.gaierror:
        pytest.skip(f"this machine's name, {host}, does not resolve to an IPv4 address")
    with _screening() as sim, Relay(("127.0.0.1", sim.port), SocksProxy()) as proxy:
        _through_socks(sim, proxy, plugin_manager, "socks5", host=host).run()
    [seen] = proxy.seen
    assert (seen.address_type, seen.port) == ("ipv4", sim.port) and seen.host in addresses
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]


def test_socks5_user_and_password_reach_the_proxy_and_no_log(plugin_manager, recorder, caplog):
    password = "proxy-pass-SECRET-5e1f"
    caplog.set_level(logging.DEBUG)
    wrap = SocksProxy(credentials=("watcher", password))
    with _screening() as sim, Relay(("127.0.0.1", sim.port), wrap) as proxy:
        _through_socks(sim, proxy, plugin_manager, "socks5", auth=("watcher", password)).run()
    assert proxy.seen == [Seen(5, "ipv4", "127.0.0.2", sim.port, user="watcher")], "the proxy checked both"
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]
    assert f"through the proxy 127.0.0.1:{proxy.port}" in caplog.text
    assert "SECRET" not in caplog.text
    settings = livecall.ProxySettings("127.0.0.1", proxy.port, auth=("watcher", password), type="socks5")
    assert "SECRET" not in repr(settings) and "SECRET" not in str(settings)


def test_socks4a_carries_the_connection_and_the_host_name(plugin_manager, recorder):
    with _screening() as sim, Relay(("127.0.0.1", sim.port), SocksProxy()) as proxy:
        _through_socks(sim, proxy, plugin_manager, "socks4a", host="calls.example.invalid").run()
    assert proxy.seen == [Seen(4, "domain", "calls.example.invalid", sim.port)]
    assert recorder.of("call_end") == [livecall.EndReason.ENDED]
    assert recorder.events(livecall.Transcript)


def test_a_socks_password_that_socks_cannot_carry_is_refused_unshown(plugin_manager, caplog):
    """python-socks would raise an error holding the whole password in its arguments."""
    password = "pässwörd-SECRET-0b7c"
    caplog.set_level(logging.DEBUG)
    wrap = SocksProxy(credentials=("watcher", password))
    with _screening() as sim, Relay(("127.0.0.1", sim.port), wrap) as proxy:
        client = _through_socks(
            sim, proxy, plugin_manager, "socks5", auth=("watcher", password), max_retries=3
        )
        with pytest.raises(livecall.ConfigurationError, match="must be ASCII") as raised:
            client.run()
    assert proxy.seen == [] and client.call.end_reason is livecall.EndReason.ERROR
    assert "SECRET" not in repr(raised.value.args) and "SECRET" not in caplog.text


@pytest.mark.parametrize("proxy_type", ["socks5", "socks4"])
def test_a_socks_proxy_refusing_the_connect_ends_the_watch_naming_it(proxy_type, plugin_manager, returns):
    refusing = SocksProxy(reply=0x05)  # "connection refused"
    with _screening() as sim, Relay(("127.0.0.1", sim.port), refusing) as proxy:
        client = _through_socks(sim, proxy, plugin_manager, proxy_type, max_retries=0)
        with pytest.raises(livecall.RetriesExhaustedError) as raised:
            returns(client.run)
        assert sim.accepted == 0
    assert f"the {proxy_type} proxy 127.0.0.1:{proxy.port} refused the tunnel" in str(raised.value)
    assert [seen.port for seen in proxy.seen] == [sim.port]
    assert client.call.end_reason is livecall.EndReason.GAVE_UP


def _silent_proxy(relay, sock):
    """Takes the client's greeting and never answers, until the client hangs up."""
    relay.seen.append(sock.recv(512))
    while sock.recv(512):
        pass
    raise ConnectionResetError("the client hung up")


def test_a_socks_proxy_that_never_answers_is_given_up_on_at_the_connect_timeout(plugin_manager, returns):
    with _screening() as sim, Relay(("127.0.0.1", sim.port), _silent_proxy) as proxy:
        client = _through_socks(sim, proxy, plugin_manager, "socks5", max_retries=0, connect_timeout=0.5)
        with pytest.raises(livecall.RetriesExhaustedError) as raised:
            returns(client.run)
    assert proxy.seen[0][:1] == bytes([5]), "a SOCKS5 greeting"
    assert f"the socks5 proxy 127.0.0.1:{proxy.port} did not open the tunnel" in str(raised.value)


def test_a_socks_proxy_without_python_socks_is_a_configuration_error(plugin_manager, monkeypatch):
    for module in ("python_socks", "python_socks.sync"):
        monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like
    with _screening() as sim, Relay(("127.0.0.1", sim.port), SocksProxy()) as proxy:
        client = _through_socks(sim, proxy, plugin_manager, "socks5h", max_retries=3)
        with pytest.raises(
            livecall.ConfigurationError, match="a socks5h proxy needs the python-socks package"
        ):
            client.run()
    assert proxy.seen == [] and sim.accepted == 0
    assert client.call.end_reason is livecall.EndReason.ERROR, "not retried"
