"""Autobahn|Testsuite client agents: livecall's engine, websocket-client and websockets.

Usage: python agent.py URL AGENT [AGENT ...]   (agents: livecall, websocket-client, websockets)

Each agent connects once per case to ``URL/runCase?case=N&agent=NAME`` and
echoes every message back with its own type, as the fuzzing server expects;
then ``/updateReports`` has the server write its report.  livecall's agent
goes through livecall's own opening handshake and protocol core, with the
default limits, on a blocking socket (the hub drives the same core on a
non-blocking one).  The other two are used as their documentation shows, with their
defaults (but websockets' message size limit, raised to livecall's), as
someone would who chose them instead.
"""

import socket
import sys
import time
from typing import Callable, Union

import websocket

from livecall._wire.protocol import Protocol
from livecall.errors import LivecallError
from livecall.testing._wire import open_plain

#: Seconds a case may take before its connection is dropped; the whole run never hangs.
CASE_TIMEOUT = 60.0

Message = Union[str, bytes]
#: websockets refuses messages over 1 MiB by default; given livecall's default
#: limit instead, 16 MiB, the two are graded on the same budget.
MAX_SIZE = 16 * 1024 * 1024


def livecall_case(url: str) -> None:
    """livecall's own opening handshake and protocol core, with its default limits, driven on a
    blocking socket as the hub drives it on a non-blocking one: bytes in, messages and bytes out."""
    clock = time.monotonic
    handshake = open_plain(url)
    sock, data = handshake.sock, handshake.rest
    protocol = Protocol(clock(), ping_interval=None, close_timeout=5.0)
    give_up = clock() + CASE_TIMEOUT
    try:
        while not protocol.finished and clock() < give_up:
            if data:
                protocol.receive_data(data, clock())
            for message in protocol.messages_received():
                try:
                    protocol.send(message)
                except LivecallError:
                    pass  # closing already: the server's close is answered, not echoed to
            protocol.handle_timer(clock())
            out = protocol.data_to_send()
            if out:
                sock.sendall(out)
            if protocol.finished:
                break
            deadline = protocol.next_deadline()
            sock.settimeout(max(0.01, min(give_up, deadline if deadline is not None else give_up) - clock()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                data = b""
                continue
            if not data:
                protocol.connection_lost()
    except OSError:
        protocol.connection_lost()
    finally:
        sock.close()


def websocket_client_case(url: str) -> None:
    ws = websocket.create_connection(url, timeout=CASE_TIMEOUT)
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break  # recv_data() answered it already
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                ws.send(data, opcode)
    except (OSError, websocket.WebSocketException):
        pass  # a frame it refused: it fails the connection by dropping TCP
    finally:
        ws.shutdown()


def websockets_case(url: str) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    try:
        with connect(url, open_timeout=10, close_timeout=5, max_size=MAX_SIZE) as ws:
            for message in ws:
                ws.send(message)
    except (OSError, ConnectionClosed):
        pass


AGENTS: dict[str, Callable[[str], None]] = {
    "livecall": livecall_case,
    "websocket-client": websocket_client_case,
    "websockets": websockets_case,
}


def case_count(url: str) -> int:
    ws = websocket.create_connection(f"{url}/getCaseCount", timeout=10)
    try:
        return int(ws.recv())
    finally:
        ws.close()


def run(url: str, agent: str) -> float:
    """Every case against ``agent``, then the report; the seconds it took."""
    started = time.monotonic()
    play = AGENTS[agent]
    for case in range(1, case_count(url) + 1):
        try:
            play(f"{url}/runCase?case={case}&agent={agent}")
        except (OSError, LivecallError, websocket.WebSocketException) as error:
            print(f"{agent}: case {case}: {type(error).__name__}: {error}", file=sys.stderr)
    ws = websocket.create_connection(f"{url}/updateReports?agent={agent}", timeout=60)
    ws.close()
    return time.monotonic() - started


def main() -> None:
    url, agents = sys.argv[1], sys.argv[2:]
    for agent in agents:
        seconds = run(url, agent)
        print(f"{agent}: all cases in {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
