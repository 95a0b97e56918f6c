"""livecall-redis: with tracing on, each events-stream entry carries its event's trace as ``traceparent``."""

import json

import attrs

from livecall_redis import DEFAULT_EVENTS, DEFAULT_REQUESTS, WatchRequest, enqueue

from .conftest import allowing
from .test_campaign import wait_for


def w3c(span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def watched(redis_client, livecall_simulator, running_worker, settings) -> tuple[str, list[dict[str, str]]]:
    """One Phonic call watched to its end by a worker; its call id and its entries on the events stream."""
    sim = livecall_simulator("phonic")
    call_id = sim.credentials["conversation_id"]
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim)))
    enqueue(redis_client, WatchRequest("phonic", conversation_id=call_id, url=sim.url))
    wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30, "the call watched to its end")
    return call_id, [
        fields for _, fields in redis_client.xrange(DEFAULT_EVENTS) if fields["call_id"] == call_id
    ]


def test_each_entry_carries_the_trace_of_its_events_span(
    livecall_spans, redis_client, livecall_simulator, running_worker, settings
):
    call_id, entries = watched(redis_client, livecall_simulator, running_worker, settings)
    processes = {
        w3c(span): span
        for span in livecall_spans.get_finished_spans()
        if span.name == "process phonic" and span.attributes["messaging.message.conversation_id"] == call_id
    }
    assert entries and len({fields["traceparent"] for fields in entries}) == len(entries)
    for fields in entries:
        span = processes[fields["traceparent"]]
        assert span.attributes["livecall.event.kind"] == json.loads(fields["event"])["event"]


def test_without_tracing_an_entry_has_no_traceparent(
    redis_client, livecall_simulator, running_worker, settings
):
    _, entries = watched(redis_client, livecall_simulator, running_worker, settings)
    assert entries and all(set(fields) == {"call_id", "key", "event"} for fields in entries)
