"""How many calls one worker process may hold: its ``--calls``, and what its open files allow.

Each held call keeps one socket open to its provider.  A process out of
descriptors fails every new connection (``EMFILE``), its provider's and its
Redis's alike; so a worker raises its soft limit on open files to the hard
one as it starts (where the platform has such limits: not on Windows), and
takes no more calls than the descriptors left allow, after those open
already and a reserve for everything that is not a call.
"""

import errno
import os
import sys
from typing import Optional

import attrs

__all__ = ["RESERVED", "Descriptors", "descriptors", "out_of_descriptors", "said"]

#: Descriptors kept for what is not a call: the Redis connections (requests, renewals, writes, the
#: settler's), the hub's own (its poller and wake-up pair), the metrics endpoint and its scrapes,
#: log files, name lookups, and the pipes of commands that fetch credentials.
RESERVED = 48


@attrs.frozen
class Descriptors:
    """The process's limit on open files (its soft limit, once raised) and how many were open."""

    limit: int
    open: int

    @property
    def calls(self) -> int:
        """The calls they allow: one descriptor each, after those open and the reserve."""
        return max(0, self.limit - self.open - RESERVED)


def descriptors() -> Optional[Descriptors]:
    """Raise the soft limit on open files to the hard one, and say what it allows; None where the
    platform has no such limit (Windows), or none is set."""
    if sys.platform == "win32":
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # macOS refuses an unlimited soft limit: keep what is set
            pass
    if soft == resource.RLIM_INFINITY:
        return None
    return Descriptors(soft, _open_now())


def _open_now() -> int:
    """Descriptors open in this process now (the listing's own left out)."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(folder)) - 1
        except OSError:
            continue
    return 3  # nowhere to count them: stdin, stdout and stderr at least


def said(calls: int, found: Optional[Descriptors]) -> str:
    """What the worker's start line says of its descriptors, after its group: ``; 1024 open files
    allow 970 calls``, or ``; --calls 2000, but 1024 open files allow 970``; nothing without a limit."""
    if found is None:
        return ""
    if found.calls < calls:
        return f"; --calls {calls}, but {found.limit} open files allow {found.calls}"
    return f"; {found.limit} open files allow {found.calls} calls"


def out_of_descriptors(error: BaseException) -> bool:
    """Whether ``error`` (a Redis connection error, say) came from the process's open-file limit."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
            return True
        if "Too many open files" in str(error):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False
