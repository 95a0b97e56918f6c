"""A stopping worker's calls (``--drain``): handed over without a gap, watched to their end, or
given back; and the gap a takeover without a handover writes.  Real Redis, real simulators."""

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import attrs
import pytest

import livecall
from livecall.plugins import create_plugin_manager
from livecall.testing import wait_until
from livecall_redis import DEFAULT_EVENTS, DEFAULT_GROUP, DEFAULT_REQUESTS, WatchRequest, Worker, enqueue
from livecall_redis._handover import TAKEOVER_REASON

from .conftest import allowing, worker_argv, worker_env
from .test_campaign import Call, check_hiya, check_phonic, provider_events, sent_messages

#: The longest a handed-over call may go without an entry on the events stream.
MOST_SILENCE_MS = 1500


class Running:
    """A worker running in this process, on a thread of its own."""

    def __init__(self, settings, consumer: str):
        self.worker = Worker(settings, create_plugin_manager(autoload=False), consumer=consumer)
        self.stop, self.hurry = threading.Event(), threading.Event()
        self.thread = threading.Thread(
            target=self.worker.run, args=(self.stop, self.hurry), name=f"test-{consumer}", daemon=True
        )
        self.thread.start()


@pytest.fixture
def workers() -> Iterator:
    """``workers(settings, consumer)``: a running worker; every one is stopped, at once, at the end."""
    started: list[Running] = []

    def start(settings, consumer: str) -> Running:
        running = Running(settings, consumer)
        started.append(running)
        return running

    yield start
    for running in started:
        running.hurry.set()
        running.stop.set()
    for running in started:
        running.thread.join(20)
        assert not running.thread.is_alive()


def entries_of(redis_client, call_id: str) -> list[tuple[int, dict]]:
    """The call's entries on the events stream: (the entry's time in ms, its event)."""
    return [
        (int(entry_id.split("-")[0]), json.loads(fields["event"]))
        for entry_id, fields in redis_client.xrange(DEFAULT_EVENTS)
        if fields["call_id"] == call_id
    ]


def silence_after(entries: list[tuple[int, dict]], moment_ms: float) -> int:
    """The longest time between two entries of the call, from the last one before ``moment_ms`` on."""
    times = [at for at, _ in entries]
    return max(later - earlier for earlier, later in zip(times, times[1:]) if later >= moment_ms)


def gaps(entries: list[tuple[int, dict]]) -> list[dict]:
    return [event for _, event in entries if event["event"] == "gap"]


def moment(text: str) -> int:
    """A record's ISO 8601 time, in Unix ms."""
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def hand_over_mid_call(
    redis_client, settings, workers, sims, requests
) -> tuple[Running, Running, float, list]:
    """Worker ``a`` takes the calls; ``b`` starts; ``a`` is stopped (draining) once each call is under
    way, and its thread is over once ``b`` took every call over.  Returns both, the stop's time (Unix
    ms) and the requests' ids."""
    a = workers(settings, "a")
    request_ids = [enqueue(redis_client, request) for request in requests]
    wait_until(lambda: a.worker.stats.calls_held == len(requests), 10)
    b = workers(settings, "b")  # claims what a hands over on its next look, within a second
    for sim in sims:
        sim.wait_for(lambda sim=sim: len(sent_messages(sim)) >= 3, 10)
    stopped_at = time.time() * 1000
    a.stop.set()
    a.thread.join(15)
    assert not a.thread.is_alive(), "every call handed over, the worker is done"
    wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30)
    return a, b, stopped_at, request_ids


def test_a_stopping_worker_hands_its_phonic_calls_over_without_a_gap(
    redis_client, livecall_simulator, settings, workers, caplog
):
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sims = [livecall_simulator("phonic", pace=0.6, conversation_id=f"conv_drain-{n}") for n in range(2)]
    requests = [
        WatchRequest("phonic", conversation_id=f"conv_drain-{n}", url=sim.url) for n, sim in enumerate(sims)
    ]
    handing = attrs.evolve(settings, drain="handover", allowed_urls=allowing(*sims))
    a, b, stopped_at, _ = hand_over_mid_call(redis_client, handing, workers, sims, requests)
    events = provider_events(redis_client)  # asserts no key is written twice
    for n, sim in enumerate(sims):
        call_id = f"conv_drain-{n}"
        check_phonic(Call(sim, "", call_id), events[call_id], orphaned=False)  # every line, once
        entries = entries_of(redis_client, call_id)
        assert silence_after(entries, stopped_at) <= MOST_SILENCE_MS
        assert [event["event"] for _, event in entries if event["event"] in ("gap", "reconnecting")] == []
        assert sim.accepted == 2, "the old watch, closed as the new one opened, did not reconnect"
        assert f"handed over call {call_id} " in caplog.text
        assert f"took over (handed over) call {call_id} " in caplog.text
    assert a.worker.stats.events_written > 0 and b.worker.stats.events_written > 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "livecall.redis"] == []


def test_a_stopping_worker_hands_its_hiya_calls_over_and_no_line_is_lost(
    redis_client, livecall_simulator, settings, workers
):
    sims = [livecall_simulator("hiya", pace=0.6, join_timeout=0) for _ in range(2)]
    requests = [
        WatchRequest(
            "hiya",
            conversation_token=livecall.Credential(sim.credentials["conversation_token"]),
            user_id=sim.credentials["user_id"],
            url=sim.url,
        )
        for sim in sims
    ]
    handing = attrs.evolve(settings, drain="handover", allowed_urls=allowing(*sims))
    _, _, stopped_at, request_ids = hand_over_mid_call(redis_client, handing, workers, sims, requests)
    events = provider_events(redis_client)
    for sim, request_id in zip(sims, request_ids):  # a Hiya call's id on the stream is its request's
        assert check_hiya(Call(sim, request_id, request_id), events[request_id], orphaned=False) == 0
        entries = entries_of(redis_client, request_id)
        assert silence_after(entries, stopped_at) <= MOST_SILENCE_MS
        assert gaps(entries) == []
        assert sim.accepted == 2


def test_drain_wait_watches_a_call_to_its_end_and_takes_nothing_new(
    redis_client, livecall_simulator, settings, workers, caplog
):
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sim = livecall_simulator("phonic", pace=0.3, conversation_id="conv_wait")
    later = livecall_simulator("phonic", conversation_id="conv_later")
    waiting = attrs.evolve(settings, drain="wait", drain_timeout=20, allowed_urls=allowing(sim, later))
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_wait", url=sim.url))
    a = workers(waiting, "a")
    sim.wait_for(lambda: len(sent_messages(sim)) >= 2, 10)
    a.stop.set()
    wait_until(lambda: "draining: watching 1 call to the end" in caplog.text, 10)
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_later", url=later.url))
    a.thread.join(15)
    assert not a.thread.is_alive()
    assert sim.call_ended and "call conv_wait ended" in caplog.text
    events = provider_events(redis_client)
    check_phonic(Call(sim, "", "conv_wait"), events["conv_wait"], orphaned=False)
    assert later.accepted == 0 and "conv_later" not in events
    assert redis_client.xlen(DEFAULT_REQUESTS) == 1
    assert redis_client.xpending(DEFAULT_REQUESTS, DEFAULT_GROUP)["pending"] == 0, "not even read"


def test_drain_release_gives_the_calls_back_at_once_and_the_next_worker_writes_their_gap(
    redis_client, livecall_simulator, settings, workers
):
    sim = livecall_simulator("phonic", pace=0.5, conversation_id="conv_release")
    releasing = attrs.evolve(settings, drain="release", lease=60.0, renew=20.0, allowed_urls=allowing(sim))
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_release", url=sim.url))
    a = workers(releasing, "a")
    sim.wait_for(lambda: len(sent_messages(sim)) >= 3, 10)
    a.stop.set()
    a.thread.join(15)
    assert not a.thread.is_alive()
    b = workers(releasing, "b")  # a 60 s lease: only a call given back is claimed this soon
    wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30)
    entries = entries_of(redis_client, "conv_release")
    [gap] = gaps(entries)
    position = [event for _, event in entries].index(gap)
    assert gap["reason"] == TAKEOVER_REASON and gap["replayed"] is True
    assert moment(gap["lost_at"]) == entries[position - 1][0], "from the call's newest entry"
    assert moment(gap["lost_at"]) < moment(gap["reopened_at"])
    check_phonic(Call(sim, "", "conv_release"), provider_events(redis_client)["conv_release"], orphaned=True)
    assert b.worker.stats.events_written > 0


def test_a_takeover_after_a_killed_worker_writes_its_gap_once_with_both_times(
    redis_server, redis_client, livecall_simulator, settings, workers, tmp_path
):
    """The killed worker stops renewing and writing at once: the next worker takes the call over
    after the lease, and says where the stream has a hole."""
    sim = livecall_simulator("phonic", pace=1.0, conversation_id="conv_killed")
    env = worker_env(PHONIC_API_KEY="sim-phonic-key")
    argv = [sys.executable, "-m", "livecall", "-p", "livecall_redis", "worker", "--redis", redis_server.url]
    argv += ["--lease", "3", "--renew", "1", "--allow-url", f"phonic={sim.url}"]
    log = tmp_path / "killed.log"
    with log.open("wb") as output:
        killed = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_killed", url=sim.url))
        wait_until(lambda: len(entries_of(redis_client, "conv_killed")) >= 3, 30)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
    killed_at = time.time() * 1000
    workers(attrs.evolve(settings, allowed_urls=allowing(sim)), "b")
    wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30)
    entries = entries_of(redis_client, "conv_killed")
    [gap] = gaps(entries)
    position = [event for _, event in entries].index(gap)
    lost_at, reopened_at = moment(gap["lost_at"]), moment(gap["reopened_at"])
    assert lost_at == entries[position - 1][0] <= killed_at, "the killed worker's last entry"
    assert reopened_at - lost_at >= 2000, "a lease (3 s) after its last renewal, at most a second before"
    assert reopened_at <= entries[position + 1][0], "before anything the new connection brought"
    assert gap["reason"] == TAKEOVER_REASON and gap["replayed"] is True
    check_phonic(Call(sim, "", "conv_killed"), provider_events(redis_client)["conv_killed"], orphaned=True)


def test_a_handover_nobody_takes_is_given_back_at_the_drain_timeout_with_a_gap(
    redis_client, livecall_simulator, settings, workers, caplog
):
    """As where a provider refuses a second connection: the old watch runs until the timeout."""
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sim = livecall_simulator("phonic", pace=0.5, conversation_id="conv_timeout")
    timing_out = attrs.evolve(
        settings, drain="handover", drain_timeout=1.5, lease=60.0, renew=20.0, allowed_urls=allowing(sim)
    )
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_timeout", url=sim.url))
    a = workers(timing_out, "a")
    sim.wait_for(lambda: len(sent_messages(sim)) >= 3, 10)
    a.stop.set()
    a.thread.join(15)
    assert not a.thread.is_alive()
    assert "giving back 1 call still held (--drain-timeout 1.5)" in caplog.text
    workers(timing_out, "b")
    wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30)
    entries = entries_of(redis_client, "conv_timeout")
    assert [gap["reason"] for gap in gaps(entries)] == [TAKEOVER_REASON]
    check_phonic(Call(sim, "", "conv_timeout"), provider_events(redis_client)["conv_timeout"], orphaned=True)


def test_hurrying_ends_the_drain_at_once(redis_client, livecall_simulator, settings, workers, caplog):
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sim = livecall_simulator("phonic", pace=0.5, conversation_id="conv_hurry")
    slow = attrs.evolve(settings, drain="handover", drain_timeout=120, allowed_urls=allowing(sim))
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_hurry", url=sim.url))
    a = workers(slow, "a")
    sim.wait_for(lambda: len(sent_messages(sim)) >= 2, 10)
    a.stop.set()
    wait_until(lambda: "draining: handing 1 call over" in caplog.text, 10)
    hurried_at = time.monotonic()
    a.hurry.set()  # what a second signal does
    a.thread.join(15)
    assert not a.thread.is_alive() and time.monotonic() - hurried_at < 5
    assert "giving back 1 call still held (a second signal)" in caplog.text
    assert redis_client.xlen(DEFAULT_REQUESTS) == 1
    assert not redis_client.hexists(
        f"{DEFAULT_REQUESTS}:fence:{redis_client.xrange(DEFAULT_REQUESTS)[0][0]}", "handover"
    )


@pytest.mark.parametrize("processes", [1, 2])
def test_a_second_signal_ends_the_drain_of_livecall_worker_at_once(
    redis_server, redis_client, livecall_simulator, tmp_path, processes
):
    sim = livecall_simulator("phonic", pace=0.5, conversation_id="conv_twice")
    env = worker_env(PHONIC_API_KEY="sim-phonic-key")
    argv = worker_argv(redis_server.url)
    argv += ["--processes", str(processes), "--drain-timeout", "120", "--allow-url", f"phonic={sim.url}"]
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: log.read_bytes().count(b"takes up to") == processes, 30)
        enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_twice", url=sim.url))
        sim.wait_for(lambda: len(sent_messages(sim)) >= 2, 30)
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: b"draining: handing 1 call over" in log.read_bytes(), 30)
        again_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        took = time.monotonic() - again_at
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    text = log.read_text()
    assert "giving back 1 call still held (a second signal)" in text, text
    assert "gave back call conv_twice" in text and "exiting at once" not in text, text
    assert worker.returncode == 128 + signal.SIGTERM and took < 3, text  # livecall's own limit: 3 s
    assert redis_client.xlen(DEFAULT_REQUESTS) == 1
