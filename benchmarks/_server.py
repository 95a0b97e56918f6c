"""A minimal WebSocket server for the benchmarks, always run as a process of its own.

It does the RFC 6455 handshake itself on a raw socket and writes frames that
are encoded ahead of time (both with ``livecall.testing._wire``, as the fault
tests' hand-written server does), so it costs far less than any client it
serves: a full server library would be the bottleneck before the client under
test is.

``python -m benchmarks._server CONFIG`` (CONFIG is the JSON of a
:class:`Script`) prints its port, gives every connection the same script, and
when its stdin closes prints its counters as one JSON line and exits.
:class:`ServerProcess` does all of that from the measuring process.
"""

import heapq
import itertools
import json
import os
import selectors
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import attrs

from livecall.testing._wire import CLOSE, PING, PONG, TEXT, accept_handshake, frame, take_frames

from . import _payloads
from ._stats import raise_open_files_limit

_CHUNK = 256 * 1024


@attrs.frozen
class Script:
    """What each connection is sent.

    ``burst``: ``count`` frames of ``provider`` as fast as the socket takes
    them.  Otherwise ``count`` Hiya transcripts at ``rate`` per second per
    connection, each with its send time (``time.time()``) as ``offset``;
    pacing starts for each group of ``connections`` once all of it is in,
    spread evenly over the group.  With ``ping_every`` the server pings every
    connection that often and records how long each pong took.  Every script
    ends with the provider's final message and a close frame; a paced one
    ``hold`` seconds after its last transcript (or after pacing starts, when
    ``count`` is 0: idle calls).
    """

    count: int
    provider: str = "hiya"
    burst: bool = True
    rate: float = 1.0
    connections: int = 1
    ping_every: Optional[float] = None
    hold: float = 0.0
    #: TLS (``wss://``) with this certificate and key (PEM files), else plain ``ws://``.
    certfile: Optional[str] = None
    keyfile: Optional[str] = None


def _ending(provider: str) -> bytes:
    final = _payloads.CALL_END if provider == "hiya" else _payloads.CONVERSATION_ENDED
    return frame(TEXT, final.encode()) + frame(CLOSE, (1000).to_bytes(2, "big"))


def _burst(script: Script) -> bytes:
    messages = (
        _payloads.transcripts(script.count)
        if script.provider == "hiya"
        else _payloads.snapshots(script.count)
    )
    return b"".join(frame(TEXT, message.encode()) for message in messages) + _ending(script.provider)


class _Peer:
    """One client connection and what the script still has to send it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbox = bytearray()
        self.sent = 0
        self.ended = False
        self.pings: dict[bytes, float] = {}


class Server:
    """Serves ``script`` on loopback until stdin closes; see the module docstring."""

    def __init__(self, script: Script):
        self.script = script
        self.blob = _burst(script) if script.burst else b""
        self.ending = _ending(script.provider)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.tls: Optional[ssl.SSLContext] = None
        if script.certfile:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(script.certfile, script.keyfile)
        self.selector = selectors.DefaultSelector()
        self.schedule: list[Any] = []  # heap of (due, tie-breaker, peer)
        self.order = itertools.count()
        self.peers: list[_Peer] = []
        self.arrived: list[_Peer] = []  # not paced yet: the group is not complete
        self.next_ping: Optional[float] = None
        self.counts = dict(connections=0, frames_sent=0, pings=0, pongs=0, closes_received=0)
        self.pong_delays: list[float] = []

    def serve(self) -> dict[str, Any]:
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
        print(self.listener.getsockname()[1], flush=True)
        while True:
            for key, _ in self.selector.select(self._timeout()):
                if key.data == "stdin":
                    return self.report()
                if key.data == "accept":
                    self._accept()
                else:
                    self._read(key.data)
            self._send_due()

    def report(self) -> dict[str, Any]:
        unanswered = sum(len(peer.pings) for peer in self.peers)
        return dict(
            self.counts,
            unanswered_pings=unanswered,
            pong_ms=[round(1000 * delay, 3) for delay in self.pong_delays],
        )

    def _timeout(self) -> Optional[float]:
        next_frame = self.schedule[0][0] if self.schedule else None
        dues = [due for due in (next_frame, self.next_ping) if due is not None]
        return max(0.0, min(dues) - time.monotonic()) if dues else None

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
        accept_handshake(sock)
        self.counts["connections"] += 1
        peer = _Peer(sock)
        self.peers.append(peer)
        if self.script.burst:
            for start in range(0, len(self.blob), _CHUNK):
                sock.sendall(self.blob[start : start + _CHUNK])
            self.counts["frames_sent"] += self.script.count
            peer.ended = True
        else:
            self.arrived.append(peer)
            if len(self.arrived) == self.script.connections:
                self._start_pacing()
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, peer)

    def _start_pacing(self) -> None:
        now = time.monotonic()
        spacing = 1.0 / (self.script.rate * len(self.arrived))
        if self.script.count == 0:
            now += self.script.hold  # idle calls: nothing but the ending, after the hold
        for number, peer in enumerate(self.arrived):
            heapq.heappush(self.schedule, (now + number * spacing, next(self.order), peer))
        self.arrived = []
        if self.script.ping_every:
            self.next_ping = now + self.script.ping_every

    def _send_due(self) -> None:
        now = time.monotonic()
        while self.schedule and self.schedule[0][0] <= now:
            due, _, peer = heapq.heappop(self.schedule)
            if peer.ended:  # the client closed first: the script stops there
                continue
            if peer.sent == self.script.count:
                self._send(peer, self.ending)
                peer.ended = True
                continue
            payload = _payloads.transcript(peer.sent, time.time()).encode()
            self._send(peer, frame(TEXT, payload))
            peer.sent += 1
            self.counts["frames_sent"] += 1
            pause = self.script.hold if peer.sent == self.script.count else 0.0
            heapq.heappush(self.schedule, (due + 1.0 / self.script.rate + pause, next(self.order), peer))
        if self.next_ping is not None and self.next_ping <= now:
            self._ping_all(now)

    def _ping_all(self, now: float) -> None:
        live = [peer for peer in self.peers if not peer.ended]
        for peer in live:
            payload = str(self.counts["pings"]).encode()
            peer.pings[payload] = now
            self.counts["pings"] += 1
            self._send(peer, frame(PING, payload))
        self.next_ping = now + self.script.ping_every if live else None

    def _send(self, peer: _Peer, data: bytes) -> None:
        peer.sock.setblocking(True)  # frames are small; a full buffer is the client's backpressure
        try:
            peer.sock.sendall(data)
        except OSError:
            pass  # the client went away; its end shows up in the counts
        peer.sock.setblocking(False)

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(65536)
            while isinstance(peer.sock, ssl.SSLSocket) and peer.sock.pending():
                data += peer.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(peer.sock)
            peer.sock.close()
            return
        peer.inbox += data
        for opcode, payload in take_frames(peer.inbox):
            if opcode == PONG and payload in peer.pings:
                self.pong_delays.append(time.monotonic() - peer.pings.pop(payload))
                self.counts["pongs"] += 1
            elif opcode == PING:
                self._send(peer, frame(PONG, payload))
            elif opcode == CLOSE:
                self.counts["closes_received"] += 1
                if not peer.ended:  # the client closed first: answer, as RFC 6455 asks
                    self._send(peer, frame(CLOSE, bytes(payload[:2])))
                    peer.ended = True


class ServerProcess:
    """Runs a :class:`Server` in a child process: ``with ServerProcess(script) as server:``.

    ``server.url`` is its ``ws://`` address; after the block, ``server.stats``
    holds its counters.
    """

    def __init__(self, script: Script):
        self.script = script
        self.stats: dict[str, Any] = {}
        self.url = ""
        self._process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "ServerProcess":
        root = Path(__file__).resolve().parent.parent
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._server", json.dumps(attrs.asdict(self.script))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
        )
        port = self._process.stdout.readline().strip()
        if not port:
            self._process.wait()
            raise RuntimeError("the benchmark server did not start")
        scheme = "wss" if self.script.certfile else "ws"
        self.url = f"{scheme}://127.0.0.1:{int(port)}"
        return self

    def __exit__(self, *exc_info: Any) -> None:
        process = self._process
        process.stdin.close()
        try:
            line = process.stdout.readline()
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        self.stats = json.loads(line) if line.strip() else {}


def main() -> None:
    raise_open_files_limit()
    stats = Server(Script(**json.loads(sys.argv[1]))).serve()
    print(json.dumps(stats), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
