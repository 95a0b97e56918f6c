"""A hostile server, on real loopback sockets: what only a socket shows.

Redirects that would carry the credentials elsewhere, a handshake trickled
or padded without end, a frame header announcing 2^62 bytes, bad frames
after good ones, and servers that fail every connection: each is bounded,
refused, or given up on, and nothing valid is lost.
"""

import json
import socket
import struct
import threading
import tracemalloc
from typing import Callable

import pytest

import livecall
from livecall import EndReason

TOKEN = "hostile-token-7f3e"
CONVERSATION = "hostile-conversation-7f3e"
CALL_END = json.dumps({"type": "event:callEnd", "timestamp": "2025-07-30T23:45:00.000Z"}).encode()
QUICK = dict(ping_interval=5.0, ping_timeout=5.0, close_timeout=1.0, backoff=livecall.Backoff(0.01, 0.02))


def hiya(url: str, plugin_manager, **options) -> livecall.HiyaClient:
    options = {**QUICK, **options}
    return livecall.HiyaClient(
        token=options.pop("token", TOKEN),
        conversation_token=CONVERSATION,
        user_id="hostile",
        url=url,
        plugin_manager=plugin_manager,
        **options,
    )


def transcript(text: str) -> bytes:
    return json.dumps({"type": "transcript", "msg": text, "role": "other"}).encode()


class HttpStub:
    """A loopback listener that runs ``answer(sock)`` on each connection and keeps what it received."""

    def __init__(self, answer: Callable[[socket.socket], None]):
        self._answer = answer
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._done = threading.Event()
        threading.Thread(target=self._serve, name="http-stub", daemon=True).start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock: socket.socket) -> None:
        try:
            self._answer(sock)
        except OSError:
            pass
        finally:
            sock.close()

    def read_request(self, sock: socket.socket) -> bytes:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                break
            request += chunk
        self.received += request
        return request

    def stop(self) -> None:
        self._done.set()
        self._listener.close()


@pytest.fixture
def stubs():
    started = []

    def start(answer):
        stub = HttpStub(answer)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.stop()


# --- handshake safety ---------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_refused_and_the_other_host_receives_nothing(stubs, plugin_manager, status):
    elsewhere = stubs(lambda sock: elsewhere.read_request(sock))
    target = f"ws://localhost:{elsewhere.port}/steal?secret=query-9c1d"

    def redirect(sock):
        first.read_request(sock)
        sock.sendall(f"HTTP/1.1 {status} Moved\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n".encode())

    first = stubs(redirect)
    client = hiya(f"ws://127.0.0.1:{first.port}", plugin_manager, max_retries=3)
    with pytest.raises(livecall.ProtocolError) as refused:
        client.start(timeout=10)
    message = str(refused.value)
    assert f"HTTP {status}" in message and "localhost" in message
    assert "query-9c1d" not in message and "steal" not in message and TOKEN not in message
    assert first.connections == 1, "a redirect is not retried"
    assert TOKEN.encode() in first.received
    assert elsewhere.connections == 0 and elsewhere.received == b""


def test_a_header_value_with_crlf_is_refused_at_construction(plugin_manager):
    with pytest.raises(livecall.ConfigurationError, match="user_id") as refused:
        livecall.HiyaClient(
            token=TOKEN,
            conversation_token=CONVERSATION,
            user_id="1234\r\nX-Injected: yes",
            url="ws://127.0.0.1:9",
        )
    assert "X-Injected" not in str(refused.value)
    with pytest.raises(livecall.ConfigurationError, match="api_key"):
        livecall.PhonicClient("conv_1", api_key="key\nX-Injected: yes", url="ws://127.0.0.1:9")


def test_a_token_function_returning_crlf_never_reaches_the_server(stubs, plugin_manager):
    server = stubs(lambda sock: server.read_request(sock))
    client = hiya(f"ws://127.0.0.1:{server.port}", plugin_manager, token=lambda: "t\r\nX-Injected: yes")
    with pytest.raises(livecall.ConfigurationError, match="token") as refused:
        client.start(timeout=10)
    assert "X-Injected" not in str(refused.value)
    assert server.received == b""


def test_a_trickled_handshake_is_bounded_by_the_connect_timeout(stubs, plugin_manager):
    stop = threading.Event()

    def trickle(sock):
        trickler.read_request(sock)
        head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Slow: y\r\n" * 1000
        for byte in head:  # a byte every 0.05 s: minutes for the whole head
            if stop.wait(0.05):
                return
            sock.sendall(bytes((byte,)))

    trickler = stubs(trickle)
    client = hiya(f"ws://127.0.0.1:{trickler.port}", plugin_manager, connect_timeout=0.5, max_retries=1)
    try:
        with pytest.raises(livecall.RetriesExhaustedError, match="no handshake within the connect timeout"):
            client.start(timeout=30)
    finally:
        stop.set()
    assert trickler.connections == 2


def test_endless_response_headers_are_refused(stubs, plugin_manager):
    def pad(sock):
        padder.read_request(sock)
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        for _ in range(2000):
            sock.sendall(b"X-Pad: " + b"p" * 50 + b"\r\n")

    padder = stubs(pad)
    client = hiya(f"ws://127.0.0.1:{padder.port}", plugin_manager, max_retries=3)
    with pytest.raises(livecall.ProtocolError, match="over 100 headers|over 16384 bytes"):
        client.start(timeout=10)
    assert padder.connections == 1


# --- limits ---------------------------------------------------------------------------


def test_a_2_to_the_62_header_is_refused_with_1009_and_memory_stays_flat(
    raw_server, plugin_manager, recorder
):
    answered = []

    def announce_and_flood(peer):
        peer.send(peer.frame(peer.TEXT, transcript("before the flood")))
        peer.send(struct.pack("!BBQ", 0x82, 127, 1 << 62))
        zeros = bytes(1 << 20)
        try:
            for _ in range(64):  # 64 MiB of the announced payload, or until the client hangs up
                peer.send(zeros)
        except OSError:
            pass
        answered.append(peer.receive_until(peer.CLOSE))

    server = raw_server(announce_and_flood)
    client = hiya(server.url, plugin_manager, max_retries=3)
    tracemalloc.start()
    try:
        client.start(timeout=10)
        with pytest.raises(livecall.ProtocolError, match="too large"):
            client.wait(30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes while 64 MiB arrived"
    assert [line.text for line in recorder.events(livecall.Transcript)] == ["before the flood"]
    assert client.call.end_reason is EndReason.ERROR
    assert server.accepted == 1, "a size refusal is not retried"


def test_a_bad_frame_after_good_ones_delivers_them_and_fails_with_1002(raw_server, plugin_manager, recorder):
    closes = []

    def good_then_masked(peer):
        good = b"".join(peer.frame(peer.TEXT, transcript(f"line {n}")) for n in range(3))
        masked = bytes((0x81, 0x80 | 2)) + b"\x01\x02\x03\x04" + b"hi"
        peer.send(good + masked)
        closes.append(peer.receive_until(peer.CLOSE))

    server = raw_server(good_then_masked)
    client = hiya(server.url, plugin_manager, max_retries=3)
    client.start(timeout=10)
    with pytest.raises(livecall.ProtocolError, match="masked"):
        client.wait(10)
    assert [line.text for line in recorder.events(livecall.Transcript)] == ["line 0", "line 1", "line 2"]
    assert [struct.unpack("!H", payload[:2])[0] for payload in closes] == [1002]
    assert server.accepted == 1, "a protocol error is not retried"


# --- reconnect storms -------------------------------------------------------------------


def test_a_server_failing_every_connection_after_a_frame_is_given_up_on(raw_server, plugin_manager, recorder):
    def one_frame_then_drop(peer):
        peer.send(peer.frame(peer.TEXT, transcript("hello")))

    server = raw_server(one_frame_then_drop)
    client = hiya(server.url, plugin_manager, max_retries=2)
    client.start(timeout=10)
    with pytest.raises(livecall.RetriesExhaustedError):
        client.wait(20)
    assert server.accepted == 3, "the first connection and two retries, however many frames came"
    assert len(recorder.events(livecall.Transcript)) == 3


def test_a_server_sending_a_bad_frame_on_every_connection_is_not_retried(raw_server, plugin_manager):
    def frame_then_reserved_opcode(peer):
        peer.send(peer.frame(peer.TEXT, transcript("hello")) + peer.frame(0x3, b""))
        peer.receive_until(peer.CLOSE)

    server = raw_server(frame_then_reserved_opcode)
    client = hiya(server.url, plugin_manager, max_retries=2)
    client.start(timeout=10)
    with pytest.raises(livecall.ProtocolError, match="reserved opcode"):
        client.wait(20)
    assert server.accepted == 1


# --- the call-end race -------------------------------------------------------------------


def test_a_call_end_while_between_connections_is_not_missed(raw_server, plugin_manager):
    """The window between a reconnect's start and its connection is held open by the token function."""
    stopped = threading.Event()
    calls = []

    def token():
        calls.append(1)
        if len(calls) > 1:
            stopped.wait(10)  # the call end is dispatched meanwhile
        return TOKEN

    def end_then_drop(peer):
        peer.send(peer.frame(peer.TEXT, CALL_END))
        if server.accepted > 1:
            peer.receive_until(peer.CLOSE)

    server = raw_server(end_then_drop)
    client = hiya(server.url, plugin_manager, token=token, max_retries=3)
    stop = client._stop

    def stop_and_tell(ended):
        stop(ended)
        stopped.set()

    client._stop = stop_and_tell
    client.start(timeout=10)
    assert client.wait(10), "the watch ended"
    assert client.call.end_reason is EndReason.ENDED
    assert server.accepted == 1, "no connection after the call ended"
