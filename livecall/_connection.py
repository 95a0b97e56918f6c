"""One WebSocket connection driven by one thread: the socket loop around the protocol core.

The reading thread opens the connection (:mod:`._handshake`), then waits on
the socket until data comes or the protocol's next deadline passes, feeds
what it read to :class:`~._protocol.Protocol`, hands complete messages over
and writes what the protocol wants written.  Idle, it sleeps until the next
heartbeat is due.  Other threads send and close through the same protocol
object, under a lock, and wake the reading thread so it sees the new
deadline at once.
"""

import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Callable, Optional, Union

from ._handshake import ConnectFailed, ProxySettings, describe, open_connection
from ._protocol import DEFAULT_MAX_MESSAGE_SIZE, Cause, Message, Outcome, Protocol
from ._secrets import HiddenText

__all__ = ["Connection", "ConnectFailed", "Outcome", "ProxySettings"]

#: ``-v`` shows its progress, ``-vv`` its frames: never a payload, never a credential.
log = logging.getLogger("livecall.connection")

Deliver = Callable[[Message, float], None]
#: Bytes asked of the socket per read: a few hundred typical frames.
_READ_SIZE = 64 * 1024
#: poll() needs no file descriptor of its own (epoll does); a thousand calls are a thousand sockets.
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)


class Connection:
    """A socket plus its protocol state; one per attempt."""

    def __init__(
        self,
        url: str,
        headers: Iterable[str],
        *,
        ping_interval: Optional[float],
        ping_timeout: float,
        connect_timeout: float,
        close_timeout: float,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy: Optional[ProxySettings] = None,
        safe_url: str = "",
    ):
        self._url = HiddenText(url)  # its query may hold a token: kept out of tracebacks
        self._headers = headers
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._proxy = proxy
        self.safe_url = safe_url
        self._protocol_options = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
        )
        #: A socket operation that blocks this long is a dead peer (a TLS record
        #: trickled byte by byte, a server that stopped reading).
        self._io_timeout = max(0.05, min(ping_timeout, close_timeout))
        self._lock = threading.Lock()  # the protocol object and socket writes
        self._sock: Optional[Union[socket.socket, ssl.SSLSocket]] = None
        self._protocol: Optional[Protocol] = None
        self._rest = b""
        self._closing = False  # close() came before the connection opened
        self._wake_reader: Optional[socket.socket] = None
        self._wake_writer: Optional[socket.socket] = None
        self.opened_at = 0.0

    def open(self) -> None:
        """Connect and handshake; raises ``AuthenticationError``, ``ProtocolError`` or ``ConnectFailed``."""
        clock = time.monotonic
        via = f" through the proxy {self._proxy.host}:{self._proxy.port}" if self._proxy is not None else ""
        log.info("connecting to %s%s", self.safe_url, via)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_writer.setblocking(False)
        try:
            handshake = open_connection(
                self._url,
                self._headers,
                safe_url=self.safe_url,
                deadline=clock() + self._connect_timeout,
                clock=clock,
                ssl_context=self._ssl_context,
                proxy=self._proxy,
                on_socket=self._adopt,
            )
        except BaseException:
            self._close_wakers()
            raise
        log.info("handshake with %s: HTTP 101, connected", self.safe_url)
        with self._lock:
            self.opened_at = now = clock()
            self._sock, self._rest = handshake.sock, handshake.rest
            self._protocol = Protocol(now, **self._protocol_options)  # type: ignore[arg-type]
            if self._closing:
                self._protocol.close(now)

    def read(self, deliver: Deliver) -> Outcome:
        """Hand every message to ``deliver`` until the connection ends; never raises."""
        protocol, sock, wake = self._protocol, self._sock, self._wake_reader
        assert protocol is not None and sock is not None and wake is not None
        clock, wall = time.monotonic, time.time
        sock.settimeout(self._io_timeout)
        selector = _Selector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        data: Optional[bytes] = self._rest
        self._rest = b""
        frames_logged = log.isEnabledFor(logging.DEBUG)  # once: the loop below is the hot path
        pings = pongs = 0
        try:
            while True:
                # Timers run on the time of the read, not of the end of delivery:
                # a reader held up by busy plugins reads what the server sent
                # meanwhile (a pong, say) before it judges the server silent.
                read_at = clock()
                if data:
                    with self._lock:
                        protocol.receive_data(data, read_at)
                    messages = protocol.messages_received()
                    if frames_logged:
                        _log_frames_in(messages, protocol.pongs_received - pongs)
                        pongs = protocol.pongs_received
                    if messages:
                        received_at = wall()
                        for message in messages:
                            deliver(message, received_at)
                            if protocol.close_expired(clock()):
                                read_at = clock()  # we closed: whatever is left goes unread
                                break
                with self._lock:
                    protocol.handle_timer(read_at)
                    if frames_logged and protocol.pings_sent != pings:
                        pings = protocol.pings_sent
                        log.debug("ping sent after %.1f s of silence", protocol.silence_before_ping)
                    self._flush(protocol, sock)
                    if protocol.finished:
                        break
                    deadline = protocol.next_deadline()
                data = self._receive(sock, wake, selector, deadline, clock)
                if data is None:
                    with self._lock:
                        protocol.connection_lost()
        except (OSError, ssl.SSLError) as error:
            with self._lock:
                protocol.connection_lost(describe(error))
        finally:
            selector.close()
            self._shut_down()
            sock.close()
            self._close_wakers()
        assert protocol.outcome is not None
        if frames_logged and protocol.outcome.cause is Cause.SERVER_CLOSED:
            log.debug("frame out: close, the closing handshake's reply")
        return protocol.outcome

    def _receive(
        self,
        sock: socket.socket,
        wake: socket.socket,
        selector: selectors.BaseSelector,
        deadline: Optional[float],
        clock: Callable[[], float],
    ) -> Optional[bytes]:
        """Bytes read (``b""`` when a deadline or a wake-up came first); None at end of stream."""
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
        if not pending:
            timeout = None if deadline is None else max(0.0, deadline - clock())
            ready = {key.fileobj for key, _ in selector.select(timeout)}
            if wake in ready:
                wake.recv(4096)
            if sock not in ready:
                return b""
        try:
            data = sock.recv(_READ_SIZE)
        except (socket.timeout, ssl.SSLWantReadError):
            return b""
        return data if data else None

    def send(self, message: Message) -> None:
        """Send a text (``str``) or binary (``bytes``) message; safe from any thread."""
        with self._lock:
            protocol, sock = self._protocol, self._sock
            if protocol is None or sock is None:
                raise ConnectionError("not connected")
            protocol.send(message)
            log.debug("frame out: %s, %d bytes", *_kind_and_size(message))
            self._flush(protocol, sock)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the reading thread finishes it or gives up in time.

        Before the handshake is over there is nothing to close politely: the
        socket is shut down, so a handshake waiting on a mute server ends now,
        not at the connect timeout.
        """
        with self._lock:
            protocol = self._protocol
            if protocol is None:
                self._closing = True
                self._shut_down()
                return
            protocol.close(time.monotonic(), code, reason)
        log.debug("frame out: close, code %d", code)
        self._wake()

    def _flush(self, protocol: Protocol, sock: socket.socket) -> None:
        """Write what the protocol has for the server; a failed write ends the connection."""
        data = protocol.data_to_send()
        if not data:
            return
        try:
            sock.sendall(data)
        except OSError as error:
            protocol.connection_lost(describe(error))
            self._wake()

    def _adopt(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self._closing:
                self._shut_down()

    def _wake(self) -> None:
        try:
            if self._wake_writer is not None:
                self._wake_writer.send(b"\0")
        except OSError:
            pass  # already awake, or already over

    def _shut_down(self) -> None:
        """Wake whoever waits on the socket; it stays open for its owner to close."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_wakers(self) -> None:
        for sock in (self._wake_reader, self._wake_writer):
            if sock is not None:
                sock.close()


def _kind_and_size(message: Message) -> tuple[str, int]:
    if isinstance(message, str):
        return "text", len(message.encode("utf-8", "replace"))
    return "binary", len(message)


def _log_frames_in(messages: list[Message], new_pongs: int) -> None:
    """Each message's type and size, never its words; then the pongs that came."""
    for message in messages:
        log.debug("frame in: %s, %d bytes", *_kind_and_size(message))
    for _ in range(new_pongs):
        log.debug("frame in: pong, 0 bytes")
