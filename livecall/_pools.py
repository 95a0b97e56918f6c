"""The hub's worker threads: connectors for handshakes, dispatchers for hooks.

Connectors do the blocking opening handshake (TCP, proxy, TLS, HTTP
upgrade) so the I/O thread never waits on one.  Dispatchers run the calls'
mailboxes: a mailbox is run by one dispatcher at a time, so a call's events
stay in order, and after a batch it goes to the back of the line, so a busy
call cannot starve the others.  A hook stuck for longer than ``stuck_after``
seconds is named in a warning and the pool grows by one thread, up to
``max_dispatchers``, so the other calls carry on.
"""

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
    """Runs mailboxes, one thread per mailbox at a time, fairly; grows when hooks get stuck.

    The line of mailboxes is a ``queue.SimpleQueue``: at thousands of calls
    a dispatcher falls idle between most events, and the C queue wakes it
    for a fraction of what a ``threading.Condition`` costs in Python.
    """

    def __init__(self, size: int, max_size: int, stuck_after: float, name: str):
        self._name = name
        self._max_size = max(size, max_size)
        self.stuck_after = stuck_after
        self._line: queue.SimpleQueue[Optional[Mailbox]] = queue.SimpleQueue()
        #: Puts a mailbox at the back of the line: the queue's own ``put``, no Python frame.
        self.schedule: Callable[[Mailbox], None] = self._line.put
        self._lock = threading.Lock()  # the thread list, and stopping
        #: thread: [since, mailbox, reported], while it runs a batch; read by the watchdog.
        self._busy: dict[threading.Thread, list[Any]] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        for _ in range(size):
            self._add_thread()

    @property
    def size(self) -> int:
        return len(self._threads)

    def stop(self) -> None:
        """Let the threads end once the line is empty: one end mark each, behind the mailboxes."""
        with self._lock:
            self._stopping = True
            for _ in self._threads:
                self._line.put(None)

    def check(self, now: float) -> None:
        """The watchdog: warn of each dispatcher stuck past ``stuck_after``, and grow the pool."""
        stuck = [
            entry for entry in list(self._busy.values()) if not entry[2] and now - entry[0] > self.stuck_after
        ]
        for entry in stuck:
            entry[2] = True
        for since, mailbox, _ in stuck:
            log.warning("a dispatcher has been stuck for %.1f s in %s", now - since, mailbox.describe())
        for _ in range(len(stuck) if not self._line.empty() else 0):
            with self._lock:
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
        me, line = threading.current_thread(), self._line
        while True:
            mailbox = line.get()
            if mailbox is None:
                return
            _local.mailbox = mailbox
            try:
                self._run(mailbox, me)
            finally:
                _local.mailbox = None

    def _run(self, mailbox: Mailbox, me: threading.Thread) -> None:
        """Run batches of ``mailbox`` while no other call waits; then put it at the back of the line.

        Keeping a busy call on the thread that has it while the line is empty
        spares a hand-off to another dispatcher per batch (a GIL switch and a
        cold cache) when one call streams flat out.
        """
        busy, line = self._busy, self._line
        while True:
            busy[me] = [time.monotonic(), mailbox, False]
            try:
                for item in mailbox.take(BATCH):
                    mailbox.handle(item)
            finally:
                del busy[me]
            if not mailbox.release():
                return
            if not line.empty() and not self._stopping:  # once stopping, end marks wait there
                line.put(mailbox)  # others wait: to the back of the line, for fairness
                return
