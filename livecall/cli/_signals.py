"""SIGINT, SIGTERM and SIGHUP: stop the command at once, but never cut a plugin's flush short.

While a command runs, a signal raises :class:`Interrupted` in the main
thread (as Ctrl-C raises ``KeyboardInterrupt``), which unblocks whatever it
waits on; a watch then closes its client, sending a close frame.  While
plugins are configured or flush (:meth:`deferred`), a signal is only
recorded, and raised once they are done.  Only the first signal raises: the
cleanup it sets off must run undisturbed.  The handler itself takes no lock:
a handler interrupting the main thread while it holds one would wait on
itself forever.
"""

import contextlib
import signal
from collections.abc import Iterator
from typing import Any, Optional

from ._exit import signal_status

__all__ = ["Interrupted", "signals"]

#: SIGHUP (the terminal went away, or a service manager's stop) ends the command as SIGTERM does.
_HANDLED = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())


class Interrupted(BaseException):
    """A signal asked the command to stop; a ``BaseException`` so no ``except Exception`` eats it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.status = signal_status(signum)


class _Signals:
    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._armed = False
        self._previous: dict[int, Any] = {}

    @contextlib.contextmanager
    def handled(self) -> Iterator["_Signals"]:
        """Install the handlers for the life of the command (main thread only)."""
        self.received, self._armed = None, False
        self._previous = {signum: signal.signal(signum, self._handle) for signum in _HANDLED}
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block that a signal ends with :class:`Interrupted`, even one that came before."""
        if self.received is not None:
            raise Interrupted(self.received)
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block no signal interrupts; one that came meanwhile is raised after it."""
        armed, self._armed = self._armed, False
        try:
            yield
        finally:
            self._armed = armed
        if armed and self.received is not None:
            self._armed = False
            raise Interrupted(self.received)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
        if self._armed:
            self._armed = False
            raise Interrupted(signum)


#: The process has one set of signal handlers, so the command has one of these.
signals = _Signals()
