"""The plugin of one held call that writes each of its events to the events stream."""

import json
import time
from typing import Callable, Optional

import attrs
import redis

import livecall
import livecall.observability

from ._keys import EventKeys
from ._logs import log
from ._scripts import DUPLICATE, STALE, WRITTEN, Scripts
from ._stats import Stats

__all__ = ["EventWriter", "Lease"]

#: Seconds between attempts to write an event while Redis cannot be reached.
RETRY_PAUSE = 0.2


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

    def lose(self, why: str) -> bool:
        """Mark the lease lost and close the watch; False when it already was."""
        if self.lost is not None:
            return False
        self.lost = why
        if self.client is not None:
            self.client.close(timeout=0)
        return True


class EventWriter:
    """Writes every event of one held call, fenced and keyed, in order: the client's own plugin.

    Each client gets its own writer (``plugins=[writer]``), so no lookup of
    the call's lease is needed.  The write happens on the call's dispatcher
    thread, so its events reach the stream in the order they came, and a
    slow Redis slows the watch down (the client's queue pushes back) rather
    than growing memory.

    The event's JSON is redacted as every other sink's is: a server that
    echoes a credential (the API key, the bearer or conversation token) must
    not put it on a stream that every consumer group reads; Phonic's
    presigned ``audio_url`` links are blanked too.

    The stream keeps what it is given, so a call whose owner asked for zero
    data retention (``call.zero_data_retention``) has its events written
    without words (``livecall.without_words``), unless ``keep_words`` (the
    worker's ``--keep-words``) says to keep them anyway.  Keys are made from
    the whole event, so workers agree on them whichever they write.
    """

    def __init__(
        self,
        scripts: Scripts,
        stats: Stats,
        reachable: Callable[[], bool],
        maxlen: int,
        key_ttl: int,
        lease: Lease,
        *,
        keep_words: bool = False,
    ):
        self._scripts = scripts
        self._stats = stats
        self._reachable = reachable
        self._maxlen = maxlen
        self._key_ttl = key_ttl
        self._lease = lease
        self._keep_words = keep_words

    @livecall.hookimpl
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        lease = self._lease
        if lease.lost is not None:
            return
        if isinstance(event, livecall.Reconnecting):
            self._stats.add("reconnects")
        record = livecall.to_record(call, event)
        key = lease.keys.key(call, event, record)
        if call.zero_data_retention and not self._keep_words:
            record = livecall.without_words(record)
        outcome = self._write(key, livecall.redact(json.dumps(record)), livecall.observability.traceparent())
        if outcome == WRITTEN:
            self._stats.add("events_written")
        elif outcome == DUPLICATE:
            self._stats.add("events_duplicate")
        elif outcome == STALE:
            self._stats.add("fenced_writes")
            if lease.lose("another worker took it over (a write was fenced)"):
                log.warning("lost call %s (request %s): fenced", lease.call_id, lease.request_id)
        else:
            self._stats.add("events_unwritten")

    def _write(self, key: str, event: str, traceparent: Optional[str] = None) -> Optional[int]:
        """The script's outcome; None when Redis stayed out of reach for as long as the lease allows."""
        lease = self._lease
        while lease.lost is None:
            try:
                return self._scripts.write(
                    lease.token,
                    lease.request_id,
                    lease.call_id,
                    key,
                    event,
                    self._maxlen,
                    self._key_ttl,
                    traceparent,
                )
            except (redis.ConnectionError, redis.TimeoutError):
                if not self._reachable():
                    break
                time.sleep(RETRY_PAUSE)
        if lease.lose("Redis unreachable"):
            log.warning(
                "lost call %s (request %s): Redis unreachable, an event unwritten",
                lease.call_id,
                lease.request_id,
            )
        return None
