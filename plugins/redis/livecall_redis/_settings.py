"""A worker's settings: plain values, so that each worker process gets a copy."""

from typing import Any, Optional
from urllib.parse import urlsplit

import attrs
import redis

import livecall
import livecall.hiya
import livecall.phonic

from ._limits import TimeLimits, limit_seconds
from ._requests import DEFAULT_REQUESTS
from ._shards import check_names, connect

__all__ = [
    "DEFAULT_DEAD",
    "DEFAULT_EVENTS",
    "DEFAULT_GROUP",
    "DRAIN_MODES",
    "READ_BLOCK",
    "WorkerSettings",
    "origin",
    "redis_place",
]

DEFAULT_GROUP = "livecall-workers"
DEFAULT_EVENTS = "livecall:events"
DEFAULT_DEAD = "livecall:requests:dead"
#: Seconds the main loop waits for a new request before it looks for lapsed leases again.
READ_BLOCK = 1.0
#: The port a WebSocket URL without one connects to.
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
#: What a stopping worker does with its calls (``--drain``): hand each over to another worker
#: while still watching it, watch each to its end, or give each back at once.
DRAIN_MODES = ("handover", "wait", "release")

Origin = tuple[str, str, int]


def origin(url: str) -> Origin:
    """Where ``url`` connects to: its scheme, host and port (the scheme's own when none is given).

    The worker's credentials go there, so all three count: the same host
    over ``ws://`` would send them in clear text, and another port may be
    another server.  ``ValueError`` for a URL that names no such place.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL with a host: {url!r}")
    return scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme]


def redis_place(url: str) -> str:
    """Which Redis ``url`` names, for people: scheme, host, port and database, never its password."""
    parts = urlsplit(url)
    if parts.hostname is None:  # unix:///path/to/redis.sock
        return f"{parts.scheme}://{parts.path}"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"


def _shown(place: Origin) -> str:
    scheme, host, port = place
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _positive(instance: object, attribute: "attrs.Attribute[Any]", value: float) -> None:
    if not value > 0:
        raise livecall.ConfigurationError(f"{attribute.name.replace('_', '-')} must be positive")


def _drain_mode(instance: object, attribute: "attrs.Attribute[Any]", value: str) -> None:
    if value not in DRAIN_MODES:
        raise livecall.ConfigurationError(f"drain must be one of {', '.join(DRAIN_MODES)}, not {value!r}")


def _limit(instance: object, attribute: "attrs.Attribute[Any]", value: Optional[float]) -> None:
    if value is not None:
        limit_seconds(f"--{attribute.name.replace('_', '-')}", value)


def _names_tagged(instance: Any, attribute: "attrs.Attribute[Any]", value: bool) -> None:
    """Run once every field is set: the stream names must take the shards' hash tags."""
    check_names(instance)


def _allowed_urls(instance: object, attribute: "attrs.Attribute[Any]", value: tuple[str, ...]) -> None:
    for entry in value:
        provider, _, url = entry.partition("=")
        try:
            livecall.get_provider(provider)
            origin(url)
        except (livecall.ConfigurationError, ValueError):
            raise livecall.ConfigurationError(
                f"allow-url takes PROVIDER=URL, such as phonic=wss://phonic.example.com, not {entry!r}"
            ) from None


def _base_url(instance: object, attribute: "attrs.Attribute[Any]", value: Optional[str]) -> None:
    try:
        if value is not None:
            origin(value)
    except ValueError:
        raise livecall.ConfigurationError(
            f"{attribute.name.replace('_', '-')} must be a ws:// or wss:// URL"
        ) from None


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """Everything a worker process needs; the ``livecall worker`` options default to these defaults."""

    redis_url: str = attrs.field(repr=False)  # may hold a password
    #: Calls per process: what one holds at about half a core (``benchmarks/worker.py``).
    calls: int = attrs.field(default=500, validator=_positive)
    lease: float = attrs.field(default=30.0, validator=_positive)
    renew: float = attrs.field(default=10.0, validator=_positive)
    requests: str = DEFAULT_REQUESTS
    group: str = DEFAULT_GROUP
    events: str = DEFAULT_EVENTS
    dead_letter: str = DEFAULT_DEAD
    #: Requests streams the workers read together, each with its own events and dead-letter
    #: streams; above 1 (or on a cluster) every key carries its shard's hash tag (``_shards.py``).
    shards: int = attrs.field(default=1, validator=_positive)
    #: Redis is a cluster: a ``RedisCluster`` client, and the keys of each shard in one slot.
    cluster: bool = attrs.field(default=False, validator=_names_tagged)
    max_deliveries: int = attrs.field(default=5, validator=_positive)
    #: A request whose fields (names and values) hold more bytes is dead-lettered unread.
    max_request_bytes: int = attrs.field(default=65_536, validator=_positive)
    events_maxlen: int = attrs.field(default=100_000, validator=_positive)
    key_ttl: int = attrs.field(default=86_400, validator=_positive)
    hiya_url: Optional[str] = attrs.field(default=None, validator=_base_url)
    phonic_url: Optional[str] = attrs.field(default=None, validator=_base_url)
    #: ``PROVIDER=URL``: where a request for that provider may connect (scheme, host and port),
    #: besides the worker's own base URL for it.
    allowed_urls: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_allowed_urls)
    hiya_token_command: Optional[str] = attrs.field(default=None, repr=False)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds the hub's I/O thread may go without finishing a turn before leases go unrenewed.
    hub_stall: float = attrs.field(default=5.0, validator=_positive)
    #: Keep the words of calls whose owner asked for zero data retention on the events stream.
    keep_words: bool = False
    #: Time limits for the held calls whose requests carry none of their own (seconds; None: none).
    max_duration: Optional[float] = attrs.field(default=None, validator=_limit)
    idle_timeout: Optional[float] = attrs.field(default=None, validator=_limit)
    #: What stopping does with the held calls (one of ``DRAIN_MODES``), and for how long at most:
    #: by default within Kubernetes' default grace period (30 s) before it kills the process.
    drain: str = attrs.field(default="handover", validator=_drain_mode)
    drain_timeout: float = attrs.field(default=25.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.renew >= self.lease:
            raise livecall.ConfigurationError("--renew must be shorter than --lease")

    @property
    def limits(self) -> TimeLimits:
        """The time limits of held calls whose requests carry none: ``--max-duration``, ``--idle-timeout``."""
        return TimeLimits(self.max_duration, self.idle_timeout)

    def base_url(self, provider: "livecall.Provider[Any]") -> str:
        """The base URL for requests that name none: the worker's own for the provider, else its default."""
        own = {livecall.hiya.HIYA: self.hiya_url, livecall.phonic.PHONIC: self.phonic_url}
        return own.get(provider) or provider.default_url

    def allowed(self, provider: "livecall.Provider[Any]") -> frozenset[Origin]:
        """Where the provider's requests may connect: its base URL's origin, and those allowed for it."""
        urls = [
            url
            for name, _, url in (entry.partition("=") for entry in self.allowed_urls)
            if name == provider.name
        ]
        return frozenset(origin(url) for url in [self.base_url(provider), *urls])

    def check_url(self, provider: "livecall.Provider[Any]", url: Optional[str]) -> str:
        """The base URL to connect to; a request's own only where the worker allows it for the provider.

        The worker sends that provider's credentials there: a request naming
        any other place would hand them to whoever can enqueue, another
        provider's host included, or send them in clear text.
        """
        if url is None:
            return self.base_url(provider)
        try:
            place = origin(url)
        except ValueError:
            raise livecall.ConfigurationError("the request's base URL is not a ws:// or wss:// URL") from None
        if place not in self.allowed(provider):
            raise livecall.ConfigurationError(
                f"the request's base URL {_shown(place)} is not allowed for {provider.name} here"
            )
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

    def redis_client(self, decode: bool = True) -> "redis.Redis":
        """A client that notices an unresponsive server within about a renewal (at most 5 s),
        besides the time ``XREADGROUP`` blocks on purpose.

        Requests are read with ``decode=False``: their fields are whatever a
        producer wrote, and one that is not UTF-8 must not fail the answer
        that holds the other requests with it.  With ``cluster``, a
        ``RedisCluster`` (see ``_shards.connect``).
        """
        timeout = READ_BLOCK + min(self.renew, 5.0)
        return connect(
            self.redis_url,
            self.cluster,
            decode_responses=decode,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
