"""The spool: every accepted event on disk before the hook returns, so a kill loses none.

Events wait in memory for their turn, and a SIGKILL (``docker stop`` after
its grace period, the OOM killer) would lose them.  So the hook first
appends the event's sealed line to a spool file beside the dead-letter
file, and the sending thread appends ``{"done": "<webhook-id>"}`` once the
event was delivered or put in the dead-letter file.  A line reaches the
operating system before the hook returns, which is all a killed process
needs; ``fsync`` follows in batches, before each request, for a crash of
the machine.  The spool is emptied whenever nothing is pending, and
removed at a clean exit.

A spool left by a killed run is found by :func:`recover`, which the next
run and ``livecall webhook-replay`` call: the events it holds that are not
done are moved to the dead-letter file.  A run holds a lock on its spool for
its whole life, so that a spool still in use is never taken for a dead one.
A replay names the dead-letter file it took a spool too, so that if it is
killed its lines are moved back the same way (see ``_handover``).
"""

import fcntl
import glob
import logging
import os
import re
import threading
from typing import BinaryIO

from ._dead_letter import DeadLetterFile
from ._files import open_exclusive, open_read, same_file
from ._handover import spool_path

__all__ = ["Spool", "recover"]

log = logging.getLogger("livecall.webhook")

#: Past this size, an idle spool is emptied.
_EMPTY_IDLE_SPOOL_AT = 1024 * 1024
_DONE = re.compile(rb'\{"done": "(msg_[A-Za-z0-9_]{1,100})"\}')
_ID = re.compile(rb'\{"webhook-id": "(msg_[A-Za-z0-9_]{1,100})", ')


def _spool_glob(dead_letter: str) -> str:
    directory, name = os.path.split(os.path.abspath(dead_letter))
    return os.path.join(glob.escape(directory), f".{glob.escape(name)}.*.spool")


class Spool:
    """The write-ahead file of one run, next to ``dead_letter``."""

    def __init__(self, dead_letter: str):
        self.path = spool_path(dead_letter)
        self._descriptor = open_exclusive(self.path)
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        self._lock = threading.Lock()
        self._unsynced = False
        self._writable = True

    def add(self, line: bytes) -> None:
        """Write an event's line ahead of sending it."""
        self._write(line)

    def done(self, message_id: str) -> None:
        """The event is delivered or in the dead-letter file: a recovery must not move it."""
        self._write(b'{"done": "%s"}\n' % message_id.encode("ascii"))

    def sync(self) -> None:
        """Flush what was written since the last call to disk (one ``fsync`` for the batch)."""
        with self._lock:
            if not self._unsynced or not self._writable:
                return
            self._unsynced = False
            try:
                os.fsync(self._descriptor)
            except OSError as error:
                self._fail(error)

    def empty_if_large(self) -> None:
        """Nothing is pending: forget everything in the spool, if it grew large."""
        with self._lock:
            if not self._writable:
                return
            try:
                if os.fstat(self._descriptor).st_size > _EMPTY_IDLE_SPOOL_AT:
                    os.ftruncate(self._descriptor, 0)
            except OSError as error:
                self._fail(error)

    def close(self, keep: bool = False) -> None:
        """Remove the spool (everything is delivered or dead-lettered), or ``keep`` it for recovery."""
        with self._lock:
            if self._descriptor < 0:
                return
            self._writable = False
            if not keep:
                os.unlink(self.path)
            os.close(self._descriptor)
            self._descriptor = -1

    def _write(self, data: bytes) -> None:
        with self._lock:
            if not self._writable:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._descriptor, view) :]
            except OSError as error:
                self._fail(error)
            self._unsynced = True

    def _fail(self, error: OSError) -> None:
        """Sending goes on from memory; only a kill could now lose events."""
        self._writable = False
        log.error(
            "the webhook spool %s could not be written (%s): events are no longer safe from a kill",
            self.path,
            error.strerror or error,
        )


def recover(dead_letter: DeadLetterFile) -> int:
    """Move the events left undone in the spools of killed runs to ``dead_letter``; how many."""
    moved = 0
    for path in sorted(glob.glob(_spool_glob(dead_letter.path))):
        try:
            moved += _recover_one(path, dead_letter)
        except OSError as error:
            log.error("the webhook spool %s could not be recovered: %s", path, error.strerror or error)
    if moved:
        log.warning("%d events of a run that was killed moved to %s", moved, dead_letter.path)
    return moved


def _recover_one(path: str, dead_letter: DeadLetterFile) -> int:
    descriptor = open_read(path, trusted_only=True)
    with os.fdopen(descriptor, "rb") as spool:
        if os.fstat(descriptor).st_uid != os.geteuid():
            log.warning("%s belongs to someone else: left alone", path)
            return 0
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # a run still using it
        if not same_file(path, descriptor):
            return 0  # recovered and removed by another process meanwhile
        moved = 0
        for offset in _undone(spool):
            spool.seek(offset)
            if dead_letter.append(spool.readline()):
                moved += 1
        if dead_letter.unwritten:
            return moved  # kept, to try again later
        os.unlink(path)
        return moved


def _undone(spool: BinaryIO) -> list[int]:
    """The offsets of the event lines no ``done`` line follows, in order; a torn line is skipped.

    Only the events in flight when the run was killed are undone, so this
    stays as small as the run's queue however long the spool.
    """
    pending: dict[bytes, int] = {}
    offset = 0
    for line in spool:
        done = _DONE.fullmatch(line.rstrip(b"\n"))
        if done is not None:
            pending.pop(done[1], None)
        elif line.endswith(b"\n") and (event := _ID.match(line)) is not None:
            pending[event[1]] = offset
        offset += len(line)
    return list(pending.values())
