"""Keeping the webhook URL's credentials out of log records, ours and urllib3's.

urllib3 logs every request's path, query included, at debug level: with
``-vv`` a token in the URL's query would reach stderr.  A filter on the
loggers that write such records blanks it before any handler sees it.
"""

import logging
from collections.abc import Iterable

__all__ = ["Scrubber"]

#: Loggers whose records may carry the URL: ours, and urllib3's that log request paths.
LOGGERS = (
    "livecall.webhook",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.util.retry",
)
_MASK = "***"


class Scrubber(logging.Filter):
    """Blanks ``secrets`` in a record's message and traceback."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self._secrets: list[str] = sorted({s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True

    def attach(self) -> None:
        if self._secrets:
            for name in LOGGERS:
                logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeFilter(self)
