"""``for event in client.events():``: a watch's events pulled by plain sync code.

The events reach the loop through a plugin of the client's own, so they come
in the order the hooks see them, after the other plugins (``trylast``).
The buffer between that plugin (on the dispatcher thread) and the loop is
bounded: a loop that falls behind holds the dispatcher up exactly as a slow
plugin does, and the reader then stops reading, so nothing is dropped and
memory stays bounded.
"""

import collections
import threading
import weakref
from collections.abc import Iterator
from typing import Callable, Optional

from ..call import Call, EndReason
from ..errors import LivecallError
from ..events import Event
from ..hookspecs import hookimpl

#: The client's ``register(plugin, name)``.
Register = Callable[[object, Optional[str]], str]

__all__ = ["event_stream"]


class _Buffer:
    """A bounded hand-over from the dispatcher thread to the loop.

    ``put`` waits while the buffer is full; ``finish`` (the call is over) and
    ``abandon`` (the loop was left) never wait, and ``abandon`` also releases
    a waiting ``put``, so that closing the watch cannot hang on it.  Each side
    wakes the other only when it is asleep, as the client's own queue does:
    a notification per event would cost as much as the rest of the hand-over.
    """

    def __init__(self, size: int):
        self._size = size
        self._events: collections.deque[Event] = collections.deque()
        self._changed = threading.Condition()
        self._finished = self._abandoned = False
        self._putter_asleep = self._getter_asleep = False

    def put(self, event: Event) -> None:
        with self._changed:
            while len(self._events) >= self._size and not self._abandoned:
                self._putter_asleep = True
                self._changed.wait()
            if self._abandoned:
                return
            self._events.append(event)
            if self._getter_asleep:
                self._getter_asleep = False
                self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def abandon(self) -> None:
        with self._changed:
            self._abandoned = True
            self._events.clear()
            self._changed.notify_all()

    def drain(self) -> Iterator[Event]:
        """Every event put, in order, until ``finish()`` and the buffer is empty."""
        while True:
            with self._changed:
                while not self._events and not self._finished:
                    self._getter_asleep = True
                    self._changed.wait()
                if not self._events:
                    return
                event = self._events.popleft()
                if self._putter_asleep:
                    self._putter_asleep = False
                    self._changed.notify_all()
            yield event


class _Feed:
    """The plugin that fills the buffer: last of the plugins, so it sees what they did."""

    def __init__(self, buffer: _Buffer):
        self._buffer = buffer

    @hookimpl(trylast=True)
    def livecall_event(self, event: Event) -> None:
        self._buffer.put(event)

    @hookimpl(trylast=True)
    def livecall_call_end(self, call: Call, reason: EndReason) -> None:
        self._buffer.finish()


def event_stream(
    register: Register,
    begin: Callable[[], None],
    wait: Callable[[], object],
    close: Callable[[], None],
    buffer_size: int,
) -> Iterator[Event]:
    """Register the feed now (plugins are fixed at ``start()``); the loop starts the watch.

    ``begin`` starts the watch unless it was started already; ``wait`` and
    ``close`` are the client's own.
    """
    if buffer_size < 1:
        raise ValueError("buffer_size must be 1 or more")
    buffer = _Buffer(buffer_size)
    try:
        register(_Feed(buffer), "livecall.events")
    except LivecallError:
        raise LivecallError("events() after start(): call it before start(), or instead of it") from None
    except ValueError:  # the name is taken
        raise LivecallError("events() was called already: a client has one stream of events") from None
    events = _events(buffer, begin, wait, close)
    weakref.finalize(events, buffer.abandon)  # a loop dropped before it ran must not hold the watch up
    return events


def _events(
    buffer: _Buffer, begin: Callable[[], None], wait: Callable[[], object], close: Callable[[], None]
) -> Iterator[Event]:
    try:
        begin()  # events() may come before start(), or instead of it; a watch that never connects raises
        yield from buffer.drain()
        wait()  # the watch's fatal error, or strict mode's first failure
    finally:  # the loop ended, was left with break, or raised: the watch is over either way
        buffer.abandon()
        close()
