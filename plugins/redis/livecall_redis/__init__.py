"""Many workers share the calls to watch, over Redis Streams, with crash takeover.

``livecall enqueue hiya|phonic ...`` (or :func:`enqueue`) puts a watch
request on a stream; ``livecall worker --redis URL`` processes take requests
in a consumer group, watch the calls, renew a lease on each, take over the
calls of a worker whose lease lapsed, and write every event, fenced and keyed
so that each is written once, to an events stream.
"""

from ._commands import REDIS_URL_ENV

# The entry point names this package: pluggy finds the hook implementation here.
from ._commands import livecall_register_commands as livecall_register_commands
from ._keys import EventKeys
from ._requests import DEFAULT_REQUESTS, WatchRequest, enqueue
from ._scripts import Scripts
from ._settings import DEFAULT_DEAD, DEFAULT_EVENTS, DEFAULT_GROUP, WorkerSettings
from ._stats import METRICS, Stats
from ._worker import Worker, consumer_name
from ._writer import EventWriter, Lease

__all__ = [
    "DEFAULT_DEAD",
    "DEFAULT_EVENTS",
    "DEFAULT_GROUP",
    "DEFAULT_REQUESTS",
    "METRICS",
    "REDIS_URL_ENV",
    "EventKeys",
    "EventWriter",
    "Lease",
    "Scripts",
    "Stats",
    "WatchRequest",
    "Worker",
    "WorkerSettings",
    "consumer_name",
    "enqueue",
]
