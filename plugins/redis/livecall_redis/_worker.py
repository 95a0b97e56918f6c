"""One worker process: takes requests, watches their calls, renews its leases.

A held call has no thread of its own: its client runs on the process's hub
(``start(wait=False)``), and a done callback, on the hub's dispatcher thread,
only queues the lease.  Besides the hub's threads, a worker has three,
however many calls it holds: the main loop takes requests (its own pending
ones whose lease lapsed, with ``XAUTOCLAIM``, then new ones with
``XREADGROUP``); a renewer renews every lease each renewal period; and a
settler finishes or releases each request in Redis once its watch is over.
"""

import functools
import os
import queue
import socket
import threading
import time
from typing import Any, Optional

import pluggy
import redis

import livecall

from ._entries import read_entry
from ._keys import EventKeys
from ._logs import log, shorten
from ._requests import WatchRequest, secret_fields
from ._scripts import Acquired, Scripts
from ._settings import READ_BLOCK, WorkerSettings
from ._stats import Stats
from ._writer import EventWriter, Lease

__all__ = ["Worker", "consumer_name"]

#: Seconds between two looks at the queue's depth.
DEPTH_EVERY = 5.0


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
        self.stats.set("capacity_calls", settings.calls)
        self._redis = settings.redis_client()
        #: Reads requests as bytes (see ``_entries``), on the main loop's thread only.
        self._reader = settings.redis_client(decode=False)
        # XAUTOCLAIM's answer as Redis gives it: redis-py before 4.3 leaves its cursor out.
        self._reader.set_response_callback("XAUTOCLAIM", lambda response, **options: response)
        self._scripts = Scripts(
            self._redis, settings.requests, settings.group, settings.events, settings.dead_letter
        )
        self._pm = plugin_manager
        self._new_writer = functools.partial(
            EventWriter,
            self._scripts,
            self.stats,
            self._reachable,
            settings.events_maxlen,
            settings.key_ttl,
            keep_words=settings.keep_words,
        )
        self._credentials = settings.credentials(plugin_manager)
        self._held: dict[str, Lease] = {}
        #: Leases whose watch is over, for the settler; None stops it.
        self._over: queue.SimpleQueue[Optional[Lease]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._last_contact = time.monotonic()
        self._stop = threading.Event()
        self._claim_from = "0-0"
        #: Whether the renewer last found the hub wedged.
        self._hub_stalled = False

    # --- the main loop ------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set (or the thread is interrupted), then give every call back."""
        self._stop = stop
        self._ensure_group()
        renewer = threading.Thread(
            target=self._renew_loop, args=(stop,), name="livecall-redis-renewer", daemon=True
        )
        settler = threading.Thread(target=self._settle_loop, name="livecall-redis-settler", daemon=True)
        renewer.start()
        settler.start()
        next_depth = 0.0
        try:
            while not stop.is_set():
                try:
                    self._take_requests(stop)
                    if time.monotonic() >= next_depth:
                        self._measure_depth()
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
            self._give_back()
            renewer.join()
            self._over.put(None)
            settler.join()
            self._reader.close()
            self._redis.close()

    def ready(self) -> tuple[bool, str]:
        """Whether this worker takes calls now, and why not: ``/readyz``'s answer.

        Not once it is draining (stopping: its calls go back), nor while it
        holds as many calls as ``--calls`` allows.
        """
        if self._stop.is_set():
            return False, "draining"
        with self._lock:
            held = len(self._held)
        if held >= self.settings.calls:
            return False, f"at capacity ({held} call{'' if held == 1 else 's'})"
        return True, ""

    def _ensure_group(self) -> None:
        """The group reads the stream from its beginning, whichever worker creates it first."""
        try:
            self._redis.xgroup_create(self.settings.requests, self.settings.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _free(self) -> int:
        with self._lock:
            return self.settings.calls - len(self._held)

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
                self._changed.wait_for(
                    lambda: len(self._held) < self.settings.calls or stop.is_set(), READ_BLOCK
                )
            return
        answer: Any = self._reader.xreadgroup(
            self.settings.group,
            self.consumer,
            {self.settings.requests: ">"},
            count=free,
            block=int(READ_BLOCK * 1000),
        )
        self._contact()
        for _, entries in answer or ():
            for request_id, raw in entries:
                if raw is not None:  # None: deleted meanwhile
                    self._take(request_id.decode(), raw, taken_over=False)

    def _take_over(self, free: int) -> None:
        """Claim requests whose holder has not renewed within the lease (``XAUTOCLAIM``)."""
        answer: Any = self._reader.execute_command(
            "XAUTOCLAIM",
            self.settings.requests,
            self.settings.group,
            self.consumer,
            int(self.settings.lease * 1000),
            self._claim_from,
            "COUNT",
            free,
        )
        self._contact()
        self._claim_from = answer[0].decode()
        for raw_id, flat in answer[1]:
            if flat is None:  # deleted meanwhile (Redis < 7 says so this way)
                continue
            request_id = raw_id.decode()
            with self._lock:
                mine = request_id in self._held
            if not mine:
                self._take(request_id, dict(zip(flat[::2], flat[1::2])), taken_over=True)

    def _take(self, request_id: str, raw: dict[bytes, bytes], taken_over: bool) -> None:
        acquired = self._scripts.acquire(self.consumer, request_id)
        if acquired is None:
            return  # another worker claimed it between our read and now
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
            lease.client = client = request.client(
                **self._credentials.get(request.provider, {}),
                url=self.settings.check_url(request.provider, request.url),
                plugin_manager=self._pm,
                plugins=[self._new_writer(lease)],
                connect_timeout=self.settings.connect_timeout,
                close_timeout=1.0,
            )
        except livecall.ConfigurationError as error:
            self._bury(request_id, entry.fields, str(error), acquired.deliveries)
            return None
        return lease, client

    def _bury(self, request_id: str, fields: dict[str, str], reason: str, deliveries: int) -> None:
        secret = secret_fields()
        kept = {name: value for name, value in fields.items() if name not in secret}
        reason = shorten(reason)
        kept.update(request_id=request_id, reason=reason, deliveries=str(deliveries), consumer=self.consumer)
        if self._scripts.bury(self.consumer, request_id, kept, self.settings.events_maxlen):
            log.warning("request %s moved to %s: %s", request_id, self.settings.dead_letter, reason)

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
                self._settle_watch(lease)
            except Exception:  # a bug must not stop the settling of the other calls
                log.exception("could not settle request %s", lease.request_id)
            finally:
                with self._lock:
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
        """Acknowledge a call that ended; give back one that did not, for another try."""
        ids = (lease.call_id, lease.request_id)
        if lease.lost is not None:
            return
        try:
            if reason == livecall.EndReason.ENDED and failure is None:
                if self._scripts.finish(lease.request_id, lease.token):
                    log.info("call %s ended (request %s)", *ids)
                else:
                    log.warning("lost call %s (request %s): taken over before it ended", *ids)
            else:
                self._release(lease)
                if reason == livecall.EndReason.CLOSED and self._stop.is_set():
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

    def _give_back(self) -> None:
        """Close every watch; each gives its request back for another worker."""
        with self._lock:
            leases = list(self._held.values())
        for lease in leases:
            if lease.client is not None:
                lease.client.close(timeout=0)
        with self._changed:
            self._changed.wait_for(lambda: not self._held, self.settings.connect_timeout + 5)

    # --- leases -------------------------------------------------------------------

    def _renew_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.renew):
            if self._hub_turns():
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
        with self._lock:
            leases = [lease for lease in self._held.values() if lease.lost is None]
        try:
            for lease in leases:
                if self._renew(lease):
                    self.stats.add("lease_renewals")
                elif lease.lose("taken over by another worker"):
                    log.warning("lost call %s (request %s): taken over", lease.call_id, lease.request_id)
            self._contact()
        except (redis.ConnectionError, redis.TimeoutError):
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

    def _renew(self, lease: Lease) -> bool:
        try:
            return self._scripts.renew(self.consumer, lease.request_id, lease.token)
        except redis.ResponseError as error:  # the stream or group is gone: so is the lease
            log.warning("Redis refused to renew request %s: %s", lease.request_id, error)
            return False

    def _contact(self) -> None:
        self._last_contact = time.monotonic()

    def _reachable(self) -> bool:
        """Whether Redis answered recently enough for our leases to still hold."""
        return time.monotonic() - self._last_contact <= self.settings.outage_limit

    def _measure_depth(self) -> None:
        """Requests not yet delivered to any worker: the group's lag, where Redis tells it."""
        for group in self._redis.xinfo_groups(self.settings.requests):
            if group.get("name") == self.settings.group:
                lag = group.get("lag")
                if lag is None:
                    lag = max(0, self._redis.xlen(self.settings.requests) - int(group.get("pending", 0)))
                self.stats.set("queue_depth", int(lag))
