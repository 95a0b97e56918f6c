"""Sending a dead-letter file again: ``livecall webhook-replay FILE``."""

import errno
import logging
import os
import stat
import tempfile
from typing import BinaryIO

import attrs

from ._dead_letter import DeadLetterFile
from ._files import NotSafe
from ._handover import put_back, take
from ._lines import decode
from ._sender import Sender
from ._spool import recover

__all__ = ["ReplayResult", "replay"]

log = logging.getLogger("livecall.webhook")

#: A longer line is no event this plugin wrote: it is kept, never read whole.
MAX_LINE = 256 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024


@attrs.frozen
class ReplayResult:
    delivered: int
    kept: int
    #: Lines kept unsent because their seal did not check (or they are no dead-letter line).
    refused: int = 0


def replay(path: str, sender: Sender) -> ReplayResult:
    """Resend the lines of ``path`` in order; leave in it only those still undelivered.

    Events a killed run left in its spool are moved into ``path`` first.
    The file is read a line at a time, never whole, and refused if it is a
    symlink, not a regular file (a FIFO would block the read), or writable
    by anyone.  With a secret, a line whose seal does not check (someone
    else wrote it) is kept and reported, never sent.  A line the target
    refuses for good (a 4xx) is kept and the next one is tried.  When the
    target cannot be reached even after retries, that line and all after it
    are kept untried: the rest would only wait out their retries too.

    A watch may still be appending to ``path``: the replay takes the file
    (see ``_handover``), so appends go to a new file meanwhile, and puts the
    lines it kept back in front of them; the file is removed once nothing is
    left in it.  A replay killed midway leaves the taken file as a spool,
    which the next watch or replay moves back: events it had delivered are
    then sent again, under the same ``webhook-id``.
    """
    recovered_into = DeadLetterFile(path)
    try:
        recover(recovered_into)
    finally:
        recovered_into.close()
    try:
        descriptor, taken = take(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotSafe(f"{path!r} is a symbolic link; name the file itself") from None
        raise
    directory = os.path.dirname(os.path.abspath(path))
    with os.fdopen(descriptor, "rb") as source:  # closing it ends the hold on the taken file
        try:
            result = _send_taken(path, source, directory, sender)
            os.unlink(taken)
        except BaseException:
            source.close()
            _give_back(path)
            raise
    if result.refused:
        log.warning(
            "%d lines of %s are not sealed with this secret: kept, not sent (were they written by "
            "livecall with this secret?)",
            result.refused,
            path,
        )
    return result


def _send_taken(path: str, source: BinaryIO, directory: str, sender: Sender) -> ReplayResult:
    """Send the taken file's lines; put those kept back at ``path``."""
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".livecall-replay-")
    try:
        os.fchmod(handle, stat.S_IMODE(os.fstat(source.fileno()).st_mode))  # the file keeps its mode
        with os.fdopen(handle, "wb") as kept:
            result = _send_lines(path, source, kept, sender)
            empty = kept.tell() == 0
        if not empty:
            put_back(path, temporary)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return result


def _give_back(path: str) -> None:
    """The replay stopped midway: move the taken file's lines back to ``path`` now, as a recovery would."""
    target = DeadLetterFile(path)
    try:
        recover(target)
    finally:
        target.close()


def _send_lines(path: str, source: BinaryIO, kept: BinaryIO, sender: Sender) -> ReplayResult:
    delivered = kept_count = refused = 0
    number = 0
    while True:
        line = source.readline(MAX_LINE)
        if not line:
            break
        number += 1
        if not line.endswith(b"\n") and len(line) == MAX_LINE:
            kept.write(line)
            _copy_line_rest(source, kept)
            kept_count, refused = kept_count + 1, refused + 1
            continue
        if not line.strip():
            continue
        message = decode(line.rstrip(b"\n"), sender.key)
        if message is None:
            kept.write(line if line.endswith(b"\n") else line + b"\n")
            kept_count, refused = kept_count + 1, refused + 1
            continue
        failure = sender.send(message.body, message_id=message.id)
        if failure is None:
            delivered += 1
            continue
        log.warning("line %d of %s not delivered: %s", number, path, failure.reason)
        kept.write(line)
        kept_count += 1
        if not failure.permanent:
            kept_count += _copy_rest(source, kept)
            break
    return ReplayResult(delivered, kept_count, refused)


def _copy_line_rest(source: BinaryIO, kept: BinaryIO) -> None:
    """Copy the rest of an overlong line through, a chunk at a time."""
    while True:
        chunk = source.readline(_COPY_CHUNK)
        kept.write(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return


def _copy_rest(source: BinaryIO, kept: BinaryIO) -> int:
    """Copy the untried rest of the file through; the number of lines in it."""
    lines = 0
    while True:
        chunk = source.read(_COPY_CHUNK)
        if not chunk:
            return lines
        lines += chunk.count(b"\n")
        kept.write(chunk)
