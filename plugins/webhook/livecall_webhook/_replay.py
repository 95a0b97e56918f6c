"""Sending a dead-letter file again: ``livecall webhook-replay FILE``."""

import json
import logging
import os
import tempfile

import attrs

from ._sender import Sender

__all__ = ["ReplayResult", "replay"]

log = logging.getLogger("livecall.webhook")


@attrs.frozen
class ReplayResult:
    delivered: int
    kept: int


def replay(path: str, sender: Sender) -> ReplayResult:
    """Resend the lines of ``path`` in order; leave in it only those still undelivered.

    A line the target refuses for good (a 4xx) is kept and the next one is
    tried.  When the target cannot be reached even after retries, that line
    and all after it are kept untried: the rest would only wait out their
    retries too.  Lines that are not JSON are kept and reported, never sent.
    The file is removed once nothing is left in it; lines appended while the
    replay ran (a watch still writing) are kept.
    """
    with open(path, "rb") as source:
        data = source.read()
    kept: list[bytes] = []
    delivered = 0
    reachable = True
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        if not reachable:
            kept.append(line)
        elif not _is_json(line):
            log.warning("line %d of %s is not JSON: kept, not sent", number, path)
            kept.append(line)
        else:
            failure = sender.send(line)
            if failure is None:
                delivered += 1
                continue
            log.warning("line %d of %s not delivered: %s", number, path, failure.reason)
            kept.append(line)
            reachable = failure.permanent
    _rewrite(path, kept, already_read=len(data))
    return ReplayResult(delivered, len(kept))


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _rewrite(path: str, lines: list[bytes], already_read: int) -> None:
    """Replace ``path`` with ``lines`` and whatever was appended after ``already_read`` bytes."""
    with open(path, "rb") as source:
        source.seek(already_read)
        appended = source.read()
    content = b"".join(line + b"\n" for line in lines) + appended
    if not content:
        os.remove(path)
        return
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".livecall-replay-")
    try:
        with os.fdopen(handle, "wb") as target:
            target.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
