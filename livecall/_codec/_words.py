"""A record without the conversation's words, for sinks that keep what they receive.

A Phonic conversation whose owner asked for zero data retention should not
have its words kept by livecall's sinks either; its turns still happened, so
the record keeps its shape: the event, ids, roles, timings and indexes stay,
and only the values that carry words are emptied.
"""

from collections.abc import Mapping
from typing import Any

__all__ = ["SNAPSHOT_WORDS", "without_words"]

#: Per record kind, the fields that carry words and what they become: a transcript's
#: ``text`` stays a string; a frame livecall could not read may hold anything.
_EVENT_WORDS: dict[str, dict[str, Any]] = {
    "transcript": {"text": ""},
    "tool_call": {"arguments": None, "result": None},
    "decode_error": {"raw": None},
    "unknown": {"raw": None},
}
#: A snapshot's fields that carry words, at the conversation's level, an item's and a tool call's.
_CONVERSATION_WORDS = (
    "text",
    "live_transcript",
    "post_call_transcript",
    "retranscribed_text",
    "summary",
    "welcome_message",
)
_ITEM_WORDS = (
    "text",
    "live_transcript",
    "post_call_transcript",
    "redacted_transcript",
    "retranscribed_text",
    "transcript_corrections",
)
_TOOL_CALL_WORDS = ("request_body", "response_body", "query_params")
#: The same fields as they come on Phonic's wire, by where they are in a conversation: for code
#: that removes words from the messages themselves rather than from records.
SNAPSHOT_WORDS = {"conversation": _CONVERSATION_WORDS, "item": _ITEM_WORDS, "tool_call": _TOOL_CALL_WORDS}


def without_words(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` (a :func:`~livecall.to_record` record) with no word of the conversation in it.

    Emptied: a transcript's ``text`` (``""``); a tool call's ``arguments``
    and ``result``; a snapshot's ``text``, ``live_transcript``,
    ``post_call_transcript``, ``retranscribed_text``, ``summary`` and
    ``welcome_message``, the transcripts, ``redacted_transcript`` and
    ``transcript_corrections`` of each item, and the ``request_body``,
    ``response_body`` and ``query_params`` of each item's tool calls (``null``,
    where they hold something); and the
    ``raw`` of an undecodable frame or an unknown message (``null``), which
    may hold anything.  Everything else is kept, so a consumer still sees
    each turn: who spoke, when, for how long, its ``item_idx`` and ``id``.

    A new record: ``record`` and the values it shares with its event are
    left as they are.
    """
    kind = record.get("event", "")
    blanks = _EVENT_WORDS.get(kind, {})
    stripped = {**record, **{name: value for name, value in blanks.items() if name in record}}
    conversation = record.get("conversation")
    if kind == "conversation_updated" and isinstance(conversation, Mapping):
        stripped["conversation"] = _conversation(conversation)
    return stripped


def _conversation(conversation: Mapping[str, Any]) -> dict[str, Any]:
    stripped = _emptied(conversation, _CONVERSATION_WORDS)
    items = conversation.get("items")
    if isinstance(items, list):
        stripped["items"] = [_item(item) if isinstance(item, Mapping) else item for item in items]
    return stripped


def _item(item: Mapping[str, Any]) -> dict[str, Any]:
    stripped = _emptied(item, _ITEM_WORDS)
    calls = item.get("tool_calls")
    if isinstance(calls, list):
        stripped["tool_calls"] = [
            _emptied(call, _TOOL_CALL_WORDS) if isinstance(call, Mapping) else call for call in calls
        ]
    return stripped


def _emptied(value: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``value`` whose ``names`` that hold something (not null, empty or zero) are null."""
    return {**value, **{name: None for name in names if value.get(name)}}
