"""What makes one provider, as one object: the rest of livecall is shared.

Each provider's module (``hiya``, ``phonic``) builds its :class:`Provider`
from its own parts: the decoder of its wire union, the events after which it
has nothing more to say, and its ``livecall watch`` arguments.  Its client
class adds the request builder and the per-event bookkeeping.  Adding a
provider is one module, plus its entry in the command's ``PROVIDERS``; no
code switches on a provider's name.
"""

import argparse
from typing import TYPE_CHECKING, Any, Callable

import attrs

from ._codec import Decoder
from .events import Event

if TYPE_CHECKING:
    from ._client import LiveClient

__all__ = ["Provider"]


@attrs.frozen
class Provider:
    """One provider: its name, default base URL, decoder, final events and command-line face.

    ``new_decoder`` makes a decoder for one watch (decoders may keep state,
    like Phonic's item cache).  ``add_arguments`` adds the provider's own
    options to its ``livecall watch`` subcommand; ``from_arguments`` builds its
    client from them, given the options every client of the command shares.
    """

    name: str
    description: str
    default_url: str
    new_decoder: Callable[[], Decoder]
    final_events: tuple[type[Event], ...]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    from_arguments: Callable[[argparse.Namespace, dict[str, Any]], "LiveClient"]
