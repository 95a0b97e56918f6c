"""Waiting on many watches at once, from the one thread that started them."""

import threading
import time
from collections.abc import Iterable
from typing import Optional

from ._client import LiveClient

__all__ = ["wait_all", "wait_any"]


def wait_all(clients: Iterable[LiveClient], timeout: Optional[float] = None) -> bool:
    """Block until every watch is over; ``False`` if ``timeout`` ran out first.

    Raises nothing of the watches' own: ask each client's ``wait(0)`` for its error.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    for client in clients:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not client._finished.wait(remaining):
            return False
    return True


def wait_any(clients: Iterable[LiveClient], timeout: Optional[float] = None) -> list[LiveClient]:
    """Block until at least one watch is over; those that are, in the order given.

    An empty list means ``timeout`` ran out first.  A watch that was over
    already counts at once.
    """
    clients = list(clients)
    over = threading.Event()
    for client in clients:
        client._add_done_callback(over.set)
    try:
        over.wait(timeout)
    finally:
        for client in clients:
            client._remove_done_callback(over.set)
    return [client for client in clients if client.finished]
