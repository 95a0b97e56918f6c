"""The server side of RFC 6455 written by hand: the handshake, frames, and a server that plays them.

The Simulator speaks WebSocket through the websockets library, which only
writes well-formed frames.  Tests of the client's framing need what no
library writes (a frame cut anywhere, a masked server frame, a reserved bit,
fragments with pings between them), and the benchmarks need a server that
costs far less than the client it measures.  Both are built on this module;
it uses the standard library only.
"""

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Callable

from .._hub.connect import Handshake, open_connection

__all__ = [
    "open_plain",
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "RawPeer",
    "RawServer",
    "accept_handshake",
    "answer_upgrade",
    "frame",
    "read_request",
    "take_frames",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"", rsv: int = 0) -> bytes:
    """One frame (RFC 6455 5.2), any size; masked with the 4 bytes of ``mask`` when given
    (servers must not mask, a test may), with the reserved bits ``rsv`` (0 to 7)."""
    size = len(payload)
    masked = 0x80 if mask else 0
    if size < 126:
        length = bytes((masked | size,))
    elif size < 1 << 16:
        length = bytes((masked | 126,)) + size.to_bytes(2, "big")
    else:
        length = bytes((masked | 127,)) + size.to_bytes(8, "big")
    if mask:
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((fin << 7 | rsv << 4 | opcode,)) + length + mask + payload


def take_frames(buffer: bytearray) -> Iterator[tuple[int, bytes]]:
    """Complete frames taken off the front of ``buffer``, as (opcode, unmasked payload).

    A partial frame stays in ``buffer`` for the next read; fragments are not
    joined.  Each frame leaves the buffer before it is yielded, so a caller
    may stop after any of them.
    """
    while len(buffer) >= 2:
        size, start = buffer[1] & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(buffer[2:10], "big"), 10
        masked = buffer[1] & 0x80
        mask = bytes(buffer[start : start + 4]) if masked else b"\0\0\0\0"
        start += 4 if masked else 0
        if len(buffer) < start + size:
            return
        payload = bytes(byte ^ mask[i & 3] for i, byte in enumerate(buffer[start : start + size]))
        opcode = buffer[0] & 0x0F
        del buffer[: start + size]
        yield opcode, payload


def read_request(sock: socket.socket) -> bytes:
    """An HTTP request's head, up to its blank line: an upgrade request, or a proxy's CONNECT.

    Clients send nothing more before the answer, so this reads the request
    and nothing else.  ConnectionError if the client leaves first.
    """
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the client left before its request was whole")
        request += chunk
    return request


def accept_handshake(sock: socket.socket) -> None:
    """Read the client's upgrade request and answer it with 101."""
    answer_upgrade(sock, read_request(sock))


def answer_upgrade(sock: socket.socket, request: bytes) -> None:
    """Answer an upgrade request already read (its head, from :func:`read_request`) with 101."""
    headers = dict(line.split(b":", 1) for line in request.split(b"\r\n")[1:] if b":" in line)
    key = next(value for name, value in headers.items() if name.strip().lower() == b"sec-websocket-key")
    accept = base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


class RawPeer:
    """The server side of one accepted connection, after the handshake: frames as bytes.

    For a test of what a server the simulator would never be does to a
    plugin (echoes a credential, floods, breaks the protocol): ``frame()``
    builds any frame, valid or not, and the opcodes are attributes
    (``peer.TEXT``, ``peer.CLOSE``...).
    """

    CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG
    frame = staticmethod(frame)

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = bytearray()

    def send(self, data: bytes) -> None:
        """Send ``data`` as it is: one frame, many, or half of one."""
        self.sock.sendall(data)

    def receive(self) -> tuple[int, bytes]:
        """The client's next frame: (opcode, unmasked payload); fragments are not joined."""
        while True:
            got = next(take_frames(self._buffer), None)
            if got is not None:
                return got
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the client closed the TCP connection")
            self._buffer += chunk

    def receive_until(self, opcode: int) -> bytes:
        """Read client frames until one with ``opcode``, answering pings; returns its payload."""
        while True:
            got, payload = self.receive()
            if got == opcode:
                return payload
            if got == PING:
                self.send(frame(PONG, payload))


class RawServer:
    """Accepts connections on loopback and plays ``play(peer)`` on each, in order.

    ``accepted`` counts handshakes; ``errors`` keeps what a ``play`` raised, so
    the test can fail on it instead of the thread dying unseen.
    """

    def __init__(self, play: Callable[[RawPeer], None]):
        self._play = play
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="raw-websocket-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            self._connections.append(sock)
            try:
                accept_handshake(sock)
                self.accepted += 1
                self._play(RawPeer(sock))
            except OSError:
                pass  # the client went away: what the test checks, not a server failure
            except BaseException as error:  # reported by whoever stops the server
                self.errors.append(error)
            finally:
                sock.close()

    def stop(self) -> None:
        """Close the listener and every connection, and wait for the serving thread."""
        for sock in [self._listener, *self._connections]:  # shutdown() wakes a blocked accept()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._listener.close()


def open_plain(url: str, timeout: float = 10.0) -> Handshake:
    """livecall's own opening handshake to ``url``, on a plain blocking socket: for a benchmark or
    an agent that drives the protocol core itself, with no credentials, TLS options or proxy."""
    clock = time.monotonic
    return open_connection(
        url,
        [],
        safe_url=url,
        deadline=clock() + timeout,
        clock=clock,
        ssl_context=None,
        proxy=None,
        on_socket=lambda sock: None,
    )
