"""How a running command asked to be stopped, run on a thread of its own when a signal comes.

A Python signal handler runs in the main thread between two bytecodes,
wherever that thread is, inside ``threading`` code holding a lock too: a
handler that raises there can leak the lock (a thread that sets the event
later hangs), and one that takes a lock may wait on itself.  It may also not
run at all for as long as the main thread is blocked: a signal that comes
just before ``lock.acquire()`` starts to sleep is only seen once the lock is
released.  So the signal wakes a thread instead, through a pipe written by
Python's C-level handler (``signal.set_wakeup_fd``) at the moment the signal
comes, and by the Python handler as well; that thread runs the actions the
command registered, such as closing its client, and the command's waits
return as they would at the end of the call.

No lock guards the actions either, since the main thread may be interrupted
while adding one: each sits in dicts under a key of its own, and whichever
thread pops it from ``_not_run`` (``dict.pop`` is atomic) runs it, once.
"""

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Collection, Iterator
from typing import Callable, Optional

__all__ = ["StopActions"]

log = logging.getLogger("livecall.cli")

_READ_SIZE = 64


class StopActions:
    """The actions that stop the running command, and the thread that runs them on a signal.

    ``signums`` are the signals that stop the command (others that wake the
    thread are ignored); ``on_stop(signum)`` is called on the thread before
    the actions it runs.  The thread starts with the object (main thread
    only) and ends once :meth:`close` is called.
    """

    def __init__(self, signums: Collection[int], on_stop: Callable[[int], None]) -> None:
        self.requested = False
        self._signums = frozenset(signums)
        self._on_stop = on_stop
        self._registered: dict[object, Callable[[], None]] = {}  # while their block runs
        self._not_run: dict[object, Callable[[], None]] = {}
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # a full pipe never blocks a signal handler
        self._write_fd: Optional[int] = write_fd
        try:
            self._previous_wakeup_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            os.close(self._read_fd)
            os.close(write_fd)
            raise
        self._thread = threading.Thread(target=self._serve, name="livecall-stop-actions", daemon=True)
        self._thread.start()

    @property
    def any(self) -> bool:
        """Whether the command said how to stop it (a plain read, safe in a signal handler)."""
        return bool(self._registered)

    def wake(self, signum: int) -> None:
        """Tell the thread that ``signum`` came: safe in a signal handler, it takes no lock and never blocks.

        The C-level handler has written it already, unless another wake-up
        file descriptor (an asyncio loop's) replaced this one.
        """
        fd = self._write_fd
        if fd is None:
            return
        try:
            os.write(fd, bytes([signum]))
        except OSError:  # full (a wake-up is pending anyway) or closed (the thread is done)
            pass

    @contextlib.contextmanager
    def added(self, action: Callable[[], None]) -> Iterator[None]:
        """``action()`` stops the command while the block runs: at once if a stop came already."""
        key = object()
        self._registered[key] = self._not_run[key] = action
        try:
            if self.requested:
                self._run(key)
            yield
        finally:
            self._registered.pop(key, None)
            self._not_run.pop(key, None)

    def close(self, timeout: float) -> None:
        """End the thread, giving an action it runs up to ``timeout`` seconds to finish (main thread only)."""
        fd, self._write_fd = self._write_fd, None
        if fd is None:
            return
        signal.set_wakeup_fd(self._previous_wakeup_fd)  # before the close: no signal may write to it after
        os.close(fd)  # the thread reads the end of the pipe and ends
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            while True:
                came = os.read(self._read_fd, _READ_SIZE)
                if not came:  # the writing end was closed
                    return
                stopping = [signum for signum in came if signum in self._signums]
                if stopping:
                    self._stop(stopping[0])
        except OSError as error:  # the pipe is gone: nothing more can wake the thread
            log.debug("stop actions: the pipe failed: %s", error)
        finally:
            os.close(self._read_fd)

    def _stop(self, signum: int) -> None:
        self.requested = True
        if self._registered:
            self._on_stop(signum)
        for key in list(self._not_run):
            self._run(key)

    def _run(self, key: object) -> None:
        action = self._not_run.pop(key, None)
        if action is None:  # another thread ran it, or the block that added it is over
            return
        try:
            action()
        except Exception:
            log.exception("stopping the command: %r failed", action)
