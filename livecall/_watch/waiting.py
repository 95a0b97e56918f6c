"""Waiting on many watches at once, from the one thread that started them.

Both waits hang one callback on every watch and sleep on a single event:
the waiting thread wakes once, not once per watch as each ends.
"""

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Callable, Optional

from .client import LiveClient

__all__ = ["wait_all", "wait_any"]


def wait_all(clients: Iterable[LiveClient], timeout: Optional[float] = None) -> bool:
    """Block until every watch is over; ``False`` if ``timeout`` ran out first.

    Raises nothing of the watches' own: ask each client's ``wait(0)`` for its error.
    """
    clients = list(clients)
    if not clients:
        return True
    lock, all_over = threading.Lock(), threading.Event()
    left = len(clients)

    def one_over() -> None:
        nonlocal left
        with lock:
            left -= 1
            if left == 0:
                all_over.set()

    with _told(clients, one_over):
        return all_over.wait(timeout)


def wait_any(clients: Iterable[LiveClient], timeout: Optional[float] = None) -> list[LiveClient]:
    """Block until at least one watch is over; those that are, in the order given.

    An empty list means ``timeout`` ran out first.  A watch that was over
    already counts at once.
    """
    clients = list(clients)
    over = threading.Event()
    with _told(clients, over.set):
        over.wait(timeout)
    return [client for client in clients if client.finished]


@contextlib.contextmanager
def _told(clients: list[LiveClient], callback: Callable[[], None]) -> Iterator[None]:
    """``callback()`` as each watch ends (at once for one over already), until the block is left."""

    def done(client: LiveClient) -> None:
        callback()

    for client in clients:
        client.add_done_callback(done)
    try:
        yield
    finally:
        for client in clients:
            client.remove_done_callback(done)
