"""A worker in this process against simulated providers and a real Redis."""

import inspect
import json
import logging
import threading

import attrs
import pytest

import livecall
from livecall.plugins import create_plugin_manager
from livecall_redis import DEFAULT_EVENTS, DEFAULT_REQUESTS, WatchRequest, Worker, enqueue

from .conftest import allowing
from .test_campaign import wait_for


def wait_until_done(redis_client, timeout: float = 30.0) -> None:
    """Every request acknowledged and deleted."""
    done = threading.Event()

    def check() -> bool:
        return redis_client.xlen(DEFAULT_REQUESTS) == 0

    for _ in range(int(timeout / 0.1)):
        if check():
            return
        done.wait(0.1)
    raise TimeoutError(f"requests left: {redis_client.xrange(DEFAULT_REQUESTS)}")


def stream_events(redis_client, call_id):
    return [
        json.loads(fields["event"])
        for _, fields in redis_client.xrange(DEFAULT_EVENTS)
        if fields["call_id"] == call_id
    ]


def test_a_request_enqueued_before_any_worker_is_watched_to_its_end(
    redis_client, livecall_simulator, settings
):
    sim = livecall_simulator("phonic")
    request_id = enqueue(
        redis_client, WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url)
    )
    worker = Worker(attrs.evolve(settings, allowed_urls=allowing(sim)), create_plugin_manager(autoload=False))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until_done(redis_client)
    finally:
        stop.set()
        thread.join(15)
    events = stream_events(redis_client, sim.credentials["conversation_id"])
    lines = [event["text"] for event in events if event["event"] == "transcript"]
    assert lines == [
        "Hello! Thanks for calling Sunrise Dental, how can I help you today?",
        "Hi, I'd like to book",
        "Hi, I'd like to book a cleaning for next week.",
        "Of course! I have Tuesday at 10 am or Thursday at 2 pm.",
        "Tuesday at 10 works.",
        "Great, you're booked for Tuesday at 10 am. See you then!",
    ]
    assert events[-1]["event"] == "conversation_ended"
    assert redis_client.xpending(DEFAULT_REQUESTS, "livecall-workers")["pending"] == 0
    assert worker.stats.events_written == len(events)
    assert request_id


def test_a_hiya_call_keeps_its_conversation_token_out_of_the_events_and_logs_and_drops_it_at_the_end(
    redis_client, livecall_simulator, running_worker, settings, caplog
):
    caplog.set_level(logging.DEBUG, logger="livecall")
    sim = livecall_simulator("hiya", join_timeout=0)
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim)))
    secret = sim.credentials["conversation_token"]
    request = WatchRequest(
        "hiya",
        conversation_token=livecall.Credential(secret),
        user_id=sim.credentials["user_id"],
        url=sim.url,
    )
    request_id = enqueue(redis_client, request)
    wait_until_done(redis_client)
    events = stream_events(redis_client, request_id)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
    assert kinds.count("transcript") == 8
    dump = json.dumps(
        [redis_client.xrange(key) for key in redis_client.keys("*") if redis_client.type(key) == "stream"]
    )
    assert secret not in dump
    assert "took call" in caplog.text and "ended" in caplog.text
    assert secret not in caplog.text


def test_a_stopping_worker_gives_its_calls_back_at_once(
    redis_server, redis_client, livecall_simulator, settings
):
    """Another worker takes the call over on its next look, long before the lease would lapse."""
    sim = livecall_simulator("phonic", pace=0.3, conversation_id="conv_handover")
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_handover", url=sim.url))
    slow_lease = attrs.evolve(settings, lease=60.0, renew=20.0, allowed_urls=allowing(sim))
    first = Worker(slow_lease, create_plugin_manager(autoload=False), consumer="first:1")
    first_stop = threading.Event()
    first_thread = threading.Thread(target=first.run, args=(first_stop,), daemon=True)
    first_thread.start()
    second = Worker(slow_lease, create_plugin_manager(autoload=False), consumer="second:2")
    second_stop = threading.Event()
    second_thread = threading.Thread(target=second.run, args=(second_stop,), daemon=True)
    try:
        wait_for(lambda: first.stats.events_written >= 2, 10, "the first worker watching")
        first_stop.set()
        first_thread.join(15)
        second_thread.start()
        wait_for(lambda: second.stats.calls_held == 1, 10, "the second worker taking over")
        wait_until_done(redis_client)
    finally:
        first_stop.set()
        second_stop.set()
        second_thread.join(15)
    lines = [
        event["text"]
        for event in stream_events(redis_client, "conv_handover")
        if event["event"] == "transcript"
    ]
    assert len(lines) == len(set(lines)) == 6


def _threads_not_serving_simulators() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if not thread.name.startswith("livecall-sim-")}


@pytest.mark.parametrize("calls", [3, 60])
def test_a_worker_holds_its_calls_on_the_hub_with_four_threads_of_its_own(
    redis_client, livecall_simulator, settings, calls
):
    """Main loop, renewer, writer, settler: held calls add no thread, and the hub's are bounded by its
    settings."""
    before = _threads_not_serving_simulators()
    sims = []
    for _ in range(calls):
        sim = livecall_simulator("hiya", join_timeout=60)  # the call waits for a join: held
        sims.append(sim)
        token = livecall.Credential(sim.credentials["conversation_token"])
        enqueue(
            redis_client,
            WatchRequest("hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url),
        )
    worker = Worker(
        attrs.evolve(settings, calls=calls, allowed_urls=allowing(*sims)),
        create_plugin_manager(autoload=False),
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.stats.events_written >= 7 * calls, 60, "every call screened and held")
        new = {thread.name for thread in _threads_not_serving_simulators() - before}
        assert worker.stats.calls_held == calls
    finally:
        stop.set()
        thread.join(15)
    hub = {name for name in new if name.startswith("livecall-hub")}
    assert new - hub == {
        "test-worker",
        "livecall-redis-renewer",
        "livecall-redis-writer",
        "livecall-redis-settler",
    }
    hub_settings = inspect.signature(livecall.configure_hub).parameters
    assert len(hub) <= 1 + hub_settings["connectors"].default + hub_settings["max_dispatchers"].default
    assert redis_client.xlen(DEFAULT_REQUESTS) == calls, "every call given back as the worker stopped"
