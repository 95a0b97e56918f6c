"""One worker process: takes requests, watches their calls, renews its leases.

A held call has no thread of its own: its client runs on the process's hub
(``start(wait=False)``), and a done callback, on the hub's dispatcher thread,
only queues the lease.  Besides the hub's threads, a worker has four,
however many calls it holds: the main loop takes requests (its own pending
ones whose lease lapsed, with ``XAUTOCLAIM``, then new ones with
``XREADGROUP``, acquiring those of one answer in one pipeline); a renewer
renews every lease held each renewal period, in one pipeline on a Redis
connection of its own, so that renewals never wait behind event writes; a
writer writes the events every call's hooks queue, in pipelines
(``_pipeline``); and a settler finishes or releases each request in Redis
once its watch is over and its events are written.

A worker takes a request only for a free slot: it reads no more requests
than it has room for, and a request's room is taken (the lease held) before
its call's handshake begins, so a burst of requests never makes it hold more
than its capacity: ``--calls``, or fewer where its open files allow fewer
(``_capacity``).
"""

import functools
import os
import queue
import socket
import threading
import time
from typing import Optional

import pluggy
import redis

import livecall

from ._capacity import descriptors, out_of_descriptors
from ._dead import dead_letter
from ._entries import read_entry
from ._handover import Handover
from ._keys import EventKeys
from ._limits import HeldLimits, Limit
from ._logs import log, shorten
from ._pipeline import EventPipeline
from ._requests import WatchRequest
from ._scripts import Acquired
from ._settings import READ_BLOCK, WorkerSettings
from ._sharded import RequestStreams
from ._stats import Stats
from ._trim import TrimWatch
from ._writer import HANDED_OVER, EventWriter, Lease

__all__ = ["Worker", "consumer_name"]

#: Seconds between two looks at the queue's depth.
DEPTH_EVERY = 5.0
#: Seconds between two looks, while draining, at whether a second signal asked to hurry.
HURRY_LOOK = 0.2


def _calls(count: int) -> str:
    return f"{count} call{'' if count == 1 else 's'}"


def consumer_name() -> str:
    """``host:pid``: who holds a call, for operators and ``XPENDING``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Watches up to ``settings.calls`` calls at once, and gives them back when it stops."""

    def __init__(
        self,
        settings: WorkerSettings,
        plugin_manager: pluggy.PluginManager,
        stats: Optional[Stats] = None,
        consumer: Optional[str] = None,
    ):
        self.settings = settings
        self.consumer = consumer or consumer_name()
        self.stats = stats or Stats()
        #: What the process's open files allow (None: no such limit here), so the calls it takes.
        self.descriptors = descriptors()
        calls_allowed = settings.calls if self.descriptors is None else self.descriptors.calls
        self.capacity = min(settings.calls, calls_allowed)
        self.stats.set("capacity_calls", self.capacity)
        self._redis = settings.redis_client()
        #: Reads requests as bytes (see ``_entries``), on the main loop's thread only.
        self._reader = settings.redis_client(decode=False)
        #: Every shard's requests stream (one by default), read together.
        self._streams = RequestStreams(settings, self._redis, self._reader)
        #: The scripts, each run on its request's shard (whose id says which, with several).
        self._scripts = self._streams.scripts
        #: Renewals, on a connection of their own: never behind the main loop's commands.
        self._renewals = self._scripts.on(settings.redis_client())
        #: The events of every held call, written by a thread of its own on its own connection.
        self._writes = EventPipeline(
            self._scripts.on(settings.redis_client()),
            self.stats,
            self._reachable,
            settings.events_maxlen,
            settings.key_ttl,
        )
        #: One look-out per shard's events stream.
        self._trims = [
            TrimWatch(self._redis, keys.events, settings.events_maxlen, self.stats)
            for keys in self._streams.shards
        ]
        self._pm = plugin_manager
        self._new_writer = functools.partial(
            EventWriter, self._writes, self.stats, keep_words=settings.keep_words
        )
        self._credentials = settings.credentials(plugin_manager)
        self._held: dict[str, Lease] = {}
        #: Leases the settler is finishing or giving back: a renewal they fail is no takeover.
        self._settling: set[Lease] = set()
        #: Leases whose watch is over, for the settler; None stops it.
        self._over: queue.SimpleQueue[Optional[Lease]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._last_contact = time.monotonic()
        self._stop = threading.Event()
        #: Set once a second signal ends the drain (see :meth:`hurry`).
        self._hurry = threading.Event()
        #: Set once the drain is over: the renewer stops then, not before (``--drain wait`` renews).
        self._drained = threading.Event()
        #: Held by the renewer while it renews, so that no lease handed over is renewed after.
        self._renewal = threading.Lock()
        #: Whether the renewer last found the hub wedged.
        self._hub_stalled = False

    # --- the main loop ------------------------------------------------------------

    def run(self, stop: threading.Event, hurry: Optional[threading.Event] = None) -> None:
        """Work until ``stop`` is set (or the thread is interrupted), then drain (``--drain``).

        ``hurry``, once set (a second signal), ends the drain at once: what
        is still held is given back.
        """
        self._stop = stop
        self._hurry = hurry or self._hurry
        self._ensure_group()
        renewer = threading.Thread(
            target=self._renew_loop, args=(self._drained,), name="livecall-redis-renewer", daemon=True
        )
        settler = threading.Thread(target=self._settle_loop, name="livecall-redis-settler", daemon=True)
        self._connect()
        self._writes.start()
        renewer.start()
        settler.start()
        next_depth = 0.0
        try:
            while not stop.is_set():
                self._check_limits()
                try:
                    self._take_requests(stop)
                    if time.monotonic() >= next_depth:
                        self._measure_depth()
                        for trim in self._trims:
                            trim.check()
                        next_depth = time.monotonic() + DEPTH_EVERY
                except (redis.ConnectionError, redis.TimeoutError) as error:
                    log.debug("Redis unreachable: %s", type(error).__name__)
                    stop.wait(self.settings.renew / 2)
                except redis.ResponseError as error:
                    if "NOGROUP" in str(error):  # Redis lost the group (restarted empty): make it again
                        self._ensure_group()
                    else:
                        log.warning("Redis refused a command: %s", error)
                        stop.wait(self.settings.renew)
        finally:
            stop.set()
            try:
                self._drain()
            finally:
                self._drained.set()
            renewer.join()
            self._over.put(None)
            settler.join()
            self._writes.close()
            self._reader.close()
            self._redis.close()
            self._renewals.client.close()
            self._writes.scripts.client.close()

    def _connect(self) -> None:
        """Open the renewer's and the writer's connections now, before calls take descriptors."""
        for client in (self._renewals.client, self._writes.scripts.client):
            try:
                client.ping()
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # Redis is away: they connect once it is back, as every other does

    def ready(self) -> tuple[bool, str]:
        """Whether this worker takes calls now, and why not: ``/readyz``'s answer.

        Not once it is draining (stopping: its calls go back), nor while it
        holds as many calls as ``--calls`` (or its open files) allows.
        """
        if self._stop.is_set():
            return False, "draining"
        with self._lock:
            held = len(self._held)
        if held >= self.capacity:
            return False, f"at capacity ({held} call{'' if held == 1 else 's'})"
        return True, ""

    def _ensure_group(self) -> None:
        """The group reads each stream from its beginning, whichever worker creates it first."""
        self._streams.prepare()

    def _free(self) -> int:
        """Slots free: only the main loop takes them (a lease held before its call's handshake)."""
        with self._lock:
            return self.capacity - len(self._held)

    def _take_requests(self, stop: threading.Event) -> None:
        if self._hub_stalled:  # nothing taken would be watched; our own lapsed leases stay unclaimed
            stop.wait(READ_BLOCK)
            return
        free = self._free()
        if free > 0:
            self._take_over(free)
        free = self._free()
        if free <= 0:
            with self._changed:
                self._changed.wait_for(lambda: len(self._held) < self.capacity or stop.is_set(), READ_BLOCK)
            return
        taken = self._streams.read(self.consumer, free, int(READ_BLOCK * 1000))
        self._contact()
        self._take_all(taken, taken_over=False)

    def _take_over(self, free: int) -> None:
        """Claim requests whose holder has not renewed within the lease (``XAUTOCLAIM``, each shard)."""
        claimed = []
        for request_id, raw in self._streams.claim(self.consumer, free):
            with self._lock:
                mine = request_id in self._held
            if not mine:
                claimed.append((request_id, raw))
        self._contact()
        self._take_all(claimed, taken_over=True)

    def _take(self, request_id: str, raw: dict[bytes, bytes], taken_over: bool) -> None:
        self._take_all([(request_id, raw)], taken_over)

    def _take_all(self, requests: list[tuple[str, dict[bytes, bytes]]], taken_over: bool) -> None:
        """Acquire the requests read or claimed together in one pipeline, then take each."""
        if not requests:
            return
        tokens = self._scripts.acquire_many(self.consumer, [request_id for request_id, _ in requests])
        for (request_id, raw), acquired in zip(requests, tokens):
            if acquired is not None:  # None: another worker claimed it between our read and now
                self._take_acquired(request_id, raw, acquired, taken_over)

    def _take_acquired(
        self, request_id: str, raw: dict[bytes, bytes], acquired: Acquired, taken_over: bool
    ) -> None:
        try:
            taken = self._lease(request_id, raw, acquired)
        except redis.RedisError:
            raise
        except Exception as error:  # whatever a request holds, the worker goes on with the others
            log.exception("could not read request %s", request_id)
            self._bury(request_id, {}, f"could not be read ({type(error).__name__})", acquired.deliveries)
            return
        if taken is None:
            return
        lease, client = taken
        with self._lock:
            self._held[request_id] = lease
            self.stats.set("calls_held", len(self._held))
        what = "took over" if taken_over else "took"
        if acquired.handed_over:
            what += " (handed over)"
        log.info("%s call %s (request %s, delivery %d)", what, lease.call_id, request_id, acquired.deliveries)
        self._start(lease, client)

    def _lease(
        self, request_id: str, raw: dict[bytes, bytes], acquired: Acquired
    ) -> Optional[tuple[Lease, livecall.LiveClient]]:
        """The lease of a request that can be watched, and its client; None once it is dead-lettered."""
        entry = read_entry(raw, self.settings.max_request_bytes)
        try:
            if entry.problem is not None:
                raise livecall.ConfigurationError(entry.problem)
            request = WatchRequest.from_fields(entry.fields)
            if acquired.deliveries > self.settings.max_deliveries:
                raise livecall.ConfigurationError("delivered too many times")
            watch = f"{self.consumer}:{request_id}:{acquired.token}"
            lease = Lease(request_id, acquired.token, acquired.deliveries, EventKeys(watch))
            limits = request.limits.applied(self.settings.limits)
            if limits:
                lease.limits = self._held_limits(request_id, acquired.token, limits)
                if lease.limits is None:
                    return None  # another worker took it meanwhile
            lease.client = client = request.client(
                **self._credentials.get(request.provider, {}),
                url=self.settings.check_url(request.provider, request.url),
                plugin_manager=self._pm,
                plugins=self._plugins(lease, acquired),
                connect_timeout=self.settings.connect_timeout,
                close_timeout=1.0,
            )
        except livecall.ConfigurationError as error:
            self._bury(request_id, entry.fields, str(error), acquired.deliveries)
            return None
        return lease, client

    def _plugins(self, lease: Lease, acquired: Acquired) -> list[object]:
        """The client's own plugins: its writer, and the handover's (a takeover's gap is written first)."""
        writer = self._new_writer(lease)
        taken_over = acquired.deliveries > 1 or acquired.handed_over
        return [writer, Handover(self._scripts, lease, writer, taken_over)]

    def _held_limits(self, request_id: str, token: int, limits: tuple[Limit, ...]) -> Optional[HeldLimits]:
        """The clocks of a call's time limits; None when another worker holds the request now."""
        now = time.monotonic()
        held = HeldLimits(limits, taken=now, watching=now)
        if held.max_duration:  # counted from when a worker first took the request
            held_for = self._scripts.held_for(request_id, token)
            if held_for is None:
                return None
            held.taken = now - held_for
        return held

    def _check_limits(self, held: Optional[list[Lease]] = None) -> None:
        """Close each held call that reached a time limit; the settler acknowledges its request.

        ``held``: the held leases, from a caller holding the lock; else they are read here.
        A call being handed over is left to the worker taking it, which looks at its limits.
        """
        now = time.monotonic()
        if held is None:
            with self._lock:
                held = list(self._held.values())
        for lease in held:
            if lease.limits is None or lease.client is None or lease.limit_reached or lease.lost:
                continue
            if lease.handing_over:
                continue
            limit = lease.limits.reached(lease.client, now)
            if limit is not None:
                lease.limit_reached = limit
                lease.client.close(timeout=0)

    def _bury(self, request_id: str, fields: dict[str, str], reason: str, deliveries: int) -> None:
        """Dead-letter a request this worker acquired: its fields but secrets, why, and its last error."""
        reason = shorten(reason)
        kept = dead_letter(
            fields,
            request_id=request_id,
            reason=reason,
            deliveries=deliveries,
            consumer=self.consumer,
            noted=self._scripts.noted_error(request_id),  # ours to read: we hold the newest token
        )
        if self._scripts.bury(self.consumer, request_id, kept, self.settings.events_maxlen):
            dead = self._streams.dead_letter_of(request_id)
            log.warning("request %s moved to %s: %s", request_id, dead, reason)

    # --- one call -----------------------------------------------------------------

    def _start(self, lease: Lease, client: livecall.LiveClient) -> None:
        """Start the watch on the hub; the settler hears once it is over."""
        over = functools.partial(self._watch_over, lease)
        client.add_done_callback(over)
        try:
            client.start(wait=False)
        except livecall.LivecallError as error:  # no watch began: no callback will come
            log.warning("could not start call %s: %s", lease.call_id, livecall.redact(str(error)))
            client.remove_done_callback(over)
            self._over.put(lease)

    def _watch_over(self, lease: Lease, client: livecall.LiveClient) -> None:
        """On a hub dispatcher: hand the lease to the settler, at once (Redis may be slow)."""
        self._over.put(lease)

    def _settle_loop(self) -> None:
        """The settler: settles each watch that is over, then frees its room (stopping waits on it)."""
        while True:
            lease = self._over.get()
            if lease is None:
                return
            try:
                # Its events first: once the request is settled, a write would be refused as stale.
                self._writes.flush(lease, self.settings.lease)
                with self._lock:
                    self._settling.add(lease)
                self._settle_watch(lease)
            except Exception:  # a bug must not stop the settling of the other calls
                log.exception("could not settle request %s", lease.request_id)
            finally:
                with self._lock:
                    self._settling.discard(lease)
                    self._held.pop(lease.request_id, None)
                    self.stats.set("calls_held", len(self._held))
                    self._changed.notify_all()

    def _settle_watch(self, lease: Lease) -> None:
        client = lease.client
        assert client is not None
        failure: Optional[str] = None
        try:
            client.wait(0)
        except Exception as error:
            failure = f"{type(error).__name__}: {livecall.redact(str(error))}"
        self._settle(lease, client.call.end_reason, failure)

    def _settle(self, lease: Lease, reason: Optional[livecall.EndReason], failure: Optional[str]) -> None:
        """Acknowledge a call that ended, or reached a time limit; give back one that did not, for
        another try, noting why on its fence (a dead letter carries the last error)."""
        ids = (lease.call_id, lease.request_id)
        if lease.lost is not None:
            if lease.lost == HANDED_OVER:
                self._handed_over(lease)
            return
        limit = lease.limit_reached
        try:
            if limit is not None or (reason == livecall.EndReason.ENDED and failure is None):
                if not self._scripts.finish(lease.request_id, lease.token):
                    if lease.handing_over:  # the worker it went to acknowledges it
                        log.info("call %s ended as it was handed over (request %s)", *ids)
                    else:
                        log.warning("lost call %s (request %s): taken over before it ended", *ids)
                elif limit is None:
                    log.info("call %s ended (request %s)", *ids)
                else:
                    log.warning(
                        "call %s stopped at %s, before it ended (request %s): not retried",
                        lease.call_id,
                        limit.name,
                        lease.request_id,
                    )
            else:
                stopping = reason == livecall.EndReason.CLOSED and self._stop.is_set()
                if not stopping:
                    error = failure or f"the watch ended: {reason or 'it did not start'}"
                    self._scripts.note_error(lease.request_id, lease.token, shorten(error))
                self._release(lease)
                if stopping:
                    log.info("gave back call %s (request %s): the worker stops", *ids)
                else:
                    log.warning(
                        "lost call %s (request %s): %s; left for another try", *ids, failure or reason
                    )
        except (redis.ConnectionError, redis.TimeoutError):
            log.warning("lost call %s (request %s): Redis unreachable as the watch ended", *ids)
        except redis.ResponseError as error:
            log.warning("lost call %s (request %s): Redis refused to settle it: %s", *ids, error)

    def _release(self, lease: Lease) -> None:
        """Give the request back at once: its idle time set to the lease, so any worker claims it."""
        self._scripts.renew(self.consumer, lease.request_id, lease.token, int(self.settings.lease * 1000))

    def _handed_over(self, lease: Lease) -> None:
        """The watch of a call handed over is over: said once, and, if its connection closed before
        the next holder wrote, noted on the fence (a gap follows unless that holder was connecting)."""
        try:
            self._scripts.let_go(lease.request_id, lease.token, ended=False)
        except redis.RedisError as error:
            log.debug("could not note the end of handed-over request %s: %s", lease.request_id, error)
        log.info("handed over call %s (request %s)", lease.call_id, lease.request_id)

    # --- stopping -----------------------------------------------------------------

    def hurry(self) -> None:
        """End the drain at once (a second signal): whatever is still held is given back."""
        self._hurry.set()
        with self._changed:
            self._changed.notify_all()

    def _drain(self) -> None:
        """Stopping, take nothing new; then, by ``--drain``, hand each held call over to another
        worker while still watching it (``handover``), or watch each to its end (``wait``), for up
        to ``--drain-timeout`` seconds; then give back whatever is still held (all of it at once
        with ``release``)."""
        mode = self.settings.drain
        with self._lock:
            held = len(self._held)
        if mode != "release" and held and not self._hurry.is_set():
            timeout = self.settings.drain_timeout
            if mode == "handover":
                log.info("draining: handing %s over to other workers (up to %g s)", _calls(held), timeout)
                self._hand_over_all()
            else:
                log.info("draining: watching %s to the end (up to %g s)", _calls(held), timeout)
            deadline = time.monotonic() + timeout
            with self._changed:
                while self._held and not self._hurry.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(min(left, HURRY_LOOK))
                    self._check_limits(list(self._held.values()))  # the calls still end at their limits
                held = len(self._held)
            if held:
                why = "a second signal" if self._hurry.is_set() else f"--drain-timeout {timeout:g}"
                log.info("draining: giving back %s still held (%s)", _calls(held), why)
        self._give_back()

    def _hand_over_all(self) -> None:
        """Make each held call claimable at once, its watch still running and writing, until the
        worker taking it over writes; a call not connected now is given back instead."""
        with self._lock:
            leases = [lease for lease in self._held.values() if lease.lost is None]
        with self._renewal:  # a renewal under way ends first; none follows for these leases
            for lease in leases:
                lease.handing_over = True
        lease_ms = int(self.settings.lease * 1000)
        for lease in leases:
            client = lease.client
            if client is None or not client.connected:  # nothing to overlap: given back at once
                lease.handing_over = False
                if client is not None:
                    client.close(timeout=0)
                continue
            try:
                handed = self._scripts.hand_over(self.consumer, lease.request_id, lease.token, lease_ms)
            except redis.RedisError as error:
                log.warning("could not hand over request %s: %s", lease.request_id, type(error).__name__)
                lease.handing_over = False
                client.close(timeout=0)
                continue
            if not handed and lease.lose("taken over by another worker"):
                log.warning("lost call %s (request %s): taken over", lease.call_id, lease.request_id)

    def _give_back(self) -> None:
        """Close every watch; each gives its request back for another worker.

        A call still being handed over stops being so first: the worker that
        takes it over then knows there was no overlap, and writes a gap.
        """
        with self._lock:
            leases = list(self._held.values())
        for lease in leases:
            if lease.handing_over and lease.lost is None:
                try:
                    self._scripts.let_go(lease.request_id, lease.token, ended=True)
                except redis.RedisError as error:
                    log.debug("could not end the handover of request %s: %s", lease.request_id, error)
            if lease.client is not None:
                lease.client.close(timeout=0)
        with self._changed:
            self._changed.wait_for(lambda: not self._held, self.settings.connect_timeout + 5)

    # --- leases -------------------------------------------------------------------

    def _renew_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.renew):
            if self._hub_turns():
                with self._renewal:
                    self._renew_all()

    def _hub_turns(self) -> bool:
        """Whether the hub's I/O thread still turns; said once each time that changes.

        A wedged hub serves none of the calls: renewing their leases, or
        claiming them back once they lapse, would keep other workers from
        taking them over; so while it is wedged the renewer renews nothing and
        the main loop takes nothing.
        """
        age = livecall.hub_turn_age()
        stalled = age is not None and age > self.settings.hub_stall
        if stalled != self._hub_stalled:
            self._hub_stalled = stalled
            if stalled:
                log.warning(
                    "the hub has not turned for %.1f s (--hub-stall %g): leases left to lapse, "
                    "for other workers to take the calls over",
                    age,
                    self.settings.hub_stall,
                )
            else:
                log.warning("the hub turns again: leases still held are renewed")
        return not stalled

    def _renew_all(self) -> None:
        """Renew every lease held now, in one pipelined round trip on the renewer's own connection."""
        with self._lock:
            leases = [
                lease
                for lease in self._held.values()
                if lease.lost is None and not lease.handing_over and lease not in self._settling
            ]
        if not leases:
            return
        try:
            answers = self._renewals.renew_many(
                self.consumer, [(lease.request_id, lease.token) for lease in leases]
            )
            self._contact()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if out_of_descriptors(error):
                log.warning("could not renew the leases: this process is out of file descriptors")
            if self._reachable():
                return
            for lease in leases:
                if lease.lose("Redis unreachable"):
                    log.warning(
                        "lost call %s (request %s): Redis unreachable for %.1f s",
                        lease.call_id,
                        lease.request_id,
                        time.monotonic() - self._last_contact,
                    )

            return
        renewed = 0
        for lease, answer in zip(leases, answers):
            if answer is True:
                renewed += 1
                continue
            if isinstance(answer, redis.ResponseError):  # the stream or group is gone: so is the lease
                log.warning("Redis refused to renew request %s: %s", lease.request_id, answer)
            with self._lock:  # settled meanwhile (its call ended): not lost, nor taken over
                gone = self._held.get(lease.request_id) is not lease or lease in self._settling
            if not gone and lease.lose("taken over by another worker"):
                log.warning("lost call %s (request %s): taken over", lease.call_id, lease.request_id)
        self.stats.add("lease_renewals", renewed)

    def _contact(self) -> None:
        self._last_contact = time.monotonic()

    def _reachable(self) -> bool:
        """Whether Redis answered recently enough for our leases to still hold."""
        return time.monotonic() - self._last_contact <= self.settings.outage_limit

    def _measure_depth(self) -> None:
        """Requests not yet delivered to any worker, on every shard: the group's lag."""
        self.stats.set("queue_depth", self._streams.lag())
