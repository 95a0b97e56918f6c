"""livecall-webhook: with tracing on, each request carries its event's trace as a W3C ``traceparent``."""

import livecall
from livecall import observability
from livecall.testing import Simulator
from livecall_webhook import Sender, WebhookForwarder

from .conftest import SECRET, verified, watch


def w3c(span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def forwarder_to(receiver, tmp_path) -> WebhookForwarder:
    sender = Sender(receiver.url, SECRET, backoff=livecall.Backoff(0.01, 0.05))
    return WebhookForwarder(sender, str(tmp_path / "dead.jsonl"))


def test_each_request_carries_the_trace_of_its_events_span_retries_included(
    livecall_spans, tmp_path, receiver_at
):
    receiver = receiver_at(script=[500])  # the first event is delivered on its second try
    forwarder = forwarder_to(receiver, tmp_path)
    with Simulator("phonic") as sim:
        _, bodies = watch(sim, forwarder)
    forwarder.close(timeout=10)
    assert receiver.accepted() == bodies
    processes = [span for span in livecall_spans.get_finished_spans() if span.name == "process phonic"]
    assert len(processes) == len(bodies)
    expected = [w3c(processes[0]), *(w3c(span) for span in processes)]
    assert [request.headers.get("traceparent") for request in receiver.requests] == expected
    assert [request.status for request in receiver.requests[:2]] == [500, 200]
    assert all(verified(request) for request in receiver.requests)


def test_without_tracing_no_request_has_a_traceparent(tmp_path, receiver):
    forwarder = forwarder_to(receiver, tmp_path)
    with Simulator("hiya") as sim:
        _, bodies = watch(sim, forwarder)
    forwarder.close(timeout=10)
    assert bodies and receiver.accepted() == bodies
    sent = [{name.lower() for name in request.headers} for request in receiver.requests]
    assert all("webhook-id" in names and "traceparent" not in names for names in sent)
    assert observability.traceparent() is None
