"""The opening handshake (RFC 6455 section 4) on a socket, bounded in time and size.

``connect_timeout`` is the deadline of the whole of it: TCP connect, proxy
tunnel, TLS and the HTTP upgrade, however slowly the server trickles its
answer.  The response head may have at most 100 headers and 16 KiB.
Redirects are refused: following one would send the credentials in the
request headers to whatever host the server names.
"""

import base64
import hashlib
import importlib
import json
import logging
import os
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any, Callable, Optional
from urllib.parse import unquote, urljoin, urlsplit

import attrs

from .._codec import server_words
from .._safety.secrets import HiddenLines, redact
from .._wire.checks import header_text
from ..errors import AuthenticationError, ConfigurationError, ProtocolError

__all__ = ["ConnectFailed", "Handshake", "ProxySettings", "open_connection"]

#: ``-v`` shows a refused handshake's status, like the rest of a connection's progress.
log = logging.getLogger("livecall.connection")

MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEAD = 16 * 1024
#: Bytes of a refused handshake's body read for the server's explanation.
_MAX_ERROR_BODY = 4096
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Handshake statuses worth another try: the service is busy or restarting.
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
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


class ConnectFailed(Exception):
    """The connection could not be opened but a later attempt may succeed."""


@attrs.frozen
class Handshake:
    """An opened connection: the socket, and the bytes that came after the response head."""

    sock: socket.socket
    rest: bytes


Clock = Callable[[], float]


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
    target = _Target.of(url)
    sock: Optional[socket.socket] = None
    try:
        sock = _tcp(target.host, target.port, target.secure, proxy, deadline, clock, on_socket)
        if target.secure:
            context = ssl_context if ssl_context is not None else _default_context()
            _settimeout(sock, deadline, clock)
            sock = context.wrap_socket(sock, server_hostname=target.host)
            on_socket(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        _settimeout(sock, deadline, clock)
        sock.sendall(_request_head(target, key, headers))
        status, fields, rest = _read_head(sock, deadline, clock)
        if status != 101:
            raise _refused(status, fields, rest, url, safe_url, sock, deadline, clock)
        _check_upgrade(fields, key)
        return Handshake(sock, rest)
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


@attrs.frozen
class _Target:
    """Where a URL points.  Its resource (path and query) may hold a token: never shown."""

    secure: bool
    host: str
    port: int
    host_header: str
    resource: str = attrs.field(repr=False)

    @classmethod
    def of(cls, url: str) -> "_Target":
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        return cls(
            secure=secure,
            host=parts.hostname or "",
            port=parts.port or (443 if secure else 80),
            host_header=parts.netloc.rpartition("@")[2],
            resource=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        )


def _request_head(target: _Target, key: str, headers: Iterable[str]) -> bytes:
    """The upgrade request; ``ConfigurationError`` for a header value that would forge another.

    Its own function, so that the lines holding credentials are nobody's
    local variable once it returns; while it runs they are hidden from
    tracebacks that print locals.
    """
    lines = HiddenLines(
        [
            f"GET {target.resource} HTTP/1.1",
            f"Host: {target.host_header}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *headers,
        ]
    )
    for line in lines:
        header_text(f"the {line.partition(':')[0]} header", line)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


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
    sock.sendall(_connect_request(host, port, proxy.auth))
    status, _, rest = _read_head(sock, deadline, clock)
    if status != 200 or rest:
        sock.close()
        raise ConnectFailed(f"the proxy {proxy.host}:{proxy.port} refused the tunnel (HTTP {status})")
    return sock


def _connect_request(host: str, port: int, auth: Optional[tuple]) -> bytes:
    """The CONNECT request, built apart so that the frame reading the proxy's answer holds
    neither its user name nor its password (a traceback may print a frame's locals)."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if auth:
        basic = base64.b64encode(":".join(auth).encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {basic}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


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


def _read_head(sock: socket.socket, deadline: float, clock: Clock) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and the bytes after an HTTP response head."""
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n", max(0, len(data) - 4096 - 3))
        if end >= 0:
            break
        if len(data) > MAX_RESPONSE_HEAD:
            raise ProtocolError(f"the server's response head is over {MAX_RESPONSE_HEAD} bytes")
        _settimeout(sock, deadline, clock)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectFailed("the server closed the connection during the handshake")
        data += chunk
    if end > MAX_RESPONSE_HEAD:
        raise ProtocolError(f"the server's response head is over {MAX_RESPONSE_HEAD} bytes")
    lines = bytes(data[:end]).decode("latin-1").split("\r\n")
    if len(lines) - 1 > MAX_RESPONSE_HEADERS:
        raise ProtocolError(f"the server's response has over {MAX_RESPONSE_HEADERS} headers")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise ProtocolError("the server's response is not HTTP")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ProtocolError("malformed header in the server's response")
        name = name.strip().lower()
        value = value.strip()
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return int(status_line[1]), fields, bytes(data[end + 4 :])


def _check_upgrade(fields: dict[str, str], key: str) -> None:
    if fields.get("upgrade", "").lower() != "websocket":
        raise ProtocolError("the server's 101 response does not upgrade to websocket")
    if "upgrade" not in [token.strip().lower() for token in fields.get("connection", "").split(",")]:
        raise ProtocolError("the server's 101 response lacks Connection: Upgrade")
    expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    if fields.get("sec-websocket-accept", "") != expected:
        raise ProtocolError("the server's Sec-WebSocket-Accept does not match the key")
    for unasked in ("sec-websocket-extensions", "sec-websocket-protocol"):
        if fields.get(unasked):
            raise ProtocolError(f"the server chose a {unasked.title()} the client did not offer")


def _refused(
    status: int,
    fields: dict[str, str],
    rest: bytes,
    url: str,
    safe_url: str,
    sock: socket.socket,
    deadline: float,
    clock: Clock,
) -> Exception:
    if status in _REDIRECT_STATUSES:
        target = urlsplit(urljoin(url.replace("ws", "http", 1), fields.get("location", "")))
        where = f"to {target.hostname}" if target.hostname else "without a location"
        return ProtocolError(
            f"{safe_url} answered the handshake with a redirect (HTTP {status}) {where}; "
            "redirects are not followed, so credentials never go to another host",
            code=status,
        )
    log.info("handshake with %s: HTTP %s", safe_url, status)
    said = _server_said(_error_body(fields, rest, sock, deadline, clock))
    detail = f": {said}" if said else ""
    if status in (401, 403):
        return AuthenticationError(
            f"{safe_url} refused the credentials (HTTP {status}){detail}", status=status, server_message=said
        )
    message = f"{safe_url} refused the WebSocket handshake (HTTP {status}){detail}"
    if status in _RETRYABLE_STATUSES:
        return ConnectFailed(message)
    return ProtocolError(message, code=status)


def _error_body(
    fields: dict[str, str], rest: bytes, sock: socket.socket, deadline: float, clock: Clock
) -> bytes:
    """As much of a refusal's body as it announced, up to a few KiB, within the deadline."""
    try:
        wanted = min(int(fields.get("content-length", "0")), _MAX_ERROR_BODY)
    except ValueError:
        wanted = 0
    body = bytearray(rest[:_MAX_ERROR_BODY])
    try:
        while len(body) < wanted:
            _settimeout(sock, deadline, clock)
            chunk = sock.recv(wanted - len(body))
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return bytes(body)


def _server_said(body: bytes) -> Optional[str]:
    """The server's words in a refused handshake's body: a JSON message, else the text."""
    if not body:
        return None
    text = body.decode("utf-8", "replace").strip()
    try:
        said = server_words(json.loads(text))
    except ValueError:
        said = None
    return redact(said or text)[:200] or None


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
