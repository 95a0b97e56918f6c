"""Watch requests: what a request on the stream holds, and putting one there.

A request holds a provider's name and the fields of one call, checked and
read by the provider itself (:meth:`livecall.Provider.check_fields`), the
same fields ``livecall watch-many`` reads from a file.  It carries only what
identifies the call and how to connect to it: the bearer token and the API
key stay in the workers' environment.  The Hiya conversation token is a
credential all the same; it lives in the request, is never logged, and goes
when the request is deleted at the call's end.

A request may also carry time limits for the watch (``max_duration`` and
``idle_timeout``, in seconds): fields of the request, not of the provider's
call, kept apart from those.
"""

from collections.abc import Mapping
from typing import Any, Optional

import attrs
import redis

import livecall

from ._limits import LIMIT_FIELDS, TimeLimits, limit_seconds
from ._shards import is_cluster, qualify, shard_for, shard_name, tagged

__all__ = ["DEFAULT_REQUESTS", "WatchRequest", "enqueue", "secret_fields"]

DEFAULT_REQUESTS = "livecall:requests"


def secret_fields() -> frozenset[str]:
    """The fields of any provider's requests that hold secrets: a dead letter leaves them out."""
    return frozenset().union(*(provider.secret_fields for provider in livecall.providers()))


class WatchRequest:
    """One call to watch: ``WatchRequest("phonic", conversation_id="conv_...")``.

    ``ConfigurationError`` for an unknown provider, or fields it would not
    take, or a credential of the workers' own.  Secret fields are held in a
    :class:`livecall.Credential`, and left out of the ``repr``.

    ``max_duration`` and ``idle_timeout`` (seconds) are the watch's time
    limits, not the provider's fields: see :attr:`limits`.
    """

    def __init__(self, provider: str, /, **fields: Any):
        self.provider = livecall.get_provider(provider)
        self.limits = TimeLimits(*(limit_seconds(name, fields.pop(name, None)) for name in LIMIT_FIELDS))
        self._fields = self.provider.check_fields(fields)
        carried = [
            field.name for field in self.provider.fields if field.credential and field.name in self._fields
        ]
        if carried:
            raise livecall.ConfigurationError(
                f"a request carries no {', '.join(carried)}: the workers use their own"
            )

    @property
    def url(self) -> Optional[str]:
        """The base URL the request names, if any."""
        url: Optional[str] = self._fields.get("url")
        return url

    def fields(self) -> dict[str, str]:
        """The stream entry's fields: the provider's name, then every field given, as text."""
        entry = {"provider": self.provider.name}
        for name, value in self._fields.items():
            entry[name] = (value.get() or "") if isinstance(value, livecall.Credential) else str(value)
        for name in LIMIT_FIELDS:
            seconds = getattr(self.limits, name)
            if seconds is not None:
                entry[name] = str(int(seconds)) if seconds.is_integer() else repr(seconds)
        return entry

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "WatchRequest":
        """Read an entry back; ``ConfigurationError`` for one that cannot be a request."""
        given = dict(fields)
        return cls(given.pop("provider", ""), **given)

    def client(self, **client_options: Any) -> livecall.LiveClient:
        """The client that watches the call; ``client_options`` win over the request's fields."""
        client: livecall.LiveClient = self.provider.client_from_fields(self._fields, **client_options)
        return client

    def __repr__(self) -> str:
        shown = {
            name: value for name, value in self._fields.items() if name not in self.provider.secret_fields
        }
        shown.update((name, value) for name, value in attrs.asdict(self.limits).items() if value is not None)
        return f"WatchRequest({self.provider.name!r}, {shown})"


def enqueue(
    client: "redis.Redis",
    request: WatchRequest,
    stream: str = DEFAULT_REQUESTS,
    maxlen: int = 100_000,
    *,
    shards: int = 1,
) -> str:
    """Put ``request`` on the requests stream; returns its id (the entry's id).

    A request enqueued before any worker started is not lost: workers create
    their group reading the stream from its beginning.  ``maxlen`` bounds the
    stream: past it, ``ConfigurationError`` (requests are never trimmed away).

    With ``shards`` above 1, or a ``redis.cluster.RedisCluster`` client, the
    request goes to one shard's stream (``stream:{INDEX}``, picked by a digest
    of the request's fields), ``maxlen`` bounds each, and the id returned
    names the shard when there are several (``INDEX/ENTRY-ID``); the workers
    must run with the same ``--shards`` (and ``--cluster``).
    """
    if shards < 1:
        raise livecall.ConfigurationError("shards must be 1 or more")
    fields = request.fields()
    index = shard_for(fields, shards)
    is_tagged = tagged(shards, is_cluster(client))
    if is_tagged and ("{" in stream or "}" in stream):
        raise livecall.ConfigurationError(f"{stream!r}: a sharded stream's name holds no braces")
    name = shard_name(stream, index, is_tagged)
    if client.xlen(name) >= maxlen:
        raise livecall.ConfigurationError(f"{name} already holds {maxlen} requests")
    entry_id = client.xadd(name, fields)  # type: ignore[arg-type]
    return qualify(shards, index, entry_id if isinstance(entry_id, str) else entry_id.decode())
