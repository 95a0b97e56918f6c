"""Where a replay stands in its recording: it outlives connections, as a call outlives them.

The newest connection owns the playback and plays entries from the cursor;
an entry is consumed only once it has gone out, so a connection that breaks
leaves its frame to the next one.  After a break the recording did not have
(a chaos fault), Phonic's latest snapshot is sent first, as Phonic does on
every connection; Hiya sends nothing for the gap.  All state is guarded by
the journal's condition, which every change notifies.
"""

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

import attrs

from ._chaos import Fault
from ._record import Journal
from ._recording import Entry, Recording
from ._replay_peer import ReplayPeer
from ._wire import BINARY, TEXT, frame

__all__ = ["Playback"]

log = logging.getLogger("livecall.testing.replay")
#: Faults that break the connection before their frame; the others change how it is sent.
BREAKING = ("drop", "close", "stall", "refuse")
#: How long the replay waits for the client's close frame, or its answer to ours.
CLOSE_GRACE = 5.0
#: At ``speed=0``, consecutive frames are written together up to this many bytes.
BATCH_BYTES = 256 * 1024


@attrs.frozen
class _Frame:
    """A ``recv`` entry ready to go: its payload, its bytes on the wire, its message type."""

    payload: Union[str, bytes]
    data: bytes
    type: Optional[str]


def _prepare(entry: Entry) -> _Frame:
    payload = entry.payload
    if isinstance(payload, bytes):
        return _Frame(payload, frame(BINARY, payload), None)
    try:
        message = json.loads(payload)
    except ValueError:
        message = None
    kind = message.get("type") if isinstance(message, dict) else None
    return _Frame(payload, frame(TEXT, payload.encode("utf-8")), kind if isinstance(kind, str) else None)


class Playback:
    """The recording's cursor, the faults still to strike, and what the client asked for."""

    def __init__(
        self,
        recording: Recording,
        faults: Sequence[Fault],
        *,
        speed: float,
        loop: bool,
        join_timeout: float,
        snapshot_type: Optional[str],
        journal: Journal,
    ):
        self.entries = recording.entries
        self._frames = {i: _prepare(e) for i, e in enumerate(self.entries) if e.kind == "recv"}
        self._faults = [(fault.frame(recording.frames), fault) for fault in faults]
        self.speed = speed
        self.loop = loop
        self.join_timeout = join_timeout
        self._snapshot_type = snapshot_type
        self.condition = journal.condition
        self.owner: Optional[ReplayPeer] = None
        self.stopping = False
        self.finished = False
        self.refuse_next = False
        self._rewind()

    def _rewind(self) -> None:
        self.cursor = 0
        self.frames_sent = 0
        self._snapshot: Optional[_Frame] = None
        self._resync = False
        self._fired: set[int] = set()
        self._asked: list[dict[str, Any]] = []
        self._ids: dict[Any, Any] = {}

    # --- what connections and the client do --------------------------------------

    def claim(self, peer: ReplayPeer) -> Optional[ReplayPeer]:
        """Make ``peer`` the playing connection; returns the one it replaces."""
        with self.condition:
            previous, self.owner = self.owner, peer
            self.condition.notify_all()
            return previous

    def client_message(self, message: dict[str, Any]) -> None:
        with self.condition:
            self._asked.append(message)
            self.condition.notify_all()

    def stop(self) -> None:
        with self.condition:
            self.stopping = True
            self.condition.notify_all()

    # --- playing -------------------------------------------------------------------

    def play(self, peer: ReplayPeer) -> None:
        """Play entries on ``peer`` until it is over, replaced, or the recording ends."""
        if self.finished:
            return peer.close(1000, "the recording is over")
        with self.condition:
            resync, self._resync = self._resync, False
            snapshot = self._snapshot if resync else None
        if snapshot is not None and not peer.send([snapshot.payload], snapshot.data):
            return
        anchor: Optional[tuple[float, float]] = None
        while not self._interrupted(peer):
            entry = self.entries[self.cursor] if self.cursor < len(self.entries) else None
            if entry is None:
                return self._finish(peer, torn=True)
            if anchor is None:
                anchor = time.monotonic(), entry.t
            if entry.kind == "recv":
                if not self._wait_until(
                    peer, anchor[0] + (entry.t - anchor[1]) / (self.speed or float("inf"))
                ):
                    return
                if not self._recv(peer):
                    return
                continue  # _recv consumed what it sent
            if entry.kind == "send":
                if not self._await_client(peer, entry):
                    return
                anchor = None  # the wait for the client is not the recording's time
            elif entry.kind == "open" and peer.record.sent:
                return peer.abort()  # the recording's connection ended here, this one did not
            elif entry.kind == "close":
                self._close(peer, entry)
            elif entry.kind == "lost" and not peer.over:
                peer.abort()
            elif entry.kind == "end":
                return self._finish(peer, torn=False)
            self._consume(1)

    def _interrupted(self, peer: ReplayPeer) -> bool:
        return self.stopping or self.owner is not peer or (peer.over and not self._bookkeeping_next())

    def _bookkeeping_next(self) -> bool:
        """Whether the next entry needs no open connection: a close, a loss, the end."""
        return self.cursor >= len(self.entries) or self.entries[self.cursor].kind in ("close", "lost", "end")

    def _wait_until(self, peer: ReplayPeer, deadline: float) -> bool:
        """Sleep until ``deadline`` (monotonic) unless interrupted; False if interrupted."""
        with self.condition:
            self.condition.wait_for(lambda: self._interrupted(peer), max(0.0, deadline - time.monotonic()))
            return not self._interrupted(peer)

    def _consume(self, count: int, frames: Sequence[_Frame] = ()) -> None:
        with self.condition:
            self.cursor += count
            self.frames_sent += len(frames)
            for sent in frames:
                if sent.type is not None and sent.type == self._snapshot_type:
                    self._snapshot = sent
            self.condition.notify_all()

    def _recv(self, peer: ReplayPeer) -> bool:
        """Send the frame at the cursor (and, at speed 0, those after it); False to stop."""
        number = self.frames_sent + 1
        due = [
            (i, fault) for i, (at, fault) in enumerate(self._faults) if at == number and i not in self._fired
        ]
        breaking = [(i, fault) for i, fault in due if fault.name in BREAKING]
        if breaking:
            self._fired.add(breaking[0][0])
            return self._break(peer, breaking[0][1])
        self._fired.update(i for i, _ in due)
        names = {fault.name for _, fault in due}
        batch = self._batch() if self.speed == 0 and not names else [self._frame(self.cursor)]
        data = b"".join(sent.data for sent in batch)
        if "trickle" in names:
            sent_ok = peer.trickle(batch[0].payload, data, lambda: self._interrupted(peer))
        else:
            copies = 2 if "duplicate" in names else 1
            sent_ok = peer.send([sent.payload for sent in batch] * copies, data * copies)
        if sent_ok:
            self._consume(len(batch), batch)
        return sent_ok

    def _batch(self) -> list[_Frame]:
        """The frames from the cursor that can go in one write: no fault, nothing else between."""
        batch: list[_Frame] = []
        size, index = 0, self.cursor
        fault_frames = {at for i, (at, _) in enumerate(self._faults) if i not in self._fired}
        while index < len(self.entries) and self.entries[index].kind == "recv" and size < BATCH_BYTES:
            if batch and self.frames_sent + len(batch) + 1 in fault_frames:
                break
            batch.append(self._frame(index))
            size += len(batch[-1].data)
            index += 1
        return batch

    def _frame(self, index: int) -> _Frame:
        """The frame at ``index``, a Hiya ack answering the id the client actually used."""
        prepared = self._frames[index]
        if prepared.type != "ack" or not self._ids:
            return prepared
        message = json.loads(prepared.payload)
        if message.get("ackId") not in self._ids:
            return prepared
        message["ackId"] = self._ids[message["ackId"]]
        text = json.dumps(message)
        return attrs.evolve(prepared, payload=text, data=frame(TEXT, text.encode("utf-8")))

    def _break(self, peer: ReplayPeer, fault: Fault) -> bool:
        """Play a fault that breaks the connection; False: this connection plays no more."""
        log.info("chaos: %s before frame %d", fault.text, self.frames_sent + 1)
        with self.condition:
            self._resync = True
            self.refuse_next = self.refuse_next or fault.name == "refuse"
        if fault.name == "close":
            assert fault.value is not None
            self._close_and_wait(peer, int(fault.value), "chaos: close")
            return False
        if fault.name == "stall":
            peer.stalled = True
            with self.condition:
                self.condition.wait_for(lambda: self._replaced(peer), fault.value)
                if fault.value is not None and not (self._replaced(peer) or peer.over):
                    peer.stalled, self._resync = False, False
                    return True  # a stall the client sat through: the frame goes out now
        peer.abort()
        return False

    def _replaced(self, peer: ReplayPeer) -> bool:
        return self.stopping or self.owner is not peer

    def take_refusal(self) -> bool:
        """Whether this handshake is the one a ``refuse`` fault refuses (only the next one is)."""
        with self.condition:
            refuse, self.refuse_next = self.refuse_next, False
            return refuse

    def _await_client(self, peer: ReplayPeer, entry: Entry) -> bool:
        """A message the client sent in the recording: wait for it, and learn the id it used.

        False if the connection ended meanwhile: the next one waits again.
        """
        try:
            recorded = json.loads(entry.fields["text"])
        except ValueError:
            return True
        if not isinstance(recorded, dict):
            return True
        wanted = recorded.get("type")

        def sent() -> Optional[dict[str, Any]]:
            return next((message for message in self._asked if message.get("type") == wanted), None)

        with self.condition:
            self.condition.wait_for(lambda: sent() is not None or self._interrupted(peer), self.join_timeout)
            message = sent()
            if message is None:
                if self._interrupted(peer):
                    return False
                log.warning(
                    "the client did not send %s within %g s: the replay goes on", wanted, self.join_timeout
                )
                return True
            self._asked.remove(message)
            self._ids[recorded.get("id")] = message.get("id")
            return True

    def _close(self, peer: ReplayPeer, entry: Entry) -> None:
        code, reason = entry.fields["code"], entry.fields["reason"]
        if entry.fields["by"] == "client":
            with self.condition:
                self.condition.wait_for(lambda: peer.over or self.stopping, CLOSE_GRACE)
        if not peer.over:
            self._close_and_wait(peer, code, reason)

    def _close_and_wait(self, peer: ReplayPeer, code: Optional[int], reason: str) -> None:
        peer.close(code, reason)
        with self.condition:
            if self.condition.wait_for(lambda: peer.over or self.stopping, CLOSE_GRACE):
                return
        peer.abort()

    def _finish(self, peer: ReplayPeer, *, torn: bool) -> None:
        """The recording is over: end this connection if it is still open, then start over or stop."""
        if not peer.over:
            self._close_and_wait(peer, 1000, "the recording ends here" if torn else "")
        with self.condition:
            if self.loop:
                self._rewind()
            else:
                self.cursor = len(self.entries)
                self.finished = True
            self.condition.notify_all()


def snapshot_type(provider: str) -> Optional[str]:
    """The message type that holds the provider's whole state, resent on every connection."""
    return "conversation-updated" if provider == "phonic" else None
