"""Credentials that never print, and scrubbing them from text that might.

Every value a ``Credential`` hands out is remembered so that log filters and
error messages can blank it, whatever path it took into a string.
"""

import logging
import os
import threading
from typing import Callable, Optional, Union

__all__ = ["Credential", "RedactingFilter", "redact"]

Source = Union[str, Callable[[], str], None]
_MASK = "***"
_known: set[str] = set()
_known_lock = threading.Lock()


#: Shorter values are no real credential, and blanking them would mangle any text.
_MIN_LENGTH = 4


def _remember(value: str) -> None:
    if len(value) >= _MIN_LENGTH:
        with _known_lock:
            _known.add(value)


class Credential:
    """A secret read afresh on every connection attempt, so rotated tokens are picked up.

    ``source`` is the value itself, or a callable returning it; ``env`` names an
    environment variable to fall back on.  Every value it holds or hands out
    is blanked by ``redact()`` and ``RedactingFilter`` from then on, so a
    plugin keeps its own secrets (a webhook's signing key) out of every log
    by holding them in a ``Credential``.
    """

    __slots__ = ("_source", "_env")

    def __init__(self, source: Source = None, env: Optional[str] = None):
        if isinstance(source, str):
            _remember(source)
        self._source = source
        self._env = env

    def get(self) -> Optional[str]:
        value: Optional[str]
        if callable(self._source):
            value = self._source()
        elif self._source is not None:
            value = self._source
        else:
            value = os.environ.get(self._env) if self._env else None
        if value:
            _remember(value)
        return value or None

    def __bool__(self) -> bool:
        return self._source is not None or bool(self._env and os.environ.get(self._env))

    def __repr__(self) -> str:
        return f"Credential({_MASK})"


def redact(text: str) -> str:
    """``text`` with every credential livecall knows of blanked.

    Those are the values of every ``Credential`` made or read so far in this
    process: the clients' tokens and keys, and whatever secrets plugins hold in
    a ``Credential`` of their own.
    """
    with _known_lock:
        values = list(_known)
    for value in sorted(values, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, _MASK)
    return text


class RedactingFilter(logging.Filter):
    """Blanks credentials in a record's final message, arguments and traceback included.

    Add it to a handler (it then sees every record the handler writes) or to
    a logger that may log a secret, such as an HTTP library's.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
