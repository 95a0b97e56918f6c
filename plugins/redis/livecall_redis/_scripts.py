"""The Lua scripts that make leases, fencing and idempotent writes atomic in Redis.

A request is held by the consumer that has it pending in the group; its
*fence* (a hash beside the request) holds the newest fencing token, raised
each time a worker acquires the request.  Every write a worker makes for the
call carries the token it acquired: Redis compares it with the fence in the
same script that writes, so a worker that paused past its lease and lost the
request to another cannot write anything once it wakes up.

The scripts a worker runs many at a time (acquiring the requests of one
read, renewing every lease, writing the events queued) also run *pipelined*:
each its own ``EVALSHA``, in order, all sent in one round trip
(``pipeline(transaction=False)``), each answered as a lone call would be.
"""

from collections.abc import Sequence
from typing import Any, Optional, Union

import attrs
import redis

from ._shards import fence_name, written_keys_name

__all__ = ["Acquired", "Scripts", "Written"]

# KEYS: requests stream, fence.  ARGV: group, consumer, request id.
# The request must be pending with this consumer (it has just read or claimed it).
# Returns the new token, the deliveries, and 1 when a draining worker hands the request over
# (the fence's ``handover``), else 0.  The first claim after a handover is not a failed delivery:
# the entry's delivery count is set back by one.
_ACQUIRE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return false end
local token = redis.call('HINCRBY', KEYS[2], 'token', 1)
redis.call('HSET', KEYS[2], 'owner', ARGV[2])
local deliveries = pending[1][4]
local handover = redis.call('HGET', KEYS[2], 'handover')
if handover and tonumber(handover) == token - 1 and deliveries > 1 then
  deliveries = deliveries - 1
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'RETRYCOUNT', deliveries, 'JUSTID')
end
return {token, deliveries, handover and 1 or 0}
"""

# KEYS: requests stream, fence.  ARGV: group, consumer, request id, token, idle ms.
# Resets the entry's idle time (to ARGV[5]: 0 renews, the lease gives it up)
# while the token is the newest and the entry still pending with this consumer.
_RENEW = """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[4] then return 0 end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[5], 'JUSTID')
return 1
"""

# KEYS: fence, the call's written keys (a set), events stream, fenced-writes counter.
# ARGV: token, key, call id, event JSON, events stream max length, keys' time to live (s),
# the event's W3C traceparent ('' without: then the entry has no such field).
# Returns 1 written, 0 a duplicate key, -1 a stale token (counted).
# While a draining worker hands the call over, the fence's ``handover`` holds its token, whose
# writes are still taken; the first write (or duplicate) under a newer token deletes it, and the
# old token is stale from then on.  The fence's ``last_write_ms`` keeps the time of the call's
# newest entry (from its id): where the gap of a takeover without a handover begins.
_WRITE = """
local token = redis.call('HGET', KEYS[1], 'token')
local handover = redis.call('HGET', KEYS[1], 'handover')
if token ~= ARGV[1] then
  if handover ~= ARGV[1] then
    redis.call('INCR', KEYS[4])
    return -1
  end
elseif handover and handover ~= ARGV[1] then
  redis.call('HDEL', KEYS[1], 'handover', 'handover_lost_ms')
end
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[6])
local fields = {'call_id', ARGV[3], 'key', ARGV[2], 'event', ARGV[4]}
if ARGV[7] ~= nil and ARGV[7] ~= '' then
  fields[#fields + 1] = 'traceparent'
  fields[#fields + 1] = ARGV[7]
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
redis.call('HSET', KEYS[1], 'last_write_ms', string.match(id, '^%d+'))
return 1
"""

# KEYS: requests stream, fence.  ARGV: group, request id, token.
# The call is over: acknowledge and delete the request (its credentials with it).
_FINISH = """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: requests stream, fence, dead-letter stream.  ARGV: group, consumer, request id,
# dead-letter max length, then field/value pairs for the dead letter.
_BURY = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# KEYS: fence.  ARGV: token, the error.
# The watch failed and the request is left for another try: the fence keeps the error, and when
# (Unix time in ms, Redis's clock), for a dead letter to carry.
_NOTE_ERROR = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
local now = redis.call('TIME')
local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
redis.call('HSET', KEYS[1], 'last_error', ARGV[2], 'last_error_at', ms)
return 1
"""

# KEYS: fence.  ARGV: token.
# Milliseconds since a worker first took the request (0 the first time), in Redis's clock.
_HELD_FOR = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return false end
local now = redis.call('TIME')
local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
redis.call('HSETNX', KEYS[1], 'taken_at', ms)
return tonumber(ms) - tonumber(redis.call('HGET', KEYS[1], 'taken_at'))
"""

# KEYS: requests stream, fence.  ARGV: group, consumer, request id, token, idle ms.
# A draining worker hands the request over: while its token is the newest and the entry pending
# with it, the fence's ``handover`` takes the token (its writes go on being taken until the next
# holder writes) and the entry's idle time is set to ARGV[5] (the lease): any worker claims it now.
_HANDOVER = """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[4] then return 0 end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'handover', ARGV[4])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[5], 'JUSTID')
return 1
"""

# KEYS: fence.  ARGV: token, 'lost' or 'ended'.
# The watch of a call being handed over (by the worker holding ARGV[1]) is over before the next
# holder wrote.  'lost': its connection went, most likely to the next holder's (a provider that
# keeps one connection per call closes the older one), so only the time is kept (Unix ms, Redis's
# clock).  'ended': it gave up waiting, so there was no overlap: ``handover`` goes.
_LET_GO = """
if redis.call('HGET', KEYS[1], 'handover') ~= ARGV[1] then return 0 end
if ARGV[2] == 'ended' then
  redis.call('HDEL', KEYS[1], 'handover', 'handover_lost_ms')
  return 1
end
local now = redis.call('TIME')
local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
redis.call('HSET', KEYS[1], 'handover_lost_ms', ms)
return 1
"""

# KEYS: fence.  ARGV: token, grace ms, request id.
# A worker that took the request over has connected to its call: where the events stream's gap
# begins (Unix ms), or false for none.  None while the previous holder hands the call over and
# still watches it, or lost its connection at most ARGV[2] ms ago (to this one, most likely).
# Else the gap runs from the call's newest entry (``last_write_ms``), or from the request's
# enqueueing (its id's time) when nothing was written for it yet.
_OPENED = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return false end
if redis.call('HGET', KEYS[1], 'handover') then
  local lost = redis.call('HGET', KEYS[1], 'handover_lost_ms')
  if not lost then return false end
  local now = redis.call('TIME')
  local ms = tonumber(now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000)))
  if ms - tonumber(lost) <= tonumber(ARGV[2]) then return false end
end
return redis.call('HGET', KEYS[1], 'last_write_ms') or string.match(ARGV[3], '^%d+')
"""

#: Outcomes of :meth:`Scripts.write`.
WRITTEN, DUPLICATE, STALE = 1, 0, -1


@attrs.frozen
class Acquired:
    """A request this worker now holds: the fencing token its writes carry."""

    token: int
    deliveries: int
    #: Whether a draining worker was handing the request over (its watch may still run).
    handed_over: bool = False


Written = int
#: One call of a script: its keys and its arguments.
_Call = tuple[list[str], list[Union[str, int]]]
#: What one call of a pipeline answered, or the error Redis answered it with.
Answer = Union[Any, redis.ResponseError]


class Scripts:
    """The scripts, registered on one Redis client, with the stream names they work on."""

    def __init__(self, client: "redis.Redis", requests: str, group: str, events: str, dead: str):
        self.client = client
        self.requests = requests
        self.group = group
        self.events = events
        self.dead = dead
        self.fenced_counter = f"{events}:fenced"
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._write = client.register_script(_WRITE)
        self._finish = client.register_script(_FINISH)
        self._bury = client.register_script(_BURY)
        self._handover = client.register_script(_HANDOVER)
        self._let_go = client.register_script(_LET_GO)
        self._opened = client.register_script(_OPENED)
        self._note_error = client.register_script(_NOTE_ERROR)
        self._held_for = client.register_script(_HELD_FOR)

    def fence(self, request_id: str) -> str:
        return fence_name(self.requests, request_id)

    def written_keys(self, call_id: str) -> str:
        return written_keys_name(self.events, call_id)

    def on(self, client: "redis.Redis") -> "Scripts":
        """The same scripts on the same streams, run on another client (connections of its own)."""
        return Scripts(client, self.requests, self.group, self.events, self.dead)

    def _acquiring(self, consumer: str, request_id: str) -> _Call:
        return [self.requests, self.fence(request_id)], [self.group, consumer, request_id]

    def acquire(self, consumer: str, request_id: str) -> Optional[Acquired]:
        """Raise the request's fencing token; None unless ``consumer`` has it pending."""
        return _acquired(self._acquire(*self._acquiring(consumer, request_id)))

    def acquire_many(self, consumer: str, request_ids: Sequence[str]) -> list[Optional[Acquired]]:
        """:meth:`acquire` for each request, pipelined; a request Redis refused is None, like one
        another worker claimed (the refusal is logged)."""
        calls = [self._acquiring(consumer, request_id) for request_id in request_ids]
        return [
            None if isinstance(answer, redis.ResponseError) else _acquired(answer)
            for answer in self.pipelined(self._acquire, calls)
        ]

    def _renewing(self, consumer: str, request_id: str, token: int, idle_ms: int) -> _Call:
        keys = [self.requests, self.fence(request_id)]
        return keys, [self.group, consumer, request_id, token, idle_ms]

    def renew(self, consumer: str, request_id: str, token: int, idle_ms: int = 0) -> bool:
        """Renew the lease (``idle_ms=0``), or give it up (``idle_ms`` = the lease); False once lost."""
        return bool(self._renew(*self._renewing(consumer, request_id, token, idle_ms)))

    def renew_many(self, consumer: str, leases: Sequence[tuple[str, int]]) -> list[Answer]:
        """Renew each lease (request id, token), pipelined: for each, True, False once lost, or the
        ``ResponseError`` Redis refused it with (the stream or the group is gone)."""
        calls = [self._renewing(consumer, request_id, token, 0) for request_id, token in leases]
        return [
            answer if isinstance(answer, redis.ResponseError) else bool(answer)
            for answer in self.pipelined(self._renew, calls)
        ]

    def write(
        self,
        token: int,
        request_id: str,
        call_id: str,
        key: str,
        event: str,
        maxlen: int,
        key_ttl: int,
        traceparent: Optional[str] = None,
    ) -> Written:
        """Append one event unless the token is stale or ``key`` was written for the call.

        With a ``traceparent`` (the event's trace), the entry carries it in a field of that name.
        """
        keys, args = self._writing(token, request_id, call_id, key, event, maxlen, key_ttl, traceparent)
        return int(self._write(keys, args))

    def _writing(
        self,
        token: int,
        request_id: str,
        call_id: str,
        key: str,
        event: str,
        maxlen: int,
        key_ttl: int,
        traceparent: Optional[str] = None,
    ) -> _Call:
        keys = [self.fence(request_id), self.written_keys(call_id), self.events, self.fenced_counter]
        return keys, [token, key, call_id, event, maxlen, key_ttl, traceparent or ""]

    def write_many(self, writes: Sequence[tuple[Any, ...]]) -> list[Answer]:
        """:meth:`write` for each of ``writes`` (its arguments, as a tuple), pipelined, in order:
        for each, its outcome, or the ``ResponseError`` Redis refused it with."""
        return [
            answer if isinstance(answer, redis.ResponseError) else int(answer)
            for answer in self.pipelined(self._write, [self._writing(*write) for write in writes])
        ]

    def pipelined(self, script: Any, calls: Sequence[_Call]) -> list[Answer]:
        """Each call of ``script`` (a registered script), in order, in one round trip.

        One ``EVALSHA`` each, in a pipeline that is no transaction: each call
        runs as a lone one would, and its answer (or the ``ResponseError`` it
        got) is in the list, in order.  A Redis that lost its scripts
        (restarted, or ``SCRIPT FLUSH``) ran none of the calls it refused
        with ``NOSCRIPT``: the script is loaded again and those calls sent
        again, still in order.  A connection error is raised, as from a lone
        call; what the pipeline did before it is unknown.
        """
        answers: list[Answer] = self._send(script, calls)
        lost = redis.exceptions.NoScriptError
        missing = [index for index, answer in enumerate(answers) if isinstance(answer, lost)]
        if missing:
            script.sha = self.client.script_load(script.script)
            for index, answer in zip(missing, self._send(script, [calls[index] for index in missing])):
                answers[index] = answer
        return answers

    def _send(self, script: Any, calls: Sequence[_Call]) -> list[Answer]:
        if not calls:
            return []
        pipe = self.client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        return list(pipe.execute(raise_on_error=False))

    def hand_over(self, consumer: str, request_id: str, token: int, idle_ms: int) -> bool:
        """Hand the request over: claimable at once (idle ``idle_ms``), our writes taken until the
        next holder's first; False once the lease is lost."""
        keys = [self.requests, self.fence(request_id)]
        return bool(self._handover(keys=keys, args=[self.group, consumer, request_id, token, idle_ms]))

    def let_go(self, request_id: str, token: int, ended: bool) -> bool:
        """Our watch of a call we hand over is over: its connection was lost (``ended`` False), or
        we stopped waiting for the next holder (True); False once the next holder has written."""
        return bool(self._let_go(keys=[self.fence(request_id)], args=[token, "ended" if ended else "lost"]))

    def gap_since(self, request_id: str, token: int, grace_ms: int) -> Optional[int]:
        """For a worker that took the request over and just connected: where the events stream's
        gap begins (Unix ms), or None when the previous holder was still watching (a handover)."""
        result = self._opened(keys=[self.fence(request_id)], args=[token, grace_ms, request_id])
        return None if result is None else int(result)

    def finish(self, request_id: str, token: int) -> bool:
        """Acknowledge and delete the request; False when another worker holds it now."""
        keys = [self.requests, self.fence(request_id)]
        return bool(self._finish(keys=keys, args=[self.group, request_id, token]))

    def note_error(self, request_id: str, token: int, error: str) -> bool:
        """Keep ``error`` (and when) on the request's fence; False when another worker holds it now."""
        return bool(self._note_error(keys=[self.fence(request_id)], args=[token, error]))

    def noted_error(self, request_id: str) -> dict[str, str]:
        """The last error noted for the request and when (``last_error``, ``last_error_at``), if any."""
        names = ("last_error", "last_error_at")
        values: list[Any] = self.client.hmget(self.fence(request_id), names)  # decoded: text
        return {name: value for name, value in zip(names, values) if value is not None}

    def held_for(self, request_id: str, token: int) -> Optional[float]:
        """Seconds since a worker first took the request; None when another worker holds it now."""
        result = self._held_for(keys=[self.fence(request_id)], args=[token])
        return None if result is None else int(result) / 1000

    def bury(self, consumer: str, request_id: str, fields: dict[str, str], maxlen: int) -> bool:
        """Move the request to the dead-letter stream with ``fields``; False unless it is ours."""
        pairs = [item for pair in fields.items() for item in pair]
        keys = [self.requests, self.fence(request_id), self.dead]
        return bool(self._bury(keys=keys, args=[self.group, consumer, request_id, maxlen, *pairs]))


def _acquired(result: Any) -> Optional[Acquired]:
    """What the acquire script answered: the token and the delivery count, or nothing."""
    if not result:
        return None
    return Acquired(int(result[0]), int(result[1]), len(result) > 2 and int(result[2]) == 1)
