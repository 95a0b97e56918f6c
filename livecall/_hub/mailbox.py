"""The bounded mailbox between the hub's I/O thread and a call's dispatcher."""

import collections
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

__all__ = ["Mailbox"]


class Mailbox:
    """One call's items waiting for a dispatcher, bounded in count and in bytes.

    The I/O thread never blocks: :meth:`put` always takes the item and says
    whether the mailbox is now full, and the I/O thread stops reading that
    call's socket until ``on_room`` reports room again (TCP then pushes back on
    that call's server alone).  So at most what one wake-up read (256 KiB)
    goes past the bound.  The byte bound matters because a message may be
    megabytes: a count alone would let a few hundred large ones take
    gigabytes.  ``schedule`` is called when the mailbox gets its first item
    (the hub then hands it to the dispatcher pool before its I/O thread
    sleeps); a dispatcher empties it with :meth:`take` and hands it back with
    :meth:`release`.
    """

    def __init__(
        self,
        limit: int,
        max_bytes: int,
        schedule: Callable[["Mailbox"], None],
        handle: Callable[[Any], None],
        on_room: Callable[[], None],
        describe: Callable[[], str],
        running: Callable[[], Optional[str]] = lambda: None,
    ):
        self.limit = limit
        self.max_bytes = max_bytes
        self.high_water = 0
        self._bytes = 0  # of the items held
        #: Runs one item on a dispatcher thread.
        self.handle = handle
        #: Names the call, and the plugin running now, for the watchdog's warning.
        self.describe = describe
        #: The plugin running now, if any, by name alone: for the health check.
        self.running = running
        #: The histograms of the dispatcher thread running this mailbox now (set by that thread).
        self.timings: Any = None
        self._schedule = schedule
        self._on_room = on_room
        self._items: collections.deque[Any] = collections.deque()
        self._sizes: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False  # in the pool's run queue, or being run
        self._full = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, size: int = 0) -> bool:
        """Append ``item`` of ``size`` bytes; True if the mailbox is now full."""
        return self.put_many([item], [size])

    def put_many(self, items: Sequence[Any], sizes: Sequence[int]) -> bool:
        """Append ``items`` of ``sizes`` bytes at once; True if the mailbox is now full.

        One read often brings hundreds of messages: taking them under one lock
        and waking the dispatcher pool once keeps a busy call's cost per
        message down to two appends.
        """
        with self._lock:
            held = self._items
            held.extend(items)
            self._sizes.extend(sizes)
            self._bytes += sum(sizes)
            if len(held) > self.high_water:
                self.high_water = len(held)
            full = self._full = len(held) >= self.limit or self._bytes >= self.max_bytes
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._schedule(self)
        return full

    def take(self, most: int) -> list[Any]:
        """Up to ``most`` of the oldest items, for the dispatcher running this mailbox."""
        with self._lock:
            items, sizes = self._items, self._sizes
            if len(items) <= most:  # the usual case: everything, with no loop in Python
                batch = list(items)
                items.clear()
                self._bytes -= sum(sizes)
                sizes.clear()
            else:
                batch = [items.popleft() for _ in range(most)]
                self._bytes -= sum(sizes.popleft() for _ in range(most))
            room = self._full and len(items) < self.limit and self._bytes < self.max_bytes
            if room:
                self._full = False
        if room:
            self._on_room()
        return batch

    def release(self) -> bool:
        """The dispatcher is done with a batch: True if more items wait (the mailbox stays scheduled)."""
        with self._lock:
            self._scheduled = bool(self._items)
            return self._scheduled
