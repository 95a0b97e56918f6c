"""Where a fleet's keys live: one shard, as always, or shards whose keys each share a hash tag.

A fleet has one *shard* by default, on one Redis server, with the names it
always had::

    livecall:requests                  requests (a stream, in the group livecall-workers)
    livecall:requests:fence:ID         a request's fence (a hash)
    livecall:requests:dead             dead letters (a stream)
    livecall:events                    events (a stream)
    livecall:events:keys:CALL          the keys written for a call (a set)
    livecall:events:fenced             writes refused as stale (a counter)

Every script touches several of these keys at once (``_scripts.py``), which
Redis Cluster allows only when they hash to one slot.  So with ``--shards N``
(N above 1) or ``--cluster``, each name gets the shard's hash tag, ``{0}`` to
``{N-1}``, after the names given (``--requests``, ``--events``,
``--dead-letter``), and every key of shard 2 hashes to the slot of ``2``::

    livecall:requests:{2}              livecall:requests:{2}:fence:ID
    livecall:requests:dead:{2}         livecall:events:{2}
    livecall:events:{2}:keys:CALL      livecall:events:{2}:fenced

A request's id names its shard when there are several: ``2/1717171717171-0``
is entry ``1717171717171-0`` of shard 2's requests stream (entry ids of two
streams may be equal; these never are).  With one shard it is the entry id.

The layout depends on the shard count and on the cluster flag alone, so the
producers (``livecall enqueue``), the workers and the tools that read the
streams must be given the same ``--shards`` and ``--cluster``.  Growing the
shard count keeps shards ``{0}`` and up as they are; going from the untagged
layout to a tagged one, or to fewer shards, leaves requests on streams the
workers no longer read: let them drain first (see the docs' scaling page).
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Optional, Protocol, cast

import attrs
import redis
from redis.cluster import RedisCluster

import livecall

__all__ = [
    "Layout",
    "ShardKeys",
    "check_mode",
    "check_names",
    "connect",
    "every_shard",
    "fence_name",
    "is_cluster",
    "qualify",
    "requests_shown",
    "shard_for",
    "shard_keys",
    "shard_name",
    "split",
    "tagged",
    "written_keys_name",
]


class Layout(Protocol):
    """What the layout follows: the names given, the shard count, and whether Redis is a cluster.

    :class:`WorkerSettings <livecall_redis.WorkerSettings>` is one.
    """

    @property
    def requests(self) -> str: ...

    @property
    def events(self) -> str: ...

    @property
    def dead_letter(self) -> str: ...

    @property
    def shards(self) -> int: ...

    @property
    def cluster(self) -> bool: ...


def tagged(shards: int, cluster: bool) -> bool:
    """Whether the names carry a shard's hash tag: with several shards, or on a cluster."""
    return shards > 1 or cluster


def shard_name(name: str, index: int, is_tagged: bool) -> str:
    """A stream's name in shard ``index``: ``name:{index}``, or ``name`` itself when not tagged."""
    return f"{name}:{{{index}}}" if is_tagged else name


def fence_name(requests: str, entry_id: str) -> str:
    """The fence of a request: beside the shard's requests stream, in its slot."""
    return f"{requests}:fence:{entry_id}"


def written_keys_name(events: str, call_id: str) -> str:
    """The set of the keys written for a call: beside the shard's events stream, in its slot."""
    return f"{events}:keys:{call_id}"


@attrs.frozen
class ShardKeys:
    """The keys of one shard; ``fence()`` and ``written_keys()`` take an entry id and a call id."""

    index: int
    requests: str
    events: str
    dead_letter: str

    @property
    def fenced(self) -> str:
        """The counter of the writes refused as stale."""
        return f"{self.events}:fenced"

    def fence(self, entry_id: str) -> str:
        return fence_name(self.requests, entry_id)

    def written_keys(self, call_id: str) -> str:
        return written_keys_name(self.events, call_id)


def shard_keys(settings: Layout, index: int) -> ShardKeys:
    """The keys of shard ``index`` (0 to ``settings.shards - 1``)."""
    if not 0 <= index < settings.shards:
        raise ValueError(f"no shard {index}: shards are 0 to {settings.shards - 1}")
    is_tagged = tagged(settings.shards, settings.cluster)
    return ShardKeys(
        index,
        shard_name(settings.requests, index, is_tagged),
        shard_name(settings.events, index, is_tagged),
        shard_name(settings.dead_letter, index, is_tagged),
    )


def every_shard(settings: Layout) -> list[ShardKeys]:
    """The keys of every shard, in order."""
    return [shard_keys(settings, index) for index in range(settings.shards)]


def requests_shown(settings: Layout) -> str:
    """The requests streams, for people: ``livecall:requests``, or ``livecall:requests:{0} to {2}``."""
    keys = every_shard(settings)
    if len(keys) == 1:
        return keys[0].requests
    return f"{keys[0].requests} to {{{keys[-1].index}}}"


def check_names(settings: Layout) -> None:
    """``ConfigurationError`` for a name that would break the hash tags: one holding a brace.

    Redis hashes the first ``{...}`` of a key: a brace in a name given would
    put a shard's keys in different slots, or every shard in one.
    """
    if not tagged(settings.shards, settings.cluster):
        return
    for option, name in (
        ("requests", settings.requests),
        ("events", settings.events),
        ("dead-letter", settings.dead_letter),
    ):
        if "{" in name or "}" in name:
            raise livecall.ConfigurationError(
                f"--{option} {name!r}: with --shards or --cluster, a name holds no braces "
                "(each shard adds its own hash tag)"
            )


def qualify(shards: int, index: int, entry_id: str) -> str:
    """A request's id: ``INDEX/ENTRY`` with several shards, else the entry's id."""
    return f"{index}/{entry_id}" if shards > 1 else entry_id


def split(shards: int, request_id: str) -> tuple[int, str]:
    """The shard and the entry id of a request's id (:func:`qualify`'s inverse); ``ValueError`` for
    an id that names no shard of ``shards``."""
    if shards == 1:
        return 0, request_id
    index, slash, entry_id = request_id.partition("/")
    if not (slash and index.isdigit() and int(index) < shards and entry_id):
        raise ValueError(f"{request_id!r} is not SHARD/ID with a shard from 0 to {shards - 1}")
    return int(index), entry_id


def shard_for(fields: Mapping[str, str], shards: int) -> int:
    """The shard a request goes to: a digest of its fields, so the same request always goes to the
    same shard and different calls spread evenly.  A secret field (Hiya's conversation token) is
    digested too: which of ``shards`` streams a request is on tells nothing usable about it."""
    if shards == 1:
        return 0
    text = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % shards


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a Redis Cluster client."""
    return isinstance(client, RedisCluster)


def connect(url: str, cluster: bool, **options: Any) -> "redis.Redis":
    """A client of the Redis at ``url``: a ``RedisCluster`` with ``cluster`` (any node's URL).

    A cluster client runs the same commands, each sent to the node that
    holds its keys' slot (a script: the slot of all its keys, which the hash
    tags make one); it is typed as a ``redis.Redis`` for the code that uses
    either.
    """
    if not cluster:
        return redis.Redis.from_url(url, **options)
    return cast("redis.Redis", RedisCluster.from_url(url, **options))


def check_mode(url: str, cluster: bool, place: str) -> None:
    """``ConfigurationError`` when ``--cluster`` does not say what the server at ``url`` is.

    Asked of that server alone (``INFO cluster``), before any command that
    would fail less clearly: a plain client on a cluster node is told to go
    elsewhere for most keys (``MOVED``); a cluster client cannot start on a
    server that is not one.  A server that refuses ``INFO`` (an ACL) is not
    checked.  Connection errors are raised.
    """
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, socket_connect_timeout=10)
    try:
        enabled: Optional[Any] = client.info("cluster").get("cluster_enabled")
    except redis.ResponseError:
        return
    finally:
        client.close()
    if bool(enabled) == cluster:
        return
    if cluster:
        raise livecall.ConfigurationError(f"--cluster: Redis at {place} is not a cluster")
    raise livecall.ConfigurationError(
        f"Redis at {place} is a node of a cluster: give --cluster (and the same --shards everywhere)"
    )
