"""The events of every held call, written by one thread per worker in pipelines.

A call's events are made ready on its dispatcher thread (the hook) and
queued here in the order they came; the writer thread takes what is queued,
up to ``BATCH`` at a time, and sends it in one pipelined round trip of the
write script, in order.  Each write is fenced and keyed as a lone one is:
the script is the same, only the round trip is shared.

The queue is bounded: once it is full the hook waits, the call's mailbox
fills, and the provider's TCP pushes back.  Nothing is dropped.

The outcomes are a lone write's: written; a duplicate key; a stale token,
when another worker took the call over (the lease is lost, its watch closed,
its events still queued dropped); unwritten, when Redis stays out of reach
for as long as the lease allows (the lease is lost likewise).  A batch that
failed on its way is sent again whole: what it wrote before the failure
comes back a duplicate, so nothing is written twice.

The settler waits for a call's queued events to be written (:meth:`flush`)
before it acknowledges or gives back the request: writes after that would
be refused as stale.
"""

import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

import attrs
import redis

from ._capacity import out_of_descriptors
from ._logs import log
from ._scripts import DUPLICATE, STALE, WRITTEN, Scripts
from ._stats import Stats
from ._writer import Lease

__all__ = ["BATCH", "QUEUE_SIZE", "EventPipeline", "PendingWrite"]

#: The most writes in one pipeline: beyond some tens a round trip costs little more per write.
BATCH = 100
#: The most writes queued; a hook waits for room beyond it.
QUEUE_SIZE = 10 * BATCH
#: Seconds between attempts to write while Redis cannot be reached.
RETRY_PAUSE = 0.2


@attrs.frozen(eq=False)
class PendingWrite:
    """One event made ready for the stream: its call's lease, its key, its JSON and its trace."""

    lease: Lease
    key: str
    event: str
    traceparent: Optional[str] = None


class EventPipeline:
    """The queue of events to write and the thread that writes them: ``start()``, ``put()``, ``close()``.

    ``scripts`` should be on a client of its own (its connection is then the
    writer's alone); ``reachable`` says whether Redis answered recently
    enough for the leases to still hold.
    """

    def __init__(
        self,
        scripts: Scripts,
        stats: Stats,
        reachable: Callable[[], bool],
        maxlen: int,
        key_ttl: int,
        *,
        batch: int = BATCH,
        queue_size: int = QUEUE_SIZE,
    ):
        self.scripts = scripts
        self._stats = stats
        self._reachable = reachable
        self._maxlen = maxlen
        self._key_ttl = key_ttl
        self._batch = batch
        self._queue: queue.Queue[Optional[PendingWrite]] = queue.Queue(queue_size)
        #: Writes queued or being sent, by lease: what :meth:`flush` waits on.
        self._unsettled: dict[Lease, int] = {}
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="livecall-redis-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, lease: Lease, key: str, event: str, traceparent: Optional[str] = None) -> None:
        """Queue an event of ``lease``'s call (its key, JSON and trace), after those queued before it;
        waits while the queue is full."""
        write = PendingWrite(lease, key, event, traceparent)
        with self._changed:
            self._unsettled[write.lease] = self._unsettled.get(write.lease, 0) + 1
        self._queue.put(write)

    def flush(self, lease: Lease, timeout: Optional[float] = None) -> bool:
        """Wait until every event queued for ``lease`` is written (or given up); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: lease not in self._unsettled, timeout)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    # --- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        last = False
        while not last:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._batch:
                try:
                    write = self._queue.get_nowait()
                except queue.Empty:
                    break
                if write is None:  # closing: this batch is the last
                    last = True
                    break
                batch.append(write)
            try:
                self._send(batch)
            except Exception:  # a bug must not stop the writes of every other call
                log.exception("could not write %d events", len(batch))
                self._stats.add("events_unwritten", len(batch))
            finally:
                self._settled(batch)

    def _send(self, batch: Sequence[PendingWrite]) -> None:
        """Write the batch, again while Redis cannot be reached; give up once it stayed out of reach
        for as long as the leases allow."""
        writes = [write for write in batch if write.lease.lost is None]
        while writes:
            try:
                answers = self.scripts.write_many([self._arguments(write) for write in writes])
            except (redis.ConnectionError, redis.TimeoutError) as error:
                if out_of_descriptors(error):  # not Redis's fault: said apart
                    log.warning("could not write events: this process is out of file descriptors")
                if not self._reachable():
                    self._unwritten(writes)
                    return
                time.sleep(RETRY_PAUSE)  # Redis is away: nothing to wait on but time
                kept = [write for write in writes if write.lease.lost is None]
                if len(kept) < len(writes):  # their calls were lost meanwhile (Redis unreachable)
                    self._stats.add("events_unwritten", len(writes) - len(kept))
                writes = kept
                continue
            refused = 0
            for write, answer in zip(writes, answers):
                refused += self._count(write, answer)
            if refused:
                refusal = next(answer for answer in answers if isinstance(answer, redis.ResponseError))
                log.warning("Redis refused %d of %d event writes: %s", refused, len(writes), refusal)
            return

    def _arguments(self, write: PendingWrite) -> tuple[Any, ...]:
        lease = write.lease
        return (
            lease.token,
            lease.request_id,
            lease.call_id,
            write.key,
            write.event,
            self._maxlen,
            self._key_ttl,
            write.traceparent,
        )

    def _count(self, write: PendingWrite, answer: Any) -> int:
        """Count the write's outcome; 1 when Redis refused it (a ``ResponseError``)."""
        lease = write.lease
        if answer == WRITTEN:
            self._stats.add("events_written")
        elif answer == DUPLICATE:
            self._stats.add("events_duplicate")
        elif answer == STALE:  # another worker holds the call now
            self._stats.add("fenced_writes")
            lease.fenced()
        else:  # a ResponseError: out of memory, a key of the wrong type...
            self._stats.add("events_unwritten")
            return 1 if isinstance(answer, redis.ResponseError) else 0
        return 0

    def _unwritten(self, writes: Sequence[PendingWrite]) -> None:
        self._stats.add("events_unwritten", len(writes))
        for write in writes:
            lease = write.lease
            if lease.lose("Redis unreachable"):
                log.warning(
                    "lost call %s (request %s): Redis unreachable, an event unwritten",
                    lease.call_id,
                    lease.request_id,
                )

    def _settled(self, batch: Sequence[PendingWrite]) -> None:
        with self._changed:
            for write in batch:
                left = self._unsettled[write.lease] - 1
                if left:
                    self._unsettled[write.lease] = left
                else:
                    del self._unsettled[write.lease]
            self._changed.notify_all()
