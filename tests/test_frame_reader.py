"""The connection's frame reader, on a real socket pair: whole messages, in order, checked.

It replaced websocket-client's frame-by-frame reading for speed, so it must
do what that did: join fragments, pass control frames through (also between
fragments), unmask, keep a partial frame across reads, and refuse what
websocket-client refuses, with the same messages.
"""

import socket
import threading

import pytest
import websocket

from livecall._frames import FrameReader
from livecall.testing._wire import BINARY, CLOSE, PING, PONG, TEXT, frame
from livecall.testing._wire import CONTINUATION as CONT


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.settimeout(2)
    yield ours, theirs
    ours.close()
    theirs.close()


def read_messages(reader: FrameReader, count: int):
    received = []
    while len(received) < count:
        received += reader.read()
    return received


def test_frames_cut_anywhere_arrive_whole_and_in_order(pair):
    ours, theirs = pair
    sizes = [0, 5, 125, 126, 65_535, 65_536, 70_000]
    expected = [(TEXT if n % 2 else BINARY, bytes(i % 251 for i in range(n))) for n in sizes]
    stream = b"".join(frame(opcode, payload) for opcode, payload in expected)
    cuts = [1, 2, 3, 7, 300, 5000]  # inside headers, extended lengths and payloads

    def send():
        position = 0
        for step in range(len(stream)):
            if position >= len(stream):
                return
            end = position + cuts[step % len(cuts)]
            theirs.sendall(stream[position:end])
            position = end

    sender = threading.Thread(target=send)
    sender.start()
    assert read_messages(FrameReader(ours), len(expected)) == expected
    sender.join()


def test_a_read_that_times_out_keeps_the_partial_frame(pair):
    ours, theirs = pair
    data = frame(TEXT, b'{"type": "transcript"}')
    reader = FrameReader(ours)
    theirs.sendall(data[:5])
    assert reader.read() == []
    ours.settimeout(0.05)
    with pytest.raises(socket.timeout):
        reader.read()
    theirs.sendall(data[5:])
    assert reader.read() == [(TEXT, b'{"type": "transcript"}')]


def test_fragments_are_joined_and_control_frames_between_them_pass_first(pair):
    ours, theirs = pair
    theirs.sendall(
        frame(TEXT, b"Hel", fin=False)
        + frame(PING, b"are you there")
        + frame(CONT, b"lo ", fin=False)
        + frame(PONG, b"")
        + frame(CONT, b"world")
        + frame(BINARY, b"\x00\x01", fin=False)
        + frame(CONT, b"\x02")
    )
    assert read_messages(FrameReader(ours), 4) == [
        (PING, b"are you there"),
        (PONG, b""),
        (TEXT, b"Hello world"),
        (BINARY, b"\x00\x01\x02"),
    ]


def test_masked_frames_are_unmasked(pair):
    ours, theirs = pair
    payload = b"x" * 300
    theirs.sendall(frame(TEXT, payload, mask=b"\x01\x02\x03\x04") + frame(CLOSE, b"\x03\xe8", mask=b"abcd"))
    assert read_messages(FrameReader(ours), 2) == [(TEXT, payload), (CLOSE, b"\x03\xe8")]


@pytest.mark.parametrize(
    "data, message",
    [
        (frame(CONT, b"no start"), "Illegal frame"),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "Illegal frame"),
        (frame(TEXT, b"a", rsv=0b100), "rsv is not implemented"),
        (frame(0x3, b"a"), "Invalid opcode"),
        (frame(PING, b"a", fin=False), "Invalid ping frame"),
        (frame(PING, b"a" * 126), "Ping message is too long"),
        (frame(CLOSE, b"\x03"), "Invalid close frame"),
        (frame(CLOSE, (999).to_bytes(2, "big")), "Invalid close opcode"),
    ],
    ids=[
        "continuation-without-start",
        "new-message-inside-fragments",
        "reserved-bit",
        "unknown-opcode",
        "fragmented-ping",
        "ping-too-long",
        "one-byte-close",
        "invalid-close-code",
    ],
)
def test_what_websocket_client_refuses_is_refused_with_its_message(pair, data, message):
    ours, theirs = pair
    theirs.sendall(data)
    with pytest.raises(websocket.WebSocketProtocolException, match=message):
        read_messages(FrameReader(ours), 2)


def test_a_closed_peer_is_a_lost_connection(pair):
    ours, theirs = pair
    reader = FrameReader(ours)
    theirs.sendall(frame(TEXT, b"last words"))
    theirs.close()
    assert reader.read() == [(TEXT, b"last words")]
    with pytest.raises(
        websocket.WebSocketConnectionClosedException, match="Connection to remote host was lost"
    ):
        reader.read()
