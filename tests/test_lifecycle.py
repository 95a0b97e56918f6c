"""Reconnects, dead peers, auth failures and closing, against the simulator on loopback."""

import socket
import threading

import pytest

import livecall
from livecall import EndReason, Reconnecting, Transcript
from livecall.testing import Simulator


@pytest.mark.parametrize("mode", ["reset", 1001, 1011, 1012])
def test_hiya_reconnects_after_a_drop_and_reports_it(client_for, recorder, mode):
    with Simulator("hiya", "drop", drop_mode=mode, join_timeout=0.2) as sim:
        client = client_for(sim)
        client.run()
        accepted = sim.accepted
    reconnects = recorder.of("reconnect")
    assert accepted == 2
    assert len(reconnects) == 1 and reconnects[0].attempt == 1
    assert recorder.events(Reconnecting) == reconnects
    assert client.call.end_reason is EndReason.ENDED
    assert len(recorder.of("call_start")) == 1, "a reconnect is not a new call"


def test_phonic_reconnect_loses_and_duplicates_nothing(client_for, recorder):
    with Simulator("phonic", "drop", drops=3, drop_mode="random", seed=7) as sim:
        client_for(sim).run()
    lines = [(t.item_idx, t.text) for t in recorder.events(Transcript)]
    assert len(recorder.of("reconnect")) == 3
    assert len(lines) == len(set(lines))
    final = recorder.events(livecall.ConversationUpdated)[-1].conversation
    latest = {}
    for idx, text in lines:
        latest[idx] = text
    assert latest == {i.item_idx: i.transcript_text for i in final.items if i.transcript_text}


def test_silent_peer_is_detected_and_replaced(client_for, recorder):
    with Simulator("hiya", "silence", join_timeout=0.2) as sim:
        client = client_for(sim, ping_interval=0.2, ping_timeout=0.3)
        client.start()
        assert sim.wait_for(lambda: any(record.silenced for record in sim.connections), timeout=30)
        assert sim.wait_for(lambda: sim.accepted >= 2, timeout=30)
        assert client.wait(30)
    reasons = [r.reason for r in recorder.of("reconnect")]
    # Detected by the missing pong (ping interval + timeout), not by some slower way of noticing.
    assert reasons and "no pong within 0.3 s" in reasons[0]
    assert client.call.end_reason is EndReason.ENDED


def test_handshake_401_fails_at_once_without_retries(client_for, recorder):
    with Simulator("hiya", "auth") as sim:
        client = client_for(sim, max_retries=5)
        with pytest.raises(livecall.AuthenticationError) as caught:
            client.start()
        assert sim.rejected == 1 and sim.accepted == 0
    assert caught.value.status == 401
    assert client.call.end_reason is EndReason.AUTH_FAILED
    assert recorder.of("call_end") == [], "no call_end without a call_start"
    assert isinstance(recorder.of("error")[0], livecall.AuthenticationError)


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_error_then_1008_is_an_auth_failure_with_the_server_message(client_for, recorder, provider):
    with Simulator(provider, "auth-close") as sim:
        client = client_for(sim)
        client.start()
        with pytest.raises(livecall.AuthenticationError) as caught:
            client.wait(10)
        assert sim.accepted == 1
    server_errors = recorder.events(livecall.ServerError)
    assert server_errors and caught.value.server_message == server_errors[-1].message
    assert server_errors[-1].message in str(caught.value)
    assert recorder.of("call_end") == [EndReason.AUTH_FAILED]


def _unused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gives_up_after_max_retries(plugin_manager, recorder):
    client = livecall.PhonicClient(
        "conv_1",
        api_key="k",
        url=f"ws://127.0.0.1:{_unused_port()}",
        plugin_manager=plugin_manager,
        max_retries=3,
        backoff=livecall.Backoff(0.001, 0.01),
    )
    with pytest.raises(livecall.RetriesExhaustedError) as caught:
        client.run()
    assert caught.value.attempts == 3
    assert [r.attempt for r in recorder.of("reconnect")] == [1, 2, 3]
    assert client.call.end_reason is EndReason.GAVE_UP


def test_close_from_another_thread_returns_promptly(client_for, recorder, returns):
    with Simulator("hiya", "screening", pace=0.2) as sim:
        # A close timeout far beyond the hang guard: a close() that sat it out fails the guard.
        client = client_for(sim, close_timeout=120.0)
        client.start()
        assert sim.wait_for(lambda: recorder.events(Transcript), timeout=5)
        returns(client.close)
        assert client.wait(0), "close() returned once the watch was over, not by giving up on it"
        assert sim.wait_for(lambda: sim.connections[0].client_close_code == 1000, timeout=5)
    assert recorder.of("call_end") == [EndReason.CLOSED]


def test_close_from_inside_a_hook_does_not_deadlock(client_for, recorder):
    with Simulator("hiya", "screening", pace=0.05) as sim:
        client = client_for(sim)
        client.on(Transcript, lambda call, event: client.close())
        client.start()
        assert client.wait(5)
    assert recorder.of("call_end") == [EndReason.CLOSED]


def test_close_is_idempotent_and_safe_before_start(client_for):
    with Simulator("hiya", "screening", pace=0.05) as sim:
        client = client_for(sim)
        client.close()
        client.close()
        client.start()
        assert client.wait(5)
        client.close()
    assert client.call.end_reason is EndReason.CLOSED


def test_context_manager_closes(client_for):
    # the call waits for a join that never comes: only the block's end can end it
    with Simulator("hiya", "screening", join_timeout=30) as sim:
        with client_for(sim) as client:
            assert sim.wait_for(lambda: sim.accepted == 1, timeout=5)
        assert client.wait(5)
        assert sim.wait_for(lambda: sim.connections[0].client_close_code == 1000, timeout=5)
    assert not sim.call_ended
    assert client.call.end_reason is EndReason.CLOSED


def test_hub_threads_are_named_daemons_and_gone_after_close(client_for):
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        client = client_for(sim)
        client.start()
        threads = [t for t in threading.enumerate() if t.name.startswith("livecall-hub")]
        assert threads and all(t.daemon for t in threads)
        client.close()
    for thread in threads:
        thread.join(5)
    assert [t.name for t in threads if t.is_alive()] == []
    assert not [t.name for t in threading.enumerate() if client.call.id in t.name]


def test_a_refused_handshake_carries_the_server_words(client_for):
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim, api_key="wrong-key-value")
        with pytest.raises(livecall.AuthenticationError) as caught:
            client.start()
        body = sim.connections[0]
    assert caught.value.status == 401 and body.status == 401
    assert "wrong-key-value" not in str(caught.value)
    assert caught.value.server_message and caught.value.server_message in str(caught.value)
