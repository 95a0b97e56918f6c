"""Events to the JSON-lines record: the contract scripts and plugins rely on."""

import json
from typing import Any

from ..call import Call
from ..events import Event
from ._converter import CONVERTER

__all__ = ["to_json", "to_record"]


def to_record(call: Call, event: Event) -> dict[str, Any]:
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

    Nested JSON values (``raw``, ``extra`` fields) are the event's own, not
    copies: treat the record as read-only.
    """
    record = {"event": event.kind, "provider": call.provider, "call_id": call.id}
    fields = CONVERTER.unstructure(event)
    extra = fields.pop("extra")
    record.update(fields)
    record["extra"] = extra
    return record


def to_json(call: Call, event: Event) -> str:
    """The record as one line of JSON (no trailing newline), ASCII-only so it writes anywhere."""
    return json.dumps(to_record(call, event))
