"""Frames to events: one decoder per watch, and it never raises.

Whatever the server sends (bad JSON, bad UTF-8, a binary frame, a known
message with a field missing or of the wrong type) comes back as a
:class:`~livecall.events.DecodeError` event carrying the frame, so one bad
frame neither kills the reader thread nor goes unseen.
"""

import json
import logging
import math
import re
from collections.abc import Hashable, Sequence
from datetime import datetime
from json.scanner import make_scanner
from typing import Any, Optional, Union

import attrs
from cattrs import transform_error
from cattrs.errors import AttributeValidationNote, BaseValidationError
from cattrs.v import format_exception

from .._safety.secrets import remember_audio_url
from ..events import Conversation, ConversationItem, ConversationUpdated, DecodeError, Event, UnknownMessage
from ._converter import (
    NEEDED_FIELDS,
    RECEIVED_AT,
    WIRE_NAMES,
    PhonicMessage,
    union_hook,
    wire_types,
)
from ._values import Invalid, json_type, shallow

__all__ = ["Decoder", "PhonicDecoder"]

log = logging.getLogger("livecall.decoder")

Frame = Union[bytes, str]
_ABSENT = object()
#: Per Phonic model, the typed fields read leniently (whose odd values land in ``extra``).
_LENIENT = {
    cls: frozenset(field.name for field in attrs.fields(cls)) - needed - {"extra", "wire_fields"}
    for cls, needed in NEEDED_FIELDS.items()
}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if math.isinf(value):
        raise ValueError(f"number out of range: {number[:20]}")
    return value


# NaN, Infinity and numbers too big for a float are refused here, so every
# decoded value (and every record) is plain JSON.
_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
_loads = _JSON.decode
# What decode() runs, without its whitespace handling.  (typeshed declares the argument as the
# scanner class itself; it is the decoder whose settings the scanner follows.)
_scan = make_scanner(_JSON)  # type: ignore[arg-type]


def _loads_fast(text: str) -> Any:
    """``_loads(text)``, without its two whitespace regexes when no whitespace surrounds the value.

    A frame is one compact JSON object, and a transcript is about a hundred
    bytes: the scanner alone is nearly twice as fast as ``decode()``.  Any
    other text (leading or trailing whitespace, a bad document) goes to
    ``decode()``, whose result and error messages are the reference.
    """
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _loads(text)
    return value if end == len(text) else _loads(text)


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
            return UnknownMessage(type=kind, raw=shallow(message), received_at=received_at)
        sent_received_at = message.get(RECEIVED_AT, _ABSENT)
        message[RECEIVED_AT] = received_at
        event = self._structure(message, self._union)
        if sent_received_at is not _ABSENT:  # the server's own, kept like any other key
            event.extra[RECEIVED_AT] = sent_received_at
        return event


class PhonicDecoder(Decoder):
    """Phonic's decoder reuses the items of earlier snapshots, and reports odd fields once.

    Every update resends the whole conversation, which grows to hundreds of
    items.  An item whose wire dict equals the one it was decoded from last
    time (a C-speed comparison) is the same object again, not a new decode:
    the cached items are swapped into the parsed message, and the converter
    passes them through.

    A field read leniently whose value could not be read is kept in ``extra``;
    every snapshot repeats it, so it is logged once per field per watch.

    Each ``audio_url`` of a new or changed item (and of the conversation) is
    remembered as a secret before the snapshot is decoded, so ``redact()``
    blanks it even if the snapshot turns out undecodable; items from the
    cache had theirs remembered when first seen.
    """

    def __init__(self) -> None:
        super().__init__(PhonicMessage)
        self._items: dict[Hashable, tuple] = {}  # item key -> (wire dict, ConversationItem)
        self._reported: set[str] = set()

    def _event(self, message: Any, received_at: datetime) -> Event:
        raw_items = _snapshot_items(message)
        keys: list[Hashable] = []
        items: list[Any] = []  # each a cached ConversationItem, or a wire dict to decode
        if raw_items is not None:
            keys = [_key(raw, position) for position, raw in enumerate(raw_items)]
            cached = map(self._items.get, keys)
            items = [
                hit[1] if hit is not None and hit[0] == raw else raw for hit, raw in zip(cached, raw_items)
            ]
            message["conversation"]["items"] = items
            _remember_audio_urls(message["conversation"], items)
        event = super()._event(message, received_at)
        if type(event) is ConversationUpdated:
            conversation = event.conversation
            if raw_items is not None:
                self._items = dict(zip(keys, zip(raw_items, conversation.items)))
            fresh = [item for item, given in zip(conversation.items, items) if given.__class__ is dict]
            self._report_unread(conversation, fresh if raw_items is not None else conversation.items)
        return event

    def _report_unread(self, conversation: Conversation, fresh_items: Sequence[ConversationItem]) -> None:
        """Warn of each field kept in ``extra`` the first time it is seen in this watch;
        items from the cache were checked when first decoded."""
        odd = [(f"conversation.{name}", conversation.extra[name]) for name in _lenient(conversation)]
        for item in fresh_items:
            odd.extend((f"conversation.items[].{name}", item.extra[name]) for name in _lenient(item))
        for path, value in odd:
            if path not in self._reported:
                self._reported.add(path)
                log.warning("phonic %s: unexpected %s value, kept as sent in extra", path, json_type(value))


def _remember_audio_urls(conversation: dict[str, Any], items: list[Any]) -> None:
    """The links of the conversation and of its items not taken from the cache (wire dicts)."""
    for model in (conversation, *items):
        if model.__class__ is dict:
            url = model.get("audio_url")
            if url.__class__ is str:
                remember_audio_url(url)


def _lenient(model: Union[Conversation, ConversationItem]) -> "frozenset[str]":
    """The typed fields of ``model`` whose values could not be read: they are in its ``extra``."""
    return _LENIENT[type(model)] & model.extra.keys()


def _parse(data: Frame, binary: bool) -> Any:
    if binary:
        raise Invalid("binary frame: the protocol sends JSON text")
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"invalid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        message = _loads_fast(text)
    except (ValueError, RecursionError) as exc:
        raise Invalid(f"invalid JSON: {exc}") from None
    escaped = "\\" in text and _SURROGATE_ESCAPE.search(text)
    given = data.__class__ is str and not text.isascii() and not _is_text(text)  # ASCII holds none
    if escaped or given:
        _replace_lone_surrogates(message)
    return message


#: A surrogate escape (``\ud800``): a pair, or half of one.  (A literal prefix
#: keeps the search fast: a pattern with the surrogate range in it is not.)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_text(text: str) -> bool:
    """Whether ``text`` (given as ``str``, not bytes) is free of surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: After parsing, a surrogate left in a string is a lone one: pairs became one character.
_SURROGATE = re.compile("[\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def _replace_lone_surrogates(message: Any) -> None:
    """Lone surrogates in any string (keys too) become U+FFFD, in place.

    JSON lets a string escape half a UTF-16 pair (``"\\ud800"``).  Python keeps
    it as a lone surrogate, which no UTF-8 file, terminal or request body can
    take: the event would vanish from every sink that writes it.  Replaced,
    the words around it are kept, and the replacement character shows where
    the server sent something that is not text.
    """
    pending = [message]
    while pending:
        container = pending.pop()
        if container.__class__ is list:
            entries: Any = enumerate(container)
        elif container.__class__ is dict:
            entries = list(container.items())
        else:
            continue
        for key, value in entries:
            if value.__class__ is str:
                container[key] = _SURROGATE.sub(_REPLACEMENT, value)
            else:
                pending.append(value)
            if key.__class__ is str and _SURROGATE.search(key):
                container[_SURROGATE.sub(_REPLACEMENT, key)] = container.pop(key)


def _snapshot_items(message: Any) -> Optional[list[Any]]:
    """The wire items of a well-formed ``conversation-updated``, else None."""
    if message.__class__ is not dict or message.get("type") != "conversation-updated":
        return None
    conversation = message.get("conversation")
    items = conversation.get("items") if conversation.__class__ is dict else None
    return items if items.__class__ is list else None


def _key(raw: Any, position: int) -> Hashable:
    """The cache key of a wire item: its ``id``, else its ``item_idx``, else its position.

    Raw values (the cache is keyed before validating), so anything but a string
    id or an integer index falls through; the position is wrapped in a tuple so
    it never collides with an ``item_idx``.  A duplicate key only costs a cache
    miss: a hit needs the wire dicts to be equal.
    """
    if raw.__class__ is not dict:
        return (position,)
    item_id, item_idx = raw.get("id"), raw.get("item_idx")
    if item_id.__class__ is str:
        return item_id
    if item_idx.__class__ is int:
        return item_idx
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
    if isinstance(data, str):
        return data
    try:
        return bytes(data) if binary else data.decode("utf-8")
    except UnicodeDecodeError:
        return bytes(data)
