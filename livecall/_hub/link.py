"""One open WebSocket connection on the hub's I/O thread: socket, protocol core, send buffer.

Everything here runs on the I/O thread.  The socket is non-blocking: a read
takes what is there, and for TLS goes on while ``pending()`` says OpenSSL
holds decrypted bytes that ``select`` cannot see; a write sends what the
socket takes and keeps the rest for when it is writable again
(``SSLWantReadError`` / ``SSLWantWriteError`` mean "later", not failure).
The protocol's next deadline sits on the hub's timer heap; since a complete
message only pushes the heartbeat back, a timer that fires early just
re-arms itself, and a busy connection costs no heap work per message.

One connection's turn is bounded, so that a server sending heaps of tiny
frames delays no other call: at most :data:`FRAMES_PER_TURN` frames are
parsed, the rest waits in the protocol's buffer, the socket is not read
meanwhile, and a timer due at once brings the link back on the next turn,
after the other sockets had theirs.  What waits to be sent is bounded as
well: the protocol's bytes are taken only once the socket took the last
ones, so a server that never reads leaves them with the protocol, which
bounds them.
"""

import logging
import selectors
import socket
import ssl
import time
from typing import Callable, Optional

from .._observe.watch_counts import WatchCounts
from .._wire.protocol import Cause, Message, Outcome, Protocol
from .connect import describe
from .loop import Hub, Timer

__all__ = ["FRAMES_PER_TURN", "Link"]

#: ``-vv`` shows each connection's frames by type and size: never a payload, never a credential.
log = logging.getLogger("livecall.connection")

#: Bytes asked of the socket per read: a few hundred typical frames.
_READ_SIZE = 64 * 1024
#: Reads of one socket per wake-up: the others get their turn, epoll reports it again.
_READS_PER_WAKEUP = 4
_WRITE_CHUNK = 256 * 1024
#: Frames parsed per link per turn of the I/O thread: a busy stream's batch of a
#: few milliseconds, a small fraction of a turn's time however small the frames.
FRAMES_PER_TURN = 1024

#: Takes a batch of messages read together and their wall-clock time; True when the mailbox is full.
Deliver = Callable[[list[Message], float], bool]
Ended = Callable[[Outcome, float], None]


class Link:
    """A connection the hub drives; ``deliver`` and ``ended`` are called on the I/O thread."""

    def __init__(
        self,
        hub: Hub,
        sock: socket.socket,
        rest: bytes,
        protocol: Protocol,
        deliver: Deliver,
        ended: Ended,
        counts: WatchCounts,
    ):
        self._hub = hub
        #: Where the link notes when it last heard a frame and a message, and a pause.
        self._counts = counts
        self._sock = sock
        self._protocol = protocol
        self._deliver = deliver
        self._ended = ended
        self._tls = sock if isinstance(sock, ssl.SSLSocket) else None
        self._out = bytearray()
        self._paused = False  # the mailbox is full: reading waits for room
        self._timer_due = False  # a deadline passed while paused: judged after the next read
        self._events = 0  # what the selector watches for now
        self._timer: Optional[Timer] = None
        self._next_turn: Optional[Timer] = None  # parsing goes on after the other sockets' turn
        self._over = False
        self._frames_logged = log.isEnabledFor(logging.DEBUG)  # once: reading is the hot path
        self._pings = self._pongs = 0
        self.opened_at = time.monotonic()
        counts.opened(self.opened_at)
        sock.setblocking(False)
        if rest:
            protocol.receive_data(rest, self.opened_at, FRAMES_PER_TURN)
            self._hand_over()
        self._settle()
        self._come_back()

    # --- asked by the watch (through hub.call_soon) ---------------------------------

    def send(self, message: Message) -> None:
        """Send a message, written as the socket takes it; raises ``ConnectionLostError`` once closing,
        or when the server has read too little of what was sent before (the connection fails then)."""
        try:
            self._protocol.send(message)
        finally:
            self._settle()
        if self._frames_logged:
            log.debug("frame out: %s, %d bytes", *_kind_and_size(message))

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake; a paused link still ends by the close deadline."""
        if self._over:
            return
        self._protocol.close(time.monotonic(), code)
        if self._frames_logged:
            log.debug("frame out: close, code %d", code)
        self._settle()

    def resume(self) -> None:
        """The mailbox has room again."""
        if self._paused and not self._over:
            self._paused = self._counts.paused = False
            self._read()  # TLS may hold decrypted bytes select will never report, or a backlog

    # --- selector and timer ------------------------------------------------------------

    def on_ready(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._write()
        if mask & selectors.EVENT_READ and not self._paused:
            self._read()
        else:
            self._settle()

    def _on_timer(self) -> None:
        """A deadline passed.  While reading is paused the server is not judged silent: what it
        sent meanwhile (a pong, say) waits unread in the socket, and is read first on resuming.
        Only our close frame's deadline holds regardless: the watch is ending."""
        self._timer = None
        now = time.monotonic()
        if self._paused and not self._protocol.close_expired(now):
            self._timer_due = True
            return
        self._protocol.handle_timer(now)
        if self._frames_logged and self._protocol.pings_sent != self._pings:
            self._pings = self._protocol.pings_sent
            log.debug("ping sent after %.1f s of silence", self._protocol.silence_before_ping)
        self._settle()

    # --- the work ------------------------------------------------------------------------

    @property
    def over(self) -> bool:
        return self._over

    def _read(self) -> None:
        if self._over or self._paused:
            return
        protocol, sock = self._protocol, self._sock
        now = time.monotonic()
        budget = FRAMES_PER_TURN
        if protocol.backlogged:
            budget -= protocol.receive_data(b"", now, budget)
        for _ in range(_READS_PER_WAKEUP if not protocol.backlogged else 0):
            try:
                data = sock.recv(_READ_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            except ssl.SSLWantWriteError:
                break  # TLS wants to write first: the send buffer's writability brings us back
            except OSError as error:
                protocol.connection_lost(describe(error))
                break
            if not data:
                protocol.connection_lost()
                break
            budget -= protocol.receive_data(data, now, budget)
            if budget < FRAMES_PER_TURN:
                self._counts.last_frame_at = now
            if protocol.backlogged or not (self._tls and self._tls.pending()) and len(data) < _READ_SIZE:
                break
        self._hand_over()
        if self._timer_due:
            self._timer_due = False
            protocol.handle_timer(now)
        self._settle()
        self._come_back()

    def _come_back(self) -> None:
        """Read again next turn when select cannot tell: a backlog, or decrypted bytes TLS holds."""
        if self._over or self._paused or self._next_turn is not None:
            return
        if self._protocol.backlogged:
            # Due now, yet after this turn: the hub runs the timers due when its turn began.
            self._next_turn = self._hub.call_at(time.monotonic(), self._turn)
        elif self._tls and self._tls.pending():
            self._hub.call_soon(self._read)

    def _turn(self) -> None:
        self._next_turn = None
        self._read()

    def _hand_over(self) -> None:
        messages = self._protocol.messages_received()
        if self._frames_logged:
            self._log_frames_in(messages)
        if messages:
            self._counts.last_message_at = time.monotonic()
            if self._deliver(messages, time.time()):
                self._paused = self._counts.paused = True

    def _write(self) -> None:
        out = self._out
        while out:
            try:
                with memoryview(out) as view:
                    sent = self._sock.send(view[:_WRITE_CHUNK])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError as error:
                out.clear()
                self._protocol.connection_lost(describe(error))
                return
            del out[:sent]

    def _settle(self) -> None:
        """After any change: write what is due, end if over, re-arm the timer and the selector."""
        if self._over:
            return
        protocol = self._protocol
        if not self._out:  # else a newer pong may still replace the one the protocol holds
            data = protocol.data_to_send()
            if data:
                self._out += data
                self._write()
        if protocol.finished:
            self._end()
            return
        deadline = protocol.next_deadline()
        timer = self._timer
        if deadline is not None and (timer is None or deadline < timer.when):
            if timer is not None:
                timer.cancel()
            self._timer = self._hub.call_at(deadline, self._on_timer)
        reading = not (self._paused or protocol.backlogged)  # a backlog is read on the link's next turn
        events = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if self._out else 0)
        if events != self._events:
            selector = self._hub.selector
            if not self._events:
                selector.register(self._sock, events, self.on_ready)
            elif not events:
                selector.unregister(self._sock)
            else:
                selector.modify(self._sock, events, self.on_ready)
            self._events = events

    def _log_frames_in(self, messages: list[Message]) -> None:
        """Each message's type and size, never its words; then the pongs that came."""
        for message in messages:
            log.debug("frame in: %s, %d bytes", *_kind_and_size(message))
        for _ in range(self._protocol.pongs_received - self._pongs):
            log.debug("frame in: pong, 0 bytes")
        self._pongs = self._protocol.pongs_received

    def _end(self) -> None:
        self._over = True
        self._counts.connected = self._counts.paused = False
        outcome = self._protocol.outcome
        if self._frames_logged and outcome is not None and outcome.cause is Cause.SERVER_CLOSED:
            log.debug("frame out: close, the closing handshake's reply")
        for timer in (self._timer, self._next_turn):
            if timer is not None:
                timer.cancel()
        if self._events:
            self._hub.selector.unregister(self._sock)
            self._events = 0
        try:
            self._sock.close()
        except OSError:
            pass
        assert self._protocol.outcome is not None
        self._ended(self._protocol.outcome, time.monotonic() - self.opened_at)


def _kind_and_size(message: Message) -> tuple[str, int]:
    if isinstance(message, str):
        return "text", len(message.encode("utf-8", "replace"))
    return "binary", len(message)
