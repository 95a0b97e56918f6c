"""What ends a watch besides the call: ``--max-duration``, ``--idle-timeout``, a reader gone.

A thread of its own waits on all three at once and closes the client (a
close frame, as Ctrl-C does) when one comes, so the main thread stays free to
wait on the watch and to be interrupted by a signal.  A reader gone is stdout
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
from typing import Any, Optional, TextIO

from .._watch.client import LiveClient
from ..events import Event

__all__ = ["WatchGuard"]

log = logging.getLogger("livecall.cli")


class WatchGuard:
    """Closes ``client`` once ``max_duration`` seconds passed, or ``idle_timeout`` seconds
    without an event, or once nobody reads ``output`` any more; ``with`` it around the watch.

    ``time_limit`` then says which limit ended the watch (None: none did).
    """

    def __init__(
        self,
        client: LiveClient,
        output: TextIO,
        max_duration: Optional[float] = None,
        idle_timeout: Optional[float] = None,
    ):
        self._client = client
        self._output_fd = _pipe_fd(output)
        self._max_duration = max_duration
        self._idle_timeout = idle_timeout
        self._started = self._last_event = time.monotonic()
        self._thread = threading.Thread(target=self._guard, name="livecall-watch-guard", daemon=True)
        self.time_limit: Optional[str] = None
        self.fired = False
        if idle_timeout is not None:
            client.on(Event, self._heard)

    def __enter__(self) -> "WatchGuard":
        self._started = self._last_event = time.monotonic()
        self._wake_read, self._wake_write = os.pipe()  # how __exit__ wakes the thread
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        os.write(self._wake_write, b"x")
        self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _heard(self, call: Any, event: Event) -> None:
        self._last_event = time.monotonic()

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
                break
            self.time_limit = self._limit_reached()
            if self.time_limit is not None:
                log.info("the watch reached %s", self.time_limit)
                break
        self.fired = True
        self._client.close()

    def _deadlines(self) -> list[tuple[float, str]]:
        deadlines = []
        if self._max_duration is not None:
            deadlines.append((self._started + self._max_duration, f"--max-duration {self._max_duration:g}"))
        if self._idle_timeout is not None:
            idle_until = self._last_event + self._idle_timeout
            deadlines.append((idle_until, f"--idle-timeout {self._idle_timeout:g}"))
        return deadlines

    def _time_left(self) -> Optional[float]:
        deadlines = self._deadlines()
        return min(deadline for deadline, _ in deadlines) - time.monotonic() if deadlines else None

    def _limit_reached(self) -> Optional[str]:
        now = time.monotonic()
        return next((limit for deadline, limit in self._deadlines() if now >= deadline), None)


def _pipe_fd(output: TextIO) -> Optional[int]:
    """The file descriptor of ``output`` when it is a pipe (the only kind whose reader can go)."""
    try:
        fd = output.fileno()
        return fd if stat.S_ISFIFO(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):  # io.StringIO, a closed stream
        return None
