"""The bounded queue between a client's reader and its dispatcher."""

import collections
import threading
from typing import Any

import attrs

__all__ = ["Backlog", "ClientStats"]


@attrs.frozen
class ClientStats:
    """A look at the queue between a client's reader and its dispatcher.

    ``queued`` frames wait now; ``queue_high_water`` is the most that ever
    waited; at ``queue_size`` the reader stops reading until plugins catch up.
    """

    queued: int
    queue_high_water: int
    queue_size: int


class Backlog:
    """The bounded queue from the reader to the dispatcher, in items and in bytes.

    The byte bound matters because a message may be megabytes: a count alone
    would let a few hundred large ones take gigabytes.  One item larger than
    the byte bound still goes in when the queue is empty, so nothing is lost.
    ``queue.Queue`` takes a condition's lock and signals it for every item:
    at tens of thousands of frames a second that costs as much as decoding
    them.  Here each side holds a plain lock briefly and wakes the other only
    when it is asleep.  It also keeps its high-water mark.
    """

    def __init__(self, limit: int, max_bytes: int):
        self.limit = limit
        self.max_bytes = max_bytes
        self.high_water = 0
        self.queued_bytes = 0
        self._items: collections.deque[Any] = collections.deque()
        self._sizes: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._getter_asleep = self._putter_asleep = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, size: int = 0) -> None:
        """Append ``item`` of ``size`` bytes; blocks while ``limit`` items or ``max_bytes`` bytes wait."""
        with self._lock:
            items = self._items
            while len(items) >= self.limit or (items and self.queued_bytes + size > self.max_bytes):
                self._putter_asleep = True
                self._not_full.wait()
            items.append(item)
            self._sizes.append(size)
            self.queued_bytes += size
            if len(self._items) > self.high_water:
                self.high_water = len(self._items)
            if self._getter_asleep:
                self._getter_asleep = False
                self._not_empty.notify()

    def get(self) -> Any:
        """The oldest item; blocks while there is none."""
        with self._lock:
            while not self._items:
                self._getter_asleep = True
                self._not_empty.wait()
            item = self._items.popleft()
            self.queued_bytes -= self._sizes.popleft()
            if self._putter_asleep:
                self._putter_asleep = False
                self._not_full.notify()
            return item
