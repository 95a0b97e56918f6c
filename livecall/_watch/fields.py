"""A request's fields: one call to watch, as a queue or a file of calls holds it.

A request arrives as text from Redis or as JSON values from a file, so each
field is read into what its client argument takes: text stays text (and must
be printable: most fields become headers or part of the URL), numbers are
read from either, secrets go straight into a ``Credential`` so that no log
or message can show them.  Messages name fields, never their values.
"""

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Callable, Optional

import attrs

from .._safety.secrets import Credential
from .._wire.checks import base_url, header_text, seconds, whole_number
from ..errors import ConfigurationError

__all__ = ["CONNECTION_FIELDS", "Field", "read_fields"]


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigurationError(f"{name} must be text")
    return header_text(name, str(value))


def _url(name: str, value: Any) -> str:
    return base_url(_text(name, value))


@attrs.frozen
class Field:
    """One field a request may hold: the name of its client's keyword argument.

    ``required``: a request without it names no call.  ``secret``: held in a
    ``Credential``, never shown, never kept in a dead letter.  ``credential``:
    the watcher's own (a bearer token, an API key), not the call's: a queue
    of requests does not carry it.  ``renewable``: it may come from a
    ``CredentialSource``, asked on every connection attempt.  ``env``: where
    a command line reads it from when it is not given.
    """

    name: str
    required: bool = False
    secret: bool = False
    credential: bool = False
    renewable: bool = False
    env: Optional[str] = None
    read: Callable[[str, Any], Any] = attrs.field(default=_text, repr=False)


#: Every provider's connection options, as ``livecall watch`` names them.
CONNECTION_FIELDS = (
    Field("url", read=_url),
    Field("max_retries", read=whole_number),
    Field("ping_interval", read=seconds),
    Field("ping_timeout", read=seconds),
)


def read_fields(whose: str, fields: Iterable[Field], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` read field by field; ``ConfigurationError`` for an unknown, missing or unusable one.

    ``None`` counts as absent.  Secret values come back as ``Credential``
    (a ``Credential`` given stays one).
    """
    known = {field.name: field for field in fields}
    unknown = sorted(str(name) for name in given if name not in known)
    if unknown:
        raise ConfigurationError(
            f"{whose} takes no {', '.join(_with_guess(name, known) for name in unknown)}: "
            f"it takes {', '.join(known)}"
        )
    read: dict[str, Any] = {}
    for name, field in known.items():
        value = given.get(name)
        if isinstance(value, Credential):
            value = value.get()
            if value is not None and not field.secret:
                raise ConfigurationError(f"{name} is not a secret: give it as it is")
        if value is None or value == "":
            if field.required:
                raise ConfigurationError(f"{whose} needs {name}")
            continue
        value = field.read(name, value)
        read[name] = Credential(value) if field.secret else value
    return read


def _with_guess(name: str, known: Collection[str]) -> str:
    """``name``, and the known field it may be a typo of: a misspelt key's value is never shown,
    so the message must make the mistake plain on its own."""
    guesses = difflib.get_close_matches(name, known, n=1)
    return f"{name} (did you mean {guesses[0]}?)" if guesses else name
