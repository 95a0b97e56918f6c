"""The opening handshake (RFC 6455 section 4) on a socket, bounded in time.

``connect_timeout`` is the deadline of the whole of it: TCP connect, proxy
tunnel, TLS and the HTTP upgrade, however slowly the server trickles its
answer.  What is sent and how the answer is judged is ``_wire.handshake``'s
business; this module moves the bytes, within the deadline.
"""

import importlib
import logging
import os
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import unquote, urlsplit

import attrs

from .._safety.secrets import redact
from .._wire.handshake import (
    ConnectFailed,
    HeadReader,
    Target,
    UpgradeReader,
    connect_request,
    new_key,
    upgrade_request,
)
from ..errors import ConfigurationError, ProtocolError

__all__ = ["Handshake", "ProxySettings", "open_connection"]

#: ``-v`` shows a refused handshake's status, like the rest of a connection's progress.
log = logging.getLogger("livecall.connection")

#: Hosts never reached through a proxy, as websocket-client has it.
_NO_PROXY_HOSTS = frozenset({"localhost", "127.0.0.1"})
#: Kept from websocket-client, which read it before livecall had its own handshake.
CA_BUNDLE_ENV = "WEBSOCKET_CLIENT_CA_BUNDLE"
_SOCKS_TYPES = {"socks4": "SOCKS4", "socks4a": "SOCKS4", "socks5": "SOCKS5", "socks5h": "SOCKS5"}


@attrs.frozen
class ProxySettings:
    """A proxy to tunnel through; by default the one named in ``https_proxy`` / ``http_proxy``.

    ``type`` is ``"http"`` (a CONNECT tunnel), or ``"socks4"``, ``"socks4a"``,
    ``"socks5"``, ``"socks5h"`` when the ``python-socks`` package is installed.
    """

    host: str
    port: int
    auth: Optional[tuple] = attrs.field(default=None, repr=False)
    type: str = "http"


@attrs.frozen
class Handshake:
    """An opened connection: the socket, and the bytes that came after the response head."""

    sock: socket.socket
    rest: bytes


Clock = Callable[[], float]
_T = TypeVar("_T")
#: Bytes asked of the socket at a time while the answer comes.
_CHUNK = 4096


def open_connection(
    url: str,
    headers: Iterable[str],
    *,
    safe_url: str,
    deadline: float,
    clock: Clock,
    ssl_context: Optional[ssl.SSLContext],
    proxy: Optional[ProxySettings],
    on_socket: Callable[[socket.socket], None],
) -> Handshake:
    """Connect to ``url`` and upgrade; raises ``AuthenticationError``, ``ProtocolError`` or ``ConnectFailed``.

    ``on_socket`` learns of each socket as soon as it exists, so that another
    thread can shut it down to cut the handshake short.
    """
    target = Target.of(url)
    sock: Optional[socket.socket] = None
    try:
        sock = _tcp(target.host, target.port, target.secure, proxy, deadline, clock, on_socket)
        if target.secure:
            context = ssl_context if ssl_context is not None else _default_context()
            _settimeout(sock, deadline, clock)
            sock = context.wrap_socket(sock, server_hostname=target.host)
            on_socket(sock)
        key = new_key()
        _settimeout(sock, deadline, clock)
        sock.sendall(upgrade_request(target, key, headers))
        reader = UpgradeReader(target, key, safe_url=safe_url)
        return Handshake(sock, _upgrade(sock, reader, safe_url, deadline, clock))
    except ssl.SSLCertVerificationError as error:
        _close(sock)
        raise ProtocolError(
            f"TLS certificate of {safe_url} could not be verified: {error.verify_message}"
        ) from None
    except socket.timeout:
        _close(sock)
        message = f"could not connect to {safe_url}: no handshake within the connect timeout"
        raise ConnectFailed(message) from None
    except OSError as error:
        _close(sock)
        raise ConnectFailed(f"could not connect to {safe_url}: {describe(error)}") from None
    except BaseException:
        _close(sock)
        raise


def _tcp(
    host: str,
    port: int,
    secure: bool,
    proxy: Optional[ProxySettings],
    deadline: float,
    clock: Clock,
    on_socket: Callable[[socket.socket], None],
) -> socket.socket:
    if proxy is None:
        proxy = _proxy_from_environment(host, secure)
    elif host in _NO_PROXY_HOSTS:
        proxy = None
    if proxy is None:
        sock = socket.create_connection((host, port), timeout=_remaining(deadline, clock))
        on_socket(sock)
        return sock
    if proxy.type in _SOCKS_TYPES:
        return _socks(proxy, host, port, deadline, clock, on_socket)
    sock = socket.create_connection((proxy.host, proxy.port), timeout=_remaining(deadline, clock))
    on_socket(sock)
    sock.sendall(connect_request(host, port, proxy.auth))
    head, rest = _receive(sock, HeadReader().receive_data, deadline, clock)
    if head.status != 200 or rest:
        sock.close()
        raise ConnectFailed(f"the proxy {proxy.host}:{proxy.port} refused the tunnel (HTTP {head.status})")
    return sock


def _socks(
    proxy: ProxySettings,
    host: str,
    port: int,
    deadline: float,
    clock: Clock,
    on_socket: Callable[[socket.socket], None],
) -> socket.socket:
    """A tunnel through a SOCKS proxy; its refusals become ``ConnectFailed``, as an HTTP proxy's do.

    python-socks' own errors derive from ``Exception`` alone in older
    releases: each is named here, so that none passes for a bug.  The
    credentials stay out of this frame's locals, which tracebacks may print,
    and out of python-socks' exceptions: SOCKS carries them as ASCII of at
    most 255 bytes (RFC 1929), so others are refused before it sees them.
    """
    try:
        sync: Any = importlib.import_module("python_socks.sync")
        types: Any = importlib.import_module("python_socks")
    except ImportError:
        raise ConfigurationError(f"a {proxy.type} proxy needs the python-socks package") from None
    if proxy.auth and not all(part.isascii() and len(part) <= 255 for part in proxy.auth):
        raise ConfigurationError(
            f"a {proxy.type} proxy's user name and password must be ASCII, of 255 characters at most"
        )
    tunnel = sync.Proxy.create(
        proxy_type=getattr(types.ProxyType, _SOCKS_TYPES[proxy.type]),
        host=proxy.host,
        port=proxy.port,
        username=proxy.auth[0] if proxy.auth else None,
        password=proxy.auth[1] if proxy.auth else None,
        rdns=proxy.type in ("socks4a", "socks5h"),
    )
    where = f"the {proxy.type} proxy {proxy.host}:{proxy.port}"
    try:
        sock: socket.socket = tunnel.connect(
            dest_host=host, dest_port=port, timeout=_remaining(deadline, clock)
        )
    except types.ProxyTimeoutError:
        raise ConnectFailed(f"{where} did not open the tunnel within the connect timeout") from None
    except types.ProxyConnectionError as error:
        raise ConnectFailed(f"could not reach {where}: {describe(error.__cause__ or error)}") from None
    except types.ProxyError as error:
        raise ConnectFailed(f"{where} refused the tunnel: {redact(str(error))}") from None
    on_socket(sock)
    return sock


def _default_context() -> ssl.SSLContext:
    """The system's authorities, or the bundle ``WEBSOCKET_CLIENT_CA_BUNDLE`` names (file or folder)."""
    bundle = os.environ.get(CA_BUNDLE_ENV)
    if bundle and os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle or None)


def _proxy_from_environment(host: str, secure: bool) -> Optional[ProxySettings]:
    """The proxy ``https_proxy`` (wss) or ``http_proxy`` (ws) names, unless ``no_proxy`` exempts ``host``.

    Its scheme says what it is: ``http://`` (or none) a CONNECT proxy,
    ``socks5h://`` and the like a SOCKS one, as curl and ``requests`` read it.
    ``https://`` is a CONNECT proxy too, spoken to in plain text, as
    websocket-client always did: livecall does not speak TLS to a proxy.
    """
    if host in _NO_PROXY_HOSTS or urllib.request.proxy_bypass(host):
        return None
    variable = "https_proxy" if secure else "http_proxy"
    address = urllib.request.getproxies_environment().get("https" if secure else "http")
    if not address:
        return None
    parts = urlsplit(address if "://" in address else f"http://{address}")
    kind = parts.scheme.lower()
    if kind == "https":  # as websocket-client reads it: the same CONNECT, in plain text
        kind = "http"
    if kind not in ("http", *_SOCKS_TYPES):
        raise ConfigurationError(
            f"${variable} names a {kind}:// proxy; livecall takes http://, socks4://, socks4a://, "
            "socks5:// or socks5h://"
        )
    if not parts.hostname:
        return None
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    port = parts.port or (1080 if kind in _SOCKS_TYPES else 80)
    return ProxySettings(host=parts.hostname, port=port, auth=auth, type=kind)


def _upgrade(
    sock: socket.socket, reader: UpgradeReader, safe_url: str, deadline: float, clock: Clock
) -> bytes:
    """The bytes after a good 101 head; a refusal cut short by the deadline is judged on what came."""
    try:
        return _receive(sock, reader.receive_data, deadline, clock)
    except OSError:
        refusal = reader.cut_short()
        if refusal is None:
            raise
        raise refusal from None
    finally:
        if reader.refused is not None:
            log.info("handshake with %s: HTTP %s", safe_url, reader.refused)


def _receive(
    sock: socket.socket, receive: Callable[[bytes], Optional[_T]], deadline: float, clock: Clock
) -> _T:
    """Feed ``receive`` what the server sends, ``b""`` at its end, until it has an answer."""
    while True:
        _settimeout(sock, deadline, clock)
        answer = receive(sock.recv(_CHUNK))
        if answer is not None:
            return answer


def _remaining(deadline: float, clock: Clock) -> float:
    remaining = deadline - clock()
    if remaining <= 0:
        raise socket.timeout("connect timeout")
    return remaining


def _settimeout(sock: socket.socket, deadline: float, clock: Clock) -> None:
    sock.settimeout(_remaining(deadline, clock))


def _close(sock: Optional[socket.socket]) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def describe(error: BaseException) -> str:
    """An exception as ``Type: message``, with anything secret-looking redacted."""
    text = str(error)
    return redact(f"{type(error).__name__}: {text}" if text else type(error).__name__)
