"""Each event's ``key``: the same on every worker that sees the same thing from the provider.

The events stream takes an event only once per key and call, so a worker
taking a call over writes nothing that its predecessor wrote.  Keys come from
the provider's data:

- a Phonic transcript line: its conversation item (``id``, else index) and
  its text (a ``Transcript`` carries the index, or the item's position; the
  id comes from the snapshot dispatched just before its lines);
- a Hiya transcript line with an ``offset``: type, role, offset and text;
- the provider's other messages (a snapshot, a call's start and end, an
  error): a digest of the event's content, its arrival time left out;
- what one worker alone saw (a reconnect, an ack, a Hiya line without an
  offset, an undecodable frame): unique to the watch, so always written.
"""

import hashlib
import itertools
import json
from typing import Any, Optional

import livecall

__all__ = ["EventKeys", "keyed_from_text"]

#: Events from the provider whose content identifies them.
_BY_CONTENT = (
    livecall.ConversationUpdated,
    livecall.ConversationEnded,
    livecall.CallStarted,
    livecall.CallEnded,
    livecall.ScreeningEnded,
    livecall.ServerError,
)
#: Fields of a record that differ between workers seeing the same message.
_LOCAL_FIELDS = ("received_at", "call_id")


def _digest(*parts: Any) -> str:
    """A digest of the parts with their secrets blanked, as the events stream holds them: a key
    never derives from a credential, and two workers holding different bearer tokens that the
    server echoes make the same key."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(livecall.redact(text).encode()).hexdigest()[:32]


def _content_digest(record: dict[str, Any], text: Optional[str]) -> str:
    """The digest of a record's content, its local fields left out.

    From ``text``, the record's JSON as the events stream gets it (redacted)
    when the caller has it: the local fields are cut out of it rather than
    the whole record serialised once more (a Phonic snapshot holds the whole
    conversation).  ``to_record`` puts them right after the event's kind and
    provider; text laid out otherwise is not used.
    """
    if text is not None:
        head, cut = _local_cut(record)
        if text.startswith(cut):
            return hashlib.sha256(f"{head}{text[len(cut) :]}".encode()).hexdigest()[:32]
    content = {name: value for name, value in record.items() if name not in _LOCAL_FIELDS}
    return _digest(content)


def _local_cut(record: dict[str, Any]) -> tuple[str, str]:
    """The start of a record's JSON before its local fields, and up to their end."""
    head = json.dumps({name: record.get(name) for name in ("event", "provider")})[:-1]
    local = json.dumps({name: record.get(name) for name in ("call_id", "received_at")})
    return head, f"{head}, {local[1:-1]}"


def keyed_from_text(record: dict[str, Any], text: str) -> bool:
    """Whether an event keyed by its content is keyed from ``text`` (its record's JSON), rather
    than from ``record`` itself (which then must hold the whole event)."""
    return text.startswith(_local_cut(record)[1])


class EventKeys:
    """Keys for the events of one watch; ``watch`` tells this watch from any other."""

    def __init__(self, watch: str):
        self._watch = watch
        self._counter = itertools.count(1)
        self._item_ids: dict[int, str] = {}  # a Phonic item's index (or position) -> its id

    def key(
        self, call: livecall.Call, event: livecall.Event, record: dict[str, Any], text: Optional[str] = None
    ) -> str:
        """The event's key; called for each event of the watch in order, on its dispatcher thread.

        ``text``: ``record`` as the events stream gets it (its JSON, redacted), if the caller has it.
        """
        if isinstance(event, livecall.ConversationUpdated):
            self._remember_ids(event.conversation)
        if isinstance(event, livecall.Transcript):
            if event.item_idx is not None:  # a Phonic line
                item = self._item_ids.get(event.item_idx, event.item_idx)
                return f"item:{_digest(item, event.text)}"
            if event.offset is not None:
                return f"line:{_digest(event.role, event.offset, event.text)}"
        elif isinstance(event, _BY_CONTENT):
            return f"{event.kind}:{_content_digest(record, text)}"
        return f"watch:{self._watch}:{next(self._counter)}"

    def _remember_ids(self, conversation: livecall.Conversation) -> None:
        """The ids of the snapshot's items, by the index its transcript lines carry."""
        self._item_ids = {
            position if item.item_idx is None else item.item_idx: item.id
            for position, item in enumerate(conversation.items)
            if item.id
        }
