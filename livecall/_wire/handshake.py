"""The opening handshake (RFC 6455 section 4), client side, without I/O.

A driver owns the socket, TLS, any proxy and the deadline: it sends the
bytes :func:`upgrade_request` builds and feeds what it reads to an
:class:`UpgradeReader`, which says when the answer is whole and judges it.
Nothing here touches a socket or reads a clock, so every rule about the
server's answer is tested with bytes alone, however the bytes are cut.

The response head may have at most 100 headers and 16 KiB.  Redirects are
refused: following one would send the credentials in the request headers
to whatever host the server names.
"""

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable
from typing import Optional
from urllib.parse import urljoin, urlsplit

import attrs

from .._codec import server_words
from .._safety.secrets import HiddenLines, redact
from ..errors import AuthenticationError, ProtocolError
from .checks import header_text

__all__ = [
    "MAX_RESPONSE_HEAD",
    "MAX_RESPONSE_HEADERS",
    "ConnectFailed",
    "Head",
    "HeadReader",
    "Target",
    "UpgradeReader",
    "connect_request",
    "new_key",
    "upgrade_request",
]

MAX_RESPONSE_HEADERS = 100
MAX_RESPONSE_HEAD = 16 * 1024
#: Bytes of a refused handshake's body read for the server's explanation.
_MAX_ERROR_BODY = 4096
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Handshake statuses worth another try: the service is busy or restarting.
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Control characters, which no header line may hold (RFC 9110 5.5): HTAB aside.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


class ConnectFailed(Exception):
    """The connection could not be opened but a later attempt may succeed."""


@attrs.frozen
class Target:
    """Where a URL points.  Its resource (path and query) may hold a token: never shown."""

    secure: bool
    host: str
    port: int
    host_header: str
    resource: str = attrs.field(repr=False)

    @classmethod
    def of(cls, url: str) -> "Target":
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        return cls(
            secure=secure,
            host=parts.hostname or "",
            port=parts.port or (443 if secure else 80),
            host_header=parts.netloc.rpartition("@")[2],
            resource=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        )


@attrs.frozen
class Head:
    """An HTTP response head: its status and its headers, by lower-case name."""

    status: int
    fields: dict[str, str]


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded."""
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(target: Target, key: str, headers: Iterable[str]) -> bytes:
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
    return _request(lines)


def connect_request(host: str, port: int, auth: Optional[tuple]) -> bytes:
    """An HTTP proxy's CONNECT request, built apart so that the frame reading the proxy's
    answer holds neither its user name nor its password (a traceback may print a frame's locals)."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if auth:
        basic = base64.b64encode(":".join(auth).encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {basic}")
    return _request(lines)


def _request(lines: Iterable[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class HeadReader:
    """An HTTP response head, fed in pieces however they are cut.

    :meth:`receive_data` returns None while the head is incomplete, then the
    head and the bytes that followed it; ``b""`` stands for the end of the
    connection.  A head over the limits is refused as soon as it is.
    """

    def __init__(self) -> None:
        self._data = bytearray()

    def receive_data(self, data: bytes) -> Optional[tuple[Head, bytes]]:
        if not data:
            raise ConnectFailed("the server closed the connection during the handshake")
        searched = max(0, len(self._data) - 3)  # the blank line may straddle two pieces
        self._data += data
        end = self._data.find(b"\r\n\r\n", searched)
        if end < 0 and len(self._data) <= MAX_RESPONSE_HEAD:
            return None
        if end < 0 or end > MAX_RESPONSE_HEAD:
            raise ProtocolError(f"the server's response head is over {MAX_RESPONSE_HEAD} bytes")
        return _parse_head(bytes(self._data[:end])), bytes(self._data[end + 4 :])


def _parse_head(head: bytes) -> Head:
    lines = head.decode("latin-1").split("\r\n")
    if len(lines) - 1 > MAX_RESPONSE_HEADERS:
        raise ProtocolError(f"the server's response has over {MAX_RESPONSE_HEADERS} headers")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not _is_number(status_line[1]):
        raise ProtocolError("the server's response is not HTTP")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or _CONTROL.search(line):
            raise ProtocolError("malformed header in the server's response")
        name = name.strip().lower()
        value = value.strip()
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    return Head(int(status_line[1]), fields)


def _is_number(text: str) -> bool:
    """Digits ``int()`` reads as such: ``str.isdigit`` alone takes ``²`` too."""
    return text.isascii() and text.isdigit()


class UpgradeReader:
    """The server's answer to an upgrade request, fed in pieces and judged once whole.

    :meth:`receive_data` returns None while it needs more, then the bytes
    that came after a good 101 head (the server's first frames, perhaps);
    ``b""`` stands for the end of the connection.  Any other answer raises:
    ``ProtocolError`` for a redirect, a bad upgrade or a final refusal,
    ``AuthenticationError`` for 401 and 403, ``ConnectFailed`` for a refusal
    worth another try.  A refusal is judged once its body (up to a few KiB,
    for the server's words) has come; :attr:`refused` tells a driver that one
    is coming, and :meth:`cut_short` judges it on what came if the connection
    fails first.  Messages name ``safe_url``, never the request's URL.
    """

    def __init__(self, target: Target, key: str, *, safe_url: str):
        self._head = HeadReader()
        self._origin = f"{'https' if target.secure else 'http'}://{target.host_header}/"
        self._key = key
        self._safe_url = safe_url
        #: The refusal whose body is being read, and how much of its body is wanted.
        self._refusal: Optional[Head] = None
        self._wanted = 0
        self._body = bytearray()

    @property
    def refused(self) -> Optional[int]:
        """The status of a refusal, once its head is read (and not a redirect's)."""
        return None if self._refusal is None else self._refusal.status

    def receive_data(self, data: bytes) -> Optional[bytes]:
        if self._refusal is not None:
            self._body += data[: self._wanted - len(self._body)]
            if data and len(self._body) < self._wanted:
                return None
            raise self._refusal_error(self._refusal)
        got = self._head.receive_data(data)
        if got is None:
            return None
        head, rest = got
        if head.status == 101:
            _check_upgrade(head.fields, self._key)
            return rest
        if head.status in _REDIRECT_STATUSES:
            raise self._redirect_error(head)
        self._refusal = head
        self._wanted = _announced_body(head)
        self._body = bytearray(rest[:_MAX_ERROR_BODY])
        if len(self._body) < self._wanted:
            return None
        raise self._refusal_error(head)

    def cut_short(self) -> Optional[Exception]:
        """The error to raise when the connection fails before the answer is whole.

        A refusal is judged on as much of its body as came; None means the
        failure is the error, the answer being unknown.
        """
        return None if self._refusal is None else self._refusal_error(self._refusal)

    def _redirect_error(self, head: Head) -> ProtocolError:
        target = urlsplit(urljoin(self._origin, head.fields.get("location", "")))
        where = f"to {target.hostname}" if target.hostname else "without a location"
        return ProtocolError(
            f"{self._safe_url} answered the handshake with a redirect (HTTP {head.status}) {where}; "
            "redirects are not followed, so credentials never go to another host",
            code=head.status,
        )

    def _refusal_error(self, head: Head) -> Exception:
        status = head.status
        said = _server_said(bytes(self._body))
        detail = f": {said}" if said else ""
        if status in (401, 403):
            return AuthenticationError(
                f"{self._safe_url} refused the credentials (HTTP {status}){detail}",
                status=status,
                server_message=said,
            )
        message = f"{self._safe_url} refused the WebSocket handshake (HTTP {status}){detail}"
        if status in _RETRYABLE_STATUSES:
            return ConnectFailed(message)
        return ProtocolError(message, code=status)


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


def _announced_body(head: Head) -> int:
    """How much of a refusal's body to wait for: what it announced, up to a few KiB."""
    try:
        return min(int(head.fields.get("content-length", "0")), _MAX_ERROR_BODY)
    except ValueError:
        return 0


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
