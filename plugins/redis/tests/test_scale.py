"""Many calls in one worker process: pipelined writes and renewals, the capacity it never overshoots,
the descriptors it never runs out of, and the events stream's trimming said out loud."""

import errno
import json
import logging
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest
import redis

import livecall
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator, wait_until
from livecall_redis import (
    DEFAULT_DEAD,
    DEFAULT_EVENTS,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    METRICS,
    EventKeys,
    Lease,
    Scripts,
    Stats,
    WatchRequest,
    Worker,
    enqueue,
)
from livecall_redis._capacity import RESERVED, descriptors, out_of_descriptors
from livecall_redis._keys import keyed_from_text
from livecall_redis._pipeline import EventPipeline
from livecall_redis._records import EventTexts
from livecall_redis._trim import TrimWatch

from .conftest import allowing, worker_argv, worker_env
from .test_campaign import Call, check_phonic, provider_events

API_KEY = "sim-phonic-key"


class Sampler:
    """The most of ``figure()`` seen, read every few milliseconds on a thread of its own until
    ``stop()`` (what it reads changes in other threads and processes: nothing to wait on)."""

    def __init__(self, figure):
        self._figure = figure
        self.most = 0
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="test-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(0.005):
            self.most = max(self.most, self._figure())
            self.samples += 1

    def stop(self) -> int:
        self._done.set()
        self._thread.join(10)
        return self.most


def pending_with(redis_client, consumer: str) -> int:
    """Requests pending with ``consumer``: the leases it holds (none before the group is made)."""
    try:
        summary = redis_client.xpending(DEFAULT_REQUESTS, DEFAULT_GROUP)
    except redis.ResponseError:
        return 0
    for each in summary.get("consumers") or ():
        if each["name"] == consumer:
            return int(each["pending"])
    return 0


def held_request(redis_client, scripts: Scripts, consumer: str) -> Lease:
    """A request enqueued, read and acquired by ``consumer``: its lease, with no watch."""
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0", mkstream=True)
    request_id = redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_1"})
    redis_client.xreadgroup(DEFAULT_GROUP, consumer, {DEFAULT_REQUESTS: ">"})
    acquired = scripts.acquire(consumer, request_id)
    assert acquired is not None
    return Lease(request_id, acquired.token, acquired.deliveries, EventKeys(f"{consumer}:{request_id}"))


def new_scripts(redis_server) -> Scripts:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    return Scripts(client, DEFAULT_REQUESTS, DEFAULT_GROUP, DEFAULT_EVENTS, DEFAULT_DEAD)


# --- pipelined writes ------------------------------------------------------------------------


def test_pipelined_writes_keep_their_order_and_a_batch_sent_again_writes_nothing_twice(
    redis_server, redis_client
):
    """A batch whose answer is lost (the connection went as it came back) is sent again whole:
    what it had written comes back a duplicate, and the stream holds each key once, in order."""
    scripts = new_scripts(redis_server)
    lease = held_request(redis_client, scripts, "w:1")
    stats = Stats()
    pipeline = EventPipeline(scripts, stats, lambda: True, 100_000, 60, batch=50)
    sent = scripts.write_many
    batches: list[int] = []

    def answer_lost_once(writes):
        answers = sent(writes)
        batches.append(len(writes))
        if len(batches) == 1:  # written, but the answer never came back
            raise redis.ConnectionError("connection lost")
        return answers

    scripts.write_many = answer_lost_once  # type: ignore[method-assign]
    keys = [f"k{number}" for number in range(400)] + ["k7", "k300"]  # two written before
    pipeline.start()
    for key in keys:
        pipeline.put(lease, key, f'{{"key": "{key}"}}')
    assert pipeline.flush(lease, 30)
    pipeline.close()
    scripts.client.close()
    written = [fields["key"] for _, fields in redis_client.xrange(DEFAULT_EVENTS)]
    assert written == keys[:400]
    # The first batch, sent again, came back duplicates (as a lone write's lost answer would).
    assert stats.events_written == 400 - batches[0]
    assert stats.events_duplicate == batches[0] + 2  # and the two keys repeated
    assert max(batches) <= 50 and len(batches) > 1  # batched, not written one by one


def test_a_write_under_a_stale_token_loses_the_lease_and_drops_its_queued_events(redis_server, redis_client):
    scripts = new_scripts(redis_server)
    lease = held_request(redis_client, scripts, "w:1")
    newer = scripts.acquire("w:1", lease.request_id)  # as a worker taking it over would
    assert newer is not None
    stats = Stats()
    pipeline = EventPipeline(scripts, stats, lambda: True, 100_000, 60)
    for number in range(5):
        pipeline.put(lease, f"k{number}", "{}")
    pipeline.start()
    assert pipeline.flush(lease, 30)
    pipeline.close()
    scripts.client.close()
    assert lease.lost is not None and "fenced" in lease.lost
    assert redis_client.xlen(DEFAULT_EVENTS) == 0
    assert stats.fenced_writes >= 1 and stats.events_written == 0


def test_pipelined_writes_keep_order_and_exactly_once_across_a_takeover(
    redis_client, livecall_simulator, settings, caplog
):
    """The first worker pauses (its hooks, renewals and main loop stop, as in a long GC) with events
    still to write; the second takes the call over and writes it to its end; the first's late write
    is fenced.  Every line of the call is on the stream once, in order."""
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sim = livecall_simulator("phonic", pace=0.3, conversation_id="conv_paused", api_key=API_KEY)
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_paused", url=sim.url))
    settings = attrs.evolve(settings, lease=2.0, renew=0.5, allowed_urls=allowing(sim))
    first = Worker(settings, create_plugin_manager(autoload=False), consumer="first:1")
    second = Worker(settings, create_plugin_manager(autoload=False), consumer="second:2")
    writing, renewing = threading.Event(), threading.Event()
    writing.set()
    renewing.set()
    queue_write, renew_many, take = first._writes.put, first._renewals.renew_many, first._take_requests

    def paused_put(*args, **kwargs):
        writing.wait(60)
        return queue_write(*args, **kwargs)

    def paused_renewals(*args, **kwargs):
        renewing.wait(60)
        return renew_many(*args, **kwargs)

    def paused_main_loop(*args, **kwargs):
        renewing.wait(60)
        return take(*args, **kwargs)

    first._writes.put = paused_put  # type: ignore[method-assign]
    first._take_requests = paused_main_loop  # type: ignore[method-assign]
    first._renewals.renew_many = paused_renewals  # type: ignore[method-assign]
    stops = [threading.Event(), threading.Event()]
    threads = [
        threading.Thread(target=worker.run, args=(stop,), daemon=True)
        for worker, stop in zip((first, second), stops)
    ]
    threads[0].start()
    try:
        wait_until(lambda: first.stats.events_written >= 2, 15)
        writing.clear()
        renewing.clear()
        threads[1].start()
        wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 60)  # the second saw the end
        writing.set()
        wait_until(lambda: first.stats.fenced_writes >= 1, 15)
        renewing.set()
        wait_until(lambda: first.stats.calls_held == 0, 15)
    finally:
        writing.set()
        renewing.set()
        for stop, thread in zip(stops, threads):
            stop.set()
            if thread.is_alive():
                thread.join(30)
    events = provider_events(redis_client)["conv_paused"]  # asserts no key is written twice
    check_phonic(Call(sim, "conv_paused", "conv_paused"), events, orphaned=True)
    assert second.stats.events_written > 0
    assert "lost call conv_paused (request" in caplog.text


def test_a_renewal_is_not_delayed_by_a_flood_of_writes(redis_client, livecall_simulator, settings):
    """Renewals go on their own connection in one pipeline per period, however many event writes
    wait: while tens of thousands of writes are queued and sent, every renewal period renews."""
    sim = livecall_simulator("hiya", join_timeout=120)  # the call waits for a join: held, quiet
    token = livecall.Credential(sim.credentials["conversation_token"])
    request = WatchRequest("hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url)
    request_id = enqueue(redis_client, request)
    settings = attrs.evolve(settings, lease=1.5, renew=0.2, allowed_urls=allowing(sim))
    worker = Worker(settings, create_plugin_manager(autoload=False))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    flood = 80_000
    try:
        wait_until(lambda: worker.stats.events_written >= 1, 15)
        lease = worker._held[request_id]
        idle = Sampler(
            lambda: max(
                (
                    entry["time_since_delivered"]
                    for entry in redis_client.xpending_range(DEFAULT_REQUESTS, DEFAULT_GROUP, "-", "+", 10)
                ),
                default=0,
            )
        )
        written = worker.stats.events_written
        renewed = worker.stats.lease_renewals
        began = time.monotonic()
        body = "x" * 200
        for number in range(flood):  # waits whenever the queue is full: the hook's back-pressure
            worker._writes.put(lease, f"flood:{number}", f'{{"n": {number}, "body": "{body}"}}')
        worker._writes.flush(lease, 120)
        took = time.monotonic() - began
        renewals = worker.stats.lease_renewals - renewed
        most_idle_ms = idle.stop()
        assert worker.stats.events_written - written == flood
    finally:
        stop.set()
        thread.join(30)
    periods = int(took / settings.renew)
    assert periods >= 4, f"the flood took {took:.1f} s: too short to tell"
    assert renewals >= periods - 2, (renewals, periods)
    assert most_idle_ms < 1000 * settings.lease, most_idle_ms  # the lease never lapsed


# --- leases renewed from the current set of held calls ---------------------------------------


def test_a_lease_settled_while_its_renewal_was_under_way_is_not_reported_taken_over(
    redis_client, livecall_simulator, settings, caplog
):
    """The renewer read the held calls, then the call ended and its request was acknowledged
    before the renewal reached Redis: the failed renewal is no takeover."""
    caplog.set_level(logging.INFO, logger="livecall.redis")
    sim = livecall_simulator("phonic", pace=0.2, conversation_id="conv_ends", api_key=API_KEY)
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_ends", url=sim.url))
    worker = Worker(
        attrs.evolve(settings, lease=10.0, renew=1.0, allowed_urls=allowing(sim)),
        create_plugin_manager(autoload=False),
    )
    renew_many = worker._renewals.renew_many
    late = []

    def renewal_reaching_redis_after_the_end(consumer, leases):
        if leases and not late:  # the first renewal waits for the call's request to go
            wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30)
            late.append(renew_many(consumer, leases))
            return late[-1]
        return renew_many(consumer, leases)

    worker._renewals.renew_many = renewal_reaching_redis_after_the_end  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        wait_until(lambda: late and worker.stats.calls_held == 0, 30)
    finally:
        stop.set()
        thread.join(30)
    assert late == [[False]]  # the renewal failed: the request was gone
    assert "call conv_ends ended" in caplog.text
    assert "taken over" not in caplog.text and "lost call" not in caplog.text


# --- capacity ----------------------------------------------------------------------------------


def test_a_burst_of_requests_never_makes_a_worker_hold_more_than_its_calls(
    redis_server, redis_client, livecall_simulator, settings
):
    """Forty new requests at once and ten a dead worker left pending: the worker holds at most
    ``--calls`` at any moment, and watches every one of them in turn."""
    calls, fresh, orphaned = 5, 40, 10
    sims = [
        livecall_simulator("phonic", pace=0.05, conversation_id=f"conv_burst-{n}", api_key=API_KEY)
        for n in range(fresh + orphaned)
    ]
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0", mkstream=True)
    ids = [
        enqueue(
            redis_client,
            WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url),
        )
        for sim in sims[:orphaned]
    ]
    redis_client.xreadgroup(DEFAULT_GROUP, "gone:1", {DEFAULT_REQUESTS: ">"})
    redis_client.xclaim(DEFAULT_REQUESTS, DEFAULT_GROUP, "gone:1", 0, ids, idle=600_000, justid=True)
    for sim in sims[orphaned:]:
        conversation_id = sim.credentials["conversation_id"]
        enqueue(redis_client, WatchRequest("phonic", conversation_id=conversation_id, url=sim.url))
    worker = Worker(
        attrs.evolve(settings, calls=calls, allowed_urls=allowing(*sims)),
        create_plugin_manager(autoload=False),
        consumer="burst:1",
    )
    pending = Sampler(lambda: pending_with(redis_client, "burst:1"))
    held = Sampler(lambda: worker.stats.calls_held)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 120)
    finally:
        stop.set()
        thread.join(30)
    most = pending.stop(), held.stop()
    assert all(sim.call_ended for sim in sims)
    assert max(most) <= calls, most
    assert most[1] == calls  # it did fill its slots
    assert redis_client.xlen(DEFAULT_DEAD) == 0


def test_the_soft_limit_on_open_files_is_raised_to_the_hard_one():
    """In a process whose soft limit is below its hard one, as a worker starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"the hard limit on open files is {hard}")
    code = (
        "import resource; from livecall_redis._capacity import descriptors; "
        "found = descriptors(); "
        "print(found.limit, found.calls, resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    ).stdout.split()
    limit, calls, soft_now = map(int, shown)
    assert limit == soft_now == hard
    assert hard - 64 - RESERVED < calls < hard - RESERVED


def test_a_worker_offered_more_calls_than_its_descriptors_allow_holds_what_they_allow(
    redis_server, redis_client, tmp_path
):
    """Under ``ulimit -n 256``, 300 calls: the worker says how many its descriptors allow, never
    holds more, loses nothing, and takes the rest as calls end and descriptors free up."""
    limit, count = 256, 300
    sims = [
        Simulator("phonic", pace=0.15, conversation_id=f"conv_fd-{n}", api_key=API_KEY).start()
        for n in range(count)
    ]
    log = tmp_path / "worker.log"
    env = worker_env(PHONIC_API_KEY=API_KEY)
    argv = worker_argv(redis_server.url)
    argv += ["--calls", str(count), "--lease", "3", "--renew", "1"]
    for sim in sims:
        argv += ["--allow-url", f"phonic={sim.url}"]
    process = None
    try:
        with log.open("wb") as output:
            process = subprocess.Popen(
                argv,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
            )
        said = wait_until(
            lambda: re.search(rb"worker (\S+) takes up to (\d+) calls .*\n", log.read_bytes()), 30
        )
        consumer, allowed = said[1].decode(), int(said[2])
        assert f"--calls {count}, but {limit} open files allow {allowed})".encode() in said[0]
        assert 0 < allowed < count
        pending = Sampler(lambda: pending_with(redis_client, consumer))
        requests = [
            enqueue(
                redis_client,
                WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url),
            )
            for sim in sims
        ]
        wait_until(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0 or process.poll() is not None, 180)
        assert process.poll() is None, log.read_text()
        most = pending.stop()
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(30)
        for sim in sims:
            sim.stop(timeout=1)
    text = log.read_text()
    # It filled what its descriptors allow, and never more; the peak sampled may fall short by
    # the few calls that ended (their simulators are quick) while the last ones were taken.
    assert allowed - 5 <= most <= allowed, (most, allowed)
    assert redis_client.xlen(DEFAULT_DEAD) == 0
    events = provider_events(redis_client)
    for sim, request_id in zip(sims, requests):
        conversation_id = sim.credentials["conversation_id"]
        check_phonic(Call(sim, request_id, conversation_id), events[conversation_id], orphaned=False)
    assert "Too many open files" not in text
    assert "taken over" not in text and "lost call" not in text and "unreachable" not in text


def test_a_redis_connection_refused_for_want_of_descriptors_is_told_apart():
    refused = redis.ConnectionError("Error 24 connecting to 127.0.0.1:6379. Too many open files.")
    assert out_of_descriptors(refused)
    try:
        raise redis.ConnectionError("could not connect") from OSError(errno.EMFILE, "Too many open files")
    except redis.ConnectionError as error:
        assert out_of_descriptors(error)
    assert not out_of_descriptors(redis.ConnectionError("Error 111 connecting: Connection refused."))


def test_a_worker_takes_no_more_calls_than_its_descriptors_allow(redis_server, settings):
    worker = Worker(attrs.evolve(settings, calls=1_000_000), create_plugin_manager(autoload=False))
    found = descriptors()
    assert found is not None and worker.descriptors is not None
    assert worker.capacity == worker.descriptors.calls < 1_000_000
    assert worker.stats.capacity_calls == worker.capacity


# --- the events stream's trimming -------------------------------------------------------------


def test_a_consumer_group_left_behind_by_the_trim_is_warned_of_once_per_episode_and_counted(
    redis_client, caplog
):
    caplog.set_level(logging.WARNING, logger="livecall.redis")
    stats = Stats()
    watch = TrimWatch(redis_client, DEFAULT_EVENTS, 10, stats)
    watch.check()  # no stream yet
    for number in range(5):
        redis_client.xadd(DEFAULT_EVENTS, {"n": number})
    redis_client.xgroup_create(DEFAULT_EVENTS, "slow", id="0")
    redis_client.xgroup_create(DEFAULT_EVENTS, "keeping-up", id="0")
    redis_client.xreadgroup("slow", "c", {DEFAULT_EVENTS: ">"}, count=2)
    redis_client.xreadgroup("keeping-up", "c", {DEFAULT_EVENTS: ">"})
    watch.check()
    assert stats.events_trimmed_unread == 0  # behind, but nothing trimmed yet
    for number in range(20):
        redis_client.xadd(DEFAULT_EVENTS, {"n": number}, maxlen=10, approximate=False)
        redis_client.xreadgroup("keeping-up", "c", {DEFAULT_EVENTS: ">"})
    watch.check()
    watch.check()
    assert stats.events_trimmed_unread == 1
    [warning] = [record.getMessage() for record in caplog.records]
    assert "consumer group slow had not read" in warning and "--events-maxlen" in warning
    if int(redis_client.info("server")["redis_version"].split(".")[0]) >= 7:  # it counts them
        assert "trimmed past 13 entries" in warning  # 25 added, 10 left: 15 gone, 2 of them read
    redis_client.xreadgroup("slow", "c", {DEFAULT_EVENTS: ">"})  # it catches up: the episode ends
    watch.check()
    for number in range(20):
        redis_client.xadd(DEFAULT_EVENTS, {"n": number}, maxlen=10, approximate=False)
    watch.check()
    assert stats.events_trimmed_unread == 3  # a new episode for slow, and keeping-up's first


def test_the_trim_figure_is_one_of_the_worker_s_metrics():
    name, kind, _ = METRICS["events_trimmed_unread"]
    assert (name, kind) == ("livecall_worker_events_trimmed_unread_total", "counter")
    families = {family.name: family for family in Stats(events_trimmed_unread=2).families()}
    assert name in families


# --- a snapshot's record built once, its unchanged turns not at all ----------------------------


class Comparing:
    """Makes each event's text as the worker does, beside the whole record's, and counts."""

    def __init__(self):
        self.texts = EventTexts()
        self.different: list[str] = []
        self.snapshots = 0

    @livecall.hookimpl
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        record, text = self.texts.make(call, event)
        if text != livecall.redact(json.dumps(livecall.to_record(call, event))):
            self.different.append(event.kind)
        if isinstance(event, livecall.ConversationUpdated):
            self.snapshots += 1
            assert keyed_from_text(record, text)
            full = livecall.to_record(call, event)
            keys = EventKeys("w")
            assert keys.key(call, event, record, text) == keys.key(call, event, full, text)


@pytest.mark.parametrize(
    "scenario, options",
    [
        ("conversation", {}),
        ("conversation", {"audio_urls": True}),
        ("sdk", {"audio_urls": True}),
        ("long", {}),
        ("malformed", {}),
        ("drop", {"drops": 2, "lose": 2}),
    ],
)
def test_a_snapshot_s_text_is_the_whole_record_s_with_its_unchanged_turns_reused(
    livecall_simulator, scenario, options
):
    """Character for character what ``to_json`` makes of the event, redacted (audio links
    blanked), for every event of the scenarios Phonic servers play."""
    sim = livecall_simulator("phonic", scenario, api_key=API_KEY, **options)
    comparing = Comparing()
    client = livecall.PhonicClient(
        sim.credentials["conversation_id"],
        api_key=API_KEY,
        url=sim.url,
        plugins=[comparing],
        plugin_manager=create_plugin_manager(autoload=False),
    )
    client.run()
    assert comparing.snapshots > 1 and comparing.different == []
    assert comparing.texts._turns, "the last snapshot's turns are kept for the next"


def test_the_worker_benchmark_runs_and_loses_nothing(redis_server, tmp_path):
    """``benchmarks/worker.py`` at tiny sizes: a check that it runs and counts, not a measurement."""
    root = Path(__file__).resolve().parents[3]
    output = tmp_path / "worker.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", "--quick", "--output", str(output)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    runs = {run["side"]: run for run in json.loads(output.read_text())["runs"]}
    assert set(runs) == {"worker", "plain"}
    for run in runs.values():
        assert run["events"] == run["expected"] and run["lost"] == 0
        assert {"p50", "p99"} <= set(run["latency_ms"]) and run["cpu_per_s"] > 0
    worker = runs["worker"]
    assert worker["written_twice"] == worker["leases_late"] == worker["taken_over_lines"] == 0
    assert worker["leases"] == worker["calls"]
