"""The codec: frames of both providers to events, and events to JSON-lines records."""

import base64
import json
import logging
from datetime import datetime, timedelta, timezone

import phonic_sdk as sdk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecall import redact
from livecall._codec import Decoder, to_json, to_record, without_words
from livecall.call import Call
from livecall.events import (
    Ack,
    CallEnded,
    CallStarted,
    ConversationEnded,
    ConversationUpdated,
    DecodeError,
    Reconnecting,
    Role,
    ScreeningEnded,
    ServerError,
    ToolCall,
    Transcript,
    UnknownMessage,
)
from livecall.hiya import HIYA
from livecall.phonic import PHONIC

UTC = timezone.utc
RECEIVED = datetime(2025, 7, 30, 23, 45, 1, 250000, tzinfo=UTC)

# The spec's conversation-updated example, verbatim.
SPEC_UPDATE = """{
 "type": "conversation-updated",
 "conversation": {
 "id": "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c",
 "agent": {
 "id": "agent_12cf6e88-c254-4d3e-a149-a7f1bdd22783",
 "name": "support-agent",
 "is_deleted": false
 },
 "org_id": "org_01K1WB8NT3EJJ4ZRKJ6BQZPZPS",
 "project_id": "proj_ad0334f1-2487-4155-9df3-abd8129b29ad",
 "external_id": "call-123",
 "origin": "inbound",
 "generate_welcome_message": false,
 "welcome_message": "Hello! How can I help you today?",
 "template_variables": {},
 "input_format": "mulaw_8000",
 "output_format": "mulaw_8000",
 "background_noise_level": 0,
 "background_noise": null,
 "intelligence_level": "default",
 "text": "Hello! How can I help you today?\\nHi, I need help with booking an appointment.\\nOf course! I'd be happy to help.",
 "duration_ms": 12500,
 "summary": null,
 "boosted_keywords": [],
 "min_words_to_interrupt": 1,
 "default_language": "en",
 "additional_languages": [],
 "multilingual_mode": "request",
 "push_to_talk": false,
 "no_input_poke_sec": 30,
 "generate_no_input_poke_text": false,
 "no_input_poke_text": "Are you still there?",
 "no_input_end_conversation_sec": 180,
 "storage_key": null,
 "started_at": "2025-07-30T23:45:00.000Z",
 "ended_at": null,
 "task_results": null,
 "timezone": "America/Los_Angeles",
 "system_prompt": "You are a helpful support assistant.",
 "is_test": false,
 "is_live": true,
 "call_provider": "twilio_inbound_user",
 "from_phone_number": "+15551234567",
 "to_phone_number": "+15559876543",
 "twilio_call_sid": null,
 "created_by": null,
 "vad_min_silence_duration_ms": null,
 "assistant_end_conversation_signal_at": null,
 "retranscribed_text": null,
 "end_reason": null,
 "vad_info": { "events": [] },
 "annotations": {},
 "items": [
 {
 "id": "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c-0",
 "item_idx": 0,
 "role": "assistant",
 "text": "Hello! How can I help you today?",
 "retranscribed_text": null,
 "duration_ms": 1800,
 "audio_speed": 1,
 "voice": null,
 "tool_call_ids": [],
 "transcript_corrections": [],
 "naturalness_report": null,
 "hallucination_report": null,
 "started_at": "2025-07-30T23:45:00.500Z",
 "assistant_chose_not_to_respond": false,
 "timings": {
 "phonic_api_output_to_modal_input": 120,
 "model_generation_time": 450,
 "phonic_api_output_to_first_audio_chunk": 570
 }
 },
 {
 "id": "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c-1",
 "item_idx": 1,
 "role": "user",
 "text": "Hi, I need help with booking an appointment.",
 "retranscribed_text": null,
 "duration_ms": 2500,
 "audio_speed": null,
 "voice": null,
 "tool_call_ids": [],
 "transcript_corrections": [],
 "naturalness_report": null,
 "hallucination_report": null,
 "started_at": "2025-07-30T23:45:03.000Z",
 "assistant_chose_not_to_respond": false
 },
 {
 "id": "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c-2",
 "item_idx": 2,
 "role": "assistant",
 "text": "Of course! I'd be happy to help.",
 "retranscribed_text": null,
 "duration_ms": 2100,
 "audio_speed": 1,
 "voice": null,
 "tool_call_ids": [],
 "transcript_corrections": [],
 "naturalness_report": null,
 "hallucination_report": null,
 "started_at": "2025-07-30T23:45:06.200Z",
 "assistant_chose_not_to_respond": false,
 "timings": {
 "phonic_api_output_to_modal_input": 95,
 "model_generation_time": 380,
 "phonic_api_output_to_first_audio_chunk": 475
 }
 }
 ]
 }
}"""

# The SDK's Conversation shape (see FIELD-NOTES): call_info, live_transcript,
# no org_id/text/is_live, and items without an id.
SDK_CONVERSATION = {
    "id": "conv_sdk",
    "agent": {"id": "agent_1", "name": "support-agent"},
    "workspace": "acme",
    "project": {"id": "proj_1", "name": "main"},
    "origin": "outbound",
    "model": "merritt",
    "live_transcript": "Hello!\nHi.",
    "post_call_transcript": None,
    "duration_ms": 4200.5,
    "started_at": "2025-07-30T23:45:00Z",
    "ended_at": None,
    "ended_by": "assistant",
    "task_results": {},
    "analysis": {"latencies_ms": [120, 95], "interruptions_count": 0},
    "call_info": {
        "from_phone_number": "+15551230000",
        "to_phone_number": "+15559870000",
        "twilio_call_sid": "CA123",
    },
    "items": [
        {
            "item_idx": 0,
            "role": "assistant",
            "live_transcript": "Hello!",
            "post_call_transcript": None,
            "duration_ms": 900,
            "started_at": "2025-07-30T23:45:00.100Z",
            "voice_id": "sarah",
            "audio_speed": 1.0,
        },
        {
            "item_idx": 1,
            "role": "user",
            "live_transcript": None,
            "post_call_transcript": "Hi.",
            "duration_ms": 400,
            "started_at": "2025-07-30T23:45:01.000Z",
        },
    ],
}


def new_decoder(provider: str) -> Decoder:
    """A fresh decoder of the provider named."""
    return {"hiya": HIYA, "phonic": PHONIC}[provider].new_decoder()


def frame(message):
    return json.dumps(message).encode()


def hiya(message):
    return new_decoder("hiya").decode(frame(message), RECEIVED)


def phonic(message):
    return new_decoder("phonic").decode(frame(message), RECEIVED)


def update(conversation):
    return {"type": "conversation-updated", "conversation": conversation}


def reason_of(event):
    assert isinstance(event, DecodeError), event
    return event.reason


# --- Hiya ---------------------------------------------------------------------


@pytest.mark.parametrize("around", [("", ""), (" ", ""), ("", "\n"), ("\t ", " \r\n")])
def test_whitespace_around_a_frame_decodes_like_the_compact_frame(around):
    """Compact frames take the scanner alone; the others still go through the full decoder."""
    text = around[0] + '{"type":"transcript","msg":"Hi","role":"user","offset":1.5}' + around[1]
    event = new_decoder("hiya").decode(text.encode(), RECEIVED)
    assert event == Transcript(text="Hi", role=Role.USER, offset=1.5)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type":"transcript"} {}', "invalid JSON: Extra data: line 1 column 23"),
        ('{"type":"transcript"}x', "invalid JSON: Extra data: line 1 column 22"),
        (' {"type":', "invalid JSON: Expecting value: line 1 column 10"),
        ('{"offset": 1e999}', "invalid JSON: number out of range: 1e999"),
    ],
)
def test_what_follows_or_breaks_a_frame_is_reported_as_the_json_decoder_words_it(text, reason):
    assert reason_of(new_decoder("hiya").decode(text.encode(), RECEIVED)).startswith(reason)


def test_call_start_has_phone_and_aware_timestamp():
    event = hiya({"type": "event:start", "phone": "+15551234567", "timestamp": "2025-07-30T23:45:00.500Z"})
    assert event == CallStarted(
        phone="+15551234567", timestamp=datetime(2025, 7, 30, 23, 45, 0, 500000, tzinfo=UTC)
    )
    assert event.timestamp.tzinfo is not None


@pytest.mark.parametrize("role", ["assistant", "other", "user"])
def test_transcript_maps_msg_and_role(role):
    event = hiya({"type": "transcript", "msg": "Hello", "role": role, "offset": 1.5})
    assert isinstance(event, Transcript)
    assert (event.text, event.role, event.offset, event.item_idx) == ("Hello", Role(role), 1.5, None)
    assert type(event.role) is Role


def test_transcript_offset_is_optional_and_an_int_is_kept_as_sent():
    assert hiya({"type": "transcript", "msg": "a", "role": "user"}).offset is None
    assert hiya({"type": "transcript", "msg": "a", "role": "user", "offset": None}).offset is None
    offset = hiya({"type": "transcript", "msg": "a", "role": "user", "offset": 3}).offset
    assert offset == 3 and type(offset) is int


def test_hiya_cannot_set_the_derived_item_idx():
    assert hiya({"type": "transcript", "msg": "a", "role": "user", "item_idx": 4}).item_idx is None


def test_screening_end_call_end_and_ack():
    assert hiya({"type": "event:end", "msg": "Screening done"}) == ScreeningEnded(message="Screening done")
    assert hiya({"type": "event:callEnd", "timestamp": "2025-07-30T23:50:00Z"}) == CallEnded(
        timestamp=datetime(2025, 7, 30, 23, 50, tzinfo=UTC)
    )
    assert hiya({"type": "ack", "ackId": "msg-1"}) == Ack(ack_id="msg-1")


@pytest.mark.parametrize(
    "message, text",
    [
        ({"description": "Token expired"}, "Token expired"),
        ({"message": "Unauthorized access to conversation"}, "Unauthorized access to conversation"),
        ({"error": {"message": "Invalid token"}}, "Invalid token"),
        ({"error": "Invalid token"}, "Invalid token"),
        ({"description": None, "error": {"code": 4}, "message": "fallback"}, "fallback"),
    ],
)
def test_error_text_is_found_in_any_provider_shape(message, text):
    for decode in (hiya, phonic):
        # The text may come from several places: extra keeps the whole message.
        assert decode(dict(message, type="error")) == ServerError(message=text, extra=message)


def test_error_without_any_text_is_a_decode_error():
    reason = reason_of(hiya({"type": "error", "error": {"code": 401}}))
    assert "description, message, error.message or error" in reason


# --- Phonic -------------------------------------------------------------------


def test_spec_example_decodes_with_typed_fields_and_extras():
    event = new_decoder("phonic").decode(SPEC_UPDATE.encode(), RECEIVED)
    assert isinstance(event, ConversationUpdated)
    conversation = event.conversation
    assert conversation.id == "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c"
    assert conversation.is_live is True
    assert conversation.duration_ms == 12500
    assert conversation.started_at == datetime(2025, 7, 30, 23, 45, tzinfo=UTC)
    assert conversation.ended_at is None
    assert conversation.agent == {
        "id": "agent_12cf6e88-c254-4d3e-a149-a7f1bdd22783",
        "name": "support-agent",
        "is_deleted": False,
    }
    assert (conversation.from_phone, conversation.to_phone) == ("+15551234567", "+15559876543")
    assert conversation.direction == "inbound"
    assert conversation.extra["org_id"] == "org_01K1WB8NT3EJJ4ZRKJ6BQZPZPS"
    assert conversation.extra["vad_info"] == {"events": []}
    assert "items" not in conversation.extra and "id" not in conversation.extra
    assert [item.role for item in conversation.items] == ["assistant", "user", "assistant"]
    first = conversation.items[0]
    assert (first.item_idx, first.transcript_text) == (0, "Hello! How can I help you today?")
    assert first.started_at == datetime(2025, 7, 30, 23, 45, 0, 500000, tzinfo=UTC)
    assert first.extra["timings"]["model_generation_time"] == 450
    assert "timings" not in conversation.items[1].extra


def test_sdk_shape_decodes():
    conversation = phonic(update(SDK_CONVERSATION)).conversation
    assert conversation.call_info["twilio_call_sid"] == "CA123"
    assert (conversation.from_phone, conversation.to_phone) == ("+15551230000", "+15559870000")
    assert conversation.direction == "outbound"
    assert conversation.ended_by == "assistant"
    assert conversation.live_transcript == "Hello!\nHi."
    assert conversation.extra["project"] == {"id": "proj_1", "name": "main"}
    assert conversation.extra["workspace"] == "acme"
    assert [item.id for item in conversation.items] == [None, None]
    assert [item.transcript_text for item in conversation.items] == ["Hello!", "Hi."]
    assert conversation.items[0].extra == {"voice_id": "sarah", "audio_speed": 1.0}


def test_a_wire_field_named_extra_is_kept():
    conversation = phonic(
        update({"id": "c", "extra": {"a": 1}, "items": [{"id": "i", "extra": "x", "role": "oracle"}]})
    ).conversation
    assert conversation.extra == {"extra": {"a": 1}}
    assert conversation.items[0].extra == {"extra": "x"}
    assert conversation.items[0].role == "oracle"  # Phonic roles are free strings


def test_conversation_ended():
    assert phonic({"type": "conversation-ended"}) == ConversationEnded()


def test_minimal_conversation_needs_only_an_id():
    conversation = phonic(update({"id": "c"})).conversation
    assert (conversation.items, conversation.extra, conversation.text) == ((), {}, None)


# --- received_at ----------------------------------------------------------------


@pytest.mark.parametrize(
    "decoder, data",
    [
        ("hiya", b'{"type": "ack", "ackId": "1", "received_at": "1999-01-01T00:00:00Z"}'),
        ("hiya", b'{"type": "error", "description": "x", "received_at": 5}'),
        ("phonic", b'{"type": "conversation-ended", "received_at": "1999-01-01T00:00:00Z"}'),
        ("hiya", b'{"type": "somethingNew", "received_at": "1999-01-01T00:00:00Z"}'),
        ("hiya", b"not json"),
    ],
)
def test_received_at_is_the_given_one_and_the_wire_cannot_set_it(decoder, data):
    received_at = datetime(2031, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    event = new_decoder(decoder).decode(data, received_at)
    assert event.received_at is received_at


# --- timestamps -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2025-07-30T23:45:00Z", datetime(2025, 7, 30, 23, 45, tzinfo=UTC)),
        ("2025-07-30T23:45:00.5Z", datetime(2025, 7, 30, 23, 45, 0, 500000, tzinfo=UTC)),
        ("2025-07-30T23:45:00.123456789z", datetime(2025, 7, 30, 23, 45, 0, 123456, tzinfo=UTC)),
        ("2025-07-31T01:45:00+02:00", datetime(2025, 7, 30, 23, 45, tzinfo=UTC)),
        ("2025-07-30T23:45:00", datetime(2025, 7, 30, 23, 45, tzinfo=UTC)),  # naive: UTC
    ],
)
def test_timestamps_are_read_as_aware_utc(text, expected):
    timestamp = hiya({"type": "event:callEnd", "timestamp": text}).timestamp
    assert timestamp == expected and timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01T00:00:00Z", "", 1722383100, None])
def test_bad_timestamps_are_decode_errors(bad):
    assert "@ $.timestamp" in reason_of(hiya({"type": "event:callEnd", "timestamp": bad}))


# --- strictness -------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, expected",
    [
        ({"type": "transcript", "msg": 5, "role": "user"}, "expected string, got number @ $.msg"),
        ({"type": "transcript", "role": "user"}, "required field missing @ $.msg"),
        (
            {"type": "transcript", "msg": "a", "role": "user", "offset": "x"},
            "expected number, got string @ $.offset",
        ),
        (
            {"type": "transcript", "msg": "a", "role": "user", "offset": True},
            "expected number, got boolean @ $.offset",
        ),
        ({"type": "transcript", "msg": "a", "role": 1}, "expected a role string, got 1 @ $.role"),
        ({"type": "transcript", "msg": "a", "role": None}, "got None @ $.role"),
        (
            {"type": "event:start", "phone": None, "timestamp": "2025-07-30T23:45:00Z"},
            "expected string, got null @ $.phone",
        ),
        ({"type": "ack", "ackId": 3}, "expected string, got number @ $.ackId"),
        ({"type": "event:end"}, "required field missing @ $.msg"),
    ],
)
def test_hiya_wrong_or_missing_fields_are_decode_errors(message, expected):
    assert expected in reason_of(hiya(message))


@pytest.mark.parametrize(
    "conversation, expected",
    [
        ({"items": []}, "required field missing @ $.conversation.id"),
        ({"id": 7}, "@ $.conversation.id"),
        ({"id": "c", "items": "abc"}, "@ $.conversation.items"),
        ({"id": "c", "items": [5]}, "@ $.conversation.items[0]"),
        ({"id": "c", "items": [{}, {"item_idx": 1.5}]}, "@ $.conversation.items[1].item_idx"),
        ({"id": "c", "items": [{"item_idx": True}]}, "@ $.conversation.items[0].item_idx"),
        ({"id": "c", "items": [{"role": 5}]}, "@ $.conversation.items[0].role"),
        ({"id": "c", "items": [{"text": 5}]}, "@ $.conversation.items[0].text"),
        ({"id": "c", "items": [{"live_transcript": []}]}, "@ $.conversation.items[0].live_transcript"),
        ({"id": "c", "items": [{"redacted_transcript": 1}]}, "@ $.conversation.items[0].redacted_transcript"),
        ({"id": "c", "items": [{"id": 3}]}, "@ $.conversation.items[0].id"),
        (None, "@ $.conversation"),
    ],
)
def test_phonic_wrongly_typed_fields_are_decode_errors(conversation, expected):
    assert expected in reason_of(phonic(update(conversation)))


def test_a_missing_conversation_is_a_decode_error():
    assert "required field missing @ $.conversation" in reason_of(phonic({"type": "conversation-updated"}))


# --- undecodable frames -----------------------------------------------------------


@pytest.mark.parametrize(
    "data, binary, expected_reason, expected_raw",
    [
        (b'{"type": "ack", "ackId": "1"}', True, "binary frame", b'{"type": "ack", "ackId": "1"}'),
        (b"\xff\xfe{}", False, "invalid UTF-8", b"\xff\xfe{}"),
        (b"{not json", False, "invalid JSON", "{not json"),
        (b"", False, "invalid JSON", ""),
        (b'{"type": "ack"} trailing', False, "invalid JSON", '{"type": "ack"} trailing'),
        (
            b'{"type": "transcript", "offset": NaN}',
            False,
            "NaN is not JSON",
            '{"type": "transcript", "offset": NaN}',
        ),
        (b"[Infinity]", False, "Infinity is not JSON", "[Infinity]"),
        (b'{"offset": 1e400}', False, "out of range", '{"offset": 1e400}'),
        (b"[" * 100000, False, "invalid JSON", "[" * 100000),
        (b"[1, 2]", False, "expected a JSON object, got array", "[1, 2]"),
        (b'"ack"', False, "expected a JSON object, got string", '"ack"'),
        (b"null", False, "expected a JSON object, got null", "null"),
        (b'{"msg": "hi"}', False, "expected a string 'type', got null", '{"msg": "hi"}'),
        (b'{"type": ["ack"]}', False, "expected a string 'type', got array", '{"type": ["ack"]}'),
    ],
)
def test_undecodable_frames_are_decode_errors(data, binary, expected_reason, expected_raw):
    for provider in ("hiya", "phonic"):
        event = new_decoder(provider).decode(data, RECEIVED, binary)
        assert expected_reason in reason_of(event)
        assert event.raw == expected_raw and type(event.raw) is type(expected_raw)


def test_text_frames_may_be_given_as_str():
    assert new_decoder("hiya").decode('{"type": "ack", "ackId": "é"}', RECEIVED) == Ack(ack_id="é")
    assert new_decoder("hiya").decode("{bad", RECEIVED).raw == "{bad"


def test_unknown_types_are_kept_whole():
    event = hiya({"type": "event:hold", "seconds": 30})
    assert event == UnknownMessage(type="event:hold", raw={"type": "event:hold", "seconds": 30})
    # each decoder knows only its own provider's types
    assert isinstance(hiya({"type": "conversation-ended"}), UnknownMessage)
    assert isinstance(phonic({"type": "ack", "ackId": "1"}), UnknownMessage)


# --- the Phonic item cache -----------------------------------------------------------


def conversation_items(event):
    assert isinstance(event, ConversationUpdated), event
    return event.conversation.items


def test_unchanged_items_are_the_same_objects_in_the_next_update():
    decoder = new_decoder("phonic")
    first = conversation_items(decoder.decode(SPEC_UPDATE, RECEIVED))
    message = json.loads(SPEC_UPDATE)
    message["conversation"]["items"][2]["text"] = "Of course! Which day?"
    message["conversation"]["items"].append({"id": "new", "item_idx": 3, "role": "user", "text": "Monday"})
    second = conversation_items(decoder.decode(frame(message), RECEIVED))
    assert second[0] is first[0] and second[1] is first[1]
    assert second[2] is not first[2] and second[2].text == "Of course! Which day?"
    assert second[3].text == "Monday"


@pytest.mark.parametrize(
    "items",
    [
        [{"item_idx": 0, "text": "a"}, {"item_idx": 1, "text": "b"}],  # keyed by item_idx
        [{"text": "a"}, {"text": "b"}],  # keyed by position
    ],
)
def test_items_without_id_are_cached_too(items):
    decoder = new_decoder("phonic")
    first = conversation_items(decoder.decode(frame(update({"id": "c", "items": items})), RECEIVED))
    second = conversation_items(decoder.decode(frame(update({"id": "c", "items": items})), RECEIVED))
    assert all(a is b for a, b in zip(first, second))


def test_a_failed_update_leaves_the_cache_alone():
    decoder = new_decoder("phonic")
    good = update({"id": "c", "items": [{"id": "i", "text": "a"}]})
    first = conversation_items(decoder.decode(frame(good), RECEIVED))
    bad = update({"id": "c", "items": [{"id": "i", "text": "a"}, {"id": "j", "role": 5}]})
    assert isinstance(decoder.decode(frame(bad), RECEIVED), DecodeError)
    assert conversation_items(decoder.decode(frame(good), RECEIVED))[0] is first[0]


def test_an_equal_dict_under_another_key_is_decoded_afresh():
    decoder = new_decoder("phonic")
    first = conversation_items(
        decoder.decode(frame(update({"id": "c", "items": [{"id": "a", "text": "x"}]})), RECEIVED)
    )
    second = conversation_items(
        decoder.decode(frame(update({"id": "c", "items": [{"id": "b", "text": "x"}]})), RECEIVED)
    )
    assert second[0] is not first[0] and second[0].id == "b"


# --- records -----------------------------------------------------------------------


HIYA_CALL = Call(provider="hiya", id="call_0123456789abcdef")
PHONIC_CALL = Call(provider="phonic", id="conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c")
RECEIVED_ISO = "2025-07-30T23:45:01.250000+00:00"


@pytest.mark.parametrize(
    "event, fields",
    [
        (
            CallStarted(
                phone="+15551234567",
                timestamp=datetime(2025, 7, 30, 23, 45, tzinfo=UTC),
                received_at=RECEIVED,
            ),
            {
                "event": "call_started",
                "phone": "+15551234567",
                "timestamp": "2025-07-30T23:45:00.000000+00:00",
            },
        ),
        (
            Transcript(text="Hi", role=Role.USER, offset=1.5, received_at=RECEIVED),
            {
                "event": "transcript",
                "text": "Hi",
                "role": "user",
                "offset": 1.5,
                "item_idx": None,
                "item_id": None,
                "revised": False,
                "redacted": False,
            },
        ),
        (
            Transcript(
                text="[NAME] here",
                role="narrator",
                item_idx=4,
                item_id="it_4",
                revised=True,
                redacted=True,
                received_at=RECEIVED,
            ),
            {
                "event": "transcript",
                "text": "[NAME] here",
                "role": "narrator",
                "offset": None,
                "item_idx": 4,
                "item_id": "it_4",
                "revised": True,
                "redacted": True,
            },
        ),
        (
            ToolCall(
                tool_call_id="tc_1",
                item_idx=2,
                item_id="it_2",
                name="book",
                arguments={"day": "Tue"},
                result=None,
                status_code=200,
                received_at=RECEIVED,
            ),
            {
                "event": "tool_call",
                "tool_call_id": "tc_1",
                "item_idx": 2,
                "item_id": "it_2",
                "name": "book",
                "arguments": {"day": "Tue"},
                "result": None,
                "status_code": 200,
                "error": None,
                "timed_out": None,
                "revised": False,
            },
        ),
        (
            ScreeningEnded(message="done", received_at=RECEIVED),
            {"event": "screening_ended", "message": "done"},
        ),
        (
            CallEnded(timestamp=datetime(2025, 7, 30, 23, 50, 0, 1, tzinfo=UTC), received_at=RECEIVED),
            {"event": "call_ended", "timestamp": "2025-07-30T23:50:00.000001+00:00"},
        ),
        (Ack(ack_id="m1", received_at=RECEIVED), {"event": "ack", "ack_id": "m1"}),
        (ServerError(message="bad", received_at=RECEIVED), {"event": "error", "message": "bad"}),
        (ConversationEnded(received_at=RECEIVED), {"event": "conversation_ended"}),
        (
            UnknownMessage(type="x", raw={"type": "x", "n": [1]}, received_at=RECEIVED),
            {"event": "unknown", "type": "x", "raw": {"type": "x", "n": [1]}},
        ),
        (
            DecodeError(reason="invalid JSON", raw="{", received_at=RECEIVED),
            {"event": "decode_error", "reason": "invalid JSON", "raw": "{"},
        ),
        (
            DecodeError(reason="binary frame", raw=b"\x00\xff", received_at=RECEIVED),
            {"event": "decode_error", "reason": "binary frame", "raw": {"base64": "AP8="}},
        ),
        (
            Reconnecting(attempt=2, delay=1.0, reason="closed 1006", received_at=RECEIVED),
            {"event": "reconnecting", "attempt": 2, "delay": 1.0, "reason": "closed 1006"},
        ),
    ],
)
def test_record_of_each_event_kind(event, fields):
    record = to_record(HIYA_CALL, event)
    expected = {
        "event": fields["event"],
        "provider": "hiya",
        "call_id": "call_0123456789abcdef",
        "received_at": RECEIVED_ISO,
    }
    expected.update(fields)
    expected["extra"] = {}
    assert record == expected
    assert list(record)[:4] == ["event", "provider", "call_id", "received_at"]
    assert list(record)[-1] == "extra"
    assert json.loads(to_json(HIYA_CALL, event)) == expected


def test_record_role_is_a_plain_string():
    record = to_record(HIYA_CALL, Transcript(text="Hi", role=Role.OTHER, received_at=RECEIVED))
    assert type(record["role"]) is str


def test_binary_raw_round_trips_through_base64():
    event = new_decoder("hiya").decode(b"\x81\x00", RECEIVED, binary=True)
    assert base64.b64decode(to_record(HIYA_CALL, event)["raw"]["base64"]) == b"\x81\x00"


def test_record_timestamps_are_utc_whatever_the_event_holds():
    plus_two = timezone(timedelta(hours=2))
    event = CallEnded(
        timestamp=datetime(2025, 7, 31, 1, 45, tzinfo=plus_two), received_at=datetime(2025, 7, 30, 23, 45)
    )
    record = to_record(HIYA_CALL, event)
    assert record["timestamp"] == "2025-07-30T23:45:00.000000+00:00"
    assert record["received_at"] == "2025-07-30T23:45:00.000000+00:00"  # naive: taken as UTC


def test_conversation_record_has_the_wire_shape():
    wire = json.loads(SPEC_UPDATE)["conversation"]
    event = new_decoder("phonic").decode(SPEC_UPDATE, RECEIVED)
    record = to_record(PHONIC_CALL, event)
    assert record["event"] == "conversation_updated"
    conversation = json.loads(to_json(PHONIC_CALL, event))["conversation"]
    assert isinstance(record["conversation"]["items"], list)
    # Everything as sent, nulls included; timestamps come back in the record's format.
    expected = dict(wire, started_at="2025-07-30T23:45:00.000000+00:00")
    for item, started_at in zip(expected["items"], ("00.500000", "03.000000", "06.200000")):
        item["started_at"] = f"2025-07-30T23:45:{started_at}+00:00"
    assert conversation == expected


def test_sdk_conversation_record_keeps_every_field():
    conversation = to_record(PHONIC_CALL, phonic(update(SDK_CONVERSATION)))["conversation"]
    assert conversation["project"] == {"id": "proj_1", "name": "main"}
    assert conversation["call_info"] == SDK_CONVERSATION["call_info"]
    assert conversation["duration_ms"] == 4200.5
    assert conversation["items"][0] == {
        "item_idx": 0,
        "role": "assistant",
        "live_transcript": "Hello!",
        "post_call_transcript": None,
        "duration_ms": 900,
        "started_at": "2025-07-30T23:45:00.100000+00:00",
        "voice_id": "sarah",
        "audio_speed": 1.0,
    }


def test_to_json_is_one_ascii_line():
    line = to_json(
        HIYA_CALL, Transcript(text="Grüße\nund\u2028mehr \ud800", role=Role.USER, received_at=RECEIVED)
    )
    assert "\n" not in line and "\u2028" not in line and line.isascii()
    assert json.loads(line)["text"] == "Grüße\nund\u2028mehr \ud800"


# --- never raises -----------------------------------------------------------------------

KNOWN_TYPES = [
    "event:start",
    "transcript",
    "event:end",
    "event:callEnd",
    "ack",
    "error",
    "conversation-updated",
    "conversation-ended",
    "other",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = [
    "msg",
    "role",
    "offset",
    "phone",
    "timestamp",
    "ackId",
    "description",
    "message",
    "error",
    "conversation",
    "id",
    "items",
    "item_idx",
    "text",
    "started_at",
    "extra",
    "received_at",
]
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES)},
    optional={name: json_values for name in FIELD_NAMES},
)
conversations = st.builds(
    update,
    st.fixed_dictionaries(
        {
            "id": st.text(max_size=5),
            "items": st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values), max_size=4),
        }
    ),
)


def check_decodes(data, binary=False):
    for provider in ("hiya", "phonic"):
        event = new_decoder(provider).decode(data, RECEIVED, binary)
        assert event.received_at is RECEIVED
        assert json.loads(to_json(PHONIC_CALL, event))["event"] == event.kind


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_never_raise(data, binary):
    check_decodes(data, binary)


@settings(max_examples=300, deadline=None)
@given(json_values | messages | conversations)
def test_arbitrary_json_never_raises(message):
    check_decodes(json.dumps(message).encode())


@settings(max_examples=100, deadline=None)
@given(st.lists(conversations, min_size=2, max_size=4))
def test_a_stream_of_snapshots_never_raises(updates):
    decoder = new_decoder("phonic")
    for message in updates:
        assert decoder.decode(json.dumps(message), RECEIVED).received_at is RECEIVED


# --- fidelity to what the server sent (payloads shaped like Phonic's SDK models) ----


def test_a_record_keeps_nulls_empty_items_and_unknown_top_level_keys():
    # Defect 1: typed nulls, an empty items list and top-level keys beside
    # type and conversation were missing from records.
    first = sdk.update(sdk.conversation(), sequence=1, received_at="2025-07-30T23:45:00Z")
    record = to_record(PHONIC_CALL, phonic(first))
    assert record["conversation"]["items"] == []
    assert record["conversation"]["ended_at"] is None and record["conversation"]["is_redacted"] is None
    assert record["extra"] == {"sequence": 1, "received_at": "2025-07-30T23:45:00Z"}
    assert record["received_at"] == RECEIVED_ISO  # the arrival time; the server's is in extra
    redacted = sdk.item(0, "user", None, redacted_transcript="My number is [PHONE NUMBER].")
    item = to_record(PHONIC_CALL, phonic(sdk.update(sdk.conversation(redacted))))["conversation"]["items"][0]
    assert item["live_transcript"] is None and item["tool_calls"] == []
    assert item == dict(redacted, started_at="2025-07-30T23:45:00.000000+00:00")


def test_a_conversation_without_items_is_written_without_them():
    record = to_record(PHONIC_CALL, phonic(sdk.update(sdk.conversation(drop=("items",)))))
    assert "items" not in record["conversation"]


def test_every_level_keeps_unknown_keys_of_every_event():
    assert hiya({"type": "ack", "ackId": "1", "seq": 4}).extra == {"seq": 4}
    assert hiya({"type": "transcript", "msg": "a", "role": "user", "item_idx": 4}).extra == {"item_idx": 4}
    assert phonic({"type": "conversation-ended", "reason": None}).extra == {"reason": None}


@pytest.mark.parametrize(
    "field, odd",
    [
        ("origin", 5),
        ("ended_by", {"kind": "user"}),
        ("started_at", "9999-12-31T23:00:00-07:00"),  # the SDK accepts it; UTC overflows
        ("ended_at", "whenever"),
        ("from_phone_number", ["+15551230000"]),
        ("duration_ms", "12"),
        ("is_live", "yes"),
        ("agent", "agent_1"),
        ("call_info", "none"),
    ],
)
def test_one_odd_metadata_value_does_not_cost_the_snapshot(field, odd, caplog):
    # Defect 4: these used to turn the snapshot into a DecodeError.
    message = sdk.update(sdk.conversation(sdk.item(0, "assistant", "Hello!"), **{field: odd}))
    decoder = new_decoder("phonic")
    with caplog.at_level(logging.WARNING, logger="livecall.decoder"):
        event = decoder.decode(frame(message), RECEIVED)
        decoder.decode(frame(message), RECEIVED)
    assert isinstance(event, ConversationUpdated), getattr(event, "reason", event)
    conversation = event.conversation
    assert getattr(conversation, field) is None and conversation.extra[field] == odd
    assert conversation.items[0].transcript_text == "Hello!"
    assert to_record(PHONIC_CALL, event)["conversation"][field] == odd  # kept as sent
    warnings = [r.getMessage() for r in caplog.records if f"conversation.{field}" in r.getMessage()]
    assert len(warnings) == 1, "one warning per field per call"
    assert "kept as sent" in warnings[0] and str(odd) not in warnings[0]


def test_an_odd_item_timestamp_is_kept_as_text():
    item = sdk.item(0, "user", "Hi.", started_at="9999-12-31T23:00:00-07:00", duration_ms=None)
    event = phonic(sdk.update(sdk.conversation(item)))
    decoded = event.conversation.items[0]
    assert decoded.started_at is None and decoded.extra["started_at"] == "9999-12-31T23:00:00-07:00"
    assert to_record(PHONIC_CALL, event)["conversation"]["items"][0]["started_at"] == item["started_at"]


def test_a_wrongly_typed_field_livecall_needs_is_still_a_decode_error():
    message = sdk.update(sdk.conversation(sdk.item(0, "user", None, redacted_transcript=7)))
    assert "@ $.conversation.items[0].redacted_transcript" in reason_of(phonic(message))


@pytest.mark.parametrize("role", ["narrator", "User", "supervisor"])
def test_hiya_roles_beyond_the_documented_three_are_kept_as_text(role):
    # Defect 5: an unknown role used to lose the line as a DecodeError.
    event = hiya({"type": "transcript", "msg": "Hello", "role": role, "offset": 1.0})
    assert isinstance(event, Transcript) and event.role == role and type(event.role) is str
    assert to_record(HIYA_CALL, event)["role"] == role


# --- text that cannot be written, JSON too deep to write ----------------------


def _deep_call(depth: int, fn):
    """``fn()`` called with ``depth`` more frames on the stack, as a plugin's hook is."""
    return fn() if depth == 0 else _deep_call(depth - 1, fn)


def test_a_lone_surrogate_is_replaced_visibly_and_the_event_kept():
    frame = (
        b'{"type": "transcript", "msg": "lone \\ud800 and \\udc00, a pair \\ud83d\\ude00, '
        b'a backslash \\\\ud800", "role": "other", "offset": 1.0}'
    )
    event = new_decoder("hiya").decode(frame, RECEIVED)
    assert event.text == "lone \ufffd and \ufffd, a pair \U0001f600, a backslash \\ud800"
    record = json.loads(to_json(Call(provider="hiya", id="c"), event))
    assert record["text"].encode("utf-8")  # writable to any UTF-8 sink


def test_lone_surrogates_in_keys_and_unknown_messages_are_replaced_too():
    frame = b'{"type": "odd\\udbff", "\\ud800": ["\\udfff", {"x": "\\ud800"}]}'
    event = new_decoder("hiya").decode(frame, RECEIVED)
    assert isinstance(event, UnknownMessage)
    assert event.raw == {"type": "odd\ufffd", "\ufffd": ["\ufffd", {"x": "\ufffd"}]}
    to_json(Call(provider="hiya", id="c"), event).encode("utf-8")


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
@pytest.mark.parametrize("where", ["unknown", "extra"])
def test_json_nested_too_deep_to_write_again_is_a_decode_error(provider, where):
    deep = "[" * 300 + "]" * 300
    if where == "unknown":
        frame = f'{{"type": "mystery", "x": {deep}}}'
    elif provider == "hiya":
        frame = f'{{"type": "ack", "ackId": "a", "detail": {{"x": {deep}}}, "extra": {deep}}}'
    else:
        frame = f'{{"type": "conversation-updated", "conversation": {{"id": "c", "items": [], "x": {deep}}}}}'
    event = new_decoder(provider).decode(frame.encode(), RECEIVED)
    call = Call(provider=provider, id="c")
    assert isinstance(event, DecodeError)
    # cattrs before 24 words the reason for a field its own way; the field is named either way.
    assert "nested more than 100 levels" in event.reason or ".extra" in event.reason
    _deep_call(500, lambda: to_json(call, event))


@settings(max_examples=100, deadline=None)
@given(depth=st.integers(min_value=1, max_value=900))
def test_every_frame_that_decodes_can_be_written_from_a_deep_stack(depth):
    frame = '{"type": "mystery", "x": ' + "[" * depth + "]" * depth + "}"
    event = new_decoder("hiya").decode(frame.encode(), RECEIVED)
    _deep_call(500, lambda: to_json(Call(provider="hiya", id="c"), event))


# --- Phonic's audio links and data retention ------------------------------------------------

AUDIO_URL = "https://audio.phonic.example/conv_sdk/0.wav?X-Amz-Expires=86400&X-Amz-Signature=" + "ab12" * 16


def test_an_items_audio_url_is_blanked_in_records_and_kept_on_request():
    message = sdk.update(sdk.conversation(sdk.item(0, "assistant", "Hello!", audio_url=AUDIO_URL)))
    event = phonic(message)
    assert event.conversation.items[0].extra["audio_url"] == AUDIO_URL  # the event keeps it
    blanked = to_record(PHONIC_CALL, event)["conversation"]["items"][0]
    assert blanked["audio_url"] == "***" and AUDIO_URL not in to_json(PHONIC_CALL, event)
    assert event.conversation.items[0].extra["audio_url"] == AUDIO_URL  # the record is a copy there
    kept = to_record(PHONIC_CALL, event, keep_audio_urls=True)["conversation"]["items"][0]
    assert kept["audio_url"] == AUDIO_URL
    assert json.loads(to_json(PHONIC_CALL, event, keep_audio_urls=True)) == to_record(
        PHONIC_CALL, event, keep_audio_urls=True
    )


def test_a_conversations_own_audio_url_and_one_in_an_undecodable_frame_are_blanked_too():
    event = phonic(sdk.update(sdk.conversation(audio_url=AUDIO_URL)))
    assert to_record(PHONIC_CALL, event)["conversation"]["audio_url"] == "***"
    broken = '{"type": "conversation-updated", "conversation": {"items": [{"audio_url": "' + AUDIO_URL + '"}]'
    error = new_decoder("phonic").decode(broken, RECEIVED)
    assert isinstance(error, DecodeError) and AUDIO_URL in error.raw
    assert AUDIO_URL not in to_json(PHONIC_CALL, error)
    assert '"audio_url": "***"' in to_record(PHONIC_CALL, error)["raw"]
    assert to_record(PHONIC_CALL, error, keep_audio_urls=True)["raw"] == broken


def test_every_audio_url_decoded_is_a_secret_redact_blanks_unless_asked_to_keep_it():
    url = AUDIO_URL.replace("ab12", "cd34")  # never seen before in this process
    text = f"a plugin failed on {url} and json {json.dumps(url)}"
    assert redact(text) == text
    # undecodable (items[1] has no valid role), yet the link was read before it failed
    message = sdk.update(sdk.conversation(sdk.item(0, "user", "Hi.", audio_url=url), sdk.item(1, 5, "x")))
    assert isinstance(phonic(message), DecodeError)
    assert url not in redact(text) and redact(text).count("***") == 2
    assert redact(text, keep_audio_urls=True) == text


def test_data_retention_policy_and_deletion_info_are_typed():
    policy = {"zero_data_retention": False, "transcripts": {"delete_after_hours": 24}}
    deleted = {"transcripts_deleted_at": None, "audio_recordings_deleted_at": "2026-12-08T00:00:00Z"}
    event = phonic(sdk.update(sdk.conversation(data_retention_policy=policy, deletion_info=deleted)))
    conversation = event.conversation
    assert conversation.data_retention_policy == policy and conversation.deletion_info == deleted
    assert not conversation.zero_data_retention
    assert "data_retention_policy" not in conversation.extra
    assert to_record(PHONIC_CALL, event)["conversation"]["data_retention_policy"] == policy
    zero = phonic(sdk.update(sdk.conversation(data_retention_policy={"zero_data_retention": True})))
    assert zero.conversation.zero_data_retention


@pytest.mark.parametrize(
    "field, odd", [("data_retention_policy", "zero"), ("data_retention_policy", [True]), ("deletion_info", 1)]
)
def test_odd_retention_shapes_are_kept_in_extra_and_ask_for_nothing(field, odd):
    event = phonic(sdk.update(sdk.conversation(sdk.item(0, "user", "Hi."), **{field: odd})))
    assert isinstance(event, ConversationUpdated), getattr(event, "reason", event)
    assert getattr(event.conversation, field) is None and event.conversation.extra[field] == odd
    assert not event.conversation.zero_data_retention
    assert to_record(PHONIC_CALL, event)["conversation"][field] == odd


def test_without_words_keeps_each_turns_shape_and_no_word():
    item = sdk.item(
        0,
        "user",
        "My card is 4111.",
        redacted_transcript="My card is [NUMBER].",
        post_call_transcript="My card is 4111.",
        tool_calls=[sdk.tool_call(request_body={"card": "4111"}, response_body="charged 4111")],
    )
    event = phonic(sdk.update(sdk.conversation(item, text="My card is 4111.", summary="card 4111")))
    record = to_record(PHONIC_CALL, event)
    stripped = without_words(record)
    assert "4111" in json.dumps(record) and "4111" not in json.dumps(stripped)
    assert to_record(PHONIC_CALL, event, keep_words=False) == stripped
    turn = stripped["conversation"]["items"][0]
    assert (turn["id"], turn["item_idx"], turn["role"], turn["started_at"]) == (
        item["id"],
        0,
        "user",
        record["conversation"]["items"][0]["started_at"],
    )
    assert turn["live_transcript"] is None and turn["tool_calls"][0]["id"] == "tc_1"
    assert "4111" in json.dumps(record), "the record itself is left as it was"
    line = Transcript(text="My card is 4111.", role=Role.USER, item_idx=0, item_id="x", received_at=RECEIVED)
    assert without_words(to_record(PHONIC_CALL, line)) == {**to_record(PHONIC_CALL, line), "text": ""}
    tool = ToolCall(tool_call_id="tc_1", item_idx=0, name="charge", arguments={"card": 1}, result="ok")
    stripped_tool = without_words(to_record(PHONIC_CALL, tool))
    assert (stripped_tool["name"], stripped_tool["arguments"], stripped_tool["result"]) == (
        "charge",
        None,
        None,
    )
    frame_error = DecodeError(reason="bad", raw="My card is 4111.", received_at=RECEIVED)
    assert without_words(to_record(PHONIC_CALL, frame_error))["raw"] is None
