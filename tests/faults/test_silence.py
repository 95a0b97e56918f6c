"""Peers that go quiet with the TCP connection left open: noticed by the client's own timeouts, replaced.

Each test checks which timeout noticed the silence (the missing pong, the
unanswered handshake), not how many seconds it took: a hang guard fails the
test only if nothing notices at all.  Speed targets live in benchmarks/.
"""

import json
import socket

import pytest

import livecall
from livecall import EndReason, Reconnecting, Transcript
from livecall.testing import Simulator

PING_INTERVAL, PING_TIMEOUT = 0.2, 0.3
BACKOFF = livecall.Backoff(0.01, 0.05)
#: Seconds before a watch that should end is declared hung: a guard, not a speed target.
HANG_GUARD = 30.0


@pytest.mark.parametrize("provider, scenario", [("hiya", "silence"), ("phonic", "long+silence")])
def test_a_silent_peer_is_replaced_once_its_pong_is_overdue(
    client_for, recorder, figures, provider, scenario
):
    with Simulator(provider, scenario, join_timeout=0) as sim:
        client = client_for(sim, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT, backoff=BACKOFF)
        client.start()
        assert sim.wait_for(lambda: any(record.silenced for record in sim.connections), timeout=HANG_GUARD)
        assert sim.wait_for(lambda: sim.accepted >= 2, timeout=HANG_GUARD)
        assert client.wait(HANG_GUARD)
    said = [line.text for line in recorder.events(Transcript)]
    on_the_wire = _lines_sent(sim)
    lost = len(on_the_wire) - len(said)
    figures(events_sent=len(on_the_wire), events_received=len(said), events_lost=lost, faults_injected=1)
    assert said == on_the_wire
    # Noticed once, by the keepalive: a ping after PING_INTERVAL of quiet, no pong within PING_TIMEOUT.
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


def test_a_server_that_never_answers_the_handshake_is_given_up_on_in_time(
    plugin_manager, recorder, figures, returns
):
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
        with pytest.raises(livecall.RetriesExhaustedError) as caught:
            returns(client.run)
    figures(faults_injected=attempts)
    # Each attempt was cut by connect_timeout, not by the operating system's own, far longer, timeouts.
    reconnects = recorder.events(Reconnecting)
    assert [reconnect.attempt for reconnect in reconnects] == [1, 2]
    assert all("no handshake within the connect timeout" in reconnect.reason for reconnect in reconnects)
    assert "no handshake within the connect timeout" in str(caught.value)
    assert client.call.end_reason is EndReason.GAVE_UP
