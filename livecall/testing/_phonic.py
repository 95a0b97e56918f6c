"""Phonic's Live Conversation protocol, server side: handshake rules and snapshots.

The scripted conversation mixes both shapes servers send: the spec's
(``text``, ``from_phone_number``) and the SDK's (``call_info``, words in
``live_transcript`` with ``text`` null, an item without ``id``).  The ``sdk``
call is all SDK-shaped, with what that shape allows and a strict reader would
stumble on: redactions, tool calls, ids appearing late, odd metadata.
"""

import functools
import hashlib
import itertools
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import unquote

from ._options import ScenarioOptions
from ._provider import BaseScript, Provider, Rejection, iso, same_secret
from ._steps import Close, Payload, Script, Send

_PATH = re.compile(r"/v1/conversations/([^/]+)/live/ws")
CALLER, CALLEE = "+15551234567", "+15559876543"
_ENDED = Close(({"type": "conversation-ended"},), 1000, "conversation ended", ends_call=True)

# (role, text, shape): "spec" puts the words in ``text``; "sdk" in ``live_transcript``
# with ``text`` null; "no-id" is the spec shape without ``id``.
_TURNS = [
    ("assistant", "Hello! Thanks for calling Sunrise Dental, how can I help you today?", "spec"),
    ("user", "Hi, I'd like to book a cleaning for next week.", "spec"),
    ("assistant", "Of course! I have Tuesday at 10 am or Thursday at 2 pm.", "sdk"),
    ("user", "Tuesday at 10 works.", "no-id"),
    ("assistant", "Great, you're booked for Tuesday at 10 am. See you then!", "spec"),
]
_GROWING_TURN, _PARTIAL_TEXT = 1, "Hi, I'd like to book"


class _Conversation:
    """Builds ``conversation-updated`` snapshots of one conversation as it grows.

    The options it reads are those of what Phonic sends besides the words:
    ``audio_urls`` and ``data_retention_policy``.
    """

    def __init__(self, conversation_id: str, options: ScenarioOptions):
        self.id = conversation_id
        self.started = datetime.now(timezone.utc)
        self._options = options

    def _with_audio(self, item: dict[str, Any]) -> dict[str, Any]:
        """``item``, with its turn's presigned ``audio_url`` when the scenario sends them."""
        if self._options.audio_urls:
            turn = f"{self.id}/{item['item_idx']}"
            signature = hashlib.sha256(turn.encode()).hexdigest()
            item["audio_url"] = (
                f"https://audio.phonic.example/{turn}.wav?X-Amz-Expires=86400&X-Amz-Signature={signature}"
            )
        return item

    def item(self, index: int, role: str, text: str, shape: str = "spec") -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": f"{self.id}-{index}",
            "item_idx": index,
            "role": role,
            "text": text,
            "live_transcript": text,
            "post_call_transcript": None,
            "retranscribed_text": None,
            "duration_ms": 1000 + 40 * len(text),
            "voice": None,
            "tool_call_ids": [],
            "started_at": iso(self.started + timedelta(seconds=4 * index)),
            "assistant_chose_not_to_respond": False,
        }
        if shape == "sdk":
            item["text"] = None
        if shape == "no-id":
            del item["id"]
        return self._with_audio(item)

    def snapshot(
        self, items: Sequence[dict[str, Any]], ended: bool = False, **changes: Any
    ) -> dict[str, Any]:
        """A ``conversation-updated`` of ``items``; ``changes`` replace conversation fields."""
        words = "\n".join(_words(item) for item in items)
        duration = sum(item["duration_ms"] for item in items)
        conversation = {
            "id": self.id,
            "agent": {"id": "agent_sim", "name": "simulated-agent", "is_deleted": False},
            "workspace": "simulator",
            "project": {"id": "proj_sim", "name": "simulator"},
            "org_id": "org_sim",
            "project_id": "proj_sim",
            "external_id": "sim-call-1",
            "model": "simulated",
            "origin": "inbound",
            "welcome_message": _TURNS[0][1],
            "text": words,
            "live_transcript": words,
            "post_call_transcript": None,
            "duration_ms": duration,
            "summary": None,
            "analysis": None,
            "started_at": iso(self.started),
            "ended_at": iso(self.started + timedelta(milliseconds=duration)) if ended else None,
            "end_reason": "user_hung_up" if ended else None,
            "ended_by": "user" if ended else None,
            "is_live": True,
            "call_provider": "twilio_inbound_user",
            "from_phone_number": CALLER,
            "to_phone_number": CALLEE,
            "twilio_call_sid": None,
            "call_info": {"from_phone_number": CALLER, "to_phone_number": CALLEE, "twilio_call_sid": None},
            "vad_info": {"events": []},
            "annotations": {},
            "items": list(items),
        }
        if self._options.data_retention_policy is not None:
            conversation["data_retention_policy"] = self._options.data_retention_policy
        conversation.update(changes)
        return {"type": "conversation-updated", "conversation": conversation}

    def sdk_item(self, index: int, role: str, words: Optional[str], **changes: Any) -> dict[str, Any]:
        """An item in the shape of the SDK's ``ConversationItem``: words in ``live_transcript``."""
        item: dict[str, Any] = {
            "id": f"{self.id}-{index}",
            "item_idx": index,
            "role": role,
            "live_transcript": words,
            "post_call_transcript": None,
            "redacted_transcript": None,
            "duration_ms": 1000.0 + 40 * len(words or ""),
            "started_at": iso(self.started + timedelta(seconds=4 * index)),
            "voice_id": "simulated-voice" if role == "assistant" else None,
            "audio_speed": 1.0 if role == "assistant" else None,
            "system_prompt": None,
            "tool_calls": [],
        }
        item.update(changes)
        return self._with_audio(item)


def _words(item: Mapping[str, Any]) -> str:
    return item.get("text") or item.get("live_transcript") or item.get("redacted_transcript") or ""


def conversation(options: ScenarioOptions, credentials: Mapping[str, str]) -> Script:
    """Items appear one by one; one item's text grows across two snapshots."""
    conv = _Conversation(credentials["conversation_id"], options)
    items = [conv.item(index, *turn) for index, turn in enumerate(_TURNS)]
    partial = conv.item(_GROWING_TURN, _TURNS[_GROWING_TURN][0], _PARTIAL_TEXT)
    stages = [items[:n] for n in range(1, len(items) + 1)]
    stages.insert(_GROWING_TURN, items[:_GROWING_TURN] + [partial])
    snapshots = [Send(conv.snapshot(stage), snapshot=True) for stage in stages]
    final = Send(conv.snapshot(items, ended=True), snapshot=True)
    return Script((*snapshots, final, _ENDED), initial=conv.snapshot([]))


#: Turns of the ``long`` conversation: room for many faults in one call.
LONG_TURNS = 200


def long(options: ScenarioOptions, credentials: Mapping[str, str]) -> Script:
    """``LONG_TURNS`` turns, the scripted five over and over, one new item per snapshot."""
    conv = _Conversation(credentials["conversation_id"], options)
    turns = itertools.islice(itertools.cycle(_TURNS), LONG_TURNS)
    items = [
        conv.item(index, role, f"{text} ({index})", shape) for index, (role, text, shape) in enumerate(turns)
    ]
    snapshots = [Send(conv.snapshot(items[:n]), snapshot=True) for n in range(1, LONG_TURNS + 1)]
    return Script((*snapshots, _ENDED), initial=conv.snapshot([]))


#: The ``sdk`` call's turns: (role, words, redacted words or None).
_SDK_TURNS = [
    ("assistant", "Hi, this is Sunrise Dental calling to confirm your cleaning on Monday.", None),
    (
        "user",
        "Could we move it? You can text me at 555 0100.",
        "Could we move it? You can text me at [PHONE NUMBER].",
    ),
    ("assistant", "Let me check Tuesday for you.", None),
    ("user", "Thanks, I'm Dana Smith.", "Thanks, I'm [NAME]."),
]


def _tool_call(done: bool) -> dict[str, Any]:
    """A tool call in the SDK's shape, pending or answered."""
    return {
        "id": "tool_call_sim-1",
        "tool": {"id": "tool_sim-1", "name": "reschedule_appointment"},
        "integration": None,
        "endpoint_method": "POST",
        "endpoint_url": "https://tools.example.com/reschedule",
        "endpoint_headers": {"Content-Type": "application/json"},
        "endpoint_timeout_ms": 5000.0,
        "endpoint_called_at": None,
        "query_params": None,
        "request_body": {"day": "Tuesday"},
        "response_status_code": 200.0 if done else None,
        "response_body": {"slot": "Tuesday 10:00"} if done else None,
        "tool_call_output_timeout_ms": None,
        "timed_out": False if done else None,
        "error_message": None,
    }


def sdk(options: ScenarioOptions, credentials: Mapping[str, str]) -> Script:
    """An outbound call in the SDK's shape: an id that appears late, a tool call that
    completes, a turn redacted after it was said, one redacted from the start, and
    metadata a strict reader would refuse (``ended_by`` an object, an ``ended_at``
    that overflows in UTC)."""
    conv = _Conversation(credentials["conversation_id"], options)
    outbound: dict[str, Any] = {
        "origin": "outbound",
        "from_phone_number": CALLEE,  # the agent's number
        "to_phone_number": CALLER,
        "call_info": {"from_phone_number": CALLEE, "to_phone_number": CALLER, "twilio_call_sid": None},
    }
    greeting, asks, checks, thanks = (
        conv.sdk_item(n, role, words) for n, (role, words, _) in enumerate(_SDK_TURNS)
    )
    stages = [
        [{key: value for key, value in greeting.items() if key != "id"}],  # the id comes later
        [greeting, asks],
        [greeting, asks, dict(checks, tool_calls=[_tool_call(done=False)])],
        [
            greeting,
            dict(asks, live_transcript=None, redacted_transcript=_SDK_TURNS[1][2]),
            dict(checks, tool_calls=[_tool_call(done=True)]),
        ],
    ]
    stages.append([*stages[-1], dict(thanks, live_transcript=None, redacted_transcript=_SDK_TURNS[3][2])])
    snapshots = [Send(conv.snapshot(stage, **outbound), snapshot=True) for stage in stages]
    odd_ending = {"ended_by": {"kind": "user"}, "ended_at": "9999-12-31T23:00:00-07:00"}
    final = Send(conv.snapshot(stages[-1], ended=True, **outbound, **odd_ending), snapshot=True)
    return Script((*snapshots, final, _ENDED), initial=conv.snapshot([], **outbound))


def _flood_snapshot(conv: _Conversation, number: int) -> dict[str, Any]:
    item = conv.item(0, "assistant", f"flood message {number}")
    item["sent_at"] = time.time()
    return conv.snapshot([item])


def flood(options: ScenarioOptions, credentials: Mapping[str, str]) -> Script:
    """``flood_count`` snapshots flat out, each with one item whose text changes;
    the item's extra ``sent_at`` field is its send time (epoch seconds)."""
    conv = _Conversation(credentials["conversation_id"], options)
    numbers = range(1, options.flood_count + 1)
    messages = (Send(functools.partial(_flood_snapshot, conv, n), snapshot=True) for n in numbers)
    return Script((*messages, _ENDED), initial=conv.snapshot([]), paced=False)


class Phonic(Provider):
    name = "phonic"
    default_scenario = "conversation"
    credentials = {
        "conversation_id": "conv_simulated-0001",
        "api_key": "sim-phonic-key",
        "session_token": "ph_session_sim",
    }
    client_credentials = ("conversation_id", "api_key")  # the client may take session_token instead
    scripts = {
        "conversation": BaseScript("a conversation growing snapshot by snapshot, then ended", conversation),
        "flood": BaseScript(
            "a thousand snapshots flat out, item sent_at = send time (epoch s)", flood, ("flood_count",)
        ),
        "long": BaseScript(f"a conversation of {LONG_TURNS} turns, one new item per snapshot", long),
        "sdk": BaseScript(
            "an outbound call in the SDK's shape: late id, tool call, redactions, odd metadata", sdk
        ),
    }

    def check(self, request: Any, credentials: Mapping[str, str]) -> Optional[Rejection]:
        match = _PATH.fullmatch(request.path)
        if match is None:
            return 404, "no such endpoint"
        authorization = request.header("Authorization")
        session_token = request.query.get("session_token")
        if session_token is not None and authorization is not None:
            return 401, "a session token cannot be combined with an Authorization header"
        if session_token is not None:
            valid = same_secret(session_token, credentials["session_token"])
        else:
            valid = same_secret(authorization, "Bearer " + credentials["api_key"])
        if not valid:
            return 401, "missing or invalid credentials"
        if unquote(match.group(1)) != credentials["conversation_id"]:
            return 403, "no access to this conversation"
        return None

    def error(self, message: str) -> Payload:
        return {"type": "error", "error": {"message": message}}

    def bad_messages(self, credentials: Mapping[str, str]) -> list[Payload]:
        conversation_id = credentials["conversation_id"]
        stray = {"item_idx": 0, "role": "system", "text": "a role Phonic never documented"}
        return [
            {"conversation": {"id": conversation_id, "items": []}},
            {"type": "conversation-paused", "detail": "a type nobody documented"},
            {"type": "conversation-updated"},
            {"type": "conversation-updated", "conversation": {"id": conversation_id, "items": "not a list"}},
            {"type": "conversation-updated", "conversation": {"id": conversation_id, "items": [stray]}},
        ]


PHONIC = Phonic()
