"""Numbers on the command line: each option's ``type=`` is the library's own check, as argparse wants it.

The checks are those of :mod:`livecall._wire.checks`, which the client's
constructor, ``watch-many`` lines and workers' requests go through too, so
an option accepts exactly what the client would: no NaN, no infinity, no
week-long ping.  A refusal is argparse's usage error (exit status 2).
"""

import argparse
from typing import Any, Callable, TypeVar

from .._wire.checks import seconds, whole_number
from ..errors import ConfigurationError

__all__ = ["count", "pace_seconds", "port", "positive_count", "positive_seconds"]

_Number = TypeVar("_Number", int, float)


def _option(check: Callable[..., _Number], **limits: Any) -> Callable[[str], _Number]:
    """An argparse ``type=``: ``check(name, text, **limits)``, its refusal a usage error."""

    def convert(text: str) -> _Number:
        try:
            return check("the value", text, **limits)
        except ConfigurationError as error:
            raise argparse.ArgumentTypeError(f"{error}, not {text!r}") from None

    return convert


#: The highest TCP port.
_MAX_PORT = 65535


def _port_number(name: str, value: Any) -> int:
    """A TCP port to listen on, 0 to 65535 (0: any free port): the whole-number check, and its range."""
    try:
        number = whole_number(name, value)
    except ConfigurationError:
        number = -1
    if not 0 <= number <= _MAX_PORT:
        raise ConfigurationError(f"{name} must be a port number, 0 to {_MAX_PORT}")
    return number


#: Reconnect attempts and the like.
count = _option(whole_number)
#: Sizes and the like.
positive_count = _option(whole_number, minimum=1)
#: Timeouts and intervals.
positive_seconds = _option(seconds)
#: The simulator's pause between messages: 0 is allowed.
pace_seconds = _option(seconds, zero=True)
#: A port to listen on: 0 picks a free one.
port = _option(_port_number)
