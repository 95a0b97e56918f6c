"""The plugin proper: a queue between the hooks and one delivering thread."""

import logging
import queue
import threading
import time
from typing import Optional

import attrs

import livecall

from ._dead_letter import DEFAULT_PATH, DeadLetterFile
from ._sender import Failure, Sender

__all__ = ["WebhookForwarder"]

log = logging.getLogger("livecall.webhook")


@attrs.frozen
class _Delivery:
    call_id: str
    kind: str
    body: bytes = attrs.field(repr=False)


class WebhookForwarder:
    """POSTs every event as its JSON-lines record, in order, from a background thread.

    The hook only queues the body, so a slow or unreachable target never
    holds up the watch or the other plugins.  One thread sends, one event
    at a time, which keeps each call's events in order.  Nothing is dropped
    without a trace: an event that is refused, runs out of retries or finds
    the queue full goes to the dead-letter file, and the events after it go
    on (``livecall webhook-replay`` sends it later).  ``close()`` waits for
    the queue to empty, within a bound, and puts what is left there too.

    Delivery is at least once: an event whose answer timed out may have
    arrived and is sent again.  Receivers that must not see duplicates can
    key on the body, which is unique per event.
    """

    def __init__(self, sender: Sender, dead_letter: str = DEFAULT_PATH, *, queue_size: int = 1000):
        if queue_size < 1:
            raise livecall.ConfigurationError("the webhook queue size must be 1 or more")
        self.sender = sender
        self.dead_letter = DeadLetterFile(dead_letter)
        self.delivered = 0
        #: Events put in the dead-letter file untried, for want of time at exit.
        self.unsent = 0
        self._queue: queue.Queue[Optional[_Delivery]] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._pending = 0
        self._current: Optional[_Delivery] = None
        self._abandoned = False
        self._overflowing = False
        self._worker = threading.Thread(target=self._run, name="livecall-webhook", daemon=True)
        self._worker.start()

    @livecall.hookimpl
    def livecall_event(self, call, event):
        body = livecall.to_json(call, event).encode("utf-8")
        self._submit(_Delivery(call.id, event.kind, body))

    def close(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for pending deliveries, then dead-letter the rest.

        The request in flight at the deadline gets its own timeout to finish.
        """
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0, timeout)
            self._stop.set()
        grace = self.sender.timeout + 1.0
        deadline = time.monotonic() + grace
        try:
            self._queue.put(None, timeout=grace)
        except queue.Full:
            pass
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            self._abandon()
        self.sender.close()
        self.dead_letter.close()
        if self.unsent:
            log.warning(
                "%d events were not sent before the drain timeout ran out; kept in %s",
                self.unsent,
                self.dead_letter.path,
            )
        log.info("%d events delivered to %s, %d not", self.delivered, self.sender.safe_url, self.undelivered)

    @property
    def undelivered(self) -> int:
        return self.dead_letter.written + self.dead_letter.unwritten

    def __repr__(self) -> str:
        counts = f"delivered={self.delivered} undelivered={self.undelivered}"
        return f"<WebhookForwarder {self.sender.safe_url} {counts}>"

    def _submit(self, delivery: _Delivery) -> None:
        with self._lock:
            if self._stop.is_set():
                self._give_up(delivery, "it came after close()")
                return
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                if not self._overflowing:
                    log.warning(
                        "the webhook queue is full (%d events): events go straight to %s until it has room",
                        self._queue.maxsize,
                        self.dead_letter.path,
                    )
                self._overflowing = True
                self.dead_letter.append(delivery.body)
                return
            self._overflowing = False
            self._pending += 1

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            with self._idle:
                if self._abandoned:
                    return
                if self._stop.is_set():
                    self._keep_unsent(delivery)
                    self._done()
                    continue
                self._current = delivery
            failure = self._send(delivery)
            with self._idle:
                if self._abandoned:  # close() stopped waiting for this thread and kept the event
                    return
                self._current = None
                if failure is None:
                    self.delivered += 1
                else:
                    self._give_up(delivery, failure.reason)
                self._done()

    def _send(self, delivery: _Delivery) -> Optional[Failure]:
        try:
            return self.sender.send(delivery.body, self._stop)
        except Exception as error:  # a bug here must not end the thread and strand the queue
            log.exception("sending event %s of call %s failed", delivery.kind, delivery.call_id)
            return Failure(f"could not send: {type(error).__name__}", permanent=True)

    def _done(self) -> None:
        self._pending -= 1
        self._idle.notify_all()

    def _abandon(self) -> None:
        """The worker is stuck in a request: keep its event and the queue's, and send no more."""
        with self._lock:
            self._abandoned = True
            left: list[_Delivery] = [self._current] if self._current is not None else []
            while True:
                try:
                    delivery = self._queue.get_nowait()
                except queue.Empty:
                    break
                if delivery is not None:
                    left.append(delivery)
            for delivery in left:
                self._keep_unsent(delivery)

    def _keep_unsent(self, delivery: _Delivery) -> None:
        self.unsent += 1
        self.dead_letter.append(delivery.body)

    def _give_up(self, delivery: _Delivery, reason: str) -> None:
        log.warning("event %s of call %s not delivered: %s", delivery.kind, delivery.call_id, reason)
        self.dead_letter.append(delivery.body)
