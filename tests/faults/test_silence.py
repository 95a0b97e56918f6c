"""Peers that go quiet with the TCP connection left open: noticed in bounded time, replaced."""

import json
import socket
import time

import pytest

import livecall
from livecall import EndReason, Reconnecting, Transcript
from livecall.testing import Simulator

PING_INTERVAL, PING_TIMEOUT = 0.2, 0.3
BACKOFF = livecall.Backoff(0.01, 0.05)
TICK = min(PING_INTERVAL, PING_TIMEOUT) / 2
#: Room for a loaded CI machine on top of what the client itself may take.
SLACK = 1.0


@pytest.mark.parametrize("provider, scenario", [("hiya", "silence"), ("phonic", "long+silence")])
def test_a_silent_peer_is_replaced_within_ping_interval_plus_timeout_plus_backoff(
    client_for, recorder, figures, provider, scenario
):
    with Simulator(provider, scenario, join_timeout=0) as sim:
        client = client_for(sim, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, backoff=BACKOFF)
        client.start()
        sim.wait_for(lambda: any(record.silenced for record in sim.connections))
        silenced_at = time.monotonic()
        sim.wait_for(lambda: sim.accepted >= 2)
        replaced_after = time.monotonic() - silenced_at
        assert client.wait(10)
    said = [line.text for line in recorder.events(Transcript)]
    on_the_wire = _lines_sent(sim)
    lost = len(on_the_wire) - len(said)
    figures(events_sent=len(on_the_wire), events_received=len(said), events_lost=lost, faults_injected=1)
    assert said == on_the_wire
    # Silence must last ping_interval before the ping, then ping_timeout; a tick late each.
    bound = PING_INTERVAL + PING_TIMEOUT + 2 * TICK + BACKOFF.cap
    assert replaced_after < bound + SLACK, f"replaced after {replaced_after:.2f} s, bound {bound:.2f} s"
    [reconnect] = recorder.events(Reconnecting)
    assert f"no pong within {PING_TIMEOUT:g} s" in reconnect.reason
    assert client.call.end_reason is EndReason.ENDED


def _lines_sent(sim):
    """Every line the simulator got onto the wire: Hiya's transcripts, or the last Phonic snapshot's turns."""
    messages = [json.loads(frame) for record in sim.connections for frame in record.sent]
    if sim.provider == "hiya":
        return [message["msg"] for message in messages if message["type"] == "transcript"]
    [*_, last] = [message for message in messages if message["type"] == "conversation-updated"]
    return [item["text"] or item["live_transcript"] for item in last["conversation"]["items"]]


def test_a_server_that_never_answers_the_handshake_is_given_up_on_in_time(plugin_manager, recorder, figures):
    attempts = 3
    with socket.create_server(("127.0.0.1", 0), backlog=attempts + 1) as mute:  # never accepts, never answers
        client = livecall.PhonicClient(
            "conv_mute",
            api_key="mute-key-0b7d",
            url=f"ws://127.0.0.1:{mute.getsockname()[1]}",
            plugin_manager=plugin_manager,
            connect_timeout=0.2,
            max_retries=attempts - 1,
            backoff=BACKOFF,
        )
        started = time.monotonic()
        with pytest.raises(livecall.RetriesExhaustedError):
            client.run()
        took = time.monotonic() - started
    figures(faults_injected=attempts)
    assert took < attempts * (0.2 + BACKOFF.cap) + SLACK
    assert [reconnect.attempt for reconnect in recorder.events(Reconnecting)] == [1, 2]
    assert client.call.end_reason is EndReason.GAVE_UP
