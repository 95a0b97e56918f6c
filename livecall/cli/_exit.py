"""Exit statuses of the ``livecall`` command, in one place: scripts branch on them.

====  ==================================================================
0     the call ended normally
1     any other failure (a protocol error, a bug, a plugin that broke)
2     usage error: bad arguments, a missing credential
3     authentication or authorization refused (HTTP 401/403, close 1008)
4     gave up after ``--max-retries`` failed reconnect attempts
5     the call went well but a plugin could not finish its work
      (reported through ``Config.fail``; a webhook left undelivered)
130   interrupted by SIGINT (Ctrl-C)
143   terminated by SIGTERM
====  ==================================================================

When a plugin reports a failure with a status of its own, the command exits
with the highest status reported.
"""

import signal

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    LivecallError,
    PluginError,
    RetriesExhaustedError,
)

__all__ = [
    "AUTH_REFUSED",
    "FAILURE",
    "GAVE_UP",
    "INCOMPLETE",
    "INTERRUPTED",
    "OK",
    "TERMINATED",
    "USAGE",
    "describe",
    "signal_status",
    "status_for",
]

OK = 0
FAILURE = 1
USAGE = 2
AUTH_REFUSED = 3
GAVE_UP = 4
INCOMPLETE = 5

_STATUSES = (
    (ConfigurationError, USAGE),
    (AuthenticationError, AUTH_REFUSED),
    (RetriesExhaustedError, GAVE_UP),
)


def signal_status(signum: int) -> int:
    """The shell's convention: 128 plus the signal's number."""
    return 128 + signum


INTERRUPTED = signal_status(signal.SIGINT)
TERMINATED = signal_status(signal.SIGTERM)


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
    return FAILURE


def describe(error: BaseException) -> str:
    """One line saying what went wrong; the server's own words for a refusal."""
    if isinstance(error, AuthenticationError):
        said = error.server_message
        return str(error) if not said or said in str(error) else f"{error}: {said}"
    if isinstance(error, LivecallError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
