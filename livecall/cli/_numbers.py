"""Numbers on the command line: each option's ``type=`` parses and range-checks alike.

One factory, so every bad number is refused with the same kind of message
(``expected a whole number, 0 or more, not 'x'``) instead of argparse's
``invalid int value``.
"""

import argparse
from typing import Callable, TypeVar

__all__ = ["count", "pace_seconds", "positive_seconds"]

_Number = TypeVar("_Number", int, float)


def _number(
    parse: Callable[[str], _Number], accept: Callable[[_Number], bool], expected: str
) -> Callable[[str], _Number]:
    """An argparse ``type=``: ``parse`` the text, refuse it when ``accept`` says no or it does not parse."""

    def convert(text: str) -> _Number:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
        return value

    return convert


#: Reconnect attempts and the like.
count = _number(int, lambda value: value >= 0, "a whole number, 0 or more")
#: Timeouts and intervals; NaN is refused.
positive_seconds = _number(float, lambda value: value > 0, "a positive number of seconds")
#: The simulator's pause between messages: 0 is allowed, infinity and NaN are not.
pace_seconds = _number(float, lambda value: 0 <= value < float("inf"), "a number of seconds, 0 or more")
