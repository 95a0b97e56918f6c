"""Servers that attack the connection's buffers and the I/O thread's time, on real loopback sockets.

A ping flood that is never read, a message of endless empty fragments, a
flood after a failure, and heaps of tiny frames: each is bounded by a size,
a count or a turn of the I/O thread, and the other calls keep their turn.
"""

import heapq
import itertools
import json
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Callable

import pytest

import livecall
from livecall._hub.link import FRAMES_PER_TURN, Link
from livecall._hub.loop import Timer
from livecall._observe.watch_counts import WatchCounts
from livecall._wire.protocol import PENDING_PONGS, Message, Outcome, Protocol

TOKEN = "hostile-peer-token-5b21"
QUICK = dict(ping_interval=30.0, ping_timeout=5.0, close_timeout=30.0, backoff=livecall.Backoff(0.01, 0.02))


def hiya(url: str, plugin_manager, **options) -> livecall.HiyaClient:
    return livecall.HiyaClient(
        token=TOKEN,
        conversation_token="hostile-peer-conversation",
        user_id="hostile",
        url=url,
        plugin_manager=plugin_manager,
        max_retries=3,
        **{**QUICK, **options},
    )


def transcript(text: str) -> bytes:
    return json.dumps({"type": "transcript", "msg": text, "role": "other"}).encode()


def refused(url: str, plugin_manager, match: str, **options) -> None:
    """Watch the call at ``url`` until the client fails the connection with a ``ProtocolError``."""
    client = hiya(url, plugin_manager, **options)
    client.start(timeout=10)
    with pytest.raises(livecall.ProtocolError, match=match):
        client.wait(30)


def push(peer, chunk: bytes, total: int) -> int:
    """Send ``chunk`` over and over, ``total`` bytes, or until the client ends TCP; the bytes sent."""
    sent = 0
    try:
        while sent < total:
            peer.send(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


def heard(client: livecall.HiyaClient, text: str) -> threading.Event:
    """Set once the client dispatched the line ``text``."""
    event = threading.Event()
    client.on(livecall.Transcript, lambda call, line: event.set() if line.text == text else None)
    return event


# --- what waits to be sent ---------------------------------------------------------------


def test_a_ping_flood_never_read_leaves_a_few_pongs_waiting(raw_server, plugin_manager, figures):
    inspected = threading.Event()
    pings = 200_000  # 25 MB of pongs to send, far more than the kernel's buffers take

    def flood_without_reading(peer):
        ping = peer.frame(peer.PING, b"p" * 125)
        for _ in range(pings // 1000):
            peer.send(ping * 1000)
        peer.send(peer.frame(peer.TEXT, transcript("after the flood")))
        inspected.wait(30)

    server = raw_server(flood_without_reading)
    client = hiya(server.url, plugin_manager)
    after = heard(client, "after the flood")
    try:
        client.start(timeout=10)
        assert after.wait(30), "the line after the flood came"
        link = client._link
        assert link is not None
        waiting = len(link._out) + link._protocol._outgoing_size
        assert waiting <= (PENDING_PONGS + 1) * 131, f"{waiting} bytes of pongs wait to be sent"
        assert link._protocol.outcome is None, "a ping flood alone does not fail the connection"
    finally:
        inspected.set()
        client.close()
    figures(faults_injected=pings)


# --- fragments ------------------------------------------------------------------------------


def test_empty_fragments_past_the_limit_fail_the_connection_with_1009(raw_server, plugin_manager, recorder):
    """Past ``max_fragments`` empty pieces the message is refused, though its size never grew.

    The server sends only half again as many as allowed, all at once, then
    reads: a server still pushing when the client ends TCP would never read
    the close frame.  An endless stream of them is the protocol tests' part.
    """
    closes, played = [], threading.Event()

    def empty_fragments(peer):
        try:
            peer.send(peer.frame(peer.TEXT, transcript("before the fragments")))
            peer.send(peer.frame(peer.TEXT, b"", fin=False))
            peer.send(peer.frame(peer.CONTINUATION, b"", fin=False) * 1500)
            closes.append(peer.receive_until(peer.CLOSE))
        finally:
            played.set()

    server = raw_server(empty_fragments)
    refused(server.url, plugin_manager, "over 1000 fragments", max_fragments=1000)
    assert played.wait(30)
    assert closes == [struct.pack("!H", 1009) + b"message in over 1000 fragments"]
    assert [line.text for line in recorder.events(livecall.Transcript)] == ["before the fragments"]
    assert server.accepted == 1, "not retried"


# --- after a failure ------------------------------------------------------------------------


def test_a_flood_after_a_failure_is_not_read_until_the_close_timeout(raw_server, plugin_manager):
    pushed = []

    def bad_frame_then_flood(peer):
        peer.send(peer.frame(0x3, b""))  # a reserved opcode: the client fails the connection
        pushed.append(push(peer, bytes(1 << 20), 256 << 20))

    server = raw_server(bad_frame_then_flood)
    refused(server.url, plugin_manager, "reserved opcode")  # a close timeout of 30 s: the flood would run on
    server.stop()
    assert len(pushed) == 1
    assert pushed[0] < 32 << 20, f"{pushed[0]} bytes pushed: the client read on after failing"


# --- the I/O thread's turns -------------------------------------------------------------------


class SteppedHub:
    """The hub's selector and timer heap, turned one turn at a time by the test, as its I/O thread
    turns them: the timers due when the turn begins, then one select over the sockets."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.call_at(0.0, fn)

    def turn(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                timer.callback()
        for key, mask in self.selector.select(0):
            key.data(mask)


@pytest.fixture
def tcp_pairs() -> Iterator[Callable[[], tuple[socket.socket, socket.socket]]]:
    """Factory of connected loopback TCP pairs (client side, server side), closed at the end."""
    listener = socket.create_server(("127.0.0.1", 0))
    made: list[socket.socket] = []

    def pair() -> tuple[socket.socket, socket.socket]:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        made.extend((client, server))
        return client, server

    yield pair
    for sock in [listener, *made]:
        sock.close()


def wait_readable(*socks: socket.socket) -> None:
    """Until every socket has bytes to read (no sleeping: select, with a guard against a hang)."""
    waiting = set(socks)
    deadline = time.monotonic() + 10
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while waiting and time.monotonic() < deadline:
            waiting -= {key.fileobj for key, _ in selector.select(deadline - time.monotonic())}
    assert not waiting, "the bytes came"


def test_a_heap_of_tiny_frames_costs_another_link_no_turn(tcp_pairs):
    hub = SteppedHub()
    delivered: dict[str, list[Message]] = {"hostile": [], "ordinary": []}
    ended: list[Outcome] = []

    def link(name: str, sock: socket.socket) -> Link:
        def deliver(messages: list[Message], at: float) -> bool:
            delivered[name].extend(messages)
            return False

        protocol = Protocol(time.monotonic(), ping_interval=None)
        return Link(
            hub,
            sock,
            b"",
            protocol,
            deliver,
            lambda outcome, up_for: ended.append(outcome),
            WatchCounts("hiya", False),
        )

    (hostile_sock, hostile_peer), (ordinary_sock, ordinary_peer) = tcp_pairs(), tcp_pairs()
    hostile, ordinary = link("hostile", hostile_sock), link("ordinary", ordinary_sock)
    pongs = 20 * FRAMES_PER_TURN
    hostile_peer.sendall(b"\x8a\x00" * pongs + b"\x81\x04last")
    ordinary_peer.sendall(b"\x81\x05hello")
    wait_readable(hostile_sock, ordinary_sock)

    hub.turn()
    assert delivered["ordinary"] == ["hello"], "the other link's message came in the same turn"
    turns, parsed = 1, hostile._protocol.pongs_received
    assert 0 < parsed <= FRAMES_PER_TURN
    while delivered["hostile"] != ["last"] and turns < 10 * pongs // FRAMES_PER_TURN:
        ordinary_peer.sendall(b"\x81\x04more")
        wait_readable(ordinary_sock)
        hub.turn()
        turns += 1
        assert hostile._protocol.pongs_received - parsed <= FRAMES_PER_TURN, "one turn's budget at most"
        parsed = hostile._protocol.pongs_received
        assert delivered["ordinary"] == ["hello"] + ["more"] * (turns - 1), "a message every turn"
    assert delivered["hostile"] == ["last"] and parsed == pongs, (
        "the link came back until its backlog was read"
    )
    assert turns >= pongs // FRAMES_PER_TURN
    assert not ended and not hostile.over and not ordinary.over


@pytest.mark.parametrize("name", ["max_fragments", "max_send_buffer"])
def test_the_bounds_are_checked_where_the_client_is_made(name):
    with pytest.raises(livecall.ConfigurationError, match=name):
        hiya("ws://127.0.0.1:9", None, **{name: 0})
