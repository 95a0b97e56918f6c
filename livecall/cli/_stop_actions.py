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

The actions run on a thread of their own, so that the thread reading the
pipe is always free to see a second signal, which means "now": a hook that
never returns would otherwise hold the command forever.  Each signal is
written twice, by the C-level handler and by the Python one (marked), and
either may be missing (another wake-up file descriptor; a handler not run
yet), so the signals counted are the larger of the two counts, never more
than came.
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
#: Set in the byte the Python handler writes; signal numbers are below it.
_FROM_HANDLER = 0x80


class StopActions:
    """The actions that stop the running command, and the thread that runs them on a signal.

    ``signums`` are the signals that stop the command (others that wake the
    thread are ignored); ``on_stop(signum)`` is called before the actions
    the first one runs.  ``on_again(signum)`` ends the process: the second
    signal calls it once ``grace`` seconds have passed without the command
    ending (a plugin's own handler may cut its flush short meanwhile, as
    the webhook plugin's does), the third at once.  The thread starts with
    the object (main thread only) and ends once :meth:`close` is called.
    """

    def __init__(
        self,
        signums: Collection[int],
        on_stop: Callable[[int], None],
        on_again: Callable[[int], None],
        grace: float,
    ) -> None:
        self.requested = False
        self._grace = grace
        self._closing = threading.Event()  # the command is over: a pending second signal ends nothing
        self._seen = 0
        self._signums = frozenset(signums)
        self._on_stop = on_stop
        self._on_again = on_again
        self._runner: Optional[threading.Thread] = None  # runs the actions of the first signal
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
            os.write(fd, bytes([signum | _FROM_HANDLER]))
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
        self._closing.set()
        signal.set_wakeup_fd(self._previous_wakeup_fd)  # before the close: no signal may write to it after
        os.close(fd)  # the thread reads the end of the pipe and ends
        for thread in (self._thread, self._runner):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    def _serve(self) -> None:
        counted = {True: 0, False: 0}  # signals written by the Python handler, and by the C one
        try:
            while True:
                came = os.read(self._read_fd, _READ_SIZE)
                if not came:  # the writing end was closed
                    return
                for byte in came:
                    signum = byte & ~_FROM_HANDLER
                    if signum not in self._signums:
                        continue
                    seen = max(counted.values())
                    counted[bool(byte & _FROM_HANDLER)] += 1
                    if max(counted.values()) > seen:
                        self._signal(signum, seen + 1)
        except OSError as error:  # the pipe is gone: nothing more can wake the thread
            log.debug("stop actions: the pipe failed: %s", error)
        finally:
            os.close(self._read_fd)

    def _signal(self, signum: int, count: int) -> None:
        if count == 2:
            threading.Thread(
                target=self._after_grace, args=(signum,), name="livecall-exiting", daemon=True
            ).start()
            return
        if count > 2:
            self._on_again(signum)
            return
        self.requested = True
        if self._registered:
            self._on_stop(signum)
        self._runner = threading.Thread(target=self._run_all, name="livecall-stopping", daemon=True)
        self._runner.start()

    def _after_grace(self, signum: int) -> None:
        if not self._closing.wait(self._grace):
            self._on_again(signum)

    def _run_all(self) -> None:
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
