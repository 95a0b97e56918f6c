"""Replay: a recorded watch served again on loopback, as its provider served it, faults on demand.

It answers handshakes as the :class:`Simulator` does (same paths, same rules,
the simulator's made-up credentials), then plays the recording's frames at
their recorded pace (or faster), waits where the client spoke (Hiya's
join), and breaks connections where ``chaos`` says, so that a bug seen once
in a real call can be played again, and a plugin tested against the calls
its users really get.
"""

import math
import os
import socket
import threading
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar, Union
from urllib.parse import parse_qsl, unquote, urlsplit

from ._chaos import FAULTS, Fault, parse_fault
from ._endpoint import LoopbackEndpoint
from ._playback import Playback, snapshot_type
from ._record import ConnectionRecord, Journal
from ._recording import Recording, read_recording
from ._replay_peer import ReplayPeer
from ._scenarios import provider_spec
from ._wire import answer_upgrade, read_request

__all__ = ["Replay"]

T = TypeVar("T")
_HANDSHAKE_TIMEOUT = 5.0
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


class Replay(LoopbackEndpoint):
    """A recording (``livecall record``'s file at ``path``) served on ``host`` (loopback by default).

    ``speed`` is how fast it plays: 1 as recorded, 2 twice as fast, 0 as fast
    as the client reads.  With ``loop`` it starts over once it has ended, for
    the next connection.  ``chaos`` is a list of faults, as ``--chaos``
    takes them (``"drop@50%"``, ``"close=1011@12"``...; see
    :doc:`/recording`).  ``join_timeout`` is how long it waits, where the
    recorded client sent a message (Hiya's ``client:joinCall``), for the
    client to send its own before going on.  ``port=0`` picks a free port.

    Handshakes are checked as the :class:`Simulator` checks them, against
    the simulator's made-up credentials (:attr:`credentials`), except that a
    Phonic replay serves the conversation id the recording was made of.
    ``ValueError`` (:class:`RecordingError` for the file) says what is
    wrong with the arguments before anything is served.
    """

    #: Each ``chaos`` fault's name and what it does.
    FAULTS = FAULTS

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        speed: float = 1.0,
        loop: bool = False,
        chaos: Iterable[Union[str, Fault]] = (),
        join_timeout: float = 30.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if isinstance(speed, bool) or not (math.isfinite(speed) and speed >= 0):
            raise ValueError(
                f"speed must be a finite number >= 0 (0: as fast as the client reads), not {speed!r}"
            )
        self.recording: Recording = read_recording(path)
        self.provider = self.recording.provider
        self._spec = spec = provider_spec(self.provider)
        self._credentials = dict(spec.credentials)
        recorded_path = self.recording.first_path()
        if self.provider == "phonic" and recorded_path and recorded_path.startswith("/v1/conversations/"):
            self._credentials["conversation_id"] = unquote(recorded_path.split("/")[3])
        faults = [fault if isinstance(fault, Fault) else parse_fault(fault) for fault in chaos]
        self._journal = Journal()
        self._playback = Playback(
            self.recording,
            faults,
            speed=speed,
            loop=loop,
            join_timeout=join_timeout,
            snapshot_type=snapshot_type(self.provider),
            journal=self._journal,
        )
        self._bind = (host, port)
        self._address: Optional[tuple[str, int]] = None
        self._threads: list[threading.Thread] = []
        self._peers: list[ReplayPeer] = []
        self._state = "new"

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> "Replay":
        """Listen and serve in background threads; returns self."""
        if self._state != "new":
            raise RuntimeError("a Replay can be started only once")
        self._listener = socket.create_server(self._bind)
        self._address = self._listener.getsockname()[:2]
        self._spawn(self._accept_loop, f"livecall-replay-{self.provider}-accept")
        self._state = "running"
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: open connections get close 1001, then a reset. Idempotent."""
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        self._playback.stop()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._listener.close()
        with self._journal.condition:
            peers = list(self._peers)
        for peer in peers:
            peer.close(1001, "replay stopping")
            peer.abort()
        for thread in list(self._threads):
            thread.join(timeout)

    def __enter__(self) -> "Replay":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._address else "not started"
        return f"<Replay {self.provider} ({self.recording.frames} frames) {where} {self._state}>"

    # --- what tests and clients use ---------------------------------------------

    @property
    def awaits_join(self) -> bool:
        """Whether the recorded client sent a message the replay waits for (Hiya's join: ``--join``)."""
        return any(entry.kind == "send" for entry in self.recording.entries)

    @property
    def connections(self) -> tuple[ConnectionRecord, ...]:
        """Every connection attempt so far, oldest first."""
        return self._journal.records()

    @property
    def finished(self) -> bool:
        """Whether the recording has played to its end (never, with ``loop``)."""
        return self._playback.finished

    def wait_finished(self, timeout: Optional[float] = None) -> bool:
        """Block until the recording has played to its end and every connection is closed;
        False if ``timeout`` ran out first or the replay was stopped."""
        try:
            self.wait_for(lambda: self._playback.stopping or self._over(), timeout)
        except TimeoutError:
            return False
        return self._over()

    def wait_for(self, predicate: Callable[[], T], timeout: Optional[float] = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return it; TimeoutError after ``timeout`` s.

        Re-checked whenever a connection, a frame or the playback changes, never by polling.
        """
        return self._journal.wait_for(predicate, timeout)

    # --- serving -------------------------------------------------------------------

    def _over(self) -> bool:
        return self.finished and all(record.closed or not record.accepted for record in self.connections)

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        count = 0
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # the listener was shut down
            count += 1
            self._spawn(self._serve_one, f"livecall-replay-{self.provider}-conn-{count}", sock, count)

    def _serve_one(self, sock: socket.socket, count: int) -> None:
        try:
            sock.settimeout(_HANDSHAKE_TIMEOUT)
            request = read_request(sock)
            record = self._open(request)
            rejection = self._spec.check(record, self._credentials)
            if rejection is None and self._playback.take_refusal():
                rejection = 401, "credentials refused (chaos: refuse)"
            if rejection is not None:
                self._refuse(sock, record, *rejection)
                return
            answer_upgrade(sock, request)
        except (OSError, ValueError, StopIteration):
            sock.close()  # a client that left, or a request that is no upgrade
            return
        self._journal.update(record, status=101)
        peer = ReplayPeer(sock, record, self._journal, self._playback.client_message)
        with self._journal.condition:
            self._peers.append(peer)
        previous = self._playback.claim(peer)
        if previous is not None and not previous.over:
            previous.abort()  # the newest connection takes over, as the provider would
        peer.start_reading(f"livecall-replay-{self.provider}-conn-{count}-reader")
        self._playback.play(peer)

    def _open(self, request: bytes) -> ConnectionRecord:
        lines = request.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        parts = urlsplit(target)
        headers = tuple(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:] if ":" in line)
        )
        return self._journal.open(parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)), headers)

    def _refuse(self, sock: socket.socket, record: ConnectionRecord, status: int, text: str) -> None:
        body = (text + "\n").encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Refused')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.sendall(head.encode() + body)
        finally:
            sock.close()
            self._journal.update(record, status=status, closed=True)
