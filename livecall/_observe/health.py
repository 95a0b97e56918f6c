"""Whether the process still watches its calls: what ``/healthz`` answers and why.

Three things make a process worth restarting, each named in the answer:
the hub's I/O thread stopped turning (no socket, heartbeat or reconnect is
served), a plugin is stuck in a hook past the watchdog's limit (its calls
wait behind it), or a call's connection has heard nothing for longer than
its heartbeat allows (the heartbeat should have ended it: the transport is
wedged).  A liveness probe restarts the process; the answer tells the
operator which plugin to look at.
"""

import time
from typing import Any, Optional

import attrs

from .registry import live_watches

__all__ = ["DEFAULT_HUB_STALL", "DEFAULT_STALE_AFTER", "Health", "check_health"]

#: Seconds without a turn of the I/O thread that make a hub wedged; a healthy one turns every second.
DEFAULT_HUB_STALL = 10.0
#: Seconds of silence on an open connection that make it wedged: past the heartbeat's 20 + 10 s, twice.
DEFAULT_STALE_AFTER = 60.0


@attrs.frozen
class Health:
    """``ok``, or the ``problems`` that make the process unhealthy, in words for an operator."""

    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        if self.ok:
            return {"status": "ok"}
        return {"status": "unhealthy", "problems": list(self.problems)}


def check_health(
    hub: Optional[Any], stale_after: float = DEFAULT_STALE_AFTER, hub_stall: float = DEFAULT_HUB_STALL
) -> Health:
    """Look at the hub running now (if any: its ``turned_at`` and ``dispatchers``), and every open connection.

    Never names a call: an answer may reach logs and dashboards that must not
    hold call ids or phone numbers, so silent calls are counted.
    """
    problems = []
    now = time.monotonic()
    if hub is not None:
        turn_age = now - hub.turned_at
        if turn_age > hub_stall:
            problems.append(f"the hub's I/O thread has not turned for {turn_age:.1f} s")
        for plugin, stuck_for in hub.dispatchers.stuck(now):
            problems.append(f"plugin {plugin} has been stuck in a hook for {stuck_for:.1f} s")
    silent = sum(
        1
        for counts in live_watches()
        if counts.connected and counts.last_frame_at is not None and now - counts.last_frame_at > stale_after
    )
    if silent:
        problems.append(f"{silent} open connection(s) heard nothing for more than {stale_after:g} s")
    return Health(tuple(problems))
