"""The Lua scripts that make leases, fencing and idempotent writes atomic in Redis.

A request is held by the consumer that has it pending in the group; its
*fence* (a hash beside the request) holds the newest fencing token, raised
each time a worker acquires the request.  Every write a worker makes for the
call carries the token it acquired: Redis compares it with the fence in the
same script that writes, so a worker that paused past its lease and lost the
request to another cannot write anything once it wakes up.
"""

from typing import Optional, Union

import attrs
import redis

__all__ = ["Acquired", "Scripts", "Written"]

# KEYS: requests stream, fence.  ARGV: group, consumer, request id.
# The request must be pending with this consumer (it has just read or claimed it).
_ACQUIRE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 or pending[1][2] ~= ARGV[2] then return false end
local token = redis.call('HINCRBY', KEYS[2], 'token', 1)
redis.call('HSET', KEYS[2], 'owner', ARGV[2])
return {token, pending[1][4]}
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
_WRITE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  redis.call('INCR', KEYS[4])
  return -1
end
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[6])
local fields = {'call_id', ARGV[3], 'key', ARGV[2], 'event', ARGV[4]}
if ARGV[7] ~= nil and ARGV[7] ~= '' then
  fields[#fields + 1] = 'traceparent'
  fields[#fields + 1] = ARGV[7]
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
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

#: Outcomes of :meth:`Scripts.write`.
WRITTEN, DUPLICATE, STALE = 1, 0, -1


@attrs.frozen
class Acquired:
    """A request this worker now holds: the fencing token its writes carry."""

    token: int
    deliveries: int


Written = int


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

    def fence(self, request_id: str) -> str:
        return f"{self.requests}:fence:{request_id}"

    def written_keys(self, call_id: str) -> str:
        return f"{self.events}:keys:{call_id}"

    def acquire(self, consumer: str, request_id: str) -> Optional[Acquired]:
        """Raise the request's fencing token; None unless ``consumer`` has it pending."""
        result = self._acquire(
            keys=[self.requests, self.fence(request_id)], args=[self.group, consumer, request_id]
        )
        if not result:
            return None
        return Acquired(int(result[0]), int(result[1]))

    def renew(self, consumer: str, request_id: str, token: int, idle_ms: int = 0) -> bool:
        """Renew the lease (``idle_ms=0``), or give it up (``idle_ms`` = the lease); False once lost."""
        keys = [self.requests, self.fence(request_id)]
        return bool(self._renew(keys=keys, args=[self.group, consumer, request_id, token, idle_ms]))

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
        keys = [self.fence(request_id), self.written_keys(call_id), self.events, self.fenced_counter]
        args: list[Union[str, int]] = [token, key, call_id, event, maxlen, key_ttl, traceparent or ""]
        return int(self._write(keys=keys, args=args))

    def finish(self, request_id: str, token: int) -> bool:
        """Acknowledge and delete the request; False when another worker holds it now."""
        keys = [self.requests, self.fence(request_id)]
        return bool(self._finish(keys=keys, args=[self.group, request_id, token]))

    def bury(self, consumer: str, request_id: str, fields: dict[str, str], maxlen: int) -> bool:
        """Move the request to the dead-letter stream with ``fields``; False unless it is ours."""
        pairs = [item for pair in fields.items() for item in pair]
        keys = [self.requests, self.fence(request_id), self.dead]
        return bool(self._bury(keys=keys, args=[self.group, consumer, request_id, maxlen, *pairs]))
