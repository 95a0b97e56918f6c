"""Watch requests: what a request on the stream holds, and putting one there.

A request carries only what identifies the call and how to connect to it:
the bearer token and the API key stay in the workers' environment.  The Hiya
conversation token is a credential all the same; it lives in the request,
is never logged, and goes when the request is deleted at the call's end.
"""

import re
from collections.abc import Mapping
from typing import Any, Optional

import attrs
import redis

import livecall

__all__ = ["DEFAULT_REQUESTS", "WatchRequest", "enqueue"]

DEFAULT_REQUESTS = "livecall:requests"
PROVIDERS = ("hiya", "phonic")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The request's fields a dead letter leaves out.
SECRET_FIELDS = frozenset({"conversation_token"})


@attrs.frozen
class WatchRequest:
    """One call to watch, as it travels through Redis (every field a string)."""

    provider: str
    conversation_id: Optional[str] = None  #: Phonic
    conversation_token: Optional[livecall.Credential] = attrs.field(default=None, repr=False)  #: Hiya
    user_id: Optional[str] = None  #: Hiya
    product_version: Optional[str] = None  #: Hiya
    url: Optional[str] = None
    max_retries: Optional[int] = None
    ping_interval: Optional[float] = None
    ping_timeout: Optional[float] = None

    def __attrs_post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise livecall.ConfigurationError(f"unknown provider {self.provider!r}: hiya or phonic")
        if self.provider == "phonic" and not self.conversation_id:
            raise livecall.ConfigurationError("a Phonic request needs conversation_id")
        if self.provider == "hiya" and not (self.conversation_token and self.user_id):
            raise livecall.ConfigurationError("a Hiya request needs conversation_token and user_id")
        if self.url is not None and not self.url.startswith(("ws://", "wss://")):
            raise livecall.ConfigurationError("url must start with ws:// or wss://")
        for name in ("conversation_id", "user_id", "product_version", "url"):
            value = getattr(self, name)
            if value is not None and _CONTROL.search(value):
                # user_id and product_version become headers: a line break would add headers of its own.
                raise livecall.ConfigurationError(f"{name} holds a control character")

    def fields(self) -> dict[str, str]:
        """The stream entry's fields; absent values are left out."""
        values: dict[str, Any] = attrs.asdict(self, recurse=False)
        if self.conversation_token is not None:
            values["conversation_token"] = self.conversation_token.get()
        return {name: str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "WatchRequest":
        """Read an entry back; ``ConfigurationError`` for one that cannot be a request."""
        try:
            return cls(
                provider=fields.get("provider", ""),
                conversation_id=fields.get("conversation_id"),
                conversation_token=_credential(fields.get("conversation_token")),
                user_id=fields.get("user_id"),
                product_version=fields.get("product_version"),
                url=fields.get("url"),
                max_retries=_number(fields, "max_retries", int),
                ping_interval=_number(fields, "ping_interval", float),
                ping_timeout=_number(fields, "ping_timeout", float),
            )
        except ValueError as error:
            raise livecall.ConfigurationError(f"malformed request: {error}") from None

    def call_id(self, request_id: str) -> str:
        """The id events of this call carry on the events stream, the same on every worker.

        Phonic's conversation id; a Hiya call has no id that is not a secret,
        so its request id stands in.
        """
        return self.conversation_id if self.provider == "phonic" and self.conversation_id else request_id

    def client_options(self) -> dict[str, Any]:
        """The connection options the request sets (the worker's defaults apply to the rest)."""
        options = {"max_retries": self.max_retries, "ping_interval": self.ping_interval}
        options["ping_timeout"] = self.ping_timeout
        return {name: value for name, value in options.items() if value is not None}


def _credential(value: Optional[str]) -> Optional[livecall.Credential]:
    return livecall.Credential(value) if value else None


def _number(fields: Mapping[str, str], name: str, kind: type) -> Any:
    value = fields.get(name)
    return None if value is None else kind(value)


def enqueue(
    client: "redis.Redis", request: WatchRequest, stream: str = DEFAULT_REQUESTS, maxlen: int = 100_000
) -> str:
    """Put ``request`` on the requests stream; returns its id (the entry's id).

    A request enqueued before any worker started is not lost: workers create
    their group reading the stream from its beginning.  ``maxlen`` bounds the
    stream: past it, ``ConfigurationError`` (requests are never trimmed away).
    """
    if client.xlen(stream) >= maxlen:
        raise livecall.ConfigurationError(f"{stream} already holds {maxlen} requests")
    request_id = client.xadd(stream, request.fields())  # type: ignore[arg-type]
    return request_id if isinstance(request_id, str) else request_id.decode()
