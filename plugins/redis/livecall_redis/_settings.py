"""A worker's settings: plain values, so that each worker process gets a copy."""

from typing import Any, Optional
from urllib.parse import urlsplit

import attrs
import redis

import livecall
import livecall.hiya
import livecall.phonic

from ._requests import DEFAULT_REQUESTS

__all__ = ["DEFAULT_DEAD", "DEFAULT_EVENTS", "DEFAULT_GROUP", "READ_BLOCK", "WorkerSettings"]

DEFAULT_GROUP = "livecall-workers"
DEFAULT_EVENTS = "livecall:events"
DEFAULT_DEAD = "livecall:requests:dead"
#: Seconds the main loop waits for a new request before it looks for lapsed leases again.
READ_BLOCK = 1.0


def _positive(instance: object, attribute: "attrs.Attribute[Any]", value: float) -> None:
    if not value > 0:
        raise livecall.ConfigurationError(f"{attribute.name.replace('_', '-')} must be positive")


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """Everything a worker process needs; the ``livecall worker`` options default to these defaults."""

    redis_url: str = attrs.field(repr=False)  # may hold a password
    calls: int = attrs.field(default=50, validator=_positive)
    lease: float = attrs.field(default=30.0, validator=_positive)
    renew: float = attrs.field(default=10.0, validator=_positive)
    requests: str = DEFAULT_REQUESTS
    group: str = DEFAULT_GROUP
    events: str = DEFAULT_EVENTS
    dead_letter: str = DEFAULT_DEAD
    max_deliveries: int = attrs.field(default=5, validator=_positive)
    events_maxlen: int = attrs.field(default=100_000, validator=_positive)
    key_ttl: int = attrs.field(default=86_400, validator=_positive)
    hiya_url: Optional[str] = None
    phonic_url: Optional[str] = None
    #: Hosts a request may name in its base URL, besides those of the worker's own base URLs.
    allowed_hosts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    hiya_token_command: Optional[str] = attrs.field(default=None, repr=False)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.renew >= self.lease:
            raise livecall.ConfigurationError("--renew must be shorter than --lease")

    def base_url(self, provider: "livecall.Provider[Any]") -> str:
        """The base URL for requests that name none: the worker's own for the provider, else its default."""
        own = {livecall.hiya.HIYA: self.hiya_url, livecall.phonic.PHONIC: self.phonic_url}
        return own.get(provider) or provider.default_url

    def check_url(self, provider: "livecall.Provider[Any]", url: Optional[str]) -> str:
        """The base URL to connect to; a request's own only on a host the worker allows.

        The worker sends its own credentials there: a request naming any host
        would hand them to whoever can enqueue.
        """
        if url is None:
            return self.base_url(provider)
        host = urlsplit(url).hostname
        allowed = {urlsplit(self.base_url(known)).hostname for known in livecall.providers()}
        if host not in allowed | set(self.allowed_hosts):
            raise livecall.ConfigurationError(f"the request's base URL names host {host!r}, not allowed here")
        return url

    def credentials(self, plugin_manager: Any) -> "dict[livecall.Provider[Any], dict[str, Any]]":
        """The credentials the worker gives every client of a provider, made once: its token sources.

        A source asks the plugins, then the command, then the environment, on
        every connection attempt; one made per worker remembers whether its
        command ever worked, which tells a passing outage from a broken one.
        """
        hiya = livecall.hiya.HIYA
        token = hiya.credential_source(
            "token", command=self.hiya_token_command, plugin_manager=plugin_manager
        )
        return {hiya: {"token": token}}

    @property
    def outage_limit(self) -> float:
        """How long Redis may stay out of reach before this worker stops its watches."""
        return self.lease - self.renew

    def redis_client(self) -> "redis.Redis":
        """A client that notices an unresponsive server within about a renewal (at most 5 s),
        besides the time ``XREADGROUP`` blocks on purpose."""
        timeout = READ_BLOCK + min(self.renew, 5.0)
        return redis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
        )
