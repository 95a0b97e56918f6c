"""One WebSocket connection: open it, read frames with a heartbeat, close it.

Reading happens on one thread only.  The socket has a short timeout (the
*tick*) so the reading thread regains control while the peer is quiet: that
is when it sends keepalive pings, notices a missed pong, and enforces the
close deadline.  websocket-client opens the connection and sends; frames are
read by :class:`FrameReader`, which keeps partial frames across timeouts, so
a tick never splits a message.  Sending and closing are safe from any thread.
"""

import functools
import json
import logging
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional

import attrs
import websocket

from ._frames import BINARY, CLOSE, PING, TEXT, FrameReader
from ._secrets import redact
from ._server_words import server_words
from .errors import AuthenticationError, ProtocolError

__all__ = ["Connection", "ConnectFailed", "Outcome", "ProxySettings"]

#: ``-v`` shows its progress, ``-vv`` its frames: never a payload, never a credential.
log = logging.getLogger("livecall.connection")

#: Close code when the peer vanished without a close frame (RFC 6455 7.1.5).
ABNORMAL = 1006
#: Frame types by opcode, for the ``-vv`` log.
_FRAME_TYPES = {
    TEXT: "text",
    BINARY: "binary",
    CLOSE: "close",
    PING: "ping",
    websocket.ABNF.OPCODE_PONG: "pong",
}
#: Handshake statuses worth another try: the service is busy or restarting.
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

Deliver = Callable[[bytes, bool, float], None]


@attrs.frozen
class ProxySettings:
    """An HTTP proxy to tunnel through; websocket-client otherwise reads ``https_proxy``."""

    host: str
    port: int
    auth: Optional[tuple] = attrs.field(default=None, repr=False)
    type: str = "http"


@attrs.frozen
class Outcome:
    """How a connection ended: the close code (1006 when no close frame came) and why."""

    code: int
    reason: str
    heard_from_server: bool


class ConnectFailed(Exception):
    """The connection could not be opened but a later attempt may succeed."""


class Connection:
    """A connected socket plus the state its heartbeat needs; one per attempt."""

    def __init__(
        self,
        url: str,
        headers: Iterable[str],
        *,
        ping_interval: Optional[float],
        ping_timeout: float,
        connect_timeout: float,
        close_timeout: float,
        sslopt: Optional[dict[str, Any]] = None,
        proxy: Optional[ProxySettings] = None,
        safe_url: str = "",
    ):
        self._url = url
        self._headers = headers
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._proxy = proxy
        self.safe_url = safe_url
        bounds = [t for t in (ping_interval, ping_timeout, close_timeout) if t]
        self.tick = max(0.01, min(bounds + [1.0]) / 2)
        self._close_deadline: Optional[float] = None
        self._opened = False  # the handshake is over: a close frame can go out
        self._ws = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True, enable_multithread=True)

    def open(self) -> None:
        """Connect and handshake; raises ``AuthenticationError``, ``ProtocolError`` or ``ConnectFailed``."""
        options: dict[str, Any] = {"header": self._headers, "timeout": self._connect_timeout}
        if self._proxy is not None:
            options.update(
                http_proxy_host=self._proxy.host,
                http_proxy_port=self._proxy.port,
                http_proxy_auth=self._proxy.auth,
                proxy_type=self._proxy.type,
            )
        via = f" through the proxy {self._proxy.host}:{self._proxy.port}" if self._proxy is not None else ""
        log.info("connecting to %s%s", self.safe_url, via)
        try:
            self._ws.connect(self._url, **options)
        except websocket.WebSocketBadStatusException as error:
            self.abort()
            log.info("handshake with %s: HTTP %s", self.safe_url, error.status_code)
            raise self._refused(error.status_code, _server_said(getattr(error, "resp_body", None))) from None
        except ssl.SSLCertVerificationError as error:
            self.abort()
            raise ProtocolError(
                f"TLS certificate of {self.safe_url} could not be verified: {error.verify_message}"
            ) from None
        except (OSError, websocket.WebSocketException) as error:
            self.abort()
            raise ConnectFailed(f"could not connect to {self.safe_url}: {_describe(error)}") from None
        self._opened = True
        log.info("handshake with %s: HTTP %s, connected", self.safe_url, self._ws.getstatus())
        self._ws.settimeout(self.tick)

    def _refused(self, status: int, said: Optional[str]) -> Exception:
        detail = f": {said}" if said else ""
        if status in (401, 403):
            return AuthenticationError(
                f"{self.safe_url} refused the credentials (HTTP {status}){detail}",
                status=status,
                server_message=said,
            )
        message = f"{self.safe_url} refused the WebSocket handshake (HTTP {status}){detail}"
        if status in _RETRYABLE_STATUSES:
            return ConnectFailed(message)
        return ProtocolError(message, code=status)

    def read(self, deliver: Deliver) -> Outcome:
        """Hand every data message to ``deliver`` until the connection ends; never raises."""
        ws = self._ws
        sock = ws.sock
        assert sock is not None, "read() comes after a successful open()"
        frames = FrameReader(sock)
        clock = time.monotonic
        wall = time.time
        heard = False
        heard_from_server = False
        last_heard = clock()
        ping_sent: Optional[float] = None
        frames_logged = log.isEnabledFor(logging.DEBUG)  # once: the loop below is the hot path
        while True:
            try:
                received = frames.read()
            except socket.timeout:
                now = clock()
                if heard:
                    heard, last_heard, ping_sent = False, now, None
                if self._close_deadline is not None and now >= self._close_deadline:
                    self.abort()
                    return Outcome(ABNORMAL, "no close frame from the server in time", heard_from_server)
                if ping_sent is not None and now - ping_sent >= self._ping_timeout:
                    self.abort()
                    return Outcome(ABNORMAL, f"no pong within {self._ping_timeout:g} s", heard_from_server)
                if ping_sent is None and self._ping_interval and now - last_heard >= self._ping_interval:
                    ping_sent = now
                    log.debug("ping sent after %.1f s of silence", now - last_heard)
                    self._send_quietly(ws.ping)
                continue
            except (OSError, websocket.WebSocketException) as error:
                self.abort()
                return Outcome(ABNORMAL, _describe(error), heard_from_server)
            if not received:
                continue
            heard = True
            received_at = wall()
            for opcode, payload in received:
                if frames_logged:
                    log.debug("frame in: %s, %d bytes", _FRAME_TYPES.get(opcode, opcode), len(payload))
                if opcode == TEXT or opcode == BINARY:
                    heard_from_server = True
                    deliver(payload, opcode == BINARY, received_at)
                    if self._close_deadline is not None and clock() >= self._close_deadline:
                        self.abort()  # a peer that talks on past our close frame
                        return Outcome(ABNORMAL, "server kept sending after close", True)
                elif opcode == PING:
                    log.debug("frame out: pong, %d bytes", len(payload))
                    self._send_quietly(functools.partial(ws.pong, payload))
                elif opcode == CLOSE:
                    log.debug("frame out: close, the closing handshake's reply")
                    self._send_quietly(ws.send_close)
                    self.abort()
                    return Outcome(*_close_status(payload), heard_from_server)

    def send(self, text: str) -> None:
        """Send a text frame; safe from any thread (websocket-client locks sends)."""
        log.debug("frame out: text, %d bytes", len(text.encode("utf-8")))
        self._ws.send(text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the reading thread finishes it or gives up in time.

        Before the handshake is over there is nothing to close politely: the
        socket is shut down, so a handshake waiting on a mute server ends now,
        not at the connect timeout.
        """
        if not self._opened:
            self._shut_down()
        elif self._close_deadline is None and self._send_quietly(
            lambda: self._ws.send_close(code, reason.encode())
        ):
            log.debug("frame out: close, code %d", code)
            self._close_deadline = time.monotonic() + self._close_timeout

    def abort(self) -> None:
        """Drop the socket at once; wakes a reader blocked in recv."""
        self._shut_down()
        self._ws.shutdown()

    def _shut_down(self) -> None:
        """Wake whoever waits on the socket; it stays open for its owner to close."""
        sock = self._ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _send_quietly(send: Callable[[], Any]) -> bool:
        # A send on a dying socket fails; the reader notices the death itself.
        try:
            send()
        except (OSError, websocket.WebSocketException):
            return False
        return True


def _server_said(body: Optional[bytes]) -> Optional[str]:
    """The server's words in a refused handshake's body: a JSON message, else the text."""
    if not body:
        return None
    text = body.decode("utf-8", "replace").strip()
    try:
        said = server_words(json.loads(text))
    except ValueError:
        said = None
    return redact(said or text)[:200] or None


def _close_status(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""
    (code,) = struct.unpack("!H", payload[:2])
    return code, redact(payload[2:].decode("utf-8", "replace"))


def _describe(error: BaseException) -> str:
    text = str(error)
    return redact(f"{type(error).__name__}: {text}" if text else type(error).__name__)
