"""The dead-letter file: every event that could not be delivered, one JSON line each.

A line is the exact request body, so a replay signs and sends the same
bytes.  The file is created only when something goes into it, readable by
its owner only (transcripts are personal data), and each line is flushed
at once so that a crash keeps what was written.
"""

import logging
import os
import threading
from typing import BinaryIO, Optional

__all__ = ["DEFAULT_PATH", "DeadLetterFile"]

DEFAULT_PATH = "livecall-webhook-dead-letter.jsonl"

log = logging.getLogger("livecall.webhook")


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class DeadLetterFile:
    """Appends bodies to ``path``; counts what it wrote and what it could not."""

    def __init__(self, path: str = DEFAULT_PATH):
        self.path = os.fspath(path)
        self.written = 0
        self.unwritten = 0
        self._file: Optional[BinaryIO] = None
        self._lock = threading.Lock()

    def append(self, body: bytes) -> None:
        with self._lock:
            try:
                if self._file is None:
                    self._file = self._open()
                self._file.write(body + b"\n")
                self._file.flush()
            except OSError as error:
                self.unwritten += 1
                log.error(
                    "an undelivered event could not be written to %s: %s", self.path, error.strerror or error
                )
            else:
                self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _open(self) -> BinaryIO:
        """Open for appending, ending a cut-off last line first so the next one stands alone."""
        opened = open(self.path, "ab", opener=_owner_only)
        if opened.tell() > 0:
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    opened.write(b"\n")
        return opened
