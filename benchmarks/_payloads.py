"""The messages the benchmark server sends, shared by the server and the in-process timings."""

import json
from datetime import datetime, timedelta, timezone
from typing import Any

_LINES = [
    ("assistant", "Hi, this is Alex's call assistant. May I ask who is calling?"),
    ("other", "Hi, it's Jordan from Dr. Lee's office."),
    ("assistant", "Thanks, Jordan. What is the call about?"),
    ("other", "I'm calling to confirm tomorrow's appointment at 10 am."),
    ("assistant", "Thank you. Please hold while I check if Alex is available."),
    ("user", "Hi Jordan, this is Alex. Yes, 10 am works for me."),
    ("other", "Great, we'll see you tomorrow then."),
    ("user", "Thanks, bye!"),
]
_START = datetime(2025, 7, 30, 23, 45, tzinfo=timezone.utc)
CONVERSATION_ID = "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c"

CALL_END = json.dumps({"type": "event:callEnd", "timestamp": "2025-07-30T23:59:00.000Z"})
CONVERSATION_ENDED = json.dumps({"type": "conversation-ended"})


def transcript(number: int, offset: float) -> str:
    """A Hiya ``transcript`` frame; the latency runs put the send time in ``offset``."""
    role, text = _LINES[number % len(_LINES)]
    return json.dumps({"type": "transcript", "msg": text, "role": role, "offset": offset})


def transcripts(count: int) -> list[str]:
    return [transcript(number, 0.5 * number) for number in range(count)]


def _item(index: int) -> dict[str, Any]:
    """One turn, in the shape of the spec's example."""
    role, text = _LINES[index % len(_LINES)]
    return {
        "id": f"{CONVERSATION_ID}-{index}",
        "item_idx": index,
        "role": "user" if role == "other" else "assistant",
        "text": text,
        "retranscribed_text": None,
        "duration_ms": 1000 + 40 * len(text),
        "audio_speed": 1,
        "voice": None,
        "tool_call_ids": [],
        "transcript_corrections": [],
        "naturalness_report": None,
        "hallucination_report": None,
        "started_at": (_START + timedelta(seconds=4 * index)).isoformat(timespec="milliseconds"),
        "assistant_chose_not_to_respond": False,
        "timings": {
            "phonic_api_output_to_modal_input": 120,
            "model_generation_time": 450,
            "phonic_api_output_to_first_audio_chunk": 570,
        },
    }


def snapshot(items: list[dict[str, Any]]) -> str:
    """A ``conversation-updated`` frame with these turns, every field of the spec's example."""
    conversation = {
        "id": CONVERSATION_ID,
        "agent": {"id": "agent_12cf6e88", "name": "support-agent", "is_deleted": False},
        "org_id": "org_01K1WB8NT3EJJ4ZRKJ6BQZPZPS",
        "project_id": "proj_ad0334f1-2487-4155-9df3-abd8129b29ad",
        "external_id": "call-123",
        "origin": "inbound",
        "generate_welcome_message": False,
        "welcome_message": "Hello! How can I help you today?",
        "template_variables": {},
        "input_format": "mulaw_8000",
        "output_format": "mulaw_8000",
        "background_noise_level": 0,
        "background_noise": None,
        "intelligence_level": "default",
        "text": "\n".join(item["text"] for item in items),
        "duration_ms": sum(item["duration_ms"] for item in items),
        "summary": None,
        "boosted_keywords": [],
        "min_words_to_interrupt": 1,
        "default_language": "en",
        "additional_languages": [],
        "multilingual_mode": "request",
        "push_to_talk": False,
        "no_input_poke_sec": 30,
        "generate_no_input_poke_text": False,
        "no_input_poke_text": "Are you still there?",
        "no_input_end_conversation_sec": 180,
        "storage_key": None,
        "started_at": _START.isoformat(timespec="milliseconds"),
        "ended_at": None,
        "task_results": None,
        "timezone": "America/Los_Angeles",
        "system_prompt": "You are a helpful support assistant.",
        "is_test": False,
        "is_live": True,
        "call_provider": "twilio_inbound_user",
        "from_phone_number": "+15551234567",
        "to_phone_number": "+15559876543",
        "twilio_call_sid": None,
        "created_by": None,
        "vad_min_silence_duration_ms": None,
        "assistant_end_conversation_signal_at": None,
        "retranscribed_text": None,
        "end_reason": None,
        "vad_info": {"events": []},
        "annotations": {},
        "items": items,
    }
    return json.dumps({"type": "conversation-updated", "conversation": conversation})


def snapshots(count: int) -> list[str]:
    """A conversation growing one turn per update, to ``count`` turns."""
    items = [_item(index) for index in range(count)]
    return [snapshot(items[:item_count]) for item_count in range(1, count + 1)]
