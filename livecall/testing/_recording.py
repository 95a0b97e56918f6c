"""Reading a recording of a watch (format version 1): JSON lines, a header, then entries.

The recorder flushes each line as it writes it, so a killed recorder leaves at
most a torn last line: that one is skipped with a warning, and the rest of the
recording plays.  Anything else that is not what version 1 says is refused
with the line number, since replaying a guess would mislead whoever debugs
with it.
"""

import base64
import binascii
import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any, Optional, Union

import attrs

__all__ = ["FORMAT_VERSION", "Entry", "Recording", "RecordingError", "read_recording"]

FORMAT_VERSION = 1
PROVIDERS = ("hiya", "phonic")
SCRUBBED = ("phones", "text")
#: Each kind of entry and the fields it must have, with their types.
KINDS: Mapping[str, Mapping[str, Any]] = {
    "open": {"path": str},
    "recv": {},  # "text" or "binary", checked on their own
    "send": {"text": str},
    "close": {"by": str, "code": (int, type(None)), "reason": str},
    "lost": {"cause": str},
    "end": {"reason": str},
}
log = logging.getLogger("livecall.testing.replay")


class RecordingError(ValueError):
    """A file that is not a recording livecall can replay: the message says which line and why."""


@attrs.frozen
class Entry:
    """One line after the header: what happened at ``t`` seconds on connection ``conn``.

    ``fields`` are the kind's own (``text``, ``code``...); a ``recv`` entry's
    ``payload`` is its frame, ``str`` for text and ``bytes`` for binary.
    """

    t: float
    conn: int
    kind: str
    fields: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def payload(self) -> Union[str, bytes]:
        if "binary" in self.fields:
            return base64.b64decode(self.fields["binary"])
        return str(self.fields["text"])


@attrs.frozen
class Recording:
    """A recording as read: its header's facts and its entries, in order."""

    provider: str
    livecall_version: str
    recorded_at: str
    scrubbed: tuple[str, ...]
    entries: tuple[Entry, ...]

    @property
    def frames(self) -> int:
        """How many frames the server sent (``recv`` entries): what chaos points count."""
        return sum(entry.kind == "recv" for entry in self.entries)

    @property
    def connections(self) -> int:
        return sum(entry.kind == "open" for entry in self.entries)

    def first_path(self) -> Optional[str]:
        """The URL path of the first connection, if it was recorded."""
        return next((str(e.fields["path"]) for e in self.entries if e.kind == "open"), None)


def read_recording(path: Union[str, "os.PathLike[str]"]) -> Recording:
    """The recording in the file at ``path``; :class:`RecordingError` if it is not one."""
    try:
        with open(path, "rb") as file:
            lines = file.read().split(b"\n")
    except OSError as error:
        raise RecordingError(f"cannot read the recording {os.fspath(path)!r}: {error.strerror}") from None
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise RecordingError(f"{os.fspath(path)!r} is empty, not a livecall recording")
    header = _header(_parse(lines[0], 1, torn_ok=False), path)
    entries = []
    for number, line in enumerate(lines[1:], start=2):
        value = _parse(line, number, torn_ok=number == len(lines))
        if value is not None:
            entries.append(_entry(value, number))
    return Recording(entries=tuple(entries), **header)


def _parse(line: bytes, number: int, *, torn_ok: bool) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except ValueError:
        if torn_ok:
            log.warning(
                "recording line %d is cut short (the recorder was stopped while writing): skipped", number
            )
            return None
        raise RecordingError(f"recording line {number} is not a JSON value") from None


def _header(value: Any, path: Union[str, "os.PathLike[str]"]) -> dict[str, Any]:
    if not isinstance(value, dict) or "livecall_recording" not in value:
        raise RecordingError(f"{os.fspath(path)!r} is not a livecall recording: its first line is no header")
    version = value["livecall_recording"]
    if version != FORMAT_VERSION:
        raise RecordingError(
            f"{os.fspath(path)!r} is a recording of format {version!r}; "
            f"this livecall reads format {FORMAT_VERSION}"
        )
    provider, scrubbed = value.get("provider"), value.get("scrubbed", [])
    if provider not in PROVIDERS:
        raise RecordingError(f"the recording's provider is {provider!r}, not one of {', '.join(PROVIDERS)}")
    if not (isinstance(scrubbed, list) and set(scrubbed) <= set(SCRUBBED)):
        raise RecordingError(
            f"the recording's header has scrubbed={scrubbed!r}: expected a list of {SCRUBBED}"
        )
    return dict(
        provider=provider,
        livecall_version=str(value.get("livecall", "")),
        recorded_at=str(value.get("recorded_at", "")),
        scrubbed=tuple(scrubbed),
    )


def _entry(value: Any, number: int) -> Entry:
    def bad(why: str) -> RecordingError:
        return RecordingError(f"recording line {number}: {why}")

    if not isinstance(value, dict):
        raise bad("not a JSON object")
    t, conn, kind = value.get("t"), value.get("conn"), value.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise bad(f"unknown kind {kind!r} (version {FORMAT_VERSION} has {', '.join(KINDS)})")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise bad(f"'t' must be a number of seconds, not {t!r}")
    if isinstance(conn, bool) or not isinstance(conn, int) or conn < 0:
        raise bad(f"'conn' must be a connection number, not {conn!r}")
    fields = {key: item for key, item in value.items() if key not in ("t", "conn", "kind")}
    for name, wanted in KINDS[kind].items():
        if not isinstance(fields.get(name, ...), wanted):
            raise bad(f"a {kind!r} entry needs {name!r} of type {_type_names(wanted)}")
    if kind == "recv":
        _check_frame(fields, bad)
    return Entry(float(t), conn, kind, fields)


def _check_frame(fields: Mapping[str, Any], bad: Any) -> None:
    if isinstance(fields.get("text"), str) == isinstance(fields.get("binary"), str):
        raise bad("a 'recv' entry needs either 'text' or 'binary' (base64), as a string")
    if "binary" in fields:
        try:
            base64.b64decode(fields["binary"], validate=True)
        except binascii.Error:
            raise bad("'binary' is not base64") from None


def _type_names(wanted: Any) -> str:
    types = wanted if isinstance(wanted, tuple) else (wanted,)
    return " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
