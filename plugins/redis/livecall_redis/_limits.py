"""Time limits for held calls: ``--max-duration`` and ``--idle-timeout``, as ``livecall watch`` has them.

A request may carry its own (``max_duration`` and ``idle_timeout``, fields
no provider uses), and a worker has defaults for the requests that carry
none; the request's own win.  A call that reaches one is closed, and its
request acknowledged: it is over for good, not retried.

*Max duration* counts from when a worker first took the request, whichever
worker that was: the time is kept on the request's fence, in Redis's clock,
so a call taken over, or given back and tried again, does not start afresh
(``livecall watch`` counts from its start, since it is the only watch).
*Idle timeout* counts from the provider's last message to this worker's
watch (``LiveClient.last_message_age``), or from when this worker started
watching, if no message came since: a reconnect in between is no message.

The worker's main loop looks at the limits of its held calls once a turn
(about once a second): no thread and no timer per call.
"""

import math
from typing import Any, Optional

import attrs

import livecall

__all__ = ["LIMIT_FIELDS", "HeldLimits", "Limit", "TimeLimits", "limit_seconds"]

#: The fields of a request that hold its time limits, in seconds; no provider has a field of these names.
LIMIT_FIELDS = ("max_duration", "idle_timeout")


def limit_seconds(name: str, value: Any) -> Optional[float]:
    """``value`` (text from a stream entry, or a number) as seconds above 0; None for None.

    ``ConfigurationError`` names the field, never its value (it came from whoever enqueued).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise livecall.ConfigurationError(f"{name} must be a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise livecall.ConfigurationError(f"{name} must be a number of seconds above 0")
    return seconds


@attrs.frozen
class Limit:
    """One limit: its seconds, whether it counts silence (idle) or time held, and its name in logs."""

    seconds: float
    idle: bool
    name: str


@attrs.frozen
class TimeLimits:
    """A request's time limits in seconds, or a worker's defaults; None is no limit."""

    max_duration: Optional[float] = None
    idle_timeout: Optional[float] = None

    def applied(self, defaults: "TimeLimits") -> tuple[Limit, ...]:
        """The limits of a request with these limits on a worker with ``defaults``: its own win."""
        limits = []
        for field, idle in (("max_duration", False), ("idle_timeout", True)):
            own, default = getattr(self, field), getattr(defaults, field)
            if own is not None:
                limits.append(Limit(own, idle, f"its {field} {own:g} s"))
            elif default is not None:
                limits.append(Limit(default, idle, f"--{field.replace('_', '-')} {default:g}"))
        return tuple(limits)


@attrs.define(eq=False)
class HeldLimits:
    """The limits of one held call, and the clocks they count on (``time.monotonic()``).

    ``taken`` is when a worker first took the request, on this process's
    clock; ``watching`` when this worker started watching the call.
    """

    limits: tuple[Limit, ...]
    taken: float
    watching: float

    @property
    def max_duration(self) -> bool:
        """Whether a limit counts from when the request was first taken (then ``taken`` must be read)."""
        return any(not limit.idle for limit in self.limits)

    def reached(self, client: livecall.LiveClient, now: float) -> Optional[Limit]:
        """The first limit the call has reached at ``now``, or None."""
        watched = now - self.watching
        heard = client.last_message_age
        idle = watched if heard is None else min(heard, watched)
        for limit in self.limits:
            if (idle if limit.idle else now - self.taken) >= limit.seconds:
                return limit
        return None
