"""Frames to events: one decoder per watch, and it never raises.

Whatever the server sends (bad JSON, bad UTF-8, a binary frame, a known
message with a field missing or of the wrong type) comes back as a
:class:`~livecall.events.DecodeError` event carrying the frame, so one bad
frame neither kills the reader thread nor goes unseen.
"""

import json
import math
from datetime import datetime
from typing import Any, Optional, Union

from cattrs import transform_error
from cattrs.errors import AttributeValidationNote, BaseValidationError
from cattrs.v import format_exception

from .._snapshots import item_key
from ..events import DecodeError, Event, UnknownMessage
from ._converter import (
    RECEIVED_AT,
    WIRE_NAMES,
    PhonicMessage,
    union_hook,
    wire_types,
)
from ._values import Invalid, json_type

__all__ = ["Decoder", "PhonicDecoder"]

Frame = Union[bytes, str]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if math.isinf(value):
        raise ValueError(f"number out of range: {number[:20]}")
    return value


# NaN, Infinity and numbers too big for a float are refused here, so every
# decoded value (and every record) is plain JSON.
_loads = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite).decode


class Decoder:
    """Decodes one provider's frames, each into exactly one event."""

    def __init__(self, union: Any) -> None:
        self._union = union
        self._structure = union_hook(union)
        self._types = frozenset(wire_types(union))

    def decode(self, data: Frame, received_at: datetime, binary: bool = False) -> Event:
        """The event for one frame; ``received_at`` is when it came off the socket.

        ``data`` is the frame as websocket-client returns it (``str`` is
        accepted too).  Never raises: anything undecodable is a DecodeError.
        """
        try:
            return self._event(_parse(data, binary), received_at)
        except Exception as exc:  # the reader thread must survive any frame
            return DecodeError(reason=_reason(exc), raw=_raw(data, binary), received_at=received_at)

    def _event(self, message: Any, received_at: datetime) -> Event:
        if message.__class__ is not dict:
            raise Invalid(f"expected a JSON object, got {json_type(message)}")
        kind = message.get("type")
        if kind.__class__ is not str:
            raise Invalid(f"expected a string 'type', got {json_type(kind)}")
        if kind not in self._types:
            return UnknownMessage(type=kind, raw=message, received_at=received_at)
        message[RECEIVED_AT] = received_at
        return self._structure(message, self._union)


class PhonicDecoder(Decoder):
    """Phonic's decoder reuses the items of earlier snapshots.

    Every update resends the whole conversation, which grows to hundreds of
    items.  An item whose wire dict equals the one it was decoded from last
    time (a C-speed comparison) is the same object again, not a new decode:
    the cached items are swapped into the parsed message, and the converter
    passes them through.
    """

    def __init__(self) -> None:
        super().__init__(PhonicMessage)
        self._items: dict[Any, tuple] = {}  # item key -> (wire dict, ConversationItem)

    def _event(self, message: Any, received_at: datetime) -> Event:
        raw_items = _snapshot_items(message)
        if raw_items is None:
            return super()._event(message, received_at)
        keys = [_key(raw, position) for position, raw in enumerate(raw_items)]
        cached = map(self._items.get, keys)
        message["conversation"]["items"] = [
            hit[1] if hit is not None and hit[0] == raw else raw for hit, raw in zip(cached, raw_items)
        ]
        event = super()._event(message, received_at)
        self._items = dict(zip(keys, zip(raw_items, event.conversation.items)))
        return event


def _parse(data: Frame, binary: bool) -> Any:
    if binary:
        raise Invalid("binary frame: the protocol sends JSON text")
    try:
        text = data if data.__class__ is str else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"invalid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return _loads(text)
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"invalid JSON: {exc}") from None


def _snapshot_items(message: Any) -> Optional[list[Any]]:
    """The wire items of a well-formed ``conversation-updated``, else None."""
    if message.__class__ is not dict or message.get("type") != "conversation-updated":
        return None
    conversation = message.get("conversation")
    items = conversation.get("items") if conversation.__class__ is dict else None
    return items if items.__class__ is list else None


def _key(raw: Any, position: int) -> Any:
    if raw.__class__ is dict:
        return item_key(raw.get("id"), raw.get("item_idx"), position)
    return (position,)


def _reason(exc: BaseException) -> str:
    """What went wrong; for a field, with its path: ``expected string, got number @ $.msg``."""
    if isinstance(exc, BaseValidationError):
        _name_wire_fields(exc)
        return "; ".join(transform_error(exc, format_exception=_format))
    if isinstance(exc, Invalid):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def _format(exc: BaseException, type_: Any) -> str:
    return str(exc) if isinstance(exc, Invalid) else format_exception(exc, type_)


def _name_wire_fields(exc: BaseValidationError) -> None:
    """cattrs names the attribute (``text``); the frame has the wire's name (``msg``)."""
    renames = WIRE_NAMES.get(exc.cl, {})
    for error in exc.exceptions:
        error.__notes__ = [
            AttributeValidationNote(note, renames[note.name], note.type)
            if isinstance(note, AttributeValidationNote) and note.name in renames
            else note
            for note in getattr(error, "__notes__", ())
        ]


def _raw(data: Frame, binary: bool) -> Frame:
    """The frame as DecodeError keeps it: the text, or the bytes if binary or not UTF-8."""
    if data.__class__ is str:
        return data
    try:
        return bytes(data) if binary else data.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(data)
