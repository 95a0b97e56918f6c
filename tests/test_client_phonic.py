"""PhonicClient against the simulator: snapshots, derived transcripts, auth modes."""

import pytest

import livecall
from livecall import ConversationEnded, ConversationUpdated, EndReason, ToolCall, Transcript
from livecall.testing import Simulator


def _lines(recorder):
    return [(t.item_idx, t.text) for t in recorder.events(Transcript)]


def test_conversation_yields_each_line_once_then_ends(client_for, recorder):
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim)
        client.run()
        record = sim.wait_for(lambda: sim.connections[-1].closed and sim.connections[-1], timeout=5)
    updates = recorder.events(ConversationUpdated)
    assert len(updates) >= 2
    assert isinstance(recorder.events()[-1], ConversationEnded)
    lines = _lines(recorder)
    assert len(lines) == len(set(lines)), "no line is emitted twice"
    last = updates[-1].conversation
    finals = {item.item_idx: item.transcript_text for item in last.items if item.transcript_text}
    emitted = {}
    for idx, text in lines:
        emitted[idx] = text
    assert emitted == finals, "every item's latest text was emitted"
    assert client.call.end_reason is EndReason.ENDED
    assert record.client_close_code == 1000, "the client closes with 1000 after conversation-ended"


def test_transcripts_follow_their_snapshot(client_for, recorder):
    with Simulator("phonic", "conversation") as sim:
        client_for(sim).run()
    order = [type(event) for event in recorder.events()]
    first_transcript = order.index(Transcript)
    assert order[first_transcript - 1] is ConversationUpdated


def test_the_numbers_are_learned_from_the_snapshot(client_for):
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim)
        client.run()
    call = client.call
    assert (call.direction, call.phone, call.from_phone) == ("inbound", "+15551234567", "+15551234567")
    assert call.to_phone == "+15559876543"
    assert call.id == sim.client_kwargs()["conversation_id"]


def test_api_key_goes_in_the_authorization_header(client_for):
    with Simulator("phonic", "conversation") as sim:
        client_for(sim).run()
        record = sim.connections[0]
    kwargs = sim.client_kwargs()
    assert record.path == f"/v1/conversations/{kwargs['conversation_id']}/live/ws"
    assert record.header("Authorization") == f"Bearer {kwargs['api_key']}"
    assert "session_token" not in record.query


def test_session_token_goes_in_the_query_without_authorization(client_for):
    with Simulator("phonic", "conversation") as sim:
        token = sim.credentials["session_token"]
        client = client_for(sim, api_key=None, session_token=token)
        client.run()
        record = sim.connections[0]
    assert record.query["session_token"] == token
    assert record.header("Authorization") is None
    assert client.call.end_reason is EndReason.ENDED


def test_api_key_falls_back_on_environment(monkeypatch, client_for):
    with Simulator("phonic", "conversation") as sim:
        monkeypatch.setenv("PHONIC_API_KEY", sim.client_kwargs()["api_key"])
        client = client_for(sim, api_key=None)
        client.run()
    assert client.call.end_reason is EndReason.ENDED


def test_key_and_session_token_together_are_refused():
    with pytest.raises(livecall.ConfigurationError, match="not both"):
        livecall.PhonicClient("conv_1", api_key="k", session_token="s")


def test_missing_credentials_are_refused(monkeypatch):
    monkeypatch.delenv("PHONIC_API_KEY", raising=False)
    with pytest.raises(livecall.ConfigurationError, match="PHONIC_API_KEY"):
        livecall.PhonicClient("conv_1")


def test_an_sdk_shaped_outbound_call_keeps_every_turn_redaction_and_tool_call(client_for, recorder):
    with Simulator("phonic", "sdk") as sim:
        client = client_for(sim)
        client.run()
    call = client.call
    assert (call.direction, call.from_phone, call.to_phone) == ("outbound", "+15559876543", "+15551234567")
    assert call.phone == "+15551234567", "phone is the other party, not the agent's own number"
    lines = [(t.item_idx, t.text, t.revised, t.redacted) for t in recorder.events(Transcript)]
    assert lines == [
        (0, "Hi, this is Sunrise Dental calling to confirm your cleaning on Monday.", False, False),
        (1, "Could we move it? You can text me at 555 0100.", False, False),
        (2, "Let me check Tuesday for you.", False, False),
        (1, "Could we move it? You can text me at [PHONE NUMBER].", True, True),
        (3, "Thanks, I'm [NAME].", False, True),
    ]
    tools = [(t.tool_call_id, t.name, t.status_code, t.result, t.revised) for t in recorder.events(ToolCall)]
    assert tools == [
        ("tool_call_sim-1", "reschedule_appointment", None, None, False),
        ("tool_call_sim-1", "reschedule_appointment", 200.0, {"slot": "Tuesday 10:00"}, True),
    ]
    final = recorder.events(ConversationUpdated)[-1].conversation
    assert final.ended_at is None and final.extra["ended_at"] == "9999-12-31T23:00:00-07:00"
    assert not recorder.events(livecall.DecodeError), "odd metadata costs no snapshot"
    assert call.end_reason is EndReason.ENDED
