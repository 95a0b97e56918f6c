"""The hub's worker threads: connectors for handshakes, dispatchers for hooks.

Connectors do the blocking opening handshake (TCP, proxy, TLS, HTTP
upgrade) so the I/O thread never waits on one.  Dispatchers run the calls'
mailboxes: a mailbox is run by one dispatcher at a time, so a call's events
stay in order, and after a batch it goes to the back of the run queue, so a busy
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

from .mailbox import Mailbox

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

    Under the GIL two dispatchers running Python do no more than one, and
    the second costs a GIL hand-off every few milliseconds; a second thread
    only pays when the first waits in a hook (a webhook's POST, say).  So a
    scheduled mailbox wakes a parked dispatcher only if none is already on
    its way to the run queue, and :meth:`nudge` wakes another when mailboxes wait
    while the running ones take none.  (A ``queue.SimpleQueue`` would wake
    every waiting getter for one item: each ``get`` passes its lock on.)
    """

    def __init__(self, size: int, max_size: int, stuck_after: float, name: str):
        self._name = name
        self._max_size = max(size, max_size)
        self.stuck_after = stuck_after
        #: Mailboxes waiting for a dispatcher; ``None`` is an end mark, one per thread.
        self._run_queue: collections.deque[Optional[Mailbox]] = collections.deque()
        #: Each parked dispatcher's lock, held while it sleeps; releasing it wakes that thread.
        self._parked: list[threading.Lock] = []
        self._waking = 0  # woken and not yet at the run queue
        self._park_lock = threading.Lock()  # _parked and _waking
        self._taken = 0  # mailboxes taken from the run queue, ever: how nudge() sees progress
        self._taken_at_nudge = -1
        self._lock = threading.Lock()  # the thread list, and stopping
        #: thread: [since, mailbox, reported], while it runs a batch; read by the watchdog.
        self._busy: dict[threading.Thread, list[Any]] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        for _ in range(size):
            self._add_thread()

    def schedule(self, mailbox: Mailbox) -> None:
        """Put a mailbox at the back of the run queue, waking a dispatcher unless one is on its way."""
        self._run_queue.append(mailbox)
        if self._parked and not self._waking:  # read after the append: see _park
            self._wake(only_if_none_waking=True)

    def nudge(self) -> bool:
        """The I/O thread's look, once a turn: True while mailboxes wait to run and a dispatcher idles.

        If mailboxes waited at the last look too and no dispatcher has taken
        one since, the running ones are stuck in hooks: a parked one is woken.
        The I/O thread comes back within a short while as long as this says
        True, so a waiting call is late by milliseconds, not until the next
        read.  With no dispatcher parked there is nobody to wake: the next to
        finish takes from the run queue before it would park, and the watchdog
        grows the pool if none does.
        """
        if not self._run_queue or not self._parked:
            self._taken_at_nudge = -1
            return False
        taken = self._taken
        if taken == self._taken_at_nudge:
            self._wake(only_if_none_waking=True)
        self._taken_at_nudge = taken
        return True

    def _wake(self, only_if_none_waking: bool) -> None:
        with self._park_lock:
            if self._parked and not (only_if_none_waking and self._waking):
                self._waking += 1
                self._parked.pop().release()  # the most recently parked: its cache is warmest

    @property
    def size(self) -> int:
        return len(self._threads)

    def stop(self) -> None:
        """Let the threads end once the run queue is empty: one end mark each, behind the mailboxes."""
        with self._lock:
            self._stopping = True
            for _ in self._threads:
                self._run_queue.append(None)
        while self._parked:
            self._wake(only_if_none_waking=False)

    def check(self, now: float) -> None:
        """The watchdog: warn of each dispatcher stuck past ``stuck_after``, and grow the pool."""
        stuck = [
            entry for entry in list(self._busy.values()) if not entry[2] and now - entry[0] > self.stuck_after
        ]
        for entry in stuck:
            entry[2] = True
        for since, mailbox, _ in stuck:
            log.warning("a dispatcher has been stuck for %.1f s in %s", now - since, mailbox.describe())
        for _ in range(len(stuck) if self._run_queue else 0):
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
        me, run_queue = threading.current_thread(), self._run_queue
        wake = threading.Lock()
        wake.acquire()
        while True:
            try:
                mailbox = run_queue.popleft()
            except IndexError:
                self._park(wake)
                continue
            self._taken += 1
            if mailbox is None:
                return
            _local.mailbox = mailbox
            try:
                self._run(mailbox, me)
            finally:
                _local.mailbox = None

    def _park(self, wake: threading.Lock) -> None:
        """Sleep until :meth:`schedule` (or :meth:`nudge`, or :meth:`stop`) releases ``wake``.

        The thread says it is parked, then looks at the run queue once more; the
        scheduler puts a mailbox in the run queue, then looks for parked threads.
        Whichever comes second sees the other, so no mailbox is left with
        every dispatcher asleep.
        """
        with self._park_lock:
            self._parked.append(wake)
        if self._run_queue:
            with self._park_lock:
                if wake in self._parked:  # nobody woke it: back to the run queue
                    self._parked.remove(wake)
                    return
        wake.acquire()  # released by whoever took it off _parked
        with self._park_lock:
            self._waking -= 1

    def _run(self, mailbox: Mailbox, me: threading.Thread) -> None:
        """Run batches of ``mailbox`` while no other call waits; then put it at the back of the run queue.

        Keeping a busy call on the thread that has it while the run queue is empty
        spares a hand-off to another dispatcher per batch (a GIL switch and a
        cold cache) when one call streams flat out.
        """
        busy, run_queue = self._busy, self._run_queue
        while True:
            busy[me] = [time.monotonic(), mailbox, False]
            try:
                for item in mailbox.take(BATCH):
                    mailbox.handle(item)
            finally:
                del busy[me]
            if not mailbox.release():
                return
            if run_queue and not self._stopping:  # once stopping, end marks wait there
                run_queue.append(mailbox)  # others wait: to the back of the run queue, for fairness
                return
