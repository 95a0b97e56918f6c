"""The sans-I/O protocol core: bytes in, a fake clock, no sockets.

One test per rule of RFC 6455 a client enforces.
"""

import pytest

from livecall._wire.frames import encode_frame, mask, parse_close
from livecall._wire.protocol import DEFAULT_MAX_FRAGMENTS, PENDING_PONGS, Cause, Outcome, Protocol
from livecall.errors import ConfigurationError, ConnectionLostError

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
KEY = b"\x01\x02\x03\x04"


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A server frame (unmasked)."""
    size = len(payload)
    if size < 126:
        encoded = bytes((size,))
    elif size < 1 << 16:
        encoded = b"\x7e" + size.to_bytes(2, "big")
    else:
        encoded = b"\x7f" + size.to_bytes(8, "big")
    return bytes((fin << 7 | rsv << 4 | opcode,)) + encoded + payload


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(CLOSE, code.to_bytes(2, "big") + reason)


def connection(**options) -> Protocol:
    return Protocol(0.0, mask_key=lambda: KEY, **options)


def sent_frames(protocol: Protocol) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of each frame the client wrote; checks that each is masked."""
    data, frames, position = protocol.data_to_send(), [], 0
    while position < len(data):
        first, second = data[position], data[position + 1]
        assert first & 0x80 and second & 0x80, "client frames are final and masked"
        size, position = second & 0x7F, position + 2
        if size == 126:
            size, position = int.from_bytes(data[position : position + 2], "big"), position + 2
        elif size == 127:
            size, position = int.from_bytes(data[position : position + 8], "big"), position + 8
        key, position = data[position : position + 4], position + 4
        frames.append((first & 0x0F, mask(key, data[position : position + size])))
        position += size
    return frames


def closes_sent(protocol: Protocol) -> list[tuple[int, str]]:
    return [parse_close(payload) for opcode, payload in sent_frames(protocol) if opcode == CLOSE]


# --- messages -------------------------------------------------------------------


def test_messages_cut_anywhere_arrive_whole_and_in_order():
    payloads = [b"", b"x" * 125, b"y" * 126, b"z" * 70_000]
    stream = b"".join(frame(BINARY, p) for p in payloads) + frame(TEXT, "héllo".encode())
    protocol = connection()
    for cut in range(0, len(stream), 997):
        protocol.receive_data(stream[cut : cut + 997], 1.0)
    assert protocol.messages_received() == [*payloads, "héllo"]
    assert protocol.outcome is None


def test_fragments_are_joined_and_a_ping_between_them_is_answered():
    protocol = connection()
    protocol.receive_data(
        frame(TEXT, b"ab", fin=False) + frame(PING, b"p") + frame(CONT, b"cd", fin=False) + frame(CONT, b"e"),
        1.0,
    )
    assert protocol.messages_received() == ["abcde"]
    assert sent_frames(protocol) == [(PONG, b"p")]


def test_text_sent_is_one_masked_frame():
    protocol = connection()
    protocol.send("hi")
    protocol.send(b"\x00")
    assert sent_frames(protocol) == [(TEXT, b"hi"), (BINARY, b"\x00")]
    assert encode_frame(TEXT, b"hi", KEY)[2:6] == KEY


# --- refusals: each fails with its close code, once ----------------------------------


@pytest.mark.parametrize(
    "data, code",
    [
        (bytes((0x81, 0x82)) + KEY + mask(KEY, b"hi"), 1002),  # masked by the server
        (frame(PONG, b"x" * 126), 1002),  # control frame over 125 bytes
        (frame(PING, b"x", fin=False), 1002),  # fragmented control frame
        (frame(CLOSE, b"\x03\xe8", fin=False), 1002),  # fragmented close
        (frame(TEXT, b"x", rsv=4), 1002),  # RSV1 without an extension
        (frame(TEXT, b"x", rsv=1), 1002),  # RSV3
        (frame(0x3), 1002),  # reserved data opcode
        (frame(0xB), 1002),  # reserved control opcode
        (b"\x82\x7f" + (1 << 63 | 5).to_bytes(8, "big"), 1002),  # 64-bit length, top bit set
        (frame(CONT, b"x"), 1002),  # continuation with nothing to continue
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),  # new message inside another
        (frame(TEXT, b"\xff"), 1007),  # text not UTF-8
        (frame(TEXT, b"\xce", fin=False) + frame(CONT, b"\x00\xff"), 1007),  # fragmented, not UTF-8
        (frame(CLOSE, b"\x03"), 1002),  # one-byte close payload
        (close_frame(1000, b"\xff\xfe"), 1007),  # close reason not UTF-8
    ],
)
def test_a_violation_fails_the_connection_with_one_close_frame(data, code):
    protocol = connection()
    protocol.receive_data(data, 1.0)
    assert closes_sent(protocol) == [(code, closes_reason(protocol))]
    assert protocol.outcome is not None and protocol.outcome.code == code
    assert protocol.outcome.cause is Cause.PROTOCOL_ERROR
    assert protocol.messages_received() == []


def closes_reason(protocol: Protocol) -> str:
    assert protocol.outcome is not None
    return protocol.outcome.reason


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes_are_refused(code):
    protocol = connection()
    protocol.receive_data(close_frame(code), 1.0)
    assert [c for c, _ in closes_sent(protocol)] == [1002]
    assert protocol.outcome == Outcome(1002, f"invalid close code {code}", Cause.PROTOCOL_ERROR)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes_are_answered_with_the_same_code(code):
    protocol = connection()
    protocol.receive_data(close_frame(code, "bye ✓".encode()), 1.0)
    assert closes_sent(protocol) == [(code, "")]
    assert protocol.outcome == Outcome(code, "bye ✓", Cause.SERVER_CLOSED)


def test_good_messages_before_a_bad_frame_in_the_same_read_are_delivered_in_order():
    protocol = connection()
    good, bad = frame(TEXT, b"one") + frame(BINARY, b"two"), frame(TEXT, b"\xc3") + frame(TEXT, b"x")
    protocol.receive_data(good + bad, 1.0)
    assert protocol.messages_received() == ["one", b"two"]
    assert protocol.outcome is not None and protocol.outcome.code == 1007


def test_after_a_violation_nothing_more_is_read_or_stored():
    protocol = connection()
    protocol.receive_data(frame(0x3) + frame(TEXT, b"later"), 1.0)
    protocol.receive_data(frame(TEXT, b"much later") + frame(PING, b"p") + close_frame(1000), 1.5)
    assert protocol.messages_received() == []
    assert [opcode for opcode, _ in sent_frames(protocol)] == [CLOSE]
    assert len(protocol._buffer) == 0
    assert not protocol.finished
    protocol.connection_lost()
    assert protocol.finished and protocol.outcome is not None and protocol.outcome.code == 1002


# --- size limits ------------------------------------------------------------------


def test_an_oversized_frame_is_refused_at_its_header():
    protocol = connection(max_message_size=1000)
    protocol.receive_data(b"\x82\x7f" + (1 << 62).to_bytes(8, "big"), 1.0)
    assert closes_sent(protocol) == [(1009, "message over 1000 bytes")]
    assert protocol.outcome is not None and protocol.outcome.cause is Cause.TOO_BIG
    protocol.receive_data(b"\x00" * 65536, 1.1)
    assert len(protocol._buffer) == 0


def test_a_fragmented_message_is_refused_on_its_running_total():
    protocol = connection(max_message_size=1000)
    protocol.receive_data(frame(TEXT, b"a" * 600, fin=False), 1.0)
    assert closes_sent(protocol) == []
    protocol.receive_data(frame(CONT, b"a" * 401, fin=False)[:4], 1.0)
    assert [code for code, _ in closes_sent(protocol)] == [1009]


def test_a_message_of_exactly_the_limit_is_accepted():
    protocol = connection(max_message_size=1000)
    protocol.receive_data(frame(BINARY, b"a" * 500, fin=False) + frame(CONT, b"b" * 500), 1.0)
    assert protocol.messages_received() == [b"a" * 500 + b"b" * 500]


@pytest.mark.parametrize("size", [11, 200])
def test_a_small_whole_frame_over_the_limit_is_refused_too(size):
    protocol = connection(max_message_size=10)
    protocol.receive_data(frame(TEXT, b"x" * size) + frame(TEXT, b"x" * 10), 1.0)
    assert [code for code, _ in closes_sent(protocol)] == [1009]
    assert protocol.messages_received() == []


def test_a_large_payload_arriving_in_pieces_is_joined_once_and_what_follows_is_read():
    big = "é" * 100_000
    stream = frame(TEXT, big.encode()) + frame(BINARY, b"after")
    protocol = connection()
    for cut in range(0, len(stream), 65_536):
        protocol.receive_data(stream[cut : cut + 65_536], 1.0)
    assert protocol.messages_received() == [big, b"after"]
    protocol.receive_data(frame(TEXT, b"\xff" * 70_000) + frame(TEXT, b"never"), 2.0)
    assert protocol.messages_received() == []
    assert [code for code, _ in closes_sent(protocol)] == [1007]


# --- closing handshake: one close frame each way ----------------------------------------


def test_when_the_client_closes_first_the_servers_close_is_not_answered():
    protocol = connection(close_timeout=2.0)
    protocol.close(1.0)
    assert closes_sent(protocol) == [(1000, "")]
    protocol.receive_data(close_frame(1000), 1.5)
    assert sent_frames(protocol) == []
    assert protocol.outcome == Outcome(1000, "", Cause.CLIENT_CLOSED)
    protocol.close(1.6)
    assert sent_frames(protocol) == []
    with pytest.raises(ConnectionLostError):
        protocol.send("too late")


def test_messages_arriving_while_closing_are_still_delivered():
    protocol = connection()
    protocol.close(1.0)
    protocol.receive_data(frame(TEXT, b"in flight") + close_frame(1000), 1.1)
    assert protocol.messages_received() == ["in flight"]


def test_an_unanswered_close_drops_tcp_at_the_close_timeout():
    protocol = connection(close_timeout=2.0)
    protocol.close(1.0)
    assert protocol.next_deadline() == 3.0
    protocol.handle_timer(2.9)
    assert not protocol.finished
    protocol.handle_timer(3.0)
    assert protocol.finished
    assert protocol.outcome is not None and protocol.outcome.cause is Cause.CLOSE_TIMEOUT


def test_after_the_closing_handshake_tcp_ends_and_nothing_more_is_read():
    protocol = connection(close_timeout=2.0)
    protocol.receive_data(close_frame(1001) + frame(TEXT, b"after close"), 1.0)
    assert protocol.finished and protocol.next_deadline() is None
    assert protocol.messages_received() == []
    protocol.connection_lost()
    assert protocol.outcome == Outcome(1001, "", Cause.SERVER_CLOSED)


def test_a_close_frame_without_a_code_is_answered_without_one():
    protocol = connection()
    protocol.receive_data(frame(CLOSE), 1.0)
    assert sent_frames(protocol) == [(CLOSE, b"")]
    assert protocol.outcome == Outcome(1005, "", Cause.SERVER_CLOSED)


def test_tcp_ending_without_a_close_frame_is_a_drop():
    protocol = connection()
    protocol.connection_lost()
    assert protocol.finished and protocol.outcome is not None and protocol.outcome.code == 1006
    assert protocol.outcome.cause is Cause.DROPPED


# --- heartbeat: deadlines by time, not by quiet -------------------------------------------


def test_the_heartbeat_pings_after_the_interval_and_gives_up_after_the_timeout():
    protocol = connection(ping_interval=20.0, ping_timeout=10.0)
    assert protocol.next_deadline() == 20.0
    protocol.handle_timer(20.0)
    assert sent_frames(protocol) == [(PING, b"")]
    assert protocol.next_deadline() == 30.0
    protocol.handle_timer(30.0)
    assert protocol.finished
    assert protocol.outcome == Outcome(1006, "no pong within 10 s", Cause.NO_PONG)


def test_a_trickle_of_bytes_does_not_hold_the_heartbeat_off():
    protocol = connection(ping_interval=20.0, ping_timeout=10.0)
    frame_bytes = frame(TEXT, b"x" * 200)
    for step in range(len(frame_bytes) - 1):  # one byte every 0.3 s, never a whole message
        now = step * 0.3
        protocol.receive_data(frame_bytes[step : step + 1], now)
        deadline = protocol.next_deadline()
        if deadline is not None and now >= deadline:
            protocol.handle_timer(now)
    assert protocol.finished and protocol.outcome is not None and protocol.outcome.cause is Cause.NO_PONG


def test_a_pong_or_a_message_answers_the_heartbeat():
    protocol = connection(ping_interval=20.0, ping_timeout=10.0)
    protocol.handle_timer(20.0)
    protocol.receive_data(frame(PONG), 21.0)
    assert protocol.next_deadline() == 41.0
    protocol.handle_timer(41.0)
    protocol.receive_data(frame(TEXT, b"{}"), 42.0)
    assert protocol.next_deadline() == 62.0
    assert not protocol.finished


def test_without_a_ping_interval_there_is_no_deadline_while_open():
    protocol = connection(ping_interval=None)
    assert protocol.next_deadline() is None


# --- bounds against a hostile server ---------------------------------------------------


def test_a_flood_of_pings_leaves_a_few_pongs_waiting_answering_the_latest():
    protocol = connection()
    protocol.receive_data(b"".join(frame(PING, b"%d" % n) for n in range(10_000)), 1.0)
    latest = [(PONG, b"%d" % n) for n in range(10_000 - PENDING_PONGS, 10_000)]
    assert sent_frames(protocol) == latest
    protocol.receive_data(frame(PING, b"a") + frame(PING, b"b"), 1.1)
    protocol.close(1.2)
    assert sent_frames(protocol) == [(PONG, b"a"), (PONG, b"b"), (CLOSE, b"\x03\xe8")], (
        "every ping answered while the pongs go out, before the close"
    )


def test_a_message_past_max_send_buffer_fails_the_connection():
    protocol = connection(max_send_buffer=1000)
    protocol.send(b"x" * 5000)  # one alone always goes
    assert [opcode for opcode, _ in sent_frames(protocol)] == [BINARY]
    protocol.send(b"x" * 600)
    with pytest.raises(ConnectionLostError, match="over 1000 bytes waiting to be sent"):
        protocol.send(b"y" * 600)
    assert closes_sent(protocol) == [(1008, "over 1000 bytes waiting to be sent: the server is not reading")]
    assert protocol.outcome is not None and protocol.outcome.cause is Cause.PROTOCOL_ERROR
    assert protocol.outcome.code == 1008
    assert protocol.next_deadline() == 2.0, "the close deadline counts from the driver's last time"


def test_a_message_in_exactly_max_fragments_is_accepted_and_one_more_is_refused():
    pieces = frame(TEXT, b"a", fin=False) + frame(CONT, b"b", fin=False) * 98
    accepted = connection(max_fragments=100)
    accepted.receive_data(pieces + frame(CONT, b"c"), 1.0)
    assert accepted.messages_received() == ["a" + "b" * 98 + "c"]
    refused = connection(max_fragments=100)
    refused.receive_data(pieces + frame(CONT, b"b", fin=False) + frame(CONT, b"c"), 1.0)
    assert closes_sent(refused) == [(1009, "message in over 100 fragments")]
    assert refused.outcome is not None and refused.outcome.cause is Cause.TOO_BIG


def test_a_message_of_the_conformance_suite_s_many_fragments_is_taken():
    """4 MiB in 64-byte pieces and an empty last one, as the Autobahn suite sends it (case 9.3.1)."""
    protocol = connection()
    piece = frame(CONT, b"a" * 64, fin=False)
    protocol.receive_data(frame(TEXT, b"a" * 64, fin=False) + piece * (65_536 - 1) + frame(CONT, b""), 1.0)
    assert [len(message) for message in protocol.messages_received()] == [4 * 2**20]
    assert protocol.outcome is None


def test_endless_empty_continuations_fail_at_the_default_fragment_limit():
    protocol = connection()
    protocol.receive_data(frame(TEXT, b"", fin=False), 1.0)
    empty = frame(CONT, b"", fin=False) * 100_000
    for _ in range(DEFAULT_MAX_FRAGMENTS // 100_000 + 1):  # past the default, endlessly as far as it knows
        protocol.receive_data(empty, 1.0)
    assert closes_sent(protocol) == [(1009, f"message in over {DEFAULT_MAX_FRAGMENTS} fragments")]
    assert protocol._fragments is not None and len(protocol._fragments) == 0, "empty pieces take no room"


def test_max_frames_leaves_the_rest_for_the_next_call():
    protocol = connection()
    pile = frame(PONG) * 10_000 + frame(TEXT, b"after the pile")
    assert protocol.receive_data(pile, 1.0, max_frames=1024) == 1024
    assert protocol.backlogged and protocol.pongs_received == 1024
    assert protocol.messages_received() == []
    turns = 1
    while protocol.backlogged:
        assert protocol.receive_data(b"", 1.0, max_frames=1024) <= 1024
        turns += 1
    assert turns == 10 and protocol.pongs_received == 10_000
    assert protocol.messages_received() == ["after the pile"]
    assert len(protocol._buffer) == 0


def test_a_backlog_takes_more_bytes_behind_it_in_order():
    protocol = connection()
    protocol.receive_data(frame(TEXT, b"one") + frame(TEXT, b"two") + frame(TEXT, b"thr"), 1.0, max_frames=1)
    assert protocol.messages_received() == ["one"] and protocol.backlogged
    protocol.receive_data(frame(TEXT, b"four")[:3], 1.0, max_frames=5)
    assert not protocol.backlogged
    protocol.receive_data(frame(TEXT, b"four")[3:], 1.0)
    assert protocol.messages_received() == ["two", "thr", "four"]


def test_after_a_failure_a_flood_is_read_only_up_to_the_drain_bound():
    protocol = connection(close_timeout=60.0)
    protocol.receive_data(frame(0x3), 1.0)
    assert [code for code, _ in closes_sent(protocol)] == [1002]
    protocol.receive_data(b"\x00" * 65_536, 1.1)
    assert not protocol.finished, "a little more is read, for the server's EOF"
    protocol.receive_data(b"\x00", 1.2)
    assert protocol.finished and protocol.next_deadline() is None
    assert protocol.outcome is not None and protocol.outcome.code == 1002


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "close_timeout"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_timings_that_are_not_finite_never_become_deadlines(name, value):
    with pytest.raises(ConfigurationError, match=name):
        connection(**{name: value})


@pytest.mark.parametrize("name", ["max_message_size", "max_fragments", "max_send_buffer"])
def test_limits_below_one_are_refused(name):
    with pytest.raises(ConfigurationError, match=name):
        connection(**{name: 0})
