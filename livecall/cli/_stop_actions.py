"""How a running command asked to be stopped, run on a thread of its own when a signal comes.

A signal handler runs in the main thread between two bytecodes, wherever
that thread is, inside ``threading`` code holding a lock too: a handler that
raises there leaks the lock (a thread that later sets the event hangs), and
one that takes a lock may wait on itself.  So the handler only calls
:meth:`StopActions.request`, a flag and one byte on a pipe, and a thread
woken by that byte runs the actions the command registered, such as closing
its client; the command's waits then return as they would at the call's end.

No lock guards the actions either, since the main thread may be interrupted
while adding one: each sits in a dict under a key of its own, and whichever
thread pops it (``dict.pop`` is atomic) runs it, so it runs exactly once.
"""

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Callable, Optional

__all__ = ["StopActions"]

log = logging.getLogger("livecall.cli")

_READ_SIZE = 64


class StopActions:
    """The actions that stop the running command, and the thread that runs them on request.

    The thread starts with the object and ends once :meth:`close` is called.
    """

    def __init__(self) -> None:
        self.requested = False
        self._actions: dict[object, Callable[[], None]] = {}
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # a full pipe never blocks the signal handler
        self._write_fd: Optional[int] = write_fd
        self._thread = threading.Thread(target=self._serve, name="livecall-stop-actions", daemon=True)
        self._thread.start()

    @property
    def any(self) -> bool:
        """Whether the command said how to stop it (a plain read, safe in a signal handler)."""
        return bool(self._actions)

    def request(self) -> None:
        """Have the thread run every action, and run those added from now on at once.

        Safe in a signal handler: it takes no lock, allocates nothing that
        waits, and never blocks.
        """
        self.requested = True
        fd = self._write_fd
        if fd is None:
            return
        try:
            os.write(fd, b"!")
        except OSError:  # full (a wake-up is pending anyway) or closed (the thread is done)
            pass

    @contextlib.contextmanager
    def added(self, action: Callable[[], None]) -> Iterator[None]:
        """``action()`` stops the command while the block runs: at once if a stop was requested already."""
        key = object()
        self._actions[key] = action
        try:
            if self.requested:
                self._run(key)
            yield
        finally:
            self._actions.pop(key, None)

    def close(self, timeout: float) -> None:
        """End the thread, giving an action it runs up to ``timeout`` seconds to finish."""
        fd, self._write_fd = self._write_fd, None
        if fd is None:
            return
        os.close(fd)  # the thread reads the end of the pipe and ends
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _serve(self) -> None:
        try:
            while os.read(self._read_fd, _READ_SIZE):  # b"": the writing end was closed
                for key in list(self._actions):
                    self._run(key)
        except OSError as error:  # the pipe is gone: nothing more can wake the thread
            log.debug("stop actions: the pipe failed: %s", error)
        finally:
            os.close(self._read_fd)

    def _run(self, key: object) -> None:
        action = self._actions.pop(key, None)
        if action is None:  # another thread ran it, or the block that added it is over
            return
        try:
            action()
        except Exception:
            log.exception("stopping the command: %r failed", action)
