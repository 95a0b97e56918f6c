"""The hub's worker threads: connectors for handshakes, dispatchers for hooks.

Connectors do the blocking opening handshake (TCP, proxy, TLS, HTTP
upgrade) so the I/O thread never waits on one.  Dispatchers run the calls'
mailboxes: a mailbox is run by one dispatcher at a time, so a call's events
stay in order, and after a batch it goes to the back of the line, so a busy
call cannot starve the others.  A hook stuck for longer than ``stuck_after``
seconds is named in a warning and the pool grows by one thread, up to
``max_dispatchers``, so the other calls carry on.
"""

import collections
import logging
import queue
import threading
import time
from typing import Any, Callable, Optional

from ._backlog import Mailbox

__all__ = ["ConnectorPool", "DispatcherPool", "current_mailbox"]

log = logging.getLogger("livecall.hub")

#: Items a dispatcher runs from one mailbox before the next call's turn.
BATCH = 64

_local = threading.local()


def current_mailbox() -> Optional[Mailbox]:
    """The mailbox this thread is dispatching now, if it is a dispatcher."""
    mailbox: Optional[Mailbox] = getattr(_local, "mailbox", None)
    return mailbox


class ConnectorPool:
    """A few threads that run handshake jobs in the order they were submitted."""

    def __init__(self, size: int, name: str):
        self._jobs: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-connector-{index}", daemon=True)
            for index in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # a job reports its own failures; this is a bug
                log.exception("connector job failed")


class DispatcherPool:
    """Runs mailboxes, one thread per mailbox at a time, fairly; grows when hooks get stuck."""

    def __init__(self, size: int, max_size: int, stuck_after: float, name: str):
        self._name = name
        self._max_size = max(size, max_size)
        self.stuck_after = stuck_after
        self._line: collections.deque[Mailbox] = collections.deque()
        self._condition = threading.Condition(threading.Lock())
        self._busy: dict[threading.Thread, list[Any]] = {}  # thread: [since, mailbox, reported]
        self._threads: list[threading.Thread] = []
        self._stopping = False
        for _ in range(size):
            self._add_thread()

    @property
    def size(self) -> int:
        return len(self._threads)

    def schedule(self, mailbox: Mailbox) -> None:
        with self._condition:
            self._line.append(mailbox)
            self._condition.notify()

    def stop(self) -> None:
        """Let the threads end once the line is empty."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()

    def check(self, now: float) -> None:
        """The watchdog: warn of each dispatcher stuck past ``stuck_after``, and grow the pool."""
        with self._condition:
            stuck = [
                entry for entry in self._busy.values() if not entry[2] and now - entry[0] > self.stuck_after
            ]
            for entry in stuck:
                entry[2] = True
            grow = len(stuck) if self._line else 0
        for since, mailbox, _ in stuck:
            log.warning("a dispatcher has been stuck for %.1f s in %s", now - since, mailbox.describe())
        for _ in range(grow):
            with self._condition:
                if len(self._threads) >= self._max_size or self._stopping:
                    break
                self._add_thread()
            log.warning("dispatcher pool grown to %d threads", len(self._threads))

    def _add_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-dispatcher-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        condition, line, busy = self._condition, self._line, self._busy
        while True:
            with condition:
                while not line:
                    if self._stopping:
                        return
                    condition.wait()
                mailbox = line.popleft()
                busy[me] = [time.monotonic(), mailbox, False]
            _local.mailbox = mailbox
            try:
                for item in mailbox.take(BATCH):
                    mailbox.handle(item)
            finally:
                _local.mailbox = None
                with condition:
                    del busy[me]
            if mailbox.release():
                self.schedule(mailbox)  # to the back of the line: fairness
