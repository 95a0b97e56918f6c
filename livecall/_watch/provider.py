"""What makes one provider, as one object: the rest of livecall is shared.

Each provider's module (``hiya``, ``phonic``) builds its :class:`Provider`
from its own parts: the decoder of its wire union, the events after which it
has nothing more to say, its ``livecall watch`` arguments, and its
:class:`Session`, made afresh for each client: the request builder and the
per-event bookkeeping.  ``LiveClient`` calls these parts; it has no method
for a provider to override.  Adding a provider is one module, plus its entry
in the command's ``PROVIDERS``; no code switches on a provider's name.
"""

import argparse
from collections.abc import Sequence
from typing import Any, Callable, Generic, Protocol, TypeVar

import attrs

from .._codec import Decoder
from .._safety.secrets import HiddenLines
from ..call import Call
from ..events import Event

#: The provider's client class.
C = TypeVar("C")

__all__ = ["Provider", "Request", "Session"]


@attrs.frozen
class Request:
    """What one connection attempt sends: built afresh so rotated credentials apply.

    ``url`` may carry a token in its query, and ``headers`` the bearer token:
    neither is in the ``repr``, which shows ``safe_url`` instead.
    """

    url: str = attrs.field(repr=False)
    headers: HiddenLines = attrs.field(repr=False)
    safe_url: str


class Session(Protocol):
    """A provider's part of one client: its credentials, and what it keeps of the call.

    The client calls ``request()`` on a connector thread before each
    connection attempt, and ``handle()`` and ``connection_lost()`` on its
    dispatcher, in the order of the events.
    """

    def request(self, base_url: str) -> Request:
        """The next connection attempt's URL and headers, with fresh credentials."""

    def handle(self, call: Call, event: Event) -> Sequence[Event]:
        """Bookkeeping for ``event`` (before the plugins see it); returns events derived from it."""

    def connection_lost(self, error: BaseException) -> None:
        """The connection went away: anyone waiting on it must hear ``error``."""


@attrs.frozen
class Provider(Generic[C]):
    """One provider: its name, default base URL, decoder, final events, session and command-line face.

    ``new_decoder`` makes a decoder for one watch (decoders may keep state,
    like Phonic's item cache).  ``new_session`` makes the :class:`Session` of one
    client from the provider's own constructor arguments; it raises
    ``ConfigurationError`` for missing or unusable ones.  ``add_arguments``
    adds the provider's own options to its ``livecall watch`` subcommand;
    ``from_arguments`` builds its client from them, given the options every
    client of the command shares.
    """

    name: str
    description: str
    default_url: str
    new_decoder: Callable[[], Decoder]
    final_events: tuple[type[Event], ...]
    new_session: Callable[..., Session]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    from_arguments: Callable[[argparse.Namespace, dict[str, Any]], C]
