"""The hub's worker threads: connectors for handshakes, dispatchers for hooks.

Connectors do the blocking opening handshake (TCP, proxy, TLS, HTTP
upgrade) so the I/O thread never waits on one; a call that was connected
comes back ahead of new handshakes, on a thread of its own if need be.
Dispatchers run the calls' mailboxes: a mailbox is run by one dispatcher at
a time, so a call's events stay in order, and after a batch it goes to the
back of the run queue, so a busy call cannot starve the others.  A hook
stuck for longer than ``stuck_after`` seconds is named in a warning and the
pool grows by one thread in its place, up to a hard cap, so the other calls
carry on.
"""

import collections
import itertools
import logging
import threading
import time
from typing import Any, Callable, Optional

from .._observe.registry import thread_timings
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
    """A few threads that run handshake jobs in the order they were submitted, reconnects first.

    A handshake may hold its thread for the whole connect timeout: a host
    that takes the TCP connection and never answers the upgrade does, and
    a few such hosts would hold every thread.  A call that was streaming
    must not wait behind them to come back, so the reconnect of a call that
    was connected goes ahead of every new handshake, and when no thread is
    free for it the pool starts one more, up to ``max_size`` threads in
    all; such a thread takes reconnects only and ends once none waits.
    """

    def __init__(self, size: int, max_size: int, name: str):
        self._name = name
        self._max_size = max(size, max_size)
        self._new: collections.deque[Callable[[], None]] = collections.deque()
        self._reconnects: collections.deque[Callable[[], None]] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._idle = 0  # threads waiting for a job
        self._size = size  # threads running, the extra ones for reconnects too
        self._extra = itertools.count()
        self._stopping = False
        for index in range(size):
            _start(self._work, f"{name}-connector-{index}")

    def submit(self, job: Callable[[], None], reconnect: bool = False) -> None:
        """Run ``job`` on a connector thread; ``reconnect`` for a call that was connected."""
        with self._ready:
            (self._reconnects if reconnect else self._new).append(job)
            waiting = len(self._reconnects) + len(self._new)
            grow = reconnect and waiting > self._idle and self._size < self._max_size
            if grow:
                self._size += 1
            self._ready.notify()
        if grow:
            _start(self._work_reconnects, f"{self._name}-connector-reconnect-{next(self._extra)}")

    def stop(self) -> None:
        """Let the threads end once the jobs submitted so far are done."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not (self._reconnects or self._new or self._stopping):
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                if not (self._reconnects or self._new):  # stopping, and nothing left to do
                    self._size -= 1
                    return
                job = (self._reconnects or self._new).popleft()
            _run_job(job)

    def _work_reconnects(self) -> None:
        while True:
            with self._ready:
                if not self._reconnects:
                    self._size -= 1
                    return
                job = self._reconnects.popleft()
            _run_job(job)


def _start(work: Callable[[], None], name: str) -> None:
    threading.Thread(target=work, name=name, daemon=True).start()


def _run_job(job: Callable[[], None]) -> None:
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

    A thread stuck in a hook does not count: while mailboxes wait, the
    watchdog keeps ``size`` threads that are not stuck, up to ``cap``
    threads in all, so hooks stuck in many calls at once do not stop the
    others.  Threads past ``max_size`` end once the hooks that called for
    them have returned and they find nothing to do.
    """

    def __init__(self, size: int, max_size: int, cap: int, stuck_after: float, name: str):
        self._name = name
        self._size = size
        self._max_size = max(size, max_size)
        self._cap = max(self._max_size, cap)
        #: Threads the pool keeps: ``max_size``, or more while hooks are stuck (set by the watchdog).
        self._keep = self._max_size
        self._cap_reported = False
        self._numbers = itertools.count()
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

    def stuck(self, now: float) -> list[tuple[str, float]]:
        """The plugins or callbacks stuck in a hook past ``stuck_after``, and for how long."""
        found = []
        for since, mailbox, _ in list(self._busy.values()):
            if now - since > self.stuck_after:
                found.append((mailbox.running() or "livecall itself", now - since))
        return found

    def check(self, now: float) -> None:
        """The watchdog: warn of each dispatcher stuck past ``stuck_after``, and grow the pool past them."""
        stuck = [entry for entry in list(self._busy.values()) if now - entry[0] > self.stuck_after]
        for entry in stuck:
            since, mailbox, reported = entry
            if not reported:
                entry[2] = True
                log.warning("a dispatcher has been stuck for %.1f s in %s", now - since, mailbox.describe())
        wanted = self._size + len(stuck)
        self._keep = max(self._max_size, min(self._cap, wanted))
        if len(self._threads) > self._keep:
            self._wake(only_if_none_waking=True)  # a parked one finds nothing to do and ends
        if not self._run_queue:
            return
        with self._lock:
            if self._stopping:
                return
            added = max(0, min(self._cap, wanted) - len(self._threads))
            for _ in range(added):
                self._add_thread()
            size = len(self._threads)
        if added:
            log.warning("dispatcher pool grown to %d threads", size)
        at_cap = wanted > self._cap
        if at_cap and not self._cap_reported:
            log.error(
                "the dispatcher pool is at its cap of %d threads, %d of them stuck in hooks; other calls "
                "wait until one returns. Stuck: %s",
                self._cap,
                len(stuck),
                "; ".join(entry[1].describe() for entry in stuck),
            )
        self._cap_reported = at_cap  # said once while it lasts; again if it comes back

    def _add_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-dispatcher-{next(self._numbers)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _retire(self, me: threading.Thread) -> bool:
        """End ``me``, idle, if the pool has more threads than it keeps and another is parked to take work."""
        with self._lock:
            if self._stopping or len(self._threads) <= self._keep or not self._parked:
                return False
            self._threads.remove(me)
            return True

    def _work(self) -> None:
        me, run_queue = threading.current_thread(), self._run_queue
        timings = thread_timings()
        wake = threading.Lock()
        wake.acquire()
        while True:
            try:
                mailbox = run_queue.popleft()
            except IndexError:
                if self._retire(me):
                    return
                self._park(wake)
                continue
            self._taken += 1
            if mailbox is None:
                return
            _local.mailbox = mailbox
            mailbox.timings = timings  # the histograms its timings go to while this thread runs it
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
