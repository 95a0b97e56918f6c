"""The whole client against a server sending 10,000 fuzzed frames, then ending the call.

Payloads are valid messages mutated, random text and bytes, binary and
empty frames; messages come whole or in fragments with pings
between them, some large; and the byte stream is written in random-sized
pieces.  Every frame is legal WebSocket, so the connection must survive all
of them: one reader, one connection, an event per message, a normal end.
(Text that is not UTF-8 is not legal WebSocket: it fails the connection with
1007, as the protocol tests show.)
"""

import json
import random

import pytest

import livecall
from livecall import EndReason, Reconnecting, Transcript

FRAMES = 10_000
SEED = 7
TIMESTAMP = "2025-07-30T23:45:00.000Z"
VALID = {
    "hiya": [
        {"type": "event:start", "phone": "+15551234567", "timestamp": TIMESTAMP},
        {"type": "transcript", "msg": "Hello there", "role": "other", "offset": 1.5},
        {"type": "event:end", "msg": "Screening done"},
        {"type": "ack", "ackId": "1"},
        {"type": "error", "description": "something went wrong"},
    ],
    "phonic": [
        {
            "type": "conversation-updated",
            "conversation": {
                "id": "conv_fuzz",
                "items": [
                    {
                        "id": "a",
                        "item_idx": 0,
                        "role": "assistant",
                        "text": "Hello!",
                        "started_at": TIMESTAMP,
                    },
                    {
                        "item_idx": 1,
                        "role": "user",
                        "text": None,
                        "live_transcript": "Hi",
                        "duration_ms": 900,
                    },
                ],
                "from_phone_number": "+15551234567",
                "started_at": TIMESTAMP,
            },
        },
        {"type": "error", "error": {"message": "something went wrong"}},
    ],
}
#: The message that ends the call: sent once, last, never produced by the fuzzer.
ENDING = {
    "hiya": {"type": "event:callEnd", "timestamp": TIMESTAMP},
    "phonic": {"type": "conversation-ended"},
}
JUNK = [None, True, -1, 2**64, 1e308, "", "\u2028\ud800", [], {}, [1, [2, [3]]], {"type": None}]


def _mutate(rng, value):
    """``value`` with one part dropped, replaced or retyped, at any depth."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        if rng.random() < 0.3:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _mutate(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.7:
        at = rng.randrange(len(value))
        return value[:at] + [_mutate(rng, value[at])] + value[at + 1 :]
    return rng.choice(JUNK)


def _payload(rng, provider):
    """One fuzzed message: (opcode, payload)."""
    roll = rng.random()
    if roll < 0.1:
        return 0x2, rng.randbytes(rng.randrange(64))  # binary
    if roll < 0.25:
        text = rng.randbytes(rng.randrange(64)).decode("utf-8", "replace")
        return 0x1, text.encode()  # text, never JSON
    message = _mutate(rng, rng.choice(VALID[provider])) if roll < 0.9 else rng.choice(VALID[provider])
    if isinstance(message, dict) and message.get("type") == ENDING[provider]["type"]:
        message = {**message, "type": "fuzzed"}
    text = json.dumps(message)
    if rng.random() < 0.01:
        text = json.dumps({"type": "padding", "text": "x" * 70_000})  # a 64-bit length
    return 0x1, text.encode()


def _frames(peer, rng, opcode, payload):
    """The message as one frame, or in fragments with pings between them."""
    if rng.random() < 0.8 or len(payload) < 2:
        return peer.frame(opcode, payload)
    cuts = sorted(rng.sample(range(1, len(payload)), min(3, len(payload) - 1)))
    pieces = [payload[i:j] for i, j in zip([0, *cuts], [*cuts, len(payload)])]
    frames = []
    for index, piece in enumerate(pieces):
        first, last = index == 0, index == len(pieces) - 1
        frames.append(peer.frame(opcode if first else peer.CONTINUATION, piece, fin=last))
        if not last and rng.random() < 0.5:
            frames.append(peer.frame(peer.PING, b"fuzz"))
    return b"".join(frames)


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_ten_thousand_fuzzed_frames_and_the_call_still_ends_normally(
    raw_server, plugin_manager, recorder, figures, provider
):
    rng = random.Random(SEED)

    def play(peer):
        stream = b"".join(_frames(peer, rng, *_payload(rng, provider)) for _ in range(FRAMES))
        stream += peer.frame(peer.TEXT, json.dumps(ENDING[provider]).encode())
        sent = 0
        while sent < len(stream):
            size = rng.choice([1, 7, 100, 1500, 65536])
            peer.send(stream[sent : sent + size])
            sent += size
        peer.receive_until(peer.CLOSE)
        peer.send(peer.frame(peer.CLOSE, b"\x03\xe8"))

    server = raw_server(play)
    if provider == "hiya":
        credentials = dict(
            token="fuzz-token-9d2b", conversation_token="fuzz-conversation-9d2b", user_id="fuzz"
        )
        client = livecall.HiyaClient(
            **credentials, url=server.url, plugin_manager=plugin_manager, max_retries=0
        )
    else:
        client = livecall.PhonicClient(
            "conv_fuzz", api_key="fuzz-key-9d2b", url=server.url, plugin_manager=plugin_manager, max_retries=0
        )
    client.run()
    events = recorder.events()
    messages = [event for event in events if not (provider == "phonic" and isinstance(event, Transcript))]
    lost = FRAMES + 1 - len(messages)
    figures(events_sent=FRAMES + 1, events_received=len(messages), events_lost=lost, fuzz_cases=FRAMES)
    assert len(messages) == FRAMES + 1, "an event per message, the broken ones included"
    assert isinstance(messages[-1], client.provider.final_events)
    assert client.call.end_reason is EndReason.ENDED
    assert server.accepted == 1 and not recorder.events(Reconnecting), "one connection, one reader, all along"
    assert len(recorder.events(livecall.DecodeError)) > FRAMES // 4
