"""Plays the call's script over one accepted connection and answers the client.

The script loop runs in the connection's handler thread; a reader thread
drains what the client sends (recording it, and for Hiya acknowledging it),
so acks go out while the script waits or paces.
"""

import threading
import time
from typing import Any, Optional

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection

from ._call import CallState
from ._provider import Provider
from ._record import ConnectionRecord, Journal
from ._sockets import SimSocket
from ._steps import AwaitJoin, Close, Cut, Payload, Send, Silence, encode, render

_GOING_AWAY = 1001
_CUT_REASONS = {1001: "going away", 1011: "internal error", 1012: "service restart"}


class Driver:
    """One connection's share of the call."""

    def __init__(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        call: CallState,
        journal: Journal,
        provider: Provider,
        pace: float,
    ):
        self.ws = ws
        # websockets says a plain socket; the simulator serves every connection on a
        # SimSocket (Simulator._serve_one), and its switches are what the driver needs.
        self.sock: SimSocket = ws.socket  # type: ignore[assignment]
        self.record = record
        self.call = call
        self.journal = journal
        self.provider = provider
        self.pace = pace if call.script.paced else 0.0

    def run(self) -> None:
        self.sock.in_call = True
        greeting = self.call.claim(self)
        name = threading.current_thread().name + "-reader"
        threading.Thread(target=self._read, name=name, daemon=True).start()
        try:
            if greeting is not None:
                self._send(greeting)
            self._play()
        except ConnectionClosed:
            pass

    def _play(self) -> None:
        while not self.record.closed:
            taken = self.call.take(self)
            if taken is None:
                self._close(_GOING_AWAY, "simulator stopping" if self.call.stopping else "replaced")
                return
            index, step, payload = taken
            if isinstance(step, Send):
                self._send(payload)
                self._pause(self.pace)
            elif isinstance(step, AwaitJoin):
                self._await_join(index, step)
            elif isinstance(step, Cut):
                return self._cut(step)
            elif isinstance(step, Silence):
                return self._silence()
            else:
                return self._finish(step)

    def _interrupted(self) -> bool:
        """Whether a wait should end early: something changed that the loop must act on."""
        call = self.call
        return call.stopping or call.end_requested or call.owner is not self or self.record.closed

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self.call.wait(self._interrupted, seconds)

    def _await_join(self, index: int, step: AwaitJoin) -> None:
        deadline = self.call.join_deadline(index, step.timeout)
        self.call.wait(lambda: self.call.joined or self._interrupted(), max(0.0, deadline - time.monotonic()))
        self.call.finish_wait(self, index)

    def _cut(self, step: Cut) -> None:
        if step.mode == "reset":
            self._reset()
        else:
            self._close(int(step.mode), _CUT_REASONS[int(step.mode)])

    def _silence(self) -> None:
        self.sock.freeze()
        self.journal.update(self.record, silenced=True)
        self.call.wait(lambda: self.call.stopping or self.call.owner is not self, None)
        self._reset()

    def _reset(self) -> None:
        self.journal.update(self.record, reset=True)
        self.sock.abort()

    def _finish(self, step: Close) -> None:
        for payload in step.payloads:
            self._send(render(payload))
        if step.ends_call:
            self.call.set(ended=True)
        self._close(step.code, step.reason)

    def _close(self, code: int, reason: str) -> None:
        if not self.record.closed:
            self.ws.close(code, reason)

    def _send(self, payload: Payload) -> None:
        frame = encode(payload)
        self.ws.send(frame)
        self.journal.add(self.record, frame, sent=True)

    def _read(self) -> None:
        try:
            for frame in self.ws:
                self.journal.add(self.record, frame, sent=False)
                reply, effect = self.provider.answer(frame)
                if reply is not None:
                    self._send(reply)
                self.call.apply(effect)
        except ConnectionClosed:
            pass
        except AssertionError:  # websockets 12 when close() timed out: the connection is over all the same
            pass
        finally:
            protocol = self.ws.protocol
            self.journal.update(
                self.record,
                server_close_code=None if self.sock.muted else _code(protocol.close_sent),
                client_close_code=_code(protocol.close_rcvd),
                closed=True,
            )


def _code(close: Optional[Any]) -> Optional[int]:
    """The code of a websockets ``Close`` frame, or None when that side sent none."""
    return None if close is None else int(close.code)
