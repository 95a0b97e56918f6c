"""Exceptions a caller can act on.

Messages name the cause and never a credential: they end up in logs, CLI
output and bug reports.
"""

from typing import Any, Optional

from ._safety.secrets import redact

__all__ = [
    "AckTimeoutError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionLostError",
    "LivecallError",
    "PluginError",
    "ProtocolError",
    "RetriesExhaustedError",
]


class LivecallError(Exception):
    """Base of every error livecall raises on purpose.

    Its message is redacted as it is made, so an error carrying a server's
    words (which may echo a token) is safe in any handler that logs it.
    """

    def __init__(self, *args: Any):
        super().__init__(*[redact(arg) if isinstance(arg, str) else arg for arg in args])


class ConfigurationError(LivecallError, ValueError):
    """The client was given arguments it cannot work with (a missing credential, a bad URL)."""


class AuthenticationError(LivecallError):
    """The server refused the credentials: handshake 401/403 or close code 1008.

    Never retried.  ``status`` is the HTTP status or close code; ``server_message``
    is what the server said, when it said anything.
    """

    def __init__(self, message: str, *, status: int, server_message: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.server_message = None if server_message is None else redact(server_message)


class RetriesExhaustedError(LivecallError):
    """The connection was lost and ``max_retries`` attempts to get it back failed."""

    def __init__(self, message: str, *, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class ProtocolError(LivecallError):
    """The server closed with a code that is neither normal, retryable nor an auth failure."""

    def __init__(self, message: str, *, code: Optional[int] = None):
        super().__init__(message)
        self.code = code


class AckTimeoutError(LivecallError, TimeoutError):
    """A Hiya client message was sent but its ``ack`` did not arrive in time."""


class ConnectionLostError(LivecallError, ConnectionError):
    """The connection went away while the caller was waiting on it (for an ack, say)."""


class PluginError(LivecallError):
    """A plugin or callback raised; the others and the stream went on without it.

    ``plugin`` names the plugin (or callback), ``hook`` the hook it was running;
    the original exception is the ``__cause__``.
    """

    def __init__(self, plugin: str, hook: str, error: BaseException):
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.hook = hook
        self.__cause__ = error
