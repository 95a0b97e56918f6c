"""Events from Phonic's snapshots: transcript lines, tool calls, the call's numbers.

Phonic never sends a line of speech on its own: every ``conversation-updated``
carries the whole conversation again.  The tracker matches each item of a
snapshot to a turn of the previous one, so each turn becomes a
:class:`~livecall.events.Transcript` when it first has words and again only
when those words change, and its tool calls become
:class:`~livecall.events.ToolCall` events when they appear or change.

Matching an item to a turn, first match wins, each turn taken at most once
per snapshot (so items repeating an id or index are told apart by order, and
none is re-emitted on every snapshot):

1. an item with an ``id``: the turn with that id, else a turn without id that
   had its ``item_idx`` (the id appeared late);
2. an item with only an ``item_idx``: a turn without id that had that index;
3. an item with neither: a turn with neither whose words were the same (it
   moved: an item before it was removed), else the one at its position.

Only the turns of the latest snapshot are remembered, so memory follows the
conversation's size; a turn that disappears and comes back starts afresh.
"""

from collections import deque
from collections.abc import Hashable, Iterable
from datetime import datetime
from typing import Any, Optional

from ..call import Call
from ..events import Conversation, ConversationItem, Event, Role, Transcript
from ._tool_calls import Fields, tool_call_events

__all__ = ["UNKNOWN_ROLE", "WITHHELD", "SnapshotTracker", "update_call"]

#: The role of a turn that names none: the server did not say who spoke.
UNKNOWN_ROLE = "unknown"
#: Phonic's ``from_phone_number`` for a caller who withheld their number.
WITHHELD = "anonymous"


class _Turn:
    """One item as the tracker knows it, from snapshot to snapshot."""

    __slots__ = ("key", "line_idx", "words", "item", "tool_calls")

    def __init__(self, item: ConversationItem, position: int) -> None:
        #: Its ``id``, else its ``item_idx`` (a str and an int never collide), else None.
        self.key: Optional[Hashable] = _key(item)
        #: The ``item_idx`` of every line of this turn, fixed when first seen.
        self.line_idx = position if item.item_idx is None else item.item_idx
        self.words: Optional[str] = None  # the words of the last line, None before the first
        self.item: Optional[ConversationItem] = None  # the item last seen (decoded once if unchanged)
        self.tool_calls: dict[Hashable, Fields] = {}

    @property
    def id(self) -> Optional[str]:
        return self.key if isinstance(self.key, str) else None


def _key(item: ConversationItem) -> Optional[Hashable]:
    return item.id if item.id is not None else item.item_idx


class _Matcher:
    """The previous snapshot's turns, looked up by key (id or index), words and position.

    Keys are nearly always unique: then one dict finds each turn, and queues
    of turns per key are built only when keys repeat.  The word and position
    lookups hold the turns without key, usually none.
    """

    def __init__(self, turns: list[_Turn]) -> None:
        self._taken: set[_Turn] = set()
        keyed = [turn for turn in turns if turn.key is not None]
        self._first = {turn.key: turn for turn in reversed(keyed)}
        self._repeated = (
            _queues((turn.key, turn) for turn in keyed) if len(self._first) < len(keyed) else None
        )
        anonymous = [(position, turn) for position, turn in enumerate(turns) if turn.key is None]
        self._by_words = _queues((turn.words, turn) for _, turn in anonymous if turn.words is not None)
        self._by_position = _queues(anonymous)

    def claim(self, item: ConversationItem, position: int) -> Optional[_Turn]:
        """The earlier turn ``item`` continues, taken for good; None for a new turn."""
        key = _key(item)
        if key is not None:
            turn = self._take_keyed(key)
            if turn is None and item.id is not None and item.item_idx is not None:
                turn = self._take_keyed(item.item_idx)  # a turn without id: the id appeared late
            return turn
        words = item.transcript_text
        turn = self._take(self._by_words, words) if words else None
        return turn or self._take(self._by_position, position)

    def _take_keyed(self, key: Hashable) -> Optional[_Turn]:
        if self._repeated is not None:
            return self._take(self._repeated, key)
        turn = self._first.get(key)
        if turn is None or turn in self._taken:
            return None
        self._taken.add(turn)
        return turn

    def _take(self, index: "dict[Any, deque[_Turn]]", key: Hashable) -> Optional[_Turn]:
        queue = index.get(key)
        while queue:
            turn = queue.popleft()
            if turn not in self._taken:
                self._taken.add(turn)
                return turn
        return None


def _queues(pairs: Iterable[tuple[Any, _Turn]]) -> "dict[Any, deque[_Turn]]":
    """The turns under each key, in conversation order."""
    queues: dict[Any, deque[_Turn]] = {}
    for key, turn in pairs:
        queues.setdefault(key, deque()).append(turn)
    return queues


class SnapshotTracker:
    """Turns each snapshot into the events it adds, in conversation order.

    Keep one per watch, across reconnects: the full snapshot a reconnect brings
    then emits nothing that was already emitted.  For each item, its line (if
    its words are new) comes first, then its tool calls.  Not thread-safe: the
    watch's dispatcher thread alone feeds it.
    """

    def __init__(self) -> None:
        self._turns: list[_Turn] = []

    def new_events(self, conversation: Conversation, received_at: datetime) -> list[Event]:
        """The transcript lines and tool calls this snapshot adds."""
        matcher = _Matcher(self._turns)
        turns: list[_Turn] = []
        events: list[Event] = []
        for position, item in enumerate(conversation.items):
            turn = matcher.claim(item, position) or _Turn(item, position)
            turns.append(turn)
            if item is turn.item:  # the decoder's cache: the same wire item as last time
                continue
            turn.item = item
            if turn.id is None and item.id is not None:
                turn.key = item.id  # its lines keep their item_idx; from now on they carry the id
            line = _line(turn, item, received_at)
            if line is not None:
                events.append(line)
            calls, turn.tool_calls = tool_call_events(
                turn.tool_calls, item, turn.line_idx, turn.id, received_at
            )
            events.extend(calls)
        self._turns = turns
        return events


def _line(turn: _Turn, item: ConversationItem, received_at: datetime) -> Optional[Transcript]:
    words = item.transcript_text
    if not words or words == turn.words:
        return None
    revised = turn.words is not None
    turn.words = words
    return Transcript(
        text=words,
        role=_role(item.role),
        item_idx=turn.line_idx,
        item_id=turn.id,
        revised=revised,
        redacted=item.transcript_redacted,
        received_at=received_at,
    )


def _role(role: Optional[str]) -> str:
    """A :class:`Role` when the server's value is a known one, its string otherwise."""
    if role is None:
        return UNKNOWN_ROLE
    return Role.known(role) or role


def update_call(call: Call, conversation: Conversation) -> None:
    """What a snapshot says about the call: its numbers and direction, once sent,
    and whether its owner asked for zero data retention.

    ``phone`` is the other party's number: the callee of an outbound call, the
    caller otherwise; None while it is withheld.  ``zero_data_retention`` only
    ever turns on: a later snapshot without the policy, or with an odd one,
    does not let sinks start keeping words of a call whose owner said not to.
    """
    if conversation.zero_data_retention:
        call.zero_data_retention = True
    for name, value in (
        ("from_phone", conversation.from_phone),
        ("to_phone", conversation.to_phone),
        ("direction", conversation.direction),
    ):
        if value is not None:
            setattr(call, name, value)
    other = call.to_phone if call.direction == "outbound" else call.from_phone
    call.phone = None if other is None or other.lower() == WITHHELD else other
