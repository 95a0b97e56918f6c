"""Opening the plugin's files safely: never through a symlink, only regular files, owner-only.

Transcripts are personal data, and the dead-letter file's directory may be
shared: a symlink planted at its name must not make livecall write (or a
replay read) some other file, and a file others may write must not be
trusted.  Files are opened without waiting (``O_NONBLOCK``), so that a FIFO
planted at the name is refused at once instead of blocking the open until
someone writes to it.
"""

import os
import stat

__all__ = ["NotSafe", "open_append", "open_exclusive", "open_read", "same_file"]

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class NotSafe(OSError):
    """The path is a symlink, not a regular file, or writable by others."""


def open_append(path: str) -> int:
    """A descriptor appending to ``path``, created 0600 if missing; an existing file keeps its mode."""
    return _regular(os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o600), path)


def open_exclusive(path: str) -> int:
    """A descriptor on a new file at ``path``, 0600; fails if anything is there."""
    return _regular(os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600), path)


def open_read(path: str, *, trusted_only: bool = False) -> int:
    """A descriptor reading ``path``; with ``trusted_only``, refused if others may write it."""
    descriptor = _regular(os.open(path, os.O_RDONLY | _NOFOLLOW), path)
    if trusted_only and os.fstat(descriptor).st_mode & stat.S_IWOTH:
        os.close(descriptor)
        raise NotSafe(f"{path!r} is writable by anyone; make it owner-only (chmod 600) to use it")
    return descriptor


def same_file(path: str, descriptor: int) -> bool:
    """Whether ``path`` still names the file ``descriptor`` is open on (not renamed or removed since)."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _regular(descriptor: int, path: str) -> int:
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotSafe(f"{path!r} is not a regular file")
    os.set_blocking(descriptor, True)
    return descriptor
