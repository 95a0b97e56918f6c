"""Typed events: one frozen class per server message of both providers.

Events are what plugins and callbacks receive.  They are built by the codec
from the wire format; the wire names stay on the wire (``msg`` becomes
``text`` or ``message``, ``ackId`` becomes ``ack_id``).
"""

import enum
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, Optional, Union

import attrs

__all__ = [
    "Ack",
    "CallEnded",
    "CallStarted",
    "Conversation",
    "ConversationEnded",
    "ConversationItem",
    "ConversationUpdated",
    "DecodeError",
    "Event",
    "Reconnecting",
    "Role",
    "ScreeningEnded",
    "ServerError",
    "Transcript",
    "UnknownMessage",
]


def utcnow() -> datetime:
    """Now, in UTC: the default of every timestamp livecall makes itself."""
    return datetime.now(timezone.utc)


class Role(str, enum.Enum):
    """Who spoke a transcript line; a ``str``, so it compares equal to the wire value."""

    #: The AI voice agent: Hiya's call assistant screening the call, or Phonic's agent.
    ASSISTANT = "assistant"
    #: The other party: Hiya's caller, the person the call assistant screens.
    OTHER = "other"
    #: The person the call is for: Hiya's user once put through, Phonic's caller.
    USER = "user"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def known(cls, value: object) -> "Optional[Role]":
        """The member whose value is ``value``, or None: lenient and strict decoders both ask."""
        return _ROLES.get(value) if value.__class__ is str else None


_ROLES = {role.value: role for role in Role}


@attrs.frozen
class Event:
    """Base of every event.

    ``received_at`` is when the frame came off the socket (UTC), not when a hook
    ran: with a slow plugin the two can be far apart.  ``kind`` is the event's
    stable snake_case name, used in JSON lines and webhooks.
    """

    kind: ClassVar[str] = "event"
    received_at: datetime = attrs.field(factory=utcnow, kw_only=True, eq=False, repr=False)


# --- Hiya -------------------------------------------------------------------


@attrs.frozen
class CallStarted(Event):
    """Hiya ``event:start``: the call began; ``phone`` is E.164."""

    kind: ClassVar[str] = "call_started"
    phone: str
    timestamp: datetime


@attrs.frozen
class Transcript(Event):
    """A line of what was said, from either provider.

    Hiya sends these directly (``role`` is ``assistant``, ``other`` or ``user``);
    for Phonic the client derives one per conversation item, again whenever
    the item's text changes, with ``item_idx`` set and ``offset`` left out.
    ``role`` is a :class:`Role` when the value is known, else the server's string.
    """

    kind: ClassVar[str] = "transcript"
    text: str
    role: str
    offset: Optional[float] = None
    item_idx: Optional[int] = None


@attrs.frozen
class ScreeningEnded(Event):
    """Hiya ``event:end``: the screening phase is over (the call may go on)."""

    kind: ClassVar[str] = "screening_ended"
    message: str


@attrs.frozen
class CallEnded(Event):
    """Hiya ``event:callEnd``: the call is over; the client stops after it."""

    kind: ClassVar[str] = "call_ended"
    timestamp: datetime


@attrs.frozen
class Ack(Event):
    """Hiya ``ack``: the server accepted the client message whose ``id`` is ``ack_id``."""

    kind: ClassVar[str] = "ack"
    ack_id: str


@attrs.frozen
class ServerError(Event):
    """An ``error`` message from either provider, with the server's description."""

    kind: ClassVar[str] = "error"
    message: str


# --- Phonic -----------------------------------------------------------------


@attrs.frozen
class ConversationItem:
    """One turn of a Phonic conversation.

    Only the fields livecall reads are typed; everything else the server sent
    is kept in ``extra`` so nothing is lost.  ``role`` is usually ``user`` or
    ``assistant`` but any string is accepted.
    """

    id: Optional[str] = None
    item_idx: Optional[int] = None
    role: Optional[str] = None
    text: Optional[str] = None
    live_transcript: Optional[str] = None
    post_call_transcript: Optional[str] = None
    started_at: Optional[datetime] = None
    duration_ms: Optional[float] = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def transcript_text(self) -> Optional[str]:
        """The turn's words: ``text``, else ``live_transcript``, else ``post_call_transcript``."""
        return self.text or self.live_transcript or self.post_call_transcript


@attrs.frozen
class Conversation:
    """A full snapshot of a Phonic conversation, as the REST API describes it.

    Servers send two shapes (the spec's, and the SDK's with ``call_info``);
    both decode here, unknown fields land in ``extra``.
    """

    id: str
    items: tuple[ConversationItem, ...] = ()
    agent: Optional[dict[str, Any]] = None
    project_id: Optional[str] = None
    external_id: Optional[str] = None
    origin: Optional[str] = None
    text: Optional[str] = None
    is_live: Optional[bool] = None
    started_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None
    duration_ms: Optional[float] = None
    from_phone_number: Optional[str] = None
    to_phone_number: Optional[str] = None
    call_info: Optional[dict[str, Any]] = None
    end_reason: Optional[str] = None
    ended_by: Optional[str] = None
    live_transcript: Optional[str] = None
    post_call_transcript: Optional[str] = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def caller_phone(self) -> Optional[str]:
        """The caller's number, from either of the two shapes servers send."""
        if self.from_phone_number:
            return self.from_phone_number
        return (self.call_info or {}).get("from_phone_number")


@attrs.frozen
class ConversationUpdated(Event):
    """Phonic ``conversation-updated``: the whole conversation as it stands now."""

    kind: ClassVar[str] = "conversation_updated"
    conversation: Conversation


@attrs.frozen
class ConversationEnded(Event):
    """Phonic ``conversation-ended``: the conversation is over; the client closes with 1000."""

    kind: ClassVar[str] = "conversation_ended"


# --- Neither: what the stream carried that is not a known message ------------


@attrs.frozen
class UnknownMessage(Event):
    """A well-formed message whose ``type`` this version does not know; kept whole."""

    kind: ClassVar[str] = "unknown"
    type: str
    raw: Mapping[str, Any]


@attrs.frozen
class DecodeError(Event):
    """A frame that could not be decoded; ``reason`` says why, ``raw`` is the frame."""

    kind: ClassVar[str] = "decode_error"
    reason: str
    raw: Union[str, bytes]


# --- Lifecycle ----------------------------------------------------------------


@attrs.frozen
class Reconnecting(Event):
    """The connection was lost and the client will try again after ``delay`` seconds.

    ``attempt`` counts from 1 since the last good connection.  Hiya does not
    replay what was said meanwhile; Phonic's next snapshot fills the gap.
    """

    kind: ClassVar[str] = "reconnecting"
    attempt: int
    delay: float
    reason: str
