"""join_call() against a server that never acks, and one that drops the connection instead."""

import json
import threading

import pytest

import livecall
from livecall import CallStarted

START = json.dumps({"type": "event:start", "phone": "+15551234567", "timestamp": "2025-07-30T23:45:00Z"})


def _started_client(server, plugin_manager, **options):
    client = livecall.HiyaClient(
        "ack-token-7d21",
        "ack-conversation-5e90",
        "user-1",
        url=server.url,
        plugin_manager=plugin_manager,
        **options,
    )
    started = threading.Event()
    client.on(CallStarted, lambda call, event: started.set())
    client.start()
    assert started.wait(5)
    return client


def test_no_ack_in_time_is_an_ack_timeout(raw_server, plugin_manager):
    asked = []

    def play(peer):
        peer.send(peer.frame(peer.TEXT, START.encode()))
        asked.append(json.loads(peer.receive_until(peer.TEXT)))  # and never acked
        peer.receive_until(peer.CLOSE)

    client = _started_client(raw_server(play), plugin_manager)
    with pytest.raises(livecall.AckTimeoutError, match="client:joinCall"):
        client.join_call(timeout=0.3)
    client.close()
    assert asked and asked[0]["type"] == "client:joinCall" and asked[0]["id"]


def test_a_connection_lost_while_waiting_is_a_connection_error(raw_server, plugin_manager):
    def play(peer):
        peer.send(peer.frame(peer.TEXT, START.encode()))
        peer.receive_until(peer.TEXT)  # then the TCP connection goes, with no close frame

    client = _started_client(raw_server(play), plugin_manager, max_retries=0)
    with pytest.raises(livecall.ConnectionLostError):
        client.join_call(timeout=10)
    with pytest.raises(livecall.RetriesExhaustedError):
        client.wait(5)
