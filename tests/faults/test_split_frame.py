"""A frame cut across the reader's socket timeouts arrives whole, exactly once.

The reader reads with a short timeout (the tick) so it can ping while the
peer is quiet; a frame that is half in when a read times out must wait for
its rest, not be lost or cut into two messages.  The server below proves a
tick went by at each cut: it waits for the client's ping, which the reader
sends only from a timed-out read.
"""

import json

import pytest

import livecall
from livecall import CallEnded, EndReason, Transcript

CALL_END = json.dumps({"type": "event:callEnd", "timestamp": "2025-07-30T23:46:00Z"}).encode()


# (payload size, where the frame is cut): in the 2-byte header, in the 16- or
# 64-bit extended length, in the payload.
CUTS = [(300, 1), (300, 3), (300, 150), (70_000, 5), (70_000, 35_000)]


@pytest.mark.parametrize("size, cut", CUTS)
def test_a_frame_split_across_a_timeout_arrives_whole(
    raw_server, plugin_manager, recorder, figures, size, cut
):
    text = "".join(chr(0x41 + i % 26) for i in range(size))
    message = json.dumps({"type": "transcript", "msg": text, "role": "other", "offset": 1.5}).encode()

    def play(peer):
        data = peer.frame(peer.TEXT, message)
        peer.send(data[:cut])
        peer.receive_until(peer.PING)  # sent from a timed-out read: a tick went by mid-frame
        peer.send(data[cut:] + peer.frame(peer.TEXT, CALL_END))
        peer.receive_until(peer.CLOSE)
        peer.send(peer.frame(peer.CLOSE, b"\x03\xe8"))

    server = raw_server(play)
    client = livecall.HiyaClient(
        "raw-token-5f1c",
        "raw-conversation-token-5f1c",
        "raw-user",
        url=server.url,
        plugin_manager=plugin_manager,
        ping_interval=0.2,
        ping_timeout=2.0,
        close_timeout=1.0,
        max_retries=0,
    )
    client.run()
    events = recorder.events()
    figures(events_sent=2, events_received=len(events), events_lost=2 - len(events), faults_injected=1)
    assert [type(event) for event in events] == [Transcript, CallEnded]
    assert events[0].text == text
    assert client.call.end_reason is EndReason.ENDED
    assert server.accepted == 1
