"""livecall-redis: a reconnect's gap on the events stream, written once, keyed by the watch that saw it."""

import json
import threading
from datetime import datetime, timezone

import attrs

import livecall
from livecall.plugins import create_plugin_manager
from livecall_redis import DEFAULT_EVENTS, DEFAULT_REQUESTS, EventKeys, WatchRequest, Worker, enqueue

from .conftest import allowing
from .test_campaign import wait_for


def test_a_gap_is_one_entry_of_the_events_stream(redis_client, livecall_simulator, settings):
    sim = livecall_simulator("phonic", "drop")
    conversation_id = sim.credentials["conversation_id"]
    enqueue(redis_client, WatchRequest("phonic", conversation_id=conversation_id, url=sim.url))
    worker = Worker(attrs.evolve(settings, allowed_urls=allowing(sim)), create_plugin_manager(autoload=False))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30, "the call watched to its end")
    finally:
        stop.set()
        thread.join(15)
    entries = [
        fields for _, fields in redis_client.xrange(DEFAULT_EVENTS) if fields["call_id"] == conversation_id
    ]
    events = [json.loads(fields["event"]) for fields in entries]
    kinds = [event["event"] for event in events]
    assert kinds.count("gap") == 1 and kinds.count("reconnecting") == 1
    position = kinds.index("gap")
    gap = events[position]
    assert kinds[position - 1] == "reconnecting" and kinds[position + 1] == "conversation_updated"
    assert gap["replayed"] is True and gap["lost_at"] <= gap["reopened_at"]
    assert gap["reason"] == events[position - 1]["reason"]
    assert entries[position]["key"].startswith("watch:"), "what this worker alone saw"
    assert len({fields["key"] for fields in entries}) == len(entries)
    assert worker.stats.events_written == len(entries)


def test_a_gap_is_keyed_by_the_watch_so_no_gap_is_taken_for_another():
    call = livecall.Call(provider="hiya", id="call_0123456789abcdef")
    moment = datetime(2025, 7, 30, 23, 45, 3, tzinfo=timezone.utc)
    gap = livecall.Gap(lost_at=moment, reopened_at=moment, reason="closed with code 1006", replayed=False)
    keys = EventKeys("worker-1")
    same_watch = [keys.key(call, gap, livecall.to_record(call, gap)) for _ in range(2)]
    other_watch = EventKeys("worker-2").key(call, gap, livecall.to_record(call, gap))
    assert len({*same_watch, other_watch}) == 3
