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

__all__ = ["count", "pace_seconds", "positive_count", "positive_seconds"]

_Number = TypeVar("_Number", int, float)


def _option(check: Callable[..., _Number], **limits: Any) -> Callable[[str], _Number]:
    """An argparse ``type=``: ``check(name, text, **limits)``, its refusal a usage error."""

    def convert(text: str) -> _Number:
        try:
            return check("the value", text, **limits)
        except ConfigurationError as error:
            raise argparse.ArgumentTypeError(f"{error}, not {text!r}") from None

    return convert


#: Reconnect attempts and the like.
count = _option(whole_number)
#: Sizes and the like.
positive_count = _option(whole_number, minimum=1)
#: Timeouts and intervals.
positive_seconds = _option(seconds)
#: The simulator's pause between messages: 0 is allowed.
pace_seconds = _option(seconds, zero=True)
