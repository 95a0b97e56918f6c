"""One hub per process: a single I/O thread for every watched call's socket.

The I/O thread owns every open connection's socket through ``selectors``
(epoll on Linux): each wake-up reads every ready socket into that
connection's protocol core and writes what the cores want written, so no
two threads ever touch one TLS connection.  One timer heap holds every
heartbeat, pong, close and backoff deadline: an idle call costs nothing
between its pings.  Handshakes run on a few connector threads and hooks on
a small dispatcher pool (:mod:`.pools`), never on the I/O thread.

Each wake-up of the I/O thread costs a few dozen microseconds of
interpreter, system calls and GIL hand-offs to dispatchers, whether it
reads one message or fifty.  At thousands of calls messages come singly, a
few hundred microseconds apart, so while more than one call is watched the
thread wakes at most once per ``batch_window`` (2 ms by default) and reads
whatever came meanwhile together.  A lone call is read at once: a busy
stream batches itself in its socket.

The hub is created on the first ``start()``, stops once its last call has
ended (no thread is left behind) and starts again on demand; a child
process after ``fork()`` starts a hub of its own.
"""

import heapq
import itertools
import logging
import math
import os
import selectors
import socket
import threading
import time
from typing import Callable, Optional

import attrs

from .._wire.checks import seconds, whole_number
from ..errors import ConfigurationError
from .mailbox import Mailbox
from .pools import ConnectorPool, DispatcherPool

__all__ = ["Hub", "HubOptions", "Timer", "acquire_hub", "configure_hub", "hub_turn_age", "running_hub"]

log = logging.getLogger("livecall.hub")

#: Bytes of wake-up read at once: one byte per ``call_soon`` from another thread while asleep.
_WAKEUP_READ = 4096
#: While mailboxes wait behind busy dispatchers, the I/O thread looks at the run queue this often.
_RUN_QUEUE_CHECK = 0.002
#: The longest the I/O thread sleeps, so that a healthy hub's turn age stays this small when idle.
_LONGEST_SLEEP = 1.0


@attrs.frozen
class HubOptions:
    """The hub's threads and batch window, as :func:`configure_hub` sets them.

    Its defaults are :func:`configure_hub`'s too, so they are written once.
    """

    dispatchers: int = 2
    max_dispatchers: int = 16
    dispatcher_cap: int = 64
    connectors: int = 4
    max_connectors: int = 16
    stuck_after: float = 10.0
    batch_window: float = 0.002


class Timer:
    """A deadline on the hub's heap; ``cancel()`` makes it a no-op."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Hub:
    """The I/O thread, its selector and timer heap, and the worker pools."""

    def __init__(self, options: HubOptions):
        self.options = options
        self.selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self.selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._soon: list[Callable[[], None]] = []
        self._soon_lock = threading.Lock()
        self._asleep = False
        #: Mailboxes that got their first items during this wake-up, for the dispatchers.
        self._handoffs: list[Mailbox] = []
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        #: When the I/O thread last finished a turn, for :func:`hub_turn_age`.
        self.turned_at = time.monotonic()
        self.users = 0
        self._stopping = False
        self.connectors = ConnectorPool(options.connectors, options.max_connectors, "livecall-hub")
        self.dispatchers = DispatcherPool(
            options.dispatchers,
            options.max_dispatchers,
            options.dispatcher_cap,
            options.stuck_after,
            "livecall-hub",
        )
        self._thread = threading.Thread(target=self._loop, name="livecall-hub-io", daemon=True)
        self._thread.start()
        self.call_later(options.stuck_after / 2, self._watchdog)

    # --- from any thread ------------------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread at its next turn."""
        with self._soon_lock:
            self._soon.append(fn)
            wake, self._asleep = self._asleep, False
        if wake and threading.current_thread() is not self._thread:
            try:
                self._wake_writer.send(b"\0")
            except OSError:
                pass  # the pipe is full: the thread is awake anyway

    def new_mailbox(
        self,
        limit: int,
        max_bytes: int,
        handle: Callable[[object], None],
        on_room: Callable[[], None],
        describe: Callable[[], str],
        running: Callable[[], Optional[str]] = lambda: None,
    ) -> Mailbox:
        """A call's mailbox; only the I/O thread puts items in it."""
        return Mailbox(limit, max_bytes, self._handoffs.append, handle, on_room, describe, running)

    # --- on the I/O thread ------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the I/O thread ``delay`` seconds from now; see :meth:`call_at`."""
        return self.call_at(time.monotonic() + delay, callback)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the I/O thread at ``when`` (``time.monotonic()``).

        A NaN or infinite ``when`` raises ``ValueError`` here, in the caller:
        on the heap a NaN compares neither less nor more than anything, so
        the heap's order breaks and no timer of any call would run again.
        """
        if not math.isfinite(when):
            raise ValueError(f"a timer's deadline must be a finite number of seconds, not {when!r}")
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def _stop(self) -> None:
        """Called with no user left: the threads end once their work is done."""
        self._stopping = True
        self.connectors.stop()
        self.dispatchers.stop()
        self.call_soon(lambda: None)

    def _watchdog(self) -> None:
        self.dispatchers.check(time.monotonic())
        self.call_later(self.options.stuck_after / 2, self._watchdog)

    def _loop(self) -> None:
        select, clock, timers = self.selector.select, time.monotonic, self._timers
        window, nudge = self.options.batch_window, self.dispatchers.nudge
        woke = 0.0
        try:
            while True:
                if self._soon:
                    self._run_soon()
                if self._stopping and not self._soon:
                    self._hand_off()
                    return
                now = clock()
                while timers and timers[0][0] <= now:
                    timer = heapq.heappop(timers)[2]
                    if not timer.cancelled:
                        self._run(timer.callback)
                if self._soon:  # a timer's callback may have added work
                    self._run_soon()
                with self._soon_lock:
                    busy = bool(self._soon)
                    self._asleep = not busy
                timeout = 0.0 if busy else _LONGEST_SLEEP
                if timers and not busy:
                    timeout = max(0.0, min(timeout, timers[0][0] - clock()))
                if self._handoffs:
                    self._hand_off()
                if nudge() and timeout > _RUN_QUEUE_CHECK:
                    timeout = _RUN_QUEUE_CHECK
                if window and timeout != 0.0 and self.users > 1:
                    self._wait_out_window(woke + window - clock(), timeout)
                ready = select(timeout)
                woke = clock()
                with self._soon_lock:
                    self._asleep = False
                for key, mask in ready:
                    if key.data is None:
                        self._drain_wakeups()
                    else:
                        self._run(key.data, mask)
                self.turned_at = clock()
        finally:
            self.selector.close()
            self._wake_reader.close()
            self._wake_writer.close()

    @staticmethod
    def _wait_out_window(rest: float, timeout: float) -> None:
        """Sleep out the batch window before looking at the sockets again.

        What the sleep holds up (a timer, a ``call_soon`` from another thread)
        is late by at most the window: the timeout counts from before it.
        """
        if rest > 0:
            time.sleep(min(rest, timeout))

    def _run_soon(self) -> None:
        while self._soon:
            with self._soon_lock:
                batch, self._soon = self._soon, []
            for fn in batch:
                self._run(fn)

    def _hand_off(self) -> None:
        """Give the dispatchers the mailboxes that got items, just before this thread sleeps.

        A dispatcher woken as each item comes would only wait for the GIL this
        thread holds until it blocks in epoll: two wake-ups instead of one.
        At 10,000 calls this saves about a sixth of the futex calls and
        context switches.
        """
        schedule, handoffs = self.dispatchers.schedule, self._handoffs
        for mailbox in handoffs:
            schedule(mailbox)
        handoffs.clear()

    @staticmethod
    def _run(fn: Callable[..., None], *args: int) -> None:
        try:
            fn(*args)
        except BaseException:  # the I/O thread must outlive any bug in one connection
            log.exception("hub I/O callback failed")

    def _drain_wakeups(self) -> None:
        """Read the wake-up bytes: one read takes them all but after a flood of wake-ups."""
        try:
            while len(self._wake_reader.recv(_WAKEUP_READ)) == _WAKEUP_READ:
                pass
        except OSError:
            pass


_lock = threading.Lock()
_hub: Optional[Hub] = None
_DEFAULTS = HubOptions()
_options = _DEFAULTS


def configure_hub(
    *,
    dispatchers: int = _DEFAULTS.dispatchers,
    max_dispatchers: int = _DEFAULTS.max_dispatchers,
    dispatcher_cap: int = _DEFAULTS.dispatcher_cap,
    connectors: int = _DEFAULTS.connectors,
    max_connectors: int = _DEFAULTS.max_connectors,
    stuck_after: float = _DEFAULTS.stuck_after,
    batch_window: float = _DEFAULTS.batch_window,
) -> None:
    """Set the hub's threads and batching for the process; only while no client is watching.

    ``dispatchers`` threads run hooks and callbacks; when one is stuck in a
    hook for ``stuck_after`` seconds a warning names the plugin and the call,
    and the pool grows by one thread in its place, so that hooks stuck in many
    calls do not stop the others.  The pool keeps up to ``max_dispatchers``
    threads; past that, threads added for stuck hooks end once those return,
    and ``dispatcher_cap`` threads in all is the hard cap: reaching it is
    logged as an error naming the stuck plugins.  ``connectors`` threads do
    the opening handshakes; a call that was connected reconnects ahead of new
    handshakes, on an extra thread when none is free, up to
    ``max_connectors`` threads in all, so hosts that never answer a
    handshake cannot hold it up.  While more than one
    call is watched, the I/O thread wakes at most once per ``batch_window``
    seconds and reads what came meanwhile together: at 10,000 calls this
    takes about a third off the process's CPU, for at most that much added
    latency (``0`` reads every message the moment it comes).  The hub starts with
    these on the next ``start()``; raises ``ConfigurationError`` while a hub
    runs, since its threads are already there.
    """
    global _options
    for name, threads in (
        ("dispatchers", dispatchers),
        ("max_dispatchers", max_dispatchers),
        ("dispatcher_cap", dispatcher_cap),
        ("connectors", connectors),
        ("max_connectors", max_connectors),
    ):
        whole_number(name, threads, minimum=1)
    if not dispatchers <= max_dispatchers <= dispatcher_cap:
        raise ConfigurationError("need dispatchers <= max_dispatchers <= dispatcher_cap")
    if max_connectors < connectors:
        raise ConfigurationError("max_connectors must be connectors or more")
    seconds("stuck_after", stuck_after)
    if not 0 <= batch_window <= 1:
        raise ConfigurationError("batch_window must be between 0 and 1 second")
    with _lock:
        if _hub is not None:
            raise ConfigurationError("configure_hub() must come before the first client starts")
        _options = HubOptions(
            dispatchers=dispatchers,
            max_dispatchers=max_dispatchers,
            dispatcher_cap=dispatcher_cap,
            connectors=connectors,
            max_connectors=max_connectors,
            stuck_after=stuck_after,
            batch_window=batch_window,
        )


def hub_turn_age() -> Optional[float]:
    """Seconds since the hub's I/O thread last finished a turn of its loop; ``None`` with no hub.

    A healthy hub turns at least once a second (plus at most its
    ``batch_window``), idle or busy: hooks run on other threads and cannot
    hold it up.  So an age of many seconds means the I/O thread is wedged
    and no call's socket, heartbeat or reconnect is served: a worker should
    then stop taking or keeping calls it cannot watch.
    """
    hub = running_hub()
    if hub is None:
        return None
    return max(0.0, time.monotonic() - hub.turned_at)


def running_hub() -> Optional[Hub]:
    """The hub if one runs now, without starting one."""
    with _lock:
        return _hub


def acquire_hub() -> Hub:
    """The running hub, started if need be, counting one more user."""
    global _hub
    with _lock:
        if _hub is None:
            _hub = Hub(_options)
        _hub.users += 1
        return _hub


def release_hub(hub: Hub) -> None:
    """One user fewer; the last one stops the hub."""
    global _hub
    with _lock:
        hub.users -= 1
        if hub.users > 0:
            return
        if _hub is hub:
            _hub = None
    hub._stop()


def _after_fork_in_child() -> None:
    """The parent's hub threads do not exist here: the child starts its own hub on demand."""
    global _lock, _hub
    _lock = threading.Lock()
    _hub = None


os.register_at_fork(after_in_child=_after_fork_in_child)
