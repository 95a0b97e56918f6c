"""Time limits for held calls: a request's own ``max_duration`` and ``idle_timeout``, the worker's
defaults, and what becomes of a call that reaches one (acknowledged, never retried)."""

import logging
import threading
import time

import attrs
import pytest

import livecall
from livecall.cli import run
from livecall.plugins import create_plugin_manager
from livecall_redis import (
    DEFAULT_DEAD,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    WatchRequest,
    Worker,
    WorkerSettings,
    enqueue,
)

from .conftest import allowing
from .test_campaign import wait_for
from .test_worker import stream_events, wait_until_done


def limited_call(redis_client, livecall_simulator, scenario, pace, **limits):
    """A Phonic call lasting a while, requested with ``limits``; its simulator."""
    sim = livecall_simulator("phonic", scenario, pace=pace, conversation_id="conv_limited")
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_limited", url=sim.url, **limits))
    return sim


def assert_over_for_good(redis_client, sim):
    """Acknowledged and deleted, not dead-lettered; the call not watched to its end."""
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0
    assert redis_client.xpending(DEFAULT_REQUESTS, DEFAULT_GROUP)["pending"] == 0
    assert redis_client.xlen(DEFAULT_DEAD) == 0
    events = [event["event"] for event in stream_events(redis_client, "conv_limited")]
    assert events and "conversation_ended" not in events
    assert len(sim.connections) == 1, "one watch: the request was not retried"


def test_a_call_reaching_its_request_s_max_duration_is_acknowledged_and_not_retried(
    redis_client, livecall_simulator, running_worker, settings, caplog
):
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sim = limited_call(redis_client, livecall_simulator, "long", 0.2, max_duration=1.5)  # 40 s of call
    started = time.monotonic()
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim)))
    wait_until_done(redis_client, timeout=20)
    took = time.monotonic() - started
    assert 1.5 <= took < 10, took
    assert_over_for_good(redis_client, sim)
    assert "call conv_limited stopped at its max_duration 1.5 s, before it ended" in caplog.text


def test_a_silent_call_reaching_the_worker_s_idle_timeout_is_acknowledged(
    redis_client, livecall_simulator, running_worker, settings, caplog
):
    """The provider sends nothing (the connection stays open): the worker's default applies."""
    sim = limited_call(redis_client, livecall_simulator, "silence", 0.05)
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim), idle_timeout=1.0))
    wait_until_done(redis_client, timeout=20)
    assert_over_for_good(redis_client, sim)
    assert "call conv_limited stopped at --idle-timeout 1, before it ended" in caplog.text


def test_a_request_s_own_limit_wins_over_the_worker_s(
    redis_client, livecall_simulator, running_worker, settings, caplog
):
    sim = limited_call(redis_client, livecall_simulator, "silence", 0.05, idle_timeout=1)
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim), idle_timeout=3600, max_duration=3600))
    wait_until_done(redis_client, timeout=20)
    assert_over_for_good(redis_client, sim)
    assert "call conv_limited stopped at its idle_timeout 1 s, before it ended" in caplog.text


def test_a_call_that_keeps_talking_never_reaches_its_idle_timeout(
    redis_client, livecall_simulator, running_worker, settings
):
    """Messages a third of the idle timeout apart: watched to the call's end, however long."""
    sim = livecall_simulator("phonic", pace=0.3, conversation_id="conv_talking")
    request = WatchRequest("phonic", conversation_id="conv_talking", url=sim.url, idle_timeout=1)
    enqueue(redis_client, request)
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim)))
    wait_until_done(redis_client, timeout=30)
    assert stream_events(redis_client, "conv_talking")[-1]["event"] == "conversation_ended"


def test_max_duration_counts_from_when_a_worker_first_took_the_request(
    redis_client, livecall_simulator, settings
):
    """A second worker taking the call over stops it at the first one's take plus the limit."""
    sim = limited_call(redis_client, livecall_simulator, "long", 0.2, max_duration=4)
    limited = attrs.evolve(settings, allowed_urls=allowing(sim))
    first = Worker(limited, create_plugin_manager(autoload=False), consumer="first:1")
    first_stop = threading.Event()
    first_thread = threading.Thread(target=first.run, args=(first_stop,), daemon=True)
    first_thread.start()
    second = Worker(limited, create_plugin_manager(autoload=False), consumer="second:2")
    second_stop = threading.Event()
    second_thread = threading.Thread(target=second.run, args=(second_stop,), daemon=True)
    try:
        wait_for(lambda: first.stats.calls_held == 1, 10, "the first worker taking the call")
        first_took = time.monotonic()
        second_thread.start()  # ready to take the call over as the first stops
        # About ten snapshots of two events each, at 0.2 s apart: two seconds of the call.
        wait_for(lambda: first.stats.events_written >= 20, 10, "the first worker watching a while")
        first_stop.set()
        first_held = time.monotonic() - first_took
        wait_for(lambda: second.stats.calls_held == 1, 10, "the second worker taking over")
        second_took = time.monotonic()
        wait_until_done(redis_client, timeout=15)
        second_held = time.monotonic() - second_took
    finally:
        first_stop.set()
        second_stop.set()
        first_thread.join(15)
        second_thread.join(15)
    assert first_held >= 1.5
    # Limits are looked at about once a second; counted from the second take, it would be 4 s.
    assert second_held < 4 - first_held + 1.2, f"{first_held:.1f} s, then {second_held:.1f} s"
    assert len(sim.connections) == 2
    assert redis_client.xlen(DEFAULT_DEAD) == 0


def test_enqueue_carries_the_limits_in_the_request(redis_server, redis_client, capsys):
    args = ["enqueue", "phonic", "--redis", redis_server.url, "--conversation-id", "conv_1"]
    assert run([*args, "--max-duration", "3600", "--idle-timeout", "2.5"]) == 0
    [(request_id, fields)] = redis_client.xrange(DEFAULT_REQUESTS)
    assert capsys.readouterr().out == f"{request_id}\n"
    assert fields == {
        "provider": "phonic",
        "conversation_id": "conv_1",
        "max_duration": "3600",
        "idle_timeout": "2.5",
    }
    request = WatchRequest.from_fields(fields)
    assert request.limits.max_duration == 3600 and request.limits.idle_timeout == 2.5
    assert "max_duration" not in request.provider.check_fields({"conversation_id": "conv_1"})


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_limit_that_is_no_number_of_seconds_is_a_usage_error(redis_server, capsys, value):
    for command in (["worker"], ["enqueue", "phonic", "--conversation-id", "c"]):
        with pytest.raises(SystemExit) as exit:
            run([*command, "--redis", redis_server.url, "--idle-timeout", value])
        assert exit.value.code == livecall.ExitStatus.USAGE
        assert "--idle-timeout: expected a number of seconds above 0" in capsys.readouterr().err


def test_a_request_with_a_limit_that_is_no_number_goes_to_the_dead_letter_stream(
    redis_server, redis_client, running_worker, settings
):
    redis_client.xadd(
        DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_x", "max_duration": "soon"}
    )
    running_worker(settings)
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 10, "the request dead-lettered")
    [(_, fields)] = redis_client.xrange(DEFAULT_DEAD)
    assert fields["reason"] == "max_duration must be a number of seconds above 0"
    assert fields["max_duration"] == "soon" and fields["conversation_id"] == "conv_x"


def test_a_worker_s_limits_must_be_seconds_above_zero(redis_server):
    with pytest.raises(livecall.ConfigurationError, match="--max-duration must be a number of seconds"):
        WorkerSettings(redis_url=redis_server.url, max_duration=0)
    assert WorkerSettings(redis_url=redis_server.url, idle_timeout=5).limits.idle_timeout == 5


def test_a_worker_draining_by_waiting_still_stops_calls_at_their_limits(
    redis_client, livecall_simulator, settings
):
    """``--drain wait`` watches the held calls to their end, or to their limits, whichever is first."""
    sim = limited_call(redis_client, livecall_simulator, "long", 0.2, max_duration=2)
    waiting = attrs.evolve(settings, allowed_urls=allowing(sim), drain="wait", drain_timeout=60)
    worker = Worker(waiting, create_plugin_manager(autoload=False))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.stats.calls_held == 1, 10, "the call taken")
        stop.set()  # draining: the call is watched on, until its limit
        thread.join(20)
        assert not thread.is_alive(), "the drain waited past the call's limit"
    finally:
        stop.set()
        thread.join(15)
    assert_over_for_good(redis_client, sim)
