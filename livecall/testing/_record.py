"""What each connection did, kept for tests to assert on, and the lock guarding it.

Server threads write records under the journal's condition and notify it, so
a test can block in :meth:`Journal.wait_for` until what it expects has
happened instead of sleeping.
"""

import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TypeVar, Union

import attrs

Frame = Union[str, bytes]
Headers = tuple[tuple[str, str], ...]
T = TypeVar("T")


@attrs.define(eq=False)
class ConnectionRecord:
    """One connection attempt, from handshake to close.

    ``status`` is the HTTP status of the handshake response (101 when accepted;
    None until it is sent).  ``server_close_code`` / ``client_close_code`` are
    the codes of the close frames each side sent (None if it sent none, as in a
    TCP reset).  ``reset`` is True when the simulator cut the TCP connection,
    ``silenced`` when it stopped answering on it.  ``closed`` is True once the
    connection is over.  Query and headers carry credentials: they are left
    out of the repr.
    """

    index: int
    path: str
    query: Mapping[str, str] = attrs.field(repr=False)
    headers: Headers = attrs.field(repr=False)
    status: Optional[int] = None
    server_close_code: Optional[int] = None
    client_close_code: Optional[int] = None
    reset: bool = False
    silenced: bool = False
    closed: bool = False
    _received: list[Frame] = attrs.field(factory=list, repr=False)
    _sent: list[Frame] = attrs.field(factory=list, repr=False)
    _lock: Any = attrs.field(factory=threading.RLock, repr=False)

    @property
    def accepted(self) -> bool:
        return self.status == 101

    @property
    def received(self) -> tuple[Frame, ...]:
        """Frames the client sent, in order (text as ``str``, binary as ``bytes``)."""
        with self._lock:
            return tuple(self._received)

    @property
    def sent(self) -> tuple[Frame, ...]:
        """Frames the simulator sent on this connection, in order."""
        with self._lock:
            return tuple(self._sent)

    def header(self, name: str) -> Optional[str]:
        """The request header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class Journal:
    """All connection records, and the condition every simulator thread notifies."""

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.RLock())
        self._records: list[ConnectionRecord] = []

    def open(self, path: str, query: Mapping[str, str], headers: Headers) -> ConnectionRecord:
        with self.condition:
            record = ConnectionRecord(len(self._records) + 1, path, query, headers, lock=self.condition)
            self._records.append(record)
            self.condition.notify_all()
            return record

    def update(self, record: ConnectionRecord, **changes: Any) -> None:
        with self.condition:
            for name, value in changes.items():
                setattr(record, name, value)
            self.condition.notify_all()

    def add(self, record: ConnectionRecord, frame: Frame, *, sent: bool) -> None:
        with self.condition:
            (record._sent if sent else record._received).append(frame)
            self.condition.notify_all()

    def records(self) -> tuple[ConnectionRecord, ...]:
        with self.condition:
            return tuple(self._records)

    def wait_for(self, predicate: Callable[[], T], timeout: Optional[float]) -> T:
        """``predicate()`` once it is truthy; TimeoutError if it is not within ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.condition:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout} s")
                self.condition.wait(remaining)
