"""OpenTelemetry spans of a watch: a connect span per handshake, a process span per event, on the
application's tracer provider, against the simulator on loopback."""

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import livecall
from livecall import EndReason, observability
from livecall.testing import Exploding, Simulator


class Traceparents:
    """A plugin that keeps what ``observability.traceparent()`` says in its hooks."""

    def __init__(self):
        self.at_start = []
        self.per_event = []

    @livecall.hookimpl
    def livecall_call_start(self, call):
        self.at_start.append(observability.traceparent())

    @livecall.hookimpl
    def livecall_event(self, call, event):
        self.per_event.append(observability.traceparent())


def named(exporter, name):
    return [span for span in exporter.get_finished_spans() if span.name == name]


def w3c(span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def linked_to(span):
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def ids(span):
    context = span.get_span_context()
    return (context.trace_id, context.span_id)


def test_a_watch_makes_one_connect_span_and_one_process_span_per_event(livecall_spans, client_for, recorder):
    with Simulator("hiya") as sim:
        client = client_for(sim)
        client.run()
    events = recorder.events()
    assert events and client.call.end_reason is EndReason.ENDED
    [connect] = named(livecall_spans, "connect hiya")
    processes = named(livecall_spans, "process hiya")
    assert len(livecall_spans.get_finished_spans()) == 1 + len(events)
    assert len(processes) == len(events)
    assert connect.kind is SpanKind.CLIENT and connect.status.status_code is StatusCode.UNSET
    assert connect.attributes["messaging.system"] == "hiya"
    assert connect.attributes["messaging.message.conversation_id"] == client.call.id
    assert "messaging.operation.type" not in connect.attributes, "a handshake is no messaging operation"
    assert [span.attributes["livecall.event.kind"] for span in processes] == [e.kind for e in events]
    for span in processes:
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["messaging.system"] == "hiya"
        assert span.attributes["messaging.operation.type"] == "process"
        assert span.attributes["messaging.message.conversation_id"] == client.call.id
        assert linked_to(span) == [ids(connect)]
        assert span.status.status_code is StatusCode.UNSET
    secrets = [client.call.id, *sim.credentials.values()]
    assert not [
        span.name for span in livecall_spans.get_finished_spans() if any(s in span.name for s in secrets)
    ]


def test_the_events_after_a_reconnect_link_to_the_new_connection(livecall_spans, client_for, recorder):
    with Simulator("phonic", "drop") as sim:
        client = client_for(sim)
        client.run()
        assert sim.accepted == 2
    connects = named(livecall_spans, "connect phonic")
    processes = named(livecall_spans, "process phonic")
    assert len(connects) == 2 and len(processes) == len(recorder.events())
    first, second = (ids(span) for span in connects)
    assert all(len(span.links) == 1 and linked_to(span)[0] in (first, second) for span in processes)
    assert linked_to(processes[0]) == [first] and linked_to(processes[-1]) == [second]


def test_a_failing_plugin_is_recorded_on_the_span_of_the_event_it_failed_on(
    livecall_spans, client_for, recorder
):
    with Simulator("phonic") as sim:
        client = client_for(sim)
        client.register(Exploding("livecall_transcript"))
        client.run()
    failures = recorder.of("error")
    transcripts = recorder.events(livecall.Transcript)
    assert transcripts and len(failures) == len(transcripts)
    processes = named(livecall_spans, "process phonic")
    failed = [span for span in processes if span.status.status_code is StatusCode.ERROR]
    assert [span.attributes["livecall.event.kind"] for span in failed] == ["transcript"] * len(transcripts)
    assert all(span.status.status_code is StatusCode.UNSET for span in processes if span not in failed)
    for span in failed:
        [exception] = [event for event in span.events if event.name == "exception"]
        assert exception.attributes["exception.type"] == "livecall.errors.PluginError"
        assert "RuntimeError: boom" in exception.attributes["exception.message"]
        assert 'raise RuntimeError("boom")' in exception.attributes["exception.stacktrace"]
        assert span.attributes["error.type"] == "livecall.errors.PluginError"
        assert "livecall_transcript" in span.status.description


def test_a_failing_callback_is_recorded_too(livecall_spans, client_for):
    def refuse(call, event):
        raise ValueError("no thanks")

    with Simulator("hiya") as sim:
        client = client_for(sim)
        client.on(livecall.Transcript, refuse)
        client.run()
    failed = [
        span for span in named(livecall_spans, "process hiya") if span.status.status_code is StatusCode.ERROR
    ]
    assert failed and {span.attributes["livecall.event.kind"] for span in failed} == {"transcript"}
    assert all("ValueError: no thanks" in span.status.description for span in failed)


def test_a_refused_handshake_is_an_error_on_its_connect_span(livecall_spans, client_for, recorder):
    with Simulator("hiya", "auth") as sim:
        client = client_for(sim)
        with pytest.raises(livecall.AuthenticationError):
            client.run()
    [connect] = named(livecall_spans, "connect hiya")
    assert connect.status.status_code is StatusCode.ERROR
    [exception] = [event for event in connect.events if event.name == "exception"]
    assert exception.attributes["exception.type"] == "livecall.errors.AuthenticationError"
    assert "401" in exception.attributes["exception.message"]
    assert connect.attributes["error.type"] == "livecall.errors.AuthenticationError"
    assert sim.credentials["token"] not in exception.attributes["exception.stacktrace"]
    assert named(livecall_spans, "process hiya") == [] and recorder.events() == []


def test_traceparent_in_a_hook_is_the_context_of_its_events_span(livecall_spans, client_for, recorder):
    traceparents = Traceparents()
    with Simulator("phonic") as sim:
        client = client_for(sim)
        client.register(traceparents)
        client.run()
    processes = named(livecall_spans, "process phonic")
    assert traceparents.per_event == [w3c(span) for span in processes]
    assert len(set(traceparents.per_event)) == len(recorder.events())
    assert traceparents.at_start == [None], "no event, no span: call_start is outside any"


def test_with_tracing_off_there_are_no_spans_and_no_traceparent(livecall_spans, client_for, recorder):
    observability.disable_tracing()
    traceparents = Traceparents()
    with Simulator("phonic") as sim:
        client = client_for(sim)
        client.register(traceparents)
        client.run()
    assert recorder.events() and traceparents.per_event == [None] * len(recorder.events())
    assert livecall_spans.get_finished_spans() == ()
    assert observability.traceparent() is None
