"""The deploy campaign: three ``livecall worker`` processes with the shipped defaults, thirty paced
Phonic calls, SIGTERM to one of them mid-call.

The stopped worker hands each of its calls over (``--drain handover``, the
default): the others claim them at once and connect while it still writes.
Afterwards every call's events on the stream are what the simulator sent,
once each; each handed-over call went at most 1.5 s without an entry across
the signal, and no call has a gap.  The figures are printed.
"""

import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from livecall.testing import Simulator
from livecall_redis import DEFAULT_EVENTS, DEFAULT_REQUESTS, WatchRequest

from .test_campaign import (
    API_KEY,
    check_phonic,
    consumer_of,
    enqueue_calls,
    gaps_by_call,
    held_by,
    last_delivered,
    pending,
    provider_events,
    ready,
    sent_messages,
    wait_for,
)
from .test_drain import MOST_SILENCE_MS, entries_of, silence_after

SEED = 27
CALLS = 30
#: Seconds between the messages of one call: a snapshot every 0.6 to 0.8 s, about 6 s a call.
PACE = (0.6, 0.8)
DEADLINE = 60.0


def start_simulators(rng: random.Random) -> list[tuple[Simulator, WatchRequest]]:
    started = []
    for index in range(CALLS):
        conversation_id = f"conv_deploy-{index}"
        sim = Simulator("phonic", pace=rng.uniform(*PACE), conversation_id=conversation_id, api_key=API_KEY)
        sim.start()
        started.append((sim, WatchRequest("phonic", conversation_id=conversation_id, url=sim.url)))
    return started


def start_worker(redis_url: str, log: Path, sims: list[Simulator]) -> subprocess.Popen:
    """``livecall worker`` with the shipped defaults: only where to find Redis and the simulators."""
    env = dict(os.environ, PHONIC_API_KEY=API_KEY, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1")
    argv = [sys.executable, "-m", "livecall", "-v", "-p", "livecall_redis", "worker", "--redis", redis_url]
    for sim in sims:
        argv += ["--allow-url", f"{sim.provider}={sim.url}"]
    with log.open("wb") as output:
        return subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)


def test_sigterm_campaign(redis_server, redis_client, tmp_path_factory, capsys):
    tmp_path = tmp_path_factory.mktemp("deploy")
    started = start_simulators(random.Random(SEED))
    sims = [sim for sim, _ in started]
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    workers = [start_worker(redis_server.url, log, sims) for log in logs]
    try:
        wait_for(lambda: ready(logs), 30, "three workers reading")
        calls = enqueue_calls(redis_client, started)
        wait_for(lambda: last_delivered(redis_client) == calls[-1].request_id, 30, "every call taken")
        wait_for(lambda: all(len(sent_messages(sim)) >= 2 for sim in sims), 30, "every call under way")
        holding = {worker: held_by(redis_client, consumer_of(worker)) for worker in workers}
        stopped = max(workers, key=lambda worker: len(holding[worker]))
        handed = [call for call in calls if call.request_id in holding[stopped]]
        signalled_at, signalled_ms = time.monotonic(), time.time() * 1000
        stopped.send_signal(signal.SIGTERM)
        stopped.wait(DEADLINE)
        drained_in = time.monotonic() - signalled_at
        wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, DEADLINE, "every request acknowledged")
        assert pending(redis_client) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            worker.wait(30)
        for sim in sims:
            sim.stop(timeout=1)
    texts = [log.read_text() for log in logs]
    stopped_log = texts[workers.index(stopped)]
    assert stopped.returncode == 128 + signal.SIGTERM, stopped_log
    events = provider_events(redis_client)  # asserts that no key was written twice
    for call in calls:
        check_phonic(call, events[call.call_id], orphaned=False)  # every line, once, in order: none lost
    assert gaps_by_call(redis_client) == {}
    silences = []
    for call in handed:
        assert f"handed over call {call.call_id} " in stopped_log
        assert any(f"took over (handed over) call {call.call_id} " in text for text in texts)
        assert call.sim.accepted == 2, "the old watch, replaced, did not reconnect"
        silences.append(silence_after(entries_of(redis_client, call.call_id), signalled_ms))
    assert handed and max(silences) <= MOST_SILENCE_MS
    assert " WARNING " not in stopped_log, stopped_log
    fenced = int(redis_client.get(f"{DEFAULT_EVENTS}:fenced") or 0)
    with capsys.disabled():
        print(
            f"\ndeploy campaign: {CALLS} Phonic calls (a snapshot every {PACE[0]:g}-{PACE[1]:g} s), "
            f"3 workers with the shipped defaults; SIGTERM to the one holding {len(handed)}\n"
            f"  handed over: {len(handed)}; its drain took {drained_in:.2f} s; old writes fenced: {fenced}\n"
            f"  longest silence on the events stream across the signal: max {max(silences) / 1000:.2f} s, "
            f"median {statistics.median(silences) / 1000:.2f} s (limit {MOST_SILENCE_MS / 1000:g} s)\n"
            f"  lost 0, written twice 0, gaps 0; events on the stream: {redis_client.xlen(DEFAULT_EVENTS)}"
        )
