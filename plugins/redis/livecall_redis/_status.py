"""``livecall status``: what the workers are doing, read from Redis alone.

How many requests wait (the group's lag), which worker holds how many calls
and how long since its least recently renewed lease was renewed, the dead
letters with why they died, and the events stream's length and its newest
entry's age.  Everything is read from the streams and the group; no worker
is asked, so it works with every worker dead.  With several shards
(``--shards N``; see ``_shards.py``) every shard's streams are read, and
shown together and each apart.

Ages are measured on Redis's clock (``TIME``), as the entries' ids are (on a
cluster, the clock of the node holding the shard, which stamped its
entries), so the machine running the command may have any clock.  Text from
Redis (a consumer's name, a reason, an error) is shown through
``livecall.printable``: a request's fields come from whoever can enqueue,
and must not drive the terminal.  A dead letter's other fields are never
shown: only those named in :class:`DeadLetter`, never a secret.
"""

import datetime
import json
from collections.abc import Iterable
from typing import Any, Optional

import attrs
import redis

import livecall

from ._dead import call_id
from ._shards import Layout, ShardKeys, every_shard, is_cluster, qualify

__all__ = ["DeadLetter", "Holder", "ShardStatus", "Status", "group_lag", "read_status"]


def group_lag(client: "redis.Redis", stream: str, group: str) -> Optional[int]:
    """Requests not yet delivered to any worker of ``group``; None while the group does not exist.

    Redis 7 tells the group's lag; where it does not (Redis 6.2, or a lag
    it cannot work out since entries were deleted), the stream's length
    less the requests held: every request left on the stream is either.
    """
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError as error:
        if "no such key" in str(error).lower():
            return None
        raise
    for info in groups:
        if info.get("name") == group:
            lag = info.get("lag")
            if lag is None:
                lag = max(0, client.xlen(stream) - int(info.get("pending", 0)))
            return int(lag)
    return None


@attrs.frozen
class Holder:
    """A worker (a consumer of the group) and the requests it holds.

    ``oldest_lease_age``: seconds since the least recently renewed of its
    leases was renewed (or taken); a worker renews each lease every
    ``--renew`` seconds, so an age near ``--lease`` means the worker has
    stopped, and its calls are about to be taken over.
    """

    consumer: str
    calls: int
    oldest_lease_age: float


@attrs.frozen
class DeadLetter:
    """What ``status`` shows of a dead letter: its id on the dead-letter stream, and why it died.

    ``last_error_at`` is an ISO 8601 time in UTC; ``deliveries`` how many
    times the request was delivered before it died.
    """

    id: str
    request_id: Optional[str]
    provider: Optional[str]
    call_id: Optional[str]
    reason: Optional[str]
    last_error: Optional[str]
    last_error_at: Optional[str]
    deliveries: Optional[int]

    @classmethod
    def read(cls, entry_id: str, fields: dict[str, str]) -> "DeadLetter":
        deliveries = fields.get("deliveries")
        return cls(
            id=entry_id,
            request_id=fields.get("request_id"),
            provider=fields.get("provider"),
            call_id=call_id(fields),
            reason=fields.get("reason"),
            last_error=fields.get("last_error"),
            last_error_at=_iso_time(fields.get("last_error_at")),
            deliveries=int(deliveries) if deliveries is not None and _digits(deliveries) else None,
        )


@attrs.frozen
class ShardStatus:
    """One shard's figures: its streams' names (tagged ``{N}``, see ``_shards.py``) and what
    :class:`Status` counts of them; ``holders`` are the workers holding this shard's requests."""

    shard: int
    requests: str
    group_exists: bool
    waiting: int
    held: int
    holders: tuple[Holder, ...]
    dead_letter: str
    dead_letters: int
    events: str
    events_length: int
    newest_event_age: Optional[float]

    def line(self) -> str:
        """One line of figures, for :meth:`Status.text` (the names are above it)."""
        group = "" if self.group_exists else "no group yet: "
        events = _count(self.events_length, "event")
        if self.newest_event_age is not None:
            events += f", newest written {_seconds(self.newest_event_age)} ago"
        return (
            f"{f'shard {self.shard}':<13} {group}{self.waiting} waiting, {self.held} held, "
            f"{_count(self.dead_letters, 'dead letter')}, {events}"
        )


@attrs.frozen
class Status:
    """Everything ``livecall status`` shows; :meth:`text` for people, :meth:`json` for programs.

    The figures are those of every shard together; ``shards`` has each
    one's (one shard, as ever, unless ``--shards`` says more).
    """

    #: The requests streams' name as given (``--requests``): each shard's stream is in ``shards``.
    requests: str
    group: str
    #: Whether the group exists (on every shard): no worker has started on these requests until one does.
    group_exists: bool
    #: Requests no worker has taken yet.
    waiting: int
    #: Requests held by workers (pending in the group), all workers together.
    held: int
    #: Each worker holding requests: its calls on every shard, its oldest lease of them all.
    holders: tuple[Holder, ...]
    dead_letter: str
    dead_letters: int
    #: The newest dead letters of every shard, newest first (each id ``SHARD/ID`` with several).
    newest_dead_letters: tuple[DeadLetter, ...]
    events: str
    events_length: int
    #: Seconds since the newest event was written; None for an empty events stream.
    newest_event_age: Optional[float]
    shards: tuple[ShardStatus, ...]

    def json(self) -> str:
        """One JSON object, on one line."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    def text(self) -> str:
        """Lines for a person, every character from Redis shown as itself or as an escape.

        The streams of several shards are named as their first and last
        (``livecall:requests:{0} to {2}``), with a line of each shard's
        figures at the end.
        """
        p = livecall.printable
        requests = f"{p(self._across('requests'))} ({self._group()})"
        lines = [f"requests      {requests}: {self.waiting} waiting, {self.held} held"]
        if not self.holders:
            lines.append("workers       none holding a call")
        for holder in self.holders:
            lines.append(
                f"worker        {p(holder.consumer)}: {_count(holder.calls, 'call')}, "
                f"oldest lease renewed {_seconds(holder.oldest_lease_age)} ago"
            )
        shown = len(self.newest_dead_letters)
        cut = f" (the newest {shown} below)" if 0 < shown < self.dead_letters else ""
        lines.append(f"dead letters  {p(self._across('dead_letter'))}: {self.dead_letters}{cut}")
        for letter in self.newest_dead_letters:
            said = [
                f"  {p(letter.id)}",
                f"request {p(letter.request_id or '?')}",
                p(letter.provider or "?"),
                f"call {p(letter.call_id or '?')}",
                f"{letter.deliveries if letter.deliveries is not None else '?'} deliveries",
            ]
            lines.append(", ".join(said))
            lines.append(f"    reason: {p(letter.reason or '?')}")
            if letter.last_error is not None:
                when = f" (at {p(letter.last_error_at)})" if letter.last_error_at else ""
                lines.append(f"    last error{when}: {p(letter.last_error)}")
        newest = (
            "empty"
            if self.newest_event_age is None
            else f"newest written {_seconds(self.newest_event_age)} ago"
        )
        lines.append(
            f"events        {p(self._across('events'))}: "
            f"{_count(self.events_length, 'entry', 'entries')}, {newest}"
        )
        if len(self.shards) > 1:
            lines += (shard.line() for shard in self.shards)
        return "\n".join(lines) + "\n"

    def _across(self, stream: str) -> str:
        """The streams of that name, one for each shard: ``livecall:events:{0} to {2}``."""
        first = getattr(self.shards[0], stream)
        return first if len(self.shards) == 1 else f"{first} to {{{self.shards[-1].shard}}}"

    def _group(self) -> str:
        group = livecall.printable(self.group)
        present = sum(shard.group_exists for shard in self.shards)
        if present == len(self.shards):
            return f"group {group}"
        if present == 0:
            return f"no group {group} yet"
        return f"group {group} on {present} of {len(self.shards)} shards"


def read_status(client: "redis.Redis", layout: Layout, group: str, newest: int = 10) -> Status:
    """Read the status of the workers of ``group`` on every shard of ``layout`` from Redis (a
    decoding client; a ``RedisCluster`` on a cluster).

    ``newest``: how many of the newest dead letters to show, of every shard together.
    """
    shards: list[ShardStatus] = []
    letters: list[tuple[tuple[int, int], DeadLetter]] = []
    for keys in every_shard(layout):
        shard, newest_letters = _read_shard(client, keys, group, newest)
        shards.append(shard)
        letters += (
            (_order(entry_id), DeadLetter.read(qualify(layout.shards, keys.index, entry_id), fields))
            for entry_id, fields in newest_letters
        )
    letters.sort(key=lambda letter: letter[0], reverse=True)
    ages = [shard.newest_event_age for shard in shards if shard.newest_event_age is not None]
    return Status(
        requests=layout.requests,
        group=group,
        group_exists=all(shard.group_exists for shard in shards),
        waiting=sum(shard.waiting for shard in shards),
        held=sum(shard.held for shard in shards),
        holders=_together(holder for shard in shards for holder in shard.holders),
        dead_letter=layout.dead_letter,
        dead_letters=sum(shard.dead_letters for shard in shards),
        newest_dead_letters=tuple(letter for _, letter in letters[:newest]),
        events=layout.events,
        events_length=sum(shard.events_length for shard in shards),
        newest_event_age=min(ages, default=None),
        shards=tuple(shards),
    )


def _read_shard(
    client: "redis.Redis", keys: ShardKeys, group: str, newest: int
) -> tuple[ShardStatus, list[Any]]:
    """One shard's figures, and its newest dead letters (entry id and fields, newest first)."""
    now = _now_ms(client, keys.requests)
    lag = group_lag(client, keys.requests, group)
    holders: list[Holder] = []
    held = 0
    if lag is not None:
        summary: Any = client.xpending(keys.requests, group)
        held = int(summary.get("pending") or 0)
        consumers = [(c["name"], int(c["pending"])) for c in summary.get("consumers") or ()]
        with client.pipeline(transaction=False) as pipe:
            for name, count in consumers:
                pipe.xpending_range(keys.requests, group, min="-", max="+", count=count, consumername=name)
            ranges: list[Any] = pipe.execute()
        for (name, count), entries in zip(consumers, ranges):
            idle = max((int(entry["time_since_delivered"]) for entry in entries), default=0)
            holders.append(Holder(name, count, idle / 1000))
        holders.sort(key=lambda holder: (-holder.calls, holder.consumer))
    letters: Any = client.xrevrange(keys.dead_letter, count=newest) if newest > 0 else []
    newest_event: Any = client.xrevrange(keys.events, count=1)
    shard = ShardStatus(
        shard=keys.index,
        requests=keys.requests,
        group_exists=lag is not None,
        waiting=client.xlen(keys.requests) if lag is None else lag,
        held=held,
        holders=tuple(holders),
        dead_letter=keys.dead_letter,
        dead_letters=client.xlen(keys.dead_letter),
        events=keys.events,
        events_length=client.xlen(keys.events),
        newest_event_age=max(0.0, (now - _id_ms(newest_event[0][0])) / 1000) if newest_event else None,
    )
    return shard, list(letters)


def _together(holders: Iterable[Holder]) -> tuple[Holder, ...]:
    """Each worker once, from its holdings on each shard: its calls added up, its oldest lease."""
    calls: dict[str, int] = {}
    ages: dict[str, float] = {}
    for holder in holders:
        calls[holder.consumer] = calls.get(holder.consumer, 0) + holder.calls
        ages[holder.consumer] = max(ages.get(holder.consumer, 0.0), holder.oldest_lease_age)
    together = [Holder(consumer, calls[consumer], ages[consumer]) for consumer in calls]
    return tuple(sorted(together, key=lambda holder: (-holder.calls, holder.consumer)))


def _now_ms(client: "redis.Redis", key: str) -> int:
    """Redis's clock; on a cluster, that of the node holding ``key``, which stamps its entries."""
    if is_cluster(client):
        cluster: Any = client
        seconds, microseconds = cluster.time(target_nodes=cluster.get_node_from_key(key))
    else:
        seconds, microseconds = client.time()
    return int(seconds) * 1000 + int(microseconds) // 1000


def _id_ms(entry_id: str) -> int:
    """The time in an entry's id (``ms-seq``): when Redis added it, on its own clock."""
    return int(entry_id.split("-", 1)[0])


def _order(entry_id: str) -> tuple[int, int]:
    """An entry id's place in time (``ms-seq``), to order the entries of several streams."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _iso_time(ms: Optional[str]) -> Optional[str]:
    """Unix time in milliseconds, as text, in ISO 8601 (UTC); None for none or for what is not one."""
    if ms is None or not _digits(ms):
        return None
    try:
        moment = datetime.datetime.fromtimestamp(int(ms) / 1000, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def _count(number: int, one: str, many: Optional[str] = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"
