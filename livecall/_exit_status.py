"""The exit statuses of the ``livecall`` command, shared with plugins that report their own."""

import enum
import signal

__all__ = ["ExitStatus"]


class ExitStatus(enum.IntEnum):
    """What ``livecall`` exits with; scripts and cron jobs branch on these.

    A plugin whose work did not complete passes one to ``Config.fail``
    (``INCOMPLETE`` for work left undone); the command exits with the highest
    status reported.  The interrupted statuses follow the shell's convention,
    128 plus the signal's number.
    """

    #: The call ended normally.
    OK = 0
    #: Any other failure: a protocol error, a bug, a plugin that broke.
    FAILURE = 1
    #: Bad arguments or a missing credential.
    USAGE = 2
    #: The credentials were refused (HTTP 401/403, close code 1008).
    AUTH_REFUSED = 3
    #: Gave up after ``--max-retries`` failed reconnect attempts.
    GAVE_UP = 4
    #: The call went well, but a plugin could not finish its work.
    INCOMPLETE = 5
    #: The watch stopped at ``--max-duration`` or ``--idle-timeout``, before the call ended.
    TIME_LIMIT = 6
    #: Hung up: SIGHUP (the terminal went away, or a service manager's stop), handled as SIGTERM is.
    HUNG_UP = 128 + 1  # SIGHUP is 1 wherever it exists; Windows has no signal.SIGHUP
    #: Interrupted by SIGINT (Ctrl-C).
    INTERRUPTED = 128 + signal.SIGINT
    #: Terminated by SIGTERM.
    TERMINATED = 128 + signal.SIGTERM
