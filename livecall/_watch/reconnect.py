"""Whether to reconnect after a connection ended, and when: a pure policy, no I/O.

What is retried: a connection that dropped (TCP ended without a close
frame, an unanswered heartbeat or close frame), a close with 1001, 1006,
1011, 1012, 1013 or 1014, and an opening handshake that failed on the
network or with a busy status.  What is not: a normal close (1000, or a close
frame without a code), an authentication refusal (1008), any other close
code, and a connection we failed ourselves because the server broke the
protocol or sent a message over ``max_message_size``: reconnecting would only
meet the same server doing the same thing.

The attempt counter starts again only after a connection stayed up for
``stable_after`` seconds, so ``max_retries`` also bounds a server that
accepts every connection and fails it a frame or two later.
"""

import random
from typing import Callable, Optional, Union

import attrs

from .._wire.protocol import Cause, Outcome
from ..call import EndReason
from ..errors import AuthenticationError, ProtocolError, RetriesExhaustedError
from .backoff import Backoff

__all__ = ["Finish", "ReconnectPolicy", "Retry", "RETRYABLE_CLOSE_CODES"]

#: Close codes after which the same call can be picked up again.
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
AUTH_CLOSE_CODE = 1008
#: A normal close, or a close frame without a code: a deliberate close all the same.
FINAL_CLOSE_CODES = frozenset({1000, 1005})
_DROPS = frozenset({Cause.DROPPED, Cause.NO_PONG, Cause.CLOSE_TIMEOUT})


@attrs.frozen
class Retry:
    """Reconnect after ``delay`` seconds; this is attempt number ``attempt``.

    ``at`` is when the connection was lost or the attempt failed
    (``time.time()``): the policy reads no clock, so the client sets it
    (``attrs.evolve``) as it acts on the decision.
    """

    attempt: int
    delay: float
    cause: str
    at: Optional[float] = None


@attrs.frozen
class Finish:
    """Do not reconnect: the watch ends for ``reason``, with ``error`` if it failed."""

    reason: EndReason
    error: Optional[BaseException] = None


Decision = Union[Retry, Finish]


class ReconnectPolicy:
    """Decides after each connection; keeps the attempt counter, reads no clock."""

    def __init__(
        self,
        max_retries: int,
        backoff: Backoff,
        stable_after: float,
        draw: Callable[[], float] = random.random,
    ):
        self.max_retries = max_retries
        self._backoff = backoff
        self._stable_after = stable_after
        self._draw = draw
        self._attempt = 0

    def after_connection(self, outcome: Outcome, up_for: float) -> Decision:
        """A connection that opened ended with ``outcome`` after ``up_for`` seconds."""
        if up_for >= self._stable_after:
            self._attempt = 0
        code, detail = outcome.code, f": {outcome.reason}" if outcome.reason else ""
        if outcome.cause is Cause.PROTOCOL_ERROR:
            error = ProtocolError(f"the server broke the WebSocket protocol{detail}", code=code)
            return Finish(EndReason.ERROR, error)
        if outcome.cause is Cause.TOO_BIG:
            error = ProtocolError(f"the server sent a message too large to accept{detail}", code=code)
            return Finish(EndReason.ERROR, error)
        if outcome.cause in _DROPS or code in RETRYABLE_CLOSE_CODES:
            return self._retry(f"closed with code {code}{detail}")
        if code in FINAL_CLOSE_CODES:
            return Finish(EndReason.ENDED)
        if code == AUTH_CLOSE_CODE:
            refused = AuthenticationError(
                "the server closed the connection with 1008 (authentication or authorization refused)",
                status=code,
            )
            return Finish(EndReason.AUTH_FAILED, refused)
        error = ProtocolError(f"the server closed with code {code}{detail}", code=code)
        return Finish(EndReason.ERROR, error)

    def after_failed_connect(self, cause: str) -> Decision:
        """An attempt that never opened, for a reason worth another try."""
        return self._retry(cause)

    def _retry(self, cause: str) -> Decision:
        self._attempt += 1
        if self._attempt > self.max_retries:
            error = RetriesExhaustedError(
                f"gave up after {self.max_retries} failed reconnect attempts; last: {cause}",
                attempts=self.max_retries,
            )
            return Finish(EndReason.GAVE_UP, error)
        return Retry(self._attempt, self._backoff.delay(self._attempt, self._draw), cause)
