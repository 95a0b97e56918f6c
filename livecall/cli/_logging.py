"""Logging to stderr for ``-v``: scrubbed of credentials at every level, one line a record.

The redacting filter sits on the handler, not on a logger, so it also sees
what propagates from other libraries (websocket-client at ``-vv``).

A credential too short to blank is said once the command line is settled
(:data:`short_credentials`): reading the options makes the credentials, and a
usage error found after them must be the one line the user sees.  However
many there are, they make one line.
"""

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Optional

from .._safety.printable import PrintableFormatter, printable
from .._safety.secrets import RedactingFilter

__all__ = ["CHECKS_FIRST", "logging_to_stderr", "short_credentials"]

_LEVELS = {0: logging.WARNING, 1: logging.INFO}
_VERBOSE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _OneLine(logging.Formatter):
    """``livecall: error: ...``: one line per record, the message escaped; tracebacks are for ``-v``."""

    def format(self, record: logging.LogRecord) -> str:
        return f"livecall: {record.levelname.lower()}: {printable(record.getMessage())}"


class _HeldBack(logging.Filter):
    """Holds back the warnings of the short credentials until :meth:`release`."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[logging.LogRecord] = []
        self._holding = False
        self._handler: Optional[logging.Handler] = None

    def hold(self, handler: logging.Handler) -> None:
        """Hold back what would go to ``handler``, from now until :meth:`release` or :meth:`drop`."""
        self._held, self._holding, self._handler = [], True, handler

    def filter(self, record: logging.LogRecord) -> bool:
        if self._holding and record.name == _SECRETS_LOGGER:
            self._held.append(record)
            return False
        return True

    def release(self) -> None:
        """The arguments are settled: say what was held, in one line; later warnings pass at once."""
        held, self._held, self._holding = self._held, [], False
        if held and self._handler is not None:
            more = len(held) - 1
            also = f"; so is {more} more credential" if more == 1 else f"; so are {more} more credentials"
            message = held[0].getMessage() + (also if more else "")
            self._handler.handle(logging.makeLogRecord(dict(held[0].__dict__, msg=message, args=())))

    def drop(self) -> None:
        """The command line was refused: its error is all the user needs to read."""
        self._held, self._holding = [], False


_SECRETS_LOGGER = "livecall.secrets"
#: The command's one: released as the command starts, or for a command whose parser has
#: ``CHECKS_FIRST`` set, by ``configured()``, once it has checked the rest of its arguments.
short_credentials = _HeldBack()
#: A parser default of the commands that build their clients, and so find more usage errors,
#: after argparse is done: ``watch``, ``watch-many``.
CHECKS_FIRST = "_checks_arguments_before_configuring"


@contextlib.contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Warnings and errors by default; ``-v`` adds progress, ``-vv`` debugging of every library."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.addFilter(short_credentials)
    short_credentials.hold(handler)
    handler.setFormatter(PrintableFormatter(_VERBOSE_FORMAT) if verbosity else _OneLine())
    level = _LEVELS.get(verbosity, logging.DEBUG)
    handler.setLevel(level)  # also for loggers that set a lower level of their own
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        short_credentials.drop()
        root.removeHandler(handler)
        root.setLevel(previous)
