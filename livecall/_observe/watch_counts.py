"""What one watch counts: the figures behind ``LiveClient.stats`` and the process's metrics.

Every field has one writer: the I/O thread the frame times and the pause,
the watch's dispatcher (one thread at a time) the events and failures.
Readers (a scrape, the health check, ``stats``) may see a figure a moment
old, never a torn one.  Timings are not a watch's: they go to the
histograms of the thread that takes them (``registry.thread_timings()``),
so a scrape adds up a few threads' histograms, not thousands of watches'.
"""

import time
from collections.abc import Mapping
from typing import Callable, Optional

import attrs

__all__ = ["ClientStats", "WatchCounts"]


@attrs.frozen
class ClientStats:
    """A look at one watch: its mailbox, and what it has counted so far.

    ``queued`` messages wait for the plugins now; ``queue_high_water`` is
    the most that ever waited; at ``queue_size`` the hub stops reading this
    call's socket until plugins catch up.  ``messages`` is how many the
    server's frames brought, ``events`` how many events of each kind went
    to the plugins (a Phonic snapshot brings one message and maybe several
    events), ``reconnects`` how many times the connection was lost and
    tried again, ``plugin_failures`` how many hooks and callbacks raised.
    """

    queued: int
    queue_high_water: int
    queue_size: int
    messages: int = 0
    events: Mapping[str, int] = attrs.field(factory=dict)
    reconnects: int = 0
    plugin_failures: int = 0


class WatchCounts:
    """One watch's counters, ages and (with metrics on) timings."""

    def __init__(self, provider: str, timed: bool):
        #: Whether metrics were on as the watch started: then its threads time its events and hooks.
        self.timed = timed
        self.provider = provider
        self.messages = 0
        #: Events handed to the plugins, by class (a dict lookup cheaper than the kind's): see ``by_kind``.
        self.events: dict[type, int] = {}
        #: Connections lost and tried again, by why (a short fixed word: a metric label).
        self.reconnects: dict[str, int] = {}
        self.plugin_failures = 0
        #: ``time.monotonic()`` of the last frame of any kind, and of the last message.
        self.last_frame_at: Optional[float] = None
        self.last_message_at: Optional[float] = None
        self.connected = False
        #: Reading this call's socket waits for its plugins.
        self.paused = False
        #: How many messages wait in the watch's mailbox now.
        self.queued: Callable[[], int] = lambda: 0

    def by_kind(self) -> dict[str, int]:
        """The events handed to the plugins, by their kind (``"transcript"``...)."""
        kinds: dict[str, int] = {}
        for cls, number in list(self.events.items()):
            kind = getattr(cls, "kind", cls.__name__)
            kinds[kind] = kinds.get(kind, 0) + number
        return kinds

    def opened(self, now: float) -> None:
        """A connection opened: its handshake's answer counts as the first frame heard."""
        self.connected = True
        self.paused = False
        self.last_frame_at = now

    def reconnecting(self, why: str) -> None:
        self.reconnects[why] = self.reconnects.get(why, 0) + 1

    def age(self, at: Optional[float], now: Optional[float] = None) -> Optional[float]:
        if at is None:
            return None
        return max(0.0, (time.monotonic() if now is None else now) - at)
