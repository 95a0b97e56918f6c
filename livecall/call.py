"""The call being watched, as plugins see it."""

import enum
import uuid
from datetime import datetime
from typing import Optional

import attrs

from .events import Gap, utcnow

__all__ = ["Call", "EndReason"]


class EndReason(str, enum.Enum):
    """Why a watch stopped; passed to ``livecall_call_end``."""

    ENDED = "ended"  #: the provider said the call is over (or closed with 1000)
    CLOSED = "closed"  #: ``close()`` was called
    AUTH_FAILED = "auth_failed"  #: credentials refused; never retried
    GAVE_UP = "gave_up"  #: ``max_retries`` reconnects failed
    ERROR = "error"  #: an unexpected close code or an internal failure

    def __str__(self) -> str:
        return self.value


def new_call_id() -> str:
    """A watch id for providers whose only call identifier is a secret (Hiya)."""
    return "call_" + uuid.uuid4().hex[:16]


@attrs.define(eq=False)
class Call:
    """What is known about the call being watched.

    ``id`` is never a credential: Phonic's conversation id, or for Hiya an id
    made up per watch (its conversation token is a secret).  The numbers fill
    in when the provider tells them.  ``phone`` is the number of the person
    on the line with the agent: Hiya's caller; for Phonic the caller of an
    inbound call and the callee of an outbound one (the caller when
    ``direction`` is unknown), and ``None`` while that number is withheld
    (``anonymous``).  ``from_phone`` and ``to_phone`` (Phonic) are the numbers
    as sent; ``direction`` is ``inbound`` or ``outbound`` when the provider
    says (Phonic's ``origin``).  ``zero_data_retention`` (Phonic) is true
    once a snapshot said that the conversation's owner asked Phonic to keep
    nothing of it, and stays true for the rest of the call (a later snapshot
    cannot take the request back): a sink that keeps what it receives keeps
    no words of such a call (``to_record(call, event,
    keep_words=not call.zero_data_retention)``).  ``gaps`` holds the
    watch's :class:`~livecall.Gap` events so far, oldest first, one per
    outage between two connections, each added as it is dispatched: the call
    that ``livecall_call_end`` receives lists them all.  It is a tuple,
    replaced whole as a gap is added, so any thread may read it.  One object
    lives for the whole watch, across reconnects, so plugins may key their
    state on it.
    """

    provider: str
    id: str
    started_at: datetime = attrs.field(factory=utcnow)
    phone: Optional[str] = None
    ended_at: Optional[datetime] = None
    end_reason: Optional[EndReason] = None
    from_phone: Optional[str] = None
    to_phone: Optional[str] = None
    direction: Optional[str] = None
    zero_data_retention: bool = False
    gaps: tuple[Gap, ...] = ()
