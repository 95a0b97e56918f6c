"""Opening the plugin's files safely: never through a symlink, only regular files, owner-only.

Transcripts are personal data, and the dead-letter file's directory may be
shared: a symlink planted at its name must not make livecall write (or a
replay read) some other file, and a file others may write must not be
trusted.
"""

import os
import stat

__all__ = ["NotSafe", "open_append", "open_exclusive", "open_read"]

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class NotSafe(OSError):
    """The path is a symlink, not a regular file, or writable by others."""


def open_append(path: str) -> int:
    """A descriptor appending to ``path``, created 0600 if missing; an existing file keeps its mode."""
    return _regular(os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o600), path)


def open_exclusive(path: str) -> int:
    """A descriptor on a new file at ``path``, 0600; fails if anything is there."""
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)


def open_read(path: str, *, trusted_only: bool = False) -> int:
    """A descriptor reading ``path``; with ``trusted_only``, refused if others may write it."""
    descriptor = _regular(os.open(path, os.O_RDONLY | _NOFOLLOW), path)
    if trusted_only and os.fstat(descriptor).st_mode & stat.S_IWOTH:
        os.close(descriptor)
        raise NotSafe(f"{path!r} is writable by anyone; make it owner-only (chmod 600) to use it")
    return descriptor


def _regular(descriptor: int, path: str) -> int:
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise NotSafe(f"{path!r} is not a regular file")
    return descriptor
