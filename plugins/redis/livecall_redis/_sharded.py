"""A worker's view of every shard: their requests streams, read together, and their scripts.

With one shard this is what a worker always did: one ``XREADGROUP`` that
blocks for a second, one ``XAUTOCLAIM``, one set of scripts.  With several
(``--shards N``, see ``_shards.py``):

- on one Redis server, one ``XREADGROUP`` reads every shard's stream and
  blocks until any has a request;
- on a cluster, a command may touch one slot only, so each shard is read on
  its own: every shard without waiting, then, when none had a request, one
  of them (each in turn) blocking for a second.  A worker that waits on one
  shard takes a request of another on its next look, within that second;
  with as many workers as shards, some worker waits on each most of the time;
- ``XAUTOCLAIM`` runs on each shard, each with its own cursor;
- the scripts of a request run on its shard (its id says which: ``SHARD/ID``).

A worker never takes more requests than it has room for.  One ``XREADGROUP``
over several streams may answer up to ``COUNT`` entries from each: those past
the room (fewer than the shards: each stream is asked for its share) are put
back at once (pending, idle for a whole lease, their delivery count as before
the read), so the next worker with room claims them on its next look.
"""

import inspect
import random
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, TypeVar, cast

import redis
from redis.commands.core import Script

from ._scripts import Scripts
from ._settings import WorkerSettings
from ._shards import ShardKeys, every_shard, qualify, split
from ._status import group_lag

__all__ = ["RequestStreams", "ShardedScripts"]

#: A request read or claimed: its id (``SHARD/ID`` with several shards) and its fields, as bytes.
Taken = tuple[str, dict[bytes, bytes]]
_Item = TypeVar("_Item")


class ShardedScripts:
    """The scripts of every shard behind the face of one :class:`Scripts`.

    A method that takes a ``request_id`` (``SHARD/ID``) runs on that shard's
    scripts, with the entry's own id, whatever the method: those added to
    :class:`Scripts` later are routed too.  ``acquire_many``, ``renew_many``
    and ``write_many`` split their work by shard and answer in the order they
    were given; ``on()`` moves every shard to another client.  What belongs to
    one shard (``requests``, ``events``, ``written_keys()``, ``pipelined()``
    of keys already named) is not here: each shard's keys are in
    :func:`livecall_redis._shards.shard_keys`.
    """

    def __init__(self, shards: Sequence[Scripts]):
        self._shards = list(shards)
        self.client = self._shards[0].client
        self.group = self._shards[0].group

    def on(self, client: "redis.Redis") -> "ShardedScripts":
        """The same scripts on the same streams, run on another client."""
        return ShardedScripts([scripts.on(client) for scripts in self._shards])

    def route(self, request_id: str) -> tuple[Scripts, str]:
        """The scripts of the request's shard, and its entry's id there."""
        index, entry_id = split(len(self._shards), request_id)
        return self._shards[index], entry_id

    def acquire_many(self, consumer: str, request_ids: Sequence[str]) -> list[Any]:
        return self._by_shard(
            request_ids,
            lambda request_id: request_id,
            lambda request_id, entry_id: entry_id,
            lambda scripts, entries: scripts.acquire_many(consumer, entries),
        )

    def renew_many(self, consumer: str, leases: Sequence[tuple[str, int]]) -> list[Any]:
        return self._by_shard(
            leases,
            lambda lease: lease[0],
            lambda lease, entry_id: (entry_id, lease[1]),
            lambda scripts, entries: scripts.renew_many(consumer, entries),
        )

    def write_many(self, writes: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Each write is ``Scripts.write``'s arguments, the request's id second."""
        return self._by_shard(
            writes,
            lambda write: write[1],
            lambda write, entry_id: (write[0], entry_id, *write[2:]),
            lambda scripts, entries: scripts.write_many(entries),
        )

    def _by_shard(
        self,
        items: Sequence[_Item],
        request_id_of: Callable[[_Item], str],
        with_entry: Callable[[_Item, str], Any],
        run: Callable[[Scripts, list[Any]], list[Any]],
    ) -> list[Any]:
        """``run`` once per shard on its items (each given its entry's id); answers in ``items``' order."""
        groups: dict[int, list[tuple[int, Any]]] = {}
        for position, item in enumerate(items):
            index, entry_id = split(len(self._shards), request_id_of(item))
            groups.setdefault(index, []).append((position, with_entry(item, entry_id)))
        answers: list[Any] = [None] * len(items)
        for index, members in groups.items():
            answered = run(self._shards[index], [item for _, item in members])
            for (position, _), answer in zip(members, answered):
                answers[position] = answer
        return answers

    def __getattr__(self, name: str) -> Any:
        method = getattr(Scripts, name, None)
        if not callable(method) or "request_id" not in inspect.signature(method).parameters:
            raise AttributeError(
                f"{type(self).__name__} has no {name!r}: it belongs to one shard (see shard_keys())"
            )
        signature = inspect.signature(method)

        def routed(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(None, *args, **kwargs)  # None: where self goes
            scripts, bound.arguments["request_id"] = self.route(bound.arguments["request_id"])
            return getattr(scripts, name)(*bound.args[1:], **bound.kwargs)

        routed.__name__ = name
        routed.__doc__ = method.__doc__
        setattr(self, name, routed)  # found directly from now on
        return routed


class RequestStreams:
    """The requests streams of every shard, as one worker reads them.

    ``client`` answers text (the groups, the scripts); ``reader`` answers
    bytes (requests' fields, see ``_entries.py``) and is used by one thread.
    """

    def __init__(self, settings: WorkerSettings, client: "redis.Redis", reader: "redis.Redis"):
        self._settings = settings
        self._client = client
        self._reader = reader
        # XAUTOCLAIM's answer as Redis gives it: redis-py 4.3.0 leaves its cursor out.
        reader.set_response_callback("XAUTOCLAIM", _as_given)
        self.shards: list[ShardKeys] = every_shard(settings)
        self._per_shard = [
            Scripts(client, keys.requests, settings.group, keys.events, keys.dead_letter)
            for keys in self.shards
        ]
        #: The scripts, each run on its request's shard: a :class:`Scripts`, or one in its guise.
        self.scripts: Scripts = (
            self._per_shard[0] if len(self.shards) == 1 else cast(Scripts, ShardedScripts(self._per_shard))
        )
        self._index = {keys.requests.encode(): keys.index for keys in self.shards}
        self._claim_from = ["0-0"] * len(self.shards)
        #: Where the next look starts: workers start at different shards, then take turns.
        self._turn = random.randrange(len(self.shards))
        #: Whether one command may read every shard: not on a cluster, where each is in its own slot.
        self._together = len(self.shards) == 1 or not settings.cluster

    def prepare(self) -> None:
        """Create the group on every shard (reading from its stream's beginning), and on a cluster
        load the scripts on every primary: a node without them refuses a pipeline's calls, to be
        sent again, and redis-py 4.3 logs a lone call's refusal before it loads the script."""
        for keys in self.shards:
            try:
                self._client.xgroup_create(keys.requests, self._settings.group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        if self._settings.cluster:
            for value in vars(self._per_shard[0]).values():
                if isinstance(value, Script):
                    self._client.script_load(value.script)  # every primary

    def claim(self, consumer: str, room: int) -> list[Taken]:
        """Requests whose lease lapsed (``XAUTOCLAIM``), shard by shard, at most ``room`` in all."""
        claimed: list[Taken] = []
        lease_ms = int(self._settings.lease * 1000)
        if self._settings.cluster:  # each node's client parses an answer before the cluster's does
            cluster: Any = self._reader
            for node in cluster.get_primaries():
                cluster.get_redis_connection(node).set_response_callback("XAUTOCLAIM", _as_given)
        for index in self._rotation():
            if len(claimed) >= room:
                break
            answer: Any = self._reader.execute_command(
                "XAUTOCLAIM",
                self.shards[index].requests,
                self._settings.group,
                consumer,
                lease_ms,
                self._claim_from[index],
                "COUNT",
                room - len(claimed),
            )
            self._claim_from[index], entries = _claimed(answer)
            claimed += (
                (self._qualify(index, raw_id), _fields(flat))
                for raw_id, flat in entries
                if flat is not None  # deleted meanwhile (Redis < 7 says so this way)
            )
        return claimed

    def read(self, consumer: str, room: int, block_ms: int) -> list[Taken]:
        """New requests (``XREADGROUP``), at most ``room``, waiting up to ``block_ms`` for one."""
        if self._together:
            order = self._rotation()
            streams: dict[Any, Any] = {self.shards[index].requests: ">" for index in order}
            each = -(-room // len(streams))  # COUNT is per stream: room in all, give or take a few
            answer: Any = self._reader.xreadgroup(
                self._settings.group, consumer, streams, count=each, block=block_ms
            )
            read = [
                (self._index[name], raw_id, raw)
                for name, entries in answer or ()
                for raw_id, raw in entries
                if raw is not None  # deleted meanwhile
            ]
            self._put_back(consumer, read[room:])
            return [(self._qualify(index, raw_id), raw) for index, raw_id, raw in read[:room]]
        order = self._rotation()
        taken: list[Taken] = []
        for index in order:
            if len(taken) >= room:
                break
            taken += self._read_one(consumer, index, room - len(taken), None)
        return taken or self._read_one(consumer, order[0], room, block_ms)

    def _read_one(self, consumer: str, index: int, room: int, block_ms: Optional[int]) -> list[Taken]:
        stream: dict[Any, Any] = {self.shards[index].requests: ">"}
        answer: Any = self._reader.xreadgroup(
            self._settings.group, consumer, stream, count=room, block=block_ms
        )
        return [
            (self._qualify(index, raw_id), raw)
            for _, entries in answer or ()
            for raw_id, raw in entries
            if raw is not None
        ]

    def _put_back(self, consumer: str, extra: Iterable[tuple[int, bytes, Any]]) -> None:
        """Requests read past the room: idle for a lease, so that any worker claims them now, and
        their delivery count back to what it was (``XREADGROUP`` counted one)."""
        by_shard: dict[int, list[bytes]] = {}
        for index, raw_id, _ in extra:
            by_shard.setdefault(index, []).append(raw_id)
        for index, raw_ids in by_shard.items():
            self._reader.xclaim(
                self.shards[index].requests,
                self._settings.group,
                consumer,
                0,
                raw_ids,  # type: ignore[arg-type]
                idle=int(self._settings.lease * 1000),
                retrycount=0,
                justid=True,
            )

    def dead_letter_of(self, request_id: str) -> str:
        """The dead-letter stream of the request's shard."""
        return self.shards[split(len(self.shards), request_id)[0]].dead_letter

    def lag(self) -> int:
        """Requests not yet delivered to any worker, on every shard: each shard's group's lag, as
        ``livecall status`` counts it (:func:`livecall_redis._status.group_lag`)."""
        return sum(group_lag(self._client, keys.requests, self._settings.group) or 0 for keys in self.shards)

    def _rotation(self) -> list[int]:
        """Every shard, starting from the next one in turn."""
        start = self._turn
        self._turn = (start + 1) % len(self.shards)
        return [(start + offset) % len(self.shards) for offset in range(len(self.shards))]

    def _qualify(self, index: int, raw_id: bytes) -> str:
        return qualify(len(self.shards), index, raw_id.decode())


def _as_given(response: Any, **options: Any) -> Any:
    return response


def _claimed(answer: Any) -> tuple[str, list[Any]]:
    """``XAUTOCLAIM``'s cursor and entries.  Parsed by a cluster node that was not told to leave it
    as given (one that joined since), redis-py 4.3.0 answers the entries alone: the next look
    starts over."""
    if answer and isinstance(answer[0], bytes):
        return answer[0].decode(), answer[1]
    return "0-0", answer


def _fields(flat: Any) -> dict[bytes, bytes]:
    """A claimed entry's fields, from the flat list Redis answers, or parsed already into a dict."""
    return flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2]))
