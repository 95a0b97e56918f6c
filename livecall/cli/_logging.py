"""Logging to stderr for ``-v``: scrubbed of credentials at every level, one line a record.

The redacting filter sits on the handler, not on a logger, so it also sees
what propagates from other libraries (websocket-client at ``-vv``).
"""

import contextlib
import logging
import sys
from collections.abc import Iterator

from .._safety.printable import PrintableFormatter, printable
from .._safety.secrets import RedactingFilter

__all__ = ["logging_to_stderr"]

_LEVELS = {0: logging.WARNING, 1: logging.INFO}
_VERBOSE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _OneLine(logging.Formatter):
    """``livecall: error: ...``: one line per record, the message escaped; tracebacks are for ``-v``."""

    def format(self, record: logging.LogRecord) -> str:
        return f"livecall: {record.levelname.lower()}: {printable(record.getMessage())}"


@contextlib.contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Warnings and errors by default; ``-v`` adds progress, ``-vv`` debugging of every library."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
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
        root.removeHandler(handler)
        root.setLevel(previous)
