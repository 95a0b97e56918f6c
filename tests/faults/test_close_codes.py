"""How a server's close frame ends a watch, code by code, from a server written byte by byte."""

import struct

import pytest

import livecall
from livecall import EndReason


def _closing_with(payload):
    def play(peer):
        peer.send(peer.frame(peer.TEXT, b'{"type": "x"}'))
        peer.send(peer.frame(peer.CLOSE, payload))
        peer.receive_until(peer.CLOSE)

    return play


@pytest.mark.parametrize(
    "payload, reason",
    [
        (struct.pack("!H", 1000), EndReason.ENDED),
        (b"", EndReason.ENDED),  # no code at all (1005): a deliberate close all the same
        (struct.pack("!H", 4001) + b"go away", EndReason.ERROR),
    ],
    ids=["1000", "no code", "4001"],
)
def test_a_close_frame_ends_the_watch_by_its_code(raw_server, plugin_manager, recorder, payload, reason):
    server = raw_server(_closing_with(payload))
    client = livecall.PhonicClient(
        "conv_1", api_key="close-key-51c2", url=server.url, plugin_manager=plugin_manager, max_retries=3
    )
    client.start()
    if reason is EndReason.ERROR:
        with pytest.raises(livecall.ProtocolError, match="4001: go away"):
            client.wait(10)
    else:
        assert client.wait(10)
    assert client.call.end_reason is reason
    assert server.accepted == 1, "none of these is retried"
