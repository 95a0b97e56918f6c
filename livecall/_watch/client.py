"""The blocking client both providers share: lifecycle, reconnects, dispatch, on the hub.

A watch owns no thread.  The process's hub (:mod:`._hub`) drives it: a
connector thread opens each connection, the I/O thread reads it into the
protocol core and puts complete messages in the watch's mailbox, and a
dispatcher thread decodes them and calls hooks and callbacks in order.  The
mailbox is bounded: a stuck plugin stops the reading of its own call's
socket (TCP pushes back on that call's server) instead of growing memory
without end, and nothing is dropped.  Reconnect backoff is a timer on the
hub, not a sleeping thread.
"""

import functools
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from itertools import repeat
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union, overload
from urllib.parse import urlsplit

import attrs
import pluggy

from .._hub.connect import Handshake, ProxySettings, open_connection
from .._hub.link import Link
from .._hub.loop import Hub, Timer, acquire_hub, release_hub
from .._hub.mailbox import Mailbox
from .._hub.pools import current_mailbox
from .._observe import registry
from .._observe.watch_counts import ClientStats, WatchCounts
from .._safety.secrets import HiddenText
from .._wire.checks import base_url, seconds, whole_number
from .._wire.handshake import ConnectFailed
from .._wire.protocol import (
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_SEND_BUFFER,
    Cause,
    Message,
    Outcome,
    Protocol,
)
from ..call import Call, EndReason
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    LivecallError,
    ProtocolError,
)
from ..events import Event, Gap, Reconnecting, ServerError, utcnow
from .backoff import Backoff
from .dispatch import Dispatcher
from .event_stream import event_stream
from .lifecycle import Lifecycle, State, Step, StopReason
from .provider import Provider, Session
from .reconnect import Finish, ReconnectPolicy, Retry
from .recording import RecordingWriter

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

#: Why a connection that was open is tried again, as the reconnects metric's label says it.
_RECONNECT_REASONS = {
    Cause.DROPPED: "dropped",
    Cause.NO_PONG: "no_pong",
    Cause.CLOSE_TIMEOUT: "close_timeout",
    Cause.SERVER_CLOSED: "server_closed",
}

#: Why no connection follows, for the ``-v`` log.
_STOPPED = {EndReason.ENDED: "the call ended", EndReason.CLOSED: "close() was called"}


@attrs.frozen
class _Connected:
    first: bool
    #: The URL's path (never its query, which may hold a token) and when it opened (``time.time()``),
    #: for a recording and, after an outage, the gap's ``reopened_at``.
    path: str
    at: float
    #: The span context of its handshake while tracing, which its events' spans link to.
    span: Optional[Any] = None


@attrs.frozen
class _Sent:
    """A message the client sent, for a recording: the dispatcher writes it between the frames."""

    message: Message
    at: float


@attrs.frozen
class _Closed:
    """How the open connection ended, for a recording: the dispatcher writes it before what follows."""

    outcome: Outcome
    at: float


def _plugin_manager(
    plugin_manager: Optional[pluggy.PluginManager], plugins: Optional[Iterable[object]]
) -> Optional[pluggy.PluginManager]:
    """The given manager; else none when ``plugins`` are given (the client's own); else the installed."""
    from ..plugins import get_plugin_manager

    if plugin_manager is not None:
        return plugin_manager
    return get_plugin_manager() if plugins is None else None


class LiveClient:
    """Watches one call, with the provider's parts that its client (Hiya, Phonic) gives it.

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
    provider: ClassVar[Provider[Any]]
    #: The provider's part of this client, from ``provider.new_session()``: how
    #: to connect, and its bookkeeping.  The subclass sets it before calling
    #: ``LiveClient.__init__``, so that its own arguments are checked first.
    _session: Session

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
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
    ):
        base_url(url)
        whole_number("max_retries", max_retries)
        for name, size in (
            ("queue_size", queue_size),
            ("queue_bytes", queue_bytes),
            ("max_message_size", max_message_size),
            ("max_fragments", max_fragments),
            ("max_send_buffer", max_send_buffer),
        ):
            whole_number(name, size, minimum=1)
        for name, duration in (
            ("ping_timeout", ping_timeout),
            ("connect_timeout", connect_timeout),
            ("close_timeout", close_timeout),
        ):
            seconds(name, duration)
        for name, duration in (("backoff.base", backoff.base), ("backoff.cap", backoff.cap)):
            seconds(name, duration, zero=True)  # 0: reconnect at once
        seconds("stable_after", stable_after, zero=True)
        if ping_interval is not None:  # None: no heartbeat
            seconds("ping_interval", ping_interval)
        plugin_manager = _plugin_manager(plugin_manager, plugins)
        self.base_url = url.rstrip("/")
        self.call = Call(provider=self.provider.name, id=call_id)
        self.max_retries = max_retries
        self._protocol_for = functools.partial(
            Protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            max_fragments=max_fragments,
            max_send_buffer=max_send_buffer,
        )
        self._connect_timeout = connect_timeout
        self._ssl_context = ssl_context
        self._proxy = proxy
        self._policy = ReconnectPolicy(max_retries, backoff, stable_after)
        self._close_timeout = close_timeout
        self._queue_size, self._queue_bytes = queue_size, queue_bytes
        self._decoder = self.provider.new_decoder()
        #: What the watch counts; made anew by ``start()``, which knows whether metrics are on.
        self._counts = WatchCounts(self.provider.name, timed=False)
        self._dispatcher = Dispatcher(plugin_manager, self.call, strict=strict, counts=self._counts)
        for plugin in plugins or ():
            self._dispatcher.register(plugin)
        self._lock = threading.Lock()  # guards _life, _when_finished and _handshake_sock
        self._life = Lifecycle()
        # What start() and wait() block on, set as _life moves: to OPEN (or to FINISHED), and to
        # FINISHED (under _lock, with the move).
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._when_finished: list[Callable[[LiveClient], Any]] = []
        self._error: Optional[BaseException] = None
        self._last_server_error: Optional[str] = None
        self._hub: Optional[Hub] = None
        self._mailbox: Optional[Mailbox] = None
        # Owned by the I/O thread once started:
        self._link: Optional[Link] = None
        self._backoff: Optional[Timer] = None
        # The socket of a handshake under way, for close() to cut it short (under _lock).
        self._handshake_sock: Optional[Any] = None
        # The dispatcher's: frames of one read share their time.
        self._read_at, self._received_at = 0.0, datetime.now(timezone.utc)
        self._recording: Optional[RecordingWriter] = None

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

        Usable as a decorator; returns ``fn``.  Callbacks run on a dispatcher
        thread after the plugins, isolated like them.  ``TypeError`` at once
        if ``event_type`` is not an event class or ``fn`` is not callable.
        """
        return self._dispatcher.on(event_type, fn)

    def off(self, event_type: type[E], fn: Callable[[Call, E], Any]) -> None:
        """Stop calling ``fn`` for ``event_type``, from the next event on; at any time.

        ``ValueError`` if ``on(event_type, fn)`` did not add it.
        """
        self._dispatcher.off(event_type, fn)

    def register(self, plugin: object, name: Optional[str] = None) -> str:
        """Add a plugin object or module to this client alone; returns its name.

        Before ``start()`` only: a watch's plugins are fixed when it starts,
        and ``register()`` then raises ``LivecallError``.  The plugin runs
        as if registered after the others (before them, unless they use
        ``tryfirst``).
        """
        return self._dispatcher.register(plugin, name)

    def unregister(self, plugin: Optional[object] = None, name: Optional[str] = None) -> object:
        """Remove a plugin that ``register()`` added, by object or name; before ``start()`` only."""
        return self._dispatcher.unregister(plugin, name)

    def record(self, path: Union[str, "os.PathLike[str]"], scrub: Iterable[str] = ()) -> RecordingWriter:
        """Also write the watch to ``path``, for replaying it later; before ``start()`` only.

        The file (readable by its owner only, replaced if it exists) follows
        livecall's recording format (see :doc:`recording-format`): every
        frame in the order the plugins see it, the messages the client sent,
        every close, reconnect and the end, each line written as it happens.
        No credential reaches it; ``scrub`` takes out more: ``"phones"``
        (every phone number, each by a placeholder of its own), ``"text"``
        (the call's words, letter by letter).  Returns the recording under
        way, whose ``error`` says whether a write failed: that stops the
        recording, never the watch.  ``ConfigurationError`` at once if the
        file cannot be created or ``scrub`` names something else.
        """
        with self._lock:
            if self._life.state is not State.NEW:
                raise LivecallError("record() must come before start(): a recording holds the whole watch")
            if self._recording is not None:
                raise LivecallError(f"the watch is already recorded to {self._recording.path}")
            self._recording = RecordingWriter(path, self.provider.name, scrub)
            return self._recording

    def events(self, buffer_size: int = 1000) -> Iterator[Event]:
        """The call's events, in order, for a ``for`` loop; starts the watch if need be.

        Call it before ``start()`` or instead of it.  The loop ends when the
        call does, then raises what ``wait()`` would; leaving it early
        (``break``, an exception) closes the watch.  At most ``buffer_size``
        events wait for the loop: a loop that falls behind holds the watch up
        as a slow plugin does, and loses nothing.
        """
        return event_stream(self.register, self._begin, self.wait, self.close, buffer_size)

    def start(self, timeout: Optional[float] = None, *, wait: bool = True) -> None:
        """Connect and start watching; returns once connected (or at once with ``wait=False``).

        Raises the fatal error of a watch that never connected, such as
        ``AuthenticationError``; once connected, ``wait()`` raises them.
        With ``wait=False`` every error is raised by ``wait()``.
        Plugins must be registered by now: those registered later take no part.
        """
        with self._lock:
            if self._life.state is not State.NEW:
                raise LivecallError("start() was already called: a client watches one call")
            self._life.start()
        self._dispatcher.prepare()
        counts = self._counts = self._dispatcher.counts = WatchCounts(self.provider.name, registry.timing())
        self._dispatcher.timed = counts.timed
        tracer = registry.tracer()
        if tracer is not None:
            self._dispatcher.trace(tracer)
        hub = acquire_hub()
        self._mailbox = hub.new_mailbox(
            self._queue_size,
            self._queue_bytes,
            self._dispatch_item,
            self._room,
            self._describe,
            self._running,
        )
        counts.queued = self._mailbox.__len__
        self._dispatcher.mailbox = self._mailbox
        registry.started(counts)
        with self._lock:
            self._hub = hub
        hub.call_soon(self._begin_attempt)
        if not wait:
            return
        if not self._ready.wait(timeout):
            raise TimeoutError(f"not connected within {timeout} s")
        if not self._life.connected_once:
            self._raise_error()  # never connected: auth refused, gave up...

    def _begin(self) -> None:
        """``start()``, unless it was called already (the events loop's first step)."""
        if self._life.state is State.NEW:
            self.start()

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
        the close timeout plus one) for the watch to end.  From inside one of
        this call's hooks it returns at once: the watch ends once the hook
        returns.  It never holds up the hub or the other calls.
        """
        self._stop(EndReason.CLOSED)
        if self._life.state is State.NEW or current_mailbox() is self._mailbox:
            return
        self._finished.wait(self._close_timeout + 1.0 if timeout is None else timeout)

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
    def finished(self) -> bool:
        """Whether the watch is over (``wait()`` would return at once)."""
        return self._finished.is_set()

    @property
    def stats(self) -> ClientStats:
        """How many frames wait for the plugins now and the most that ever did, and what the watch counted."""
        mailbox, counts = self._mailbox, self._counts
        return ClientStats(
            queued=len(mailbox) if mailbox is not None else 0,
            queue_high_water=mailbox.high_water if mailbox is not None else 0,
            queue_size=mailbox.limit if mailbox is not None else self._queue_size,
            messages=counts.messages,
            events=counts.by_kind(),
            reconnects=sum(counts.reconnects.values()),
            plugin_failures=counts.plugin_failures,
        )

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (between a reconnect's loss and the next opening: not)."""
        return self._counts.connected

    @property
    def last_frame_age(self) -> Optional[float]:
        """Seconds since a frame of any kind came (a message, a pong, a close); None before connecting.

        An open connection's heartbeat keeps this under ``ping_interval``
        plus ``ping_timeout``; more means the transport is wedged.
        """
        return self._counts.age(self._counts.last_frame_at)

    @property
    def last_message_age(self) -> Optional[float]:
        """Seconds since the last message (text or binary) came; None before the first.

        A quiet call is normal: the heartbeat, not this, says whether the connection lives.
        """
        return self._counts.age(self._counts.last_message_at)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} call={self.call.id} url={self.base_url}>"

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
        if self._dispatcher.first_failure is not None:  # strict mode
            raise self._dispatcher.first_failure

    def add_done_callback(self, fn: Callable[["LiveClient"], Any]) -> None:
        """Call ``fn(client)`` once the watch is over, after ``livecall_call_end``.

        For code that holds many watches without a thread for each (a worker,
        ``wait_any()``): ``fn`` runs on the dispatcher thread that finished the
        watch, or at once in the caller's thread if it is over already, so it
        must be quick and must not wait for the watch.  ``wait()`` returns
        before it is called.  An exception it raises is logged, never passed
        on.
        """
        with self._lock:
            if not self._finished.is_set():
                self._when_finished.append(fn)
                return
        _call_done_callback(fn, self)

    def remove_done_callback(self, fn: Callable[["LiveClient"], Any]) -> None:
        """Forget ``fn``, added with :meth:`add_done_callback`; nothing happens if it was not."""
        with self._lock:
            if fn in self._when_finished:
                self._when_finished.remove(fn)

    def _in_own_hook(self) -> bool:
        """Whether this thread is dispatching this very call."""
        return self._mailbox is not None and current_mailbox() is self._mailbox

    def _send(self, message: Message, failed: Callable[[BaseException], None]) -> None:
        """Send ``message`` on the open connection from the I/O thread; ``failed`` hears if it cannot."""
        hub = self._hub
        if hub is None or self._link is None:
            raise ConnectionLostError("not connected")

        def send() -> None:
            link = self._link
            if link is None:
                failed(ConnectionLostError("not connected"))
                return
            try:
                link.send(message)
            except Exception as error:
                failed(error)
                return
            if self._recording is not None and self._mailbox is not None:
                self._mailbox.put(_Sent(message, time.time()))

        hub.call_soon(send)

    # --- connecting: a connector thread, then the I/O thread ------------------------

    def _begin_attempt(self) -> None:
        """On the I/O thread: a connection attempt, unless the watch is stopping."""
        self._backoff = None
        stopped = self._proceed(Step.CONNECT)
        if stopped is not None:
            self._stop_connecting(stopped)
            return
        assert self._hub is not None
        # A call that was streaming comes back ahead of new handshakes (see ConnectorPool).
        self._hub.connectors.submit(self._handshake, reconnect=self._life.connected_once)

    def _handshake(self) -> None:
        """On a connector thread: fresh credentials and the blocking opening handshake."""
        result: Union[Handshake, BaseException]
        path = ""
        tracer, span = self._dispatcher.tracer, None
        try:
            try:
                request = self._session.request(self.base_url)
                path = urlsplit(request.safe_url).path
            except ConfigurationError:
                raise
            except Exception as error:  # a token source that failed this time
                raise ConnectFailed(f"could not get credentials: {type(error).__name__}") from None
            clock = time.monotonic
            began = clock()
            if tracer is not None:
                span = tracer.connecting(self.provider.name, self.call.id)
            proxy = self._proxy
            via = f" through the proxy {proxy.host}:{proxy.port}" if proxy is not None else ""
            connection_log.info("connecting to %s%s", request.safe_url, via)
            result = open_connection(
                HiddenText(request.url),  # its query may hold a token: kept out of tracebacks
                request.headers,
                safe_url=request.safe_url,
                deadline=clock() + self._connect_timeout,
                clock=clock,
                ssl_context=self._ssl_context,
                proxy=self._proxy,
                on_socket=self._adopt,
            )
            connection_log.info("handshake with %s: HTTP 101, connected", request.safe_url)
            if self._counts.timed:
                registry.thread_timings().handshakes.observe(clock() - began)
        except BaseException as error:
            result = error
        linked = None
        if tracer is not None and span is not None:
            linked = tracer.connected(span, result if isinstance(result, BaseException) else None)
        assert self._hub is not None
        self._hub.call_soon(functools.partial(self._attempt_over, result, path, linked))

    def _adopt(self, sock: Any) -> None:
        with self._lock:
            self._handshake_sock = sock
            stopped = self._life.stop_reason is not None
        if stopped:
            _shut_down(sock)

    def _attempt_over(
        self, result: Union[Handshake, BaseException], path: str, span: Optional[Any] = None
    ) -> None:
        """On the I/O thread: the handshake's result becomes a link, a retry or the end.

        ``path`` is the path of the URL it connected to, for a recording.
        """
        with self._lock:
            self._handshake_sock = None
        if isinstance(result, Handshake):
            first = not self._life.connected_once  # only this thread changes it
            stopped = self._proceed(Step.OPENED)
            if stopped is not None:
                result.sock.close()
                self._stop_connecting(stopped)
                return
            assert self._hub is not None and self._mailbox is not None
            self._mailbox.put(_Connected(first, path, time.time(), span))
            protocol = self._protocol_for(time.monotonic())
            link = Link(
                self._hub, result.sock, result.rest, protocol, self._deliver, self._link_ended, self._counts
            )
            if not link.over:
                self._link = link
            self._ready.set()  # after the link is in place: start() returning means send() works
            return
        if isinstance(result, ConnectFailed):
            self._decide(self._counted(self._policy.after_failed_connect(str(result)), "connect_failed"))
            return
        decision: Finish
        if isinstance(result, AuthenticationError):
            connection_log.info("not reconnecting: %s", result)
            decision = Finish(EndReason.AUTH_FAILED, result)
        elif isinstance(result, (ProtocolError, ConfigurationError)):
            connection_log.info("not reconnecting: %s", result)
            decision = Finish(EndReason.ERROR, result)
        else:  # a bug must still end the watch cleanly
            log.error("connection attempt failed", exc_info=result)
            decision = Finish(EndReason.ERROR, result)
        self._finish(decision)

    # --- the I/O thread ------------------------------------------------------------

    def _deliver(self, messages: list[Message], received_at: float) -> bool:
        mailbox = self._mailbox
        assert mailbox is not None
        self._counts.messages += len(messages)  # the I/O thread's count: one add per read
        # zip and map run in C: no Python frame per message on the I/O thread.
        return mailbox.put_many(list(zip(messages, repeat(received_at))), list(map(len, messages)))

    def _room(self) -> None:
        """From a dispatcher: the mailbox has room; reading may go on."""
        hub = self._hub
        if hub is not None:
            hub.call_soon(self._resume)

    def _resume(self) -> None:
        if self._link is not None:
            self._link.resume()

    def _link_ended(self, outcome: Outcome, up_for: float) -> None:
        self._link = None
        if self._recording is not None:
            assert self._mailbox is not None
            self._mailbox.put(_Closed(outcome, time.time()))
        decision = self._policy.after_connection(outcome, up_for)
        self._decide(self._counted(decision, _RECONNECT_REASONS.get(outcome.cause, "closed")), outcome.code)

    def _counted(self, decision: Union[Retry, Finish], why: str) -> Union[Retry, Finish]:
        """On the I/O thread: a retry counts as a reconnect, by ``why`` (a metric label: a fixed word)."""
        if type(decision) is Retry:
            self._counts.reconnecting(why)
        return decision

    def _decide(self, decision: Union[Retry, Finish], closed_with: Optional[int] = None) -> None:
        """A retry after a backoff, or the end; a stopping watch ends, for its stop's reason.

        ``closed_with`` is the close code of a connection that was open, for the log.
        """
        stopped = self._proceed(Step.RETRY) if type(decision) is Retry else self._life.stop_reason
        if stopped is not None:
            if closed_with is not None:
                connection_log.info("connection closed (code %d); %s", closed_with, _STOPPED[stopped])
            self._finish(Finish(stopped))
        elif isinstance(decision, Finish):
            connection_log.info(
                "not reconnecting: %s", decision.error or "the server closed the connection normally"
            )
            self._finish(decision)
        else:  # a Retry: _proceed() moved the watch to BACKING_OFF
            connection_log.info(
                "connection lost (%s); reconnecting in %.2f s, attempt %d",
                decision.cause,
                decision.delay,
                decision.attempt,
            )
            assert self._hub is not None and self._mailbox is not None
            self._mailbox.put(attrs.evolve(decision, at=time.time()))  # when lost: a gap's lost_at
            self._backoff = self._hub.call_later(decision.delay, self._begin_attempt)

    def _on_stop(self) -> None:
        """On the I/O thread: close the open connection with 1000, or cut a backoff short."""
        if self._link is not None:
            self._link.close(NORMAL_CLOSE_CODE)
        elif self._backoff is not None:
            self._backoff.cancel()
            self._begin_attempt()

    def _proceed(self, step: Step) -> Optional[StopReason]:
        """On the I/O thread: ``step``, unless the watch is stopping; then why, to finish with."""
        with self._lock:
            return self._life.proceed(step)

    def _stop_connecting(self, stopped: StopReason) -> None:
        """On the I/O thread: the watch is stopping, so no attempt or connection follows."""
        connection_log.info("not connecting again: %s", _STOPPED[stopped])
        self._finish(Finish(stopped))

    def _finish(self, finished: Finish) -> None:
        """On the I/O thread: no connection follows; the dispatcher runs the last hooks."""
        with self._lock:
            self._life.move(Step.FINISH)
        assert self._mailbox is not None
        self._mailbox.put(finished)

    def _stop(self, reason: StopReason) -> None:
        """No more connections: the call ended, or ``close()``; closes the current one with 1000."""
        with self._lock:
            state = self._life.stop(reason)
            hub, sock = self._hub, self._handshake_sock
        if sock is not None:
            _shut_down(sock)  # a handshake waiting on a mute server ends now
        # Only a STOPPING watch has a connection or a backoff left to stop: once FINISHING (the
        # usual end: the server's close frame came with the final message), the I/O thread is
        # not woken for nothing.
        if hub is not None and state is State.STOPPING:
            hub.call_soon(self._on_stop)

    # --- a dispatcher thread --------------------------------------------------------

    def _running(self) -> Optional[str]:
        return self._dispatcher.running

    def _describe(self) -> str:
        running = self._dispatcher.running
        return f"call {self.call.provider}:{self.call.id}" + (f", plugin {running}" if running else "")

    #: The dispatcher's: the first loss (``Retry``) of the outage under way, for its gap; None
    #: while connected.
    _outage: Optional[Retry] = None

    def _dispatch_item(self, item: Any) -> None:
        try:
            if type(item) is tuple:
                data, read_at = item
                if read_at != self._read_at:
                    self._read_at = read_at
                    self._received_at = datetime.fromtimestamp(read_at, timezone.utc)
                event = self._decoder.decode(data, self._received_at, data.__class__ is bytes)
                if self._recording is not None:  # once decoded: redact() knows its audio links then
                    self._recording.received(read_at, data)
                counts = self._counts
                self._dispatch(event)
                if counts.timed:
                    self._dispatcher.mailbox.timings.lag.observe(time.time() - read_at)
            elif type(item) is Finish:
                self._finish_watch(item)
            elif type(item) is _Connected:
                self._dispatcher.connection_span = item.span  # its events' spans link to it
                if self._recording is not None:
                    self._recording.opened(item.at, item.path)
                if item.first:
                    self._outage = None  # attempts that failed before the first connection leave no gap
                    self._life.call_started = True
                    self._dispatcher.call_hook("livecall_call_start", self.call)
                else:
                    self._reopened(item.at)
            elif type(item) is Retry:
                if self._recording is not None:
                    self._recording.lost(item.cause)
                self._lost(item)
            elif type(item) is _Sent and self._recording is not None:
                self._recording.sent(item.at, item.message)
            elif type(item) is _Closed and self._recording is not None:
                self._recording.closed(item.at, item.outcome)
            else:  # the I/O thread puts nothing else: a bug, which must not pass for a retry
                log.error("call %s: an unknown item in its mailbox, ignored: %r", self.call.id, item)
        except BaseException:  # hooks are isolated; this is a bug, or a plugin calling sys.exit()
            log.exception("dispatcher failed on %r", type(item).__name__)

    def _dispatch(self, event: Event) -> None:
        if type(event) is ServerError:
            self._last_server_error = event.message
        derived = self._session.handle(self.call, event)
        self._dispatcher.event(event)
        for extra in derived:
            self._dispatcher.event(extra)
        if isinstance(event, self.provider.final_events):
            self._stop(EndReason.ENDED)

    def _lost(self, retry: Retry) -> None:
        if self._outage is None:  # the outage's first loss, not its failed attempts: what its gap says
            self._outage = retry
        self._session.connection_lost(ConnectionLostError(f"connection lost: {retry.cause}"))
        if self._life.stop_reason is None:
            self._dispatcher.event(Reconnecting(retry.attempt, retry.delay, retry.cause))

    def _reopened(self, at: float) -> None:
        """A connection opened (``at``) after an outage: its gap goes on the call, then to the plugins."""
        outage, self._outage = self._outage, None
        if outage is None:
            return
        # min(): a wall clock set back during the outage must not put the loss after the reopening.
        lost = at if outage.at is None else min(outage.at, at)
        reopened_at = datetime.fromtimestamp(at, timezone.utc)
        gap = Gap(
            lost_at=datetime.fromtimestamp(lost, timezone.utc),
            reopened_at=reopened_at,
            reason=outage.cause,
            replayed=self.provider.replays_missed,
            received_at=reopened_at,
        )
        self.call.gaps = (*self.call.gaps, gap)
        self._dispatcher.event(gap)

    def _finish_watch(self, finished: Finish) -> None:
        call, error = self.call, finished.error
        said = self._last_server_error
        if isinstance(error, AuthenticationError) and error.status == AUTH_CLOSE_CODE and said:
            error = AuthenticationError(f"{error}: {said}", status=error.status, server_message=said)
        self._session.connection_lost(ConnectionLostError(f"the watch ended ({finished.reason})"))
        call.end_reason = finished.reason
        call.ended_at = utcnow()
        self._error = error
        if self._recording is not None:  # first: the file is whole even if a hook never returns
            self._recording.ended(time.time(), finished.reason.value)
        try:
            if error is not None:
                self._dispatcher.call_hook("livecall_error", call, error)
            if self._life.call_started:  # call_end only pairs with a call_start
                self._dispatcher.call_hook("livecall_call_end", call, finished.reason)
        finally:  # whatever happened, wait() must return
            assert self._hub is not None
            registry.finished(self._counts)
            release_hub(self._hub)  # first: once wait() returns, the hub may be configured anew
            with self._lock:
                self._life.move(Step.DONE)
                self._finished.set()
                callbacks, self._when_finished = self._when_finished, []
            self._ready.set()  # a watch that never connected: start() waits no more
            for callback in callbacks:
                _call_done_callback(callback, self)


def _call_done_callback(fn: Callable[[LiveClient], Any], client: LiveClient) -> None:
    try:
        fn(client)
    except Exception:
        log.exception("a done callback of call %s failed", client.call.id)


def _shut_down(sock: Any) -> None:
    """Wake whoever waits on the socket; it stays open for its owner to close."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
