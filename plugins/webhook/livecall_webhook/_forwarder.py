"""The plugin proper: a queue between the hooks and one delivering thread, spooled to disk."""

import collections
import json
import logging
import threading
import time
from typing import Any, Optional

import attrs

import livecall
import livecall.observability

from ._dead_letter import DEFAULT_PATH, DeadLetterFile
from ._lines import Message, body_start, encode
from ._metrics import families
from ._sender import Failure, Sender
from ._signing import new_message_id
from ._spool import Spool, recover

__all__ = ["DEFAULT_QUEUE_BYTES", "WebhookForwarder"]

log = logging.getLogger("livecall.webhook")

DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
#: How often a waiting ``close()`` looks whether it was cut short.
_POLL = 0.1


@attrs.frozen
class _Delivery:
    """An event on its way, held once: its request body is cut out of its line when it is sent,
    unless the body holds words the line leaves out (``sent``)."""

    call_id: str
    kind: str
    message_id: str
    #: The sealed dead-letter line, written ahead to the spool; the body is a part of it.
    line: bytes = attrs.field(repr=False)
    body_start: int
    #: The request body when it is not the line's: the words of a call that keeps none on disk.
    sent: Optional[bytes] = attrs.field(default=None, repr=False)
    #: The W3C trace context of the event's span, sent as the ``traceparent`` header (tracing on).
    traceparent: Optional[str] = None

    @property
    def body(self) -> bytes:
        if self.sent is not None:
            return self.sent
        return self.line[self.body_start : -len(b"}\n")]

    @property
    def size(self) -> int:
        """The bytes it holds in the queue."""
        return len(self.line) + (len(self.sent) if self.sent is not None else 0)


class WebhookForwarder:
    """POSTs every event as its JSON-lines record, in order, from a background thread.

    The hook only writes the event ahead to a spool file and queues it, so a
    slow or unreachable target never holds up the watch or the other
    plugins, and a killed process loses nothing (see ``_spool``).  One
    thread sends, one event at a time, which keeps each call's events in
    order.  Nothing is dropped without a trace: an event that is refused,
    runs out of retries or finds the queue full (``queue_size`` events
    waiting, or ``queue_bytes`` bytes of events waiting or being sent, each
    held once) goes to the dead-letter file, and the events after it go on
    (``livecall webhook-replay`` sends it later).  ``close()`` waits for the
    queue to empty, within a bound that ``cut_short()`` ends early,
    and puts what is left there too.

    Bodies are redacted with ``livecall.redact()``: a server that echoes a
    token in an ``error`` message or a close reason does not get it posted,
    and Phonic's presigned ``audio_url`` links are blanked.

    The spool and the dead-letter file keep what they are given, so for a
    call whose owner asked for zero data retention (``call.zero_data_retention``)
    their lines hold the event without words (``livecall.without_words``),
    and so does a replay of them; the request sent now still carries the
    words, since forwarding them is not keeping them.  ``keep_words=True``
    (``--webhook-keep-words``) keeps the words on disk too.

    Delivery is at least once: an event whose answer timed out may have
    arrived and is sent again.  It carries the same ``webhook-id`` every
    time, replays included, for receivers that must not see duplicates.
    """

    def __init__(
        self,
        sender: Sender,
        dead_letter: str = DEFAULT_PATH,
        *,
        queue_size: int = 1000,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        keep_words: bool = False,
    ):
        if queue_size < 1 or queue_bytes < 1:
            raise livecall.ConfigurationError("the webhook queue size and bytes must be 1 or more")
        self.sender = sender
        self.dead_letter = DeadLetterFile(dead_letter)
        #: Events a killed run had left undone, moved to the dead-letter file on start.
        self.recovered = _recover(dead_letter)
        try:
            self._spool = Spool(dead_letter)
        except OSError as error:
            raise livecall.ConfigurationError(
                f"the webhook spool cannot be created beside {dead_letter!r}: {error.strerror or error}"
            ) from None
        self.delivered = 0
        #: Events refused by the target, or out of retries (they go to the dead-letter file).
        self.failed = 0
        #: Events put in the dead-letter file untried, for want of time at exit.
        self.unsent = 0
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self._keep_words = keep_words
        self._waiting: collections.deque[_Delivery] = collections.deque()
        #: Bytes of the events waiting and the one being sent: all the queue holds.
        self._held_bytes = 0
        self._idle = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._pending = 0
        self._current: Optional[_Delivery] = None
        self._abandoned = False
        self._overflowing = False
        self._cut = False
        self._worker = threading.Thread(target=self._run, name="livecall-webhook", daemon=True)
        self._worker.start()

    @livecall.hookimpl
    def livecall_event(self, call, event):
        record = livecall.to_record(call, event)
        body = _body(record)
        kept = body
        if call.zero_data_retention and not self._keep_words:
            kept = _body(livecall.without_words(record))
        message = Message(new_message_id(), kept)
        line = encode(message, self.sender.key)
        sent = body if kept != body else None
        traceparent = livecall.observability.traceparent()
        self._submit(
            _Delivery(call.id, event.kind, message.id, line, body_start(line, message), sent, traceparent)
        )

    def close(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for pending deliveries, then dead-letter the rest.

        The request in flight at the deadline gets its own timeout to finish,
        unless ``cut_short()`` was called.
        """
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending and not self._cut and time.monotonic() < end:
                self._idle.wait(min(end - time.monotonic(), _POLL))
            self._stop.set()
            self._idle.notify_all()
        grace_end = time.monotonic() + self.sender.timeout + 1.0
        while self._worker.is_alive() and not self._cut and time.monotonic() < grace_end:
            self._worker.join(_POLL)
        if self._worker.is_alive():
            self._abandon()
        self.sender.close()
        self.dead_letter.close()
        self._spool.close(keep=bool(self.dead_letter.unwritten))
        if self.unsent:
            log.warning(
                "%d events were not sent before the drain %s; kept in %s",
                self.unsent,
                "was cut short" if self._cut else "timeout ran out",
                self.dead_letter.path,
            )
        log.info("%d events delivered to %s, %d not", self.delivered, self.sender.safe_url, self.undelivered)

    def cut_short(self) -> None:
        """End ``close()``'s wait now: what is still queued goes to the dead-letter file untried.

        Safe to call from a signal handler: it only sets a flag, which a
        waiting ``close()`` looks at every tenth of a second.
        """
        self._cut = True

    def metrics(self) -> list[livecall.observability.MetricFamily]:
        """Its deliveries by outcome and its queue, for ``livecall.observability.add_metrics_source``."""
        return families(self)

    @property
    def pending(self) -> int:
        """Events accepted and neither delivered nor dead-lettered yet."""
        return self._pending

    @property
    def was_cut_short(self) -> bool:
        return self._cut

    @property
    def undelivered(self) -> int:
        return self.dead_letter.written + self.dead_letter.unwritten

    def __repr__(self) -> str:
        counts = f"delivered={self.delivered} undelivered={self.undelivered}"
        return f"<WebhookForwarder {self.sender.safe_url} {counts}>"

    def _submit(self, delivery: _Delivery) -> None:
        with self._idle:
            if self._stop.is_set():
                self._give_up(delivery, "it came after close()")
                return
            size = delivery.size
            full = len(self._waiting) >= self.queue_size
            if full or (self._pending and self._held_bytes + size > self.queue_bytes):
                if not self._overflowing:
                    log.warning(
                        "the webhook queue is full (%d events, %d bytes): events go straight to %s "
                        "until it has room",
                        len(self._waiting),
                        self._held_bytes,
                        self.dead_letter.path,
                    )
                self._overflowing = True
                self.dead_letter.append(delivery.line)
                return
            self._spool.add(delivery.line)
            self._overflowing = False
            self._waiting.append(delivery)
            self._held_bytes += size
            self._pending += 1
            self._idle.notify_all()

    def _run(self) -> None:
        while True:
            with self._idle:
                self._idle.wait_for(lambda: self._waiting or self._stop.is_set())
                if self._abandoned or not self._waiting:
                    return
                delivery = self._waiting.popleft()
                if self._stop.is_set():
                    self._keep_unsent(delivery)
                    self._done(delivery)
                    continue
                self._current = delivery
            self._spool.sync()
            failure = self._send(delivery)
            with self._idle:
                if self._abandoned:  # close() stopped waiting for this thread and kept the event
                    return
                self._current = None
                if failure is None:
                    self.delivered += 1
                    self._spool.done(delivery.message_id)
                else:
                    self.failed += 1
                    self._give_up(delivery, failure.reason)
                self._done(delivery)

    def _send(self, delivery: _Delivery) -> Optional[Failure]:
        try:
            return self.sender.send(
                delivery.body, self._stop, message_id=delivery.message_id, traceparent=delivery.traceparent
            )
        except Exception as error:  # a bug here must not end the thread and strand the queue
            log.exception("sending event %s of call %s failed", delivery.kind, delivery.call_id)
            return Failure(f"could not send: {type(error).__name__}", permanent=True)

    def _done(self, delivery: _Delivery) -> None:
        """The event is delivered or dead-lettered: the queue no longer holds it."""
        self._pending -= 1
        self._held_bytes -= delivery.size
        if not self._pending:
            self._spool.empty_if_large()
        self._idle.notify_all()

    def _abandon(self) -> None:
        """The worker is stuck in a request, or the drain was cut: keep every event left, send no more."""
        with self._idle:
            self._abandoned = True
            left = [self._current] if self._current is not None else []
            while self._waiting:
                left.append(self._waiting.popleft())
            for delivery in left:
                self._keep_unsent(delivery)
            self._idle.notify_all()

    def _keep_unsent(self, delivery: _Delivery) -> None:
        self.unsent += 1
        self._to_dead_letter(delivery)

    def _give_up(self, delivery: _Delivery, reason: str) -> None:
        log.warning("event %s of call %s not delivered: %s", delivery.kind, delivery.call_id, reason)
        self._to_dead_letter(delivery)

    def _to_dead_letter(self, delivery: _Delivery) -> None:
        """Dead-letter the event; only then may the spool forget it."""
        if self.dead_letter.append(delivery.line):
            self._spool.done(delivery.message_id)


def _body(record: dict[str, Any]) -> bytes:
    """A request body: the record's JSON line, credentials and known audio links blanked."""
    return livecall.redact(json.dumps(record)).encode("utf-8")


def _recover(dead_letter: str) -> int:
    """Move what killed runs left in their spools to the dead-letter file, counted apart from this run's."""
    target = DeadLetterFile(dead_letter)
    try:
        return recover(target)
    finally:
        target.close()
