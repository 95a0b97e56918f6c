"""Transcript lines from Phonic's snapshots.

Phonic never sends a line of speech on its own: every ``conversation-updated``
carries the whole conversation again.  The tracker remembers what it already
emitted, so each turn becomes a :class:`~livecall.events.Transcript` when it
first has words and again only when those words change.
"""

from collections.abc import Hashable
from datetime import datetime
from typing import Optional

from .events import Conversation, Role, Transcript

__all__ = ["UNKNOWN_ROLE", "TranscriptTracker", "item_key"]

#: The role of a turn that names none: the server did not say who spoke.
UNKNOWN_ROLE = "unknown"


def item_key(item_id: object, item_idx: object, position: int) -> Hashable:
    """Which turn this is across snapshots: its ``id``, else its ``item_idx``, else its position.

    Takes the raw values too (the decoder keys its cache before validating), so
    anything but a string id or an integer index falls through.  The position
    is wrapped in a tuple so it never collides with an ``item_idx``.
    """
    if item_id.__class__ is str:
        return item_id
    if item_idx.__class__ is int:
        return item_idx
    return (position,)


class TranscriptTracker:
    """Emits each turn's words once, and again each time they change.

    Keep one per watch, across reconnects: the full snapshot a reconnect brings
    then emits nothing that was already emitted.  Each line's ``role`` is a
    :class:`Role` when the server's value is a known one, the server's string
    otherwise, and ``"unknown"`` for a turn without a role; ``item_idx`` is the
    turn's own, or its position when it has none.  Not thread-safe: the watch's
    dispatcher thread alone feeds it.
    """

    def __init__(self) -> None:
        self._said: dict[Hashable, str] = {}

    def new_lines(self, conversation: Conversation, received_at: datetime) -> list[Transcript]:
        """The transcript lines this snapshot adds, in conversation order."""
        said = self._said
        lines = []
        for position, item in enumerate(conversation.items):
            text = item.transcript_text
            if not text:
                continue
            key = item_key(item.id, item.item_idx, position)
            if said.get(key) == text:
                continue
            said[key] = text
            lines.append(
                Transcript(
                    text=text,
                    role=_role(item.role),
                    item_idx=position if item.item_idx is None else item.item_idx,
                    received_at=received_at,
                )
            )
        return lines


def _role(role: Optional[str]) -> str:
    if role is None:
        return UNKNOWN_ROLE
    return Role.known(role) or role
