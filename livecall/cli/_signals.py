"""SIGINT, SIGTERM and SIGHUP: stop the command at once, but never cut a plugin's flush short.

A command says how to stop it (:meth:`stopping`): ``watch`` closes its
client, ``simulate`` stops its simulator.  A signal then runs that action on
a thread of its own (``_stop_actions`` says why not in the handler), the
command's waits return, it ends as at the end of the call, and
:class:`Interrupted` is raised on the way out of :meth:`interruptible`, for
the signal's exit status.  While no action is registered (parsing the
arguments, a plugin's own command), a signal raises :class:`Interrupted` in
the main thread wherever it is, as Ctrl-C raises ``KeyboardInterrupt`` in any
Python program; code blocked there on a lock that a raise could leak should
register an action instead.

While plugins are configured or flush (:meth:`deferred`), a signal is only
recorded, and raised once they are done.  Only the first signal stops the
command: the cleanup it sets off must run undisturbed.  A second one ends
the process within ``AGAIN_GRACE`` seconds (a third at once), with its own
exit status, saying on stderr what was still running (what the command said
could be, :meth:`stopping`): a hook that never returns, or a flush that
takes too long, must not leave SIGKILL as the only way out.  The grace lets
a plugin that handles the second signal itself cut its flush short and keep
what it holds.  The handler itself takes no lock: it interrupts the
main thread, maybe while that holds one.
"""

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any, Callable, Optional

from .._safety.printable import printable
from .._safety.secrets import redact
from ._exit import signal_status
from ._stop_actions import StopActions

__all__ = ["Interrupted", "signals"]

#: SIGHUP (the terminal went away, or a service manager's stop) ends the command as SIGTERM does.
_HANDLED = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
#: Seconds a stop action still running when the command is over gets to finish.
_STOP_WAIT = 10.0
#: Seconds between a second signal and the end of the process, for plugins to cut their flush
#: short (the webhook plugin writes what it could not deliver to its dead-letter file).
AGAIN_GRACE = 3.0


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
        self._stop_actions: Optional[StopActions] = None
        #: Per block of :meth:`stopping`, what may be running there: for the second signal's message.
        self._busy: dict[object, Callable[[], list[str]]] = {}
        self._deferring = False

    @contextlib.contextmanager
    def handled(self) -> Iterator["_Signals"]:
        """Install the handlers, and start the stop actions' thread, for the life of the command
        (main thread only)."""
        self.received, self._armed = None, False
        self._stop_actions = stop_actions = StopActions(_HANDLED, self._stopped_by, self._again, AGAIN_GRACE)
        try:
            self._previous = {signum: signal.signal(signum, self._handle) for signum in _HANDLED}
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous, self._stop_actions = {}, None
            stop_actions.close(_STOP_WAIT)

    @contextlib.contextmanager
    def stopping(
        self, action: Callable[[], None], busy: Optional[Callable[[], list[str]]] = None
    ) -> Iterator[None]:
        """While the block runs, a signal calls ``action()`` (on another thread) rather than
        raising: it must make the block return, and be safe from any thread.

        An action added after a signal came runs at once; one that raises is
        logged, and the others still run.  ``busy()`` says what is running
        in the block now (the plugin in a hook), for the message of a second
        signal; it is called on another thread, and must take no lock.
        """
        stop_actions = self._stop_actions
        if stop_actions is None:  # outside handled(): no signal stops anything
            yield
            return
        key = object()
        if busy is not None:
            self._busy[key] = busy
        try:
            with stop_actions.added(action):
                yield
        finally:
            self._busy.pop(key, None)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block that a signal ends with :class:`Interrupted`, even one that came before.

        A block a stop action ended returns first; ``Interrupted`` follows.
        """
        if self.received is not None:
            raise Interrupted(self.received)
        self._armed = True
        try:
            yield
        finally:
            self._armed = False
        if self.received is not None:
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block no signal interrupts; one that came meanwhile (or that a stop action
        answered before) is raised after it."""
        armed, self._armed = self._armed, False
        deferring, self._deferring = self._deferring, True
        try:
            yield
        finally:
            self._armed, self._deferring = armed, deferring
        if armed and self.received is not None:
            self._armed = False
            raise Interrupted(self.received)

    def _handle(self, signum: int, frame: Any) -> None:
        stop_actions = self._stop_actions
        if stop_actions is not None:
            stop_actions.wake(signum)
        if self.received is not None:
            return
        self.received = signum
        if self._armed and not (stop_actions is not None and stop_actions.any):
            self._armed = False
            raise Interrupted(signum)

    def _again(self, signum: int) -> None:
        """A signal after the first, once its grace is over: end the process now.

        The main thread may be waiting on a hook that never returns, so this
        thread says why and exits, without cleanup: the user asked twice.  It
        writes to file descriptor 2 itself, since a stuck thread may hold
        ``sys.stderr``'s lock.
        """
        try:
            running = [what for busy in list(self._busy.values()) for what in busy()]
        except Exception:  # the process ends whatever went wrong in saying why
            running = []
        if self._deferring:
            running.append("plugins being set up or flushed")
        where = f"; still running: {'; '.join(running)}" if running else ""
        message = f"{signal.Signals(signum).name} again: exiting at once{where}"
        try:
            os.write(2, f"livecall: error: {printable(redact(message))}\n".encode(errors="replace"))
        finally:
            os._exit(signal_status(signum))

    def _stopped_by(self, signum: int) -> None:
        """On the stop actions' thread, before they run: the signal the handler may not have seen yet
        (the main thread runs it once it wakes), and that must then neither raise nor be lost."""
        if self.received is None:
            self.received = signum


#: The process has one set of signal handlers, so the command has one of these.
signals = _Signals()
