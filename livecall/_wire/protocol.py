"""One WebSocket connection's protocol, client side, without I/O (RFC 6455 after the handshake).

A driver owns the socket and the clock and feeds this object: bytes in
(:meth:`Protocol.receive_data`, :meth:`Protocol.connection_lost`), messages
out (:meth:`Protocol.messages_received`), bytes to write
(:meth:`Protocol.data_to_send`) and timers (:meth:`Protocol.next_deadline`,
:meth:`Protocol.handle_timer`).  Nothing here reads a clock, sleeps or
touches a socket, so every rule is tested with bytes and a fake clock, and
one thread may drive many connections.

The closing handshake sends one close frame each way, never two: the side
that closes first waits for the other's answer, the other answers once;
then TCP ends.
A protocol violation fails the connection with a close frame (1002, 1007,
or 1009 for a message over ``max_message_size`` bytes or ``max_fragments``
frames) and everything the server sends afterwards is discarded, never
stored, and only up to :data:`DRAIN_AFTER_FAILURE` bytes of it read: a server
that answers a failure with a flood is not read for ``close_timeout`` seconds.
The messages completed before the violation are delivered all the same, in
order.

What waits to be sent is bounded too, since a server may send pings and never
read: every ping is answered while the pongs go out, but at most
:data:`PENDING_PONGS` wait unsent, the oldest giving way to newer ones (RFC
6455 5.5.3 allows answering only the latest), so pongs take a few frames
however many pings come; and queueing a message past ``max_send_buffer``
bytes fails the connection (1008).

A driver serving many connections passes ``max_frames`` to
:meth:`Protocol.receive_data`: the frames past it stay in the buffer
(:attr:`Protocol.backlogged`) for its next turn, so one server sending heaps
of tiny frames costs the others no latency.
"""

import collections
import enum
import functools
import os
from typing import Callable, Optional, Union

import attrs

from ..errors import ConnectionLostError
from .checks import seconds, whole_number
from .frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    INVALID_DATA,
    PING,
    POLICY_VIOLATION,
    PONG,
    PROTOCOL_ERROR,
    TEXT,
    TOO_BIG,
    Header,
    Violation,
    close_payload,
    encode_frame,
    parse_close,
    parse_header,
)

__all__ = [
    "Cause",
    "Message",
    "Outcome",
    "Protocol",
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_SEND_BUFFER",
    "DRAIN_AFTER_FAILURE",
    "PENDING_PONGS",
]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Frames of one fragmented message: a message of the largest default size in
#: 16-byte pieces (the Autobahn suite sends 4 MiB in 64-byte ones, and an empty
#: last one).  Empty fragments take no memory, so this bounds the work an
#: endless message costs, not what it holds.
DEFAULT_MAX_FRAGMENTS = 1_048_576
#: Pongs waiting to be sent: past it a ping's pong replaces the oldest waiting.
PENDING_PONGS = 16
#: Bytes queued to be sent on top of what the socket has not taken yet.
DEFAULT_MAX_SEND_BUFFER = 4 * 1024 * 1024
#: Bytes read (and discarded) after failing a connection, looking for the
#: server's EOF, before TCP is ended without it.
DRAIN_AFTER_FAILURE = 64 * 1024
#: A payload at least this large is gathered in pieces rather than in the buffer,
#: which would copy itself as it grows.
_LARGE_PAYLOAD = 64 * 1024
#: First header byte of a whole, unfragmented text or binary frame: the usual case.
_WHOLE_TEXT, _WHOLE_BINARY = 0x80 | TEXT, 0x80 | BINARY
#: Close code standing for "no close frame came" (RFC 6455 7.1.5); never sent.
ABNORMAL = 1006

#: A complete message: ``str`` for text (already checked as UTF-8), ``bytes`` for binary.
Message = Union[str, bytes]


class Cause(enum.Enum):
    """Why a connection ended, as far as the protocol can tell."""

    SERVER_CLOSED = "the server closed"  #: its close frame came first, we answered
    CLIENT_CLOSED = "we closed"  #: our close frame came first, the server answered
    PROTOCOL_ERROR = "protocol error"  #: the server broke RFC 6455 or read nothing; we failed the connection
    TOO_BIG = "message too big"  #: a message over max_message_size or max_fragments; we failed with 1009
    NO_PONG = "no pong"  #: the heartbeat went unanswered
    CLOSE_TIMEOUT = "close timeout"  #: our close frame went unanswered
    DROPPED = "dropped"  #: TCP ended without a close frame


@attrs.frozen
class Outcome:
    """How a connection ended: the close code (1006 when no close frame came), why, and whose."""

    code: int
    reason: str
    cause: Cause


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # our close frame is out, the server's has not come
    CLOSED = "closed"  # no more frames either way; TCP still to end


class Protocol:
    """The client side of one WebSocket connection after its opening handshake.

    ``now`` is the driver's monotonic clock at the moment the connection
    opened.  The heartbeat sends a ping after ``ping_interval`` seconds without
    a complete message or pong (``None``: never) and gives up ``ping_timeout``
    seconds after that, however many bytes trickle in meanwhile.  A close
    frame, ours or the server's, leaves ``close_timeout`` seconds for the rest
    of the closing handshake; once a close frame went each way, TCP ends at
    once (servers differ on which side closes it first, and waiting on one
    that waits too would cost every watch its ``close_timeout``).

    The timings must be finite: they become deadlines on a driver's timer
    heap, where a NaN would break the heap's order for every connection.
    """

    def __init__(
        self,
        now: float,
        *,
        ping_interval: Optional[float] = None,
        ping_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        max_send_buffer: int = DEFAULT_MAX_SEND_BUFFER,
        mask_key: Callable[[], bytes] = functools.partial(os.urandom, 4),
    ):
        if ping_interval is not None:
            ping_interval = seconds("ping_interval", ping_interval)
        self._ping_interval = ping_interval
        self._ping_timeout = seconds("ping_timeout", ping_timeout)
        self._close_timeout = seconds("close_timeout", close_timeout, zero=True)
        self._max_message_size = whole_number("max_message_size", max_message_size, minimum=1)
        self._max_fragments = whole_number("max_fragments", max_fragments, minimum=1)
        self._max_send_buffer = whole_number("max_send_buffer", max_send_buffer, minimum=1)
        self._mask_key = mask_key
        self._state = _State.OPEN
        self._buffer = bytearray()
        self._header: Optional[Header] = None  # of a frame whose payload is still arriving
        self._payload_parts: Optional[list[bytes]] = None  # that payload's pieces, when large
        self._payload_missing = 0
        self._fragments: Optional[bytearray] = None  # a message still arriving in pieces
        self._fragment_count = 0
        self._fragmented_opcode = TEXT
        self._discarding = False  # failed: whatever comes is dropped unread
        self._drained = 0  # bytes dropped unread since failing
        self._messages: list[Message] = []
        self._outgoing: list[bytes] = []
        self._outgoing_size = 0
        self._pongs: collections.deque[bytes] = collections.deque(maxlen=PENDING_PONGS)  # not sent yet
        #: Complete frames wait in the buffer: ``max_frames`` stopped the last :meth:`receive_data`.
        self.backlogged = False
        self._now = now  # the driver's clock when it last called: when a failed send() happened
        self._last_heard = now
        self._pong_deadline: Optional[float] = None
        self._close_deadline: Optional[float] = None
        self.outcome: Optional[Outcome] = None
        #: The driver must end TCP now (after writing ``data_to_send()``).
        self.finished = False
        #: Heartbeat counts and the silence before the last ping, for a driver's log.
        self.pings_sent = self.pongs_received = 0
        self.silence_before_ping = 0.0

    # --- input ------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, max_frames: Optional[int] = None) -> int:
        """Take bytes read from the socket; complete messages become :meth:`messages_received`.

        Parses at most ``max_frames`` frames (all of them by default) and
        returns how many it parsed; past the limit the rest stays in the
        buffer and :attr:`backlogged` is set: call again, with ``b""`` or
        more bytes, to go on.
        """
        self.backlogged, self._now = False, now
        if self._discarding:
            self._drain(len(data))
            return 0
        if self._state is _State.CLOSED or self.finished:
            return 0
        frames = 0
        if self._payload_parts is not None:
            data = self._continue_payload(data, now)
            frames = 0 if self._payload_parts else 1
            if not data or self._discarding or self._state is _State.CLOSED:
                return frames
        buffer = self._buffer
        buffer += data
        position, end = 0, len(buffer)
        messages, heard = self._messages, False
        limit = end + frames if max_frames is None else max_frames  # a frame takes 2 bytes or more
        try:
            while True:
                if frames >= limit:
                    self.backlogged = position < end
                    break
                header = self._header
                if header is None and self._fragments is None and end - position >= 4:
                    # The usual frame, whole text or binary under 64 KiB, cut out inline.
                    first, length = buffer[position], buffer[position + 1]
                    if (first == _WHOLE_TEXT or first == _WHOLE_BINARY) and length <= 126:
                        start = position + 2
                        if length == 126:
                            length, start = buffer[start] << 8 | buffer[start + 1], start + 2
                        stop = start + length
                        if stop <= end and length <= self._max_message_size:
                            payload = bytes(buffer[start:stop])
                            position = stop
                            if first == _WHOLE_TEXT:
                                try:
                                    messages.append(payload.decode("utf-8"))
                                except UnicodeDecodeError:
                                    raise Violation(INVALID_DATA, "text message is not valid UTF-8") from None
                            else:
                                messages.append(payload)
                            heard = True
                            frames += 1
                            continue
                if header is None:
                    if position == end:
                        break  # all consumed: the usual end of a read
                    header = parse_header(buffer, position)
                    if header is None:
                        break
                    self._check_size(header)
                    position += header.size
                    self._header = header
                if len(buffer) - position < header.length:
                    if header.length >= _LARGE_PAYLOAD:
                        self._start_payload(buffer, position, header.length)
                        position = len(buffer)
                    break
                with memoryview(buffer) as view:
                    payload = bytes(view[position : position + header.length])
                position += header.length
                self._header = None
                frames += 1
                self._frame(header, payload, now)
                if self._state is _State.CLOSED:
                    break
        except Violation as violation:
            self._fail(violation.code, violation.reason, now)
            buffer.clear()
            return frames
        if heard:
            self._heard(now)
        if position:
            del buffer[:position]  # bytearray drops a prefix without copying the rest
        return frames

    def _start_payload(self, buffer: bytearray, position: int, length: int) -> None:
        """A large payload is still arriving: its pieces are kept as read, joined once at the end."""
        self._payload_parts = [bytes(buffer[position:])]
        self._payload_missing = length - (len(buffer) - position)

    def _continue_payload(self, data: bytes, now: float) -> bytes:
        """Add ``data`` to the large payload under way; the bytes past its end."""
        parts, missing = self._payload_parts, self._payload_missing
        assert parts is not None and self._header is not None
        if len(data) < missing:
            parts.append(data)
            self._payload_missing = missing - len(data)
            return b""
        parts.append(data[:missing])
        header, payload = self._header, b"".join(parts)
        self._header, self._payload_parts = None, None
        try:
            self._frame(header, payload, now)
        except Violation as violation:
            self._fail(violation.code, violation.reason, now)
            return b""
        return data[missing:]

    def _drain(self, size: int) -> None:
        """After a failure: count what is dropped, and end TCP once the server sent too much of it."""
        self._drained += size
        if self._drained > DRAIN_AFTER_FAILURE:
            self.finished = True

    def connection_lost(self, reason: str = "the server ended TCP without a close frame") -> None:
        """TCP ended (EOF or an error); the connection is over."""
        self._end(Outcome(ABNORMAL, reason, Cause.DROPPED))

    # --- output -----------------------------------------------------------------

    def messages_received(self) -> list[Message]:
        """The messages completed since the last call, in order."""
        messages, self._messages = self._messages, []
        return messages

    def data_to_send(self) -> bytes:
        """The bytes to write now: the pong, pings, close frames and sent messages.

        A driver takes them once the socket took the last ones: until then
        pongs wait here, at most :data:`PENDING_PONGS` of them.
        """
        outgoing = self._outgoing
        if self._pongs:
            outgoing[:0] = [encode_frame(PONG, payload, self._mask_key()) for payload in self._pongs]
            self._pongs.clear()
        if not outgoing:
            return b""
        data = b"".join(outgoing)
        outgoing.clear()
        self._outgoing_size = 0
        return data

    def send(self, message: Message) -> None:
        """Queue a text (``str``) or binary (``bytes``) message; only while open.

        A message that would take the bytes waiting to be sent past
        ``max_send_buffer`` (one alone always fits) fails the connection:
        the server is not reading.  Raises ``ConnectionLostError`` then, and
        once closing.
        """
        if self._state is not _State.OPEN:
            raise ConnectionLostError("the connection is closing")
        payload = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        frame = encode_frame(TEXT if isinstance(message, str) else BINARY, payload, self._mask_key())
        waiting = self._outgoing_size
        if waiting and waiting + len(frame) > self._max_send_buffer:
            reason = f"over {self._max_send_buffer} bytes waiting to be sent: the server is not reading"
            self._fail(POLICY_VIOLATION, reason, self._now)
            raise ConnectionLostError(reason)
        self._queue(frame)

    def close(self, now: float, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; a no-op once a close frame went either way."""
        if self._state is _State.OPEN:
            self._send_close(code, reason, now)

    # --- timers -----------------------------------------------------------------

    def next_deadline(self) -> Optional[float]:
        """When :meth:`handle_timer` has something to do next; None: nothing until data comes."""
        if self.finished:
            return None
        if self._close_deadline is not None:
            return self._close_deadline
        if self._pong_deadline is not None:
            return self._pong_deadline
        if self._ping_interval is not None:
            return self._last_heard + self._ping_interval
        return None

    def close_expired(self, now: float) -> bool:
        """Whether the close deadline passed: a driver that paused reading still ends the connection by it."""
        return self._close_deadline is not None and now >= self._close_deadline

    def handle_timer(self, now: float) -> None:
        """Act on every deadline passed by ``now``: drop TCP, give up on a pong, or ping."""
        self._now = now
        if self.finished:
            return
        if self._close_deadline is not None:
            if now >= self._close_deadline:
                self._end(Outcome(ABNORMAL, "no close frame from the server in time", Cause.CLOSE_TIMEOUT))
            return
        if self._pong_deadline is not None:
            if now >= self._pong_deadline:
                self._end(Outcome(ABNORMAL, f"no pong within {self._ping_timeout:g} s", Cause.NO_PONG))
            return
        if self._ping_interval is not None and now >= self._last_heard + self._ping_interval:
            self._queue_frame(PING, b"")
            self._pong_deadline = now + self._ping_timeout
            self.pings_sent += 1
            self.silence_before_ping = now - self._last_heard

    # --- frames -----------------------------------------------------------------

    def _check_size(self, header: Header) -> None:
        """Refuse a data frame at its header that would make its message too big or too many pieces."""
        if header.opcode >= CLOSE:
            return
        fragments = self._fragments if header.opcode == CONTINUATION else None
        so_far = len(fragments) if fragments is not None else 0
        if so_far + header.length > self._max_message_size:
            raise Violation(TOO_BIG, f"message over {self._max_message_size} bytes")
        if fragments is not None and self._fragment_count >= self._max_fragments:
            raise Violation(TOO_BIG, f"message in over {self._max_fragments} fragments")

    def _frame(self, header: Header, payload: bytes, now: float) -> None:
        opcode = header.opcode
        if opcode == TEXT or opcode == BINARY:
            if self._fragments is not None:
                raise Violation(PROTOCOL_ERROR, "a new message began before the last one ended")
            if header.fin:
                self._message(opcode, payload, now)
            else:
                self._fragments, self._fragment_count = bytearray(payload), 1
                self._fragmented_opcode = opcode
        elif opcode == CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                raise Violation(PROTOCOL_ERROR, "continuation frame without a message to continue")
            fragments += payload  # one growing buffer: no object per fragment, however many come
            self._fragment_count += 1
            if header.fin:
                self._fragments = None
                self._message(self._fragmented_opcode, bytes(fragments), now)
        elif opcode == PING:
            if self._state is _State.OPEN:
                self._pongs.append(payload)  # past PENDING_PONGS the oldest unsent one gives way
        elif opcode == PONG:
            self.pongs_received += 1
            self._heard(now)
        else:
            self._close_frame(payload, now)

    def _message(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == TEXT:
            try:
                self._messages.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise Violation(INVALID_DATA, "text message is not valid UTF-8") from None
        else:
            self._messages.append(payload)
        self._heard(now)

    def _close_frame(self, payload: bytes, now: float) -> None:
        code, reason = parse_close(payload)
        if self._state is _State.OPEN:
            self._queue_frame(CLOSE, close_payload(code))  # the one answer, echoing the code
            cause = Cause.SERVER_CLOSED
        else:
            cause = Cause.CLIENT_CLOSED
        self._end(Outcome(code, reason, cause))

    def _heard(self, now: float) -> None:
        self._last_heard = now
        self._pong_deadline = None

    # --- ending -----------------------------------------------------------------

    def _fail(self, code: int, reason: str, now: float) -> None:
        """Fail the connection (RFC 6455 7.1.7): one close frame if none went yet, then discard.

        What waited to be sent is dropped, so that the close frame goes next.
        """
        self._discarding = True
        if self.outcome is None:
            self.outcome = Outcome(code, reason, Cause.TOO_BIG if code == TOO_BIG else Cause.PROTOCOL_ERROR)
        if self._state is _State.OPEN:
            self._outgoing.clear()
            self._outgoing_size = 0
            self._pongs.clear()
            self._send_close(code, reason, now)
        self._state = _State.CLOSED

    def _send_close(self, code: int, reason: str, now: float) -> None:
        self._queue_frame(CLOSE, close_payload(code, reason))
        self._state = _State.CLOSING
        self._pong_deadline = None
        self._close_deadline = now + self._close_timeout

    def _end(self, outcome: Outcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
        self._state = _State.CLOSED
        self.finished = True

    def _queue_frame(self, opcode: int, payload: bytes) -> None:
        self._queue(encode_frame(opcode, payload, self._mask_key()))

    def _queue(self, frame: bytes) -> None:
        self._outgoing.append(frame)
        self._outgoing_size += len(frame)
