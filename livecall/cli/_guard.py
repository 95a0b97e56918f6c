"""What ends a watch besides the call: its time limits, a reader gone.

A thread of its own waits on all of them at once, for every watch of the
command, and closes a client (a close frame, as Ctrl-C does) when one of its
limits passes, or every client once nobody reads stdout: the main thread
stays free to wait on the watches and to be interrupted by a signal, and a
thousand watches cost one thread, not a thousand.  A reader gone is stdout
as a pipe whose reading end was closed (``livecall watch ... | head -2``):
the operating system says so at once, before anything is written to it.
"""

import logging
import math
import os
import select
import stat
import threading
import time
from collections.abc import Sequence
from typing import Any, Optional, TextIO

import attrs

from .._watch.client import LiveClient
from ..events import Event

__all__ = ["Limit", "WatchGuard", "reader_gone", "time_limits"]

log = logging.getLogger("livecall.cli")


@attrs.frozen
class Limit:
    """``seconds`` after the watch started, or with ``idle``, after its last event.

    ``name`` is how the message names it when it ends a watch: the option or
    the line's field that set it (``--max-duration 2``).
    """

    seconds: float
    idle: bool
    name: str


class _Watch:
    """One guarded client: its limits, the clock they count from, and the limit that ended it."""

    def __init__(self, client: LiveClient, limits: Sequence[Limit], label: str):
        self.client = client
        self.limits = tuple(limits)
        self.label = label
        self.started = self.last_event = time.monotonic()
        self.reached: Optional[Limit] = None

    def heard(self, call: Any, event: Event) -> None:
        self.last_event = time.monotonic()

    def deadlines(self) -> list[tuple[float, Limit]]:
        """When each limit passes; none once the watch is over or a limit ended it."""
        if self.reached is not None or self.client.finished:
            return []
        return [
            ((self.last_event if limit.idle else self.started) + limit.seconds, limit)
            for limit in self.limits
        ]


class WatchGuard:
    """Closes each client once one of its limits passed, and every client once nobody reads
    ``output`` any more; ``with`` it around the watches.

    ``add()`` each client, with its limits, before the ``with`` block.
    ``time_limited`` then says whether a limit ended any watch, and ``fired``
    whether the guard closed any.  A limit that ends a watch is said on
    stderr, one line, at every verbosity: the exit status alone (6) does not
    say which limit it was.
    """

    def __init__(self, output: TextIO):
        self._output_fd = _pipe_fd(output)
        self._watches: list[_Watch] = []
        self._thread = threading.Thread(target=self._guard, name="livecall-watch-guard", daemon=True)
        self.fired = False

    def add(self, client: LiveClient, limits: Sequence[Limit], label: str = "") -> None:
        """Guard ``client``; ``label`` starts the line saying a limit ended it (``call conv_1: ``)."""
        watch = _Watch(client, limits, label)
        if any(limit.idle for limit in limits):
            client.on(Event, watch.heard)
        self._watches.append(watch)

    @property
    def time_limited(self) -> bool:
        return any(watch.reached is not None for watch in self._watches)

    def __enter__(self) -> "WatchGuard":
        now = time.monotonic()
        for watch in self._watches:
            watch.started = watch.last_event = now
        self._wake_read, self._wake_write = os.pipe()  # how __exit__ wakes the thread
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        os.write(self._wake_write, b"x")
        self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _guard(self) -> None:
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        if self._output_fd is not None:
            poller.register(self._output_fd, select.POLLERR)  # the reading end was closed
        while True:
            left = self._time_left()
            ready = {fd for fd, _ in poller.poll(None if left is None else math.ceil(max(0.0, left) * 1000))}
            if self._wake_read in ready:
                return
            if self._output_fd in ready:
                log.info("nobody reads stdout any more: the watch ends")
                self._close(self._watches)
                return
            self._close(self._limits_reached())

    def _close(self, watches: Sequence[_Watch]) -> None:
        """Close frames to all of ``watches`` at once; the main thread waits for the watches to end."""
        for watch in watches:
            self.fired = True
            watch.client.close(timeout=0)

    def _time_left(self) -> Optional[float]:
        deadlines = [deadline for watch in self._watches for deadline, _ in watch.deadlines()]
        return min(deadlines) - time.monotonic() if deadlines else None

    def _limits_reached(self) -> list[_Watch]:
        now = time.monotonic()
        reached = []
        for watch in self._watches:
            limit = next((limit for deadline, limit in watch.deadlines() if now >= deadline), None)
            if limit is not None:
                log.warning("%sstopped watching at %s, before the call ended", watch.label, limit.name)
                watch.reached = limit
                reached.append(watch)
        return reached


def time_limits(
    max_duration: Optional[float], idle_timeout: Optional[float], line: Optional[int] = None
) -> list[Limit]:
    """The limits ``max_duration`` and ``idle_timeout`` set (None: none), named as the command
    line's options (``--max-duration 2``), or with ``line``, as that line's fields."""
    limits = []
    for seconds, idle, field in ((max_duration, False, "max_duration"), (idle_timeout, True, "idle_timeout")):
        if seconds is not None:
            name = (
                f"--{field.replace('_', '-')} {seconds:g}"
                if line is None
                else f"{field} {seconds:g} of line {line}"
            )
            limits.append(Limit(seconds, idle, name))
    return limits


def reader_gone(output: TextIO) -> bool:
    """Whether ``output`` is a pipe whose reader went away: a broken pipe there is no error."""
    fd = _pipe_fd(output)
    if fd is None:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLERR)
    return bool(poller.poll(0))


def _pipe_fd(output: TextIO) -> Optional[int]:
    """The file descriptor of ``output`` when it is a pipe (the only kind whose reader can go)."""
    try:
        fd = output.fileno()
        return fd if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):  # io.StringIO, a closed stream
        return None
