"""The dead-letter file: every event that could not be delivered, one sealed line each.

The file is created only when something goes into it, readable by its owner
only (transcripts are personal data), never through a symlink, and each line
is handed to the operating system in one write as it comes, so that a
crash, even SIGKILL, keeps what was written.  A cut-off last line (a full
disk, a kill mid-write) is ended before the next is appended, so that the
next stands alone.  Each append holds the file's shared lock, and goes to
the file the path names then, so that a replay can take the file while a
watch still writes to it (see ``_handover``).
"""

import logging
import os
import threading
from typing import Optional

from ._handover import hold_for_append, release

__all__ = ["DEFAULT_PATH", "DeadLetterFile"]

DEFAULT_PATH = "livecall-webhook-dead-letter.jsonl"

log = logging.getLogger("livecall.webhook")


class DeadLetterFile:
    """Appends lines to ``path``; counts the events it wrote and those it could not."""

    def __init__(self, path: str = DEFAULT_PATH):
        self.path = os.fspath(path)
        self.written = 0
        self.unwritten = 0
        self._descriptor: Optional[int] = None
        self._lock = threading.Lock()

    def append(self, line: bytes) -> bool:
        """Append one event's line (ending in a newline); False if it could not be written."""
        with self._lock:
            try:
                descriptor, self._descriptor = self._descriptor, None
                descriptor = self._descriptor = hold_for_append(self.path, descriptor)
                try:
                    _write_all(descriptor, _after_cut_off_line(descriptor))
                    _write_all(descriptor, line)
                finally:
                    release(descriptor)
            except OSError as error:
                if not self.unwritten:
                    log.error(
                        "an undelivered event could not be written to %s: %s",
                        self.path,
                        error.strerror or error,
                    )
                self.unwritten += 1
                return False
            self.written += 1
            return True

    def close(self) -> None:
        """Flush the file to disk and close it; a failure is logged, never raised."""
        with self._lock:
            if self._descriptor is None:
                return
            try:
                os.fsync(self._descriptor)
            except OSError as error:
                log.error("%s could not be flushed to disk: %s", self.path, error.strerror or error)
            finally:
                os.close(self._descriptor)
                self._descriptor = None


def _after_cut_off_line(descriptor: int) -> bytes:
    """A newline to end a last line that was cut off (a full disk, a kill mid-write), else nothing."""
    size = os.fstat(descriptor).st_size
    if size and os.pread(descriptor, 1, size - 1) != b"\n":
        return b"\n"
    return b""


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]
