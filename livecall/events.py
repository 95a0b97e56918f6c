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
    "Gap",
    "Reconnecting",
    "Role",
    "ScreeningEnded",
    "ServerError",
    "ToolCall",
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

    ``extra`` holds the keys of the server's message that no field holds, as
    sent, so that nothing the server sent is lost (a ``received_at`` the server
    sent included).  It is empty for events livecall makes itself, and for
    :class:`UnknownMessage` and :class:`DecodeError`, whose ``raw`` is the
    whole message.
    """

    kind: ClassVar[str] = "event"
    received_at: datetime = attrs.field(factory=utcnow, kw_only=True, eq=False, repr=False)
    extra: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True, repr=False)


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

    Hiya sends these directly; for Phonic the client derives one per
    conversation item, again whenever the item's words change, with
    ``item_idx`` set and ``offset`` left out.  ``role`` is a :class:`Role` when
    the value is known, else the server's string, as sent.

    Phonic lines only: ``item_idx`` stays the same for every line of one item
    (its identity, kept across revisions and reconnects); ``item_id`` is the
    item's ``id`` once the server has sent one; ``revised`` says the line
    replaces the item's earlier line; ``redacted`` says the words are the
    item's ``redacted_transcript``.  A revised and redacted line means words
    already delivered were redacted: scrub them wherever they were stored.
    """

    kind: ClassVar[str] = "transcript"
    text: str
    role: str
    offset: Optional[float] = None
    item_idx: Optional[int] = None
    item_id: Optional[str] = None
    revised: bool = False
    redacted: bool = False


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
    is kept in ``extra`` so nothing is lost (``tool_calls`` and
    ``tool_call_ids`` among them).  ``role`` is usually ``user`` or
    ``assistant`` but any string is accepted.  ``live_transcript`` is null in
    a turn the server has redacted; its words are then in
    ``redacted_transcript``.

    ``wire_fields`` names the typed fields the server sent, null ones
    included, so that records write back exactly those; ``None`` (an item
    made in code) writes the fields that are not ``None``.
    """

    id: Optional[str] = None
    item_idx: Optional[int] = None
    role: Optional[str] = None
    text: Optional[str] = None
    live_transcript: Optional[str] = None
    post_call_transcript: Optional[str] = None
    redacted_transcript: Optional[str] = None
    started_at: Optional[datetime] = None
    duration_ms: Optional[float] = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    wire_fields: Optional[frozenset[str]] = attrs.field(default=None, eq=False, repr=False)

    @property
    def transcript_text(self) -> Optional[str]:
        """The turn's words: ``text``, else ``live_transcript``, else
        ``post_call_transcript``, else ``redacted_transcript``."""
        return self.text or self.live_transcript or self.post_call_transcript or self.redacted_transcript

    @property
    def transcript_redacted(self) -> bool:
        """Whether ``transcript_text`` is the redacted transcript: no other words are left."""
        return bool(self.redacted_transcript) and not (
            self.text or self.live_transcript or self.post_call_transcript
        )


@attrs.frozen
class Conversation:
    """A full snapshot of a Phonic conversation, as the REST API describes it.

    Servers send two shapes (the spec's, and the SDK's with ``call_info``);
    both decode here, unknown fields land in ``extra``.  Only ``id`` and
    ``items`` must be well formed: another typed field whose value has an
    unexpected type, or a timestamp that cannot be converted to UTC, is left
    ``None`` and kept as sent in ``extra`` (with one warning per field per
    call), so one odd field never costs a snapshot.  ``wire_fields`` is as for
    :class:`ConversationItem`.
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
    data_retention_policy: Optional[dict[str, Any]] = None
    deletion_info: Optional[dict[str, Any]] = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    wire_fields: Optional[frozenset[str]] = attrs.field(default=None, eq=False, repr=False)

    @property
    def zero_data_retention(self) -> bool:
        """Whether the conversation's owner asked Phonic to keep nothing of it:
        ``data_retention_policy.zero_data_retention`` is ``true``.

        Any other value, or no policy, is False: the policy's owner decides,
        and only an explicit ``true`` says what they decided.  Sinks that keep
        what they receive read it from :attr:`livecall.Call.zero_data_retention`,
        which stays true for the rest of the call once a snapshot said so.
        """
        policy = self.data_retention_policy
        return policy is not None and policy.get("zero_data_retention") is True

    @property
    def from_phone(self) -> Optional[str]:
        """The number that placed the call: ``call_info.from_phone_number``, else
        ``from_phone_number``, as sent (``anonymous`` when the caller withheld it)."""
        return self._number("from_phone_number")

    @property
    def to_phone(self) -> Optional[str]:
        """The number that was called: ``call_info.to_phone_number``, else ``to_phone_number``."""
        return self._number("to_phone_number")

    @property
    def direction(self) -> Optional[str]:
        """``inbound`` or ``outbound`` when ``origin`` says so, else None."""
        return _DIRECTIONS.get(self.origin) if self.origin is not None else None

    def _number(self, name: str) -> Optional[str]:
        nested = self.call_info.get(name) if self.call_info is not None else None
        if nested.__class__ is str and nested:
            return nested
        return getattr(self, name) or None


#: Phonic's ``origin`` values that say which way the call went.
_DIRECTIONS = {
    "inbound": "inbound",
    "telephony-inbound": "inbound",
    "outbound": "outbound",
    "telephony-outbound": "outbound",
}


@attrs.frozen
class ToolCall(Event):
    """A tool call of a Phonic turn, when it first appears and whenever it changes.

    Derived from snapshots like transcript lines, from an item's
    ``tool_calls`` (the SDK's shape: ``tool.name``, ``request_body``,
    ``response_body``, ``response_status_code``, ``error_message``,
    ``timed_out``) or ``tool_call_ids`` (the spec's: ids only).  Values are
    as sent, of any JSON type; what a tool call's shape lacks is ``None``.
    ``revised`` says an earlier event of the same call (same ``item_idx`` and
    ``tool_call_id``) is superseded: its status or result changed.  The
    endpoint's URL and headers are left out: they may hold the credentials of
    the tool's own service.
    """

    kind: ClassVar[str] = "tool_call"
    tool_call_id: Optional[str]
    item_idx: int
    item_id: Optional[str] = None
    name: Any = None
    arguments: Any = None
    result: Any = None
    status_code: Any = None
    error: Any = None
    timed_out: Any = None
    revised: bool = False


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


@attrs.frozen
class Gap(Event):
    """The connection was lost and another one opened: the stream has a hole from
    ``lost_at`` to ``reopened_at``.

    Made by the client, not sent by a provider: one per outage, when the next
    connection opens, however many attempts that took (each was a
    :class:`Reconnecting` event), and before anything the new connection
    brings.  A watch that gives up or is closed during the outage has no gap,
    and neither has a first connection that took several attempts.

    ``lost_at`` is when the open connection was lost (the first loss of the
    outage, not its last failed attempt), ``reopened_at`` when the next
    connection opened; both in UTC, and ``received_at`` is ``reopened_at``.
    ``reason`` is why it was lost, as the first ``Reconnecting`` of the
    outage said.  ``replayed`` says whether the provider sends the missed
    state again: Phonic does (its next snapshot holds every turn, so nothing
    is missing once that snapshot has come); Hiya does not (what was said
    meanwhile is lost).  The call lists its gaps in :attr:`livecall.Call.gaps`.
    """

    kind: ClassVar[str] = "gap"
    lost_at: datetime
    reopened_at: datetime
    reason: str
    replayed: bool
