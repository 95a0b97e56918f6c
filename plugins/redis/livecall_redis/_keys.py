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
from typing import Any

import livecall

__all__ = ["EventKeys"]

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


class EventKeys:
    """Keys for the events of one watch; ``watch`` tells this watch from any other."""

    def __init__(self, watch: str):
        self._watch = watch
        self._counter = itertools.count(1)
        self._item_ids: dict[int, str] = {}  # a Phonic item's index (or position) -> its id

    def key(self, call: livecall.Call, event: livecall.Event, record: dict[str, Any]) -> str:
        """The event's key; called for each event of the watch in order, on its dispatcher thread."""
        if isinstance(event, livecall.ConversationUpdated):
            self._remember_ids(event.conversation)
        if isinstance(event, livecall.Transcript):
            if event.item_idx is not None:  # a Phonic line
                item = self._item_ids.get(event.item_idx, event.item_idx)
                return f"item:{_digest(item, event.text)}"
            if event.offset is not None:
                return f"line:{_digest(event.role, event.offset, event.text)}"
        elif isinstance(event, _BY_CONTENT):
            content = {name: value for name, value in record.items() if name not in _LOCAL_FIELDS}
            return f"{event.kind}:{_digest(content)}"
        return f"watch:{self._watch}:{next(self._counter)}"

    def _remember_ids(self, conversation: livecall.Conversation) -> None:
        """The ids of the snapshot's items, by the index its transcript lines carry."""
        self._item_ids = {
            position if item.item_idx is None else item.item_idx: item.id
            for position, item in enumerate(conversation.items)
            if item.id
        }
