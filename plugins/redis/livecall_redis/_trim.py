"""Whether the events stream was trimmed past entries a consumer group had not read yet.

Workers trim the events stream as they write (``--events-maxlen``): a
consumer group that falls further behind than the stream holds loses the
entries trimmed before it read them, and Redis says nothing.  A worker looks
every few seconds (``XINFO STREAM`` and ``XINFO GROUPS``: two cheap
commands) and says so once per episode: a group is behind the stream's
oldest entry, and entries it had not read were trimmed.  The episode ends
once the group reads past the oldest entry again.

Redis 7 counts what was added to the stream and what each group read, so
the entries lost are known.  Redis 6.2 does not: there, a group behind the
oldest entry of a stream at its length bound is taken to have lost some.
"""

from typing import Any, Optional

import redis

from ._logs import log
from ._stats import Stats

__all__ = ["TrimWatch"]


def _entry_id(text: Any) -> tuple[int, int]:
    milliseconds, _, sequence = str(text).partition("-")
    return int(milliseconds), int(sequence or 0)


class TrimWatch:
    """Looks at the events stream's consumer groups (:meth:`check`); warns and counts once per episode."""

    def __init__(self, client: "redis.Redis", events: str, maxlen: int, stats: Stats):
        self._client = client
        self._events = events
        self._maxlen = maxlen
        self._stats = stats
        #: Groups found behind the trimmed stream, until they catch up.
        self._behind: set[str] = set()

    def check(self) -> None:
        """One look; Redis errors are the caller's (the worker's main loop handles them)."""
        try:
            stream: dict[str, Any] = self._client.xinfo_stream(self._events)
        except redis.ResponseError:  # no stream yet: nothing written, nothing trimmed
            self._behind.clear()
            return
        first = stream.get("first-entry")
        if not first:
            return
        oldest = _entry_id(first[0])
        groups: list[dict[str, Any]] = self._client.xinfo_groups(self._events)
        for group in groups:
            name = str(group.get("name"))
            lost = self._lost(stream, group, oldest)
            if lost is None:
                self._behind.discard(name)
            elif name not in self._behind:
                self._behind.add(name)
                self._stats.add("events_trimmed_unread")
                log.warning(
                    "the events stream %s was trimmed past %s that consumer group %s had not read "
                    "(it is at %s; the oldest entry left is %s): raise --events-maxlen, or let the "
                    "group keep up",
                    self._events,
                    "entries" if lost == 0 else f"{lost} entr{'y' if lost == 1 else 'ies'}",
                    name,
                    group.get("last-delivered-id"),
                    first[0],
                )

    def _lost(self, stream: dict[str, Any], group: dict[str, Any], oldest: tuple[int, int]) -> Optional[int]:
        """How many entries the group lost unread (0: some, uncounted); None when it lost none."""
        if _entry_id(group.get("last-delivered-id", "0-0")) >= oldest:
            return None  # it has read up to the oldest entry, or past it
        added, read = stream.get("entries-added"), group.get("entries-read")
        if added is not None and read is not None:  # Redis 7: entries before the oldest, and read
            gone = int(added) - int(stream.get("length", 0))
            return gone - int(read) if gone > int(read) else None
        return 0 if int(stream.get("length", 0)) >= self._maxlen else None
