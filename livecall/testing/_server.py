"""The Simulator: a real WebSocket server on loopback playing one scripted call.

It accepts connections itself (a named daemon thread each) and hands them to
websockets' threaded server for the handshake and framing, so every thread is
named and daemonic and ``stop()`` can always cut a stuck connection.
"""

import inspect
import logging
import os
import selectors
import socket
import threading
import time
import weakref
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs

try:
    from websockets.sync.server import serve
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "livecall.testing needs websockets>=12 (the testing extra): pip install 'websockets>=12'"
    ) from exc

from .._wire.checks import seconds
from ._call import CallState
from ._driver import Driver
from ._endpoint import LoopbackEndpoint
from ._options import ScenarioOptions
from ._record import ConnectionRecord, Journal
from ._scenarios import build, provider_spec
from ._sockets import SimSocket
from ._steps import AwaitJoin, Close

T = TypeVar("T")
_GRACE = 2.0  # seconds stop() lets connections close with 1001 before cutting them


def _serve_options() -> dict[str, Any]:
    """Options for ``serve()``.

    Keepalive pings are off where websockets has them (>= 14): a server ping
    timing out would end the ``silence`` fault.  The logger never logs at debug
    level, where websockets dumps request headers, credentials included.
    """
    logger = logging.getLogger("livecall.testing.websockets")
    logger.setLevel(logging.INFO)
    options: dict[str, Any] = {"compression": None, "open_timeout": 5, "close_timeout": 1, "logger": logger}
    if "ping_interval" in inspect.signature(serve).parameters:
        options["ping_interval"] = None
    return options


def _release_wakeup(server: Any) -> None:
    """Close the wake-up channel ``serve()`` prepares for ``serve_forever()``, unused here."""
    for name in ("shutdown_watcher", "shutdown_notifier"):
        end = getattr(server, name, None)
        if isinstance(end, socket.socket):
            end.close()
        elif isinstance(end, int):
            os.close(end)


class Simulator(LoopbackEndpoint):
    """A provider's WebSocket endpoint, simulated on ``host`` (loopback by default).

    ``provider`` is ``"hiya"`` or ``"phonic"``; ``scenario`` a name from
    :func:`scenarios` (default: the provider's normal call).  ``port=0`` picks a
    free port; ``pace`` is the pause between scripted messages, in seconds (0 or
    more: anything else is a ``ValueError``).
    Other keyword arguments are the expected credentials (Hiya: ``token``,
    ``conversation_token``, ``user_id``; Phonic: ``conversation_id``,
    ``api_key``, ``session_token``; each has a default) and the scenario
    options of :class:`ScenarioOptions`.

    Handshakes: 404 for an unknown path, 401 for a missing or wrong credential
    (bearer token, Hiya conversationToken, Phonic API key or session token, or
    a session token sent with an Authorization header), 403 for valid
    credentials on another conversation (Phonic conversation id, Hiya user
    id), 400 for a missing ``x-hiya-account-user-id``.

    The call outlives connections: a reconnecting client resumes it, and the
    newest connection takes the call over from an older one (closed with 1001).
    """

    def __init__(
        self,
        provider: str,
        scenario: Optional[str] = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pace: float = 0.0,
        **kwargs: Any,
    ):
        self._spec = spec = provider_spec(provider)
        self.provider = provider
        self.scenario = scenario or spec.default_scenario
        # Checked as every duration is (a ValueError): a negative or NaN pause would never pass.
        self.pace = seconds("pace", pace, zero=True)
        option_names = set(attrs.fields_dict(ScenarioOptions))
        unknown = sorted(set(kwargs) - set(spec.credentials) - option_names)
        if unknown:
            raise TypeError(
                f"unknown Simulator argument(s) {unknown}: {provider} credentials are "
                f"{sorted(spec.credentials)}, scenario options {sorted(option_names)}"
            )
        self._credentials = {name: kwargs.pop(name, default) for name, default in spec.credentials.items()}
        script = build(spec, self.scenario, ScenarioOptions(**kwargs), self._credentials)
        self._journal = Journal()
        self._call = CallState(script, self._journal)
        self._bind: tuple[str, int] = (host, port)
        self._address: Optional[tuple[str, int]] = None
        self._state = "new"
        self._stopped = threading.Event()
        self._sockets: dict[SimSocket, threading.Thread] = {}
        self._pending: weakref.WeakKeyDictionary[Any, ConnectionRecord] = weakref.WeakKeyDictionary()

    # --- lifecycle ----------------------------------------------------------

    def start(self) -> "Simulator":
        """Listen and serve in background threads; returns self."""
        if self._state != "new":
            raise RuntimeError("a Simulator can be started only once")
        self._listener = socket.create_server(self._bind)
        self._listener.setblocking(False)
        self._address = self._listener.getsockname()[:2]
        self._server = serve(
            self._handle,
            sock=self._listener,
            process_request=self._process_request,
            process_response=self._process_response,
            **_serve_options(),
        )
        _release_wakeup(self._server)
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"livecall-sim-{self.provider}-accept", daemon=True
        )
        self._accept_thread.start()
        self._state = "running"
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: open calls get close 1001, stuck ones a TCP reset.

        Idempotent; returns within about ``timeout`` seconds whatever the clients do.
        """
        with self._journal.condition:
            running, self._state = self._state == "running", "stopped"
            self._call.set(stopping=True)
        self._stopped.set()
        if not running:
            return
        deadline = time.monotonic() + timeout
        self._wake_writer.send(b"x")
        self._accept_thread.join(timeout)
        self._listener.close()
        with self._journal.condition:
            for sock in self._sockets:
                if not sock.in_call:
                    sock.abort()
        if not self._wait_idle(min(_GRACE, timeout)):
            with self._journal.condition:
                for sock in self._sockets:
                    sock.abort(wake_writers=True)
            self._wait_idle(max(0.0, deadline - time.monotonic()))
        self._wake_reader.close()
        self._wake_writer.close()

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called (from another thread) or the wait is
        interrupted (Ctrl-C); stops the simulator either way."""
        if self._state == "new":
            self.start()
        try:
            self._stopped.wait()
        finally:
            self.stop()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._address else "not started"
        return f"<Simulator {self.provider}/{self.scenario} {where} {self._state}>"

    # --- what tests and clients use ------------------------------------------

    @property
    def connections(self) -> tuple[ConnectionRecord, ...]:
        """Every connection attempt so far, oldest first."""
        return self._journal.records()

    @property
    def accepted(self) -> int:
        """Handshakes answered with 101."""
        return sum(record.accepted for record in self.connections)

    @property
    def rejected(self) -> int:
        """Handshakes answered with an HTTP error."""
        return sum(record.status is not None and not record.accepted for record in self.connections)

    @property
    def call_ended(self) -> bool:
        """Whether the call's end was sent (Hiya ``event:callEnd``, Phonic ``conversation-ended``)."""
        return self._call.ended

    @property
    def ends_call(self) -> bool:
        """Whether the scenario plays the call to its end (``auth`` and ``auth-close`` never do)."""
        last = self._call.script.steps[-1]
        return isinstance(last, Close) and last.ends_call

    @property
    def awaits_join(self) -> bool:
        """Whether the call waits for ``client:joinCall`` (Hiya's screening) before it goes on."""
        return any(isinstance(step, AwaitJoin) for step in self._call.script.steps)

    def wait_for_call_over(self, timeout: Optional[float] = None) -> bool:
        """Block until the call has ended and every client has closed its connection;
        False if ``timeout`` ran out first, or :meth:`stop` was called (from another thread)."""
        try:
            self.wait_for(lambda: self._call.stopping or self._call_over(), timeout)
        except TimeoutError:
            return False
        return self._call_over()

    @property
    def joined(self) -> bool:
        """Whether a Hiya client sent ``client:joinCall``."""
        return self._call.joined

    def wait_for(self, predicate: Callable[[], T], timeout: Optional[float] = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return it; TimeoutError after ``timeout`` s.

        The predicate is re-checked whenever anything is recorded (a connection,
        a frame, a close, a change to the call), never by polling.
        """
        return self._journal.wait_for(predicate, timeout)

    # --- server internals ----------------------------------------------------

    def _call_over(self) -> bool:
        return self.call_ended and all(map(_gone, self.connections))

    def _wait_idle(self, timeout: float) -> bool:
        with self._journal.condition:
            return self._journal.condition.wait_for(lambda: not self._sockets, timeout)

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_reader, selectors.EVENT_READ)
        count = 0
        try:
            while True:
                if any(key.fileobj is self._wake_reader for key, _ in selector.select()):
                    return
                try:
                    accepted, address = self._listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                count += 1
                sock = SimSocket.adopt(accepted)
                name = f"livecall-sim-{self.provider}-conn-{count}"
                thread = threading.Thread(
                    target=self._serve_one, args=(sock, address), name=name, daemon=True
                )
                with self._journal.condition:
                    self._sockets[sock] = thread
                thread.start()
        finally:
            selector.close()

    def _serve_one(self, sock: SimSocket, address: Any) -> None:
        try:
            self._server.handler(sock, address)
        finally:
            sock.close()
            with self._journal.condition:
                del self._sockets[sock]
                self._journal.condition.notify_all()

    def _process_request(self, connection: Any, request: Any) -> Any:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        record = self._journal.open(parts.path, query, tuple(request.headers.raw_items()))
        self._pending[connection] = record
        reader = getattr(connection, "recv_events_thread", None)  # websockets' own, for thread dumps
        if reader is not None:
            reader.name = f"{threading.current_thread().name}-websockets"
        rejection = self._spec.check(record, self._credentials)
        if rejection is None and self._call.script.refuse:
            rejection = self._call.script.refuse, "credentials refused"
        if rejection is None:
            return None
        status, text = rejection
        return connection.protocol.reject(status, text + "\n")

    def _process_response(self, connection: Any, request: Any, response: Any) -> None:
        self._journal.update(self._pending[connection], status=response.status_code)

    def _handle(self, ws: Any) -> None:
        record = self._pending.pop(ws)
        Driver(ws, record, self._call, self._journal, self._spec, self.pace).run()


def _gone(record: ConnectionRecord) -> bool:
    """A connection that is over: closed, or refused at its handshake."""
    return record.closed or (record.status is not None and not record.accepted)
