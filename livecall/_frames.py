"""Cutting WebSocket frames (RFC 6455 section 5) out of large socket reads."""

import socket
from typing import Optional

import websocket

__all__ = ["BINARY", "CLOSE", "PING", "TEXT", "FrameReader"]

CONT = websocket.ABNF.OPCODE_CONT
TEXT = websocket.ABNF.OPCODE_TEXT
BINARY = websocket.ABNF.OPCODE_BINARY
CLOSE = websocket.ABNF.OPCODE_CLOSE
PING = websocket.ABNF.OPCODE_PING
#: First header byte of a whole, unfragmented text or binary frame: the usual case.
_WHOLE_TEXT, _WHOLE_BINARY = 0x80 | TEXT, 0x80 | BINARY
#: Bytes asked of the socket per read: a few hundred typical frames.
_READ_SIZE = 64 * 1024


class FrameReader:
    """Messages and control frames cut out of large reads (RFC 6455 section 5).

    websocket-client reads each frame with two or three small ``recv`` calls
    and wraps it in objects: on a busy stream that costs more than decoding
    the JSON, and every ``recv`` hands the GIL over.  This reads whatever the
    socket has, up to ``_READ_SIZE`` bytes, and returns every complete frame in
    it; a frame cut across reads waits for its rest, so a read that times out
    (``socket.timeout``) loses nothing.  Frames get websocket-client's own
    checks, with its messages.
    """

    def __init__(self, sock: socket.socket):
        self._recv = sock.recv
        self._buffer = b""
        self._fragments: Optional[list[bytes]] = None  # a message still arriving in pieces
        self._fragmented_opcode = TEXT

    def read(self) -> list[tuple[int, bytes]]:
        """(opcode, payload) of each message (pieces joined) and control frame in one read."""
        chunk = self._recv(_READ_SIZE)
        if not chunk:
            raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
        buffer = self._buffer + chunk if self._buffer else chunk
        end = len(buffer)
        position = 0
        received = []
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            size, start = second & 0x7F, position + 2
            if size == 126:
                size, start = int.from_bytes(buffer[start : start + 2], "big"), start + 2
            elif size == 127:
                size, start = int.from_bytes(buffer[start : start + 8], "big"), start + 8
            if second & 0x80:
                start += 4  # a masked frame; servers should not, but may
            stop = start + size
            if stop > end:
                break
            payload = buffer[start:stop]
            position = stop
            if second & 0x80:
                payload = websocket.ABNF.mask(buffer[start - 4 : start], payload)
            if (first == _WHOLE_TEXT or first == _WHOLE_BINARY) and self._fragments is None:
                received.append((first & 0x0F, payload))
            else:
                frame = self._unusual(first, payload)
                if frame is not None:
                    received.append(frame)
        self._buffer = buffer[position:]
        return received

    def _unusual(self, first: int, payload: bytes) -> Optional[tuple[int, bytes]]:
        """A control frame or a piece of a message, checked; None while a message is incomplete."""
        fin, opcode = first >> 7, first & 0x0F
        websocket.ABNF(fin, first >> 6 & 1, first >> 5 & 1, first >> 4 & 1, opcode, 0, payload).validate(
            skip_utf8_validation=True
        )
        if opcode >= CLOSE:
            if opcode == PING and len(payload) >= 126:
                raise websocket.WebSocketProtocolException("Ping message is too long")
            return opcode, payload
        if (opcode == CONT) == (self._fragments is None):
            raise websocket.WebSocketProtocolException("Illegal frame")
        if self._fragments is None:
            self._fragments, self._fragmented_opcode = [], opcode
        self._fragments.append(payload)
        if not fin:
            return None
        message = b"".join(self._fragments)
        self._fragments = None
        return self._fragmented_opcode, message
