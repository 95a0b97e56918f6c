"""What a scripted call is made of: plain data, played by the driver.

A script is a list of steps ending in a terminal :class:`Close`.  Steps are
data so that scenarios can be composed (a fault is a step inserted into a
normal script) and so the call's position survives from one connection to the
next: it is just an index.
"""

import json
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import attrs

Payload = Any  # a JSON value, a raw ``str`` (sent as text as is) or ``bytes`` (binary frame)


def render(payload: Union[Payload, Callable[[], Payload]]) -> Payload:
    """The payload to send now; callables let a message carry its own send time."""
    return payload() if callable(payload) else payload


def encode(payload: Payload) -> Union[str, bytes]:
    """The frame for a payload: raw text and bytes go as they are, anything else as JSON."""
    if isinstance(payload, (str, bytes)):
        return payload
    return json.dumps(payload)


@attrs.frozen
class Send:
    """One server message.

    ``snapshot`` marks a message holding the whole call state (a Phonic
    ``conversation-updated``): the latest one is what a reconnecting client
    receives first.
    """

    payload: Any
    snapshot: bool = False


@attrs.frozen
class AwaitJoin:
    """Hiya: hold the script until the client sends ``client:joinCall``, at most ``timeout`` s."""

    timeout: float


@attrs.frozen
class Cut:
    """Fault: end the connection abruptly; ``mode`` is ``"reset"`` (TCP RST) or a close code.

    The next ``lose`` messages go out while nobody listens: a Hiya client never
    sees them, a Phonic client finds their effect in its next snapshot.
    """

    mode: Union[str, int]
    lose: int


@attrs.frozen
class Silence:
    """Fault: stop sending, reading and answering pings, TCP left open, until the client
    reconnects (or the simulator stops); ``lose`` as for :class:`Cut`."""

    lose: int


@attrs.frozen
class Close:
    """Terminal step: send ``payloads`` and close with ``code``.

    It is never consumed, so every later connection gets the same ending
    (a call that is over stays over; refused credentials stay refused).
    """

    payloads: tuple[Any, ...]
    code: int
    reason: str = ""
    ends_call: bool = False


Step = Union[Send, AwaitJoin, Cut, Silence, Close]


@attrs.frozen
class Script:
    """A whole scripted call.

    ``initial`` is the state snapshot a client gets on connecting before any
    snapshot step has run; ``paced`` is False for scripts that must run flat
    out whatever the simulator's pace; ``refuse`` is an HTTP status every
    otherwise valid handshake gets instead of 101.
    """

    steps: tuple[Step, ...]
    initial: Optional[Payload] = None
    paced: bool = True
    refuse: Optional[int] = None

    def __attrs_post_init__(self) -> None:
        if not self.steps or not isinstance(self.steps[-1], Close):
            raise ValueError("a script must end with a Close step")

    @property
    def message_count(self) -> int:
        """How many :class:`Send` steps; fault positions count in these."""
        return sum(isinstance(step, Send) for step in self.steps)

    def with_inserted(self, inserts: Sequence[tuple[int, Step]]) -> "Script":
        """A copy with each ``(position, step)`` placed after the position-th message."""
        count = self.message_count
        for position, _ in inserts:
            if not 0 <= position <= count:
                raise ValueError(f"position {position} is outside this script's 0..{count} messages")
        pending = sorted(inserts, key=lambda insert: insert[0])
        steps, sent = [], 0
        for step in self.steps:
            while pending and pending[0][0] <= sent:
                steps.append(pending.pop(0)[1])
            steps.append(step)
            sent += isinstance(step, Send)
        return attrs.evolve(self, steps=tuple(steps))
