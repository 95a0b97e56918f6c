"""The workers' logger, whose lines are bounded whatever a request or a server put in them.

A request's fields and a provider's error messages reach log lines (a call's
id, why a request was refused).  Both come from whoever can enqueue or from
the server: a line is cut to ``LINE_LIMIT`` characters, after its secrets are
blanked, so that a cut never leaves part of a secret behind.
"""

import logging

import livecall

__all__ = ["LINE_LIMIT", "log", "shorten"]

#: The most characters a worker's log line, or a dead letter's reason, holds.
LINE_LIMIT = 1000


def shorten(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` with its secrets blanked, cut to ``limit`` characters, saying how much was cut."""
    text = livecall.redact(text)
    if len(text) <= limit:
        return text
    rest = f"... ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(rest))] + rest


class _Bounded(logging.Filter):
    """Cuts a record's message to ``LINE_LIMIT`` characters; a short one is left as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > LINE_LIMIT:
            record.msg, record.args = shorten(message), ()
        return True


log = logging.getLogger("livecall.redis")
log.addFilter(_Bounded())
