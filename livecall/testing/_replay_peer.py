"""One connection of a replay after its handshake: frames written under a lock, the client's read by a thread.

The replay writes frames itself (``_wire``) rather than through a WebSocket
library: its faults are about bytes (a frame dribbled out, a connection
reset, pings left unanswered with TCP open) and at ``--speed 0`` it must
write faster than a client can read.
"""

import json
import socket
import struct
import threading
import time
from typing import Any, Callable, Optional

from ._record import ConnectionRecord, Journal
from ._wire import BINARY, CLOSE, PING, PONG, TEXT, frame, take_frames

__all__ = ["ReplayPeer", "close_payload"]

#: Pieces a trickled frame is cut into, and the pause between them.
TRICKLE_PIECES, TRICKLE_PAUSE = 32, 0.005


def close_payload(code: Optional[int], reason: str) -> bytes:
    """A close frame's payload: no code at all, or the code and the reason (at most 123 bytes)."""
    if code is None:
        return b""
    return code.to_bytes(2, "big") + reason.encode("utf-8")[:123]


class ReplayPeer:
    """The server side of one connection.

    ``on_message`` gets each JSON object the client sends, on the reader
    thread.  While ``stalled`` nothing is written, pongs and close replies
    included: a peer that went silent with TCP open.  ``over`` turns True once
    the socket is closed, whoever ended it.
    """

    def __init__(
        self,
        sock: socket.socket,
        record: ConnectionRecord,
        journal: Journal,
        on_message: Callable[[dict[str, Any]], None],
    ):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.sock = sock
        self.record = record
        self._journal = journal
        self._on_message = on_message
        self._write_lock = threading.Lock()
        self.stalled = False
        self.close_sent = False

    @property
    def over(self) -> bool:
        return self.record.closed

    def start_reading(self, name: str) -> None:
        threading.Thread(target=self._read, name=name, daemon=True).start()

    # --- writing ---------------------------------------------------------------

    def send(self, payloads: list[Any], data: bytes) -> bool:
        """Write ``data``, the frames of ``payloads``; False if the connection is gone or stalled."""
        with self._write_lock:
            if not self._write(data):
                return False
        for payload in payloads:
            self._journal.add(self.record, payload, sent=True)
        return True

    def trickle(self, payload: Any, data: bytes, stopping: Callable[[], bool]) -> bool:
        """Write ``data`` in small pieces with pauses between them (no pong can come between)."""
        size = max(1, -(-len(data) // TRICKLE_PIECES))
        with self._write_lock:
            for start in range(0, len(data), size):
                if stopping() or not self._write(data[start : start + size]):
                    return False
                time.sleep(TRICKLE_PAUSE)  # the fault itself: bytes spread out in time
        self._journal.add(self.record, payload, sent=True)
        return True

    def close(self, code: Optional[int], reason: str) -> None:
        """Send a close frame (once); the reader closes the socket when the client answers."""
        with self._write_lock:
            if self.close_sent:
                return
            self.close_sent = True
            self._write(frame(CLOSE, close_payload(code, reason)))
        self._journal.update(self.record, server_close_code=code)

    def abort(self) -> None:
        """End the connection with a TCP reset: no close frame, no FIN.

        Shutting the read side wakes the reader, which closes the socket; with
        a zero linger the kernel then sends RST.
        """
        self._journal.update(self.record, reset=True)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass  # already closed

    def _write(self, data: bytes) -> bool:
        if self.stalled or self.over:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    # --- reading ---------------------------------------------------------------

    def _read(self) -> None:
        buffer = bytearray()
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                for opcode, payload in take_frames(buffer):
                    if not self._received(opcode, payload):
                        return
        except OSError:
            pass
        finally:
            self.sock.close()
            self._journal.update(self.record, closed=True)

    def _received(self, opcode: int, payload: bytes) -> bool:
        """Handle one client frame; False once the connection is over."""
        if self.stalled:
            return True  # a dead peer hears nothing
        if opcode == PING:
            with self._write_lock:
                self._write(frame(PONG, payload))
        elif opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self._journal.update(self.record, client_close_code=code)
            self.close(code, "")  # the echo, unless we closed first
            return False
        elif opcode in (TEXT, BINARY):
            self._journal.add(
                self.record, payload.decode("utf-8", "replace") if opcode == TEXT else payload, sent=False
            )
            message = _json_object(payload) if opcode == TEXT else None
            if message is not None:
                self._on_message(message)
        return True


def _json_object(payload: bytes) -> Optional[dict[str, Any]]:
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
