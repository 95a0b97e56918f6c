"""One watch's life as one state machine: its states, and one table of the moves between them.

A watch is moved from four sides at once: ``start()`` and ``close()`` in the
caller's threads, the hub's I/O thread as connections open, fail and end,
and a dispatcher once the call's last message says it is over.  Keeping
where it stands in one state, changed only along :data:`MOVES`, makes every
moment of its life nameable and every impossible move loud: a move the table
does not hold raises :class:`LifecycleError` instead of leaving a flag half
set and the watch hanging.

The connection side goes round ``CONNECTING`` → ``OPEN`` → ``BACKING_OFF`` →
``CONNECTING`` until it ends for a reason of its own (refused, given up, the
server's normal close), or until ``close()`` or the call's end makes it
``STOPPING``; either way it passes ``FINISHING`` (the end is decided and
waits for the dispatcher) and ends ``FINISHED`` (the last hooks have run).

Pure: no thread, socket or clock.  The client holds its own lock around
every move, so a move is checked against the state as it really is.
"""

import enum
from typing import Literal, Optional

from ..call import EndReason

__all__ = ["MOVES", "Lifecycle", "LifecycleError", "State", "Step", "StopReason"]

#: What makes a watch stop of itself: the call ended, or ``close()`` was called.
StopReason = Literal[EndReason.ENDED, EndReason.CLOSED]


class LifecycleError(RuntimeError):
    """A move the table does not allow: a bug in the client, never the server's or the user's doing."""


class State(enum.Enum):
    """Where one watch stands."""

    NEW = "new"  #: built; ``start()`` not called yet
    STARTING = "starting"  #: ``start()`` was called; the first attempt is on its way to the I/O thread
    CONNECTING = "connecting"  #: an opening handshake is under way on a connector thread
    OPEN = "open"  #: a connection is up and read by the I/O thread
    BACKING_OFF = "backing_off"  #: a connection or an attempt failed; the next waits for a timer
    STOPPING = "stopping"  #: ``close()`` or the call's end: no more connections, the current one closes
    FINISHING = "finishing"  #: the end is decided; the dispatcher has yet to run the last hooks
    FINISHED = "finished"  #: the last hooks have run; ``wait()`` returns


class Step(enum.Enum):
    """What moves a watch from one state to the next."""

    START = "start"  #: ``start()``
    CONNECT = "connect"  #: the I/O thread begins an attempt: the first, or the next after a backoff
    OPENED = "opened"  #: the handshake succeeded
    RETRY = "retry"  #: the attempt or the connection failed, and another is due after a backoff
    STOP = "stop"  #: ``close()``, or the call's final event; no more connections
    FINISH = "finish"  #: no connection follows: the end goes to the dispatcher
    DONE = "done"  #: the dispatcher ran the last hooks


#: The one table of allowed moves: (state, step) to the next state.  A stop is
#: allowed everywhere, since ``close()`` is: before ``start()`` it is kept for
#: ``start()`` to act on, and once the end is decided it changes nothing more.
MOVES: dict[tuple[State, Step], State] = {
    (State.NEW, Step.START): State.STARTING,
    (State.NEW, Step.STOP): State.NEW,
    (State.STARTING, Step.CONNECT): State.CONNECTING,
    (State.STARTING, Step.STOP): State.STOPPING,
    (State.CONNECTING, Step.OPENED): State.OPEN,
    (State.CONNECTING, Step.RETRY): State.BACKING_OFF,
    (State.CONNECTING, Step.FINISH): State.FINISHING,  # refused, given up, or a bug
    (State.CONNECTING, Step.STOP): State.STOPPING,
    (State.OPEN, Step.RETRY): State.BACKING_OFF,
    (State.OPEN, Step.FINISH): State.FINISHING,  # a normal close, a refusal, a broken server
    (State.OPEN, Step.STOP): State.STOPPING,
    (State.BACKING_OFF, Step.CONNECT): State.CONNECTING,
    (State.BACKING_OFF, Step.STOP): State.STOPPING,
    (State.STOPPING, Step.STOP): State.STOPPING,
    (State.STOPPING, Step.FINISH): State.FINISHING,
    (State.FINISHING, Step.STOP): State.FINISHING,
    (State.FINISHING, Step.DONE): State.FINISHED,
    (State.FINISHED, Step.STOP): State.FINISHED,
}


class Lifecycle:
    """Where one watch stands, and the few facts of its past that its client acts on.

    ``stop_reason`` is why the watch stops of itself (None until ``close()``
    or the call's end); the call's end outranks a ``close()``, whichever came
    first, so a watch closed while its last messages were on their way still
    ends as ENDED.  ``connected_once`` says whether ``start()`` returns or
    raises the error that ended the watch.  ``call_started`` is the
    dispatcher's alone: ``livecall_call_end`` is only called after a
    ``livecall_call_start``.
    """

    __slots__ = ("state", "stop_reason", "connected_once", "call_started")

    def __init__(self) -> None:
        self.state = State.NEW
        self.stop_reason: Optional[StopReason] = None
        self.connected_once = False
        self.call_started = False

    def move(self, step: Step) -> State:
        """Take ``step`` along :data:`MOVES` and return the new state; ``LifecycleError`` if not allowed."""
        try:
            self.state = MOVES[self.state, step]
        except KeyError:
            raise LifecycleError(f"a watch in state {self.state.name} cannot take step {step.name}") from None
        if step is Step.OPENED:
            self.connected_once = True
        return self.state

    def start(self) -> None:
        """``start()``: a stop asked before it (``close()`` first) takes effect now."""
        self.move(Step.START)
        if self.stop_reason is not None:
            self.stop(self.stop_reason)

    def stop(self, reason: StopReason) -> State:
        """``close()`` or the call's end, in any state; STOPPING: a connection or backoff is left to stop."""
        if self.stop_reason is not EndReason.ENDED:
            self.stop_reason = reason
        return self.move(Step.STOP)

    def proceed(self, step: Step) -> Optional[StopReason]:
        """The connection side's ``step``, unless the watch is stopping: then no move, and the reason.

        The I/O thread's check and its move are one, under the client's lock:
        a ``close()`` between them would otherwise make the move illegal.
        """
        if self.stop_reason is None:
            self.move(step)
        return self.stop_reason
