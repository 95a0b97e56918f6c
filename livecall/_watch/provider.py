"""What makes one provider, as one object: the rest of livecall is shared.

Each provider's module (``hiya``, ``phonic``) builds its :class:`Provider`
from its own parts: the decoder of its wire union, the events after which it
has nothing more to say, its ``livecall watch`` arguments, and its
:class:`Session`, made afresh for each client: the request builder and the
per-event bookkeeping; and the fields of a request for one of its calls.
``LiveClient`` calls these parts; it has no method for a provider to
override.  Each module registers its provider as it is imported, and the
commands, ``watch-many`` and plugins find them here: adding a provider is
one module, and no code switches on a provider's name.
"""

import argparse
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar

import attrs
import pluggy

from .._codec import Decoder
from .._safety.secrets import Credential, HiddenLines
from ..call import Call
from ..errors import ConfigurationError
from ..events import Event
from .credential_source import CredentialSource
from .fields import CONNECTION_FIELDS, Field, read_fields

#: The provider's client class.
C = TypeVar("C")

__all__ = ["Provider", "Request", "Session", "get_provider", "providers", "register_provider"]


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


@attrs.frozen(eq=False, repr=False)
class Provider(Generic[C]):
    """One provider: its name, default base URL, the fields of a request, and its client.

    Get one with :func:`livecall.get_provider` or :func:`livecall.providers`
    (or ``livecall.hiya.HIYA``, ``livecall.phonic.PHONIC``).  ``fields`` are
    those a request for one of its calls may hold, besides the connection
    options every provider takes (``url``, ``max_retries``,
    ``ping_interval``, ``ping_timeout``); each field's ``name`` is its
    client's keyword argument, and ``secret``, ``credential`` and
    ``required`` say how to treat it.  ``call_ids_shared`` says whether a
    client's ``call.id`` is the provider's own id of the call, the same for
    every client watching it (Phonic's conversation id), or one each client
    makes up (a Hiya call has no id that is not a secret).
    ``replays_missed`` says whether the provider sends again, after a
    reconnect, what a watch missed while cut off (Phonic's next snapshot
    holds the whole conversation; Hiya's stream goes on from now): it is
    each :class:`~livecall.Gap` event's ``replayed``.

    The rest is livecall's own: ``new_decoder`` makes a decoder for one
    watch (decoders may keep state, like Phonic's item cache);
    ``new_session`` makes the session of one client from the provider's own
    constructor arguments, raising ``ConfigurationError`` for missing or
    unusable ones; ``add_arguments`` and ``from_arguments`` are its
    ``livecall watch`` options and the client built from them.
    """

    name: str
    description: str
    default_url: str
    fields: tuple[Field, ...]
    call_ids_shared: bool
    new_client: Callable[..., C]
    new_decoder: Callable[[], Decoder]
    final_events: tuple[type[Event], ...]
    new_session: Callable[..., Session]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    from_arguments: Callable[[argparse.Namespace, dict[str, Any]], C]
    replays_missed: bool

    def __repr__(self) -> str:
        return f"<Provider {self.name}>"

    @property
    def secret_fields(self) -> frozenset[str]:
        """The names of the fields that hold secrets: never logged, never kept once the call is over."""
        return frozenset(field.name for field in self.fields if field.secret)

    def check_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of a request for one call, checked and read: what :meth:`client_from_fields` takes.

        Text (a JSON value or a string from a queue) becomes what the
        client's argument takes: numbers for the connection options, a
        :class:`~livecall.Credential` for a secret.  A ``provider`` field
        must name this provider, and is left out.  ``ConfigurationError``
        names an unknown, missing or unusable field, never its value.
        """
        given = dict(fields)
        named = given.pop("provider", self.name)
        if named != self.name:
            raise ConfigurationError(f"a request for {named!r} is not one for {self.name}")
        return read_fields(f"a {self.name} request", (*self.fields, *CONNECTION_FIELDS), given)

    def client_from_fields(self, fields: Mapping[str, Any], **client_options: Any) -> C:
        """The client watching the call that ``fields`` name (see :meth:`check_fields`).

        ``client_options`` are keyword arguments of the client (its
        credentials, ``plugin_manager``, ``plugins``, timeouts...), and win
        over fields of the same name: a program's settings over a request's.
        With none of the provider's credentials given, and a
        ``plugin_manager`` whose plugins implement ``livecall_credential``,
        the renewable one comes from :meth:`credential_source`, as for
        ``livecall watch``; else the client reads its environment variable.
        """
        arguments = {
            name: value.get() if isinstance(value, Credential) else value
            for name, value in self.check_fields(fields).items()
        }
        arguments.update(client_options)
        plugin_manager = client_options.get("plugin_manager")
        if (
            plugin_manager is not None
            and plugin_manager.hook.livecall_credential.get_hookimpls()
            and not any(field.credential and field.name in arguments for field in self.fields)
        ):
            for field in self.fields:
                if field.renewable:
                    arguments[field.name] = self.credential_source(field.name, plugin_manager=plugin_manager)
        return self.new_client(**arguments)

    def credential_source(
        self,
        name: str,
        *,
        command: Optional[str] = None,
        plugin_manager: Optional[pluggy.PluginManager] = None,
    ) -> CredentialSource:
        """A :class:`~livecall.CredentialSource` for the credential field ``name``, asked on every attempt.

        It asks the plugins of ``plugin_manager``, then ``command``, then the
        field's environment variable.  ``ConfigurationError`` if ``name`` is
        not a credential of this provider that may change while a call lasts.
        """
        for field in self.fields:
            if field.name == name and field.renewable:
                return CredentialSource(
                    self.name, name, command=command, env=field.env, plugin_manager=plugin_manager
                )
        renewable = [field.name for field in self.fields if field.renewable]
        raise ConfigurationError(f"{self.name} renews only {', '.join(renewable)}, not {name}")


_registered: dict[str, "Provider[Any]"] = {}


def register_provider(provider: "Provider[C]") -> "Provider[C]":
    """Make ``provider`` known by its name: each provider's module registers its own as it is imported."""
    if _registered.setdefault(provider.name, provider) is not provider:
        raise ValueError(f"a provider named {provider.name!r} is registered already")
    return provider


def get_provider(name: str) -> "Provider[Any]":
    """The provider called ``name`` (``"hiya"``, ``"phonic"``).

    ``ConfigurationError`` for an unknown name, naming the known ones: the
    name often comes from a request or a file.
    """
    provider = _registered.get(name)
    if provider is None:
        raise ConfigurationError(
            f"unknown provider {name!r}: livecall knows {', '.join(sorted(_registered))}"
        )
    return provider


def providers() -> "list[Provider[Any]]":
    """Every provider livecall knows, in the order of their names."""
    return [_registered[name] for name in sorted(_registered)]
