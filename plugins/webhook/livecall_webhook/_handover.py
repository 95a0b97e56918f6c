"""Sharing the dead-letter file between the watches appending to it and a replay taking it.

``livecall webhook-replay`` may run while a watch still appends to the same
file.  The replay must neither read a line half written nor lose one
appended after it read to the end, so the two share the file through
``flock``:

- a writer holds a shared lock on the file for each append, and appends
  only to the file the path names at that moment: a descriptor on a file
  since renamed or removed is closed, and the path opened again (a new file);
- a replay *takes* the file: under an exclusive lock, so that no append is
  under way, it renames the file aside under a spool's name, so that if the
  replay is killed the next watch or replay moves its lines back
  (``_spool.recover``).  Appends from then on go to a new file at the path,
  and the exclusive lock, held until the replay is done, tells a recovery
  that the file is in use;
- a replay *puts back* the lines it keeps in front of those appended
  meanwhile, in a file that it renames onto the path under the lock of the
  file there.

A writer never waits long: a lock it cannot have at once is a replay's, and
the file is either renamed already (the writer opens the new one) or about
to be.
"""

import errno
import fcntl
import os
import shutil
import time
import uuid
from typing import Optional

from ._files import open_append, open_read, same_file

__all__ = ["hold_for_append", "put_back", "release", "spool_path", "take"]

#: Tries at a lock or a file that keeps changing under us before giving up with an error.
_ATTEMPTS = 30
_LONGEST_PAUSE = 0.1
_COPY_CHUNK = 1024 * 1024


def spool_path(dead_letter: str) -> str:
    """A new spool's name beside ``dead_letter``: what ``_spool.recover`` looks for."""
    directory, name = os.path.split(os.path.abspath(dead_letter))
    return os.path.join(directory, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.spool")


def hold_for_append(path: str, descriptor: Optional[int]) -> int:
    """A descriptor appending to the file ``path`` names now, share-locked until ``release()``.

    ``descriptor`` is the one used last, or None; it is closed if the file
    was taken since.  Raises OSError when the file cannot be had.
    """
    for attempt in range(_ATTEMPTS):
        if descriptor is not None and not same_file(path, descriptor):
            os.close(descriptor)
            descriptor = None
        if descriptor is None:
            descriptor = open_append(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            _pause(attempt)  # a replay is taking this file
            continue
        if same_file(path, descriptor):
            return descriptor
        release(descriptor)
    if descriptor is not None:
        os.close(descriptor)
    raise OSError(errno.EWOULDBLOCK, "another process keeps the file locked")


def release(descriptor: int) -> None:
    fcntl.flock(descriptor, fcntl.LOCK_UN)


def take(path: str) -> tuple[int, str]:
    """Take the file at ``path`` for a replay: a descriptor reading it, exclusively locked, and its new name.

    Refused (``NotSafe``) if ``path`` is not a regular file or others may
    write it; FileNotFoundError if there is none.  Closing the descriptor
    ends the replay's hold.
    """
    for _ in range(_ATTEMPTS):
        descriptor = open_read(path, trusted_only=True)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # appends are one write each
            if same_file(path, descriptor):
                aside = spool_path(path)
                os.rename(path, aside)
                return descriptor, aside
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # another replay took it meanwhile
    raise OSError(errno.EBUSY, f"{path!r} keeps being taken by other replays")


def put_back(path: str, kept: str) -> None:
    """Make the file ``kept`` the file at ``path``, followed by whatever was appended there meanwhile."""
    for _ in range(_ATTEMPTS):
        try:
            descriptor = open_read(path)
        except FileNotFoundError:
            try:
                os.link(kept, path)  # unlike a rename, never replaces a file a writer just created
            except FileExistsError:
                continue
            os.unlink(kept)
            return
        with os.fdopen(descriptor, "rb") as appended:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if not same_file(path, descriptor):
                continue
            with open(kept, "ab") as target:
                shutil.copyfileobj(appended, target, _COPY_CHUNK)
                target.flush()
                os.fsync(target.fileno())
            os.replace(kept, path)  # writers waiting on the old file find it gone and open this one
            return
    raise OSError(errno.EBUSY, f"{path!r} keeps changing; the kept lines are in {kept!r}")


def _pause(attempt: int) -> None:
    time.sleep(min(0.001 * 2**attempt, _LONGEST_PAUSE))
