"""Accepted TCP connections the simulator can silence or cut from outside websockets.

websockets answers pings by itself in its reader thread, so a server that
merely stops sending still looks alive.  Every byte it reads or writes goes
through this socket object, though: freezing it here makes the connection a
dead peer for real, with TCP left open.
"""

import socket
import struct
import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import ReadableBuffer


class SimSocket(socket.socket):
    """A connected socket with a ``freeze`` and an ``abort`` switch."""

    @classmethod
    def adopt(cls, accepted: socket.socket) -> "SimSocket":
        """Take over the file descriptor of a socket returned by ``accept()``."""
        sock = cls(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        sock.setblocking(True)
        return sock

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: Optional[int] = None):
        super().__init__(family, type, proto, fileno)
        self._readable = threading.Event()
        self._readable.set()
        self._muted = False
        #: set once the connection's script runs (its handshake is over)
        self.in_call = False

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._readable.wait()
        return super().recv(bufsize, flags)

    def sendall(self, data: "ReadableBuffer", flags: int = 0) -> None:
        if not self._muted:
            super().sendall(data, flags)

    def shutdown(self, how: int) -> None:
        if not self._muted:
            super().shutdown(how)

    @property
    def muted(self) -> bool:
        """Whether writes are swallowed: nothing written since reached the client."""
        return self._muted

    def freeze(self) -> None:
        """Read nothing more and let nothing out (no pong, no close frame, no FIN)."""
        self._muted = True
        self._readable.clear()

    def abort(self, *, wake_writers: bool = False) -> None:
        """End the connection with a TCP reset: no close frame, no FIN.

        Shutting the read side wakes websockets' reader, which closes the
        socket; with a zero linger the kernel then sends RST.  ``wake_writers``
        also unblocks a thread stuck sending to a client that stopped reading
        (a FIN precedes the RST then).
        """
        self._muted = True
        try:
            self.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            super().shutdown(socket.SHUT_RDWR if wake_writers else socket.SHUT_RD)
        except OSError:
            pass  # already closed
        self._readable.set()
