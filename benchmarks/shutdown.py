"""(6) Shutdown: how long ``close()`` takes where the fault tests only guard against a hang.

The tests check what ``close()`` leaves behind (the watch over, or a stuck
hook given up on) with a generous hang guard; the speed figures are here.
The server paces transcripts and holds the call open; at the 10th one the
client is closed (a) from another thread, (b) from inside the hook, or
(c) with ``close(timeout=0.1)`` from another thread while the hook is stuck,
which must give up on it rather than wait.  Each variant is timed over
``rounds`` calls, taking turns, against one server.
"""

import threading
import time
from typing import Any, Callable, Optional

import livecall

from ._report import Row, spread_text, verdict
from ._server import Script, ServerProcess
from ._stats import spread
from .throughput import hiya_client

NAME = "shutdown"
FULL = dict(rounds=15)
QUICK = dict(rounds=1)
#: close() may wait up to close_timeout + 1 s by contract; each should need far less.
CLOSE_TIMEOUT_S = 2.0
GIVE_UP_AFTER_S = 0.1
#: The slowest close() each variant may take, in seconds.
TARGETS_S = dict(other_thread=1.5, inside_a_hook=1.0, stuck_hook=GIVE_UP_AFTER_S + 1.5)
AT = 10


class _AtTenth:
    """At the 10th transcript: sets ``reached``, then runs ``action`` on the dispatcher's thread."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.seen = 0
        self.reached = threading.Event()

    @livecall.hookimpl
    def livecall_transcript(self, call: livecall.Call, transcript: livecall.Transcript) -> None:
        self.seen += 1
        if self.seen == AT:
            self.reached.set()
            self.action()


def _timed(function: Callable[[], None]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def close_seconds(url: str, variant: str) -> float:
    """One watch closed the ``variant`` way: how long that close() took."""
    release = threading.Event()
    inside: list[float] = []
    client: Optional[livecall.HiyaClient] = None

    def action() -> None:
        assert client is not None
        if variant == "inside_a_hook":
            inside.append(_timed(client.close))
        elif variant == "stuck_hook":
            release.wait(60)

    trigger = _AtTenth(action)
    client = hiya_client(url, plugins=[trigger], close_timeout=CLOSE_TIMEOUT_S)
    client.start()
    if not trigger.reached.wait(60):
        raise RuntimeError(f"{variant}: the {AT}th transcript never came")
    if variant == "inside_a_hook":
        client.wait(60)
        return inside[0]
    took = _timed(lambda: client.close(timeout=GIVE_UP_AFTER_S if variant == "stuck_hook" else None))
    release.set()
    client.close(timeout=60)
    return took


def run(rounds: int) -> dict[str, Any]:
    # Paced and held open: every close comes while the call is still going.
    script = Script(count=1000, burst=False, rate=200, hold=30.0)
    seconds: dict[str, list[float]] = {variant: [] for variant in TARGETS_S}
    with ServerProcess(script) as server:
        for _ in range(rounds):
            for variant in TARGETS_S:
                seconds[variant].append(close_seconds(server.url, variant))
    return dict(
        rounds=rounds,
        close_timeout_s=CLOSE_TIMEOUT_S,
        close_s={variant: spread(values) for variant, values in seconds.items()},
        closes_received=server.stats["closes_received"],
    )


def table(result: dict[str, Any]) -> list[Row]:
    rows = []
    for variant, target in TARGETS_S.items():
        figures = result["close_s"][variant]
        rows.append(
            Row(
                f"close(), {variant.replace('_', ' ')}",
                spread_text(figures, "s") + f", max {figures['max']:.3g} s",
                f"max < {target:g} s",
                verdict(figures["max"] < target),
            )
        )
    return rows
