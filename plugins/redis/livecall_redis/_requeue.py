"""``livecall requeue``: dead letters back on the requests stream, as new requests.

A dead letter keeps its request's fields but its secrets, so the request is
made again from them: a new entry on the requests stream (a new id, its
deliveries counted afresh), and the dead letter deleted, both in one script,
so that running ``requeue`` twice, or two at once, requeues each letter once.
A letter whose request needs a secret field that no dead letter keeps (Hiya's
conversation token) cannot be made again: it is left where it is, saying so.

With several shards (``--shards N``, see ``_shards.py``) a dead letter's id
names its shard, ``SHARD/ID`` as ``livecall status`` shows it, and its request
goes back on that shard's requests stream (in the same slot on a cluster: the
script touches both); the new request's id is ``SHARD/ID`` too, as
``livecall enqueue`` prints it.
"""

import re
from collections.abc import Iterable, Iterator
from typing import Any, Optional, Union

import attrs
import redis

import livecall

from ._dead import request_fields
from ._requests import WatchRequest
from ._shards import Layout, every_shard, is_cluster, qualify, shard_keys, split

__all__ = ["Requeued", "all_dead_letters", "requeue"]

# KEYS: dead-letter stream, requests stream.  ARGV: the dead letter's id, then the new request's
# field/value pairs.  The new request's id; false once the letter is gone (requeued already).
_REQUEUE = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"""

#: A whole entry id: an incomplete one (``1717171717171``) would name every entry of that millisecond.
_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+")
#: Dead letters read at a time by ``--all``.
_PAGE = 100


@attrs.frozen
class Requeued:
    """What became of one dead letter: the new request's id, or why it is still a dead letter."""

    dead_letter: str
    request_id: Optional[str] = None
    problem: Optional[str] = None


def requeue(client: "redis.Redis", layout: Layout, ids: Iterable[str]) -> Iterator[Requeued]:
    """Put each dead letter of ``ids`` back on its shard's requests stream (a decoding client; a
    ``RedisCluster`` on a cluster); what became of each."""
    script = client.register_script(_REQUEUE)
    if is_cluster(client):  # on every primary: redis-py 4.3 logs a node's refusal of an unknown script
        client.script_load(_REQUEUE)
    for letter_id in ids:
        yield _requeue_one(client, script, layout, letter_id)


def all_dead_letters(client: "redis.Redis", layout: Layout) -> Iterator[str]:
    """The id of every dead letter, shard by shard, oldest first, read a page at a time."""
    for keys in every_shard(layout):
        start = "-"
        while True:
            page: Any = client.xrange(keys.dead_letter, min=start, count=_PAGE)
            for entry_id, _ in page:
                yield qualify(layout.shards, keys.index, entry_id)
            if len(page) < _PAGE:
                break
            start = "(" + page[-1][0]


def _requeue_one(client: "redis.Redis", script: Any, layout: Layout, letter_id: str) -> Requeued:
    try:
        index, entry_id = split(layout.shards, letter_id)
    except ValueError:
        index, entry_id = 0, ""
    if not _ENTRY_ID.fullmatch(entry_id):
        return Requeued(letter_id, problem=_not_an_id(layout.shards, letter_id))
    keys = shard_keys(layout, index)
    entries: Any = client.xrange(keys.dead_letter, entry_id, entry_id)
    if not entries:
        return Requeued(letter_id, problem="no such dead letter")
    fields = request_fields(entries[0][1])
    problem = _cannot_requeue(fields)
    if problem is not None:
        return Requeued(letter_id, problem=problem)
    pairs: list[Union[str, int]] = [
        item for pair in WatchRequest.from_fields(fields).fields().items() for item in pair
    ]
    new_id = script(keys=[keys.dead_letter, keys.requests], args=[entry_id, *pairs])
    if new_id is None:
        return Requeued(letter_id, problem="no such dead letter (requeued meanwhile)")
    new_id = new_id if isinstance(new_id, str) else new_id.decode()
    return Requeued(letter_id, request_id=qualify(layout.shards, index, new_id))


def _not_an_id(shards: int, letter_id: str) -> str:
    if shards > 1:
        return f"not SHARD/ID, a shard from 0 to {shards - 1} (such as 0/1717171717171-0)"
    if "/" in letter_id:
        return "not an entry id (such as 1717171717171-0): SHARD/ID needs the workers' --shards"
    return "not an entry id (such as 1717171717171-0)"


def _cannot_requeue(fields: dict[str, str]) -> Optional[str]:
    """Why a dead letter's fields make no request any more; None when they do."""
    try:
        provider = livecall.get_provider(fields.get("provider", ""))
    except livecall.ConfigurationError as error:
        return f"it is no request: {error}"
    lost = [field.name for field in provider.fields if field.secret and field.required]
    if lost:
        return (
            f"a {provider.name} request needs its {', '.join(lost)}, which a dead letter does not keep: "
            "enqueue the call again"
        )
    try:
        WatchRequest.from_fields(fields)
    except livecall.ConfigurationError as error:
        return f"it is no request: {error}"
    return None
