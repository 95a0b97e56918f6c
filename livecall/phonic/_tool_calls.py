"""A Phonic turn's tool calls, read from the item as sent.

Two shapes are in the wild: the SDK's ``tool_calls`` (objects with ``id``,
``tool {id, name}``, ``request_body``, ``response_body``...) and the spec
example's ``tool_call_ids`` (ids only).  Both are read from the item's
``extra`` without any check, since nothing about them is guaranteed; an entry
that is neither an object nor a string id is left to the snapshot's record.
"""

from collections.abc import Hashable
from datetime import datetime
from typing import Any, Optional

from ..events import ConversationItem, ToolCall

__all__ = ["Fields", "tool_call_events"]

#: What a tool call event reports, by the SDK field it comes from.
_SDK_FIELDS = {
    "result": "response_body",
    "status_code": "response_status_code",
    "error": "error_message",
    "timed_out": "timed_out",
}
Fields = dict[str, Any]


def tool_call_events(
    seen: dict[Hashable, Fields],
    item: ConversationItem,
    item_idx: int,
    item_id: Optional[str],
    received_at: datetime,
) -> tuple[list[ToolCall], dict[Hashable, Fields]]:
    """Events for the item's tool calls that are new or changed since ``seen``,
    and what is seen now (the calls of this snapshot only)."""
    now: dict[Hashable, Fields] = {}
    events = []
    for key, fields in _tool_calls(item):
        now[key] = fields
        before = seen.get(key)
        if before == fields:
            continue
        events.append(
            ToolCall(
                item_idx=item_idx,
                item_id=item_id,
                revised=before is not None,
                received_at=received_at,
                **fields,
            )
        )
    return events, now


def _tool_calls(item: ConversationItem) -> list[tuple[Hashable, Fields]]:
    """``(key, fields)`` per tool call; the key is the id and how many times it came before."""
    entries: list[Optional[Fields]] = []
    calls = item.extra.get("tool_calls")
    if calls.__class__ is list:
        entries.extend(_from_sdk(call) if call.__class__ is dict else _from_id(call) for call in calls)
    ids = item.extra.get("tool_call_ids")
    if ids.__class__ is list:
        entries.extend(_from_id(call_id) for call_id in ids)
    keyed: list[tuple[Hashable, Fields]] = []
    counts: dict[Any, int] = {}
    for fields in entries:
        if fields is None:
            continue
        call_id = fields["tool_call_id"]
        occurrence = counts[call_id] = counts.get(call_id, -1) + 1
        keyed.append(((call_id, occurrence), fields))
    return keyed


def _from_sdk(call: dict[str, Any]) -> Fields:
    tool = call.get("tool")
    call_id = call.get("id")
    arguments = call.get("request_body")
    return {
        "tool_call_id": call_id if call_id.__class__ is str else None,
        "name": tool.get("name") if tool.__class__ is dict else None,
        "arguments": call.get("query_params") if arguments is None else arguments,
        **{field: call.get(wire) for field, wire in _SDK_FIELDS.items()},
    }


def _from_id(call_id: Any) -> Optional[Fields]:
    return {"tool_call_id": call_id} if call_id.__class__ is str else None
