"""Zero data retention: the events stream keeps no word of a conversation whose owner asked Phonic
to keep nothing, unless the worker is told to keep them anyway."""

import json

import attrs
import pytest

from livecall_redis import WatchRequest, enqueue

from .conftest import allowing
from .test_worker import stream_events, wait_until_done

ZERO_RETENTION = {"zero_data_retention": True}
SOME_RETENTION = {"zero_data_retention": False, "audio_recordings": {"delete_after_hours": 1}}
#: The words of the ``sdk`` call: a line of each turn, and its tool call's arguments.
WORDS = ("Sunrise Dental", "Could we move it?", "Let me check Tuesday", "[NAME]", '"day": "Tuesday"')


@pytest.mark.parametrize(
    "policy, keep_words, words_kept",
    [(ZERO_RETENTION, False, False), (SOME_RETENTION, False, True), (ZERO_RETENTION, True, True)],
    ids=["zero-retention", "retention", "zero-retention-kept-anyway"],
)
def test_a_zero_retention_call_is_on_the_stream_without_words(
    redis_client, livecall_simulator, running_worker, settings, policy, keep_words, words_kept
):
    sim = livecall_simulator("phonic", "sdk", data_retention_policy=policy, audio_urls=True)
    conversation_id = sim.credentials["conversation_id"]
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim), keep_words=keep_words))
    enqueue(redis_client, WatchRequest("phonic", conversation_id=conversation_id, url=sim.url))
    wait_until_done(redis_client)
    events = stream_events(redis_client, conversation_id)
    stream = json.dumps(events)
    assert [word in stream for word in WORDS] == [words_kept] * len(WORDS)
    lines = [event for event in events if event["event"] == "transcript"]
    assert [(line["item_idx"], line["role"]) for line in lines] == [
        (0, "assistant"),
        (1, "user"),
        (2, "assistant"),
        (1, "user"),
        (3, "user"),
    ]
    assert "audio.phonic.example" not in stream and '"audio_url": "***"' in stream
