"""HiyaClient against the simulator: handshake, every message type, join and end with acks."""

import threading

import pytest

import livecall
from livecall import Ack, CallEnded, CallStarted, EndReason, ScreeningEnded, Transcript
from livecall.testing import Simulator


def test_screening_call_delivers_every_message_in_order(client_for, recorder):
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        client = client_for(sim, product_version="2.1.3")
        client.run()
    kinds = [type(event) for event in recorder.events()]
    assert kinds[0] is CallStarted
    assert kinds[-1] is CallEnded
    assert ScreeningEnded in kinds
    transcripts = recorder.events(Transcript)
    assert {t.role for t in transcripts} >= {"assistant", "other"}
    assert all(isinstance(t.offset, (int, float)) for t in transcripts)
    assert recorder.of("transcript") == transcripts
    assert recorder.of("call_end") == [EndReason.ENDED]
    assert client.call.phone == recorder.events(CallStarted)[0].phone
    assert client.call.end_reason is EndReason.ENDED


def test_handshake_sends_documented_headers_and_query(client_for):
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        client_for(sim, product_version="2.1.3").run()
        record = sim.connections[0]
    creds = sim.client_kwargs()
    assert record.path == "/ws/v1/liveCalls"
    assert record.query["conversationToken"] == creds["conversation_token"]
    assert record.header("Authorization") == f"Bearer {creds['token']}"
    assert record.header("x-hiya-account-user-id") == creds["user_id"]
    assert record.header("x-hiya-product-version") == "2.1.3"


def _ask_once(client_for, sim, after, ask):
    """Start watching, wait for an ``after`` event, then ``ask`` (join_call or end_call)."""
    client = client_for(sim)
    arrived = threading.Event()
    client.on(after, lambda call, event: arrived.set())
    client.start()
    assert arrived.wait(5)
    ack = getattr(client, ask)(timeout=5)
    assert client.wait(10)
    return client, ack


def test_join_call_returns_the_matching_ack(client_for, recorder):
    with Simulator("hiya", "screening") as sim:
        _, ack = _ask_once(client_for, sim, ScreeningEnded, "join_call")
        sent = [frame for frame in sim.connections[0].received if "joinCall" in str(frame)]
    assert isinstance(ack, Ack)
    assert len(sent) == 1 and ack.ack_id in str(sent[0])
    assert ack in recorder.events(Ack)
    user_lines = [t for t in recorder.events(Transcript) if t.role == "user"]
    assert user_lines, "the call goes on with the user after the join"


def test_end_call_is_acked_and_ends_the_call(client_for, recorder):
    with Simulator("hiya", "screening") as sim:
        client, ack = _ask_once(client_for, sim, CallStarted, "end_call")
    assert isinstance(ack, Ack)
    assert recorder.events()[-1].__class__ is CallEnded
    assert client.call.end_reason is EndReason.ENDED


def test_ack_wait_fails_fast_when_not_connected(client_for):
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        client = client_for(sim)
        client.run()
    with pytest.raises(livecall.ConnectionLostError):
        client.join_call(timeout=1)


def test_join_from_inside_a_callback_is_refused_not_deadlocked(client_for, recorder):
    errors = []

    def join_inside(call, event):
        try:
            client.join_call(timeout=5)
        except livecall.LivecallError as error:
            errors.append(error)

    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        client = client_for(sim)
        client.on(CallStarted, join_inside)
        client.run()
    assert len(errors) == 1 and "outside hooks" in str(errors[0])


@pytest.mark.parametrize(
    "kwargs, missing",
    [
        (dict(conversation_token="ct", user_id="u"), "token"),
        (dict(token="t", user_id="u"), "conversation_token"),
        (dict(token="t", conversation_token="ct"), "user_id"),
    ],
)
def test_missing_arguments_are_configuration_errors(monkeypatch, kwargs, missing):
    monkeypatch.delenv("HIYA_TOKEN", raising=False)
    with pytest.raises(livecall.ConfigurationError, match=missing):
        livecall.HiyaClient(**kwargs)


def test_token_falls_back_on_environment_and_is_read_per_attempt(monkeypatch, client_for):
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        kwargs = sim.client_kwargs()
        monkeypatch.setenv("HIYA_TOKEN", kwargs["token"])
        client = client_for(sim, token=None)
        client.run()
    assert client.call.end_reason is EndReason.ENDED


def test_secrets_stay_out_of_reprs_and_errors(client_for):
    with Simulator("hiya", "auth") as sim:
        client = client_for(sim)
        with pytest.raises(livecall.AuthenticationError) as caught:
            client.start()
    secrets = [sim.client_kwargs()["token"], sim.client_kwargs()["conversation_token"]]
    for text in (repr(client), str(caught.value), repr(caught.value), repr(client.call)):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_malformed_frames_become_events_and_the_stream_goes_on(client_for, recorder, provider):
    with Simulator(provider, "malformed", join_timeout=0.2) as sim:
        client = client_for(sim)
        client.run()
        sent = sum(len(record.sent) for record in sim.connections)
    decode_errors = recorder.events(livecall.DecodeError)
    unknown = recorder.events(livecall.UnknownMessage)
    assert len(decode_errors) >= 5 and all(error.reason for error in decode_errors)
    assert any(isinstance(error.raw, bytes) for error in decode_errors), "the binary frame"
    assert len(unknown) >= 1
    derived = recorder.events(Transcript) if provider == "phonic" else []
    assert len(recorder.events()) - len(derived) == sent, "every frame became exactly one event"
    assert client.call.end_reason is EndReason.ENDED
