"""The plugin of one held call that writes each of its events to the events stream."""

import json
from typing import TYPE_CHECKING, Optional

import attrs

import livecall
import livecall.observability

from ._keys import EventKeys
from ._limits import HeldLimits, Limit
from ._logs import log
from ._records import EventTexts
from ._stats import Stats

if TYPE_CHECKING:
    from ._pipeline import EventPipeline

__all__ = ["HANDED_OVER", "EventWriter", "Lease"]

#: Why the lease of a call this worker handed over (stopping, ``--drain handover``) is lost.
HANDED_OVER = "handed over to another worker"


@attrs.define(eq=False)
class Lease:
    """A request this worker holds: its fencing token, and the watch of its call."""

    request_id: str
    token: int
    deliveries: int
    keys: EventKeys
    client: Optional[livecall.LiveClient] = None
    #: Why the lease is lost (taken over, fenced, Redis unreachable), or None while held.
    lost: Optional[str] = None
    #: The call's time limits, if it has any; and the one that ended its watch, once one did.
    limits: Optional[HeldLimits] = None
    limit_reached: Optional[Limit] = None
    #: Whether this worker, draining, hands the call over: its writes are taken until the next
    #: holder writes, and a write refused after that is the handover done, not a loss.
    handing_over: bool = False

    @property
    def call_id(self) -> str:
        """The id the call's events carry on the stream, the same on every worker.

        The provider's own id where it has one that is not a secret (Phonic's
        conversation id); else the request's id stands in.
        """
        client = self.client
        if client is not None and client.provider.call_ids_shared:
            return client.call.id
        return self.request_id

    def fenced(self) -> None:
        """A write was refused: another worker holds the call now; the watch closes (quietly when
        it was being handed over: the settler says so)."""
        if self.handing_over:
            self.lose(HANDED_OVER)
        elif self.lose("another worker took it over (a write was fenced)"):
            log.warning("lost call %s (request %s): fenced", self.call_id, self.request_id)

    def lose(self, why: str) -> bool:
        """Mark the lease lost and close the watch; False when it already was."""
        if self.lost is not None:
            return False
        self.lost = why
        if self.client is not None:
            self.client.close(timeout=0)
        return True


class EventWriter:
    """Makes every event of one held call ready for the stream, in order: the client's own plugin.

    Each client gets its own writer (``plugins=[writer]``), so no lookup of
    the call's lease is needed.  On the call's dispatcher thread it makes
    the event's entry (its key, its JSON, its trace) and queues it for the
    worker's writer thread (:class:`EventPipeline`), which writes the queued
    events of every call, fenced and keyed, in pipelines, in the order they
    came.  A full queue makes the hook wait, so a slow Redis slows the watch
    down (the client's queue pushes back) rather than growing memory.

    The event's JSON is redacted as every other sink's is: a server that
    echoes a credential (the API key, the bearer or conversation token) must
    not put it on a stream that every consumer group reads; Phonic's
    presigned ``audio_url`` links are blanked too.  The record is built and
    serialised once (a Phonic snapshot's turns that did not change are not
    built again at all: ``_records``), and an event keyed by its content (a
    snapshot, which holds the whole conversation) is keyed from that JSON.

    The stream keeps what it is given, so a call whose owner asked for zero
    data retention (``call.zero_data_retention``) has its events written
    without words (``livecall.without_words``), unless ``keep_words`` (the
    worker's ``--keep-words``) says to keep them anyway.  Keys are made from
    the whole event, so workers agree on them whichever they write.
    """

    def __init__(self, writes: "EventPipeline", stats: Stats, lease: Lease, *, keep_words: bool = False):
        self._writes = writes
        self._stats = stats
        self._lease = lease
        self._keep_words = keep_words
        self._texts = EventTexts()

    @livecall.hookimpl
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        lease = self._lease
        if lease.lost is not None:
            return
        if isinstance(event, livecall.Reconnecting):
            self._stats.add("reconnects")
        if call.zero_data_retention and not self._keep_words:
            record = livecall.to_record(call, event)
            key = lease.keys.key(call, event, record)  # from the words: the same on every worker
            text = livecall.redact(json.dumps(livecall.without_words(record)))
        else:
            record, text = self._texts.make(call, event)
            key = lease.keys.key(call, event, record, text)
        self._writes.put(lease, key, text, livecall.observability.traceparent())
