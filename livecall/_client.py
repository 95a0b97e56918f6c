"""The blocking client both providers share: threads, reconnects, lifecycle.

Two threads per watch.  The *reader* owns the socket: it connects, reads
frames and queues them untouched, so it answers pings however long plugins
take (until the queue is full); on a lost connection it backs off and
reconnects.  The *dispatcher* decodes the
queued frames and calls hooks and callbacks in order.  The queue between them
is bounded: a stuck plugin slows the reader down (TCP pushes back on the
server) instead of growing memory without end, and nothing is dropped.
"""

import functools
import logging
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union, overload

import attrs
import pluggy

from ._backlog import Backlog, ClientStats
from ._backoff import Backoff
from ._checks import base_url
from ._connection import ConnectFailed, Connection, ProxySettings
from ._dispatch import Dispatcher
from ._event_stream import event_stream
from ._protocol import DEFAULT_MAX_MESSAGE_SIZE, Message
from ._provider import Provider
from ._reconnect import Finish, ReconnectPolicy, Retry
from ._secrets import HiddenLines
from .call import Call, EndReason
from .errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    LivecallError,
    ProtocolError,
)
from .events import Event, Reconnecting, ServerError, utcnow

__all__ = ["LiveClient"]

log = logging.getLogger("livecall.client")
#: ``-v`` shows why the client reconnects, or does not.
connection_log = logging.getLogger("livecall.connection")

AUTH_CLOSE_CODE = 1008
NORMAL_CLOSE_CODE = 1000
#: Default bound on the bytes of messages waiting for the plugins.
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024

E = TypeVar("E", bound=Event)
R = TypeVar("R")
Self = TypeVar("Self", bound="LiveClient")

#: Why no connection follows, for the ``-v`` log.
_STOPPED = {EndReason.ENDED: "the call ended", EndReason.CLOSED: "close() was called"}


@attrs.frozen
class _Connected:
    first: bool


@attrs.frozen
class Request:
    """What one connection attempt sends: built afresh so rotated credentials apply.

    ``url`` may carry a token in its query, and ``headers`` the bearer token:
    neither is in the ``repr``, which shows ``safe_url`` instead.
    """

    url: str = attrs.field(repr=False)
    headers: HiddenLines = attrs.field(repr=False)
    safe_url: str


def _plugin_manager(
    plugin_manager: Optional[pluggy.PluginManager], plugins: Optional[Iterable[object]]
) -> Optional[pluggy.PluginManager]:
    """The given manager; else none when ``plugins`` are given (the client's own); else the installed."""
    from .plugins import get_plugin_manager

    if plugin_manager is not None:
        return plugin_manager
    return get_plugin_manager() if plugins is None else None


class LiveClient:
    """Watches one call.  Subclasses say how to connect and what ends the call.

    Blocking API for synchronous code: ``start()``, ``wait()``, ``close()``,
    ``run()`` and ``with client:``.

    Hooks go to the plugins of ``plugin_manager`` if given, else to every
    installed plugin unless ``plugins`` is given (``[]`` too); and to the
    client's own: those in ``plugins`` and those added with ``register()``.
    ``strict`` makes ``wait()`` re-raise the first plugin or callback
    failure, for tests.  Liveness: a ping after
    ``ping_interval`` seconds without a complete message or pong, and the
    connection counts as dead when nothing answers within ``ping_timeout``,
    however many bytes trickle in.  ``connect_timeout`` bounds the whole
    opening handshake.  A message over ``max_message_size`` bytes fails the
    connection (close code 1009).  At most ``queue_size`` messages and
    ``queue_bytes`` bytes wait for the plugins.  A lost connection is retried
    up to ``max_retries`` times in a row; the count starts again once a
    connection stayed up ``stable_after`` seconds.
    """

    #: What makes the provider: its decoder, final events, command-line face.
    provider: ClassVar[Provider]

    def __init__(
        self,
        *,
        url: str,
        call_id: str,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: float = 10.0,
        max_retries: int = 5,
        backoff: Backoff = Backoff(),
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        proxy: Optional[ProxySettings] = None,
        plugin_manager: Optional[pluggy.PluginManager] = None,
        plugins: Optional[Iterable[object]] = None,
        queue_size: int = 10_000,
        strict: bool = False,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        stable_after: float = 10.0,
    ):
        base_url(url)
        if max_retries < 0:
            raise ConfigurationError("max_retries must be 0 or more")
        if queue_size < 1 or queue_bytes < 1:
            raise ConfigurationError("queue_size and queue_bytes must be 1 or more")
        if max_message_size < 1:
            raise ConfigurationError("max_message_size must be 1 or more")
        if ping_interval is not None and ping_interval <= 0 or ping_timeout <= 0:
            raise ConfigurationError("ping_interval and ping_timeout must be positive")
        plugin_manager = _plugin_manager(plugin_manager, plugins)
        self.base_url = url.rstrip("/")
        self.call = Call(provider=self.provider.name, id=call_id)
        self.max_retries = max_retries
        self._connection_for = functools.partial(
            Connection,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            ssl_context=ssl_context,
            proxy=proxy,
        )
        self._policy = ReconnectPolicy(max_retries, backoff, stable_after)
        self._close_timeout = close_timeout
        self._decoder = self.provider.new_decoder()
        self.dispatcher = Dispatcher(plugin_manager, self.call, strict=strict)
        for plugin in plugins or ():
            self.dispatcher.register(plugin)
        self._queue = Backlog(queue_size, queue_bytes)
        self._lock = threading.Lock()
        self._wake = threading.Event()  # cuts a backoff short on close() or call end
        self._ready = threading.Event()  # connected once, or finished
        self._finished = threading.Event()
        self._started = self._closing = self._ended = False
        self._connected_once = self._call_started = False
        self._connection: Optional[Connection] = None
        self._error: Optional[BaseException] = None
        self._last_server_error: Optional[str] = None
        name = f"{self.provider.name}-{call_id}"
        self._reader = threading.Thread(target=self._read_loop, name=f"livecall-reader-{name}", daemon=True)
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"livecall-dispatch-{name}", daemon=True
        )

    # --- what providers supply ------------------------------------------------

    def _request(self) -> Request:
        raise NotImplementedError

    def _handle(self, event: Event) -> Sequence[Event]:
        """Provider bookkeeping for ``event``; returns events derived from it."""
        return []

    def _fail_pending(self, error: BaseException) -> None:
        """The connection went away: anyone waiting on it must hear so."""

    # --- public API -------------------------------------------------------------

    @overload
    def on(self, event_type: type[E], fn: Callable[[Call, E], R]) -> Callable[[Call, E], R]: ...

    @overload
    def on(
        self, event_type: type[E], fn: None = None
    ) -> Callable[[Callable[[Call, E], R]], Callable[[Call, E], R]]: ...

    def on(
        self, event_type: type[E], fn: Optional[Callable[[Call, E], R]] = None
    ) -> Union[Callable[[Call, E], R], Callable[[Callable[[Call, E], R]], Callable[[Call, E], R]]]:
        """Call ``fn(call, event)`` for every event of ``event_type`` or a subclass.

        Usable as a decorator; returns ``fn``.  Callbacks run on the dispatcher
        thread after the plugins, isolated like them.  ``TypeError`` at once
        if ``event_type`` is not an event class or ``fn`` is not callable.
        """
        return self.dispatcher.on(event_type, fn)

    def off(self, event_type: type[E], fn: Callable[[Call, E], Any]) -> None:
        """Stop calling ``fn`` for ``event_type``, from the next event on; at any time.

        ``ValueError`` if ``on(event_type, fn)`` did not add it.
        """
        self.dispatcher.off(event_type, fn)

    def register(self, plugin: object, name: Optional[str] = None) -> str:
        """Add a plugin object or module to this client alone; returns its name.

        Before ``start()`` only: a watch's plugins are fixed when it starts,
        and ``register()`` then raises ``LivecallError``.  The plugin runs
        as if registered after the others (before them, unless they use
        ``tryfirst``).
        """
        return self.dispatcher.register(plugin, name)

    def unregister(self, plugin: Optional[object] = None, name: Optional[str] = None) -> object:
        """Remove a plugin that ``register()`` added, by object or name; before ``start()`` only."""
        return self.dispatcher.unregister(plugin, name)

    def events(self, buffer_size: int = 1000) -> Iterator[Event]:
        """The call's events, in order, for a ``for`` loop; starts the watch if need be.

        Call it before ``start()`` or instead of it.  The loop ends when the
        call does, then raises what ``wait()`` would; leaving it early
        (``break``, an exception) closes the watch.  At most ``buffer_size``
        events wait for the loop: a loop that falls behind holds the watch up
        as a slow plugin does, and loses nothing.
        """
        return event_stream(self, buffer_size)

    def start(self, timeout: Optional[float] = None) -> None:
        """Connect and start watching; returns once connected.

        Raises the fatal error of a watch that never connected, such as
        ``AuthenticationError``; once connected, ``wait()`` raises them.
        Plugins must be registered by now: those registered later take no part.
        """
        with self._lock:
            if self._started:
                raise LivecallError("start() was already called: a client watches one call")
            self._started = True
        self.dispatcher.prepare()
        self._dispatcher.start()
        self._reader.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"not connected within {timeout} s")
        if not self._connected_once:
            self._raise_error()  # never connected: auth refused, gave up...

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the watch is over; ``False`` if ``timeout`` ran out first.

        Re-raises the watch's fatal error in the caller's thread.
        """
        if not self._finished.wait(timeout):
            return False
        self._raise_error()
        return True

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop watching: idempotent, from any thread, also from inside a hook.

        Sends a close frame and waits at most ``timeout`` seconds (default:
        the close timeout plus one) for the threads to finish.  From inside a
        hook it returns at once: the reader may be waiting for that very
        thread to take its frames, and the watch ends once the hook returns.
        """
        self._stop(ended=False)
        if not self._started:
            return
        limit = self._close_timeout + 1.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        current = threading.current_thread()
        if current is self._dispatcher:
            return
        for thread in (self._reader, self._dispatcher):
            if thread is not current and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def run(self) -> None:
        """Watch the call to its end: ``start()``, ``wait()``, ``close()``."""
        try:
            self.start()
            self.wait()
        finally:
            self.close()

    def __enter__(self: Self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        """How many frames wait for the plugins now, and the most that ever did."""
        queue = self._queue
        return ClientStats(queued=len(queue), queue_high_water=queue.high_water, queue_size=queue.limit)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} call={self.call.id} url={self.base_url}>"

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
        if self.dispatcher.first_failure is not None:  # strict mode
            raise self.dispatcher.first_failure

    # --- reader thread ----------------------------------------------------------

    def _read_loop(self) -> None:
        finished = Finish(EndReason.ERROR, LivecallError("reader stopped unexpectedly"))
        try:
            finished = self._connect_and_read()
        except BaseException as error:  # a bug must still end the watch cleanly
            log.exception("reader thread failed")
            finished = Finish(EndReason.ERROR, error)
        finally:
            self._queue.put(finished)

    def _connect_and_read(self) -> Finish:
        first = True
        while True:
            decision: Union[Retry, Finish, None]
            try:
                decision = self._attempt(first)
            except ConnectFailed as error:
                decision = self._policy.after_failed_connect(str(error))
            except AuthenticationError as error:
                connection_log.info("not reconnecting: %s", error)
                return Finish(EndReason.AUTH_FAILED, error)
            except (ProtocolError, ConfigurationError) as error:
                connection_log.info("not reconnecting: %s", error)
                return Finish(EndReason.ERROR, error)
            else:
                first = False
            stopped = self._stopped()
            if stopped is not None:
                if decision is None:  # else the connection's end said so
                    connection_log.info("not connecting again: %s", _STOPPED[stopped])
                return Finish(stopped)
            if isinstance(decision, Finish):
                why = decision.error or "the server closed the connection normally"
                connection_log.info("not reconnecting: %s", why)
                return decision
            if decision is not None:
                self._back_off(decision)

    def _attempt(self, first: bool) -> Union[Retry, Finish, None]:
        """One connection, from fresh credentials to the policy's word on its end; None if stopped."""
        try:
            request = self._request()
        except ConfigurationError:
            raise
        except Exception as error:  # a token source that failed this time
            raise ConnectFailed(f"could not get credentials: {type(error).__name__}") from None
        connection = self._connection_for(request.url, request.headers, safe_url=request.safe_url)
        with self._lock:
            # Checked with the connection published under one lock: a call end
            # or close() from now on finds the connection and closes it.
            if self._stopped() is not None:
                return None
            self._connection = connection
        try:
            connection.open()
            self._queue.put(_Connected(first))
            self._connected_once = True
            self._ready.set()
            outcome = connection.read(self._deliver)
            stopped = self._stopped()
            if stopped is not None:
                said = _STOPPED[stopped]
                connection_log.info("connection closed (code %d); %s", outcome.code, said)
            return self._policy.after_connection(outcome, time.monotonic() - connection.opened_at)
        finally:
            with self._lock:
                self._connection = None

    def _back_off(self, retry: Retry) -> None:
        connection_log.info(
            "connection lost (%s); reconnecting in %.2f s, attempt %d",
            retry.cause,
            retry.delay,
            retry.attempt,
        )
        self._queue.put(retry)
        self._wake.wait(retry.delay)

    def _stopped(self) -> Optional[EndReason]:
        if self._ended:
            return EndReason.ENDED
        if self._closing:
            return EndReason.CLOSED
        return None

    def _deliver(self, message: Message, received_at: float) -> None:
        self._queue.put((message, received_at), len(message))

    # --- dispatcher thread --------------------------------------------------------

    def _dispatch_loop(self) -> None:
        get = self._queue.get
        decode = self._decoder.decode
        utc = timezone.utc
        from_timestamp = datetime.fromtimestamp
        read_at, received_at = 0.0, datetime.now(utc)  # frames of one read share their time
        while True:
            item = get()
            try:
                if type(item) is tuple:
                    data, frame_read_at = item
                    if frame_read_at != read_at:
                        read_at, received_at = frame_read_at, from_timestamp(frame_read_at, utc)
                    self._dispatch(decode(data, received_at, data.__class__ is bytes))
                elif type(item) is Finish:
                    self._finish(item)
                    return
                elif type(item) is _Connected:
                    if item.first:
                        self._call_started = True
                        self.dispatcher.call_hook("livecall_call_start", call=self.call)
                else:
                    self._lost(item)
            except BaseException:  # hooks are isolated; this is a bug, or a plugin calling sys.exit()
                log.exception("dispatcher failed on %r", type(item).__name__)

    def _dispatch(self, event: Event) -> None:
        if type(event) is ServerError:
            self._last_server_error = event.message
        derived = self._handle(event)
        self.dispatcher.event(event)
        for extra in derived:
            self.dispatcher.event(extra)
        if isinstance(event, self.provider.final_events):
            self._stop(ended=True)

    def _stop(self, ended: bool) -> None:
        """No more connections: the call ended, or ``close()``; closes the current one with 1000."""
        with self._lock:
            if ended:
                self._ended = True
            else:
                self._closing = True
            connection = self._connection
        self._wake.set()
        if connection is not None:
            connection.close(NORMAL_CLOSE_CODE)

    def _lost(self, retry: Retry) -> None:
        self._fail_pending(ConnectionLostError(f"connection lost: {retry.cause}"))
        if self._stopped() is None:
            self.dispatcher.event(Reconnecting(retry.attempt, retry.delay, retry.cause))

    def _finish(self, finished: Finish) -> None:
        call, error = self.call, finished.error
        said = self._last_server_error
        if isinstance(error, AuthenticationError) and error.status == AUTH_CLOSE_CODE and said:
            error = AuthenticationError(f"{error}: {said}", status=error.status, server_message=said)
        self._fail_pending(ConnectionLostError(f"the watch ended ({finished.reason})"))
        call.end_reason = finished.reason
        call.ended_at = utcnow()
        self._error = error
        try:
            if error is not None:
                self.dispatcher.call_hook("livecall_error", call=call, error=error)
            if self._call_started:  # call_end only pairs with a call_start
                self.dispatcher.call_hook("livecall_call_end", call=call, reason=finished.reason)
        finally:  # whatever happened, wait() must return
            self._finished.set()
            self._ready.set()
