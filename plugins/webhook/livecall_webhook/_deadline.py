"""A total deadline for one request, which requests itself does not have.

requests' ``timeout`` bounds each wait for the next bytes, not the request:
a target that answers one byte every two seconds holds a request for as long
as it likes.  Here the connections a session opens are remembered, per
thread, and a timer shuts down the socket of each at the deadline, which
ends a blocking read or write at once; the request then fails, and the
sender knows it was the deadline.  Only the thread's own connections are
touched, and one sender sends from one thread, one request at a time.
"""

import socket
import threading
import weakref
from typing import Any, Optional

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["Deadline", "enforce_deadlines"]

_local = threading.local()


def _thread_connections() -> "weakref.WeakSet[Any]":
    connections: Optional[weakref.WeakSet[Any]] = getattr(_local, "connections", None)
    if connections is None:
        connections = _local.connections = weakref.WeakSet()
    return connections


class _Remembered:
    """Mixed into urllib3's connections: each one that connects is remembered by its thread."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _thread_connections().add(self)


class _HTTPConnection(_Remembered, HTTPConnection):
    pass


class _HTTPSConnection(_Remembered, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def enforce_deadlines(session: requests.Session) -> requests.Session:
    """Make the HTTP adapters of ``session`` open connections a :class:`Deadline` can cut."""
    for adapter in session.adapters.values():
        if isinstance(adapter, requests.adapters.HTTPAdapter):
            adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return session


class Deadline:
    """``with Deadline(seconds):`` around one request made on this thread.

    ``expired`` tells, afterwards, whether the deadline cut the request.
    """

    def __init__(self, seconds: float):
        self.expired = False
        self._connections = _thread_connections()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        for connection in list(self._connections):
            sock = getattr(connection, "sock", None)
            if sock is None:
                continue
            try:
                # socket.socket's own shutdown, also for a TLS socket: it ends the
                # blocked read without unwrapping TLS under the reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
