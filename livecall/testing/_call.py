"""Where the scripted call stands: it outlives connections, so a reconnecting client
resumes the call instead of restarting it.

All state is guarded by the journal's condition; every change notifies it,
which wakes both waiting script loops and tests in ``Simulator.wait_for``.
"""

import time
from typing import Any, Callable, Optional

from ._record import Journal
from ._steps import Cut, Payload, Script, Send, Silence, Step, render


class CallState:
    """The call's position in its script, and what clients did to it.

    The newest connection owns the call: only its script loop advances it,
    and an older one still open winds down when it notices.
    """

    def __init__(self, script: Script, journal: Journal):
        self.script = script
        self._condition = journal.condition
        self.cursor = 0
        self.owner: Optional[object] = None
        self.snapshot: Optional[Payload] = script.initial
        self.joined = False
        self.end_requested = False
        self.ended = False
        self.stopping = False
        self._deadlines: dict[int, float] = {}

    def claim(self, owner: object) -> Optional[Payload]:
        """Make ``owner`` the call's connection; returns the snapshot to greet it with."""
        with self._condition:
            self.owner = owner
            self._condition.notify_all()
            return self.snapshot

    def take(self, owner: object) -> Optional[tuple[int, Step, Optional[Payload]]]:
        """The next step for ``owner`` to play, with a Send's payload rendered;
        None when ``owner`` should stop (replaced, or the simulator is stopping).

        Sends, cuts and silences are consumed here, atomically, so a reconnect
        never replays them; a cut or silence also plays the messages it loses.
        """
        with self._condition:
            if self.stopping or self.owner is not owner:
                return None
            if self.end_requested:
                self.cursor = len(self.script.steps) - 1
            index, step = self.cursor, self.script.steps[self.cursor]
            if isinstance(step, Send):
                return index, step, self._consume_send(step)
            if isinstance(step, (Cut, Silence)):
                self.cursor += 1
                for _ in range(step.lose):
                    lost = self.script.steps[self.cursor]
                    if not isinstance(lost, Send):
                        break
                    self._consume_send(lost)
            return index, step, None

    def _consume_send(self, step: Send) -> Payload:
        payload = render(step.payload)
        if step.snapshot:
            self.snapshot = payload
        self.cursor += 1
        self._condition.notify_all()
        return payload

    def join_deadline(self, index: int, timeout: float) -> float:
        """When the wait at step ``index`` gives up; fixed the first time, so reconnects keep it."""
        with self._condition:
            return self._deadlines.setdefault(index, time.monotonic() + timeout)

    def finish_wait(self, owner: object, index: int) -> None:
        """Move past the join wait at ``index`` if it is over (joined or timed out)."""
        with self._condition:
            over = self.joined or time.monotonic() >= self._deadlines[index]
            if over and self.owner is owner and self.cursor == index:
                self.cursor += 1

    def apply(self, effect: Optional[str]) -> None:
        """What a client message did: ``"join"`` or ``"end"`` (Hiya)."""
        if effect is None:
            return
        with self._condition:
            if effect == "join":
                self.joined = True
            else:
                self.end_requested = True
            self._condition.notify_all()

    def set(self, **changes: Any) -> None:
        with self._condition:
            for name, value in changes.items():
                setattr(self, name, value)
            self._condition.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: Optional[float]) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)
