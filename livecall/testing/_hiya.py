"""Hiya's Live Calls protocol, server side: handshake rules, acks, the screening call."""

import functools
import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Optional

from ._options import ScenarioOptions
from ._provider import BaseScript, Effect, Provider, Rejection, iso, now_iso, same_secret
from ._steps import AwaitJoin, Close, Payload, Script, Send

PATH = "/ws/v1/liveCalls"
CALLER = "+15551234567"
_EFFECTS = {"client:joinCall": "join", "client:endCall": "end"}

_SCREENING = [
    ("assistant", "Hi, this is Alex's call assistant. May I ask who is calling?", 0.8),
    ("other", "Hi, it's Jordan from Dr. Lee's office.", 4.1),
    ("assistant", "Thanks, Jordan. What is the call about?", 6.9),
    ("other", "I'm calling to confirm tomorrow's appointment at 10 am.", 9.6),
    ("assistant", "Thank you. Please hold while I check if Alex is available.", 13.2),
]
_AFTER_JOIN = [
    ("user", "Hi Jordan, this is Alex. Yes, 10 am works for me.", 20.5),
    ("other", "Great, we'll see you tomorrow then.", 23.0),
    ("user", "Thanks, bye!", 25.2),
]


def _transcript(role: str, text: str, offset: float) -> dict[str, Any]:
    return {"type": "transcript", "msg": text, "role": role, "offset": offset}


def _start() -> Send:
    return Send({"type": "event:start", "phone": CALLER, "timestamp": iso(datetime.now(timezone.utc))})


def _call_end() -> dict[str, Any]:
    return {"type": "event:callEnd", "timestamp": now_iso()}


def _ending() -> Close:
    return Close((_call_end,), 1000, "call ended", ends_call=True)


def screening(options: ScenarioOptions, credentials: Mapping[str, str]) -> Script:
    """A screened call: the assistant talks to the caller, then the user joins."""
    screened = [Send(_transcript(*line)) for line in _SCREENING]
    joined = [Send(_transcript(*line)) for line in _AFTER_JOIN]
    summary = Send({"type": "event:end", "msg": "Screening done: Jordan, Dr. Lee's office, appointment"})
    return Script((_start(), *screened, summary, AwaitJoin(options.join_timeout), *joined, _ending()))


def _flood_message(number: int) -> dict[str, Any]:
    return _transcript("other", f"flood message {number}", time.time())


def flood(options: ScenarioOptions, credentials: Mapping[str, str]) -> Script:
    """``flood_count`` transcripts flat out; each ``offset`` is its send time (epoch seconds)."""
    messages = (Send(functools.partial(_flood_message, n)) for n in range(1, options.flood_count + 1))
    return Script((_start(), *messages, _ending()), paced=False)


class Hiya(Provider):
    name = "hiya"
    default_scenario = "screening"
    credentials = {
        "token": "sim-hiya-token",
        "conversation_token": "sim-conversation-token",
        "user_id": "sim-user-1",
    }
    client_credentials = ("token", "conversation_token", "user_id")
    scripts = {
        "screening": BaseScript(
            "a screened call; waits for client:joinCall, then the user talks", screening, ("join_timeout",)
        ),
        "flood": BaseScript(
            "a thousand transcripts flat out, offset = send time (epoch s)", flood, ("flood_count",)
        ),
    }

    def check(self, request: Any, credentials: Mapping[str, str]) -> Optional[Rejection]:
        if request.path != PATH:
            return 404, "no such endpoint"
        if not same_secret(request.header("Authorization"), "Bearer " + credentials["token"]):
            return 401, "missing or invalid bearer token"
        if not same_secret(request.query.get("conversationToken"), credentials["conversation_token"]):
            return 401, "missing or invalid conversationToken"
        user_id = request.header("x-hiya-account-user-id")
        if user_id is None:
            return 400, "missing x-hiya-account-user-id header"
        if user_id != credentials["user_id"]:
            return 403, "this user may not watch this call"
        return None

    def answer(self, frame: Any) -> tuple[Optional[Payload], Effect]:
        if isinstance(frame, bytes):
            return self.error("binary frames are not supported"), None
        try:
            message = json.loads(frame)
        except ValueError:
            return self.error("message is not valid JSON"), None
        if not (isinstance(message, dict) and isinstance(message.get("type"), str) and "id" in message):
            return self.error("a client message needs a string 'type' and an 'id'"), None
        if message["type"] not in _EFFECTS:
            return self.error(f"unknown client message type {message['type']!r}"), None
        return {"type": "ack", "ackId": message["id"]}, _EFFECTS[message["type"]]

    def error(self, message: str) -> Payload:
        return {"type": "error", "description": message}

    def bad_messages(self, credentials: Mapping[str, str]) -> list[Payload]:
        return [
            {"msg": "an object without a type", "role": "other"},
            {"type": "event:mystery", "detail": "a type nobody documented"},
            {"type": "transcript", "role": "other", "offset": 1.0},
            {"type": "transcript", "msg": "offset is a string", "role": "other", "offset": "soon"},
            {"type": "transcript", "msg": "a role that is not a string", "role": 7, "offset": 2.0},
        ]


HIYA = Hiya()
