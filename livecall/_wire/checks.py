"""Arguments that go on the wire, checked where they are given, not deep in a connection attempt.

A mistake found here is a ``ConfigurationError`` naming the argument (the
command line's usage error); found in the opening handshake on a connector
thread, it would end the watch as a failed connection, far from its cause.
"""

import ipaddress
import math
import re
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError

__all__ = ["MAX_SECONDS", "base_url", "header_text", "origin", "seconds", "whole_number"]

#: The longest wait any option may ask for, a week: every wait ends up as a
#: timeout of ``epoll`` or of a lock, which overflow (and kill their thread)
#: somewhere past 24 days.
MAX_SECONDS = 7 * 24 * 3600.0
#: A whole number as text: ASCII digits only (``int()`` would take ``"١"``),
#: and few enough that reading them costs nothing.
_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


def base_url(url: str) -> str:
    """``url`` if it is a ``ws://`` or ``wss://`` URL with a host, a valid port and no credentials.

    The URL is printed in messages, so a user name or password in it is
    refused rather than shown; a query or fragment would be lost when the
    provider's path is appended.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range or not a number
        host = parts.hostname
        if host and "[" in parts.netloc:
            ipaddress.IPv6Address(host.split("%")[0])
    except ValueError as error:
        raise ConfigurationError(f"url is not a valid URL ({error}): {url!r}") from None
    if parts.scheme not in ("ws", "wss"):
        raise ConfigurationError(f"url must start with ws:// or wss://, not {url!r}")
    if not host:
        raise ConfigurationError(f"url has no host: {url!r}")
    if port == 0:
        raise ConfigurationError(f"url has port 0, which cannot be connected to: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("url must not hold a user name or password: pass credentials as such")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"url must not have a query or fragment: {url!r}")
    return url


def header_text(name: str, value: str) -> str:
    """``value``, if it can go in an HTTP header as it is: printable text only.

    A line break would add a header of the caller's choosing, and a command
    line argument in another encoding (lone surrogates) could not be sent.
    The message names the argument only: the value may be a secret.
    """
    if not value.isprintable():
        raise ConfigurationError(f"{name} must be printable text: it is sent in an HTTP request")
    return value


def seconds(name: str, value: Any, *, zero: bool = False) -> float:
    """``value`` as a number of seconds: a finite number above 0 (or 0 with ``zero``), at most a week.

    The one check of every duration, whether it comes from a constructor
    argument, the command line (text), a ``watch-many`` line or a worker's
    request (JSON numbers or text): NaN passes every ``<=`` comparison, and
    an infinite or huge one overflows a timeout, so both are refused here.
    """
    lowest = "0 or more" if zero else "above 0"
    number = _read(name, value, float, f"a number of seconds, {lowest}")
    if not (math.isfinite(number) and (number >= 0 if zero else number > 0) and number <= MAX_SECONDS):
        raise ConfigurationError(f"{name} must be a number of seconds, {lowest} and at most {MAX_SECONDS:g}")
    return number


def whole_number(name: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` as a whole number of at least ``minimum``: an ``int`` or the text of one, never a bool."""
    if isinstance(value, str) and not _WHOLE.fullmatch(value.strip()):
        value = None
    number = _read(name, value, int, f"a whole number, {minimum} or more")
    if number < minimum:
        raise ConfigurationError(f"{name} must be a whole number, {minimum} or more")
    return number


def _read(name: str, value: Any, kind: type, expected: str) -> Any:
    """``value`` as ``kind``: text is parsed, a number of the right kind kept, anything else refused.

    A bool is no number here (``True`` would be 1), and a float no whole
    number (``2.5`` retries).
    """
    allowed: tuple[type, ...] = (str, int) if kind is int else (str, int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ConfigurationError(f"{name} must be {expected}")
    try:
        return kind(value)
    except (ValueError, OverflowError):
        raise ConfigurationError(f"{name} must be {expected}") from None


def origin(url: str) -> tuple[str, str, int]:
    """Where ``url`` (a valid base URL) connects: its scheme, host and port, the default port filled in.

    Two URLs with one origin reach the same server the same way; a ``ws://``
    URL does not share the origin of a ``wss://`` one on the same host, so
    comparing origins refuses a downgrade to plain text.
    """
    parts = urlsplit(base_url(url))
    host = parts.hostname or ""  # base_url() refused a URL without one
    return parts.scheme, host.rstrip("."), parts.port or _DEFAULT_PORTS[parts.scheme]
