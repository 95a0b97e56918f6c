"""Which ``livecall.ExitStatus`` an error that ended the command leads to, and its one line."""

from .._exit_status import ExitStatus
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    LivecallError,
    PluginError,
    RetriesExhaustedError,
)

__all__ = ["describe", "signal_status", "status_for"]

_STATUSES = (
    (ConfigurationError, ExitStatus.USAGE),
    (AuthenticationError, ExitStatus.AUTH_REFUSED),
    (RetriesExhaustedError, ExitStatus.GAVE_UP),
)


def signal_status(signum: int) -> int:
    """The shell's convention: 128 plus the signal's number."""
    return 128 + signum


def status_for(error: BaseException) -> int:
    """The exit status for an error that ended the command.

    A plugin that refused its options (raising ``ConfigurationError`` while
    being configured) is a usage error like any other.
    """
    if isinstance(error, PluginError) and error.__cause__ is not None:
        error = error.__cause__
    for cls, status in _STATUSES:
        if isinstance(error, cls):
            return status
    return ExitStatus.FAILURE


def describe(error: BaseException) -> str:
    """One line saying what went wrong; the server's own words for a refusal."""
    if isinstance(error, AuthenticationError):
        said = error.server_message
        return str(error) if not said or said in str(error) else f"{error}: {said}"
    if isinstance(error, LivecallError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
