"""Arguments that go on the wire, checked where they are given, not deep in a connection attempt.

A mistake found here is a ``ConfigurationError`` naming the argument (the
command line's usage error); found in the opening handshake on a connector
thread, it would end the watch as a failed connection, far from its cause.
"""

import ipaddress
from urllib.parse import urlsplit

from ..errors import ConfigurationError

__all__ = ["base_url", "header_text"]


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
