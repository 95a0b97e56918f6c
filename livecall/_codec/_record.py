"""Events to the JSON-lines record: the contract scripts and plugins rely on."""

import json
import re
from typing import Any

from .._safety.secrets import MASK
from ..call import Call
from ..events import ConversationUpdated, DecodeError, Event
from ._converter import CONVERTER
from ._words import without_words

__all__ = ["to_json", "to_record"]

#: ``"audio_url": "..."`` in a frame's JSON text, the string's escapes included.
_AUDIO_URL_IN_TEXT = re.compile(r'("audio_url"\s*:\s*")(?:[^"\\]|\\.)*(")')


def to_record(
    call: Call, event: Event, *, keep_audio_urls: bool = False, keep_words: bool = True
) -> dict[str, Any]:
    """The event as a JSON-ready dict, built by the codec's converter.

    Keys: ``event`` (the event's ``kind``), ``provider``, ``call_id``,
    ``received_at``, then the event's fields by their snake_case names
    (``text``, ``role``, ``offset``, ``item_idx``, ``message``, ``ack_id``...),
    and last ``extra``: the keys of the server's message that no field holds.

    - Timestamps are ISO 8601 in UTC with microseconds and ``+00:00``
      (``2025-07-30T23:45:00.500000+00:00``), which every Python reads back.
    - ``role`` is a plain string; absent optional fields are ``null``.
    - A DecodeError's ``raw`` is the frame's text, or ``{"base64": "..."}``
      for a binary or non-UTF-8 frame; an UnknownMessage's ``raw`` is the
      parsed message.
    - ``conversation`` is in the wire's shape: every key the server sent
      (nulls, empty lists and unknown keys included) and no other.
    - Phonic's ``audio_url`` (of the conversation and of each item, and in a
      DecodeError's frame text) is ``"***"``, the mark ``redact()`` leaves:
      a presigned link lets anyone holding it hear the turn for a day.
      ``keep_audio_urls=True`` keeps the links, for output that needs them.
      Belt and braces: these fields are blanked by name, and ``redact()``
      blanks by value every link the decoder has read, in any text.
    - ``keep_words=False`` leaves the conversation's words out, as
      :func:`without_words` does: what a sink that keeps records passes for a
      call whose owner asked for zero data retention
      (``keep_words=not call.zero_data_retention``).

    Nested JSON values (``raw``, ``extra`` fields) are the event's own, not
    copies: treat the record as read-only.
    """
    record = {"event": event.kind, "provider": call.provider, "call_id": call.id}
    fields = CONVERTER.unstructure(event)
    extra = fields.pop("extra")
    record.update(fields)
    record["extra"] = extra
    if not keep_audio_urls:
        _blank_audio_urls(event, record)
    return record if keep_words else without_words(record)


def to_json(call: Call, event: Event, *, keep_audio_urls: bool = False, keep_words: bool = True) -> str:
    """The record as one line of JSON (no trailing newline), ASCII-only so it writes anywhere;
    the options are :func:`to_record`'s."""
    return json.dumps(to_record(call, event, keep_audio_urls=keep_audio_urls, keep_words=keep_words))


def _blank_audio_urls(event: Event, record: dict[str, Any]) -> None:
    """Every ``audio_url`` of the record, by name, in place.

    Only dicts the converter made for this record are changed: the
    conversation's, and each item's (the event's own ``extra`` values are not).
    """
    if type(event) is ConversationUpdated:
        conversation = record["conversation"]
        for model in (conversation, *conversation.get("items", ())):  # made in code: perhaps no items
            if model.get("audio_url") is not None:
                model["audio_url"] = MASK
    elif type(event) is DecodeError and isinstance(record["raw"], str):
        record["raw"] = _AUDIO_URL_IN_TEXT.sub(rf"\1{MASK}\2", record["raw"])
