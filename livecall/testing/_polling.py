"""Waiting on what announces nothing: a file another process writes, a count another thread keeps."""

import threading
import time
from typing import Callable, TypeVar

__all__ = ["wait_until"]

_T = TypeVar("_T")


def wait_until(condition: Callable[[], _T], timeout: float = 30.0, interval: float = 0.005) -> _T:
    """Check ``condition()`` every ``interval`` seconds until it is truthy, and return it.

    For what notifies nobody, such as a file a ``livecall`` process writes;
    what the simulator records is better awaited with
    :meth:`Simulator.wait_for`, which is woken rather than polling.
    ``timeout`` is a hang guard, not a speed target: after it, ``TimeoutError``.
    To stop early when a child process dies, make that part of the
    condition and check which part held.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a pause between checks
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"the condition did not hold within {timeout:g} s")
        pause.wait(interval)
