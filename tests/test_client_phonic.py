"""PhonicClient against the simulator: snapshots, derived transcripts, auth modes."""

import pytest

import livecall
from livecall import ConversationEnded, ConversationUpdated, EndReason, Transcript
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


def test_caller_phone_is_learned_from_the_snapshot(client_for):
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim)
        client.run()
    assert client.call.phone and client.call.phone.startswith("+")
    assert client.call.id == sim.client_kwargs()["conversation_id"]


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
