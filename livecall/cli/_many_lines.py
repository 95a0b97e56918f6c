"""The lines of ``livecall watch-many``: data, checked as strictly as a worker checks a request.

Whoever writes the list of calls is not trusted with the watcher's
credentials or its machine.  A line names a call; it does not run programs
(a ``token_command``/``api_key_command`` field is refused unless
``--allow-line-commands`` is given), and it does not choose where the
credentials from the environment go: its ``url`` must have the origin
(scheme, host and port) of the provider's default base URL or of one given
with ``--allow-url``, so neither another host nor a plain ``ws://`` to a
``wss://`` one gets them.  A line is read with a bound on its length, so a
line without end cannot take the memory, and every line is checked before
any client is built, so that a mistake anywhere fails the run at once.
"""

import json
from collections.abc import Collection, Iterator
from typing import IO, Any, Optional

import attrs

from .._watch.provider import Provider
from .._wire.checks import origin, seconds
from ..errors import ConfigurationError
from ._watch import PROVIDERS

__all__ = ["DEFAULT_MAX_LINE_BYTES", "Line", "LineRules", "read_lines"]

#: The longest line read: a call's fields take a few hundred bytes.
DEFAULT_MAX_LINE_BYTES = 64 * 1024


@attrs.frozen
class LineRules:
    """What the command line lets lines do: the base URLs besides the providers' own, running commands."""

    allowed_urls: Collection[str] = ()
    allow_commands: bool = False
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


@attrs.frozen
class Line:
    """One checked line: its provider, its fields as the provider read them, and what else the client needs.

    ``commands`` maps a renewable credential to the command that renews it
    (only with ``--allow-line-commands``); ``join`` asks to join a Hiya call.
    """

    number: int
    provider: "Provider[Any]"
    fields: dict[str, Any] = attrs.field(repr=False)
    commands: dict[str, str] = attrs.field(repr=False)
    join: bool
    max_duration: Optional[float] = None
    idle_timeout: Optional[float] = None


def read_lines(source: IO[bytes], rules: LineRules) -> list[Line]:
    """Every call ``source`` lists, each line checked; ``ConfigurationError`` names the first bad line.

    Messages name lines and fields, never a value: a line may hold secrets.
    """
    allowed = frozenset(origin(url) for url in rules.allowed_urls)
    lines = []
    for number, text in _numbered(source, rules.max_line_bytes):
        try:
            lines.append(_line(number, _object(text), rules, allowed))
        except ConfigurationError as error:
            raise ConfigurationError(f"line {number}: {error}") from None
    return lines


def _numbered(source: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes]]:
    """The lines that are not blank, numbered, none read past ``max_bytes`` bytes."""
    number = 0
    while True:
        text = source.readline(max_bytes + 1)
        if not text:
            return
        number += 1
        if len(text) > max_bytes and not text.endswith(b"\n"):
            raise ConfigurationError(f"line {number} is longer than {max_bytes} bytes (see --max-line-bytes)")
        if text.strip():
            yield number, text


def _object(text: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):  # not UTF-8 or not JSON; nested past the parser's depth
        raise ConfigurationError("not JSON") from None
    if not isinstance(fields, dict):
        raise ConfigurationError("not a JSON object")
    return fields


def _line(
    number: int, fields: dict[str, Any], rules: LineRules, allowed: frozenset[tuple[str, str, int]]
) -> Line:
    provider = PROVIDERS.get(str(fields.pop("provider", "")))
    if provider is None:
        raise ConfigurationError(f"provider must be one of {', '.join(PROVIDERS)}")
    join = fields.pop("join", False)
    if not isinstance(join, bool):
        raise ConfigurationError("join must be true or false")
    max_duration, idle_timeout = (_limit(name, fields.pop(name, None)) for name in _LIMITS)
    commands = {}
    for field in provider.fields:
        command = fields.pop(f"{field.name}_command", None) if field.renewable else None
        if command is None:
            continue
        if not rules.allow_commands:
            raise ConfigurationError(
                f"{field.name}_command would run a program: lines may only with --allow-line-commands"
            )
        if not isinstance(command, str):
            raise ConfigurationError(f"{field.name}_command must be text")
        commands[field.name] = command
    checked = provider.check_fields(fields)
    url = checked.get("url")
    if url is not None and origin(url) not in allowed | {origin(provider.default_url)}:
        raise ConfigurationError(
            "url must have the scheme, host and port of the provider's own base URL "
            "or of one given with --allow-url"
        )
    return Line(number, provider, checked, commands, join, max_duration, idle_timeout)


#: The watch's own time limits, as ``livecall watch --max-duration`` and ``--idle-timeout``:
#: the command's, not the client's, so the provider's fields do not hold them.
_LIMITS = ("max_duration", "idle_timeout")


def _limit(name: str, value: Any) -> Optional[float]:
    return None if value is None else seconds(name, value)
