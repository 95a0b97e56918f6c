"""A second stopping signal, which ends a worker's drain at once.

livecall's command runs the action of the first SIGINT, SIGTERM or SIGHUP
(``Config.stopping``: the worker stops taking calls and drains), and ends
the process a few seconds after a second one, without cleanup.  A worker
draining its calls should answer that second signal by giving back what it
still holds, at once, within those seconds: so while it runs, the handlers
livecall installed are wrapped, and the second signal also calls an action
before going on to livecall's handler (its exit status stays livecall's).
"""

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, Callable

__all__ = ["second_signal"]

#: The signals that stop the ``livecall`` command.
_STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def second_signal(action: Callable[[], None]) -> Iterator[None]:
    """While the block runs, the second stopping signal also calls ``action()``, in the handler.

    ``action`` runs wherever the main thread is, so it must take no lock
    that the main thread may hold: setting an event nobody waits on under
    a lock of its own (``threading.Event.set``, its waiters polling) is
    fine.  Only handlers livecall installed (Python functions) are wrapped;
    off the main thread, where handlers cannot be set, the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in _STOPPING}
    taken = {signum: handler for signum, handler in previous.items() if callable(handler)}
    seen = [0]

    def counted(signum: int, frame: Any) -> None:
        seen[0] += 1
        if seen[0] == 2:
            action()
        taken[signum](signum, frame)

    for signum in taken:
        signal.signal(signum, counted)
    try:
        yield
    finally:
        for signum, handler in taken.items():
            signal.signal(signum, handler)
