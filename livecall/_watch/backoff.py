"""How long to wait before reconnect attempt N."""

import random
from typing import Callable

import attrs

__all__ = ["Backoff"]


@attrs.frozen
class Backoff:
    """Capped exponential backoff with full jitter.

    Full jitter (a uniform draw below the exponential bound) keeps many clients
    cut off by the same outage from coming back in lockstep.
    """

    base: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        return draw() * min(self.cap, self.base * 2.0 ** min(attempt - 1, 64))
