"""A total deadline for one request, which requests itself does not have.

requests' ``timeout`` bounds each wait for the next bytes, not the request:
a target that answers one byte every two seconds holds a request for as long
as it likes.  Here the connections a session opens are remembered, per
thread, and a timer shuts down the socket of each at the deadline, which
ends a blocking read or write at once; the request then fails, and the
sender knows it was the deadline.  Only the thread's own connections are
touched, and one sender sends from one thread, one request at a time.

Not covered: a TLS handshake that drips (each of its reads is bounded by
``timeout``, not the whole), and requests sent through a proxy (requests
makes those connections with pool classes of its own).
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
#: Guards the connection sets and each deadline's ``expired`` against the timer thread.
_lock = threading.Lock()


def _thread_connections() -> "weakref.WeakSet[Any]":
    connections: Optional[weakref.WeakSet[Any]] = getattr(_local, "connections", None)
    if connections is None:
        connections = _local.connections = weakref.WeakSet()
    return connections


class _Remembered:
    """Mixed into urllib3's connections: each one that connects is remembered by its thread.

    One that finishes connecting after its request's deadline passed is cut at once.
    """

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        deadline: Optional[Deadline] = getattr(_local, "deadline", None)
        with _lock:
            _thread_connections().add(self)
            late = deadline is not None and deadline.expired
        if late:
            _cut(self)


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
        _local.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _local.deadline = None

    def _expire(self) -> None:
        with _lock:
            self.expired = True
            connections = list(self._connections)
        for connection in connections:
            _cut(connection)


def _cut(connection: Any) -> None:
    """End whatever the connection's socket blocks on, now."""
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        # socket.socket's own shutdown, also for a TLS socket: it ends the
        # blocked read without unwrapping TLS under the reading thread.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
