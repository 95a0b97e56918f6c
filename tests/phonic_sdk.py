"""Payloads shaped like the models of Phonic's official Python SDK (phonic 0.32.x).

``Conversation``, ``ConversationItem`` and a tool call (``ConversationItemToolCallsItem``)
with every field the SDK declares, written out here so the tests need no SDK.
Keyword arguments override fields; ``None`` is the SDK's ``null``, and a field
named in ``drop`` is left out, as the SDK leaves an unset optional field out.
"""

from typing import Any

CALLER, CALLEE = "+15551230000", "+15559870000"


def _shape(fields: dict[str, Any], overrides: dict[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    shaped = {**fields, **overrides}
    for name in drop:
        shaped.pop(name, None)
    return shaped


def tool_call(call_id: str = "tc_1", drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    return _shape(
        {
            "id": call_id,
            "tool": {"id": "tool_1", "name": "book_appointment"},
            "integration": None,
            "endpoint_method": "POST",
            "endpoint_url": "https://tools.example.com/book",
            "endpoint_headers": {"Authorization": "Bearer customer-tool-secret"},
            "endpoint_timeout_ms": 5000.0,
            "endpoint_called_at": "2025-07-30T23:45:05.000Z",
            "query_params": None,
            "request_body": {"day": "Tuesday", "time": "10:00"},
            "response_status_code": None,
            "response_body": None,
            "tool_call_output_timeout_ms": None,
            "timed_out": None,
            "error_message": None,
        },
        overrides,
        drop,
    )


def item(index: int, role: str, words: str, drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    return _shape(
        {
            "id": f"conv_sdk-{index}",
            "item_idx": index,
            "role": role,
            "live_transcript": words,
            "post_call_transcript": None,
            "redacted_transcript": None,
            "duration_ms": 1200.0,
            "started_at": f"2025-07-30T23:45:{index:02d}.000Z",
            "voice_id": "sarah" if role == "assistant" else None,
            "audio_speed": 1.0 if role == "assistant" else None,
            "system_prompt": None,
            "tool_calls": [],
        },
        overrides,
        drop,
    )


def conversation(*items: dict[str, Any], drop: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    return _shape(
        {
            "id": "conv_sdk",
            "agent": {"id": "agent_1", "name": "support-agent", "is_deleted": False},
            "workspace": "acme",
            "project": {"id": "proj_1", "name": "main"},
            "external_id": None,
            "origin": "inbound",
            "model": "merritt",
            "generate_welcome_message": False,
            "is_welcome_message_interruptible": True,
            "listen_only": False,
            "welcome_message": "Hello!",
            "template_variables": {},
            "system_prompt": None,
            "input_format": "mulaw_8000",
            "output_format": "mulaw_8000",
            "background_noise_level": 0.0,
            "background_noise": None,
            "live_transcript": None,
            "post_call_transcript": None,
            "summary": None,
            "duration_ms": None,
            "audio_url": None,
            "started_at": "2025-07-30T23:45:00.000Z",
            "ended_at": None,
            "ended_by": None,
            "boosted_keywords": None,
            "pronunciation_dictionary": [],
            "min_words_to_interrupt": 1,
            "default_language": "en",
            "additional_languages": None,
            "multilingual_mode": "request",
            "push_to_talk": False,
            "intelligence_level": "standard",
            "task_results": {},
            "items": list(items),
            "call_info": {"from_phone_number": CALLER, "to_phone_number": CALLEE, "twilio_call_sid": None},
            "analysis": {"latencies_ms": [], "interruptions_count": 0},
            "is_redacted": None,
            "redacted_transcript": None,
            "metadata": None,
            "data_retention_policy": None,
            "deletion_info": None,
        },
        overrides,
        drop,
    )


def update(conversation: dict[str, Any], **top_level: Any) -> dict[str, Any]:
    """A ``conversation-updated`` message around an SDK-shaped conversation."""
    return {"type": "conversation-updated", "conversation": conversation, **top_level}
