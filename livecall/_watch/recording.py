"""A watch written down as it happens, in livecall's recording format (version 1).

The format is documented for its readers in ``docs/recording-format.rst``: a
header line, then one JSON object per line for each frame, sent message,
close, reconnect and the end, timed on the recording's own clock.  A
recording is replayed to reproduce a bug, so it is written to survive the
process: every line is one unbuffered write, and a process killed mid-call
leaves whole lines and at most a torn last one.  It is also handed to other
people, so no credential reaches it (every text goes through ``redact()``,
which knows the client's credentials and every audio link decoded), and
``scrub`` can take out phone numbers and the conversation's words as well.

The dispatcher thread writes it, in the order the plugins see the events:
the I/O thread never waits on a disk.  A write that fails (a full disk) stops
the recording, never the watch: the error is logged once, kept in
:attr:`RecordingWriter.error`, and the entries that followed are counted.
"""

import base64
import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO, Callable, Optional, Union

from .._codec import SNAPSHOT_WORDS
from .._safety.files import owner_only
from .._safety.secrets import redact
from .._version import __version__
from .._wire.protocol import Cause, Outcome
from ..errors import ConfigurationError

__all__ = ["FORMAT_VERSION", "SCRUBS", "RecordingWriter"]

log = logging.getLogger("livecall.recording")

#: The version of the format this module writes: the header's ``livecall_recording``.
FORMAT_VERSION = 1
#: What ``scrub`` may take out of a recording, in the order the header lists them.
SCRUBS = ("phones", "text")
#: Who sent the first close frame, by why the connection ended; the other causes had no closing
#: handshake (a drop, an unanswered ping or close frame).
_CLOSED_BY = {
    Cause.SERVER_CLOSED: "server",
    Cause.CLIENT_CLOSED: "client",
    Cause.PROTOCOL_ERROR: "client",
    Cause.TOO_BIG: "client",
}
#: The close code of a close frame that had none (RFC 6455 7.1.5): written as null.
_NO_CODE = 1005

#: A phone number in running text: with a ``+`` (E.164, separators allowed), or ``(555) 123-4567``.
_PHONE_NUMBER = re.compile(
    r"\+\d(?:[ .()-]{0,2}\d){6,14}|(?<!\w)(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)"
)
#: Where a binary frame may hold a credential.
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]+")
#: What ``text`` scrubbing replaces: letters and digits of any script.
_WORD_CHARACTER = re.compile(r"[^\W_]")
#: Wire messages whose ``msg`` is the call's words (Hiya's transcript lines and screening summary).
_WORDS_IN_MSG = frozenset({"transcript", "event:end"})

Entry = dict[str, Any]
Change = Callable[[Optional[str], str], str]


class RecordingWriter:
    """A watch being written to a file in livecall's recording format (see :doc:`recording-format`).

    :meth:`~livecall.LiveClient.record` makes it, creating the file (readable by its
    owner only) and writing its header.  The watch goes on whatever happens
    to the file.
    """

    #: The file, as given.
    path: str
    #: What else is taken out of every frame: ``"phones"``, ``"text"``, as the header lists them.
    scrub: tuple[str, ...]
    #: The ``OSError`` that stopped the recording (a full disk); None while it is whole.
    error: Optional[OSError]
    #: Entries that were not written because of ``error``: the recording lacks that many at its end.
    unwritten: int

    def __init__(self, path: Union[str, "os.PathLike[str]"], provider: str, scrub: Iterable[str]):
        wanted = {scrub} if isinstance(scrub, str) else set(scrub)  # "phones" is one name, not six letters
        unknown = wanted - set(SCRUBS)
        if unknown:
            raise ConfigurationError(
                f"cannot scrub {', '.join(sorted(unknown))}: what can be scrubbed is {', '.join(SCRUBS)}"
            )
        self.path = os.fspath(path)
        self.scrub = tuple(name for name in SCRUBS if name in wanted)
        self.error = None
        self.unwritten = 0
        self._phones: dict[str, str] = {}
        self._start: Optional[float] = None  # when the first connection opened: the recording's clock
        self._last_t = 0.0
        self._conn = -1
        self._ended_at: Optional[float] = None  # the open connection's end, for a "lost" that follows
        self._written = 0  # bytes of whole lines: a torn one is cut back to here
        try:
            self._file: Optional[BinaryIO] = open(self.path, "wb", buffering=0, opener=owner_only)
        except OSError as error:
            why = error.strerror or error
            raise ConfigurationError(f"cannot write the recording {self.path!r}: {why}") from None
        header = {
            "livecall_recording": FORMAT_VERSION,
            "provider": provider,
            "livecall": __version__,
            "recorded_at": datetime.now(timezone.utc).isoformat(),
            "scrubbed": list(self.scrub),
        }
        self._write(header)

    # --- what the dispatcher thread reports, in order -----------------------------------------

    def opened(self, at: float, path: str) -> None:
        """A connection opened at ``at`` (``time.time()``), to a URL of ``path``."""
        if self._start is None:
            self._start = at
        self._conn += 1
        self._ended_at = None
        self._entry(at, "open", path=redact(path))

    def received(self, at: float, frame: Union[str, bytes]) -> None:
        """A message from the server, read at ``at``."""
        self._entry(at, "recv", **self._message(frame))

    def sent(self, at: float, message: Union[str, bytes]) -> None:
        """A message the client sent (Hiya's join and end requests)."""
        self._entry(at, "send", **self._message(message))

    def closed(self, at: float, outcome: Outcome) -> None:
        """The open connection ended at ``at``: a close entry if a close frame went either way.

        A connection that dropped, or whose ping or close frame went
        unanswered, had no closing handshake to replay: only the ``lost`` or
        ``end`` that follows says it ended.
        """
        self._ended_at = at
        by = _CLOSED_BY.get(outcome.cause)
        if by is not None:
            code = None if outcome.code == _NO_CODE else outcome.code
            self._entry(at, "close", by=by, code=code, reason=redact(outcome.reason))

    def lost(self, cause: str) -> None:
        """Another connection attempt follows the one that just ended, for ``cause``.

        Written only after a connection that opened: an attempt whose
        handshake failed left nothing to replay.
        """
        if self._ended_at is not None:
            self._entry(self._ended_at, "lost", cause=redact(cause))
            self._ended_at = None

    def ended(self, at: float, reason: str) -> None:
        """The watch is over, for ``reason`` (an ``EndReason`` value); the file is closed."""
        self._entry(at, "end", reason=reason)
        self.close()

    def close(self) -> None:
        """Close the file; nothing more is written (each line went out as it was written)."""
        opened, self._file = self._file, None
        if opened is not None:
            with contextlib.suppress(OSError):
                opened.close()

    # --- writing ----------------------------------------------------------------------------------

    def _entry(self, at: float, kind: str, **fields: Any) -> None:
        start = at if self._start is None else self._start
        self._last_t = max(self._last_t, round(at - start, 6))  # a wall clock set back: time stands still
        self._write({"t": self._last_t, "conn": max(self._conn, 0), "kind": kind, **fields})

    def _write(self, entry: Entry) -> None:
        """One whole line, or none: a line a failed write cut short is cut off the file again."""
        opened = self._file
        if opened is None:
            self.unwritten += 1
            return
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        left = memoryview(line)
        try:
            while left:
                left = left[opened.write(left) or 0 :]
        except OSError as error:
            self.unwritten += 1
            self.error = error
            log.error("the recording %s stopped: %s; the watch goes on", self.path, error.strerror or error)
            with contextlib.suppress(OSError):
                opened.truncate(self._written)
            self.close()
            return
        self._written += len(line)

    # --- scrubbing ----------------------------------------------------------------------------------

    def _message(self, message: Union[str, bytes]) -> Entry:
        """A message's field: ``text``, or ``binary`` in base64, with credentials blanked either way."""
        if isinstance(message, str):
            return {"text": self._text(message)}
        return {"binary": base64.b64encode(_redacted_bytes(message)).decode("ascii")}

    def _text(self, text: str) -> str:
        """A text frame or sent message as it is written: credentials blanked, then scrubbed.

        Blanked first, so that scrubbing cannot change a credential into a
        form ``redact()`` no longer knows.  A frame that is not JSON is kept
        as it came, blanked.
        """
        text = redact(text)
        if not self.scrub:
            return text
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return text
        if "text" in self.scrub:
            message = _without_words(message)
        if "phones" in self.scrub:
            message = _map_strings(message, self._phone)
        return json.dumps(message, ensure_ascii=False, separators=(",", ":"))

    def _phone(self, key: Optional[str], value: str) -> str:
        """A string with each phone number replaced by the number's placeholder.

        A value under a key naming a phone (``phone``, ``from_phone_number``)
        is one number when it holds a digit; ``anonymous`` and the like stay.
        """
        if key is not None and "phone" in key.lower() and any(c.isdigit() for c in value):
            return self._placeholder(value)
        return _PHONE_NUMBER.sub(lambda number: self._placeholder(number.group()), value)

    def _placeholder(self, number: str) -> str:
        """The same number (by its digits), the same placeholder throughout: +15550000001, +15550000002..."""
        digits = "".join(c for c in number if c.isdigit())
        placeholder = self._phones.get(digits)
        if placeholder is None:
            placeholder = self._phones[digits] = f"+1555{len(self._phones) + 1:07d}"
        return placeholder


def _redacted_bytes(frame: bytes) -> bytes:
    """A binary frame with credentials blanked in each run of printable ASCII, where a token would be:
    the other bytes are no letters, so they bound a secret as spaces do in text."""
    return _PRINTABLE_RUN.sub(lambda run: redact(run.group().decode("ascii")).encode("ascii"), frame)


def _x_out(_: Optional[str], text: str) -> str:
    """Each letter and digit an ``x``; spaces and punctuation kept, so lengths and shapes are too."""
    return _WORD_CHARACTER.sub("x", text)


def _without_words(message: Any) -> Any:
    """The message with the call's words x-ed out: Hiya's ``msg``, Phonic's conversation's words."""
    if not isinstance(message, dict):
        return message
    if message.get("type") in _WORDS_IN_MSG and isinstance(message.get("msg"), str):
        message["msg"] = _x_out(None, message["msg"])
    conversation = message.get("conversation")
    if isinstance(conversation, dict):
        _x_out_fields(conversation, "conversation")
        for item in _dicts(conversation.get("items")):
            _x_out_fields(item, "item")
            for call in _dicts(item.get("tool_calls")):
                _x_out_fields(call, "tool_call")
    return message


def _x_out_fields(value: dict[str, Any], level: str) -> None:
    for name in SNAPSHOT_WORDS[level]:
        if name in value:
            value[name] = _map_strings(value[name], _x_out)


def _dicts(values: Any) -> Iterator[dict[str, Any]]:
    return (value for value in values if isinstance(value, dict)) if isinstance(values, list) else iter(())


def _map_strings(value: Any, change: Change) -> Any:
    """``value`` with every string in it changed by ``change(key, string)``, keys kept.

    ``key`` is the name the string is under, None in a list.  In place and
    without recursion: a frame nested as deep as JSON allows costs no stack.
    """
    if isinstance(value, str):
        return change(None, value)
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            entries: Iterable[tuple[Any, Any]] = list(node.items())
        elif isinstance(node, list):
            entries = enumerate(node)
        else:
            continue
        for key, inner in entries:
            if isinstance(inner, str):
                node[key] = change(key if isinstance(key, str) else None, inner)
            else:
                pending.append(inner)
    return value
