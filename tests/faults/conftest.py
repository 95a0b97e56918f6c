"""The fault campaign's shared parts: its figures, and a WebSocket peer written by hand.

Tests add to the figures with the ``figures`` fixture (or ``record_property``
with the same names, as ``tests/test_fuzz.py`` does); the totals are printed
at the end of the run, so a CI log shows how much was thrown at the client.

``raw_server`` serves WebSocket written byte by byte: it can cut a frame
anywhere, fragment messages, slip pings between the pieces, and see exactly
what the client sends back.
"""

import base64
import hashlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Callable

import pytest

#: Figure names, as recorded, and how the summary labels them.
FIGURES = {
    "events_sent": "events sent",
    "events_received": "events received",
    "events_lost": "events lost",
    "faults_injected": "faults injected",
    "fuzz_cases": "fuzz cases",
}


@pytest.fixture
def figures(record_property) -> Callable[..., None]:
    """``figures(events_sent=200, events_received=200, events_lost=0, faults_injected=20)``."""

    def add(**counts: int) -> None:
        for name, count in counts.items():
            if name not in FIGURES:
                raise ValueError(f"unknown figure {name!r}: one of {sorted(FIGURES)}")
            record_property(name, count)

    return add


def pytest_terminal_summary(terminalreporter) -> None:
    per_module: dict[str, Counter] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == "call":
                module = per_module.setdefault(report.nodeid.split("::")[0], Counter())
                module.update({name: value for name, value in report.user_properties if name in FIGURES})
    per_module = {module: counts for module, counts in per_module.items() if counts}
    if not per_module:
        return
    terminalreporter.write_sep("=", "livecall fault campaign")
    total: Counter = Counter()
    for module, counts in sorted(per_module.items()):
        total.update(counts)
        terminalreporter.write_line(f"{module}: {_describe(counts)}")
    terminalreporter.write_line(f"total: {_describe(total)}", bold=True)


def _describe(counts: Counter) -> str:
    return ", ".join(f"{label} {counts[name]}" for name, label in FIGURES.items() if name in counts)


# --- a WebSocket server written by hand -------------------------------------------------

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawPeer:
    """The server side of one accepted connection, after the handshake."""

    CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buffer = b""

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
        """One unmasked server frame (RFC 6455 5.2), any size."""
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", fin << 7 | opcode, size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", fin << 7 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", fin << 7 | opcode, 127, size)
        return header + payload

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> tuple[int, bytes]:
        """The client's next frame: (opcode, unmasked payload); fragments are not joined."""
        first, second = self._exactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._exactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._exactly(8))
        mask = self._exactly(4) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(self._exactly(size)))
        return first & 0x0F, payload

    def receive_until(self, opcode: int) -> bytes:
        """Read client frames until one with ``opcode``, answering pings; returns its payload."""
        while True:
            got, payload = self.receive()
            if got == opcode:
                return payload
            if got == self.PING:
                self.send(self.frame(self.PONG, payload))

    def _exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the client closed the TCP connection")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


def _handshake(sock: socket.socket) -> None:
    """Answer the client's upgrade request with 101."""
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the client left during the handshake")
        request += chunk
    headers = dict(line.split(b": ", 1) for line in request.split(b"\r\n")[1:] if b": " in line)
    key = next(value for name, value in headers.items() if name.lower() == b"sec-websocket-key")
    accept = base64.b64encode(hashlib.sha1(key.strip() + _GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


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
                _handshake(sock)
                self.accepted += 1
                self._play(RawPeer(sock))
            except OSError:
                pass  # the client went away: what the test checks, not a server failure
            except BaseException as error:  # reported by the fixture
                self.errors.append(error)
            finally:
                sock.close()

    def stop(self) -> None:
        for sock in [self._listener, *self._connections]:  # shutdown() wakes a blocked accept()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[RawPeer], None]], RawServer]]:
    """Factory: ``raw_server(play)`` serves ``play`` on loopback until the test ends."""
    servers: list[RawServer] = []

    def start(play: Callable[[RawPeer], None]) -> RawServer:
        server = RawServer(play)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        raise errors[0]
