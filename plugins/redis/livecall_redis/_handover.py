"""A held call changing workers: handed over while still watched, or taken over with a gap.

A draining worker (``--drain handover``) hands each call over without
closing its watch: another worker claims the request and connects while the
old one still writes, both writes deduplicated by the event key, until the
new worker's first write fences the old one (see ``_scripts``).  A provider
that keeps one connection per call closes the older one when the newer
opens: the old watch must then end, not reconnect and take the call back.

A worker that takes a call over from one that did not hand it over (it died,
paused past its lease, gave the call back, or stopped waiting for the next
holder) writes a :class:`livecall.Gap` first, once, from the call's newest
entry on the events stream to its own connection's opening: what the
provider sent meanwhile reached no one (Hiya does not send it again).
"""

from datetime import datetime, timezone
from typing import Any

import redis

import livecall

from ._logs import log
from ._scripts import Scripts
from ._writer import HANDED_OVER, Lease

__all__ = ["HANDOVER_GRACE", "TAKEOVER_REASON", "Handover"]

#: Seconds between the old worker's connection closing and the new one's opening that still count
#: as a handover: a provider that keeps one connection per call closes the older when the newer opens.
HANDOVER_GRACE = 1.0
#: The ``reason`` of a takeover's gap.
TAKEOVER_REASON = "taken over from another worker"


class Handover:
    """The plugin of one held call that sees to its change of workers, either side of it.

    ``writer`` is the call's own :class:`EventWriter`: a takeover's gap goes
    through it, before anything the new connection brings.  ``taken_over``
    says whether another worker held the request before.
    """

    def __init__(self, scripts: Scripts, lease: Lease, writer: Any, taken_over: bool):
        self._scripts = scripts
        self._lease = lease
        self._writer = writer
        self._taken_over = taken_over

    @livecall.hookimpl
    def livecall_call_start(self, call: livecall.Call) -> None:
        """The first connection opened: a takeover without a handover has its gap written first."""
        lease = self._lease
        if not self._taken_over or lease.lost is not None or lease.client is None:
            return
        opened = datetime.now(timezone.utc)
        try:
            since = self._scripts.gap_since(lease.request_id, lease.token, int(HANDOVER_GRACE * 1000))
        except redis.RedisError as error:  # the writes that follow will say whether Redis is gone
            log.debug("could not tell whether call %s has a gap: %s", lease.call_id, type(error).__name__)
            return
        if since is None:
            return
        lost_at = min(datetime.fromtimestamp(since / 1000, timezone.utc), opened)
        gap = livecall.Gap(
            lost_at=lost_at,
            reopened_at=opened,
            reason=TAKEOVER_REASON,
            replayed=lease.client.provider.replays_missed,
            received_at=opened,
        )
        self._writer.livecall_event(call, gap)

    @livecall.hookimpl(tryfirst=True)
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        """While handing the call over, a lost connection ends the watch (before it is written):
        the next holder's took its place, or it will connect."""
        lease = self._lease
        if lease.handing_over and isinstance(event, livecall.Reconnecting):
            lease.lose(HANDED_OVER)
