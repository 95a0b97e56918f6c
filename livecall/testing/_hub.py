"""A wedged hub on demand: what a plugin or a worker must survive when the I/O thread stops turning."""

import contextlib
import threading
from collections.abc import Iterator

from .._hub.loop import running_hub
from ..errors import LivecallError

__all__ = ["wedged_hub"]


@contextlib.contextmanager
def wedged_hub(timeout: float = 10.0) -> Iterator[None]:
    """Hold the hub's I/O thread for the block: no socket is read, no timer runs.

    The state a bug or a poisoned timer would leave the hub in, made on
    purpose, so that a test can check what its code does about it (a Redis
    worker stops renewing its leases; ``livecall.hub_turn_age()`` grows).
    Hooks keep running on their own threads.  The I/O thread goes on when
    the block is left, however it is left.  ``LivecallError`` when no hub
    runs (no client is watching); ``TimeoutError`` when the I/O thread does
    not come to the wedge within ``timeout`` seconds.
    """
    hub = running_hub()
    if hub is None:
        raise LivecallError("no hub runs: start a client first")
    wedged, release = threading.Event(), threading.Event()

    def wedge() -> None:
        wedged.set()
        release.wait()

    hub.call_soon(wedge)
    try:
        if not wedged.wait(timeout):
            raise TimeoutError(f"the hub's I/O thread did not stop within {timeout:g} s")
        yield
    finally:
        release.set()
