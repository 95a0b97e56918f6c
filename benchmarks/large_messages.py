"""(6) Large messages: one 16 MiB and one 32 MiB message, livecall's engine beside websocket-client.

A loopback server sends one text frame of the size right after the
handshake.  Each reader's time runs from the open connection to the whole
message in hand: livecall's engine (its protocol core, UTF-8 checked at
C speed, ``max_message_size`` raised to fit) against websocket-client's
``recv()`` with UTF-8 validation off, its fastest.  They take turns, so that
noise falls on both alike.  Target: livecall at most twice websocket-client's
time, which needs reading in linear time.
"""

import socket
import threading
import time
from typing import Any

import websocket

from livecall._wire.protocol import Protocol
from livecall.testing._wire import TEXT, accept_handshake, frame, open_plain

from ._report import Row, number, verdict
from ._stats import spread

NAME = "large_messages"
FULL = dict(sizes_mib=(16, 32), rounds=5)
QUICK = dict(sizes_mib=(1,), rounds=1)
READERS = ("livecall", "websocket-client")


class OneFrameServer:
    """Serves one prepared frame per connection, then waits for the client to hang up."""

    def __init__(self, payload: bytes):
        self._frame = frame(TEXT, payload)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, name="bench-large-server", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with sock:
                try:
                    accept_handshake(sock)
                    sock.sendall(self._frame)
                    sock.recv(1)  # the client's close frame, or its hang-up
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


def livecall_read(url: str, size: int) -> float:
    """livecall's handshake and protocol core, read on a plain blocking socket: the engine alone."""
    clock = time.monotonic
    handshake = open_plain(url)
    sock = handshake.sock
    started = time.perf_counter()
    protocol = Protocol(clock(), max_message_size=2 * size)
    protocol.receive_data(handshake.rest, clock())
    try:
        while True:
            messages = protocol.messages_received()
            if messages:
                took = time.perf_counter() - started
                if len(messages[0]) != size:
                    raise RuntimeError(f"got {len(messages[0])} bytes, not {size}")
                return took
            data = sock.recv(256 * 1024)
            if not data:
                raise RuntimeError("livecall did not deliver the message")
            protocol.receive_data(data, clock())
    finally:
        sock.close()


def websocket_client_read(url: str, size: int) -> float:
    ws = websocket.WebSocket(skip_utf8_validation=True)
    ws.connect(url)
    started = time.perf_counter()
    message = ws.recv()
    seconds = time.perf_counter() - started
    ws.shutdown()
    if len(message) != size:
        raise RuntimeError(f"got {len(message)} bytes, not {size}")
    return seconds


def run(sizes_mib: tuple[int, ...], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mib in sizes_mib:
        size = mib * 1024 * 1024
        server = OneFrameServer(b"x" * size)
        try:
            times: dict[str, list[float]] = {reader: [] for reader in READERS}
            for _ in range(rounds):
                times["livecall"].append(livecall_read(server.url, size))
                times["websocket-client"].append(websocket_client_read(server.url, size))
        finally:
            server.close()
        seconds = {reader: spread(values) for reader, values in times.items()}
        ratio = seconds["livecall"]["median"] / seconds["websocket-client"]["median"]
        results[f"{mib}MiB"] = dict(seconds=seconds, livecall_vs_websocket_client=ratio)
    return results


def table(result: dict[str, Any]) -> list[Row]:
    rows = []
    for size, figures in result.items():
        seconds = figures["seconds"]
        ratio = figures["livecall_vs_websocket_client"]
        rows += [
            Row(f"{size}: livecall", f"{number(seconds['livecall']['median'])} s"),
            Row(f"{size}: websocket-client", f"{number(seconds['websocket-client']['median'])} s"),
            Row(f"{size}: livecall / websocket-client", f"{ratio:.2f}", "<= 2", verdict(ratio <= 2)),
        ]
    return rows
